/* CUDA kernels of the runtime: HubKV refinement, per-head Top-K (one block
 * per head, 11/11/10-bit radix select, order-preserving output via a block
 * scan) with optional fused refinement, and compaction into the flattened
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

extern "C" void hubkv_gpu_free(hubkv_gpu *g) {
    if (!g) return;
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
        return hkv_fail(g->err, sizeof g->err, HUBKV_ERR_RANGE,
                        kind == HKV_FLAG_TOPK_K
                            ? "gpu topk: head %d keeps k outside [n_sink + n_recent, N] (offsets invalid)"
                            : "gpu compact: head %d has a keep index outside its rows",
                        head);
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

__global__ void refine_kernel(const float *__restrict__ s, RefineArgs a, int n, float *__restrict__ out) {
    int h = blockIdx.y;
    const float *sh = s + (size_t)h * n;
    float b = a.beta[h];
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
        out[(size_t)h * n + i] = refine_at(sh, n, i, b, a);
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

extern "C" hubkv_status hubkv_gpu_refine(hubkv_gpu *g, const float *d_s, const float *d_beta, int32_t n_heads,
                                         int64_t n, const hubkv_refine_params *p, float *d_out) {
    if (!g) return HUBKV_ERR_INVALID_ARG;
    hubkv_status st = hkv_check_refine(p, n_heads, n, g->err, sizeof g->err);
    if (st) return st;
    if (!d_s || !d_beta || !d_out || n_heads > 65535)
        return hkv_fail(g->err, sizeof g->err, HUBKV_ERR_INVALID_ARG, "gpu refine: NULL array or n_heads %d > 65535", n_heads);
    int threads = 256;
    int bx = (int)((n + threads - 1) / threads);
    if (bx > 4096) bx = 4096;
    refine_kernel<<<dim3(bx, n_heads), threads, 0, g->stream>>>(d_s, refine_args(d_beta, p), (int)n, d_out);
    HKV_LAUNCH_CK(g->err);
    return HUBKV_OK;
}

// ---------------------------------------------------------------------------
// Per-head Top-K: radix select on order-preserving keys, then ordered output

constexpr int TK_THREADS = 1024;
constexpr int TK_ITEMS = 4;        // consecutive items per thread in the output pass
constexpr int TK_BINS = 2048;      // 11-bit digits: passes of 11, 11, 10 bits
using TkScan = cub::BlockScan<uint32_t, TK_THREADS>;

template <bool REFINE>
__device__ __forceinline__ uint32_t key_at(const float *__restrict__ sh, int n, int i, float beta, const RefineArgs &a) {
    return hkv_float_key(REFINE ? refine_at(sh, n, i, beta, a) : __ldg(sh + i));
}

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

template <bool REFINE>
__global__ void __launch_bounds__(TK_THREADS)
topk_kernel(const float *__restrict__ s, RefineArgs a, int n, const int32_t *__restrict__ off, int n_sink,
            int n_recent, int32_t *__restrict__ idx, int *flag) {
    __shared__ uint32_t hist[TK_BINS];
    __shared__ typename TkScan::TempStorage scan_tmp;
    __shared__ int s_bin;
    __shared__ uint32_t s_left, s_count;
    int h = blockIdx.x, t = threadIdx.x;
    const float *sh = s + (size_t)h * n;
    float beta = REFINE ? a.beta[h] : 1.0f;
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
        int sh_ = shifts[pass];
        uint32_t dmask = (1u << widths[pass]) - 1;
        for (int i = t; i < n; i += TK_THREADS) {
            if (hkv_is_forced(i, n, n_sink, n_recent)) continue;
            uint32_t key = key_at<REFINE>(sh, n, i, beta, a);
            if ((key & mask) == prefix) atomicAdd(&hist[(key >> sh_) & dmask], 1u);
        }
        __syncthreads();
        pick_bin(hist, k_rem, scan_tmp, &s_bin, &s_left, &s_count);
        __syncthreads();
        prefix |= (uint32_t)s_bin << sh_;
        mask |= dmask << sh_;
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
        for (int j = 0; j < TK_ITEMS; j++) {
            int i = base + t * TK_ITEMS + j;
            uint32_t f = 0;
            if (i < n) {
                if (hkv_is_forced(i, n, n_sink, n_recent) || mode == 1) {
                    f = 1;
                } else if (mode >= 2) {
                    uint32_t key = key_at<REFINE>(sh, n, i, beta, a);
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
            int i = base + t * TK_ITEMS + j;
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

static hubkv_status launch_topk(hubkv_gpu *g, bool refine, const float *d_s, RefineArgs a, int32_t n_heads,
                                int64_t n, const int32_t *d_off, int32_t n_sink, int32_t n_recent, int32_t *d_idx) {
    if (n_heads <= 0 || n <= 0 || n >= (1LL << 31) - TK_THREADS * TK_ITEMS || n_sink < 0 || n_recent < 0 || !d_s ||
        !d_off || !d_idx)
        return hkv_fail(g->err, sizeof g->err, HUBKV_ERR_INVALID_ARG,
                        "gpu topk: n_heads %d, n_tokens %lld, n_sink %d, n_recent %d, or a NULL array", n_heads,
                        (long long)n, n_sink, n_recent);
    if (refine)
        topk_kernel<true><<<n_heads, TK_THREADS, 0, g->stream>>>(d_s, a, (int)n, d_off, n_sink, n_recent, d_idx, g->d_flag);
    else
        topk_kernel<false><<<n_heads, TK_THREADS, 0, g->stream>>>(d_s, a, (int)n, d_off, n_sink, n_recent, d_idx, g->d_flag);
    HKV_LAUNCH_CK(g->err);
    return HUBKV_OK;
}

extern "C" hubkv_status hubkv_gpu_topk(hubkv_gpu *g, const float *d_s, int32_t n_heads, int64_t n,
                                       const int32_t *d_off, int32_t n_sink, int32_t n_recent, int32_t *d_idx) {
    if (!g) return HUBKV_ERR_INVALID_ARG;
    RefineArgs a = {};
    return launch_topk(g, false, d_s, a, n_heads, n, d_off, n_sink, n_recent, d_idx);
}

extern "C" hubkv_status hubkv_gpu_refine_topk(hubkv_gpu *g, const float *d_s, const float *d_beta, int32_t n_heads,
                                              int64_t n, const hubkv_refine_params *p, const int32_t *d_off,
                                              int32_t n_sink, int32_t n_recent, int32_t *d_idx) {
    if (!g) return HUBKV_ERR_INVALID_ARG;
    hubkv_status st = hkv_check_refine(p, n_heads, n, g->err, sizeof g->err);
    if (st) return st;
    if (!d_beta) return hkv_fail(g->err, sizeof g->err, HUBKV_ERR_INVALID_ARG, "gpu refine_topk: beta is NULL");
    return launch_topk(g, true, d_s, refine_args(d_beta, p), n_heads, n, d_off, n_sink, n_recent, d_idx);
}

// ---------------------------------------------------------------------------
// Compaction: one thread per 16-byte chunk of an output row (K and V)

constexpr int CP_THREADS = 256;
constexpr int CP_MAX_HEADS = 1024;

template <typename T>
__global__ void compact_kernel(const T *__restrict__ ik, const T *__restrict__ iv, const int32_t *__restrict__ ipos,
                               const int32_t *__restrict__ ioff, int n_heads, int row_chunks,
                               const int32_t *__restrict__ kidx, const int32_t *__restrict__ koff, int64_t n_keep,
                               T *__restrict__ ok, T *__restrict__ ov, int32_t *__restrict__ opos, int *flag) {
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
        int32_t r = kidx[row], len = ioff[h + 1] - ioff[h];
        if (r < 0 || r >= len) {
            if (c == 0) atomicCAS(flag, 0, HKV_FLAG_COMPACT_IDX | (h + 1));
            continue;
        }
        int64_t src = (int64_t)ioff[h] + r;
        ok[row * row_chunks + c] = ik[src * row_chunks + c];
        ov[row * row_chunks + c] = iv[src * row_chunks + c];
        if (c == 0) opos[row] = ipos[src];
    }
}

extern "C" hubkv_status hubkv_gpu_compact(hubkv_gpu *g, const uint16_t *d_ik, const uint16_t *d_iv,
                                          const int32_t *d_ipos, const int32_t *d_ioff, int32_t n_heads, int32_t d,
                                          const int32_t *d_kidx, const int32_t *d_koff, int64_t n_keep,
                                          uint16_t *d_ok, uint16_t *d_ov, int32_t *d_opos) {
    if (!g) return HUBKV_ERR_INVALID_ARG;
    if (!d_ik || !d_iv || !d_ipos || !d_ioff || !d_kidx || !d_koff || !d_ok || !d_ov || !d_opos || n_heads <= 0 ||
        n_heads > CP_MAX_HEADS || d <= 0 || n_keep < 0)
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
            (const uint4 *)d_ik, (const uint4 *)d_iv, d_ipos, d_ioff, n_heads, chunks, d_kidx, d_koff, n_keep,
            (uint4 *)d_ok, (uint4 *)d_ov, d_opos, g->d_flag);
    else
        compact_kernel<uint16_t><<<blocks, CP_THREADS, 0, g->stream>>>(d_ik, d_iv, d_ipos, d_ioff, n_heads, chunks,
                                                                       d_kidx, d_koff, n_keep, d_ok, d_ov, d_opos,
                                                                       g->d_flag);
    HKV_LAUNCH_CK(g->err);
    return HUBKV_OK;
}
