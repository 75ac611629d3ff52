/* CUDA kernels of the decode-time operations: the H2O step (one block per
 * head: accumulate, then an argmin over evictable rows), row writes into
 * reused slots, the sink-attention gate forward (one block per token) with
 * its 128-token decode buffer, and the diversity selector (one block per
 * head, greedy). CPU references: decode_cpu.c. */
#include "decode_common.h"
#include "gpu_internal.h"

#include <cub/block/block_scan.cuh>

// ---------------------------------------------------------------------------
// H2O

constexpr int H2O_THREADS = 256;

__global__ void __launch_bounds__(H2O_THREADS)
h2o_kernel(float *__restrict__ acc, int32_t *__restrict__ pos, const int32_t *__restrict__ off,
           int32_t *__restrict__ len, const float *__restrict__ attn, int32_t new_pos, int32_t n_sink,
           int32_t n_recent, int32_t *__restrict__ slot, int *flag) {
    __shared__ float s_v[H2O_THREADS];
    __shared__ int s_r[H2O_THREADS];
    int h = blockIdx.x, t = threadIdx.x;
    int32_t o = off[h], cap = off[h + 1] - o, l = len[h];
    if (l < 0 || l > cap || cap <= 0) {
        if (t == 0) atomicCAS(flag, 0, HKV_FLAG_H2O_FULL | (h + 1)), slot[h] = -1;
        return;
    }
    for (int32_t r = t; r < l; r += H2O_THREADS) acc[o + r] += attn[o + r];
    __syncthreads(); // the argmin reads other threads' sums
    int32_t s = l;
    if (l == cap) {
        float bv = 0.0f;
        int br = -1;
        for (int32_t r = t; r < l; r += H2O_THREADS) // ascending: ties keep the lower row
            if (hkv_h2o_evictable(pos[o + r], new_pos, n_sink, n_recent) && (br < 0 || acc[o + r] < bv))
                bv = acc[o + r], br = r;
        s_v[t] = bv, s_r[t] = br;
        __syncthreads();
        for (int w = H2O_THREADS / 2; w > 0; w >>= 1) {
            if (t < w) {
                int ra = s_r[t], rb = s_r[t + w];
                float va = s_v[t], vb = s_v[t + w];
                if (rb >= 0 && (ra < 0 || vb < va || (vb == va && rb < ra))) s_v[t] = vb, s_r[t] = rb;
            }
            __syncthreads();
        }
        s = s_r[0];
    }
    if (t == 0) {
        if (s < 0) {
            atomicCAS(flag, 0, HKV_FLAG_H2O_FULL | (h + 1));
            slot[h] = -1;
            return;
        }
        acc[o + s] = 0.0f;
        pos[o + s] = new_pos;
        if (l < cap) len[h] = l + 1;
        slot[h] = o + s;
    }
}

extern "C" hubkv_status hubkv_gpu_h2o_step(hubkv_gpu *g, float *d_acc, int32_t *d_pos, const int32_t *d_off,
                                           int32_t *d_len, int32_t n_heads, const float *d_attn, int32_t new_pos,
                                           int32_t n_sink, int32_t n_recent, int32_t *d_slot) {
    if (!g) return HUBKV_ERR_INVALID_ARG;
    if (!d_acc || !d_pos || !d_off || !d_len || !d_attn || !d_slot || n_heads <= 0 || n_sink < 0 || n_recent < 0)
        return hkv_fail(g->err, sizeof g->err, HUBKV_ERR_INVALID_ARG,
                        "gpu h2o: NULL array, n_heads %d, n_sink %d or n_recent %d", n_heads, n_sink, n_recent);
    h2o_kernel<<<n_heads, H2O_THREADS, 0, g->stream>>>(d_acc, d_pos, d_off, d_len, d_attn, new_pos, n_sink, n_recent,
                                                       d_slot, g->d_flag);
    HKV_LAUNCH_CK(g->err);
    return HUBKV_OK;
}

__global__ void write_rows_kernel(uint16_t *k, uint16_t *v, const int32_t *slot, int n_heads, int d,
                                  const uint16_t *nk, const uint16_t *nv) {
    int64_t total = (int64_t)n_heads * d;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x) {
        int h = (int)(i / d), j = (int)(i - (int64_t)h * d);
        int32_t s = slot[h];
        if (s < 0) continue;
        k[(int64_t)s * d + j] = nk[i];
        v[(int64_t)s * d + j] = nv[i];
    }
}

hubkv_status hkv_write_rows(hubkv_gpu *g, uint16_t *d_k, uint16_t *d_v, const int32_t *d_slot, int32_t n_heads,
                            int32_t d, const uint16_t *d_nk, const uint16_t *d_nv) {
    int64_t total = (int64_t)n_heads * d;
    int blocks = (int)((total + 255) / 256);
    write_rows_kernel<<<blocks > 1024 ? 1024 : blocks, 256, 0, g->stream>>>(d_k, d_v, d_slot, n_heads, d, d_nk, d_nv);
    HKV_LAUNCH_CK(g->err);
    return HUBKV_OK;
}

// ---------------------------------------------------------------------------
// Sink-attention gate: one block per token

constexpr int GATE_THREADS = 256;

struct GateArgs {
    hubkv_gate_weights w;
    int n;
};

__global__ void __launch_bounds__(GATE_THREADS) gate_kernel(GateArgs a, const float *__restrict__ x, float *__restrict__ out) {
    extern __shared__ float sm[];
    const hubkv_gate_weights &w = a.w;
    int H = w.n_kv_heads, G = w.n_group, r = w.rank, D = w.d_model, tok = blockIdx.x, t = threadIdx.x;
    int nq = H * G * r, nk = H * r;
    float *sx = sm, *q = sx + D, *k = q + nq, *p = k + nk; // x (D), q (H,G,r), k (H,r), p (H,G)
    for (int i = t; i < D; i += GATE_THREADS) sx[i] = x[(size_t)tok * D + i];
    __syncthreads();
    for (int j = t; j < nq + nk; j += GATE_THREADS) { // one projection row each, same order as the CPU
        if (j < nq) hkv_gate_proj(w.wq + (size_t)j * D, w.bq + j, sx, D, 1, q + j);
        else hkv_gate_proj(w.wk + (size_t)(j - nq) * D, NULL, sx, D, 1, k + (j - nq));
    }
    __syncthreads();
    for (int j = t; j < H * G + H; j += GATE_THREADS) {
        if (j < H * G) hkv_gate_rmsnorm(q + (size_t)j * r, w.q_norm, r, w.eps);
        else hkv_gate_rmsnorm(k + (size_t)(j - H * G) * r, w.k_norm, r, w.eps);
    }
    __syncthreads();
    for (int j = t; j < H * G; j += GATE_THREADS) {
        int h = j / G;
        p[j] = hkv_gate_prob(q + (size_t)j * r, k + (size_t)h * r, w.k_base + (size_t)h * w.n_sink * r, w.n_sink, r, w.b[j]);
    }
    __syncthreads();
    for (int h = t; h < H; h += GATE_THREADS) {
        float sum = 0.0f;
        for (int gi = 0; gi < G; gi++) sum += p[h * G + gi];
        out[(size_t)h * a.n + tok] = sum / (float)G;
    }
}

extern "C" hubkv_status hubkv_gpu_gate_forward(hubkv_gpu *g, const hubkv_gate_weights *w, const float *d_x, int64_t n,
                                               float *d_out) {
    if (!g) return HUBKV_ERR_INVALID_ARG;
    hubkv_status st = hkv_check_gate(w, n, g->err, sizeof g->err);
    if (st) return st;
    if (!d_x || !d_out) return hkv_fail(g->err, sizeof g->err, HUBKV_ERR_INVALID_ARG, "gpu gate: NULL x or out");
    if (n == 0) return HUBKV_OK;
    size_t smem = ((size_t)w->d_model + (size_t)w->n_kv_heads * (w->n_group + 1) * w->rank +
                   (size_t)w->n_kv_heads * w->n_group) * sizeof(float);
    if (smem > 48 * 1024)
        return hkv_fail(g->err, sizeof g->err, HUBKV_ERR_INVALID_ARG,
                        "gpu gate: d_model %d with %d heads x %d groups x rank %d needs %zu bytes of shared memory; expected <= 48 KiB",
                        w->d_model, w->n_kv_heads, w->n_group, w->rank, smem);
    if (n > 0x7fffffff) return hkv_fail(g->err, sizeof g->err, HUBKV_ERR_INVALID_ARG, "gpu gate: n %lld too large", (long long)n);
    GateArgs a = {*w, (int)n};
    gate_kernel<<<(unsigned)n, GATE_THREADS, smem, g->stream>>>(a, d_x, d_out);
    HKV_LAUNCH_CK(g->err);
    return HUBKV_OK;
}

struct hubkv_gate_buffer {
    hubkv_gpu *g;     // borrowed
    int32_t d_model, n_heads, chunk, fill;
    float *x;         // (chunk, d_model) device
    float *scores;    // (H, chunk) device
};

extern "C" hubkv_status hubkv_gate_buffer_create(hubkv_gpu *g, int32_t d_model, int32_t n_kv_heads, int32_t chunk,
                                                 hubkv_gate_buffer **out) {
    if (!g || !out) return HUBKV_ERR_INVALID_ARG;
    *out = NULL;
    if (chunk == 0) chunk = 128;
    if (d_model <= 0 || n_kv_heads <= 0 || chunk < 0)
        return hkv_fail(g->err, sizeof g->err, HUBKV_ERR_INVALID_ARG,
                        "gate_buffer_create: d_model %d, n_kv_heads %d, chunk %d; expected > 0", d_model, n_kv_heads, chunk);
    hubkv_gate_buffer *b = (hubkv_gate_buffer *)hkv_calloc(1, sizeof *b);
    if (!b) return hkv_fail(g->err, sizeof g->err, HUBKV_ERR_NOMEM, "gate_buffer_create: out of host memory");
    b->g = g, b->d_model = d_model, b->n_heads = n_kv_heads, b->chunk = chunk;
    cudaError_t e = cudaMalloc(&b->x, (size_t)chunk * d_model * sizeof(float));
    if (e == cudaSuccess) e = cudaMalloc(&b->scores, (size_t)chunk * n_kv_heads * sizeof(float));
    if (e != cudaSuccess) {
        hubkv_gate_buffer_free(b);
        cudaGetLastError();
        return hkv_fail(g->err, sizeof g->err, HUBKV_ERR_NOMEM, "gate_buffer_create: cudaMalloc: %s", cudaGetErrorString(e));
    }
    *out = b;
    return HUBKV_OK;
}

extern "C" void hubkv_gate_buffer_free(hubkv_gate_buffer *b) {
    if (!b) return;
    cudaFree(b->x), cudaFree(b->scores);
    free(b);
}

extern "C" hubkv_status hubkv_gate_buffer_push(hubkv_gate_buffer *b, const hubkv_gate_weights *w, const float *d_x,
                                               int32_t n, int32_t *n_ready) {
    if (!b) return HUBKV_ERR_INVALID_ARG;
    hubkv_gpu *g = b->g;
    if (n_ready) *n_ready = 0;
    if (!w || !d_x || n < 0 || w->d_model != b->d_model || w->n_kv_heads != b->n_heads)
        return hkv_fail(g->err, sizeof g->err, HUBKV_ERR_INVALID_ARG,
                        "gate_buffer_push: NULL weights/x, n %d, or weights for d_model %d / %d heads; expected %d / %d",
                        n, w ? w->d_model : 0, w ? w->n_kv_heads : 0, b->d_model, b->n_heads);
    size_t row = (size_t)b->d_model * sizeof(float);
    for (int32_t done = 0; done < n;) {
        int32_t m = n - done < b->chunk - b->fill ? n - done : b->chunk - b->fill;
        HKV_CUDA_CK(g->err, cudaMemcpyAsync(b->x + (size_t)b->fill * b->d_model, d_x + (size_t)done * b->d_model, m * row,
                                            cudaMemcpyDeviceToDevice, g->stream));
        done += m, b->fill += m;
        if (b->fill == b->chunk) { // a full chunk: score it now (once per chunk, not per token)
            hubkv_status st = hubkv_gpu_gate_forward(g, w, b->x, b->chunk, b->scores);
            if (st) return st;
            b->fill = 0;
            if (n_ready) (*n_ready)++;
        }
    }
    return HUBKV_OK;
}

extern "C" const float *hubkv_gate_buffer_scores(const hubkv_gate_buffer *b) { return b ? b->scores : NULL; }
extern "C" int32_t hubkv_gate_buffer_pending(const hubkv_gate_buffer *b) { return b ? b->fill : 0; }

// ---------------------------------------------------------------------------
// Diversity selector: one block per head, one greedy pick per iteration

constexpr int DV_THREADS = 256;
using DvScan = cub::BlockScan<int, DV_THREADS>;

__global__ void __launch_bounds__(DV_THREADS)
diverse_kernel(const float *__restrict__ scores, const uint16_t *__restrict__ v, int n, int d,
               const int32_t *__restrict__ off, float lambda, int n_sink, int n_recent, float *red_all, float *inv_all,
               unsigned char *sel_all, int32_t *__restrict__ idx, int *flag) {
    __shared__ float s_g[DV_THREADS];
    __shared__ int s_i[DV_THREADS];
    __shared__ typename DvScan::TempStorage scan_tmp;
    int h = blockIdx.x, t = threadIdx.x;
    int64_t k = (int64_t)off[h + 1] - off[h], forced = hkv_n_forced(n, n_sink, n_recent);
    if (k < forced || k > n) {
        if (t == 0) atomicCAS(flag, 0, HKV_FLAG_TOPK_K | (h + 1));
        return;
    }
    const float *sh = scores + (size_t)h * n;
    const uint16_t *vh = v + (size_t)h * n * d;
    float *red = red_all + (size_t)h * n, *inv = inv_all + (size_t)h * n;
    unsigned char *sel = sel_all + (size_t)h * n;
    for (int i = t; i < n; i += DV_THREADS)
        inv[i] = hkv_div_inv_norm(vh + (size_t)i * d, d), red[i] = 0.0f, sel[i] = hkv_is_forced(i, n, n_sink, n_recent);
    __syncthreads();
    for (int f = 0; f < n; f++) { // forced rows, ascending like the CPU
        if (!hkv_is_forced(f, n, n_sink, n_recent)) {
            if (f < n_sink) continue;
            f = n - n_recent - 1; // jump to the recent window (loop increments)
            continue;
        }
        for (int j = t; j < n; j += DV_THREADS)
            red[j] = fmaxf(red[j], hkv_div_cos(vh + (size_t)j * d, vh + (size_t)f * d, inv[j], inv[f], d));
    }
    for (int64_t taken = forced; taken < k; taken++) {
        __syncthreads(); // red and sel of the last pick are visible
        float bg = 0.0f;
        int bi = -1;
        for (int i = t; i < n; i += DV_THREADS) {
            if (sel[i]) continue;
            float gi = hkv_div_gain(sh[i], red[i], lambda);
            if (bi < 0 || gi > bg) bg = gi, bi = i;
        }
        s_g[t] = bg, s_i[t] = bi;
        __syncthreads();
        for (int w = DV_THREADS / 2; w > 0; w >>= 1) {
            if (t < w) {
                int ia = s_i[t], ib = s_i[t + w];
                float ga = s_g[t], gb = s_g[t + w];
                if (ib >= 0 && (ia < 0 || gb > ga || (gb == ga && ib < ia))) s_g[t] = gb, s_i[t] = ib;
            }
            __syncthreads();
        }
        int b = s_i[0];
        if (t == 0) sel[b] = 1;
        for (int j = t; j < n; j += DV_THREADS)
            red[j] = fmaxf(red[j], hkv_div_cos(vh + (size_t)j * d, vh + (size_t)b * d, inv[j], inv[b], d));
    }
    __syncthreads();
    int32_t *o = idx + off[h];
    int run = 0;
    for (int base = 0; base < n; base += DV_THREADS) {
        int i = base + t, f = i < n ? sel[i] : 0, excl, total;
        DvScan(scan_tmp).ExclusiveSum(f, excl, total);
        if (f) o[run + excl] = i;
        run += total;
        __syncthreads(); // scan_tmp reuse
    }
}

extern "C" hubkv_status hubkv_gpu_diverse(hubkv_gpu *g, const float *d_scores, const uint16_t *d_v, int32_t n_heads,
                                          int64_t n, int32_t d, const int32_t *d_off, const int32_t *h_off,
                                          float lambda, int32_t n_sink, int32_t n_recent, int32_t *d_idx) {
    if (!g) return HUBKV_ERR_INVALID_ARG;
    hubkv_status st = hkv_check_diverse(n_heads, n, d, h_off, lambda, n_sink, n_recent, g->err, sizeof g->err);
    if (st) return st;
    if (!d_scores || !d_v || !d_off || !d_idx)
        return hkv_fail(g->err, sizeof g->err, HUBKV_ERR_INVALID_ARG, "gpu diverse: NULL array");
    size_t cnt = (size_t)n_heads * (size_t)n;
    float *red = NULL, *inv = NULL;
    unsigned char *sel = NULL;
    cudaError_t e = cudaMallocAsync(&red, cnt * sizeof(float), g->stream);
    if (e == cudaSuccess) e = cudaMallocAsync(&inv, cnt * sizeof(float), g->stream);
    if (e == cudaSuccess) e = cudaMallocAsync(&sel, cnt, g->stream);
    if (e == cudaSuccess) {
        diverse_kernel<<<n_heads, DV_THREADS, 0, g->stream>>>(d_scores, d_v, (int)n, d, d_off, lambda, n_sink, n_recent,
                                                             red, inv, sel, d_idx, g->d_flag);
        e = cudaGetLastError();
    }
    if (red) cudaFreeAsync(red, g->stream);
    if (inv) cudaFreeAsync(inv, g->stream);
    if (sel) cudaFreeAsync(sel, g->stream);
    if (e != cudaSuccess)
        return hkv_fail(g->err, sizeof g->err, e == cudaErrorMemoryAllocation ? HUBKV_ERR_NOMEM : HUBKV_ERR_CUDA,
                        "CUDA error at %s:%d: gpu diverse: %s", __FILE__, __LINE__, cudaGetErrorString(e));
    return HUBKV_OK;
}
