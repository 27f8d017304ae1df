"""The Numba backend on bfloat16 (BFLOAT16 views of the bit patterns): read in place and
widened inside the row loops, it gives what the compiled backend gives on the same bits
and what the Numba backend gives on their float32 widening (the same values, so the same
joint, argmax, statuses and first bad rows), with no float32 copy of the block."""

import re
import tracemalloc

import numpy as np
import pytest
from numpy.testing import assert_array_equal

import leepfast
from leepfast import _api, _reference, _status
from leepfast._errors import (
    LabelError,
    NegativeValueError,
    NonFiniteError,
    RowSumError,
)
from leepfast._tensors import BFLOAT16, widen_bfloat16

numba = pytest.importorskip("numba")
nb = pytest.importorskip("leepfast.backends.numba")
cy = pytest.importorskip("leepfast.backends.cython")

ZS = (3, 10, 16, 17, 100, 1000)  # small rows (<= nb.SMALL_Z) and wide ones
TOL = _api.BFLOAT16_TOLERANCE
NAN, INF, NEG_INF, NEG_ZERO, ONE = 0x7FC0, 0x7F80, 0xFF80, 0x8000, 0x3F80


def _bits(values):
    """bfloat16 bit patterns (uint16) of float values, rounded to nearest even."""
    u = np.asarray(values, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def _probability_bits(rng, n, z):
    """Rows of probabilities rounded to bfloat16 (sums off 1 by up to ~2^-9, within
    bfloat16's tolerance, not float32's), with what a wrong conversion would get wrong:
    values below 2^-24 (subnormal ones too: a fixed-point pass in units of 2^-24, as
    float16 takes, would drop them), -0.0, and near-ties at the top one unit in the last
    place apart, the larger after the smaller (the argmax is read from the bits)."""
    theta = rng.dirichlet(np.full(z, 0.5), size=n)
    rows = np.arange(0, n - 3, 7)
    if z > 1:
        for k, tiny in enumerate((2.0**-133, 2.0**-31, 1.5 * 2.0**-20, -0.0)):
            theta[rows + k % 3, rng.integers(0, z, rows.size)] = tiny
        near = rows + 3
        pair = np.sort(np.argsort(rng.random((near.size, z)), axis=1)[:, :2], axis=1)
        top = theta[near].max(axis=1) + 0.01
        theta[near, pair[:, 0]] = top
        theta[near, pair[:, 1]] = top
    theta /= theta.sum(axis=1, keepdims=True)
    bits = _bits(theta)
    if z > 1:
        bits[near, pair[:, 1]] += 1  # positive: the next bfloat16 up
    return bits


def _logit_bits(rng, n, z):
    """Logits as bfloat16: rows with -inf entries (a masked class), rows spanning more
    than the fast exp's range (libm's exp) and near-ties at the top."""
    logits = rng.normal(size=(n, z)) * 4
    rows = np.arange(0, n - 2, 5)
    if z > 1:
        logits[rows, rng.integers(0, z, rows.size)] = -np.inf
        logits[rows + 1, rng.integers(0, z, rows.size)] = -900.0
        near = rows + 2
        pair = np.sort(np.argsort(rng.random((near.size, z)), axis=1)[:, :2], axis=1)
        top = np.abs(logits[near]).max(axis=1) + 1.0
        logits[near, pair[:, 0]] = top
        logits[near, pair[:, 1]] = top
    bits = _bits(logits)
    if z > 1:
        bits[near, pair[:, 1]] += 1
    return bits


@pytest.fixture
def float32_with_bfloat16_tolerance(monkeypatch):
    """float32 rows held to bfloat16's row-sum tolerance, so that the float32 widening of
    bfloat16 rows is checked as they are."""
    monkeypatch.setitem(_api.ROW_SUM_TOLERANCE, np.dtype(np.float32), TOL)


def _assert_same_result(got, want, exact_joint=True):
    rel = 1e-15 if exact_joint else 1e-14
    for name in ("class_counts", "hard_counts"):
        assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)
    for name in ("joint", "conditional", "marginal"):
        a, b = getattr(got, name), getattr(want, name)
        if exact_joint:
            assert_array_equal(a, b, err_msg=name)
        else:
            np.testing.assert_allclose(a, b, rtol=rel, atol=0, err_msg=name)
    assert got.nce == pytest.approx(want.nce, rel=rel, abs=1e-15)
    assert got.leep == pytest.approx(want.leep, rel=rel)


# ---------------------------------------------------------------------------------------
# The conversion


def test_every_bfloat16_pattern_converts_exactly():
    # the kernels' own element conversion (the same _value the row loops use), on every
    # bit pattern: the float32 whose bits are the pattern moved up 16
    bits = np.arange(1 << 16, dtype=np.uint16).reshape(256, 256).view(BFLOAT16)
    got = nb._prepare(bits, 2)
    want = widen_bfloat16(bits)
    assert got.dtype == np.float32
    nan = np.isnan(want)
    assert nan.sum() == 2 * 127  # every NaN pattern, both signs
    assert_array_equal(got.view(np.uint32)[~nan], want.view(np.uint32)[~nan])
    assert np.isnan(got[nan]).all()


def test_the_kernels_take_the_bits_in_place():
    bits = _bits(np.full((4, 3), 1 / 3)).view(BFLOAT16)
    block = nb._kernel_block(bits)
    assert block.dtype == np.int16 and np.shares_memory(block, bits)


# ---------------------------------------------------------------------------------------
# Valid input: the compiled backend on the same bits, Numba on the float32 widening


@pytest.mark.parametrize("z", ZS)
@pytest.mark.parametrize("n_threads", [1, 2])
def test_probabilities_agree(z, n_threads, float32_with_bfloat16_tolerance):
    rng = np.random.default_rng(z)
    n, n_target = 4000, 5  # >= 64 rows per class: float16 would take fixed point
    bits = _probability_bits(rng, n, z)
    labels = rng.integers(0, n_target, n)
    before = bits.copy()
    kw = dict(n_target=n_target, n_threads=n_threads)
    got = leepfast.score(bits.view(BFLOAT16), labels, backend="numba", **kw)
    assert_array_equal(bits, before)  # nothing is written to the input
    compiled = leepfast.score(bits.view(BFLOAT16), labels, backend="cython", **kw)
    widened = leepfast.score(widen_bfloat16(bits), labels, backend="numba", **kw)
    _assert_same_result(got, widened)
    _assert_same_result(got, compiled, exact_joint=False)
    # and both are the formulas on the exact values (a wrong conversion, a dropped
    # tiny value or a tie broken by the wrong bits would show here)
    theta = widen_bfloat16(bits).astype(np.float64)
    assert_array_equal(got.hard_counts, _reference.hard_counts(theta, labels, n_target))
    np.testing.assert_allclose(
        got.joint, _reference.joint(theta, labels, n_target), rtol=1e-13, atol=0
    )
    assert got.leep == pytest.approx(_reference.leep(theta, labels, n_target), rel=1e-12)


@pytest.mark.parametrize("z", ZS)
@pytest.mark.parametrize("n_threads", [1, 2])
def test_logits_agree(z, n_threads):
    rng = np.random.default_rng(100 + z)
    n, n_target = 3000, 7
    bits = _logit_bits(rng, n, z)
    labels = rng.integers(0, n_target, n)
    kw = dict(n_target=n_target, n_threads=n_threads, logits=True)
    got = leepfast.score(bits.view(BFLOAT16), labels, backend="numba", **kw)
    compiled = leepfast.score(bits.view(BFLOAT16), labels, backend="cython", **kw)
    widened = leepfast.score(widen_bfloat16(bits), labels, backend="numba", **kw)
    _assert_same_result(got, widened)
    _assert_same_result(got, compiled, exact_joint=False)
    theta = _reference.softmax(widen_bfloat16(bits).astype(np.float64))
    assert_array_equal(got.hard_counts, _reference.hard_counts(theta, labels, n_target))
    assert got.leep == pytest.approx(_reference.leep(theta, labels, n_target), rel=1e-12)


def test_fortran_order_and_slices_of_bfloat16(float32_with_bfloat16_tolerance):
    rng = np.random.default_rng(5)
    bits = _probability_bits(rng, 2000, 40)
    labels = rng.integers(0, 4, 2000)
    want = leepfast.score(bits.view(BFLOAT16), labels, backend="numba")
    fortran = np.asfortranarray(bits).view(BFLOAT16)
    _assert_same_result(leepfast.score(fortran, labels, backend="numba"), want)
    wide = np.zeros((2000, 80), dtype=np.uint16)
    wide[:, ::2] = bits
    strided = wide.view(BFLOAT16)[:, ::2]
    _assert_same_result(
        leepfast.score(strided, labels, backend="numba", block_size=333), want, False
    )


# ---------------------------------------------------------------------------------------
# Bad input: the same exception and first bad row


def _first_row(exc):
    return int(re.search(r"row (\d+)", str(exc)).group(1))


def _outcome(arr, labels, backend, logits):
    with pytest.raises(ValueError) as info:
        leepfast.score(arr, labels, n_target=4, backend=backend, logits=logits, n_threads=2)
    return type(info.value), _first_row(info.value)


def _make_bad(bits, labels, kind, row, logits):
    if kind == "label":
        labels[row] = 99
    elif kind == "nan":
        bits[row, -1] = NAN
    elif kind == "inf":
        bits[row, 0] = INF
    elif kind == "-inf":  # probabilities: not finite; logits: no value above -inf
        if logits:
            bits[row, :] = NEG_INF
        else:
            bits[row, 0] = NEG_INF
    elif kind == "negative":
        bits[row, bits.shape[1] // 2] = _bits(-0.25)
    elif kind == "sum":  # off by 0.02: above bfloat16's tolerance, not float16's
        bits[row, :] = 0
        bits[row, 0] = _bits(0.5)
        bits[row, -1] = _bits(0.52) if bits.shape[1] > 1 else _bits(1.02)
    elif kind == "short":
        bits[row, :] = 0
        bits[row, 0] = _bits(0.75)


PROBABILITY_ERRORS = {
    "label": LabelError,
    "nan": NonFiniteError,
    "inf": NonFiniteError,
    "-inf": NonFiniteError,
    "negative": NegativeValueError,
    "sum": RowSumError,
    "short": RowSumError,
}
LOGIT_ERRORS = {
    "label": LabelError,
    "nan": NonFiniteError,
    "inf": NonFiniteError,
    "-inf": NonFiniteError,
}


@pytest.mark.parametrize("z", ZS)
@pytest.mark.parametrize("logits", [False, True], ids=["probabilities", "logits"])
def test_bad_rows_give_the_same_error_and_row(z, logits, float32_with_bfloat16_tolerance):
    rng = np.random.default_rng(200 + z)
    n = 3000
    good = _logit_bits(rng, n, z) if logits else _probability_bits(rng, n, z)
    good_labels = rng.integers(0, 4, n)
    errors = LOGIT_ERRORS if logits else PROBABILITY_ERRORS
    kinds = list(errors)
    for k, kind in enumerate(kinds):
        other = kinds[(k + 1) % len(kinds)]
        # the first bad row in the first thread's slice or the second's, another kind
        # of bad row after it (in the other slice or the same)
        for first, second in ((1700, 2600), (300, 2999), (1499, 1500)):
            bits, labels = good.copy(), good_labels.copy()
            _make_bad(bits, labels, other, second, logits)
            _make_bad(bits, labels, kind, first, logits)
            want = (errors[kind], first)
            assert _outcome(bits.view(BFLOAT16), labels, "numba", logits) == want
            assert _outcome(bits.view(BFLOAT16), labels, "cython", logits) == want
            wide = widen_bfloat16(bits)
            assert _outcome(wide, labels, "numba", logits) == want, (kind, first)


def test_bfloat16_rows_are_held_to_their_own_tolerance():
    # rows off 1 by 5e-3 pass (bfloat16's tolerance is 1e-2), by 2e-2 fail; the row
    # sums are taken on the exact values
    theta = np.full((6, 4), 0.25)
    theta[2, 0] += 5e-3
    theta[4, 3] -= 2e-2
    bits = _bits(theta)
    labels = np.array([0, 1, 0, 1, 0, 1])
    with pytest.raises(RowSumError, match=r"row 4 sums to .*within 0.01 \(the bfloat16"):
        leepfast.score(bits.view(BFLOAT16), labels, backend="numba")
    bits[4] = _bits(0.25)
    got = leepfast.score(bits.view(BFLOAT16), labels, backend="numba")
    want = leepfast.score(bits.view(BFLOAT16), labels, backend="cython")
    _assert_same_result(got, want, exact_joint=False)


@pytest.mark.parametrize("z", [10, 100])
@pytest.mark.parametrize("logits", [False, True], ids=["probabilities", "logits"])
def test_pass2_validates_bfloat16_rows_like_pass1(z, logits):
    # a block changed between the passes: pass 2 gives pass 1's status and first row,
    # on the bits as on their float32 widening
    rng = np.random.default_rng(300 + z)
    n, n_target = 3000, 4
    good = _logit_bits(rng, n, z) if logits else _probability_bits(rng, n, z)
    labels = rng.integers(0, n_target, n).astype(np.int64)
    theta = widen_bfloat16(good).astype(np.float64)
    if logits:
        theta = _reference.softmax(theta)
    conditional = _reference.conditional(_reference.joint(theta, labels, n_target))
    status, row, total = nb.score(good.view(BFLOAT16), labels, conditional, logits, TOL, 2)
    assert (status, row) == (_status.OK, -1)
    widened = nb.score(widen_bfloat16(good), labels, conditional, logits, TOL, 2)
    assert total == pytest.approx(widened[2], rel=1e-14)
    kinds = LOGIT_ERRORS if logits else PROBABILITY_ERRORS
    for kind in kinds:
        bits, bad_labels = good.copy(), labels.copy()
        _make_bad(bits, bad_labels, kind, 2100, logits)
        _make_bad(bits, bad_labels, kind, 1234, logits)
        slots = nb.n_slots(2)
        state = (
            np.zeros((slots, n_target, z)),
            np.zeros((slots, n_target, z), dtype=np.int64),
            np.zeros((slots, n_target), dtype=np.int64),
        )
        pass1 = nb.accumulate(bits.view(BFLOAT16), bad_labels, *state, logits, TOL, 2)
        assert pass1[1] == 1234, kind
        for block in (bits.view(BFLOAT16), widen_bfloat16(bits)):
            got = nb.score(block, bad_labels, conditional, logits, TOL, 2)
            assert got == (*pass1, 0.0), kind


# ---------------------------------------------------------------------------------------
# Memory


@pytest.mark.parametrize("logits", [False, True], ids=["probabilities", "logits"])
def test_no_float32_copy_of_a_bfloat16_block(logits):
    # the kernels read the bits in place: NumPy's allocations during a score (which
    # tracemalloc sees exactly; Numba's own O(Z) buffers are outside it) stay far below
    # a float32 copy of the block, which widening the block first would make
    rng = np.random.default_rng(9)
    n, z, n_target = 40_000, 500, 10
    if logits:
        bits = _bits(rng.normal(size=(n, z)).astype(np.float32))
    else:
        bits = _bits(rng.dirichlet(np.ones(z), size=n).astype(np.float32))
    bits = bits.view(BFLOAT16)
    labels = rng.integers(0, n_target, n).astype(np.int64)
    copy = n * z * 4  # 80 MB
    kw = dict(n_target=n_target, backend="numba", logits=logits, n_threads=2)
    want = leepfast.score(bits[:100], labels[:100], **kw)  # compiled, cache loaded
    assert np.isfinite(want.leep)
    tracemalloc.start()
    try:
        got = leepfast.score(bits, labels, **kw)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert np.isfinite(got.leep)
    # (logits: 6 MB, the float copies of the first 1024 rows that the check for
    # probabilities passed as logits makes; probabilities: under 1 MB)
    assert peak < copy / 8, f"peak {peak} bytes, a float32 copy is {copy}"
