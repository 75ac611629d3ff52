/* GPU model: the memory plan, the upload of an fp32 hkm_model as bf16
 * matrices (norms, biases fp32), and the device allocation helpers. */
#include "hkg_host.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ALIGN 256

/* ---------------------------------------------------------------- allocation */

hkm_status hkg_check_free(size_t need, const char *what, hkm_err *err) {
    size_t free_b = 0, total_b = 0;
    HKG_CUDA(cudaMemGetInfo(&free_b, &total_b), err);
    if (need > free_b)
        return hkm_fail(err, HKM_ERR_NOMEM,
                        "GPU memory: %s needs %zu bytes (%.2f GiB) but only %zu bytes (%.2f GiB) "
                        "of %zu are free",
                        what, need, need / 1073741824.0, free_b, free_b / 1073741824.0, total_b);
    return HKM_OK;
}

hkm_status hkg_malloc(hkm_gpu_model *g, void **p, size_t bytes, const char *what,
                      hkm_err *err) {
    *p = NULL;
    cudaError_t e = cudaMalloc(p, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        (void)cudaGetLastError(); /* clear the sticky-free error state */
        size_t free_b = 0, total_b = 0;
        cudaMemGetInfo(&free_b, &total_b);
        return hkm_fail(err, HKM_ERR_NOMEM,
                        "GPU memory: cudaMalloc of %zu bytes for %s failed (%s); %zu bytes free",
                        bytes, what, cudaGetErrorString(e), free_b);
    }
    g->bytes_now += bytes;
    if (g->bytes_now > g->bytes_peak) g->bytes_peak = g->bytes_now;
    return HKM_OK;
}

void hkg_free(hkm_gpu_model *g, void *p, size_t bytes) {
    if (!p) return;
    cudaFree(p);
    g->bytes_now -= bytes;
}

int hkm_gpu_available(hkm_err *err) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        (void)cudaGetLastError();
        hkm_fail(err, HKM_ERR_IO, "no CUDA device: %s",
                 e != cudaSuccess ? cudaGetErrorString(e) : "device count is 0");
        return 0;
    }
    return 1;
}

/* ---------------------------------------------------------------- layouts */

/* Offsets of the tensors in an arena: with base 0 only the size is wanted. */
typedef struct {
    uintptr_t base;
    size_t off;
} carver;

static void *carve(carver *c, size_t bytes) {
    size_t at = (c->off + ALIGN - 1) / ALIGN * ALIGN;
    c->off = at + bytes;
    return c->base ? (void *)(c->base + at) : NULL;
}

static size_t qkv_width(const hkm_config *c) {
    return (size_t)(c->n_heads + 2 * c->n_kv_heads) * c->head_dim;
}

/* Lay out the weights of cfg; fills g's pointers when base != 0. */
static size_t weights_layout(const hkm_config *cfg, hkm_gpu_model *g, uintptr_t base,
                             int tied) {
    carver c = {base, 0};
    size_t d = cfg->d_model, hd = cfg->head_dim, ff = cfg->d_ff, V = cfg->vocab_size;
    size_t qd = (size_t)cfg->n_heads * hd, w = qkv_width(cfg);
    hkg_bf16 *emb = carve(&c, V * d * 2);
    hkg_bf16 *head = tied ? emb : carve(&c, V * d * 2);
    float *on = carve(&c, d * 4);
    float *inv = carve(&c, hd / 2 * 4);
    if (g) {
        g->tok_emb = emb;
        g->lm_head = head;
        g->out_norm = on;
        g->inv_freq = inv;
    }
    for (int l = 0; l < cfg->n_layers; l++) {
        hkg_layer L;
        L.wqkv = carve(&c, w * d * 2);
        L.wo = carve(&c, d * qd * 2);
        L.wgu = carve(&c, 2 * ff * d * 2);
        L.wdown = carve(&c, d * ff * 2);
        L.attn_norm = carve(&c, d * 4);
        L.ffn_norm = carve(&c, d * 4);
        L.bqkv = cfg->qkv_bias ? carve(&c, w * 4) : NULL;
        L.q_norm = cfg->qk_norm ? carve(&c, hd * 4) : NULL;
        L.k_norm = cfg->qk_norm ? carve(&c, hd * 4) : NULL;
        if (g) g->layers[l] = L;
    }
    return c.off + ALIGN;
}

/* Lay out the scratch for chunks of C tokens. */
static size_t scratch_layout(const hkm_config *cfg, int C, hkm_gpu_model *g, uintptr_t base) {
    carver c = {base, 0};
    size_t d = cfg->d_model, hd = cfg->head_dim, ff = cfg->d_ff, H = cfg->n_heads;
    size_t wide = d > ff ? d : ff;
    if (H * hd > wide) wide = H * hd;
    float *x = carve(&c, (size_t)C * d * 4);
    hkg_bf16 *xn = carve(&c, (size_t)C * wide * 2);
    float *qkv = carve(&c, (size_t)C * qkv_width(cfg) * 4);
    hkg_bf16 *q = carve(&c, (size_t)C * H * hd * 2);
    hkg_bf16 *attn = carve(&c, (size_t)C * H * hd * 2);
    float *gu = carve(&c, (size_t)C * 2 * ff * 4);
    float *lse = carve(&c, (size_t)C * H * 4);
    float *logits = carve(&c, (size_t)HKG_LOGIT_ROWS * cfg->vocab_size * 4);
    float *part = carve(&c, hkg_attn_decode_scratch((int)H, (int)hd) * 4);
    int32_t *ids = carve(&c, (size_t)C * 4);
    int32_t *amax = carve(&c, 4);
    int32_t *pos = carve(&c, 4);
    if (g) {
        g->x = x; g->xn = xn; g->qkv = qkv; g->q = q; g->attn = attn; g->gu = gu;
        g->lse = lse; g->logits = logits; g->dec_part = part; g->ids = ids; g->amax = amax;
        g->pos = pos;
    }
    return c.off + ALIGN;
}

size_t hkg_cache_bytes(const hkm_config *cfg, int capacity) {
    size_t per_layer = (size_t)cfg->n_kv_heads * capacity * cfg->head_dim * 2 * 2;
    return per_layer * cfg->n_layers + (size_t)capacity * cfg->head_dim * 2 +
           (size_t)capacity * 4 + (size_t)(cfg->n_layers + 1) * cfg->n_kv_heads * 4 + 4 * ALIGN;
}

/* cuBLAS keeps its own workspace and handle state; a generous allowance. */
#define BLAS_OVERHEAD ((size_t)64 << 20)

static hkm_status check_config(const hkm_config *c, hkm_err *err) {
    if (c->n_layers <= 0 || c->d_model <= 0 || c->n_heads <= 0 || c->n_kv_heads <= 0 ||
        c->head_dim <= 0 || c->d_ff <= 0 || c->vocab_size <= 0)
        return hkm_fail(err, HKM_ERR_ARG, "GPU model: config has a non-positive size "
                        "(layers %d, d_model %d, heads %d/%d, head_dim %d, d_ff %d, vocab %d)",
                        c->n_layers, c->d_model, c->n_heads, c->n_kv_heads, c->head_dim,
                        c->d_ff, c->vocab_size);
    if (c->n_heads % c->n_kv_heads)
        return hkm_fail(err, HKM_ERR_UNSUPPORTED, "GPU model: n_heads %d is not a multiple of "
                        "n_kv_heads %d", c->n_heads, c->n_kv_heads);
    /* the attention kernels move 16-byte row chunks */
    if (c->head_dim % 8 || c->head_dim > HKG_MAX_HEAD_DIM)
        return hkm_fail(err, HKM_ERR_UNSUPPORTED, "GPU model: head_dim %d, expected a multiple "
                        "of 8 and <= %d", c->head_dim, HKG_MAX_HEAD_DIM);
    return HKM_OK;
}

hkm_status hkm_gpu_plan(const hkm_config *cfg, int max_context, int max_chunk,
                        hkm_gpu_plan_bytes *out, hkm_err *err) {
    if (!cfg || !out || max_context <= 0 || max_chunk <= 0)
        return hkm_fail(err, HKM_ERR_ARG, "hkm_gpu_plan: need cfg, out, max_context > 0 and "
                        "max_chunk > 0 (got %d, %d)", max_context, max_chunk);
    HKM_TRY(check_config(cfg, err));
    out->weights = weights_layout(cfg, NULL, 0, cfg->tie_embeddings);
    out->cache = hkg_cache_bytes(cfg, max_context);
    out->work = scratch_layout(cfg, max_chunk, NULL, 0) + BLAS_OVERHEAD;
    out->total = out->weights + out->cache + out->work;
    return HKM_OK;
}

/* ---------------------------------------------------------------- upload */

typedef struct {
    hkm_gpu_model *g;
    hkg_bf16 *stage; /* host staging, largest matrix */
} uploader;

static hkm_status put_bf16(uploader *u, hkg_bf16 *dst, const float *src, size_t n,
                           hkm_err *err) {
    for (size_t i = 0; i < n; i++) u->stage[i] = hkg_f2bf(src[i]);
    HKG_CUDA(cudaMemcpy(dst, u->stage, n * 2, cudaMemcpyHostToDevice), err);
    return HKM_OK;
}

static hkm_status put_f32(float *dst, const float *src, size_t n, hkm_err *err) {
    HKG_CUDA(cudaMemcpy(dst, src, n * 4, cudaMemcpyHostToDevice), err);
    return HKM_OK;
}

static hkm_status upload_layer(uploader *u, const hkm_config *c, const hkm_layer *s,
                               const hkg_layer *L, hkm_err *err) {
    size_t d = c->d_model, hd = c->head_dim, ff = c->d_ff;
    size_t qd = (size_t)c->n_heads * hd, kd = (size_t)c->n_kv_heads * hd;
    HKM_TRY(put_bf16(u, L->wqkv, s->wq, qd * d, err));
    HKM_TRY(put_bf16(u, L->wqkv + qd * d, s->wk, kd * d, err));
    HKM_TRY(put_bf16(u, L->wqkv + (qd + kd) * d, s->wv, kd * d, err));
    HKM_TRY(put_bf16(u, L->wo, s->wo, d * qd, err));
    HKM_TRY(put_bf16(u, L->wgu, s->w_gate, ff * d, err));
    HKM_TRY(put_bf16(u, L->wgu + ff * d, s->w_up, ff * d, err));
    HKM_TRY(put_bf16(u, L->wdown, s->w_down, d * ff, err));
    HKM_TRY(put_f32(L->attn_norm, s->attn_norm, d, err));
    HKM_TRY(put_f32(L->ffn_norm, s->ffn_norm, d, err));
    if (L->bqkv) {
        if (!s->bq || !s->bk || !s->bv)
            return hkm_fail(err, HKM_ERR_MISSING, "GPU upload: config has qkv_bias but a layer "
                            "lacks bq/bk/bv");
        HKM_TRY(put_f32(L->bqkv, s->bq, qd, err));
        HKM_TRY(put_f32(L->bqkv + qd, s->bk, kd, err));
        HKM_TRY(put_f32(L->bqkv + qd + kd, s->bv, kd, err));
    }
    if (L->q_norm) {
        if (!s->q_norm || !s->k_norm)
            return hkm_fail(err, HKM_ERR_MISSING, "GPU upload: config has qk_norm but a layer "
                            "lacks q_norm/k_norm");
        HKM_TRY(put_f32(L->q_norm, s->q_norm, hd, err));
        HKM_TRY(put_f32(L->k_norm, s->k_norm, hd, err));
    }
    return HKM_OK;
}

static hkm_status upload_weights(hkm_gpu_model *g, const hkm_model *m, int tied, hkm_err *err) {
    const hkm_config *c = &g->cfg;
    size_t d = c->d_model, big = (size_t)c->vocab_size * d;
    size_t mats[3] = {qkv_width(c) * d, 2 * (size_t)c->d_ff * d, (size_t)c->n_heads * c->head_dim * d};
    for (int i = 0; i < 3; i++)
        if (mats[i] > big) big = mats[i];
    uploader u = {g, NULL};
    u.stage = malloc(big * sizeof *u.stage);
    if (!u.stage)
        return hkm_fail(err, HKM_ERR_NOMEM, "GPU upload: no host memory for a %zu-element "
                        "staging buffer", big);
    hkm_status st = put_bf16(&u, g->tok_emb, m->tok_emb, (size_t)c->vocab_size * d, err);
    if (st == HKM_OK && !tied)
        st = put_bf16(&u, g->lm_head, m->lm_head, (size_t)c->vocab_size * d, err);
    if (st == HKM_OK) st = put_f32(g->out_norm, m->out_norm, d, err);
    float inv[HKG_MAX_HEAD_DIM / 2];
    hkm_rope_inv_freq(c, inv);
    if (st == HKM_OK) st = put_f32(g->inv_freq, inv, c->head_dim / 2, err);
    for (int l = 0; st == HKM_OK && l < c->n_layers; l++)
        st = upload_layer(&u, c, &m->layers[l], &g->layers[l], err);
    free(u.stage);
    return st;
}

static hkm_status model_init(hkm_gpu_model *g, const hkm_model *m, hkm_err *err) {
    const hkm_config *c = &g->cfg;
    int tied = c->tie_embeddings || m->lm_head == m->tok_emb;
    size_t wb = weights_layout(c, NULL, 0, tied);
    size_t sb = scratch_layout(c, g->max_chunk, NULL, 0);
    HKM_TRY(hkg_check_free(wb + sb + BLAS_OVERHEAD, "the model weights and chunk scratch", err));
    HKG_CUDA(cudaStreamCreate(&g->stream), err);
    HKG_BLAS(cublasCreate(&g->blas), err);
    HKG_BLAS(cublasSetStream(g->blas, g->stream), err);
    HKM_TRY(hkg_malloc(g, &g->w_arena, wb, "the model weights", err));
    weights_layout(c, g, (uintptr_t)g->w_arena, tied);
    HKM_TRY(hkg_malloc(g, &g->s_arena, sb, "the chunk scratch", err));
    scratch_layout(c, g->max_chunk, g, (uintptr_t)g->s_arena);
    return upload_weights(g, m, tied, err);
}

hkm_status hkm_gpu_model_upload(const hkm_model *m, int max_chunk, hkm_gpu_model **out,
                                hkm_err *err) {
    if (!m || !out || max_chunk <= 0)
        return hkm_fail(err, HKM_ERR_ARG, "hkm_gpu_model_upload: need a model, out and "
                        "max_chunk > 0 (got %d)", max_chunk);
    *out = NULL;
    HKM_TRY(check_config(&m->cfg, err));
    if (!hkm_gpu_available(err)) return HKM_ERR_IO;
    hkm_gpu_model *g;
    HKM_ALLOC(g, 1, err);
    g->cfg = m->cfg;
    g->max_chunk = max_chunk;
    /* benchmark switches: HUBKV_GPU_GEMV=0 / HUBKV_GPU_GRAPH=0 take decode back
     * to cuBLAS products / plain launches, to measure what each one gives */
    const char *ev = getenv("HUBKV_GPU_GEMV");
    g->no_gemv = ev && !strcmp(ev, "0");
    ev = getenv("HUBKV_GPU_GRAPH");
    g->no_graph = ev && !strcmp(ev, "0");
    /* HUBKV_GPU_PERSIST=0/1 forces the persistent decode kernel off / on (where
     * it supports the shape); HUBKV_GPU_PREFETCH=0 stops its L2 prefetch of
     * the lm_head */
    ev = getenv("HUBKV_GPU_PERSIST");
    g->persist_env = ev ? strcmp(ev, "0") != 0 : -1;
    ev = getenv("HUBKV_GPU_PREFETCH");
    g->no_prefetch = ev && !strcmp(ev, "0");
    g->layers = calloc((size_t)m->cfg.n_layers, sizeof *g->layers);
    hkm_status st = g->layers ? model_init(g, m, err)
                              : hkm_fail(err, HKM_ERR_NOMEM, "GPU upload: no host memory");
    if (st != HKM_OK) {
        hkm_gpu_model_free(g);
        return st;
    }
    *out = g;
    return HKM_OK;
}

void hkm_gpu_model_free(hkm_gpu_model *g) {
    if (!g) return;
    if (g->stream) cudaStreamSynchronize(g->stream);
    if (g->graph) cudaGraphExecDestroy(g->graph);
    cudaFree(g->w_arena);
    cudaFree(g->s_arena);
    cudaFree(g->probs);
    cudaFree(g->rows);
    cudaFree(g->colmax);
    cudaFree(g->colsum);
    cudaFree(g->pd_layers);
    cudaFree(g->pd_wdT);
    cudaFree(g->pd_scratch);
    if (g->pd_tok) cudaFreeHost(g->pd_tok);
    if (g->logits_pin) cudaFreeHost(g->logits_pin);
    for (int i = 0; i < 2; i++)
        if (g->pd_ev[i]) cudaEventDestroy(g->pd_ev[i]);
    if (g->blas) cublasDestroy(g->blas);
    if (g->stream) cudaStreamDestroy(g->stream);
    free(g->layers);
    free(g);
}

const hkm_config *hkm_gpu_model_config(const hkm_gpu_model *g) { return g ? &g->cfg : NULL; }

size_t hkm_gpu_model_peak_bytes(const hkm_gpu_model *g) { return g ? g->bytes_peak : 0; }
