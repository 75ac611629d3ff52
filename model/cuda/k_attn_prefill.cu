/* Causal prefill attention on the tensor cores, flash style (FA2 layout): a
 * block of 4 warps owns BM = 64 query rows of one query head (16 rows per
 * warp); keys stream through shared memory in tiles of BN, double-buffered
 * with cp.async; S = Q K^T and O += P V run as bf16 mma.sync m16n8k16 with
 * fp32 accumulation and an online softmax in base 2, so no (n x n) matrix is
 * ever stored. Keys of a head are its cache entries followed by the new
 * tokens (already appended); GQA maps query head h to KV head h / (H/KV).
 * head_dim must be a multiple of 8 (16-byte row chunks); it is zero-padded to
 * the kernel's HD, which leaves the products unchanged. */
#include "hkg_mma.cuh"

#define FA_BM 64

/* ---------------------------------------------------------------- kernel */

template <int HD, int BN>
static __global__ void __launch_bounds__(FA_THREADS)
flash_prefill_kernel(hkg_attn_args a, bf16 *out, float *lse) {
    constexpr int LD = HD + 8, NB = BN / 8;
    extern __shared__ __align__(16) unsigned char fa_smem[];
    bf16 *Qs = reinterpret_cast<bf16 *>(fa_smem);
    bf16 *Ks = Qs + FA_BM * LD; /* 2 stages of BN x LD */
    bf16 *Vs = Ks + 2 * BN * LD;

    const int h = blockIdx.x, kvh = h / (a.H / a.KV);
    const int qt = gridDim.y - 1 - blockIdx.y; /* heaviest (latest) tiles first */
    const int t0 = qt * FA_BM, n = a.n, hd = a.hd;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tq = lane & 3;
    const int len0 = a.len[kvh], nk_all = len0 + n;
    const hkg_bf16 *kbase = a.k + (size_t)a.off[kvh] * hd;
    const hkg_bf16 *vbase = a.v + (size_t)a.off[kvh] * hd;
    /* keys the block's last row sees */
    const int nk_blk = len0 + min(t0 + FA_BM, n);
    const int n_tiles = (nk_blk + BN - 1) / BN;

    load_tile<HD, FA_BM>(Qs, a.q + ((size_t)h * n + t0) * hd, n - t0, hd, a.q);
    load_tile<HD, BN>(Ks, kbase, nk_all, hd, kbase);
    load_tile<HD, BN>(Vs, vbase, nk_all, hd, vbase);
    cp_commit();

    const int wr0 = t0 + warp * 16;          /* first row of this warp */
    const int row_a = wr0 + g, row_b = row_a + 8;
    const float sl2 = a.scale * LOG2E;
    float m_a = -INFINITY, m_b = -INFINITY, l_a = 0.0f, l_b = 0.0f;
    float o[HD / 8][4];
#pragma unroll
    for (int i = 0; i < HD / 8; i++) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;

    for (int it = 0; it < n_tiles; it++) {
        const int j0 = it * BN, st = it & 1;
        if (it + 1 < n_tiles) {
            const int jn = j0 + BN, nxt = st ^ 1;
            load_tile<HD, BN>(Ks + nxt * BN * LD, kbase + (size_t)jn * hd, nk_all - jn, hd,
                              kbase);
            load_tile<HD, BN>(Vs + nxt * BN * LD, vbase + (size_t)jn * hd, nk_all - jn, hd,
                              vbase);
            cp_commit();
            cp_wait<1>();
        } else {
            cp_wait<0>();
        }
        __syncthreads();
        const bf16 *K = Ks + st * BN * LD, *V = Vs + st * BN * LD;
        /* warp-uniform: skip rows past the chunk and tiles wholly above the diagonal */
        if (wr0 < n && j0 <= len0 + wr0 + 15) {
            /* S = Q K^T: 16 rows x BN keys per warp */
            float s[NB][4];
            qk_tile<HD, NB>(s, Qs + warp * 16 * LD, K, lane);
            /* scale to base 2, mask keys beyond the causal limit or the list */
            const bool edge = j0 + BN > len0 + wr0 + 1 || j0 + BN > nk_all;
            float mx_a = -INFINITY, mx_b = -INFINITY;
#pragma unroll
            for (int nb = 0; nb < NB; nb++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const int key = j0 + nb * 8 + 2 * tq + (e & 1);
                    const int row = e < 2 ? row_a : row_b;
                    float v = s[nb][e] * sl2;
                    if (edge && (key > len0 + row || key >= nk_all)) v = -INFINITY;
                    s[nb][e] = v;
                    if (e < 2) mx_a = fmaxf(mx_a, v);
                    else mx_b = fmaxf(mx_b, v);
                }
#pragma unroll
            for (int o2 = 1; o2 < 4; o2 <<= 1) {
                mx_a = fmaxf(mx_a, __shfl_xor_sync(0xffffffffu, mx_a, o2));
                mx_b = fmaxf(mx_b, __shfl_xor_sync(0xffffffffu, mx_b, o2));
            }
            const float mn_a = fmaxf(m_a, mx_a), mn_b = fmaxf(m_b, mx_b);
            /* a row with nothing visible so far keeps m = -inf: shift by 0 */
            const float sh_a = mn_a == -INFINITY ? 0.0f : mn_a;
            const float sh_b = mn_b == -INFINITY ? 0.0f : mn_b;
            const float c_a = exp2f(m_a - sh_a), c_b = exp2f(m_b - sh_b);
            float sum_a = 0.0f, sum_b = 0.0f;
#pragma unroll
            for (int nb = 0; nb < NB; nb++) {
                s[nb][0] = exp2f(s[nb][0] - sh_a);
                s[nb][1] = exp2f(s[nb][1] - sh_a);
                s[nb][2] = exp2f(s[nb][2] - sh_b);
                s[nb][3] = exp2f(s[nb][3] - sh_b);
                sum_a += s[nb][0] + s[nb][1];
                sum_b += s[nb][2] + s[nb][3];
            }
            l_a = l_a * c_a + sum_a; /* quad-partial: reduced once at the end */
            l_b = l_b * c_b + sum_b;
            m_a = mn_a;
            m_b = mn_b;
#pragma unroll
            for (int i = 0; i < HD / 8; i++) {
                o[i][0] *= c_a, o[i][1] *= c_a, o[i][2] *= c_b, o[i][3] *= c_b;
            }
            /* O += P V: P's accumulator layout is the A-operand layout */
#pragma unroll
            for (int kk = 0; kk < BN / 16; kk++) {
                unsigned pa[4] = {pack_bf16(s[2 * kk][0], s[2 * kk][1]),
                                  pack_bf16(s[2 * kk][2], s[2 * kk][3]),
                                  pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                                  pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3])};
                const int mi = lane >> 3;
#pragma unroll
                for (int nd = 0; nd < HD / 8; nd += 2) {
                    unsigned vb[4];
                    ldsm_x4_t(vb, V + (kk * 16 + (lane & 7) + (mi & 1) * 8) * LD + nd * 8 +
                                      (mi >> 1) * 8);
                    mma_bf16(o[nd], pa, vb[0], vb[1]);
                    mma_bf16(o[nd + 1], pa, vb[2], vb[3]);
                }
            }
        }
        __syncthreads(); /* this stage is refilled two iterations on */
    }

#pragma unroll
    for (int o2 = 1; o2 < 4; o2 <<= 1) {
        l_a += __shfl_xor_sync(0xffffffffu, l_a, o2);
        l_b += __shfl_xor_sync(0xffffffffu, l_b, o2);
    }
    const float inv_a = 1.0f / l_a, inv_b = 1.0f / l_b;
#pragma unroll
    for (int i = 0; i < HD / 8; i++) {
        const int d = i * 8 + 2 * tq;
        if (d >= hd) continue;
        if (row_a < n)
            *reinterpret_cast<__nv_bfloat162 *>(out + ((size_t)row_a * a.H + h) * hd + d) =
                __floats2bfloat162_rn(o[i][0] * inv_a, o[i][1] * inv_a);
        if (row_b < n)
            *reinterpret_cast<__nv_bfloat162 *>(out + ((size_t)row_b * a.H + h) * hd + d) =
                __floats2bfloat162_rn(o[i][2] * inv_b, o[i][3] * inv_b);
    }
    if (tq == 0) { /* natural-log LSE of the scaled scores */
        if (row_a < n) lse[(size_t)h * n + row_a] = (m_a + log2f(l_a)) / LOG2E;
        if (row_b < n) lse[(size_t)h * n + row_b] = (m_b + log2f(l_b)) / LOG2E;
    }
}

/* ---------------------------------------------------------------- launch */

template <int HD, int BN>
static cudaError_t launch_flash(const hkg_attn_args *a, bf16 *out, float *lse, cudaStream_t s) {
    constexpr size_t smem = (size_t)(FA_BM + 4 * BN) * (HD + 8) * sizeof(bf16);
    static bool raised = false; /* the limit is per kernel and process */
    if (smem > 48 * 1024 && !raised) {
        cudaError_t e = cudaFuncSetAttribute(flash_prefill_kernel<HD, BN>,
                                             cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             (int)smem);
        if (e != cudaSuccess) return e;
        raised = true;
    }
    dim3 grid(a->H, (a->n + FA_BM - 1) / FA_BM);
    flash_prefill_kernel<HD, BN><<<grid, FA_THREADS, smem, s>>>(*a, out, lse);
    return HKG_LAUNCHED();
}

extern "C" cudaError_t hkg_attn_prefill(const hkg_attn_args *a, hkg_bf16 *out, float *lse,
                                        cudaStream_t s) {
    if (a->n <= 0) return cudaSuccess;
    if (a->hd <= 0 || a->hd % 8 || a->hd > HKG_MAX_HEAD_DIM || a->KV <= 0 || a->H % a->KV ||
        (a->n + FA_BM - 1) / FA_BM > 65535)
        return cudaErrorInvalidValue;
    bf16 *o = (bf16 *)out;
    if (a->hd <= 32) return launch_flash<32, 64>(a, o, lse, s);
    if (a->hd <= 64) return launch_flash<64, 64>(a, o, lse, s);
    if (a->hd <= 128) return launch_flash<128, 64>(a, o, lse, s);
    return launch_flash<256, 32>(a, o, lse, s);
}
