/* GPU KV cache: per layer, K and V of every KV head in one flattened bf16
 * array (head h owns rows [h*cap, h*cap + len)), lengths mirrored on the
 * host and device, positions on the host, compaction on the device. */
#include "hkg_host.h"

#include <string.h>

static hkm_status cache_init(hkm_gpu_cache *c, hkm_err *err) {
    hkm_gpu_model *g = c->g;
    size_t per = (size_t)c->n_kv * c->cap * c->hd; /* elements of one K (or V) */
    size_t bytes = hkg_cache_bytes(&g->cfg, c->cap);
    HKM_TRY(hkg_check_free(bytes, "the KV cache", err));
    HKM_TRY(hkg_malloc(g, &c->arena, bytes, "the KV cache", err));
    hkg_bf16 *p = c->arena;
    for (int l = 0; l < c->n_layers; l++) {
        c->k[l] = p;
        c->v[l] = p + per;
        p += 2 * per;
    }
    c->scratch = p;
    p += (size_t)c->cap * c->hd;
    uintptr_t a = ((uintptr_t)p + 255) / 256 * 256;
    c->d_keep = (int32_t *)a;
    c->d_off = c->d_keep + c->cap;
    c->d_len = c->d_off + c->n_kv;
    int32_t *off = malloc((size_t)c->n_kv * sizeof *off);
    if (!off) return hkm_fail(err, HKM_ERR_NOMEM, "GPU cache: no host memory");
    for (int h = 0; h < c->n_kv; h++) off[h] = h * c->cap;
    cudaError_t e = cudaMemcpy(c->d_off, off, (size_t)c->n_kv * 4, cudaMemcpyHostToDevice);
    free(off);
    HKG_CUDA(e, err);
    HKG_CUDA(cudaMemset(c->d_len, 0, (size_t)c->n_layers * c->n_kv * 4), err);
    return HKM_OK;
}

hkm_status hkm_gpu_cache_create(const hkm_gpu_model *gc, int capacity, hkm_gpu_cache **out,
                                hkm_err *err) {
    if (!gc || !out || capacity <= 0)
        return hkm_fail(err, HKM_ERR_ARG, "hkm_gpu_cache_create: need a model, out and "
                        "capacity > 0 (got %d)", capacity);
    *out = NULL;
    hkm_gpu_cache *c;
    HKM_ALLOC(c, 1, err);
    c->g = (hkm_gpu_model *)gc; /* the cache updates the model's byte counters */
    c->cap = capacity;
    c->n_layers = gc->cfg.n_layers;
    c->n_kv = gc->cfg.n_kv_heads;
    c->hd = gc->cfg.head_dim;
    size_t heads = (size_t)c->n_layers * c->n_kv;
    c->k = calloc((size_t)c->n_layers, sizeof *c->k);
    c->v = calloc((size_t)c->n_layers, sizeof *c->v);
    c->h_len = calloc(heads, sizeof *c->h_len);
    c->h_pos = calloc(heads * capacity, sizeof *c->h_pos);
    hkm_status st = (c->k && c->v && c->h_len && c->h_pos)
                        ? cache_init(c, err)
                        : hkm_fail(err, HKM_ERR_NOMEM, "GPU cache: no host memory for %zu "
                                   "heads x %d positions", heads, capacity);
    if (st != HKM_OK) {
        hkm_gpu_cache_free(c);
        return st;
    }
    *out = c;
    return HKM_OK;
}

void hkm_gpu_cache_free(hkm_gpu_cache *c) {
    if (!c) return;
    if (c->g->graph_cache == c) { /* the decode graph points into this cache */
        cudaGraphExecDestroy(c->g->graph);
        c->g->graph = NULL;
        c->g->graph_cache = NULL;
    }
    if (c->arena) hkg_free(c->g, c->arena, hkg_cache_bytes(&c->g->cfg, c->cap));
    free(c->k);
    free(c->v);
    free(c->h_len);
    free(c->h_pos);
    free(c);
}

int hkm_gpu_cache_capacity(const hkm_gpu_cache *c) { return c ? c->cap : 0; }
int hkm_gpu_cache_next_pos(const hkm_gpu_cache *c) { return c ? c->next_pos : 0; }

static int head_ok(const hkm_gpu_cache *c, int layer, int h) {
    return c && layer >= 0 && layer < c->n_layers && h >= 0 && h < c->n_kv;
}

int hkm_gpu_cache_len(const hkm_gpu_cache *c, int layer, int kv_head) {
    return head_ok(c, layer, kv_head) ? c->h_len[layer * c->n_kv + kv_head] : 0;
}

const int32_t *hkm_gpu_cache_positions(const hkm_gpu_cache *c, int layer, int kv_head) {
    if (!head_ok(c, layer, kv_head)) return NULL;
    return c->h_pos + ((size_t)layer * c->n_kv + kv_head) * c->cap;
}

static hkm_status read_rows(const hkg_bf16 *src, size_t n, float *dst, hkm_err *err) {
    hkg_bf16 *tmp = malloc((n ? n : 1) * sizeof *tmp);
    if (!tmp) return hkm_fail(err, HKM_ERR_NOMEM, "GPU cache read: no host memory");
    cudaError_t e = cudaMemcpy(tmp, src, n * 2, cudaMemcpyDeviceToHost);
    for (size_t i = 0; e == cudaSuccess && i < n; i++) dst[i] = hkg_bf2f(tmp[i]);
    free(tmp);
    HKG_CUDA(e, err);
    return HKM_OK;
}

hkm_status hkm_gpu_cache_read(const hkm_gpu_cache *c, int layer, int kv_head, float *k,
                              float *v, hkm_err *err) {
    if (!head_ok(c, layer, kv_head))
        return hkm_fail(err, HKM_ERR_ARG, "hkm_gpu_cache_read: no head (layer %d, kv_head %d)",
                        layer, kv_head);
    HKG_CUDA(cudaStreamSynchronize(c->g->stream), err);
    size_t n = (size_t)c->h_len[layer * c->n_kv + kv_head] * c->hd;
    size_t at = (size_t)kv_head * c->cap * c->hd;
    if (k) HKM_TRY(read_rows(c->k[layer] + at, n, k, err));
    if (v) HKM_TRY(read_rows(c->v[layer] + at, n, v, err));
    return HKM_OK;
}

/* Gather the kept rows of one head's K or V into scratch, then copy back. */
static hkm_status compact(hkm_gpu_cache *c, hkg_bf16 *head, int n_keep, hkm_err *err) {
    cudaStream_t s = c->g->stream;
    HKG_CUDA(hkg_gather_rows(head, c->d_keep, n_keep, c->hd, c->scratch, s), err);
    HKG_CUDA(cudaMemcpyAsync(head, c->scratch, (size_t)n_keep * c->hd * 2,
                             cudaMemcpyDeviceToDevice, s), err);
    return HKM_OK;
}

hkm_status hkm_gpu_cache_keep(hkm_gpu_cache *c, int layer, int kv_head, const int32_t *keep,
                              int n_keep, hkm_err *err) {
    if (!head_ok(c, layer, kv_head))
        return hkm_fail(err, HKM_ERR_ARG, "hkm_gpu_cache_keep: no head (layer %d, kv_head %d)",
                        layer, kv_head);
    int hi = layer * c->n_kv + kv_head, len = c->h_len[hi];
    if (n_keep < 0 || n_keep > len || (n_keep > 0 && !keep))
        return hkm_fail(err, HKM_ERR_ARG, "hkm_gpu_cache_keep: n_keep %d, expected 0..%d "
                        "with a keep array", n_keep, len);
    for (int i = 0; i < n_keep; i++)
        if (keep[i] < 0 || keep[i] >= len || (i > 0 && keep[i] <= keep[i - 1]))
            return hkm_fail(err, HKM_ERR_ARG, "hkm_gpu_cache_keep: keep[%d] = %d, expected "
                            "strictly increasing indices in [0, %d)", i, keep[i], len);
    cudaStream_t s = c->g->stream;
    HKG_CUDA(cudaMemcpyAsync(c->d_keep, keep, (size_t)n_keep * 4, cudaMemcpyHostToDevice, s),
             err);
    size_t at = (size_t)kv_head * c->cap * c->hd;
    HKM_TRY(compact(c, c->k[layer] + at, n_keep, err));
    HKM_TRY(compact(c, c->v[layer] + at, n_keep, err));
    int32_t *pos = c->h_pos + (size_t)hi * c->cap;
    for (int i = 0; i < n_keep; i++) pos[i] = pos[keep[i]];
    c->h_len[hi] = n_keep;
    HKG_CUDA(cudaMemcpyAsync(c->d_len + hi, &c->h_len[hi], 4, cudaMemcpyHostToDevice, s), err);
    HKG_CUDA(cudaStreamSynchronize(s), err);
    return HKM_OK;
}

hkm_status hkm_gpu_cache_rewind(hkm_gpu_cache *c, int n_pos, hkm_err *err) {
    if (!c) return hkm_fail(err, HKM_ERR_ARG, "hkm_gpu_cache_rewind: NULL cache");
    if (n_pos < 0 || n_pos > c->next_pos)
        return hkm_fail(err, HKM_ERR_ARG, "hkm_gpu_cache_rewind: position %d: expected 0..%d", n_pos,
                        c->next_pos);
    size_t heads = (size_t)c->n_layers * c->n_kv;
    for (size_t hi = 0; hi < heads; hi++) {
        const int32_t *pos = c->h_pos + hi * c->cap;
        while (c->h_len[hi] > 0 && pos[c->h_len[hi] - 1] >= n_pos) c->h_len[hi]--; // position order
    }
    HKG_CUDA(cudaMemcpyAsync(c->d_len, c->h_len, heads * 4, cudaMemcpyHostToDevice, c->g->stream), err);
    HKG_CUDA(cudaStreamSynchronize(c->g->stream), err);
    c->next_pos = n_pos;
    return HKM_OK;
}

void hkm_gpu_cache_reset(hkm_gpu_cache *c) {
    if (!c) return;
    memset(c->h_len, 0, (size_t)c->n_layers * c->n_kv * sizeof *c->h_len);
    cudaMemsetAsync(c->d_len, 0, (size_t)c->n_layers * c->n_kv * 4, c->g->stream);
    cudaStreamSynchronize(c->g->stream);
    c->next_pos = 0;
}
