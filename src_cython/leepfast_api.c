/*
 * leepfast_api.c: the public C API on top of the streaming primitives of leepfast.c:
 * merging pass-1 states, NCE from the pair counts, and whole-array LEEP / NCE entry
 * points (see leepfast.h). Serial, no globals; the whole-array functions allocate their
 * temporary state and free it before returning.
 */
#include "leepfast.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

int leepfast_merge(double *joint, int64_t *hard, int64_t *counts,
                   const double *joint_other, const int64_t *hard_other,
                   const int64_t *counts_other, int64_t n_target, int64_t n_source)
{
    if (!joint || !hard || !counts || !joint_other || !hard_other || !counts_other)
        return LEEPFAST_ERR_NULL;
    if (n_target <= 0 || n_source <= 0 || n_target > INT64_MAX / n_source)
        return LEEPFAST_ERR_SIZE;
    int64_t cells = n_target * n_source;
    for (int64_t k = 0; k < cells; k++) {
        joint[k] += joint_other[k];
        hard[k] += hard_other[k];
    }
    for (int64_t y = 0; y < n_target; y++) counts[y] += counts_other[y];
    return LEEPFAST_OK;
}

int leepfast_nce_from_counts(const int64_t *hard, int64_t n_target, int64_t n_source,
                             double *nce)
{
    if (!hard || !nce) return LEEPFAST_ERR_NULL;
    if (n_target <= 0 || n_source <= 0 || n_target > INT64_MAX / n_source)
        return LEEPFAST_ERR_SIZE;
    double total = 0.0;
    for (int64_t k = 0; k < n_target * n_source; k++) {
        if (hard[k] < 0) return LEEPFAST_ERR_NEGATIVE;
        total += (double)hard[k];
    }
    if (!(total > 0.0)) return LEEPFAST_ERR_SIZE;
    double sum = 0.0, carry = 0.0; /* compensated (Neumaier): all terms are <= 0 */
    for (int64_t z = 0; z < n_source; z++) {
        double column = 0.0; /* n * P(z) */
        for (int64_t y = 0; y < n_target; y++) column += (double)hard[y * n_source + z];
        for (int64_t y = 0; y < n_target; y++) {
            double pair = (double)hard[y * n_source + z]; /* n * P(y, z) */
            if (pair > 0.0) {
                double x = pair * log(pair / column), t = sum + x;
                carry += fabs(sum) >= fabs(x) ? (sum - t) + x : (x - t) + sum;
                sum = t;
            }
        }
    }
    *nce = (sum + carry) / total;
    return LEEPFAST_OK;
}

/* ---------------------------------------------------------------------------------- */
/* Whole-array entry points                                                            */

enum elem { ELEM_F16, ELEM_BF16, ELEM_F32, ELEM_F64 };

static int accumulate_any(enum elem type, const void *predictions, const int64_t *labels,
                          int64_t n_rows, int64_t n_source, int64_t n_target,
                          int is_logits, double *joint, int64_t *hard, int64_t *counts,
                          double *scratch)
{
    switch (type) {
    case ELEM_F16:
        return leepfast_accumulate_f16((const uint16_t *)predictions, labels, n_rows,
                                       n_source, n_target, is_logits, LEEPFAST_TOL_F16,
                                       joint, hard, counts, scratch, NULL);
    case ELEM_BF16:
        return leepfast_accumulate_bf16((const uint16_t *)predictions, labels, n_rows,
                                        n_source, n_target, is_logits, LEEPFAST_TOL_BF16,
                                        joint, hard, counts, scratch, NULL);
    case ELEM_F32:
        return leepfast_accumulate_f32((const float *)predictions, labels, n_rows,
                                       n_source, n_target, is_logits, LEEPFAST_TOL_F32,
                                       joint, hard, counts, scratch, NULL);
    default:
        return leepfast_accumulate_f64((const double *)predictions, labels, n_rows,
                                       n_source, n_target, is_logits, LEEPFAST_TOL_F64,
                                       joint, hard, counts, scratch, NULL);
    }
}

/* pass 2 re-validates every row (the predictions may have changed since pass 1) */
static int score_any(enum elem type, const void *predictions, const int64_t *labels,
                     int64_t n_rows, int64_t n_source, int64_t n_target, int is_logits,
                     const double *conditional, double *scratch, double *sum)
{
    switch (type) {
    case ELEM_F16:
        return leepfast_score_checked_f16((const uint16_t *)predictions, labels, n_rows,
                                          n_source, n_target, is_logits, LEEPFAST_TOL_F16,
                                          conditional, scratch, sum, NULL,
                                          LEEPFAST_SIMD_BEST);
    case ELEM_BF16:
        return leepfast_score_checked_bf16((const uint16_t *)predictions, labels, n_rows,
                                           n_source, n_target, is_logits,
                                           LEEPFAST_TOL_BF16, conditional, scratch, sum,
                                           NULL, LEEPFAST_SIMD_BEST);
    case ELEM_F32:
        return leepfast_score_checked_f32((const float *)predictions, labels, n_rows,
                                          n_source, n_target, is_logits, LEEPFAST_TOL_F32,
                                          conditional, scratch, sum, NULL,
                                          LEEPFAST_SIMD_BEST);
    default:
        return leepfast_score_checked_f64((const double *)predictions, labels, n_rows,
                                          n_source, n_target, is_logits, LEEPFAST_TOL_F64,
                                          conditional, scratch, sum, NULL,
                                          LEEPFAST_SIMD_BEST);
    }
}

/* calloc of count * size bytes, or NULL when that overflows size_t or fails. */
static void *zeros(int64_t count, size_t size)
{
    if (count < 0 || (uint64_t)count > (uint64_t)(SIZE_MAX / size)) return NULL;
    return calloc(count > 0 ? (size_t)count : 1, size);
}

/* Pass 1 (and pass 2 when want_leep) over the whole array; *out written on success. */
static int whole_array(enum elem type, const void *predictions, const int64_t *labels,
                       int64_t n_samples, int64_t n_source, int64_t n_target,
                       int is_logits, int want_leep, double *out)
{
    if (!predictions || !labels || !out) return LEEPFAST_ERR_NULL;
    if (n_samples <= 0 || n_source <= 0 || n_target <= 0) return LEEPFAST_ERR_SIZE;
    if (n_samples > INT64_MAX / n_source) return LEEPFAST_ERR_SIZE;
    if (n_target > INT64_MAX / n_source) return LEEPFAST_ERR_NOMEM;
    if (n_source > INT64_MAX / 2) return LEEPFAST_ERR_NOMEM;

    int64_t cells = n_target * n_source;
    double *joint = (double *)zeros(cells, sizeof(double));
    int64_t *hard = want_leep ? NULL : (int64_t *)zeros(cells, sizeof(int64_t)); /* NCE */
    int64_t *counts = (int64_t *)zeros(n_target, sizeof(int64_t));
    double *scratch = (double *)zeros(LEEPFAST_SCRATCH(n_source), sizeof(double));
    double *conditional = want_leep ? (double *)zeros(cells, sizeof(double)) : NULL;
    int status = LEEPFAST_OK;
    double value = 0.0;

    if (!joint || (!want_leep && !hard) || !counts || !scratch || (want_leep && !conditional)) {
        status = LEEPFAST_ERR_NOMEM;
        goto done;
    }
    status = accumulate_any(type, predictions, labels, n_samples, n_source, n_target,
                            is_logits, joint, hard, counts, scratch);
    if (status != LEEPFAST_OK) goto done;
    if (!want_leep) {
        status = leepfast_nce_from_counts(hard, n_target, n_source, &value);
        goto done;
    }
    status = leepfast_conditional(joint, n_target, n_source, conditional);
    if (status != LEEPFAST_OK) goto done;
    status = score_any(type, predictions, labels, n_samples, n_source, n_target,
                       is_logits, conditional, scratch, &value);
    if (status == LEEPFAST_OK) value /= (double)n_samples;

done:
    free(conditional);
    free(scratch);
    free(counts);
    free(hard);
    free(joint);
    if (status == LEEPFAST_OK) *out = value;
    return status;
}

/* The sixteen whole-array entry points of leepfast.h: per element type, LEEP and NCE of
   probabilities and of logits. */
#define LF_WHOLE_ARRAY(name, T, elem, is_logits, want_leep)                                \
    int name(const T *predictions, const int64_t *labels, int64_t n_samples,              \
             int64_t n_source, int64_t n_target, double *out)                              \
    {                                                                                      \
        return whole_array(elem, predictions, labels, n_samples, n_source, n_target,       \
                           is_logits, want_leep, out);                                     \
    }
#define LF_WHOLE_ARRAYS(S, T, elem)                                                        \
    LF_WHOLE_ARRAY(leepfast_leep_##S, T, elem, 0, 1)                                       \
    LF_WHOLE_ARRAY(leepfast_nce_##S, T, elem, 0, 0)                                        \
    LF_WHOLE_ARRAY(leepfast_leep_logits_##S, T, elem, 1, 1)                                \
    LF_WHOLE_ARRAY(leepfast_nce_logits_##S, T, elem, 1, 0)

LF_WHOLE_ARRAYS(f32, float, ELEM_F32)
LF_WHOLE_ARRAYS(f64, double, ELEM_F64)
LF_WHOLE_ARRAYS(f16, uint16_t, ELEM_F16)
LF_WHOLE_ARRAYS(bf16, uint16_t, ELEM_BF16)

#undef LF_WHOLE_ARRAYS
#undef LF_WHOLE_ARRAY
