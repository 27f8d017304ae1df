"""The two pass states: mergeable, with public merge and finalize.

:class:`Pass1State` holds pass 1's sufficient statistics in T thread-local slots: the
class sums S (T, Y, Z) float64, the (label, argmax) pair counts H (T, Y, Z) int64 and the
class counts (T, Y) int64. States of shards, processes or machines merge by addition;
:meth:`Pass1State.finalize` reduces the slots and forms C and NCE, and gives the
:class:`Pass2State`, which sums pass 2's log terms and the class counts it saw. Pass-2
states over the same finalized pass 1 (:meth:`Pass2State.fresh`) merge by addition too.
The states know nothing of inputs, backends' dispatch or error messages: the
:class:`~leepfast.Accumulator` and the drivers feed them.
"""

import functools
import math

import numpy as np

from ._checks import warn
from ._errors import PassMismatchError, StateSizeError

#: An inferred Y x Z state larger than this is announced with a warning naming the
#: largest label (one stray large label makes n_target, and the state, huge).
STATE_WARN_BYTES = 1 << 30


@functools.cache
def _physical_memory():
    """Bytes of physical memory, or None where the platform does not say (asked once:
    two system calls, a good part of a small call's cost)."""
    import os

    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def check_state_fits(n_slots, n_target, n_source, where="", inferred=True):
    """Refuse a Y x Z state larger than physical memory, with a message that says why
    (one huge label makes n_target huge; or the n_target given) instead of numpy's
    MemoryError; warn when an ``inferred`` n_target makes a state over STATE_WARN_BYTES."""
    # joint (float64) and pair counts (int64) per slot, their reductions and C
    need = 16 * (n_slots + 2) * n_target * n_source
    have = _physical_memory()
    if have and need > have:
        cause = (
            f"check the labels{where} (is {n_target - 1} meant to be a label?) or n_target"
            if inferred
            else "check n_target"
        )
        raise StateSizeError(
            f"n_target={n_target} with n_source={n_source} and {n_slots} thread slots "
            f"needs a Y x Z state of {need / 1e9:.3g} GB, more than this machine's "
            f"{have / 1e9:.3g} GB; {cause}, or pass fewer n_threads",
            "labels" if inferred else "n_target",
        )
    if inferred and need > STATE_WARN_BYTES:
        warn(
            f"labels{where}: the largest label, {n_target - 1}, makes "
            f"n_target={n_target} and a Y x Z state of {need / 1e9:.3g} GB with "
            f"n_source={n_source}; pass n_target={n_target} to confirm it, or check the "
            f"labels"
        )


def check_feature_state_fits(n_target, n_features, where="", argument="labels"):
    """Refuse Y classes of D features whose (Y, D) float64 class sums and (Y,) counts
    (what ``FeatureAccumulator.class_sums()`` and ``class_counts`` return) would not fit
    in physical memory: one huge label, or an absurd n_target, instead of numpy's
    MemoryError (or a crash) later."""
    need = 8 * n_target * (n_features + 1)
    have = _physical_memory()
    if have and need > have:
        cause = (
            f"check n_target{where}"
            if argument == "n_target"
            else f"check the labels{where} (is {n_target - 1} meant to be a label?) "
            f"or pass n_target"
        )
        raise StateSizeError(
            f"n_target={n_target} with n_features={n_features} needs per-class feature "
            f"sums of {need / 1e9:.3g} GB (Y x D float64), more than this machine's "
            f"{have / 1e9:.3g} GB; {cause}",
            argument,
        )


def _equal_counts(a, b):
    """``np.array_equal`` of two integer arrays; as a comparison of their bytes when
    they have one dtype and shape (no ufunc and no reduction: microseconds less, a
    good part of a small call's result)."""
    if a.dtype == b.dtype and a.shape == b.shape and a.dtype.kind in "iu":
        return a.tobytes() == b.tobytes()
    return np.array_equal(a, b)


class Pass1State:
    """Pass 1's statistics in ``n_slots`` thread-local slots (allocated on first use).
    ``pairs`` False: no pair counts (``hard`` stays None, NCE is NaN): LEEP alone needs
    none, and pass 1 then takes no argmax."""

    def __init__(self, n_slots, pairs=True):
        self.n_slots = n_slots
        self.pairs = pairs
        self.joint = self.hard = self.counts = None
        self.n_samples = 0

    @property
    def n_target(self):
        """Y so far (None before any row)."""
        return None if self.joint is None else self.joint.shape[1]

    def reserve(self, n_source, n_target, inferred=True):
        """Create the slots, or grow them to ``n_target`` classes (``inferred``: from
        the labels, not given)."""
        shape = (self.n_slots, n_target, n_source)
        if self.joint is None or n_target > self.joint.shape[1]:
            check_state_fits(self.n_slots, n_target, n_source, inferred=inferred)
        if self.joint is None:
            self.joint = np.zeros(shape)
            self.hard = np.zeros(shape, dtype=np.int64) if self.pairs else None
            self.counts = np.zeros(shape[:2], dtype=np.int64)
        elif n_target > self.joint.shape[1]:
            grow = n_target - self.joint.shape[1]
            self.joint = np.pad(self.joint, ((0, 0), (0, grow), (0, 0)))
            if self.pairs:
                self.hard = np.pad(self.hard, ((0, 0), (0, grow), (0, 0)))
            self.counts = np.pad(self.counts, ((0, 0), (0, grow)))

    def merge(self, other):
        """Add ``other``'s statistics (any slot count, any Y) into slot 0 (the pair
        counts only where both have them)."""
        if other.joint is None:
            return self
        if not other.pairs:
            self.pairs, self.hard = False, None
        n_source = other.joint.shape[2]
        self.reserve(n_source, max(other.n_target, self.n_target or 0))
        y = other.n_target
        self.joint[0, :y] += other.joint.sum(axis=0)
        if self.pairs:
            self.hard[0, :y] += other.hard.sum(axis=0)
        self.counts[0, :y] += other.counts.sum(axis=0)
        self.n_samples += other.n_samples
        return self

    def finalize(self, kernels, finalized=None):
        """Reduce the slots with the backend's ``finalize`` (or take ``finalized``, what
        it returned, when the backend ran it already: ``both_passes``); the slots are
        released (the results may be views of their memory)."""
        if finalized is None:
            finalized = kernels.finalize(self.joint, self.hard, self.counts)
        joint, hard, class_counts, conditional, _, nce = finalized
        self.joint = self.hard = self.counts = None
        return Pass2State(joint, hard, class_counts, conditional, nce, self.n_samples)


class Pass2State:
    """Pass 2's sums over a finalized pass 1 (whose arrays are shared, read-only)."""

    def __init__(self, joint_sum, hard_counts, class_counts, conditional, nce, n_samples):
        self.joint_sum = joint_sum
        self.hard_counts = hard_counts
        self.class_counts = class_counts
        self.conditional = conditional
        self.nce = nce
        self.n_samples = n_samples  # rows of pass 1
        self.total = 0.0  # sum of log terms
        # class counts seen in pass 2 (np.zeros: a fraction of np.zeros_like's cost)
        self.counts = np.zeros(class_counts.shape, class_counts.dtype)
        self.n_scored = 0

    @property
    def n_target(self):
        return self.conditional.shape[0]

    def fresh(self):
        """A pass-2 state of its own over the same finalized pass 1 (for a chunk task:
        the finalized arrays are shared, never modified)."""
        return Pass2State(
            self.joint_sum,
            self.hard_counts,
            self.class_counts,
            self.conditional,
            self.nce,
            self.n_samples,
        )

    def add(self, total, counts, n_rows):
        """Add one block's sum of log terms, class counts (None: not counted) and rows."""
        self.total += total
        if counts is not None:
            self.counts += counts
        self.n_scored += n_rows
        return self

    def same_rows_as_pass1(self):
        """Pass 2 was fed the very rows of pass 1 (the same arrays, uncounted): take
        pass 1's class counts as pass 2's."""
        self.counts[:] = self.class_counts
        return self

    def merge(self, other):
        """Add another pass-2 state over the same pass 1."""
        if other.conditional is not self.conditional and not np.array_equal(
            self.conditional, other.conditional
        ):
            raise ValueError("merge: pass-2 states were finalized from different data")
        self.total = math.fsum((self.total, other.total))
        self.counts += other.counts
        self.n_scored += other.n_scored
        return self

    def check_complete(self):
        """Raise unless pass 2 saw pass 1's rows (the same class counts)."""
        if not _equal_counts(self.counts, self.class_counts):
            raise PassMismatchError(
                f"result: pass 2 saw {self.n_scored} rows with class counts "
                f"{self.counts.tolist()}, pass 1 saw {self.n_samples} with "
                f"{self.class_counts.tolist()}; both passes must see the same rows",
                "labels",
            )

    @property
    def leep(self):
        return self.total / self.n_samples
