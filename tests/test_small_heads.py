"""Small heads (Z <= 16 take block functions of their own at the SIMD levels that have
them): every Z from 1 to 17 at every level this CPU runs, against the NumPy reference
and hand-computed cases; absent classes, row counts that are not a multiple of a
vector's rows, float16/32/64, logits, bad rows reported at their index, ties."""

import math

import numpy as np
import pytest

import leepfast
from leepfast import _reference

_kernels = pytest.importorskip("leepfast._kernels")
from leepfast._config import SIMD_LEVELS  # noqa: E402
from leepfast.backends import cython as _backend_cython  # noqa: E402

LEVELS = SIMD_LEVELS[: _kernels.simd_level() + 1]
TOL = {"float16": 1e-2, "float32": 1e-4, "float64": 1e-6}


def rows(rng, n, z, dtype):
    theta = rng.random((n, z)) ** 3
    theta[rng.random((n, z)) < 0.3] = 0.0
    theta[np.arange(n), rng.integers(0, z, n)] += 0.5
    return (theta / theta.sum(axis=1, keepdims=True)).astype(dtype)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("z", range(1, 18))
def test_every_small_z_agrees_with_the_reference(
    monkeypatch, level, dtype, z, matches_reference
):
    monkeypatch.setenv("LEEPFAST_SIMD", level)
    rng = np.random.default_rng(100 + z)
    n, y_count = 1003, 7  # 1003 rows: a tail at any number of rows per step
    labels = rng.integers(0, 5, n)  # classes 5 and 6 absent
    theta = rows(rng, n, z, dtype)
    if z > 1:
        theta[::7, 0] = 0.0  # a source class with little mass
        theta[::7, 1] += 0.25
    wide = theta.astype(np.float64)
    theta = (wide / wide.sum(axis=1, keepdims=True)).astype(dtype)
    probs = theta.astype(np.float64)
    r = leepfast.score(theta, labels, n_target=y_count, backend="cython", n_threads=2)
    matches_reference(r, probs, labels, y_count)
    np.testing.assert_allclose(
        r.joint, _reference.joint(probs, labels, y_count), rtol=1e-13, atol=1e-300
    )
    assert not r.joint[5:].any()


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("z", [1, 2, 7, 8, 9, 10, 15, 16, 17])
def test_small_z_logits_agree_with_the_reference(
    monkeypatch, level, dtype, z, matches_reference
):
    monkeypatch.setenv("LEEPFAST_SIMD", level)
    rng = np.random.default_rng(z)
    n, y_count = 517, 4
    x = (rng.normal(size=(n, z)) * 4).astype(dtype)
    labels = rng.integers(0, y_count, n)
    probs = _reference.softmax(x)
    r = leepfast.score(
        x, labels, n_target=y_count, logits=True, backend="cython", n_threads=2
    )
    matches_reference(r, probs, labels, y_count)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_hand_computed_two_by_two(monkeypatch, level, dtype):
    # theta rows (0.75, 0.25) with y=0 and (0.25, 0.75) with y=1, n=2:
    # J = [[.375, .125], [.125, .375]], M = (.5, .5), C = [[.75, .25], [.25, .75]],
    # each row: .75 * .75 + .25 * .25 = 0.625; LEEP = log(0.625); hard = identity,
    # NCE = 0 (each source class has one target class)
    monkeypatch.setenv("LEEPFAST_SIMD", level)
    theta = np.array([[0.75, 0.25], [0.25, 0.75]] * 50, dtype=dtype)
    labels = np.array([0, 1] * 50)
    r = leepfast.score(theta, labels, backend="cython", n_threads=2)
    assert r.leep == pytest.approx(math.log(0.625), rel=1e-14)
    assert r.nce == 0.0
    np.testing.assert_array_equal(r.hard_counts, [[50, 0], [0, 50]])
    np.testing.assert_allclose(r.joint, [[0.375, 0.125], [0.125, 0.375]], rtol=1e-15)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("z", [3, 10, 16])
def test_ties_take_the_lowest_index(monkeypatch, level, z):
    monkeypatch.setenv("LEEPFAST_SIMD", level)
    theta = np.full((40, z), 1.0 / z)  # every entry ties: argmax 0
    theta[20:, :] = 0.0
    theta[20:, z - 1] = 0.5  # ties between the last two columns: argmax z - 2
    theta[20:, max(z - 2, 0)] += 0.5
    labels = np.arange(40) % 2
    for dtype in ("float16", "float32", "float64"):
        r = leepfast.score(theta.astype(dtype), labels, backend="cython", n_threads=2)
        expected = np.zeros((2, z), dtype=np.int64)  # by hand: 10 rows per label each
        expected[:, 0] += 10
        expected[:, max(z - 2, 0)] += 10
        np.testing.assert_array_equal(r.hard_counts, expected)
        np.testing.assert_array_equal(expected, _reference.hard_counts(theta, labels, 2))


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("z", [1, 4, 10, 16])
@pytest.mark.parametrize(
    "bad, status", [(np.nan, 4), (np.inf, 4), (-0.25, 5), (0.5, 6), ("label", 3)]
)
@pytest.mark.parametrize("at", [0, 123, 299])
def test_bad_rows_are_reported_at_their_index(
    monkeypatch, level, dtype, z, bad, status, at
):
    monkeypatch.setenv("LEEPFAST_SIMD", level)
    rng = np.random.default_rng(3)
    theta = rows(rng, 300, z, dtype)
    labels = rng.integers(0, 3, 300)
    slots = (
        np.zeros((1, 3, z)),
        np.zeros((1, 3, z), dtype=np.int64),
        np.zeros((1, 3), dtype=np.int64),
    )
    tol = TOL[dtype]
    assert _backend_cython.accumulate(theta, labels, *slots, False, tol, 1) == (0, -1)
    cond = _backend_cython.finalize(*slots)[3]
    changed, bad_labels = theta.copy(), labels.copy()
    if bad == "label":
        bad_labels[at] = 3
    elif bad == 0.5:
        changed[at, z // 2] = changed[at, z // 2] + bad
    else:
        changed[at, z // 2] = bad
        if bad == -0.25:
            changed[at, (z // 2 + 1) % z] += 0.25 if z > 1 else 0.0
    fresh = (
        np.zeros((1, 3, z)),
        np.zeros((1, 3, z), dtype=np.int64),
        np.zeros((1, 3), dtype=np.int64),
    )
    got1 = _backend_cython.accumulate(changed, bad_labels, *fresh, False, tol, 1)
    got2 = _backend_cython.score(changed, bad_labels, cond, False, tol, 2)
    assert got1 == (status, at)
    assert got2[:2] == (status, at)


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_row_sums_at_the_tolerance_edge(monkeypatch, level, dtype):
    # a row whose float64 sum is just inside the tolerance passes, just outside fails,
    # in both passes (the same sum as the longer rows take)
    monkeypatch.setenv("LEEPFAST_SIMD", level)
    tol = TOL[dtype]
    z = 10
    eps = np.finfo(dtype).eps
    theta = np.full((64, z), 0.1).astype(dtype)
    inside = theta.astype(np.float64).sum(1)
    labels = np.arange(64) % 2
    ok = (np.abs(inside - 1.0) <= tol).all()
    assert ok
    big = theta.copy()
    big[17, 3] = (np.float64(big[17, 3]) + tol + 8 * eps).astype(dtype)  # outside
    total = big[17].astype(np.float64).sum()
    assert abs(total - 1.0) > tol
    slots = (
        np.zeros((1, 2, z)),
        np.zeros((1, 2, z), dtype=np.int64),
        np.zeros((1, 2), dtype=np.int64),
    )
    assert _backend_cython.accumulate(big, labels, *slots, False, tol, 1) == (6, 17)
    assert leepfast.leep(theta, labels, backend="cython") == pytest.approx(
        _reference.leep(theta.astype(np.float64), labels, 2), rel=1e-13
    )


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("z", [2, 10, 16])
def test_pass_two_sums_the_logs_of_any_terms(monkeypatch, level, dtype, z):
    # a conditional made by hand: terms from 1e-300 (below the log-sum's 1e-280, taken
    # by a direct log) to 1e300 (the product renormalised), against math.fsum of logs
    monkeypatch.setenv("LEEPFAST_SIMD", level)
    rng = np.random.default_rng(z)
    n, y_count = 203, 3
    theta = rows(rng, n, z, dtype)
    labels = rng.integers(0, y_count, n)
    cond = rng.random((y_count, z)) + 0.01
    cond[1] *= 1e-300
    cond[2] *= 1e300
    wide = theta.astype(np.float64)
    terms = (wide * cond[labels]).sum(axis=1)
    expected = math.fsum(np.log(terms))
    got = _backend_cython.score(theta, labels, cond, False, TOL[dtype], 2)
    assert got[:2] == (0, -1)
    assert got[2] == pytest.approx(expected, rel=1e-13)


#: pass-2 terms that walk the running product of log terms to its edges: runs of terms
#: above 1 (the product's mantissa grows up to 2^64 before it is renormalised), then a
#: term of 1e300 (the product past the largest double), 1e-300 (below the product's
#: range), and the other way round
EDGE_TERMS = [
    1e10,
    1e10,
    1e10,
    1e300,
    3.0,
    1e15,
    1e15,
    1e300,
    1e300,
    1e-300,
    0.5,
    1e-10,
    1e-10,
    1e-200,
    1e-250,
    1e250,
    2.0**63,
    1e300,
    1e-300,
    1.0,
]


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
@pytest.mark.parametrize("z", [1, 2, 3, 4, 5, 7, 8, 9, 10, 12, 13, 15, 16, 17, 33])
def test_pass_two_terms_from_1e_minus_300_to_1e300(monkeypatch, level, dtype, z):
    # one-hot rows and a conditional made by hand, constant along each row: the term
    # of a row of label y is exactly EDGE_TERMS[y]. The scalar level's running product
    # overflowed on 1e300 after a run of terms above 1 (709.78 for 713.80 here).
    from leepfast._tensors import bfloat16_of

    monkeypatch.setenv("LEEPFAST_SIMD", level)
    terms = np.array(EDGE_TERMS)
    y_count = len(terms)
    n = 4 * y_count + 3  # groups of four rows, and a tail
    labels = np.arange(n) % y_count
    hot = np.random.default_rng(z).integers(0, z, n)
    wide = np.zeros((n, z))
    wide[np.arange(n), hot] = 1.0
    theta = bfloat16_of(wide) if dtype == "bfloat16" else wide.astype(dtype)
    cond = np.repeat(terms[:, None], z, axis=1)
    expected = math.fsum(np.log(terms[labels]))
    got = _backend_cython.score(theta, labels, cond, False, 1e-2, 2)
    assert got[:2] == (0, -1)
    assert got[2] == pytest.approx(expected, rel=1e-14)
    # the same terms in every order of a group of four (each row's term first)
    for shift in range(1, 4):
        order = np.roll(np.arange(n), shift)
        got = _backend_cython.score(theta[order], labels[order], cond, False, 1e-2, 2)
        assert got[2] == pytest.approx(expected, rel=1e-14)
