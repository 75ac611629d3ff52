/* CPU fp32 forward of a llama-family decoder (Llama, Mistral, Qwen2, Qwen3)
 * over a KV cache whose heads may hold different entries, with capture hooks.
 * Numerics follow Hugging Face transformers: fp32 RMSNorm, rotate_half RoPE
 * with HF's inv_freq, softmax in fp32.
 * Threads: every matmul, attention's included, goes through OpenBLAS, whose
 * thread pool is the only one the forward uses. Mixing in OpenMP regions made
 * the two pools' spinning workers fight for the cores (2-4x slower on 2 cores),
 * so element-wise work stays on the calling thread, vectorised instead. */
#include "kvcache_internal.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

/* Attention runs per KV head as two GEMMs over blocks of at most ATT_ROWS
 * query rows (new tokens x the query heads sharing that KV head). */
#define ATT_ROWS 256

/* Tokens per attention block: ATT_ROWS rows, but at least one token. */
static int att_tokens(const hkm_config *g) {
    int group = g->n_heads / g->n_kv_heads;
    return ATT_ROWS / group > 0 ? ATT_ROWS / group : 1;
}

/* ---------------------------------------------------------------- buffers */

/* Views into the cache's workspace for one call. */
typedef struct {
    float *x;        /* (n, d_model) residual stream */
    float *xn;       /* (n, d_model) normed input of a sub-block, or its output */
    float *q;        /* (n, n_heads * head_dim) */
    float *k;        /* (n, n_kv_heads * head_dim) */
    float *v;        /* (n, n_kv_heads * head_dim) */
    float *att;      /* (n, n_heads * head_dim) attention output */
    float *gate;     /* (n, d_ff) */
    float *up;       /* (n, d_ff) */
    float *cos, *sin;/* (n, head_dim / 2) */
    float *qg;       /* (att_rows, head_dim) one block of a KV head's query rows */
    float *og;       /* (att_rows, head_dim) their attention output */
    float *scores;   /* (att_rows, max_keys) */
    float *cq;       /* (n_heads, n, head_dim) capture copy, or NULL */
    float *ck, *cv;  /* (n_kv_heads, n, head_dim) capture copies, or NULL */
    float *probs;    /* (n_heads, n_rows, max_keys) or NULL */
    float *colmax;   /* (n_heads, max_keys) column statistics, or NULL */
    float *colsum;   /* (n_heads, max_keys) or NULL */
    int max_keys;    /* most keys any head sees in this call */
    int *len_old;    /* (n_kv_heads) entries a head held before this layer's append */
    int *n_keys;     /* (n_kv_heads) keys visible to each KV head */
    int *row_slot;   /* (n) index into cap->rows of each new token, or -1 */
} fwd_bufs;

typedef struct {
    const hkm_model *m;
    hkm_kvcache *c;
    const hkm_capture *cap;
    int n;     /* new tokens */
    int pos0;  /* absolute position of the first */
    fwd_bufs b;
} fwd_ctx;

static int max_keys_of(const hkm_kvcache *c, int n) {
    int mx = 0;
    size_t nh = (size_t)c->cfg.n_layers * (size_t)c->cfg.n_kv_heads;
    for (size_t i = 0; i < nh; i++)
        if (c->heads[i].len > mx) mx = c->heads[i].len;
    return mx + n;
}

/* Carve the workspace, growing the cache's buffer when this call needs more. */
static hkm_status bufs_init(fwd_ctx *f, hkm_err *err) {
    const hkm_config *g = &f->m->cfg;
    fwd_bufs *b = &f->b;
    size_t n = (size_t)f->n, d = (size_t)g->d_model, hd = (size_t)g->head_dim;
    size_t qd = (size_t)g->n_heads * hd, kvd = (size_t)g->n_kv_heads * hd;
    size_t ff = (size_t)g->d_ff;
    int want_qkv = f->cap && f->cap->want_qkv; // f->cap is NULL unless cap->fn is set
    int n_rows = f->cap ? f->cap->n_rows : 0;
    int stats = f->cap && f->cap->stat_row1 > f->cap->stat_row0;
    b->max_keys = max_keys_of(f->c, f->n);
    size_t mk = (size_t)b->max_keys;
    size_t ar = (size_t)att_tokens(g) * (size_t)(g->n_heads / g->n_kv_heads); // att_rows
    size_t sizes[] = {n * d, n * d, n * qd, n * kvd, n * kvd, n * qd, n * ff, n * ff,
                      n * hd / 2, n * hd / 2, ar * hd, ar * hd, ar * mk,
                      want_qkv ? n * qd : 0, want_qkv ? n * kvd : 0, want_qkv ? n * kvd : 0,
                      (size_t)g->n_heads * (size_t)n_rows * mk,
                      stats ? (size_t)g->n_heads * mk : 0, stats ? (size_t)g->n_heads * mk : 0};
    float **dst[] = {&b->x,   &b->xn,  &b->q,  &b->k,  &b->v,      &b->att,
                     &b->gate, &b->up, &b->cos, &b->sin, &b->qg,    &b->og,
                     &b->scores, &b->cq, &b->ck, &b->cv, &b->probs, &b->colmax, &b->colsum};
    size_t total = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) total += sizes[i];
    if (total > f->c->ws_floats) {
        free(f->c->ws);
        f->c->ws_floats = 0;
        f->c->ws = malloc(total * sizeof(float));
        if (!f->c->ws)
            return hkm_fail(err, HKM_ERR_NOMEM,
                            "hkm_forward_cpu: out of memory for a %zu-float workspace (%d tokens)",
                            total, f->n);
        f->c->ws_floats = total;
    }
    float *p = f->c->ws;
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        *dst[i] = sizes[i] ? p : NULL;
        p += sizes[i];
    }
    HKM_ALLOC(b->len_old, 2 * (size_t)g->n_kv_heads + n, err);
    b->n_keys = b->len_old + g->n_kv_heads;
    b->row_slot = b->n_keys + g->n_kv_heads;
    for (int i = 0; i < f->n; i++) b->row_slot[i] = -1;
    for (int r = 0; r < n_rows; r++) b->row_slot[f->cap->rows[r]] = r;
    return HKM_OK;
}

/* ---------------------------------------------------------------- kernels */

/* y (n, out) = x (n, in) @ W^T (+ bias); W (out, in) as HF stores linears. */
static void linear(float *y, const float *x, const float *w, const float *bias, int n, int out,
                   int in) {
    if (n == 1)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, out, in, 1.0f, w, in, x, 1, 0.0f, y, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, out, in, 1.0f, x, in, w, in,
                    0.0f, y, out);
    if (!bias) return;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < out; j++) y[(size_t)i * out + j] += bias[j];
}

/* HF RMSNorm: w * (x * rsqrt(mean(x^2) + eps)), in fp32. The mean is
 * accumulated in double, closer to torch's pairwise sum than a float loop. */
static void rmsnorm_row(float *y, const float *x, const float *w, int d, float eps) {
    double ss = 0.0;
#pragma omp simd reduction(+ : ss)
    for (int i = 0; i < d; i++) ss += (double)x[i] * x[i];
    float var = (float)(ss / d);
    float r = 1.0f / sqrtf(var + eps);
    for (int i = 0; i < d; i++) y[i] = w[i] * (x[i] * r);
}

/* rows (n_rows, d) normalised independently. */
static void rmsnorm(float *y, const float *x, const float *w, int n_rows, int d, float eps) {
    for (int i = 0; i < n_rows; i++)
        rmsnorm_row(y + (size_t)i * d, x + (size_t)i * d, w, d, eps);
}

/* cos/sin (n, hd/2) of fp32 angles pos * inv_freq, as HF builds them. */
static void rope_tables(const hkm_config *g, int pos0, int n, float *cs, float *sn) {
    int half = g->head_dim / 2;
    float inv[half];
    hkm_rope_inv_freq(g, inv);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < half; j++) {
            float a = (float)(pos0 + i) * inv[j];
            cs[(size_t)i * half + j] = (float)cos((double)a);
            sn[(size_t)i * half + j] = (float)sin((double)a);
        }
}

/* x*cos + rotate_half(x)*sin on one head vector; pairs are (j, j + hd/2). */
static void rope_apply(float *x, const float *cs, const float *sn, int half) {
    for (int j = 0; j < half; j++) {
        float a = x[j], b = x[j + half];
        x[j] = a * cs[j] - b * sn[j];
        x[j + half] = b * cs[j] + a * sn[j];
    }
}

/* Qwen3 per-head RMSNorm (if any), then RoPE, on t (n, n_h * hd). */
static void heads_norm_rope(float *t, int n, int n_h, const float *norm_w, const fwd_ctx *f) {
    const hkm_config *g = &f->m->cfg;
    int hd = g->head_dim, half = hd / 2;
    for (int i = 0; i < n; i++)
        for (int h = 0; h < n_h; h++) {
            float *x = t + ((size_t)i * n_h + h) * hd;
            if (norm_w) rmsnorm_row(x, x, norm_w, hd, g->rms_eps);
            rope_apply(x, f->b.cos + (size_t)i * half, f->b.sin + (size_t)i * half, half);
        }
}

/* exp of x in [-87.3, 88.3] (the Cephes polynomial, ~2 ulp). Free of
 * branches and float->int conversions so that loops calling it vectorise
 * (libm's expf does not without -ffast-math); callers clamp first, in a loop
 * of their own, for the same reason. */
static inline float exp_core(float x) {
    union { float f; int32_t i; } big = {.f = x * 1.44269504088896341f + 12582912.0f};
    float nf = big.f - 12582912.0f;                          // round(x / ln 2)
    float r = x - nf * 0.693359375f - nf * -2.12194440e-4f;  // x - n ln 2, two steps
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    union { int32_t i; float f; } scale = {.i = (big.i - 0x4B400000 + 127) << 23}; // 2^n
    return p * scale.f;
}

/* x[i] = exp(x[i] - shift); below e^-87.3 gives ~1e-38 rather than 0. */
static void exp_shifted(float *x, int n, float shift) {
    for (int i = 0; i < n; i++) {
        float v = x[i] - shift;
        x[i] = v < -87.3f ? -87.3f : (v > 88.3f ? 88.3f : v);
    }
#pragma omp simd
    for (int i = 0; i < n; i++) x[i] = exp_core(x[i]);
}

/* Numerically stable softmax over s[0..nv); s[nv..len) set to 0 (masked). */
static void softmax_row(float *s, int nv, int len) {
    float mx = -INFINITY, sum = 0.0f;
#pragma omp simd reduction(max : mx)
    for (int j = 0; j < nv; j++) mx = s[j] > mx ? s[j] : mx;
    exp_shifted(s, nv, mx);
#pragma omp simd reduction(+ : sum)
    for (int j = 0; j < nv; j++) sum += s[j];
    float inv = 1.0f / sum;
    for (int j = 0; j < nv; j++) s[j] *= inv;
    for (int j = nv; j < len; j++) s[j] = 0.0f;
}

/* g = silu(g) * u = g / (1 + exp(-g)) * u, in chunks through a small buffer. */
static void swiglu(float *g, const float *u, size_t total) {
    float e[256];
    for (size_t i0 = 0; i0 < total; i0 += 256) {
        int m = total - i0 < 256 ? (int)(total - i0) : 256;
        for (int i = 0; i < m; i++) e[i] = -g[i0 + i];
        exp_shifted(e, m, 0.0f);
        for (int i = 0; i < m; i++) g[i0 + i] = g[i0 + i] / (1.0f + e[i]) * u[i0 + i];
    }
}

/* ---------------------------------------------------------------- attention */

/* Copy the probabilities of new token i (row of head h) when it is captured. */
static void capture_row(const fwd_ctx *f, int h, int i, const float *p, int len, int stride) {
    int r = f->b.row_slot[i];
    if (r < 0 || !f->b.probs) return;
    memcpy(f->b.probs + ((size_t)h * f->cap->n_rows + r) * stride, p, (size_t)len * sizeof(float));
}

/* Column max and sum of new token i's probability row p[0..nv) (head h)
 * when i is among the statistics rows; reduced here, while the row is hot. */
static void stats_row(const fwd_ctx *f, int h, int i, const float *p, int nv, int stride) {
    if (!f->b.colmax || i < f->cap->stat_row0 || i >= f->cap->stat_row1) return;
    float *cm = f->b.colmax + (size_t)h * stride, *cs = f->b.colsum + (size_t)h * stride;
#pragma omp simd
    for (int j = 0; j < nv; j++) {
        cm[j] = p[j] > cm[j] ? p[j] : cm[j];
        cs[j] += p[j];
    }
}

/* Tokens [t0, t0 + tb) of one KV head's query group: rows (token, head in
 * group) gathered into qg, scores = qg K^T over the keys the last token sees,
 * causal softmax, og = P V scattered back into att. */
static void attention_block_rows(const fwd_ctx *f, int layer, int kvh, int t0, int tb, int stride) {
    const hkm_config *g = &f->m->cfg;
    const fwd_bufs *b = &f->b;
    int hd = g->head_dim, group = g->n_heads / g->n_kv_heads, h0 = kvh * group;
    int rows = tb * group, lo = b->len_old[kvh], lb = lo + t0 + tb;
    size_t qd = (size_t)g->n_heads * hd, gw = (size_t)group * hd * sizeof(float);
    const hkm_kv_head *kv = &f->c->heads[(size_t)layer * g->n_kv_heads + kvh];
    for (int i = 0; i < tb; i++) // a group's heads are adjacent within a token's q
        memcpy(b->qg + (size_t)i * group * hd, b->q + (t0 + i) * qd + (size_t)h0 * hd, gw);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, lb, hd, 1.0f / sqrtf((float)hd),
                b->qg, hd, kv->k, hd, 0.0f, b->scores, lb);
    for (int r = 0; r < rows; r++) {
        int i = t0 + r / group, nv = lo + i + 1; // causal: keys up to this token
        float *s = b->scores + (size_t)r * lb;
        softmax_row(s, nv, lb);
        capture_row(f, h0 + r % group, i, s, nv, stride);
        stats_row(f, h0 + r % group, i, s, nv, stride);
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, hd, lb, 1.0f, b->scores, lb,
                kv->v, hd, 0.0f, b->og, hd);
    for (int i = 0; i < tb; i++)
        memcpy(b->att + (t0 + i) * qd + (size_t)h0 * hd, b->og + (size_t)i * group * hd, gw);
}

/* att (n, n_heads * head_dim) for every query head over its KV head's entries. */
static void attention(const fwd_ctx *f, int layer, int stride) {
    const hkm_config *g = &f->m->cfg;
    int tb_max = att_tokens(g);
    for (int kvh = 0; kvh < g->n_kv_heads; kvh++)
        for (int t0 = 0; t0 < f->n; t0 += tb_max)
            attention_block_rows(f, layer, kvh, t0, f->n - t0 < tb_max ? f->n - t0 : tb_max, stride);
}

/* Append this call's post-RoPE K and V to every KV head of the layer. */
static void cache_append(fwd_ctx *f, int layer) {
    const hkm_config *g = &f->m->cfg;
    int hd = g->head_dim, nkv = g->n_kv_heads;
    size_t kvd = (size_t)nkv * hd;
    for (int h = 0; h < nkv; h++) {
        hkm_kv_head *kv = hkm_kv_at(f->c, layer, h);
        f->b.len_old[h] = kv->len;
        f->b.n_keys[h] = kv->len + f->n;
        for (int i = 0; i < f->n; i++) {
            size_t dst = (size_t)(kv->len + i) * hd;
            memcpy(kv->k + dst, f->b.k + i * kvd + (size_t)h * hd, (size_t)hd * sizeof(float));
            memcpy(kv->v + dst, f->b.v + i * kvd + (size_t)h * hd, (size_t)hd * sizeof(float));
            kv->pos[kv->len + i] = f->pos0 + i;
        }
        kv->len += f->n;
    }
}

/* ---------------------------------------------------------------- capture */

/* (n, n_h * hd) -> (n_h, n, hd) */
static void to_head_major(float *dst, const float *src, int n, int n_h, int hd) {
    for (int h = 0; h < n_h; h++)
        for (int i = 0; i < n; i++)
            memcpy(dst + ((size_t)h * n + i) * hd, src + ((size_t)i * n_h + h) * hd,
                   (size_t)hd * sizeof(float));
}

static void capture_emit(const fwd_ctx *f, int layer, int stride) {
    const hkm_capture *cap = f->cap;
    const hkm_config *g = &f->m->cfg;
    hkm_layer_capture lc = {.layer = layer, .n = f->n, .pos0 = f->pos0};
    if (cap->want_hidden) lc.hidden = f->b.x;
    if (cap->want_qkv) {
        to_head_major(f->b.cq, f->b.q, f->n, g->n_heads, g->head_dim);
        to_head_major(f->b.ck, f->b.k, f->n, g->n_kv_heads, g->head_dim);
        to_head_major(f->b.cv, f->b.v, f->n, g->n_kv_heads, g->head_dim);
        lc.q = f->b.cq;
        lc.k = f->b.ck;
        lc.v = f->b.cv;
    }
    lc.n_rows = cap->n_rows;
    lc.rows = cap->rows;
    lc.n_keys_max = stride;
    lc.n_keys = f->b.n_keys;
    lc.probs = cap->n_rows > 0 ? f->b.probs : NULL;
    if (f->b.colmax) {
        lc.stat_row0 = cap->stat_row0;
        lc.stat_row1 = cap->stat_row1;
        lc.colmax = f->b.colmax;
        lc.colsum = f->b.colsum;
    }
    cap->fn(cap->user, &lc);
}

/* ---------------------------------------------------------------- layers */

static void attention_block(fwd_ctx *f, int layer) {
    const hkm_config *g = &f->m->cfg;
    const hkm_layer *L = &f->m->layers[layer];
    fwd_bufs *b = &f->b;
    int n = f->n, d = g->d_model, qd = g->n_heads * g->head_dim, kvd = g->n_kv_heads * g->head_dim;
    rmsnorm(b->xn, b->x, L->attn_norm, n, d, g->rms_eps);
    linear(b->q, b->xn, L->wq, L->bq, n, qd, d);
    linear(b->k, b->xn, L->wk, L->bk, n, kvd, d);
    linear(b->v, b->xn, L->wv, L->bv, n, kvd, d);
    heads_norm_rope(b->q, n, g->n_heads, L->q_norm, f);
    heads_norm_rope(b->k, n, g->n_kv_heads, L->k_norm, f);
    cache_append(f, layer);

    int stride = 0; // probs row stride: most keys a head of this layer sees
    for (int h = 0; h < g->n_kv_heads; h++) stride = b->n_keys[h] > stride ? b->n_keys[h] : stride;
    if (b->probs)
        memset(b->probs, 0, (size_t)g->n_heads * f->cap->n_rows * stride * sizeof(float));
    if (b->colmax) { // probabilities are >= 0: 0 is the identity of both reductions
        memset(b->colmax, 0, (size_t)g->n_heads * stride * sizeof(float));
        memset(b->colsum, 0, (size_t)g->n_heads * stride * sizeof(float));
    }
    attention(f, layer, stride);
    if (f->cap) capture_emit(f, layer, stride);

    // Residual: x += att @ Wo^T (xn is free again).
    linear(b->xn, b->att, L->wo, NULL, n, d, qd);
    for (size_t i = 0; i < (size_t)n * d; i++) b->x[i] += b->xn[i];
}

static void mlp_block(fwd_ctx *f, int layer) {
    const hkm_config *g = &f->m->cfg;
    const hkm_layer *L = &f->m->layers[layer];
    fwd_bufs *b = &f->b;
    int n = f->n, d = g->d_model, ff = g->d_ff;
    rmsnorm(b->xn, b->x, L->ffn_norm, n, d, g->rms_eps);
    linear(b->gate, b->xn, L->w_gate, NULL, n, ff, d);
    linear(b->up, b->xn, L->w_up, NULL, n, ff, d);
    swiglu(b->gate, b->up, (size_t)n * ff);
    linear(b->xn, b->gate, L->w_down, NULL, n, d, ff);
    for (size_t i = 0; i < (size_t)n * d; i++) b->x[i] += b->xn[i];
}

static void logits_out(fwd_ctx *f, hkm_logits_mode mode, float *logits) {
    const hkm_config *g = &f->m->cfg;
    int n = f->n, d = g->d_model;
    if (mode == HKM_LOGITS_NONE) return;
    int first = mode == HKM_LOGITS_LAST ? n - 1 : 0;
    int rows = n - first;
    rmsnorm(f->b.xn, f->b.x + (size_t)first * d, f->m->out_norm, rows, d, g->rms_eps);
    linear(logits, f->b.xn, f->m->lm_head, NULL, rows, g->vocab_size, d);
}

/* ---------------------------------------------------------------- checks */

static hkm_status check_shapes(const hkm_model *m, const hkm_kvcache *c, hkm_err *err) {
    const hkm_config *a = &m->cfg, *b = &c->cfg;
    if (a->n_layers != b->n_layers || a->n_kv_heads != b->n_kv_heads || a->head_dim != b->head_dim)
        return hkm_fail(err, HKM_ERR_ARG,
                        "hkm_forward_cpu: cache made for n_layers=%d n_kv_heads=%d head_dim=%d: "
                        "expected the model's %d/%d/%d", b->n_layers, b->n_kv_heads, b->head_dim,
                        a->n_layers, a->n_kv_heads, a->head_dim);
    if (a->n_heads <= 0 || a->n_kv_heads <= 0 || a->n_heads % a->n_kv_heads || a->head_dim % 2)
        return hkm_fail(err, HKM_ERR_ARG,
                        "hkm_forward_cpu: model n_heads=%d n_kv_heads=%d head_dim=%d: expected "
                        "n_heads a multiple of n_kv_heads and an even head_dim",
                        a->n_heads, a->n_kv_heads, a->head_dim);
    return HKM_OK;
}

static hkm_status check_capacity(const hkm_kvcache *c, int n, hkm_err *err) {
    size_t nh = (size_t)c->cfg.n_layers * (size_t)c->cfg.n_kv_heads;
    for (size_t i = 0; i < nh; i++)
        if (c->heads[i].len > c->capacity - n)
            return hkm_fail(err, HKM_ERR_ARG,
                            "hkm_forward_cpu: KV cache layer %zu head %zu holds %d entries; %d new "
                            "tokens need %lld, expected at most the capacity %d",
                            i / c->cfg.n_kv_heads, i % c->cfg.n_kv_heads, c->heads[i].len, n,
                            (long long)c->heads[i].len + n, c->capacity);
    if (c->next_pos > INT32_MAX - n)
        return hkm_fail(err, HKM_ERR_ARG, "hkm_forward_cpu: position %d + %d tokens: expected < 2^31",
                        c->next_pos, n);
    return HKM_OK;
}

static hkm_status check_capture(const hkm_capture *cap, int n, hkm_err *err) {
    if (!cap || !cap->fn) return HKM_OK;
    if (cap->n_rows < 0 || (cap->n_rows > 0 && !cap->rows))
        return hkm_fail(err, HKM_ERR_ARG,
                        "hkm_forward_cpu: capture n_rows=%d rows=%p: expected n_rows >= 0 and "
                        "rows non-NULL when n_rows > 0", cap->n_rows, (const void *)cap->rows);
    if (cap->stat_row1 > cap->stat_row0 && (cap->stat_row0 < 0 || cap->stat_row1 > n))
        return hkm_fail(err, HKM_ERR_ARG,
                        "hkm_forward_cpu: capture stat rows [%d, %d): expected within [0, %d)",
                        cap->stat_row0, cap->stat_row1, n);
    for (int r = 0; r < cap->n_rows; r++) {
        int prev = r ? cap->rows[r - 1] : -1;
        if (cap->rows[r] <= prev || cap->rows[r] >= n)
            return hkm_fail(err, HKM_ERR_ARG,
                            "hkm_forward_cpu: capture rows[%d]=%d: expected strictly increasing "
                            "indices in (%d, %d)", r, cap->rows[r], prev, n);
    }
    return HKM_OK;
}

static hkm_status check_args(const hkm_model *m, hkm_kvcache *c, const int32_t *ids, int n,
                             hkm_logits_mode mode, const float *logits, const hkm_capture *cap,
                             hkm_err *err) {
    if (!m || !c || !ids)
        return hkm_fail(err, HKM_ERR_ARG, "hkm_forward_cpu: model, cache and ids: expected non-NULL");
    if (n <= 0) return hkm_fail(err, HKM_ERR_ARG, "hkm_forward_cpu: n=%d: expected > 0", n);
    if (mode != HKM_LOGITS_NONE && mode != HKM_LOGITS_LAST && mode != HKM_LOGITS_ALL)
        return hkm_fail(err, HKM_ERR_ARG, "hkm_forward_cpu: logits mode %d: expected NONE, LAST or ALL",
                        (int)mode);
    if (mode != HKM_LOGITS_NONE && !logits)
        return hkm_fail(err, HKM_ERR_ARG, "hkm_forward_cpu: logits: expected a buffer for mode %d",
                        (int)mode);
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= m->cfg.vocab_size)
            return hkm_fail(err, HKM_ERR_ARG, "hkm_forward_cpu: ids[%d]=%d: expected 0..%d", i,
                            ids[i], m->cfg.vocab_size - 1);
    HKM_TRY(check_shapes(m, c, err));
    HKM_TRY(check_capacity(c, n, err));
    return check_capture(cap, n, err);
}

/* ---------------------------------------------------------------- forward */

hkm_status hkm_forward_cpu(const hkm_model *m, hkm_kvcache *cache, const int32_t *ids, int n,
                           hkm_logits_mode mode, float *logits, const hkm_capture *cap,
                           hkm_err *err) {
    HKM_TRY(check_args(m, cache, ids, n, mode, logits, cap, err));
    fwd_ctx f = {.m = m, .c = cache, .cap = (cap && cap->fn) ? cap : NULL, .n = n,
                 .pos0 = cache->next_pos};
    HKM_TRY(bufs_init(&f, err)); // nothing fails after this point
    const hkm_config *g = &m->cfg;
    size_t d = (size_t)g->d_model;
    for (int i = 0; i < n; i++)
        memcpy(f.b.x + i * d, m->tok_emb + (size_t)ids[i] * d, d * sizeof(float));
    rope_tables(g, f.pos0, n, f.b.cos, f.b.sin);
    for (int l = 0; l < g->n_layers; l++) {
        attention_block(&f, l);
        mlp_block(&f, l);
    }
    logits_out(&f, mode, logits);
    cache->next_pos += n;
    free(f.b.len_old);
    return HKM_OK;
}
