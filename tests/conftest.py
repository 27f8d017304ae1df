"""Shared fixtures: the backend parametrisation and generators of valid inputs.

``backend`` runs a test once per backend. A backend that is not available here is
skipped, unless its name is listed in the environment variable
``LEEPFAST_REQUIRE_BACKENDS`` (comma-separated; CI sets ``cython,numba``): then the test
fails, so a compiled backend that did not build can never pass CI as a quiet skip.
``torch`` is the same for PyTorch, with ``LEEPFAST_REQUIRE_TORCH``.
"""

import os
import subprocess
import sys
import tempfile
import textwrap

import numpy as np
import pytest

import leepfast
from leepfast import _reference

BACKENDS = ("cython", "numba", "numpy")
REQUIRE_VAR = "LEEPFAST_REQUIRE_BACKENDS"
REQUIRE_TORCH_VAR = "LEEPFAST_REQUIRE_TORCH"


def required_backends():
    """The backend names listed in LEEPFAST_REQUIRE_BACKENDS, in order."""
    raw = os.environ.get(REQUIRE_VAR, "")
    return [name.strip() for name in raw.split(",") if name.strip()]


# Session scope: the fixture can be used by hypothesis tests (no per-example setup).
@pytest.fixture(params=BACKENDS, scope="session")
def backend(request):
    """A backend name; skipped if missing, failed if missing and required."""
    name = request.param
    available = leepfast.available_backends()
    if name not in available:
        if name in required_backends():
            pytest.fail(
                f"backend {name!r} is not available but {REQUIRE_VAR}="
                f"{os.environ[REQUIRE_VAR]!r} requires it; available backends: "
                f"{', '.join(available)}",
                pytrace=False,
            )
        pytest.skip(f"backend {name!r} is not available (set {REQUIRE_VAR} to require it)")
    return name


@pytest.fixture(scope="session")
def torch():
    """The torch module; the test is skipped where torch is absent, or fails when
    LEEPFAST_REQUIRE_TORCH is set (CI sets it and installs torch==2.13.0)."""
    try:
        import torch
    except ImportError as err:
        if os.environ.get(REQUIRE_TORCH_VAR):
            pytest.fail(
                f"torch is not importable ({err}) but {REQUIRE_TORCH_VAR}="
                f"{os.environ[REQUIRE_TORCH_VAR]!r} requires it",
                pytrace=False,
            )
        pytest.skip(f"torch is not installed (set {REQUIRE_TORCH_VAR} to require it)")
    return torch


def probabilities(rng, n, n_source, dtype=np.float64, zeros=0.0):
    """(n, n_source) rows that sum to 1 in float64 within far less than the dtype's
    tolerance, after rounding to ``dtype``; a fraction ``zeros`` of entries are 0."""
    dtype = np.dtype(dtype)
    theta = rng.random((n, n_source)) ** 3
    if zeros:
        theta[rng.random((n, n_source)) < zeros] = 0.0
    theta[np.arange(n), rng.integers(0, n_source, n)] += 0.05  # no all-zero row
    theta /= theta.sum(axis=1, keepdims=True)
    theta = theta.astype(dtype)
    # rounding to a narrow dtype moves the row sums (float16: by up to n_source * 2^-12);
    # put the whole float64 residual on each row's largest entry, then round once more.
    top = theta.argmax(axis=1)
    rows = np.arange(n)
    residual = 1.0 - theta.astype(np.float64).sum(axis=1)
    theta[rows, top] = (theta[rows, top].astype(np.float64) + residual).astype(dtype)
    return theta


def labels_for(rng, n, n_target, dtype=np.int64):
    """n labels in [0, n_target)."""
    return rng.integers(0, n_target, n).astype(dtype)


def models_of_decreasing_quality(rng, n, n_source, n_target, weights):
    """Labels and one probability dump per (name, weight) of ``weights``: each row mixes
    a one-hot row (its source class says the label: n_source // n_target source classes
    per label) with weight w and noise with 1 - w, so a larger w transfers better."""
    y = rng.integers(0, n_target, n)
    noise = probabilities(rng, n, n_source)
    per_label = n_source // n_target
    informative = np.eye(n_source)[y * per_label + rng.integers(0, per_label, n)]
    return y, {name: w * informative + (1 - w) * noise for name, w in weights}


@pytest.fixture(scope="session")
def make_models():
    """The ``models_of_decreasing_quality(rng, n, n_source, n_target, weights)``
    generator."""
    return models_of_decreasing_quality


@pytest.fixture
def rng():
    return np.random.default_rng(20260527)


@pytest.fixture(scope="session")
def make_theta():
    """The ``probabilities(rng, n, n_source, dtype=..., zeros=...)`` generator."""
    return probabilities


@pytest.fixture(scope="session")
def make_labels():
    """The ``labels_for(rng, n, n_target, dtype=...)`` generator."""
    return labels_for


def _matches_reference(r, probs, labels, n_target):
    """Assert that a Result equals the NumPy reference on the same rows (float64):
    LEEP and NCE to 1e-12 relative, the hard counts exactly."""
    assert r.leep == pytest.approx(_reference.leep(probs, labels, n_target), rel=1e-12)
    assert r.nce == pytest.approx(
        _reference.nce(probs, labels, n_target), rel=1e-12, abs=1e-15
    )
    np.testing.assert_array_equal(
        r.hard_counts, _reference.hard_counts(probs, labels, n_target)
    )


@pytest.fixture(scope="session")
def matches_reference():
    """:func:`_matches_reference`, for the tests that compare a Result with the oracle."""
    return _matches_reference


def _python_c(code, *, cwd=None, env=None, timeout=120, **kwargs):
    """Run ``python -c code`` (dedented) in a fresh interpreter, output captured as text;
    by default in the temporary folder (outside the source tree, so the installed
    package is the one imported) with this environment."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd or tempfile.gettempdir(),
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )


@pytest.fixture(scope="session")
def python_c():
    """:func:`_python_c`: a fresh interpreter for what one process cannot show."""
    return _python_c


class _CreatesFile:
    """Unpickling this calls open(path, "w"): it creates the file (a pickle that must
    never be loaded)."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture(scope="session")
def creates_file():
    """:class:`_CreatesFile`, the payload of the never-unpickled tests."""
    return _CreatesFile
