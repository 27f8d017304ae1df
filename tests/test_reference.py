"""LEEP and NCE against exact rational arithmetic and against the paper's properties.

Expected values are derived here with ``fractions.Fraction`` from the definitions of
DESIGN.md section 1 (the float inputs are converted to fractions exactly), so they do
not depend on any implementation under test; only the final log is taken in floats.
"""

import math
from fractions import Fraction as F

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import leepfast
from leepfast import _reference

# a RuntimeWarning (overflow, invalid value) in the code under test is a failure
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")

EXACT_RTOL = 1e-15


def exact(theta, labels, n_target):
    """J, M, C, hard counts, LEEP and NCE of (theta, labels) in exact arithmetic.

    ``theta`` may hold floats (converted exactly) or Fractions. LEEP and NCE are the only
    floats: sums of logs of exact rationals, added with math.fsum.
    """
    theta = [[F(v) for v in row] for row in theta]
    labels = [int(v) for v in labels]
    n, n_source = len(theta), len(theta[0])
    J = [[F(0)] * n_source for _ in range(n_target)]
    for row, y in zip(theta, labels, strict=True):
        for z in range(n_source):
            J[y][z] += row[z] / n
    M = [sum(J[y][z] for y in range(n_target)) for z in range(n_source)]
    C = [
        [J[y][z] / M[z] if M[z] else F(0) for z in range(n_source)] for y in range(n_target)
    ]
    inner = [
        sum(C[y][z] * row[z] for z in range(n_source))
        for row, y in zip(theta, labels, strict=True)
    ]
    leep = math.fsum(math.log(p) for p in inner) / n
    hard = [[0] * n_source for _ in range(n_target)]
    for row, y in zip(theta, labels, strict=True):
        hard[y][row.index(max(row))] += 1  # ties: lowest index
    Pz = [F(sum(hard[y][z] for y in range(n_target)), n) for z in range(n_source)]
    nce = math.fsum(
        F(hard[y][z], n) * math.log(F(hard[y][z], n) / Pz[z])
        for y in range(n_target)
        for z in range(n_source)
        if hard[y][z]
    )
    return {
        "joint": np.array(J, dtype=float),
        "marginal": np.array(M, dtype=float),
        "conditional": np.array(C, dtype=float),
        "hard_counts": np.array(hard, dtype=np.int64),
        "class_counts": np.bincount(labels, minlength=n_target).astype(np.int64),
        "leep": leep,
        "nce": nce,
    }


def assert_matches_exact(result, expected):
    for name in ("joint", "marginal", "conditional"):
        assert_allclose(
            getattr(result, name), expected[name], rtol=EXACT_RTOL, atol=0, err_msg=name
        )
    assert_array_equal(result.hard_counts, expected["hard_counts"])
    assert_array_equal(result.class_counts, expected["class_counts"])
    assert result.leep == pytest.approx(expected["leep"], rel=EXACT_RTOL, abs=0)
    assert result.nce == pytest.approx(expected["nce"], rel=EXACT_RTOL, abs=1e-300)


# A case worked out on paper. Rows 0 and 3 have label 0, rows 1 and 2 label 1.
HAND_THETA = [
    [F(1, 2), F(1, 4), F(1, 4)],
    [F(1, 4), F(3, 4), F(0)],
    [F(0), F(1, 2), F(1, 2)],  # a tie: argmax is the lowest index, 1
    [F(0), F(1), F(0)],
]
HAND_LABELS = [0, 1, 1, 0]
# J = (1/4) * per-class row sums
HAND_J = [[F(1, 8), F(5, 16), F(1, 16)], [F(1, 16), F(5, 16), F(1, 8)]]
HAND_M = [F(3, 16), F(10, 16), F(3, 16)]
HAND_C = [[F(2, 3), F(1, 2), F(1, 3)], [F(1, 3), F(1, 2), F(2, 3)]]
# sum_z C[y_i, z] theta[i, z] per row: 1/3 + 1/8 + 1/12, 1/12 + 3/8, 1/4 + 1/3, 1/2
HAND_INNER = [F(13, 24), F(11, 24), F(7, 12), F(1, 2)]
# hard pairs (y, argmax): (0,0), (1,1), (1,1), (0,1); P(z=0) = 1/4, P(z=1) = 3/4
HAND_NCE = F(1, 4) * math.log(1) + F(1, 2) * math.log(F(2, 3)) + F(1, 4) * math.log(F(1, 3))


def test_hand_case_by_hand_agrees_with_exact_helper():
    # the helper used by the other tests reproduces the values worked out on paper
    e = exact(HAND_THETA, HAND_LABELS, 2)
    assert_array_equal(e["joint"], np.array(HAND_J, dtype=float))
    assert_array_equal(e["marginal"], np.array(HAND_M, dtype=float))
    assert_array_equal(e["conditional"], np.array(HAND_C, dtype=float))
    assert e["leep"] == pytest.approx(
        math.fsum(math.log(p) for p in HAND_INNER) / 4, rel=1e-16
    )
    assert e["nce"] == pytest.approx(float(HAND_NCE), rel=1e-15)
    assert_array_equal(e["hard_counts"], [[1, 1, 0], [0, 2, 0]])


def test_hand_case(backend):
    theta = np.array(HAND_THETA, dtype=np.float64)  # dyadic: exact in binary
    result = leepfast.score(theta, np.array(HAND_LABELS), backend=backend)
    assert_matches_exact(result, exact(HAND_THETA, HAND_LABELS, 2))
    assert result.leep == pytest.approx(
        (math.log(13 / 24) + math.log(11 / 24) + math.log(7 / 12) + math.log(1 / 2)) / 4,
        rel=EXACT_RTOL,
    )
    assert (result.n_samples, result.n_source, result.n_target) == (4, 3, 2)
    assert result.backend == backend
    assert leepfast.leep(theta, HAND_LABELS, backend=backend) == result.leep
    assert leepfast.nce(theta, HAND_LABELS, backend=backend) == result.nce


def test_hand_case_float32_and_float16(backend):
    # the dyadic values are exact in every dtype: every dtype gives the exact answer
    expected = exact(HAND_THETA, HAND_LABELS, 2)
    for dtype in (np.float32, np.float16):
        theta = np.array(HAND_THETA, dtype=dtype)
        assert_matches_exact(leepfast.score(theta, HAND_LABELS, backend=backend), expected)


def test_reference_functions_match_exact():
    rng = np.random.default_rng(7)
    theta = rng.dirichlet(np.ones(4), size=9)
    y = rng.integers(0, 3, 9)
    e = exact(theta, y, 3)
    J = _reference.joint(theta, y, 3)
    assert_allclose(J, e["joint"], rtol=EXACT_RTOL)
    assert_allclose(_reference.marginal(J), e["marginal"], rtol=EXACT_RTOL)
    assert_allclose(_reference.conditional(J), e["conditional"], rtol=EXACT_RTOL)
    assert_array_equal(_reference.hard_counts(theta, y, 3), e["hard_counts"])
    assert _reference.leep(theta, y) == pytest.approx(e["leep"], rel=EXACT_RTOL)
    assert _reference.nce(theta, y) == pytest.approx(e["nce"], rel=EXACT_RTOL)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_small_cases_match_exact(backend, seed):
    rng = np.random.default_rng(seed)
    n, n_source, n_target = 11, 5, 3
    theta = rng.dirichlet(np.full(n_source, 0.7), size=n)
    y = rng.integers(0, n_target, n)
    y[:n_target] = np.arange(n_target)
    result = leepfast.score(theta, y, backend=backend, block_size=4)
    e = exact(theta, y, n_target)
    # float sums of n terms vs the exact sums: a few ulps
    for name in ("joint", "marginal", "conditional"):
        assert_allclose(getattr(result, name), e[name], rtol=1e-14, err_msg=name)
    assert_array_equal(result.hard_counts, e["hard_counts"])
    assert result.leep == pytest.approx(e["leep"], rel=1e-14)
    assert result.nce == pytest.approx(e["nce"], rel=1e-14)


def test_zero_mass_source_class_and_absent_target_classes(backend):
    # column 1 is zero in every row (M[1] = 0, so C[:, 1] = 0); labels use 0 and 2 only,
    # with n_target = 5: class 1 is missing in the middle, 3 and 4 at the end.
    theta_f = [
        [F(1, 2), F(0), F(1, 4), F(1, 4)],
        [F(1, 8), F(0), F(3, 4), F(1, 8)],
        [F(1, 4), F(0), F(1, 4), F(1, 2)],
        [F(1), F(0), F(0), F(0)],
        [F(0), F(0), F(1, 2), F(1, 2)],
    ]
    y = [0, 2, 2, 0, 2]
    e = exact(theta_f, y, 5)
    assert e["marginal"][1] == 0 and not e["conditional"][:, 1].any()
    assert math.isfinite(e["leep"]) and e["leep"] < 0
    theta = np.array(theta_f, dtype=np.float64)
    result = leepfast.score(theta, np.array(y, dtype=np.int8), n_target=5, backend=backend)
    assert_matches_exact(result, e)
    assert result.n_target == 5
    assert_array_equal(result.class_counts, [2, 0, 3, 0, 0])
    assert not result.joint[[1, 3, 4]].any()
    assert np.isfinite(result.conditional).all()
    # the absent classes change nothing: the same value without them
    assert result.leep == pytest.approx(
        leepfast.leep(theta, np.array(y) // 2, backend=backend), rel=1e-15
    )


def test_single_sample_and_single_source_class(backend):
    # n = 1: J = theta, C[y] = 1 where theta > 0, LEEP = log(sum theta) = 0 exactly
    theta = np.array([[F(1, 4), F(0), F(3, 4)]], dtype=float)
    assert_matches_exact(leepfast.score(theta, [1], backend=backend), exact(theta, [1], 2))
    # Z = 1: every row is [1]; C[y, 0] = P(y); LEEP = NCE = sum_y P(y) log P(y)
    y = [0, 1, 1, 2, 2, 2]
    result = leepfast.score(np.ones((6, 1)), y, backend=backend)
    expected = sum(k / 6 * math.log(k / 6) for k in (1, 2, 3))
    assert result.leep == pytest.approx(expected, rel=EXACT_RTOL)
    assert result.nce == pytest.approx(expected, rel=EXACT_RTOL)


# ---------------------------------------------------------------------------------------
# The paper's properties


def _random_case(rng, n=300, n_source=9, n_target=4):
    theta = rng.dirichlet(np.full(n_source, 0.5), size=n)
    y = rng.integers(0, n_target, n)
    return theta, y


@pytest.mark.parametrize("seed", [3, 4])
def test_leep_and_nce_are_at_most_zero(backend, seed):
    theta, y = _random_case(np.random.default_rng(seed))
    result = leepfast.score(theta, y, backend=backend)
    assert result.leep < 0
    assert result.nce < 0


def test_invariance_under_permutations(backend):
    rng = np.random.default_rng(5)
    theta, y = _random_case(rng)
    base = leepfast.score(theta, y, backend=backend)

    rows = rng.permutation(len(y))
    permuted = leepfast.score(theta[rows], y[rows], backend=backend)
    assert permuted.leep == pytest.approx(base.leep, rel=1e-12)
    assert permuted.nce == pytest.approx(base.nce, rel=1e-12)
    assert_allclose(permuted.joint, base.joint, rtol=1e-12)

    cols = rng.permutation(theta.shape[1])
    permuted = leepfast.score(theta[:, cols], y, backend=backend)
    assert permuted.leep == pytest.approx(base.leep, rel=1e-12)
    assert permuted.nce == pytest.approx(base.nce, rel=1e-12)
    assert_allclose(permuted.joint, base.joint[:, cols], rtol=1e-12)

    relabel = rng.permutation(base.n_target)  # class c becomes relabel[c]
    permuted = leepfast.score(theta, relabel[y], backend=backend)
    assert permuted.leep == pytest.approx(base.leep, rel=1e-12)
    assert permuted.nce == pytest.approx(base.nce, rel=1e-12)
    assert_allclose(permuted.joint[relabel], base.joint, rtol=1e-12)


@pytest.mark.parametrize("concentration", [0.1, 1.0, 10.0])
def test_theorem_1_leep_bounds_nce(backend, concentration):
    # Nguyen et al. 2020, Theorem 1: LEEP >= NCE + (1/n) sum_i log max_z theta[i, z]
    rng = np.random.default_rng(int(concentration * 10))
    theta = rng.dirichlet(np.full(6, concentration), size=400)
    y = (theta.argmax(axis=1) + (rng.random(400) < 0.3)) % 3  # labels tied to z
    result = leepfast.score(theta, y, backend=backend)
    bound = result.nce + np.mean(np.log(theta.max(axis=1)))
    assert result.leep >= bound - 1e-12
    assert result.leep > bound  # strict for non-one-hot input


def test_one_hot_theta_gives_leep_equal_to_nce(backend):
    rng = np.random.default_rng(6)
    n, n_source = 500, 7
    z = rng.integers(0, n_source - 1, n)  # the last source class is never predicted
    theta = np.eye(n_source)[z]
    y = (z + rng.integers(0, 2, n)) % 4
    result = leepfast.score(theta, y, backend=backend)
    assert result.leep == pytest.approx(result.nce, rel=1e-13)
    assert result.leep == pytest.approx(exact(theta, y, 4)["nce"], rel=1e-13)
    assert result.conditional[:, -1].tolist() == [0.0] * 4
