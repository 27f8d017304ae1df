/* The float16 fixed-point pass 1 (leepfast_accumulate_f16_partials, internal) at the
   AVX2 and AVX-512 caps against the plain float16 pass at the scalar level: the same
   joint (to 1e-12), the same hard counts (argmax ties: lowest index), the same status
   and row for a bad value in a row's vector part and in its tail. Built by
   tests/test_c_api.py with AddressSanitizer and UndefinedBehaviorSanitizer; prints
   "ok" and exits 0, or names the first case that differs and exits 1. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "leepfast.h"
#include "leepfast_internal.h"

static uint16_t to_half(double x) /* round to nearest even; x in [0, 2) */
{
    if (x == 0.0) return 0;
    int e;
    double m = frexp(x, &e); /* x = m 2^e, m in [0.5, 1) */
    if (e < -13) {           /* subnormal: multiples of 2^-24 */
        return (uint16_t)nearbyint(x * 16777216.0);
    }
    double bits = nearbyint((m * 2.0 - 1.0) * 1024.0); /* 10 fraction bits */
    int ex = e - 1 + 15;
    if (bits >= 1024.0) bits = 0.0, ex += 1;
    return (uint16_t)((ex << 10) | (int)bits);
}

static int one_case(int64_t n_source, int level, unsigned seed)
{
    const int64_t n = 1600, n_target = 3;
    uint16_t *p = malloc((size_t)(n * n_source) * 2);
    int64_t *y = malloc((size_t)n * 8);
    double *raw = malloc((size_t)n_source * 8);
    srand(seed);
    for (int64_t i = 0; i < n; i++) {
        double s = 0.0;
        for (int64_t z = 0; z < n_source; z++) raw[z] = 1.0 + rand() % 1000;
        if (i % 7 == 0) raw[1] = raw[n_source - 1] = 2000.0; /* a tied maximum */
        for (int64_t z = 0; z < n_source; z++) s += raw[z];
        for (int64_t z = 0; z < n_source; z++) p[i * n_source + z] = to_half(raw[z] / s);
        y[i] = rand() % n_target;
    }
    int64_t cells = n_target * n_source, n_part = leepfast_f16_partials(
        n, n_source, n_target, 0, LEEPFAST_TOL_F16, level);
    int32_t *part = malloc((size_t)(n_part > 0 ? n_part : 1) * 4);
    double *j1 = calloc((size_t)cells, 8), *j2 = calloc((size_t)cells, 8);
    double *scratch = calloc((size_t)(2 * n_source + 16), 8);
    int64_t *h1 = calloc((size_t)cells, 8), *h2 = calloc((size_t)cells, 8);
    int64_t *c1 = calloc((size_t)n_target, 8), *c2 = calloc((size_t)n_target, 8);
    int64_t b1 = -1, b2 = -1, column[2] = {5, n_source - 1};
    int bad = n_part <= 0; /* the fixed-point pass must run for these blocks */
    int s1 = leepfast_accumulate_f16_partials(p, y, n, n_source, n_target, 0,
                                              LEEPFAST_TOL_F16, j1, h1, c1, scratch, part,
                                              &b1, level);
    int s2 = leepfast_accumulate_simd_f16(p, y, n, n_source, n_target, 0, LEEPFAST_TOL_F16,
                                          j2, h2, c2, scratch, &b2, LEEPFAST_SIMD_SCALAR);
    bad |= s1 != LEEPFAST_OK || s2 != LEEPFAST_OK;
    for (int64_t k = 0; k < cells; k++)
        bad |= fabs(j1[k] - j2[k]) > 1e-12 * fabs(j2[k]) || h1[k] != h2[k];
    for (int c = 0; c < 2 && !bad; c++) { /* a negative value: vector part, then tail */
        uint16_t kept = p[1234 * n_source + column[c]];
        p[1234 * n_source + column[c]] = 0xb400; /* -0.25 */
        b1 = -1;
        s1 = leepfast_accumulate_f16_partials(p, y, n, n_source, n_target, 0,
                                              LEEPFAST_TOL_F16, j1, h1, c1, scratch, part,
                                              &b1, level);
        bad |= s1 != LEEPFAST_ERR_NEGATIVE || b1 != 1234;
        p[1234 * n_source + column[c]] = kept;
    }
    if (bad)
        printf("differs: n_source %lld, level %d, partials %lld\n", (long long)n_source,
               level, (long long)n_part);
    free(p), free(y), free(raw), free(part), free(j1), free(j2), free(scratch);
    free(h1), free(h2), free(c1), free(c2);
    return bad;
}

int main(void)
{
    const int levels[2] = {LEEPFAST_SIMD_AVX2, LEEPFAST_SIMD_AVX512};
    for (int l = 0; l < 2; l++)
        for (int64_t z = 17; z <= 100; z += 7)
            if (one_case(z, levels[l], (unsigned)(z * 31 + l))) return 1;
    puts("ok");
    return 0;
}
