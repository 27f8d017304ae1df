"""Every backend implements the one written protocol of ``leepfast.backends``, and pass
2 validates its rows as pass 1 does (so other rows can never give LEEP > 0)."""

import inspect

import numpy as np
import pytest

import leepfast
from leepfast import _status, backends
from leepfast._errors import (
    InputError,
    LabelError,
    NegativeValueError,
    NonFiniteError,
    PassMismatchError,
    RowSumError,
)


def test_every_backend_has_the_protocols_members_and_signatures(backend):
    mod = backends.module(backend)
    for member, params in backends.PROTOCOL.items():
        assert hasattr(mod, member), f"{backend} lacks {member}"
        if params is None:
            assert isinstance(getattr(mod, member), bool)
        else:
            found = tuple(inspect.signature(getattr(mod, member)).parameters)
            assert found == params, f"{backend}.{member}{found} != {params}"


def test_the_registry_lists_every_backend_once():
    assert backends.BACKENDS == ("cython", "numba", "numpy")
    assert set(backends._MODULES) == set(backends.BACKENDS)
    assert leepfast.available_backends()[-1] == "numpy"


def test_the_oracle_imports_nothing_from_the_package():
    import leepfast._reference as ref

    source = inspect.getsource(ref)
    assert "from ." not in source and "import leepfast" not in source


def _pass1(backend, theta, y, n_target, logits=False):
    mod = backends.module(backend)
    t = mod.n_slots(2)
    z = theta.shape[1]
    joint = np.zeros((t, n_target, z))
    hard = np.zeros((t, n_target, z), dtype=np.int64)
    counts = np.zeros((t, n_target), dtype=np.int64)
    tol = leepfast.ROW_SUM_TOLERANCE[theta.dtype]
    assert mod.accumulate(theta, y, joint, hard, counts, logits, tol, 2) == (0, -1)
    return mod, mod.finalize(joint, hard, counts)[3], tol


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pass_2_validates_rows_like_pass_1(backend, dtype):
    rng = np.random.default_rng(0)
    theta = rng.dirichlet(np.ones(5), 64).astype(dtype)
    y = rng.integers(0, 3, 64).astype(np.int64)
    mod, C, tol = _pass1(backend, theta, y, 3)
    status, row, total = mod.score(theta, y, C, False, tol, 2)
    assert (status, row) == (0, -1) and total < 0
    cases = [
        (lambda t, lab: t.__setitem__((17, 2), np.nan), _status.ERR_NONFINITE),
        (lambda t, lab: t.__setitem__((17, 2), -0.5), _status.ERR_NEGATIVE),
        (lambda t, lab: t.__setitem__((17, slice(None)), 1.0), _status.ERR_NOT_NORMALISED),
        (lambda t, lab: lab.__setitem__(17, 3), _status.ERR_LABEL),
    ]
    for spoil, expected in cases:
        bad, lab = theta.copy(), y.copy()
        spoil(bad, lab)
        status, row, _ = mod.score(bad, lab, C, False, tol, 2)
        assert (status, row) == (expected, 17), (backend, expected)


def test_rows_changed_between_the_passes_raise_instead_of_a_positive_leep(backend):
    # a one-hot pass 1 makes C one-hot; pass 2 with rows scaled by 4 once gave LEEP > 0
    theta = np.eye(4)[[0, 1, 2, 3, 0, 1]]
    y = np.array([0, 1, 2, 3, 0, 1])
    acc = leepfast.Accumulator(backend=backend, n_threads=1).accumulate(theta, y)
    acc.finalize()
    with pytest.raises(RowSumError, match=r"predictions: row 0 sums to 4;") as err:
        acc.score(theta * 4.0, y)
    assert err.value.argument == "predictions"


def test_each_status_has_its_own_exception_class():
    theta = np.array([[0.5, 0.5], [0.25, 0.75]])
    cases = [
        (np.array([[np.nan, 1.0], [0.5, 0.5]]), [0, 1], NonFiniteError, "predictions"),
        (np.array([[-0.5, 1.5], [0.5, 0.5]]), [0, 1], NegativeValueError, "predictions"),
        (np.array([[0.6, 0.6], [0.5, 0.5]]), [0, 1], RowSumError, "predictions"),
        (theta, [0, 2], LabelError, "labels"),
        (theta, [0, -1], LabelError, "labels"),
    ]
    for predictions, labels, cls, argument in cases:
        with pytest.raises(cls) as err:
            leepfast.leep(predictions, labels, n_target=2 if cls is LabelError else None)
        assert isinstance(err.value, (InputError, ValueError))
        assert err.value.argument == argument
    with pytest.raises(PassMismatchError):
        acc = leepfast.Accumulator().accumulate(theta, [0, 1])
        acc.finalize()
        acc.score(theta[:1], [0]).result()


def test_booleans_must_be_booleans():
    theta = np.array([[0.5, 0.5], [0.25, 0.75]])
    for bad in ("False", 0, None, "yes"):
        with pytest.raises(TypeError, match=r"^logits: expected True or False, got "):
            leepfast.leep(theta, [0, 1], logits=bad)
        with pytest.raises(TypeError, match=r"^logits: expected True or False"):
            leepfast.Accumulator(logits=bad)
    assert leepfast.leep(theta, [0, 1], logits=np.bool_(False)) == leepfast.leep(
        theta, [0, 1]
    )


def test_logits_on_probabilities_warn():
    rng = np.random.default_rng(1)
    theta = rng.dirichlet(np.ones(6), 50)
    y = rng.integers(0, 3, 50)
    with pytest.warns(
        UserWarning,
        match=r"logits=True, but the first 50 rows are "
        r"already probability rows",
    ):
        leepfast.leep(theta, y, logits=True)
    logits = np.log(theta) + 3.0  # real logits: no warning
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert leepfast.leep(logits, y, logits=True) == pytest.approx(
            leepfast.leep(theta, y), rel=1e-12
        )
