/*
 * leepfast.h: the portable C99 core of leepfast.
 *
 * Exact LEEP (Nguyen et al., ICML 2020) and NCE (Tran et al., 2019) from a source
 * model's softmax rows and integer target labels, as two streaming primitives:
 *
 *   pass 1  leepfast_accumulate_*  adds a block of rows to a caller-owned state:
 *           joint[y, z] += theta[i, z]   (float64, unnormalised: J = joint / n)
 *           hard[y, argmax_z theta[i, z]] += 1, counts[y] += 1,
 *           validating every row on the way (fused: no separate validation pass).
 *   final   leepfast_conditional       C[y, z] = joint[y, z] / sum_y joint[y, z], 0 where
 *                                       the source class has no mass.
 *   pass 2  leepfast_score_*           *sum += log(sum_z C[y_i, z] theta[i, z]) per row,
 *                                       never forming theta @ C^T.
 *
 * No Python, no globals, no allocation, no threads: every buffer is owned by the caller,
 * so distinct states may be used from distinct threads at once. All arrays are row-major
 * and contiguous. Functions return LEEPFAST_OK (0) or one of the status codes below; on
 * failure *bad_row (when not NULL) receives the index, within the block, of the first
 * offending row, and the accumulated state is unspecified (discard it).
 *
 * On top of the primitives, leepfast_api.c adds whole-array entry points
 * (leepfast_leep_f64 and friends, at the end of this header) that allocate their own
 * temporary state, run serially, and never write their output on failure.
 *
 * Embedding: compile leepfast.c and leepfast_api.c (both from the folder printed by
 * `python -m leepfast config --include` or leepfast.get_include(), which also holds this
 * header and leepfast_kernel.inc) into your program as C99 or C++, and link with -lm.
 * No other dependency; OpenMP is not needed.
 */
#ifndef LEEPFAST_H
#define LEEPFAST_H

#include <stdint.h>

/* The version of the leepfast package these sources ship with. */
#define LEEPFAST_VERSION_MAJOR 0
#define LEEPFAST_VERSION_MINOR 1
#define LEEPFAST_VERSION_PATCH 0
#define LEEPFAST_VERSION_STRING "0.1.0"
/* One integer that grows with every release, for #if LEEPFAST_VERSION_NUMBER >= ... */
#define LEEPFAST_VERSION_NUMBER                                                        \
    (LEEPFAST_VERSION_MAJOR * 10000 + LEEPFAST_VERSION_MINOR * 100 + LEEPFAST_VERSION_PATCH)

/* Row-sum tolerances of the whole-array functions, by input type: a probability row
   must satisfy |sum - 1| <= tol (the same values as leepfast.ROW_SUM_TOLERANCE). */
#define LEEPFAST_TOL_F16 1e-2
#define LEEPFAST_TOL_BF16 1e-2 /* bfloat16 keeps 8 significant bits */
#define LEEPFAST_TOL_F32 1e-4
#define LEEPFAST_TOL_F64 1e-6

#ifdef __cplusplus
extern "C" {
#endif

enum leepfast_status {
    LEEPFAST_OK = 0,
    LEEPFAST_ERR_NULL = 1,           /* a required pointer is NULL */
    LEEPFAST_ERR_SIZE = 2,           /* a size is zero or negative */
    LEEPFAST_ERR_LABEL = 3,          /* a label is outside [0, n_target) */
    LEEPFAST_ERR_NONFINITE = 4,      /* a prediction is NaN or infinite (logits: NaN,
                                        +inf, or a row with no value above -inf;
                                        a -inf logit is a probability of 0) */
    LEEPFAST_ERR_NEGATIVE = 5,       /* a probability is negative */
    LEEPFAST_ERR_NOT_NORMALISED = 6, /* a probability row does not sum to 1 within tol */
    LEEPFAST_ERR_ZERO_PROB = 7,      /* pass 2: a row has no mass under the conditional
                                        (pass 2 saw rows that pass 1 did not) */
    LEEPFAST_ERR_NOMEM = 8           /* an allocation failed (wrappers only) */
};

/* Scratch space, in doubles, that every block function needs for one row. */
#define LEEPFAST_SCRATCH(n_source) (2 * (n_source))

/*
 * Pass 1: accumulate rows [0, n_rows) of a block.
 *   predictions  (n_rows, n_source) row-major, read only: probabilities, or logits if
 *                is_logits (a max-subtracted softmax is taken in float64 per row).
 *                f16 takes IEEE binary16 bit patterns (native-endian uint16_t),
 *                bf16 bfloat16 bit patterns (the upper 16 bits of a float32, native-
 *                endian uint16_t), each widened exactly to float32 in the kernel.
 *   labels       (n_rows,) int64 in [0, n_target), read only.
 *   n_rows       >= 0 (0 is allowed here and does nothing); n_source, n_target >= 1.
 *   is_logits    0: probabilities, non-zero: logits.
 *   tol          probability rows must satisfy |sum - 1| <= tol (ignored for logits);
 *                LEEPFAST_TOL_F16/BF16/F32/F64 are the package's values.
 *   joint        (n_target, n_source) float64, caller-owned, added to (start from zeros):
 *                joint[y, z] = sum over rows with label y of theta[i, z], so J = joint/n.
 *   hard         (n_target, n_source) int64, caller-owned, hard[y, argmax] += 1 (ties:
 *                lowest index); or NULL: no pair counts (LEEP alone needs none, NCE
 *                does), and pass 1 then takes no argmax (about a fifth of its time).
 *   counts       (n_target,) int64, caller-owned, counts[y] += 1.
 *   scratch      LEEPFAST_SCRATCH(n_source) doubles, caller-owned, contents irrelevant;
 *                one per thread.
 *   bad_row      may be NULL; on failure receives the first offending row of the block.
 * Statuses: OK, NULL, SIZE, LABEL, NONFINITE, NEGATIVE, NOT_NORMALISED.
 * Per row, checks run in this order: label, non-finite, negative, sum.
 * On failure joint, hard and counts are UNSPECIFIED (part of the block may have been
 * added): discard the state, or accumulate each block into a zeroed block state and
 * leepfast_merge it into the running state only on success.
 * Thread safety: calls on distinct states (joint, hard, counts, scratch) may run at once.
 */
int leepfast_accumulate_f32(const float *predictions, const int64_t *labels,
                            int64_t n_rows, int64_t n_source, int64_t n_target,
                            int is_logits, double tol, double *joint, int64_t *hard,
                            int64_t *counts, double *scratch, int64_t *bad_row);
int leepfast_accumulate_f64(const double *predictions, const int64_t *labels,
                            int64_t n_rows, int64_t n_source, int64_t n_target,
                            int is_logits, double tol, double *joint, int64_t *hard,
                            int64_t *counts, double *scratch, int64_t *bad_row);
int leepfast_accumulate_f16(const uint16_t *predictions, const int64_t *labels,
                            int64_t n_rows, int64_t n_source, int64_t n_target,
                            int is_logits, double tol, double *joint, int64_t *hard,
                            int64_t *counts, double *scratch, int64_t *bad_row);
int leepfast_accumulate_bf16(const uint16_t *predictions, const int64_t *labels,
                             int64_t n_rows, int64_t n_source, int64_t n_target,
                             int is_logits, double tol, double *joint, int64_t *hard,
                             int64_t *counts, double *scratch, int64_t *bad_row);

/*
 * Finalize: conditional[y, z] = joint[y, z] / sum_y joint[y, z], or 0 where that sum is 0.
 * joint (read only) and conditional (caller-owned, written) are (n_target, n_source)
 * float64 and may not alias. joint may be the unnormalised sums of pass 1 or J itself:
 * the ratio is the same.
 * Statuses: OK, NULL, SIZE (conditional is not written on failure).
 */
int leepfast_conditional(const double *joint, int64_t n_target, int64_t n_source,
                         double *conditional);

/*
 * Pass 2: *sum += sum over rows of log(sum_z conditional[y_i, z] * theta[i, z]).
 * Same predictions/labels/n_rows/is_logits/scratch conventions as pass 1.
 *   conditional  (n_target, n_source) float64 from leepfast_conditional, read only; may
 *                be shared by any number of threads.
 *   sum          caller-owned double, added to (start from 0.0); one per thread, then
 *                add them up. LEEP = (total sum) / n_samples.
 *   bad_row      may be NULL; on failure receives the first offending row of the block.
 * Only labels (memory safety) and, for logits, finiteness are re-validated; a row whose
 * inner sum is not positive and finite gives ZERO_PROB (pass 2 saw rows pass 1 did not).
 * *sum is left untouched on failure.
 * Statuses: OK, NULL, SIZE, LABEL, NONFINITE (logits only), ZERO_PROB.
 */
int leepfast_score_f32(const float *predictions, const int64_t *labels, int64_t n_rows,
                       int64_t n_source, int64_t n_target, int is_logits,
                       const double *conditional, double *scratch, double *sum,
                       int64_t *bad_row);
int leepfast_score_f64(const double *predictions, const int64_t *labels, int64_t n_rows,
                       int64_t n_source, int64_t n_target, int is_logits,
                       const double *conditional, double *scratch, double *sum,
                       int64_t *bad_row);
int leepfast_score_f16(const uint16_t *predictions, const int64_t *labels,
                       int64_t n_rows, int64_t n_source, int64_t n_target,
                       int is_logits, const double *conditional, double *scratch,
                       double *sum, int64_t *bad_row);
int leepfast_score_bf16(const uint16_t *predictions, const int64_t *labels,
                        int64_t n_rows, int64_t n_source, int64_t n_target,
                        int is_logits, const double *conditional, double *scratch,
                        double *sum, int64_t *bad_row);

/*
 * Merge: add the pass-1 state (joint_other, hard_other, counts_other) into (joint, hard,
 * counts), element by element, e.g. the states of two threads, files or machines.
 *   joint, joint_other    (n_target, n_source) float64
 *   hard, hard_other      (n_target, n_source) int64
 *   counts, counts_other  (n_target,) int64
 * The first three are caller-owned and added to; the *_other arrays are read only and may
 * be the same arrays (doubling the state). Both states must have the same n_target and
 * n_source (grow the smaller one with zero rows first).
 * Statuses: OK, NULL, SIZE (nothing is written on failure).
 */
int leepfast_merge(double *joint, int64_t *hard, int64_t *counts,
                   const double *joint_other, const int64_t *hard_other,
                   const int64_t *counts_other, int64_t n_target, int64_t n_source);

/*
 * NCE = sum_{y,z} P(y, z) log(P(y, z) / P(z)) from the pass-1 table hard (n_target,
 * n_source) int64 of (label, argmax) pair counts, read only; *nce (caller-owned) <= 0.
 * Statuses: OK, NULL, SIZE (no counts at all: their sum is 0), NEGATIVE (a count is
 * negative). *nce is not written on failure.
 */
int leepfast_nce_from_counts(const int64_t *hard, int64_t n_target, int64_t n_source,
                             double *nce);

/*
 * Whole-array entry points (leepfast_api.c): LEEP or NCE of n_samples rows at once.
 *   predictions  (n_samples, n_source) row-major, contiguous, read only: probabilities
 *                (every row sums to 1 within LEEPFAST_TOL_F16/F32/F64 for the type), or,
 *                for the *_logits_* functions, logits (max-subtracted softmax in float64).
 *                The f16 functions take IEEE binary16 bit patterns (native-endian),
 *                the bf16 functions bfloat16 bit patterns (LEEPFAST_TOL_BF16).
 *   labels       (n_samples,) int64 in [0, n_target), read only.
 *   n_samples, n_source, n_target   >= 1 each (classes without samples are allowed).
 *   leep / nce   caller-owned double; written only on success.
 * They allocate their temporary state (about 3 * n_target * n_source doubles) with
 * malloc and free it before returning, run on the calling thread only (no hidden
 * threads, no globals: any number may run at once), and read the predictions twice for
 * LEEP and once for NCE. Results are accumulated in float64.
 * Statuses: OK, NULL (predictions, labels or the output is NULL), SIZE (a size < 1, or
 * n_samples * n_source overflows int64), LABEL, NONFINITE, NEGATIVE, NOT_NORMALISED
 * (probabilities only), NOMEM (the temporary state could not be allocated). For the row
 * at fault, use the streaming primitives above, which report it.
 */
int leepfast_leep_f32(const float *predictions, const int64_t *labels,
                      int64_t n_samples, int64_t n_source, int64_t n_target,
                      double *leep);
int leepfast_leep_f64(const double *predictions, const int64_t *labels,
                      int64_t n_samples, int64_t n_source, int64_t n_target,
                      double *leep);
int leepfast_leep_f16(const uint16_t *predictions, const int64_t *labels,
                      int64_t n_samples, int64_t n_source, int64_t n_target,
                      double *leep);
int leepfast_leep_bf16(const uint16_t *predictions, const int64_t *labels,
                       int64_t n_samples, int64_t n_source, int64_t n_target,
                       double *leep);
int leepfast_nce_f32(const float *predictions, const int64_t *labels,
                     int64_t n_samples, int64_t n_source, int64_t n_target,
                     double *nce);
int leepfast_nce_f64(const double *predictions, const int64_t *labels,
                     int64_t n_samples, int64_t n_source, int64_t n_target,
                     double *nce);
int leepfast_nce_f16(const uint16_t *predictions, const int64_t *labels,
                     int64_t n_samples, int64_t n_source, int64_t n_target,
                     double *nce);
int leepfast_nce_bf16(const uint16_t *predictions, const int64_t *labels,
                      int64_t n_samples, int64_t n_source, int64_t n_target,
                      double *nce);
int leepfast_leep_logits_f32(const float *logits, const int64_t *labels,
                             int64_t n_samples, int64_t n_source, int64_t n_target,
                             double *leep);
int leepfast_leep_logits_f64(const double *logits, const int64_t *labels,
                             int64_t n_samples, int64_t n_source, int64_t n_target,
                             double *leep);
int leepfast_leep_logits_f16(const uint16_t *logits, const int64_t *labels,
                             int64_t n_samples, int64_t n_source, int64_t n_target,
                             double *leep);
int leepfast_leep_logits_bf16(const uint16_t *logits, const int64_t *labels,
                              int64_t n_samples, int64_t n_source, int64_t n_target,
                              double *leep);
int leepfast_nce_logits_f32(const float *logits, const int64_t *labels,
                            int64_t n_samples, int64_t n_source, int64_t n_target,
                            double *nce);
int leepfast_nce_logits_f64(const double *logits, const int64_t *labels,
                            int64_t n_samples, int64_t n_source, int64_t n_target,
                            double *nce);
int leepfast_nce_logits_f16(const uint16_t *logits, const int64_t *labels,
                            int64_t n_samples, int64_t n_source, int64_t n_target,
                            double *nce);
int leepfast_nce_logits_bf16(const uint16_t *logits, const int64_t *labels,
                             int64_t n_samples, int64_t n_source, int64_t n_target,
                             double *nce);

/*
 * SIMD levels (leepfast.c: a table of row kernels, one file per level). Every block
 * call runs at one level, picked once per call: the lower of a cap and the best level
 * this build runs on this CPU. The functions without a cap argument use
 * LEEPFAST_SIMD_BEST; nothing in the C API reads the environment (the Python package
 * reads LEEPFAST_SIMD and passes it as the cap). A cap below SCALAR means SCALAR.
 */
enum leepfast_simd_levels {
    LEEPFAST_SIMD_SCALAR = 0, /* portable C */
    LEEPFAST_SIMD_SSE2 = 1,
    LEEPFAST_SIMD_AVX2 = 2,   /* AVX2 + FMA + F16C */
    LEEPFAST_SIMD_AVX512 = 3, /* AVX-512 F, BW, VL */
    LEEPFAST_SIMD_BEST = 3
};

/* The best level this build runs on this CPU. */
int leepfast_simd_level(void);
/* "scalar", "sse2", "avx2", "avx512" (static storage), "unknown" for other values. */
const char *leepfast_simd_name(int level);

/* Pass 1 as leepfast_accumulate_*, at the level min(simd, leepfast_simd_level()). */
int leepfast_accumulate_simd_f32(const float *predictions, const int64_t *labels,
                                 int64_t n_rows, int64_t n_source, int64_t n_target,
                                 int is_logits, double tol, double *joint, int64_t *hard,
                                 int64_t *counts, double *scratch, int64_t *bad_row,
                                 int simd);
int leepfast_accumulate_simd_f64(const double *predictions, const int64_t *labels,
                                 int64_t n_rows, int64_t n_source, int64_t n_target,
                                 int is_logits, double tol, double *joint, int64_t *hard,
                                 int64_t *counts, double *scratch, int64_t *bad_row,
                                 int simd);
int leepfast_accumulate_simd_f16(const uint16_t *predictions, const int64_t *labels,
                                 int64_t n_rows, int64_t n_source, int64_t n_target,
                                 int is_logits, double tol, double *joint, int64_t *hard,
                                 int64_t *counts, double *scratch, int64_t *bad_row,
                                 int simd);
int leepfast_accumulate_simd_bf16(const uint16_t *predictions, const int64_t *labels,
                                  int64_t n_rows, int64_t n_source, int64_t n_target,
                                  int is_logits, double tol, double *joint,
                                  int64_t *hard, int64_t *counts, double *scratch,
                                  int64_t *bad_row, int simd);

/*
 * Pass 2, validated: as leepfast_score_*, but every row is checked exactly as pass 1
 * checks it, in the same order (label, non-finite, negative, |sum - 1| <= tol for
 * probabilities; label, non-finite for logits), before ZERO_PROB: rows changed between
 * the passes give the status pass 1 would give, never a wrong sum. At the level
 * min(simd, leepfast_simd_level()). *sum is left untouched on failure.
 * Statuses: OK, NULL, SIZE, LABEL, NONFINITE, NEGATIVE, NOT_NORMALISED, ZERO_PROB.
 */
int leepfast_score_checked_f32(const float *predictions, const int64_t *labels,
                               int64_t n_rows, int64_t n_source, int64_t n_target,
                               int is_logits, double tol, const double *conditional,
                               double *scratch, double *sum, int64_t *bad_row, int simd);
int leepfast_score_checked_f64(const double *predictions, const int64_t *labels,
                               int64_t n_rows, int64_t n_source, int64_t n_target,
                               int is_logits, double tol, const double *conditional,
                               double *scratch, double *sum, int64_t *bad_row, int simd);
int leepfast_score_checked_f16(const uint16_t *predictions, const int64_t *labels,
                               int64_t n_rows, int64_t n_source, int64_t n_target,
                               int is_logits, double tol, const double *conditional,
                               double *scratch, double *sum, int64_t *bad_row, int simd);
int leepfast_score_checked_bf16(const uint16_t *predictions, const int64_t *labels,
                                int64_t n_rows, int64_t n_source, int64_t n_target,
                                int is_logits, double tol, const double *conditional,
                                double *scratch, double *sum, int64_t *bad_row, int simd);

/* A short English description of a status code (never NULL, static storage: do not
   free it). Unknown codes give "unknown leepfast status". */
const char *leepfast_strerror(int status);

/* The instruction set this CPU runs the row kernels with, chosen at run time (never
   NULL, static storage): "avx512" (AVX-512 F/BW/VL), "avx2" (AVX2 + FMA + F16C), "sse2",
   or "scalar" (portable C; also any build with LEEPFAST_NO_SIMD). LEEPFAST_NO_AVX512
   and LEEPFAST_NO_AVX2 at compile time cap it. The same as
   leepfast_simd_name(leepfast_simd_level()). */
const char *leepfast_simd(void);

#ifdef __cplusplus
}
#endif

#endif /* LEEPFAST_H */
