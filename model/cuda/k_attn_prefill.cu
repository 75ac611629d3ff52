/* Causal prefill attention on the tensor cores, flash style (FA2 layout): a
 * block of 4 warps owns BM = 64 * MT query rows of one query head (16 * MT
 * rows per warp: with MT = 2 every K/V fragment read from shared memory feeds
 * two m16 tiles, halving ldmatrix traffic per mma); keys stream through
 * shared memory in tiles of BN, double-buffered with cp.async; S = Q K^T and
 * O += P V run as bf16 mma.sync m16n8k16 with fp32 accumulation and an online
 * softmax in base 2, so no (n x n) matrix is ever stored. Q fragments stay in
 * registers when they fit. Keys of a head are its cache entries followed by
 * the new tokens (already appended); GQA maps query head h to KV head
 * h / (H/KV). head_dim must be a multiple of 8 (16-byte row chunks); it is
 * zero-padded to the kernel's HD, which leaves the products unchanged. */
#include "hkg_mma.cuh"

/* ---------------------------------------------------------------- kernel */

template <int HD, int BN, int MT>
static __global__ void __launch_bounds__(FA_THREADS)
flash_prefill_kernel(hkg_attn_args a, bf16 *out, float *lse) {
    constexpr int LD = HD + 8, NB = BN / 8, BM = FA_WARPS * 16 * MT, WR = 16 * MT;
    /* Q fragments in registers when they cost <= 32 of them */
    constexpr bool QREG = MT * HD <= 128;
    extern __shared__ __align__(16) unsigned char fa_smem[];
    bf16 *Qs = reinterpret_cast<bf16 *>(fa_smem);
    bf16 *Ks = Qs + BM * LD; /* 2 stages of BN x LD */
    bf16 *Vs = Ks + 2 * BN * LD;

    const int h = blockIdx.x, kvh = h / (a.H / a.KV);
    const int qt = gridDim.y - 1 - blockIdx.y; /* heaviest (latest) tiles first */
    const int t0 = qt * BM, n = a.n, hd = a.hd;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tq = lane & 3;
    const int mi = lane >> 3;
    const int len0 = a.len[kvh], nk_all = len0 + n;
    const hkg_bf16 *kbase = a.k + (size_t)a.off[kvh] * hd;
    const hkg_bf16 *vbase = a.v + (size_t)a.off[kvh] * hd;
    /* keys the block's last row sees */
    const int nk_blk = len0 + min(t0 + BM, n);
    const int n_tiles = (nk_blk + BN - 1) / BN;

    load_tile<HD, BM>(Qs, a.q + ((size_t)h * n + t0) * hd, n - t0, hd, a.q);
    load_tile<HD, BN>(Ks, kbase, nk_all, hd, kbase);
    load_tile<HD, BN>(Vs, vbase, nk_all, hd, vbase);
    cp_commit();

    const int wr0 = t0 + warp * WR; /* first row of this warp */
    const bf16 *Qw = Qs + warp * WR * LD;
    const float sl2 = a.scale * LOG2E;
    /* running max (raw scores) and quad-partial sums: [m-tile][row g / g+8] */
    float m[MT][2], l[MT][2], o[MT][HD / 8][4];
    unsigned qf[QREG ? MT : 1][QREG ? HD / 16 : 1][4];
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
        m[mt][0] = m[mt][1] = -INFINITY;
        l[mt][0] = l[mt][1] = 0.0f;
#pragma unroll
        for (int i = 0; i < HD / 8; i++) o[mt][i][0] = o[mt][i][1] = o[mt][i][2] = o[mt][i][3] = 0.0f;
    }

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
        if (QREG && it == 0) {
#pragma unroll
            for (int mt = 0; mt < MT; mt++)
#pragma unroll
                for (int kk = 0; kk < (QREG ? HD / 16 : 1); kk++)
                    ldsm_x4(qf[mt][kk], Qw + (mt * 16 + (lane & 7) + (mi & 1) * 8) * LD +
                                            kk * 16 + (mi >> 1) * 8);
        }
        const bf16 *K = Ks + st * BN * LD, *V = Vs + st * BN * LD;
        /* warp-uniform: skip rows past the chunk and tiles wholly above the diagonal */
        if (wr0 < n && j0 <= len0 + wr0 + WR - 1) {
            /* S = Q K^T: WR rows x BN keys per warp, each K fragment used MT times */
            float s[MT][NB][4];
#pragma unroll
            for (int mt = 0; mt < MT; mt++)
#pragma unroll
                for (int i = 0; i < NB; i++) s[mt][i][0] = s[mt][i][1] = s[mt][i][2] = s[mt][i][3] = 0.0f;
#pragma unroll
            for (int kk = 0; kk < HD / 16; kk++) {
                unsigned qa[MT][4];
#pragma unroll
                for (int mt = 0; mt < MT; mt++) {
                    if (QREG) {
#pragma unroll
                        for (int r = 0; r < 4; r++) qa[mt][r] = qf[mt][QREG ? kk : 0][r];
                    } else {
                        ldsm_x4(qa[mt], Qw + (mt * 16 + (lane & 7) + (mi & 1) * 8) * LD +
                                            kk * 16 + (mi >> 1) * 8);
                    }
                }
#pragma unroll
                for (int nb = 0; nb < NB; nb += 2) {
                    unsigned kb[4];
                    ldsm_x4(kb, K + (nb * 8 + (lane & 7) + (mi >> 1) * 8) * LD + kk * 16 +
                                    (mi & 1) * 8);
#pragma unroll
                    for (int mt = 0; mt < MT; mt++) {
                        mma_bf16(s[mt][nb], qa[mt], kb[0], kb[1]);
                        mma_bf16(s[mt][nb + 1], qa[mt], kb[2], kb[3]);
                    }
                }
            }
            /* mask keys beyond the causal limit or the list: edge tiles only,
             * behind a warp-uniform branch (predicated, it costs ~3
             * instructions per score on every tile) */
            if (j0 + BN > len0 + wr0 + 1 || j0 + BN > nk_all) {
#pragma unroll
                for (int mt = 0; mt < MT; mt++)
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        /* first masked key of this row, relative to the lane's key 0 */
                        const int row = wr0 + mt * 16 + g + (e >> 1) * 8;
                        const int lim = min(len0 + row + 1, nk_all) - j0 - 2 * tq;
#pragma unroll
                        for (int nb = 0; nb < NB; nb++)
                            if (nb * 8 + (e & 1) >= lim) s[mt][nb][e] = -INFINITY;
                    }
            }
#pragma unroll
            for (int mt = 0; mt < MT; mt++) {
                float mx_a = -INFINITY, mx_b = -INFINITY;
#pragma unroll
                for (int nb = 0; nb < NB; nb++) {
                    mx_a = fmaxf(mx_a, fmaxf(s[mt][nb][0], s[mt][nb][1]));
                    mx_b = fmaxf(mx_b, fmaxf(s[mt][nb][2], s[mt][nb][3]));
                }
#pragma unroll
                for (int o2 = 1; o2 < 4; o2 <<= 1) {
                    mx_a = fmaxf(mx_a, __shfl_xor_sync(0xffffffffu, mx_a, o2));
                    mx_b = fmaxf(mx_b, __shfl_xor_sync(0xffffffffu, mx_b, o2));
                }
                const float mn_a = fmaxf(m[mt][0], mx_a), mn_b = fmaxf(m[mt][1], mx_b);
                /* a row with nothing visible so far keeps m = -inf: shift by 0 */
                const float sh_a = mn_a == -INFINITY ? 0.0f : mn_a * sl2;
                const float sh_b = mn_b == -INFINITY ? 0.0f : mn_b * sl2;
                const float c_a = fast_exp2(m[mt][0] * sl2 - sh_a);
                const float c_b = fast_exp2(m[mt][1] * sl2 - sh_b);
                float sum_a = 0.0f, sum_b = 0.0f;
#pragma unroll
                for (int nb = 0; nb < NB; nb++) {
                    s[mt][nb][0] = fast_exp2(fmaf(s[mt][nb][0], sl2, -sh_a));
                    s[mt][nb][1] = fast_exp2(fmaf(s[mt][nb][1], sl2, -sh_a));
                    s[mt][nb][2] = fast_exp2(fmaf(s[mt][nb][2], sl2, -sh_b));
                    s[mt][nb][3] = fast_exp2(fmaf(s[mt][nb][3], sl2, -sh_b));
                    sum_a += s[mt][nb][0] + s[mt][nb][1];
                    sum_b += s[mt][nb][2] + s[mt][nb][3];
                }
                l[mt][0] = l[mt][0] * c_a + sum_a; /* quad-partial: reduced once at the end */
                l[mt][1] = l[mt][1] * c_b + sum_b;
                /* past the first tiles a row max rarely moves: skip the O
                 * rescale (HD/2 multiplies per lane) when no row of the
                 * warp's m-tile changed (warp-uniform vote) */
                if (__any_sync(0xffffffffu, mn_a != m[mt][0] || mn_b != m[mt][1])) {
#pragma unroll
                    for (int i = 0; i < HD / 8; i++) {
                        o[mt][i][0] *= c_a, o[mt][i][1] *= c_a;
                        o[mt][i][2] *= c_b, o[mt][i][3] *= c_b;
                    }
                }
                m[mt][0] = mn_a;
                m[mt][1] = mn_b;
            }
            /* O += P V: P's accumulator layout is the A-operand layout; each V
             * fragment feeds MT tiles */
#pragma unroll
            for (int kk = 0; kk < BN / 16; kk++) {
                unsigned pa[MT][4];
#pragma unroll
                for (int mt = 0; mt < MT; mt++) {
                    pa[mt][0] = pack_bf16(s[mt][2 * kk][0], s[mt][2 * kk][1]);
                    pa[mt][1] = pack_bf16(s[mt][2 * kk][2], s[mt][2 * kk][3]);
                    pa[mt][2] = pack_bf16(s[mt][2 * kk + 1][0], s[mt][2 * kk + 1][1]);
                    pa[mt][3] = pack_bf16(s[mt][2 * kk + 1][2], s[mt][2 * kk + 1][3]);
                }
#pragma unroll
                for (int nd = 0; nd < HD / 8; nd += 2) {
                    unsigned vb[4];
                    ldsm_x4_t(vb, V + (kk * 16 + (lane & 7) + (mi & 1) * 8) * LD + nd * 8 +
                                      (mi >> 1) * 8);
#pragma unroll
                    for (int mt = 0; mt < MT; mt++) {
                        mma_bf16(o[mt][nd], pa[mt], vb[0], vb[1]);
                        mma_bf16(o[mt][nd + 1], pa[mt], vb[2], vb[3]);
                    }
                }
            }
        }
        __syncthreads(); /* this stage is refilled two iterations on */
    }

#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
        float l_a = l[mt][0], l_b = l[mt][1];
#pragma unroll
        for (int o2 = 1; o2 < 4; o2 <<= 1) {
            l_a += __shfl_xor_sync(0xffffffffu, l_a, o2);
            l_b += __shfl_xor_sync(0xffffffffu, l_b, o2);
        }
        const int row_a = wr0 + mt * 16 + g, row_b = row_a + 8;
        const float inv_a = 1.0f / l_a, inv_b = 1.0f / l_b;
#pragma unroll
        for (int i = 0; i < HD / 8; i++) {
            const int d = i * 8 + 2 * tq;
            if (d >= hd) continue;
            if (row_a < n)
                *reinterpret_cast<__nv_bfloat162 *>(out + ((size_t)row_a * a.H + h) * hd + d) =
                    __floats2bfloat162_rn(o[mt][i][0] * inv_a, o[mt][i][1] * inv_a);
            if (row_b < n)
                *reinterpret_cast<__nv_bfloat162 *>(out + ((size_t)row_b * a.H + h) * hd + d) =
                    __floats2bfloat162_rn(o[mt][i][2] * inv_b, o[mt][i][3] * inv_b);
        }
        if (tq == 0) { /* natural-log LSE of the scaled scores */
            if (row_a < n) lse[(size_t)h * n + row_a] = a.scale * m[mt][0] + logf(l_a);
            if (row_b < n) lse[(size_t)h * n + row_b] = a.scale * m[mt][1] + logf(l_b);
        }
    }
}

/* ---------------------------------------------------------------- launch */

template <int HD, int BN, int MT>
static cudaError_t launch_flash(const hkg_attn_args *a, bf16 *out, float *lse, cudaStream_t s) {
    constexpr int BM = FA_WARPS * 16 * MT;
    constexpr size_t smem = (size_t)(BM + 4 * BN) * (HD + 8) * sizeof(bf16);
    static bool raised = false; /* the limit is per kernel and process */
    if (smem > 48 * 1024 && !raised) {
        cudaError_t e = cudaFuncSetAttribute(flash_prefill_kernel<HD, BN, MT>,
                                             cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             (int)smem);
        if (e != cudaSuccess) return e;
        raised = true;
    }
    if ((a->n + BM - 1) / BM > 65535) return cudaErrorInvalidValue;
    dim3 grid(a->H, (a->n + BM - 1) / BM);
    flash_prefill_kernel<HD, BN, MT><<<grid, FA_THREADS, smem, s>>>(*a, out, lse);
    return HKG_LAUNCHED();
}

extern "C" cudaError_t hkg_attn_prefill(const hkg_attn_args *a, hkg_bf16 *out, float *lse,
                                        cudaStream_t s) {
    if (a->n <= 0) return cudaSuccess;
    if (a->hd <= 0 || a->hd % 8 || a->hd > HKG_MAX_HEAD_DIM || a->KV <= 0 || a->H % a->KV)
        return cudaErrorInvalidValue;
    bf16 *o = (bf16 *)out;
    /* short chunks keep 64-row blocks: more blocks to fill the SMs */
    const bool wide = a->n > 1024;
    if (a->hd <= 32)
        return wide ? launch_flash<32, 64, 2>(a, o, lse, s) : launch_flash<32, 64, 1>(a, o, lse, s);
    /* Hopper: the warpgroup-MMA kernel (k_attn_prefill_wg.cu), for long
     * chunks, or shorter ones whose 128-row blocks still fill the SMs */
    const bool wg_fill = wide || (long)a->H * ((a->n + 127) / 128) >= hkg_sm_count();
    if ((a->hd == 64 || a->hd == 128) && wg_fill) {
        cudaError_t e = hkg_attn_prefill_wg(a, out, lse, s);
        if (e != cudaErrorNotSupported) return e;
    }
    if (a->hd <= 64)
        return wide ? launch_flash<64, 64, 2>(a, o, lse, s) : launch_flash<64, 64, 1>(a, o, lse, s);
    if (a->hd <= 128) return launch_flash<128, 64, 1>(a, o, lse, s);
    return launch_flash<256, 32, 1>(a, o, lse, s);
}
