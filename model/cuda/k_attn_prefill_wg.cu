/* Causal prefill attention for head_dim 64 and 128 on Hopper's warpgroup MMA
 * (wgmma, sm_90a): the same online-softmax flash algorithm and outputs as
 * k_attn_prefill.cu, whose mma.sync kernel tops out near 335 TFLOP/s
 * (latency-bound: bench/gpu/NOTES.md); this one reaches about 400 (H100,
 * 32K; 420 at hd 128, where the mma.sync kernel gives 260). A block of WG_NWG warpgroups owns 64 query rows each of one
 * query head; Q, K and V tiles sit in shared memory in the
 * 128-byte swizzled layout wgmma reads (cp.async, K/V double-buffered); S =
 * Q K^T is one m64 x BN wgmma chain per warpgroup from shared memory, and
 * O += P V takes P straight from the S accumulators (registers) and V as an
 * MN-major operand. Only built into sm_90a code: hkg_attn_prefill_wg reports
 * cudaErrorNotSupported elsewhere, and the caller keeps the mma.sync kernel. */
#include "hkg_mma.cuh"
#include "hkg_wgmma.cuh"

#define WG_NWG 2  /* warpgroups per block (3 or 4: 307 / 357 TFLOP/s at 32K vs 404) */
#define WG_BN 64  /* keys per tile (128: 332 TFLOP/s, one block per SM) */

/* rows x HD bf16 from global rows src + r * HD (r < valid, else zeros) into
 * dst as HD / 64 swizzled tiles of rows x 64 (128-byte rows), one after the
 * other: wgmma reads a K-major operand 64 elements (one swizzle atom) wide. */
template <int ROWS, int NT, int HD>
static __device__ __forceinline__ void wg_load(bf16 *dst, const hkg_bf16 *src, int valid, const hkg_bf16 *safe) {
    constexpr int CH = HD / 8; /* 16-byte chunks per row */
#pragma unroll
    for (int i = 0; i < (ROWS * CH + NT - 1) / NT; i++) {
        const int e = threadIdx.x + i * NT, r = e / CH, c = e % CH, half = c >> 3, cc = c & 7;
        if ((ROWS * CH) % NT && e >= ROWS * CH) break;
        const bool ok = r < valid;
        cp_async16(reinterpret_cast<char *>(dst) + half * ROWS * 128 + r * 128 + ((cc ^ (r & 7)) << 4),
                   ok ? src + (size_t)r * HD + c * 8 : safe, ok);
    }
}

template <int HD, int BN, int NWG>
static __global__ void __launch_bounds__(NWG * 128) flash_prefill_wg(hkg_attn_args a, bf16 *out, float *lse) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    static_assert(BN == 64, "the S products below are m64n64");
    /* NS: S floats per thread; NH: 64-wide halves of a row (O takes one
     * m64n64 product per half) */
    constexpr int BM = NWG * 64, NS = BN / 2, NT = NWG * 128, NH = HD / 64;
    extern __shared__ unsigned char wg_smem_raw[];
    /* 1024-byte aligned tiles (the swizzle pattern repeats every 8 rows) */
    unsigned char *base = wg_smem_raw + ((1024 - (smem_addr(wg_smem_raw) & 1023)) & 1023);
    bf16 *Qs = reinterpret_cast<bf16 *>(base);
    bf16 *Ks = Qs + BM * HD; /* 2 stages of BN x HD */
    bf16 *Vs = Ks + 2 * BN * HD;

    const int h = blockIdx.x, kvh = h / (a.H / a.KV);
    const int qt = gridDim.y - 1 - blockIdx.y; /* heaviest (latest) tiles first */
    const int t0 = qt * BM, n = a.n;
    const int wg = threadIdx.x >> 7, tw = threadIdx.x & 127, warp = tw >> 5, lane = tw & 31;
    const int g = lane >> 2, tq = lane & 3;
    const int len0 = a.len[kvh], nk_all = len0 + n;
    const hkg_bf16 *kbase = a.k + (size_t)a.off[kvh] * HD;
    const hkg_bf16 *vbase = a.v + (size_t)a.off[kvh] * HD;
    const int nk_blk = len0 + min(t0 + BM, n); /* keys the block's last row sees */
    const int n_tiles = (nk_blk + BN - 1) / BN;

    wg_load<BM, NT, HD>(Qs, a.q + ((size_t)h * n + t0) * HD, n - t0, a.q);
    wg_load<BN, NT, HD>(Ks, kbase, nk_all, kbase);
    wg_load<BN, NT, HD>(Vs, vbase, nk_all, vbase);
    cp_commit();

    const int wr0 = t0 + wg * 64;             /* first row of this warpgroup */
    const int row_a = wr0 + warp * 16 + g;    /* this thread's two rows */
    const float sl2 = a.scale * LOG2E;
    const uint64_t dq = wg_desc(smem_addr(Qs + wg * 64 * 64)); /* + half * BM * 128 bytes */
    float m_a = -INFINITY, m_b = -INFINITY, l_a = 0.0f, l_b = 0.0f, o[NH][32];
#pragma unroll
    for (int hh = 0; hh < NH; hh++)
#pragma unroll
        for (int i = 0; i < 32; i++) o[hh][i] = 0.0f;

    for (int it = 0; it < n_tiles; it++) {
        const int j0 = it * BN, st = it & 1;
        if (it + 1 < n_tiles) {
            const int jn = j0 + BN, nx = st ^ 1;
            wg_load<BN, NT, HD>(Ks + nx * BN * HD, kbase + (size_t)jn * HD, nk_all - jn, kbase);
            wg_load<BN, NT, HD>(Vs + nx * BN * HD, vbase + (size_t)jn * HD, nk_all - jn, vbase);
            cp_commit();
            cp_wait<1>();
        } else {
            cp_wait<0>();
        }
        fence_proxy_async();
        __syncthreads();
        /* warpgroup-uniform: rows past the chunk, tiles wholly above the diagonal */
        if (wr0 < n && j0 <= len0 + wr0 + 63) {
            const bf16 *K = Ks + st * BN * HD, *V = Vs + st * BN * HD;
            const uint64_t dk = wg_desc(smem_addr(K)), dv = wg_desc(smem_addr(V));
            float s[NS];
            wg_fence();
#pragma unroll
            for (int hh = 0; hh < NH; hh++)
#pragma unroll
                for (int k = 0; k < 4; k++) /* 16 dims = 32 bytes = 2 descriptor units */
                    wgmma_ss_n64(s, dq + (uint64_t)(hh * BM * 128 >> 4) + 2 * k,
                                 dk + (uint64_t)(hh * BN * 128 >> 4) + 2 * k, hh | k);
            wg_commit();
            wg_wait0();
            /* s[4j + e]: row row_a (+8 for e >= 2), key j0 + 8j + 2tq + (e & 1) */
            if (j0 + BN > len0 + wr0 + 1 || j0 + BN > nk_all) {
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const int row = row_a + (e >> 1) * 8;
                    const int lim = min(len0 + row + 1, nk_all) - j0 - 2 * tq - (e & 1);
#pragma unroll
                    for (int j = 0; j < BN / 8; j++)
                        if (8 * j >= lim) s[4 * j + e] = -INFINITY;
                }
            }
            float mx_a = -INFINITY, mx_b = -INFINITY;
#pragma unroll
            for (int j = 0; j < BN / 8; j++) {
                mx_a = fmaxf(mx_a, fmaxf(s[4 * j], s[4 * j + 1]));
                mx_b = fmaxf(mx_b, fmaxf(s[4 * j + 2], s[4 * j + 3]));
            }
#pragma unroll
            for (int o2 = 1; o2 < 4; o2 <<= 1) {
                mx_a = fmaxf(mx_a, __shfl_xor_sync(0xffffffffu, mx_a, o2));
                mx_b = fmaxf(mx_b, __shfl_xor_sync(0xffffffffu, mx_b, o2));
            }
            const float mn_a = fmaxf(m_a, mx_a), mn_b = fmaxf(m_b, mx_b);
            /* a row with nothing visible so far keeps m = -inf: shift by 0 */
            const float sh_a = mn_a == -INFINITY ? 0.0f : mn_a * sl2;
            const float sh_b = mn_b == -INFINITY ? 0.0f : mn_b * sl2;
            const float c_a = fast_exp2(m_a * sl2 - sh_a), c_b = fast_exp2(m_b * sl2 - sh_b);
            float sum_a = 0.0f, sum_b = 0.0f;
#pragma unroll
            for (int j = 0; j < BN / 8; j++) {
                s[4 * j] = fast_exp2(fmaf(s[4 * j], sl2, -sh_a));
                s[4 * j + 1] = fast_exp2(fmaf(s[4 * j + 1], sl2, -sh_a));
                s[4 * j + 2] = fast_exp2(fmaf(s[4 * j + 2], sl2, -sh_b));
                s[4 * j + 3] = fast_exp2(fmaf(s[4 * j + 3], sl2, -sh_b));
                sum_a += s[4 * j] + s[4 * j + 1];
                sum_b += s[4 * j + 2] + s[4 * j + 3];
            }
            l_a = l_a * c_a + sum_a; /* quad-partial: reduced once at the end */
            l_b = l_b * c_b + sum_b;
            if (__any_sync(0xffffffffu, mn_a != m_a || mn_b != m_b)) {
#pragma unroll
                for (int hh = 0; hh < NH; hh++)
#pragma unroll
                    for (int j = 0; j < 8; j++)
                        o[hh][4 * j] *= c_a, o[hh][4 * j + 1] *= c_a, o[hh][4 * j + 2] *= c_b, o[hh][4 * j + 3] *= c_b;
            }
            m_a = mn_a, m_b = mn_b;
            /* O += P V: the S accumulator layout is the A-fragment layout */
            wg_fence();
#pragma unroll
            for (int kk = 0; kk < BN / 16; kk++) {
                const unsigned pa[4] = {pack_bf16(s[8 * kk], s[8 * kk + 1]), pack_bf16(s[8 * kk + 2], s[8 * kk + 3]),
                                        pack_bf16(s[8 * kk + 4], s[8 * kk + 5]),
                                        pack_bf16(s[8 * kk + 6], s[8 * kk + 7])};
#pragma unroll
                for (int hh = 0; hh < NH; hh++) /* 16 keys = 2048 bytes */
                    wgmma_rs_n64_tb(o[hh], pa, dv + (uint64_t)((hh * BN * 128 + kk * 16 * 128) >> 4));
            }
            wg_commit();
            wg_wait0();
        }
        __syncthreads(); /* this stage is refilled two iterations on */
    }

#pragma unroll
    for (int o2 = 1; o2 < 4; o2 <<= 1) {
        l_a += __shfl_xor_sync(0xffffffffu, l_a, o2);
        l_b += __shfl_xor_sync(0xffffffffu, l_b, o2);
    }
    const int row_b = row_a + 8;
    const float inv_a = 1.0f / l_a, inv_b = 1.0f / l_b;
#pragma unroll
    for (int hh = 0; hh < NH; hh++)
#pragma unroll
        for (int j = 0; j < 8; j++) {
            const int d = hh * 64 + 8 * j + 2 * tq;
            if (row_a < n)
                *reinterpret_cast<__nv_bfloat162 *>(out + ((size_t)row_a * a.H + h) * HD + d) =
                    __floats2bfloat162_rn(o[hh][4 * j] * inv_a, o[hh][4 * j + 1] * inv_a);
            if (row_b < n)
                *reinterpret_cast<__nv_bfloat162 *>(out + ((size_t)row_b * a.H + h) * HD + d) =
                    __floats2bfloat162_rn(o[hh][4 * j + 2] * inv_b, o[hh][4 * j + 3] * inv_b);
        }
    if (tq == 0) { /* natural-log LSE of the scaled scores */
        if (row_a < n) lse[(size_t)h * n + row_a] = a.scale * m_a + logf(l_a);
        if (row_b < n) lse[(size_t)h * n + row_b] = a.scale * m_b + logf(l_b);
    }
#endif
}

/* 1 where this file's sm_90a code runs (the fatbin also holds plain sm_90
 * code, in which the kernels above are empty). */
static __global__ void wg_available(int *flag) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    *flag = 1;
#else
    *flag = 0;
#endif
}

static int wg_usable(void) {
    static int state = -1; /* -1 unknown, 0 no, 1 yes (first call decides) */
    if (state >= 0) return state;
    state = 0;
    int *d = NULL, h = 0;
    if (cudaMalloc(&d, sizeof *d) != cudaSuccess) return 0;
    wg_available<<<1, 1>>>(d);
    if (cudaMemcpy(&h, d, sizeof h, cudaMemcpyDeviceToHost) == cudaSuccess) state = h == 1;
    cudaFree(d);
    cudaGetLastError(); /* a launch failure here only means "not usable" */
    return state;
}

template <int HD, int BN, int NWG>
static cudaError_t launch_wg(const hkg_attn_args *a, bf16 *out, float *lse, cudaStream_t s) {
    constexpr int BM = NWG * 64;
    constexpr size_t smem = (size_t)(BM + 4 * BN) * HD * sizeof(bf16) + 1024;
    static bool raised = false;
    if (!raised) {
        cudaError_t e = cudaFuncSetAttribute(flash_prefill_wg<HD, BN, NWG>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        if (e != cudaSuccess) return e;
        raised = true;
    }
    if ((a->n + BM - 1) / BM > 65535) return cudaErrorInvalidValue;
    dim3 grid(a->H, (a->n + BM - 1) / BM);
    flash_prefill_wg<HD, BN, NWG><<<grid, NWG * 128, smem, s>>>(*a, out, lse);
    return HKG_LAUNCHED();
}

extern "C" cudaError_t hkg_attn_prefill_wg(const hkg_attn_args *a, hkg_bf16 *out, float *lse, cudaStream_t s) {
    if ((a->hd != 64 && a->hd != 128) || !wg_usable()) return cudaErrorNotSupported;
    if (a->hd == 128) return launch_wg<128, WG_BN, WG_NWG>(a, (bf16 *)out, lse, s);
    return launch_wg<64, WG_BN, WG_NWG>(a, (bf16 *)out, lse, s);
}
