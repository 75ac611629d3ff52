/* Matrix-vector products of decode (one token): y = W x with W (rows, in)
 * bf16 row-major. Memory-bound, so the kernel reads each weight once with
 * 16-byte loads, several in flight per lane, and fuses what surrounds the
 * product: the RMSNorm of its fp32 input (recomputed per block: the input is
 * a few KB from L2), the residual add of its output, and SwiGLU (gate and up
 * rows of the same index in one group). A group of LPR lanes owns a row. */
#include "hkg_device.cuh"

#define GV_MAX_THREADS 256
#define GV_UNROLL 4

int hkg_gemv_ok(int in) { return in > 0 && in % 8 == 0 && in <= HKG_GEMV_MAX_IN; }

/* Partial dot of row w (and row w2 when TWO) with xs over this lane's chunks.
 * PRE: the first GV_UNROLL chunks of each row are already in pu / pv. */
template <int LPR, bool TWO, bool PRE>
static __device__ __forceinline__ void row_dot(const uint4 *w, const uint4 *w2, const uint4 *xs,
                                               int nch, int sub, float &a0, float &a1,
                                               const uint4 *pu, const uint4 *pv) {
    int c = sub;
    if (PRE) {
#pragma unroll
        for (int k = 0; k < GV_UNROLL; k++) {
            const uint4 xv = xs[c + k * LPR];
            a0 += dot8(pu[k], xv);
            if (TWO) a1 += dot8(pv[k], xv);
        }
        c += GV_UNROLL * LPR;
    }
    for (; c + (GV_UNROLL - 1) * LPR < nch; c += GV_UNROLL * LPR) {
        uint4 u[GV_UNROLL], v[GV_UNROLL];
#pragma unroll
        for (int k = 0; k < GV_UNROLL; k++) {
            u[k] = ld_stream(w + c + k * LPR);
            if (TWO) v[k] = ld_stream(w2 + c + k * LPR);
        }
#pragma unroll
        for (int k = 0; k < GV_UNROLL; k++) {
            const uint4 xv = xs[c + k * LPR];
            a0 += dot8(u[k], xv);
            if (TWO) a1 += dot8(v[k], xv);
        }
    }
    for (; c < nch; c += LPR) {
        const uint4 xv = xs[c];
        a0 += dot8(ld_stream(w + c), xv);
        if (TWO) a1 += dot8(ld_stream(w2 + c), xv);
    }
}

template <int LPR, int MODE, bool NORM>
static __global__ void __launch_bounds__(GV_MAX_THREADS)
gemv_kernel(const bf16 *__restrict__ W, int rows, int in, const bf16 *__restrict__ xb,
            const float *__restrict__ x, const float *__restrict__ nw, float eps,
            float *__restrict__ y, bf16 *__restrict__ yb) {
    extern __shared__ __align__(16) unsigned char gv_smem[];
    __shared__ float red[32];
    bf16 *xs = reinterpret_cast<bf16 *>(gv_smem);
    const int nch = in >> 3;
    const int groups = blockDim.x / LPR, sub = threadIdx.x & (LPR - 1);
    constexpr bool TWO = MODE == HKG_GEMV_SWIGLU;
    /* with the norm prologue (a block-wide reduction before any product),
     * issue this lane's first weight loads first so they are in flight
     * during it */
    const int rb0 = blockIdx.x * groups, r0 = rb0 + threadIdx.x / LPR;
    const bool pre = NORM && r0 < rows && sub + (GV_UNROLL - 1) * LPR < nch;
    uint4 pu[NORM ? GV_UNROLL : 1], pv[NORM && TWO ? GV_UNROLL : 1];
    if (NORM && pre) {
        const uint4 *w = reinterpret_cast<const uint4 *>(W + (size_t)r0 * in) + sub;
        const uint4 *w2 = reinterpret_cast<const uint4 *>(W + (size_t)(r0 + rows) * in) + sub;
#pragma unroll
        for (int k = 0; k < (NORM ? GV_UNROLL : 1); k++) {
            pu[k] = ld_stream(w + k * LPR);
            if (TWO) pv[k] = ld_stream(w2 + k * LPR);
        }
    }
    if (NORM) { /* as rmsnorm_kernel: bf16(x * rsqrt(mean(x^2) + eps) * w) */
        float ss = 0.0f;
        for (int i = threadIdx.x; i < in; i += blockDim.x) ss += x[i] * x[i];
        const float inv = rsqrtf(block_sum(ss, red) / (float)in + eps);
        for (int i = threadIdx.x; i < in; i += blockDim.x) xs[i] = f2bf(x[i] * inv * nw[i]);
    } else {
        for (int c = threadIdx.x; c < nch; c += blockDim.x)
            reinterpret_cast<uint4 *>(xs)[c] = reinterpret_cast<const uint4 *>(xb)[c];
    }
    __syncthreads();
    const uint4 *xv = reinterpret_cast<const uint4 *>(xs);
    /* rb is uniform over the block, so the shuffles below see whole warps */
    for (int rb = rb0; rb < rows; rb += gridDim.x * groups) {
        const int r = rb + threadIdx.x / LPR;
        float a0 = 0.0f, a1 = 0.0f;
        if (r < rows) {
            const uint4 *w = reinterpret_cast<const uint4 *>(W + (size_t)r * in);
            const uint4 *w2 = TWO ? reinterpret_cast<const uint4 *>(W + (size_t)(r + rows) * in) : w;
            if (NORM && pre && rb == rb0)
                row_dot<LPR, TWO, NORM>(w, w2, xv, nch, sub, a0, a1, pu, pv);
            else
                row_dot<LPR, TWO, false>(w, w2, xv, nch, sub, a0, a1, pu, pv);
        }
#pragma unroll
        for (int o = LPR / 2; o > 0; o >>= 1) {
            a0 += __shfl_xor_sync(0xffffffffu, a0, o);
            if (MODE == HKG_GEMV_SWIGLU) a1 += __shfl_xor_sync(0xffffffffu, a1, o);
        }
        if (sub == 0 && r < rows) {
            if (MODE == HKG_GEMV_STORE) y[r] = a0;
            else if (MODE == HKG_GEMV_ADD) y[r] += a0;
            else yb[r] = f2bf(a0 / (1.0f + expf(-a0)) * a1);
        }
    }
}


template <int LPR, int MODE>
static cudaError_t gemv_launch(const bf16 *W, int rows, int in, const bf16 *xb, const float *x,
                               const float *nw, float eps, float *y, bf16 *yb, cudaStream_t s) {
    const int sms = hkg_sm_count();
    /* smaller blocks for small matrices, so that every SM gets some rows */
    int threads = GV_MAX_THREADS;
    while (threads > 64 && (rows + threads / LPR - 1) / (threads / LPR) < 2 * sms) threads /= 2;
    int blocks = (rows + threads / LPR - 1) / (threads / LPR);
    if (blocks > 4 * sms) blocks = 4 * sms; /* grid-stride: x is staged once per block */
    const size_t smem = (size_t)in * sizeof(bf16);
    if (x)
        gemv_kernel<LPR, MODE, true><<<blocks, threads, smem, s>>>(W, rows, in, xb, x, nw, eps, y, yb);
    else
        gemv_kernel<LPR, MODE, false><<<blocks, threads, smem, s>>>(W, rows, in, xb, x, nw, eps, y, yb);
    return HKG_LAUNCHED();
}

template <int MODE>
static cudaError_t gemv_mode(const bf16 *W, int rows, int in, const bf16 *xb, const float *x,
                             const float *nw, float eps, float *y, bf16 *yb, cudaStream_t s) {
    const int nch = in / 8; /* about 4 or more chunks per lane */
    if (nch >= 128) return gemv_launch<32, MODE>(W, rows, in, xb, x, nw, eps, y, yb, s);
    if (nch >= 64) return gemv_launch<16, MODE>(W, rows, in, xb, x, nw, eps, y, yb, s);
    return gemv_launch<8, MODE>(W, rows, in, xb, x, nw, eps, y, yb, s);
}

extern "C" cudaError_t hkg_gemv(const hkg_bf16 *W, int rows, int in, const hkg_bf16 *xb,
                                const float *x, const float *norm_w, float eps,
                                hkg_gemv_mode mode, float *y, hkg_bf16 *yb, cudaStream_t s) {
    if (rows <= 0) return cudaSuccess;
    if (!hkg_gemv_ok(in) || (!xb && !(x && norm_w)) || (mode == HKG_GEMV_SWIGLU ? !yb : !y))
        return cudaErrorInvalidValue;
    const bf16 *w = (const bf16 *)W, *b = (const bf16 *)xb;
    switch (mode) {
    case HKG_GEMV_STORE: return gemv_mode<HKG_GEMV_STORE>(w, rows, in, b, x, norm_w, eps, y, NULL, s);
    case HKG_GEMV_ADD: return gemv_mode<HKG_GEMV_ADD>(w, rows, in, b, x, norm_w, eps, y, NULL, s);
    default: return gemv_mode<HKG_GEMV_SWIGLU>(w, rows, in, b, x, norm_w, eps, NULL, (bf16 *)yb, s);
    }
}
