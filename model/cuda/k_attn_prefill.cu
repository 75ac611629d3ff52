/* Causal prefill attention, flash style: one block per (tile of QROWS query
 * rows, query head), one warp per row, keys streamed through shared memory in
 * tiles of KT with an online softmax, so no (n x n) matrix is ever stored.
 * Keys of a head are its cache entries followed by the new tokens (already
 * appended); GQA maps query head h to KV head h / (H/KV). */
#include "hkg_device.cuh"

#define QROWS 8 /* warps per block = query rows per block */
#define KT 32   /* keys per tile = lanes per warp */

/* NT = ceil(hd/32): output dims each lane accumulates in registers. */
template <int NT>
static __global__ void __launch_bounds__(QROWS * 32)
attn_prefill_kernel(hkg_attn_args a, bf16 *out, float *lse) {
    extern __shared__ float smem[];
    const int hd = a.hd, ks = hd + 1; /* K tile padded: lanes read distinct banks */
    float *Ks = smem, *Vs = Ks + KT * ks, *Qs = Vs + KT * hd;
    const int h = blockIdx.y, kvh = h / (a.H / a.KV);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int t0 = blockIdx.x * QROWS, t = t0 + warp;
    const int len0 = a.len[kvh];
    const size_t base = (size_t)a.off[kvh];
    const bool active = t < a.n;
    float *qs = Qs + warp * hd;
    for (int i = lane; i < hd; i += 32)
        qs[i] = active ? bf2f(a.q[((size_t)h * a.n + t) * hd + i]) * a.scale : 0.0f;

    const int last = min(t0 + QROWS, a.n) - 1;
    const int nk_block = len0 + last + 1; /* keys the block's last row sees */
    const int nvis = len0 + t + 1;        /* keys this row sees */
    float m = -INFINITY, l = 0.0f, o[NT];
#pragma unroll
    for (int c = 0; c < NT; c++) o[c] = 0.0f;

    for (int j0 = 0; j0 < nk_block; j0 += KT) {
        __syncthreads(); /* previous tile fully consumed (and qs written) */
        const int cnt = min(KT, nk_block - j0);
        for (int e = threadIdx.x; e < KT * hd; e += blockDim.x) {
            int j = e / hd, d = e - j * hd;
            float kv = 0.0f, vv = 0.0f;
            if (j < cnt) {
                size_t r = (base + j0 + j) * hd + d;
                kv = bf2f(a.k[r]);
                vv = bf2f(a.v[r]);
            }
            Ks[j * ks + d] = kv;
            Vs[j * hd + d] = vv;
        }
        __syncthreads();
        if (!active || j0 >= nvis) continue; /* warp-uniform */

        const int j = j0 + lane;
        float sc = -INFINITY;
        if (j < nvis) {
            const float *kr = Ks + lane * ks;
            float acc = 0.0f;
            for (int d = 0; d < hd; d++) acc += qs[d] * kr[d];
            sc = acc;
        }
        const float mn = fmaxf(m, warp_max(sc)); /* finite: key j0 is visible */
        const float p = j < nvis ? expf(sc - mn) : 0.0f;
        const float corr = expf(m - mn); /* 0 on the first tile */
        l = l * corr + warp_sum(p);
#pragma unroll
        for (int c = 0; c < NT; c++) o[c] *= corr;
        const int jn = min(KT, nvis - j0);
        for (int jj = 0; jj < jn; jj++) {
            const float pj = __shfl_sync(0xffffffffu, p, jj);
            const float *vr = Vs + jj * hd;
#pragma unroll
            for (int c = 0; c < NT; c++) {
                int d = lane + 32 * c;
                if (d < hd) o[c] += pj * vr[d];
            }
        }
        m = mn;
    }
    if (!active) return;
    const float inv = 1.0f / l;
    bf16 *dst = out + ((size_t)t * a.H + h) * hd;
#pragma unroll
    for (int c = 0; c < NT; c++) {
        int d = lane + 32 * c;
        if (d < hd) dst[d] = f2bf(o[c] * inv);
    }
    if (lane == 0) lse[(size_t)h * a.n + t] = m + logf(l);
}

template <int NT>
static cudaError_t launch_prefill(const hkg_attn_args *a, bf16 *out, float *lse,
                                  cudaStream_t s) {
    size_t smem = sizeof(float) * ((size_t)KT * (a->hd + 1) + (size_t)KT * a->hd +
                                   (size_t)QROWS * a->hd);
    if (smem > 48 * 1024) {
        cudaError_t e = cudaFuncSetAttribute(attn_prefill_kernel<NT>,
                                             cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             (int)smem);
        if (e != cudaSuccess) return e;
    }
    dim3 grid((a->n + QROWS - 1) / QROWS, a->H);
    attn_prefill_kernel<NT><<<grid, QROWS * 32, smem, s>>>(*a, out, lse);
    return HKG_LAUNCHED();
}

extern "C" cudaError_t hkg_attn_prefill(const hkg_attn_args *a, hkg_bf16 *out, float *lse,
                                        cudaStream_t s) {
    if (a->n <= 0) return cudaSuccess;
    if (a->hd <= 0 || a->hd > HKG_MAX_HEAD_DIM || a->KV <= 0 || a->H % a->KV)
        return cudaErrorInvalidValue;
    bf16 *o = (bf16 *)out;
    if (a->hd <= 32) return launch_prefill<1>(a, o, lse, s);
    if (a->hd <= 64) return launch_prefill<2>(a, o, lse, s);
    if (a->hd <= 128) return launch_prefill<4>(a, o, lse, s);
    return launch_prefill<8>(a, o, lse, s);
}
