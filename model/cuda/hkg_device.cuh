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

/* Sum over the first nw warps of the block, which meet at sync() (a block
 * barrier among them); every one of their threads gets the result. sh: 32
 * floats of shared memory. */
struct hkg_sync_block {
    __device__ void operator()() const { __syncthreads(); }
};
template <typename Sync>
static __device__ __forceinline__ float block_sum_over(float v, float *sh, int nw, Sync sync) {
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    v = warp_sum(v);
    sync(); /* sh may still be read by a previous call */
    if (lane == 0) sh[w] = v;
    sync();
    v = lane < nw ? sh[lane] : 0.0f;
    return warp_sum(v);
}
/* Sum over the block (blockDim.x a multiple of 32, <= 1024). */
static __device__ __forceinline__ float block_sum(float v, float *sh) {
    return block_sum_over(v, sh, (int)(blockDim.x >> 5), hkg_sync_block());
}

/* 8 bf16 of a 16-byte chunk to fp32. */
static __device__ __forceinline__ void unpack8(uint4 u, float f[8]) {
    const unsigned w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
        f[2 * i] = __uint_as_float(w[i] << 16);
        f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
    }
}

/* dot of 8 bf16 pairs packed in two 16-byte chunks, fp32 */
static __device__ __forceinline__ float dot8(uint4 a, uint4 b) {
    const unsigned wa[4] = {a.x, a.y, a.z, a.w}, wb[4] = {b.x, b.y, b.z, b.w};
    float s = 0.0f;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        s = fmaf(__uint_as_float(wa[i] << 16), __uint_as_float(wb[i] << 16), s);
        s = fmaf(__uint_as_float(wa[i] & 0xffff0000u), __uint_as_float(wb[i] & 0xffff0000u), s);
    }
    return s;
}

/* 16-byte load of data read once (weights): not kept in L1. */
static __device__ __forceinline__ uint4 ld_stream(const uint4 *p) {
    uint4 r;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
                 : "l"(p));
    return r;
}

/* Merge running softmax state (m, l, o[8]) with another one. */
static __device__ __forceinline__ void merge_state(float &m, float &l, float o[8], float m2,
                                                   float l2, const float o2[8]) {
    const float M = fmaxf(m, m2);
    const float a = m == -INFINITY ? 0.0f : __expf(m - M);
    const float b = m2 == -INFINITY ? 0.0f : __expf(m2 - M);
    l = l * a + l2 * b;
#pragma unroll
    for (int i = 0; i < 8; i++) o[i] = o[i] * a + o2[i] * b;
    m = M;
}

#define HKG_LAUNCHED() cudaGetLastError()

#endif
