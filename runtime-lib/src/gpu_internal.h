/* Internal CUDA helpers shared by ops.cu and cache.cu: the context struct and
 * the check macros (file:line + failing statement, no exit). */
#ifndef HUBKV_GPU_INTERNAL_H
#define HUBKV_GPU_INTERNAL_H

#include "hubkv_internal.h"

#include <cuda_runtime.h>

struct hubkv_gpu {
    int device;
    cudaStream_t stream;       /* borrowed */
    int *d_flag;               /* device error flag set by kernels (0 = ok) */
    void *scratch;             /* device scratch of refine_topk, grow-only */
    size_t scratch_bytes;
    char err[HKV_ERR_CAP];
};

/* Device error flag codes: kind in the high byte, detail (head + 1) below. */
#define HKV_FLAG_TOPK_K (1 << 24)     /* a head's k outside [forced, N] */
#define HKV_FLAG_COMPACT_IDX (2 << 24) /* keep_idx outside its head's rows */
#define HKV_FLAG_H2O_FULL (3 << 24)    /* full head with no evictable row */

/* Compaction launcher behind hubkv_gpu_compact and the cache (ops.cu): see
 * compact_kernel for d_ilen (NULL = from offsets), d_kidx (NULL = identity)
 * and out_slack (spare rows after each head's output segment). */
hubkv_status hkv_launch_compact(hubkv_gpu *g, const uint16_t *d_ik, const uint16_t *d_iv, const int32_t *d_ipos,
                                const int32_t *d_ioff, const int32_t *d_ilen, int32_t n_heads, int32_t d,
                                const int32_t *d_kidx, const int32_t *d_koff, int64_t n_keep, int32_t out_slack,
                                uint16_t *d_ok, uint16_t *d_ov, int32_t *d_opos);

hubkv_status hkv_gpu_scratch(hubkv_gpu *g, size_t bytes);

/* Writes new rows (H, d) into rows d_slot[h] of K/V (decode.cu). */
hubkv_status hkv_write_rows(hubkv_gpu *g, uint16_t *d_k, uint16_t *d_v, const int32_t *d_slot, int32_t n_heads,
                            int32_t d, const uint16_t *d_new_k, const uint16_t *d_new_v);

/* Evaluates a CUDA runtime call once; on failure writes file:line, the call
 * and CUDA's message into errbuf and returns HUBKV_ERR_CUDA. */
#define HKV_CUDA_CK(errbuf, call)                                                              \
    do {                                                                                       \
        cudaError_t e_ = (call);                                                               \
        if (e_ != cudaSuccess)                                                                 \
            return hkv_fail(errbuf, sizeof(errbuf), e_ == cudaErrorMemoryAllocation ? HUBKV_ERR_NOMEM : HUBKV_ERR_CUDA, \
                            "CUDA error at %s:%d: %s: %s", __FILE__, __LINE__, #call,          \
                            cudaGetErrorString(e_));                                           \
    } while (0)

/* After every kernel launch. */
#define HKV_LAUNCH_CK(errbuf) HKV_CUDA_CK(errbuf, cudaGetLastError())

#endif
