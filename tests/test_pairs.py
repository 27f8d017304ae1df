"""Pass 1 without pair counts: ``leep()`` needs no NCE, so its pass 1 keeps no (label,
argmax) counts and takes no argmax. Every backend, every SIMD level of this CPU, every
element type and row route (the small rows, the general rows, float16's fixed point,
logits) must give the same joint and class counts as with the counts, bit for bit, and
the same first bad row; finalize then gives the same C, no counts and a NaN NCE, and
``leep()`` the very value of ``score().leep``."""

import math

import numpy as np
import pytest

import leepfast
from leepfast import _reference, backends
from leepfast._config import SIMD_LEVELS
from leepfast._tensors import bfloat16_of

_kernels = pytest.importorskip("leepfast._kernels")

LEVELS = SIMD_LEVELS[: _kernels.simd_level() + 1]
BACKENDS = [b for b in ("cython", "numba", "numpy") if b in backends.available_backends()]


def rows(rng, n, z, dtype, logits):
    x = rng.standard_normal((n, z)) * 3
    if not logits:
        x = np.exp(x) / np.exp(x).sum(axis=1, keepdims=True)
    return bfloat16_of(x) if dtype == "bfloat16" else x.astype(dtype)


def pass1(module, theta, labels, y, slots, logits, tol, threads, pairs):
    z = theta.shape[1]
    joint = np.zeros((slots, y, z))
    hard = np.zeros((slots, y, z), dtype=np.int64) if pairs else None
    counts = np.zeros((slots, y), dtype=np.int64)
    status = module.accumulate(theta, labels, joint, hard, counts, logits, tol, threads)
    return status, joint, hard, counts


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
@pytest.mark.parametrize("logits", [False, True])
@pytest.mark.parametrize("z", [3, 10, 16, 17, 100, 1000])
def test_pass_one_without_pairs_keeps_the_joint_bit_for_bit(
    monkeypatch, backend, dtype, logits, z
):
    module = backends.module(backend)
    rng = np.random.default_rng(z)
    y = 5
    # 64 rows a class and more: float16's fixed-point route where it pays
    n = 700 if z <= 100 else 400
    theta = rows(rng, n, z, dtype, logits)
    labels = rng.integers(0, y, n)
    levels = LEVELS if backend == "cython" else [None]
    for level in levels:
        if level is not None:
            monkeypatch.setenv("LEEPFAST_SIMD", level)
        for threads in (1, 2):
            slots = module.n_slots(threads)
            s1, j1, h1, c1 = pass1(
                module, theta, labels, y, slots, logits, 0.01, threads, True
            )
            s2, j2, h2, c2 = pass1(
                module, theta, labels, y, slots, logits, 0.01, threads, False
            )
            assert s1 == s2 == (0, -1)
            assert h2 is None and h1.sum() == n
            assert j1.tobytes() == j2.tobytes(), (level, threads)
            assert np.array_equal(c1, c2)
            f1 = module.finalize(j1, h1, c1)
            f2 = module.finalize(j2, None, c2)
            assert f2[1] is None and math.isnan(f2[5]) and not math.isnan(f1[5])
            for k in (0, 2, 3, 4):  # joint, class counts, C, column sums
                assert np.asarray(f1[k]).tobytes() == np.asarray(f2[k]).tobytes()
            assert f1[5] == pytest.approx(
                _reference.nce_from_counts(f1[1]), rel=1e-12, abs=1e-15
            )


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("z", [4, 100])
@pytest.mark.parametrize("bad, status", [(np.nan, 4), (-0.25, 5), (0.5, 6)])
def test_pass_one_without_pairs_reports_the_same_first_bad_row(backend, z, bad, status):
    module = backends.module(backend)
    theta = rows(np.random.default_rng(0), 300, z, "float32", False)
    labels = np.arange(300) % 3
    theta[123, 1] = bad
    for threads in (1, 2):
        slots = module.n_slots(threads)
        with_pairs = pass1(module, theta, labels, 3, slots, False, 1e-3, threads, True)
        without = pass1(module, theta, labels, 3, slots, False, 1e-3, threads, False)
        assert with_pairs[0] == without[0] == (status, 123)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("logits", [False, True])
def test_leep_is_scores_value_and_counts_no_pairs(monkeypatch, backend, dtype, logits):
    rng = np.random.default_rng(3)
    theta = rows(rng, 2000, 50, dtype, logits)
    labels = rng.integers(0, 7, 2000)
    module = backends.module(backend)
    seen = []
    real = module.accumulate

    def spy(block, labels, joint, hard, *rest):
        seen.append(hard is None)
        return real(block, labels, joint, hard, *rest)

    monkeypatch.setattr(module, "accumulate", spy)
    if hasattr(module, "both_passes"):  # the one-call route of a small block
        monkeypatch.delattr(module, "both_passes")
    for threads in (1, 2):
        value = leepfast.leep(
            theta, labels, logits=logits, backend=backend, n_threads=threads
        )
        assert seen and all(seen)  # no pair counts were asked for
        seen.clear()
        result = leepfast.score(
            theta, labels, logits=logits, backend=backend, n_threads=threads
        )
        assert seen and not any(seen)  # score() counts them: it reports NCE
        seen.clear()
        assert value == result.leep
        want = _reference.leep(
            _reference.softmax(theta.astype(np.float64)) if logits else theta, labels
        )
        assert value == pytest.approx(want, rel=1e-12)


def test_both_passes_without_pairs_is_leep_of_a_small_block():
    # the compiled backend's one call for a small block takes hard=None as well
    module = backends.module("cython")
    rng = np.random.default_rng(5)
    theta = rows(rng, 200, 30, "float32", False)
    labels = rng.integers(0, 4, 200)
    out = []
    for pairs in (True, False):
        joint = np.zeros((2, 4, 30))
        hard = np.zeros((2, 4, 30), dtype=np.int64) if pairs else None
        counts = np.zeros((2, 4), dtype=np.int64)
        out.append(module.both_passes(theta, labels, joint, hard, counts, False, 1e-3, 2))
    (s1, r1, f1, t1), (s2, r2, f2, t2) = out
    assert (s1, r1, s2, r2) == (0, -1, 0, -1) and t1 == t2
    assert f2[1] is None and math.isnan(f2[5]) and np.array_equal(f1[3], f2[3])
    assert t1 / 200 == leepfast.leep(
        theta, labels, n_target=4, backend="cython", n_threads=2
    )
