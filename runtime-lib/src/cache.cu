/* GPU variable-length KV cache: per layer exact-size K/V buffers (rows of
 * head_dim bf16), head offsets and token positions. Compaction gathers into
 * new exact-size buffers and frees the old ones, so memory is released. */
#include "gpu_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cache_layer {
    uint16_t *k, *v;   // (rows, d) bf16, rows = sum of head capacities
    int32_t *off;      // (H + 1) segment offsets
    int32_t *len;      // (H) valid rows per head
    int32_t *pos;      // (rows)
    int32_t *h_off;    // (H + 1) host copy
    int32_t *h_len;    // (H) host copy
    int64_t rows;
};

struct hubkv_cache {
    hubkv_gpu *g;      // borrowed
    int32_t n_layers, n_heads, d, slack;
    cache_layer *layers;
    char err[HKV_ERR_CAP];
};

static void layer_free(cache_layer *l) {
    cudaFree(l->k), cudaFree(l->v), cudaFree(l->off), cudaFree(l->len), cudaFree(l->pos);
    free(l->h_off), free(l->h_len);
    memset(l, 0, sizeof *l);
}

/* Allocates buffers for segments h_off (H+1, host; copied) with valid rows
 * h_len (H, host; copied) and uploads both (queued on the stream; the host
 * copies are the layer's own, so they outlive the copy). Zeroed on failure. */
static hubkv_status layer_alloc(hubkv_cache *c, cache_layer *l, const int32_t *h_off, const int32_t *h_len) {
    memset(l, 0, sizeof *l);
    int32_t H = c->n_heads;
    int64_t rows = h_off[H];
    size_t rb = (size_t)c->d * sizeof(uint16_t), n = rows ? (size_t)rows : 1;
    l->h_off = (int32_t *)hkv_calloc((size_t)H + 1, sizeof(int32_t));
    l->h_len = (int32_t *)hkv_calloc((size_t)H, sizeof(int32_t));
    if (!l->h_off || !l->h_len) {
        layer_free(l);
        return hkv_fail(c->err, sizeof c->err, HUBKV_ERR_NOMEM, "cache: out of host memory");
    }
    memcpy(l->h_off, h_off, ((size_t)H + 1) * sizeof(int32_t));
    memcpy(l->h_len, h_len, (size_t)H * sizeof(int32_t));
    cudaError_t e = cudaMalloc(&l->k, n * rb);
    if (e == cudaSuccess) e = cudaMalloc(&l->v, n * rb);
    if (e == cudaSuccess) e = cudaMalloc(&l->off, ((size_t)H + 1) * sizeof(int32_t));
    if (e == cudaSuccess) e = cudaMalloc(&l->len, (size_t)H * sizeof(int32_t));
    if (e == cudaSuccess) e = cudaMalloc(&l->pos, n * sizeof(int32_t));
    if (e != cudaSuccess) {
        layer_free(l);
        cudaGetLastError();
        size_t free_b = 0, total_b = 0, need = 2 * n * rb + n * sizeof(int32_t) + (2 * (size_t)H + 1) * sizeof(int32_t);
        cudaMemGetInfo(&free_b, &total_b); // after layer_free: what this layer could have had
        cudaGetLastError();
        return hkv_fail(c->err, sizeof c->err, HUBKV_ERR_NOMEM,
                        "CUDA error at %s:%d: cudaMalloc of %lld rows x %d for a cache layer (K, V, offsets, "
                        "positions: %zu bytes, %.2f GiB) failed (%s); %zu bytes (%.2f GiB) of %zu free",
                        __FILE__, __LINE__, (long long)rows, c->d, need, need / 1073741824.0,
                        cudaGetErrorString(e), free_b, free_b / 1073741824.0, total_b);
    }
    cudaStream_t s = c->g->stream;
    e = cudaMemcpyAsync(l->off, l->h_off, ((size_t)H + 1) * sizeof(int32_t), cudaMemcpyHostToDevice, s);
    if (e == cudaSuccess) e = cudaMemcpyAsync(l->len, l->h_len, (size_t)H * sizeof(int32_t), cudaMemcpyHostToDevice, s);
    if (e != cudaSuccess) {
        layer_free(l);
        return hkv_fail(c->err, sizeof c->err, HUBKV_ERR_CUDA, "CUDA error at %s:%d: offsets upload: %s", __FILE__,
                        __LINE__, cudaGetErrorString(e));
    }
    l->rows = rows;
    return HUBKV_OK;
}

/* Segment offsets for per-head valid lengths len plus `spare` (H) extra rows;
 * HUBKV_ERR_RANGE if the total reaches 2^31 rows. */
static hubkv_status seg_offsets(hubkv_cache *c, const int32_t *len, const int64_t *spare, int32_t *off) {
    int64_t acc = 0;
    off[0] = 0;
    for (int32_t h = 0; h < c->n_heads; h++) {
        acc += (int64_t)len[h] + spare[h];
        if (acc >= (1LL << 31))
            return hkv_fail(c->err, sizeof c->err, HUBKV_ERR_RANGE, "cache: layer would hold %lld rows; expected < 2^31",
                            (long long)acc);
        off[h + 1] = (int32_t)acc;
    }
    return HUBKV_OK;
}

extern "C" hubkv_status hubkv_cache_create(hubkv_gpu *g, int32_t n_layers, int32_t n_heads, int32_t d,
                                           hubkv_cache **out) {
    if (!out) return HUBKV_ERR_INVALID_ARG;
    *out = NULL;
    if (!g) return HUBKV_ERR_INVALID_ARG;
    if (n_layers <= 0 || n_heads <= 0 || n_heads > 1024 || d <= 0)
        return hkv_fail(g->err, sizeof g->err, HUBKV_ERR_INVALID_ARG,
                        "cache_create: n_layers %d, n_kv_heads %d (1..1024), head_dim %d; expected > 0", n_layers,
                        n_heads, d);
    hubkv_cache *c = (hubkv_cache *)hkv_calloc(1, sizeof *c);
    cache_layer *ls = (cache_layer *)hkv_calloc((size_t)n_layers, sizeof *ls);
    if (!c || !ls) {
        free(c), free(ls);
        return hkv_fail(g->err, sizeof g->err, HUBKV_ERR_NOMEM, "cache_create: out of host memory");
    }
    c->g = g, c->n_layers = n_layers, c->n_heads = n_heads, c->d = d, c->slack = 0, c->layers = ls;
    *out = c;
    return HUBKV_OK;
}

extern "C" void hubkv_cache_free(hubkv_cache *c) {
    if (!c) return;
    for (int32_t l = 0; l < c->n_layers; l++) layer_free(&c->layers[l]);
    free(c->layers);
    free(c);
}

extern "C" const char *hubkv_cache_error(const hubkv_cache *c) { return c ? c->err : "cache is NULL"; }

__global__ void iota_pos_kernel(int32_t *pos, int64_t n, int64_t seg, int64_t total) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x)
        pos[i] = i % seg < n ? (int32_t)(i % seg) : -1; // spare rows: -1
}

/* Finishes a layer replacement: on success frees the old layer, else the new. */
static hubkv_status layer_swap(hubkv_cache *c, int32_t layer, cache_layer *nl, cudaError_t e, const char *what) {
    if (e != cudaSuccess) {
        layer_free(nl);
        return hkv_fail(c->err, sizeof c->err, HUBKV_ERR_CUDA, "CUDA error at %s:%d: %s: %s", __FILE__, __LINE__, what,
                        cudaGetErrorString(e));
    }
    layer_free(&c->layers[layer]); // the old buffers are released here
    c->layers[layer] = *nl;
    return HUBKV_OK;
}

extern "C" hubkv_status hubkv_cache_set_dense(hubkv_cache *c, int32_t layer, const uint16_t *d_k, const uint16_t *d_v,
                                              int64_t n) {
    if (!c) return HUBKV_ERR_INVALID_ARG;
    if (layer < 0 || layer >= c->n_layers || !d_k || !d_v || n <= 0 || (n + c->slack) * c->n_heads >= (1LL << 31))
        return hkv_fail(c->err, sizeof c->err, HUBKV_ERR_INVALID_ARG,
                        "cache_set_dense: layer %d (expected [0,%d)), n_tokens %lld (H*(N+slack) < 2^31), NULL K/V",
                        layer, c->n_layers, (long long)n);
    int32_t H = c->n_heads;
    int32_t *len = (int32_t *)hkv_calloc((size_t)H, sizeof *len), *off = (int32_t *)hkv_calloc((size_t)H + 1, sizeof *off);
    int64_t *spare = (int64_t *)hkv_calloc((size_t)H, sizeof *spare);
    hubkv_status st = len && off && spare ? HUBKV_OK : hkv_fail(c->err, sizeof c->err, HUBKV_ERR_NOMEM, "cache_set_dense: out of host memory");
    for (int32_t h = 0; !st && h < H; h++) len[h] = (int32_t)n, spare[h] = c->slack;
    if (!st) st = seg_offsets(c, len, spare, off);
    cache_layer nl;
    if (!st) st = layer_alloc(c, &nl, off, len);
    free(len), free(off), free(spare);
    if (st) return st;
    cudaStream_t s = c->g->stream;
    size_t row = (size_t)c->d * sizeof(uint16_t), seg = (size_t)(n + c->slack);
    cudaError_t e = cudaMemcpy2DAsync(nl.k, seg * row, d_k, (size_t)n * row, (size_t)n * row, (size_t)H,
                                      cudaMemcpyDeviceToDevice, s);
    if (e == cudaSuccess)
        e = cudaMemcpy2DAsync(nl.v, seg * row, d_v, (size_t)n * row, (size_t)n * row, (size_t)H, cudaMemcpyDeviceToDevice, s);
    if (e == cudaSuccess) {
        iota_pos_kernel<<<1024, 256, 0, s>>>(nl.pos, n, (int64_t)seg, nl.rows);
        e = cudaGetLastError();
    }
    return layer_swap(c, layer, &nl, e, "cache_set_dense copy");
}

/* Gathers layer `layer` into nl (already allocated): rows kidx (NULL = all
 * valid rows) per keep offsets koff (device), each head's output shifted by
 * h * out_slack; waits for the stream (and bad indices) before swapping. */
static hubkv_status layer_gather(hubkv_cache *c, int32_t layer, cache_layer *nl, const int32_t *d_kidx,
                                 const int32_t *d_koff, int64_t n_keep, int32_t out_slack) {
    cache_layer *old = &c->layers[layer];
    hubkv_status st = hkv_launch_compact(c->g, old->k, old->v, old->pos, old->off, old->len, c->n_heads, c->d, d_kidx,
                                         d_koff, n_keep, out_slack, nl->k, nl->v, nl->pos);
    if (st == HUBKV_OK) st = hubkv_gpu_sync(c->g); // also surfaces bad keep indices; old buffers still in use until here
    if (st) {
        snprintf(c->err, sizeof c->err, "cache: %.500s", c->g->err);
        layer_free(nl);
        return st;
    }
    return layer_swap(c, layer, nl, cudaSuccess, "");
}

extern "C" hubkv_status hubkv_cache_compact(hubkv_cache *c, int32_t layer, const int32_t *d_kidx,
                                            const int32_t *h_koff) {
    if (!c) return HUBKV_ERR_INVALID_ARG;
    if (layer < 0 || layer >= c->n_layers || !d_kidx || !h_koff || !c->layers[layer].k)
        return hkv_fail(c->err, sizeof c->err, HUBKV_ERR_INVALID_ARG,
                        "cache_compact: layer %d (expected a filled layer in [0,%d)) or NULL keep arrays", layer,
                        c->n_layers);
    int32_t H = c->n_heads;
    const cache_layer *old = &c->layers[layer];
    if (h_koff[0] != 0)
        return hkv_fail(c->err, sizeof c->err, HUBKV_ERR_INVALID_ARG, "cache_compact: keep_off[0] = %d; expected 0", h_koff[0]);
    for (int32_t h = 0; h < H; h++)
        if (h_koff[h + 1] < h_koff[h] || h_koff[h + 1] - h_koff[h] > old->h_len[h])
            return hkv_fail(c->err, sizeof c->err, HUBKV_ERR_INVALID_ARG,
                            "cache_compact: head %d keeps %d rows; expected 0 <= k <= its %d valid rows", h,
                            h_koff[h + 1] - h_koff[h], old->h_len[h]);
    int32_t *len = (int32_t *)hkv_calloc((size_t)H, sizeof *len), *off = (int32_t *)hkv_calloc((size_t)H + 1, sizeof *off);
    int64_t *spare = (int64_t *)hkv_calloc((size_t)H, sizeof *spare);
    hubkv_status st = len && off && spare ? HUBKV_OK : hkv_fail(c->err, sizeof c->err, HUBKV_ERR_NOMEM, "cache_compact: out of host memory");
    for (int32_t h = 0; !st && h < H; h++) len[h] = h_koff[h + 1] - h_koff[h], spare[h] = c->slack;
    if (!st) st = seg_offsets(c, len, spare, off);
    cache_layer nl;
    if (!st) st = layer_alloc(c, &nl, off, len);
    free(len), free(off), free(spare);
    if (st) return st;
    // The kernel finds each kept row's head from the keep offsets (device copy).
    int32_t *d_koff = NULL;
    cudaError_t e = cudaMallocAsync(&d_koff, ((size_t)H + 1) * sizeof(int32_t), c->g->stream);
    if (e == cudaSuccess)
        e = cudaMemcpyAsync(d_koff, h_koff, ((size_t)H + 1) * sizeof(int32_t), cudaMemcpyHostToDevice, c->g->stream);
    if (e != cudaSuccess) {
        if (d_koff) cudaFreeAsync(d_koff, c->g->stream);
        return layer_swap(c, layer, &nl, e, "cache_compact: keep offsets upload");
    }
    st = layer_gather(c, layer, &nl, d_kidx, d_koff, h_koff[H], c->slack);
    cudaFreeAsync(d_koff, c->g->stream);
    return st;
}

extern "C" hubkv_status hubkv_cache_set_slack(hubkv_cache *c, int32_t rows) {
    if (!c) return HUBKV_ERR_INVALID_ARG;
    if (rows < 0) return hkv_fail(c->err, sizeof c->err, HUBKV_ERR_INVALID_ARG, "cache_set_slack: %d; expected >= 0", rows);
    c->slack = rows;
    return HUBKV_OK;
}

/* Regrows layer `layer` so every head has room for n_new more rows: new
 * capacity len + n_new + max(slack, len / 2) (geometric, so appends cost
 * amortised O(1) per token). */
static hubkv_status layer_grow(hubkv_cache *c, int32_t layer, int32_t n_new) {
    int32_t H = c->n_heads;
    const cache_layer *old = &c->layers[layer];
    int32_t *off = (int32_t *)hkv_calloc((size_t)H + 1, sizeof *off);
    int64_t *spare = (int64_t *)hkv_calloc((size_t)H, sizeof *spare);
    hubkv_status st = off && spare ? HUBKV_OK : hkv_fail(c->err, sizeof c->err, HUBKV_ERR_NOMEM, "cache_append: out of host memory");
    for (int32_t h = 0; !st && h < H; h++) {
        int64_t l = old->h_len[h];
        spare[h] = n_new + (c->slack > l / 2 ? c->slack : l / 2);
    }
    if (!st) st = seg_offsets(c, old->h_len, spare, off);
    cache_layer nl;
    if (!st) st = layer_alloc(c, &nl, off, old->h_len);
    if (!st) {
        /* Each head's valid rows move to its new, larger segment. */
        cudaStream_t s = c->g->stream;
        size_t row = (size_t)c->d * sizeof(uint16_t);
        cudaError_t e = cudaSuccess;
        for (int32_t h = 0; h < H && e == cudaSuccess; h++) {
            size_t n = (size_t)old->h_len[h];
            if (!n) continue;
            e = cudaMemcpyAsync(nl.k + (size_t)off[h] * c->d, old->k + (size_t)old->h_off[h] * c->d, n * row,
                                cudaMemcpyDeviceToDevice, s);
            if (e == cudaSuccess)
                e = cudaMemcpyAsync(nl.v + (size_t)off[h] * c->d, old->v + (size_t)old->h_off[h] * c->d, n * row,
                                    cudaMemcpyDeviceToDevice, s);
            if (e == cudaSuccess)
                e = cudaMemcpyAsync(nl.pos + off[h], old->pos + old->h_off[h], n * sizeof(int32_t),
                                    cudaMemcpyDeviceToDevice, s);
        }
        if (e == cudaSuccess) e = cudaStreamSynchronize(s); // the old buffers are read until here
        st = layer_swap(c, layer, &nl, e, "cache_append regrowth");
    }
    free(off), free(spare);
    return st;
}

/* Row r of head h of the new tokens (H, n_new, d) -> segment row len[h] + r. */
template <typename T>
__global__ void append_kernel(T *__restrict__ k, T *__restrict__ v, int32_t *__restrict__ pos,
                              const int32_t *__restrict__ off, const int32_t *__restrict__ len,
                              const T *__restrict__ nk, const T *__restrict__ nv, int n_heads, int n_new, int chunks,
                              int32_t pos0) {
    int64_t total = (int64_t)n_heads * n_new * chunks;
    for (int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; t < total; t += (int64_t)gridDim.x * blockDim.x) {
        int64_t src = t / chunks;
        int c = (int)(t - src * chunks), h = (int)(src / n_new), r = (int)(src - (int64_t)h * n_new);
        int64_t dst = (int64_t)off[h] + len[h] + r;
        k[dst * chunks + c] = nk[src * chunks + c];
        v[dst * chunks + c] = nv[src * chunks + c];
        if (c == 0) pos[dst] = pos0 + r;
    }
}

__global__ void add_len_kernel(int32_t *len, int n_heads, int n_new) {
    int h = blockIdx.x * blockDim.x + threadIdx.x;
    if (h < n_heads) len[h] += n_new;
}

extern "C" hubkv_status hubkv_cache_append(hubkv_cache *c, int32_t layer, const uint16_t *d_k, const uint16_t *d_v,
                                           int32_t n_new, int32_t pos0) {
    if (!c) return HUBKV_ERR_INVALID_ARG;
    if (layer < 0 || layer >= c->n_layers || !c->layers[layer].k || !d_k || !d_v || n_new < 0)
        return hkv_fail(c->err, sizeof c->err, HUBKV_ERR_INVALID_ARG,
                        "cache_append: layer %d (expected a filled layer in [0,%d)), NULL K/V or n_new %d < 0", layer,
                        c->n_layers, n_new);
    if (n_new == 0) return HUBKV_OK;
    int32_t H = c->n_heads;
    cache_layer *l = &c->layers[layer];
    int full = 0;
    for (int32_t h = 0; h < H; h++) full |= (int64_t)l->h_len[h] + n_new > (int64_t)l->h_off[h + 1] - l->h_off[h];
    if (full) {
        hubkv_status st = layer_grow(c, layer, n_new);
        if (st) return st;
        l = &c->layers[layer];
    }
    uintptr_t al = (uintptr_t)d_k | (uintptr_t)d_v | (uintptr_t)l->k | (uintptr_t)l->v;
    bool vec = c->d % 8 == 0 && al % 16 == 0;
    int chunks = vec ? c->d / 8 : c->d;
    int64_t total = (int64_t)H * n_new * chunks;
    int blocks = (int)((total + 255) / 256);
    if (blocks > 4096) blocks = 4096;
    cudaStream_t s = c->g->stream;
    if (vec)
        append_kernel<uint4><<<blocks, 256, 0, s>>>((uint4 *)l->k, (uint4 *)l->v, l->pos, l->off, l->len,
                                                    (const uint4 *)d_k, (const uint4 *)d_v, H, n_new, chunks, pos0);
    else
        append_kernel<uint16_t><<<blocks, 256, 0, s>>>(l->k, l->v, l->pos, l->off, l->len, d_k, d_v, H, n_new, chunks,
                                                       pos0);
    HKV_LAUNCH_CK(c->err);
    add_len_kernel<<<(H + 255) / 256, 256, 0, s>>>(l->len, H, n_new); // stream-ordered after the copy
    HKV_LAUNCH_CK(c->err);
    for (int32_t h = 0; h < H; h++) l->h_len[h] += n_new;
    return HUBKV_OK;
}

extern "C" hubkv_status hubkv_cache_h2o_step(hubkv_cache *c, int32_t layer, float *d_acc, const float *d_attn,
                                             const uint16_t *d_k, const uint16_t *d_v, int32_t new_pos, int32_t n_sink,
                                             int32_t n_recent) {
    if (!c) return HUBKV_ERR_INVALID_ARG;
    if (layer < 0 || layer >= c->n_layers || !c->layers[layer].k || !d_acc || !d_attn || !d_k || !d_v)
        return hkv_fail(c->err, sizeof c->err, HUBKV_ERR_INVALID_ARG,
                        "cache_h2o_step: layer %d (expected a filled layer in [0,%d)) or a NULL array", layer,
                        c->n_layers);
    cache_layer *l = &c->layers[layer];
    int32_t H = c->n_heads, *d_slot = NULL;
    cudaStream_t s = c->g->stream;
    HKV_CUDA_CK(c->err, cudaMallocAsync(&d_slot, (size_t)H * sizeof(int32_t), s));
    hubkv_status st = hubkv_gpu_h2o_step(c->g, d_acc, l->pos, l->off, l->len, H, d_attn, new_pos, n_sink, n_recent, d_slot);
    if (!st) st = hkv_write_rows(c->g, l->k, l->v, d_slot, H, c->d, d_k, d_v);
    cudaFreeAsync(d_slot, s);
    if (!st) st = hubkv_gpu_sync(c->g); // a full head without an evictable row must be reported now
    if (st) {
        snprintf(c->err, sizeof c->err, "cache_h2o_step: %.490s", c->g->err);
        return st;
    }
    for (int32_t h = 0; h < H; h++)
        if (l->h_len[h] < l->h_off[h + 1] - l->h_off[h]) l->h_len[h]++;
    return HUBKV_OK;
}

extern "C" hubkv_status hubkv_cache_layer(const hubkv_cache *c, int32_t layer, const uint16_t **d_k,
                                          const uint16_t **d_v, const int32_t **d_off, const int32_t **d_pos,
                                          int64_t *rows) {
    if (!c || layer < 0 || layer >= c->n_layers) return HUBKV_ERR_INVALID_ARG;
    const cache_layer *l = &c->layers[layer];
    if (d_k) *d_k = l->k;
    if (d_v) *d_v = l->v;
    if (d_off) *d_off = l->off;
    if (d_pos) *d_pos = l->pos;
    if (rows) *rows = l->rows;
    return HUBKV_OK;
}

extern "C" hubkv_status hubkv_cache_layer_lens(const hubkv_cache *c, int32_t layer, const int32_t **d_len,
                                               const int32_t **h_len, const int32_t **h_off) {
    if (!c || layer < 0 || layer >= c->n_layers) return HUBKV_ERR_INVALID_ARG;
    const cache_layer *l = &c->layers[layer];
    if (d_len) *d_len = l->len;
    if (h_len) *h_len = l->h_len;
    if (h_off) *h_off = l->h_off;
    return HUBKV_OK;
}

extern "C" int64_t hubkv_cache_bytes(const hubkv_cache *c) {
    if (!c) return 0;
    int64_t b = 0;
    for (int32_t l = 0; l < c->n_layers; l++) {
        const cache_layer *x = &c->layers[l];
        if (!x->k) continue;
        int64_t n = x->rows ? x->rows : 1;
        b += 2 * n * c->d * (int64_t)sizeof(uint16_t) + n * 4 + (int64_t)(2 * c->n_heads + 1) * 4;
    }
    return b;
}
