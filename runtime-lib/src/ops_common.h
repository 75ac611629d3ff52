/* Definitions shared bit-for-bit by the CPU references (ops_cpu.c) and the
 * CUDA kernels (ops.cu): the refinement formula, the float ordering key and
 * which tokens are always kept. */
#ifndef HUBKV_OPS_COMMON_H
#define HUBKV_OPS_COMMON_H

#include "hubkv.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#ifdef __CUDACC__
#define HKV_HD __host__ __device__ __forceinline__
#else
#define HKV_HD static inline
#endif

/* z = s + r^2 (beta q - s), q = s for hubs (s == window max) else discount s.
 * Explicit fmaf so CPU and GPU round identically. */
HKV_HD float hkv_refine_one(float s, float wmax, float beta, float discount, float r2) {
    float q = (s == wmax) ? s : discount * s;
    return fmaf(r2, fmaf(beta, q, -s), s);
}

/* Order-preserving map float -> uint32 (larger float -> larger key). */
HKV_HD uint32_t hkv_float_key(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

/* Sinks [0, n_sink) and the recent window [N - n_recent, N) are kept always. */
HKV_HD int hkv_is_forced(int64_t i, int64_t n, int32_t n_sink, int32_t n_recent) {
    return i < n_sink || i >= n - n_recent;
}

HKV_HD int64_t hkv_n_forced(int64_t n, int32_t n_sink, int32_t n_recent) {
    int64_t f = (int64_t)n_sink + n_recent;
    return f > n ? n : f;
}

#ifdef __cplusplus
extern "C" {
#endif
hubkv_status hkv_check_refine(const hubkv_refine_params *p, int32_t n_heads, int64_t n_tokens, char *err, size_t cap);
hubkv_status hkv_check_topk(int32_t n_heads, int64_t n, const int32_t *off, int32_t n_sink, int32_t n_recent,
                            char *err, size_t cap);
#ifdef __cplusplus
}
#endif

#endif
