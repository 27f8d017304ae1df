"""The compiled backend: Cython over the portable C core (``src_cython/``)."""

import numpy as np

from . import _kernels

#: The kernels read C-contiguous blocks in place and allocate O(Z) per thread, whatever
#: the block size: the in-memory API may hand them large views of the caller's array.
TAKES_LARGE_VIEWS = True


def n_slots(n_threads):
    """Thread-local state slots: one per thread."""
    return n_threads


def _bits(block):
    # the C core takes float16 as IEEE binary16 bit patterns
    return block.view(np.uint16) if block.dtype == np.float16 else block


def accumulate(block, labels, joint_sum, hard, counts, logits, tol, n_threads):
    return _kernels.accumulate(
        _bits(block), labels, joint_sum, hard, counts, logits, tol, n_threads
    )


def score(block, labels, conditional, logits, tol, n_threads):
    return _kernels.score(_bits(block), labels, conditional, logits, n_threads)


def finalize(joint_sum, hard, counts):
    """The slots reduced, C, the column sums and NCE, in one compiled pass."""
    return _kernels.finalize(joint_sum, hard, counts)
