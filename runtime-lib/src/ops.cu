/* CUDA kernels of the runtime: HubKV refinement, per-head Top-K (one block
 * per head, 11/11/10-bit radix select over float4 groups, order-preserving
 * output via a block scan; refine_topk writes z once with the first digit
 * histogram, then selects on z), and compaction into the flattened
 * variable-length cache. CPU references: ops_cpu.c (exact agreement). */
#include "gpu_internal.h"
#include "ops_common.h"

#include <cub/block/block_scan.cuh>
#include <stdio.h>

// ---------------------------------------------------------------------------
// Context

extern "C" hubkv_status hubkv_gpu_create(int32_t device, void *stream, hubkv_gpu **out, char *err, size_t cap) {
    if (!out) return hkv_fail(err, cap, HUBKV_ERR_INVALID_ARG, "gpu_create: out must be non-NULL");
    *out = NULL;
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        cudaGetLastError(); /* clear the sticky-free error so later calls are clean */
        return hkv_fail(err, cap, HUBKV_ERR_NO_DEVICE, "no CUDA device (%s)",
                        e != cudaSuccess ? cudaGetErrorString(e) : "device count is 0");
    }
    if (device < 0 || device >= n)
        return hkv_fail(err, cap, HUBKV_ERR_INVALID_ARG, "gpu_create: device %d; expected [0, %d)", device, n);
    hubkv_gpu *g = (hubkv_gpu *)hkv_calloc(1, sizeof *g);
    if (!g) return hkv_fail(err, cap, HUBKV_ERR_NOMEM, "gpu_create: out of host memory");
    g->device = device;
    g->stream = (cudaStream_t)stream;
    cudaError_t e1 = cudaSetDevice(device), e2 = cudaSuccess, e3 = cudaSuccess;
    if (e1 == cudaSuccess) e2 = cudaMalloc(&g->d_flag, sizeof(int));
    if (e2 == cudaSuccess) e3 = cudaMemset(g->d_flag, 0, sizeof(int));
    if (e1 != cudaSuccess || e2 != cudaSuccess || e3 != cudaSuccess) {
        cudaError_t bad = e1 != cudaSuccess ? e1 : e2 != cudaSuccess ? e2 : e3;
        hkv_fail(err, cap, HUBKV_ERR_CUDA, "CUDA error at %s:%d: gpu_create (set device / flag alloc): %s", __FILE__,
                 __LINE__, cudaGetErrorString(bad));
        cudaFree(g->d_flag);
        free(g);
        return HUBKV_ERR_CUDA;
    }
    *out = g;
    return HUBKV_OK;
}

/* Grows the context's scratch buffer to at least `bytes` (never shrinks;
 * waits for queued work before replacing it). */
hubkv_status hkv_gpu_scratch(hubkv_gpu *g, size_t bytes) {
    if (g->scratch_bytes >= bytes) return HUBKV_OK;
    HKV_CUDA_CK(g->err, cudaStreamSynchronize(g->stream));
    cudaFree(g->scratch);
    g->scratch = NULL, g->scratch_bytes = 0;
    HKV_CUDA_CK(g->err, cudaMalloc(&g->scratch, bytes));
    g->scratch_bytes = bytes;
    return HUBKV_OK;
}

extern "C" void hubkv_gpu_free(hubkv_gpu *g) {
    if (!g) return;
    cudaFree(g->scratch);
    cudaFree(g->d_flag);
    free(g);
}

extern "C" const char *hubkv_gpu_error(const hubkv_gpu *g) { return g ? g->err : "gpu handle is NULL"; }

extern "C" hubkv_status hubkv_gpu_sync(hubkv_gpu *g) {
    if (!g) return HUBKV_ERR_INVALID_ARG;
    int flag = 0;
    HKV_CUDA_CK(g->err, cudaMemcpyAsync(&flag, g->d_flag, sizeof flag, cudaMemcpyDeviceToHost, g->stream));
    HKV_CUDA_CK(g->err, cudaStreamSynchronize(g->stream));
    if (flag) {
        HKV_CUDA_CK(g->err, cudaMemsetAsync(g->d_flag, 0, sizeof(int), g->stream));
        int kind = flag & ~0xffffff, head = (flag & 0xffffff) - 1;
        const char *what = kind == HKV_FLAG_TOPK_K ? "gpu topk: head %d keeps k outside [n_sink + n_recent, N] (offsets invalid)"
                           : kind == HKV_FLAG_COMPACT_IDX ? "gpu compact: head %d has a keep index outside its rows"
                           : "gpu h2o: head %d is full and every row is a sink or recent (capacity must exceed n_sink + n_recent)";
        return hkv_fail(g->err, sizeof g->err, HUBKV_ERR_RANGE, what, head);
    }
    return HUBKV_OK;
}

// ---------------------------------------------------------------------------
// Refinement

struct RefineArgs {
    const float *beta; // (n_heads)
    float discount, r2;
    int half;          // width / 2
    bool on;           // ratio >= ratio_gate
};

/* z_i of head row `sh` (length n); identical arithmetic to hubkv_refine_cpu. */
__device__ __forceinline__ float refine_at(const float *__restrict__ sh, int n, int i, float beta, const RefineArgs &a) {
    float s = __ldg(sh + i);
    if (!a.on) return s;
    int lo = max(i - a.half, 0), hi = min(i + a.half, n - 1);
    float m = __ldg(sh + lo);
    for (int j = lo + 1; j <= hi; j++) m = fmaxf(m, __ldg(sh + j));
    return hkv_refine_one(s, m, beta, a.discount, a.r2);
}

constexpr int VEC_HALF = 4; // widest half-window served by the float4 path

/* Values of group g (elements 4g .. 4g+3, those < n) of head row sh: z when
 * REFINE, else s. vec: n % 4 == 0 and sh 16-byte aligned; then the group and
 * its two neighbour groups are read as float4 (the neighbours hit L1) and the
 * window max is taken in registers, in the same ascending order as the CPU. */
template <bool REFINE>
__device__ __forceinline__ void group_vals(const float *__restrict__ sh, int n, int g, float beta, const RefineArgs &a,
                                           bool vec, float z[4]) {
    int i0 = 4 * g;
    bool need_win = REFINE && a.on;
    if (vec && (!need_win || a.half <= VEC_HALF)) {
        float4 c = __ldg(reinterpret_cast<const float4 *>(sh + i0));
        z[0] = c.x, z[1] = c.y, z[2] = c.z, z[3] = c.w;
        if (!need_win) return;
        float4 P = g > 0 ? __ldg(reinterpret_cast<const float4 *>(sh + i0 - 4)) : c;
        float4 Q = i0 + 4 < n ? __ldg(reinterpret_cast<const float4 *>(sh + i0 + 4)) : c;
        float w[12] = {P.x, P.y, P.z, P.w, c.x, c.y, c.z, c.w, Q.x, Q.y, Q.z, Q.w}; // w[j] = s[i0 - 4 + j]
#pragma unroll
        for (int e = 0; e < 4; e++) {
            int i = i0 + e;
            float m = 0.0f;
            bool first = true;
#pragma unroll
            for (int j = -VEC_HALF; j <= VEC_HALF; j++) {
                if (j < -a.half || j > a.half || i + j < 0 || i + j >= n) continue;
                float x = w[4 + e + j];
                m = first ? x : fmaxf(m, x);
                first = false;
            }
            z[e] = hkv_refine_one(w[4 + e], m, beta, a.discount, a.r2);
        }
        return;
    }
#pragma unroll
    for (int e = 0; e < 4; e++) {
        int i = i0 + e;
        z[e] = i < n ? (REFINE ? refine_at(sh, n, i, beta, a) : __ldg(sh + i)) : 0.0f;
    }
}

__global__ void refine_kernel(const float *__restrict__ s, RefineArgs a, int n, bool vec, float *__restrict__ out) {
    int h = blockIdx.y, ng = (n + 3) / 4;
    const float *sh = s + (size_t)h * n;
    float *oh = out + (size_t)h * n;
    float b = a.beta[h];
    for (int g = blockIdx.x * blockDim.x + threadIdx.x; g < ng; g += gridDim.x * blockDim.x) {
        float z[4];
        group_vals<true>(sh, n, g, b, a, vec, z);
        if (vec) {
            reinterpret_cast<float4 *>(oh)[g] = make_float4(z[0], z[1], z[2], z[3]);
        } else {
            for (int e = 0; e < 4 && 4 * g + e < n; e++) oh[4 * g + e] = z[e];
        }
    }
}

static RefineArgs refine_args(const float *d_beta, const hubkv_refine_params *p) {
    RefineArgs a;
    a.beta = d_beta;
    a.discount = p->discount;
    a.r2 = p->ratio * p->ratio;
    a.half = p->width / 2;
    a.on = p->ratio >= p->ratio_gate;
    return a;
}

/* float4 access is possible for rows of n floats starting at p. */
static bool vec_ok(const void *p, int64_t n) { return n % 4 == 0 && (uintptr_t)p % 16 == 0; }

extern "C" hubkv_status hubkv_gpu_refine(hubkv_gpu *g, const float *d_s, const float *d_beta, int32_t n_heads,
                                         int64_t n, const hubkv_refine_params *p, float *d_out) {
    if (!g) return HUBKV_ERR_INVALID_ARG;
    hubkv_status st = hkv_check_refine(p, n_heads, n, g->err, sizeof g->err);
    if (st) return st;
    if (!d_s || !d_beta || !d_out || n_heads > 65535)
        return hkv_fail(g->err, sizeof g->err, HUBKV_ERR_INVALID_ARG, "gpu refine: NULL array or n_heads %d > 65535", n_heads);
    int threads = 256;
    int bx = (int)(((n + 3) / 4 + threads - 1) / threads);
    if (bx > 4096) bx = 4096;
    bool vec = vec_ok(d_s, n) && vec_ok(d_out, n);
    refine_kernel<<<dim3(bx, n_heads), threads, 0, g->stream>>>(d_s, refine_args(d_beta, p), (int)n, vec, d_out);
    HKV_LAUNCH_CK(g->err);
    return HUBKV_OK;
}

// ---------------------------------------------------------------------------
// Per-head Top-K: radix select on order-preserving keys, then ordered output

constexpr int TK_THREADS = 1024;
constexpr int TK_ITEMS = 4;        // consecutive items (one float4 group) per thread
constexpr int TK_UNROLL = 2;       // groups loaded before the histogram updates (memory parallelism)
constexpr int TK_BINS = 2048;      // 11-bit digits: passes of 11, 11, 10 bits
using TkScan = cub::BlockScan<uint32_t, TK_THREADS>;

/* Finds, among bins in descending order, the one holding the k_rem-th largest
 * candidate; sets *bin and *k_left (rank inside it). Each thread owns two bins. */
__device__ void pick_bin(const uint32_t *hist, uint32_t k_rem, TkScan::TempStorage &tmp, int *bin, uint32_t *k_left,
                         uint32_t *bin_count) {
    int t = threadIdx.x;
    int b_hi = TK_BINS - 1 - 2 * t, b_lo = b_hi - 1;
    uint32_t c_hi = hist[b_hi], c_lo = hist[b_lo], before;
    TkScan(tmp).ExclusiveSum(c_hi + c_lo, before);
    if (before < k_rem && before + c_hi >= k_rem) {
        *bin = b_hi, *k_left = k_rem - before, *bin_count = c_hi;
    } else if (before + c_hi < k_rem && before + c_hi + c_lo >= k_rem) {
        *bin = b_lo, *k_left = k_rem - before - c_hi, *bin_count = c_lo;
    }
}

/* Histogram of digit (key >> shift) & dmask over non-forced tokens whose key
 * matches prefix under mask. */
__device__ __forceinline__ void topk_hist(const float *__restrict__ sh, int n, bool vec, int n_sink, int n_recent,
                                          uint32_t prefix, uint32_t mask, int shift, uint32_t dmask, uint32_t *hist) {
    int ng = (n + 3) / 4;
    RefineArgs none = {};
    for (int g0 = threadIdx.x; g0 < ng; g0 += TK_THREADS * TK_UNROLL) {
        float z[TK_UNROLL][4];
#pragma unroll
        for (int u = 0; u < TK_UNROLL; u++)
            if (g0 + u * TK_THREADS < ng) group_vals<false>(sh, n, g0 + u * TK_THREADS, 1.0f, none, vec, z[u]);
#pragma unroll
        for (int u = 0; u < TK_UNROLL; u++) {
            int g = g0 + u * TK_THREADS;
            if (g >= ng) break;
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int i = 4 * g + e;
                if (i >= n || hkv_is_forced(i, n, n_sink, n_recent)) continue;
                uint32_t key = hkv_float_key(z[u][e]);
                if ((key & mask) == prefix) atomicAdd(&hist[(key >> shift) & dmask], 1u);
            }
        }
    }
}

__global__ void __launch_bounds__(TK_THREADS)
topk_kernel(const float *__restrict__ s, int n, bool vec, const int32_t *__restrict__ off, int n_sink, int n_recent,
            const uint32_t *__restrict__ pre_hist, int32_t *__restrict__ idx, int *flag) {
    __shared__ uint32_t hist[TK_BINS];
    __shared__ typename TkScan::TempStorage scan_tmp;
    __shared__ int s_bin;
    __shared__ uint32_t s_left, s_count;
    int h = blockIdx.x, t = threadIdx.x;
    const float *sh = s + (size_t)h * n;
    RefineArgs none = {};
    int64_t k = (int64_t)off[h + 1] - off[h], forced = hkv_n_forced(n, n_sink, n_recent);
    if (k < forced || k > n) {
        if (t == 0) atomicCAS(flag, 0, HKV_FLAG_TOPK_K | (h + 1));
        return;
    }
    uint32_t k_rem = (uint32_t)(k - forced);       // to pick among non-forced tokens
    uint32_t prefix = 0, mask = 0;
    // 0: no candidate taken; 1: all taken; 2: taken iff (key & mask) >= prefix
    // (a whole bin fits); 3: key > prefix, plus the first k_rem with key == prefix.
    int mode = k_rem == 0 ? 0 : k == n ? 1 : 3;
    const int shifts[3] = {21, 10, 0}, widths[3] = {11, 11, 10};
    for (int pass = 0; pass < 3 && mode == 3; pass++) {
        for (int b = t; b < TK_BINS; b += TK_THREADS) hist[b] = 0;
        __syncthreads();
        uint32_t dmask = (1u << widths[pass]) - 1;
        if (pass == 0 && pre_hist) // first digit histogram already made by refine_hist_kernel
            for (int b = t; b < TK_BINS; b += TK_THREADS) hist[b] = pre_hist[(size_t)h * TK_BINS + b];
        else
            topk_hist(sh, n, vec, n_sink, n_recent, prefix, mask, shifts[pass], dmask, hist);
        __syncthreads();
        pick_bin(hist, k_rem, scan_tmp, &s_bin, &s_left, &s_count);
        __syncthreads();
        prefix |= (uint32_t)s_bin << shifts[pass];
        mask |= dmask << shifts[pass];
        k_rem = s_left;
        if (s_left == s_count) mode = 2;
        __syncthreads(); // hist and s_* are rewritten by the next pass
    }
    // Ordered output. gt: forced or key above the threshold bin; eq: in it.
    // Packed scan: low 16 bits count gt, high 16 bits count eq (tile < 2^16).
    uint32_t gt_run = 0, eq_run = 0;
    int32_t *o = idx + off[h];
    for (int base = 0; base < n; base += TK_THREADS * TK_ITEMS) {
        uint32_t flags[TK_ITEMS], local = 0;
        int g = base / TK_ITEMS + t;
        float z[4] = {0, 0, 0, 0};
        if (mode >= 2 && 4 * g < n) group_vals<false>(sh, n, g, 1.0f, none, vec, z);
#pragma unroll
        for (int j = 0; j < TK_ITEMS; j++) {
            int i = 4 * g + j;
            uint32_t f = 0;
            if (i < n) {
                if (hkv_is_forced(i, n, n_sink, n_recent) || mode == 1) {
                    f = 1;
                } else if (mode >= 2) {
                    uint32_t key = hkv_float_key(z[j]);
                    if (mode == 2) f = (key & mask) >= prefix;
                    else f = key > prefix ? 1u : key == prefix ? (1u << 16) : 0u;
                }
            }
            flags[j] = f;
            local += f;
        }
        uint32_t excl, total;
        TkScan(scan_tmp).ExclusiveSum(local, excl, total);
        uint32_t gt_b = gt_run + (excl & 0xffff), eq_b = eq_run + (excl >> 16);
        for (int j = 0; j < TK_ITEMS; j++) {
            int i = 4 * g + j;
            if (flags[j] & 0xffff) {
                o[gt_b + min(eq_b, k_rem)] = i;
                gt_b++;
            } else if (flags[j]) {
                if (eq_b < k_rem) o[gt_b + eq_b] = i;
                eq_b++;
            }
        }
        gt_run += total & 0xffff;
        eq_run += total >> 16;
        __syncthreads(); // scan_tmp reuse
    }
}

/* Refinement that also builds each head's histogram of the top 11 key bits
 * over non-forced tokens (pass 0 of topk_kernel); z and hist are scratch. */
__global__ void refine_hist_kernel(const float *__restrict__ s, RefineArgs a, int n, bool vec, int n_sink,
                                   int n_recent, float *__restrict__ out, uint32_t *__restrict__ ghist) {
    __shared__ uint32_t hist[TK_BINS];
    int h = blockIdx.y, ng = (n + 3) / 4;
    for (int b = threadIdx.x; b < TK_BINS; b += blockDim.x) hist[b] = 0;
    __syncthreads();
    const float *sh = s + (size_t)h * n;
    float *oh = out + (size_t)h * n;
    float beta = a.beta[h];
    for (int g = blockIdx.x * blockDim.x + threadIdx.x; g < ng; g += gridDim.x * blockDim.x) {
        float z[4];
        group_vals<true>(sh, n, g, beta, a, vec, z);
        if (vec) reinterpret_cast<float4 *>(oh)[g] = make_float4(z[0], z[1], z[2], z[3]);
        for (int e = 0; e < 4; e++) {
            int i = 4 * g + e;
            if (i >= n) break;
            if (!vec) oh[i] = z[e];
            if (!hkv_is_forced(i, n, n_sink, n_recent)) atomicAdd(&hist[hkv_float_key(z[e]) >> 21], 1u);
        }
    }
    __syncthreads();
    for (int b = threadIdx.x; b < TK_BINS; b += blockDim.x)
        if (hist[b]) atomicAdd(&ghist[(size_t)h * TK_BINS + b], hist[b]);
}

/* Top-K over plain scores d_s (refine_topk passes z and its first-digit
 * histogram d_pre_hist; else NULL). */
static hubkv_status launch_topk(hubkv_gpu *g, const float *d_s, int32_t n_heads, int64_t n, const int32_t *d_off,
                                int32_t n_sink, int32_t n_recent, const uint32_t *d_pre_hist, int32_t *d_idx) {
    if (n_heads <= 0 || n <= 0 || n >= (1LL << 31) - TK_THREADS * TK_ITEMS || n_sink < 0 || n_recent < 0 || !d_s ||
        !d_off || !d_idx)
        return hkv_fail(g->err, sizeof g->err, HUBKV_ERR_INVALID_ARG,
                        "gpu topk: n_heads %d, n_tokens %lld, n_sink %d, n_recent %d, or a NULL array", n_heads,
                        (long long)n, n_sink, n_recent);
    topk_kernel<<<n_heads, TK_THREADS, 0, g->stream>>>(d_s, (int)n, vec_ok(d_s, n), d_off, n_sink, n_recent, d_pre_hist,
                                                       d_idx, g->d_flag);
    HKV_LAUNCH_CK(g->err);
    return HUBKV_OK;
}

extern "C" hubkv_status hubkv_gpu_topk(hubkv_gpu *g, const float *d_s, int32_t n_heads, int64_t n,
                                       const int32_t *d_off, int32_t n_sink, int32_t n_recent, int32_t *d_idx) {
    if (!g) return HUBKV_ERR_INVALID_ARG;
    return launch_topk(g, d_s, n_heads, n, d_off, n_sink, n_recent, NULL, d_idx);
}

extern "C" hubkv_status hubkv_gpu_refine_topk(hubkv_gpu *g, const float *d_s, const float *d_beta, int32_t n_heads,
                                              int64_t n, const hubkv_refine_params *p, const int32_t *d_off,
                                              int32_t n_sink, int32_t n_recent, int32_t *d_idx) {
    if (!g) return HUBKV_ERR_INVALID_ARG;
    hubkv_status st = hkv_check_refine(p, n_heads, n, g->err, sizeof g->err);
    if (st) return st;
    if (!d_beta || !d_s || n_sink < 0 || n_recent < 0)
        return hkv_fail(g->err, sizeof g->err, HUBKV_ERR_INVALID_ARG, "gpu refine_topk: NULL beta/scores or negative n_sink/n_recent");
    /* z is written once (with the first digit histogram, saving a pass over
     * it) to a scratch kept on the context; the select then reads plain z. */
    size_t zb = (size_t)n_heads * (size_t)n * sizeof(float), hb = (size_t)n_heads * TK_BINS * sizeof(uint32_t);
    hubkv_status st2 = hkv_gpu_scratch(g, zb + hb);
    if (st2) return st2;
    float *z = (float *)g->scratch;
    uint32_t *hist = (uint32_t *)((char *)g->scratch + zb);
    HKV_CUDA_CK(g->err, cudaMemsetAsync(hist, 0, hb, g->stream));
    int threads = 256;
    int bx = (int)(((n + 3) / 4 + threads - 1) / threads);
    if (bx > 1024) bx = 1024;
    bool vec = vec_ok(d_s, n);
    refine_hist_kernel<<<dim3(bx, n_heads), threads, 0, g->stream>>>(d_s, refine_args(d_beta, p), (int)n, vec, n_sink,
                                                                     n_recent, z, hist);
    HKV_LAUNCH_CK(g->err);
    return launch_topk(g, z, n_heads, n, d_off, n_sink, n_recent, hist, d_idx);
}

// ---------------------------------------------------------------------------
// Compaction: one thread per 16-byte chunk of an output row (K and V)

constexpr int CP_THREADS = 256;
constexpr int CP_MAX_HEADS = 1024;

/* Output row j of head h (keep_off[h] <= j < keep_off[h+1]) is written at
 * j + h * out_slack (per-head spare rows) from input row kidx[j] of head h,
 * or j - keep_off[h] when kidx is NULL (regrowth copies every row). Input
 * rows of head h: ioff[h] .. ioff[h] + (ilen ? ilen[h] : ioff[h+1] - ioff[h]). */
template <typename T>
__global__ void compact_kernel(const T *__restrict__ ik, const T *__restrict__ iv, const int32_t *__restrict__ ipos,
                               const int32_t *__restrict__ ioff, const int32_t *__restrict__ ilen, int n_heads,
                               int row_chunks, const int32_t *__restrict__ kidx, const int32_t *__restrict__ koff,
                               int64_t n_keep, int out_slack, T *__restrict__ ok, T *__restrict__ ov,
                               int32_t *__restrict__ opos, int *flag) {
    __shared__ int32_t s_koff[CP_MAX_HEADS + 1];
    for (int i = threadIdx.x; i <= n_heads; i += blockDim.x) s_koff[i] = koff[i];
    __syncthreads();
    int64_t total = n_keep * row_chunks;
    for (int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; t < total; t += (int64_t)gridDim.x * blockDim.x) {
        int64_t row = t / row_chunks;
        int c = (int)(t - row * row_chunks);
        int lo = 0, hi = n_heads - 1; // head h: s_koff[h] <= row < s_koff[h+1]
        while (lo < hi) {
            int mid = (lo + hi + 1) >> 1;
            if (s_koff[mid] <= row) lo = mid; else hi = mid - 1;
        }
        int h = lo;
        int32_t r = kidx ? kidx[row] : (int32_t)(row - s_koff[h]);
        int32_t len = ilen ? ilen[h] : ioff[h + 1] - ioff[h];
        if (r < 0 || r >= len) {
            if (c == 0) atomicCAS(flag, 0, HKV_FLAG_COMPACT_IDX | (h + 1));
            continue;
        }
        int64_t src = (int64_t)ioff[h] + r, dst = row + (int64_t)h * out_slack;
        ok[dst * row_chunks + c] = ik[src * row_chunks + c];
        ov[dst * row_chunks + c] = iv[src * row_chunks + c];
        if (c == 0) opos[dst] = ipos[src];
    }
}

hubkv_status hkv_launch_compact(hubkv_gpu *g, const uint16_t *d_ik, const uint16_t *d_iv, const int32_t *d_ipos,
                                const int32_t *d_ioff, const int32_t *d_ilen, int32_t n_heads, int32_t d,
                                const int32_t *d_kidx, const int32_t *d_koff, int64_t n_keep, int32_t out_slack,
                                uint16_t *d_ok, uint16_t *d_ov, int32_t *d_opos) {
    if (!d_ik || !d_iv || !d_ipos || !d_ioff || !d_koff || !d_ok || !d_ov || !d_opos || n_heads <= 0 ||
        n_heads > CP_MAX_HEADS || d <= 0 || n_keep < 0 || out_slack < 0)
        return hkv_fail(g->err, sizeof g->err, HUBKV_ERR_INVALID_ARG,
                        "gpu compact: NULL array, n_heads %d (expected 1..%d), head_dim %d or n_keep %lld", n_heads,
                        CP_MAX_HEADS, d, (long long)n_keep);
    if (n_keep == 0) return HUBKV_OK;
    uintptr_t al = (uintptr_t)d_ik | (uintptr_t)d_iv | (uintptr_t)d_ok | (uintptr_t)d_ov;
    bool vec = (d % 8 == 0) && (al % 16 == 0); // 16-byte chunks when rows allow
    int chunks = vec ? d / 8 : d;
    int64_t total = n_keep * chunks;
    int blocks = (int)((total + CP_THREADS - 1) / CP_THREADS);
    if (blocks > 132 * 32) blocks = 132 * 32;
    if (vec)
        compact_kernel<uint4><<<blocks, CP_THREADS, 0, g->stream>>>(
            (const uint4 *)d_ik, (const uint4 *)d_iv, d_ipos, d_ioff, d_ilen, n_heads, chunks, d_kidx, d_koff, n_keep,
            out_slack, (uint4 *)d_ok, (uint4 *)d_ov, d_opos, g->d_flag);
    else
        compact_kernel<uint16_t><<<blocks, CP_THREADS, 0, g->stream>>>(d_ik, d_iv, d_ipos, d_ioff, d_ilen, n_heads,
                                                                       chunks, d_kidx, d_koff, n_keep, out_slack, d_ok,
                                                                       d_ov, d_opos, g->d_flag);
    HKV_LAUNCH_CK(g->err);
    return HUBKV_OK;
}

extern "C" hubkv_status hubkv_gpu_compact(hubkv_gpu *g, const uint16_t *d_ik, const uint16_t *d_iv,
                                          const int32_t *d_ipos, const int32_t *d_ioff, int32_t n_heads, int32_t d,
                                          const int32_t *d_kidx, const int32_t *d_koff, int64_t n_keep,
                                          uint16_t *d_ok, uint16_t *d_ov, int32_t *d_opos) {
    if (!g) return HUBKV_ERR_INVALID_ARG;
    if (!d_kidx) return hkv_fail(g->err, sizeof g->err, HUBKV_ERR_INVALID_ARG, "gpu compact: keep_idx is NULL");
    return hkv_launch_compact(g, d_ik, d_iv, d_ipos, d_ioff, NULL, n_heads, d, d_kidx, d_koff, n_keep, 0, d_ok, d_ov,
                              d_opos);
}
