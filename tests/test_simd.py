"""The compiled kernels' SIMD loops (16 floats / 8 doubles per step under AVX2, 8 / 4
under SSE2) and their tails, against the reference, for source counts around every
vector width; plus argmax ties placed in every lane."""

import numpy as np
import pytest

import leepfast
from leepfast import _reference

WIDTHS = [1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 1000]


def rows(rng, n, z, dtype, zeros=0.3):
    theta = rng.random((n, z)) ** 3
    theta[rng.random((n, z)) < zeros] = 0.0
    theta[np.arange(n), rng.integers(0, z, n)] += 0.5  # no all-zero row
    theta = (theta / theta.sum(axis=1, keepdims=True)).astype(dtype)
    return theta


@pytest.mark.parametrize("z", WIDTHS)
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("logits", [False, True])
def test_widths_match_reference(backend, z, dtype, logits, matches_reference):
    rng = np.random.default_rng(z)
    n, y_count = 300, 5
    theta = rows(rng, n, z, dtype)
    labels = rng.integers(0, y_count, n)
    x = (rng.normal(size=(n, z)) * 3).astype(dtype) if logits else theta
    probs = _reference.softmax(x) if logits else x.astype(np.float64)
    r = leepfast.score(
        x, labels, n_target=y_count, logits=logits, backend=backend, block_size=97
    )
    matches_reference(r, probs, labels, y_count)
    np.testing.assert_allclose(
        r.joint, _reference.joint(probs, labels, y_count), rtol=1e-12, atol=1e-17
    )


@pytest.mark.parametrize("z", [40, 100])
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_argmax_ties_take_the_lowest_index_in_every_lane(backend, dtype, z):
    # Z=100: the AVX-512 row tracks the maximum per lane over three steps of 32 and a
    # tail, and the two maxima may sit in any two of them
    theta = np.zeros((z * z, z))
    labels = np.zeros(z * z, dtype=np.int64)
    i = 0
    for first in range(z):  # two equal maxima at (first, second) for every pair
        for second in range(first + 1, z):
            theta[i, [first, second]] = 0.5
            labels[i] = first % 3
            i += 1
    theta, labels = theta[:i].astype(dtype), labels[:i]
    r = leepfast.score(theta, labels, n_target=3, backend=backend)
    np.testing.assert_array_equal(
        r.hard_counts, _reference.hard_counts(theta.astype(np.float64), labels, 3)
    )
    assert r.nce == pytest.approx(_reference.nce(theta, labels, 3), rel=1e-12)


@pytest.mark.parametrize("z", [16, 33, 1000])
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("where", [0, 7, 8, 15, 16, -1])
def test_bad_value_found_in_every_position(backend, z, dtype, where):
    rng = np.random.default_rng(0)
    theta = rows(rng, 50, z, dtype)
    labels = rng.integers(0, 3, 50)
    col = where % z
    for bad, match in (
        (np.nan, "NaN or infinity"),
        (np.inf, "NaN or infinity"),
        (-0.25, "negative value"),
    ):
        x = theta.copy()
        x[31, col] = bad
        with pytest.raises(ValueError, match=f"row 31 contains .*{match}"):
            leepfast.leep(x, labels, backend=backend)


def test_numba_converts_every_half_exactly():
    # Numba has no float16: its backend converts the bit patterns itself (the
    # compiled backend's conversions are checked through the values above)
    nb = pytest.importorskip("leepfast.backends.numba")  # required in CI: test_backends
    halves = np.arange(1 << 16, dtype=np.uint16).view(np.float16).reshape(256, 256)
    got = nb._prepare(halves, 2)
    want = halves.astype(np.float32)
    nan = np.isnan(want)
    np.testing.assert_array_equal(got.view(np.uint32)[~nan], want.view(np.uint32)[~nan])
    assert np.isnan(got[nan]).all()


def test_float16_argmax_when_the_maximum_is_subnormal(backend):
    # 20000 columns of about 1/20000: every value, the maximum too, is a subnormal half
    # (below 2^-14), where the compiled kernels keep the float compare
    z, n = 20000, 12
    base = np.float16(1 / z)
    assert 0 < base < np.float16(2.0**-14)
    theta = np.full((n, z), base, dtype=np.float16)
    bigger = np.nextafter(np.nextafter(base, np.float16(1)), np.float16(1))
    rng = np.random.default_rng(4)
    for i in range(n):
        first, second = sorted(rng.choice(z, 2, replace=False))
        theta[i, [first, second]] = bigger  # a tie: the lowest index wins
    labels = np.arange(n) % 3
    r = leepfast.score(theta, labels, n_target=3, backend=backend)
    np.testing.assert_array_equal(
        r.hard_counts, _reference.hard_counts(theta.astype(np.float64), labels, 3)
    )
    assert r.leep == pytest.approx(
        _reference.leep(theta.astype(np.float64), labels, 3), rel=1e-12
    )


# float16 blocks with at least 64 rows per class, at the AVX2 and AVX-512 levels, take a
# fixed-point pass 1: exact int32 partial sums (a half is a multiple of 2^-24), moved
# into the float64 joint every 64 rows of a class, row sums in float and re-done in
# double near the tolerance. One thread, one block: 2000 rows of 3 classes take that
# pass. Each test runs under both caps (a CPU without AVX-512 runs its best level).
FIXED_LEVELS = pytest.mark.parametrize("level", ["avx512", "avx2"])


def fixed_point_data(rng, z, n=2000):
    theta = rows(rng, n, z, "float16")
    theta[theta == 0] = np.float16(-0.0)  # -0.0 is not negative
    return theta, rng.integers(0, 3, n)


@FIXED_LEVELS
@pytest.mark.parametrize("z", [1, 5, 15, 16, 17, 31, 32, 33, 100, 1000])
def test_float16_fixed_point_pass_matches_reference(monkeypatch, backend, z, level):
    monkeypatch.setenv("LEEPFAST_SIMD", level)
    rng = np.random.default_rng(z)
    theta, labels = fixed_point_data(rng, z)
    probs = theta.astype(np.float64)
    for kwargs in ({"n_threads": 1}, {"n_threads": 2, "block_size": 1500}):
        r = leepfast.score(theta, labels, n_target=3, backend=backend, **kwargs)
        np.testing.assert_allclose(
            r.joint, _reference.joint(probs, labels, 3), rtol=1e-12, atol=0
        )
        np.testing.assert_array_equal(
            r.hard_counts, _reference.hard_counts(probs, labels, 3)
        )
        assert r.leep == pytest.approx(_reference.leep(probs, labels, 3), rel=1e-12)


def edge_rows(rng, z):
    """Rows summing to within 1e-4 of 1 + 1e-2, and rows 1 + a + k 2^-24 (the smallest
    subnormal k times) stepping over 1.01 by 2^-24: a float sum loses those."""
    edge = rng.random((40, z))
    edge = list((edge / edge.sum(axis=1, keepdims=True) * 1.01).astype(np.float16))
    a = np.float16(0.0099945068359375)  # the half below 0.01: 1 + a + 92.2 2^-24 = 1.01
    for k in range(86, 100):
        row = np.zeros(z, dtype=np.float16)
        row[0], row[1], row[2 : 2 + k] = 1.0, a, np.float16(2.0**-24)
        edge.append(row)
    return edge


@FIXED_LEVELS
def test_float16_fixed_point_row_sums_at_the_tolerance(monkeypatch, backend, level):
    # each row must pass or fail exactly as its float64 sum says
    monkeypatch.setenv("LEEPFAST_SIMD", level)
    rng = np.random.default_rng(7)
    theta, labels = fixed_point_data(rng, 120)
    edge = edge_rows(rng, 120)
    sums = [row.astype(np.float64).sum() for row in edge]
    assert max(sums) > 1.01 >= min(sums)
    for row, total in zip(edge, sums, strict=True):
        x = theta.copy()
        x[1500] = row
        if abs(total - 1.0) <= 1e-2:
            assert leepfast.leep(
                x, labels, n_target=3, backend=backend, n_threads=1
            ) == pytest.approx(_reference.leep(x.astype(np.float64), labels, 3), rel=1e-12)
        else:
            with pytest.raises(ValueError, match="row 1500 .*sum to 1"):
                leepfast.leep(x, labels, n_target=3, backend=backend, n_threads=1)


@pytest.mark.parametrize(
    "bad, match",
    [(65504.0, "sum to 1"), (-0.25, "negative value"), (np.nan, "NaN or infinity")],
)
@pytest.mark.parametrize("column", [7, 38])  # in a vector step, in the row's tail
@FIXED_LEVELS
def test_float16_fixed_point_bad_rows(monkeypatch, backend, bad, match, level, column):
    monkeypatch.setenv("LEEPFAST_SIMD", level)
    rng = np.random.default_rng(8)
    theta, labels = fixed_point_data(rng, 40)
    theta[1500, column] = bad
    with pytest.raises(ValueError, match=f"row 1500 .*{match}"):
        leepfast.leep(theta, labels, n_target=3, backend=backend, n_threads=1)


@FIXED_LEVELS
def test_float16_fixed_point_argmax_ties_take_the_lowest_index(monkeypatch, level):
    # the argmax of a row kept per lane and step in the vector part, then the tail's:
    # a tie is the lowest index wherever the copies sit (NCE counts it)
    monkeypatch.setenv("LEEPFAST_SIMD", level)
    z = 37  # AVX2: two steps of 16 and a tail of 5; AVX-512: one step and a tail
    theta = np.full((600, z), np.float16(0.5 / (z - 2)))
    where = [(3, 20), (20, 35), (0, 36), (33, 34), (17, 16), (36, 1)]
    for i in range(600):
        a, b = where[i % len(where)]
        theta[i, a] = theta[i, b] = np.float16(0.25)
    labels = np.arange(600) % 3
    r = leepfast.score(theta, labels, n_target=3, backend="cython", n_threads=1)
    probs = theta.astype(np.float64)
    np.testing.assert_array_equal(r.hard_counts, _reference.hard_counts(probs, labels, 3))
    assert set(np.flatnonzero(r.hard_counts.sum(axis=0))) == {min(w) for w in where}
