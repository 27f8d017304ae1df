/* leepfast.c: the portable C99 core (see leepfast.h). No Python, no globals. */
#include "leepfast.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

/* Index of the first maximum of a finite row. */
static int64_t argmax_f64(const double *row, int64_t n_source)
{
    int64_t best = 0;
    for (int64_t z = 1; z < n_source; z++)
        if (row[z] > row[best]) best = z;
    return best;
}

/* float64 rows first: the logits and float16 paths reuse them. */
#define LF_T double
#define LF_S f64
#include "leepfast_kernel.inc"
#undef LF_T
#undef LF_S

#define LF_T float
#define LF_S f32
#include "leepfast_kernel.inc"
#undef LF_T
#undef LF_S

/* IEEE binary16 bits to float64, exactly (subnormals, infinities and NaN included). */
static double half_to_double(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31;
    uint32_t exponent = (h >> 10) & 0x1fu;
    uint32_t mantissa = h & 0x3ffu;
    uint32_t bits;
    float f;
    if (exponent == 0) {
        /* zero or subnormal: mantissa * 2^-24 is exact in float */
        f = (float)mantissa * 5.9604644775390625e-08f;
        return sign ? -(double)f : (double)f;
    }
    if (exponent == 31)
        bits = sign | 0x7f800000u | (mantissa << 13);
    else
        bits = sign | ((exponent + 112u) << 23) | (mantissa << 13);
    memcpy(&f, &bits, sizeof f);
    return (double)f;
}

static void half_row_to_double(const uint16_t *row, int64_t n_source, double *out)
{
    for (int64_t z = 0; z < n_source; z++) out[z] = half_to_double(row[z]);
}

int leepfast_accumulate_f16(const uint16_t *predictions, const int64_t *labels,
                            int64_t n_rows, int64_t n_source, int64_t n_target,
                            int is_logits, double tol, double *joint, int64_t *hard,
                            int64_t *counts, double *scratch, int64_t *bad_row)
{
    if (!predictions || !labels || !joint || !hard || !counts || !scratch)
        return LEEPFAST_ERR_NULL;
    if (n_rows < 0 || n_source <= 0 || n_target <= 0) return LEEPFAST_ERR_SIZE;
    double *row = scratch + n_source; /* the converted row; scratch[0, Z) for softmax */
    for (int64_t i = 0; i < n_rows; i++) {
        int64_t y = labels[i];
        int status;
        if (y < 0 || y >= n_target) {
            if (bad_row) *bad_row = i;
            return LEEPFAST_ERR_LABEL;
        }
        half_row_to_double(predictions + i * n_source, n_source, row);
        status = leepfast_accumulate_f64(row, labels + i, 1, n_source, n_target,
                                         is_logits, tol, joint, hard, counts, scratch,
                                         NULL);
        if (status != LEEPFAST_OK) {
            if (bad_row) *bad_row = i;
            return status;
        }
    }
    return LEEPFAST_OK;
}

int leepfast_score_f16(const uint16_t *predictions, const int64_t *labels,
                       int64_t n_rows, int64_t n_source, int64_t n_target,
                       int is_logits, const double *conditional, double *scratch,
                       double *sum, int64_t *bad_row)
{
    if (!predictions || !labels || !conditional || !scratch || !sum)
        return LEEPFAST_ERR_NULL;
    if (n_rows < 0 || n_source <= 0 || n_target <= 0) return LEEPFAST_ERR_SIZE;
    double *row = scratch + n_source;
    double total = 0.0;
    for (int64_t i = 0; i < n_rows; i++) {
        if (labels[i] < 0 || labels[i] >= n_target) {
            if (bad_row) *bad_row = i;
            return LEEPFAST_ERR_LABEL;
        }
        half_row_to_double(predictions + i * n_source, n_source, row);
        int status = leepfast_score_f64(row, labels + i, 1, n_source, n_target, is_logits,
                                        conditional, scratch, &total, NULL);
        if (status != LEEPFAST_OK) {
            if (bad_row) *bad_row = i;
            return status;
        }
    }
    *sum += total;
    return LEEPFAST_OK;
}

int leepfast_conditional(const double *joint, int64_t n_target, int64_t n_source,
                         double *conditional)
{
    if (!joint || !conditional) return LEEPFAST_ERR_NULL;
    if (n_target <= 0 || n_source <= 0) return LEEPFAST_ERR_SIZE;
    for (int64_t z = 0; z < n_source; z++) {
        double m = 0.0;
        for (int64_t y = 0; y < n_target; y++) m += joint[y * n_source + z];
        for (int64_t y = 0; y < n_target; y++)
            conditional[y * n_source + z] = m > 0.0 ? joint[y * n_source + z] / m : 0.0;
    }
    return LEEPFAST_OK;
}

const char *leepfast_strerror(int status)
{
    switch (status) {
    case LEEPFAST_OK: return "success";
    case LEEPFAST_ERR_NULL: return "a required pointer is NULL";
    case LEEPFAST_ERR_SIZE: return "a size is zero or negative";
    case LEEPFAST_ERR_LABEL: return "a label is outside [0, n_target)";
    case LEEPFAST_ERR_NONFINITE: return "a prediction is NaN or infinite";
    case LEEPFAST_ERR_NEGATIVE: return "a probability is negative";
    case LEEPFAST_ERR_NOT_NORMALISED:
        return "a probability row does not sum to 1 within the tolerance";
    case LEEPFAST_ERR_ZERO_PROB:
        return "a row has no mass under the conditional (pass 2 saw rows pass 1 did not)";
    case LEEPFAST_ERR_NOMEM: return "out of memory";
    default: return "unknown leepfast status";
    }
}
