"""The NumPy backend: the protocol's primitives in plain streaming NumPy.

Single-threaded and unoptimised beyond vectorisation; used when nothing compiled is
available. It is not the oracle (``leepfast._reference`` is), though both are NumPy.
"""

import math

import numpy as np

from .. import _status
from .._tensors import as_floats

#: Blocks are converted to float64 (a copy of their size): the drivers keep them small.
TAKES_LARGE_VIEWS = False


def n_slots(n_threads):
    """Thread-local state slots this backend uses: one, it is single-threaded."""
    return 1


def first_invalid_row(raw, labels, n_target, tol, logits):
    """(status, row) of the first invalid row of a block, or (OK, -1).

    Checks per row, in order: label range, non-finite value, negative value, row sum
    (the last two for probabilities only). ``raw`` is the block as given, in float64.
    """
    bad_label = (labels < 0) | (labels >= n_target)
    if logits:  # -inf is a probability of 0; NaN, +inf or a row of only -inf are not
        nonfinite = (np.isnan(raw) | (raw == np.inf)).any(axis=1) | (
            raw.max(axis=1, initial=-np.inf) == -np.inf
        )
        negative = unnormalised = np.zeros_like(nonfinite)
    else:
        nonfinite = ~np.isfinite(raw).all(axis=1)
        negative = (raw < 0).any(axis=1)
        with np.errstate(invalid="ignore", over="ignore"):
            unnormalised = ~(np.abs(raw.sum(axis=1) - 1.0) <= tol)
    code = np.select(
        [bad_label, nonfinite, negative, unnormalised],
        [
            _status.ERR_LABEL,
            _status.ERR_NONFINITE,
            _status.ERR_NEGATIVE,
            _status.ERR_NOT_NORMALISED,
        ],
        default=_status.OK,
    )
    bad = np.flatnonzero(code)
    if bad.size:
        return int(code[bad[0]]), int(bad[0])
    return _status.OK, -1


def _probabilities(raw, logits):
    if not logits:
        return raw
    with np.errstate(invalid="ignore", over="ignore"):
        e = np.exp(raw - raw.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)


def _add_class_sums(out, labels, theta):
    """out[y] += sum of the rows of theta labelled y, over contiguous runs of the rows
    sorted by label: ``np.add.at`` is 5-7x slower on wide rows, and a mask per class
    costs Y passes over the labels when Y is large."""
    if not len(labels):
        return
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    rows = theta[order]
    cuts = (np.flatnonzero(sorted_labels[1:] != sorted_labels[:-1]) + 1).tolist()
    for start, end in zip([0, *cuts], [*cuts, len(rows)], strict=True):
        out[sorted_labels[start]] += rows[start:end].sum(axis=0)


def accumulate(block, labels, joint_sum, hard, counts, logits, tol, n_threads):
    """Pass 1: add one block to slot 0 of the state; returns (status, first bad row)."""
    raw = np.asarray(as_floats(block), dtype=np.float64)
    n_target, n_source = joint_sum.shape[1:]
    status, row = first_invalid_row(raw, labels, n_target, tol, logits)
    if status:
        return status, row
    theta = _probabilities(raw, logits)
    _add_class_sums(joint_sum[0], labels, theta)
    if hard is not None:  # None: no pair counts (LEEP alone)
        np.add.at(hard[0], (labels, theta.argmax(axis=1)), 1)
    counts[0] += np.bincount(labels, minlength=n_target)
    return _status.OK, -1


def score(block, labels, conditional, logits, tol, n_threads):
    """Pass 2: (status, first bad row, sum_i log(sum_z C[y_i, z] theta[i, z])), the rows
    validated as in pass 1."""
    raw = np.asarray(as_floats(block), dtype=np.float64)
    status, row = first_invalid_row(raw, labels, conditional.shape[0], tol, logits)
    if status:
        return status, row, 0.0
    theta = _probabilities(raw, logits)
    p = np.einsum("iz,iz->i", theta, conditional[labels])
    zero = np.flatnonzero(~(p > 0))
    if zero.size:
        return _status.ERR_ZERO_PROB, int(zero[0]), 0.0
    return _status.OK, -1, float(np.log(p).sum())


def _xlogx(a):
    a = a.astype(np.float64).ravel()  # counts are exact in float64 below 2^53
    # log(max(a, 1)) is 0 where a is 0 (and 1): no masked ufunc, no log(0); fsum keeps
    # the result within an ulp or two of exact whatever the number of terms
    return math.fsum(a * np.log(np.maximum(a, 1.0)))


def finalize(joint_sum, hard, counts):
    """The slots reduced, C[y, z] = S[y, z] / sum_y S[y, z] (0 where the column is 0),
    the column sums and NCE = (sum H log H - sum_z H_z log H_z) / n (``hard`` None: no
    pair counts, NCE NaN)."""
    joint = joint_sum.sum(axis=0)
    class_counts = counts.sum(axis=0)
    column = joint.sum(axis=0)
    conditional = np.divide(joint, column, out=np.zeros_like(joint), where=column > 0)
    if hard is None:
        return joint, None, class_counts, conditional, column, math.nan
    hard = hard.sum(axis=0)
    n = hard.sum()
    nce = float((_xlogx(hard) - _xlogx(hard.sum(axis=0))) / n) if n else 0.0
    return joint, hard, class_counts, conditional, column, nce
