"""The compiled backend: Cython over the portable C core (``src_cython/``)."""

import os

import numpy as np

from .._config import simd_cap_of
from .._openmp import load_kernels
from .._tensors import is_bfloat16

_kernels = load_kernels()

# A child forked after OpenMP ran in the parent would hang in its first parallel region
# (libgomp's thread pool does not survive fork): a forked child runs every kernel on
# its own thread, outside any OpenMP region, and computes the same values.
_forked = [False]


def _after_fork_in_child():
    _forked[0] = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _team(n_threads):
    return 1 if _forked[0] else n_threads


#: The kernels read C-contiguous blocks in place and allocate O(Z) per thread, whatever
#: the block size: the in-memory API may hand them large views of the caller's array.
TAKES_LARGE_VIEWS = True


def n_slots(n_threads):
    """Thread-local state slots: one per thread (the team is ``n_threads``, already
    clamped by ``resolve_threads``; a forked child runs the slots on one thread)."""
    return n_threads


def simd_cap():
    """``_config.simd_cap()``, the value read by the extension (``environ_simd``)."""
    return simd_cap_of(_kernels.environ_simd())


def _bits(block):
    # the C core takes float16 as IEEE binary16 bit patterns, and bfloat16's bit
    # patterns come as int16 (a type of their own for the driver's dispatch)
    if block.dtype == np.float16:
        return block.view(np.uint16)
    return block.view(np.int16) if is_bfloat16(block.dtype) else block


def accumulate(block, labels, joint_sum, hard, counts, logits, tol, n_threads):
    """Pass 1: add a block to the slots; (status, first bad row)."""
    bits, team, simd = _bits(block), _team(n_threads), simd_cap()
    return _kernels.accumulate(
        bits, labels, joint_sum, hard, counts, logits, tol, team, simd=simd
    )


def score(block, labels, conditional, logits, tol, n_threads):
    """Pass 2, every row validated as pass 1 validates it."""
    return _kernels.score(
        _bits(block), labels, conditional, logits, tol, _team(n_threads), simd=simd_cap()
    )


def finalize(joint_sum, hard, counts):
    """The slots reduced, C, the column sums and NCE, in one compiled pass."""
    return _kernels.finalize(joint_sum, hard, counts)


def both_passes(block, labels, joint_sum, hard, counts, logits, tol, n_threads):
    """Beyond the protocol (``leepfast.backends``): pass 1 into the slots, ``finalize``
    and pass 2 of a block that is all of a run's rows, in one compiled call, when the
    block is small enough to run on the calling thread (a call's fixed cost); else
    None, with nothing done. Returns ``(status, first_bad_row, finalized, total)``, the
    values of ``accumulate``, ``finalize`` (``finalized``, None on failure) and
    ``score`` (``total``), bit for bit."""
    return _kernels.both_passes(
        _bits(block), labels, joint_sum, hard, counts, logits, tol, simd=simd_cap()
    )
