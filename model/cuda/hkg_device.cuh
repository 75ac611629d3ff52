/* Device-side helpers shared by the kernel files: bf16 conversion, warp and
 * block reductions. */
#ifndef HKG_DEVICE_CUH
#define HKG_DEVICE_CUH

#include <cuda_bf16.h>
#include <math.h>

#include "hkg_kernels.h"

typedef __nv_bfloat16 bf16;

static __device__ __forceinline__ float bf2f(bf16 x) { return __bfloat162float(x); }
/* hkg_bf16 holds the bits: reinterpret, never convert the integer value. */
static __device__ __forceinline__ float bf2f(hkg_bf16 bits) {
    return __uint_as_float((unsigned)bits << 16);
}
static __device__ __forceinline__ bf16 f2bf(float x) { return __float2bfloat16_rn(x); }

static __device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
static __device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Sum over the block (blockDim.x a multiple of 32, <= 1024); every thread
 * gets the result. sh: 32 floats of shared memory. */
static __device__ __forceinline__ float block_sum(float v, float *sh) {
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads(); /* sh may still be read by a previous call */
    if (lane == 0) sh[w] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : 0.0f;
    return warp_sum(v);
}

#define HKG_LAUNCHED() cudaGetLastError()

#endif
