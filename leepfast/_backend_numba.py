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
def _add_row(row, tol, check, joint_row):
    """Add one row to its joint row; (status, argmax) of the row.

    One read gathers the minimum, the maximum and its first index (ties: the lowest),
    four independent partial sums give the row sum; ``check`` validates it (non-finite,
    negative, sum; in that order). On a bad status the row is not added.
    """
    n = row.shape[0]
    lo = np.float64(row[0])
    hi = lo
    arg = 0
    for z in range(n):
        v = np.float64(row[z])
        if v < lo:
            lo = v
        if v > hi:
            hi = v
            arg = z
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    m = n - n % 4
    for z in range(0, m, 4):
        s0 += np.float64(row[z])
        s1 += np.float64(row[z + 1])
        s2 += np.float64(row[z + 2])
        s3 += np.float64(row[z + 3])
    for z in range(m, n):
        s0 += np.float64(row[z])
    s = (s0 + s1) + (s2 + s3)
    if check:
        if not math.isfinite(s):
            for z in range(n):
                if not math.isfinite(np.float64(row[z])):
                    return _NONFINITE, 0
        if lo < 0:
            return _NEGATIVE, 0
        if not abs(s - 1.0) <= tol:
            return _NOT_NORMALISED, 0
    for z in range(n):
        joint_row[z] += np.float64(row[z])
    return _OK, arg


@numba.njit(cache=True, nogil=True)
def _dot(row, c_row):
    """sum_z c_row[z] * row[z] in float64, four independent chains."""
    n = row.shape[0]
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    m = n - n % 4
    for z in range(0, m, 4):
        s0 += c_row[z] * np.float64(row[z])
        s1 += c_row[z + 1] * np.float64(row[z + 1])
        s2 += c_row[z + 2] * np.float64(row[z + 2])
        s3 += c_row[z + 3] * np.float64(row[z + 3])
    for z in range(m, n):
        s0 += c_row[z] * np.float64(row[z])
    return (s0 + s1) + (s2 + s3)


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
            arg = 0
            if y < 0 or y >= n_target:
                status[t] = _LABEL
            elif logits:
                if _softmax_into(block[i], theta):
                    status[t], arg = _add_row(theta, tol, False, joint[t, y])
                else:
                    status[t] = _NONFINITE
            else:
                status[t], arg = _add_row(block[i], tol, True, joint[t, y])
            if status[t] != _OK:
                bad[t] = i
                break
            hard[t, y, arg] += 1
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
            p = 0.0
            if y < 0 or y >= n_target:
                status[c] = _LABEL
            elif logits:
                if _softmax_into(block[i], theta):
                    p = _dot(theta, conditional[y])
                else:
                    status[c] = _NONFINITE
            else:
                p = _dot(block[i], conditional[y])
            if status[c] == _OK and not (p > 0.0 and math.isfinite(p)):
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


@numba.njit(parallel=True, cache=True, nogil=True)
def _halves_to_float_bits(halves, out):
    """IEEE binary16 bit patterns to binary32 bit patterns, exactly (Numba has no
    float16 type): subnormal halves become normal floats, inf and NaN carry over."""
    flat_in = halves.reshape(-1)
    flat_out = out.reshape(-1)
    for i in numba.prange(flat_in.shape[0]):
        h = np.uint32(flat_in[i])
        sign = (h & np.uint32(0x8000)) << np.uint32(16)
        e = (h >> np.uint32(10)) & np.uint32(0x1F)
        m = h & np.uint32(0x3FF)
        if e == 0:
            if m == 0:
                bits = sign
            else:  # m * 2^-24: shift the leading 1 into bit 10
                shift = np.uint32(0)
                while (m & np.uint32(0x400)) == 0:
                    m = m << np.uint32(1)
                    shift += np.uint32(1)
                bits = (sign | ((np.uint32(113) - shift) << np.uint32(23))
                        | ((m & np.uint32(0x3FF)) << np.uint32(13)))
        elif e == 31:
            bits = sign | np.uint32(0x7F800000) | (m << np.uint32(13))
        else:
            bits = sign | ((e + np.uint32(112)) << np.uint32(23)) | (m << np.uint32(13))
        flat_out[i] = bits


def _prepare(block, n_threads):
    numba.set_num_threads(max(1, min(n_threads, numba.config.NUMBA_NUM_THREADS)))
    if block.dtype != np.float16:
        return block
    # one block-sized float32 copy, converted in parallel (NumPy's cast is scalar)
    out = np.empty(block.shape, dtype=np.uint32)
    _run(_halves_to_float_bits, block.view(np.uint16), out)
    return out.view(np.float32)


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
