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

extern "C" cudaError_t hkg_rmsnorm(float *x, const float *res, const float *w, int n, int d,
                                   float eps, hkg_bf16 *out, cudaStream_t s) {
    if (n <= 0) return cudaSuccess;
    rmsnorm_kernel<<<n, 256, 0, s>>>(x, res, w, d, eps, (bf16 *)out);
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
