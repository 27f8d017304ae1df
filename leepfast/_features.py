"""Feature-based transferability scores from one streaming pass: H-score, regularized
H-score and LogME.

All three need only a few sufficient statistics of the features ``f`` (n, D) and the
target labels ``y`` (n,), which :class:`FeatureAccumulator` collects in one pass over
row blocks (in-memory arrays, memory-mapped ``.npy`` files, or batches you stream
yourself), in float64 whatever the input dtype:

    n, the per-class counts n_c (= y^T y for one-hot targets),
    s1 = sum_i u_i,  S2 = sum_i u_i u_i^T,  s3 = sum_i |u_i|^2 u_i,  s4 = sum_i |u_i|^4,
    T_c = sum_{i: y_i = c} u_i  (for the classes c present only),

with u_i = f_i - K for a fixed shift K (the mean of the first block), which keeps the
centred moments free of cancellation when the features have a large mean. Moments about
any other point (the mean for the covariances, the origin for LogME's F^T F) follow
exactly from these by the binomial expansion (:func:`_translate`). Memory is O(D^2 + k D)
for the k classes present, plus one block, whatever n is. Inputs are never modified:
every block is copied once, shifted and in label order, into float64 scratch rows,
slice by slice, each slice's T_c (contiguous runs of rows) and s3, s4 (O(D) per row)
taken while it is in cache; the block's S2 is then one BLAS syrk over those rows.

    H-score (Bao et al. 2019)    tr(pinv(cov(f)) cov(E[f | y])), np.cov ddof=1 semantics,
                                 pinv with rcond=1e-15 (as the public implementations)
    regularized H (Ibrahim et al. 2022)
                                 tr(pinv(cov_a(f)) (1 - a) cov(E[f | y])), cov_a the
                                 Ledoit-Wolf shrinkage covariance (ddof=0) with its a
    LogME (You et al., JMLR 2022) mean over classes of the maximised evidence of a Bayesian
                                 linear model, fixed-point iteration of alpha and beta per
                                 class after one eigendecomposition of F^T F; or over the
                                 columns of a target matrix Y (n, k) (regression,
                                 multi-label), from Y^T F and sum y^2 per column instead
                                 of T_c and n_c
"""

import math
import os

import numpy as np

from . import _files, readers
from ._api import check_labels, check_n_target, first_non_integer, not_an_integer
from ._config import default_threads
from ._driver import ArraySource, RowSource, block_rows, run_pass
from ._errors import InputError, LabelError, NonFiniteError, ShapeError
from ._openmp import kernels_or_none
from ._options import takes_arguments_of
from ._state import check_feature_state_fits
from ._tensors import as_floats, as_host_array
from ._typing import ArrayLike, LabelsLike, RowsLike
from .readers import npy
from .readers.labels import chunk_reader, table_column

#: pinv cut-off relative to the largest singular value, as in the public H-score code.
PINV_RCOND = 1e-15


# LogME constants of the authors' fixed-point algorithm (You et al., JMLR 2022).
_LOGME_EPSILON = 1e-5
_LOGME_MAX_ITER = 11
_LOGME_TOL = 1e-3


# ---------------------------------------------------------------------------------------
# Inputs


def _fspath(obj):
    """A bytes path (or a list of them) as str, as ``os.fsdecode``; anything else as is."""
    if isinstance(obj, bytes):
        return os.fsdecode(obj)
    if isinstance(obj, (list, tuple)) and any(isinstance(p, bytes) for p in obj):
        return [os.fsdecode(p) if isinstance(p, bytes) else p for p in obj]
    return obj


def check_features(features, name="features"):
    """The features as a 2-D float16/32/64 ndarray (never copied here, but for bfloat16
    tensors, widened to float32, exact)."""
    arr, _ = as_host_array(features, name)
    if arr.dtype.kind != "f" or arr.dtype.itemsize not in (2, 4, 8):
        raise TypeError(
            f"{name}: expected a float16, float32 or float64 array, got dtype={arr.dtype}"
        )
    if arr.ndim != 2:
        raise ShapeError(
            f"{name}: expected a 2-D array of shape (n_samples, n_features), "
            f"got ndim={arr.ndim} with shape {arr.shape}",
            "features",
        )
    if arr.shape[1] == 0:
        raise ShapeError(
            f"{name}: expected at least one feature, got shape {arr.shape}", "features"
        )
    return arr


#: what a target matrix may hold: floats, integers (multi-label 0/1), booleans
_TARGET_KINDS = "fiub"
_TARGET_SHAPE = "a target matrix of shape (n_samples, k)"


def check_targets(targets, n_samples, name="labels", rows="features", first_row=0):
    """A target matrix (n_samples, k) of floats, integers or booleans, checked finite
    (the first bad row is counted from ``first_row``); never copied here."""
    arr, _ = as_host_array(targets, name)
    if arr.dtype.kind not in _TARGET_KINDS or (
        arr.dtype.kind == "f" and arr.dtype.itemsize not in (2, 4, 8)
    ):
        raise TypeError(
            f"{name}: expected {_TARGET_SHAPE} of float, integer or boolean values, "
            f"got dtype={arr.dtype}"
        )
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise ShapeError(
            f"{name}: expected {_TARGET_SHAPE} with k >= 1, got shape {arr.shape}",
            "labels",
        )
    if arr.shape[0] != n_samples:
        raise ShapeError(
            f"{name}: expected a target matrix of {n_samples} rows (one per row of "
            f"{rows}), got {arr.shape[0]} rows (shape {arr.shape})",
            "labels",
        )
    if arr.dtype.kind == "f":
        for start in range(0, arr.shape[0], _TARGET_CHECK_ROWS):
            chunk = arr[start : start + _TARGET_CHECK_ROWS]
            finite = np.isfinite(chunk)
            if not finite.all():
                row, column = np.argwhere(~finite)[0]
                raise NonFiniteError(
                    f"{name}: row {first_row + start + int(row)} is "
                    f"{chunk[row, column]} in column {int(column)}; expected finite "
                    f"target values",
                    "labels",
                )
    return arr


#: target rows checked for NaN and infinity at a time (bounds the boolean temporary)
_TARGET_CHECK_ROWS = 1 << 16


def _refuse_n_target(n_target, k):
    if n_target is not None:
        raise InputError(
            f"n_target: expected None with a target matrix (labels of shape "
            f"(n_samples, k), here k={k}: its columns are the targets), got "
            f"n_target={n_target!r}",
            "n_target",
        )


def _classes_only(what, shape):
    """The error of a score that needs class labels, given a target matrix."""
    return ShapeError(
        f"{what}: expected class labels (a 1-D integer array), got {_TARGET_SHAPE} "
        f"(shape {shape}); only logme takes a target matrix",
        "labels",
    )


def _no_float_labels(arr, name, first_row=0):
    """1-D float labels that are not integer-valued (labels as floats, as pandas gives
    them, are labels): refused with a pointer to the target-matrix form."""
    if arr.ndim == 1 and arr.dtype.kind == "f":
        first = first_non_integer(arr)
        if first is not None:
            raise LabelError(
                f"{not_an_integer(name, first_row + first, arr[first])}; regression "
                f"targets for logme are {_TARGET_SHAPE}, one target as y[:, None]",
                name,
            )


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
    new_S2 = _moved_S2(n, s1, S2, d)
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


def _moved_S2(n, s1, S2, d):
    """sum w w^T for w = u + d: S2 + d s1^T + s1 d^T + n d d^T, as S2 + P + P^T with
    P = d (s1 + n d / 2)^T (one outer product, no n d d^T; P + P^T is exactly
    symmetric)."""
    P = np.outer(d, s1 + (0.5 * n) * d)
    out = np.add(P, P.T)
    out += S2
    return out


def _squared_norm(A):
    """|A|_F^2 of a contiguous array (one dot product, no temporary)."""
    a = A.ravel()
    return float(np.dot(a, a))


def _symmetric(A):
    out = np.add(A, A.T)
    out *= 0.5
    return out


#: condition numbers up to which tr(pinv(A) B) is taken by a linear solve instead of an
#: eigendecomposition: the two then differ by about cond * eps (<= 1e-10 relative)
SOLVE_MAX_COND = 1e6


def _trace_pinv_product(A, M, rcond=PINV_RCOND, cond=None):
    """tr(pinv(A) B) for a symmetric A and B = M^T M (M of shape (k, D)), with pinv as
    numpy's: singular values (here |eigenvalues|) <= rcond * max are dropped.

    A well-conditioned A (condition number <= ``SOLVE_MAX_COND``: pinv drops nothing
    and is the inverse) takes one LU solve for M's k columns, tr = sum(M^T * A^-1 M^T)
    (a seventh of the time of eigh at D = 768); ``cond`` is an upper bound of the
    condition number known beforehand (as the shrinkage gives one), else the
    eigenvalues alone tell (eigvalsh, a third of the time of eigh). Otherwise one
    eigendecomposition (a third of the cost of the SVD numpy's pinv takes; the same
    singular values and vectors), and M's k rows instead of a D x D product. (An LU
    solve for every A was tried: a streamed and a one-shot H-score of the torch
    example, whose covariance is ill-conditioned, then differed by 9e-10 instead of
    below 1e-10.)"""
    if cond is None and A.size:
        lam = np.linalg.eigvalsh(A)
        cond = lam[-1] / lam[0] if lam[0] > 0.0 else math.inf
    if cond is not None and cond <= SOLVE_MAX_COND:
        return float(np.einsum("ij,ji->", M, np.linalg.solve(A, M.T)))
    lam, V = np.linalg.eigh(A)
    mag = np.abs(lam)
    top = float(mag.max()) if mag.size else 0.0
    if top == 0.0:
        return 0.0
    keep = mag > rcond * top
    # pinv(A) = V_k diag(1/lam_k) V_k^T ; tr(pinv(A) M^T M) = sum_j |M v_j|^2 / lam_j
    # (M V, then its columns kept: no copy of V)
    MW = (M @ V)[:, keep]
    return float(np.sum(np.einsum("ij,ij->j", MW, MW) / lam[keep]))


def _too_large(what, where=""):
    """The one error for features whose moments overflow float64."""
    return NonFiniteError(
        f"features{where}: values too large to accumulate in float64: {what} "
        f"overflows; expected features whose squares fit in float64, e.g. "
        f"|f - mean| below about 1e154 (1e77 for the regularized H-score's fourth "
        f"moments); divide the features by a constant (the H-scores do not change)",
        "features",
    )


def _targets_too_large(n, where=""):
    """The one error for a target matrix whose sums overflow float64."""
    return NonFiniteError(
        f"labels{where}: values too large to accumulate in float64: the sums of y^2 "
        f"or of f y over {n} rows overflow; expected targets whose squares and "
        f"products with the features fit in float64, e.g. |y| below about 1e154; "
        f"divide the targets by a constant c (LogME then rises by about log(c))",
        "labels",
    )


# ---------------------------------------------------------------------------------------
# The one-pass accumulator

#: float64 bytes of one GEMM block: large enough for BLAS (thousands of rows at
#: D = 768: a syrk over fewer rows runs slower a row), small enough to stay a bounded
#: copy whatever batch ``update`` is given. The accumulator keeps one such block of
#: scratch rows between batches (no page faults per block), dropped after a pass.
_GEMM_BLOCK_BYTES = 64 << 20

#: float64 bytes of one slice of a block: each slice is copied (in label order, shifted)
#: into the block's scratch rows and its class sums and Ledoit-Wolf moments are taken
#: while it is in cache; the block's F^T F is then one syrk over all its rows.
_SLICE_BYTES = 4 << 20
# the feature types the compiled label-order pass reads (others go the NumPy way)
_KERNEL_TYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _runs(lab):
    """(order, starts): ``order`` sorts the labels (stable); the distinct labels start
    at positions ``starts`` of the sorted labels."""
    order = np.argsort(lab, kind="stable")
    sl = lab[order]
    new = np.empty(sl.size, dtype=bool)
    new[0] = True
    np.not_equal(sl[1:], sl[:-1], out=new[1:])
    return order, np.flatnonzero(new)


class FeatureAccumulator:
    """Sufficient statistics of (features, labels) for H-score, regularized H-score and
    LogME, collected in one pass over batches you stream yourself.

    Parameters
    ----------
    n_target : int, optional
        Y. By default it grows to max(label) + 1 over the batches. None for a target
        matrix.

    Notes
    -----
    Instead of class labels, :meth:`update` takes a target matrix (n_batch, k) of
    regression targets or multi-label indicators (every batch then gives one of k
    columns): the state keeps Y^T F and each column's sum of y^2 in place of the class
    sums and counts (O(k D)), for :meth:`logme`; :meth:`h_score`,
    :meth:`regularized_h_score` and the class statistics refuse it
    (:class:`~leepfast.ShapeError` naming ``labels``).

    The state is O(D^2 + k D) float64 numbers for the k classes present (F^T F about a
    shift, per-class sums, counts, and the third and fourth moment sums that the
    Ledoit-Wolf shrinkage needs), whatever n and Y are: an absent class costs nothing.
    A Y whose dense (Y, D) class sums (:meth:`class_sums`) would not fit in memory is
    refused (:class:`~leepfast.StateSizeError`, usually one stray label). Every batch
    is copied, in blocks of at most 64 MiB, into float64 scratch rows that the
    accumulator keeps between batches (the input is never modified; float16 and float32
    features are accumulated in float64); a block's F^T F is one BLAS call (syrk), and
    its rows are copied in label order, so that each class sum is over contiguous rows.
    Features whose squares overflow float64 (|f - mean| above about
    1e154) are refused with one error naming ``features``
    (:class:`~leepfast.NonFiniteError`): no rescaling is done, since LogME is not
    scale-invariant. States merge with :meth:`merge` (shards, processes).

    Before any row is added, ``n_samples`` is 0 and ``n_features`` and ``shift`` are
    None; every statistic (``class_counts``, ``mean``, :meth:`gram`, the scores, ...)
    raises :class:`~leepfast.ShapeError` ("no rows were added").

    Examples
    --------
    >>> acc = FeatureAccumulator()
    >>> for f, y in batches:          # doctest: +SKIP
    ...     acc.update(f, y)
    >>> acc.h_score(), acc.regularized_h_score(), acc.logme()   # doctest: +SKIP
    """

    def __init__(self, n_target: int | None = None):
        self.n_target = check_n_target(n_target)
        self.n_samples = 0
        self.n_features = None
        self.shift = None  # K, float64 (D,)
        self._s1 = self._S2 = self._s3 = None
        self._s4 = 0.0
        self._n_classes = 0  # Y so far: n_target, or max(label) + 1
        # the classes present, in order of first appearance, and their statistics
        self._labels = np.empty(0, dtype=np.int64)  # (k,)
        self._order = np.empty(0, dtype=np.intp)  # argsort of self._labels
        self._sums = None  # (capacity, D) float64: per-class sums of u; rows [:k] used
        self._counts = np.empty(0, dtype=np.int64)  # (capacity,)
        # a target matrix (n, k) instead of class labels: Y^T u (k, D), and per column
        # sum y and sum y^2 (float64); None while the labels are class labels
        self._targets = None  # (Y^T u, sum y, sum y^2)
        self._scratch = None  # float64 rows of one block, the one copy (reused)
        # _feature_statistics, asked for a score that does not need them, drops the
        # Ledoit-Wolf moments s3 and s4 (a quarter of the work beside the syrk)
        self._fourth = True

    def __getstate__(self):
        """Pickled without the scratch rows."""
        return {**self.__dict__, "_scratch": None}

    # -- accumulation -------------------------------------------------------------------

    def _reserve_classes(self, n_classes, n_features, where, argument):
        """Y grows to ``n_classes`` (checked against memory first)."""
        if n_classes > self._n_classes:
            check_feature_state_fits(n_classes, n_features, where, argument)
            self._n_classes = n_classes

    def _slots(self, labels):
        """Rows of the class table for the sorted distinct ``labels``; new classes are
        appended (amortised doubling: O(k D) in all)."""
        k = self._labels.size
        if k:
            known = self._labels[self._order]
            pos = np.minimum(np.searchsorted(known, labels), k - 1)
            found = known[pos] == labels
        else:
            pos = np.zeros(labels.size, dtype=np.intp)
            found = np.zeros(labels.size, dtype=bool)
        slots = np.empty(labels.size, dtype=np.intp)
        slots[found] = self._order[pos[found]]
        new = labels[~found]
        if new.size:
            D = self.n_features
            cap = 0 if self._sums is None else self._sums.shape[0]
            if k + new.size > cap:
                cap = max(k + new.size, 2 * cap, 8)
                sums = np.zeros((cap, D))
                counts = np.zeros(cap, dtype=np.int64)
                if k:
                    sums[:k] = self._sums[:k]
                    counts[:k] = self._counts[:k]
                self._sums, self._counts = sums, counts
            slots[~found] = np.arange(k, k + new.size)
            self._labels = np.concatenate([self._labels, new])
            self._order = np.argsort(self._labels, kind="stable")
        return slots

    def update(
        self, features: ArrayLike, labels: ArrayLike, *, first_row: int = 0, where: str = ""
    ) -> "FeatureAccumulator":
        """Add a batch.

        Parameters
        ----------
        features : array of shape (n_batch, n_features), float16, float32 or float64
            Finite feature rows. Never modified.
        labels : array of shape (n_batch,), any integer dtype, or (n_batch, k)
            Target labels in [0, n_target); or a target matrix of k columns, floats,
            integers or booleans (see :func:`logme`), for :meth:`logme` only. Every
            batch of one accumulator gives the same kind.
        first_row : int, default 0
            Index of the batch's first row in the whole dataset, for error messages.
        """
        features = check_features(features, f"features{where}")
        arr, _ = as_host_array(labels, f"labels{where}")
        if self.n_features is not None and features.shape[1] != self.n_features:
            raise ShapeError(
                f"features{where}: expected {self.n_features} features (columns), as in "
                f"earlier batches, got {features.shape[1]}",
                "features",
            )
        if arr.ndim == 2:
            return self._update_targets(features, arr, first_row, where)
        _no_float_labels(arr, f"labels{where}", first_row)
        labels = check_labels(
            arr, features.shape[0], f"labels{where}", rows="features", first_row=first_row
        )
        if self._targets is not None:
            raise ShapeError(
                f"labels{where}: expected {_TARGET_SHAPE} with k="
                f"{self._targets[1].size}, as in earlier batches, got class labels of "
                f"shape {labels.shape}",
                "labels",
            )
        if features.shape[0] == 0:
            if self.n_features is None:
                self.n_features = features.shape[1]
            return self
        lab = np.asarray(labels, dtype=np.int64)
        low, high = int(lab.min()), int(lab.max())
        n_target = self.n_target
        if low < 0 or (n_target is not None and high >= n_target):
            row = int(np.argmax((lab < 0) | (lab >= (n_target or high + 1))))
            bound = n_target if n_target is not None else "n_target"
            raise LabelError(
                f"labels{where}: row {first_row + row} is {labels[row]}; expected an "
                f"integer in [0, {bound})",
                "labels",
            )
        D = features.shape[1]
        if n_target is not None:
            self._reserve_classes(n_target, D, where, "n_target")
        else:
            self._reserve_classes(high + 1, D, where, "labels")
        self.n_features = D
        return self._in_blocks(self._add_block, features, lab, D, first_row, where)

    def _in_blocks(self, add, features, labels, width, first_row, where):
        """``add(f, labels, first_row, where)`` for each GEMM-sized block of rows (of
        at most ``width`` float64 values a row in the block's copies)."""
        rows = max(256, _GEMM_BLOCK_BYTES // (8 * width))
        for start in range(0, features.shape[0], rows):
            add(
                features[start : start + rows],
                labels[start : start + rows],
                first_row + start,
                where,
            )
        return self

    def _update_targets(self, features, targets, first_row, where):
        """update() with a target matrix."""
        name = f"labels{where}"
        y = check_targets(targets, features.shape[0], name, first_row=first_row)
        k = y.shape[1]
        _refuse_n_target(self.n_target, k)
        if self._targets is None and self.n_samples:
            raise ShapeError(
                f"{name}: expected class labels (a 1-D integer array), as in earlier "
                f"batches, got {_TARGET_SHAPE} (shape {y.shape})",
                "labels",
            )
        if self._targets is not None and self._targets[1].size != k:
            raise ShapeError(
                f"{name}: expected {_TARGET_SHAPE} with k={self._targets[1].size}, as "
                f"in earlier batches, got k={k} (shape {y.shape})",
                "labels",
            )
        D = features.shape[1]
        self.n_features = D
        if self._targets is None:
            self._targets = (np.zeros((k, D)), np.zeros(k), np.zeros(k))
        return self._in_blocks(
            self._add_target_block, features, y, max(D, k), first_row, where
        )

    def feed(self, source: RowSource) -> "FeatureAccumulator":
        """Add every block of a row source (see :mod:`leepfast._driver`)."""
        run_pass(
            lambda b: self.update(b.rows, b.labels, first_row=b.first_row, where=b.where),
            source,
        )
        self._scratch = None
        return self

    def _add_block(self, f, lab, first_row, where):
        """One GEMM-sized block of class labels: all of its statistics, checked, then
        added."""
        order, starts = _runs(lab)
        classes = lab[order[starts]]
        counts = np.diff(np.append(starts, lab.size))
        shift, _, S2, s3, s4, sums = self._block_moments(f, first_row, where, order, starts)
        self._add_moments(shift, f.shape[0], sums.sum(axis=0), S2, s3, s4, where)
        slots = self._slots(classes)
        self._sums[slots] += sums
        self._counts[slots] += counts

    def _add_target_block(self, f, y, first_row, where):
        """One GEMM-sized block of a target matrix (checked finite): Y^T u and the
        column sums of y and y^2, checked, then added with the moments."""
        shift, u, S2, s3, s4, s1 = self._block_moments(f, first_row, where)
        y = np.asarray(y, dtype=np.float64)
        with np.errstate(all="ignore"):
            Yu = y.T @ u  # (k, D): one GEMM
            ysum, yy = y.sum(axis=0), np.einsum("ij,ij->j", y, y)
            Yu_total, ysum_total, yy_total = (
                mine + new for mine, new in zip(self._targets, (Yu, ysum, yy), strict=True)
            )
        if not (np.isfinite(yy_total).all() and np.isfinite(Yu_total).all()):
            raise _targets_too_large(self.n_samples + len(f), where)
        self._add_moments(shift, u.shape[0], s1, S2, s3, s4, where)
        self._targets = (Yu_total, ysum_total, yy_total)

    def _scratch_rows(self, m, D):
        """(m, D) float64 rows of the scratch block (kept between blocks)."""
        buf = self._scratch
        if buf is None or buf.shape[0] < m or buf.shape[1] != D:
            buf = self._scratch = np.empty((m, D))
        return buf[:m]

    def _block_moments(self, f, first_row, where, order=None, starts=None):
        """(shift, u, S2, s3, s4, sums) of one block of features, checked finite.

        u (the one copy, in the scratch rows) holds the rows shifted, in the order
        ``order`` (label order) if given, and sums are the sums of u over the runs of
        equal labels starting at ``starts`` (k, D); without ``order``, u is in row
        order and sums the column sums of u (D,). The copy, the sums and the moments
        are taken slice by slice while the slice is in cache (float32 and float64 in
        label order: row by row, by the compiled extension where it is built); S2 is
        one syrk over the block. s3 and s4 are 0 unless the Ledoit-Wolf moments are
        kept."""
        m, D = f.shape
        if self.shift is not None:
            shift = self.shift
        else:
            with np.errstate(all="ignore"):
                shift = f.mean(axis=0, dtype=np.float64)
        if order is not None and not (f.flags.c_contiguous and f.flags.aligned):
            f = f.copy(order="C")  # else np.take would copy all of it for every slice
        native = f.dtype == np.float64 and f.dtype.isnative
        u = self._scratch_rows(m, D)
        kernels = kernels_or_none() if order is not None else None
        if kernels is not None and f.dtype in _KERNEL_TYPES and f.dtype.isnative:
            return self._compiled_moments(
                kernels, f, shift, u, order, starts, first_row, where
            )
        s3, s4 = np.zeros(D), 0.0
        step = max(1, _SLICE_BYTES // (8 * D))  # rows per slice
        if order is None:
            sums = np.zeros(D)
        else:
            # the runs of equal labels cut at the slice boundaries: piece (c, e, j) is
            # u[c:e], a part of run j, within one slice
            sums = np.zeros((starts.size, D))
            cut = np.union1d(starts, np.arange(0, m, step))
            pieces = zip(
                cut.tolist(),
                cut[1:].tolist() + [m],
                (np.searchsorted(starts, cut, side="right") - 1).tolist(),
                strict=True,
            )
            piece = next(pieces)
        with np.errstate(all="ignore"):
            for a in range(0, m, step):
                b = min(a + step, m)
                ui = u[a:b]
                if order is None:
                    np.subtract(f[a:b], shift, out=ui)
                elif native:
                    # mode="wrap": no buffered copy of out (order is in range)
                    np.take(f, order[a:b], axis=0, out=ui, mode="wrap")
                    np.subtract(ui, shift, out=ui)
                else:
                    np.subtract(np.take(f, order[a:b], axis=0), shift, out=ui)
                if order is None:
                    sums += ui.sum(axis=0)
                else:
                    # NumPy's own loops, not BLAS: a threaded BLAS call per piece
                    # waits for its threads (several times slower on a busy machine)
                    while piece is not None and piece[0] < b:
                        c, e, run = piece
                        sums[run] += u[c:e].sum(axis=0)
                        piece = next(pieces, None)
                if self._fourth:
                    # |u_i|^2 u_i and |u_i|^4 for the Ledoit-Wolf shrinkage: they may
                    # overflow (|u| > 1e77) where F^T F does not; regularized_h_score
                    # then refuses
                    r2 = np.einsum("ij,ij->i", ui, ui)
                    s3 += np.einsum("i,ij->j", r2, ui)
                    s4 += float(np.einsum("i,i->", r2, r2))
            S2 = u.T @ u  # BLAS syrk (numpy detects the transposed operand)
        self._check_squares(S2, f, first_row, where)
        return shift, u, S2, s3, s4, sums

    def _compiled_moments(self, kernels, f, shift, u, order, starts, first_row, where):
        """_block_moments of a float32 or float64 block in label order by the compiled
        extension: one pass over each row (copy, shift, class sums and the Ledoit-Wolf
        moments) on the default threads, then the syrk. On 2 threads, n=5461 rows of
        D=768 float64: 3.4 ms against 14 ms for NumPy's np.take, subtract and sums (the
        syrk: 40 ms)."""
        D = f.shape[1]
        k = starts.size
        sums = np.zeros((k, D))
        s3 = np.zeros((k, D) if self._fourth else (0, D))
        s4 = np.zeros(k if self._fourth else 0)
        with np.errstate(all="ignore"):
            kernels.label_order_rows(
                f,
                order.astype(np.int64, copy=False),
                starts.astype(np.int64, copy=False),
                np.ascontiguousarray(shift, dtype=np.float64),
                u,
                sums,
                s3,
                s4,
                default_threads(),
            )
            S2 = u.T @ u  # BLAS syrk
            s3, s4 = (s3.sum(axis=0), float(s4.sum())) if self._fourth else (0.0, 0.0)
        self._check_squares(S2, f, first_row, where)
        return shift, u, S2, s3, s4, sums

    def _check_squares(self, S2, f, first_row, where):
        """Refuse a block whose sum of squares (the diagonal of S2) is not finite:
        naming its first row that is not, or else the block's largest value."""
        if not np.isfinite(S2.diagonal()).all():
            finite = np.isfinite(f).all(axis=1)
            if not finite.all():
                row = int(np.argmin(finite))
                raise NonFiniteError(
                    f"features{where}: row {first_row + row} contains NaN or "
                    f"infinity; expected finite features",
                    "features",
                )
            raise _too_large(
                f"the sum of squares of rows {first_row} to "
                f"{first_row + f.shape[0] - 1} (largest |f| {np.abs(f).max():.3g})",
                where,
            )

    def _add_moments(self, shift, n, s1, S2, s3, s4, where):
        """Add one block's moments about ``shift`` (the accumulator's, or the first
        block's, which becomes it), after checking the sum of squares stays finite."""
        if self.shift is None:
            D = self.n_features
            self.shift = shift
            self._s1, self._S2, self._s3 = np.zeros(D), np.zeros((D, D)), np.zeros(D)
            self._s4 = 0.0
        with np.errstate(all="ignore"):
            total = self._S2.diagonal() + S2.diagonal()
        if not np.isfinite(total).all():
            raise _too_large(f"the sum of squares over {self.n_samples + n} rows", where)
        self._S2 += S2
        self._s1 += s1
        with np.errstate(all="ignore"):
            self._s3 += s3
            self._s4 += s4
        self.n_samples += n

    def merge(self, other: "FeatureAccumulator") -> "FeatureAccumulator":
        """Add another accumulator's statistics (same number of features) to this one."""
        if not isinstance(other, FeatureAccumulator):
            raise TypeError(
                f"merge: expected a FeatureAccumulator, got {type(other).__name__}"
            )
        if other.n_samples == 0:
            return self
        if self.n_features is not None and other.n_features != self.n_features:
            raise ShapeError(
                f"merge: expected {self.n_features} features, got {other.n_features}",
                "features",
            )
        mine = self.n_samples or self._targets is not None  # this one's kind is set
        if mine and (self._targets is None) != (other._targets is None):
            kinds = ("class labels", "a target matrix")
            raise ShapeError(
                f"merge: expected the other accumulator to hold "
                f"{kinds[self._targets is not None]}, as this one, got "
                f"{kinds[other._targets is not None]}",
                "labels",
            )
        if other._targets is not None:
            return self._merge_targets(other)
        k = other._labels.size
        if self.n_target is not None and int(other._labels.max()) >= self.n_target:
            raise LabelError(
                f"merge: the other accumulator has label {int(other._labels.max())}; "
                f"expected labels in [0, {self.n_target}) as this one's n_target",
                "labels",
            )
        self._reserve_classes(
            max(other._n_classes, self.n_target or 0),
            other.n_features,
            "",
            "n_target" if other.n_target is not None else "labels",
        )
        d = self._merge_moments(other)
        order = other._order  # other's classes in sorted order, as _slots wants them
        slots = self._slots(other._labels[order])
        counts = other._counts[:k][order]
        self._sums[slots] += other._sums[:k][order] + counts[:, None] * d
        self._counts[slots] += counts
        return self

    def _merge_targets(self, other):
        """merge() of an accumulator of a target matrix."""
        k = other._targets[1].size
        _refuse_n_target(self.n_target, k)
        if self._targets is not None and self._targets[1].size != k:
            raise ShapeError(
                f"merge: expected the other accumulator's target matrix to have "
                f"k={self._targets[1].size} columns, as this one's, got k={k}",
                "labels",
            )
        mine = self._targets or tuple(np.zeros_like(t) for t in other._targets)
        Yu, ysum, yy = other._targets
        # Y^T w with w = u + d (d below): Y^T u + (sum y) d^T
        d = np.zeros_like(Yu[0]) if self.n_samples == 0 else other.shift - self.shift
        with np.errstate(all="ignore"):
            totals = (mine[0] + Yu + np.outer(ysum, d), mine[1] + ysum, mine[2] + yy)
        if not (np.isfinite(totals[0]).all() and np.isfinite(totals[2]).all()):
            raise _targets_too_large(self.n_samples + other.n_samples)
        self._merge_moments(other)
        self._targets = totals
        return self

    def _merge_moments(self, other):
        """Add other's moments, moved from its shift K2 to this one's K1 (w = u + d,
        d = K2 - K1; K1 = K2 if this accumulator is empty); returns d."""
        if self.n_samples == 0:
            self.n_features, self.shift = other.n_features, None
        self._fourth = self._fourth and other._fourth
        shift = other.shift.copy() if self.shift is None else self.shift
        d = other.shift - shift
        with np.errstate(all="ignore"):
            s1, S2, s3, s4 = _translate(
                other.n_samples, other._s1, other._S2, other._s3, other._s4, d
            )
        self._add_moments(shift, other.n_samples, s1, S2, s3, s4, "")
        return d

    # -- derived statistics -------------------------------------------------------------

    def _need(self, n_min, what):
        if self.n_samples < n_min:
            if self.n_samples == 0:
                raise ShapeError(
                    f"{what}: no rows were added (n_samples=0); expected at least "
                    f"{n_min} sample{'s' if n_min > 1 else ''} (call update first)",
                    "features",
                )
            raise ShapeError(
                f"{what}: needs at least {n_min} sample{'s' if n_min > 1 else ''}, "
                f"got n_samples={self.n_samples}",
                "features",
            )

    def _present(self, what):
        """(labels, sums of u, counts) of the classes present, in label order; refused
        (naming ``what``) for an accumulator of a target matrix."""
        if self._targets is not None:
            raise _classes_only(what, (self.n_samples, self._targets[1].size))
        k, order = self._labels.size, self._order
        return self._labels[order], self._sums[:k][order], self._counts[:k][order]

    @property
    def class_counts(self):
        """ndarray of shape (n_target,), int64: samples per class."""
        self._need(1, "class_counts")
        labels, _, counts = self._present("class_counts")
        out = np.zeros(self._n_classes, dtype=np.int64)
        out[labels] = counts
        return out

    @property
    def mean(self):
        """ndarray of shape (n_features,), float64: the feature mean."""
        self._need(1, "mean")
        return self.shift + self._s1 / self.n_samples

    def _centred(self):
        """(S2, s4) about the mean: the scatter matrix and sum |f - mean|^4."""
        d = -self._s1 / self.n_samples
        with np.errstate(all="ignore"):
            _, S2, _, s4 = _translate(
                self.n_samples, self._s1, self._S2, self._s3, self._s4, d
            )
        return _symmetric(S2), max(s4, 0.0)

    def gram(self) -> np.ndarray:
        """F^T F about the origin, ndarray of shape (n_features, n_features), float64."""
        self._need(1, "gram")
        with np.errstate(all="ignore"):
            G = _symmetric(_moved_S2(self.n_samples, self._s1, self._S2, self.shift))
        if not np.isfinite(G).all():
            raise _too_large("F^T F about the origin (LogME's statistic)")
        return G

    def class_sums(self) -> np.ndarray:
        """Per-class feature sums about the origin, F^T Y: (n_target, n_features)."""
        self._need(1, "class_sums")
        labels, sums, counts = self._present("class_sums")
        out = np.zeros((self._n_classes, self.n_features))
        out[labels] = sums + counts[:, None] * self.shift
        return out

    def covariance(self, ddof: int = 1) -> np.ndarray:
        """cov(f) with np.cov's ddof semantics: (n_features, n_features), float64."""
        self._need(ddof + 1, "covariance")
        S2, _ = self._centred()
        return S2 / (self.n_samples - ddof)

    def between_class_covariance(self, ddof: int = 1) -> np.ndarray:
        """cov(E[f | y]): np.cov (ddof) of the rows f_i replaced by their class mean.
        Only the classes present enter (an absent class has no row)."""
        self._need(ddof + 1, "between_class_covariance")
        M = self._between_factor(ddof, "between_class_covariance")
        return _symmetric(M.T @ M)

    def _between_factor(self, ddof, what):
        """M (k, D) with M^T M = cov(E[f | y]): row c is sqrt(n_c / (n - ddof)) times
        the class mean minus the mean, for the k classes present."""
        _, sums, counts = self._present(what)
        diff = sums / counts[:, None] - self._s1 / self.n_samples
        return diff * np.sqrt(counts / (self.n_samples - ddof))[:, None]

    def ledoit_wolf(self) -> tuple[np.ndarray, float]:
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
        if not self._fourth:
            raise RuntimeError("ledoit_wolf: the fourth moments were not collected")
        S, s4 = self._centred()
        S /= n  # in place: _centred's S2 is a new array
        mu = float(np.trace(S)) / D
        if D == 1:
            return S, 0.0
        # beta: (1/(n D)) (sum_i |x_i|^4 / n - |S|_F^2); delta: |S - mu I|_F^2 / D
        with np.errstate(all="ignore"):
            delta_ = _squared_norm(S)
        if not (math.isfinite(s4) and math.isfinite(delta_)):
            raise _too_large("sum |f - mean|^4 (the Ledoit-Wolf shrinkage's moment)")
        beta = (s4 / n - delta_) / (D * n)
        target = S.copy()
        target.flat[:: D + 1] -= mu
        delta = _squared_norm(target) / D
        beta = min(beta, delta)
        shrinkage = 0.0 if beta <= 0.0 or delta <= 0.0 else beta / delta
        S *= 1.0 - shrinkage
        S.flat[:: D + 1] += shrinkage * mu
        return S, shrinkage

    # -- scores -------------------------------------------------------------------------

    def h_score(self) -> float:
        """H-score: tr(pinv(cov(f)) cov(E[f | y])), see :func:`h_score`."""
        self._need(2, "h_score")
        M = self._between_factor(1, "h_score")
        return _trace_pinv_product(self.covariance(1), M)

    def regularized_h_score(self) -> float:
        """Regularized H-score (Ledoit-Wolf), see :func:`regularized_h_score`."""
        self._need(2, "regularized_h_score")
        M = self._between_factor(1, "regularized_h_score")
        cov, a = self.ledoit_wolf()
        # its eigenvalues lie in [a mu, (1 - a) D mu + a mu] (mu = tr(S) / D): a bound of
        # the condition number without computing them
        D = self.n_features
        cond = 1.0 + (1.0 - a) * D / a if a > 0.0 else None
        return _trace_pinv_product(cov, math.sqrt(1.0 - a) * M, cond=cond)

    def logme(self) -> float:
        """LogME over the classes present, or over the columns of a target matrix, see
        :func:`logme`."""
        self._need(1, "logme")
        G = self.gram()
        if self._targets is not None:
            Yu, ysum, yy = self._targets
            return _logme(G, Yu + ysum[:, None] * self.shift, yy, self.n_samples)
        _, sums, counts = self._present("logme")
        return _logme(G, sums + counts[:, None] * self.shift, counts, self.n_samples)


# ---------------------------------------------------------------------------------------
# LogME from F^T F, F^T Y and the class counts


def _logme_evidence(alpha, beta, sigma, x2, res_x2, n, D, k):
    """log p(y | alpha, beta) / n for one class, with m and the residual at t = alpha/beta.

    sigma: the nonzero eigenvalues of F^T F; x2: the squared coordinates of y on the
    matching left singular vectors; res_x2: |y|^2 - sum(x2); k: how many
    eigen-directions enter the log-determinant (the zero ones add log(alpha) each).
    """
    t = alpha / beta
    q = sigma / (t + sigma)  # no (t + sigma)^2: it overflows for features ~1e77
    m2 = float(np.sum(x2 * q / (t + sigma)))
    res2 = float(np.sum(x2 * (t / (t + sigma)) ** 2)) + res_x2
    return float(_evidence_values(alpha, beta, sigma, m2, res2, n, D, k))


def _evidence_values(alpha, beta, sigma, m2, res2, n, D, k):
    """The evidence per sample for arrays (one entry per class) of alpha, beta, m2,
    res2, over the same eigenvalues sigma (r,)."""
    alpha, beta = np.asarray(alpha, dtype=float), np.asarray(beta, dtype=float)
    logalpha = np.log(alpha)
    logdet = np.log(alpha[..., None] + beta[..., None] * sigma).sum(axis=-1)
    logdet = logdet + (k - sigma.size) * logalpha
    return (
        D / 2.0 * logalpha
        + n / 2.0 * np.log(beta)
        - 0.5 * logdet
        - beta / 2.0 * res2
        - alpha / 2.0 * m2
        - n / 2.0 * math.log(2.0 * math.pi)
    ) / n


def _logme(G, T, yy, n):
    """Mean over the target columns given of the maximised evidence, from G = F^T F,
    T = Y^T F (k, D) and yy = sum y^2 per column (k,) (the class counts for one-hot
    columns): the fixed-point iterations of all columns at once (each stops at its own
    iteration, as in the authors' per-column loop)."""
    D = G.shape[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        lam, V = np.linalg.eigh(G)
    # the eigenvalues in decreasing order; the eigenvectors stay as eigh gives them
    # (T @ V over the contiguous V, its columns reversed after: no copy of V)
    lam = lam[::-1]
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
    X = (T @ V)[:, ::-1][:, resolved] / s  # (Y, r): target columns' coordinates on U
    x2 = X**2
    res_x2 = yy.astype(np.float64) - x2.sum(axis=1)
    Y = x2.shape[0]
    alpha, beta = np.ones(Y), np.ones(Y)
    m2, res2 = np.zeros(Y), np.zeros(Y)
    active = np.arange(Y)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for _ in range(_LOGME_MAX_ITER):
            if active.size == 0:
                break
            t = (alpha[active] / beta[active])[:, None]
            q = sigma / (sigma + t)  # (a, r)
            gamma = q.sum(axis=1)
            xa = x2[active]
            m2[active] = (xa * q / (t + sigma)).sum(axis=1)
            res2[active] = (xa * (t / (t + sigma)) ** 2).sum(axis=1) + res_x2[active]
            a = gamma / (m2[active] + _LOGME_EPSILON)
            b = (n - gamma) / (res2[active] + _LOGME_EPSILON)
            alpha[active], beta[active] = a, b
            t = t[:, 0]
            done = (a <= 0.0) | (np.abs(a / b - t) / t <= _LOGME_TOL)
            active = active[~done]
        # the authors evaluate the evidence at the new alpha, beta with the m2, res2 of
        # the last iteration (not refreshed): kept, to equal their values
        ev = _evidence_values(alpha, beta, sigma, m2, res2, n, D, k)
    ev = np.where(alpha <= 0.0, -math.inf, ev)
    return float(np.mean(ev))


# ---------------------------------------------------------------------------------------
# Public functions


class _Targets:
    """A target matrix as the labels of a row source (``n_samples``, ``where``,
    ``rows`` and ``reader()``, as :class:`~leepfast.readers.Labels`): an array, checked
    whole by the caller, or a 2-D ``.npy`` file opened as rows, each chunk checked as
    it is read (its rows counted in the file)."""

    def __init__(self, array=None, opened=None):
        self._array, self._opened = array, opened
        self.rows = "features"
        if opened is None:
            self.n_samples, self.k = array.shape
            self.where = "labels"
        else:
            self.n_samples, self.k = opened.n_samples, opened.n_source
            self.where = f"labels (file {opened.files[0].path})"

    def chunks(self):
        """The rows in order, in chunks that stay valid after the next is drawn."""
        if self._opened is None:
            for start in range(0, self.n_samples, _TARGET_CHECK_ROWS):
                yield self._array[start : start + _TARGET_CHECK_ROWS]
            return
        for f, _, start, block in self._opened.blocks():
            # a copy: the reader may reuse the block's buffer for the next one
            chunk = np.array(as_floats(block), dtype=np.float64)
            yield check_targets(chunk, len(chunk), f"labels (file {f.path})", "", start)

    def reader(self):
        return chunk_reader(self.chunks(), self.where, self.rows)

    def array(self):
        if self._opened is None:
            return self._array
        return np.concatenate(list(self.chunks()))

    def close(self):
        if self._opened is not None:
            self._opened.close()


def _open_targets(labels, n_samples):
    """The labels as :class:`_Targets` when they are a target matrix (a 2-D array or
    tensor, or a path to a 2-D ``.npy`` file), else None (class labels); an array is
    checked whole, with ``n_samples`` rows."""
    if isinstance(labels, readers.Labels):
        return None
    if isinstance(labels, (str, bytes, os.PathLike)):
        path = os.fsdecode(os.fspath(labels))
        if table_column(path) is not None or not npy.claims(path):
            return None
        if len(npy.header_shape(path, "labels")) != 2:
            return None
        return _Targets(opened=readers.open_predictions(path, role="labels"))
    arr, _ = as_host_array(labels, "labels")
    if arr.ndim != 2:
        return None
    return _Targets(check_targets(arr, n_samples))


def _open_features(features, dtype, n_features, key):
    """(features, n_samples): opened Predictions for file sources, else the checked
    array."""
    if isinstance(features, readers.Predictions):
        return features, features.n_samples
    if readers.is_file_source(features):
        preds = readers.open_predictions(
            features, dtype=dtype, n_source=n_features, key=key, role="features"
        )
        return preds, preds.n_samples
    features = check_features(features)
    return features, features.shape[0]


def _arguments(
    features: RowsLike,
    labels: LabelsLike,
    *,
    n_target: int | None = None,
    dtype: str | None = None,
    n_features: int | None = None,
    block_size: int | None = None,
    key: str | None = None,
) -> None:
    """The arguments of :func:`feature_statistics` and the feature scores, written
    once."""


@takes_arguments_of(_arguments)
def feature_statistics(**arguments) -> "FeatureAccumulator":
    """One streaming pass over features and labels (or a target matrix): a
    :class:`FeatureAccumulator`.
    {params}"""
    return _feature_statistics(**arguments, score=None)


def _feature_statistics(
    features, labels, n_target, dtype, n_features, block_size, key, score
):
    """feature_statistics; ``score`` (when not None or "logme") refuses a target matrix
    before the pass, naming that score."""
    features, n = _open_features(features, dtype, n_features, key)
    in_files = isinstance(features, readers.Predictions)
    targets = _open_targets(labels, n)
    try:
        if targets is not None:
            if score not in (None, "logme"):
                raise _classes_only(score, (targets.n_samples, targets.k))
            _refuse_n_target(n_target, targets.k)
            opened = targets
        elif in_files or isinstance(labels, (str, os.PathLike, readers.Labels)):
            opened = readers.open_labels(labels, rows="features")
            n_target = opened.check_range(n_target)
        else:
            opened = None
        if opened is not None and opened.n_samples != n:
            raise ShapeError(
                f"{opened.where}: expected {n} {'rows' if targets else 'labels'} (one "
                f"per row of features), got {opened.n_samples}",
                "labels",
            )
        acc = FeatureAccumulator(n_target)
        # the Ledoit-Wolf moments only for the regularized H-score
        acc._fourth = score in (None, "regularized_h_score")
        if in_files:
            return acc.feed(_files.FileRows(features, opened, block_size))
        if targets is not None:
            labels = targets.array()
        elif opened is not None:
            labels = opened.array()
        else:
            _no_float_labels(as_host_array(labels, "labels")[0], "labels")
            labels = check_labels(labels, n, rows="features", whole=True)
        if n == 0:
            raise ValueError(
                f"features: expected at least one sample, got shape {features.shape}"
            )
        rows = block_rows(block_size, features.shape[1], features.itemsize)
        return acc.feed(ArraySource(features, labels, rows))
    finally:
        if targets is not None:
            targets.close()


def _statistics(features, labels, score, **options):
    """The public ``score`` (their keywords) of one pass, bytes paths decoded
    (os.fsdecode)."""
    acc = _feature_statistics(_fspath(features), _fspath(labels), score=score, **options)
    return getattr(acc, score)()


_PARAMETERS = """
    Parameters
    ----------
    features : array of shape (n_samples, n_features), float16, float32 or float64, or
        file(s)
        Frozen features of the source model on the target samples. Read once, block by
        block, never loaded whole and never modified; accumulated in float64. In memory
        (memory maps are read block by block), or the same file sources as prediction
        dumps (:func:`leepfast.open_predictions`): ``.npy`` memory-mapped and never
        unpickled, ``.npz``, ``.safetensors``, HDF5, raw binary with ``dtype`` and
        ``n_features``, a directory, a glob or a list of shards read as one dataset in
        order. Dumps larger than RAM work.
    labels : array of shape (n_samples,), any integer dtype, or a file
        Target labels in [0, n_target): an array, a 1-D integer ``.npy``, or text with
        one integer per line. :func:`logme` also takes a target matrix of shape
        (n_samples, k) here (regression targets, multi-label indicators; see there).
    n_target : int, optional
        Number of target classes Y; default max(labels) + 1.
    dtype : {"float16", "float32", "float64"}, optional
        Raw feature files: the value type.
    n_features : int, optional
        Raw feature files: values per row (D).
    block_size : int, optional
        Rows per block (default: about 32 MiB of input per block).
    key : str, optional
        ``.npz``, ``.safetensors`` and HDF5 files holding several arrays: the one to read.
"""


@takes_arguments_of(_arguments)
def h_score(**arguments) -> float:
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
    return _statistics(score="h_score", **arguments)


@takes_arguments_of(_arguments)
def regularized_h_score(**arguments) -> float:
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
    return _statistics(score="regularized_h_score", **arguments)


@takes_arguments_of(_arguments)
def logme(**arguments) -> float:
    """LogME (You et al., JMLR 2022): the mean over classes of the maximised
    log-evidence per sample of a Bayesian linear model from the features to each
    one-hot target column, or to each column of a target matrix (regression,
    multi-label).
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

    Absent classes (no sample with that label, below the largest label or up to
    ``n_target``) are left out of the mean, as if they did not exist: the score is the
    same for any ``n_target`` and any relabelling. The authors' code averages over
    ``range(max(label) + 1)`` instead, so a class absent below the largest label enters
    their mean through the evidence of an all-zero target column (which is large: on
    the same features their value rose from 0.365 to 1.17 with one absent class),
    while one absent above it does not; on labels where every class is present the two
    agree. Each class present costs O(r) per fixed-point step (r the rank of F), all
    classes at once, so a stray large label costs O(Y) at most.

    Target matrix (regression, multi-label): ``labels`` of shape (n_samples, k), the
    authors' ``LogME(regression=True).fit(f, y)``. A 2-D array or tensor (or a path to
    a 2-D ``.npy`` file) is a target matrix; a 1-D one stays class labels (one
    regression target is a matrix of one column, ``y[:, None]``; 1-D floats are
    refused). The score is the mean over the k columns of the same maximised evidence
    with y = that column, from F^T F, Y^T F and each column's sum of y^2 (for one-hot
    columns the class counts, so the one-hot matrix of labels where every class is
    present gives the class-label value). Every column enters the mean, an all-zero
    one too (a multi-label class that never occurs; the authors include it): the
    matrix states its columns, unlike labels, whose absent classes are only implied by
    the largest label; drop such columns first if they should not count. Values may
    be float16, float32 or float64, or integers or booleans (0/1 indicators), all
    taken as float64 (integers above 2^53 rounded); NaN and infinity are refused
    naming the row and the column. ``n_target`` is refused (the columns are the
    targets). Streamed like class labels: in memory, or a 2-D float ``.npy`` file
    (mapped, read block by block), with features in memory or in files; the matrix is
    never modified. For n > D with full column rank, LogME(c f, y) = LogME(f, y) and
    LogME(f, c y) = LogME(f, y) - log|c| for c != 0, up to the fixed-point iteration's
    stopping tolerance; for D >= n the min(n, D) convention above breaks both.
    """
    return _statistics(score="logme", **arguments)


for _f in (feature_statistics, h_score, regularized_h_score, logme):
    _f.__doc__ = _f.__doc__.replace("{params}", _PARAMETERS)
del _f
