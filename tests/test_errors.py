"""Every bad input ends in one clear exception naming the argument, the expectation and
what was found (with the first offending row), and every backend fails exactly like the
NumPy reference."""

import re

import numpy as np
import pytest

import leepfast
from leepfast import LabelError

# a RuntimeWarning (overflow, invalid value) in the code under test is a failure
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

N, Z, Y = 50, 4, 3
BLOCK = 10  # row 27 is row 7 of the third block; with 2 threads, row 2 of its second slot
BAD_ROW = 27


@pytest.fixture
def good():
    """Valid (theta, labels) of N rows."""
    rng = np.random.default_rng(41)
    theta = rng.dirichlet(np.ones(Z), size=N)
    y = rng.integers(0, Y, N)
    return theta, y


def run(theta, y, backend="numpy", **kwargs):
    kwargs.setdefault("block_size", BLOCK)
    return leepfast.score(theta, y, backend=backend, **kwargs)


# ---------------------------------------------------------------------------------------
# Kinds and shapes (checked once, at the edge)


@pytest.mark.parametrize(
    ("predictions", "error", "message"),
    [
        (
            np.full(5, 0.2),
            ValueError,
            r"predictions: expected a 2-D array of shape \(n_samples, n_source\), "
            r"got ndim=1 with shape \(5,\)",
        ),
        (
            np.full((5, 2, 2), 0.25),
            ValueError,
            r"predictions: expected a 2-D array .*got ndim=3 with shape \(5, 2, 2\)",
        ),
        (np.float64(1.0), ValueError, r"predictions: expected a 2-D array .*got ndim=0"),
        (
            np.ones((5, 0)),
            ValueError,
            r"predictions: expected at least one sample and one source class, "
            r"got shape \(5, 0\)",
        ),
        (
            np.ones((5, 2), dtype=bool),
            TypeError,
            r"predictions: expected a float16, float32, float64 or bfloat16 array, "
            r"got dtype=bool",
        ),
        (
            np.ones((5, 2), dtype=np.int64),
            TypeError,
            r"predictions: expected a float16, float32, float64 or bfloat16 array, "
            r"got dtype=int64",
        ),
        (np.ones((5, 2), dtype=np.complex128), TypeError, r"got dtype=complex128"),
        (
            np.ones((5, 2), dtype=np.longdouble),
            TypeError,
            rf"got dtype={np.dtype(np.longdouble)}",
        ),
        (np.ones((5, 2), dtype=object), TypeError, r"got dtype=object"),
        ([["a", "b"]] * 5, TypeError, r"predictions: expected a float16.*got dtype=<U1"),
    ],
)
def test_bad_prediction_kinds_and_shapes(backend, predictions, error, message):
    with pytest.raises(error, match=message):
        leepfast.leep(predictions, np.zeros(5, dtype=int), backend=backend)


def test_no_samples(backend):
    with pytest.raises(
        ValueError,
        match=r"predictions: expected at least one sample and "
        r"one source class, got shape \(0, 3\)",
    ):
        leepfast.leep(np.ones((0, 3)), np.zeros(0, dtype=int), backend=backend)


NOT_INTEGER = r"labels: row "
IS_NOT = r"; expected an integer label \(integer-valued floats are taken\)$"
EXPECTED_INTEGERS = (
    r"labels: expected an integer array \(or integer-valued floats, or strings\), "
)


@pytest.mark.parametrize(
    ("labels", "error", "message"),
    [
        (
            np.zeros(4, dtype=int),
            ValueError,
            r"labels: expected 5 labels \(one per row of predictions\), got 4",
        ),
        (np.zeros(6, dtype=int), ValueError, r"labels: expected 5 labels .*got 6"),
        (
            np.zeros((5, 1), dtype=int),
            ValueError,
            r"labels: expected a 1-D array, got shape \(5, 1\)",
        ),
        # integer-valued floats are labels (pandas and np.loadtxt give them); others not
        (np.full(5, 0.5), LabelError, rf"^{NOT_INTEGER}0 is 0\.5{IS_NOT}"),
        (
            np.array([0, 1, 2, 1.5, 0], np.float32),
            LabelError,
            rf"^{NOT_INTEGER}3 is 1\.5{IS_NOT}",
        ),
        (
            [0.0, 1.0, np.nan, 0.0, 1.0],
            LabelError,
            rf"^{NOT_INTEGER}2 is nan{IS_NOT}",
        ),
        (
            [0.0, 1.0, 2.0**70, 0.0, 1.0],
            LabelError,
            rf"^{NOT_INTEGER}2 is 1\.18\d*e\+21{IS_NOT}",
        ),
        (np.zeros(5, dtype=bool), TypeError, rf"^{EXPECTED_INTEGERS}got dtype=bool$"),
        ([0, 1, None, 0, 1], TypeError, rf"^{EXPECTED_INTEGERS}got dtype=object$"),
        (
            np.zeros(5, dtype=complex),
            TypeError,
            rf"^{EXPECTED_INTEGERS}got dtype=complex128",
        ),
    ],
)
def test_bad_label_kinds_and_shapes(backend, labels, error, message):
    with pytest.raises(error, match=message):
        leepfast.leep(np.full((5, 2), 0.5), labels, backend=backend)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"n_target": 0}, ValueError, r"n_target: expected a positive integer, got 0"),
        ({"n_target": -2}, ValueError, r"n_target: expected a positive integer, got -2"),
        (
            {"n_target": 3.0},
            TypeError,
            r"n_target: expected None or a positive integer, got float",
        ),
        ({"n_target": "3"}, TypeError, r"n_target: expected None or .* got str"),
        ({"n_target": True}, TypeError, r"n_target: expected None or .* got bool"),
        (
            {"n_threads": 0},
            ValueError,
            r"n_threads: expected None, -1 \(all cores\) or a positive integer, got 0",
        ),
        ({"n_threads": -3}, ValueError, r"n_threads: expected None, -1 .*got -3"),
        (
            {"n_threads": 1.5},
            TypeError,
            r"n_threads: expected None or an integer, got float",
        ),
        ({"n_threads": False}, TypeError, r"n_threads: expected None or .*got bool"),
        ({"block_size": 0}, ValueError, r"block_size: expected a positive integer, got 0"),
        ({"block_size": -5}, ValueError, r"block_size: expected a positive .*got -5"),
        (
            {"block_size": 2.5},
            TypeError,
            r"block_size: expected None or a positive integer, got float",
        ),
        ({"block_size": True}, TypeError, r"block_size: expected None or .*got bool"),
        (
            {"backend": "fast"},
            ValueError,
            r"backend: expected one of 'auto', 'cython', 'numba', 'numpy', got 'fast'",
        ),
        ({"backend": "NumPy"}, ValueError, r"backend: expected one of .*got 'NumPy'"),
        (
            {"backend": None},
            TypeError,
            r"backend: expected one of 'auto', 'cython', 'numba', 'numpy', got NoneType",
        ),
        ({"backend": 1}, TypeError, r"backend: expected one of .*got int"),
    ],
)
@pytest.mark.parametrize("function", ["leep", "nce", "score"])
def test_bad_parameters(good, kwargs, error, message, function):
    theta, y = good
    with pytest.raises(error, match=message):
        getattr(leepfast, function)(theta, y, **kwargs)


def test_bad_accumulator_parameters():
    with pytest.raises(ValueError, match=r"n_target: expected a positive integer, got 0"):
        leepfast.Accumulator(n_target=0)
    with pytest.raises(ValueError, match=r"n_threads: expected None, -1 .*got 0"):
        leepfast.Accumulator(n_threads=0)
    with pytest.raises(ValueError, match=r"backend: expected one of .*got 'gpu'"):
        leepfast.Accumulator(backend="gpu")


# ---------------------------------------------------------------------------------------
# Values (validated inside pass 1 by each backend), first offending row in a middle block


LABEL_RANGE = rf"expected an integer in \[0, {Y}\) \(n_target={Y}\)"
HINT = r" \(pass logits=True if these are logits\)"
NONFINITE = rf"predictions: row {BAD_ROW} contains NaN or infinity; expected finite "
LOGITS_NONFINITE = (
    rf"predictions: row {BAD_ROW} contains NaN or \+inf, or no value above -inf; "
    r"expected finite logits \(a -inf logit, probability 0, is allowed\)$"
)


def _bad_label_negative(theta, y):
    y[BAD_ROW] = -3
    return theta, y, {"n_target": Y}, rf"labels: row {BAD_ROW} is -3; {LABEL_RANGE}"


def _bad_label_too_large(theta, y):
    y[BAD_ROW] = Y
    return theta, y, {"n_target": Y}, rf"labels: row {BAD_ROW} is {Y}; {LABEL_RANGE}"


def _bad_label_huge_unsigned(theta, y):
    y = y.astype(np.uint64)
    y[BAD_ROW] = 2**63 + 5  # does not fit the kernels' int64
    message = rf"labels: row {BAD_ROW} is {2**63 + 5}; {LABEL_RANGE}"
    return theta, y, {"n_target": Y}, message


def _nan(theta, y):
    theta[BAD_ROW, 1] = np.nan
    return theta, y, {}, NONFINITE + "probabilities$"


def _inf(theta, y):
    theta[BAD_ROW] = [0.0, np.inf, 0.0, 0.0]
    return theta, y, {}, NONFINITE + "probabilities$"


def _minus_inf(theta, y):
    theta[BAD_ROW, 3] = -np.inf
    return theta, y, {}, NONFINITE + "probabilities$"


def _nan_and_negative(theta, y):  # non-finite is reported before negative
    theta[BAD_ROW] = [-0.5, np.nan, 1.0, 0.5]
    return theta, y, {}, NONFINITE + "probabilities$"


def _negative(theta, y):
    theta[BAD_ROW] = [0.6, -0.125, 0.3, 0.225]  # sums to 1
    message = (
        rf"predictions: row {BAD_ROW} contains a negative value \(-0\.125\); "
        rf"expected probabilities >= 0{HINT}$"
    )
    return theta, y, {}, message


def _row_sum(total, tolerance, dtype):
    """The pattern of the row-sum message (``total`` and ``tolerance`` as patterns)."""
    return (
        rf"predictions: row {BAD_ROW} sums to {total}; expected probabilities that sum "
        rf"to 1 within {tolerance} \(the {dtype} tolerance\)"
    )


def _sum_too_large(theta, y):
    theta[BAD_ROW] = [0.5, 0.25, 0.25, 0.125]
    message = _row_sum(r"1\.125", r"1e-06", "float64") + rf"{HINT}$"
    return theta, y, {}, message


def _sum_too_small(theta, y):
    theta[BAD_ROW] *= 1 - 3e-6
    message = _row_sum(r"0\.999997\d*", r"1e-06", "float64")
    return theta, y, {}, message


def _sum_overflows(theta, y):
    theta[BAD_ROW] = [1e308, 1e308, 0.0, 0.0]  # finite values, infinite sum
    message = rf"predictions: row {BAD_ROW} sums to inf; expected probabilities"
    return theta, y, {}, message


def _float32_sum(theta, y):
    theta = theta.astype(np.float32)
    theta[BAD_ROW] *= np.float32(1.001)
    message = _row_sum(r"1\.00\d*", r"0\.0001", "float32")
    return theta, y, {}, message


def _float16_sum(theta, y):
    theta = theta.astype(np.float16)
    theta[BAD_ROW] = [0.5, 0.25, 0.25, 0.0625]
    message = _row_sum(r"1\.0625", r"0\.01", "float16")
    return theta, y, {}, message


def _float16_nan(theta, y):
    theta = theta.astype(np.float16)
    theta[BAD_ROW, 0] = np.nan
    return theta, y, {}, NONFINITE + "probabilities$"


def _logits_nan(theta, y):
    theta = np.log(theta + 0.01)
    theta[BAD_ROW, 2] = np.nan
    return theta, y, {"logits": True}, LOGITS_NONFINITE


def _logits_inf(theta, y):
    theta = np.log(theta + 0.01).astype(np.float32)
    theta[BAD_ROW, 0] = np.inf
    return theta, y, {"logits": True}, LOGITS_NONFINITE


def _logits_only_minus_inf(theta, y):
    # -inf entries are probabilities of 0 (masked classes); a row of nothing else is not
    # a distribution
    theta = np.log(theta + 0.01).astype(np.float32)
    theta[BAD_ROW - 1, 1:] = -np.inf  # one finite logit: a valid row
    theta[BAD_ROW] = -np.inf
    return theta, y, {"logits": True}, LOGITS_NONFINITE


def _big_endian_negative(theta, y):
    theta[BAD_ROW] = [0.5, -0.25, 0.5, 0.25]
    message = rf"predictions: row {BAD_ROW} contains a negative value \(-0\.25\)"
    return theta.astype(">f8"), y.astype(">i2"), {}, message


def _fortran_label(theta, y):
    y[BAD_ROW] = 7
    message = rf"labels: row {BAD_ROW} is 7; expected an integer in \[0, 5\) \(n_target=5\)"
    return np.asfortranarray(theta), y, {"n_target": 5}, message


VALUE_ERRORS = [
    _bad_label_negative,
    _bad_label_too_large,
    _bad_label_huge_unsigned,
    _nan,
    _inf,
    _minus_inf,
    _nan_and_negative,
    _negative,
    _sum_too_large,
    _sum_too_small,
    _sum_overflows,
    _float32_sum,
    _float16_sum,
    _float16_nan,
    _logits_nan,
    _logits_inf,
    _logits_only_minus_inf,
    _big_endian_negative,
    _fortran_label,
]


def _later_errors(theta, y):
    """Other bad rows after BAD_ROW, in its own slot, block, and later blocks."""
    if theta.dtype.kind == "f" and theta.dtype.isnative:
        theta[BAD_ROW + 2, 0] = np.nan  # same block and thread slot
        theta[BAD_ROW + 9, 0] = -1.0  # next block
    y[N - 1] = 1000  # last block, beyond every n_target used here
    return theta, y


@pytest.mark.parametrize("n_threads", [1, 2, 3])
@pytest.mark.parametrize("make_bad", VALUE_ERRORS, ids=lambda f: f.__name__.lstrip("_"))
def test_bad_values(backend, good, make_bad, n_threads):
    theta, y, kwargs, message = make_bad(*good)
    theta, y = _later_errors(theta, y)
    for function in (leepfast.leep, leepfast.nce, leepfast.score):
        with pytest.raises(ValueError, match=message) as got:
            function(
                theta, y, backend=backend, n_threads=n_threads, block_size=BLOCK, **kwargs
            )
    # exactly the reference's exception, whatever the backend, blocks and threads
    with pytest.raises(Exception) as want:
        leepfast.score(theta, y, backend="numpy", block_size=BLOCK, **kwargs)
    assert type(got.value) is type(want.value)
    assert str(got.value) == str(want.value)
    # and the same with one block holding every row
    with pytest.raises(ValueError, match=message):
        leepfast.score(theta, y, backend=backend, n_threads=n_threads, **kwargs)


@pytest.mark.parametrize("make_bad", VALUE_ERRORS, ids=lambda f: f.__name__.lstrip("_"))
def test_bad_values_through_the_accumulator(backend, good, make_bad):
    # the row number counts rows across the batches of pass 1
    theta, y, kwargs, message = make_bad(*good)
    acc = leepfast.Accumulator(backend=backend, n_threads=2, **kwargs)
    acc.accumulate(theta[:20], y[:20])
    with pytest.raises(ValueError, match=message):
        acc.accumulate(theta[20:], y[20:])


def test_negative_label_with_inferred_n_target(backend, good):
    theta, y = good
    y[BAD_ROW] = -1
    with pytest.raises(
        ValueError,
        match=rf"labels: row {BAD_ROW} is -1; expected labels "
        r">= 0",
    ):
        run(theta, y, backend)
    # through the accumulator (n_target inferred per batch) the row is global too
    acc = leepfast.Accumulator(backend=backend).accumulate(theta[:20], y[:20])
    with pytest.raises(ValueError, match=rf"labels: row {BAD_ROW} is -1; expected"):
        acc.accumulate(theta[20:], y[20:])
    with pytest.raises(ValueError, match=rf"labels: row {1000 + BAD_ROW} is -1; expected"):
        acc.accumulate(theta[20:], y[20:], row_offset=1000)  # added to rows seen
    y = y.astype(np.uint64)
    y[BAD_ROW] = 2**64 - 1
    with pytest.raises(
        ValueError,
        match=rf"labels: row {BAD_ROW} is {2**64 - 1}; "
        rf"expected labels < {2**63 - 1}",
    ):
        run(theta, y, backend)


@pytest.mark.parametrize(
    ("dtype", "inside", "outside"),
    [(np.float64, 5e-7, 2e-6), (np.float32, 5e-5, 2e-4), (np.float16, 0.0078125, 0.015625)],
)
def test_row_sum_tolerance_per_dtype(backend, dtype, inside, outside):
    # ROW_SUM_TOLERANCE is what the kernels apply, on the sum in float64
    tol = leepfast.ROW_SUM_TOLERANCE[np.dtype(dtype)]
    assert inside < tol < outside
    theta = np.full((4, 2), 0.5, dtype=dtype)
    theta[2, 0] = dtype(0.5 + inside)
    assert abs(theta[2].astype(np.float64).sum() - 1) < tol
    value = leepfast.leep(theta, [0, 1, 0, 1], backend=backend)
    assert np.isfinite(value)
    theta[2, 0] = dtype(0.5 + outside)
    assert abs(theta[2].astype(np.float64).sum() - 1) > tol
    with pytest.raises(
        ValueError,
        match=rf"row 2 sums to .*within {tol:g} "
        rf"\(the {np.dtype(dtype)} tolerance\)",
    ):
        leepfast.leep(theta, [0, 1, 0, 1], backend=backend)


def test_unknown_backend_lists_the_choices(good):
    theta, y = good
    with pytest.raises(
        ValueError,
        match=re.escape(
            "backend: expected one of 'auto', 'cython', 'numba', 'numpy', got 'cuda'"
        ),
    ):
        leepfast.leep(theta, y, backend="cuda")


def test_bad_input_is_not_modified(backend, good):
    theta, y = good
    theta[BAD_ROW, 0] = -0.5
    theta.flags.writeable = False
    before = theta.tobytes(), y.tobytes()
    with pytest.raises(ValueError, match=f"row {BAD_ROW}"):
        run(theta, y, backend)
    assert (theta.tobytes(), y.tobytes()) == before
    assert not theta.flags.writeable and y.flags.writeable
