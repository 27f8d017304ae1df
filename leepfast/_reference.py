"""The NumPy reference: LEEP and NCE (and the feature scores) in plain float64, written
to read like the formulas.

This module is the oracle every backend is tested against. It is formulas only: it
imports nothing from the package and is deliberately never optimised.

Notation (DESIGN.md section 1): ``theta`` is (n, Z), row i the source model's softmax
for target sample i; ``y`` holds n labels in [0, Y).

    J[y, z] = (1/n) sum_{i: y_i = y} theta[i, z]
    M[z]    = sum_y J[y, z]
    C[y, z] = J[y, z] / M[z]   (0 where M[z] == 0)
    LEEP    = (1/n) sum_i log(sum_z C[y_i, z] theta[i, z])
    NCE     = sum_{y, z} P(y, z) log P(y | z),  P from the counts of (y_i, argmax theta_i)
"""

import numpy as np

# ---------------------------------------------------------------------------------------
# Whole-array formulas


def softmax(logits):
    """Row-wise softmax in float64, max-subtracted."""
    logits = np.asarray(logits, dtype=np.float64)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def class_sums(theta, y, n_target):
    """S[y, z] = sum over samples i with label y of theta[i, z]; shape (Y, Z)."""
    theta = np.asarray(theta, dtype=np.float64)
    S = np.zeros((n_target, theta.shape[1]))
    for label in range(n_target):
        S[label] = theta[y == label].sum(axis=0)
    return S


def joint(theta, y, n_target):
    """J[y, z] = (1/n) sum over samples i with label y of theta[i, z]; shape (Y, Z)."""
    return class_sums(theta, y, n_target) / len(theta)


def marginal(J):
    """M[z] = sum_y J[y, z]; shape (Z,)."""
    return J.sum(axis=0)


def conditional(J):
    """C[y, z] = J[y, z] / M[z], and 0 where M[z] == 0; shape (Y, Z)."""
    M = marginal(J)
    C = np.zeros_like(J)
    has_mass = M > 0
    C[:, has_mass] = J[:, has_mass] / M[has_mass]
    return C


def leep(theta, y, n_target=None):
    """LEEP = (1/n) sum_i log(sum_z C[y_i, z] theta[i, z]), from probabilities."""
    theta = np.asarray(theta, dtype=np.float64)
    y = np.asarray(y)
    if n_target is None:
        n_target = int(y.max()) + 1
    C = conditional(joint(theta, y, n_target))
    expected_empirical_prediction = (theta * C[y]).sum(axis=1)
    return float(np.mean(np.log(expected_empirical_prediction)))


def nce_from_counts(counts):
    """NCE = sum_{y,z} P(y, z) log(P(y, z) / P(z)) from a (Y, Z) table of pair counts."""
    P = np.asarray(counts, dtype=np.float64) / np.sum(counts)
    Pz = P.sum(axis=0)
    y_idx, z_idx = np.nonzero(P)
    return float(np.sum(P[y_idx, z_idx] * np.log(P[y_idx, z_idx] / Pz[z_idx])))


def hard_counts(theta, y, n_target):
    """counts[y, z] = number of samples with label y whose argmax source class is z."""
    theta = np.asarray(theta, dtype=np.float64)
    counts = np.zeros((n_target, theta.shape[1]), dtype=np.int64)
    np.add.at(counts, (y, theta.argmax(axis=1)), 1)
    return counts


def nce(theta, y, n_target=None):
    """NCE of the hard labels argmax_z theta[i, z] (ties: lowest index) against y."""
    y = np.asarray(y)
    if n_target is None:
        n_target = int(y.max()) + 1
    return nce_from_counts(hard_counts(theta, y, n_target))


# ---------------------------------------------------------------------------------------
# The scores LEEP is compared against, in their public code's conventions


def coding_rate(Z, eps):
    """R(Z) = 1/2 log det(I + Z^T Z / (n eps)) for Z of shape (n, d)."""
    n, d = Z.shape
    return 0.5 * np.linalg.slogdet(np.eye(d) + Z.T @ Z / (n * eps))[1]


def transrate(features, y, eps=1e-4):
    """R(Z) - mean over present classes c of R(Z_c), Z centred on the overall mean."""
    Z = np.asarray(features, dtype=np.float64)
    Z = Z - Z.mean(axis=0)
    classes = np.unique(y)
    return coding_rate(Z, eps) - np.mean([coding_rate(Z[y == c], eps) for c in classes])


def bhattacharyya_distance(mu1, mu2, var1, var2):
    """D_B of two Gaussians with diagonal (or, for scalars, spherical) variances."""
    avg = (var1 + var2) / 2
    return np.sum((mu1 - mu2) ** 2 / avg) / 8 + 0.5 * (
        np.sum(np.log(avg)) - 0.5 * np.sum(np.log(var1)) - 0.5 * np.sum(np.log(var2))
    )


def gbc(features, y, gaussian="spherical", min_variance=1e-4):
    """-sum over ordered pairs of present classes of exp(-D_B)."""
    F = np.asarray(features, dtype=np.float64)
    classes = np.unique(y)
    means = {c: F[y == c].mean(axis=0) for c in classes}
    var = {c: np.maximum(F[y == c].var(axis=0), min_variance) for c in classes}
    if gaussian == "spherical":
        var = {c: v.mean() for c, v in var.items()}
    return -sum(
        np.exp(-bhattacharyya_distance(means[a], means[b], var[a], var[b]))
        for a in classes
        for b in classes
        if a != b
    )


# ---------------------------------------------------------------------------------------
# LogME (You et al., JMLR 2022)


def logme_evidence(alpha, beta, sigma, m2, res2, n, d):
    """The log-evidence per sample of the Bayesian linear model from features F (n, d)
    to one target column, at weight precision ``alpha`` and noise precision ``beta``:
    ``sigma`` the squared singular values of F that enter the log-determinant, ``m2``
    = |m|^2 and ``res2`` = |y - F m|^2 at the posterior mean m."""
    return (
        d / 2 * np.log(alpha)
        + n / 2 * np.log(beta)
        - 0.5 * np.sum(np.log(alpha + beta * sigma))
        - beta / 2 * res2
        - alpha / 2 * m2
        - n / 2 * np.log(2 * np.pi)
    ) / n


def logme(f, y, n_target=None):
    """LogME's evidence maximisation written straightforwardly: per class (or per column
    of a 2-D target matrix y), the posterior mean m = (F^T F + t I)^{-1} F^T y and the
    residual y - F m solved for directly, alpha and beta updated by the authors' fixed
    point (from 1, at most 11 steps, stopped at 1e-3 relative, 1e-5 added to both
    denominators); the log-determinant over the thin SVD of F (min(n, D) terms, the
    public code's convention; singular values <= 1e-10 dropped when n > D, as there).
    The mean over every class in range(n_target) (default max(y) + 1) or column."""
    F = np.asarray(f, dtype=np.float64)
    n, D = F.shape
    s = np.linalg.svd(F, compute_uv=False)
    if n > D:
        s = s[s > 1e-10]
    sigma = s**2
    G = F.T @ F
    if y.ndim == 2:
        columns = [y[:, j].astype(np.float64) for j in range(y.shape[1])]
    else:
        Y = int(y.max()) + 1 if n_target is None else n_target
        columns = [(y == c).astype(np.float64) for c in range(Y)]
    evidences = []
    for yc in columns:
        alpha, beta = 1.0, 1.0
        for _ in range(11):
            t = alpha / beta
            A = G + t * np.eye(D)
            m = np.linalg.solve(A, F.T @ yc)
            gamma = float(np.trace(np.linalg.solve(A, G)))
            m2 = float(m @ m)
            res2 = float(np.sum((yc - F @ m) ** 2))
            alpha = gamma / (m2 + 1e-5)
            beta = (n - gamma) / (res2 + 1e-5)
            if abs(alpha / beta - t) / t <= 1e-3:
                break
        evidences.append(logme_evidence(alpha, beta, sigma, m2, res2, n, D))
    return float(np.mean(evidences))
