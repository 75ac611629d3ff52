/* GPU variable-length KV cache: per layer exact-size K/V buffers (rows of
 * head_dim bf16), head offsets and token positions. Compaction gathers into
 * new exact-size buffers and frees the old ones, so memory is released. */
#include "gpu_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cache_layer {
    uint16_t *k, *v;   // (rows, d) bf16
    int32_t *off;      // (H + 1)
    int32_t *pos;      // (rows)
    int64_t rows;
};

struct hubkv_cache {
    hubkv_gpu *g;      // borrowed
    int32_t n_layers, n_heads, d;
    cache_layer *layers;
    char err[HKV_ERR_CAP];
};

static void layer_free(cache_layer *l) {
    cudaFree(l->k), cudaFree(l->v), cudaFree(l->off), cudaFree(l->pos);
    memset(l, 0, sizeof *l);
}

/* Allocates exact-size buffers for `rows` rows into *l (zeroed on failure). */
static hubkv_status layer_alloc(hubkv_cache *c, cache_layer *l, int64_t rows) {
    memset(l, 0, sizeof *l);
    size_t rb = (size_t)c->d * sizeof(uint16_t), n = rows ? (size_t)rows : 1;
    cudaError_t e = cudaMalloc(&l->k, n * rb);
    if (e == cudaSuccess) e = cudaMalloc(&l->v, n * rb);
    if (e == cudaSuccess) e = cudaMalloc(&l->off, (size_t)(c->n_heads + 1) * sizeof(int32_t));
    if (e == cudaSuccess) e = cudaMalloc(&l->pos, n * sizeof(int32_t));
    if (e != cudaSuccess) {
        layer_free(l);
        cudaGetLastError();
        return hkv_fail(c->err, sizeof c->err, HUBKV_ERR_NOMEM, "CUDA error at %s:%d: cudaMalloc of %lld rows x %d: %s",
                        __FILE__, __LINE__, (long long)rows, c->d, cudaGetErrorString(e));
    }
    l->rows = rows;
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
    c->g = g, c->n_layers = n_layers, c->n_heads = n_heads, c->d = d, c->layers = ls;
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

__global__ void iota_pos_kernel(int32_t *pos, int64_t n, int64_t total) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x)
        pos[i] = (int32_t)(i % n);
}

extern "C" hubkv_status hubkv_cache_set_dense(hubkv_cache *c, int32_t layer, const uint16_t *d_k, const uint16_t *d_v,
                                              int64_t n) {
    if (!c) return HUBKV_ERR_INVALID_ARG;
    if (layer < 0 || layer >= c->n_layers || !d_k || !d_v || n <= 0 || n * c->n_heads >= (1LL << 31))
        return hkv_fail(c->err, sizeof c->err, HUBKV_ERR_INVALID_ARG,
                        "cache_set_dense: layer %d (expected [0,%d)), n_tokens %lld (H*N < 2^31), NULL K/V", layer,
                        c->n_layers, (long long)n);
    int64_t rows = n * c->n_heads;
    cache_layer nl;
    hubkv_status st = layer_alloc(c, &nl, rows);
    if (st) return st;
    cudaStream_t s = c->g->stream;
    int32_t *h_off = (int32_t *)hkv_calloc((size_t)c->n_heads + 1, sizeof *h_off);
    if (!h_off) {
        layer_free(&nl);
        return hkv_fail(c->err, sizeof c->err, HUBKV_ERR_NOMEM, "cache_set_dense: out of host memory");
    }
    for (int32_t h = 0; h <= c->n_heads; h++) h_off[h] = (int32_t)(h * n);
    size_t bytes = (size_t)rows * c->d * sizeof(uint16_t);
    cudaError_t e = cudaMemcpyAsync(nl.k, d_k, bytes, cudaMemcpyDeviceToDevice, s);
    if (e == cudaSuccess) e = cudaMemcpyAsync(nl.v, d_v, bytes, cudaMemcpyDeviceToDevice, s);
    if (e == cudaSuccess) e = cudaMemcpyAsync(nl.off, h_off, (size_t)(c->n_heads + 1) * sizeof(int32_t),
                                              cudaMemcpyHostToDevice, s);
    if (e == cudaSuccess) {
        iota_pos_kernel<<<1024, 256, 0, s>>>(nl.pos, n, rows);
        e = cudaGetLastError();
    }
    if (e == cudaSuccess) e = cudaStreamSynchronize(s); // h_off must outlive the copy
    free(h_off);
    if (e != cudaSuccess) {
        layer_free(&nl);
        return hkv_fail(c->err, sizeof c->err, HUBKV_ERR_CUDA, "CUDA error at %s:%d: cache_set_dense copy: %s", __FILE__,
                        __LINE__, cudaGetErrorString(e));
    }
    layer_free(&c->layers[layer]);
    c->layers[layer] = nl;
    return HUBKV_OK;
}

extern "C" hubkv_status hubkv_cache_compact(hubkv_cache *c, int32_t layer, const int32_t *d_kidx,
                                            const int32_t *h_koff) {
    if (!c) return HUBKV_ERR_INVALID_ARG;
    if (layer < 0 || layer >= c->n_layers || !d_kidx || !h_koff || !c->layers[layer].k)
        return hkv_fail(c->err, sizeof c->err, HUBKV_ERR_INVALID_ARG,
                        "cache_compact: layer %d (expected a filled layer in [0,%d)) or NULL keep arrays", layer,
                        c->n_layers);
    cache_layer *old = &c->layers[layer];
    if (h_koff[0] != 0)
        return hkv_fail(c->err, sizeof c->err, HUBKV_ERR_INVALID_ARG, "cache_compact: keep_off[0] = %d; expected 0", h_koff[0]);
    for (int32_t h = 0; h < c->n_heads; h++)
        if (h_koff[h + 1] < h_koff[h])
            return hkv_fail(c->err, sizeof c->err, HUBKV_ERR_INVALID_ARG,
                            "cache_compact: keep_off decreases at head %d (%d -> %d)", h, h_koff[h], h_koff[h + 1]);
    int64_t rows = h_koff[c->n_heads];
    cache_layer nl;
    hubkv_status st = layer_alloc(c, &nl, rows);
    if (st) return st;
    cudaError_t e = cudaMemcpyAsync(nl.off, h_koff, (size_t)(c->n_heads + 1) * sizeof(int32_t), cudaMemcpyHostToDevice,
                                    c->g->stream);
    if (e != cudaSuccess) {
        layer_free(&nl);
        return hkv_fail(c->err, sizeof c->err, HUBKV_ERR_CUDA, "CUDA error at %s:%d: offsets copy: %s", __FILE__,
                        __LINE__, cudaGetErrorString(e));
    }
    st = hubkv_gpu_compact(c->g, old->k, old->v, old->pos, old->off, c->n_heads, c->d, d_kidx, nl.off, rows, nl.k,
                           nl.v, nl.pos);
    if (st == HUBKV_OK) st = hubkv_gpu_sync(c->g); // also surfaces bad keep indices
    if (st) {
        snprintf(c->err, sizeof c->err, "cache_compact: %.490s", c->g->err);
        layer_free(&nl);
        return st;
    }
    layer_free(old); // the old, larger buffers are released here
    *old = nl;
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

extern "C" int64_t hubkv_cache_bytes(const hubkv_cache *c) {
    if (!c) return 0;
    int64_t b = 0;
    for (int32_t l = 0; l < c->n_layers; l++) {
        const cache_layer *x = &c->layers[l];
        if (!x->k) continue;
        int64_t n = x->rows ? x->rows : 1;
        b += 2 * n * c->d * (int64_t)sizeof(uint16_t) + n * 4 + (int64_t)(c->n_heads + 1) * 4;
    }
    return b;
}
