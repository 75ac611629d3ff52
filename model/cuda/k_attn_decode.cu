/* Decode attention (one new token) over each head's variable-length key
 * list, split over keys (flash-decoding): a block owns one KV head, the query
 * heads that share it (GQA: each K/V row is read once for all of them) and
 * one key range, and writes a partial (max, sum, output) per query head; a
 * second kernel merges the splits. Bandwidth: a group of head_dim/8 lanes
 * reads one key row as 16-byte chunks, so a warp covers several keys per load.
 * The split count comes from the model's capacity-independent `max_keys`;
 * splits past a head's length write an empty partial. */
#include "hkg_device.cuh"

#define DEC_WARPS 4
#define DEC_THREADS (DEC_WARPS * 32)
#define DEC_MAX_SPLITS 128
#define DEC_MIN_KEYS 32 /* keys per split at least */

size_t hkg_attn_decode_scratch(int H, int hd) {
    return (size_t)H * DEC_MAX_SPLITS * (hd + 2);
}

/* Block (kv head x head group, split). LPK lanes per key (a power of two >=
 * hd/8); G query heads of the group (<= MG). part[(h*n_split + s)*(hd+2)] =
 * {max, sum, o[hd]}, o not yet divided by sum. */
template <int MG>
static __global__ void __launch_bounds__(DEC_THREADS)
attn_decode_kernel(hkg_attn_args a, int lpk, int per_split, float *part) {
    __shared__ float sm_m[DEC_WARPS][MG], sm_l[DEC_WARPS][MG];
    __shared__ float sm_o[DEC_WARPS][MG][HKG_MAX_HEAD_DIM];
    const int hd = a.hd, grp = a.H / a.KV;
    const int groups = (grp + MG - 1) / MG;
    const int kvh = blockIdx.x / groups, h0 = kvh * grp + (blockIdx.x % groups) * MG;
    const int G = min(MG, kvh * grp + grp - h0);
    const int sp = blockIdx.y, n_split = gridDim.y;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int sub = lane & (lpk - 1), kpw = 32 / lpk, gi = lane / lpk;
    const bool dims_ok = sub * 8 < hd;
    const int nk = a.len[kvh] + 1;
    const size_t base = (size_t)a.off[kvh];

    float q[MG][8], o[MG][8], m[MG], l[MG];
#pragma unroll
    for (int g = 0; g < MG; g++) {
        float tmp[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        if (g < G && dims_ok)
            unpack8(*reinterpret_cast<const uint4 *>(a.q + (size_t)(h0 + g) * hd + sub * 8), tmp);
#pragma unroll
        for (int i = 0; i < 8; i++) q[g][i] = tmp[i] * a.scale, o[g][i] = 0.0f;
        m[g] = -INFINITY, l[g] = 0.0f;
    }

    /* split this head's own keys evenly: a graph sized for the capacity still
     * spreads a shorter list over all its blocks */
    per_split = max(min(per_split, (nk + n_split - 1) / n_split), DEC_MIN_KEYS);
    const int k_begin = sp * per_split, k_end = min(nk, k_begin + per_split);
    const int step = DEC_WARPS * kpw;
    for (int j = k_begin + warp * kpw + gi; j - gi < k_end; j += step) {
        const bool ok = j < k_end && dims_ok;
        uint4 ku = make_uint4(0, 0, 0, 0), vu = ku;
        if (ok) {
            ku = *reinterpret_cast<const uint4 *>(a.k + (base + j) * hd + sub * 8);
            vu = *reinterpret_cast<const uint4 *>(a.v + (base + j) * hd + sub * 8);
        }
        float kf[8], vf[8];
        unpack8(ku, kf);
        unpack8(vu, vf);
#pragma unroll
        for (int g = 0; g < MG; g++) {
            float s = 0.0f;
#pragma unroll
            for (int i = 0; i < 8; i++) s += q[g][i] * kf[i];
            for (int off = lpk >> 1; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
            if (j >= k_end) continue; /* lanes of a key agree: the shuffles are done */
            const float mn = fmaxf(m[g], s);
            const float c = __expf(m[g] - mn), p = __expf(s - mn);
            l[g] = l[g] * c + p;
#pragma unroll
            for (int i = 0; i < 8; i++) o[g][i] = o[g][i] * c + p * vf[i];
            m[g] = mn;
        }
    }
    /* key groups of the warp -> lanes with gi == 0 */
    for (int off = lpk; off < 32; off <<= 1)
#pragma unroll
        for (int g = 0; g < MG; g++) {
            float o2[8];
#pragma unroll
            for (int i = 0; i < 8; i++) o2[i] = __shfl_xor_sync(0xffffffffu, o[g][i], off);
            const float m2 = __shfl_xor_sync(0xffffffffu, m[g], off);
            const float l2 = __shfl_xor_sync(0xffffffffu, l[g], off);
            merge_state(m[g], l[g], o[g], m2, l2, o2);
        }
    if (gi == 0)
#pragma unroll
        for (int g = 0; g < MG; g++) {
            if (sub == 0) sm_m[warp][g] = m[g], sm_l[warp][g] = l[g];
            if (dims_ok)
#pragma unroll
                for (int i = 0; i < 8; i++) sm_o[warp][g][sub * 8 + i] = o[g][i];
        }
    __syncthreads();
    /* warps -> the split's partial, one thread per (head, dim) */
    for (int e = threadIdx.x; e < G * hd; e += DEC_THREADS) {
        const int g = e / hd, d = e - g * hd;
        float M = -INFINITY;
        for (int w = 0; w < DEC_WARPS; w++) M = fmaxf(M, sm_m[w][g]);
        float L = 0.0f, acc = 0.0f;
        for (int w = 0; w < DEC_WARPS; w++) {
            if (sm_l[w][g] <= 0.0f) continue;
            const float f = __expf(sm_m[w][g] - M);
            L += sm_l[w][g] * f;
            acc += sm_o[w][g][d] * f;
        }
        float *dst = part + ((size_t)(h0 + g) * n_split + sp) * (hd + 2);
        dst[2 + d] = acc;
        if (d == 0) dst[0] = M, dst[1] = L;
    }
}

/* One block per query head: merge the splits with a non-empty sum. The
 * splits are spread over the threads too (S groups of hd threads, each a
 * strided subset), so no thread walks all of them one load after another. */
#define MERGE_THREADS 256
static __global__ void __launch_bounds__(MERGE_THREADS)
attn_decode_merge(const float *part, int n_split, int hd, bf16 *out, float *lse) {
    __shared__ float w[DEC_MAX_SPLITS];
    __shared__ float red[32];
    __shared__ float acc_s[MERGE_THREADS];
    const int h = blockIdx.x;
    const float *p = part + (size_t)h * n_split * (hd + 2);
    float M = -INFINITY;
    for (int s = threadIdx.x; s < n_split; s += blockDim.x)
        if (p[s * (hd + 2) + 1] > 0.0f) M = fmaxf(M, p[s * (hd + 2)]);
    M = warp_max(M);
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = M;
    __syncthreads();
    M = -INFINITY;
    for (int i = 0; i < (int)(blockDim.x >> 5); i++) M = fmaxf(M, red[i]);
    float lp = 0.0f;
    for (int s = threadIdx.x; s < n_split; s += blockDim.x) {
        const float *q = p + s * (hd + 2);
        w[s] = q[1] > 0.0f ? __expf(q[0] - M) : 0.0f;
        lp += w[s] * q[1];
    }
    const float L = block_sum(lp, red); /* its barriers also publish w */
    const int S = blockDim.x / hd > 0 ? blockDim.x / hd : 1;
    const int d0 = threadIdx.x % hd, sg = threadIdx.x / hd;
    for (int d = d0; d < hd; d += (int)blockDim.x) {
        float acc = 0.0f;
        if (sg < S) {
#pragma unroll 4
            for (int s = sg; s < n_split; s += S)
                acc += w[s] > 0.0f ? p[s * (hd + 2) + 2 + d] * w[s] : 0.0f;
        }
        if (S > 1) {
            acc_s[threadIdx.x] = acc;
            __syncthreads();
            if (sg == 0)
                for (int g2 = 1; g2 < S; g2++) acc += acc_s[g2 * hd + d];
        }
        if (sg == 0) out[(size_t)h * hd + d] = f2bf(acc / L);
    }
    if (threadIdx.x == 0) lse[h] = M + logf(L);
}

/* Streaming multiprocessors of the current device (132 on an H100 if the
 * query fails); cached after the first call. */
extern "C" int hkg_sm_count(void) {
    static int n = 0;
    if (!n) {
        int dev = 0;
        if (cudaGetDevice(&dev) != cudaSuccess ||
            cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess)
            n = 132;
    }
    return n;
}

template <int MG>
static cudaError_t launch_decode(const hkg_attn_args *a, int lpk, int per_split, int n_split,
                                 float *part, cudaStream_t s) {
    const int grp = a->H / a->KV, groups = (grp + MG - 1) / MG;
    attn_decode_kernel<MG><<<dim3(a->KV * groups, n_split), DEC_THREADS, 0, s>>>(*a, lpk,
                                                                                per_split, part);
    return HKG_LAUNCHED();
}

extern "C" cudaError_t hkg_attn_decode(const hkg_attn_args *a, int max_keys, float *part,
                                       hkg_bf16 *out, float *lse, cudaStream_t s) {
    if (a->n != 1 || a->hd <= 0 || a->hd % 8 || a->hd > HKG_MAX_HEAD_DIM || a->KV <= 0 ||
        a->H % a->KV || max_keys < 1)
        return cudaErrorInvalidValue;
    int lpk = 1;
    while (lpk * 8 < a->hd) lpk <<= 1;
    const int grp = a->H / a->KV, mg = grp <= 1 ? 1 : grp <= 2 ? 2 : grp <= 4 ? 4 : 8;
    const int blocks_per_split = a->KV * ((grp + mg - 1) / mg);
    /* about 4 blocks per SM in all, each with at least DEC_MIN_KEYS keys */
    int n_split = (4 * hkg_sm_count() + blocks_per_split - 1) / blocks_per_split;
    int by_keys = (max_keys + DEC_MIN_KEYS - 1) / DEC_MIN_KEYS;
    if (n_split > by_keys) n_split = by_keys;
    if (n_split > DEC_MAX_SPLITS) n_split = DEC_MAX_SPLITS;
    if (n_split < 1) n_split = 1;
    const int per_split = (max_keys + n_split - 1) / n_split;
    cudaError_t e;
    if (mg == 1) e = launch_decode<1>(a, lpk, per_split, n_split, part, s);
    else if (mg == 2) e = launch_decode<2>(a, lpk, per_split, n_split, part, s);
    else if (mg == 4) e = launch_decode<4>(a, lpk, per_split, n_split, part, s);
    else e = launch_decode<8>(a, lpk, per_split, n_split, part, s);
    if (e != cudaSuccess) return e;
    attn_decode_merge<<<a->H, MERGE_THREADS, 0, s>>>(part, n_split, a->hd, (bf16 *)out, lse);
    return HKG_LAUNCHED();
}
