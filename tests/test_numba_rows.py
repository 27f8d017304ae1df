"""The Numba backend's row kernels written out in LLVM IR, against the reference: rows of
at most 16 values (_small_add, _small_dot: quarters of 4 lanes read from the row's start,
a joint padded to 16 columns up to SMALL_PADDED_CLASSES classes, the rows near the end
of a slice read from a zeroed copy) and float32/float64 rows of more (_add_row_wide,
_dot_wide: 16 values a step, a half step of 8, the last values one at a time). Every Z
around those widths, every element type, ties, bad rows at every position in both
passes, class counts on both sides of the padding threshold, row sums at the tolerance
that pass or fail alike in both passes, the running product of pass 2 over terms of
any size, and the conversion of halves written for CPUs without F16C."""

import math

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from leepfast import _reference, _status
from leepfast._tensors import BFLOAT16, widen_bfloat16

numba = pytest.importorskip("numba")
nb = pytest.importorskip("leepfast.backends.numba")

DTYPES = ("float16", "float32", "float64", "bfloat16")
TOL = {"float16": 1e-2, "float32": 1e-4, "float64": 1e-6, "bfloat16": 1e-2}
SMALL = tuple(range(1, nb.SMALL_Z + 1))
WIDE = (17, 23, 24, 25, 31, 32, 33, 40, 1000, 1001)  # steps of 16, half steps, tails


def _bfloat16_bits(values):
    """bfloat16 bit patterns (uint16) of float values, rounded to nearest even."""
    u = np.asarray(values, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def _block(values, dtype):
    """(block as the backend takes it, its values in float64 as the kernels read them)."""
    if dtype == "bfloat16":
        block = _bfloat16_bits(values).view(BFLOAT16)
        return block, widen_bfloat16(block).astype(np.float64)
    block = np.asarray(values).astype(dtype)
    return block, block.astype(np.float64)


def _rows_with_ties(rng, n, z):
    """Probability rows (float64) with what the argmax and the lanes can get wrong: rows
    whose entries all tie (argmax 0), ties between the last two columns, the maximum
    twice in different quarters, -0.0 before a positive maximum, zeros."""
    theta = rng.random((n, z)) ** 3
    theta[rng.random((n, z)) < 0.3] = 0.0
    theta[np.arange(n), rng.integers(0, z, n)] += 0.5
    theta /= theta.sum(axis=1, keepdims=True)
    theta[::5] = 1.0 / z
    if z > 1:
        theta[1::5] = 0.0
        theta[1::5, z - 2 :] = 0.5
        for i in range(2, n, 5):
            a, b = sorted(rng.choice(z, 2, replace=False))
            theta[i] = 0.0
            theta[i, a] = theta[i, b] = 0.5
        theta[3::5, 0] = -0.0
        theta[3::5, 1:] = 1.0 / (z - 1)
    return theta


def _pass1(block, labels, n_target, tol, n_threads):
    slots = nb.n_slots(n_threads)
    z = block.shape[1]
    joint = np.zeros((slots, n_target, z))
    hard = np.zeros((slots, n_target, z), dtype=np.int64)
    counts = np.zeros((slots, n_target), dtype=np.int64)
    status = nb.accumulate(block, labels, joint, hard, counts, False, tol, n_threads)
    return status, joint.sum(axis=0), hard.sum(axis=0), counts.sum(axis=0)


def _log_terms(wide, labels, conditional):
    return math.fsum(np.log((wide * conditional[labels]).sum(axis=1)))


def _check_against_the_reference(block, wide, labels, n_target, tol, n_threads):
    status, joint, hard, counts = _pass1(block, labels, n_target, tol, n_threads)
    assert status == (_status.OK, -1)
    np.testing.assert_allclose(
        joint, _reference.class_sums(wide, labels, n_target), rtol=1e-13, atol=1e-300
    )
    assert_array_equal(hard, _reference.hard_counts(wide, labels, n_target))
    assert_array_equal(counts, np.bincount(labels, minlength=n_target))
    conditional = _reference.conditional(_reference.joint(wide, labels, n_target))
    got = nb.score(block, labels, conditional, False, tol, n_threads)
    assert got[:2] == (_status.OK, -1)
    assert got[2] == pytest.approx(_log_terms(wide, labels, conditional), rel=1e-12)


# ---------------------------------------------------------------------------------------
# Valid rows


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("z", SMALL + WIDE)
@pytest.mark.parametrize("n", [1, 3, 37, 1000])
def test_rows_agree_with_the_reference(dtype, z, n):
    # n = 1, 3: every row read from the copy at the end of the block (and, with 3 classes,
    # fewer than 4 rows per class: the joint itself, its last quarter masked); 37 rows
    # over 2 threads: slices of 19 and 18 rows, each with its own end
    rng = np.random.default_rng(1000 * z + n)
    n_target = 3
    block, wide = _block(_rows_with_ties(rng, n, z), dtype)
    labels = rng.integers(0, n_target, n)
    for n_threads in (1, 2):
        _check_against_the_reference(block, wide, labels, n_target, TOL[dtype], n_threads)


@pytest.mark.parametrize("n_target", [2, 255, 256, 257, 600])
@pytest.mark.parametrize("z", [3, 8, 10, 16])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_small_rows_on_both_sides_of_the_padded_joint(n_target, z, dtype):
    # up to SMALL_PADDED_CLASSES classes (and 4 rows per class) pass 1 adds into a copy
    # padded to 16 columns; above, into the joint with its last quarter masked
    assert nb.SMALL_PADDED_CLASSES == 256
    rng = np.random.default_rng(n_target + z)
    n = 4 * 257 + 3
    block, wide = _block(_rows_with_ties(rng, n, z), dtype)
    labels = rng.integers(0, n_target, n)
    _check_against_the_reference(block, wide, labels, n_target, TOL[dtype], 1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("z", [1, 3, 10, 17, 40])
def test_rows_of_zeros_under_a_loose_tolerance_take_the_first_index(dtype, z):
    # a row whose maximum is 0 passes only under a tolerance of 1 or more; its argmax is
    # then np.argmax's, -0.0 tying with 0.0 (not the lanes' maximum, nor the first +0.0)
    rng = np.random.default_rng(z)
    n = 50
    theta = _rows_with_ties(rng, n, z)
    theta[::4] = 0.0
    theta[1::4] = -0.0
    if z > 1:
        theta[2::4] = 0.0
        theta[2::4, : z // 2] = -0.0
    block, wide = _block(theta, dtype)
    labels = rng.integers(0, 3, n)
    status, _, hard, _ = _pass1(block, labels, 3, 1.5, 1)
    assert status == (_status.OK, -1)
    assert_array_equal(hard, _reference.hard_counts(wide, labels, 3))


# ---------------------------------------------------------------------------------------
# Bad rows

EXPECTED = {
    "label": _status.ERR_LABEL,
    "nan": _status.ERR_NONFINITE,
    "inf": _status.ERR_NONFINITE,
    "negative": _status.ERR_NEGATIVE,
    "sum": _status.ERR_NOT_NORMALISED,
}


def _make_bad(theta, labels, kind, row, column):
    z = theta.shape[1]
    if kind == "label":
        labels[row] = 3
    elif kind == "nan":
        theta[row, column] = np.nan
    elif kind == "inf":
        theta[row, column] = np.inf
    elif kind == "negative":  # the row still sums to 1 (when it has two values)
        if z > 1:
            theta[row, (column + 1) % z] += theta[row, column] + 0.25
        theta[row, column] = -0.25
    else:
        theta[row] *= 1.5


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("z", [1, 3, 4, 5, 8, 9, 10, 13, 16, 17, 24, 37])
@pytest.mark.parametrize("kind", list(EXPECTED))
def test_bad_rows_at_every_position(dtype, z, kind):
    # the first bad row is reported in both passes wherever it is: in the rows read in
    # place or in the copy at the end, in every lane and quarter (the bad value in
    # column row % z), and the row before it, whose quarters reach into it, passes
    rng = np.random.default_rng(z)
    n, n_target = 24, 3
    good = _rows_with_ties(rng, n, z)
    good_labels = rng.integers(0, n_target, n)
    tol = TOL[dtype]
    _, wide = _block(good, dtype)
    conditional = _reference.conditional(_reference.joint(wide, good_labels, n_target))
    for row in range(n):
        theta, labels = good.copy(), good_labels.copy()
        _make_bad(theta, labels, kind, row, row % z)
        if row + 3 < n:  # another bad row after it
            _make_bad(theta, labels, "nan" if kind != "nan" else "label", row + 3, 0)
        block, _ = _block(theta, dtype)
        want = (EXPECTED[kind], row)
        for n_threads in (1, 2):
            assert _pass1(block, labels, n_target, tol, n_threads)[0] == want
            got = nb.score(block, labels, conditional, False, tol, n_threads)
            assert got == (*want, 0.0), (row, n_threads)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("z", [2, 10, 16, 17, 40, 1000])
def test_row_sums_at_the_tolerance_pass_or_fail_alike_in_both_passes(dtype, z):
    # each pass sums a row in the same order (and pass 2 re-checks it): rows whose sums
    # step across 1 + tol one unit in the last place at a time get the same status in
    # both, and some pass and some fail
    rng = np.random.default_rng(z)
    tol = TOL[dtype]
    base = rng.random(z) + 0.5
    base = (base / base.sum() * (1.0 + tol)).astype(dtype)
    top = np.argmax(base)
    base[top] += (1.0 + tol) - math.fsum(base.astype(np.float64))  # the sum's residual
    # steps of an ulp of the largest value, or of a quarter of the sum's where that is
    # below it (float64 rows of many values)
    step = max(float(np.spacing(base[top])), float(np.spacing(1.0)) / 4)
    rows = np.repeat(base[None, :], 81, axis=0)
    rows[:, top] = (base[top] + (np.arange(81) - 40) * step).astype(dtype)
    labels = np.zeros(1, dtype=np.int64)
    conditional = np.full((1, z), 0.5)
    outcomes = []
    for row in rows:
        block = row[None, :]
        first = _pass1(block, labels, 1, tol, 1)[0]
        second = nb.score(block, labels, conditional, False, tol, 1)[:2]
        assert first == second, row
        outcomes.append(first[0])
    assert set(outcomes) == {_status.OK, _status.ERR_NOT_NORMALISED}


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("z", [2, 10, 16, 17, 40, 1000])
def test_pass_two_sums_the_logs_of_terms_of_any_size(dtype, z):
    # a conditional made by hand: terms of 1e-300 (direct logs), 1e300 (above 2^900:
    # direct logs), 1e15 and 1e-15 (the running product leaves [2^-64, 2^64] every few
    # rows and is brought back), against math.fsum of the logs
    rng = np.random.default_rng(z)
    n, n_target = 403, 5
    theta = _rows_with_ties(rng, n, z)
    labels = rng.integers(0, n_target, n)
    conditional = rng.random((n_target, z)) + 0.01
    for y, scale in enumerate((1e-300, 1e300, 1e15, 1e-15)):
        conditional[y + 1] *= scale
    block, wide = _block(theta, dtype)
    got = nb.score(block, labels, conditional, False, TOL[dtype], 2)
    assert got[:2] == (_status.OK, -1)
    assert got[2] == pytest.approx(_log_terms(wide, labels, conditional), rel=1e-13)


# ---------------------------------------------------------------------------------------
# The conversion of halves without F16C


def test_halves_without_f16c_convert_every_pattern(monkeypatch):
    # the small-row kernels convert halves by integer arithmetic where the CPU has no
    # F16C (read when they are compiled): every pattern, added to a zero joint, gives
    # its float64 value (-0.0 as 0.0: the sum with 0.0), NaN as NaN; the same through
    # F16C where the CPU has it
    halves = np.arange(1 << 16, dtype=np.uint16).reshape(4096, 16)
    want = halves.view(np.float16).astype(np.float64)

    def converted(by_bits):
        monkeypatch.setattr(nb, "_HALVES_BY_BITS", by_bits)

        @numba.njit(cache=False)
        def add_rows(rows, dest):
            for i in range(rows.shape[0]):
                nb._small_add(rows, i, dest, i)

        dest = np.zeros((4096, 16))
        add_rows(halves, dest)
        return dest

    assert_array_equal(converted(True), want)
    if nb._target_has_f16c():
        assert_array_equal(converted(False), want)
