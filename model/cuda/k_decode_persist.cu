/* Decode of one token through the whole model in one persistent kernel. For
 * small models, batch-1 decode is bound by latency, not bandwidth (SmolLM2:
 * ~45 us per layer over 7 kernels whose bytes need ~5): here one block per
 * SM runs every phase of every layer, with a grid barrier (~0.8 us) between
 * phases instead of a kernel boundary. Each block copies the weights and K/V
 * rows its next phases read into shared memory ahead of time, so a phase
 * waits on DRAM only where its copies were issued too late to land.
 * bench/gpu/NOTES.md has the per-phase times (HKG_PD_TRACE=1 prints them).
 *
 * Phases of layer l (p = l & 1):
 *   A  residual x_l = x_{l-1} + dA + dD (kept in every block's shared memory),
 *      RMSNorm, the block's qkv rows (+ bias)                        -> qkv
 *   B  per (KV head, key split): q/k norm, RoPE and bf16 rounding as
 *      hkg_rope_scatter does; split 0 appends the new K/V and attends to it
 *      from shared memory; attention over the split's keys         -> part
 *   C  per (query head, row slice): merge the head's split partials, then
 *      its share of wo . attn added into dA[p] (fp32 atomics)
 *   D  RMSNorm of x_l + dA, the block's slice of the gate/up rows + SwiGLU,
 *      then that slice's share of the down product added into dD[p] (one of
 *      PD_DREP copies)
 * then RMSNorm + lm_head rows -> logits (and, for greedy decode, their
 * argmax). The atomics make the residual's low bits depend on the order
 * blocks finish in; numerics otherwise follow the per-kernel path (bf16
 * products, fp32 accumulation, the same roundings). The last block out
 * advances the cache lengths and resets the barrier (pd_exit), so tokens
 * follow each other with no host work in between.
 *
 * A producer warp per block brings the block's slices of each layer into
 * shared memory by bulk copies (TMA), region by region (see issue_region),
 * each as soon as the phase that read it in the layer before has released
 * it; each region completes an mbarrier that the phase using it waits on. A
 * weight region that does not fit in shared memory is read from global
 * memory instead, and keys past the staged ones in chunks.
 * Hopper (sm_90) code: bulk copies, mbarrier byte counts, vector reductions. */
#include "hkg_device.cuh"

#include <stdio.h>
#include <stdlib.h>

/* 15 consumer warps run the phases; the 16th is the producer that issues the
 * bulk copies (see issue_region). Consumer-only block barriers: csync. */
#define PD_THREADS 480
#define PD_WARPS (PD_THREADS / 32)
#define PD_BLOCK (PD_THREADS + 32)
#define PD_WINDOW 2 /* regions in flight per block at most (HKG_PD_WINDOW) */
#define PD_MAX_GRP 8 /* query heads per KV head */
#define PD_MAX_IN 16384
#define PD_MIN_KV_KEYS 64 /* staged keys per block at least, else fewer weights staged */
/* Copies of the MLP output the blocks add into (block b into copy b % PD_DREP):
 * adds to one address queue at its L2 slice; with 132 blocks on one copy the
 * barrier after phase D took 3.0 us, with 8 copies 2.7. Readers sum them. */
#define PD_DREP 8

/* ---------------------------------------------------------------- sync, copies */

/* barrier 1 over the consumer warps (the producer warp never joins) */
static __device__ __forceinline__ void csync(void) {
    asm volatile("bar.sync 1, %0;" ::"n"(PD_THREADS) : "memory");
}

/* block_sum over the consumer warps */
struct pd_sync_consumers {
    __device__ void operator()() const { csync(); }
};
static __device__ __forceinline__ float csum(float v, float *sh) {
    return block_sum_over(v, sh, PD_WARPS, pd_sync_consumers());
}

static __device__ __forceinline__ unsigned ld_acquire(const unsigned *p) {
    unsigned v;
    asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
    return v;
}

static __device__ __forceinline__ unsigned long long global_ns(void) {
    unsigned long long t;
    asm volatile("mov.u64 %0, %globaltimer;" : "=l"(t));
    return t;
}

/* Bulk copies (TMA) into shared memory, completed on an mbarrier: one
 * instruction per contiguous region instead of one per 16 bytes. */
static __device__ __forceinline__ unsigned smem_u32(const void *p) {
    return (unsigned)__cvta_generic_to_shared(p);
}
static __device__ __forceinline__ void mbar_init(unsigned long long *b) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(smem_u32(b)) : "memory");
}
/* the group's single arrival, announcing the bytes its copies will bring */
static __device__ __forceinline__ void mbar_expect(unsigned long long *b, unsigned bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(smem_u32(b)),
                 "r"(bytes)
                 : "memory");
}
static __device__ __forceinline__ void tma_copy(void *dst, const void *src, unsigned bytes,
                                                unsigned long long *b) {
    if (!bytes) return;
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], "
                 "%2, [%3];" ::"r"(smem_u32(dst)),
                 "l"(src), "r"(bytes), "r"(smem_u32(b))
                 : "memory");
}
/* Wait (acquire) for phase `parity` of b: the copies' bytes are visible to
 * this thread afterwards. */
static __device__ __forceinline__ void mbar_wait(unsigned long long *b, unsigned parity) {
    asm volatile("{\n .reg .pred p;\n"
                 "WAIT_%=: mbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1;\n"
                 " @!p bra WAIT_%=;\n}" ::"r"(smem_u32(b)),
                 "r"(parity)
                 : "memory");
}
/* mbar_wait, then a consumer barrier (so that what the threads wrote before
 * is published too) */
static __device__ __forceinline__ void stage_wait(unsigned long long *b, unsigned parity) {
    mbar_wait(b, parity);
    csync();
}

/* Barrier state of a block: *bar counts arrivals since the launch (zeroed
 * before it); trace (HKG_PD_TRACE) records per event and block the arrival,
 * the exit and up to 4 marks. */
typedef struct {
    unsigned *bar;
    unsigned gen;
    unsigned long long *trace;
    int ev;
} pd_sync;

static __device__ __forceinline__ void mark(const pd_sync &g, int k) {
    if (g.trace && threadIdx.x == 0)
        g.trace[((size_t)g.ev * gridDim.x + blockIdx.x) * 6 + 2 + k] = global_ns();
}

/* Every block of the grid arrives before any leaves; writes before are
 * visible after. */
static __device__ __forceinline__ void grid_sync(pd_sync &g) {
    csync();
    g.gen++;
    if (threadIdx.x == 0) {
        if (g.trace) g.trace[((size_t)g.ev * gridDim.x + blockIdx.x) * 6] = global_ns();
        /* release: the block's writes (ordered before by the bar.sync) first */
        asm volatile("red.release.gpu.global.add.u32 [%0], 1;" ::"l"(g.bar) : "memory");
        const unsigned target = g.gen * gridDim.x;
        while (ld_acquire(g.bar) < target) {
        }
        if (g.trace) g.trace[((size_t)g.ev * gridDim.x + blockIdx.x) * 6 + 1] = global_ns();
    }
    g.ev++;
    csync();
}

/* Phase `ph` (0-3: A-D) of layer l is over in this block and its staged
 * regions are free: every consumer thread arrives on named barrier
 * pd_free_bar(ph, l), which the producer warp syncs on before it copies
 * into them (a bar.sync hand-off, which compute-sanitizer's racecheck
 * follows; with an mbarrier arrive/wait between the warps, as correct,
 * racecheck reported every later bulk copy as a race). One barrier per
 * phase and layer parity: a block is at most one layer ahead of its
 * producer's wait. Called after the next phase's first global reads, not
 * at the grid barrier: the copies it unblocks would queue the barrier's and
 * those reads' traffic behind them (HKG_PD_TRACE: barriers 5.1 -> 4.9 us
 * per layer). The MLP regions (phase D) are released in the next layer's
 * phase B, not A: their 5 MB streamed during A's barrier had made it 2.2 us
 * instead of 1.0 (B's shared-memory work does not mind them). */
static __device__ __forceinline__ int pd_free_bar(int ph, int l) { return 2 + 2 * ph + (l & 1); }
static __device__ __forceinline__ void release(int ph, int l, int n_layers) {
    if (l + 1 < n_layers) /* the last layer's regions are not copied into again */
        asm volatile("bar.arrive %0, %1;" ::"r"(pd_free_bar(ph, l)), "n"(PD_BLOCK) : "memory");
}

/* What phase B of layer l frees, after its first global reads: its layer's
 * qkv regions and the layer before's MLP regions (see release). */
static __device__ __forceinline__ void release_in_b(int l, int n_layers) {
    release(0, l, n_layers);
    if (l > 0) release(3, l - 1, n_layers);
}

/* generic-proxy reads of a region before bulk copies overwrite it */
static __device__ __forceinline__ void proxy_fence(void) {
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
}

/* This block's share of [p, p + bytes) into L2 (p 16-byte aligned, bytes a
 * multiple of 16); nothing waits for it. */
static __device__ __forceinline__ void l2_prefetch(const void *p, size_t bytes) {
    const size_t units = bytes / 16;
    const size_t u0 = units * blockIdx.x / gridDim.x, u1 = units * (blockIdx.x + 1) / gridDim.x;
    const char *base = (const char *)p;
    const size_t piece = 4096; /* 64 KB per bulk prefetch */
    for (size_t u = u0 + threadIdx.x * piece; u < u1; u += (size_t)PD_THREADS * piece) {
        const unsigned n = (unsigned)((u1 - u < piece ? u1 - u : piece) * 16);
        asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(base + u * 16), "r"(n)
                     : "memory");
    }
}

/* ---------------------------------------------------------------- products */

static __device__ __forceinline__ const bf16 *bfp(const hkg_bf16 *p) {
    return reinterpret_cast<const bf16 *>(p);
}

/* a 16-byte chunk of weights: from shared memory, or streamed from global */
template <bool SM>
static __device__ __forceinline__ uint4 ldw(const uint4 *p) {
    if (SM) return *p;
    return ld_stream(p);
}

/* xs (n bf16) = bf16(x * rsqrt(mean(x^2) + eps) * w) as hkg_rmsnorm; x in
 * shared memory. */
static __device__ void block_norm(const float *x, const float *w, int n, float eps, bf16 *xs,
                                  float *red) {
    float ss = 0.0f;
    for (int i = threadIdx.x; i < n; i += PD_THREADS) ss += x[i] * x[i];
    const float inv = rsqrtf(csum(ss, red) / (float)n + eps);
    for (int i = threadIdx.x; i < n; i += PD_THREADS) xs[i] = f2bf(x[i] * inv * w[i]);
    csync();
}

/* One warp: dots of R weight rows (nch 16-byte chunks each) with xs (shared);
 * every lane gets the sums. All loads of a 128-chunk stretch are issued
 * before the first product. */
template <int R, bool SM>
static __device__ __forceinline__ void warp_dots(const bf16 *const *w, int nch, const uint4 *xs,
                                                 float *out) {
    const int lane = threadIdx.x & 31;
    float a[R];
#pragma unroll
    for (int r = 0; r < R; r++) a[r] = 0.0f;
    for (int c0 = 0; c0 < nch; c0 += 128) {
        uint4 u[R][4];
#pragma unroll
        for (int r = 0; r < R; r++)
#pragma unroll
            for (int k = 0; k < 4; k++) {
                const int c = c0 + lane + 32 * k;
                u[r][k] = c < nch ? ldw<SM>(reinterpret_cast<const uint4 *>(w[r]) + c)
                                  : make_uint4(0, 0, 0, 0);
            }
#pragma unroll
        for (int k = 0; k < 4; k++) {
            const int c = c0 + lane + 32 * k;
            if (c < nch) {
                const uint4 xv = xs[c];
#pragma unroll
                for (int r = 0; r < R; r++) a[r] += dot8(u[r][k], xv);
            }
        }
    }
#pragma unroll
    for (int r = 0; r < R; r++) out[r] = warp_sum(a[r]);
}

/* [i*n/k, (i+1)*n/k): share i of k of n items */
static __host__ __device__ __forceinline__ int part0(int n, int i, int k) {
    return (int)((long long)n * i / k);
}
static __device__ __forceinline__ int share0(int n) { return part0(n, blockIdx.x, gridDim.x); }
static __device__ __forceinline__ int share1(int n) { return part0(n, blockIdx.x + 1, gridDim.x); }

/* ---------------------------------------------------------------- layout */

/* Partial of (query head, split): {max, sum, -, -, o[hd]} */
#define PD_PS(hd) ((hd) + 4)

/* Shared memory plan, in floats from the start of the dynamic block, each
 * region 16-byte aligned; w_* < 0: that weight region is read from global
 * memory. */
typedef struct {
    int tb;          /* tables: layer table, lengths, offsets, RoPE cos and sin */
    int xs, xf, qb, pc, mw, oh, hs, red;
    int nw1, nw2, qkn; /* attn_norm, ffn_norm, q_norm + k_norm */
    int w_qkv, w_o, w_gu, w_down;
    int kv, sc;      /* K rows then V rows (kv_keys + 1 each), scores (grp, kv_keys + 1) */
    int kv_keys;     /* cache keys staged per block; one more row for the new key */
    int rows_a;      /* qkv rows per block at most */
    int rows_c, bph; /* wo rows per block at most, blocks per query head */
    int rows_d;      /* rows of ff per block at most */
    int total;
} pd_smem;

static __host__ __device__ int up4(int n) { return (n + 3) / 4 * 4; }

/* Table offsets inside the tb region, in 4-byte words. */
static __host__ __device__ int tb_len(const hkg_pd_args *a) {
    return a->n_layers * (int)(sizeof(hkg_pd_layer) / 4);
}
static __host__ __device__ int tb_off(const hkg_pd_args *a) {
    return tb_len(a) + a->n_layers * a->KV;
}
static __host__ __device__ int tb_rope(const hkg_pd_args *a) { return tb_off(a) + a->KV; }

static __host__ __device__ pd_smem pd_smem_plan(const hkg_pd_args *a, int S, int nb,
                                                int limit_floats) {
    pd_smem m;
    const int grp = a->H / a->KV, hd = a->hd, d = a->d;
    const int qkvw = (a->H + 2 * a->KV) * hd, in = d > a->H * hd ? d : a->H * hd;
    m.rows_a = (qkvw + nb - 1) / nb;
    m.bph = nb / a->H;
    m.rows_c = m.bph > 0 ? (d + m.bph - 1) / m.bph : d;
    m.rows_d = (a->ff + nb - 1) / nb;
    int o = 0;
    m.tb = o, o += up4(tb_rope(a) + hd);
    m.xs = o, o += up4(in / 2 + 1);
    m.xf = o, o += up4(d);
    m.qb = o, o += up4((grp + 2) * hd);
    m.pc = o, o += S * PD_PS(hd);
    m.mw = o, o += up4(S + 2);
    m.oh = o, o += up4(hd);
    m.hs = o, o += up4(m.rows_d);
    m.red = o, o += up4(PD_WARPS * PD_MAX_GRP + 4 * PD_MAX_GRP);
    m.nw1 = o, o += up4(d);
    m.nw2 = o, o += up4(d);
    m.qkn = o, o += up4(2 * hd);
    const int base = o;
    const int per_key = hd + grp; /* K and V rows (hd bf16 each), a score per head */
    /* weights in phase order, then K/V; drop weights from the last phase
     * back until the K/V region holds PD_MIN_KV_KEYS keys */
    const int wsz[4] = {m.rows_a * d / 2, m.rows_c * hd / 2, m.rows_d * 2 * d / 2,
                        d * m.rows_d / 2};
    int nw = a->no_stage ? 0 : 4;
    for (;;) {
        o = base;
        for (int i = 0; i < nw; i++) o += up4(wsz[i]);
        const int left = limit_floats - o - up4(per_key) - 8;
        if (nw == 0 || (left >= PD_MIN_KV_KEYS * per_key &&
                        left >= PD_THREADS * 8 + PD_MIN_KV_KEYS * grp + 4))
            break;
        nw--;
    }
    o = base;
    int *w[4] = {&m.w_qkv, &m.w_o, &m.w_gu, &m.w_down};
    for (int i = 0; i < 4; i++) {
        if (i < nw) *w[i] = o, o += up4(wsz[i]);
        else *w[i] = -1;
    }
    const int left = limit_floats - o - up4(per_key) - 8;
    m.kv_keys = left > 0 ? left / per_key : 0;
    if (a->kv_keys_max > 0 && m.kv_keys > a->kv_keys_max) m.kv_keys = a->kv_keys_max;
    /* K then V rows; also phase B's sums of its key subsets at the end */
    const int kvf = (m.kv_keys + 1) * hd;
    m.kv = o, o += up4(kvf > PD_THREADS * 8 ? kvf : PD_THREADS * 8);
    m.sc = o, o += up4(grp * (m.kv_keys + 1));
    m.total = o;
    return m;
}

/* ---------------------------------------------------------------- kernel */

/* Element i of the PD_DREP copies (stride d), summed in a fixed order. */
static __device__ __forceinline__ float sum_copies(const float *c, int d, int i) {
    float v[PD_DREP];
#pragma unroll
    for (int r = 0; r < PD_DREP; r++) v[r] = __ldcg(c + (size_t)r * d + i);
    float s = 0.0f;
#pragma unroll
    for (int r = 0; r < PD_DREP; r++) s += v[r];
    return s;
}

/* The launch's arguments plus the scratch carved from a->scratch. */
typedef struct {
    hkg_pd_args a;
    unsigned *bar;  /* (2) grid barrier arrivals, blocks out (pd_exit) */
    unsigned long long *amax; /* (1) the logits' argmax so far (amax_key), for a.argmax */
    float *dA;      /* (2, d): attention output of a layer, by parity */
    float *dD;      /* (2, PD_DREP, d): MLP output copies, by parity */
    float *qkv;     /* ((H + 2KV) hd) */
    float *part;    /* (H, S, PD_PS(hd)) split partials */
    int S;          /* key splits per KV head */
    int limit;      /* dynamic shared memory, floats */
    int window;     /* regions in flight at most (producer), 0: no limit */
    unsigned long long *trace; /* HKG_PD_TRACE */
} pd_params;

/* The last block out (every block's last grid-barrier poll is behind it)
 * advances the cache lengths, which every block read at its start, writes
 * the argmax and zeroes the barrier state for the next launch: no copy or
 * memset between tokens. Consumer threads only; `last`: shared memory. */
static __device__ void pd_exit(const pd_params &P, int *last) {
    if (threadIdx.x == 0) {
        __threadfence(); /* the block's argmax first */
        *last = atomicAdd(P.bar + 1, 1u) == gridDim.x - 1;
        if (*last) __threadfence();
    }
    csync();
    if (!*last) return;
    /* a thread a length: by one thread, a round trip each, they took ~30 us */
    for (int i = threadIdx.x; i < P.a.n_layers * P.a.KV; i += PD_THREADS) P.a.len[i]++;
    if (threadIdx.x == 0) {
        const unsigned long long k = atomicExch(P.amax, 0ull);
        if (P.a.argmax) *P.a.argmax = k ? (int)(0xffffffffu - (unsigned)k) : 0;
        P.bar[0] = 0, P.bar[1] = 0;
    }
}

/* (logit v, vocab index i) as one integer whose max is the argmax: v's bits
 * made order-preserving, then the index flipped so that ties go to the
 * lowest (as hkg_argmax); 0 = none (NaN is never picked). */
static __device__ __forceinline__ unsigned long long amax_key(float v, int i) {
    if (v != v) return 0;
    unsigned u = __float_as_uint(v);
    u = (u & 0x80000000u) ? ~u : u | 0x80000000u;
    return ((unsigned long long)u << 32) | (0xffffffffu - (unsigned)i);
}

/* The tables in shared memory. */
static __device__ __forceinline__ const hkg_pd_layer &layer_of(const pd_smem &lay,
                                                              const float *sm, int l) {
    return reinterpret_cast<const hkg_pd_layer *>(sm + lay.tb)[l];
}
static __device__ __forceinline__ int len_of(const hkg_pd_args &a, const pd_smem &lay,
                                             const float *sm, int l, int h) {
    return reinterpret_cast<const int *>(sm + lay.tb)[tb_len(&a) + l * a.KV + h];
}
static __device__ __forceinline__ int off_of(const hkg_pd_args &a, const pd_smem &lay,
                                             const float *sm, int h) {
    return reinterpret_cast<const int *>(sm + lay.tb)[tb_off(&a) + h];
}

/* Copy the tables in (one round of loads at the start). */
static __device__ void load_tables(const hkg_pd_args &a, const pd_smem &lay, float *sm) {
    int *t = reinterpret_cast<int *>(sm + lay.tb);
    const int nl = tb_len(&a), nlen = a.n_layers * a.KV;
    const int *lt = reinterpret_cast<const int *>(a.layers);
    for (int i = threadIdx.x; i < nl; i += blockDim.x) t[i] = lt[i];
    for (int i = threadIdx.x; i < nlen; i += blockDim.x) t[nl + i] = a.len[i];
    for (int i = threadIdx.x; i < a.KV; i += blockDim.x) t[nl + nlen + i] = a.off[i];
    /* RoPE's cos and sin at this token's position, once instead of per layer */
    const float pos = (float)a.pos;
    for (int i = threadIdx.x; i < a.hd / 2; i += blockDim.x) {
        float sn, cs;
        sincosf(pos * a.inv_freq[i], &sn, &cs);
        reinterpret_cast<float *>(t)[tb_rope(&a) + i] = cs;
        reinterpret_cast<float *>(t)[tb_rope(&a) + a.hd / 2 + i] = sn;
    }
    __syncthreads();
}

/* This block's attention unit, keys [kb, ke) of KV head kvh (ke <= kb when
 * it has none). */
typedef struct {
    int kvh, s, kb, ke;
} pd_unit;

static __device__ __forceinline__ pd_unit attn_unit(const pd_params &P, const pd_smem &lay,
                                                    const float *sm, int l) {
    pd_unit u = {0, 0, 0, 0};
    if ((int)blockIdx.x >= P.a.KV * P.S) return u;
    u.kvh = blockIdx.x / P.S, u.s = blockIdx.x % P.S;
    const int nk = len_of(P.a, lay, sm, l, u.kvh);
    const int per = (nk + P.S - 1) / P.S;
    u.kb = u.s * per, u.ke = min(nk, u.kb + per);
    return u;
}

static __device__ __forceinline__ const bf16 *k_cache(const hkg_pd_args &a, int l) {
    return (const bf16 *)a.kv_base + (size_t)l * a.kv_lstride;
}

/* Phase C's query head and output rows of this block (h < 0: none). */
static __device__ __forceinline__ void c_rows(const pd_smem &lay, int H, int d, int &h, int &r0,
                                              int &r1) {
    h = lay.bph > 0 && (int)blockIdx.x < H * lay.bph ? (int)blockIdx.x / lay.bph : -1;
    const int i = (int)blockIdx.x - h * lay.bph;
    r0 = h < 0 ? 0 : part0(d, i, lay.bph), r1 = h < 0 ? 0 : part0(d, i + 1, lay.bph);
}

/* The staged regions of a layer, in the order the producer issues them;
 * each completes its own mbarrier (full[r]) and is free again once the
 * phase that reads it has ended (see release). */
enum { R_QKV, R_K, R_V, R_WO, R_GATE, R_UP, R_DOWN, R_N };
static __device__ __forceinline__ int region_phase(int r) {
    return r == R_QKV ? 0 : r <= R_V ? 1 : r == R_WO ? 2 : 3;
}

/* Region r of layer l, issued by the producer warp (lane 0; the wo rows,
 * strided in global memory, by all lanes):
 *   R_QKV   attn_norm and the block's qkv rows        (phase A)
 *   R_K     the split's K rows, q_norm and k_norm     (phase B)
 *   R_V     the split's V rows                        (phase B)
 *   R_WO    the (head, row slice) of wo               (phase C)
 *   R_GATE  ffn_norm and the gate rows of the slice   (phase D)
 *   R_UP    the up rows                               (phase D)
 *   R_DOWN  the transposed down slice                 (phase D)
 * A region whose weights are read from global memory brings 0 bytes. */
static __device__ void issue_region(const pd_params &P, const pd_smem &lay, float *sm, int l,
                                    int r, unsigned long long *full) {
    const hkg_pd_args &a = P.a;
    const hkg_pd_layer &L = layer_of(lay, sm, l);
    const int lane = threadIdx.x & 31, hd = a.hd, d = a.d;
    unsigned long long *mb = full + r;
    if (r == R_WO) {
        int h, r0, r1;
        c_rows(lay, a.H, d, h, r0, r1);
        const bool wo = lay.w_o >= 0 && h >= 0;
        if (lane == 0) mbar_expect(mb, wo ? (unsigned)((r1 - r0) * hd * 2) : 0);
        __syncwarp();
        if (wo)
            for (int rr = r0 + lane; rr < r1; rr += 32)
                tma_copy(reinterpret_cast<bf16 *>(sm + lay.w_o) + (size_t)(rr - r0) * hd,
                         L.wo + (size_t)rr * a.H * hd + (size_t)h * hd, (unsigned)hd * 2, mb);
        return;
    }
    if (lane) return;
    if (r == R_QKV) {
        const int qkvw = (a.H + 2 * a.KV) * hd, r0 = share0(qkvw), r1 = share1(qkvw);
        const unsigned nb = (unsigned)d * 4, wb = lay.w_qkv >= 0 ? (unsigned)((r1 - r0) * d * 2) : 0;
        mbar_expect(mb, nb + wb);
        tma_copy(sm + lay.nw1, L.attn_norm, nb, mb);
        tma_copy(sm + lay.w_qkv, L.wqkv + (size_t)r0 * d, wb, mb);
    } else if (r == R_K || r == R_V) {
        const pd_unit u = attn_unit(P, lay, sm, l);
        const int n = min(max(u.ke - u.kb, 0), lay.kv_keys);
        const unsigned kvb = (unsigned)n * hd * 2;
        const unsigned qn = r == R_K && L.q_norm ? (unsigned)hd * 4 : 0;
        mbar_expect(mb, kvb + 2 * qn);
        if (kvb) {
            const bf16 *k = k_cache(a, l) + ((size_t)off_of(a, lay, sm, u.kvh) + u.kb) * hd;
            bf16 *ks = reinterpret_cast<bf16 *>(sm + lay.kv);
            if (r == R_K) tma_copy(ks, k, kvb, mb);
            else tma_copy(ks + (size_t)(lay.kv_keys + 1) * hd, k + a.kv_vofs, kvb, mb);
        }
        tma_copy(sm + lay.qkn, L.q_norm, qn, mb);
        tma_copy(sm + lay.qkn + hd, L.k_norm, qn, mb);
    } else {
        const int j0 = share0(a.ff), nr = share1(a.ff) - j0;
        const unsigned nb = r == R_GATE ? (unsigned)d * 4 : 0;
        unsigned wb = (unsigned)nr * d * 2;
        if ((r == R_DOWN ? lay.w_down : lay.w_gu) < 0) wb = 0;
        mbar_expect(mb, nb + wb);
        tma_copy(sm + lay.nw2, L.ffn_norm, nb, mb);
        bf16 *gs = reinterpret_cast<bf16 *>(sm + lay.w_gu);
        if (r == R_GATE) tma_copy(gs, L.wgu + (size_t)j0 * d, wb, mb);
        if (r == R_UP) tma_copy(gs + (size_t)nr * d, L.wgu + ((size_t)a.ff + j0) * d, wb, mb);
        if (r == R_DOWN) tma_copy(sm + lay.w_down, L.wdownT + (size_t)j0 * d, wb, mb);
    }
}

/* The producer warp: every layer's regions in order, each once the phase
 * that read it in the layer before has ended, and at most `window` regions
 * in flight (0: no limit). Issued as one burst at the layer's last barrier,
 * the whole layer's copies (13 MB for SmolLM2 at 8K) held that barrier for
 * 4 us; spread over the layer, the four barriers take ~5.2 us together
 * instead of 6.6 (bench/gpu/NOTES.md). */
static __device__ void producer(const pd_params &P, const pd_smem &lay, float *sm,
                                unsigned long long *full) {
    const int W = P.window;
    for (int l = 0; l < P.a.n_layers; l++)
        for (int r = 0; r < R_N; r++) {
            const int ph = region_phase(r);
            if (l > 0 && (r == 0 || region_phase(r - 1) != ph)) /* once per phase */
                asm volatile("bar.sync %0, %1;" ::"r"(pd_free_bar(ph, l - 1)), "n"(PD_BLOCK)
                             : "memory");
            /* the region's copy of the layer before has landed (at once, in
             * practice); so every phase of its mbarrier has a waiter even in
             * a block that does not read the region (synccheck) */
            if (l > 0) mbar_wait(full + r, (l - 1) & 1);
            const int k = l * R_N + r;
            if (W > 0 && k >= W) mbar_wait(full + (k - W) % R_N, ((k - W) / R_N) & 1);
            proxy_fence(); /* the consumers' reads and writes of the region first */
            issue_region(P, lay, sm, l, r, full);
        }
}

/* Reduce v[g] (g < grp) over the block, max or sum; res[g] for every thread
 * afterwards. rw: PD_WARPS * PD_MAX_GRP floats of shared memory. */
template <int MG, bool MAX>
static __device__ __forceinline__ void reduce_heads(const float (&v)[MG], int grp, float *rw,
                                                    float *res) {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
#pragma unroll
    for (int g = 0; g < MG; g++) {
        if (g >= grp) break;
        const float x = MAX ? warp_max(v[g]) : warp_sum(v[g]);
        if (lane == 0) rw[warp * PD_MAX_GRP + g] = x;
    }
    csync();
    if ((int)threadIdx.x < grp) {
        float x = MAX ? -INFINITY : 0.0f;
        for (int w = 0; w < PD_WARPS; w++) {
            const float y = rw[w * PD_MAX_GRP + threadIdx.x];
            x = MAX ? fmaxf(x, y) : x + y;
        }
        res[threadIdx.x] = x;
    }
    csync();
}

/* Phase B (see the top of the file). The split's keys go through shared
 * memory in chunks of up to kv_keys rows: the first chunk was staged by G2
 * (plus the new key in split 0), later ones (long contexts) are copied in
 * here. Per chunk: scores by key (tpk threads a key), the heads' max and
 * sum over the block, then P.V with a thread per (head, 2 dims) and key
 * subset, rescaled across chunks as online softmax. */
template <int MG>
static __device__ void phase_attn(const pd_params &P, const pd_smem &lay, int l, float *sm,
                                  const pd_sync &sy, unsigned long long *mb) {
    const hkg_pd_args &a = P.a;
    const hkg_pd_layer &L = layer_of(lay, sm, l);
    const int H = a.H, KV = a.KV, hd = a.hd, grp = H / KV, S = P.S;
    const pd_unit u = attn_unit(P, lay, sm, l);
    const int kvh = u.kvh, s = u.s;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    float *qb = sm + lay.qb; /* (grp + 2, hd): q heads, k, v */
    bf16 *kc = (bf16 *)k_cache(a, l);
    bf16 *vc = kc + a.kv_vofs;
    const size_t row0 = (size_t)off_of(a, lay, sm, kvh);
    const int nk = len_of(a, lay, sm, l, kvh);
    const int KR = lay.kv_keys + 1;
    bf16 *Ks = reinterpret_cast<bf16 *>(sm + lay.kv), *Vs = Ks + (size_t)KR * hd;
    float *sc = sm + lay.sc; /* (grp, KR) scores, then probabilities */
    float *rw = sm + lay.red, *Mh = rw + PD_WARPS * PD_MAX_GRP, *Lh = Mh + PD_MAX_GRP;
    float *Fh = Lh + PD_MAX_GRP, *Th = Fh + PD_MAX_GRP;
    const int ns = min(max(u.ke - u.kb, 0), lay.kv_keys);

    for (int t = threadIdx.x; t < (grp + 2) * hd; t += PD_THREADS) {
        const int slot = t / hd, i = t - slot * hd;
        const int src = slot < grp ? (kvh * grp + slot) * hd
                        : slot == grp ? (H + kvh) * hd : (H + KV + kvh) * hd;
        qb[t] = __ldcg(P.qkv + src + i);
    }
    stage_wait(mb + R_K, l & 1); /* this split's K rows, q/k norm weights; publishes qb */
    release_in_b(l, a.n_layers);
    if (L.q_norm) { /* as hkg_head_rmsnorm, q heads and k */
        for (int slot = warp; slot <= grp; slot += PD_WARPS) {
            float *p = qb + slot * hd;
            const float *w = sm + lay.qkn + (slot < grp ? 0 : hd);
            float ss = 0.0f;
            for (int i = lane; i < hd; i += 32) ss += p[i] * p[i];
            const float inv = rsqrtf(warp_sum(ss) / (float)hd + a.eps);
            for (int i = lane; i < hd; i += 32) p[i] = p[i] * inv * w[i];
        }
        csync();
    }
    { /* RoPE on q and k, bf16 rounding of all; split 0 writes the new K/V to
       * the cache and to the row after its staged keys */
        const int half = hd / 2;
        const float *rope = sm + lay.tb + tb_rope(&a); /* cos, then sin */
        for (int t = threadIdx.x; t < (grp + 2) * half; t += PD_THREADS) {
            const int slot = t / half, i = t - slot * half;
            float *p = qb + slot * hd;
            float x0 = p[i], x1 = p[i + half];
            if (slot <= grp) {
                const float cs = rope[i], sn = rope[half + i];
                const float r0 = x0 * cs - x1 * sn, r1 = x1 * cs + x0 * sn;
                x0 = r0, x1 = r1;
            }
            const bf16 b0 = f2bf(x0), b1 = f2bf(x1);
            p[i] = bf2f(b0), p[i + half] = bf2f(b1);
            if (s == 0 && slot >= grp) {
                bf16 *dst = (slot == grp ? kc : vc) + (row0 + nk) * hd;
                dst[i] = b0, dst[i + half] = b1;
                bf16 *row = (slot == grp ? Ks : Vs) + (size_t)ns * hd;
                row[i] = b0, row[i + half] = b1;
            }
        }
    }
    if ((int)threadIdx.x < grp) Mh[threadIdx.x] = -INFINITY, Lh[threadIdx.x] = 0.0f;
    csync();
    mark(sy, 0);

    const float scale = rsqrtf((float)hd);
    const int nch = hd / 8;
    /* P.V: a thread per (head, 8-dim chunk) owner and key subset ts (keys
     * ts, ts + TS, ..), 8 independent sums; the subsets are added at the end */
    const int E8 = grp * nch, TS = PD_THREADS / E8;
    const int ts = (int)threadIdx.x / E8, e8 = (int)threadIdx.x % E8;
    const int pgh = e8 / nch, pch = e8 % nch;
    float acc[8];
#pragma unroll
    for (int i = 0; i < 8; i++) acc[i] = 0.0f;
    int rows = ns + (s == 0), next = u.kb + ns;
    for (int c = 0;; c++) {
        if (c > 0) { /* a further chunk straight from the cache */
            rows = min(u.ke - next, lay.kv_keys);
            if (rows <= 0) break;
            const uint4 *kg = reinterpret_cast<const uint4 *>(kc + (row0 + next) * hd);
            const uint4 *vg = reinterpret_cast<const uint4 *>(vc + (row0 + next) * hd);
            for (int t = threadIdx.x; t < rows * nch; t += PD_THREADS) {
                reinterpret_cast<uint4 *>(Ks)[t] = ld_stream(kg + t);
                reinterpret_cast<uint4 *>(Vs)[t] = ld_stream(vg + t);
            }
            next += rows;
            csync();
        }
        if (rows > 0) {
            /* scores */
            int tpk = 1;
            while (tpk < 8 && tpk * 2 <= nch && tpk * 2 * rows <= PD_THREADS) tpk *= 2;
            const int per_pass = PD_THREADS / tpk, part = threadIdx.x & (tpk - 1);
            float mx[MG];
#pragma unroll
            for (int g = 0; g < MG; g++) mx[g] = -INFINITY;
            for (int j0 = 0; j0 < rows; j0 += per_pass) {
                const int j = j0 + (int)threadIdx.x / tpk;
                float sv[MG];
#pragma unroll
                for (int g = 0; g < MG; g++) sv[g] = 0.0f;
                const int jm = j % nch; /* chunk rotation: spreads a warp over the banks */
                if (j < rows)
#pragma unroll 4
                    for (int cc = part; cc < nch; cc += tpk) {
                        const int ch = cc + jm < nch ? cc + jm : cc + jm - nch;
                        float kf[8];
                        unpack8(reinterpret_cast<const uint4 *>(Ks + (size_t)j * hd)[ch], kf);
#pragma unroll
                        for (int g = 0; g < MG; g++) {
                            if (g >= grp) break;
                            const float4 *qv = reinterpret_cast<const float4 *>(qb + g * hd + ch * 8);
                            const float4 q0 = qv[0], q1 = qv[1];
                            sv[g] += q0.x * kf[0] + q0.y * kf[1] + q0.z * kf[2] + q0.w * kf[3] +
                                     q1.x * kf[4] + q1.y * kf[5] + q1.z * kf[6] + q1.w * kf[7];
                        }
                    }
#pragma unroll
                for (int g = 0; g < MG; g++) {
                    for (int off = tpk >> 1; off > 0; off >>= 1)
                        sv[g] += __shfl_xor_sync(0xffffffffu, sv[g], off);
                    if (g < grp && j < rows && part == 0) {
                        const float x = sv[g] * scale;
                        sc[g * KR + j] = x;
                        mx[g] = fmaxf(mx[g], x);
                    }
                }
            }
            reduce_heads<MG, true>(mx, grp, rw, Th);
            if (c == 0) mark(sy, 2);
            if ((int)threadIdx.x < grp) {
                const float mo = Mh[threadIdx.x], mn = fmaxf(mo, Th[threadIdx.x]);
                Fh[threadIdx.x] = mo == -INFINITY ? 0.0f : __expf(mo - mn);
                Mh[threadIdx.x] = mn;
            }
            csync();
            float ls[MG];
#pragma unroll
            for (int g = 0; g < MG; g++) {
                ls[g] = 0.0f;
                if (g >= grp) continue;
                for (int j = threadIdx.x; j < rows; j += PD_THREADS) {
                    const float pr = __expf(sc[g * KR + j] - Mh[g]);
                    sc[g * KR + j] = pr;
                    ls[g] += pr;
                }
            }
            reduce_heads<MG, false>(ls, grp, rw, Th); /* its barriers publish sc */
            if ((int)threadIdx.x < grp)
                Lh[threadIdx.x] = Lh[threadIdx.x] * Fh[threadIdx.x] + Th[threadIdx.x];
            if (c == 0) mbar_wait(mb + R_V, l & 1), mark(sy, 3);
            if (ts < TS) {
                const float f = Fh[pgh], *pg = sc + pgh * KR;
#pragma unroll
                for (int i = 0; i < 8; i++) acc[i] *= f;
#pragma unroll 2
                for (int j = ts; j < rows; j += TS) {
                    float vf[8];
                    unpack8(reinterpret_cast<const uint4 *>(Vs + (size_t)j * hd)[pch], vf);
                    const float pr = pg[j];
#pragma unroll
                    for (int i = 0; i < 8; i++) acc[i] = fmaf(pr, vf[i], acc[i]);
                }
            }
            csync(); /* the chunk's rows and sc are free */
        }
        if (next >= u.ke) break;
    }
    mark(sy, 1);
    /* this split's partial per query head: {max, sum, -, -, o}; the subsets'
     * sums meet in the K/V rows, free now (at least PD_THREADS * 8 floats, see
     * pd_smem_plan) */
    float *red = sm + lay.kv;
    if (ts < TS)
#pragma unroll
        for (int i = 0; i < 8; i++) red[(ts * E8 + e8) * 8 + i] = acc[i];
    csync();
    for (int o = threadIdx.x; o < grp * hd; o += PD_THREADS) {
        const int g = o / hd, dim = o - g * hd, r = (g * nch + dim / 8) * 8 + dim % 8;
        float v = 0.0f;
#pragma unroll 4
        for (int t2 = 0; t2 < TS; t2++) v += red[t2 * E8 * 8 + r];
        float *dst = P.part + ((size_t)(kvh * grp + g) * S + s) * PD_PS(hd);
        dst[4 + dim] = v;
        if (dim == 0) dst[0] = Mh[g], dst[1] = Lh[g];
    }
}

/* Phase C (see the top of the file). */
static __device__ void phase_wo(const pd_params &P, const pd_smem &lay, int l, float *sm,
                                float *dA, const pd_sync &sy, unsigned long long *mb) {
    const hkg_pd_args &a = P.a;
    const hkg_pd_layer &L = layer_of(lay, sm, l);
    const int hd = a.hd, S = P.S, PS = PD_PS(hd), warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int h, r0, r1;
    c_rows(lay, a.H, a.d, h, r0, r1);
    if (h < 0) {
        release(1, l, a.n_layers); /* phase B */
        return;
    }
    /* the head's partials, one load round */
    float *pc = sm + lay.pc, *mw = sm + lay.mw, *oh = sm + lay.oh;
    const float4 *src = reinterpret_cast<const float4 *>(P.part + (size_t)h * S * PS);
    for (int t = threadIdx.x; t < S * PS / 4; t += PD_THREADS)
        reinterpret_cast<float4 *>(pc)[t] = __ldcg(src + t);
    csync();
    mark(sy, 0);
    release(1, l, a.n_layers); /* phase B */
    if (warp == 0) {
        float M = -INFINITY;
        for (int t = lane; t < S; t += 32)
            if (pc[t * PS + 1] > 0.0f) M = fmaxf(M, pc[t * PS]);
        M = warp_max(M);
        float Ls = 0.0f;
        for (int t = lane; t < S; t += 32) {
            const float w = pc[t * PS + 1] > 0.0f ? __expf(pc[t * PS] - M) : 0.0f;
            mw[t] = w;
            Ls += w * pc[t * PS + 1];
        }
        Ls = warp_sum(Ls);
        if (lane == 0) mw[S] = Ls;
    }
    csync();
    for (int dd = threadIdx.x; dd < hd; dd += PD_THREADS) {
        float acc = 0.0f;
#pragma unroll 4
        for (int t = 0; t < S; t++) acc = fmaf(pc[t * PS + 4 + dd], mw[t], acc); /* mw 0: empty */
        oh[dd] = bf2f(f2bf(acc / mw[S])); /* the per-kernel path's bf16 attn */
    }
    mark(sy, 1);
    stage_wait(mb + R_WO, l & 1); /* the wo slice; also publishes oh */
    mark(sy, 2);
    /* rows: lpk lanes each, one 16-byte chunk per lane */
    int lpk = 1;
    while (lpk * 8 < hd) lpk <<= 1;
    const int sub = lane & (lpk - 1), rpw = 32 / lpk, gi = lane / lpk;
    const int ahd = a.H * hd;
    for (int rb = r0 + warp * rpw; rb < r1; rb += PD_WARPS * rpw) {
        const int r = rb + gi;
        float v = 0.0f;
        if (r < r1 && sub * 8 < hd) {
            const uint4 w = lay.w_o >= 0
                ? reinterpret_cast<const uint4 *>(sm + lay.w_o)[(size_t)(r - r0) * (hd / 8) + sub]
                : ld_stream(reinterpret_cast<const uint4 *>(L.wo + (size_t)r * ahd +
                                                             (size_t)h * hd) + sub);
            float wf[8];
            unpack8(w, wf);
#pragma unroll
            for (int i = 0; i < 8; i++) v = fmaf(wf[i], oh[sub * 8 + i], v);
        }
        for (int off = lpk >> 1; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
        if (sub == 0 && r < r1) atomicAdd(dA + r, v);
    }
}

/* Phase D after the norm: gate/up slice, SwiGLU, down share into dD. */
template <bool SGU>
static __device__ void phase_mlp(const pd_params &P, const pd_smem &lay, int l, float *sm,
                                 const uint4 *xs4, float *dD, const pd_sync &sy,
                                 unsigned long long *mb) {
    const hkg_pd_args &a = P.a;
    const hkg_pd_layer &L = layer_of(lay, sm, l);
    const int d = a.d, ff = a.ff, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int j0 = share0(ff), j1 = share1(ff), nr = j1 - j0; /* the block's rows of ff */
    float *hs = sm + lay.hs;
    mbar_wait(mb + R_UP, l & 1); /* R_GATE: waited before the norm */
    mark(sy, 1);
    for (int j = j0 + warp; j < j1; j += PD_WARPS) {
        const bf16 *w[2];
        if (SGU) {
            const bf16 *gs = reinterpret_cast<const bf16 *>(sm + lay.w_gu);
            w[0] = gs + (size_t)(j - j0) * d, w[1] = gs + (size_t)(nr + j - j0) * d;
        } else {
            w[0] = bfp(L.wgu) + (size_t)j * d, w[1] = bfp(L.wgu) + (size_t)(ff + j) * d;
        }
        float v[2];
        warp_dots<2, SGU>(w, d / 8, xs4, v);
        if (lane == 0) hs[j - j0] = bf2f(f2bf(v[0] / (1.0f + expf(-v[0])) * v[1]));
    }
    mark(sy, 2);
    stage_wait(mb + R_DOWN, l & 1); /* also publishes hs */
    mark(sy, 3);
    if (nr <= 0) return;
    /* the block's (nr, d) slice of the transposed down projection, staged
     * or in global memory */
    const bf16 *dt = lay.w_down >= 0 ? reinterpret_cast<const bf16 *>(sm + lay.w_down)
                                     : bfp(L.wdownT) + (size_t)j0 * d;
    /* 4 outputs a thread, added with one vector reduction: the 132 blocks'
     * adds to the same d addresses queue at a few L2 slices */
    for (int i = 4 * threadIdx.x; i < d; i += 4 * PD_THREADS) {
        float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        for (int j = 0; j < nr; j++) {
            const uint2 w = *reinterpret_cast<const uint2 *>(dt + (size_t)j * d + i);
            const float h = hs[j];
            acc[0] = fmaf(__uint_as_float(w.x << 16), h, acc[0]);
            acc[1] = fmaf(__uint_as_float(w.x & 0xffff0000u), h, acc[1]);
            acc[2] = fmaf(__uint_as_float(w.y << 16), h, acc[2]);
            acc[3] = fmaf(__uint_as_float(w.y & 0xffff0000u), h, acc[3]);
        }
        asm volatile("red.global.add.v4.f32 [%0], {%1, %2, %3, %4};" ::"l"(dD + i), "f"(acc[0]),
                     "f"(acc[1]), "f"(acc[2]), "f"(acc[3])
                     : "memory");
    }
}

template <int MG>
static __global__ void __launch_bounds__(PD_BLOCK, 1) decode_persist_kernel(pd_params P) {
    extern __shared__ __align__(16) float pd_sm[];
    __shared__ float red[32];
    const hkg_pd_args &a = P.a;
    const int d = a.d, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const pd_smem lay = pd_smem_plan(&a, P.S, gridDim.x, P.limit);
    bf16 *xs = reinterpret_cast<bf16 *>(pd_sm + lay.xs);
    const uint4 *xs4 = reinterpret_cast<const uint4 *>(xs);
    float *xf = pd_sm + lay.xf; /* the residual stream, in every block */
    pd_sync sy = {P.bar, 0, P.trace, 0};
    const int qkvw = (a.H + 2 * a.KV) * a.hd;

    __shared__ unsigned long long mb[R_N]; /* the regions' copies landed */
    if (threadIdx.x == 0) {
        for (int i = 0; i < R_N; i++) mbar_init(mb + i);
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    }
    const size_t clk_at = ((size_t)(1 + 4 * a.n_layers) * gridDim.x) * 6; /* trace: SM clock */
    if (P.trace && blockIdx.x == 0 && threadIdx.x == 0)
        P.trace[clk_at] = clock64(), P.trace[clk_at + 1] = global_ns();
    load_tables(a, lay, pd_sm); /* the whole block; ends with __syncthreads */
    if (warp == PD_WARPS) {
        producer(P, lay, pd_sm, mb);
        return;
    }
    {
        const int id = a.id_dev ? *a.id_dev : a.id;
        const bf16 *e = (const bf16 *)a.tok_emb + (size_t)id * d;
        for (int i = threadIdx.x; i < d; i += PD_THREADS) xf[i] = bf2f(e[i]);
    }
    for (int l = 0; l < a.n_layers; l++) {
        const hkg_pd_layer &L = layer_of(lay, pd_sm, l);
        const int p = l & 1;
        float *dA = P.dA + (size_t)p * d, *dD = P.dD + (size_t)p * PD_DREP * d;
        /* A: x_l, its norm, qkv rows */
        if (a.prefetch && l + 1 == a.n_layers) l2_prefetch(a.lm_head, (size_t)a.vocab * d * 2);
        mark(sy, 0);
        if (l > 0) {
            const float *dprev = P.dD + (size_t)(p ^ 1) * PD_DREP * d;
            for (int i = threadIdx.x; i < d; i += PD_THREADS) xf[i] += sum_copies(dprev, d, i);
        }
        for (int i = share0(d) + threadIdx.x; i < share1(d); i += PD_THREADS) {
            dA[i] = 0.0f;
            for (int r = 0; r < PD_DREP; r++) dD[(size_t)r * d + i] = 0.0f;
        }
        const int ra = share0(qkvw) + warp;
        float bias[2] = {0.0f, 0.0f}; /* loads in flight with the ones above */
        if (L.bqkv && lane == 0)
            for (int k = 0; k < 2; k++)
                if (ra + k * PD_WARPS < share1(qkvw)) bias[k] = L.bqkv[ra + k * PD_WARPS];
        stage_wait(mb + R_QKV, l & 1);
        block_norm(xf, pd_sm + lay.nw1, d, a.eps, xs, red);
        mark(sy, 1);
        for (int r = ra; r < share1(qkvw); r += PD_WARPS) {
            float v;
            if (lay.w_qkv >= 0) {
                const bf16 *w = reinterpret_cast<const bf16 *>(pd_sm + lay.w_qkv) +
                                (size_t)(r - share0(qkvw)) * d;
                warp_dots<1, true>(&w, d / 8, xs4, &v);
            } else {
                const bf16 *w = bfp(L.wqkv) + (size_t)r * d;
                warp_dots<1, false>(&w, d / 8, xs4, &v);
            }
            if (lane == 0) {
                const int k = (r - ra) / PD_WARPS;
                P.qkv[r] = v + (k < 2 ? bias[k] : L.bqkv ? L.bqkv[r] : 0.0f);
            }
        }
        grid_sync(sy);
        /* B: attention partials */
        if ((int)blockIdx.x < a.KV * P.S) phase_attn<MG>(P, lay, l, pd_sm, sy, mb);
        else release_in_b(l, a.n_layers);
        grid_sync(sy);
        /* C: merge + wo into dA */
        phase_wo(P, lay, l, pd_sm, dA, sy, mb);
        grid_sync(sy);
        /* D: norm of x_l + dA, MLP into dD */
        for (int i = threadIdx.x; i < d; i += PD_THREADS) xf[i] += __ldcg(dA + i);
        mbar_wait(mb + R_GATE, l & 1); /* ffn_norm */
        block_norm(xf, pd_sm + lay.nw2, d, a.eps, xs, red);
        release(2, l, a.n_layers);
        mark(sy, 0);
        float *dDb = dD + (size_t)(blockIdx.x % PD_DREP) * d;
        if (lay.w_gu >= 0) phase_mlp<true>(P, lay, l, pd_sm, xs4, dDb, sy, mb);
        else phase_mlp<false>(P, lay, l, pd_sm, xs4, dDb, sy, mb);
        grid_sync(sy);
    }
    /* logits */
    {
        const float *dl = P.dD + (size_t)((a.n_layers - 1) & 1) * PD_DREP * d;
        for (int i = threadIdx.x; i < d; i += PD_THREADS) xf[i] += sum_copies(dl, d, i);
        block_norm(xf, a.out_norm, d, a.eps, xs, red);
    }
    const int v0 = share0(a.vocab), v1 = share1(a.vocab);
    unsigned long long best = 0; /* amax_key of the warp's rows */
    for (int r = v0 + 4 * warp; r < v1; r += 4 * PD_WARPS) {
        if (r + 4 <= v1) {
            const bf16 *w[4];
#pragma unroll
            for (int k = 0; k < 4; k++) w[k] = bfp(a.lm_head) + (size_t)(r + k) * d;
            float v[4];
            warp_dots<4, false>(w, d / 8, xs4, v);
            if (lane == 0)
#pragma unroll
                for (int k = 0; k < 4; k++) {
                    a.logits[r + k] = v[k];
                    const unsigned long long key = amax_key(v[k], r + k);
                    best = key > best ? key : best;
                }
        } else {
            for (int k = r; k < v1; k++) {
                const bf16 *w = bfp(a.lm_head) + (size_t)k * d;
                float v;
                warp_dots<1, false>(&w, d / 8, xs4, &v);
                if (lane == 0) {
                    a.logits[k] = v;
                    const unsigned long long key = amax_key(v, k);
                    best = key > best ? key : best;
                }
            }
        }
    }
    if (a.argmax) { /* the block's best, then one atomic a block */
        __shared__ unsigned long long wbest[PD_WARPS];
        if (lane == 0) wbest[warp] = best;
        csync();
        if (threadIdx.x == 0) {
            for (int w = 1; w < PD_WARPS; w++) best = wbest[w] > best ? wbest[w] : best;
            atomicMax(P.amax, best);
        }
    }
    if (P.trace && threadIdx.x == 0)
        P.trace[((size_t)sy.ev * gridDim.x + blockIdx.x) * 6] = global_ns();
    if (P.trace && blockIdx.x == 0 && threadIdx.x == 0)
        P.trace[clk_at + 2] = clock64(), P.trace[clk_at + 3] = global_ns();
    __shared__ int last;
    pd_exit(P, &last);
}

/* ---------------------------------------------------------------- transpose */

/* 32x32 tiles through shared memory, both sides coalesced. */
static __global__ void transpose_kernel(const bf16 *src, int rows, int cols, bf16 *dst) {
    __shared__ bf16 t[32][33];
    const int c = blockIdx.x * 32 + threadIdx.x, r0 = blockIdx.y * 32;
    for (int k = threadIdx.y; k < 32; k += blockDim.y)
        if (r0 + k < rows && c < cols) t[k][threadIdx.x] = src[(size_t)(r0 + k) * cols + c];
    __syncthreads();
    const int r = r0 + threadIdx.x;
    for (int k = threadIdx.y; k < 32; k += blockDim.y) {
        const int cc = blockIdx.x * 32 + k;
        if (cc < cols && r < rows) dst[(size_t)cc * rows + r] = t[threadIdx.x][k];
    }
}

extern "C" cudaError_t hkg_transpose_bf16(const hkg_bf16 *src, int rows, int cols, hkg_bf16 *dst,
                                          cudaStream_t s) {
    if (rows <= 0 || cols <= 0) return cudaSuccess;
    transpose_kernel<<<dim3((cols + 31) / 32, (rows + 31) / 32), dim3(32, 8), 0, s>>>(
        (const bf16 *)src, rows, cols, (bf16 *)dst);
    return HKG_LAUNCHED();
}

/* ---------------------------------------------------------------- host */

static int pd_mg(int grp) { return grp <= 1 ? 1 : grp <= 2 ? 2 : grp <= 4 ? 4 : 8; }

static const void *pd_kernel(int mg) {
    switch (mg) {
    case 1: return (const void *)decode_persist_kernel<1>;
    case 2: return (const void *)decode_persist_kernel<2>;
    case 4: return (const void *)decode_persist_kernel<4>;
    default: return (const void *)decode_persist_kernel<8>;
    }
}

/* Blocks of the launch: one per SM. */
static int pd_blocks(void) { return hkg_sm_count(); }

/* Dynamic shared memory per block, floats: what the device allows a block,
 * less the kernel's static shared memory and a margin. */
static int pd_limit(void) {
    static int lim = -1;
    if (lim < 0) {
        int dev = 0, mx = 0;
        if (cudaGetDevice(&dev) != cudaSuccess ||
            cudaDeviceGetAttribute(&mx, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) !=
                cudaSuccess)
            mx = 0;
        lim = mx > 4096 ? (mx - 4096) / 4 : 0;
    }
    return lim;
}

static size_t align256(size_t b) { return (b + 255) / 256 * 256; }

/* Carve the scratch: the barrier state (arrivals, exits: zero between
 * launches, see pd_exit), the deltas (zeroed per layer before use), qkv and
 * the partials. */
static size_t pd_carve(pd_params *P, const hkg_pd_args *a, int nb) {
    const size_t qkvw = (size_t)(a->H + 2 * a->KV) * a->hd;
    const int S = nb / a->KV > 0 ? nb / a->KV : 1;
    char *p = (char *)a->scratch;
    size_t o = 0;
    if (P) P->bar = (unsigned *)p, P->amax = (unsigned long long *)(p + 8), P->S = S;
    o += 256;
    if (P) P->dA = (float *)(p + o), P->dD = P->dA + 2 * (size_t)a->d;
    o += align256((size_t)a->d * 4 * (2 + 2 * PD_DREP));
    if (P) P->qkv = (float *)(p + o);
    o += align256(qkvw * 4);
    if (P) P->part = (float *)(p + o);
    o += align256((size_t)a->H * S * PD_PS(a->hd) * 4);
    return o;
}


/* HKG_PD_TRACE: the 20th launch's phase and barrier times, to stderr. */
static unsigned long long *trace_buf;
static int trace_calls;

static void trace_report(int events, int nb, cudaStream_t s) {
    const size_t n = (size_t)events * nb * 6 + 4;
    unsigned long long *t = (unsigned long long *)malloc(n * 8);
    if (!t || cudaStreamSynchronize(s) != cudaSuccess ||
        cudaMemcpy(t, trace_buf, n * 8, cudaMemcpyDeviceToHost) != cudaSuccess) {
        free(t);
        return;
    }
    /* per event: work = max and mean over blocks of (arrival - previous
     * exit), marks likewise (mean over the blocks that set them); wait =
     * mean over blocks of (exit - last arrival). Event 0 is the start. */
    const char *names[6] = {"start", "A qkv", "B attn", "C wo", "D mlp", "lm_head"};
    double work[6] = {0}, wmean[6] = {0}, wait[6] = {0}, mk[6][4] = {{0}};
    int cnt[6] = {0}, mn[6][4] = {{0}};
#define T(e, b, k) t[((size_t)(e) * nb + (b)) * 6 + (k)]
    for (int e = 0; e < events; e++) {
        const int ty = e == events - 1 ? 5 : 1 + e % 4;
        unsigned long long last = 0;
        double wmax = 0, wsum = 0, wt = 0;
        for (int b = 0; b < nb; b++) {
            const unsigned long long arr = T(e, b, 0), prev = e ? T(e - 1, b, 1) : T(0, b, 2);
            if (arr > last) last = arr;
            const double w = (double)(arr - prev);
            wmax = w > wmax ? w : wmax;
            wsum += w;
            for (int k = 0; k < 4; k++)
                if (T(e, b, 2 + k) >= prev && T(e, b, 2 + k) <= arr)
                    mk[ty][k] += (double)(T(e, b, 2 + k) - prev), mn[ty][k]++;
        }
        if (e < events - 1)
            for (int b = 0; b < nb; b++) wt += (double)(T(e, b, 1) - last);
        work[ty] += wmax, wmean[ty] += wsum / nb, wait[ty] += wt / nb, cnt[ty]++;
    }
    unsigned long long t0 = ~0ull, t1 = 0;
    for (int b = 0; b < nb; b++) {
        t0 = T(0, b, 2) < t0 ? T(0, b, 2) : t0;
        t1 = T(events - 1, b, 0) > t1 ? T(events - 1, b, 0) : t1;
    }
#undef T
    const unsigned long long *ck = t + n - 4;
    fprintf(stderr, "pd trace: kernel %.1f us (first block's start to last end); SM clock %.0f "
            "MHz\n", (t1 - t0) / 1e3, (double)(ck[2] - ck[0]) * 1e3 / (double)(ck[3] - ck[1]));
    for (int ty = 1; ty < 6; ty++) {
        if (!cnt[ty]) continue;
        fprintf(stderr, "pd trace: %-8s x%-3d work max %.2f, mean %.2f; barrier after last "
                "arrival %.2f; marks", names[ty], cnt[ty], work[ty] / cnt[ty] / 1e3,
                wmean[ty] / cnt[ty] / 1e3, wait[ty] / cnt[ty] / 1e3);
        for (int k = 0; k < 4; k++)
            if (mn[ty][k]) fprintf(stderr, " %d: %.2f", k, mk[ty][k] / mn[ty][k] / 1e3);
        fprintf(stderr, " (us)\n");
    }
    free(t);
}

extern "C" int hkg_pd_supported(const hkg_pd_args *a) {
    const int KV = a->KV, nb = pd_blocks();
    if (KV <= 0 || a->H % KV || a->H / KV > PD_MAX_GRP || a->hd % 8 || a->hd < 8 ||
        a->hd > HKG_MAX_HEAD_DIM || a->d % 8 || a->ff % 8 || a->d > PD_MAX_IN ||
        a->H * a->hd > PD_MAX_IN || a->n_layers <= 0 || a->vocab <= 0 || a->H > nb ||
        a->H / KV * (a->hd / 8) > PD_THREADS) /* phase B's P.V: a thread per (head, 8 dims) */
        return 0;
    int dev = 0, coop = 0;
    cudaFuncAttributes fa; /* fails where the build has no code for this device */
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&coop, cudaDevAttrCooperativeLaunch, dev) != cudaSuccess ||
        cudaFuncGetAttributes(&fa, pd_kernel(1)) != cudaSuccess || fa.binaryVersion < 90) {
        (void)cudaGetLastError();
        return 0;
    }
    const int S = nb / KV > 0 ? nb / KV : 1;
    const pd_smem m = pd_smem_plan(a, S, nb, pd_limit());
    return coop && nb >= KV && m.kv_keys >= 1 && m.total <= pd_limit();
}

extern "C" size_t hkg_pd_scratch_bytes(const hkg_pd_args *a) {
    return pd_carve(NULL, a, pd_blocks());
}

extern "C" cudaError_t hkg_decode_persistent(const hkg_pd_args *a, cudaStream_t s) {
    if (!hkg_pd_supported(a) || !a->scratch || !a->layers || !a->logits)
        return cudaErrorInvalidValue;
    pd_params P;
    P.a = *a;
    /* diagnostics: the test knobs from the environment */
    if (getenv("HKG_PD_NOSTAGE")) P.a.no_stage = 1;
    if (getenv("HKG_PD_KVMAX")) P.a.kv_keys_max = atoi(getenv("HKG_PD_KVMAX"));
    P.window = a->window > 0 ? a->window : a->window < 0 ? 0 : PD_WINDOW;
    if (getenv("HKG_PD_WINDOW")) P.window = atoi(getenv("HKG_PD_WINDOW")); /* 0: no limit */
    a = &P.a;
    const int nb = pd_blocks();
    pd_carve(&P, a, nb);
    P.limit = pd_limit();
    const size_t smem = (size_t)pd_smem_plan(a, P.S, nb, P.limit).total * 4;
    const int mg = pd_mg(a->H / a->KV);
    const void *k = pd_kernel(mg);
    static size_t smem_set[9];
    cudaError_t e;
    if (smem_set[mg] != smem) { /* once per kernel and size: checked then */
        e = cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        if (e != cudaSuccess) return e;
        int per_sm = 0;
        e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, k, PD_BLOCK, smem);
        if (e != cudaSuccess) return e;
        if (per_sm < 1) return cudaErrorCooperativeLaunchTooLarge;
        smem_set[mg] = smem;
    }
    P.trace = NULL;
    const int events = 1 + 4 * a->n_layers;
    if (getenv("HKG_PD_TRACE")) {
        if (!trace_buf &&
            cudaMalloc((void **)&trace_buf, ((size_t)events * nb * 6 + 4) * 8) != cudaSuccess)
            trace_buf = NULL;
        P.trace = trace_buf;
    }
    void *args[] = {&P};
    e = cudaLaunchCooperativeKernel(k, nb, PD_BLOCK, args, smem, s);
    if (e == cudaSuccess && P.trace && ++trace_calls == 20) trace_report(events, nb, s);
    return e;
}
