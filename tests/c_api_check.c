/*
 * c_api_check: the test driver of tests/test_c_api.py for leepfast's C API. Links only
 * the shipped C sources (leepfast.c, leepfast_api.c). Modes:
 *
 *   c_api_check version
 *       "MAJOR MINOR PATCH NUMBER STRING" from the header's macros.
 *   c_api_check strerror
 *       "code<TAB>message" for codes -1..9.
 *   c_api_check call FUNC PRED LABELS N_SAMPLES N_SOURCE N_TARGET [NULLARG]
 *       FUNC is one of the whole-array functions without its "leepfast_" prefix
 *       (leep_f32, nce_logits_bf16, ...); PRED raw native-endian values of FUNC's type,
 *       LABELS raw int64; NULLARG (predictions, labels or out) is passed as NULL.
 *       Prints "ok <value>" or "status <code> <untouched|WRITTEN> <strerror>", where
 *       untouched means the output kept its sentinel.
 *   c_api_check stream TYPE PRED LABELS N_SAMPLES N_SOURCE N_TARGET N_BLOCKS IS_LOGITS
 *       The streaming primitives: every block accumulated into a zeroed block state,
 *       leepfast_merge'd into the total, then conditional, nce_from_counts, and score per
 *       block into its own sum. Prints "ok <leep> <nce>" or "status <code> <strerror>".
 *   c_api_check edges
 *       Bad arguments to leepfast_merge and leepfast_nce_from_counts: one line
 *       "<case> <status> <untouched|WRITTEN>" each.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "leepfast.h"

#define LF_BF16 116 /* the stream mode's type number of bf16 */

typedef int (*fn_f16)(const uint16_t *, const int64_t *, int64_t, int64_t, int64_t,
                      double *);
typedef int (*fn_f32)(const float *, const int64_t *, int64_t, int64_t, int64_t,
                      double *);
typedef int (*fn_f64)(const double *, const int64_t *, int64_t, int64_t, int64_t,
                      double *);

struct entry {
    const char *name;
    fn_f16 f16; /* float16 or bfloat16 bits */
    fn_f32 f32;
    fn_f64 f64;
};

static const struct entry ENTRIES[] = {
    {"leep_f16", leepfast_leep_f16, NULL, NULL},
    {"leep_f32", NULL, leepfast_leep_f32, NULL},
    {"leep_f64", NULL, NULL, leepfast_leep_f64},
    {"nce_f16", leepfast_nce_f16, NULL, NULL},
    {"nce_f32", NULL, leepfast_nce_f32, NULL},
    {"nce_f64", NULL, NULL, leepfast_nce_f64},
    {"leep_logits_f16", leepfast_leep_logits_f16, NULL, NULL},
    {"leep_logits_f32", NULL, leepfast_leep_logits_f32, NULL},
    {"leep_logits_f64", NULL, NULL, leepfast_leep_logits_f64},
    {"nce_logits_f16", leepfast_nce_logits_f16, NULL, NULL},
    {"nce_logits_f32", NULL, leepfast_nce_logits_f32, NULL},
    {"nce_logits_f64", NULL, NULL, leepfast_nce_logits_f64},
    {"leep_bf16", leepfast_leep_bf16, NULL, NULL},
    {"nce_bf16", leepfast_nce_bf16, NULL, NULL},
    {"leep_logits_bf16", leepfast_leep_logits_bf16, NULL, NULL},
    {"nce_logits_bf16", leepfast_nce_logits_bf16, NULL, NULL},
};

static void *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *data = malloc(size > 0 ? (size_t)size : 1);
    if (data && size > 0 && fread(data, 1, (size_t)size, f) != (size_t)size) {
        free(data);
        data = NULL;
    }
    fclose(f);
    return data;
}

static int call(int argc, char **argv)
{
    if (argc < 8) return 64;
    const struct entry *e = NULL;
    for (size_t k = 0; k < sizeof ENTRIES / sizeof ENTRIES[0]; k++)
        if (strcmp(ENTRIES[k].name, argv[2]) == 0) e = &ENTRIES[k];
    if (!e) return 64;
    void *pred = slurp(argv[3]);
    int64_t *labels = (int64_t *)slurp(argv[4]);
    if (!pred || !labels) return 65;
    int64_t n_samples = strtoll(argv[5], NULL, 10), n_source = strtoll(argv[6], NULL, 10),
            n_target = strtoll(argv[7], NULL, 10);
    const char *null_arg = argc > 8 ? argv[8] : "";
    const double sentinel = 12345.5;
    double out = sentinel;
    const void *p = strcmp(null_arg, "predictions") == 0 ? NULL : pred;
    const int64_t *l = strcmp(null_arg, "labels") == 0 ? NULL : labels;
    double *o = strcmp(null_arg, "out") == 0 ? NULL : &out;
    int status;
    if (e->f16)
        status = e->f16((const uint16_t *)p, l, n_samples, n_source, n_target, o);
    else if (e->f32)
        status = e->f32((const float *)p, l, n_samples, n_source, n_target, o);
    else
        status = e->f64((const double *)p, l, n_samples, n_source, n_target, o);
    if (status == LEEPFAST_OK)
        printf("ok %.17g\n", out);
    else
        printf("status %d %s %s\n", status, out == sentinel ? "untouched" : "WRITTEN",
               leepfast_strerror(status));
    free(labels);
    free(pred);
    return 0;
}

static int accumulate(int type, const char *pred, const int64_t *labels, int64_t n_rows,
                      int64_t n_source, int64_t n_target, int is_logits, double *joint,
                      int64_t *hard, int64_t *counts, double *scratch)
{
    if (type == LF_BF16)
        return leepfast_accumulate_bf16((const uint16_t *)pred, labels, n_rows, n_source,
                                        n_target, is_logits, LEEPFAST_TOL_BF16, joint,
                                        hard, counts, scratch, NULL);
    if (type == 16)
        return leepfast_accumulate_f16((const uint16_t *)pred, labels, n_rows, n_source,
                                       n_target, is_logits, LEEPFAST_TOL_F16, joint, hard,
                                       counts, scratch, NULL);
    if (type == 32)
        return leepfast_accumulate_f32((const float *)pred, labels, n_rows, n_source,
                                       n_target, is_logits, LEEPFAST_TOL_F32, joint, hard,
                                       counts, scratch, NULL);
    return leepfast_accumulate_f64((const double *)pred, labels, n_rows, n_source,
                                   n_target, is_logits, LEEPFAST_TOL_F64, joint, hard,
                                   counts, scratch, NULL);
}

static int score(int type, const char *pred, const int64_t *labels, int64_t n_rows,
                 int64_t n_source, int64_t n_target, int is_logits,
                 const double *conditional, double *scratch, double *sum)
{
    if (type == LF_BF16)
        return leepfast_score_bf16((const uint16_t *)pred, labels, n_rows, n_source,
                                   n_target, is_logits, conditional, scratch, sum, NULL);
    if (type == 16)
        return leepfast_score_f16((const uint16_t *)pred, labels, n_rows, n_source,
                                  n_target, is_logits, conditional, scratch, sum, NULL);
    if (type == 32)
        return leepfast_score_f32((const float *)pred, labels, n_rows, n_source, n_target,
                                  is_logits, conditional, scratch, sum, NULL);
    return leepfast_score_f64((const double *)pred, labels, n_rows, n_source, n_target,
                              is_logits, conditional, scratch, sum, NULL);
}

static int stream(int argc, char **argv)
{
    if (argc < 10) return 64;
    int type = argv[2][0] == 'b' ? LF_BF16 : atoi(argv[2] + 1); /* bf16, f16, f32, f64 */
    size_t itemsize = type == 16 || type == LF_BF16 ? 2 : type == 32 ? 4 : 8;
    const char *pred = (const char *)slurp(argv[3]);
    int64_t *labels = (int64_t *)slurp(argv[4]);
    if (!pred || !labels) return 65;
    int64_t n = strtoll(argv[5], NULL, 10), z = strtoll(argv[6], NULL, 10),
            y = strtoll(argv[7], NULL, 10), n_blocks = strtoll(argv[8], NULL, 10);
    int is_logits = atoi(argv[9]);
    size_t cells = (size_t)(y * z);
    double *joint = (double *)calloc(cells, sizeof(double));
    double *block_joint = (double *)calloc(cells, sizeof(double));
    double *conditional = (double *)calloc(cells, sizeof(double));
    int64_t *hard = (int64_t *)calloc(cells, sizeof(int64_t));
    int64_t *block_hard = (int64_t *)calloc(cells, sizeof(int64_t));
    int64_t *counts = (int64_t *)calloc((size_t)y, sizeof(int64_t));
    int64_t *block_counts = (int64_t *)calloc((size_t)y, sizeof(int64_t));
    double *scratch = (double *)calloc((size_t)LEEPFAST_SCRATCH(z), sizeof(double));
    int64_t rows = (n + n_blocks - 1) / n_blocks;
    int status = LEEPFAST_OK;
    double total = 0.0, nce = 0.0;
    for (int64_t start = 0; start < n && status == LEEPFAST_OK; start += rows) {
        int64_t m = n - start < rows ? n - start : rows;
        memset(block_joint, 0, cells * sizeof(double));
        memset(block_hard, 0, cells * sizeof(int64_t));
        memset(block_counts, 0, (size_t)y * sizeof(int64_t));
        status = accumulate(type, pred + (size_t)(start * z) * itemsize, labels + start, m,
                            z, y, is_logits, block_joint, block_hard, block_counts,
                            scratch);
        if (status == LEEPFAST_OK)
            status = leepfast_merge(joint, hard, counts, block_joint, block_hard,
                                    block_counts, y, z);
    }
    if (status == LEEPFAST_OK) status = leepfast_conditional(joint, y, z, conditional);
    if (status == LEEPFAST_OK) status = leepfast_nce_from_counts(hard, y, z, &nce);
    for (int64_t start = 0; start < n && status == LEEPFAST_OK; start += rows) {
        int64_t m = n - start < rows ? n - start : rows;
        double block_sum = 0.0;
        status = score(type, pred + (size_t)(start * z) * itemsize, labels + start, m, z, y,
                       is_logits, conditional, scratch, &block_sum);
        total += block_sum;
    }
    int64_t seen = 0;
    for (int64_t k = 0; k < y; k++) seen += counts[k];
    if (status == LEEPFAST_OK && seen != n) status = -1;
    /* pass 1 of the whole array with hard = NULL (no pair counts, no argmax) against
       the same with them: the same joint and class counts, bit for bit */
    int same = 0;
    if (status == LEEPFAST_OK) {
        memset(joint, 0, cells * sizeof(double));
        memset(hard, 0, cells * sizeof(int64_t));
        memset(counts, 0, (size_t)y * sizeof(int64_t));
        memset(block_joint, 0, cells * sizeof(double));
        memset(block_counts, 0, (size_t)y * sizeof(int64_t));
        int a = accumulate(type, pred, labels, n, z, y, is_logits, joint, hard, counts,
                           scratch);
        int b = accumulate(type, pred, labels, n, z, y, is_logits, block_joint, NULL,
                           block_counts, scratch);
        same = a == LEEPFAST_OK && b == LEEPFAST_OK &&
               memcmp(joint, block_joint, cells * sizeof(double)) == 0 &&
               memcmp(counts, block_counts, (size_t)y * sizeof(int64_t)) == 0;
    }
    if (status == LEEPFAST_OK)
        printf("ok %.17g %.17g %s\n", total / (double)n, nce,
               same ? "pairs-free-same" : "pairs-free-DIFFERS");
    else
        printf("status %d %s\n", status, leepfast_strerror(status));
    free(scratch);
    free(block_counts);
    free(counts);
    free(block_hard);
    free(hard);
    free(conditional);
    free(block_joint);
    free(joint);
    free(labels);
    free((void *)pred);
    return 0;
}

static int edges(void)
{
    /* a 2 x 3 state; merging into it or computing NCE must leave outputs untouched */
    double joint[6] = {1, 2, 3, 4, 5, 6}, other[6] = {1, 1, 1, 1, 1, 1};
    int64_t hard[6] = {1, 0, 2, 0, 3, 0}, hard_other[6] = {0};
    int64_t counts[2] = {3, 3}, counts_other[2] = {0};
    int64_t negative[6] = {1, -1, 2, 0, 3, 0}, zero[6] = {0};
    const double sentinel = 12345.5;
    double nce = sentinel;
#define MERGE_CASE(name, j, h, c, jo, ho, co, y, z)                                    \
    do {                                                                             \
        int st = leepfast_merge(j, h, c, jo, ho, co, y, z);                          \
        int same = joint[0] == 1 && hard[0] == 1 && counts[0] == 3;                  \
        printf("%s %d %s\n", name, st, same ? "untouched" : "WRITTEN");              \
    } while (0)
    MERGE_CASE("merge_null_joint", NULL, hard, counts, other, hard_other, counts_other, 2, 3);
    MERGE_CASE("merge_null_hard", joint, NULL, counts, other, hard_other, counts_other, 2, 3);
    MERGE_CASE("merge_null_counts", joint, hard, NULL, other, hard_other, counts_other, 2, 3);
    MERGE_CASE("merge_null_other", joint, hard, counts, NULL, hard_other, counts_other, 2, 3);
    MERGE_CASE("merge_null_hard_other", joint, hard, counts, other, NULL, counts_other, 2, 3);
    MERGE_CASE("merge_null_counts_other", joint, hard, counts, other, hard_other, NULL, 2, 3);
    MERGE_CASE("merge_zero_target", joint, hard, counts, other, hard_other, counts_other, 0, 3);
    MERGE_CASE("merge_zero_source", joint, hard, counts, other, hard_other, counts_other, 2, 0);
    MERGE_CASE("merge_negative_size", joint, hard, counts, other, hard_other, counts_other, -2, 3);
#undef MERGE_CASE
#define NCE_CASE(name, h, y, z, out)                                                   \
    do {                                                                             \
        int st = leepfast_nce_from_counts(h, y, z, out);                             \
        printf("%s %d %s\n", name, st, nce == sentinel ? "untouched" : "WRITTEN");   \
    } while (0)
    NCE_CASE("nce_null_counts", NULL, 2, 3, &nce);
    NCE_CASE("nce_null_out", hard, 2, 3, NULL);
    NCE_CASE("nce_zero_target", hard, 0, 3, &nce);
    NCE_CASE("nce_zero_source", hard, 2, 0, &nce);
    NCE_CASE("nce_no_counts", zero, 2, 3, &nce);
    NCE_CASE("nce_negative_count", negative, 2, 3, &nce);
#undef NCE_CASE
    /* and a valid merge doubles the state when other is the state itself */
    int st = leepfast_merge(joint, hard, counts, joint, hard, counts, 2, 3);
    printf("merge_self %d %g %lld %lld\n", st, joint[5], (long long)hard[4],
           (long long)counts[1]);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "version") == 0) {
        printf("%d %d %d %d %s\n", LEEPFAST_VERSION_MAJOR, LEEPFAST_VERSION_MINOR,
               LEEPFAST_VERSION_PATCH, LEEPFAST_VERSION_NUMBER, LEEPFAST_VERSION_STRING);
        return 0;
    }
    if (argc >= 2 && strcmp(argv[1], "strerror") == 0) {
        for (int code = -1; code <= 9; code++)
            printf("%d\t%s\n", code, leepfast_strerror(code));
        return 0;
    }
    if (argc >= 2 && strcmp(argv[1], "simd") == 0) {
        printf("%s\n", leepfast_simd());
        return 0;
    }
    if (argc >= 2 && strcmp(argv[1], "call") == 0) return call(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "stream") == 0) return stream(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "edges") == 0) return edges();
    fprintf(stderr, "usage: see the comment at the top of c_api_check.c\n");
    return 64;
}
