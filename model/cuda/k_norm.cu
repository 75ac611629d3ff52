/* RMSNorm kernels: the per-token norm of the residual stream (optionally
 * adding a residual first) and the per-head norm of Qwen3's q/k. */
#include "hkg_device.cuh"

/* One block per token. x (n, d) fp32, res (n, d) or NULL, w (d), out (n, d). */
static __global__ void rmsnorm_kernel(float *x, const float *res, const float *w, int d,
                                      float eps, bf16 *out) {
    __shared__ float sh[32];
    size_t row = (size_t)blockIdx.x * d;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < d; i += blockDim.x) {
        float v = x[row + i];
        if (res) {
            v += res[row + i];
            x[row + i] = v;
        }
        ss += v * v;
    }
    float inv = rsqrtf(block_sum(ss, sh) / (float)d + eps);
    for (int i = threadIdx.x; i < d; i += blockDim.x)
        out[row + i] = f2bf(x[row + i] * inv * w[i]);
}

/* The same for d % 4 == 0 and d <= 4 * RN_VEC * blockDim.x: 16-byte loads,
 * the row kept in registers between the sum and the scaling (the two-pass
 * kernel above re-read it: ~1.7 TB/s on long prefill chunks). */
#define RN_VEC 4
static __global__ void __launch_bounds__(256)
rmsnorm_vec_kernel(float *x, const float *res, const float *w, int d, float eps, bf16 *out) {
    __shared__ float sh[32];
    const int d4 = d >> 2;
    float4 *x4 = reinterpret_cast<float4 *>(x + (size_t)blockIdx.x * d);
    const float4 *r4 = res ? reinterpret_cast<const float4 *>(res + (size_t)blockIdx.x * d) : NULL;
    float4 v[RN_VEC];
    float ss = 0.0f;
#pragma unroll
    for (int k = 0; k < RN_VEC; k++) {
        const int i = threadIdx.x + k * blockDim.x;
        v[k] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        if (i < d4) {
            v[k] = x4[i];
            if (r4) {
                const float4 r = r4[i];
                v[k].x += r.x, v[k].y += r.y, v[k].z += r.z, v[k].w += r.w;
                x4[i] = v[k];
            }
        }
    }
    /* fp32 sum of squares in another order than rmsnorm_kernel's */
#pragma unroll
    for (int k = 0; k < RN_VEC; k++)
        ss += v[k].x * v[k].x + v[k].y * v[k].y + v[k].z * v[k].z + v[k].w * v[k].w;
    const float inv = rsqrtf(block_sum(ss, sh) / (float)d + eps);
    const float4 *w4 = reinterpret_cast<const float4 *>(w);
#pragma unroll
    for (int k = 0; k < RN_VEC; k++) {
        const int i = threadIdx.x + k * blockDim.x;
        if (i < d4) {
            const float4 g = w4[i];
            __nv_bfloat162 lo = __floats2bfloat162_rn(v[k].x * inv * g.x, v[k].y * inv * g.y);
            __nv_bfloat162 hi = __floats2bfloat162_rn(v[k].z * inv * g.z, v[k].w * inv * g.w);
            uint2 u;
            u.x = *reinterpret_cast<unsigned *>(&lo);
            u.y = *reinterpret_cast<unsigned *>(&hi);
            reinterpret_cast<uint2 *>(out + (size_t)blockIdx.x * d)[i] = u;
        }
    }
}

extern "C" cudaError_t hkg_rmsnorm(float *x, const float *res, const float *w, int n, int d,
                                   float eps, hkg_bf16 *out, cudaStream_t s) {
    if (n <= 0) return cudaSuccess;
    if (d % 4 == 0 && d <= 4 * RN_VEC * 256) {
        /* as few threads as hold the row in RN_VEC float4 each (whole warps) */
        int threads = ((d / 4 + RN_VEC - 1) / RN_VEC + 31) / 32 * 32;
        rmsnorm_vec_kernel<<<n, threads, 0, s>>>(x, res, w, d, eps, (bf16 *)out);
    } else {
        rmsnorm_kernel<<<n, 256, 0, s>>>(x, res, w, d, eps, (bf16 *)out);
    }
    return HKG_LAUNCHED();
}

/* One warp per (token, head). */
static __global__ void head_rmsnorm_kernel(float *x, int row_stride, int hd, const float *w,
                                           float eps) {
    float *p = x + (size_t)blockIdx.x * row_stride + (size_t)blockIdx.y * hd;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < hd; i += 32) ss += p[i] * p[i];
    float inv = rsqrtf(warp_sum(ss) / (float)hd + eps);
    for (int i = threadIdx.x; i < hd; i += 32) p[i] = p[i] * inv * w[i];
}

extern "C" cudaError_t hkg_head_rmsnorm(float *x, int n, int n_heads, int row_stride, int hd,
                                        const float *w, float eps, cudaStream_t s) {
    if (n <= 0 || n_heads <= 0) return cudaSuccess;
    head_rmsnorm_kernel<<<dim3(n, n_heads), 32, 0, s>>>(x, row_stride, hd, w, eps);
    return HKG_LAUNCHED();
}
