/* leepfast.c: the portable C99 core (see leepfast.h). No Python, no globals. */
#include "leepfast.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

/*
 * SIMD. Compile-time: SSE2 (part of every x86-64 CPU) unless LEEPFAST_NO_SIMD is
 * defined; portable scalar C elsewhere. Run-time: with GCC or Clang on x86-64, AVX2 + FMA
 * + F16C versions of the row functions are compiled with target attributes (never
 * -march=native) and chosen per block call when the CPU has them, unless
 * LEEPFAST_NO_AVX2 is defined.
 */
#if !defined(LEEPFAST_NO_SIMD) &&                                                      \
    (defined(__SSE2__) || defined(_M_X64) || (defined(_M_IX86_FP) && _M_IX86_FP >= 2))
#define LF_SSE2 1
#include <emmintrin.h>
#else
#define LF_SSE2 0
#endif

#if LF_SSE2 && !defined(LEEPFAST_NO_AVX2) && defined(__x86_64__) &&                     \
    (defined(__GNUC__) || defined(__clang__))
#define LF_AVX2 1
#include <immintrin.h>
#define LF_TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))
static int lf_have_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           __builtin_cpu_supports("f16c");
}
static int acc_row_avx2_f32(const float *, int64_t, double, double *, int64_t *);
static int acc_row_avx2_f64(const double *, int64_t, double, double *, int64_t *);
static double dot_row_avx2_f32(const float *, int64_t, const double *);
static double dot_row_avx2_f64(const double *, int64_t, const double *);
static void half_row_to_float_f16c(const uint16_t *, int64_t, float *);
#else
#define LF_AVX2 0
#endif

/* AVX-512 (F, BW, VL; e.g. Skylake-SP and later Xeons, Zen 4): sixteen floats per
   step, and masked loads and stores for the tail of a row instead of a scalar loop.
   Switched off with LEEPFAST_NO_AVX512 (or anything that switches off AVX2). */
#if LF_AVX2 && !defined(LEEPFAST_NO_AVX512)
#define LF_AVX512 1
#define LF_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))
static int lf_have_avx512(void)
{
    __builtin_cpu_init();
    return lf_have_avx2() && __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
}
static int acc_row_avx512_f32(const float *, int64_t, double, double *, int64_t *);
static int acc_row_avx512_f64(const double *, int64_t, double, double *, int64_t *);
static double dot_row_avx512_f32(const float *, int64_t, const double *);
static double dot_row_avx512_f64(const double *, int64_t, const double *);
#else
#define LF_AVX512 0
#endif

/* The instruction set the row functions of a block call use (checked per call, which
   costs a few loads: libgcc caches the CPU's features). */
enum { LF_LEVEL_BASE = 0, LF_LEVEL_AVX2 = 1, LF_LEVEL_AVX512 = 2 };
static int lf_simd_level(void)
{
#if LF_AVX512
    if (lf_have_avx512()) return LF_LEVEL_AVX512;
#endif
#if LF_AVX2
    if (lf_have_avx2()) return LF_LEVEL_AVX2;
#endif
    return LF_LEVEL_BASE;
}

#if LF_AVX512
#define LF_PICK(avx512, avx2, other)                                                   \
    (lf_simd_level() == LF_LEVEL_AVX512                                                \
         ? (avx512)                                                                     \
         : lf_simd_level() == LF_LEVEL_AVX2 ? (avx2) : (other))
#elif LF_AVX2
#define LF_PICK(avx512, avx2, other) (lf_simd_level() == LF_LEVEL_AVX2 ? (avx2) : (other))
#else
#define LF_PICK(avx512, avx2, other) (other)
#endif

/*
 * A sum of logarithms without a log per term: the running product is kept as a
 * mantissa in [0.5, 1) times 2^exponent (the exponent taken from the bits, exactly),
 * and one log is taken at the end: log(m) + e * ln 2. The rounding error is that of
 * the product, about one ulp per term, as for a sum of logs. Terms below 1e-280 (where
 * the product could leave the normal range) take the direct log.
 */
typedef struct {
    double mantissa;
    int64_t exponent;
    double direct;
} lf_logsum;
#define LF_LOGSUM_INIT {1.0, 0, 0.0}

static void lf_logsum_add(lf_logsum *acc, double p)
{
    if (!(p >= 1e-280)) {
        acc->direct += log(p);
        return;
    }
    double m = acc->mantissa * p; /* normal: m >= 2^-961 */
    uint64_t bits;
    memcpy(&bits, &m, sizeof bits);
    acc->exponent += (int64_t)((bits >> 52) & 0x7ff) - 1022;
    bits = (bits & ~(UINT64_C(0x7ff) << 52)) | (UINT64_C(1022) << 52);
    memcpy(&acc->mantissa, &bits, sizeof bits);
}

static double lf_logsum_value(const lf_logsum *acc)
{
    return (log(acc->mantissa) + (double)acc->exponent * 0.69314718055994530942) +
           acc->direct;
}

/*
 * The pair count of a row, hard[y][argmax], is one int64 in a Y x Z array (800 KB at
 * Y = 100, Z = 1000), so its line is rarely in cache, and the increment waits for it.
 * Incremented at once, that wait held every row up: 10% of pass 1 in float32, 16% in
 * float16 (measured by counting into one row of the array instead). So each row's cell
 * is prefetched for writing when its argmax is known, and incremented LF_HARD_LAG rows
 * later; lf_hard_flush applies what is still pending. The counts are exact either way.
 */
#define LF_HARD_LAG 16 /* a power of two */
#if defined(__GNUC__) || defined(__clang__)
#define LF_PREFETCH_W(p) __builtin_prefetch((p), 1, 3)
#else
#define LF_PREFETCH_W(p) ((void)(p))
#endif
typedef struct {
    int64_t *cell[LF_HARD_LAG];
    int64_t n; /* cells pushed so far */
} lf_hard_queue;
#define LF_HARD_QUEUE_INIT {{NULL}, 0}

static inline void lf_hard_push(lf_hard_queue *q, int64_t *cell)
{
    LF_PREFETCH_W(cell);
    int64_t k = q->n & (LF_HARD_LAG - 1);
    if (q->n >= LF_HARD_LAG) *q->cell[k] += 1;
    q->cell[k] = cell;
    q->n++;
}

static void lf_hard_flush(lf_hard_queue *q)
{
    int64_t first = q->n > LF_HARD_LAG ? q->n - LF_HARD_LAG : 0;
    for (int64_t k = first; k < q->n; k++) *q->cell[k & (LF_HARD_LAG - 1)] += 1;
    q->n = 0;
}

/* The status of a probability row from its sum, its minimum and whether it holds a
   non-finite value: checks run in the order non-finite, negative, sum. */
static int lf_status(double sum, double lo, double tol, int nonfinite)
{
    if (nonfinite) return LEEPFAST_ERR_NONFINITE;
    if (lo < 0) return LEEPFAST_ERR_NEGATIVE;
    if (!(fabs(sum - 1.0) <= tol)) return LEEPFAST_ERR_NOT_NORMALISED;
    return LEEPFAST_OK;
}

#if LF_SSE2
/* Software prefetch, a fixed distance ahead in the stream of rows (rows are contiguous,
   so near the end of a row this fetches the next one). The hardware prefetcher alone
   stops at page boundaries and left the kernels at 1.4-1.7 reads of the data; 4 KiB
   ahead brought them to 1.0-1.1 (measured single-threaded, Z = 1000). Integer
   arithmetic: the address may lie past the end of the array, which a prefetch may. */
#include <xmmintrin.h>
#define LF_PREFETCH_DISTANCE 4096
#define LF_PREFETCH(p)                                                                 \
    _mm_prefetch((const char *)((uintptr_t)(const void *)(p) + LF_PREFETCH_DISTANCE), \
                 _MM_HINT_T0)

/* SIMD row functions (SSE2, part of every x86-64 CPU), declared here and defined after
   the portable ones so that they may call them for the rare paths. */
static int acc_row_sse2_f32(const float *, int64_t, double, double *, int64_t *);
static int acc_row_sse2_f64(const double *, int64_t, double, double *, int64_t *);
static double dot_row_sse2_f32(const float *, int64_t, const double *);
static double dot_row_sse2_f64(const double *, int64_t, const double *);
#define LF_ACC_ROW_(S) acc_row_sse2_##S
#define LF_DOT_ROW_(S) dot_row_sse2_##S
#else
#define LF_ACC_ROW_(S) acc_row_scalar_##S
#define LF_DOT_ROW_(S) dot_row_scalar_##S
#endif
/* two levels, so that LF_ACC_ROW(LF_S) expands LF_S first */
#define LF_ACC_ROW(S) LF_ACC_ROW_(S)
#define LF_DOT_ROW(S) LF_DOT_ROW_(S)
/* the row function a block call uses: the widest the CPU has */
#define LF_PICK_ACC_ROW(S)                                                             \
    LF_PICK(LF_CAT(acc_row_avx512_, S), LF_CAT(acc_row_avx2_, S), LF_ACC_ROW(S))
#define LF_PICK_DOT_ROW(S)                                                             \
    LF_PICK(LF_CAT(dot_row_avx512_, S), LF_CAT(dot_row_avx2_, S), LF_DOT_ROW(S))

/* IEEE binary16 bits to float, exactly (subnormals, infinities and NaN included). */
static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31;
    uint32_t exponent = (h >> 10) & 0x1fu;
    uint32_t mantissa = h & 0x3ffu;
    uint32_t bits;
    float f;
    if (exponent == 0) {
        /* zero or subnormal: mantissa * 2^-24 is exact in float */
        f = (float)mantissa * 5.9604644775390625e-08f;
        return sign ? -f : f;
    }
    if (exponent == 31)
        bits = sign | 0x7f800000u | (mantissa << 13);
    else
        bits = sign | ((exponent + 112u) << 23) | (mantissa << 13);
    memcpy(&f, &bits, sizeof f);
    return f;
}

static void half_row_to_float(const uint16_t *row, int64_t n_source, float *out)
{
    for (int64_t z = 0; z < n_source; z++) out[z] = half_to_float(row[z]);
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

#if LF_SSE2
static float hmin_ps(__m128 v)
{
    v = _mm_min_ps(v, _mm_movehl_ps(v, v));
    v = _mm_min_ss(v, _mm_shuffle_ps(v, v, 1));
    return _mm_cvtss_f32(v);
}

static float hmax_ps(__m128 v)
{
    v = _mm_max_ps(v, _mm_movehl_ps(v, v));
    v = _mm_max_ss(v, _mm_shuffle_ps(v, v, 1));
    return _mm_cvtss_f32(v);
}

static double hsum_pd(__m128d v)
{
    return _mm_cvtsd_f64(_mm_add_sd(v, _mm_unpackhi_pd(v, v)));
}

static int64_t first_equal_sse2_f32(const float *row, int64_t n, float value)
{
    __m128 x = _mm_set1_ps(value);
    int64_t z = 0;
    for (; z + 4 <= n; z += 4) {
        int mask = _mm_movemask_ps(_mm_cmpeq_ps(_mm_loadu_ps(row + z), x));
        if (mask) {
            int k = 0;
            while (!(mask & (1 << k))) k++;
            return z + k;
        }
    }
    return z + first_equal_scalar_f32(row + z, n - z, value);
}

static int64_t first_equal_sse2_f64(const double *row, int64_t n, double value)
{
    __m128d x = _mm_set1_pd(value);
    int64_t z = 0;
    for (; z + 2 <= n; z += 2) {
        int mask = _mm_movemask_pd(_mm_cmpeq_pd(_mm_loadu_pd(row + z), x));
        if (mask) return z + (mask & 1 ? 0 : 1);
    }
    return z + first_equal_scalar_f64(row + z, n - z, value);
}

/* Pass-1 row, float32: one read of the row adds it to the joint (float64) and gathers
   its sum (float64), minimum and maximum. Two independent chains per quantity. */
static int acc_row_sse2_f32(const float *row, int64_t n, double tol, double *jrow,
                            int64_t *argmax)
{
    __m128d s0 = _mm_setzero_pd(), s1 = _mm_setzero_pd();
    __m128d s2 = _mm_setzero_pd(), s3 = _mm_setzero_pd();
    __m128 lo0 = _mm_set1_ps(row[0]), lo1 = lo0, hi0 = lo0, hi1 = lo0;
    int64_t z = 0;
    for (; z + 8 <= n; z += 8) {
        LF_PREFETCH(row + z);
        __m128 v = _mm_loadu_ps(row + z), w = _mm_loadu_ps(row + z + 4);
        __m128d a = _mm_cvtps_pd(v), b = _mm_cvtps_pd(_mm_movehl_ps(v, v));
        __m128d c = _mm_cvtps_pd(w), d = _mm_cvtps_pd(_mm_movehl_ps(w, w));
        s0 = _mm_add_pd(s0, a);
        s1 = _mm_add_pd(s1, b);
        s2 = _mm_add_pd(s2, c);
        s3 = _mm_add_pd(s3, d);
        lo0 = _mm_min_ps(lo0, v);
        lo1 = _mm_min_ps(lo1, w);
        hi0 = _mm_max_ps(hi0, v);
        hi1 = _mm_max_ps(hi1, w);
        _mm_storeu_pd(jrow + z, _mm_add_pd(_mm_loadu_pd(jrow + z), a));
        _mm_storeu_pd(jrow + z + 2, _mm_add_pd(_mm_loadu_pd(jrow + z + 2), b));
        _mm_storeu_pd(jrow + z + 4, _mm_add_pd(_mm_loadu_pd(jrow + z + 4), c));
        _mm_storeu_pd(jrow + z + 6, _mm_add_pd(_mm_loadu_pd(jrow + z + 6), d));
    }
    double s = hsum_pd(_mm_add_pd(_mm_add_pd(s0, s1), _mm_add_pd(s2, s3)));
    float lo = hmin_ps(_mm_min_ps(lo0, lo1)), hi = hmax_ps(_mm_max_ps(hi0, hi1));
    for (; z < n; z++) {
        float v = row[z];
        s += (double)v;
        jrow[z] += (double)v;
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    int status = lf_status(s, lo, tol, !isfinite(s) && has_nonfinite_f32(row, n));
    if (status == LEEPFAST_OK) *argmax = first_equal_sse2_f32(row, n, hi);
    return status;
}

static int acc_row_sse2_f64(const double *row, int64_t n, double tol, double *jrow,
                            int64_t *argmax)
{
    __m128d s0 = _mm_setzero_pd(), s1 = _mm_setzero_pd();
    __m128d lo0 = _mm_set1_pd(row[0]), lo1 = lo0, hi0 = lo0, hi1 = lo0;
    int64_t z = 0;
    for (; z + 4 <= n; z += 4) {
        LF_PREFETCH(row + z);
        __m128d a = _mm_loadu_pd(row + z), b = _mm_loadu_pd(row + z + 2);
        s0 = _mm_add_pd(s0, a);
        s1 = _mm_add_pd(s1, b);
        lo0 = _mm_min_pd(lo0, a);
        lo1 = _mm_min_pd(lo1, b);
        hi0 = _mm_max_pd(hi0, a);
        hi1 = _mm_max_pd(hi1, b);
        _mm_storeu_pd(jrow + z, _mm_add_pd(_mm_loadu_pd(jrow + z), a));
        _mm_storeu_pd(jrow + z + 2, _mm_add_pd(_mm_loadu_pd(jrow + z + 2), b));
    }
    double s = hsum_pd(_mm_add_pd(s0, s1));
    __m128d l = _mm_min_pd(lo0, lo1), h = _mm_max_pd(hi0, hi1);
    double lo = _mm_cvtsd_f64(_mm_min_sd(l, _mm_unpackhi_pd(l, l)));
    double hi = _mm_cvtsd_f64(_mm_max_sd(h, _mm_unpackhi_pd(h, h)));
    for (; z < n; z++) {
        double v = row[z];
        s += v;
        jrow[z] += v;
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    int status = lf_status(s, lo, tol, !isfinite(s) && has_nonfinite_f64(row, n));
    if (status == LEEPFAST_OK) *argmax = first_equal_sse2_f64(row, n, hi);
    return status;
}

/* Pass-2 row: sum_z c_row[z] * row[z] in float64, four independent chains. */
static double dot_row_sse2_f32(const float *row, int64_t n, const double *c)
{
    __m128d s0 = _mm_setzero_pd(), s1 = _mm_setzero_pd();
    __m128d s2 = _mm_setzero_pd(), s3 = _mm_setzero_pd();
    int64_t z = 0;
    for (; z + 8 <= n; z += 8) {
        LF_PREFETCH(row + z);
        __m128 v = _mm_loadu_ps(row + z), w = _mm_loadu_ps(row + z + 4);
        s0 = _mm_add_pd(s0, _mm_mul_pd(_mm_cvtps_pd(v), _mm_loadu_pd(c + z)));
        s1 = _mm_add_pd(s1, _mm_mul_pd(_mm_cvtps_pd(_mm_movehl_ps(v, v)),
                                       _mm_loadu_pd(c + z + 2)));
        s2 = _mm_add_pd(s2, _mm_mul_pd(_mm_cvtps_pd(w), _mm_loadu_pd(c + z + 4)));
        s3 = _mm_add_pd(s3, _mm_mul_pd(_mm_cvtps_pd(_mm_movehl_ps(w, w)),
                                       _mm_loadu_pd(c + z + 6)));
    }
    double s = hsum_pd(_mm_add_pd(_mm_add_pd(s0, s1), _mm_add_pd(s2, s3)));
    for (; z < n; z++) s += c[z] * (double)row[z];
    return s;
}

static double dot_row_sse2_f64(const double *row, int64_t n, const double *c)
{
    __m128d s0 = _mm_setzero_pd(), s1 = _mm_setzero_pd();
    __m128d s2 = _mm_setzero_pd(), s3 = _mm_setzero_pd();
    int64_t z = 0;
    for (; z + 8 <= n; z += 8) {
        LF_PREFETCH(row + z);
        s0 = _mm_add_pd(s0, _mm_mul_pd(_mm_loadu_pd(row + z), _mm_loadu_pd(c + z)));
        s1 = _mm_add_pd(s1, _mm_mul_pd(_mm_loadu_pd(row + z + 2), _mm_loadu_pd(c + z + 2)));
        s2 = _mm_add_pd(s2, _mm_mul_pd(_mm_loadu_pd(row + z + 4), _mm_loadu_pd(c + z + 4)));
        s3 = _mm_add_pd(s3, _mm_mul_pd(_mm_loadu_pd(row + z + 6), _mm_loadu_pd(c + z + 6)));
    }
    double s = hsum_pd(_mm_add_pd(_mm_add_pd(s0, s1), _mm_add_pd(s2, s3)));
    for (; z < n; z++) s += c[z] * row[z];
    return s;
}
#endif /* LF_SSE2 */

#if LF_AVX2
LF_TARGET_AVX2 static int64_t first_equal_avx2_f64(const double *row, int64_t n,
                                                   double value)
{
    __m256d x = _mm256_set1_pd(value);
    int64_t z = 0;
    for (; z + 4 <= n; z += 4) {
        int mask = _mm256_movemask_pd(_mm256_cmp_pd(_mm256_loadu_pd(row + z), x, _CMP_EQ_OQ));
        if (mask) return z + __builtin_ctz((unsigned)mask);
    }
    return z + first_equal_scalar_f64(row + z, n - z, value);
}

LF_TARGET_AVX2 static double hsum256_pd(__m256d v)
{
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}

/* float32 and float16 rows share their AVX2 code: `half` is a compile-time constant in
   each caller, and F16C converts eight halves to eight floats exactly on load. */
LF_TARGET_AVX2 static inline __m256 load8_avx2(const void *row, int64_t z, int half)
{
    if (half)
        return _mm256_cvtph_ps(
            _mm_loadu_si128((const __m128i *)((const uint16_t *)row + z)));
    return _mm256_loadu_ps((const float *)row + z);
}

LF_TARGET_AVX2 static inline float elem(const void *row, int64_t z, int half)
{
    return half ? _cvtsh_ss(((const uint16_t *)row)[z]) : ((const float *)row)[z];
}

LF_TARGET_AVX2 static inline int64_t first_equal_avx2(const void *row, int64_t n,
                                                      float value, int half)
{
    __m256 x = _mm256_set1_ps(value);
    int64_t z = 0;
    for (; z + 8 <= n; z += 8) {
        int mask = _mm256_movemask_ps(_mm256_cmp_ps(load8_avx2(row, z, half), x, _CMP_EQ_OQ));
        if (mask) return z + __builtin_ctz((unsigned)mask);
    }
    while (z < n && elem(row, z, half) != value) z++;
    return z;
}

LF_TARGET_AVX2 static inline int acc_row_avx2(const void *row, int64_t n, double tol,
                                              double *jrow, int64_t *argmax, int half)
{
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    __m256d s2 = _mm256_setzero_pd(), s3 = _mm256_setzero_pd();
    __m256 lo0 = _mm256_set1_ps(elem(row, 0, half)), lo1 = lo0, hi0 = lo0, hi1 = lo0;
    const char *bytes = (const char *)row;
    int64_t z = 0;
    for (; z + 16 <= n; z += 16) {
        LF_PREFETCH(bytes + z * (half ? 2 : 4));
        __m256 v = load8_avx2(row, z, half), w = load8_avx2(row, z + 8, half);
        __m256d a = _mm256_cvtps_pd(_mm256_castps256_ps128(v));
        __m256d b = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
        __m256d c = _mm256_cvtps_pd(_mm256_castps256_ps128(w));
        __m256d d = _mm256_cvtps_pd(_mm256_extractf128_ps(w, 1));
        s0 = _mm256_add_pd(s0, a);
        s1 = _mm256_add_pd(s1, b);
        s2 = _mm256_add_pd(s2, c);
        s3 = _mm256_add_pd(s3, d);
        lo0 = _mm256_min_ps(lo0, v);
        lo1 = _mm256_min_ps(lo1, w);
        hi0 = _mm256_max_ps(hi0, v);
        hi1 = _mm256_max_ps(hi1, w);
        _mm256_storeu_pd(jrow + z, _mm256_add_pd(_mm256_loadu_pd(jrow + z), a));
        _mm256_storeu_pd(jrow + z + 4, _mm256_add_pd(_mm256_loadu_pd(jrow + z + 4), b));
        _mm256_storeu_pd(jrow + z + 8, _mm256_add_pd(_mm256_loadu_pd(jrow + z + 8), c));
        _mm256_storeu_pd(jrow + z + 12, _mm256_add_pd(_mm256_loadu_pd(jrow + z + 12), d));
    }
    if (z + 8 <= n) { /* one more half step: the scalar tail is then shorter than 8 */
        __m256 v = load8_avx2(row, z, half);
        __m256d a = _mm256_cvtps_pd(_mm256_castps256_ps128(v));
        __m256d b = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
        s0 = _mm256_add_pd(s0, a);
        s1 = _mm256_add_pd(s1, b);
        lo0 = _mm256_min_ps(lo0, v);
        hi0 = _mm256_max_ps(hi0, v);
        _mm256_storeu_pd(jrow + z, _mm256_add_pd(_mm256_loadu_pd(jrow + z), a));
        _mm256_storeu_pd(jrow + z + 4, _mm256_add_pd(_mm256_loadu_pd(jrow + z + 4), b));
        z += 8;
    }
    double s = hsum256_pd(_mm256_add_pd(_mm256_add_pd(s0, s1), _mm256_add_pd(s2, s3)));
    __m256 l = _mm256_min_ps(lo0, lo1), h = _mm256_max_ps(hi0, hi1);
    float lo = hmin_ps(_mm_min_ps(_mm256_castps256_ps128(l), _mm256_extractf128_ps(l, 1)));
    float hi = hmax_ps(_mm_max_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)));
    for (; z < n; z++) {
        float v = elem(row, z, half);
        s += (double)v;
        jrow[z] += (double)v;
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    int nonfinite = 0;
    if (!isfinite(s))
        for (z = 0; z < n && !nonfinite; z++) nonfinite = !isfinite(elem(row, z, half));
    int status = lf_status(s, lo, tol, nonfinite);
    if (status == LEEPFAST_OK) *argmax = first_equal_avx2(row, n, hi, half);
    return status;
}

LF_TARGET_AVX2 static int acc_row_avx2_f32(const float *row, int64_t n, double tol,
                                           double *jrow, int64_t *argmax)
{
    return acc_row_avx2(row, n, tol, jrow, argmax, 0);
}

LF_TARGET_AVX2 static int acc_row_avx2_f16(const uint16_t *row, int64_t n, double tol,
                                           double *jrow, int64_t *argmax)
{
    return acc_row_avx2(row, n, tol, jrow, argmax, 1);
}

LF_TARGET_AVX2 static int acc_row_avx2_f64(const double *row, int64_t n, double tol,
                                           double *jrow, int64_t *argmax)
{
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    __m256d lo0 = _mm256_set1_pd(row[0]), lo1 = lo0, hi0 = lo0, hi1 = lo0;
    int64_t z = 0;
    for (; z + 8 <= n; z += 8) {
        LF_PREFETCH(row + z);
        __m256d a = _mm256_loadu_pd(row + z), b = _mm256_loadu_pd(row + z + 4);
        s0 = _mm256_add_pd(s0, a);
        s1 = _mm256_add_pd(s1, b);
        lo0 = _mm256_min_pd(lo0, a);
        lo1 = _mm256_min_pd(lo1, b);
        hi0 = _mm256_max_pd(hi0, a);
        hi1 = _mm256_max_pd(hi1, b);
        _mm256_storeu_pd(jrow + z, _mm256_add_pd(_mm256_loadu_pd(jrow + z), a));
        _mm256_storeu_pd(jrow + z + 4, _mm256_add_pd(_mm256_loadu_pd(jrow + z + 4), b));
    }
    double s = hsum256_pd(_mm256_add_pd(s0, s1));
    __m256d l4 = _mm256_min_pd(lo0, lo1), h4 = _mm256_max_pd(hi0, hi1);
    __m128d l = _mm_min_pd(_mm256_castpd256_pd128(l4), _mm256_extractf128_pd(l4, 1));
    __m128d h = _mm_max_pd(_mm256_castpd256_pd128(h4), _mm256_extractf128_pd(h4, 1));
    double lo = _mm_cvtsd_f64(_mm_min_sd(l, _mm_unpackhi_pd(l, l)));
    double hi = _mm_cvtsd_f64(_mm_max_sd(h, _mm_unpackhi_pd(h, h)));
    for (; z < n; z++) {
        double v = row[z];
        s += v;
        jrow[z] += v;
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    int status = lf_status(s, lo, tol, !isfinite(s) && has_nonfinite_f64(row, n));
    if (status == LEEPFAST_OK) *argmax = first_equal_avx2_f64(row, n, hi);
    return status;
}

LF_TARGET_AVX2 static inline double dot_row_avx2(const void *row, int64_t n,
                                                 const double *c, int half)
{
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    __m256d s2 = _mm256_setzero_pd(), s3 = _mm256_setzero_pd();
    const char *bytes = (const char *)row;
    int64_t z = 0;
    for (; z + 16 <= n; z += 16) {
        LF_PREFETCH(bytes + z * (half ? 2 : 4));
        __m256 v = load8_avx2(row, z, half), w = load8_avx2(row, z + 8, half);
        s0 = _mm256_fmadd_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)),
                             _mm256_loadu_pd(c + z), s0);
        s1 = _mm256_fmadd_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)),
                             _mm256_loadu_pd(c + z + 4), s1);
        s2 = _mm256_fmadd_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(w)),
                             _mm256_loadu_pd(c + z + 8), s2);
        s3 = _mm256_fmadd_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(w, 1)),
                             _mm256_loadu_pd(c + z + 12), s3);
    }
    if (z + 8 <= n) {
        __m256 v = load8_avx2(row, z, half);
        s0 = _mm256_fmadd_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)),
                             _mm256_loadu_pd(c + z), s0);
        s1 = _mm256_fmadd_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)),
                             _mm256_loadu_pd(c + z + 4), s1);
        z += 8;
    }
    double s = hsum256_pd(_mm256_add_pd(_mm256_add_pd(s0, s1), _mm256_add_pd(s2, s3)));
    for (; z < n; z++) s += c[z] * (double)elem(row, z, half);
    return s;
}

LF_TARGET_AVX2 static double dot_row_avx2_f32(const float *row, int64_t n, const double *c)
{
    return dot_row_avx2(row, n, c, 0);
}

LF_TARGET_AVX2 static double dot_row_avx2_f16(const uint16_t *row, int64_t n,
                                              const double *c)
{
    return dot_row_avx2(row, n, c, 1);
}

LF_TARGET_AVX2 static double dot_row_avx2_f64(const double *row, int64_t n, const double *c)
{
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    __m256d s2 = _mm256_setzero_pd(), s3 = _mm256_setzero_pd();
    int64_t z = 0;
    for (; z + 16 <= n; z += 16) {
        LF_PREFETCH(row + z);
        LF_PREFETCH(row + z + 8);
        s0 = _mm256_fmadd_pd(_mm256_loadu_pd(row + z), _mm256_loadu_pd(c + z), s0);
        s1 = _mm256_fmadd_pd(_mm256_loadu_pd(row + z + 4), _mm256_loadu_pd(c + z + 4), s1);
        s2 = _mm256_fmadd_pd(_mm256_loadu_pd(row + z + 8), _mm256_loadu_pd(c + z + 8), s2);
        s3 = _mm256_fmadd_pd(_mm256_loadu_pd(row + z + 12), _mm256_loadu_pd(c + z + 12), s3);
    }
    double s = hsum256_pd(_mm256_add_pd(_mm256_add_pd(s0, s1), _mm256_add_pd(s2, s3)));
    for (; z < n; z++) s += c[z] * row[z];
    return s;
}

/* F16C: eight halves to eight floats per instruction, exact. */
LF_TARGET_AVX2 static void half_row_to_float_f16c(const uint16_t *row, int64_t n,
                                                  float *out)
{
    int64_t z = 0;
    for (; z + 8 <= n; z += 8) {
        if (!(z & 31)) LF_PREFETCH(row + z); /* one cache line holds 32 halves */
        _mm256_storeu_ps(out + z,
                         _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(row + z))));
    }
    for (; z < n; z++) out[z] = half_to_float(row[z]);
}
#endif /* LF_AVX2 */

#if LF_AVX512
/* The AVX-512 rows mirror the AVX2 ones: per row, one read adds it to the joint and
   gathers its sum, minimum and maximum; the last partial vector of a row is read and
   written under a mask (lanes past the row load as 0 and are never stored). */
LF_TARGET_AVX512 static inline __m512 load16_avx512(const void *row, int64_t z,
                                                    __mmask16 m, int half)
{
    if (half)
        return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const uint16_t *)row + z));
    return _mm512_maskz_loadu_ps(m, (const float *)row + z);
}

/* the low and high eight floats of v, widened to doubles */
LF_TARGET_AVX512 static inline __m512d lo8_pd(__m512 v)
{
    return _mm512_cvtps_pd(_mm512_castps512_ps256(v));
}

LF_TARGET_AVX512 static inline __m512d hi8_pd(__m512 v)
{
    return _mm512_cvtps_pd(
        _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
}

LF_TARGET_AVX512 static inline __mmask16 tail16(int64_t left)
{
    return left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
}

LF_TARGET_AVX512 static inline __mmask8 tail8(int64_t left)
{
    return left >= 8 ? (__mmask8)0xff : (__mmask8)((1u << left) - 1u);
}

LF_TARGET_AVX512 static inline void add8_pd(double *p, __m512d a, __mmask8 m)
{
    _mm512_mask_storeu_pd(p, m, _mm512_add_pd(_mm512_maskz_loadu_pd(m, p), a));
}

LF_TARGET_AVX512 static inline int64_t first_equal_avx512(const void *row, int64_t n,
                                                          float value, int half)
{
    if (half && value >= 6.103515625e-05f) {
        /* halves equal to a positive normal half have its bits: compare 32 bit patterns
           per step, without converting (value is a half widened to float: exact back;
           subnormal maxima keep the float compare, whatever the FTZ mode) */
        const uint16_t *h = (const uint16_t *)row;
        __m512i bits = _mm512_set1_epi16((short)_cvtss_sh(value, 0));
        for (int64_t z = 0; z < n; z += 32) {
            __mmask32 m = n - z >= 32 ? 0xffffffffu : (__mmask32)((1u << (n - z)) - 1u);
            __mmask32 eq = _mm512_mask_cmpeq_epi16_mask(m, _mm512_maskz_loadu_epi16(m, h + z),
                                                        bits);
            if (eq) return z + __builtin_ctz(eq);
        }
        return n; /* not reached */
    }
    __m512 x = _mm512_set1_ps(value);
    for (int64_t z = 0; z < n; z += 16) {
        __mmask16 m = tail16(n - z);
        __mmask16 eq = _mm512_mask_cmp_ps_mask(m, load16_avx512(row, z, m, half), x,
                                               _CMP_EQ_OQ);
        if (eq) return z + __builtin_ctz((unsigned)eq);
    }
    return n; /* not reached: value is an element of the row */
}

/* The AVX-512 row keeps, per lane, the largest value seen and its first index (a strict
   > never replaces an equal value), and reduces them at the end: the argmax without a
   second scan of the row, which had cost 30% of pass 1 at Z=100 (measured by leaving it
   out; rows of at most 16 values still scan, once: cheaper than the reduction). */
LF_TARGET_AVX512 static inline int acc_row_avx512(const void *row, int64_t n, double tol,
                                                  double *jrow, int64_t *argmax,
                                                  int half)
{
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    __m512d s2 = _mm512_setzero_pd(), s3 = _mm512_setzero_pd();
    __m512 lo0 = _mm512_set1_ps(elem(row, 0, half)), lo1 = lo0;
    __m512 hi0 = _mm512_set1_ps(-INFINITY), hi1 = hi0;
    const __m512i step = _mm512_set1_epi32(32);
    __m512i at0 = _mm512_setzero_si512(), at1 = at0; /* index of hi0, hi1 per lane */
    __m512i iv = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    __m512i iw = _mm512_add_epi32(iv, _mm512_set1_epi32(16)); /* indices of v, w */
    const char *bytes = (const char *)row;
    int64_t z = 0;
    for (; z + 32 <= n; z += 32) {
        LF_PREFETCH(bytes + z * (half ? 2 : 4));
        if (!half) LF_PREFETCH(bytes + z * 4 + 64);
        __m512 v = load16_avx512(row, z, 0xffff, half);
        __m512 w = load16_avx512(row, z + 16, 0xffff, half);
        __m512d a = lo8_pd(v), b = hi8_pd(v), c = lo8_pd(w), d = hi8_pd(w);
        s0 = _mm512_add_pd(s0, a);
        s1 = _mm512_add_pd(s1, b);
        s2 = _mm512_add_pd(s2, c);
        s3 = _mm512_add_pd(s3, d);
        lo0 = _mm512_min_ps(lo0, v);
        lo1 = _mm512_min_ps(lo1, w);
        __mmask16 gv = _mm512_cmp_ps_mask(v, hi0, _CMP_GT_OQ);
        __mmask16 gw = _mm512_cmp_ps_mask(w, hi1, _CMP_GT_OQ);
        hi0 = _mm512_mask_mov_ps(hi0, gv, v);
        hi1 = _mm512_mask_mov_ps(hi1, gw, w);
        at0 = _mm512_mask_mov_epi32(at0, gv, iv);
        at1 = _mm512_mask_mov_epi32(at1, gw, iw);
        iv = _mm512_add_epi32(iv, step);
        iw = _mm512_add_epi32(iw, step);
        _mm512_storeu_pd(jrow + z, _mm512_add_pd(_mm512_loadu_pd(jrow + z), a));
        _mm512_storeu_pd(jrow + z + 8, _mm512_add_pd(_mm512_loadu_pd(jrow + z + 8), b));
        _mm512_storeu_pd(jrow + z + 16, _mm512_add_pd(_mm512_loadu_pd(jrow + z + 16), c));
        _mm512_storeu_pd(jrow + z + 24, _mm512_add_pd(_mm512_loadu_pd(jrow + z + 24), d));
    }
    /* at most two steps of 16 (iv, then iw: the indices z + lane, z + 16 + lane), the
       last one masked */
    for (int k = 0; z < n; z += 16, k++) {
        __mmask16 m = tail16(n - z);
        __m512 v = load16_avx512(row, z, m, half);
        __m512d a = lo8_pd(v), b = hi8_pd(v);
        s0 = _mm512_add_pd(s0, a);
        s1 = _mm512_add_pd(s1, b);
        lo0 = _mm512_mask_min_ps(lo0, m, lo0, v);
        if (n <= 16) { /* the whole row: its argmax is scanned for below */
            hi0 = _mm512_mask_max_ps(hi0, m, hi0, v);
        } else {
            __mmask16 g = _mm512_mask_cmp_ps_mask(m, v, hi0, _CMP_GT_OQ);
            hi0 = _mm512_mask_mov_ps(hi0, g, v);
            at0 = _mm512_mask_mov_epi32(at0, g, k ? iw : iv);
        }
        add8_pd(jrow + z, a, (__mmask8)m);
        if (m >> 8) add8_pd(jrow + z + 8, b, (__mmask8)(m >> 8));
    }
    double s = _mm512_reduce_add_pd(_mm512_add_pd(_mm512_add_pd(s0, s1),
                                                  _mm512_add_pd(s2, s3)));
    float lo = _mm512_reduce_min_ps(_mm512_min_ps(lo0, lo1));
    int nonfinite = 0;
    if (!isfinite(s))
        for (z = 0; z < n && !nonfinite; z++)
            nonfinite = !isfinite(elem(row, z, half));
    int status = lf_status(s, lo, tol, nonfinite);
    if (status == LEEPFAST_OK && n <= 16) { /* one step: its scan exits at once */
        *argmax = first_equal_avx512(row, n, _mm512_reduce_max_ps(hi0), half);
    } else if (status == LEEPFAST_OK) {
        /* lane by lane, the larger of the two maxima, the lower index on a tie */
        __mmask16 take1 = _mm512_cmp_ps_mask(hi1, hi0, _CMP_GT_OQ) |
                          (_mm512_cmp_ps_mask(hi1, hi0, _CMP_EQ_OQ) &
                           _mm512_cmp_epi32_mask(at1, at0, _MM_CMPINT_LT));
        __m512 h = _mm512_mask_mov_ps(hi0, take1, hi1);
        __m512i at = _mm512_mask_mov_epi32(at0, take1, at1);
        __mmask16 top = _mm512_cmp_ps_mask(h, _mm512_set1_ps(_mm512_reduce_max_ps(h)),
                                           _CMP_EQ_OQ);
        *argmax = _mm512_mask_reduce_min_epi32(top, at);
    }
    return status;
}

LF_TARGET_AVX512 static int acc_row_avx512_f32(const float *row, int64_t n, double tol,
                                               double *jrow, int64_t *argmax)
{
    return acc_row_avx512(row, n, tol, jrow, argmax, 0);
}

LF_TARGET_AVX512 static int acc_row_avx512_f16(const uint16_t *row, int64_t n, double tol,
                                               double *jrow, int64_t *argmax)
{
    return acc_row_avx512(row, n, tol, jrow, argmax, 1);
}

LF_TARGET_AVX512 static int acc_row_avx512_f64(const double *row, int64_t n, double tol,
                                               double *jrow, int64_t *argmax)
{
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    __m512d lo0 = _mm512_set1_pd(row[0]), lo1 = lo0, hi0 = lo0, hi1 = lo0;
    int64_t z = 0;
    for (; z + 16 <= n; z += 16) {
        LF_PREFETCH(row + z);
        LF_PREFETCH(row + z + 8);
        __m512d a = _mm512_loadu_pd(row + z), b = _mm512_loadu_pd(row + z + 8);
        s0 = _mm512_add_pd(s0, a);
        s1 = _mm512_add_pd(s1, b);
        lo0 = _mm512_min_pd(lo0, a);
        lo1 = _mm512_min_pd(lo1, b);
        hi0 = _mm512_max_pd(hi0, a);
        hi1 = _mm512_max_pd(hi1, b);
        _mm512_storeu_pd(jrow + z, _mm512_add_pd(_mm512_loadu_pd(jrow + z), a));
        _mm512_storeu_pd(jrow + z + 8, _mm512_add_pd(_mm512_loadu_pd(jrow + z + 8), b));
    }
    for (; z < n; z += 8) {
        __mmask8 m = tail8(n - z);
        __m512d a = _mm512_maskz_loadu_pd(m, row + z);
        s0 = _mm512_add_pd(s0, a);
        lo0 = _mm512_mask_min_pd(lo0, m, lo0, a);
        hi0 = _mm512_mask_max_pd(hi0, m, hi0, a);
        add8_pd(jrow + z, a, m);
    }
    double s = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
    double lo = _mm512_reduce_min_pd(_mm512_min_pd(lo0, lo1));
    double hi = _mm512_reduce_max_pd(_mm512_max_pd(hi0, hi1));
    int status = lf_status(s, lo, tol, !isfinite(s) && has_nonfinite_f64(row, n));
    if (status == LEEPFAST_OK) {
        __m512d x = _mm512_set1_pd(hi);
        for (z = 0; z < n; z += 8) {
            __mmask8 m = tail8(n - z);
            __mmask8 eq = _mm512_mask_cmp_pd_mask(m, _mm512_maskz_loadu_pd(m, row + z), x,
                                                  _CMP_EQ_OQ);
            if (eq) {
                *argmax = z + __builtin_ctz((unsigned)eq);
                break;
            }
        }
    }
    return status;
}

LF_TARGET_AVX512 static inline double dot_row_avx512(const void *row, int64_t n,
                                                     const double *c, int half)
{
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    __m512d s2 = _mm512_setzero_pd(), s3 = _mm512_setzero_pd();
    const char *bytes = (const char *)row;
    int64_t z = 0;
    for (; z + 32 <= n; z += 32) {
        LF_PREFETCH(bytes + z * (half ? 2 : 4));
        if (!half) LF_PREFETCH(bytes + z * 4 + 64);
        __m512 v = load16_avx512(row, z, 0xffff, half);
        __m512 w = load16_avx512(row, z + 16, 0xffff, half);
        s0 = _mm512_fmadd_pd(lo8_pd(v), _mm512_loadu_pd(c + z), s0);
        s1 = _mm512_fmadd_pd(hi8_pd(v), _mm512_loadu_pd(c + z + 8), s1);
        s2 = _mm512_fmadd_pd(lo8_pd(w), _mm512_loadu_pd(c + z + 16), s2);
        s3 = _mm512_fmadd_pd(hi8_pd(w), _mm512_loadu_pd(c + z + 24), s3);
    }
    for (; z < n; z += 16) {
        __mmask16 m = tail16(n - z);
        __m512 v = load16_avx512(row, z, m, half);
        s0 = _mm512_fmadd_pd(lo8_pd(v), _mm512_maskz_loadu_pd((__mmask8)m, c + z), s0);
        s1 = _mm512_fmadd_pd(hi8_pd(v), _mm512_maskz_loadu_pd((__mmask8)(m >> 8), c + z + 8),
                             s1);
    }
    return _mm512_reduce_add_pd(_mm512_add_pd(_mm512_add_pd(s0, s1), _mm512_add_pd(s2, s3)));
}

LF_TARGET_AVX512 static double dot_row_avx512_f32(const float *row, int64_t n,
                                                  const double *c)
{
    return dot_row_avx512(row, n, c, 0);
}

LF_TARGET_AVX512 static double dot_row_avx512_f16(const uint16_t *row, int64_t n,
                                                  const double *c)
{
    return dot_row_avx512(row, n, c, 1);
}

LF_TARGET_AVX512 static double dot_row_avx512_f64(const double *row, int64_t n,
                                                  const double *c)
{
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    __m512d s2 = _mm512_setzero_pd(), s3 = _mm512_setzero_pd();
    int64_t z = 0;
    for (; z + 32 <= n; z += 32) {
        LF_PREFETCH(row + z);
        LF_PREFETCH(row + z + 8);
        LF_PREFETCH(row + z + 16);
        LF_PREFETCH(row + z + 24);
        s0 = _mm512_fmadd_pd(_mm512_loadu_pd(row + z), _mm512_loadu_pd(c + z), s0);
        s1 = _mm512_fmadd_pd(_mm512_loadu_pd(row + z + 8), _mm512_loadu_pd(c + z + 8), s1);
        s2 = _mm512_fmadd_pd(_mm512_loadu_pd(row + z + 16), _mm512_loadu_pd(c + z + 16), s2);
        s3 = _mm512_fmadd_pd(_mm512_loadu_pd(row + z + 24), _mm512_loadu_pd(c + z + 24), s3);
    }
    for (; z < n; z += 8) {
        __mmask8 m = tail8(n - z);
        s0 = _mm512_fmadd_pd(_mm512_maskz_loadu_pd(m, row + z), _mm512_maskz_loadu_pd(m, c + z),
                             s0);
    }
    return _mm512_reduce_add_pd(_mm512_add_pd(_mm512_add_pd(s0, s1), _mm512_add_pd(s2, s3)));
}
#endif /* LF_AVX512 */

#if LF_AVX512
/*
 * float16 pass 1 in fixed point. A half is an integer multiple of 2^-24, so a
 * probability (at most 1 + tol) times 2^24 is an integer below 2^25, exact in float
 * and in int32. Rows are added to an int32 partial joint (half the bytes of the float64
 * joint row that every row otherwise reads and writes back through L2), and each class's
 * partial is moved into the float64 joint, exactly, every LF_FIXED_ROWS rows of that
 * class and at the end of the block: 64 rows of at most 2^25 stay below 2^31. The joint
 * gets exact sums of up to 64 rows instead of 64 rounded additions, and the row checks
 * see the same values (sums in float, re-done in double near the tolerance).
 */
#define LF_FIXED_ROWS 64
#define LF_FIXED_MAX_CELLS (1 << 20) /* 4 MiB of int32 partials per call at most */
#define LF_FIXED_MIN_ROWS_PER_CLASS 64 /* rows per call, on average, to pay for them */

/* Whether a float16 block takes the fixed-point pass: the CPU has AVX-512, the partials
   are small enough, the block long enough to pay for allocating, zeroing and flushing
   them, and the tolerance small enough that every value of a row that passes is at most
   1 + tol < 1.5, so that 64 of them (times 2^24) stay below 2^31. */
static int lf_fixed_pays(int64_t n_rows, int64_t n_source, int64_t n_target, double tol)
{
    return lf_simd_level() == LF_LEVEL_AVX512 && tol < 0.5 &&
           n_target * n_source <= LF_FIXED_MAX_CELLS &&
           n_rows >= LF_FIXED_MIN_ROWS_PER_CLASS * n_target;
}

/* min of 32 unsigned 16-bit lanes */
LF_TARGET_AVX512 static inline unsigned lf_hmin_epu16(__m512i v)
{
    __m256i a = _mm256_min_epu16(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
    __m128i b = _mm_min_epu16(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
    return (unsigned)_mm_cvtsi128_si32(_mm_minpos_epu16(b)) & 0xffffu;
}

/* max of 32 signed 16-bit lanes known to be >= 0 (as unsigned, then, too): the
   complement of the smallest complement */
LF_TARGET_AVX512 static inline unsigned lf_hmax_epi16_nonneg(__m512i v)
{
    return 0xffffu - lf_hmin_epu16(_mm512_xor_si512(v, _mm512_set1_epi16(-1)));
}

LF_TARGET_AVX512 static int acc_row_fixed_f16(const uint16_t *row, int64_t n, double tol,
                                              int32_t *prow, int64_t *argmax)
{
    const __m512 scale = _mm512_set1_ps(16777216.0f); /* 2^24 */
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    /* hi starts at +0.0: a sign bit (a negative value or -0.0) never wins the signed max.
       Per lane, `step` keeps the step (z / 32) where hi was first reached: the argmax
       without a second scan of the row (n <= 2^20, so steps fit 16 bits) */
    __m512i lo = _mm512_set1_epi16((short)row[0]), hi = _mm512_setzero_si512();
    __m512i step = _mm512_setzero_si512(), here = step;
    const __m512i one = _mm512_set1_epi16(1);
    int64_t z = 0;
    for (; z + 32 <= n; z += 32) {
        LF_PREFETCH(row + z);
        __m512i raw = _mm512_loadu_si512((const void *)(row + z));
        lo = _mm512_min_epi16(lo, raw); /* on the bits: see below */
        __mmask32 gt = _mm512_cmpgt_epi16_mask(raw, hi);
        hi = _mm512_mask_mov_epi16(hi, gt, raw);
        step = _mm512_mask_mov_epi16(step, gt, here);
        here = _mm512_add_epi16(here, one);
        __m512 v = _mm512_cvtph_ps(_mm512_castsi512_si256(raw));
        __m512 w = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(raw, 1));
        s0 = _mm512_add_ps(s0, v);
        s1 = _mm512_add_ps(s1, w);
        __m512i iv = _mm512_cvtps_epi32(_mm512_mul_ps(v, scale));
        __m512i iw = _mm512_cvtps_epi32(_mm512_mul_ps(w, scale));
        _mm512_storeu_si512((void *)(prow + z),
                            _mm512_add_epi32(_mm512_loadu_si512((const void *)(prow + z)), iv));
        _mm512_storeu_si512(
            (void *)(prow + z + 16),
            _mm512_add_epi32(_mm512_loadu_si512((const void *)(prow + z + 16)), iw));
    }
    if (z < n) {
        __mmask32 m = n - z >= 32 ? 0xffffffffu : (__mmask32)((1u << (n - z)) - 1u);
        __m512i raw = _mm512_maskz_loadu_epi16(m, row + z);
        lo = _mm512_mask_min_epi16(lo, m, lo, raw);
        __mmask32 gt = _mm512_mask_cmpgt_epi16_mask(m, raw, hi);
        hi = _mm512_mask_mov_epi16(hi, gt, raw);
        step = _mm512_mask_mov_epi16(step, gt, here);
        __m512 v = _mm512_cvtph_ps(_mm512_castsi512_si256(raw));
        __m512 w = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(raw, 1));
        s0 = _mm512_add_ps(s0, v);
        s1 = _mm512_add_ps(s1, w);
        __mmask16 m0 = (__mmask16)m, m1 = (__mmask16)(m >> 16);
        __m512i iv = _mm512_cvtps_epi32(_mm512_mul_ps(v, scale));
        __m512i iw = _mm512_cvtps_epi32(_mm512_mul_ps(w, scale));
        _mm512_mask_storeu_epi32(prow + z, m0,
                                 _mm512_add_epi32(_mm512_maskz_loadu_epi32(m0, prow + z), iv));
        if (m1)
            _mm512_mask_storeu_epi32(
                prow + z + 16, m1,
                _mm512_add_epi32(_mm512_maskz_loadu_epi32(m1, prow + z + 16), iw));
    }
    /* The sum in float has a relative error below n 2^-24; only within that of the
       tolerance is it taken again in double, as every other path takes it. */
    double s = (double)_mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
    double slack = (fabs(s) + 1.0) * (double)(n + 2) * 1.2e-7;
    int nonfinite = 0;
    if (!isfinite(s))
        for (z = 0; z < n && !nonfinite; z++) nonfinite = !isfinite(half_to_float(row[z]));
    else if (fabs(fabs(s - 1.0) - tol) <= slack) {
        s = 0.0;
        for (z = 0; z < n; z++) s += (double)half_to_float(row[z]);
    }
    /* On the bits, as signed 16-bit integers, non-negative halves order as their values
       and any half with its sign bit set is negative: only then is the minimum needed
       (-0.0 is not negative). */
    double low = 0.0;
    if (_mm512_movepi16_mask(lo)) {
        low = half_to_float(row[0]);
        for (z = 1; z < n; z++) {
            double x = half_to_float(row[z]);
            low = x < low ? x : low;
        }
    }
    int status = lf_status(s, low, tol, nonfinite);
    if (status == LEEPFAST_OK) {
        /* the lanes holding the maximum; of them, the earliest step, then lane */
        __mmask32 top = _mm512_cmpeq_epi16_mask(
            hi, _mm512_set1_epi16((short)lf_hmax_epi16_nonneg(hi)));
        unsigned first =
            lf_hmin_epu16(_mm512_mask_mov_epi16(_mm512_set1_epi16(-1), top, step));
        __mmask32 lanes = top & _mm512_cmpeq_epi16_mask(step, _mm512_set1_epi16((short)first));
        *argmax = (int64_t)first * 32 + __builtin_ctz(lanes);
    }
    return status;
}

/* The partial of one class into its float64 joint row, exactly; the partial is zeroed. */
LF_TARGET_AVX512 static void lf_flush_fixed(int32_t *prow, double *jrow, int64_t n)
{
    const __m512d unit = _mm512_set1_pd(5.9604644775390625e-08); /* 2^-24 */
    for (int64_t z = 0; z < n; z += 8) {
        __mmask8 m = tail8(n - z);
        __m512d p = _mm512_mul_pd(
            _mm512_cvtepi32_pd(_mm256_maskz_loadu_epi32(m, prow + z)), unit);
        add8_pd(jrow + z, p, m);
        _mm256_mask_storeu_epi32(prow + z, m, _mm256_setzero_si256());
    }
}

/* Pass 1 over a float16 probability block in fixed point, with partials: n_target *
   (n_source + 1) int32 of workspace. */
LF_TARGET_AVX512 static int acc_block_fixed_f16(const uint16_t *predictions,
                                                const int64_t *labels, int64_t n_rows,
                                                int64_t n_source, int64_t n_target,
                                                double tol, double *joint, int64_t *hard,
                                                int64_t *counts, int32_t *partials,
                                                int64_t *bad_row)
{
    int32_t *part = partials, *rows_in = partials + n_target * n_source;
    memset(partials, 0, (size_t)(n_target * (n_source + 1)) * sizeof(int32_t));
    int status = LEEPFAST_OK;
    lf_hard_queue pending = LF_HARD_QUEUE_INIT;
    for (int64_t i = 0; i < n_rows; i++) {
        int64_t y = labels[i], argmax = 0;
        if (y < 0 || y >= n_target) {
            status = LEEPFAST_ERR_LABEL;
        } else {
            int32_t *prow = part + y * n_source;
            status = acc_row_fixed_f16(predictions + i * n_source, n_source, tol, prow,
                                       &argmax);
            if (status == LEEPFAST_OK && ++rows_in[y] == LF_FIXED_ROWS) {
                lf_flush_fixed(prow, joint + y * n_source, n_source);
                rows_in[y] = 0;
            }
        }
        if (status != LEEPFAST_OK) {
            if (bad_row) *bad_row = i;
            break;
        }
        lf_hard_push(&pending, hard + y * n_source + argmax);
        counts[y] += 1;
    }
    lf_hard_flush(&pending);
    if (status == LEEPFAST_OK)
        for (int64_t y = 0; y < n_target; y++)
            if (rows_in[y]) lf_flush_fixed(part + y * n_source, joint + y * n_source, n_source);
    return status;
}
#endif /* LF_AVX512 */

/* float16 blocks: each row is converted exactly to float32 in the scratch space (whose
   second half holds it), then takes the float32 path. */
int leepfast_accumulate_f16(const uint16_t *predictions, const int64_t *labels,
                            int64_t n_rows, int64_t n_source, int64_t n_target,
                            int is_logits, double tol, double *joint, int64_t *hard,
                            int64_t *counts, double *scratch, int64_t *bad_row)
{
    if (!predictions || !labels || !joint || !hard || !counts || !scratch)
        return LEEPFAST_ERR_NULL;
    if (n_rows < 0 || n_source <= 0 || n_target <= 0) return LEEPFAST_ERR_SIZE;
    float *row = (float *)(scratch + n_source); /* scratch[0, Z) is for softmax */
    void (*to_float)(const uint16_t *, int64_t, float *) =
        LF_PICK(half_row_to_float_f16c, half_row_to_float_f16c, half_row_to_float);
    /* with AVX2 + F16C (or AVX-512), probabilities are converted in registers */
    int (*fused)(const uint16_t *, int64_t, double, double *, int64_t *) = NULL;
    if (!is_logits) fused = LF_PICK(acc_row_avx512_f16, acc_row_avx2_f16, fused);
    lf_hard_queue pending = LF_HARD_QUEUE_INIT;
    int status = LEEPFAST_OK;
    for (int64_t i = 0; i < n_rows && status == LEEPFAST_OK; i++) {
        int64_t y = labels[i];
        if (y < 0 || y >= n_target) {
            status = LEEPFAST_ERR_LABEL;
        } else if (fused) {
            int64_t argmax = 0;
            status = fused(predictions + i * n_source, n_source, tol, joint + y * n_source,
                           &argmax);
            if (status == LEEPFAST_OK) {
                lf_hard_push(&pending, hard + y * n_source + argmax);
                counts[y] += 1;
            }
        } else {
            to_float(predictions + i * n_source, n_source, row);
            status = leepfast_accumulate_f32(row, labels + i, 1, n_source, n_target,
                                             is_logits, tol, joint, hard, counts, scratch,
                                             NULL);
        }
        if (status != LEEPFAST_OK && bad_row) *bad_row = i;
    }
    lf_hard_flush(&pending);
    return status;
}

/*
 * For the Python package's driver (not in leepfast.h: the public primitives allocate
 * nothing and take no workspace): pass 1 over a float16 block with a workspace of
 * leepfast_f16_partials(...) int32, in fixed point when that is not 0 (AVX-512, small
 * enough a state, long enough a block; see acc_block_fixed_f16), else (or with a NULL
 * workspace) as leepfast_accumulate_f16. Same statuses and results, to rounding: the
 * joint gets exact sums of up to LF_FIXED_ROWS rows of a class.
 */
int64_t leepfast_f16_partials(int64_t n_rows, int64_t n_source, int64_t n_target,
                              int is_logits, double tol);
int leepfast_accumulate_f16_partials(const uint16_t *predictions, const int64_t *labels,
                                     int64_t n_rows, int64_t n_source, int64_t n_target,
                                     int is_logits, double tol, double *joint,
                                     int64_t *hard, int64_t *counts, double *scratch,
                                     int32_t *partials, int64_t *bad_row);

int64_t leepfast_f16_partials(int64_t n_rows, int64_t n_source, int64_t n_target,
                              int is_logits, double tol)
{
#if LF_AVX512
    if (!is_logits && n_source > 0 && n_target > 0 &&
        lf_fixed_pays(n_rows, n_source, n_target, tol))
        return n_target * (n_source + 1);
#else
    (void)n_rows, (void)n_source, (void)n_target, (void)is_logits, (void)tol;
#endif
    return 0;
}

int leepfast_accumulate_f16_partials(const uint16_t *predictions, const int64_t *labels,
                                     int64_t n_rows, int64_t n_source, int64_t n_target,
                                     int is_logits, double tol, double *joint,
                                     int64_t *hard, int64_t *counts, double *scratch,
                                     int32_t *partials, int64_t *bad_row)
{
#if LF_AVX512
    if (partials && predictions && labels && joint && hard && counts &&
        leepfast_f16_partials(n_rows, n_source, n_target, is_logits, tol) > 0)
        return acc_block_fixed_f16(predictions, labels, n_rows, n_source, n_target, tol,
                                   joint, hard, counts, partials, bad_row);
#else
    (void)partials;
#endif
    return leepfast_accumulate_f16(predictions, labels, n_rows, n_source, n_target,
                                   is_logits, tol, joint, hard, counts, scratch, bad_row);
}

int leepfast_score_f16(const uint16_t *predictions, const int64_t *labels,
                       int64_t n_rows, int64_t n_source, int64_t n_target,
                       int is_logits, const double *conditional, double *scratch,
                       double *sum, int64_t *bad_row)
{
    if (!predictions || !labels || !conditional || !scratch || !sum)
        return LEEPFAST_ERR_NULL;
    if (n_rows < 0 || n_source <= 0 || n_target <= 0) return LEEPFAST_ERR_SIZE;
    float *row = (float *)(scratch + n_source);
    void (*to_float)(const uint16_t *, int64_t, float *) =
        LF_PICK(half_row_to_float_f16c, half_row_to_float_f16c, half_row_to_float);
    double (*fused)(const uint16_t *, int64_t, const double *) = NULL;
    if (!is_logits) fused = LF_PICK(dot_row_avx512_f16, dot_row_avx2_f16, fused);
    double total = 0.0; /* rows taken through the float32 path */
    lf_logsum acc = LF_LOGSUM_INIT; /* rows of the fused path */
    for (int64_t i = 0; i < n_rows; i++) {
        int64_t y = labels[i];
        int status;
        if (y < 0 || y >= n_target) {
            if (bad_row) *bad_row = i;
            return LEEPFAST_ERR_LABEL;
        }
        if (fused) {
            double p = fused(predictions + i * n_source, n_source,
                             conditional + y * n_source);
            status = p > 0.0 && isfinite(p) ? LEEPFAST_OK : LEEPFAST_ERR_ZERO_PROB;
            if (status == LEEPFAST_OK) lf_logsum_add(&acc, p);
        } else {
            to_float(predictions + i * n_source, n_source, row);
            status = leepfast_score_f32(row, labels + i, 1, n_source, n_target, is_logits,
                                        conditional, scratch, &total, NULL);
        }
        if (status != LEEPFAST_OK) {
            if (bad_row) *bad_row = i;
            return status;
        }
    }
    *sum += total + lf_logsum_value(&acc);
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

const char *leepfast_simd(void)
{
    switch (lf_simd_level()) {
    case LF_LEVEL_AVX512: return "avx512";
    case LF_LEVEL_AVX2: return "avx2";
    default: return LF_SSE2 ? "sse2" : "scalar";
    }
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
