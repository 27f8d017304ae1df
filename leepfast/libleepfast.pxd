# cython: language_level=3
# Cython declarations of leepfast's C API (leepfast.h), every function nogil.
#
# Use from your own .pyx:
#
#     from leepfast.libleepfast cimport leepfast_leep_f64, leepfast_strerror
#
# and build it with include_dirs=[leepfast.get_include()] and the C sources leepfast.c
# and leepfast_api.c from that folder added to the extension's sources. leepfast.h
# documents every parameter: shapes, ownership and the statuses returned.

from libc.stdint cimport int64_t, uint16_t


cdef extern from "leepfast.h" nogil:
    enum:
        LEEPFAST_VERSION_MAJOR
        LEEPFAST_VERSION_MINOR
        LEEPFAST_VERSION_PATCH
        LEEPFAST_VERSION_NUMBER
    const char *LEEPFAST_VERSION_STRING
    double LEEPFAST_TOL_F16
    double LEEPFAST_TOL_BF16
    double LEEPFAST_TOL_F32
    double LEEPFAST_TOL_F64

    enum leepfast_status:
        LEEPFAST_OK
        LEEPFAST_ERR_NULL
        LEEPFAST_ERR_SIZE
        LEEPFAST_ERR_LABEL
        LEEPFAST_ERR_NONFINITE
        LEEPFAST_ERR_NEGATIVE
        LEEPFAST_ERR_NOT_NORMALISED
        LEEPFAST_ERR_ZERO_PROB
        LEEPFAST_ERR_NOMEM

    int64_t LEEPFAST_SCRATCH(int64_t n_source)

    # pass 1: accumulate a block into a caller-owned state
    int leepfast_accumulate_f16(const uint16_t *predictions, const int64_t *labels,
                                int64_t n_rows, int64_t n_source, int64_t n_target,
                                int is_logits, double tol, double *joint, int64_t *hard,
                                int64_t *counts, double *scratch, int64_t *bad_row)
    int leepfast_accumulate_bf16(const uint16_t *predictions, const int64_t *labels,
                                 int64_t n_rows, int64_t n_source, int64_t n_target,
                                 int is_logits, double tol, double *joint, int64_t *hard,
                                 int64_t *counts, double *scratch, int64_t *bad_row)
    int leepfast_accumulate_f32(const float *predictions, const int64_t *labels,
                                int64_t n_rows, int64_t n_source, int64_t n_target,
                                int is_logits, double tol, double *joint, int64_t *hard,
                                int64_t *counts, double *scratch, int64_t *bad_row)
    int leepfast_accumulate_f64(const double *predictions, const int64_t *labels,
                                int64_t n_rows, int64_t n_source, int64_t n_target,
                                int is_logits, double tol, double *joint, int64_t *hard,
                                int64_t *counts, double *scratch, int64_t *bad_row)
    int leepfast_merge(double *joint, int64_t *hard, int64_t *counts,
                       const double *joint_other, const int64_t *hard_other,
                       const int64_t *counts_other, int64_t n_target, int64_t n_source)

    # finalize
    int leepfast_conditional(const double *joint, int64_t n_target, int64_t n_source,
                             double *conditional)
    int leepfast_nce_from_counts(const int64_t *hard, int64_t n_target,
                                 int64_t n_source, double *nce)

    # pass 2: score a block into a caller-owned sum
    int leepfast_score_f16(const uint16_t *predictions, const int64_t *labels,
                           int64_t n_rows, int64_t n_source, int64_t n_target,
                           int is_logits, const double *conditional, double *scratch,
                           double *sum, int64_t *bad_row)
    int leepfast_score_bf16(const uint16_t *predictions, const int64_t *labels,
                            int64_t n_rows, int64_t n_source, int64_t n_target,
                            int is_logits, const double *conditional, double *scratch,
                            double *sum, int64_t *bad_row)
    int leepfast_score_f32(const float *predictions, const int64_t *labels,
                           int64_t n_rows, int64_t n_source, int64_t n_target,
                           int is_logits, const double *conditional, double *scratch,
                           double *sum, int64_t *bad_row)
    int leepfast_score_f64(const double *predictions, const int64_t *labels,
                           int64_t n_rows, int64_t n_source, int64_t n_target,
                           int is_logits, const double *conditional, double *scratch,
                           double *sum, int64_t *bad_row)

    # whole arrays: the output is written only on success
    int leepfast_leep_f16(const uint16_t *predictions, const int64_t *labels,
                          int64_t n_samples, int64_t n_source, int64_t n_target,
                          double *leep)
    int leepfast_leep_bf16(const uint16_t *predictions, const int64_t *labels,
                           int64_t n_samples, int64_t n_source, int64_t n_target,
                           double *leep)
    int leepfast_leep_f32(const float *predictions, const int64_t *labels,
                          int64_t n_samples, int64_t n_source, int64_t n_target,
                          double *leep)
    int leepfast_leep_f64(const double *predictions, const int64_t *labels,
                          int64_t n_samples, int64_t n_source, int64_t n_target,
                          double *leep)
    int leepfast_nce_f16(const uint16_t *predictions, const int64_t *labels,
                         int64_t n_samples, int64_t n_source, int64_t n_target,
                         double *nce)
    int leepfast_nce_bf16(const uint16_t *predictions, const int64_t *labels,
                          int64_t n_samples, int64_t n_source, int64_t n_target,
                          double *nce)
    int leepfast_nce_f32(const float *predictions, const int64_t *labels,
                         int64_t n_samples, int64_t n_source, int64_t n_target,
                         double *nce)
    int leepfast_nce_f64(const double *predictions, const int64_t *labels,
                         int64_t n_samples, int64_t n_source, int64_t n_target,
                         double *nce)
    int leepfast_leep_logits_f16(const uint16_t *logits, const int64_t *labels,
                                 int64_t n_samples, int64_t n_source, int64_t n_target,
                                 double *leep)
    int leepfast_leep_logits_bf16(const uint16_t *logits, const int64_t *labels,
                                  int64_t n_samples, int64_t n_source, int64_t n_target,
                                  double *leep)
    int leepfast_leep_logits_f32(const float *logits, const int64_t *labels,
                                 int64_t n_samples, int64_t n_source, int64_t n_target,
                                 double *leep)
    int leepfast_leep_logits_f64(const double *logits, const int64_t *labels,
                                 int64_t n_samples, int64_t n_source, int64_t n_target,
                                 double *leep)
    int leepfast_nce_logits_f16(const uint16_t *logits, const int64_t *labels,
                                int64_t n_samples, int64_t n_source, int64_t n_target,
                                double *nce)
    int leepfast_nce_logits_bf16(const uint16_t *logits, const int64_t *labels,
                                 int64_t n_samples, int64_t n_source, int64_t n_target,
                                 double *nce)
    int leepfast_nce_logits_f32(const float *logits, const int64_t *labels,
                                int64_t n_samples, int64_t n_source, int64_t n_target,
                                double *nce)
    int leepfast_nce_logits_f64(const double *logits, const int64_t *labels,
                                int64_t n_samples, int64_t n_source, int64_t n_target,
                                double *nce)

    const char *leepfast_strerror(int status)
    const char *leepfast_simd()

    # SIMD levels: the *_simd / *_checked functions run at min(simd, leepfast_simd_level())
    enum:
        LEEPFAST_SIMD_SCALAR
        LEEPFAST_SIMD_SSE2
        LEEPFAST_SIMD_AVX2
        LEEPFAST_SIMD_AVX512
        LEEPFAST_SIMD_BEST
    int leepfast_simd_level()
    const char *leepfast_simd_name(int level)
    int leepfast_accumulate_simd_f16(const uint16_t *predictions, const int64_t *labels,
                                     int64_t n_rows, int64_t n_source, int64_t n_target,
                                     int is_logits, double tol, double *joint,
                                     int64_t *hard, int64_t *counts, double *scratch,
                                     int64_t *bad_row, int simd)
    int leepfast_accumulate_simd_bf16(const uint16_t *predictions, const int64_t *labels,
                                      int64_t n_rows, int64_t n_source, int64_t n_target,
                                      int is_logits, double tol, double *joint,
                                      int64_t *hard, int64_t *counts, double *scratch,
                                      int64_t *bad_row, int simd)
    int leepfast_accumulate_simd_f32(const float *predictions, const int64_t *labels,
                                     int64_t n_rows, int64_t n_source, int64_t n_target,
                                     int is_logits, double tol, double *joint,
                                     int64_t *hard, int64_t *counts, double *scratch,
                                     int64_t *bad_row, int simd)
    int leepfast_accumulate_simd_f64(const double *predictions, const int64_t *labels,
                                     int64_t n_rows, int64_t n_source, int64_t n_target,
                                     int is_logits, double tol, double *joint,
                                     int64_t *hard, int64_t *counts, double *scratch,
                                     int64_t *bad_row, int simd)
    # pass 2 validated as pass 1 validates (sum, sign, finiteness, labels)
    int leepfast_score_checked_f16(const uint16_t *predictions, const int64_t *labels,
                                   int64_t n_rows, int64_t n_source, int64_t n_target,
                                   int is_logits, double tol, const double *conditional,
                                   double *scratch, double *sum, int64_t *bad_row,
                                   int simd)
    int leepfast_score_checked_bf16(const uint16_t *predictions, const int64_t *labels,
                                    int64_t n_rows, int64_t n_source, int64_t n_target,
                                    int is_logits, double tol, const double *conditional,
                                    double *scratch, double *sum, int64_t *bad_row,
                                    int simd)
    int leepfast_score_checked_f32(const float *predictions, const int64_t *labels,
                                   int64_t n_rows, int64_t n_source, int64_t n_target,
                                   int is_logits, double tol, const double *conditional,
                                   double *scratch, double *sum, int64_t *bad_row,
                                   int simd)
    int leepfast_score_checked_f64(const double *predictions, const int64_t *labels,
                                   int64_t n_rows, int64_t n_source, int64_t n_target,
                                   int is_logits, double tol, const double *conditional,
                                   double *scratch, double *sum, int64_t *bad_row,
                                   int simd)
