/* Tensor-core helpers shared by the attention kernels: cp.async, ldmatrix,
 * bf16 mma.sync m16n8k16 with fp32 accumulation, and the padded shared-memory
 * tile loader. Blocks of FA_THREADS threads. */
#ifndef HKG_MMA_CUH
#define HKG_MMA_CUH

#include "hkg_device.cuh"

#define FA_WARPS 4
#define FA_THREADS (FA_WARPS * 32)
#define LOG2E 1.4426950408889634f

/* ---------------------------------------------------------------- PTX wrappers */

static __device__ __forceinline__ unsigned smem_addr(const void *p) {
    return (unsigned)__cvta_generic_to_shared(p);
}

/* 16 bytes global -> shared; zero-filled when !valid (src is then not read). */
static __device__ __forceinline__ void cp_async16(void *dst, const void *src, bool valid) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)),
                 "l"(src), "r"(valid ? 16 : 0));
}
static __device__ __forceinline__ void cp_commit() { asm volatile("cp.async.commit_group;\n"); }
template <int N> static __device__ __forceinline__ void cp_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

static __device__ __forceinline__ void ldsm_x4(unsigned r[4], const void *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p)));
}
static __device__ __forceinline__ void ldsm_x4_t(unsigned r[4], const void *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p)));
}

/* c (16x8 fp32) += a (16x16 bf16, row) . b (16x8 bf16, col). */
static __device__ __forceinline__ void mma_bf16(float c[4], const unsigned a[4], unsigned b0,
                                                unsigned b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, "
                 "{%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* 2^x in one MUFU op (exp2f adds denormal handling); 2^-inf = 0. */
static __device__ __forceinline__ float fast_exp2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}

static __device__ __forceinline__ unsigned pack_bf16(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<unsigned *>(&v);
}

/* ---------------------------------------------------------------- tiles */

/* rows x HD tile (row stride LD elements in shared memory) from global rows
 * src + r*hd, r < valid; dims >= hd and rows >= valid are zero (their source
 * address is `safe`, a valid pointer that is not read). */
template <int HD, int ROWS>
static __device__ __forceinline__ void load_tile(bf16 *dst, const hkg_bf16 *src, int valid,
                                                 int hd, const hkg_bf16 *safe) {
    /* each thread owns one 16-byte column chunk c and every RSTEP-th row:
     * a fixed, fully unrolled trip count (a strided loop over threadIdx.x
     * compiled to ~60 instructions per chunk) */
    constexpr int LD = HD + 8, CH = HD / 8, RSTEP = FA_THREADS / CH;
    static_assert(FA_THREADS % CH == 0, "chunks per row must divide the block");
    const int c = threadIdx.x % CH, r0 = threadIdx.x / CH;
    const bool cok = c * 8 < hd;
#pragma unroll
    for (int i = 0; i < (ROWS + RSTEP - 1) / RSTEP; i++) {
        const int r = r0 + i * RSTEP;
        if (ROWS % RSTEP == 0 || r < ROWS) {
            const bool ok = cok && r < valid;
            cp_async16(dst + r * LD + c * 8, ok ? src + (size_t)r * hd + c * 8 : safe, ok);
        }
    }
}

/* s (16 x 8*NB) = one warp's 16 query rows (Qw, row stride HD + 8) times the
 * key tile K (8*NB rows, same stride) transposed. */
template <int HD, int NB>
static __device__ __forceinline__ void qk_tile(float s[NB][4], const bf16 *Qw, const bf16 *K,
                                               int lane) {
    constexpr int LD = HD + 8;
    const int mi = lane >> 3;
#pragma unroll
    for (int i = 0; i < NB; i++) s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < HD / 16; kk++) {
        unsigned qa[4];
        ldsm_x4(qa, Qw + ((lane & 7) + (mi & 1) * 8) * LD + kk * 16 + (mi >> 1) * 8);
#pragma unroll
        for (int nb = 0; nb < NB; nb += 2) {
            unsigned kb[4];
            ldsm_x4(kb, K + (nb * 8 + (lane & 7) + (mi >> 1) * 8) * LD + kk * 16 + (mi & 1) * 8);
            mma_bf16(s[nb], qa, kb[0], kb[1]);
            mma_bf16(s[nb + 1], qa, kb[2], kb[3]);
        }
    }
}

#endif
