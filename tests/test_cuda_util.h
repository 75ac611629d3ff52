/* Helpers of the GPU tests: skip without a device, checked CUDA calls, NaN
 * poisoning, seeded random inputs and tolerant comparisons that print
 * PASS/FAIL per item and keep going. */
#ifndef TEST_CUDA_UTIL_H
#define TEST_CUDA_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cuda_runtime_api.h>

#include "hkg_kernels.h"
#include "test_util.h"

/* A failing CUDA call fails the test and aborts this test program: later
 * steps would only report garbage. */
#define CU(call)                                                                      \
    do {                                                                              \
        cudaError_t e_ = (call);                                                      \
        if (e_ != cudaSuccess) {                                                      \
            fprintf(stderr, "%s:%d: CUDA: %s: %s\nFAIL (aborting)\n", __FILE__, __LINE__, \
                    #call, cudaGetErrorString(e_));                                   \
            exit(1);                                                                  \
        }                                                                             \
    } while (0)

static inline void skip_without_gpu(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
        printf("no CUDA device: skipped\n");
        exit(TEST_SKIP);
    }
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static inline float frand(void) { /* uniform in [-1, 1) */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) * (1.0 / 8388608.0)) - 1.0f;
}
static inline void fill(float *x, size_t n, float amp) {
    for (size_t i = 0; i < n; i++) x[i] = amp * frand();
}
/* Round to bf16 in place (so CPU references see what the GPU sees). */
static inline void round_bf16(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = hkg_bf2f(hkg_f2bf(x[i]));
}

static inline void *dalloc_nan(size_t bytes) {
    void *p = NULL;
    CU(cudaMalloc(&p, bytes ? bytes : 1));
    CU(cudaMemset(p, 0xff, bytes)); /* all-ones bits: NaN in fp32 and bf16 */
    return p;
}
static inline float *dput_f32(const float *h, size_t n) {
    float *d = dalloc_nan(n * 4);
    CU(cudaMemcpy(d, h, n * 4, cudaMemcpyHostToDevice));
    return d;
}
static inline hkg_bf16 *dput_bf16(const float *h, size_t n) {
    hkg_bf16 *t = malloc(n * 2 + 2);
    for (size_t i = 0; i < n; i++) t[i] = hkg_f2bf(h[i]);
    hkg_bf16 *d = dalloc_nan(n * 2);
    CU(cudaMemcpy(d, t, n * 2, cudaMemcpyHostToDevice));
    free(t);
    return d;
}
static inline void dget_f32(float *h, const float *d, size_t n) {
    CU(cudaDeviceSynchronize());
    CU(cudaMemcpy(h, d, n * 4, cudaMemcpyDeviceToHost));
}
static inline void dget_bf16(float *h, const hkg_bf16 *d, size_t n) {
    hkg_bf16 *t = malloc(n * 2 + 2);
    CU(cudaDeviceSynchronize());
    CU(cudaMemcpy(t, d, n * 2, cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < n; i++) h[i] = hkg_bf2f(t[i]);
    free(t);
}

/* |got - ref| <= atol + rtol*|ref| everywhere, no NaN; prints PASS/FAIL. */
static inline int compare(const char *what, const float *got, const float *ref, size_t n,
                          float atol, float rtol) {
    size_t bad = 0;
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        float d = fabsf(got[i] - ref[i]);
        int ok = !isnan(got[i]) && d <= atol + rtol * fabsf(ref[i]);
        if (!isnan(got[i]) && d > worst) worst = d;
        if (!ok && bad++ < 5)
            fprintf(stderr, "  %s[%zu]: got %g, expected %g\n", what, i, got[i], ref[i]);
    }
    CHECK(bad == 0, "%s: %zu of %zu values out of tolerance (atol %g, rtol %g)", what, bad, n,
          atol, rtol);
    printf("%s %s (max abs diff %.3g over %zu values)\n", bad ? "FAIL" : "PASS", what, worst, n);
    return bad == 0;
}

#endif
