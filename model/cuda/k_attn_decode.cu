/* Decode attention (one new token) over each head's variable-length key
 * list, split over keys: every block handles one (query head, key range) and
 * writes a partial (max, sum, output); a second kernel merges the splits. */
#include "hkg_device.cuh"

#define DEC_WARPS 4
#define DEC_MAX_SPLITS 64
#define DEC_MIN_KEYS 256 /* keys per split at least: short lists use few splits */

size_t hkg_attn_decode_scratch(int H, int hd) {
    return (size_t)H * DEC_MAX_SPLITS * (hd + 2);
}

/* part[(h*n_split + s)*(hd+2)] = {max, sum, o[hd]} of split s of head h. */
template <int NT>
static __global__ void __launch_bounds__(DEC_WARPS * 32)
attn_decode_kernel(hkg_attn_args a, int per_split, float *part) {
    __shared__ float qs[HKG_MAX_HEAD_DIM];
    __shared__ float wm[DEC_WARPS], wl[DEC_WARPS];
    __shared__ float wo[DEC_WARPS][HKG_MAX_HEAD_DIM];
    const int hd = a.hd, h = blockIdx.x, sp = blockIdx.y;
    const int kvh = h / (a.H / a.KV);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int nk = a.len[kvh] + 1;
    const size_t base = (size_t)a.off[kvh];
    for (int i = threadIdx.x; i < hd; i += blockDim.x)
        qs[i] = bf2f(a.q[(size_t)h * hd + i]) * a.scale;
    __syncthreads();

    const int k_begin = sp * per_split, k_end = min(nk, k_begin + per_split);
    float m = -INFINITY, l = 0.0f, o[NT];
#pragma unroll
    for (int c = 0; c < NT; c++) o[c] = 0.0f;
    for (int j0 = k_begin + warp * 32; j0 < k_end; j0 += DEC_WARPS * 32) {
        const int j = j0 + lane;
        float sc = -INFINITY;
        if (j < k_end) {
            const hkg_bf16 *kr = a.k + (base + j) * hd;
            float acc = 0.0f;
            for (int d = 0; d < hd; d++) acc += qs[d] * bf2f(kr[d]);
            sc = acc;
        }
        const float mn = fmaxf(m, warp_max(sc));
        const float p = j < k_end ? expf(sc - mn) : 0.0f;
        const float corr = expf(m - mn);
        l = l * corr + warp_sum(p);
#pragma unroll
        for (int c = 0; c < NT; c++) o[c] *= corr;
        const int jn = min(32, k_end - j0);
        for (int jj = 0; jj < jn; jj++) {
            const float pj = __shfl_sync(0xffffffffu, p, jj);
            const hkg_bf16 *vr = a.v + (base + j0 + jj) * hd;
#pragma unroll
            for (int c = 0; c < NT; c++) {
                int d = lane + 32 * c;
                if (d < hd) o[c] += pj * bf2f(vr[d]);
            }
        }
        m = mn;
    }
    if (lane == 0) {
        wm[warp] = m;
        wl[warp] = l;
    }
#pragma unroll
    for (int c = 0; c < NT; c++) {
        int d = lane + 32 * c;
        if (d < hd) wo[warp][d] = o[c];
    }
    __syncthreads();
    float M = -INFINITY;
    for (int w = 0; w < DEC_WARPS; w++) M = fmaxf(M, wm[w]);
    float *dst = part + ((size_t)h * gridDim.y + sp) * (hd + 2);
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float acc = 0.0f;
        for (int w = 0; w < DEC_WARPS; w++)
            if (wl[w] > 0.0f) acc += wo[w][d] * expf(wm[w] - M);
        dst[2 + d] = acc;
    }
    if (threadIdx.x == 0) {
        float L = 0.0f;
        for (int w = 0; w < DEC_WARPS; w++)
            if (wl[w] > 0.0f) L += wl[w] * expf(wm[w] - M);
        dst[0] = M;
        dst[1] = L;
    }
}

/* One block per query head: merge the splits with a non-empty sum. */
static __global__ void attn_decode_merge(const float *part, int n_split, int hd, int H,
                                         bf16 *out, float *lse) {
    const int h = blockIdx.x;
    const float *p = part + (size_t)h * n_split * (hd + 2);
    float M = -INFINITY, L = 0.0f;
    for (int s = 0; s < n_split; s++)
        if (p[s * (hd + 2) + 1] > 0.0f) M = fmaxf(M, p[s * (hd + 2)]);
    for (int s = 0; s < n_split; s++) {
        const float *q = p + s * (hd + 2);
        if (q[1] > 0.0f) L += q[1] * expf(q[0] - M);
    }
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float acc = 0.0f;
        for (int s = 0; s < n_split; s++) {
            const float *q = p + s * (hd + 2);
            if (q[1] > 0.0f) acc += q[2 + d] * expf(q[0] - M);
        }
        out[(size_t)h * hd + d] = f2bf(acc / L);
    }
    if (threadIdx.x == 0) lse[h] = M + logf(L);
}

template <int NT>
static cudaError_t launch_decode(const hkg_attn_args *a, int per_split, int n_split,
                                 float *part, cudaStream_t s) {
    attn_decode_kernel<NT><<<dim3(a->H, n_split), DEC_WARPS * 32, 0, s>>>(*a, per_split, part);
    return HKG_LAUNCHED();
}

extern "C" cudaError_t hkg_attn_decode(const hkg_attn_args *a, int max_keys, float *part,
                                       hkg_bf16 *out, float *lse, cudaStream_t s) {
    if (a->n != 1 || a->hd <= 0 || a->hd > HKG_MAX_HEAD_DIM || a->KV <= 0 || a->H % a->KV ||
        max_keys < 1)
        return cudaErrorInvalidValue;
    int per_split = (max_keys + DEC_MAX_SPLITS - 1) / DEC_MAX_SPLITS;
    if (per_split < DEC_MIN_KEYS) per_split = DEC_MIN_KEYS;
    per_split = (per_split + 31) / 32 * 32;
    int n_split = (max_keys + per_split - 1) / per_split;
    cudaError_t e;
    if (a->hd <= 32) e = launch_decode<1>(a, per_split, n_split, part, s);
    else if (a->hd <= 64) e = launch_decode<2>(a, per_split, n_split, part, s);
    else if (a->hd <= 128) e = launch_decode<4>(a, per_split, n_split, part, s);
    else e = launch_decode<8>(a, per_split, n_split, part, s);
    if (e != cudaSuccess) return e;
    attn_decode_merge<<<a->H, 128, 0, s>>>(part, n_split, a->hd, a->H, (bf16 *)out, lse);
    return HKG_LAUNCHED();
}
