"""The fused softmax rows of the C core (leepfast_softmax.inc: one per SIMD level, each
with its own exp) against the float64 reference, at every level this CPU has: the exp
to a few ulp (subnormal results included), 1e-13 on whole scores, the row's maximum in
the first and last lane and in the scalar tail, every row width around the vector
widths, large magnitudes, float16, and non-finite logits reported in both passes."""

import numpy as np
import pytest

import leepfast
from leepfast import _reference
from leepfast._tensors import bfloat16_of, widen_bfloat16

_kernels = pytest.importorskip("leepfast._kernels")
from leepfast._config import SIMD_LEVELS  # noqa: E402
from leepfast.backends import cython as _backend_cython  # noqa: E402

LEVELS = SIMD_LEVELS[: _kernels.simd_level() + 1]
#: around 1, 2, 4 and 8 doubles per step, two steps per loop, and the scalar tails
WIDTHS = [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 23, 24, 25, 31, 32, 33, 1000]


def slots(n_target, z):
    return (
        np.zeros((1, n_target, z)),
        np.zeros((1, n_target, z), dtype=np.int64),
        np.zeros((1, n_target), dtype=np.int64),
    )


def _assert_matches_the_reference(x, labels, y_count, n_threads=None):
    """LEEP and the joint to 1e-13 of the float64 reference, the hard counts exactly."""
    with np.errstate(over="ignore"):
        probs = _reference.softmax(x)
    assert np.isfinite(probs).all()
    r = leepfast.score(
        x, labels, n_target=y_count, logits=True, backend="cython", n_threads=n_threads
    )
    assert r.leep == pytest.approx(_reference.leep(probs, labels, y_count), rel=1e-13)
    np.testing.assert_allclose(
        r.joint, _reference.joint(probs, labels, y_count), rtol=1e-13, atol=1e-300
    )
    np.testing.assert_array_equal(
        r.hard_counts, _reference.hard_counts(probs, labels, y_count)
    )


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_exp_is_within_a_few_ulp_down_to_the_subnormals(monkeypatch, level, dtype):
    # rows (0, -x, ...): each row its own class, so the joint is the softmax row itself,
    # unrounded by any sum over rows; x runs over the whole range of exp below 0, the
    # subnormal results (x > 708) included, in every lane
    monkeypatch.setenv("LEEPFAST_SIMD", level)
    rng = np.random.default_rng(5)
    n, z = 4000, 9
    x = np.zeros((n, z), dtype=dtype)
    x[:, 1:] = -rng.uniform(0, 750, (n, z - 1))
    x[: n // 2, 1:] = -rng.uniform(0, 3, (n // 2, z - 1))  # near the maximum
    x[::7, 1:] = -rng.uniform(700, 750, (len(x[::7]), z - 1))  # subnormal results
    perm = rng.permuted(np.tile(np.arange(z), (n, 1)), axis=1)  # the 0 in any lane
    x = np.take_along_axis(x, perm, axis=1)
    labels = np.arange(n)
    joint, hard, counts = slots(n, z)
    status = _backend_cython.accumulate(x, labels, joint, hard, counts, True, 0.0, 1)
    assert status == (0, -1)
    want = _reference.softmax(x)
    # a few ulp of the float64 softmax: exp within 2 ulp, the sum, one reciprocal
    np.testing.assert_allclose(joint[0], want, rtol=1.5e-15, atol=4 * 5e-324)
    assert (joint[0][want == 0] == 0).all()
    np.testing.assert_array_equal(hard[0].argmax(axis=1), want.argmax(axis=1))


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("z", WIDTHS)
def test_every_width_and_maximum_position_matches_the_reference(
    monkeypatch, level, dtype, z
):
    monkeypatch.setenv("LEEPFAST_SIMD", level)
    rng = np.random.default_rng(z)
    n, y_count = 600, 4
    x = rng.normal(size=(n, z)) * 8
    x[0::3, 0] = 40.0  # the maximum in the first lane
    x[1::3, -1] = 40.0  # in the last lane (the scalar tail, where Z leaves one)
    x = x.astype(dtype)
    labels = rng.integers(0, y_count, n)
    _assert_matches_the_reference(x, labels, y_count, n_threads=2)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize(
    "dtype, big", [("float16", 6e4), ("float32", 3e38), ("float64", 1e308)]
)
def test_logits_of_extreme_magnitude(monkeypatch, level, dtype, big):
    # v - max overflows to -inf in float64 for float64 logits of +-1e308: exp gives 0,
    # as NumPy's; a row of equal huge logits is uniform
    monkeypatch.setenv("LEEPFAST_SIMD", level)
    rng = np.random.default_rng(9)
    n, z, y_count = 400, 37, 3
    x = rng.normal(size=(n, z)) * 5
    x[::4, 5] = big
    x[1::4, 7] = -big
    x[2::4, :] = big
    x[3::4, 3] = big
    x[3::4, 30] = -big
    x = x.astype(dtype)
    assert np.isfinite(x).all()
    labels = rng.integers(0, y_count, n)
    _assert_matches_the_reference(x, labels, y_count)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("z", [1, 5, 16, 17, 1000])
@pytest.mark.parametrize("bad", [np.inf, np.nan, "only -inf"])
def test_non_finite_logits_reported_by_both_passes(monkeypatch, level, dtype, z, bad):
    # in the first lane, the last one, and the middle: pass 1 refuses the row, and so
    # does pass 2 when the row changed after pass 1 (status 4: non-finite); a -inf
    # logit is a probability of 0, refused only in a row with nothing above -inf
    monkeypatch.setenv("LEEPFAST_SIMD", level)
    rng = np.random.default_rng(3)
    x = (rng.normal(size=(200, z)) * 4).astype(dtype)
    labels = rng.integers(0, 3, 200)
    joint, hard, counts = slots(3, z)
    assert _backend_cython.accumulate(x, labels, joint, hard, counts, True, 0, 1) == (0, -1)
    cond = _backend_cython.finalize(joint, hard, counts)[3]
    for col in sorted({0, z // 2, z - 1}):
        changed = x.copy()
        if bad == "only -inf":
            changed[123] = -np.inf
            if z > 1:  # one -inf entry: a valid row in both passes
                masked = x.copy()
                masked[123, col] = -np.inf
                fresh = slots(3, z)
                assert _backend_cython.accumulate(masked, labels, *fresh, True, 0, 1) == (
                    0,
                    -1,
                )
                assert _backend_cython.score(masked, labels, cond, True, 0, 2)[0] == 0
        else:
            changed[123, col] = bad
        fresh = slots(3, z)
        assert _backend_cython.accumulate(changed, labels, *fresh, True, 0, 1) == (4, 123)
        assert _backend_cython.score(changed, labels, cond, True, 0, 2)[:2] == (4, 123)
    assert _backend_cython.score(x, labels, cond, True, 0, 2)[0] == 0


@pytest.mark.parametrize("level", LEVELS)
def test_exp_at_the_edges_of_its_reduced_range(monkeypatch, level):
    # x = k ln 2 + r with r at the edges of the reduced range (|r| = ln(2) / 2, where a
    # polynomial's error peaks and k rounds either way), at 0 and in between, for every
    # k the fast exp reaches (down to -707, its range) and beyond (the clamped one)
    monkeypatch.setenv("LEEPFAST_SIMD", level)
    ln2 = np.log(2.0)
    k = np.arange(0, 1077)
    r = np.array([-0.5, -0.5 + 1e-12, -0.25, -1e-9, 0.0, 1e-9, 0.25, 0.5 - 1e-12, 0.5])
    x = -(k[:, None] + r[None, :]) * ln2
    x = x[(x <= 0) & (x >= -750)].reshape(-1, 1)
    z = 8  # the 0 and seven values: one vector step of every level, then the tail
    x = np.concatenate([x, np.zeros((-len(x)) % (z - 1)).reshape(-1, 1)])
    rows = np.zeros((len(x) // (z - 1), z))
    rows[:, 1:] = x.reshape(-1, z - 1)
    labels = np.arange(len(rows))
    joint, hard, counts = slots(len(rows), z)
    assert _backend_cython.accumulate(rows, labels, joint, hard, counts, True, 0, 1) == (
        0,
        -1,
    )
    want = _reference.softmax(rows)
    np.testing.assert_allclose(joint[0], want, rtol=1.5e-15, atol=4 * 5e-324)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_fast_and_clamped_exps_give_the_same_values(monkeypatch, level, dtype):
    # a row spanning at most 707 takes the fast exp; a -inf entry appended (probability
    # 0, an exact 0 added to the sums) sends the same row to the clamped one: the other
    # probabilities must not move by a bit (one polynomial for both); rows spanning
    # just below 707 (deep values at the fast range's end) and just above it
    monkeypatch.setenv("LEEPFAST_SIMD", level)
    rng = np.random.default_rng(11)
    n, z = 300, 40
    x = rng.normal(size=(n, z)) * 6
    x[::3, 5] = x[::3].max(axis=1) - 706.5
    x[1::3, 9] = x[1::3].max(axis=1) - 707.5
    x = x.astype(dtype)
    masked = np.concatenate([x, np.full((n, 1), -np.inf, dtype=dtype)], axis=1)
    labels = np.arange(n)
    fast, clamped = slots(n, z), slots(n, z + 1)
    assert _backend_cython.accumulate(x, labels, *fast, True, 0, 1) == (0, -1)
    assert _backend_cython.accumulate(masked, labels, *clamped, True, 0, 1) == (0, -1)
    np.testing.assert_array_equal(clamped[0][0][:, :z], fast[0][0])
    assert (clamped[0][0][:, z] == 0).all()
    np.testing.assert_array_equal(clamped[1][0][:, :z], fast[1][0])
    want = _reference.softmax(x.astype(np.float64))
    np.testing.assert_allclose(fast[0][0], want, rtol=1.5e-15, atol=1e-300)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("z", WIDTHS)
def test_half_logits_read_as_the_float32_rows_they_stand_for(monkeypatch, level, z):
    # float16 and bfloat16 rows widened by the scan into the scratch row (AVX2) or
    # converted first (the other levels): the same float32 values through the same
    # exps, so the same bits as the float32 rows, in the vector steps and the tails alike
    monkeypatch.setenv("LEEPFAST_SIMD", level)
    rng = np.random.default_rng(z + 100)
    n, y_count = 300, 4
    x = rng.normal(size=(n, z)) * 4
    x[0::3, 0] = 30.0
    x[1::3, -1] = 30.0
    labels = rng.integers(0, y_count, n)
    for half, as_f32 in (
        (x.astype(np.float16), x.astype(np.float16).astype(np.float32)),
        (bfloat16_of(x), widen_bfloat16(bfloat16_of(x))),
    ):
        got, want = (
            leepfast.score(
                v,
                labels,
                n_target=y_count,
                logits=True,
                backend="cython",
                n_threads=2,
                block_size=97,
            )
            for v in (half, as_f32)
        )
        assert got.leep == want.leep
        np.testing.assert_array_equal(got.joint, want.joint)
        np.testing.assert_array_equal(got.hard_counts, want.hard_counts)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("z", [5, 16, 17, 1000])
@pytest.mark.parametrize("bad", [np.inf, np.nan, -np.inf])
def test_non_finite_bfloat16_logits_reported_by_both_passes(monkeypatch, level, z, bad):
    # as float16's test above: a NaN or +inf in the first lane, the middle or the last
    # is refused by pass 1 and by pass 2 (rows changed after pass 1); -inf passes
    monkeypatch.setenv("LEEPFAST_SIMD", level)
    rng = np.random.default_rng(4)
    x = bfloat16_of(rng.normal(size=(200, z)) * 4)
    labels = rng.integers(0, 3, 200)
    joint, hard, counts = slots(3, z)
    assert _backend_cython.accumulate(x, labels, joint, hard, counts, True, 0, 1) == (0, -1)
    cond = _backend_cython.finalize(joint, hard, counts)[3]
    for col in sorted({0, z // 2, z - 1}):
        changed = x.copy()
        changed[123, col] = bfloat16_of([bad])[0]
        fresh = slots(3, z)
        got = _backend_cython.accumulate(changed, labels, *fresh, True, 0, 1)
        scored = _backend_cython.score(changed, labels, cond, True, 0, 2)[:2]
        if bad == -np.inf and z > 1:
            assert got == (0, -1)
            assert scored[0] == 0
        else:
            assert got == (4, 123)
            assert scored == (4, 123)
