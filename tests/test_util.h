/* Minimal test helpers: CHECK records a failure and keeps going; a test's
 * main returns test_summary(), non-zero if any check failed. */
#ifndef HUBKV_TEST_UTIL_H
#define HUBKV_TEST_UTIL_H

#include <stdio.h>
#include <stdlib.h>

static int test_failures = 0;
static int test_checks = 0;

#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        test_checks++;                                                         \
        if (!(cond)) {                                                         \
            test_failures++;                                                   \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                      \
            fprintf(stderr, "\n");                                             \
        }                                                                      \
    } while (0)

/* Path of a file under tests/data (HUBKV_TEST_DATA set by CTest). */
static inline const char *test_data(const char *rel, char *buf, size_t cap) {
    const char *d = getenv("HUBKV_TEST_DATA");
    snprintf(buf, cap, "%s/%s", d ? d : "tests/data", rel);
    return buf;
}

/* Path of the default model GGUF (HUBKV_MODEL_GGUF, else the setup cache), or
 * NULL if absent: tests that need it then say so and are skipped. */
static inline const char *test_default_model(char *buf, size_t cap) {
    const char *p = getenv("HUBKV_MODEL_GGUF");
    if (p && *p) return p;
    const char *home = getenv("HOME");
    snprintf(buf, cap, "%s/.cache/hubkv/SmolLM2-135M-Instruct.Q4_1.gguf", home ? home : ".");
    FILE *f = fopen(buf, "rb");
    if (!f) return NULL;
    fclose(f);
    return buf;
}

/* Whole file as a NUL-terminated malloc'ed buffer (*len without the NUL), or
 * NULL if it cannot be read. */
static inline char *test_slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (!buf) return NULL;
    buf[n] = 0;
    if (len) *len = (size_t)n;
    return buf;
}

static inline int test_summary(const char *name) {
    printf("%s: %d checks, %d failed\n", name, test_checks, test_failures);
    return test_failures ? 1 : 0;
}

/* CTest treats exit code 77 as skipped (SKIP_RETURN_CODE set by the fragment). */
#define TEST_SKIP 77

#endif
