"""The Numba backend: the two primitives written again, independently of the C core.

Imported only when the numba backend is chosen (importing leepfast never imports numba).
Same contract as every backend: pass 1 splits a block into ``joint.shape[0]`` contiguous
slices with thread-local state; pass 2 sums fixed chunks of rows in order, so its result
does not depend on the thread count. float16 blocks are converted to float32 per block.
"""

import math
import threading

import numba
import numpy as np

from . import _status

CHUNK = 1024

_OK = _status.OK
_LABEL = _status.ERR_LABEL
_NONFINITE = _status.ERR_NONFINITE
_NEGATIVE = _status.ERR_NEGATIVE
_NOT_NORMALISED = _status.ERR_NOT_NORMALISED
_ZERO_PROB = _status.ERR_ZERO_PROB


@numba.njit(cache=True, nogil=True)
def _softmax_into(row, out):
    """Max-subtracted float64 softmax of a row of logits; False if a value is not finite."""
    hi = np.float64(row[0])
    for z in range(row.shape[0]):
        v = np.float64(row[z])
        if not math.isfinite(v):
            return False
        if v > hi:
            hi = v
    s = 0.0
    for z in range(row.shape[0]):
        out[z] = math.exp(np.float64(row[z]) - hi)
        s += out[z]
    for z in range(row.shape[0]):
        out[z] /= s
    return True


@numba.njit(cache=True, nogil=True)
def _check_probabilities(row, tol):
    """Status of one probability row (non-finite, negative, sum), in that order."""
    s = 0.0
    nonfinite = False
    negative = False
    for z in range(row.shape[0]):
        v = np.float64(row[z])
        s += v
        if not math.isfinite(v):
            nonfinite = True
        elif v < 0:
            negative = True
    if nonfinite:
        return _NONFINITE
    if negative:
        return _NEGATIVE
    if not abs(s - 1.0) <= tol:
        return _NOT_NORMALISED
    return _OK


@numba.njit(cache=True, nogil=True)
def _argmax(row):
    best = 0
    for z in range(1, row.shape[0]):
        if row[z] > row[best]:
            best = z
    return best


@numba.njit(parallel=True, cache=True, nogil=True)
def _accumulate(block, labels, joint, hard, counts, logits, tol, status, bad):
    n, n_source = block.shape
    n_slots, n_target = joint.shape[0], joint.shape[1]
    per = (n + n_slots - 1) // n_slots
    for t in numba.prange(n_slots):
        status[t] = _OK
        theta = np.empty(n_source)
        for i in range(t * per, min(n, (t + 1) * per)):
            y = labels[i]
            if y < 0 or y >= n_target:
                status[t] = _LABEL
            elif logits:
                if not _softmax_into(block[i], theta):
                    status[t] = _NONFINITE
            else:
                status[t] = _check_probabilities(block[i], tol)
                if status[t] == _OK:
                    for z in range(n_source):
                        theta[z] = block[i, z]
            if status[t] != _OK:
                bad[t] = i
                break
            for z in range(n_source):
                joint[t, y, z] += theta[z]
            hard[t, y, _argmax(theta)] += 1
            counts[t, y] += 1


@numba.njit(parallel=True, cache=True, nogil=True)
def _score(block, labels, conditional, logits, partial, status, bad):
    n, n_source = block.shape
    n_target = conditional.shape[0]
    n_chunks = partial.shape[0]
    for c in numba.prange(n_chunks):
        status[c] = _OK
        partial[c] = 0.0
        theta = np.empty(n_source)
        for i in range(c * CHUNK, min(n, (c + 1) * CHUNK)):
            y = labels[i]
            if y < 0 or y >= n_target:
                status[c] = _LABEL
            elif logits:
                if not _softmax_into(block[i], theta):
                    status[c] = _NONFINITE
            else:
                for z in range(n_source):
                    theta[z] = block[i, z]
            p = 0.0
            if status[c] == _OK:
                for z in range(n_source):
                    p += conditional[y, z] * theta[z]
                if not (p > 0.0 and math.isfinite(p)):
                    status[c] = _ZERO_PROB
            if status[c] != _OK:
                bad[c] = i
                break
            partial[c] += math.log(p)


def n_slots(n_threads):
    """Thread-local state slots: one per thread."""
    return n_threads


# Numba's "workqueue" threading layer (used when neither OpenMP nor TBB is available)
# aborts the whole process when parallel functions are entered from two Python threads
# at once, so calls are serialised under it. The layer is only known after the first
# parallel call, which is therefore serialised too.
_WORKQUEUE_LOCK = threading.Lock()


def _run(kernel, *args):
    try:
        serialise = numba.threading_layer() == "workqueue"
    except ValueError:  # no parallel function has run yet
        serialise = True
    if serialise:
        with _WORKQUEUE_LOCK:
            return kernel(*args)
    return kernel(*args)


def _prepare(block, n_threads):
    numba.set_num_threads(max(1, min(n_threads, numba.config.NUMBA_NUM_THREADS)))
    return block.astype(np.float32) if block.dtype == np.float16 else block


def accumulate(block, labels, joint_sum, hard, counts, logits, tol, n_threads):
    block = _prepare(block, n_threads)
    n_slots_ = joint_sum.shape[0]
    status = np.zeros(n_slots_, dtype=np.int64)
    bad = np.full(n_slots_, -1, dtype=np.int64)
    if len(block):
        _run(_accumulate, block, labels, joint_sum, hard, counts, logits, tol, status, bad)
    for t in range(n_slots_):
        if status[t]:
            return int(status[t]), int(bad[t])
    return _status.OK, -1


def score(block, labels, conditional, logits, n_threads):
    block = _prepare(block, n_threads)
    n_chunks = (len(block) + CHUNK - 1) // CHUNK
    partial = np.zeros(n_chunks)
    status = np.zeros(n_chunks, dtype=np.int64)
    bad = np.full(n_chunks, -1, dtype=np.int64)
    if n_chunks:
        _run(_score, block, labels, conditional, logits, partial, status, bad)
    for c in range(n_chunks):
        if status[c]:
            return int(status[c]), int(bad[c]), 0.0
    total = 0.0
    for c in range(n_chunks):
        total += partial[c]
    return _status.OK, -1, total
