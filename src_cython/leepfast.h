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
 */
#ifndef LEEPFAST_H
#define LEEPFAST_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum leepfast_status {
    LEEPFAST_OK = 0,
    LEEPFAST_ERR_NULL = 1,           /* a required pointer is NULL */
    LEEPFAST_ERR_SIZE = 2,           /* a size is zero or negative */
    LEEPFAST_ERR_LABEL = 3,          /* a label is outside [0, n_target) */
    LEEPFAST_ERR_NONFINITE = 4,      /* a prediction is NaN or infinite */
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
 *   predictions  (n_rows, n_source) row-major: probabilities, or logits if is_logits
 *                (a max-subtracted softmax is taken in float64 per row).
 *                f16 takes IEEE binary16 bit patterns.
 *   labels       (n_rows,) in [0, n_target).
 *   tol          probability rows must satisfy |sum - 1| <= tol (ignored for logits).
 *   joint        (n_target, n_source) float64, added to.
 *   hard         (n_target, n_source) int64, hard[y, argmax] += 1 (ties: lowest index).
 *   counts       (n_target,) int64, counts[y] += 1.
 *   scratch      LEEPFAST_SCRATCH(n_source) doubles.
 *   bad_row      may be NULL.
 * Statuses: OK, NULL, SIZE, LABEL, NONFINITE, NEGATIVE, NOT_NORMALISED.
 * Per row, checks run in this order: label, non-finite, negative, sum.
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

/*
 * Finalize: conditional[y, z] = joint[y, z] / sum_y joint[y, z], or 0 where that sum is 0.
 * joint and conditional are (n_target, n_source) float64 and may not alias.
 * Statuses: OK, NULL, SIZE.
 */
int leepfast_conditional(const double *joint, int64_t n_target, int64_t n_source,
                         double *conditional);

/*
 * Pass 2: *sum += sum over rows of log(sum_z conditional[y_i, z] * theta[i, z]).
 * Same predictions/labels/scratch conventions as pass 1. Only labels are re-validated
 * (memory safety); a row whose inner sum is not positive and finite gives ZERO_PROB.
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

/* A short English description of a status code (never NULL). */
const char *leepfast_strerror(int status);

#ifdef __cplusplus
}
#endif

#endif /* LEEPFAST_H */
