"""The Numba backend's logits rows (written out in LLVM IR): the fast exp (the C core's
degree-11 minimax polynomial in Estrin's form) against exp over its whole range and at
the edges of its reduced range; the row scan in the row's own type (maximum, minimum,
NaN at every position); rows spanning just under and just over EXP_FAST_RANGE, -inf
entries, extreme magnitudes and every width around the vector steps, against the float64
reference for float16, float32, float64 and bfloat16; both passes' exps and sums bit for
bit; non-finite values at every position in both passes."""

import math

import numpy as np
import pytest

import leepfast
from leepfast import _reference
from leepfast._tensors import as_floats, bfloat16_of

numba = pytest.importorskip("numba")
nb = pytest.importorskip("leepfast.backends.numba")

DTYPES = ("float16", "float32", "float64", "bfloat16")
WIDTHS = (1, 2, 3, 4, 5, 7, 8, 9, 12, 15, 16, 17, 24, 31, 32, 33, 1000, 1001)
BIG = {"float16": 6e4, "float32": 3e38, "float64": 1e308, "bfloat16": 3e38}


@numba.njit
def _exps(xs):
    out = np.empty_like(xs)
    for j in range(xs.shape[0]):
        out[j] = nb._exp_fast(xs[j])
    return out


@numba.njit
def _scan(rows):
    out = np.empty((rows.shape[0], 3))
    for i in range(rows.shape[0]):
        hi, lo, nan = nb._logits_scan(rows, i)
        out[i, 0], out[i, 1], out[i, 2] = hi, lo, nan
    return out


@numba.njit
def _both_passes(rows, conditional, y):
    """Per row: (pass 1's sum, pass 2's sum, pass 2's dot, dot of pass 1's exps)."""
    out = np.empty((rows.shape[0], 4))
    e = np.empty((1, rows.shape[1]))
    for i in range(rows.shape[0]):
        hi, _, _ = nb._logits_scan(rows, i)
        out[i, 0] = nb._exps_fast(rows, i, hi, e)
        out[i, 2], out[i, 1] = nb._dots_fast(rows, i, hi, conditional, y[i])
        d = 0.0
        for z in range(rows.shape[1]):
            d += conditional[y[i], z] * e[0, z]
        out[i, 3] = d
    return out


def _typed(x, dtype):
    """(array as the backend takes it, its values in float64)."""
    t = bfloat16_of(x) if dtype == "bfloat16" else x.astype(dtype)
    return t, np.asarray(as_floats(t), dtype=np.float64)


def test_exp_within_an_ulp_or_two_over_its_range():
    ln2 = math.log(2.0)
    k = np.arange(-1020, 1)
    edges = np.concatenate([(k + 0.5) * ln2, (k - 0.5) * ln2])  # |r| = ln(2) / 2
    xs = np.concatenate(
        [
            np.linspace(-nb.EXP_FAST_RANGE, 0.0, 400_001),
            -np.logspace(-300, math.log10(nb.EXP_FAST_RANGE), 20_001),
            np.nextafter(edges, 0.0),
            np.nextafter(edges, -np.inf),
            edges,
            [0.0, -0.0, -5e-324, -nb.EXP_FAST_RANGE],
        ]
    )
    xs = xs[(xs <= 0.0) & (xs >= -nb.EXP_FAST_RANGE)]
    got, want = _exps(xs), np.exp(xs)
    assert np.all(np.isfinite(got)) and np.all(got >= np.finfo(np.float64).tiny)
    assert np.max(np.abs(got - want) / want) <= 4.5e-16  # 2 ulp
    assert _exps(np.array([0.0, -0.0]))[0] == 1.0 == _exps(np.array([-0.0]))[0]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("z", WIDTHS)
def test_scan_in_the_rows_own_type(dtype, z):
    rng = np.random.default_rng(z)
    t, v = _typed(rng.normal(size=(6 + 2 * z, z)) * 9, dtype)
    bits = t.view(np.uint16) if t.dtype.itemsize == 2 else t
    want_nan = np.zeros(len(t), dtype=bool)
    rows = bits.copy()
    for j in range(z):  # a NaN at every position
        r = 6 + 2 * j
        if dtype == "float16":
            rows[r, j] = 0x7E00
        elif dtype == "bfloat16":
            rows[r, j] = 0x7FC0
        else:
            rows[r, j] = np.nan
        want_nan[r] = True
    if dtype == "bfloat16":
        rows = rows.view(np.int16)
    got = _scan(rows)
    ok = ~want_nan
    assert np.array_equal(got[:, 2].astype(bool), want_nan)
    assert np.array_equal(got[ok, 0], v[ok].max(axis=1))
    assert np.array_equal(got[ok, 1], v[ok].min(axis=1))


def _logits_rows(z, dtype, rng, n=160):
    """Normal logits with rows spanning just under and just over EXP_FAST_RANGE, -inf
    entries, ties of the maximum and rows of extreme magnitudes."""
    x = rng.normal(size=(n, z)) * 5
    if z > 1:
        top = x.max(axis=1)
        x[1::8, -1] = top[1::8] - 706.9
        x[2::8, -1] = top[2::8] - 707.1
        x[3::8, 0] = -np.inf
        x[4::8, z // 2] = x[4::8, 0] = top[4::8] + 1.0
        if dtype != "float16":  # float16 cannot hold a span of 707 around its values
            x[5::8, 1] = -BIG[dtype]
        x[6::8, -1] = BIG[dtype]
        x[7::8, :] = -BIG[dtype] / 2
    return x


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("z", WIDTHS)
def test_logits_agree_with_the_reference(dtype, z):
    rng = np.random.default_rng(1000 + z)
    x = _logits_rows(z, dtype, rng)
    if dtype == "float16":
        x = np.clip(x, -6e4, 6e4)
    y = rng.integers(0, 7, len(x))
    t, v = _typed(x, dtype)
    theta = _reference.softmax(v)
    want = _reference.leep(theta, y)
    got = leepfast.leep(t, y, backend="numba", logits=True, n_threads=2)
    assert abs(got - want) <= 1e-13 * abs(want) + 1e-300
    assert leepfast.nce(t, y, backend="numba", logits=True, n_threads=2) == pytest.approx(
        _reference.nce(theta, y), rel=1e-12, abs=1e-15
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("z", (1, 5, 8, 17, 33, 1001))
def test_both_passes_take_the_same_exps(dtype, z):
    rng = np.random.default_rng(z)
    t, _ = _typed(rng.normal(size=(40, z)) * 20, dtype)
    rows = t.view(np.uint16) if dtype == "float16" else t
    rows = t.view(np.int16) if dtype == "bfloat16" else rows
    conditional = rng.random((3, z))
    y = rng.integers(0, 3, 40)
    out = _both_passes(rows, conditional, y)
    assert np.array_equal(out[:, 0], out[:, 1])  # the sums, bit for bit
    assert np.all(out[:, 0] >= 1.0)  # the maximum's exp is exactly 1
    np.testing.assert_allclose(out[:, 2], out[:, 3], rtol=1e-14)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bad", (np.nan, np.inf))
def test_non_finite_values_at_every_position(dtype, bad):
    z = 33
    rng = np.random.default_rng(5)
    x = rng.normal(size=(z + 3, z))
    y = rng.integers(0, 3, z + 3)
    for j in range(z):  # row j + 2, column j
        bad_x = x.copy()
        bad_x[j + 2, j] = bad
        t, _ = _typed(bad_x, dtype)
        with pytest.raises(leepfast.NonFiniteError, match=rf"\b{j + 2}\b"):
            leepfast.leep(t, y, backend="numba", logits=True, n_threads=1)
    # all -inf: no value above -inf
    x[:] = -np.inf
    t, _ = _typed(x, dtype)
    with pytest.raises(leepfast.NonFiniteError):
        leepfast.leep(t, y, backend="numba", logits=True, n_threads=1)


@numba.njit
def _pass_one_row(rows, i, hi, out):
    return nb._exps_fast(rows, i, hi, out)


@numba.njit
def _pass_two_row(rows, i, hi, conditional, y):
    return nb._dots_fast(rows, i, hi, conditional, y)


@pytest.mark.parametrize("dtype", DTYPES)
def test_exp_loops_align_their_frame(dtype):
    """The exp loops spill vectors, which straddle cache lines on a thread whose stack
    is offset badly (pass 1 then ran 2x slower on GNU OpenMP's worker thread): the
    functions holding either pass's loop align their frame to 64 bytes on entry, and
    LLVM does not inline them into callers that would not (see _ir_aligned_frame).
    Compiled here, uncached, so that their IR and assembly can be read."""
    rows = nb._kernel_block(_typed(np.zeros((2, 40)), dtype)[0])
    out = np.empty((1, 40))
    conditional = np.full((1, 40), 0.5)
    assert _pass_one_row(rows, 0, 0.0, out) == 40.0
    assert _pass_two_row(rows, 1, 0.0, conditional, 0) == (20.0, 40.0)
    for fn in (_pass_one_row, _pass_two_row):
        (sig,) = [s for s in fn.signatures if s[0] == numba.typeof(rows)]
        ir_text, asm = fn.inspect_llvm(sig), fn.inspect_asm(sig)
        assert "alignstack=64" in ir_text and "noinline" in ir_text
        assert "$-64, %rsp" in asm  # the realignment itself
