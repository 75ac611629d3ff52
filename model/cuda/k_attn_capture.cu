/* Attention statistics for capture, recomputed from q, K and each row's
 * log-sum-exp (written by the attention kernels), so the main kernels never
 * store probabilities: full probability rows for chosen queries, and per-key
 * column max / column sum over a range of queries. Scores are computed with
 * the same operations and order as the attention kernels. */
#include "hkg_device.cuh"

/* Scaled score of query qs (shared, pre-scaled) against key row kr. */
static __device__ __forceinline__ float score(const float *qs, const hkg_bf16 *kr, int hd) {
    float acc = 0.0f;
    for (int d = 0; d < hd; d++) acc += qs[d] * bf2f(kr[d]);
    return acc;
}

/* One block per (captured row, query head); threads stride over keys. */
static __global__ void attn_probs_kernel(hkg_attn_args a, const float *lse,
                                         const int32_t *rows, int n_rows, int nk_max,
                                         float *probs) {
    __shared__ float qs[HKG_MAX_HEAD_DIM];
    const int r = blockIdx.x, h = blockIdx.y, hd = a.hd;
    const int kvh = h / (a.H / a.KV), t = rows[r];
    for (int i = threadIdx.x; i < hd; i += blockDim.x)
        qs[i] = bf2f(a.q[((size_t)h * a.n + t) * hd + i]) * a.scale;
    __syncthreads();
    const int nvis = a.len[kvh] + t + 1;
    const float ls = lse[(size_t)h * a.n + t];
    const size_t base = (size_t)a.off[kvh];
    float *dst = probs + ((size_t)h * n_rows + r) * nk_max;
    for (int j = threadIdx.x; j < nk_max; j += blockDim.x)
        dst[j] = j < nvis ? expf(score(qs, a.k + (base + j) * hd, hd) - ls) : 0.0f;
}

extern "C" cudaError_t hkg_attn_probs(const hkg_attn_args *a, const float *lse,
                                      const int32_t *rows, int n_rows, int nk_max, float *probs,
                                      cudaStream_t s) {
    if (n_rows <= 0) return cudaSuccess;
    if (a->hd <= 0 || a->hd > HKG_MAX_HEAD_DIM || a->KV <= 0 || a->H % a->KV)
        return cudaErrorInvalidValue;
    attn_probs_kernel<<<dim3(n_rows, a->H), 256, 0, s>>>(*a, lse, rows, n_rows, nk_max, probs);
    return HKG_LAUNCHED();
}

#define CS_KEYS 128 /* keys (threads) per block */
#define CS_ROWS 16  /* query rows staged in shared memory at a time */

/* One block per (key range, query head); each thread owns one key and loops
 * over the query rows, staged CS_ROWS at a time. */
static __global__ void __launch_bounds__(CS_KEYS)
attn_colstats_kernel(hkg_attn_args a, const float *lse, int r0, int r1, int nk_max,
                     float *colmax, float *colsum) {
    __shared__ float qs[CS_ROWS][HKG_MAX_HEAD_DIM];
    __shared__ float ls[CS_ROWS];
    const int h = blockIdx.y, hd = a.hd, kvh = h / (a.H / a.KV);
    const int j = blockIdx.x * CS_KEYS + threadIdx.x;
    const int len0 = a.len[kvh];
    const hkg_bf16 *kr = a.k + ((size_t)a.off[kvh] + (j < nk_max ? j : 0)) * hd;
    float cmax = 0.0f, csum = 0.0f;
    for (int rb = r0; rb < r1; rb += CS_ROWS) {
        const int nr = min(CS_ROWS, r1 - rb);
        __syncthreads();
        for (int e = threadIdx.x; e < nr * hd; e += blockDim.x) {
            int r = e / hd, d = e - r * hd;
            qs[r][d] = bf2f(a.q[((size_t)h * a.n + rb + r) * hd + d]) * a.scale;
        }
        for (int r = threadIdx.x; r < nr; r += blockDim.x) ls[r] = lse[(size_t)h * a.n + rb + r];
        __syncthreads();
        for (int r = 0; r < nr; r++) {
            if (j >= len0 + rb + r + 1) continue; /* masked: p = 0 */
            float p = expf(score(qs[r], kr, hd) - ls[r]);
            cmax = fmaxf(cmax, p);
            csum += p;
        }
    }
    if (j < nk_max) {
        colmax[(size_t)h * nk_max + j] = cmax;
        colsum[(size_t)h * nk_max + j] = csum;
    }
}

extern "C" cudaError_t hkg_attn_colstats(const hkg_attn_args *a, const float *lse, int r0,
                                         int r1, int nk_max, float *colmax, float *colsum,
                                         cudaStream_t s) {
    if (nk_max <= 0) return cudaSuccess;
    if (a->hd <= 0 || a->hd > HKG_MAX_HEAD_DIM || a->KV <= 0 || a->H % a->KV || r0 < 0 ||
        r1 > a->n)
        return cudaErrorInvalidValue;
    dim3 grid((nk_max + CS_KEYS - 1) / CS_KEYS, a->H);
    attn_colstats_kernel<<<grid, CS_KEYS, 0, s>>>(*a, lse, r0, r1, nk_max, colmax, colsum);
    return HKG_LAUNCHED();
}
