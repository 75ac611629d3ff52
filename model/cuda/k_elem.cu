/* Element-wise kernels of the forward pass: embedding gather, bias, RoPE,
 * SwiGLU, argmax, and the moves of q/k/v into the attention layouts. */
#include "hkg_device.cuh"

/* ---------------------------------------------------------------- embedding */

static __global__ void embed_kernel(const bf16 *emb, const int32_t *ids, int d, float *x) {
    const bf16 *src = emb + (size_t)ids[blockIdx.x] * d;
    float *dst = x + (size_t)blockIdx.x * d;
    for (int i = threadIdx.x; i < d; i += blockDim.x) dst[i] = bf2f(src[i]);
}

extern "C" cudaError_t hkg_embed(const hkg_bf16 *emb, const int32_t *ids, int n, int d,
                                 float *x, cudaStream_t s) {
    if (n <= 0) return cudaSuccess;
    embed_kernel<<<n, 256, 0, s>>>((const bf16 *)emb, ids, d, x);
    return HKG_LAUNCHED();
}

/* ---------------------------------------------------------------- bias */

static __global__ void add_bias_kernel(float *x, const float *b, int width) {
    float *row = x + (size_t)blockIdx.x * width;
    for (int i = threadIdx.x; i < width; i += blockDim.x) row[i] += b[i];
}

extern "C" cudaError_t hkg_add_bias(float *x, const float *b, int n, int width,
                                    cudaStream_t s) {
    if (n <= 0) return cudaSuccess;
    add_bias_kernel<<<n, 256, 0, s>>>(x, b, width);
    return HKG_LAUNCHED();
}

/* ---------------------------------------------------------------- RoPE */

/* One block per (token, head); rotate_half pairs dims i and i + hd/2 with
 * angle (pos * inv_freq[i]) in fp32, as HF does. */
static __global__ void rope_kernel(float *x, int row_stride, int hd, int pos0,
                                   const int32_t *d_pos0, const float *inv_freq) {
    float *p = x + (size_t)blockIdx.x * row_stride + (size_t)blockIdx.y * hd;
    float pos = (float)((d_pos0 ? *d_pos0 : pos0) + (int)blockIdx.x);
    int half = hd / 2;
    for (int i = threadIdx.x; i < half; i += blockDim.x) {
        float sn, cs;
        sincosf(pos * inv_freq[i], &sn, &cs);
        float a = p[i], b = p[i + half];
        p[i] = a * cs - b * sn;
        p[i + half] = b * cs + a * sn;
    }
}

extern "C" cudaError_t hkg_rope(float *x, int n, int n_heads, int row_stride, int hd, int pos0,
                                const int32_t *d_pos0, const float *inv_freq, cudaStream_t s) {
    if (n <= 0 || n_heads <= 0) return cudaSuccess;
    rope_kernel<<<dim3(n, n_heads), 64, 0, s>>>(x, row_stride, hd, pos0, d_pos0, inv_freq);
    return HKG_LAUNCHED();
}

/* ---------------------------------------------------------------- SwiGLU */

static __global__ void swiglu_kernel(const float *gu, int ff, bf16 *out) {
    const float *g = gu + (size_t)blockIdx.x * 2 * ff, *u = g + ff;
    bf16 *o = out + (size_t)blockIdx.x * ff;
    for (int i = threadIdx.x; i < ff; i += blockDim.x) {
        float a = g[i];
        o[i] = f2bf(a / (1.0f + expf(-a)) * u[i]);
    }
}

extern "C" cudaError_t hkg_swiglu(const float *gu, int n, int ff, hkg_bf16 *out,
                                  cudaStream_t s) {
    if (n <= 0) return cudaSuccess;
    swiglu_kernel<<<n, 256, 0, s>>>(gu, ff, (bf16 *)out);
    return HKG_LAUNCHED();
}

/* The same from bf16 gate/up (the long-prefill product writes bf16: half the
 * bytes of an (n, 2*ff) fp32 intermediate); pairs of columns per thread. */
static __global__ void swiglu_bf16_kernel(const bf16 *gu, int ff, bf16 *out) {
    const bf16 *g = gu + (size_t)blockIdx.x * 2 * ff, *u = g + ff;
    bf16 *o = out + (size_t)blockIdx.x * ff;
    for (int i = 2 * threadIdx.x; i < ff; i += 2 * blockDim.x) {
        if (i + 1 < ff) {
            const float2 a = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(g + i));
            const float2 b = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(u + i));
            *reinterpret_cast<__nv_bfloat162 *>(o + i) = __floats2bfloat162_rn(
                a.x / (1.0f + expf(-a.x)) * b.x, a.y / (1.0f + expf(-a.y)) * b.y);
        } else {
            const float a = __bfloat162float(g[i]);
            o[i] = f2bf(a / (1.0f + expf(-a)) * __bfloat162float(u[i]));
        }
    }
}

extern "C" cudaError_t hkg_swiglu_bf16(const hkg_bf16 *gu, int n, int ff, hkg_bf16 *out,
                                       cudaStream_t s) {
    if (n <= 0) return cudaSuccess;
    if (ff % 2) return cudaErrorInvalidValue; /* bf16 pairs stay 4-byte aligned */
    swiglu_bf16_kernel<<<n, 256, 0, s>>>((const bf16 *)gu, ff, (bf16 *)out);
    return HKG_LAUNCHED();
}

/* ---------------------------------------------------------------- argmax */

/* One block per row; ties go to the lowest index, NaN is never picked (a row
 * without a number gives 0). Each thread keeps AMAX_ILP loads in flight;
 * with 256 threads, each walked ~190 elements of a 49152-wide row one load
 * after another. */
#define AMAX_THREADS 1024
#define AMAX_ILP 8

/* (bv, bi) = the best over the warp, in lane 0 */
static __device__ __forceinline__ void warp_amax(float &bv, int &bi) {
    for (int off = 16; off > 0; off >>= 1) {
        const float ov = __shfl_down_sync(0xffffffffu, bv, off);
        const int oi = __shfl_down_sync(0xffffffffu, bi, off);
        if (ov > bv || (ov == bv && oi < bi)) bv = ov, bi = oi;
    }
}

static __global__ void __launch_bounds__(AMAX_THREADS) argmax_kernel(const float *x, int cols,
                                                                     int32_t *out) {
    __shared__ float sv[32];
    __shared__ int si[32];
    const float *row = x + (size_t)blockIdx.x * cols;
    float bv = -INFINITY;
    int bi = cols; /* cols = "none yet" */
    for (int i0 = threadIdx.x; i0 < cols; i0 += AMAX_THREADS * AMAX_ILP) {
        float v[AMAX_ILP];
#pragma unroll
        for (int k = 0; k < AMAX_ILP; k++) {
            const int i = i0 + k * AMAX_THREADS;
            v[k] = i < cols ? __ldg(row + i) : -INFINITY;
        }
#pragma unroll
        for (int k = 0; k < AMAX_ILP; k++) /* indices increase: ties keep the first */
            if (v[k] > bv) bv = v[k], bi = i0 + k * AMAX_THREADS;
    }
    warp_amax(bv, bi);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    if (lane == 0) sv[warp] = bv, si[warp] = bi;
    __syncthreads();
    if (warp) return;
    bv = lane < AMAX_THREADS / 32 ? sv[lane] : -INFINITY;
    bi = lane < AMAX_THREADS / 32 ? si[lane] : cols;
    warp_amax(bv, bi);
    if (lane == 0) out[blockIdx.x] = bi < cols ? bi : 0;
}

extern "C" cudaError_t hkg_argmax(const float *x, int rows, int cols, int32_t *out,
                                  cudaStream_t s) {
    if (rows <= 0) return cudaSuccess;
    argmax_kernel<<<rows, AMAX_THREADS, 0, s>>>(x, cols, out);
    return HKG_LAUNCHED();
}

/* ---------------------------------------------------------------- layouts */

/* One block per (token, head slot): slots [0, H) are q, [H, H+KV) k, then v. */
static __global__ void qkv_scatter_kernel(const float *qkv, int n, int H, int KV, int hd,
                                          bf16 *q, bf16 *kc, bf16 *vc, const int32_t *off,
                                          const int32_t *len) {
    int t = blockIdx.x, slot = blockIdx.y;
    const float *src = qkv + ((size_t)t * (H + 2 * KV) + slot) * hd;
    bf16 *dst;
    if (slot < H) {
        dst = q + ((size_t)slot * n + t) * hd;
    } else {
        int kvh = slot < H + KV ? slot - H : slot - H - KV;
        bf16 *base = slot < H + KV ? kc : vc;
        dst = base + ((size_t)off[kvh] + len[kvh] + t) * hd;
    }
    for (int i = threadIdx.x; i < hd; i += blockDim.x) dst[i] = f2bf(src[i]);
}

extern "C" cudaError_t hkg_qkv_scatter(const float *qkv, int n, int H, int KV, int hd,
                                       hkg_bf16 *q, hkg_bf16 *kc, hkg_bf16 *vc,
                                       const int32_t *off, const int32_t *len, cudaStream_t s) {
    if (n <= 0) return cudaSuccess;
    qkv_scatter_kernel<<<dim3(n, H + 2 * KV), 64, 0, s>>>(qkv, n, H, KV, hd, (bf16 *)q,
                                                         (bf16 *)kc, (bf16 *)vc, off, len);
    return HKG_LAUNCHED();
}

static __global__ void gather_rows_kernel(const bf16 *src, const int32_t *keep, int hd,
                                          bf16 *dst) {
    const bf16 *s = src + (size_t)keep[blockIdx.x] * hd;
    bf16 *d = dst + (size_t)blockIdx.x * hd;
    for (int i = threadIdx.x; i < hd; i += blockDim.x) d[i] = s[i];
}

extern "C" cudaError_t hkg_gather_rows(const hkg_bf16 *src, const int32_t *keep, int n_keep,
                                       int hd, hkg_bf16 *dst, cudaStream_t s) {
    if (n_keep <= 0) return cudaSuccess;
    gather_rows_kernel<<<n_keep, 64, 0, s>>>((const bf16 *)src, keep, hd, (bf16 *)dst);
    return HKG_LAUNCHED();
}

/* ---------------------------------------------------------------- fused RoPE + layouts */

/* A block per (token, group of head slots); thread i of each hd/2 owns the
 * rotate_half pair i and computes its angle once for all the slots it moves
 * (one block per (token, slot) of hd/2 threads ran at ~0.6 TB/s on long
 * prefill chunks: tiny blocks, and sincosf redone for every head). The same
 * arithmetic as rope_kernel then qkv_scatter_kernel. */
static __global__ void rope_scatter_kernel(const float *qkv, int n, int H, int KV, int hd,
                                           int pos0, const int32_t *d_pos0,
                                           const float *inv_freq, bf16 *q, bf16 *kc, bf16 *vc,
                                           const int32_t *off, const int32_t *len,
                                           int slots_per_block) {
    const int t = blockIdx.x, half = hd / 2, i = threadIdx.x % half;
    const int per_pass = blockDim.x / half, slots = H + 2 * KV;
    const int s0 = blockIdx.y * slots_per_block;
    const int s1 = min(slots, s0 + slots_per_block);
    const float pos = (float)((d_pos0 ? *d_pos0 : pos0) + t);
    float sn, cs;
    sincosf(pos * inv_freq[i], &sn, &cs);
    const float *row = qkv + (size_t)t * slots * hd;
    for (int slot = s0 + (int)threadIdx.x / half; slot < s1; slot += per_pass) {
        const float *src = row + (size_t)slot * hd;
        bf16 *dst;
        if (slot < H) {
            dst = q + ((size_t)slot * n + t) * hd;
        } else {
            const int kvh = slot < H + KV ? slot - H : slot - H - KV;
            dst = (slot < H + KV ? kc : vc) + ((size_t)off[kvh] + len[kvh] + t) * hd;
        }
        float a = src[i], b = src[i + half];
        if (slot < H + KV) {
            const float ra = a * cs - b * sn, rb = b * cs + a * sn;
            a = ra, b = rb;
        }
        dst[i] = f2bf(a);
        dst[i + half] = f2bf(b);
    }
}

extern "C" cudaError_t hkg_rope_scatter(const float *qkv, int n, int H, int KV, int hd,
                                        int pos0, const int32_t *d_pos0,
                                        const float *inv_freq, hkg_bf16 *q, hkg_bf16 *kc,
                                        hkg_bf16 *vc, const int32_t *off, const int32_t *len,
                                        cudaStream_t s) {
    if (n <= 0) return cudaSuccess;
    if (hd % 2 || hd / 2 > 256) return cudaErrorInvalidValue;
    /* long calls: every slot of a token in one block of a whole number of
     * pairs (<= 256 threads); short ones (decode): a block per slot, as
     * before (a 256-thread block per token was 0.6 us slower per decode step) */
    const int half = hd / 2, slots = H + 2 * KV;
    const int per_pass = n >= 256 && half < 256 ? 256 / half : 1;
    const int spb = n >= 256 ? slots : 1;
    const dim3 grid(n, (slots + spb - 1) / spb);
    rope_scatter_kernel<<<grid, half * per_pass, 0, s>>>(
        qkv, n, H, KV, hd, pos0, d_pos0, inv_freq, (bf16 *)q, (bf16 *)kc, (bf16 *)vc, off, len,
        spb);
    return HKG_LAUNCHED();
}
