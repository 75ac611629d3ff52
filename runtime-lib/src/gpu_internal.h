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
    char err[HKV_ERR_CAP];
};

/* Device error flag codes: kind in the high byte, detail (head + 1) below. */
#define HKV_FLAG_TOPK_K (1 << 24)     /* a head's k outside [forced, N] */
#define HKV_FLAG_COMPACT_IDX (2 << 24) /* keep_idx outside its head's rows */

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
