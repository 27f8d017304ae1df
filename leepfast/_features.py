"""Feature-based transferability scores from one streaming pass: H-score, regularized
H-score and LogME.

All three need only a few sufficient statistics of the features ``f`` (n, D) and the
target labels ``y`` (n,), which :class:`FeatureAccumulator` collects in one pass over
row blocks (in-memory arrays, memory-mapped ``.npy`` files, or batches you stream
yourself), in float64 whatever the input dtype:

    n, the per-class counts n_c (= y^T y for one-hot targets),
    s1 = sum_i u_i,  S2 = sum_i u_i u_i^T,  s3 = sum_i |u_i|^2 u_i,  s4 = sum_i |u_i|^4,
    T_c = sum_{i: y_i = c} u_i,

with u_i = f_i - K for a fixed shift K (the mean of the first block), which keeps the
centred moments free of cancellation when the features have a large mean. Moments about
any other point (the mean for the covariances, the origin for LogME's F^T F) follow
exactly from these by the binomial expansion (:func:`_translate`). Memory is O(D^2 + Y D)
plus one block, whatever n is. Inputs are never modified: every block is shifted into a
new float64 array.

    H-score (Bao et al. 2019)    tr(pinv(cov(f)) cov(E[f | y])), np.cov ddof=1 semantics,
                                 pinv with rcond=1e-15 (as the public implementations)
    regularized H (Ibrahim et al. 2022)
                                 tr(pinv(cov_a(f)) (1 - a) cov(E[f | y])), cov_a the
                                 Ledoit-Wolf shrinkage covariance (ddof=0) with its a
    LogME (You et al., JMLR 2022) mean over classes of the maximised evidence of a Bayesian
                                 linear model, fixed-point iteration of alpha and beta per
                                 class after one eigendecomposition of F^T F
"""

import math
import os
from contextlib import contextmanager

import numpy as np

from . import _files
from ._api import check_labels, check_n_target
from ._driver import ArraySource, block_rows, run_pass

#: pinv cut-off relative to the largest singular value, as in the public H-score code.
PINV_RCOND = 1e-15


# LogME constants of the authors' fixed-point algorithm (You et al., JMLR 2022).
_LOGME_EPSILON = 1e-5
_LOGME_MAX_ITER = 11
_LOGME_TOL = 1e-3


# ---------------------------------------------------------------------------------------
# Inputs


def _is_file_source(obj):
    """A path, glob, directory, list of them, or an opened Predictions object."""
    if isinstance(obj, (str, os.PathLike, _files.Predictions)):
        return True
    return (
        isinstance(obj, (list, tuple))
        and len(obj) > 0
        and all(isinstance(p, (str, os.PathLike)) for p in obj)
    )


@contextmanager
def _as_features():
    """File errors from the prediction-dump openers, said of ``features``."""
    try:
        yield
    except (ValueError, OSError) as err:
        msg = str(err)
        if msg.startswith("predictions"):
            msg = "features" + msg[len("predictions") :]
            msg = msg.replace("source classes", "features")
            raise type(err)(msg) from None
        raise


def check_features(features, name="features"):
    """The features as a 2-D float16/32/64 ndarray (never copied here)."""
    arr = features if isinstance(features, np.ndarray) else np.asarray(features)
    if arr.dtype.kind != "f" or arr.dtype.itemsize not in (2, 4, 8):
        raise TypeError(
            f"{name}: expected a float16, float32 or float64 array, got dtype={arr.dtype}"
        )
    if arr.ndim != 2:
        raise ValueError(
            f"{name}: expected a 2-D array of shape (n_samples, n_features), "
            f"got ndim={arr.ndim} with shape {arr.shape}"
        )
    if arr.shape[1] == 0:
        raise ValueError(f"{name}: expected at least one feature, got shape {arr.shape}")
    return arr


# ---------------------------------------------------------------------------------------
# Moments about a point


def _translate(n, s1, S2, s3, s4, d):
    """Moments of w = u + d from the moments of u (all sums over the same n rows).

    Returns (s1', S2', s3', s4') with s1' = sum w, S2' = sum w w^T, s3' = sum |w|^2 w,
    s4' = sum |w|^4. Exact algebra (binomial expansion); float64.
    """
    e = float(d @ d)
    s1d = float(s1 @ d)
    trS2 = float(np.trace(S2))
    S2d = S2 @ d
    new_s1 = s1 + n * d
    outer = np.outer(d, s1)
    new_S2 = S2 + outer + outer.T + n * np.outer(d, d)
    new_s3 = s3 + trS2 * d + 2.0 * S2d + 2.0 * s1d * d + e * s1 + n * e * d
    new_s4 = (
        s4
        + 4.0 * float(d @ S2d)
        + n * e * e
        + 4.0 * float(d @ s3)
        + 2.0 * e * trS2
        + 4.0 * e * s1d
    )
    return new_s1, new_S2, new_s3, new_s4


def _symmetric(A):
    return 0.5 * (A + A.T)


def _trace_pinv_product(A, B, rcond=PINV_RCOND):
    """tr(pinv(A) B) with pinv as numpy's: singular values <= rcond * max are dropped."""
    u, s, vh = np.linalg.svd(A)
    if s.size == 0 or s[0] == 0.0:
        return 0.0
    keep = s > rcond * s[0]
    # pinv(A) = vh[keep].T diag(1/s) u[:, keep].T ; tr(pinv(A) B) = sum_j (u_j^T B v_j)/s_j
    u, s, vh = u[:, keep], s[keep], vh[keep]
    return float(np.sum(np.einsum("ij,ji->i", u.T @ B, vh.T) / s))


# ---------------------------------------------------------------------------------------
# The one-pass accumulator


class FeatureAccumulator:
    """Sufficient statistics of (features, labels) for H-score, regularized H-score and
    LogME, collected in one pass over batches you stream yourself.

    Parameters
    ----------
    n_target : int, optional
        Y. By default it grows to max(label) + 1 over the batches.

    Notes
    -----
    The state is O(D^2 + Y D) float64 numbers (F^T F about a shift, per-class sums,
    counts, and the third and fourth moment sums that the Ledoit-Wolf shrinkage needs),
    whatever n is. Every batch is converted to float64 in a new block-sized array, so
    the input is never modified; float16 and float32 features are accumulated in
    float64. States merge with :meth:`merge` (shards, processes).

    Examples
    --------
    >>> acc = FeatureAccumulator()
    >>> for f, y in batches:          # doctest: +SKIP
    ...     acc.update(f, y)
    >>> acc.h_score(), acc.regularized_h_score(), acc.logme()   # doctest: +SKIP
    """

    def __init__(self, n_target=None):
        self.n_target = check_n_target(n_target)
        self.n_samples = 0
        self.n_features = None
        self.shift = None  # K, float64 (D,)
        self._s1 = self._S2 = self._s3 = None
        self._s4 = 0.0
        self._class_sums = None  # (Y, D), sums of u per class
        self._class_counts = None  # (Y,), int64

    # -- accumulation -------------------------------------------------------------------

    def _grow(self, n_target):
        if self._class_sums is None:
            self._class_sums = np.zeros((n_target, self.n_features))
            self._class_counts = np.zeros(n_target, dtype=np.int64)
        elif n_target > self._class_sums.shape[0]:
            grow = n_target - self._class_sums.shape[0]
            self._class_sums = np.pad(self._class_sums, ((0, grow), (0, 0)))
            self._class_counts = np.pad(self._class_counts, (0, grow))

    def update(self, features, labels, *, first_row=0, where=""):
        """Add a batch.

        Parameters
        ----------
        features : array of shape (n_batch, n_features), float16, float32 or float64
            Finite feature rows. Never modified.
        labels : array of shape (n_batch,), any integer dtype
            Target labels in [0, n_target).
        first_row : int, default 0
            Index of the batch's first row in the whole dataset, for error messages.
        """
        features = check_features(features, f"features{where}")
        labels = check_labels(labels, features.shape[0], f"labels{where}")
        if self.n_features is None:
            self.n_features = features.shape[1]
        elif features.shape[1] != self.n_features:
            raise ValueError(
                f"features{where}: expected {self.n_features} features (columns), as in "
                f"earlier batches, got {features.shape[1]}"
            )
        if features.shape[0] == 0:
            return self
        u = np.array(features, dtype=np.float64)  # a new array: the input is untouched
        finite = np.isfinite(u).all(axis=1)
        if not finite.all():
            row = int(np.argmin(finite))
            raise ValueError(
                f"features{where}: row {first_row + row} contains NaN or infinity; "
                f"expected finite features"
            )
        lab = np.asarray(labels, dtype=np.int64)
        low, high = int(lab.min()), int(lab.max())
        n_target = self.n_target
        if low < 0 or (n_target is not None and high >= n_target):
            row = int(np.argmax((lab < 0) | (lab >= (n_target or high + 1))))
            bound = n_target if n_target is not None else "n_target"
            raise ValueError(
                f"labels{where}: row {first_row + row} is {labels[row]}; expected an "
                f"integer in [0, {bound})"
            )
        if n_target is None:
            seen = 0 if self._class_sums is None else self._class_sums.shape[0]
            n_target = max(seen, high + 1)
        if self.shift is None:
            self.shift = u.mean(axis=0)
            D = self.n_features
            self._s1 = np.zeros(D)
            self._S2 = np.zeros((D, D))
            self._s3 = np.zeros(D)
        self._grow(n_target)
        u -= self.shift
        r2 = np.einsum("ij,ij->i", u, u)
        self._s1 += u.sum(axis=0)
        self._S2 += u.T @ u
        self._s3 += r2 @ u
        self._s4 += float(r2 @ r2)
        np.add.at(self._class_sums, lab, u)
        self._class_counts += np.bincount(lab, minlength=self._class_counts.shape[0])
        self.n_samples += u.shape[0]
        return self

    def feed(self, source):
        """Add every block of a row source (see :mod:`leepfast._driver`)."""
        run_pass(
            lambda b: self.update(b.rows, b.labels, first_row=b.first_row, where=b.where),
            source,
        )
        return self

    def merge(self, other):
        """Add another accumulator's statistics (same number of features) to this one."""
        if not isinstance(other, FeatureAccumulator):
            raise TypeError(
                f"merge: expected a FeatureAccumulator, got {type(other).__name__}"
            )
        if other.n_samples == 0:
            return self
        if self.n_features is not None and other.n_features != self.n_features:
            raise ValueError(
                f"merge: expected {self.n_features} features, got {other.n_features}"
            )
        if self.n_samples == 0:
            self.n_features = other.n_features
            self.shift = other.shift.copy()
            D = self.n_features
            self._s1, self._S2, self._s3 = np.zeros(D), np.zeros((D, D)), np.zeros(D)
            self._s4 = 0.0
        # other's moments about its shift K2, moved to this shift K1: w = u + (K2 - K1)
        d = other.shift - self.shift
        s1, S2, s3, s4 = _translate(
            other.n_samples, other._s1, other._S2, other._s3, other._s4, d
        )
        self._grow(max(other._class_sums.shape[0], self.n_target or 0))
        y = other._class_sums.shape[0]
        self._s1 += s1
        self._S2 += S2
        self._s3 += s3
        self._s4 += s4
        self._class_sums[:y] += other._class_sums + other._class_counts[:, None] * d
        self._class_counts[:y] += other._class_counts
        self.n_samples += other.n_samples
        return self

    # -- derived statistics -------------------------------------------------------------

    def _need(self, n_min, what):
        if self.n_samples < n_min:
            raise ValueError(
                f"{what}: needs at least {n_min} sample{'s' if n_min > 1 else ''}, "
                f"got n_samples={self.n_samples}"
            )

    @property
    def class_counts(self):
        """ndarray of shape (n_target,), int64: samples per class."""
        return self._class_counts.copy()

    @property
    def mean(self):
        """ndarray of shape (n_features,), float64: the feature mean."""
        self._need(1, "mean")
        return self.shift + self._s1 / self.n_samples

    def _centred(self):
        """(S2, s4) about the mean: the scatter matrix and sum |f - mean|^4."""
        d = -self._s1 / self.n_samples
        _, S2, _, s4 = _translate(self.n_samples, self._s1, self._S2, self._s3, self._s4, d)
        return _symmetric(S2), max(s4, 0.0)

    def gram(self):
        """F^T F about the origin, ndarray of shape (n_features, n_features), float64."""
        self._need(1, "gram")
        n, K = self.n_samples, self.shift
        outer = np.outer(K, self._s1)
        return _symmetric(self._S2 + outer + outer.T + n * np.outer(K, K))

    def class_sums(self):
        """Per-class feature sums about the origin, F^T Y: (n_target, n_features)."""
        self._need(1, "class_sums")
        return self._class_sums + self._class_counts[:, None] * self.shift

    def covariance(self, ddof=1):
        """cov(f) with np.cov's ddof semantics: (n_features, n_features), float64."""
        self._need(ddof + 1, "covariance")
        S2, _ = self._centred()
        return S2 / (self.n_samples - ddof)

    def between_class_covariance(self, ddof=1):
        """cov(E[f | y]): np.cov (ddof) of the rows f_i replaced by their class mean."""
        self._need(ddof + 1, "between_class_covariance")
        counts = self._class_counts
        present = counts > 0
        diff = self._class_sums[present] / counts[present, None] - self._s1 / self.n_samples
        B = (diff * counts[present, None]).T @ diff
        return _symmetric(B) / (self.n_samples - ddof)

    def ledoit_wolf(self):
        """The Ledoit-Wolf shrunk covariance and its shrinkage, as sklearn computes them.

        Returns
        -------
        covariance : ndarray of shape (n_features, n_features), float64
            (1 - a) S + a (tr(S) / D) I, with S the empirical covariance (ddof=0).
        shrinkage : float
            a in [0, 1] (0 when D == 1, or when S is already a multiple of I).
        """
        self._need(1, "ledoit_wolf")
        n, D = self.n_samples, self.n_features
        S2, s4 = self._centred()
        S = S2 / n
        mu = float(np.trace(S)) / D
        if D == 1:
            return S.copy(), 0.0
        # beta: (1/(n D)) (sum_i |x_i|^4 / n - |S|_F^2); delta: |S - mu I|_F^2 / D
        delta_ = float(np.sum(S * S))
        beta = (s4 / n - delta_) / (D * n)
        target = S.copy()
        target.flat[:: D + 1] -= mu
        delta = float(np.sum(target * target)) / D
        beta = min(beta, delta)
        shrinkage = 0.0 if beta <= 0.0 or delta <= 0.0 else beta / delta
        shrunk = (1.0 - shrinkage) * S
        shrunk.flat[:: D + 1] += shrinkage * mu
        return shrunk, shrinkage

    # -- scores -------------------------------------------------------------------------

    def h_score(self):
        """H-score: tr(pinv(cov(f)) cov(E[f | y])), see :func:`h_score`."""
        self._need(2, "h_score")
        return _trace_pinv_product(self.covariance(1), self.between_class_covariance(1))

    def regularized_h_score(self):
        """Regularized H-score (Ledoit-Wolf), see :func:`regularized_h_score`."""
        self._need(2, "regularized_h_score")
        cov, a = self.ledoit_wolf()
        return _trace_pinv_product(cov, (1.0 - a) * self.between_class_covariance(1))

    def logme(self):
        """LogME, see :func:`logme`."""
        self._need(1, "logme")
        return _logme(self.gram(), self.class_sums(), self._class_counts, self.n_samples)


# ---------------------------------------------------------------------------------------
# LogME from F^T F, F^T Y and the class counts


def _logme_evidence(alpha, beta, sigma, x2, res_x2, n, D, k):
    """log p(y | alpha, beta) / n for one class, with m and the residual at t = alpha/beta.

    sigma: the nonzero eigenvalues of F^T F; x2: the squared coordinates of y on the
    matching left singular vectors; res_x2: |y|^2 - sum(x2); n_logdet: how many
    eigen-directions enter the log-determinant (the zero ones add log(alpha) each).
    """
    t = alpha / beta
    m2 = float(np.sum(sigma * x2 / (t + sigma) ** 2))
    res2 = float(np.sum(x2 / (1.0 + sigma / t) ** 2)) + res_x2
    return _evidence_value(alpha, beta, sigma, m2, res2, n, D, k)


def _evidence_value(alpha, beta, sigma, m2, res2, n, D, k):
    logdet = float(np.sum(np.log(alpha + beta * sigma))) + (k - sigma.size) * math.log(
        alpha
    )
    return (
        D / 2.0 * math.log(alpha)
        + n / 2.0 * math.log(beta)
        - 0.5 * logdet
        - beta / 2.0 * res2
        - alpha / 2.0 * m2
        - n / 2.0 * math.log(2.0 * math.pi)
    ) / n


def _logme(G, T, counts, n):
    """Mean over classes of the maximised evidence, from G = F^T F, T = F^T Y, counts."""
    D = G.shape[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        lam, V = np.linalg.eigh(G)
    lam = lam[::-1]
    V = V[:, ::-1]
    # Eigenvalues of F^T F below D * eps * max are rounding noise: treated as exactly 0.
    top = lam[0] if lam.size else 0.0
    resolved = lam > max(top, 0.0) * D * np.finfo(np.float64).eps
    if top <= 0.0:
        resolved[:] = False
    sigma = lam[resolved]
    s = np.sqrt(sigma)
    # Directions in the log-determinant: all min(n, D) singular values of F when n <= D
    # (the authors' thin SVD), the numerical rank when n > D (their truncated SVD).
    k = min(n, D) if n <= D else int(sigma.size)
    X = (T @ V[:, resolved]) / s  # (Y, r): coordinates of each class indicator on U
    evidences = []
    with np.errstate(divide="ignore", invalid="ignore"):
        for c in range(T.shape[0]):
            x2 = X[c] ** 2
            res_x2 = float(counts[c]) - float(np.sum(x2))
            alpha, beta = 1.0, 1.0
            for _ in range(_LOGME_MAX_ITER):
                t = alpha / beta
                gamma = float(np.sum(sigma / (sigma + t)))
                m2 = float(np.sum(sigma * x2 / (t + sigma) ** 2))
                res2 = float(np.sum(x2 / (1.0 + sigma / t) ** 2)) + res_x2
                alpha = gamma / (m2 + _LOGME_EPSILON)
                beta = (n - gamma) / (res2 + _LOGME_EPSILON)
                if alpha <= 0.0 or abs(alpha / beta - t) / t <= _LOGME_TOL:
                    break
            # the authors evaluate the evidence at the new alpha, beta with the m2, res2
            # of the last iteration (not refreshed): kept, to equal their values
            if alpha <= 0.0:
                evidences.append(-math.inf)
                continue
            evidences.append(_evidence_value(alpha, beta, sigma, m2, res2, n, D, k))
    return float(np.mean(evidences))


# ---------------------------------------------------------------------------------------
# Public functions


def feature_statistics(
    features, labels, *, n_target=None, dtype=None, n_features=None, block_size=None
):
    """One streaming pass over features and labels: a :class:`FeatureAccumulator`.

    Parameters
    ----------
    features : array of shape (n_samples, n_features), or file(s)
        float16, float32 or float64. In memory (memory maps are read block by block), or
        the same file sources as prediction dumps (:func:`leepfast.open_predictions`): a
        ``.npy`` path (memory-mapped, never unpickled), raw little-endian binary (give
        ``dtype`` and ``n_features``), a directory, a glob or a list of shards read as
        one dataset in order. Never loaded whole, so dumps larger than RAM work.
    labels : array of shape (n_samples,), any integer dtype, or a file
        An array, a 1-D integer ``.npy`` file, or text with one integer per line.
    n_target : int, optional
        Number of target classes Y; default max(labels) + 1.
    dtype : {"float16", "float32", "float64"}, optional
        Raw feature files: the value type.
    n_features : int, optional
        Raw feature files: values per row (D).
    block_size : int, optional
        Rows per block (default: about 32 MiB of input per block).
    """
    if _is_file_source(features):
        return _statistics_from_files(
            features, labels, n_target, dtype, n_features, block_size
        )
    features = check_features(features)
    if isinstance(labels, (str, os.PathLike, _files.Labels)):
        opened = _files.open_labels(labels)
        n_target = opened.check_range(n_target)
        labels = np.concatenate(list(opened.chunks()))
    labels = check_labels(labels, features.shape[0])
    if features.shape[0] == 0:
        raise ValueError(
            f"features: expected at least one sample, got shape {features.shape}"
        )
    rows = block_rows(block_size, features.shape[1], features.itemsize)
    return FeatureAccumulator(n_target).feed(ArraySource(features, labels, rows))


def _statistics_from_files(features, labels, n_target, dtype, n_features, block_size):
    with _as_features():
        if isinstance(features, _files.Predictions):
            preds = features
        else:
            preds = _files.open_predictions(features, dtype=dtype, n_source=n_features)
    opened = _files.open_labels(labels)
    if opened.n_samples != preds.n_samples:
        raise ValueError(
            f"{opened.where}: expected {preds.n_samples} labels (one per row of "
            f"features), got {opened.n_samples}"
        )
    n_target = opened.check_range(n_target)
    return FeatureAccumulator(n_target).feed(_files.FileRows(preds, opened, block_size))


_PARAMETERS = """
    Parameters
    ----------
    features : array of shape (n_samples, n_features), float16, float32 or float64, or
        file(s)
        Frozen features of the source model on the target samples. Read once, block by
        block, never loaded whole and never modified; accumulated in float64. Files: the
        same sources as prediction dumps (``.npy`` memory-mapped and never unpickled,
        raw binary with ``dtype`` and ``n_features``, a directory, a glob or a list of
        shards).
    labels : array of shape (n_samples,), any integer dtype, or a file
        Target labels in [0, n_target): an array, a 1-D integer ``.npy``, or text with
        one integer per line.
    n_target : int, optional
        Number of target classes Y; default max(labels) + 1.
    dtype : {"float16", "float32", "float64"}, optional
        Raw feature files: the value type.
    n_features : int, optional
        Raw feature files: values per row (D).
    block_size : int, optional
        Rows per block (default: about 32 MiB of input per block).
"""


def h_score(
    features, labels, *, n_target=None, dtype=None, n_features=None, block_size=None
):
    """H-score (Bao et al. 2019): tr(pinv(cov(f)) cov(E[f | y])).
    {params}
    Returns
    -------
    float
        Larger: more transferable. Both covariances use np.cov's ddof=1; the
        pseudo-inverse drops singular values <= 1e-15 times the largest (``PINV_RCOND``,
        as in the public implementations). Absent classes contribute nothing.

    Notes
    -----
    With D >= n - 1 (features in general position) the centred features span the whole
    sample space, so every labelling is linearly explained: the H-score is then its
    maximum, the number of present classes minus 1, for any model, and tells models
    apart no more. With nearly collinear features cov(f) has eigenvalues near rounding
    noise that the pseudo-inverse at rcond=1e-15 still inverts, so the value can jump.
    Both motivated :func:`regularized_h_score`, which stays informative. Needs n >= 2.
    """
    return feature_statistics(
        features,
        labels,
        n_target=n_target,
        dtype=dtype,
        n_features=n_features,
        block_size=block_size,
    ).h_score()


def regularized_h_score(
    features, labels, *, n_target=None, dtype=None, n_features=None, block_size=None
):
    """Regularized H-score (Ibrahim, Ponomareva, Mazumder 2022), shrinkage covariance.
    {params}
    Returns
    -------
    float
        tr(pinv(cov_a(f)) (1 - a) cov(E[f | y])), cov_a = (1 - a) S + a (tr(S)/D) I the
        Ledoit-Wolf estimate (S with ddof=0, a its Ledoit-Wolf shrinkage, as
        ``sklearn.covariance.ledoit_wolf``), cov(E[f | y]) with ddof=1. Well defined
        for D >= n: cov_a is positive definite whenever a > 0.
    """
    return feature_statistics(
        features,
        labels,
        n_target=n_target,
        dtype=dtype,
        n_features=n_features,
        block_size=block_size,
    ).regularized_h_score()


def logme(features, labels, *, n_target=None, dtype=None, n_features=None, block_size=None):
    """LogME (You et al., JMLR 2022): the mean over classes of the maximised
    log-evidence per sample of a Bayesian linear model from the features to each
    one-hot target column.
    {params}
    Returns
    -------
    float
        Larger: more transferable. Equal (1e-6) to the authors' public fixed-point
        algorithm: alpha = beta = 1, at most 11 fixed-point updates per class, stopped
        when alpha/beta changes by <= 1e-3 relative, 1e-5 added to the two denominators.

    Notes
    -----
    Computed from F^T F (one eigendecomposition, O(D^3)), F^T Y and the class counts,
    so one streaming pass suffices. Features are not centred. Eigenvalues of F^T F
    below D * eps * max are treated as exactly zero. For n > D with full column rank
    the value is the exact evidence. For D >= n, like the authors' code (which takes a
    thin SVD of F), min(n, D) eigen-directions enter the log-determinant, so the value
    is larger than the exact marginal likelihood of the D-dimensional model by
    (D - n) log(alpha) / (2 n). Rank-deficient features with n > D use the numerical
    rank (the authors' absolute 1e-10 threshold on singular values may count rounding
    noise as rank there, so the two can differ in that case only). Features that are
    all zero give -inf.
    """
    return feature_statistics(
        features,
        labels,
        n_target=n_target,
        dtype=dtype,
        n_features=n_features,
        block_size=block_size,
    ).logme()


for _f in (h_score, regularized_h_score, logme):
    _f.__doc__ = _f.__doc__.replace("{params}", _PARAMETERS)
del _f
