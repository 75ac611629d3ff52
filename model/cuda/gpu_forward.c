/* GPU forward pass: one call runs n new tokens through every layer (a prefill
 * chunk or a decode step), appends their K/V to the cache, serves the capture
 * hooks and returns logits; plus greedy generation on top of it. */
#include "hkg_host.h"

#include <string.h>

/* Column statistics accumulated over calls (hubkv_cuda.h). */
struct hkm_gpu_stats_acc {
    hkm_gpu_model *g;
    int max_keys, keys;
    float *max, *sum; /* (n_layers, n_heads, keys) each, in one allocation */
};

/* ---------------------------------------------------------------- products */

/* Y (n, out) fp32 = X (n, in) bf16 . W^T, W (out, in) bf16 row-major;
 * beta = 1 adds into Y (the residual stream). */
/* Whether one token's products go through hkg_gemv (cuBLAS's n = 1 path
 * reads the weights far below the memory bandwidth). */
static int gemv1(const hkm_gpu_model *g, int n, int in) {
    return n == 1 && !g->no_gemv && hkg_gemv_ok(in);
}

static hkm_status gemm(hkm_gpu_model *g, const hkg_bf16 *W, int out, int in, const hkg_bf16 *X,
                       int n, float *Y, float beta, hkm_err *err) {
    const float alpha = 1.0f;
    if (gemv1(g, n, in)) {
        HKG_CUDA(hkg_gemv(W, out, in, X, NULL, NULL, 0.0f,
                          beta != 0.0f ? HKG_GEMV_ADD : HKG_GEMV_STORE, Y, NULL, g->stream), err);
        return HKM_OK;
    }
    HKG_BLAS(cublasGemmEx(g->blas, CUBLAS_OP_T, CUBLAS_OP_N, out, n, in, &alpha, W, CUDA_R_16BF,
                          in, X, CUDA_R_16BF, in, &beta, Y, CUDA_R_32F, out, CUBLAS_COMPUTE_32F,
                          CUBLAS_GEMM_DEFAULT),
             err);
    return HKM_OK;
}

/* Y (n, out) bf16 = X . W^T for an intermediate only a bf16 consumer reads:
 * half the bytes of an fp32 output written and read back. */
static hkm_status gemm_bf16(hkm_gpu_model *g, const hkg_bf16 *W, int out, int in,
                            const hkg_bf16 *X, int n, hkg_bf16 *Y, hkm_err *err) {
    const float alpha = 1.0f, beta = 0.0f;
    HKG_BLAS(cublasGemmEx(g->blas, CUBLAS_OP_T, CUBLAS_OP_N, out, n, in, &alpha, W, CUDA_R_16BF,
                          in, X, CUDA_R_16BF, in, &beta, Y, CUDA_R_16BF, out, CUBLAS_COMPUTE_32F,
                          CUBLAS_GEMM_DEFAULT),
             err);
    return HKM_OK;
}

/* ---------------------------------------------------------------- per call */

/* What one forward call needs besides the model and the cache. */
typedef struct {
    int n, pos0, qkvw;
    const hkm_gpu_capture *cap;
    /* host capture buffers (NULL when not asked) */
    float *h_hidden; /* (n, d) */
    float *h_qkv;    /* (n, qkvw) */
    float *h_q, *h_k, *h_v; /* (H, n, hd), (KV, n, hd) x2 */
    float *h_probs;  /* (H, n_rows, nk_max) */
    float *h_colmax, *h_colsum; /* (H, nk_max), or (n_layers, H, nk_max) when deferred */
    int *n_keys;     /* (KV) */
    int nk_max;
    /* statistics-only callbacks are deferred to the end of the call: each
     * layer writes its own slice (stride H * nk_max), so no layer waits for
     * the host; one synchronisation, then every layer's stats_fn in order */
    int defer;
    int *nk_layer;   /* (n_layers) row stride of each layer's statistics */
    int *n_keys_all; /* (n_layers, KV) */
    /* graph capture: position read from the device, key splits sized for
     * the cache's capacity instead of the current lengths */
    const int32_t *d_pos0;
    int fixed_split;
} fwd_call;

static void call_free(fwd_call *f) {
    free(f->h_hidden); free(f->h_qkv); free(f->h_q); free(f->h_k); free(f->h_v);
    free(f->h_probs); free(f->h_colmax); free(f->h_colsum); free(f->n_keys);
    free(f->nk_layer); free(f->n_keys_all);
}

static int want_cap(const fwd_call *f) { return f->cap && f->cap->cap.fn; }
static int want_stats(const fwd_call *f) {
    return f->cap && (f->cap->stats_fn || f->cap->stats_acc) &&
           f->cap->stat_row1 > f->cap->stat_row0;
}
/* The statistics asked (HKM_GPU_STAT_* mask; 0 means both). */
static int stats_which(const fwd_call *f) {
    return f->cap->stats_which ? f->cap->stats_which : HKM_GPU_STAT_BOTH;
}
static int want_rows(const fwd_call *f) { return want_cap(f) && f->cap->cap.n_rows > 0; }

/* Grow a device capture buffer to at least `need` elements of `elem` bytes. */
static hkm_status grow(hkm_gpu_model *g, void **buf, size_t *cap, size_t need, size_t elem,
                       const char *what, hkm_err *err) {
    if (*cap >= need) return HKM_OK;
    hkg_free(g, *buf, *cap * elem);
    *buf = NULL;
    *cap = 0;
    HKM_TRY(hkg_malloc(g, buf, need * elem, what, err));
    *cap = need;
    return HKM_OK;
}

/* Column statistics buffers: colmax and colsum grow together. */
static hkm_status grow_stats(hkm_gpu_model *g, size_t need, hkm_err *err) {
    if (g->cs_cap >= need) return HKM_OK;
    hkg_free(g, g->colmax, g->cs_cap * 4);
    hkg_free(g, g->colsum, g->cs_cap * 4);
    g->colmax = g->colsum = NULL;
    g->cs_cap = 0;
    HKM_TRY(hkg_malloc(g, (void **)&g->colmax, need * 4, "attention column max", err));
    HKM_TRY(hkg_malloc(g, (void **)&g->colsum, need * 4, "attention column sum", err));
    g->cs_cap = need;
    return HKM_OK;
}

static hkm_status call_setup(hkm_gpu_model *g, const hkm_gpu_cache *c, fwd_call *f,
                             hkm_err *err) {
    const hkm_config *cf = &g->cfg;
    size_t n = f->n, H = cf->n_heads, KV = cf->n_kv_heads, hd = cf->head_dim;
    if (!want_cap(f) && !want_stats(f)) return HKM_OK;
    f->n_keys = calloc(KV, sizeof *f->n_keys);
    if (!f->n_keys) return hkm_fail(err, HKM_ERR_NOMEM, "GPU forward: no host memory");
    if (want_cap(f) && f->cap->cap.want_hidden) f->h_hidden = malloc(n * cf->d_model * 4);
    if (want_cap(f) && f->cap->cap.want_qkv) {
        f->h_qkv = malloc(n * f->qkvw * 4);
        f->h_q = malloc(H * n * hd * 4);
        f->h_k = malloc(KV * n * hd * 4);
        f->h_v = malloc(KV * n * hd * 4);
        if (!f->h_qkv || !f->h_q || !f->h_k || !f->h_v)
            return hkm_fail(err, HKM_ERR_NOMEM, "GPU forward: no host memory for q/k/v capture");
    }
    if (want_cap(f) && f->cap->cap.want_hidden && !f->h_hidden)
        return hkm_fail(err, HKM_ERR_NOMEM, "GPU forward: no host memory for hidden capture");
    /* The widest key list any layer can have in this call. */
    int nk_max = 1;
    for (int i = 0; i < c->n_layers * c->n_kv; i++)
        if (c->h_len[i] + f->n > nk_max) nk_max = c->h_len[i] + f->n;
    f->nk_max = nk_max;
    if (want_rows(f)) {
        int nr = f->cap->cap.n_rows;
        HKM_TRY(grow(g, (void **)&g->probs, &g->probs_cap, H * nr * (size_t)nk_max, 4,
                     "captured attention probabilities", err));
        size_t rc = (size_t)g->rows_cap;
        HKM_TRY(grow(g, (void **)&g->rows, &rc, (size_t)nr, 4, "captured row indices", err));
        g->rows_cap = (int)rc;
        HKG_CUDA(cudaMemcpyAsync(g->rows, f->cap->cap.rows, (size_t)nr * 4,
                                 cudaMemcpyHostToDevice, g->stream), err);
        f->h_probs = malloc(H * nr * (size_t)nk_max * 4);
        if (!f->h_probs) return hkm_fail(err, HKM_ERR_NOMEM, "GPU forward: no host memory for "
                                         "%zu probabilities", H * nr * (size_t)nk_max);
    }
    if (want_stats(f) && !f->cap->stats_acc) {
        size_t L = (size_t)cf->n_layers, slices = (f->defer = !want_cap(f)) ? L : 1;
        HKM_TRY(grow_stats(g, slices * H * (size_t)nk_max, err));
        if (f->defer) {
            f->nk_layer = calloc(L, sizeof *f->nk_layer);
            f->n_keys_all = calloc(L * KV, sizeof *f->n_keys_all);
            if (!f->nk_layer || !f->n_keys_all)
                return hkm_fail(err, HKM_ERR_NOMEM, "GPU forward: no host memory for stats");
        }
        if (f->cap->stats_to_host) {
            int w = stats_which(f);
            if (w & HKM_GPU_STAT_MAX) f->h_colmax = malloc(slices * H * (size_t)nk_max * 4);
            if (w & HKM_GPU_STAT_SUM) f->h_colsum = malloc(slices * H * (size_t)nk_max * 4);
            if ((w & HKM_GPU_STAT_MAX && !f->h_colmax) || (w & HKM_GPU_STAT_SUM && !f->h_colsum))
                return hkm_fail(err, HKM_ERR_NOMEM, "GPU forward: no host memory for stats");
        }
    }
    return HKM_OK;
}

/* ---------------------------------------------------------------- checks */

static hkm_status check_call(const hkm_gpu_model *g, const hkm_gpu_cache *c, const int32_t *ids,
                             int n, hkm_logits_mode mode, const float *logits,
                             const hkm_gpu_capture *cap, hkm_err *err) {
    if (!g || !c || !ids || n <= 0 || n > g->max_chunk)
        return hkm_fail(err, HKM_ERR_ARG, "hkm_gpu_forward: need model, cache, ids and "
                        "1 <= n <= max_chunk %d (got n = %d)", g ? g->max_chunk : 0, n);
    if (c->g != g)
        return hkm_fail(err, HKM_ERR_ARG, "hkm_gpu_forward: the cache was made for another model");
    if (mode != HKM_LOGITS_NONE && mode != HKM_LOGITS_LAST && mode != HKM_LOGITS_ALL)
        return hkm_fail(err, HKM_ERR_ARG, "hkm_gpu_forward: logits mode %d unknown", (int)mode);
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= g->cfg.vocab_size)
            return hkm_fail(err, HKM_ERR_ARG, "hkm_gpu_forward: ids[%d] = %d, expected "
                            "0..%d", i, ids[i], g->cfg.vocab_size - 1);
    for (int i = 0; i < c->n_layers * c->n_kv; i++)
        if (c->h_len[i] + n > c->cap)
            return hkm_fail(err, HKM_ERR_ARG, "hkm_gpu_forward: layer %d kv head %d holds %d "
                            "entries, + %d new exceeds the capacity %d", i / c->n_kv,
                            i % c->n_kv, c->h_len[i], n, c->cap);
    if (!cap) return HKM_OK;
    const hkm_capture *k = &cap->cap;
    if (k->fn && k->n_rows > 0) {
        if (!k->rows)
            return hkm_fail(err, HKM_ERR_ARG, "hkm_gpu_forward: capture n_rows %d without rows",
                            k->n_rows);
        for (int i = 0; i < k->n_rows; i++)
            if (k->rows[i] < 0 || k->rows[i] >= n || (i > 0 && k->rows[i] <= k->rows[i - 1]))
                return hkm_fail(err, HKM_ERR_ARG, "hkm_gpu_forward: capture rows[%d] = %d, "
                                "expected increasing indices in [0, %d)", i, k->rows[i], n);
    }
    if (cap->stats_which < 0 || cap->stats_which > HKM_GPU_STAT_BOTH)
        return hkm_fail(err, HKM_ERR_ARG, "hkm_gpu_forward: stats_which %d, expected a mask of "
                        "HKM_GPU_STAT_MAX | HKM_GPU_STAT_SUM (0 = both)", cap->stats_which);
    if (cap->stats_acc && cap->stats_acc->g != g)
        return hkm_fail(err, HKM_ERR_ARG, "hkm_gpu_forward: stats_acc was made for another model");
    if ((cap->stats_fn || cap->stats_acc) &&
        (cap->stat_row0 < 0 || cap->stat_row1 > n || cap->stat_row0 > cap->stat_row1))
        return hkm_fail(err, HKM_ERR_ARG, "hkm_gpu_forward: stat rows [%d, %d), expected a "
                        "range within [0, %d)", cap->stat_row0, cap->stat_row1, n);
    return HKM_OK;
}

/* ---------------------------------------------------------------- capture */

/* (n, slots*hd) rows -> (slots, n, hd), slots starting at slot0. */
static void heads_major(const float *src, int n, int width, int slot0, int slots, int hd,
                        float *dst) {
    for (int s = 0; s < slots; s++)
        for (int t = 0; t < n; t++)
            memcpy(dst + ((size_t)s * n + t) * hd, src + (size_t)t * width + (size_t)(slot0 + s) * hd,
                   (size_t)hd * 4);
}

/* ---------------------------------------------------------------- statistics */

hkm_status hkm_gpu_stats_acc_create(hkm_gpu_model *g, int max_keys, hkm_gpu_stats_acc **out,
                                    hkm_err *err) {
    if (!out) return hkm_fail(err, HKM_ERR_ARG, "hkm_gpu_stats_acc_create: out is NULL");
    *out = NULL;
    if (!g || max_keys <= 0)
        return hkm_fail(err, HKM_ERR_ARG, "hkm_gpu_stats_acc_create: need a model and "
                        "max_keys >= 1 (got %d)", max_keys);
    hkm_gpu_stats_acc *a = calloc(1, sizeof *a);
    if (!a) return hkm_fail(err, HKM_ERR_NOMEM, "hkm_gpu_stats_acc_create: no host memory");
    size_t per = (size_t)g->cfg.n_layers * g->cfg.n_heads * max_keys;
    a->g = g;
    a->max_keys = max_keys;
    hkm_status st = hkg_malloc(g, (void **)&a->max, 2 * per * 4, "statistics accumulator", err);
    if (st != HKM_OK) { free(a); return st; }
    a->sum = a->max + per;
    st = hkm_gpu_stats_acc_reset(a, max_keys, err);
    if (st != HKM_OK) { hkm_gpu_stats_acc_free(a); return st; }
    *out = a;
    return HKM_OK;
}

void hkm_gpu_stats_acc_free(hkm_gpu_stats_acc *a) {
    if (!a) return;
    hkg_free(a->g, a->max, 2 * (size_t)a->g->cfg.n_layers * a->g->cfg.n_heads * a->max_keys * 4);
    free(a);
}

int hkm_gpu_stats_acc_keys(const hkm_gpu_stats_acc *a) { return a ? a->keys : 0; }

hkm_status hkm_gpu_stats_acc_reset(hkm_gpu_stats_acc *a, int keys, hkm_err *err) {
    if (!a || keys < 1 || keys > a->max_keys)
        return hkm_fail(err, HKM_ERR_ARG, "hkm_gpu_stats_acc_reset: keys %d, expected 1..%d",
                        keys, a ? a->max_keys : 0);
    size_t bytes = (size_t)a->g->cfg.n_layers * a->g->cfg.n_heads * keys * 4;
    a->keys = keys;
    HKG_CUDA(cudaMemsetAsync(a->max, 0, bytes, a->g->stream), err);
    HKG_CUDA(cudaMemsetAsync(a->sum, 0, bytes, a->g->stream), err);
    return HKM_OK;
}

hkm_status hkm_gpu_stats_acc_read(const hkm_gpu_stats_acc *a, float *colmax, float *colsum,
                                  hkm_err *err) {
    if (!a) return hkm_fail(err, HKM_ERR_ARG, "hkm_gpu_stats_acc_read: accumulator is NULL");
    size_t bytes = (size_t)a->g->cfg.n_layers * a->g->cfg.n_heads * a->keys * 4;
    cudaStream_t s = a->g->stream;
    if (colmax) HKG_CUDA(cudaMemcpyAsync(colmax, a->max, bytes, cudaMemcpyDeviceToHost, s), err);
    if (colsum) HKG_CUDA(cudaMemcpyAsync(colsum, a->sum, bytes, cudaMemcpyDeviceToHost, s), err);
    HKG_CUDA(cudaStreamSynchronize(s), err);
    return HKM_OK;
}

/* Layer l's column statistics (nk keys per head): into the per-call buffers,
 * or maxed / added into the accumulator's keys only. */
static hkm_status run_colstats(hkm_gpu_model *g, const fwd_call *f, int l, int nk,
                               const hkg_attn_args *a, hkm_err *err) {
    const hkm_gpu_capture *cp = f->cap;
    int w = stats_which(f), mx = w & HKM_GPU_STAT_MAX, sm = w & HKM_GPU_STAT_SUM;
    const hkm_gpu_stats_acc *acc = cp->stats_acc;
    if (!acc) {
        size_t off = f->defer ? (size_t)l * g->cfg.n_heads * f->nk_max : 0;
        HKG_CUDA(hkg_attn_colstats_ex(a, g->lse, cp->stat_row0, cp->stat_row1, nk, nk, 0,
                                      mx ? g->colmax + off : NULL, sm ? g->colsum + off : NULL,
                                      g->stream), err);
        return HKM_OK;
    }
    size_t off = (size_t)l * g->cfg.n_heads * acc->keys;
    int n_out = nk < acc->keys ? nk : acc->keys;
    HKG_CUDA(hkg_attn_colstats_ex(a, g->lse, cp->stat_row0, cp->stat_row1, n_out, acc->keys, 1,
                                  mx ? acc->max + off : NULL, sm ? acc->sum + off : NULL,
                                  g->stream), err);
    return HKM_OK;
}

/* ---------------------------------------------------------------- capture */

static hkm_status run_capture(hkm_gpu_model *g, const hkm_gpu_cache *c, fwd_call *f, int l,
                              const hkg_attn_args *a, hkm_err *err) {
    const hkm_config *cf = &g->cfg;
    int H = cf->n_heads, KV = cf->n_kv_heads, hd = cf->head_dim;
    cudaStream_t s = g->stream;
    int nk = 1; /* row stride of this layer's arrays, as the CPU engine uses */
    for (int h = 0; h < KV; h++) {
        f->n_keys[h] = c->h_len[l * KV + h] + f->n;
        if (f->n_keys[h] > nk) nk = f->n_keys[h];
    }
    if (want_rows(f)) {
        int nr = f->cap->cap.n_rows;
        HKG_CUDA(hkg_attn_probs(a, g->lse, g->rows, nr, nk, g->probs, s), err);
        HKG_CUDA(cudaMemcpyAsync(f->h_probs, g->probs, (size_t)H * nr * nk * 4,
                                 cudaMemcpyDeviceToHost, s), err);
    }
    const hkm_gpu_stats_acc *acc = want_stats(f) ? f->cap->stats_acc : NULL;
    if (want_stats(f)) HKM_TRY(run_colstats(g, f, l, nk, a, err));
    if (f->defer) { /* stats_fn runs after the last layer (stats_deferred) */
        f->nk_layer[l] = nk;
        memcpy(f->n_keys_all + (size_t)l * KV, f->n_keys, (size_t)KV * sizeof *f->n_keys);
        return HKM_OK;
    }
    /* device-only accumulation needs no host round trip per layer */
    if (want_cap(f) || (want_stats(f) && !acc)) HKG_CUDA(cudaStreamSynchronize(s), err);
    if (want_cap(f)) {
        hkm_layer_capture lc = {0};
        lc.layer = l;
        lc.n = f->n;
        lc.pos0 = f->pos0;
        lc.hidden = f->h_hidden;
        if (f->h_qkv) {
            heads_major(f->h_qkv, f->n, f->qkvw, 0, H, hd, f->h_q);
            heads_major(f->h_qkv, f->n, f->qkvw, H, KV, hd, f->h_k);
            heads_major(f->h_qkv, f->n, f->qkvw, H + KV, KV, hd, f->h_v);
            lc.q = f->h_q;
            lc.k = f->h_k;
            lc.v = f->h_v;
        }
        if (want_rows(f)) {
            lc.n_rows = f->cap->cap.n_rows;
            lc.rows = f->cap->cap.rows;
            lc.n_keys_max = nk;
            lc.n_keys = f->n_keys;
            lc.probs = f->h_probs;
        }
        f->cap->cap.fn(f->cap->cap.user, &lc);
    }
    if (want_stats(f) && !acc) {
        int w = stats_which(f);
        hkm_gpu_layer_stats st = {l, f->n, f->pos0, H, KV, f->cap->stat_row0, f->cap->stat_row1,
                                  nk, f->n_keys, w & HKM_GPU_STAT_MAX ? g->colmax : NULL,
                                  w & HKM_GPU_STAT_SUM ? g->colsum : NULL, NULL, NULL};
        size_t bytes = (size_t)H * nk * 4;
        if (f->h_colmax) {
            HKG_CUDA(cudaMemcpy(f->h_colmax, g->colmax, bytes, cudaMemcpyDeviceToHost), err);
            st.colmax = f->h_colmax;
        }
        if (f->h_colsum) {
            HKG_CUDA(cudaMemcpy(f->h_colsum, g->colsum, bytes, cudaMemcpyDeviceToHost), err);
            st.colsum = f->h_colsum;
        }
        f->cap->stats_fn(f->cap->stats_user, &st);
    }
    return HKM_OK;
}

/* Every layer's deferred statistics: one copy of all slices to the host
 * (or one synchronisation), then stats_fn per layer, in order. */
static hkm_status stats_deferred(hkm_gpu_model *g, fwd_call *f, hkm_err *err) {
    const hkm_config *cf = &g->cfg;
    int H = cf->n_heads, KV = cf->n_kv_heads, w = stats_which(f);
    size_t slice = (size_t)H * f->nk_max, all = slice * cf->n_layers * 4;
    if (f->h_colmax) HKG_CUDA(cudaMemcpyAsync(f->h_colmax, g->colmax, all, cudaMemcpyDeviceToHost, g->stream), err);
    if (f->h_colsum) HKG_CUDA(cudaMemcpyAsync(f->h_colsum, g->colsum, all, cudaMemcpyDeviceToHost, g->stream), err);
    HKG_CUDA(cudaStreamSynchronize(g->stream), err);
    for (int l = 0; l < cf->n_layers; l++) {
        size_t off = (size_t)l * slice;
        hkm_gpu_layer_stats st = {l, f->n, f->pos0, H, KV, f->cap->stat_row0, f->cap->stat_row1,
                                  f->nk_layer[l], f->n_keys_all + (size_t)l * KV,
                                  w & HKM_GPU_STAT_MAX ? g->colmax + off : NULL,
                                  w & HKM_GPU_STAT_SUM ? g->colsum + off : NULL,
                                  f->h_colmax ? f->h_colmax + off : NULL,
                                  f->h_colsum ? f->h_colsum + off : NULL};
        f->cap->stats_fn(f->cap->stats_user, &st);
    }
    return HKM_OK;
}

/* ---------------------------------------------------------------- layers */

static hkm_status attention(hkm_gpu_model *g, hkm_gpu_cache *c, fwd_call *f, int l,
                            const hkg_layer *L, hkm_err *err) {
    const hkm_config *cf = &g->cfg;
    int n = f->n, H = cf->n_heads, KV = cf->n_kv_heads, hd = cf->head_dim, w = f->qkvw;
    cudaStream_t s = g->stream;
    const int32_t *len = c->d_len + (size_t)l * KV;
    if (gemv1(g, n, cf->d_model)) /* RMSNorm fused into the product */
        HKG_CUDA(hkg_gemv(L->wqkv, w, cf->d_model, NULL, g->x, L->attn_norm, cf->rms_eps,
                          HKG_GEMV_STORE, g->qkv, NULL, s), err);
    else
        HKM_TRY(gemm(g, L->wqkv, w, cf->d_model, g->xn, n, g->qkv, 0.0f, err));
    if (L->bqkv) HKG_CUDA(hkg_add_bias(g->qkv, L->bqkv, n, w, s), err);
    if (L->q_norm) {
        HKG_CUDA(hkg_head_rmsnorm(g->qkv, n, H, w, hd, L->q_norm, cf->rms_eps, s), err);
        HKG_CUDA(hkg_head_rmsnorm(g->qkv + (size_t)H * hd, n, KV, w, hd, L->k_norm,
                                  cf->rms_eps, s), err);
    }
    if (f->h_qkv) { /* the capture wants the roped fp32 rows */
        HKG_CUDA(hkg_rope(g->qkv, n, H + KV, w, hd, f->pos0, f->d_pos0, g->inv_freq, s), err);
        HKG_CUDA(cudaMemcpyAsync(f->h_qkv, g->qkv, (size_t)n * w * 4, cudaMemcpyDeviceToHost, s),
                 err);
        HKG_CUDA(hkg_qkv_scatter(g->qkv, n, H, KV, hd, g->q, c->k[l], c->v[l], c->d_off, len, s),
                 err);
    } else {
        HKG_CUDA(hkg_rope_scatter(g->qkv, n, H, KV, hd, f->pos0, f->d_pos0, g->inv_freq, g->q,
                                  c->k[l], c->v[l], c->d_off, len, s), err);
    }
    hkg_attn_args a = {g->q, c->k[l], c->v[l], c->d_off, len, n, H, KV, hd,
                       1.0f / sqrtf((float)hd)};
    if (n == 1) {
        int mk = f->fixed_split ? c->cap : 1;
        for (int h = 0; !f->fixed_split && h < KV; h++)
            if (c->h_len[l * KV + h] + 1 > mk) mk = c->h_len[l * KV + h] + 1;
        HKG_CUDA(hkg_attn_decode(&a, mk, g->dec_part, g->attn, g->lse, s), err);
    } else {
        HKG_CUDA(hkg_attn_prefill(&a, g->attn, g->lse, s), err);
    }
    if (want_cap(f) || want_stats(f)) HKM_TRY(run_capture(g, c, f, l, &a, err));
    return gemm(g, L->wo, cf->d_model, H * hd, g->attn, n, g->x, 1.0f, err);
}

static hkm_status mlp(hkm_gpu_model *g, int n, const hkg_layer *L, hkm_err *err) {
    const hkm_config *cf = &g->cfg;
    if (gemv1(g, n, cf->d_model) && hkg_gemv_ok(cf->d_ff)) { /* norm and SwiGLU fused */
        HKG_CUDA(hkg_gemv(L->wgu, cf->d_ff, cf->d_model, NULL, g->x, L->ffn_norm, cf->rms_eps,
                          HKG_GEMV_SWIGLU, NULL, g->xn, g->stream), err);
        return gemm(g, L->wdown, cf->d_model, cf->d_ff, g->xn, n, g->x, 1.0f, err);
    }
    HKG_CUDA(hkg_rmsnorm(g->x, NULL, L->ffn_norm, n, cf->d_model, cf->rms_eps, g->xn, g->stream),
             err);
    if (cf->d_ff % 2 == 0) { /* gate/up in bf16 (the gu buffer is sized for fp32) */
        hkg_bf16 *gub = (hkg_bf16 *)g->gu;
        HKM_TRY(gemm_bf16(g, L->wgu, 2 * cf->d_ff, cf->d_model, g->xn, n, gub, err));
        HKG_CUDA(hkg_swiglu_bf16(gub, n, cf->d_ff, g->xn, g->stream), err);
    } else {
        HKM_TRY(gemm(g, L->wgu, 2 * cf->d_ff, cf->d_model, g->xn, n, g->gu, 0.0f, err));
        HKG_CUDA(hkg_swiglu(g->gu, n, cf->d_ff, g->xn, g->stream), err);
    }
    return gemm(g, L->wdown, cf->d_model, cf->d_ff, g->xn, n, g->x, 1.0f, err);
}

static hkm_status layer(hkm_gpu_model *g, hkm_gpu_cache *c, fwd_call *f, int l, hkm_err *err) {
    const hkm_config *cf = &g->cfg;
    const hkg_layer *L = &g->layers[l];
    if (f->h_hidden)
        HKG_CUDA(cudaMemcpyAsync(f->h_hidden, g->x, (size_t)f->n * cf->d_model * 4,
                                 cudaMemcpyDeviceToHost, g->stream), err);
    if (!gemv1(g, f->n, cf->d_model))
        HKG_CUDA(hkg_rmsnorm(g->x, NULL, L->attn_norm, f->n, cf->d_model, cf->rms_eps, g->xn,
                             g->stream), err);
    HKM_TRY(attention(g, c, f, l, L, err));
    return mlp(g, f->n, L, err);
}

/* Logits of rows [r0, r0 + nr) of x into g->logits (nr <= HKG_LOGIT_ROWS). */
static hkm_status head_rows(hkm_gpu_model *g, int r0, int nr, hkm_err *err) {
    const hkm_config *cf = &g->cfg;
    if (gemv1(g, nr, cf->d_model)) {
        HKG_CUDA(hkg_gemv(g->lm_head, cf->vocab_size, cf->d_model, NULL,
                          g->x + (size_t)r0 * cf->d_model, g->out_norm, cf->rms_eps,
                          HKG_GEMV_STORE, g->logits, NULL, g->stream), err);
        return HKM_OK;
    }
    HKG_CUDA(hkg_rmsnorm(g->x + (size_t)r0 * cf->d_model, NULL, g->out_norm, nr, cf->d_model,
                         cf->rms_eps, g->xn, g->stream), err);
    return gemm(g, g->lm_head, cf->vocab_size, cf->d_model, g->xn, nr, g->logits, 0.0f, err);
}

static hkm_status logits_out(hkm_gpu_model *g, int n, hkm_logits_mode mode, float *logits,
                             hkm_err *err) {
    size_t V = g->cfg.vocab_size;
    if (mode == HKM_LOGITS_NONE) return HKM_OK;
    int r0 = mode == HKM_LOGITS_LAST ? n - 1 : 0;
    for (int r = r0; r < n; r += HKG_LOGIT_ROWS) {
        int nr = n - r < HKG_LOGIT_ROWS ? n - r : HKG_LOGIT_ROWS;
        HKM_TRY(head_rows(g, r, nr, err));
        if (logits)
            HKG_CUDA(cudaMemcpyAsync(logits + (size_t)(r - r0) * V, g->logits, (size_t)nr * V * 4,
                                     cudaMemcpyDeviceToHost, g->stream), err);
    }
    return HKM_OK;
}

/* ---------------------------------------------------------------- forward */

/* ---------------------------------------------------------------- decode graph */

/* The device work of one decode token without capture: embedding, layers and
 * the last row's logits into g->logits. */
static hkm_status decode_body(hkm_gpu_model *g, hkm_gpu_cache *c, fwd_call *f, hkm_err *err) {
    HKG_CUDA(hkg_embed(g->tok_emb, g->ids, 1, g->cfg.d_model, g->x, g->stream), err);
    for (int l = 0; l < g->cfg.n_layers; l++) HKM_TRY(layer(g, c, f, l, err));
    return head_rows(g, 0, 1, err);
}

/* Capture decode_body for cache c. On failure (e.g. a library that cannot be
 * captured) *ok = 0 and the caller runs plain launches. */
static hkm_status graph_capture(hkm_gpu_model *g, hkm_gpu_cache *c, int *ok, hkm_err *err) {
    *ok = 0;
    if (g->graph) cudaGraphExecDestroy(g->graph);
    g->graph = NULL;
    g->graph_cache = NULL;
    fwd_call f = {0};
    f.n = 1;
    f.qkvw = (g->cfg.n_heads + 2 * g->cfg.n_kv_heads) * g->cfg.head_dim;
    f.d_pos0 = g->pos;
    f.fixed_split = 1;
    HKG_CUDA(cudaStreamBeginCapture(g->stream, cudaStreamCaptureModeThreadLocal), err);
    hkm_err ignored = {{0}};
    hkm_status st = decode_body(g, c, &f, &ignored);
    cudaGraph_t gr = NULL;
    cudaError_t e = cudaStreamEndCapture(g->stream, &gr);
    if (st == HKM_OK && e == cudaSuccess) e = cudaGraphInstantiate(&g->graph, gr, 0);
    if (gr) cudaGraphDestroy(gr);
    if (st != HKM_OK || e != cudaSuccess) {
        (void)cudaGetLastError();
        g->graph = NULL;
        g->no_graph = 1;
        return HKM_OK;
    }
    g->graph_cache = c;
    *ok = 1;
    return HKM_OK;
}

/* A decode token's id and position to the device (g->ids, g->pos), where the
 * graph reads them. */
static hkm_status decode_in(hkm_gpu_model *g, const hkm_gpu_cache *c, const int32_t *ids,
                            hkm_err *err) {
    int32_t pos = c->next_pos;
    HKG_CUDA(cudaMemcpyAsync(g->ids, ids, 4, cudaMemcpyHostToDevice, g->stream), err);
    HKG_CUDA(cudaMemcpyAsync(g->pos, &pos, 4, cudaMemcpyHostToDevice, g->stream), err);
    return HKM_OK;
}

/* Its logits (in g->logits) to the host when asked, through a pinned
 * buffer: straight into pageable memory the copy is staged by the driver
 * at a fraction of the bus rate. */
static hkm_status decode_out(hkm_gpu_model *g, float *logits, hkm_err *err) {
    if (!logits) return HKM_OK;
    const size_t bytes = (size_t)g->cfg.vocab_size * 4;
    if (!g->logits_pin)
        HKG_CUDA(cudaHostAlloc((void **)&g->logits_pin, bytes, cudaHostAllocDefault), err);
    HKG_CUDA(cudaMemcpyAsync(g->logits_pin, g->logits, bytes, cudaMemcpyDeviceToHost, g->stream),
             err);
    HKG_CUDA(cudaStreamSynchronize(g->stream), err);
    memcpy(logits, g->logits_pin, bytes);
    return HKM_OK;
}

/* One decode token by graph replay; *done = 0 when no graph could be made. */
static hkm_status decode_graph(hkm_gpu_model *g, hkm_gpu_cache *c, const int32_t *ids,
                               float *logits, int *done, hkm_err *err) {
    *done = 0;
    if (g->graph_cache != c) HKM_TRY(graph_capture(g, c, done, err));
    if (!g->graph) return HKM_OK;
    HKM_TRY(decode_in(g, c, ids, err));
    HKG_CUDA(cudaGraphLaunch(g->graph, g->stream), err);
    g->graph_replays++;
    HKM_TRY(decode_out(g, logits, err));
    *done = 1;
    return HKM_OK;
}

/* ---------------------------------------------------------------- persistent decode */

/* The persistent kernel's arguments; cache c may be NULL (shape only). */
static hkg_pd_args pd_args(const hkm_gpu_model *g, const hkm_gpu_cache *c) {
    const hkm_config *cf = &g->cfg;
    hkg_pd_args a;
    memset(&a, 0, sizeof a);
    a.layers = g->pd_layers;
    a.n_layers = cf->n_layers, a.d = cf->d_model, a.ff = cf->d_ff, a.H = cf->n_heads;
    a.KV = cf->n_kv_heads, a.hd = cf->head_dim, a.vocab = cf->vocab_size, a.eps = cf->rms_eps;
    a.tok_emb = g->tok_emb, a.lm_head = g->lm_head, a.out_norm = g->out_norm;
    a.inv_freq = g->inv_freq;
    if (c) {
        a.pos = c->next_pos;
        a.off = c->d_off, a.len = c->d_len, a.kv_base = c->k[0];
        a.kv_lstride = c->n_layers > 1 ? (size_t)(c->k[1] - c->k[0]) : 0;
        a.kv_vofs = (size_t)(c->v[0] - c->k[0]);
    }
    a.prefetch = !g->no_prefetch;
    a.scratch = g->pd_scratch;
    a.logits = g->logits;
    a.no_stage = g->pd_no_stage, a.kv_keys_max = g->pd_kv_keys_max, a.window = g->pd_window;
    return a;
}

/* Its layer table (with the down projections transposed, so that a block's
 * slice of them is contiguous) and scratch. */
static hkm_status pd_setup(hkm_gpu_model *g, hkm_err *err) {
    int L = g->cfg.n_layers;
    size_t dff = (size_t)g->cfg.d_model * g->cfg.d_ff;
    HKM_TRY(hkg_malloc(g, (void **)&g->pd_wdT, (size_t)L * dff * 2,
                       "the transposed down projections of persistent decode", err));
    HKM_TRY(hkg_malloc(g, (void **)&g->pd_layers, (size_t)L * sizeof(hkg_pd_layer),
                       "the persistent decode layer table", err));
    hkg_pd_args a = pd_args(g, NULL);
    g->pd_bytes = hkg_pd_scratch_bytes(&a);
    HKM_TRY(hkg_malloc(g, &g->pd_scratch, g->pd_bytes, "the persistent decode scratch", err));
    /* zeroed once: each launch leaves its barrier state zero */
    HKG_CUDA(cudaMemsetAsync(g->pd_scratch, 0, g->pd_bytes, g->stream), err);
    hkg_pd_layer *hl = calloc((size_t)L, sizeof *hl);
    if (!hl) return hkm_fail(err, HKM_ERR_NOMEM, "persistent decode: no host memory");
    cudaError_t e = cudaSuccess;
    for (int l = 0; l < L; l++) {
        const hkg_layer *s = &g->layers[l];
        hkg_bf16 *wt = g->pd_wdT + (size_t)l * dff;
        hkg_pd_layer t = {s->wqkv, s->wo, s->wgu, wt, s->attn_norm, s->ffn_norm,
                          s->bqkv, s->q_norm, s->k_norm};
        hl[l] = t;
        if (e == cudaSuccess)
            e = hkg_transpose_bf16(s->wdown, g->cfg.d_model, g->cfg.d_ff, wt, g->stream);
    }
    if (e == cudaSuccess)
        e = cudaMemcpy(g->pd_layers, hl, (size_t)L * sizeof *hl, cudaMemcpyHostToDevice);
    free(hl);
    HKG_CUDA(e, err);
    return HKM_OK;
}

/* Frees what pd_setup allocated. */
static void pd_release(hkm_gpu_model *g) {
    size_t L = g->cfg.n_layers;
    hkg_free(g, g->pd_wdT, L * g->cfg.d_model * g->cfg.d_ff * 2);
    hkg_free(g, g->pd_layers, L * sizeof(hkg_pd_layer));
    hkg_free(g, g->pd_scratch, g->pd_bytes);
    g->pd_wdT = NULL, g->pd_layers = NULL, g->pd_scratch = NULL;
}

/* Whether decode runs the persistent kernel: where it supports the shape,
 * for models whose layer weights fit four times in L2. Decode of those is
 * bound by per-kernel latency; bigger layers are bound by bandwidth, where
 * the per-kernel path does well (bench/gpu/NOTES.md). HUBKV_GPU_PERSIST
 * overrides the size rule. Without the device memory for its buffers,
 * decode keeps the per-kernel path. */
static void pd_decide(hkm_gpu_model *g) {
    if (g->persist != HKG_PD_UNDECIDED) return;
    g->persist = HKG_PD_OFF;
    hkg_pd_args a = pd_args(g, NULL);
    if (g->persist_env == 0 || !hkg_pd_supported(&a)) return;
    const hkm_config *cf = &g->cfg;
    size_t d = cf->d_model, qd = (size_t)cf->n_heads * cf->head_dim;
    size_t layer = (qd + 2 * (size_t)cf->n_kv_heads * cf->head_dim + qd + 3 * (size_t)cf->d_ff) *
                   d * 2;
    int dev = 0, l2 = 0;
    if (g->persist_env != 1 &&
        (cudaGetDevice(&dev) != cudaSuccess ||
         cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, dev) != cudaSuccess ||
         layer > (size_t)l2 / 4))
        return;
    hkm_err ignored = {{0}};
    if (pd_setup(g, &ignored) != HKM_OK) {
        (void)cudaGetLastError();
        pd_release(g);
        return;
    }
    g->persist = HKG_PD_ON;
}

/* One decode token by the persistent kernel: token id, or *id_dev when
 * given (on the device); the logits' argmax into g->amax when asked. The
 * kernel advances the device lengths itself. */
static hkm_status decode_persist(hkm_gpu_model *g, hkm_gpu_cache *c, int32_t id,
                                 const int32_t *id_dev, int argmax, float *logits, hkm_err *err) {
    hkg_pd_args a = pd_args(g, c);
    a.id = id, a.id_dev = id_dev, a.argmax = argmax ? g->amax : NULL;
    HKG_CUDA(hkg_decode_persistent(&a, g->stream), err);
    g->persist_tokens++;
    return decode_out(g, logits, err);
}

/* ---------------------------------------------------------------- forward */

/* The plain path: every kernel launched from the host. */
static hkm_status forward_plain(hkm_gpu_model *g, hkm_gpu_cache *c, const int32_t *ids, int n,
                                hkm_logits_mode mode, float *logits, const hkm_gpu_capture *cap,
                                hkm_err *err) {
    const hkm_config *cf = &g->cfg;
    fwd_call f = {0};
    f.n = n;
    f.pos0 = c->next_pos;
    f.qkvw = (cf->n_heads + 2 * cf->n_kv_heads) * cf->head_dim;
    f.cap = cap;
    hkm_status st = call_setup(g, c, &f, err);
    if (st == HKM_OK) {
        cudaError_t e = cudaMemcpyAsync(g->ids, ids, (size_t)n * 4, cudaMemcpyHostToDevice,
                                        g->stream);
        if (e == cudaSuccess) e = hkg_embed(g->tok_emb, g->ids, n, cf->d_model, g->x, g->stream);
        if (e != cudaSuccess)
            st = hkm_fail(err, HKM_ERR_IO, "%s:%d: CUDA: embedding: %s", __FILE__, __LINE__,
                          cudaGetErrorString(e));
    }
    for (int l = 0; st == HKM_OK && l < cf->n_layers; l++) st = layer(g, c, &f, l, err);
    if (st == HKM_OK) st = logits_out(g, n, mode, logits, err);
    if (st == HKM_OK && f.defer) st = stats_deferred(g, &f, err);
    call_free(&f);
    return st;
}

/* The host side of n tokens appended to every head: lengths and positions
 * (the device lengths are the caller's to update). */
static void cache_advance(hkm_gpu_cache *c, int n) {
    for (int i = 0; i < c->n_layers * c->n_kv; i++) {
        int32_t *pos = c->h_pos + (size_t)i * c->cap + c->h_len[i];
        for (int t = 0; t < n; t++) pos[t] = c->next_pos + t;
        c->h_len[i] += n;
    }
    c->next_pos += n;
}

/* logits == NULL with LOGITS_LAST leaves the last row in g->logits. */
static hkm_status forward(hkm_gpu_model *g, hkm_gpu_cache *c, const int32_t *ids, int n,
                          hkm_logits_mode mode, float *logits, const hkm_gpu_capture *cap,
                          hkm_err *err) {
    int done = 0, advanced = 0; /* advanced: the device lengths, by the kernel */
    hkm_status st = HKM_OK;
    /* decode without capture hooks: one persistent kernel, or replay one graph
     * instead of ~10 launches per layer */
    if (n == 1 && !cap && mode == HKM_LOGITS_LAST) {
        pd_decide(g);
        if (g->persist == HKG_PD_ON) {
            st = decode_persist(g, c, ids[0], NULL, 0, logits, err);
            done = advanced = 1;
        } else if (!g->no_graph) {
            st = decode_graph(g, c, ids, logits, &done, err);
        }
    }
    if (st == HKM_OK && !done) st = forward_plain(g, c, ids, n, mode, logits, cap, err);
    if (st != HKM_OK) return st; /* the cache is unchanged: lengths were not advanced */
    cache_advance(c, n);
    if (!advanced)
        HKG_CUDA(cudaMemcpyAsync(c->d_len, c->h_len, (size_t)c->n_layers * c->n_kv * 4,
                                 cudaMemcpyHostToDevice, g->stream), err);
    HKG_CUDA(cudaStreamSynchronize(g->stream), err);
    return HKM_OK;
}

hkm_status hkm_gpu_forward(hkm_gpu_model *g, hkm_gpu_cache *c, const int32_t *ids, int n,
                           hkm_logits_mode mode, float *logits, const hkm_gpu_capture *cap,
                           hkm_err *err) {
    HKM_TRY(check_call(g, c, ids, n, mode, logits, cap, err));
    if (mode != HKM_LOGITS_NONE && !logits)
        return hkm_fail(err, HKM_ERR_ARG, "hkm_gpu_forward: logits mode %d needs a logits "
                        "buffer", (int)mode);
    return forward(g, c, ids, n, mode, logits, cap, err);
}

static hkm_status next_token(hkm_gpu_model *g, int32_t *tok, hkm_err *err) {
    HKG_CUDA(hkg_argmax(g->logits, 1, g->cfg.vocab_size, g->amax, g->stream), err);
    HKG_CUDA(cudaMemcpyAsync(tok, g->amax, 4, cudaMemcpyDeviceToHost, g->stream), err);
    HKG_CUDA(cudaStreamSynchronize(g->stream), err);
    return HKM_OK;
}

/* The token in g->amax (where the next step reads it; argmax: computed here
 * from g->logits first) to the host's slot `slot` of g->pd_tok, completing
 * event pd_ev[slot]. */
static hkm_status queue_token(hkm_gpu_model *g, int slot, int argmax, hkm_err *err) {
    if (argmax) HKG_CUDA(hkg_argmax(g->logits, 1, g->cfg.vocab_size, g->amax, g->stream), err);
    HKG_CUDA(cudaMemcpyAsync(g->pd_tok + slot, g->amax, 4, cudaMemcpyDeviceToHost, g->stream),
             err);
    HKG_CUDA(cudaEventRecord(g->pd_ev[slot], g->stream), err);
    return HKM_OK;
}

/* Greedy decode on the persistent kernel, pipelined: step k+1 is queued
 * (reading its token from step k's argmax on the device) before token k
 * reaches the host, so the GPU does not wait for the host between tokens.
 * When token k is eos, the step queued after it is taken back: the lengths
 * and positions go back, the K/V rows it wrote stay beyond them. */
static hkm_status greedy_persist(hkm_gpu_model *g, hkm_gpu_cache *c, int max_new, int32_t eos_id,
                                 int32_t *out, int *n_out, hkm_err *err) {
    if (!g->pd_tok)
        HKG_CUDA(cudaHostAlloc((void **)&g->pd_tok, 2 * sizeof *g->pd_tok, cudaHostAllocDefault),
                 err);
    for (int i = 0; i < 2; i++)
        if (!g->pd_ev[i])
            HKG_CUDA(cudaEventCreateWithFlags(&g->pd_ev[i], cudaEventDisableTiming), err);
    if (max_new > 0) HKM_TRY(queue_token(g, 0, 1, err)); /* the prompt's last logits */
    for (int k = 0; k < max_new; k++) {
        hkm_err next_err = {{0}};
        hkm_status next = HKM_OK;
        int queued = 0;
        if (k + 1 < max_new) {
            const int32_t any = 0; /* the device's token is in range: argmax */
            next = check_call(g, c, &any, 1, HKM_LOGITS_LAST, NULL, NULL, &next_err);
            if (next == HKM_OK) {
                HKM_TRY(decode_persist(g, c, 0, g->amax, 1, NULL, err));
                cache_advance(c, 1);
                HKM_TRY(queue_token(g, (k + 1) & 1, 0, err));
                queued = 1;
            }
        }
        HKG_CUDA(cudaEventSynchronize(g->pd_ev[k & 1]), err);
        const int32_t tok = g->pd_tok[k & 1];
        out[(*n_out)++] = tok;
        if (tok == eos_id) {
            if (!queued) break;
            HKG_CUDA(cudaStreamSynchronize(g->stream), err); /* take the next step back */
            for (int i = 0; i < c->n_layers * c->n_kv; i++) c->h_len[i]--;
            c->next_pos--;
            HKG_CUDA(cudaMemcpy(c->d_len, c->h_len, (size_t)c->n_layers * c->n_kv * 4,
                                cudaMemcpyHostToDevice), err);
            return HKM_OK;
        }
        if (next != HKM_OK) {
            *err = next_err;
            return next;
        }
    }
    HKG_CUDA(cudaStreamSynchronize(g->stream), err);
    return HKM_OK;
}

hkm_status hkm_gpu_generate_greedy(hkm_gpu_model *g, hkm_gpu_cache *c, const int32_t *prompt,
                                   int n_prompt, int max_new, int32_t eos_id, int32_t *out,
                                   int *n_out, hkm_err *err) {
    if (!g || !c || !prompt || n_prompt <= 0 || max_new < 0 || (max_new > 0 && !out) || !n_out)
        return hkm_fail(err, HKM_ERR_ARG, "hkm_gpu_generate_greedy: need model, cache, a "
                        "non-empty prompt, out and n_out (n_prompt %d, max_new %d)", n_prompt,
                        max_new);
    *n_out = 0;
    hkm_gpu_cache_reset(c);
    for (int i = 0; i < n_prompt; i += g->max_chunk) {
        int m = n_prompt - i < g->max_chunk ? n_prompt - i : g->max_chunk;
        int last = i + m == n_prompt;
        HKM_TRY(check_call(g, c, prompt + i, m, HKM_LOGITS_LAST, NULL, NULL, err));
        HKM_TRY(forward(g, c, prompt + i, m, last ? HKM_LOGITS_LAST : HKM_LOGITS_NONE, NULL,
                        NULL, err));
    }
    pd_decide(g);
    if (g->persist == HKG_PD_ON) return greedy_persist(g, c, max_new, eos_id, out, n_out, err);
    for (int k = 0; k < max_new; k++) {
        int32_t tok;
        HKM_TRY(next_token(g, &tok, err));
        out[(*n_out)++] = tok;
        if (tok == eos_id || k + 1 == max_new) break;
        HKM_TRY(check_call(g, c, &tok, 1, HKM_LOGITS_LAST, NULL, NULL, err));
        HKM_TRY(forward(g, c, &tok, 1, HKM_LOGITS_LAST, NULL, NULL, err));
    }
    return HKM_OK;
}
