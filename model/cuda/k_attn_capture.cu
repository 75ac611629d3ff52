/* Attention statistics for capture, recomputed from q, K and each row's
 * log-sum-exp (written by the attention kernels), so the main kernels never
 * store probabilities: full probability rows for chosen queries, and per-key
 * column max / column sum over a range of queries. Scores are computed with
 * fp32 from the same bf16 inputs as the attention kernels. */
#include "hkg_mma.cuh"

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

/* Column statistics on the tensor cores: a block owns CS_BN keys of one query
 * head and walks the rows [r0, r1) in tiles of 64 (16 per warp); S = Q K^T by
 * mma as in the prefill kernel, p = exp2(S*scale*log2e - lse*log2e), masked,
 * reduced over the rows in registers, then over the warps in shared memory.
 * Either output may be NULL (not stored); acc: max / add into the outputs
 * (each (head, key) has one owner thread, so no atomics). Keys >= nk_out are
 * neither computed nor stored; ld is the outputs' row stride. */
#define CS_BN 64
#define CS_BM 64

template <int HD>
static __global__ void __launch_bounds__(FA_THREADS)
colstats_mma_kernel(hkg_attn_args a, const float *lse, int r0, int r1, int nk_out, int ld,
                    int acc, float *colmax, float *colsum) {
    constexpr int LD = HD + 8, NB = CS_BN / 8;
    extern __shared__ __align__(16) unsigned char cs_smem[];
    bf16 *Ks = reinterpret_cast<bf16 *>(cs_smem), *Qs = Ks + CS_BN * LD;
    __shared__ float red_m[FA_WARPS][CS_BN], red_s[FA_WARPS][CS_BN];
    const int h = blockIdx.y, kvh = h / (a.H / a.KV), hd = a.hd, n = a.n;
    const int j0 = blockIdx.x * CS_BN, len0 = a.len[kvh], nk = len0 + n;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tq = lane & 3;
    const hkg_bf16 *kbase = a.k + (size_t)a.off[kvh] * hd;
    const hkg_bf16 *qbase = a.q + (size_t)h * n * hd;
    const float sl2 = a.scale * LOG2E;
    load_tile<HD, CS_BN>(Ks, kbase + (size_t)j0 * hd, nk - j0, hd, kbase);
    cp_commit();
    float cmax[NB][2], csum[NB][2];
#pragma unroll
    for (int nb = 0; nb < NB; nb++) cmax[nb][0] = cmax[nb][1] = csum[nb][0] = csum[nb][1] = 0.0f;
    /* rows that see none of these keys start after the first row tile that does */
    int rs = r0;
    if (j0 - len0 > rs) rs = j0 - len0;
    rs = r0 + (rs - r0) / CS_BM * CS_BM;
    for (int rt = rs; rt < r1; rt += CS_BM) {
        __syncthreads(); /* previous Q tile consumed */
        load_tile<HD, CS_BM>(Qs, qbase + (size_t)rt * hd, r1 - rt, hd, qbase);
        cp_commit();
        cp_wait<0>();
        __syncthreads();
        const int row_a = rt + warp * 16 + g, row_b = row_a + 8;
        if (rt + warp * 16 >= r1) continue; /* warp-uniform */
        float s[NB][4];
        qk_tile<HD, NB>(s, Qs + warp * 16 * LD, Ks, lane);
        const float la = row_a < r1 ? lse[(size_t)h * n + row_a] * LOG2E : 0.0f;
        const float lb = row_b < r1 ? lse[(size_t)h * n + row_b] * LOG2E : 0.0f;
#pragma unroll
        for (int nb = 0; nb < NB; nb++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int key = j0 + nb * 8 + 2 * tq + (e & 1);
                const int row = e < 2 ? row_a : row_b;
                const bool vis = row < r1 && key <= len0 + row && key < nk;
                const float p = vis ? exp2f(s[nb][e] * sl2 - (e < 2 ? la : lb)) : 0.0f;
                cmax[nb][e & 1] = fmaxf(cmax[nb][e & 1], p);
                csum[nb][e & 1] += p;
            }
    }
    cp_wait<0>(); /* no row tile: the K tile must still land before exit */
    /* over the 8 row groups of the warp (lanes with the same tq) */
#pragma unroll
    for (int nb = 0; nb < NB; nb++)
#pragma unroll
        for (int c = 0; c < 2; c++)
#pragma unroll
            for (int o = 4; o < 32; o <<= 1) {
                cmax[nb][c] = fmaxf(cmax[nb][c], __shfl_xor_sync(0xffffffffu, cmax[nb][c], o));
                csum[nb][c] += __shfl_xor_sync(0xffffffffu, csum[nb][c], o);
            }
    if (g == 0)
#pragma unroll
        for (int nb = 0; nb < NB; nb++)
#pragma unroll
            for (int c = 0; c < 2; c++) {
                red_m[warp][nb * 8 + 2 * tq + c] = cmax[nb][c];
                red_s[warp][nb * 8 + 2 * tq + c] = csum[nb][c];
            }
    __syncthreads();
    for (int c = threadIdx.x; c < CS_BN; c += FA_THREADS) {
        if (j0 + c >= nk_out) continue;
        float m = 0.0f, sum = 0.0f;
        for (int w = 0; w < FA_WARPS; w++) m = fmaxf(m, red_m[w][c]), sum += red_s[w][c];
        const size_t o = (size_t)h * ld + j0 + c;
        if (colmax) colmax[o] = acc ? fmaxf(colmax[o], m) : m;
        if (colsum) colsum[o] = acc ? colsum[o] + sum : sum;
    }
}

template <int HD>
static cudaError_t launch_colstats(const hkg_attn_args *a, const float *lse, int r0, int r1,
                                   int nk_out, int ld, int acc, float *colmax, float *colsum,
                                   cudaStream_t s) {
    constexpr size_t smem = (size_t)(CS_BN + CS_BM) * (HD + 8) * sizeof(bf16);
    static bool raised = false;
    if (smem > 48 * 1024 - 2 * FA_WARPS * CS_BN * 4 && !raised) {
        cudaError_t e = cudaFuncSetAttribute(colstats_mma_kernel<HD>,
                                             cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             (int)smem);
        if (e != cudaSuccess) return e;
        raised = true;
    }
    dim3 grid((nk_out + CS_BN - 1) / CS_BN, a->H);
    colstats_mma_kernel<HD><<<grid, FA_THREADS, smem, s>>>(*a, lse, r0, r1, nk_out, ld, acc,
                                                           colmax, colsum);
    return HKG_LAUNCHED();
}

extern "C" cudaError_t hkg_attn_colstats_ex(const hkg_attn_args *a, const float *lse, int r0,
                                            int r1, int nk_out, int ld, int acc, float *colmax,
                                            float *colsum, cudaStream_t s) {
    if (nk_out <= 0 || (!colmax && !colsum)) return cudaSuccess;
    if (a->hd <= 0 || a->hd % 8 || a->hd > HKG_MAX_HEAD_DIM || a->KV <= 0 || a->H % a->KV ||
        r0 < 0 || r1 > a->n || ld < nk_out)
        return cudaErrorInvalidValue;
#define HKG_CS(D) launch_colstats<D>(a, lse, r0, r1, nk_out, ld, acc, colmax, colsum, s)
    if (a->hd <= 32) return HKG_CS(32);
    if (a->hd <= 64) return HKG_CS(64);
    if (a->hd <= 128) return HKG_CS(128);
    return HKG_CS(256);
#undef HKG_CS
}

extern "C" cudaError_t hkg_attn_colstats(const hkg_attn_args *a, const float *lse, int r0,
                                         int r1, int nk_max, float *colmax, float *colsum,
                                         cudaStream_t s) {
    return hkg_attn_colstats_ex(a, lse, r0, r1, nk_max, nk_max, 0, colmax, colsum, s);
}
