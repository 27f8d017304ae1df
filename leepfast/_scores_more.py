"""The scores researchers compare LEEP against: TransRate, GBC and N-LEEP.

Each follows the definition of its paper in the convention of its public code (stated
per function, with where the two differ), streams the features in row blocks where its
math allows, and checks its inputs like the other feature scores. Features are arrays,
tensors or files of any format the readers take (shards too), labels arrays or label
files; features on disk are read whole into memory here, once (GBC and N-LEEP read the
rows several times: a PCA, a mixture fit). Classes are the classes present in
``labels`` (a class with no sample has no statistics).

    TransRate (Huang et al., ICML 2022)   R(Z) - mean_c R(Z_c), R the coding rate
    GBC (Pandy et al., CVPR 2022)         -sum_{c != c'} exp(-D_B(c, c')), per-class
                                          diagonal or spherical Gaussians
    N-LEEP (Li et al., CVPR 2021)         LEEP of a Gaussian mixture's posteriors on the
                                          PCA-reduced features
"""

import os

import numpy as np

from . import readers
from ._api import check_labels
from ._driver import block_rows
from ._errors import LabelError, NonFiniteError, ShapeError, StateSizeError
from ._tensors import as_floats, as_host_array
from ._typing import LabelsLike, RowsLike

#: TransRate's per-class Gram matrices (Y x D x D float64) are refused past this size.
TRANSRATE_MAX_STATE_BYTES = 2 << 30

#: GBC's variance floor, as in the public code (constant features would give log 0).
GBC_MIN_VARIANCE = 1e-4


def _read_whole(features):
    """Features on disk (any reader's format, shards) read into one array of their
    dtype: these scores need the rows more than twice (PCA, a mixture fit), so files
    cost their size in memory here, once."""
    with readers.open_predictions(features, role="features") as opened:
        dtype = np.result_type(
            *(as_floats(np.empty(0, f.dtype)).dtype.newbyteorder("=") for f in opened.files)
        )
        out = np.empty((opened.n_samples, opened.n_source), dtype)
        for _, first, start, block in opened.blocks():
            out[first + start : first + start + len(block)] = as_floats(block)
    return out


def _inputs(features, labels, name="features"):
    if readers.is_file_source(features):
        features = _read_whole(features)
    if isinstance(labels, (str, os.PathLike, readers.Labels)):
        labels = readers.open_labels(labels, rows="features").array()
    f, _ = as_host_array(features, name)
    if f.dtype.kind != "f" or f.dtype.itemsize not in (2, 4, 8):
        raise TypeError(
            f"{name}: expected a float16, float32 or float64 array, got dtype={f.dtype}"
        )
    if f.ndim != 2 or f.shape[0] == 0 or f.shape[1] == 0:
        raise ShapeError(
            f"{name}: expected a 2-D array of shape (n_samples, n_features) with at "
            f"least one of each, got shape {f.shape}",
            name,
        )
    y = check_labels(labels, f.shape[0], rows="features", whole=True)
    if y.dtype.kind == "i" and y.min() < 0:
        row = int(np.argmax(y < 0))
        raise LabelError(f"labels: row {row} is {y[row]}; expected labels >= 0", "labels")
    return f, y


def _blocks(f, y, block_size):
    """float64 copies of row blocks (the input is never modified), checked finite."""
    rows = block_rows(block_size, f.shape[1], 8)
    for start in range(0, f.shape[0], rows):
        u = np.array(f[start : start + rows], dtype=np.float64)
        finite = np.isfinite(u).all(axis=1)
        if not finite.all():
            row = start + int(np.argmin(finite))
            raise NonFiniteError(
                f"features: row {row} contains NaN or infinity; expected finite features",
                "features",
            )
        yield u, np.asarray(y[start : start + rows], dtype=np.int64)


def _by_class(u, idx):
    """(class index, its rows of the block u) for each class present in the block."""
    order = np.argsort(idx, kind="stable")
    for part in np.split(order, np.flatnonzero(np.diff(idx[order])) + 1):
        yield idx[part[0]], u[part]


def _classes(y):
    """The classes present, and the labels as indices into them."""
    present, index = np.unique(y, return_inverse=True)
    return present, index.reshape(-1)


# ---------------------------------------------------------------------------------------
# TransRate


def _coding_rate(gram, n, eps):
    """R = 1/2 log det(I + Z^T Z / (n eps)) from Z^T Z."""
    d = gram.shape[0]
    sign, logdet = np.linalg.slogdet(np.eye(d) + gram / (n * eps))
    return 0.5 * logdet


def transrate(
    features: RowsLike,
    labels: LabelsLike,
    *,
    eps: float = 1e-4,
    block_size: int | None = None,
    max_state_bytes: int = TRANSRATE_MAX_STATE_BYTES,
) -> float:
    """TransRate (Huang et al., ICML 2022): how well the features code the classes.

    With Z the features centred on their mean,
    ``TransRate = R(Z) - (1/K) sum_c R(Z_c)``, ``R(Z) = 1/2 log det(I + Z^T Z / (n eps))``
    and Z_c the rows of class c (centred on the overall mean, n_c rows), K the number of
    classes present. This is the authors' public code (eps = 1e-4, the 1/K average); the
    paper writes the class term weighted by n_c / n with a d / eps^2 scale instead.
    Larger is better.

    The statistics are streamed: per-class sums and Gram matrices about a fixed shift,
    Y x D x D float64 numbers (refused with :class:`StateSizeError` past
    ``max_state_bytes``, default 2 GiB: reduce D first, e.g. by PCA).
    """
    f, y = _inputs(features, labels)
    present, index = _classes(y)
    n_classes, d = len(present), f.shape[1]
    need = 8 * n_classes * d * d
    if need > max_state_bytes:
        raise StateSizeError(
            f"features: TransRate needs {n_classes} per-class Gram matrices of "
            f"{d} x {d} ({need / 1e9:.3g} GB), more than max_state_bytes="
            f"{max_state_bytes}; reduce n_features (e.g. by PCA) or raise the limit",
            "features",
        )
    if eps <= 0:
        raise ValueError(f"eps: expected a positive number, got {eps}")
    counts = np.bincount(index, minlength=n_classes)
    sums = np.zeros((n_classes, d))
    grams = np.zeros((n_classes, d, d))
    shift = None
    start = 0
    for u, _ in _blocks(f, y, block_size):
        if shift is None:
            shift = u.mean(axis=0)
        u -= shift
        for c, uc in _by_class(u, index[start : start + len(u)]):
            sums[c] += uc.sum(axis=0)
            grams[c] += uc.T @ uc
        start += len(u)
    n = f.shape[0]
    mu = sums.sum(axis=0) / n  # the overall mean, in shifted coordinates
    total = grams.sum(axis=0) - n * np.outer(mu, mu)
    rate = _coding_rate(total, n, eps)
    per_class = 0.0
    for c in range(n_classes):
        cross = np.outer(sums[c], mu)
        zc = grams[c] - cross - cross.T + counts[c] * np.outer(mu, mu)
        per_class += _coding_rate(zc, counts[c], eps)
    return float(rate - per_class / n_classes)


# ---------------------------------------------------------------------------------------
# GBC


def _principal_axes(f, y, block_size, n_components=None, variance_kept=None):
    """(mean, W): the overall mean and the top principal axes (D, k) of the features,
    from one streamed pass (F^T F about a shift), k = n_components or the fewest axes
    whose explained variance ratio exceeds variance_kept (as scikit-learn's PCA)."""
    d = f.shape[1]
    shift, s1, s2 = None, np.zeros(d), np.zeros((d, d))
    for u, _ in _blocks(f, y, block_size):
        if shift is None:
            shift = u.mean(axis=0)
        u -= shift
        s1 += u.sum(axis=0)
        s2 += u.T @ u
    n = f.shape[0]
    m = s1 / n
    cov = (s2 - n * np.outer(m, m)) / max(n - 1, 1)
    values, vectors = np.linalg.eigh((cov + cov.T) / 2)
    values, vectors = values[::-1], vectors[:, ::-1]
    if n_components is None:
        ratio = np.cumsum(np.maximum(values, 0)) / max(
            np.sum(np.maximum(values, 0)), 1e-300
        )
        n_components = int(np.searchsorted(ratio, variance_kept, side="right")) + 1
    n_components = min(n_components, d, n)
    return shift + m, vectors[:, :n_components]


def gbc(
    features: RowsLike,
    labels: LabelsLike,
    *,
    gaussian: str = "spherical",
    pca: int | None = None,
    block_size: int | None = None,
) -> float:
    """GBC, the Gaussian Bhattacharyya Coefficient (Pandy et al., CVPR 2022).

    Each class is a Gaussian with the class mean and the per-dimension population
    variance (ddof 0, floored at 1e-4) of its features; ``gaussian="spherical"`` (the
    default, as the public code) uses the mean of those variances in every dimension.
    With D_B the Bhattacharyya distance,
    ``GBC = -sum over ordered pairs c != c' of exp(-D_B(c, c'))`` (<= 0, larger: better
    separated classes). ``pca=k`` first projects the features on their top k principal
    axes (the paper uses 64; the public scoring function takes features already
    reduced). As in the public code, the spherical distance's log-determinant terms are
    those of one dimension, not D.

    Streamed in two passes at most (one for the axes when ``pca`` is given, one for the
    per-class means and variances, merged block by block with Chan's update).
    """
    if gaussian not in ("spherical", "diagonal"):
        raise ValueError(f"gaussian: expected 'spherical' or 'diagonal', got {gaussian!r}")
    f, y = _inputs(features, labels)
    present, index = _classes(y)
    if len(present) < 2:
        raise LabelError(
            f"labels: GBC needs at least 2 classes, got {len(present)}", "labels"
        )
    axes = None
    if pca is not None:
        if isinstance(pca, bool) or not isinstance(pca, (int, np.integer)) or pca < 1:
            raise ValueError(f"pca: expected None or a positive integer, got {pca!r}")
        axes = _principal_axes(f, y, block_size, n_components=int(pca))
    k = f.shape[1] if axes is None else axes[1].shape[1]
    n_classes = len(present)
    counts = np.zeros(n_classes)
    means = np.zeros((n_classes, k))
    m2 = np.zeros((n_classes, k))
    start = 0
    for rows, _ in _blocks(f, y, block_size):
        u = rows if axes is None else (rows - axes[0]) @ axes[1]
        for c, uc in _by_class(u, index[start : start + len(u)]):
            nb = len(uc)
            mb = uc.mean(axis=0)
            m2b = ((uc - mb) ** 2).sum(axis=0)
            na = counts[c]
            delta = mb - means[c]
            tot = na + nb
            means[c] += delta * (nb / tot)
            m2[c] += m2b + delta**2 * (na * nb / tot)
            counts[c] = tot
        start += len(rows)
    variances = np.maximum(m2 / counts[:, None], GBC_MIN_VARIANCE)
    if gaussian == "spherical":
        variances = variances.mean(axis=1, keepdims=True)
    total = 0.0
    logs = np.log(variances).sum(axis=1)
    for c in range(n_classes):
        avg = (variances[c] + variances) / 2  # (Y, k) or (Y, 1)
        first = np.sum((means[c] - means) ** 2 / avg, axis=1) / 8
        second = np.log(avg).sum(axis=1) - 0.5 * logs[c] - 0.5 * logs
        coefficient = np.exp(-(first + 0.5 * second))
        coefficient[c] = 0.0
        total += coefficient.sum()
    return float(-total)


# ---------------------------------------------------------------------------------------
# N-LEEP


def nleep(
    features: RowsLike,
    labels: LabelsLike,
    *,
    variance_kept: float = 0.8,
    components_per_class: int = 5,
    covariance_type: str = "full",
    random_state: "int | np.random.RandomState | None" = 0,
    max_iter: int = 100,
    backend: str = "auto",
    block_size: int | None = None,
) -> float:
    """N-LEEP (Li et al., CVPR 2021, "Ranking Neural Checkpoints").

    The features are reduced by PCA to the fewest principal axes that explain more than
    ``variance_kept`` of the variance (0.8, the paper's and the public code's choice); a
    Gaussian mixture of ``components_per_class x K`` components (K the classes present;
    5 in the public code) is fitted to them (scikit-learn's ``GaussianMixture``, the
    given ``covariance_type``, ``random_state`` and ``max_iter``); N-LEEP is the exact
    LEEP (a mean log, <= 0) of the mixture's posteriors as source predictions. Some
    public code reports the mean EEP without the log under the same name; leepfast
    returns the paper's log form.

    The PCA is streamed; the mixture fit holds the reduced features (n x k float64) in
    memory. Needs scikit-learn (``pip install 'leepfast[scores]'``).
    """
    try:
        from sklearn.mixture import GaussianMixture
    except ImportError:
        raise ImportError(
            "nleep needs scikit-learn: pip install 'leepfast[scores]'"
        ) from None
    if not 0 < variance_kept <= 1:
        raise ValueError(f"variance_kept: expected a number in (0, 1], got {variance_kept}")
    f, y = _inputs(features, labels)
    present, index = _classes(y)
    mean, axes = _principal_axes(f, y, block_size, variance_kept=variance_kept)
    reduced = np.concatenate(
        [(u - mean) @ axes for u, _ in _blocks(f, y, block_size)], axis=0
    )
    components = components_per_class * len(present)
    while components >= reduced.shape[0] and components > len(present):
        components -= len(present)  # as the public code, for tiny target sets
    mixture = GaussianMixture(
        n_components=components,
        covariance_type=covariance_type,
        random_state=random_state,
        max_iter=max_iter,
    ).fit(reduced)
    posteriors = mixture.predict_proba(reduced)
    from ._api import leep

    return leep(posteriors, index, backend=backend)
