"""The public API and the streaming driver.

``leep``, ``nce`` and ``score`` validate kinds and shapes once, then run the two passes
of an :class:`Accumulator` over row blocks of the array (views when the array is
C-contiguous and native-endian; one block-sized copy otherwise). Value checks (labels,
NaN, negative, row sums) are fused into pass 1 in the kernels, which report a status and
the first offending row; this module turns that into one clear exception.
"""

import copy
import os
from dataclasses import dataclass, replace

import numpy as np
from numpy.typing import ArrayLike

from . import _reference, _status
from . import backends as _backends
from ._checks import check_flag, positive_int, warn
from ._config import resolve_threads
from ._driver import ArraySource, Block, block_rows, two_passes
from ._errors import (
    LabelError,
    NegativeValueError,
    NonFiniteError,
    PassMismatchError,
    RowSumError,
    ShapeError,
)
from ._options import Options, takes_arguments_of
from ._state import Pass1State
from ._tensors import as_floats, as_host_array, dtype_name, is_bfloat16

#: Probability rows must sum to 1 within this tolerance, by input dtype.
ROW_SUM_TOLERANCE = {
    np.dtype(np.float16): 1e-2,
    np.dtype(np.float32): 1e-4,
    np.dtype(np.float64): 1e-6,
}

#: ... and for bfloat16 (8 significant bits), held as its bits (``_tensors.BFLOAT16``).
BFLOAT16_TOLERANCE = 1e-2


def row_sum_tolerance(dtype):
    """The row-sum tolerance of predictions of ``dtype`` (either byte order), or None
    when the dtype is not one of predictions (float16/32/64, bfloat16)."""
    tol = ROW_SUM_TOLERANCE.get(dtype)  # native float16/32/64: one look-up
    if tol is not None and dtype.metadata is None:
        return tol
    if is_bfloat16(dtype):
        return BFLOAT16_TOLERANCE
    return ROW_SUM_TOLERANCE.get(dtype.newbyteorder("="))


@dataclass(frozen=True, repr=False, eq=False)
class Result:
    """Everything one read of the data gives.

    Attributes
    ----------
    leep : float
        Log Expected Empirical Prediction, <= 0 (larger: better transfer).
    nce : float
        Negative Conditional Entropy of the hard predictions, <= 0.
    n_samples, n_source, n_target : int
        n, Z and Y.
    joint : ndarray of shape (n_target, n_source), float64
        J[y, z] = (1/n) sum over samples with label y of theta[i, z].
    marginal : ndarray of shape (n_source,), float64
        M[z] = sum_y J[y, z].
    conditional : ndarray of shape (n_target, n_source), float64
        C[y, z] = J[y, z] / M[z], 0 where M[z] == 0.
    class_counts : ndarray of shape (n_target,), int64
        Samples per target class.
    hard_counts : ndarray of shape (n_target, n_source), int64
        Samples per (target class, argmax source class) pair, from which NCE comes.
    backend : str
        The backend that computed it.
    classes : tuple of str, or None
        Labels given as strings: the class of each target index (the sorted distinct
        strings: label ``classes[y]`` is target class ``y``); None for integer labels.
    """

    leep: float
    nce: float
    n_samples: int
    n_source: int
    n_target: int
    joint: np.ndarray
    marginal: np.ndarray
    conditional: np.ndarray
    class_counts: np.ndarray
    hard_counts: np.ndarray
    backend: str
    classes: tuple | None = None

    @classmethod
    def _of(cls, **fields):
        """A Result of ``fields`` (every field, ``classes`` optional), made without the
        frozen dataclass's ``__init__`` (one ``object.__setattr__`` per field, as much as
        the rest of a small call's result costs): a frozen class refuses setattr, not
        its instance dict; ``classes`` not given keeps its class default, None."""
        result = object.__new__(cls)
        result.__dict__.update(fields)
        return result

    def to_dict(self) -> dict:
        """The scalars only (for JSON, logs and tables): leep, nce, n_samples,
        n_source, n_target, backend."""
        return {
            "leep": float(self.leep),
            "nce": float(self.nce),
            "n_samples": int(self.n_samples),
            "n_source": int(self.n_source),
            "n_target": int(self.n_target),
            "backend": self.backend,
        }

    def __repr__(self):
        return (
            f"Result(leep={self.leep:.6g}, nce={self.nce:.6g}, "
            f"n_samples={self.n_samples}, n_source={self.n_source}, "
            f"n_target={self.n_target}, backend={self.backend!r})"
        )


# ---------------------------------------------------------------------------------------
# Validation at the edge (kinds and shapes; values are checked in the kernels)


def check_predictions(predictions, name="predictions"):
    """The predictions as a 2-D float16/32/64 ndarray, or bfloat16 as a zero-copy view
    of its bits (``_tensors.BFLOAT16``, widened in the kernels); never copied here."""
    arr, _ = as_host_array(predictions, name, widen=False)
    # byte-swapped floats are accepted: blocks are converted to native order one by one
    if row_sum_tolerance(arr.dtype) is None:
        raise TypeError(
            f"{name}: expected a float16, float32, float64 or bfloat16 array, "
            f"got dtype={arr.dtype}"
        )
    if arr.ndim != 2:
        raise ShapeError(
            f"{name}: expected a 2-D array of shape (n_samples, n_source), "
            f"got ndim={arr.ndim} with shape {arr.shape}",
            name,
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ShapeError(
            f"{name}: expected at least one sample and one source class, "
            f"got shape {arr.shape}",
            name,
        )
    return arr


def check_labels(
    labels,
    n_samples,
    name="labels",
    rows="predictions",
    whole=False,
    classes=False,
    first_row=0,
):
    """The labels as a 1-D integer ndarray of length n_samples (integer arrays are never
    copied here); ``rows`` names what the labels pair with in messages ("features" for
    features). Integer-valued floats (as pandas and ``np.loadtxt`` give) become int64.
    When ``labels`` is the whole label set (``whole``), strings (str arrays, object
    arrays of str, pandas categoricals of str) become the index of each among the
    sorted distinct strings; a batch's strings are refused, since they would be
    numbered by that batch alone. With ``classes``, returns ``(labels, the sorted
    strings or None)``. Messages count rows from ``first_row``."""
    arr, names = encode_labels(as_host_array(labels, name)[0], name, first_row)
    if names is not None and not whole:
        raise TypeError(
            f"{name}: got strings in a batch; strings are numbered as classes (sorted) "
            f"only over the whole label set (leep, nce, score, rank, the feature "
            f"scores): number them first, e.g. np.unique(labels, return_inverse=True)"
        )
    if arr.ndim != 1:
        raise ShapeError(f"{name}: expected a 1-D array, got shape {arr.shape}", name)
    if arr.shape[0] != n_samples:
        raise ShapeError(
            f"{name}: expected {n_samples} labels (one per row of {rows}), "
            f"got {arr.shape[0]}",
            name,
        )
    return (arr, names) if classes else arr


def encode_labels(arr, name="labels", first_row=0):
    """(integer labels, class names or None) of an array of labels of any kind: integers
    as they are; integer-valued floats as int64 (any other float refused, naming the
    first); strings as their index among the sorted distinct strings, which are the
    class names."""
    kind = arr.dtype.kind
    if kind in "iu":
        return arr, None
    if kind == "O" and arr.size and all(isinstance(v, str) for v in arr.flat):
        kind = "U"
    elif kind == "O" and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))
        for v in arr.flat
    ):
        return arr.astype(np.int64), None
    if kind in "US":
        names, codes = np.unique(arr, return_inverse=True)
        return codes.reshape(arr.shape).astype(np.int64), names
    if kind == "f":
        first = first_non_integer(arr)
        if first is None:
            return arr.astype(np.int64), None
        raise LabelError(
            not_an_integer(name, first_row + first, arr.reshape(-1)[first]), name
        )
    raise TypeError(
        f"{name}: expected an integer array (or integer-valued floats, or strings), "
        f"got dtype={arr.dtype}"
    )


def not_an_integer(name, row, value):
    """The message for a float label that is not a whole number."""
    return (
        f"{name}: row {row} is {float(value)!r}; expected an integer label "
        f"(integer-valued floats are taken)"
    )


def first_non_integer(arr):
    """The flat index of the first value of a float array that is not a whole number in
    int64's range (NaN and infinities included), or None."""
    with np.errstate(invalid="ignore"):
        whole = np.isfinite(arr) & (arr == np.round(arr)) & (np.abs(arr) < 2.0**62)
    return None if whole.all() else int(np.flatnonzero(~whole.reshape(-1))[0])


def check_n_target(n_target):
    return positive_int(n_target, "n_target")


def warn_if_probabilities(block, name="predictions"):
    """Warn when logits=True was given rows that are all already probability rows
    (a softmax of probabilities changes LEEP without any error)."""
    if block.shape[0] == 0 or block.shape[1] < 2:
        return
    with np.errstate(all="ignore"):
        rows = np.asarray(as_floats(block[:1024]), dtype=np.float64)
        sums = rows.sum(axis=1)
        probabilities = (
            np.isfinite(sums).all()
            and (rows >= 0).all()
            and (np.abs(sums - 1.0) <= row_sum_tolerance(block.dtype)).all()
        )
    if probabilities:
        warn(
            f"{name}: logits=True, but the first {rows.shape[0]} rows are already "
            f"probability rows (non-negative, summing to 1); a softmax of "
            f"probabilities changes LEEP. Pass logits=False if they are probabilities.",
            UserWarning,
        )


#: The largest label the kernels' int64 labels hold, exclusive.
_INT64_MAX = int(np.iinfo(np.int64).max)

#: Up to this many labels, their minimum and maximum are taken over a list: two NumPy
#: reductions cost microseconds each whatever the size, a small call's cost.
SMALL_LABELS = 64


def infer_n_target(labels, name="labels", first_row=0):
    """max(label) + 1, after checking that no label is negative.

    ``first_row`` is the global index of ``labels[0]``, for the row in error messages.
    """
    if labels.size <= SMALL_LABELS:
        values = labels.tolist()
        low, high = min(values), max(values)
    else:  # unsigned labels are never negative
        low = labels.min() if labels.dtype.kind == "i" else 0
        high = labels.max()
    if low < 0:
        row = int(np.argmax(labels < 0))
        raise LabelError(
            f"{name}: row {first_row + row} is {labels[row]}; expected labels >= 0",
            "labels",
        )
    if high >= _INT64_MAX:  # uint64 labels the kernels' int64 cannot hold
        row = int(np.argmax(labels == high))
        raise LabelError(
            f"{name}: row {first_row + row} is {labels[row]}; "
            f"expected labels < {_INT64_MAX}",
            "labels",
        )
    return int(high) + 1


def _native_block(block):
    """A C-contiguous, native-endian version of a block (a view whenever possible)."""
    if type(block) is np.ndarray and block.flags.c_contiguous and block.dtype.isnative:
        return block  # what np.ascontiguousarray gives, without its call
    if not block.dtype.isnative:
        block = block.astype(block.dtype.newbyteorder("="))
    return np.ascontiguousarray(block)


_INT64 = np.dtype(np.int64)


def _as_int64(labels):
    if type(labels) is np.ndarray and labels.dtype == _INT64 and labels.flags.c_contiguous:
        return labels  # what np.ascontiguousarray gives, without its call
    return np.ascontiguousarray(labels, dtype=np.int64)


# ---------------------------------------------------------------------------------------
# The two-pass state


class Accumulator:
    """Exact LEEP and NCE over batches you stream yourself, in two passes.

    Pass 1: call :meth:`accumulate` on every batch. Then :meth:`finalize`. Pass 2: call
    :meth:`score` on the same batches, in any order. Then :meth:`result`. States of the
    same pass merge with :meth:`merge` (shards, processes, machines).

    Parameters
    ----------
    n_target : int, optional
        Y. By default it grows to max(label) + 1 over the batches of pass 1.
    logits : bool, default False
        The batches hold logits; a max-subtracted softmax is taken per row in float64.
    backend : {"auto", "cython", "numba", "numpy"}, default "auto"
    n_threads : int, optional
        None or -1: all cores (OMP_NUM_THREADS respected).

    Notes
    -----
    The state is O(n_threads * Y * Z) float64 and int64 numbers, whatever n is. The joint
    is accumulated in float64 whatever the input dtype. After an input error is raised
    the state is unspecified: discard it.

    Examples
    --------
    >>> acc = Accumulator(n_target=3)
    >>> for theta, y in batches:            # doctest: +SKIP
    ...     acc.accumulate(theta, y)
    >>> acc.finalize()                       # doctest: +SKIP
    >>> for theta, y in batches:            # doctest: +SKIP
    ...     acc.score(theta, y)
    >>> acc.result().leep                    # doctest: +SKIP
    """

    #: What the rows are, as error messages name them.
    role = "predictions"

    def __init__(
        self,
        n_target: int | None = None,
        *,
        logits: bool = False,
        backend: str = "auto",
        n_threads: int | None = None,
    ):
        self._start(
            check_n_target(n_target),
            check_flag(logits, "logits"),
            _backends.resolve(backend),
            resolve_threads(n_threads),
        )

    def _start(self, n_target, logits, backend, n_threads, pairs=True):
        """The empty state, over checked arguments (a backend name, a thread count);
        ``pairs`` False: no pair counts, so no NCE (:func:`leep`'s own accumulator:
        pass 1 then takes no argmax)."""
        self.n_target = n_target
        #: whether n_target comes from the labels: state-size messages then name the
        #: labels, and a state over STATE_WARN_BYTES is announced
        self.n_target_inferred = self.n_target is None
        self.logits = logits
        self._logits_checked = not self.logits
        self.backend = backend
        self.n_threads = n_threads
        self.n_source = None
        self.n_slots = _backends.module(self.backend).n_slots(self.n_threads)
        #: Pass 1's state until :meth:`finalize`, then None.
        self.pass1 = Pass1State(self.n_slots, pairs)
        #: Pass 2's state once :meth:`finalize` has run.
        self.pass2 = None

    # -- the states' values -------------------------------------------------------------

    @property
    def phase(self):
        """ "accumulate" (pass 1) or "score" (pass 2)."""
        return "accumulate" if self.pass2 is None else "score"

    @property
    def n_samples(self):
        """Rows seen in pass 1."""
        return (self.pass1 if self.pass2 is None else self.pass2).n_samples

    @property
    def n_scored(self):
        """Rows seen in pass 2."""
        return 0 if self.pass2 is None else self.pass2.n_scored

    def _finalized(name, doc):  # noqa: N805 - a property factory, not a method
        return property(
            lambda self: None if self.pass2 is None else getattr(self.pass2, name),
            doc=doc,
        )

    joint_sum = _finalized("joint_sum", "S[y, z], the class sums of pass 1 (Y, Z).")
    hard_counts = _finalized("hard_counts", "H[y, z], the (label, argmax) pair counts.")
    class_counts = _finalized("class_counts", "Rows per target class in pass 1 (Y,).")
    conditional = _finalized("conditional", "C[y, z] = S[y, z] / sum_y S[y, z].")
    nce = _finalized("nce", "NCE, known once pass 1 is finalized.")
    del _finalized

    # -- helpers ------------------------------------------------------------------------

    def _kernels(self):
        return _backends.module(self.backend)

    @property
    def takes_large_views(self):
        """Whether the backend takes views of any size without copies of their size
        (the drivers then stream 1 GiB view blocks)."""
        return self._kernels().TAKES_LARGE_VIEWS

    def _allocate(self, n_source, n_target):
        """Create the state, or grow it to n_target classes."""
        self.pass1.reserve(n_source, n_target, self.n_target_inferred)

    def _tol(self, block):
        """The row-sum tolerance of a block's dtype."""
        return row_sum_tolerance(block.dtype)

    def _check_batch(self, predictions, labels, first_row=0):
        # The common batch after the first (2-D rows of a native float dtype, as many
        # 1-D integer labels, the columns of earlier batches) passes in a few attribute
        # reads; anything else takes the full checks below, which refuse it or pass it
        # (the very batches this test passes) and give every message.
        if (
            type(predictions) is np.ndarray
            and type(labels) is np.ndarray
            and predictions.ndim == 2
            and labels.ndim == 1
            and predictions.dtype in ROW_SUM_TOLERANCE
            and labels.dtype.kind in "iu"
            and 0 < labels.shape[0] == predictions.shape[0]
            and predictions.shape[1] == self.n_source
        ):
            return predictions, labels
        predictions = check_predictions(predictions)
        labels = check_labels(labels, predictions.shape[0], first_row=first_row)
        if self.n_source is None:
            self.n_source = predictions.shape[1]
        elif predictions.shape[1] != self.n_source:
            raise ValueError(
                f"predictions: expected {self.n_source} source classes (columns), "
                f"as in earlier batches, got {predictions.shape[1]}"
            )
        return predictions, labels

    def _raise(self, status, row, block, labels, first_row, n_target, where=""):
        """Turn a kernel status into the one clear exception."""
        r = first_row + row
        pred = f"{self.role}{where}"
        kind = "logits" if self.logits else "probabilities"
        hint = "" if self.logits else " (pass logits=True if these are logits)"
        if status == _status.ERR_LABEL:
            raise LabelError(
                f"labels{where}: row {r} is {labels[row]}; expected an integer in "
                f"[0, {n_target}) (n_target={n_target})",
                "labels",
            )
        if status == _status.ERR_NONFINITE:
            found, allowed = (
                (
                    "NaN or +inf, or no value above -inf",
                    " (a -inf logit, probability 0, is allowed)",
                )
                if self.logits
                else ("NaN or infinity", "")
            )
            raise NonFiniteError(
                f"{pred}: row {r} contains {found}; expected finite {kind}{allowed}",
                self.role,
            )
        if status == _status.ERR_NEGATIVE:
            low = float(np.min(as_floats(block[row])))
            raise NegativeValueError(
                f"{pred}: row {r} contains a negative value ({low:.6g}); expected "
                f"probabilities >= 0{hint}",
                self.role,
            )
        if status == _status.ERR_NOT_NORMALISED:
            with np.errstate(over="ignore"):  # a sum of finite values may overflow
                total = float(np.sum(as_floats(block[row]), dtype=np.float64))
            tol = self._tol(block)
            kind = dtype_name(block.dtype)
            raise RowSumError(
                f"{pred}: row {r} sums to {total:.8g}; expected probabilities that sum "
                f"to 1 within {tol:g} (the {kind} tolerance){hint}",
                self.role,
            )
        if status == _status.ERR_ZERO_PROB:
            raise PassMismatchError(
                f"{pred}: row {r} has no mass under the conditional of pass 1; pass 2 "
                f"must see the same rows as pass 1",
                self.role,
            )
        if status == _status.ERR_NOMEM:
            raise MemoryError("leepfast: a kernel could not allocate its row buffer")
        raise RuntimeError(f"leepfast: internal error, kernel status {status}")

    # -- pass 1 -------------------------------------------------------------------------

    def accumulate(
        self, predictions: ArrayLike, labels: ArrayLike, *, row_offset: int = 0
    ) -> "Accumulator":
        """Pass 1: add a batch.

        Parameters
        ----------
        predictions : array of shape (n_batch, n_source), float16, float32 or float64
            Probabilities (rows summing to 1 within ``ROW_SUM_TOLERANCE[dtype]``), or
            logits when the accumulator was made with ``logits=True``.
        labels : array of shape (n_batch,), any integer dtype
            Target labels in [0, n_target).
        row_offset : int, default 0
            Added to the row numbers in error messages (the batch's first row in a
            larger dataset, e.g. a dask chunk's global offset).
        """
        return self.step(1, Block(predictions, labels, row_offset + self.n_samples))

    def step(self, pass_: int, block: Block, *, count: bool = True) -> "Accumulator":
        """Feed one :class:`~leepfast._driver.Block` of a row source to pass 1 or 2
        (what the drivers call): its rows are checked as :meth:`accumulate` checks
        them, and messages name row ``block.first_row + i`` of the block's ``where``.
        ``count=False`` (pass 2): leave the class counts to the driver, which passes
        the very rows of pass 1."""
        return self._step(pass_, block, count)

    def _step(self, pass_, block, count=True, whole=False):
        """:meth:`step`; ``whole`` (pass 1): the block is all the rows of both passes,
        so pass 2 may run with pass 1 (``_accumulate``)."""
        if isinstance(pass_, bool) or pass_ not in (1, 2):
            raise ValueError(f"step: pass_ must be 1 or 2, got {pass_!r}")
        if pass_ == 1 and self.pass2 is not None:  # the phase is "score"
            raise RuntimeError("accumulate: pass 1 is over (finalize() was called)")
        if pass_ == 2 and self.pass2 is None:  # the phase is "accumulate"
            raise RuntimeError("score: call finalize() after pass 1 first")
        predictions, labels = self._check_batch(block.rows, block.labels, block.first_row)
        if len(labels) == 0:
            return self
        if pass_ == 1:
            first, where = block.first_row, block.where
            return self._accumulate(predictions, labels, first, where, whole)
        return self._score(predictions, labels, block.first_row, block.where, count)

    def _accumulate(self, predictions, labels, first, where, whole=False):
        """Pass 1 over a checked batch whose first row messages call ``first``.

        ``whole``: the batch is all the rows of both passes, the same in both (a stable
        source of one block). Where the backend has ``both_passes`` and takes the
        batch (the compiled backend: a small one), pass 1, :meth:`finalize` and pass 2
        then run in that one call, with the values and errors of the three; the
        accumulator is left finalized, its pass-2 sum added and pass 2's class counts
        left to the driver (as ``step(2, block, count=False)`` leaves them)."""
        n_target = self.n_target
        if n_target is None:
            seen = self.pass1.n_target or 1
            n_target = max(seen, infer_n_target(labels, f"labels{where}", first))
        self._allocate(self.n_source, n_target)
        block = _native_block(predictions)
        if not self._logits_checked:
            self._logits_checked = True
            warn_if_probabilities(block, f"{self.role}{where}")
        kernels = self._kernels()
        arguments = (
            block,
            _as_int64(labels),
            self.pass1.joint,
            self.pass1.hard,
            self.pass1.counts,
            self.logits,
            self._tol(block),
            self.n_threads,
        )
        fresh = whole and self.pass1.n_samples == 0  # both_passes takes zeroed slots
        both = getattr(kernels, "both_passes", None) if fresh else None
        done = None if both is None else both(*arguments)
        if done is not None:
            status, row, finalized, total = done
        else:
            status, row = kernels.accumulate(*arguments)
        if status:
            self._raise(status, row, block, labels, first, n_target, where)
        self.pass1.n_samples += len(labels)
        if done is not None:
            self._finalized(self.pass1.finalize(kernels, finalized))
            self.pass2.add(total, None, len(labels))
        return self

    def merge(self, other: "Accumulator") -> "Accumulator":
        """Add another accumulator's state (same pass, same n_source) to this one."""
        if not isinstance(other, Accumulator):
            raise TypeError(f"merge: expected an Accumulator, got {type(other).__name__}")
        if other.phase != self.phase or other.logits != self.logits:
            raise ValueError(
                f"merge: states must be in the same pass with the same logits setting, "
                f"got {self.phase!r}/{other.phase!r}"
            )
        if other.n_source is None:
            return self
        if self.n_source is not None and other.n_source != self.n_source:
            raise ValueError(
                f"merge: expected {self.n_source} source classes, got {other.n_source}"
            )
        self.n_source = other.n_source
        if self.phase == "accumulate":
            self.pass1.merge(other.pass1)
        else:
            self.pass2.merge(other.pass2)
        return self

    def finalize(self) -> "Accumulator":
        """End pass 1: reduce the thread-local state, form C and NCE."""
        if self.phase != "accumulate":
            raise RuntimeError("finalize: already called")
        if self.n_samples == 0:
            raise ValueError("finalize: no rows were accumulated (n_samples = 0)")
        return self._finalized(self.pass1.finalize(self._kernels()))

    def _finalized(self, pass2):
        """Enter pass 2 with the :class:`~leepfast._state.Pass2State` of pass 1."""
        self.pass2 = pass2
        self.pass1 = None
        self.n_target = self.pass2.n_target
        return self

    @classmethod
    def from_options(cls, options, pairs=True):
        """An accumulator for a resolved :class:`~leepfast._options.Options` (checked
        once, by :meth:`~leepfast._options.Options.resolve`: not again here); ``pairs``
        as in ``_start``."""
        acc = cls.__new__(cls)
        acc._start(
            options.n_target, options.logits, options.backend, options.n_threads, pairs
        )
        return acc

    def __repr__(self):
        done = "" if self.pass2 is None else f", nce={self.nce:.6g}"
        return (
            f"Accumulator(phase={self.phase!r}, n_samples={self.n_samples}, "
            f"n_scored={self.n_scored}, n_source={self.n_source}, "
            f"n_target={self.n_target}, logits={self.logits}, "
            f"backend={self.backend!r}, n_threads={self.n_threads}{done})"
        )

    def spawn(self, n_threads: int | None = None) -> "Accumulator":
        """A pass-2 accumulator of its own over this finalized pass 1 (for a shard or a
        chunk task: its sums start at 0, the finalized arrays are shared, read-only);
        merge it back with :meth:`merge`."""
        if self.phase != "score":
            raise RuntimeError("spawn: call finalize() after pass 1 first")
        other = copy.copy(self)
        other.pass2 = self.pass2.fresh()
        if n_threads is not None:
            other.n_threads = resolve_threads(n_threads)
        return other

    # -- pass 2 -------------------------------------------------------------------------

    def score(
        self, predictions: ArrayLike, labels: ArrayLike, *, row_offset: int = 0
    ) -> "Accumulator":
        """Pass 2: add a batch's log terms (the same batches as pass 1; ``row_offset``
        as in :meth:`accumulate`)."""
        return self.step(2, Block(predictions, labels, row_offset + self.n_scored))

    def _score(self, predictions, labels, first, where, count):
        """Pass 2 over a checked batch whose first row messages call ``first``;
        ``count=False`` leaves the class counts of pass 2 to the driver."""
        block = _native_block(predictions)
        labels64 = _as_int64(labels)
        status, row, total = self._kernels().score(
            block,
            labels64,
            self.pass2.conditional,
            self.logits,
            self._tol(block),
            self.n_threads,
        )
        if status:
            self._raise(status, row, block, labels, first, self.n_target, where)
        counts = np.bincount(labels64, minlength=self.n_target) if count else None
        self.pass2.add(total, counts, len(labels))
        return self

    def result(self) -> Result:
        """The :class:`Result`, once both passes have seen the same rows."""
        state = self.pass2
        if state is None:  # the phase is "accumulate"
            raise RuntimeError("result: run pass 1, finalize() and pass 2 first")
        state.check_complete()
        J = state.joint_sum / state.n_samples
        return Result._of(
            leep=state.leep,
            nce=state.nce,
            n_samples=state.n_samples,
            n_source=self.n_source,
            n_target=self.n_target,
            joint=J,
            marginal=_reference.marginal(J),
            conditional=state.conditional,
            class_counts=state.class_counts,
            hard_counts=state.hard_counts,
            backend=self.backend,
        )


# ---------------------------------------------------------------------------------------
# The in-memory API


def _run(what, predictions, labels, **options):
    """The two passes over an in-memory array: what = "nce" (pass 1 only), "leep" (the
    value alone) or "result". Predictions on disk go to score_files; labels on disk
    (next to in-memory predictions) are read whole, as labels are small."""
    if type(predictions) is not np.ndarray:  # an array is never a file: no look
        from . import readers  # at call time: the readers import this module

        if readers.is_file_source(predictions):
            from ._files import score_files

            result = score_files(predictions, labels, **options)
            return result if what == "result" else getattr(result, what)
    if type(labels) is not np.ndarray:
        from . import readers

        if isinstance(labels, (str, os.PathLike, readers.Labels)):
            labels = readers.open_labels(labels).array()
    predictions = check_predictions(predictions)
    labels, classes = check_labels(labels, predictions.shape[0], whole=True, classes=True)
    options = Options.resolve(**options)
    inferred = options.n_target is None
    if inferred:
        options = options.with_n_target(infer_n_target(labels))
    acc = Accumulator.from_options(options, pairs=what != "leep")  # LEEP needs no NCE
    acc.n_target_inferred = inferred
    acc.n_source = predictions.shape[1]  # checked: the batch check takes the fast path
    views = (
        predictions.flags.c_contiguous
        and predictions.dtype.isnative
        and acc.takes_large_views
    )
    rows = block_rows(
        options.block_size,
        predictions.shape[1],
        predictions.itemsize,
        views,
        options.logits,
    )
    result = two_passes(acc, ArraySource(predictions, labels, rows), what)
    if classes is None or what != "result":
        return result
    return replace(result, classes=tuple(classes.tolist()))


_PARAMETERS = """
    Parameters
    ----------
    predictions : array of shape (n_samples, n_source), float16, float32 or float64
        Row i is the source model's softmax over its n_source classes for target sample
        i (rows sum to 1 within ``ROW_SUM_TOLERANCE``: 1e-2 for float16, 1e-4 for
        float32, 1e-6 for float64), or its logits with ``logits=True``. Any memory
        order, strides and byte order; memory maps are streamed block by block. Or
        files: a path, a directory, a glob or a list of shards, or an opened
        ``Predictions``, streamed by :func:`leepfast.score_files` (both passes, also
        for NCE).
    labels : array of shape (n_samples,), or a path
        Target labels in [0, n_target): any integer dtype, or integer-valued floats
        (as pandas and ``np.loadtxt`` give them; any other float is refused), or
        strings (str or object arrays, lists, pandas Series and categoricals),
        numbered in sorted order (``Result.classes`` names them). A path is read as
        :func:`leepfast.open_labels` reads it (``.npy``, text, ``"file.csv:column"``).
    n_target : int, optional
        Number of target classes Y; default max(labels) + 1. Classes without samples
        are allowed.
    logits : bool, default False
        Take a max-subtracted softmax of each row (in float64) first.
    backend : {"auto", "cython", "numba", "numpy"}, default "auto"
        "auto" takes the first available of cython, numba, numpy.
    n_threads : int, optional
        None or -1: all cores (OMP_NUM_THREADS respected).
    block_size : int, optional
        Rows per block. Default: about 1 GiB of input (at most 2^20 rows) per block
        when the array is C-contiguous and native-endian and the backend is compiled
        (``cython`` or ``numba``: the blocks are views, nothing is copied), else about
        32 MiB (the size of any copy); 16 times fewer bytes for logits, whose
        softmax costs more, so that a block takes well under a second.
"""


def _arguments(
    predictions: ArrayLike,
    labels: ArrayLike,
    *,
    n_target: int | None = None,
    logits: bool = False,
    backend: str = "auto",
    n_threads: int | None = None,
    block_size: int | None = None,
) -> None:
    """The arguments of :func:`leep`, :func:`nce` and :func:`score`, written once."""


@takes_arguments_of(_arguments)
def leep(**arguments) -> float:
    """Exact LEEP of a source model on a labelled target set (Nguyen et al. 2020).
    {params}
    Returns
    -------
    float
        LEEP <= 0; larger means the source transfers better. Accumulated in float64.
        No epsilon is added: source classes without mass and absent target classes
        give the exact finite value.
    """
    return _run("leep", **arguments)


@takes_arguments_of(_arguments)
def nce(**arguments) -> float:
    """Negative Conditional Entropy (Tran et al. 2019) of argmax predictions vs labels.
    {params}
    Returns
    -------
    float
        NCE = -H(Y | Z) <= 0, with Z the argmax source class (ties: lowest index).
        Needs only pass 1.
    """
    return _run("nce", **arguments)


@takes_arguments_of(_arguments)
def score(**arguments) -> Result:
    """LEEP, NCE and the empirical joint and conditional, from two passes over the data.
    {params}
    Returns
    -------
    Result
        With ``leep``, ``nce``, ``n_samples``, ``n_source``, ``n_target``, ``joint``,
        ``marginal``, ``conditional``, ``class_counts``, ``hard_counts``, ``backend``.
    """
    return _run("result", **arguments)


for _f in (leep, nce, score):
    _f.__doc__ = _f.__doc__.replace("{params}", _PARAMETERS)
del _f
