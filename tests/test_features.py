"""H-score, regularized H-score and LogME: hand-derived cases, independent
straightforward implementations written here, scikit-learn's Ledoit-Wolf, streaming."""

import math
import os

import numpy as np
import pytest
from scipy.stats import multivariate_normal
from sklearn.covariance import ledoit_wolf

import leepfast
from leepfast import _features, _reference
from leepfast._errors import (
    FileFormatError,
    InputError,
    LabelError,
    NonFiniteError,
    ShapeError,
)
from leepfast._features import FeatureAccumulator, feature_statistics

# ---------------------------------------------------------------------------------------
# Independent implementations (the public definitions, written out directly)


def h_score_direct(f, y):
    """np.cov of f and of f with each row replaced by its class mean; pinv rcond 1e-15."""
    f = np.asarray(f, dtype=np.float64)
    g = np.empty_like(f)
    for c in np.unique(y):
        g[y == c] = f[y == c].mean(axis=0)
    covf = np.cov(f, rowvar=False).reshape(f.shape[1], f.shape[1])
    covg = np.cov(g, rowvar=False).reshape(f.shape[1], f.shape[1])
    return float(np.trace(np.linalg.pinv(covf, rcond=1e-15) @ covg))


def regularized_h_score_direct(f, y):
    """Ibrahim et al.: Ledoit-Wolf (scikit-learn) covariance, (1 - a) cov(E[f|y])."""
    f = np.asarray(f, dtype=np.float64)
    cov, a = ledoit_wolf(f)
    g = np.empty_like(f)
    for c in np.unique(y):
        g[y == c] = f[y == c].mean(axis=0)
    covg = np.cov(g, rowvar=False).reshape(f.shape[1], f.shape[1])
    return float(np.trace(np.linalg.pinv(cov, rcond=1e-15) @ ((1 - a) * covg)))


#: LogME written straightforwardly (the reference module's formula)
logme_direct = _reference.logme


def make_data(n, D, Y, seed, offset=0.0, signal=1.0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % Y
    rng.shuffle(y)
    centres = rng.normal(size=(Y, D)) * signal
    f = centres[y] + rng.normal(size=(n, D)) + offset
    return f, y


# ---------------------------------------------------------------------------------------
# H-score


def test_h_score_hand_derived_one_feature():
    # f = 0, 2 | 4, 6: mean 3, class means 1 and 5: between = 16, total = 20 -> 4/5
    f = np.array([[0.0], [2.0], [4.0], [6.0]])
    y = np.array([0, 0, 1, 1])
    assert leepfast.h_score(f, y) == pytest.approx(0.8, rel=1e-14)
    # shrinkage is 0 for one feature; cov_a(f) is the ddof=0 covariance (Ledoit-Wolf's
    # empirical one) while cov(E[f|y]) keeps ddof=1: (16/3) / (20/4) = 16/15
    assert leepfast.regularized_h_score(f, y) == pytest.approx(16 / 15, rel=1e-14)


def test_h_score_of_one_hot_features_is_rank_of_centred_one_hot():
    # f = onehot(y): cov(E[f|y]) = cov(f), so H = rank(cov f) = Y - 1
    y = np.array([0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 0])
    f = np.eye(4)[y]
    assert leepfast.h_score(f, y) == pytest.approx(3.0, rel=1e-12)


def test_h_score_invariant_under_invertible_affine_maps():
    f, y = make_data(200, 6, 4, seed=1)
    rng = np.random.default_rng(2)
    A = rng.normal(size=(6, 6)) + 3 * np.eye(6)
    b = rng.normal(size=6) * 100
    assert leepfast.h_score(f @ A + b, y) == pytest.approx(leepfast.h_score(f, y), rel=1e-9)


@pytest.mark.parametrize(
    ("n", "D", "Y"), [(300, 10, 4), (97, 3, 7), (50, 1, 2), (40, 20, 5)]
)
def test_h_score_matches_direct(n, D, Y):
    f, y = make_data(n, D, Y, seed=n + D)
    assert leepfast.h_score(f, y) == pytest.approx(h_score_direct(f, y), rel=1e-9)


def test_h_score_with_absent_class_equals_score_without_it():
    f, y = make_data(120, 5, 3, seed=3)
    y2 = np.where(y == 2, 3, y)  # class 2 absent, labels 0, 1, 3
    assert leepfast.h_score(f, y2) == pytest.approx(h_score_direct(f, y2), rel=1e-9)
    assert leepfast.h_score(f, y2, n_target=6) == pytest.approx(
        leepfast.h_score(f, y), rel=1e-12
    )


@pytest.mark.parametrize(("n", "D"), [(30, 29), (30, 50), (12, 200)])
def test_h_score_saturates_when_features_span_the_samples(n, D):
    # D >= n - 1: the centred features explain any labelling, H = (classes - 1) for all
    # models, while the regularized score still depends on the features
    f, y = make_data(n, D, 3, seed=D, signal=0.0)
    assert leepfast.h_score(f, y) == pytest.approx(2.0, rel=1e-8)
    assert leepfast.h_score(f, y) == pytest.approx(h_score_direct(f, y), rel=1e-8)
    noisy = leepfast.regularized_h_score(f, y)
    signal = leepfast.regularized_h_score(*make_data(n, D, 3, seed=D, signal=3.0))
    assert 0 < noisy < signal


def test_h_score_large_mean_offset_is_stable():
    # centring through a shift: no cancellation from E[f f^T] - E[f] E[f]^T
    f, y = make_data(400, 8, 5, seed=4)
    a = leepfast.h_score(f, y)
    b = leepfast.h_score(f + 1e7, y, block_size=37)
    assert b == pytest.approx(a, rel=1e-7)


# ---------------------------------------------------------------------------------------
# Ledoit-Wolf and the regularized H-score


@pytest.mark.parametrize(
    ("n", "D", "offset"), [(200, 10, 0.0), (30, 50, 0.0), (500, 4, 1e4), (64, 2, 3.0)]
)
def test_ledoit_wolf_matches_sklearn(n, D, offset):
    f, y = make_data(n, D, 3, seed=D, offset=offset)
    cov_ref, a_ref = ledoit_wolf(f)
    for block in (None, 13):
        cov, a = feature_statistics(f, y, block_size=block).ledoit_wolf()
        assert a == pytest.approx(a_ref, rel=1e-8, abs=1e-12)
        np.testing.assert_allclose(
            cov, cov_ref, rtol=1e-8, atol=1e-10 * np.abs(cov_ref).max()
        )


def test_ledoit_wolf_one_feature_has_no_shrinkage():
    f, y = make_data(50, 1, 2, seed=5)
    cov, a = feature_statistics(f, y).ledoit_wolf()
    assert a == 0.0
    np.testing.assert_allclose(cov, ledoit_wolf(f)[0], rtol=1e-12)


def test_ledoit_wolf_shrinks_more_with_fewer_samples():
    # anisotropic covariance: the fewer the samples, the noisier S, the larger the shrinkage
    rng = np.random.default_rng(6)
    f = rng.normal(size=(2000, 50)) * np.linspace(0.5, 3.0, 50)
    y = np.zeros(2000, dtype=int)
    _, a_few = feature_statistics(f[:10], y[:10]).ledoit_wolf()
    _, a_many = feature_statistics(f, y).ledoit_wolf()
    assert 0.0 < a_many < a_few <= 1.0
    assert a_few == pytest.approx(ledoit_wolf(f[:10])[1], rel=1e-9)
    assert a_many == pytest.approx(ledoit_wolf(f)[1], rel=1e-9)
    # the shrunk covariance is positive definite even though S has rank 9
    cov, _ = feature_statistics(f[:10], y[:10]).ledoit_wolf()
    assert np.linalg.eigvalsh(cov).min() > 0


@pytest.mark.parametrize(("n", "D", "Y"), [(300, 10, 4), (25, 60, 5), (80, 3, 2)])
def test_regularized_h_score_matches_direct(n, D, Y):
    f, y = make_data(n, D, Y, seed=n * D)
    got = leepfast.regularized_h_score(f, y)
    assert got == pytest.approx(regularized_h_score_direct(f, y), rel=1e-8)
    # shrinkage only ever lowers it below the plain H-score when D < n
    if D < n:
        assert got <= leepfast.h_score(f, y) + 1e-12


# ---------------------------------------------------------------------------------------
# LogME


@pytest.mark.parametrize(
    ("n", "D", "Y", "signal"),
    [
        (300, 10, 4, 1.0),
        (200, 32, 10, 0.5),
        (60, 60, 3, 1.0),
        (40, 100, 4, 2.0),
        (150, 5, 2, 0.0),
        (90, 8, 9, 3.0),
    ],
)
def test_logme_matches_direct_evidence_maximisation(n, D, Y, signal):
    f, y = make_data(n, D, Y, seed=7 + n + D, signal=signal)
    assert abs(leepfast.logme(f, y) - logme_direct(f, y)) < 1e-6


def test_logme_of_nonnegative_relu_like_features():
    # features like the experiment's: ReLU outputs with some dead (all-zero) units
    f, y = make_data(200, 16, 5, seed=8)
    f = np.maximum(f, 0.0)
    f[:, [3, 7]] = 0.0
    # rank-deficient with n > D: the direct version drops the zero singular values too
    assert abs(leepfast.logme(f, y) - logme_direct(f, y)) < 1e-6


def logme_class_by_class(G, T, yy, n):
    """The authors' fixed point, one target column after the other (the loop that
    _features._logme runs for all columns at once), from G = F^T F, T = Y^T F, yy."""
    D = G.shape[0]
    lam, V = np.linalg.eigh(G)
    lam, V = lam[::-1], V[:, ::-1]
    resolved = lam > lam[0] * D * np.finfo(np.float64).eps
    sigma = lam[resolved]
    k = min(n, D) if n <= D else sigma.size
    evidences = []
    for t_c, yy_c in zip(T, yy, strict=True):
        x2 = (t_c @ V[:, resolved]) ** 2 / sigma
        res_x2 = yy_c - x2.sum()
        alpha = beta = 1.0
        for _ in range(11):
            t = alpha / beta
            gamma = np.sum(sigma / (sigma + t))
            m2 = np.sum(x2 * (sigma / (sigma + t)) / (t + sigma))
            res2 = np.sum(x2 * (t / (t + sigma)) ** 2) + res_x2
            alpha, beta = gamma / (m2 + 1e-5), (n - gamma) / (res2 + 1e-5)
            if alpha <= 0 or abs(alpha / beta - t) / t <= 1e-3:
                break
        ev = _features._evidence_values(alpha, beta, sigma, m2, res2, n, D, k)
        evidences.append(-math.inf if alpha <= 0 else float(ev))
    return float(np.mean(evidences))


@pytest.mark.parametrize(("n", "D", "Y"), [(600, 12, 40), (50, 80, 6), (3000, 30, 100)])
def test_logme_columns_at_once_equal_the_loop_over_columns(n, D, Y):
    # classes of very different sizes stop their fixed-point iterations at different
    # steps; the vectorised iteration stops each where the loop does
    rng = np.random.default_rng(n + D)
    p = np.arange(1, Y + 1) ** 2.0
    y = rng.choice(Y, size=n, p=p / p.sum())
    f = rng.normal(size=(Y, D))[y] * rng.uniform(0, 2, size=(Y, 1))[y]
    f += rng.normal(size=(n, D))
    classes = np.unique(y)
    T = np.array([f[y == c].sum(axis=0) for c in classes])
    counts = np.bincount(y)[classes]
    G = f.T @ f
    got = _features._logme(G, T, counts, n)
    assert got == pytest.approx(logme_class_by_class(G, T, counts, n), rel=1e-12)
    assert leepfast.logme(f, y) == pytest.approx(got, rel=1e-10)


def test_logme_absent_class_is_left_out_of_the_mean():
    # absent classes do not exist (the authors' code would average in the evidence of
    # their all-zero columns: see test_features_limits.py)
    f, y = make_data(120, 6, 3, seed=9)
    got = leepfast.logme(f, y, n_target=5)
    assert got == pytest.approx(leepfast.logme(f, y), rel=1e-12)
    assert abs(got - logme_direct(f, y)) < 1e-6


def _svd_terms(f, yc):
    """n, D, the singular values of f, and the squared projections of the target yc on
    f's left singular vectors and their residual: the evidence's inputs."""
    u, s, _ = np.linalg.svd(f, full_matrices=False)
    x2 = (u.T @ yc) ** 2
    return *f.shape, s, x2, yc @ yc - x2.sum()


def test_logme_evidence_formula_is_the_gaussian_marginal_likelihood():
    # y ~ N(0, I / beta + F F^T / alpha): the closed form through the SVD must agree
    f, y = make_data(30, 4, 2, seed=10)
    yc = (y == 1).astype(float)
    n, D, s, x2, res_x2 = _svd_terms(f, yc)
    for alpha, beta in [(1.0, 1.0), (0.3, 5.0), (12.0, 0.7)]:
        ev = _features._logme_evidence(alpha, beta, s**2, x2, res_x2, n, D, D)
        cov = np.eye(n) / beta + f @ f.T / alpha
        ref = multivariate_normal(np.zeros(n), cov).logpdf(yc) / n
        assert ev == pytest.approx(ref, rel=1e-10)


def test_logme_d_greater_than_n_convention_is_documented_offset():
    # D > n: min(n, D) directions in the log-determinant, as the public code; the exact
    # marginal likelihood is lower by (D - n) log(alpha) / (2 n)
    f, y = make_data(12, 20, 2, seed=11)
    yc = (y == 0).astype(float)
    n, D, s, x2, res_x2 = _svd_terms(f, yc)
    alpha, beta = 2.5, 0.8
    ev = _features._logme_evidence(alpha, beta, s**2, x2, res_x2, n, D, n)
    exact = multivariate_normal(np.zeros(n), np.eye(n) / beta + f @ f.T / alpha).logpdf(yc)
    assert ev - exact / n == pytest.approx((D - n) * math.log(alpha) / (2 * n), rel=1e-9)


def test_logme_all_zero_features_is_minus_infinity():
    assert leepfast.logme(np.zeros((10, 3)), np.arange(10) % 2) == -math.inf


# ---------------------------------------------------------------------------------------
# LogME of a target matrix (regression, multi-label): the authors' regression=True


def make_targets(n, D, k, seed, kind="regression"):
    """Features and a target matrix linear in them plus noise; "multilabel": its 0/1
    indicators (int64), "bool": the same as booleans."""
    rng = np.random.default_rng(seed)
    f = rng.normal(size=(n, D)) + rng.normal(size=D)
    Y = f @ rng.normal(size=(D, k)) * 0.5 + rng.normal(size=(n, k)) + rng.normal(size=k)
    if kind == "regression":
        return f, Y
    ind = Y > np.median(Y, axis=0)
    return f, ind if kind == "bool" else ind.astype(np.int64)


@pytest.mark.parametrize(
    ("n", "D", "k", "kind"),
    [
        (300, 10, 3, "regression"),
        (200, 32, 1, "regression"),
        (60, 60, 4, "regression"),
        (40, 100, 2, "regression"),
        (500, 16, 6, "multilabel"),
        (30, 50, 3, "multilabel"),
        (150, 5, 4, "bool"),
    ],
)
def test_logme_targets_match_direct_evidence_maximisation(n, D, k, kind):
    f, Y = make_targets(n, D, k, seed=n + D + k, kind=kind)
    assert abs(leepfast.logme(f, Y) - logme_direct(f, Y)) < 1e-6


@pytest.mark.parametrize(("n", "D", "Y"), [(300, 10, 4), (40, 100, 4), (90, 8, 9)])
def test_logme_one_hot_target_matrix_equals_class_labels(n, D, Y):
    # every class present: the one-hot columns are the class indicators, sum y^2 = n_c
    f, y = make_data(n, D, Y, seed=21 + n)
    ref = leepfast.logme(f, y)
    for onehot in (np.eye(Y)[y], np.eye(Y, dtype=np.float32)[y], np.eye(Y, dtype=bool)[y]):
        assert leepfast.logme(f, onehot) == pytest.approx(ref, rel=1e-12, abs=1e-12)


def test_logme_targets_mean_over_columns_and_column_order():
    f, Y = make_targets(250, 12, 5, seed=22)
    got = leepfast.logme(f, Y)
    columns = [leepfast.logme(f, Y[:, [j]]) for j in range(5)]
    assert got == pytest.approx(np.mean(columns), rel=1e-12)
    assert len(set(columns)) == 5  # five different targets, not one value repeated
    perm = [3, 0, 4, 2, 1]
    assert leepfast.logme(f, Y[:, perm]) == pytest.approx(got, rel=1e-12)
    # the same column twice counts twice
    twice = leepfast.logme(f, Y[:, [0, 0, 1]])
    assert twice == pytest.approx((2 * columns[0] + columns[1]) / 3, rel=1e-12)


def test_logme_targets_scale_as_the_evidence_does():
    # n > D, full rank: the evidence maximised over alpha and beta is invariant under
    # f -> c f and moves by -log|c| per sample under y -> c y; the fixed point stops
    # at a tolerance, so up to 1e-7
    f, Y = make_targets(400, 8, 3, seed=23)
    ref = leepfast.logme(f, Y)
    for c in (0.25, 3.0, -2.0):
        assert leepfast.logme(c * f, Y) == pytest.approx(ref, abs=1e-7)
        assert leepfast.logme(f, c * Y) == pytest.approx(ref - math.log(abs(c)), abs=1e-7)
    # a shift of a target is not free: the features are not centred
    assert abs(leepfast.logme(f, Y + 10.0) - ref) > 1e-3


def test_logme_targets_keep_an_all_zero_column():
    # a column of zeros is a target like any other (a class that never occurs, or a
    # constant regression target): it enters the mean, as in the authors' code
    f, Y = make_targets(120, 6, 2, seed=24, kind="multilabel")
    Z = np.concatenate([Y, np.zeros((120, 1), dtype=Y.dtype)], axis=1)
    zero = leepfast.logme(f, Z[:, [2]])
    assert zero == pytest.approx(logme_direct(f, Z[:, [2]]), abs=1e-6)
    assert leepfast.logme(f, Z) == pytest.approx(
        (2 * leepfast.logme(f, Y) + zero) / 3, rel=1e-12
    )
    assert leepfast.logme(f, Z) > leepfast.logme(f, Y) + 1.0  # large, as said


def test_logme_targets_evidence_is_the_gaussian_marginal_likelihood():
    # the closed form with y = a real-valued column and sum y^2 in place of the count
    f, Y = make_targets(25, 4, 1, seed=25)
    y = Y[:, 0]
    n, D, s, x2, res_x2 = _svd_terms(f, y)
    for alpha, beta in [(1.0, 1.0), (0.4, 3.0)]:
        ev = _features._logme_evidence(alpha, beta, s**2, x2, res_x2, n, D, D)
        cov = np.eye(n) / beta + f @ f.T / alpha
        assert ev == pytest.approx(
            multivariate_normal(np.zeros(n), cov).logpdf(y) / n, rel=1e-10
        )


@pytest.mark.parametrize("block_size", [1, 7, 64, 1000])
def test_logme_targets_streaming_batches_and_merge(block_size):
    f, Y = make_targets(203, 9, 4, seed=26)
    f = f + 100.0  # a large mean: the shift keeps F^T F and Y^T F exact
    ref = leepfast.logme(f, Y)
    assert abs(ref - logme_direct(f, Y)) < 1e-6
    assert leepfast.logme(f, Y, block_size=block_size) == pytest.approx(ref, rel=1e-10)
    parts = []
    for lo, hi in [(0, 17), (17, 130), (130, 203)]:
        parts.append(FeatureAccumulator().update(f[lo:hi] * 1.0 - 50.0 + 50.0, Y[lo:hi]))
    merged = FeatureAccumulator()
    for a in parts:
        merged.merge(a)
    assert merged.logme() == pytest.approx(ref, rel=1e-10)
    acc = FeatureAccumulator().update(f[:0], Y[:0])  # an empty batch first
    for lo in range(0, 203, 50):
        acc.update(f[lo : lo + 50], Y[lo : lo + 50], first_row=lo)
    assert acc.n_samples == 203
    assert acc.logme() == pytest.approx(ref, rel=1e-10)
    np.testing.assert_allclose(acc.gram(), f.T @ f, rtol=1e-12)


def test_logme_targets_from_tensors(torch):
    f, Y = make_targets(150, 6, 3, seed=27)
    ref = leepfast.logme(f, Y)
    assert leepfast.logme(torch.from_numpy(f), torch.from_numpy(Y)) == pytest.approx(
        ref, rel=1e-12
    )
    ind = (Y > 0).astype(np.int8)
    assert leepfast.logme(f, torch.from_numpy(ind)) == pytest.approx(
        leepfast.logme(f, ind.astype(float)), rel=1e-12
    )
    # bfloat16 targets are widened to float32, exactly
    bf = torch.from_numpy(Y).to(torch.bfloat16)
    assert leepfast.logme(f, bf) == pytest.approx(
        leepfast.logme(f, bf.float().numpy()), rel=1e-12
    )


def test_logme_targets_dtypes_and_inputs_untouched():
    f, Y = make_targets(150, 6, 3, seed=27)
    f16 = f.astype(np.float16)
    exact = leepfast.logme(f16.astype(np.float64), Y.astype(np.float32).astype(float))
    assert leepfast.logme(f16, Y.astype(np.float32)) == pytest.approx(exact, rel=1e-12)
    assert leepfast.logme(f16, Y.astype(np.float16)) == pytest.approx(
        leepfast.logme(f16, Y.astype(np.float16).astype(float)), rel=1e-12
    )
    ref = leepfast.logme(f, Y)
    assert leepfast.logme(f.tolist(), Y.tolist()) == pytest.approx(ref, rel=1e-12)
    # Fortran order, strided, byte-swapped targets
    for variant in (np.asfortranarray(Y), np.repeat(Y, 2, axis=1)[:, ::2], Y.astype(">f8")):
        assert leepfast.logme(f, variant, block_size=33) == pytest.approx(ref, rel=1e-10)
    f_copy, Y_copy = f.copy(), Y.copy()
    f.flags.writeable = False
    Y.flags.writeable = False
    assert leepfast.logme(f, Y, block_size=9) == pytest.approx(ref, rel=1e-10)
    assert np.array_equal(f, f_copy) and np.array_equal(Y, Y_copy)


def test_logme_targets_with_feature_files_and_target_files(tmp_path):
    f, Y = make_targets(257, 6, 3, seed=28)
    ref = leepfast.logme(f, Y)
    shards = tmp_path / "shards"
    shards.mkdir()
    for i, (lo, hi) in enumerate([(0, 100), (100, 101), (101, 257)]):
        np.save(shards / f"part{i}.npy", f[lo:hi])
    np.save(tmp_path / "Y.npy", Y)
    np.save(tmp_path / "Y32.npy", Y.astype(np.float32))
    np.save(tmp_path / "YF.npy", np.asfortranarray(Y))
    for features in (
        f,
        shards,
        [shards / "part0.npy", shards / "part1.npy", shards / "part2.npy"],
    ):
        for targets in (Y, tmp_path / "Y.npy", str(tmp_path / "YF.npy")):
            assert leepfast.logme(features, targets, block_size=40) == pytest.approx(
                ref, rel=1e-10
            )
        assert leepfast.logme(features, tmp_path / "Y32.npy") == pytest.approx(
            leepfast.logme(f, Y.astype(np.float32)), rel=1e-10
        )
    acc = feature_statistics(shards, os.fsencode(tmp_path / "Y.npy"))
    assert acc.logme() == pytest.approx(ref, rel=1e-10)


def test_logme_target_errors_name_the_argument_and_what_was_found(tmp_path):
    f, Y = make_targets(20, 3, 2, seed=29)
    with pytest.raises(InputError) as err:
        leepfast.logme(f, Y, n_target=3)
    assert str(err.value) == (
        "n_target: expected None with a target matrix (labels of shape (n_samples, k), "
        "here k=2: its columns are the targets), got n_target=3"
    )
    assert err.value.argument == "n_target"
    with pytest.raises(ShapeError) as err:
        leepfast.logme(f, Y[:19])
    assert str(err.value) == (
        "labels: expected a target matrix of 20 rows (one per row of features), got 19 "
        "rows (shape (19, 2))"
    )
    assert err.value.argument == "labels"
    bad = Y.copy()
    bad[5, 1] = np.nan
    with pytest.raises(NonFiniteError) as err:
        leepfast.logme(f, bad, block_size=3)
    assert str(err.value) == (
        "labels: row 5 is nan in column 1; expected finite target values"
    )
    assert err.value.argument == "labels"
    bad[5, 1] = -np.inf
    with pytest.raises(NonFiniteError, match=r"^labels: row 5 is -inf in column 1;"):
        FeatureAccumulator().update(f[:4], Y[:4]).update(f[4:], bad[4:], first_row=4)
    with pytest.raises(TypeError) as err:
        leepfast.logme(f, Y.astype(complex))
    assert str(err.value) == (
        "labels: expected a target matrix of shape (n_samples, k) of float, integer or "
        "boolean values, got dtype=complex128"
    )
    with pytest.raises(ShapeError, match=r"with k >= 1, got shape \(20, 0\)$"):
        leepfast.logme(f, np.zeros((20, 0)))
    with pytest.raises(LabelError) as err:
        leepfast.logme(f, Y[:, 0])
    assert str(err.value) == (
        f"labels: row 0 is {float(Y[0, 0])!r}; expected an integer label (integer-valued "
        "floats are taken); regression targets for logme are a target matrix of shape "
        "(n_samples, k), one target as y[:, None]"
    )
    with pytest.raises(NonFiniteError, match=r"^labels: values too large to accum"):
        leepfast.logme(f, Y * 1e200)
    for name in ("h_score", "regularized_h_score"):
        with pytest.raises(ShapeError) as err:
            getattr(leepfast, name)(f, Y)
        assert str(err.value) == (
            f"{name}: expected class labels (a 1-D integer array), got a target matrix "
            f"of shape (n_samples, k) (shape (20, 2)); only logme takes a target matrix"
        )
    np.save(tmp_path / "Y.npy", Y)
    with pytest.raises(ShapeError, match=r"^h_score: expected class labels"):
        leepfast.h_score(f, tmp_path / "Y.npy")  # refused before the pass
    acc = FeatureAccumulator().update(f, Y)
    for what in ("h_score", "regularized_h_score", "class_sums"):
        with pytest.raises(ShapeError, match=rf"^{what}: expected class labels"):
            getattr(acc, what)()
    with pytest.raises(ShapeError, match=r"^class_counts: expected class labels"):
        acc.class_counts  # noqa: B018 - the property raises


def test_logme_target_kinds_cannot_mix_across_batches_and_merges():
    f, Y = make_targets(20, 3, 2, seed=30)
    y = np.arange(20) % 2
    with pytest.raises(ShapeError) as err:
        FeatureAccumulator().update(f, Y).update(f, y)
    assert str(err.value) == (
        "labels: expected a target matrix of shape (n_samples, k) with k=2, as in "
        "earlier batches, got class labels of shape (20,)"
    )
    with pytest.raises(ShapeError) as err:
        FeatureAccumulator().update(f, y).update(f, Y)
    assert str(err.value) == (
        "labels: expected class labels (a 1-D integer array), as in earlier batches, "
        "got a target matrix of shape (n_samples, k) (shape (20, 2))"
    )
    with pytest.raises(ShapeError, match=r"with k=2, as in earlier batches, got k=1 "):
        FeatureAccumulator().update(f, Y).update(f, Y[:, :1])
    with pytest.raises(InputError, match=r"^n_target: expected None with a target"):
        FeatureAccumulator(n_target=2).update(f, Y)
    with pytest.raises(InputError, match=r"^n_target: expected None with a target"):
        FeatureAccumulator(n_target=2).merge(FeatureAccumulator().update(f, Y))
    with pytest.raises(ShapeError) as err:
        FeatureAccumulator().update(f, Y).merge(FeatureAccumulator().update(f, y))
    assert str(err.value) == (
        "merge: expected the other accumulator to hold a target matrix, as this one, "
        "got class labels"
    )
    with pytest.raises(ShapeError, match=r"to hold class labels, as this one, got a t"):
        FeatureAccumulator().update(f, y).merge(FeatureAccumulator().update(f, Y))
    # an empty batch of a target matrix sets the kind too
    with pytest.raises(ShapeError, match=r"to hold a target matrix, as this one, got c"):
        FeatureAccumulator().update(f[:0], Y[:0]).merge(FeatureAccumulator().update(f, y))
    with pytest.raises(ShapeError, match=r"with k=2, as in earlier batches, got class"):
        FeatureAccumulator().update(f[:0], Y[:0]).update(f, y)
    with pytest.raises(ShapeError, match=r"to have k=2 columns, as this one's, got k=1$"):
        FeatureAccumulator().update(f, Y).merge(FeatureAccumulator().update(f, Y[:, :1]))


def test_logme_target_file_errors_name_the_file_and_the_row(tmp_path):
    f, Y = make_targets(20, 3, 2, seed=31)
    np.save(tmp_path / "f.npy", f)
    bad = Y.copy()
    bad[7, 0] = np.nan
    np.save(tmp_path / "bad.npy", bad)
    np.save(tmp_path / "short.npy", Y[:19])
    np.save(tmp_path / "int.npy", (Y > 0).astype(np.int64))
    for features in (f, tmp_path / "f.npy"):
        with pytest.raises(NonFiniteError, match=r"^labels \(file .*bad.npy\): row 7 is"):
            leepfast.logme(features, tmp_path / "bad.npy", block_size=4)
        with pytest.raises(
            ShapeError,
            match=r"^labels \(file .*short.npy\): expected 20 rows \(one per row of "
            r"features\), got 19$",
        ):
            leepfast.logme(features, tmp_path / "short.npy")
    # a target file holds floats (save 0/1 indicators as float32)
    with pytest.raises(
        FileFormatError, match=r"^labels \(file .*int.npy\): holds dtype '<i8'; expec"
    ):
        leepfast.logme(f, tmp_path / "int.npy")
    with pytest.raises(ShapeError, match=r"^labels: expected a target matrix of 20 rows"):
        leepfast.logme(tmp_path / "f.npy", Y[:19])


# ---------------------------------------------------------------------------------------
# Streaming, sources, dtypes, inputs untouched

SCORES = ("h_score", "regularized_h_score", "logme")


def all_scores(acc):
    return np.array([acc.h_score(), acc.regularized_h_score(), acc.logme()])


@pytest.mark.parametrize("block_size", [1, 7, 41, 97, 1000])
def test_streaming_equals_in_memory(block_size):
    f, y = make_data(203, 9, 6, seed=12, offset=2.0)
    ref = all_scores(feature_statistics(f, y))
    got = all_scores(feature_statistics(f, y, block_size=block_size))
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12)
    for name, value in zip(SCORES, ref, strict=True):
        assert getattr(leepfast, name)(f, y, block_size=block_size) == pytest.approx(
            value, rel=1e-10
        )


@pytest.mark.parametrize("route", ["compiled", "numpy"])
@pytest.mark.parametrize("slice_rows", [1, 2, 5, 64])
def test_slices_cutting_the_class_runs_equal_the_definitions(
    monkeypatch, slice_rows, route
):
    # each block is copied in label order (float32 and float64 by the compiled
    # extension, row by row; else by NumPy slice by slice), the class sums and the
    # Ledoit-Wolf moments taken with it: runs of a class cut by slice boundaries
    D = 7
    monkeypatch.setattr(_features, "_SLICE_BYTES", 8 * D * slice_rows)
    if route == "numpy":
        monkeypatch.setattr(_features, "kernels_or_none", lambda: None)
    else:
        assert _features.kernels_or_none() is not None  # built, or this fails
    f, y = make_data(211, D, 6, seed=21, offset=3.0)
    y[:40] = 2  # a long run, over many slices
    unaligned = np.zeros(f.nbytes + 1, dtype=np.uint8)[1:].view(np.float64)
    unaligned = unaligned.reshape(f.shape)
    unaligned[...] = f
    assert not unaligned.flags.aligned
    variants = (
        (f, None),
        (f.astype(np.float32), 61),
        (np.asfortranarray(f), 13),
        (unaligned, 50),
    )
    for variant, block in variants:
        acc = feature_statistics(variant, y, block_size=block)
        g = variant.astype(np.float64)
        np.testing.assert_array_equal(acc.class_counts, np.bincount(y))
        np.testing.assert_allclose(
            acc.class_sums(), [g[y == c].sum(axis=0) for c in range(6)], rtol=1e-12
        )
        np.testing.assert_allclose(acc.gram(), g.T @ g, rtol=1e-12)
        np.testing.assert_allclose(acc.covariance(), np.cov(g.T), rtol=1e-10)
        cov_ref, a_ref = ledoit_wolf(g)
        cov, a = acc.ledoit_wolf()
        assert a == pytest.approx(a_ref, rel=1e-9)
        np.testing.assert_allclose(cov, cov_ref, rtol=1e-9)
    # a target matrix: the rows in their order, slice by slice
    assert leepfast.logme(f, np.eye(6)[y], block_size=50) == pytest.approx(
        logme_direct(f, y), abs=1e-9
    )
    monkeypatch.undo()
    np.testing.assert_allclose(
        all_scores(feature_statistics(f, y, block_size=50)),
        all_scores(feature_statistics(f, y)),
        rtol=1e-10,
    )


def test_compiled_label_order_rows_equal_numpy_and_any_thread_count():
    """The compiled pass (copy in label order, shift, class sums, |u|^2 u and |u|^4 by
    run) against NumPy, bit for bit on 1 and 2 threads, over blocks large enough to
    start the team; its checks refuse arrays that disagree."""
    kernels = _features.kernels_or_none()
    assert kernels is not None
    rng = np.random.default_rng(5)
    for m, D, k, dtype in ((3000, 96, 7, np.float64), (2500, 61, 40, np.float32)):
        f = (rng.normal(size=(m, D)) * 3 + 1).astype(dtype)
        lab = rng.integers(0, k, m)
        lab[100:900] = 3  # one long run
        order, starts = _features._runs(lab)
        shift = f.mean(axis=0, dtype=np.float64)
        got = []
        for threads in (1, 2):
            u = np.full((m, D), np.nan)
            sums, s3, s4 = np.zeros((k, D)), np.zeros((k, D)), np.zeros(k)
            kernels.label_order_rows(f, order, starts, shift, u, sums, s3, s4, threads)
            got.append((u, sums, s3, s4))
        for a, b in zip(*got, strict=True):
            np.testing.assert_array_equal(a, b)
        u, sums, s3, s4 = got[0]
        want = f.astype(np.float64)[order] - shift
        np.testing.assert_array_equal(u, want)
        runs = np.split(want, starts[1:])
        r2 = [np.einsum("ij,ij->i", r, r) for r in runs]
        # to 1e-12 of the sums of magnitudes (the terms' signs differ)
        for value, terms in (
            (sums, [(r.sum(axis=0), abs(r).sum(axis=0)) for r in runs]),
            (s3, [(q @ r, q @ abs(r)) for q, r in zip(r2, runs, strict=True)]),
            (s4, [(q @ q, q @ q) for q in r2]),
        ):
            exact, size = (np.array(v) for v in zip(*terms, strict=True))
            assert (abs(value - exact) <= 1e-12 * size).all()
        # without the fourth moments: the same u and sums
        u2, sums2 = np.empty((m, D)), np.zeros((k, D))
        kernels.label_order_rows(
            f, order, starts, shift, u2, sums2, np.zeros((0, D)), np.zeros(0), 2
        )
        np.testing.assert_array_equal(u2, u)
        np.testing.assert_array_equal(sums2, sums)
    f = np.ones((4, 3))
    good = (np.arange(4), np.array([0, 2]), np.zeros(3), np.empty((4, 3)))
    none = (np.zeros((0, 3)), np.zeros(0))
    bad_calls = {
        "disagree in shape": (f, *good[:3], np.empty((4, 2)), np.zeros((2, 3)), *none),
        "outside f": (f, np.array([0, 1, 2, 4]), *good[1:], np.zeros((2, 3)), *none),
        "must rise": (f, good[0], np.array([2, 0]), *good[2:], np.zeros((2, 3)), *none),
    }
    for message, args in bad_calls.items():
        with pytest.raises(ValueError, match=message):
            kernels.label_order_rows(*args, 1)


def test_a_single_score_skips_the_ledoit_wolf_moments():
    f, y = make_data(120, 5, 3, seed=22)
    assert feature_statistics(f, y)._fourth
    acc = _features._feature_statistics(f, y, None, None, None, None, None, "h_score")
    assert not acc._fourth and not acc._s3.any()
    assert acc.h_score() == leepfast.h_score(f, y)
    with pytest.raises(RuntimeError, match="fourth moments"):
        acc.ledoit_wolf()
    # merged into an accumulator that has them, the result has them no more
    whole = feature_statistics(f, y)
    assert not whole.merge(acc)._fourth


def test_trace_of_pinv_product_equals_numpys_pinv():
    rng = np.random.default_rng(23)
    Q, _ = np.linalg.qr(rng.normal(size=(12, 12)))
    M = rng.normal(size=(4, 12))
    for spread in (1.0, 1e3, 1e9, 1e20):  # the last with eigenvalues below the pinv cut
        lam = np.geomspace(1.0, 1.0 / spread, 12)
        A = (Q * lam) @ Q.T
        ref = np.trace(np.linalg.pinv(A, rcond=1e-15, hermitian=True) @ (M.T @ M))
        got = _features._trace_pinv_product(A, M)
        assert got == pytest.approx(ref, rel=1e-6 if spread > 1e8 else 1e-11)
    A = np.diag([2.0, 1.0, 0.0])  # exactly singular: the zero eigenvalue is dropped
    got = _features._trace_pinv_product(A, np.ones((1, 3)))
    assert got == pytest.approx(1.5, rel=1e-15)
    assert _features._trace_pinv_product(np.zeros((2, 2)), np.ones((1, 2))) == 0.0


def _count_calls(monkeypatch, name):
    """Counts the calls of np.linalg.<name> (still made)."""
    calls = []
    real = getattr(np.linalg, name)
    monkeypatch.setattr(np.linalg, name, lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


@pytest.mark.parametrize("spread", [1.0, 1e3, 0.99e6, 1.01e6, 1e9])
@pytest.mark.parametrize("given", [False, True])
def test_trace_of_pinv_product_solves_when_well_conditioned(monkeypatch, spread, given):
    # condition number <= SOLVE_MAX_COND: one LU solve, no eigenvectors; above it (or
    # with a bound above it), the eigendecomposition; both equal numpy's pinv
    rng = np.random.default_rng(29)
    D = 40
    Q, _ = np.linalg.qr(rng.normal(size=(D, D)))
    M = rng.normal(size=(5, D))
    A = (Q * np.geomspace(3.0, 3.0 / spread, D)) @ Q.T
    A = 0.5 * (A + A.T)
    ref = np.trace(np.linalg.pinv(A, rcond=1e-15, hermitian=True) @ (M.T @ M))
    eigh, solve = _count_calls(monkeypatch, "eigh"), _count_calls(monkeypatch, "solve")
    eigvalsh = _count_calls(monkeypatch, "eigvalsh")
    got = _features._trace_pinv_product(A, M, cond=2.0 * spread if given else None)
    assert got == pytest.approx(ref, rel=1e-13 * spread)
    solved = (2.0 if given else 1.0) * spread <= _features.SOLVE_MAX_COND
    assert (len(solve), len(eigh)) == ((1, 0) if solved else (0, 1))
    assert len(eigvalsh) == (0 if given else 1)


def test_trace_of_pinv_product_of_indefinite_or_singular_matrices_drops_as_pinv():
    # a negative or zero eigenvalue: not positive definite, so never the solve
    rng = np.random.default_rng(30)
    Q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    M = rng.normal(size=(3, 6))
    for lam in ([3.0, 2.0, 1.0, 0.5, 0.25, -0.5], [3.0, 2.0, 1.0, 0.5, 0.25, 0.0]):
        A = (Q * lam) @ Q.T
        ref = np.trace(np.linalg.pinv(A, rcond=1e-15, hermitian=True) @ (M.T @ M))
        assert _features._trace_pinv_product(A, M) == pytest.approx(ref, rel=1e-9)


@pytest.mark.parametrize("limit", [2.0, 0.5])
def test_regularized_h_score_bounds_the_condition_by_the_shrinkage(monkeypatch, limit):
    # cov_a's eigenvalues lie in [a mu, (1 - a) D mu + a mu]: with that bound of the
    # condition number below SOLVE_MAX_COND no eigenvalue is computed; above it, one
    # eigendecomposition; both equal sklearn's Ledoit-Wolf
    f, y = make_data(400, 30, 4, seed=31)
    f = f * np.geomspace(1.0, 100.0, 30)  # far from a multiple of I: a small a
    acc = feature_statistics(f, y)
    _, a = acc.ledoit_wolf()
    bound = 1.0 + (1.0 - a) * 30 / a
    assert 1e3 < bound < _features.SOLVE_MAX_COND
    cov = acc.ledoit_wolf()[0]
    lam = np.linalg.eigvalsh(cov)
    assert lam[-1] / lam[0] <= bound
    monkeypatch.setattr(_features, "SOLVE_MAX_COND", limit * bound)
    eigh, eigvalsh = (
        _count_calls(monkeypatch, "eigh"),
        _count_calls(monkeypatch, "eigvalsh"),
    )
    got = acc.regularized_h_score()
    assert got == pytest.approx(regularized_h_score_direct(f, y), rel=1e-10)
    assert len(eigvalsh) == 0 and len(eigh) == (0 if limit > 1.0 else 1)


def test_memmapped_npy_and_paths_equal_in_memory(tmp_path):
    f, y = make_data(311, 7, 4, seed=13, offset=-5.0)
    np.save(tmp_path / "f.npy", f.astype(np.float32))
    np.save(tmp_path / "y.npy", y.astype(np.int16))
    ref = all_scores(feature_statistics(f.astype(np.float32), y))
    mm = np.load(tmp_path / "f.npy", mmap_mode="r")
    np.testing.assert_allclose(
        all_scores(feature_statistics(mm, y, block_size=50)), ref, rtol=1e-10
    )
    np.testing.assert_allclose(
        all_scores(feature_statistics(tmp_path / "f.npy", str(tmp_path / "y.npy"))),
        ref,
        rtol=1e-10,
    )
    assert leepfast.logme(tmp_path / "f.npy", tmp_path / "y.npy") == pytest.approx(
        ref[2], rel=1e-10
    )


def test_shards_raw_files_and_text_labels_equal_in_memory(tmp_path):
    f, y = make_data(257, 6, 5, seed=20, offset=1.0)
    ref = all_scores(feature_statistics(f, y))
    shards = tmp_path / "shards"
    shards.mkdir()
    for i, (lo, hi) in enumerate([(0, 100), (100, 101), (101, 257)]):
        np.save(shards / f"part{i}.npy", f[lo:hi])
    (tmp_path / "y.txt").write_text("".join(f"{v}\n" for v in y))
    f.astype("<f8").tofile(tmp_path / "f.raw")
    for source, kw in [
        (shards, {}),
        (str(shards / "part*.npy"), {}),
        (sorted(shards.iterdir()), {"block_size": 7}),
        (tmp_path / "f.raw", {"dtype": "float64", "n_features": 6, "block_size": 50}),
    ]:
        for labels in (y, tmp_path / "y.txt"):
            got = all_scores(feature_statistics(source, labels, **kw))
            np.testing.assert_allclose(got, ref, rtol=1e-10)
    assert leepfast.h_score(shards, tmp_path / "y.txt") == pytest.approx(ref[0], rel=1e-10)
    # in-memory features with labels from a file
    np.testing.assert_allclose(
        all_scores(feature_statistics(f, tmp_path / "y.txt")), ref, rtol=1e-12
    )


def test_batches_and_merge_with_different_shifts_equal_whole():
    f, y = make_data(240, 5, 3, seed=14, offset=50.0)
    ref = all_scores(feature_statistics(f, y))
    parts = []
    for lo, hi in [(0, 17), (17, 130), (130, 240)]:
        a = FeatureAccumulator()
        a.update(f[lo:hi] * 1.0 + 0.0, y[lo:hi])  # each shard has its own shift
        parts.append(a)
    merged = FeatureAccumulator()
    for a in parts:
        merged.merge(a)
    np.testing.assert_allclose(all_scores(merged), ref, rtol=1e-10)
    # a shard with fewer classes first: the class table grows on merge
    first = FeatureAccumulator().update(f[y == 0], y[y == 0])
    rest = FeatureAccumulator().update(f[y != 0], y[y != 0])
    np.testing.assert_allclose(all_scores(first.merge(rest)), ref, rtol=1e-10)


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_low_precision_inputs_accumulate_in_float64(dtype):
    f, y = make_data(150, 6, 3, seed=15)
    low = f.astype(dtype)
    exact = all_scores(feature_statistics(low.astype(np.float64), y))
    np.testing.assert_allclose(all_scores(feature_statistics(low, y)), exact, rtol=1e-12)


def test_fortran_order_strided_and_byteswapped_inputs():
    f, y = make_data(130, 6, 4, seed=16)
    ref = all_scores(feature_statistics(f, y))
    for variant in (
        np.asfortranarray(f),
        np.repeat(f, 2, axis=1)[:, ::2],
        f.astype(f.dtype.newbyteorder(">")),
    ):
        np.testing.assert_allclose(
            all_scores(feature_statistics(variant, y, block_size=33)), ref, rtol=1e-10
        )


def test_inputs_are_never_modified():
    f, y = make_data(100, 8, 4, seed=17, offset=3.0)
    f_copy, y_copy = f.copy(), y.copy()
    for name in SCORES:
        getattr(leepfast, name)(f, y)
        getattr(leepfast, name)(f, y, block_size=9)
    assert np.array_equal(f, f_copy) and np.array_equal(y, y_copy)
    # read-only inputs work (an implementation that centres in place would raise)
    f.flags.writeable = False
    y.flags.writeable = False
    for name in SCORES:
        getattr(leepfast, name)(f, y)


# ---------------------------------------------------------------------------------------
# Errors


def test_errors_name_the_argument_and_what_was_found():
    f, y = make_data(20, 3, 2, seed=18)
    with pytest.raises(TypeError, match=r"features: expected a float16.*dtype=int64"):
        leepfast.h_score(np.ones((4, 2), dtype=np.int64), np.zeros(4, dtype=int))
    with pytest.raises(ValueError, match=r"features: expected a 2-D array.*ndim=1"):
        leepfast.logme(np.ones(4), np.zeros(4, dtype=int))
    with pytest.raises(ValueError, match=r"labels: expected 20 labels.*got 19"):
        leepfast.logme(f, y[:19])
    # labels as integer-valued floats (pandas, np.loadtxt) are labels
    assert leepfast.logme(f, y.astype(float)) == leepfast.logme(f, y)
    first = int(np.argmax(y == 1))
    with pytest.raises(LabelError, match=rf"^labels: row {first} is 0\.5; expected an"):
        leepfast.logme(f, np.where(y == 1, 0.5, y))
    # in batches, the row counts from the batch's first row, as every label message
    acc = FeatureAccumulator().update(f[:10], y[:10])
    with pytest.raises(LabelError, match=r"^labels: row 13 is 0\.5; expected an integer"):
        acc.update(f[10:], np.where(np.arange(10) == 3, 0.5, y[10:]), first_row=10)
    bad = f.copy()
    bad[13, 1] = np.nan
    with pytest.raises(ValueError, match=r"features: row 13 contains NaN"):
        leepfast.h_score(bad, y, block_size=4)
    with pytest.raises(ValueError, match=r"labels: row 5 is -1"):
        y2 = y.copy()
        y2[5] = -1
        leepfast.h_score(f, y2)
    with pytest.raises(
        ValueError, match=r"labels: row 2 is 7; expected an integer in \[0, 3\)"
    ):
        y3 = y.copy()
        y3[2] = 7
        leepfast.logme(f, y3, n_target=3)
    with pytest.raises(
        ValueError, match=r"h_score: needs at least 2 samples, got n_samples=1"
    ):
        leepfast.h_score(f[:1], y[:1])
    with pytest.raises(ValueError, match=r"expected 3 features.*got 4"):
        FeatureAccumulator().update(f, y).update(np.ones((2, 4)), np.zeros(2, dtype=int))
    with pytest.raises(FileNotFoundError, match=r"^features: no such file"):
        leepfast.logme("/nonexistent/f.npy", y)


def test_pickled_npy_is_refused_without_unpickling(tmp_path):
    path = tmp_path / "obj.npy"
    np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match=r"^features \(file .*obj.npy\): holds Python obj"):
        leepfast.h_score(path, np.zeros(1, dtype=int))


def test_file_errors_name_the_file_and_the_row(tmp_path):
    f, y = make_data(20, 3, 2, seed=19)
    np.save(tmp_path / "a.npy", f[:10])
    np.save(tmp_path / "b.npy", np.ones((10, 4)))
    with pytest.raises(ValueError, match=r"^features \(file .*b.npy\): has 4 features"):
        leepfast.logme([tmp_path / "a.npy", tmp_path / "b.npy"], y)
    bad = f[10:].copy()
    bad[3, 0] = np.inf
    np.save(tmp_path / "b.npy", bad)
    with pytest.raises(ValueError, match=r"^features \(file .*b.npy\): row 3 contains NaN"):
        leepfast.h_score([tmp_path / "a.npy", tmp_path / "b.npy"], y, block_size=2)
    (tmp_path / "y.txt").write_text("0\n1\n")
    with pytest.raises(ValueError, match=r"labels \(file .*y.txt\): expected 10 labels"):
        leepfast.logme(tmp_path / "a.npy", tmp_path / "y.txt")
    (tmp_path / "y.txt").write_text("\n".join(["0"] * 9 + ["5"]) + "\n")
    with pytest.raises(ValueError, match=r"labels \(file .*y.txt\): row 9 .*is 5"):
        leepfast.logme(tmp_path / "a.npy", tmp_path / "y.txt", n_target=2)
