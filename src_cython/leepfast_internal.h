/*
 * leepfast_internal.h: the private entry points of leepfast.c that the Python package's
 * driver (_kernels.pyx) uses, in one place. Not part of the C API: they may change.
 */
#ifndef LEEPFAST_INTERNAL_H
#define LEEPFAST_INTERNAL_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The level a call capped at `cap` runs at: min(cap, leepfast_simd_level()). */
int leepfast_simd_effective(int cap);

/*
 * Pass 1 over a float16 block with a workspace of leepfast_f16_partials(...) int32, in
 * fixed point when that is not 0 (AVX-512 level, small enough a state, long enough a
 * block; see acc_block_fixed_f16), else (or with a NULL workspace) as
 * leepfast_accumulate_simd_f16. Same statuses and results, to rounding: the joint gets
 * exact sums of up to 64 rows of a class.
 */
int64_t leepfast_f16_partials(int64_t n_rows, int64_t n_source, int64_t n_target,
                              int is_logits, double tol, int simd);
int leepfast_accumulate_f16_partials(const uint16_t *predictions, const int64_t *labels,
                                     int64_t n_rows, int64_t n_source, int64_t n_target,
                                     int is_logits, double tol, double *joint,
                                     int64_t *hard, int64_t *counts, double *scratch,
                                     int32_t *partials, int64_t *bad_row, int simd);

#ifdef __cplusplus
}
#endif

#endif /* LEEPFAST_INTERNAL_H */
