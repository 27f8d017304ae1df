/* leepfast.c: the portable C99 core (see leepfast.h). No Python, no mutable globals.
 *
 * SIMD levels are a table of row kernels (lf_levels below), one file per level:
 * leepfast_scalar.inc (portable C, per element type), leepfast_sse2.inc,
 * leepfast_avx2.inc (AVX2 + FMA + F16C) and leepfast_avx512.inc (F, BW, VL). A block
 * call picks its row once: the lower of the caller's cap and the best level this build
 * runs on this CPU (leepfast_simd_level). Compile-time: SSE2 unless LEEPFAST_NO_SIMD;
 * AVX2 and AVX-512 with GCC or Clang on x86-64 through target attributes (never
 * -march=native), unless LEEPFAST_NO_AVX2 / LEEPFAST_NO_AVX512.
 */
#include "leepfast.h"
#include "leepfast_internal.h"

#include <float.h>
#include <math.h>
#include <stddef.h>
#include <string.h>

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
#else
#define LF_AVX512 0
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

/* The same sum, renormalised only when the product leaves [2^-64, 2^64]: a term
   p in [1e-280, 2^900] (about [2^-930, 2^900]) then keeps it normal and finite
   (within [2^-994, 2^964]), and the chain from one row to the next is one
   multiplication (the rows of at most 16 values, where the bit operations of
   lf_logsum_add on every row were a third of pass 2). Terms outside that range take
   the direct log: above it, a product near 2^64 times a term near 1e300 had
   overflowed to infinity, whose bits then read as a finite wrong sum (709.78 for
   713.80; pass-2 terms above 1 come from a conditional made by the caller). Exactly
   the products of lf_logsum_add: scaling by a power of two rounds nothing. */
static inline void lf_logsum_mul(lf_logsum *acc, double p)
{
    if (!(p >= 1e-280 && p <= 0x1p900)) {
        acc->direct += log(p);
        return;
    }
    double m = acc->mantissa * p;
    acc->mantissa = m;
    if (m >= 0x1p-64 && m <= 0x1p64) return;
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
#endif

/* IEEE binary16 bits to float, exactly (subnormals, infinities and NaN included), without
   branches: the exponent and mantissa shifted into place, rebiased; an infinity or NaN
   rebiased once more; a subnormal (or zero) as 2^-14 * (1 + m / 1024) - 2^-14, exact;
   the three chosen by selects. Without F16C (the scalar and SSE2 levels) the branches
   on the exponent had been mispredicted on the small probabilities of wide rows (a
   float16 pass at 4.5x (scalar) and 8.8x (SSE2) the float32 time). */
static inline float half_to_float(uint16_t h)
{
    uint32_t o = (uint32_t)(h & 0x7fffu) << 13, e = o & 0x0f800000u;
    uint32_t normal = o + ((127u - 15u) << 23), special = normal + ((128u - 16u) << 23);
    uint32_t lifted = o + (113u << 23), sub_bits, bits;
    float sub;
    memcpy(&sub, &lifted, sizeof sub);
    sub -= 6.103515625e-05f; /* 2^-14 */
    memcpy(&sub_bits, &sub, sizeof sub_bits);
    bits = e == 0x0f800000u ? special : e == 0 ? sub_bits : normal;
    bits |= (uint32_t)(h & 0x8000u) << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static void half_row_to_float(const uint16_t *row, int64_t n_source, float *out)
{
    for (int64_t z = 0; z < n_source; z++) out[z] = half_to_float(row[z]);
}

/* bfloat16 bits to float: the upper half of a float32, so the bits moved up 16 (exact,
   subnormals, infinities and NaN included). */
static inline float bf16_to_float(uint16_t h)
{
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static void bf16_row_to_float(const uint16_t *row, int64_t n_source, float *out)
{
    for (int64_t z = 0; z < n_source; z++) out[z] = bf16_to_float(row[z]);
}

/*
 * exp(x) for x <= 0 in float64, the scalar one (the scalar level's, and the tails of the
 * vector levels'): x = (64 e + j) ln(2) / 64 + r with |r| <= ln(2) / 128 (k = 64 e + j
 * rounded with the 1.5 * 2^52 shifter, ln(2) / 64 in two parts so that k times the
 * first is exact), exp(r) by its Taylor polynomial of degree 5 (truncation below 4e-17
 * relative), times 2^(j / 64) from the table (correctly rounded, computed in 200-bit
 * arithmetic), times 2^e as two normal powers of two (e down to -1077: the result may
 * be subnormal). Within 2 ulp of exp in tests (4.2e-16 relative); x below -746 gives 0
 * or the smallest subnormal, as exp rounds there. Integer shifts on offset, non-negative
 * values (k >= -68880 here): portable C.
 */
static const double lf_exp2_64[64] = {
    0x1.0000000000000p+0, 0x1.02c9a3e778061p+0, 0x1.059b0d3158574p+0, 0x1.0874518759bc8p+0,
    0x1.0b5586cf9890fp+0, 0x1.0e3ec32d3d1a2p+0, 0x1.11301d0125b51p+0, 0x1.1429aaea92de0p+0,
    0x1.172b83c7d517bp+0, 0x1.1a35beb6fcb75p+0, 0x1.1d4873168b9aap+0, 0x1.2063b88628cd6p+0,
    0x1.2387a6e756238p+0, 0x1.26b4565e27cddp+0, 0x1.29e9df51fdee1p+0, 0x1.2d285a6e4030bp+0,
    0x1.306fe0a31b715p+0, 0x1.33c08b26416ffp+0, 0x1.371a7373aa9cbp+0, 0x1.3a7db34e59ff7p+0,
    0x1.3dea64c123422p+0, 0x1.4160a21f72e2ap+0, 0x1.44e086061892dp+0, 0x1.486a2b5c13cd0p+0,
    0x1.4bfdad5362a27p+0, 0x1.4f9b2769d2ca7p+0, 0x1.5342b569d4f82p+0, 0x1.56f4736b527dap+0,
    0x1.5ab07dd485429p+0, 0x1.5e76f15ad2148p+0, 0x1.6247eb03a5585p+0, 0x1.6623882552225p+0,
    0x1.6a09e667f3bcdp+0, 0x1.6dfb23c651a2fp+0, 0x1.71f75e8ec5f74p+0, 0x1.75feb564267c9p+0,
    0x1.7a11473eb0187p+0, 0x1.7e2f336cf4e62p+0, 0x1.82589994cce13p+0, 0x1.868d99b4492edp+0,
    0x1.8ace5422aa0dbp+0, 0x1.8f1ae99157736p+0, 0x1.93737b0cdc5e5p+0, 0x1.97d829fde4e50p+0,
    0x1.9c49182a3f090p+0, 0x1.a0c667b5de565p+0, 0x1.a5503b23e255dp+0, 0x1.a9e6b5579fdbfp+0,
    0x1.ae89f995ad3adp+0, 0x1.b33a2b84f15fbp+0, 0x1.b7f76f2fb5e47p+0, 0x1.bcc1e904bc1d2p+0,
    0x1.c199bdd85529cp+0, 0x1.c67f12e57d14bp+0, 0x1.cb720dcef9069p+0, 0x1.d072d4a07897cp+0,
    0x1.d5818dcfba487p+0, 0x1.da9e603db3285p+0, 0x1.dfc97337b9b5fp+0, 0x1.e502ee78b3ff6p+0,
    0x1.ea4afa2a490dap+0, 0x1.efa1bee615a27p+0, 0x1.f50765b6e4540p+0, 0x1.fa7c1819e90d8p+0,
};

#define LF_EXP_SHIFTER 6755399441055744.0 /* 1.5 * 2^52 */
#define LF_EXP_64_LN2 92.332482616893658 /* 64 / ln(2) */
#define LF_EXP_LN2_64_HI (6.93147180369123816490e-01 / 64) /* exact times any k */
#define LF_EXP_LN2_64_LO (1.90821492927058770002e-10 / 64)

static inline double lf_exp_tab(double x)
{
    x = x < -746.0 ? -746.0 : x;
    double t = x * LF_EXP_64_LN2 + LF_EXP_SHIFTER, kd = t - LF_EXP_SHIFTER;
    uint64_t k; /* k + 2^20, from the shifter's low bits */
    memcpy(&k, &t, sizeof k);
    k = k - UINT64_C(0x4338000000000000) + (UINT64_C(1) << 20);
    double r = (x - kd * LF_EXP_LN2_64_HI) - kd * LF_EXP_LN2_64_LO;
    double p = 1.0 / 120;
    p = p * r + 1.0 / 24;
    p = p * r + 1.0 / 6;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    uint64_t e = (k >> 6) + 2048 - (UINT64_C(1) << 14); /* e + 2048, in [971, 2048] */
    uint64_t e1 = e >> 1, e2 = e - e1; /* floor(e / 2) + 1024, ceil(e / 2) + 1024 */
    uint64_t b1 = (e1 - 1) << 52, b2 = (e2 - 1) << 52; /* 2^(e1 - 1024), 2^(e2 - 1024) */
    double s1, s2;
    memcpy(&s1, &b1, sizeof s1);
    memcpy(&s2, &b2, sizeof s2);
    return lf_exp2_64[k & 63] * p * s1 * s2;
}

static inline double lf_max_d(double a, double b) { return a > b ? a : b; }

/* Probability rows of at most this many values take the level's small-row block
   functions (acc_small_*, score_small_* in the table), where the level has them. */
#define LF_SMALL_Z 16

/* The levels, lowest first: scalar (every row function per type), then one file each. */
#define LF_T double
#define LF_S f64
#include "leepfast_scalar.inc"

#define LF_T float
#define LF_S f32
#include "leepfast_scalar.inc"

/* Rows of at most LF_SMALL_Z values, portable: the scalar level's, and the SSE2
   level's float16 rows (which otherwise go through a float32 copy one row per call).
   Measured at Z = 10 (CPU time per row, one thread, both passes): scalar float64 33.4
   -> 31.3 ns, float32 36.1 -> 36.4, float16 104 -> 69; at SSE2 its own rows stay faster
   in float32 (32.9 against 36.2 ns) and float64 (27.7 against 31.4). */
#define LF_T double
#define LF_S f64
#define LF_GET(row, z) ((row)[z])
#include "leepfast_small.inc"

#define LF_T float
#define LF_S f32
#define LF_GET(row, z) ((double)(row)[z])
#include "leepfast_small.inc"

#define LF_T uint16_t
#define LF_S f16
#define LF_GET(row, z) ((double)half_to_float((row)[z]))
#include "leepfast_small.inc"

#define LF_T uint16_t
#define LF_S bf16
#define LF_GET(row, z) ((double)bf16_to_float((row)[z]))
#include "leepfast_small.inc"

#if LF_SSE2
#include "leepfast_sse2.inc"
#endif
#if LF_AVX2
#include "leepfast_avx2.inc"
#endif
#if LF_AVX512
#include "leepfast_avx512.inc"
#endif

/* One row of the table: the row kernels of one level. acc_f16 / dot_f16 are NULL where
   the level converts float16 rows to float32 first (with to_float) and takes the f32
   rows. */
typedef struct {
    int (*acc_f32)(const float *, int64_t, double, double *, int64_t *);
    int (*acc_f64)(const double *, int64_t, double, double *, int64_t *);
    int (*acc_f16)(const uint16_t *, int64_t, double, double *, int64_t *);
    double (*dot_f32)(const float *, int64_t, const double *, double *, double *);
    double (*dot_f64)(const double *, int64_t, const double *, double *, double *);
    double (*dot_f16)(const uint16_t *, int64_t, const double *, double *, double *);
    void (*to_float)(const uint16_t *, int64_t, float *);
    /* bfloat16 rows: fused rows (NULL: converted with bf16_to_float, then f32 rows) */
    int (*acc_bf16)(const uint16_t *, int64_t, double, double *, int64_t *);
    double (*dot_bf16)(const uint16_t *, int64_t, const double *, double *, double *);
    void (*bf16_to_float)(const uint16_t *, int64_t, float *);
    /* rows of logits (leepfast_softmax.inc): pass 1, pass 2, each with 2 Z doubles of
       scratch */
    int (*softmax_acc_f32)(const float *, int64_t, double *, double *, int64_t *);
    int (*softmax_acc_f64)(const double *, int64_t, double *, double *, int64_t *);
    int (*softmax_dot_f32)(const float *, int64_t, const double *, double *, double *);
    int (*softmax_dot_f64)(const double *, int64_t, const double *, double *, double *);
    /* blocks of probability rows of at most LF_SMALL_Z values, or NULL (the rows above):
       pass 1 (rows, labels, n_rows, Z, Y, tol, joint, hard, counts, bad_row) and pass 2
       (rows, labels, n_rows, Z, Y, validate, tol, conditional, sum, bad_row) */
    int (*acc_small_f32)(const float *, const int64_t *, int64_t, int64_t, int64_t, double,
                         double *, int64_t *, int64_t *, int64_t *);
    int (*acc_small_f64)(const double *, const int64_t *, int64_t, int64_t, int64_t,
                         double, double *, int64_t *, int64_t *, int64_t *);
    int (*acc_small_f16)(const uint16_t *, const int64_t *, int64_t, int64_t, int64_t,
                         double, double *, int64_t *, int64_t *, int64_t *);
    int (*score_small_f32)(const float *, const int64_t *, int64_t, int64_t, int64_t, int,
                           double, const double *, double *, int64_t *);
    int (*score_small_f64)(const double *, const int64_t *, int64_t, int64_t, int64_t, int,
                           double, const double *, double *, int64_t *);
    int (*score_small_f16)(const uint16_t *, const int64_t *, int64_t, int64_t, int64_t,
                           int, double, const double *, double *, int64_t *);
    int (*acc_small_bf16)(const uint16_t *, const int64_t *, int64_t, int64_t, int64_t,
                          double, double *, int64_t *, int64_t *, int64_t *);
    int (*score_small_bf16)(const uint16_t *, const int64_t *, int64_t, int64_t, int64_t,
                            int, double, const double *, double *, int64_t *);
    /* float16 probability rows added to int32 fixed-point partials, or NULL (pass 1
       then takes acc_f16): (row, Z, tol, partial row, argmax) */
    int (*acc_fixed_f16)(const uint16_t *, int64_t, double, int32_t *, int64_t *);
    /* rows of float16 and bfloat16 logits widened by their scan, or NULL (converted to
       float32 in the scratch space, then the float32 rows) */
    int (*softmax_acc_f16)(const uint16_t *, int64_t, double *, double *, int64_t *);
    int (*softmax_dot_f16)(const uint16_t *, int64_t, const double *, double *, double *);
    int (*softmax_acc_bf16)(const uint16_t *, int64_t, double *, double *, int64_t *);
    int (*softmax_dot_bf16)(const uint16_t *, int64_t, const double *, double *,
                            double *);
} lf_kernels;

/* The row of a level that has every row function, each named <kernel>_<L>_<type>;
   to_float converts float16 rows (for logits). bfloat16 takes the AVX2 level's rows at
   both vector levels (a widening on load; AVX-512 adds nothing to it that pays). */
#define LF_LEVEL_ROW(L, to_float, softmax16)                                               \
    {acc_row_##L##_f32,     acc_row_##L##_f64,     acc_row_##L##_f16,                      \
     dot_row_##L##_f32,     dot_row_##L##_f64,     dot_row_##L##_f16,                      \
     to_float,              acc_row_avx2_bf16,     dot_row_avx2_bf16,                      \
     bf16_row_to_float_avx2, softmax_acc_##L##_f32, softmax_acc_##L##_f64,                 \
     softmax_dot_##L##_f32, softmax_dot_##L##_f64, acc_small_##L##_f32,                    \
     acc_small_##L##_f64,   acc_small_##L##_f16,   score_small_##L##_f32,                  \
     score_small_##L##_f64, score_small_##L##_f16, acc_small_avx2_bf16,                    \
     score_small_avx2_bf16, acc_row_fixed_##L##_f16, softmax16}

/* The 16-bit logits rows of a level: AVX2's; AVX-512 keeps its float32 rows after a
   conversion (its exp is twice as wide; the AVX2 rows were not measured there). */
#define LF_SOFTMAX16_AVX2                                                                  \
    softmax_acc_avx2_f16, softmax_dot_avx2_f16, softmax_acc_avx2_bf16, softmax_dot_avx2_bf16
#define LF_SOFTMAX16_NONE NULL, NULL, NULL, NULL

/* The table, lowest level first. The levels nest (AVX-512 needs AVX2, which needs
   SSE2); those this build has not compiled in are left zero, never picked (lf_level).
   The scalar level has no fused float16 rows, SSE2 no small rows but float16's. */
static const lf_kernels lf_levels[4] = {
    {acc_row_scalar_f32, acc_row_scalar_f64, NULL, dot_row_scalar_f32, dot_row_scalar_f64,
     NULL, half_row_to_float, NULL, NULL, bf16_row_to_float, softmax_acc_scalar_f32,
     softmax_acc_scalar_f64, softmax_dot_scalar_f32, softmax_dot_scalar_f64,
     acc_small_scalar_f32, acc_small_scalar_f64, acc_small_scalar_f16,
     score_small_scalar_f32, score_small_scalar_f64, score_small_scalar_f16,
     acc_small_scalar_bf16, score_small_scalar_bf16, NULL, LF_SOFTMAX16_NONE},
#if LF_SSE2
    {acc_row_sse2_f32, acc_row_sse2_f64, NULL, dot_row_sse2_f32, dot_row_sse2_f64, NULL,
     half_row_to_float_sse2, NULL, NULL, bf16_row_to_float_sse2, softmax_acc_sse2_f32,
     softmax_acc_sse2_f64, softmax_dot_sse2_f32, softmax_dot_sse2_f64, NULL, NULL,
     acc_small_scalar_f16, NULL, NULL, score_small_scalar_f16, acc_small_scalar_bf16,
     score_small_scalar_bf16, NULL, LF_SOFTMAX16_NONE},
#endif
#if LF_AVX2
    LF_LEVEL_ROW(avx2, half_row_to_float_f16c, LF_SOFTMAX16_AVX2),
#endif
#if LF_AVX512
    LF_LEVEL_ROW(avx512, half_row_to_float_f16c, LF_SOFTMAX16_NONE),
#endif
};
#undef LF_LEVEL_ROW
#undef LF_SOFTMAX16_AVX2
#undef LF_SOFTMAX16_NONE

int leepfast_simd_level(void)
{
#if LF_AVX512
    if (lf_have_avx512()) return LEEPFAST_SIMD_AVX512;
#endif
#if LF_AVX2
    if (lf_have_avx2()) return LEEPFAST_SIMD_AVX2;
#endif
    return LF_SSE2 ? LEEPFAST_SIMD_SSE2 : LEEPFAST_SIMD_SCALAR;
}

/* The level a call with this cap runs at: the lower of the cap and the best level. */
static int lf_level(int cap)
{
    int best = leepfast_simd_level();
    if (cap < LEEPFAST_SIMD_SCALAR) return LEEPFAST_SIMD_SCALAR;
    return cap < best ? cap : best;
}

int leepfast_simd_effective(int cap) { return lf_level(cap); }


/* The block functions of each element type (leepfast_kernel.inc). */
#define LF_T double
#define LF_S f64
#include "leepfast_kernel.inc"

#define LF_T float
#define LF_S f32
#include "leepfast_kernel.inc"

/* The rows of a 16-bit type S (float16, bfloat16): with a fused row at the level
   (float16: AVX2 + F16C, AVX-512; bfloat16: AVX2, AVX-512) probabilities are converted
   in registers, and so are logits with a fused softmax row (AVX2); otherwise the row
   is widened exactly to float32 by the level's k->WIDEN in the second half of the
   scratch space (the first holds the softmax) and takes the level's float32 row.
   EXPONENT: the exponent bits of the type (all set: infinity or NaN). */
#define LF_HALF_ROWS(S, WIDEN, EXPONENT)                                                   \
    static int lf_row_acc_##S(const lf_kernels *k, const uint16_t *row, int64_t n_source,  \
                              int is_logits, double tol, double *scratch,                  \
                              double *joint_row, int64_t *argmax)                          \
    {                                                                                      \
        if (!is_logits && k->acc_##S)                                                      \
            return k->acc_##S(row, n_source, tol, joint_row, argmax);                      \
        if (is_logits && k->softmax_acc_##S)                                               \
            return k->softmax_acc_##S(row, n_source, scratch, joint_row, argmax);          \
        float *wide = (float *)(scratch + n_source);                                       \
        k->WIDEN(row, n_source, wide);                                                     \
        return lf_row_acc_f32(k, wide, n_source, is_logits, tol, scratch, joint_row,       \
                              argmax);                                                     \
    }                                                                                      \
                                                                                           \
    static int has_nonfinite_##S(const uint16_t *row, int64_t n_source)                    \
    {                                                                                      \
        for (int64_t z = 0; z < n_source; z++)                                             \
            if ((row[z] & (EXPONENT)) == (EXPONENT)) return 1;                             \
        return 0;                                                                          \
    }                                                                                      \
                                                                                           \
    static int lf_row_dot_##S(const lf_kernels *k, const uint16_t *row, int64_t n_source,  \
                              int is_logits, int validate, double tol,                     \
                              const double *conditional_row, double *scratch, double *p)   \
    {                                                                                      \
        if (!is_logits && k->dot_##S) {                                                    \
            double s = 1.0, lo = 0.0;                                                      \
            *p = k->dot_##S(row, n_source, conditional_row, &s, &lo);                      \
            if (!validate) return LEEPFAST_OK;                                             \
            return lf_status(s, lo, tol,                                                   \
                             !isfinite(s) && has_nonfinite_##S(row, n_source));            \
        }                                                                                  \
        if (is_logits && k->softmax_dot_##S)                                               \
            return k->softmax_dot_##S(row, n_source, conditional_row, scratch, p);         \
        float *wide = (float *)(scratch + n_source);                                       \
        k->WIDEN(row, n_source, wide);                                                     \
        return lf_row_dot_f32(k, wide, n_source, is_logits, validate, tol,                 \
                              conditional_row, scratch, p);                                \
    }

LF_HALF_ROWS(f16, to_float, 0x7c00u)
LF_HALF_ROWS(bf16, bf16_to_float, 0x7f80u)
#undef LF_HALF_ROWS

#define LF_HALF
#define LF_T uint16_t
#define LF_S f16
#include "leepfast_kernel.inc"

#define LF_HALF
#define LF_T uint16_t
#define LF_S bf16
#include "leepfast_kernel.inc"

/*
 * float16 pass 1 in fixed point (AVX2 and AVX-512: each level's acc_row_fixed row,
 * this driver). A half is an integer multiple of 2^-24, so a
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

/* Whether a float16 block takes the fixed-point pass: the level has a fixed-point row
   (AVX2, AVX-512; at AVX2 float16/float32 time went from 0.74-0.85 to 0.60-0.71 with
   it), the rows are
   longer than LF_SMALL_Z (shorter ones have their own block functions), the partials are
   small enough, the block long enough to pay for allocating, zeroing and flushing them,
   and the tolerance small enough that every value of a row that passes is at most
   1 + tol < 1.5, so that 64 of them (times 2^24) stay below 2^31. */
static int lf_fixed_pays(int level, int64_t n_rows, int64_t n_source, int64_t n_target,
                         double tol)
{
    return level >= LEEPFAST_SIMD_AVX2 && tol < 0.5 && n_source > LF_SMALL_Z &&
           n_target * n_source <= LF_FIXED_MAX_CELLS &&
           n_rows >= LF_FIXED_MIN_ROWS_PER_CLASS * n_target;
}

/* The partial of one class into its float64 joint row, exactly; the partial is zeroed.
   Once every LF_FIXED_ROWS rows of a class: portable C (the compiler vectorises it). */
static void lf_flush_fixed(int32_t *prow, double *jrow, int64_t n)
{
    for (int64_t z = 0; z < n; z++) {
        jrow[z] += (double)prow[z] * 5.9604644775390625e-08; /* 2^-24, exact */
        prow[z] = 0;
    }
}

typedef int (*lf_fixed_row)(const uint16_t *, int64_t, double, int32_t *, int64_t *);

/* Pass 1 over a float16 probability block in fixed point with the level's row, with
   partials: n_target * (n_source + 1) int32 of workspace. */
static int lf_acc_block_fixed_f16(lf_fixed_row row_fn, const uint16_t *predictions,
                                  const int64_t *labels, int64_t n_rows, int64_t n_source,
                                  int64_t n_target, double tol, double *joint,
                                  int64_t *hard, int64_t *counts, int32_t *partials,
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
            status = row_fn(predictions + i * n_source, n_source, tol, prow,
                            hard ? &argmax : NULL);
            if (status == LEEPFAST_OK && ++rows_in[y] == LF_FIXED_ROWS) {
                lf_flush_fixed(prow, joint + y * n_source, n_source);
                rows_in[y] = 0;
            }
        }
        if (status != LEEPFAST_OK) {
            if (bad_row) *bad_row = i;
            break;
        }
        if (hard) lf_hard_push(&pending, hard + y * n_source + argmax);
        counts[y] += 1;
    }
    lf_hard_flush(&pending);
    if (status == LEEPFAST_OK)
        for (int64_t y = 0; y < n_target; y++)
            if (rows_in[y])
                lf_flush_fixed(part + y * n_source, joint + y * n_source, n_source);
    return status;
}

int64_t leepfast_f16_partials(int64_t n_rows, int64_t n_source, int64_t n_target,
                              int is_logits, double tol, int simd)
{
    if (!is_logits && n_source > 0 && n_target > 0 &&
        lf_fixed_pays(lf_level(simd), n_rows, n_source, n_target, tol))
        return n_target * (n_source + 1);
    return 0;
}

int leepfast_accumulate_f16_partials(const uint16_t *predictions, const int64_t *labels,
                                     int64_t n_rows, int64_t n_source, int64_t n_target,
                                     int is_logits, double tol, double *joint,
                                     int64_t *hard, int64_t *counts, double *scratch,
                                     int32_t *partials, int64_t *bad_row, int simd)
{
    const lf_kernels *k = &lf_levels[lf_level(simd)];
    if (partials && predictions && labels && joint && counts && k->acc_fixed_f16 &&
        leepfast_f16_partials(n_rows, n_source, n_target, is_logits, tol, simd) > 0)
        return lf_acc_block_fixed_f16(k->acc_fixed_f16, predictions, labels, n_rows,
                                      n_source, n_target, tol, joint, hard, counts,
                                      partials, bad_row);
    return leepfast_accumulate_simd_f16(predictions, labels, n_rows, n_source, n_target,
                                        is_logits, tol, joint, hard, counts, scratch,
                                        bad_row, simd);
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
    return leepfast_simd_name(leepfast_simd_level());
}

const char *leepfast_simd_name(int level)
{
    switch (level) {
    case LEEPFAST_SIMD_SCALAR: return "scalar";
    case LEEPFAST_SIMD_SSE2: return "sse2";
    case LEEPFAST_SIMD_AVX2: return "avx2";
    case LEEPFAST_SIMD_AVX512: return "avx512";
    default: return "unknown";
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

