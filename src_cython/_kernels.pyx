# cython: language_level=3
"""Compiled kernels: the two streaming primitives over the portable C core.

The Python layer validates kinds and shapes and hands over C-contiguous, native-endian
blocks; the C core validates values (fused into pass 1) and reports a status code and
the first offending row, which the Python layer turns into an exception. Nothing here
raises inside ``nogil``.

Parallelism (OpenMP, when the build found it):
- ``accumulate`` splits a block into ``T = joint.shape[0]`` contiguous slices, slice t
  accumulating into the thread-local state ``joint[t]``, ``hard[t]``, ``counts[t]``; the
  caller reduces the slots in order. For a fixed T the result is bit-identical whatever
  the number of OpenMP threads.
- ``score`` splits a block into ``_n_chunks(n)`` chunks of balanced size (a function of
  n only) and sums their partial sums in order, so its result never depends on the
  number of threads. The chunks are handed out dynamically, CHUNK_GROUP at a time:
  on a shared machine a thread the system has set aside no longer holds the other
  at the end of the block with its static share (the chunk a partial sum belongs to
  never depends on the thread that computes it).
- A block of less work than ``PARALLEL_MIN_VALUES`` (``_threaded``) runs on the calling
  thread, whatever ``n_threads`` is: starting the team costs more than the block
  (tens of microseconds on an idle machine, milliseconds on a loaded one). The slots
  and chunks stay those of ``n_threads``, so the values are bit-identical either way.
"""
from cython.parallel cimport parallel, prange
from libc.stdint cimport int16_t, int32_t, int64_t, uint16_t
from leepfast.libleepfast cimport LEEPFAST_SIMD_BEST
from libc.math cimport NAN, log
from libc.stdlib cimport calloc, free, getenv, malloc
from libc.string cimport memset

import numpy as np

from leepfast.libleepfast cimport (
    LEEPFAST_ERR_NOMEM, leepfast_simd, leepfast_simd_level,
    leepfast_accumulate_simd_bf16, leepfast_accumulate_simd_f32,
    leepfast_accumulate_simd_f64, leepfast_score_checked_bf16, leepfast_score_checked_f16,
    leepfast_score_checked_f32, leepfast_score_checked_f64,
)

# The private entry points of leepfast.c for this driver (not in leepfast.h): float16
# pass 1 with a workspace of int32 partials (in fixed point where that pays), and the
# level a cap gives.
cdef extern from "leepfast_internal.h" nogil:
    int leepfast_simd_effective(int cap)
    int64_t leepfast_f16_partials(int64_t, int64_t, int64_t, int, double, int)
    int leepfast_accumulate_f16_partials(const uint16_t *, const int64_t *, int64_t,
                                         int64_t, int64_t, int, double, double *,
                                         int64_t *, int64_t *, double *, int32_t *,
                                         int64_t *, int)

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define LF_OPENMP 1
    #else
    #define LF_OPENMP 0
    #endif
    """
    int LF_OPENMP

cdef extern from *:
    """
    /* The read floor for benchmarks: a plain vectorisable sum of a contiguous range,
       LANES independent accumulators of type ACC (one vector register's worth). */
    #define LF_DEFINE_READ(NAME, T, ACC, LANES)                                   \
        static double NAME(const T *x, int64_t n)                                 \
        {                                                                         \
            ACC acc[LANES] = {0};                                                 \
            int64_t i = 0;                                                        \
            for (; i + LANES <= n; i += LANES)                                    \
                for (int k = 0; k < LANES; k++) acc[k] += x[i + k];               \
            double s = 0.0;                                                       \
            for (int k = 0; k < LANES; k++) s += acc[k];                          \
            for (; i < n; i++) s += x[i];                                         \
            return s;                                                             \
        }
    LF_DEFINE_READ(lf_read_f32, float, float, 16)
    LF_DEFINE_READ(lf_read_f64, double, double, 8)
    LF_DEFINE_READ(lf_read_u16, uint16_t, uint32_t, 16)
    """
    double lf_read_f32(const float *, int64_t) nogil
    double lf_read_f64(const double *, int64_t) nogil
    double lf_read_u16(const uint16_t *, int64_t) nogil

# float16 arrives as its uint16 bit patterns (a ``.view(np.uint16)`` of the block),
# bfloat16 as its bit patterns viewed as int16 (``.view(np.int16)``: a type of its own
# for the dispatch; the C core takes them as uint16).
ctypedef fused pred_t:
    float
    double
    uint16_t
    int16_t


def openmp_enabled():
    """True when this extension was compiled with OpenMP."""
    return bool(LF_OPENMP)


def simd():
    """The instruction set the row kernels run with on this CPU: "avx512", "avx2",
    "sse2" or "scalar" (chosen at run time, never by -march=native)."""
    return leepfast_simd().decode("ascii")


#: The SIMD level names, lowest first; their index is the C core's level number.
LEVELS = ("scalar", "sse2", "avx2", "avx512")


def simd_level():
    """The best level this build runs on this CPU, as an index into ``LEVELS``."""
    return leepfast_simd_level()


def environ_simd():
    """``LEEPFAST_SIMD`` as the process environment holds it, or None when unset: what
    ``os.environ.get`` gives (os.environ writes through to that environment, with the
    GIL held, as this reads it), read in C: a small call's cost, not a microsecond of
    Python-level mapping calls. ``leepfast._config.simd_cap_of`` parses it."""
    cdef const char *value = getenv(b"LEEPFAST_SIMD")
    if value == NULL:
        return None
    return value.decode("utf-8", "surrogateescape")


def simd_effective(int cap):
    """The level a call capped at ``cap`` (an index into ``LEVELS``) runs at."""
    return leepfast_simd_effective(cap)


cdef inline int _accumulate_rows(const pred_t *rows, const int64_t *labels, int64_t n,
                                 int64_t n_source, int64_t n_target, int logits,
                                 double tol, double *joint, int64_t *hard,
                                 int64_t *counts, double *scratch, int32_t *partials,
                                 int64_t *bad, int simd) noexcept nogil:
    if pred_t is float:
        return leepfast_accumulate_simd_f32(rows, labels, n, n_source, n_target, logits,
                                            tol, joint, hard, counts, scratch, bad, simd)
    elif pred_t is double:
        return leepfast_accumulate_simd_f64(rows, labels, n, n_source, n_target, logits,
                                            tol, joint, hard, counts, scratch, bad, simd)
    elif pred_t is int16_t:
        return leepfast_accumulate_simd_bf16(<const uint16_t *> rows, labels, n, n_source,
                                             n_target, logits, tol, joint, hard, counts,
                                             scratch, bad, simd)
    else:
        return leepfast_accumulate_f16_partials(rows, labels, n, n_source, n_target,
                                                logits, tol, joint, hard, counts, scratch,
                                                partials, bad, simd)


cdef inline int _score_rows(const pred_t *rows, const int64_t *labels, int64_t n,
                            int64_t n_source, int64_t n_target, int logits, double tol,
                            const double *conditional, double *scratch, double *total,
                            int64_t *bad, int simd) noexcept nogil:
    if pred_t is float:
        return leepfast_score_checked_f32(rows, labels, n, n_source, n_target, logits,
                                          tol, conditional, scratch, total, bad, simd)
    elif pred_t is double:
        return leepfast_score_checked_f64(rows, labels, n, n_source, n_target, logits,
                                          tol, conditional, scratch, total, bad, simd)
    elif pred_t is int16_t:
        return leepfast_score_checked_bf16(<const uint16_t *> rows, labels, n, n_source,
                                           n_target, logits, tol, conditional, scratch,
                                           total, bad, simd)
    else:
        return leepfast_score_checked_f16(rows, labels, n, n_source, n_target, logits,
                                          tol, conditional, scratch, total, bad, simd)


# Below this much work (rows x columns of a block, a logit counting LOGIT_WEIGHT values
# for its exp) a call runs on the calling thread. Measured on a shared 2-core machine
# (pass 1, finalize and pass 2 of one block, float32, Y=10, medians of 21 interleaved
# rounds), 2 threads over 1: 1.0x at 1e4 values, 0.88x at 2^16, 0.70x at 2^17 (Z=100);
# 1.0x at 2^16, 0.94x at 2^17, 0.86x at 2^19 (Z=1000, more state to reduce); logits
# cost about 4.5x per value: 0.87x at 3e4, 0.82x at 6.5e4. On a loaded machine the
# team's start alone takes milliseconds (a call on 10 rows: 0.2-36 ms with 2 threads,
# 0.1-0.5 ms with one), so a team starts only where it clearly pays.
cdef enum:
    PARALLEL_MIN_VALUES = 1 << 17
    LOGIT_WEIGHT = 4


cdef inline bint _threaded(int n_threads, Py_ssize_t n, Py_ssize_t n_source,
                           bint logits) noexcept nogil:
    """Whether a block of n rows of n_source values is worth a team of n_threads."""
    cdef double work = <double> n * n_source * (LOGIT_WEIGHT if logits else 1)
    return n_threads > 1 and work >= PARALLEL_MIN_VALUES


# Up to this many Y x Z cells, pass 1 accumulates into buffers private to the thread
# and adds them to its slot at the end of the block: slots that small share cache lines
# across threads (false sharing on every row).
cdef enum:
    LOCAL_STATE_CELLS = 4096


ctypedef struct _Buffers:
    # one thread's buffers for pass 1 (NULL: not needed, or no memory for it)
    double *scratch        # 2 Z doubles: a widened or softmaxed row
    int64_t *counts        # Y class counts
    double *joint          # Y x Z, when the state is small (LOCAL_STATE_CELLS)
    int64_t *hard          # Y x Z, likewise, with pair counts
    int32_t *partials      # float16's fixed-point workspace, where it pays


cdef inline _Buffers _buffers(Py_ssize_t n_source, Py_ssize_t n_target, bint local_state,
                              int64_t n_partials, bint pairs) noexcept nogil:
    """One thread's pass-1 buffers (``_free_buffers`` releases them); ``pairs``: the
    pair counts are kept."""
    cdef _Buffers b
    cdef Py_ssize_t cells = n_target * n_source
    b.scratch = <double *> malloc(2 * n_source * sizeof(double))
    b.counts = <int64_t *> malloc(n_target * sizeof(int64_t))
    b.joint = NULL
    b.hard = NULL
    b.partials = NULL
    if n_partials > 0:  # NULL (not enough memory) takes the float64 path
        b.partials = <int32_t *> malloc(n_partials * sizeof(int32_t))
    if local_state:
        b.joint = <double *> malloc(cells * sizeof(double))
        if pairs:
            b.hard = <int64_t *> malloc(cells * sizeof(int64_t))
    return b


cdef inline void _free_buffers(_Buffers *b) noexcept nogil:
    free(b.scratch)
    free(b.counts)
    free(b.joint)
    free(b.hard)
    free(b.partials)


cdef inline int _accumulate_slot(const pred_t *block, const int64_t *labels, Py_ssize_t n,
                                 Py_ssize_t n_source, Py_ssize_t n_target, Py_ssize_t t,
                                 Py_ssize_t per, bint local_state, bint logits,
                                 double tol, double *joint, int64_t *hard,
                                 int64_t *counts, _Buffers *b, int64_t *bad,
                                 int simd) noexcept nogil:
    """Slot t of pass 1: rows [t * per, (t + 1) * per) of the block (n rows) into
    ``joint[t]``, ``hard[t]`` and ``counts[t]`` (the (T, Y, Z) and (T, Y) slots, from
    their first element; ``hard`` NULL: no pair counts), through the thread's buffers
    ``b``: the class counts always, the joint and pair counts when ``local_state``,
    added to the slot at the end. The status; the first bad row, counted from t * per,
    in *bad."""
    cdef Py_ssize_t start = t * per, stop = t * per + per, k
    cdef Py_ssize_t cells = n_target * n_source
    cdef double *joint_t = joint + t * cells
    cdef int64_t *hard_t = NULL if hard == NULL else hard + t * cells
    cdef int64_t *counts_t = counts + t * n_target
    cdef int status
    if stop > n:
        stop = n
    if start >= stop:
        return 0
    if (b.scratch == NULL or b.counts == NULL
            or (local_state and (b.joint == NULL or (hard != NULL and b.hard == NULL)))):
        bad[0] = 0
        return LEEPFAST_ERR_NOMEM
    memset(b.counts, 0, n_target * sizeof(int64_t))
    if local_state:
        memset(b.joint, 0, cells * sizeof(double))
        if hard != NULL:
            memset(b.hard, 0, cells * sizeof(int64_t))
    status = _accumulate_rows(block + start * n_source, labels + start, stop - start,
                              n_source, n_target, logits, tol,
                              b.joint if local_state else joint_t,
                              b.hard if local_state else hard_t,  # NULL: no pairs
                              b.counts, b.scratch, b.partials, bad, simd)
    if status == 0:
        for k in range(n_target):
            counts_t[k] += b.counts[k]
        if local_state:  # slot t is C-contiguous: cell k at offset k
            for k in range(cells):
                joint_t[k] += b.joint[k]
            if hard != NULL:
                for k in range(cells):
                    hard_t[k] += b.hard[k]
    return status


cdef inline int _first_bad_slot(const int *status, const int64_t *bad, Py_ssize_t n_slots,
                                Py_ssize_t per, int64_t *first_bad) noexcept nogil:
    """Pass 1's status over the slots: that of the first slot that failed (0: none),
    and its first bad row in the block in *first_bad (-1: none)."""
    cdef Py_ssize_t t
    first_bad[0] = -1
    for t in range(n_slots):
        if status[t] != 0:
            first_bad[0] = t * per + bad[t]
            return status[t]
    return 0


cdef int _pass1(const pred_t[:, ::1] block, const int64_t[::1] labels,
                double[:, :, ::1] joint, int64_t[:, :, ::1] hard, int64_t[:, ::1] counts,
                bint logits, double tol, int n_threads, int simd, bint fresh,
                int64_t *first_bad) except -1:
    """Pass 1 over one block (checked shapes, n > 0) into the slots, by a team of
    n_threads where ``_threaded`` says it pays, else on the calling thread without
    entering an OpenMP region (its start alone costs a microsecond or two); the same
    slots and code either way. The status, and the first bad row in *first_bad.
    ``accumulate`` documents the layout.

    ``fresh``: the slots hold zeros. On the calling thread the rows are then added to
    the slots themselves instead of through zeroed buffers (no false sharing to avoid):
    the same additions from the same +0.0, so the same bits (a buffer's sum is never
    -0.0, so adding it to the slot's +0.0 leaves it as it is). ``hard`` None: no pair
    counts (nor argmax)."""
    cdef Py_ssize_t n = block.shape[0], n_source = block.shape[1]
    cdef Py_ssize_t n_slots = joint.shape[0], n_target = joint.shape[1]
    cdef Py_ssize_t per = (n + n_slots - 1) // n_slots
    cdef int64_t *pairs = NULL if hard is None else &hard[0, 0, 0]
    cdef bint threaded = _threaded(n_threads, n, n_source, logits)
    cdef bint local_state = (n_target * n_source <= LOCAL_STATE_CELLS
                             and (threaded or not fresh))
    cdef Py_ssize_t t
    cdef _Buffers b
    # float16 probabilities: int32 partials per thread where the fixed-point pass pays
    cdef int64_t n_partials = 0
    if pred_t is uint16_t:
        n_partials = leepfast_f16_partials(per, n_source, n_target, logits, tol, simd)
    # per slot: its status and first bad row (C arrays: no NumPy array per call)
    cdef int *status = <int *> calloc(n_slots, sizeof(int))
    cdef int64_t *bad = <int64_t *> calloc(n_slots, sizeof(int64_t))
    if status == NULL or bad == NULL:
        free(status)
        free(bad)
        raise MemoryError("accumulate: no memory for the slots' statuses")
    if not threaded:  # the same slots, one after the other, outside any OpenMP region
        with nogil:
            b = _buffers(n_source, n_target, local_state, n_partials, pairs != NULL)
            for t in range(n_slots):
                status[t] = _accumulate_slot(&block[0, 0], &labels[0], n, n_source,
                                             n_target, t, per, local_state, logits, tol,
                                             &joint[0, 0, 0], pairs, &counts[0, 0], &b,
                                             &bad[t], simd)
            _free_buffers(&b)
    else:
        with nogil, parallel(num_threads=n_threads, use_threads_if=threaded):
            b = _buffers(n_source, n_target, local_state, n_partials, pairs != NULL)
            for t in prange(n_slots, schedule="static"):
                status[t] = _accumulate_slot(&block[0, 0], &labels[0], n, n_source,
                                             n_target, t, per, local_state, logits, tol,
                                             &joint[0, 0, 0], pairs, &counts[0, 0], &b,
                                             &bad[t], simd)
            _free_buffers(&b)
    cdef int found = _first_bad_slot(status, bad, n_slots, per, first_bad)
    free(status)
    free(bad)
    return found


def accumulate(const pred_t[:, ::1] block, const int64_t[::1] labels,
               double[:, :, ::1] joint, int64_t[:, :, ::1] hard,
               int64_t[:, ::1] counts, bint logits, double tol, int n_threads,
               int simd=LEEPFAST_SIMD_BEST):
    """Pass 1 over one block into thread-local slots; returns (status, first_bad_row).

    The block is split into ``T = joint.shape[0]`` contiguous slices of
    ``ceil(n / T)`` rows, slice t accumulating into slot t. The per-class counts are
    always gathered in a buffer private to the thread (the (slots, Y) array is small
    enough for slots to share cache lines), and so are the joint and pair counts when
    Y x Z is small; they are added to slot t at the end. float16 probabilities get a
    Y x Z int32 workspace per thread where the C core's fixed-point pass pays
    (``leepfast_f16_partials``; without the memory, the float64 path runs). ``simd``
    caps the SIMD level (an index into ``LEVELS``). A block that runs on the calling
    thread (``n_threads == 1``, or below ``PARALLEL_MIN_VALUES``) enters no OpenMP
    region (safe in a forked child). ``hard`` None: no pair counts, and no argmax is
    taken (LEEP alone needs neither; about a fifth of pass 1's arithmetic).
    """
    _check_pass1(block, labels, joint, hard, counts, "accumulate")
    if block.shape[0] == 0:
        return 0, -1
    cdef int64_t first_bad
    cdef int found = _pass1(block, labels, joint, hard, counts, logits, tol, n_threads,
                            simd, False, &first_bad)
    return found, first_bad


cdef int _check_pass1(const pred_t[:, ::1] block, const int64_t[::1] labels,
                      double[:, :, ::1] joint, int64_t[:, :, ::1] hard,
                      int64_t[:, ::1] counts, str name) except -1:
    cdef Py_ssize_t n = block.shape[0], n_source = block.shape[1]
    cdef Py_ssize_t n_slots = joint.shape[0], n_target = joint.shape[1]
    if labels.shape[0] != n or joint.shape[2] != n_source:
        raise ValueError(f"{name}: block, labels and joint disagree in shape")
    if (hard is not None and (hard.shape[0] != n_slots or hard.shape[1] != n_target
                              or hard.shape[2] != n_source)
            or counts.shape[0] != n_slots or counts.shape[1] != n_target):
        raise ValueError(f"{name}: hard and counts must match joint")
    if n_slots == 0:
        raise ValueError(f"{name}: no slots")
    return 0


cdef enum:
    CHUNK_ROWS = 1024   # rows per pass-2 chunk, about
    CHUNK_GROUP = 8     # the chunk count is a multiple of this (of 1, 2, 4, 8 threads)


cdef inline Py_ssize_t _n_chunks(Py_ssize_t n, Py_ssize_t chunk) noexcept nogil:
    """About n / chunk chunks; more than one only in multiples of CHUNK_GROUP, so that
    a static schedule over 1, 2, 4 or 8 threads is balanced (9 chunks of 1024 rows over
    2 threads would leave one thread a third idle)."""
    cdef Py_ssize_t k = (n + chunk - 1) // chunk
    if k > 1:
        k = (k + CHUNK_GROUP - 1) // CHUNK_GROUP * CHUNK_GROUP
    return k


cdef inline int _score_chunk(const pred_t *block, const int64_t *labels, Py_ssize_t n,
                             Py_ssize_t n_source, Py_ssize_t n_target, Py_ssize_t c,
                             Py_ssize_t n_chunks, bint logits, double tol,
                             const double *conditional, double *scratch, double *partial,
                             int64_t *bad, int simd) noexcept nogil:
    """Chunk c of pass 2: rows [c * n // n_chunks, (c + 1) * n // n_chunks) of the block
    (n rows), their sum of log terms in *partial; the status, and the first bad row,
    counted from the chunk's start, in *bad."""
    cdef Py_ssize_t start = c * n // n_chunks, stop = (c + 1) * n // n_chunks
    partial[0] = 0.0
    if start == stop:
        return 0
    if scratch == NULL:
        bad[0] = 0
        return LEEPFAST_ERR_NOMEM
    return _score_rows(block + start * n_source, labels + start, stop - start, n_source,
                       n_target, logits, tol, conditional, scratch, partial, bad, simd)


cdef int _pass2(const pred_t[:, ::1] block, const int64_t[::1] labels,
                const double *conditional, Py_ssize_t n_target, bint logits, double tol,
                int n_threads, Py_ssize_t chunk, int simd, int64_t *first_bad,
                double *total) except -1:
    """Pass 2 over one block (checked shapes, n > 0, chunk > 0), by a team of n_threads
    where ``_threaded`` says it pays, else on the calling thread without entering an
    OpenMP region; the same chunks and code either way. The status; the first bad row
    in *first_bad and the sum of log terms (the chunks' sums added in order; 0 on
    failure) in *total. ``conditional``: C, (n_target, Z), C-contiguous. ``score``
    documents the layout."""
    cdef Py_ssize_t n = block.shape[0], n_source = block.shape[1]
    cdef Py_ssize_t n_chunks = _n_chunks(n, chunk)
    cdef bint threaded = _threaded(n_threads, n, n_source, logits)
    # per chunk: its status, first bad row and partial sum (C arrays: no NumPy array
    # per call)
    cdef int *status = <int *> calloc(n_chunks, sizeof(int))
    cdef int64_t *bad = <int64_t *> calloc(n_chunks, sizeof(int64_t))
    cdef double *partial = <double *> calloc(n_chunks, sizeof(double))
    if status == NULL or bad == NULL or partial == NULL:
        free(status)
        free(bad)
        free(partial)
        raise MemoryError("score: no memory for the chunks' partial sums")
    cdef Py_ssize_t c
    cdef double *scratch = NULL  # firstprivate in the parallel block: set before it
    cdef int found = 0
    if not threaded:  # the same chunks, one after the other, outside any OpenMP region
        with nogil:
            scratch = <double *> malloc(2 * n_source * sizeof(double))
            for c in range(n_chunks):
                status[c] = _score_chunk(&block[0, 0], &labels[0], n, n_source, n_target,
                                         c, n_chunks, logits, tol, conditional,
                                         scratch, &partial[c], &bad[c], simd)
            free(scratch)
    else:
        with nogil, parallel(num_threads=n_threads, use_threads_if=threaded):
            scratch = <double *> malloc(2 * n_source * sizeof(double))
            for c in prange(n_chunks, schedule="dynamic", chunksize=CHUNK_GROUP):
                status[c] = _score_chunk(&block[0, 0], &labels[0], n, n_source, n_target,
                                         c, n_chunks, logits, tol, conditional,
                                         scratch, &partial[c], &bad[c], simd)
            free(scratch)
    first_bad[0] = -1
    total[0] = 0.0
    for c in range(n_chunks):
        if status[c] != 0:
            found, first_bad[0], total[0] = status[c], c * n // n_chunks + bad[c], 0.0
            break
        total[0] += partial[c]
    free(status)
    free(bad)
    free(partial)
    return found


def score(const pred_t[:, ::1] block, const int64_t[::1] labels,
          const double[:, ::1] conditional, bint logits, double tol, int n_threads,
          Py_ssize_t chunk=CHUNK_ROWS, int simd=LEEPFAST_SIMD_BEST):
    """Pass 2 over one block; returns (status, first_bad_row, sum of log terms).

    Every row is validated as pass 1 validates it (``tol``: the row-sum tolerance), so
    the status and first bad row are those pass 1 would report for the block.

    Chunk c holds rows [c * n // k, (c + 1) * n // k) with k = ``_n_chunks(n, chunk)``.
    """
    _check_pass2(block, labels, conditional, chunk, "score")
    if block.shape[0] == 0:
        return 0, -1, 0.0
    cdef int64_t first_bad
    cdef double total
    cdef int found = _pass2(block, labels, &conditional[0, 0], conditional.shape[0],
                            logits, tol, n_threads, chunk, simd, &first_bad, &total)
    return found, first_bad, total


cdef int _check_pass2(const pred_t[:, ::1] block, const int64_t[::1] labels,
                      const double[:, ::1] conditional, Py_ssize_t chunk,
                      str name) except -1:
    if labels.shape[0] != block.shape[0] or conditional.shape[1] != block.shape[1]:
        raise ValueError(f"{name}: block, labels and conditional disagree in shape")
    if chunk <= 0:
        raise ValueError(f"{name}: chunk must be positive")
    return 0


def read_floor(const pred_t[:, ::1] block, int n_threads, Py_ssize_t chunk=CHUNK_ROWS):
    """The cost of reading a block once: a plain parallel sum (for benchmarks only).

    Same thread layout as ``score`` (one thread below ``PARALLEL_MIN_VALUES``); float16
    and bfloat16 are summed as their integer bit patterns (the bytes are read, the value
    is meaningless).
    """
    cdef Py_ssize_t n = block.shape[0], n_source = block.shape[1]
    if n == 0:
        return 0.0
    cdef Py_ssize_t n_chunks = _n_chunks(n, chunk)
    cdef double[::1] partial = np.zeros(n_chunks)
    cdef Py_ssize_t c, start, stop
    cdef double total = 0.0
    cdef bint threaded = _threaded(n_threads, n, n_source, False)
    for c in prange(n_chunks, nogil=True, num_threads=n_threads, schedule="static",
                    use_threads_if=threaded):
        start = c * n // n_chunks
        stop = (c + 1) * n // n_chunks
        if pred_t is float:
            partial[c] = lf_read_f32(&block[start, 0], (stop - start) * n_source)
        elif pred_t is double:
            partial[c] = lf_read_f64(&block[start, 0], (stop - start) * n_source)
        elif pred_t is uint16_t:
            partial[c] = lf_read_u16(&block[start, 0], (stop - start) * n_source)
        else:
            partial[c] = lf_read_u16(<const uint16_t *> &block[start, 0],
                                     (stop - start) * n_source)
    for c in range(n_chunks):
        total += partial[c]
    return total


cdef inline void _neumaier(double x, double *total, double *carry) noexcept nogil:
    """total + carry += x, compensated (Neumaier): the sum to about one rounding."""
    cdef double t = total[0] + x
    if (total[0] if total[0] >= 0 else -total[0]) >= (x if x >= 0 else -x):
        carry[0] += (total[0] - t) + x
    else:
        carry[0] += (x - t) + total[0]
    total[0] = t


def finalize(joint_slots, hard_slots, counts_slots):
    """End of pass 1 over the thread slots; ``_finalize`` says how."""
    cdef double *conditional
    return _finalize(joint_slots, hard_slots, counts_slots, joint_slots, hard_slots,
                     counts_slots, &conditional)


cdef tuple _finalize(joint_slots, hard_slots, counts_slots, double[:, :, ::1] joint,
                     int64_t[:, :, ::1] hard, int64_t[:, ::1] counts,
                     double **conditional):
    """End of pass 1 over the thread slots, in place, in one compiled pass.

    Returns ``(joint_sum, hard_sum, class_counts, conditional, column_sums, nce)``. The
    slots are reduced in order into slot 0 (the same values as ``joint.sum(axis=0)``),
    and C = S / M, column by column (0 where M = 0; M = S.sum(axis=0), summed over y in
    order: bit-identical to ``_api.conditional_of``), is written over slot 1 of
    ``joint`` (a new array when there is one slot): ``joint_sum``, ``hard_sum``,
    ``class_counts`` and ``conditional`` are views of the slots, and no other Y x Z
    array is made. NCE from the pair counts: (sum H log H - sum_z H_z log H_z) / sum H.
    The slots hold nothing else afterwards. ``joint``, ``hard``, ``counts``: views of
    the slots (made once by the caller). *conditional: C's first element.
    """
    cdef Py_ssize_t n_slots = joint.shape[0], n_target = joint.shape[1]
    cdef Py_ssize_t n_source = joint.shape[2]
    if (hard is not None and (hard.shape[0] != n_slots or hard.shape[1] != n_target
                              or hard.shape[2] != n_source)
            or counts.shape[0] != n_slots or counts.shape[1] != n_target):
        raise ValueError("finalize: joint, hard and counts disagree in shape")
    if n_slots == 0:
        raise ValueError("finalize: no slots")
    out_cond = joint_slots[1] if n_slots > 1 else np.empty((n_target, n_source))
    out_m = np.zeros(n_source)
    cdef double *C = &joint[1, 0, 0] if n_slots > 1 else NULL
    if n_slots == 1:
        C = _data(out_cond)
    cdef double[::1] M = out_m
    cdef int64_t *Hz = <int64_t *> calloc(n_source, sizeof(int64_t))
    if Hz == NULL:
        raise MemoryError("finalize: no memory for the column counts")
    cdef double nce
    cdef int64_t *pairs = NULL if hard is None else &hard[0, 0, 0]
    conditional[0] = C
    with nogil:
        nce = _finalize_slots(&joint[0, 0, 0], pairs, &counts[0, 0], n_slots, n_target,
                              n_source, C, &M[0], Hz)
    free(Hz)
    hard_sum = None if hard_slots is None else hard_slots[0]
    return joint_slots[0], hard_sum, counts_slots[0], out_cond, out_m, nce


cdef double *_data(double[:, ::1] array) except? NULL:
    """The first element of a C-contiguous 2-D float64 array (which the caller holds)."""
    return &array[0, 0]


cdef double _finalize_slots(double *joint, int64_t *hard, int64_t *counts,
                            Py_ssize_t n_slots, Py_ssize_t n_target, Py_ssize_t n_source,
                            double *C, double *M, int64_t *Hz) noexcept nogil:
    """``_finalize`` over C-contiguous (T, Y, Z) and (T, Y) slots, ``C`` (Y, Z) (slot 1
    of ``joint`` when T > 1), ``M`` (Z,) and ``Hz`` (Z,) zeroed; returns NCE, or NaN
    without pair counts (``hard`` NULL). Each cell's slots are added in slot order, M
    and Hz over y in order, NCE's terms in (y, z) order: one contiguous loop per step
    (the slots' reduction vectorises)."""
    cdef Py_ssize_t cells = n_target * n_source, t, y, z, k
    cdef double *joint_t
    cdef int64_t *hard_t
    cdef int64_t h, n = 0  # n: the number of pairs counted
    cdef double m, total = 0.0, carry = 0.0
    for t in range(1, n_slots):  # slot 0 += slot t, in slot order for every cell
        joint_t = joint + t * cells
        for k in range(n_target):
            counts[k] += counts[t * n_target + k]
        for k in range(cells):
            joint[k] += joint_t[k]
        if hard != NULL:
            hard_t = hard + t * cells
            for k in range(cells):
                hard[k] += hard_t[k]
    for y in range(n_target):  # column sums, over y in order
        for z in range(n_source):
            M[z] += joint[y * n_source + z]
    for y in range(n_target):  # slot 1 has been read: C takes its place
        for z in range(n_source):
            m = M[z]
            C[y * n_source + z] = joint[y * n_source + z] / m if m > 0.0 else 0.0
    if hard == NULL:
        return NAN
    for y in range(n_target):
        for z in range(n_source):
            Hz[z] += hard[y * n_source + z]
    for z in range(n_source):
        n += Hz[z]
    for y in range(n_target):
        for z in range(n_source):
            h = hard[y * n_source + z]
            if h > 0:
                _neumaier(<double> h * log(<double> h / <double> Hz[z]), &total, &carry)
    return (total + carry) / n if n > 0 else NAN


# One call for a small block that is all of a run's rows: what ``accumulate``,
# ``finalize`` and ``score`` would do, without the three returns to Python between them
# (a call's fixed cost, DESIGN section 5).

def both_passes(const pred_t[:, ::1] block, const int64_t[::1] labels, joint_slots,
                hard_slots, counts_slots, bint logits, double tol,
                int simd=LEEPFAST_SIMD_BEST):
    """Pass 1 into the slots, ``finalize`` and pass 2 of one block, in one call, on the
    calling thread; or None, with nothing done, when the block is as large as a team of
    threads pays for (``PARALLEL_MIN_VALUES``, whatever the thread count: a run of one
    large block keeps its two passes apart, Ctrl-C stopping it between them): then
    call the three one by one.

    The slots must hold zeros (a fresh state). The values are those of ``accumulate``
    (the slots of ``joint_slots.shape[0]`` threads), ``finalize`` and ``score`` (its
    default chunks), bit for bit: the same slots, chunks and code, which those calls
    too run on the calling thread for such a block. Returns ``(status, first_bad_row,
    finalized, total)``: ``finalized`` is what ``finalize`` returns, ``total`` the sum
    of log terms; on failure (the status of pass 1, or else of pass 2, with its first
    bad row) ``finalized`` is None and ``total`` 0.0.
    """
    cdef Py_ssize_t n = block.shape[0], n_source = block.shape[1]
    if n == 0 or _threaded(2, n, n_source, logits):
        return None
    cdef double[:, :, ::1] joint = joint_slots
    cdef int64_t[:, :, ::1] hard = hard_slots
    cdef int64_t[:, ::1] counts = counts_slots
    _check_pass1(block, labels, joint, hard, counts, "both_passes")
    cdef int64_t first_bad
    cdef double total = 0.0
    cdef int found = _pass1(block, labels, joint, hard, counts, logits, tol, 1, simd,
                            True, &first_bad)
    if found:
        return found, first_bad, None, 0.0
    cdef double *conditional
    finalized = _finalize(joint_slots, hard_slots, counts_slots, joint, hard, counts,
                          &conditional)
    found = _pass2(block, labels, conditional, joint.shape[1], logits, tol, 1, CHUNK_ROWS,
                   simd, &first_bad, &total)
    if found:
        return found, first_bad, None, 0.0
    return 0, -1, finalized, total


# ---------------------------------------------------------------------------------------
# Feature scores: the rows of a block in label order, shifted, with their class sums

cdef extern from *:
    """
    /* Rows a .. b-1 of one run of equal labels: u[r] = f[order[r]] - shift, their sum
       added to sum, and (s3 not NULL) |u_r|^2 u_r added to s3 and |u_r|^4 to *s4, the
       row still in cache. restrict: the compiler may vectorise the column loops. */
    #define LF_DEFINE_RUN(NAME, T)                                                \
        static void NAME(const T *restrict f, int64_t D,                          \
                         const int64_t *restrict order, int64_t a, int64_t b,     \
                         const double *restrict shift, double *restrict u,        \
                         double *restrict sum, double *restrict s3, double *s4)   \
        {                                                                         \
            for (int64_t r = a; r < b; r++) {                                     \
                const T *restrict src = f + order[r] * D;                         \
                double *restrict dst = u + r * D;                                 \
                double r2 = 0.0;                                                  \
                for (int64_t z = 0; z < D; z++) {                                 \
                    double v = (double)src[z] - shift[z];                         \
                    dst[z] = v;                                                   \
                    sum[z] += v;                                                  \
                    r2 += v * v;                                                  \
                }                                                                 \
                if (s3) {                                                         \
                    for (int64_t z = 0; z < D; z++) s3[z] += r2 * dst[z];         \
                    *s4 += r2 * r2;                                               \
                }                                                                 \
            }                                                                     \
        }
    LF_DEFINE_RUN(lf_run_f32, float)
    LF_DEFINE_RUN(lf_run_f64, double)
    """
    void lf_run_f32(const float *, int64_t, const int64_t *, int64_t, int64_t,
                    const double *, double *, double *, double *, double *) nogil
    void lf_run_f64(const double *, int64_t, const int64_t *, int64_t, int64_t,
                    const double *, double *, double *, double *, double *) nogil


ctypedef fused feature_t:
    float
    double


def label_order_rows(const feature_t[:, ::1] f, const int64_t[::1] order,
                     const int64_t[::1] starts, const double[::1] shift,
                     double[:, ::1] u, double[:, ::1] sums, double[:, ::1] s3,
                     double[::1] s4, int n_threads):
    """The rows of a block of features in label order, shifted, and their sums by run.

    u[r] = f[order[r]] - shift for every r (``order``: the rows in label order), and
    sums[j] += the sum of u over run j (rows starts[j] to starts[j + 1] - 1, the last
    to the end); where s3 has rows, also s3[j] += the sum over run j of |u_r|^2 u_r and
    s4[j] += that of |u_r|^4 (the Ledoit-Wolf moments). One pass over each row (the
    NumPy way took three: np.take, subtract, sum). The runs are shared out among
    ``n_threads`` OpenMP threads (one thread below ``PARALLEL_MIN_VALUES``), each
    summed by one thread in row order: the values never depend on the thread count.
    """
    cdef Py_ssize_t m = order.shape[0], D = f.shape[1], k = starts.shape[0]
    cdef bint fourth = s3.shape[0] > 0
    if (u.shape[0] != m or u.shape[1] != D or shift.shape[0] != D
            or sums.shape[0] != k or sums.shape[1] != D
            or (fourth and (s3.shape[0] != k or s3.shape[1] != D or s4.shape[0] != k))):
        raise ValueError("label_order_rows: the arrays disagree in shape")
    cdef Py_ssize_t j, r
    cdef int64_t a, b, low = 0, high = -1
    for r in range(m):
        low = min(low, order[r])
        high = max(high, order[r])
    if m and (low < 0 or high >= f.shape[0]):
        raise ValueError("label_order_rows: order holds a row outside f")
    for j in range(k):
        if starts[j] < 0 or starts[j] > m or (j and starts[j] < starts[j - 1]):
            raise ValueError("label_order_rows: starts must rise within the rows")
    if m == 0 or D == 0:
        return
    cdef bint threaded = _threaded(n_threads, m, D, False)
    for j in prange(k, nogil=True, num_threads=n_threads, schedule="dynamic",
                    use_threads_if=threaded):
        a = starts[j]
        b = starts[j + 1] if j + 1 < k else m
        if feature_t is float:
            lf_run_f32(&f[0, 0], D, &order[0], a, b, &shift[0], &u[0, 0], &sums[j, 0],
                       &s3[j, 0] if fourth else NULL, &s4[j] if fourth else NULL)
        else:
            lf_run_f64(&f[0, 0], D, &order[0], a, b, &shift[0], &u[0, 0], &sums[j, 0],
                       &s3[j, 0] if fourth else NULL, &s4[j] if fourth else NULL)
