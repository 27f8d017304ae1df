/*
 * leep_score: LEEP and NCE of a raw float32 prediction dump, with leepfast's C API.
 *
 *   leep_score PREDICTIONS LABELS N_SOURCE [N_TARGET]
 *
 * PREDICTIONS  raw native-endian float32, row-major (n_samples, N_SOURCE): each row the
 *              source model's softmax for one target sample (numpy: arr.astype("float32")
 *              .tofile(path)). n_samples = file size / (4 * N_SOURCE).
 * LABELS       n_samples target labels: a text file with one integer per line, or, if its
 *              name ends in ".i64", raw native-endian int64 (numpy: y.astype("int64")
 *              .tofile(path)).
 * N_TARGET     number of target classes; default max(label) + 1.
 *
 * Prints "leep <value>" and "nce <value>" (17 significant digits); on bad input prints
 * leepfast_strerror's message and exits with status 2. Build: see the Makefile.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "leepfast.h"

/* The whole file in malloc'ed memory; its size in *size. NULL (message printed) on error. */
static void *read_file(const char *path, long *size)
{
    FILE *f = fopen(path, "rb");
    void *data = NULL;
    if (!f) {
        fprintf(stderr, "leep_score: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) == 0 && (*size = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        data = malloc(*size > 0 ? (size_t)*size : 1);
        if (data && fread(data, 1, (size_t)*size, f) != (size_t)*size) {
            free(data);
            data = NULL;
        }
    }
    if (!data) fprintf(stderr, "leep_score: %s: could not read the file\n", path);
    fclose(f);
    return data;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Labels from text (one integer per line) or raw int64 (*.i64); *n_read labels. */
static int64_t *read_labels(const char *path, int64_t n_expected, int64_t *n_read)
{
    int64_t *labels = NULL;
    if (ends_with(path, ".i64")) {
        long size = 0;
        labels = (int64_t *)read_file(path, &size);
        *n_read = labels ? (int64_t)(size / (long)sizeof(int64_t)) : 0;
        return labels;
    }
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "leep_score: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    labels = (int64_t *)malloc((size_t)(n_expected > 0 ? n_expected : 1) * sizeof *labels);
    *n_read = 0;
    int64_t value;
    while (labels && fscanf(f, "%" SCNd64, &value) == 1) {
        if (*n_read == n_expected) { /* too many: count them, do not store */
            *n_read += 1;
            break;
        }
        labels[(*n_read)++] = value;
    }
    fclose(f);
    return labels;
}

int main(int argc, char **argv)
{
    if (argc < 4 || argc > 5) {
        fprintf(stderr, "usage: %s PREDICTIONS LABELS N_SOURCE [N_TARGET]\n", argv[0]);
        return 2;
    }
    int64_t n_source = strtoll(argv[3], NULL, 10);
    int64_t n_target = argc == 5 ? strtoll(argv[4], NULL, 10) : 1;
    if (n_source < 1) {
        fprintf(stderr, "leep_score: N_SOURCE must be a positive integer, got %s\n", argv[3]);
        return 2;
    }
    long size = 0;
    float *predictions = (float *)read_file(argv[1], &size);
    if (!predictions) return 2;
    int64_t row_bytes = n_source * (int64_t)sizeof(float);
    if (size % row_bytes != 0) {
        fprintf(stderr, "leep_score: %s: %ld bytes is not a whole number of rows of %" PRId64
                " float32 values\n", argv[1], size, n_source);
        return 2;
    }
    int64_t n_samples = size / row_bytes, n_labels = 0;
    int64_t *labels = read_labels(argv[2], n_samples, &n_labels);
    if (!labels) return 2;
    if (n_labels != n_samples) {
        fprintf(stderr, "leep_score: %s: expected %" PRId64 " labels (one per row), got %s%"
                PRId64 "\n", argv[2], n_samples, n_labels > n_samples ? "more than " : "",
                n_labels > n_samples ? n_samples : n_labels);
        return 2;
    }
    if (argc == 4) /* default: max(label) + 1, at least 1 (negative labels: an error) */
        for (int64_t i = 0; i < n_samples; i++)
            if (labels[i] + 1 > n_target) n_target = labels[i] + 1;

    double leep = 0.0, nce = 0.0;
    int status = leepfast_leep_f32(predictions, labels, n_samples, n_source, n_target, &leep);
    if (status == LEEPFAST_OK)
        status = leepfast_nce_f32(predictions, labels, n_samples, n_source, n_target, &nce);
    free(labels);
    free(predictions);
    if (status != LEEPFAST_OK) {
        fprintf(stderr, "leep_score: %s (status %d)\n", leepfast_strerror(status), status);
        return 2;
    }
    printf("leep %.17g\nnce %.17g\n", leep, nce);
    return 0;
}
