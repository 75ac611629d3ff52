/* CPU forward and KV cache properties on small random models built in memory
 * (Llama, Qwen2 biases, Qwen3 qk-norm, llama3 RoPE): batched prefill equals
 * token-by-token decode and chunked prefill; captured probabilities equal a
 * recomputation from captured q and cached k; after per-head eviction, logits
 * equal a naive double-precision reference that masks the evicted keys;
 * greedy generation follows the reference's argmax; bad arguments fail. */
#include "kvcache_internal.h"
#include "test_util.h"

#include <limits.h>
#include <math.h>
#include <string.h>

/* ---------------------------------------------------------------- models */

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;

static float frand(void) { // uniform in [-1, 1)
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (float)((g_rng >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

static int irand(int n) { return (int)((frand() + 1.0f) * 0.5f * n) % n; }

static float *fill(float **p, size_t n, float scale, float offset) {
    float *t = *p;
    for (size_t i = 0; i < n; i++) t[i] = offset + scale * frand();
    *p += n;
    return t;
}

static hkm_config tiny_cfg(hkm_arch arch) {
    hkm_config c = {.arch = arch, .n_layers = 3, .d_model = 32, .n_heads = 4, .n_kv_heads = 2,
                    .head_dim = 8, .d_ff = 48, .vocab_size = 61, .max_pos = 512,
                    .rms_eps = 1e-5f, .rope_theta = 10000.0f, .tie_embeddings = 0,
                    .bos_id = -1, .eos_id = -1};
    if (arch == HKM_ARCH_QWEN2) c.qkv_bias = 1;
    if (arch == HKM_ARCH_QWEN3) c.qk_norm = 1, c.head_dim = 16, c.n_heads = 6;
    return c;
}

static hkm_config llama3_cfg(void) {
    hkm_config c = tiny_cfg(HKM_ARCH_LLAMA);
    c.rope_type = HKM_ROPE_LLAMA3;
    c.rope_theta = 500000.0f;
    c.rope_factor = 8.0f;
    c.rope_low_freq_factor = 1.0f;
    c.rope_high_freq_factor = 4.0f;
    c.rope_orig_max_pos = 64; // small so the smoothing band covers some frequencies
    c.tie_embeddings = 1;
    c.n_kv_heads = 1;         // MQA
    return c;
}

/* Weights ~ U(-1,1)/sqrt(fan_in); q/k scaled up so attention is far from uniform. */
static hkm_model *make_model(hkm_config cfg) {
    hkm_model *m = calloc(1, sizeof *m);
    size_t d = cfg.d_model, qd = (size_t)cfg.n_heads * cfg.head_dim;
    size_t kvd = (size_t)cfg.n_kv_heads * cfg.head_dim, ff = cfg.d_ff, hd = cfg.head_dim;
    size_t per_layer = 2 * d + qd * d * 2 + kvd * d * 2 + qd + 2 * kvd + 2 * hd + 3 * ff * d;
    size_t total = 2 * (size_t)cfg.vocab_size * d + d + cfg.n_layers * per_layer;
    m->cfg = cfg;
    m->arena = calloc(total, sizeof(float));
    m->arena_floats = total;
    m->layers = calloc((size_t)cfg.n_layers, sizeof *m->layers);
    float *p = m->arena, s = 1.0f / sqrtf((float)d);
    m->tok_emb = fill(&p, (size_t)cfg.vocab_size * d, 1.0f, 0.0f);
    m->out_norm = fill(&p, d, 0.2f, 1.0f);
    m->lm_head = cfg.tie_embeddings ? m->tok_emb : fill(&p, (size_t)cfg.vocab_size * d, s, 0.0f);
    for (int l = 0; l < cfg.n_layers; l++) {
        hkm_layer *L = &m->layers[l];
        L->attn_norm = fill(&p, d, 0.2f, 1.0f);
        L->wq = fill(&p, qd * d, 3.0f * s, 0.0f);
        L->wk = fill(&p, kvd * d, 3.0f * s, 0.0f);
        L->wv = fill(&p, kvd * d, s, 0.0f);
        L->wo = fill(&p, d * qd, 1.0f / sqrtf((float)qd), 0.0f);
        if (cfg.qkv_bias) {
            L->bq = fill(&p, qd, 0.5f, 0.0f);
            L->bk = fill(&p, kvd, 0.5f, 0.0f);
            L->bv = fill(&p, kvd, 0.5f, 0.0f);
        }
        if (cfg.qk_norm) {
            L->q_norm = fill(&p, hd, 0.5f, 1.5f);
            L->k_norm = fill(&p, hd, 0.5f, 1.5f);
        }
        L->ffn_norm = fill(&p, d, 0.2f, 1.0f);
        L->w_gate = fill(&p, ff * d, s, 0.0f);
        L->w_up = fill(&p, ff * d, s, 0.0f);
        L->w_down = fill(&p, d * ff, 1.0f / sqrtf((float)ff), 0.0f);
    }
    return m;
}

static void free_model(hkm_model *m) {
    if (!m) return;
    free(m->arena);
    free(m->layers);
    free(m);
}

/* ---------------------------------------------------------------- naive reference */

/* Everything in double, plain loops, no BLAS, no cache: the whole sequence at
 * once. Key j is visible to query t iff j <= t and t < hide_from[(l*nkv+h)*T + j]
 * (hide_from NULL: nothing evicted). logits: (T, vocab). */
static void rms_d(double *y, const double *x, const float *w, int d, double eps) {
    double ss = 0;
    for (int i = 0; i < d; i++) ss += x[i] * x[i];
    double r = 1.0 / sqrt(ss / d + eps);
    for (int i = 0; i < d; i++) y[i] = x[i] * r * w[i];
}

static double inv_freq_d(const hkm_config *c, int j) {
    double inv = pow(c->rope_theta, -2.0 * j / c->head_dim);
    if (c->rope_type != HKM_ROPE_LLAMA3) return inv;
    double wl = 2 * M_PI / inv, old = c->rope_orig_max_pos;
    double low_wl = old / c->rope_low_freq_factor, high_wl = old / c->rope_high_freq_factor;
    if (wl < high_wl) return inv;
    if (wl > low_wl) return inv / c->rope_factor;
    double sm = (old / wl - c->rope_low_freq_factor) /
                (c->rope_high_freq_factor - c->rope_low_freq_factor);
    return (1 - sm) * inv / c->rope_factor + sm * inv;
}

static void rope_d(double *x, int pos, const hkm_config *c) {
    int half = c->head_dim / 2;
    for (int j = 0; j < half; j++) {
        double a = pos * inv_freq_d(c, j), x1 = x[j], x2 = x[j + half];
        x[j] = x1 * cos(a) - x2 * sin(a);
        x[j + half] = x2 * cos(a) + x1 * sin(a);
    }
}

/* y (out) = W (out, in) x (in) + b */
static void lin_d(double *y, const float *w, const float *b, const double *x, int out, int in) {
    for (int o = 0; o < out; o++) {
        double s = b ? b[o] : 0.0;
        for (int i = 0; i < in; i++) s += (double)w[(size_t)o * in + i] * x[i];
        y[o] = s;
    }
}

static void naive_attention(const hkm_config *c, int l, int T, const int *hide_from,
                            const double *q, const double *k, const double *v, double *att) {
    int nh = c->n_heads, nkv = c->n_kv_heads, hd = c->head_dim, qd = nh * hd, kvd = nkv * hd;
    double *s = calloc((size_t)T, sizeof *s);
    for (int t = 0; t < T; t++)
        for (int h = 0; h < nh; h++) {
            int g = h / (nh / nkv);
            double mx = -INFINITY, sum = 0;
            for (int j = 0; j <= t; j++) {
                int hidden = hide_from && t >= hide_from[((size_t)l * nkv + g) * T + j];
                s[j] = -INFINITY;
                if (hidden) continue;
                double dd = 0;
                for (int e = 0; e < hd; e++) dd += q[(size_t)t * qd + h * hd + e] * k[(size_t)j * kvd + g * hd + e];
                s[j] = dd / sqrt(hd);
                if (s[j] > mx) mx = s[j];
            }
            for (int j = 0; j <= t; j++) sum += s[j] == -INFINITY ? 0 : exp(s[j] - mx);
            for (int e = 0; e < hd; e++) {
                double o = 0;
                for (int j = 0; j <= t; j++)
                    if (s[j] != -INFINITY) o += exp(s[j] - mx) / sum * v[(size_t)j * kvd + g * hd + e];
                att[(size_t)t * qd + h * hd + e] = o;
            }
        }
    free(s);
}

static void naive_forward(const hkm_model *m, const int32_t *ids, int T, const int *hide_from,
                          double *logits) {
    const hkm_config *c = &m->cfg;
    int d = c->d_model, nh = c->n_heads, nkv = c->n_kv_heads, hd = c->head_dim, ff = c->d_ff;
    int qd = nh * hd, kvd = nkv * hd;
    double *x = calloc((size_t)T * d, 8), *xn = calloc(d, 8), *q = calloc((size_t)T * qd, 8);
    double *k = calloc((size_t)T * kvd, 8), *v = calloc((size_t)T * kvd, 8);
    double *att = calloc((size_t)T * qd, 8), *o = calloc(d, 8), *g = calloc(ff, 8), *u = calloc(ff, 8);
    for (int t = 0; t < T; t++)
        for (int i = 0; i < d; i++) x[(size_t)t * d + i] = m->tok_emb[(size_t)ids[t] * d + i];
    for (int l = 0; l < c->n_layers; l++) {
        const hkm_layer *L = &m->layers[l];
        for (int t = 0; t < T; t++) {
            rms_d(xn, x + (size_t)t * d, L->attn_norm, d, c->rms_eps);
            lin_d(q + (size_t)t * qd, L->wq, L->bq, xn, qd, d);
            lin_d(k + (size_t)t * kvd, L->wk, L->bk, xn, kvd, d);
            lin_d(v + (size_t)t * kvd, L->wv, L->bv, xn, kvd, d);
            for (int h = 0; h < nh; h++) {
                double *qh = q + (size_t)t * qd + h * hd;
                if (L->q_norm) rms_d(qh, qh, L->q_norm, hd, c->rms_eps);
                rope_d(qh, t, c);
            }
            for (int h = 0; h < nkv; h++) {
                double *kh = k + (size_t)t * kvd + h * hd;
                if (L->k_norm) rms_d(kh, kh, L->k_norm, hd, c->rms_eps);
                rope_d(kh, t, c);
            }
        }
        naive_attention(c, l, T, hide_from, q, k, v, att);
        for (int t = 0; t < T; t++) {
            double *xt = x + (size_t)t * d;
            lin_d(o, L->wo, NULL, att + (size_t)t * qd, d, qd);
            for (int i = 0; i < d; i++) xt[i] += o[i];
            rms_d(xn, xt, L->ffn_norm, d, c->rms_eps);
            lin_d(g, L->w_gate, NULL, xn, ff, d);
            lin_d(u, L->w_up, NULL, xn, ff, d);
            for (int i = 0; i < ff; i++) g[i] = g[i] / (1 + exp(-g[i])) * u[i];
            lin_d(o, L->w_down, NULL, g, d, ff);
            for (int i = 0; i < d; i++) xt[i] += o[i];
        }
    }
    for (int t = 0; t < T; t++) {
        rms_d(xn, x + (size_t)t * d, m->out_norm, d, c->rms_eps);
        lin_d(logits + (size_t)t * c->vocab_size, m->lm_head, NULL, xn, c->vocab_size, d);
    }
    free(x), free(xn), free(q), free(k), free(v), free(att), free(o), free(g), free(u);
}

/* ---------------------------------------------------------------- helpers */

static int32_t *random_ids(int n, int vocab) {
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)n);
    for (int i = 0; i < n; i++) ids[i] = irand(vocab);
    return ids;
}

/* max |a - b| / max |b| */
static double rel_diff_f(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num = fmax(num, fabs((double)a[i] - b[i]));
        den = fmax(den, fabs((double)b[i]));
    }
    return num / (den > 0 ? den : 1);
}

static double rel_diff_fd(const float *a, const double *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num = fmax(num, fabs(a[i] - b[i]));
        den = fmax(den, fabs(b[i]));
    }
    return num / (den > 0 ? den : 1);
}

static hkm_kvcache *new_cache(const hkm_model *m, int cap) {
    hkm_kvcache *c = NULL;
    hkm_err err = {{0}};
    hkm_status st = hkm_kvcache_create(&m->cfg, cap, &c, &err);
    CHECK(st == HKM_OK, "kvcache_create: %s", err.msg);
    return c;
}

static hkm_status fwd(const hkm_model *m, hkm_kvcache *c, const int32_t *ids, int n,
                      hkm_logits_mode mode, float *logits) {
    hkm_err err = {{0}};
    hkm_status st = hkm_forward_cpu(m, c, ids, n, mode, logits, NULL, &err);
    CHECK(st == HKM_OK, "forward n=%d: %s", n, err.msg);
    return st;
}

/* ---------------------------------------------------------------- properties */

/* (0) batched prefill matches the naive reference; (1) ... and token-by-token decode. */
static void test_prefill_vs_decode(const hkm_model *m, const char *name, int n) {
    int V = m->cfg.vocab_size;
    int32_t *ids = random_ids(n, V);
    float *all = malloc(sizeof(float) * (size_t)n * V), *step = malloc(sizeof(float) * (size_t)n * V);
    double *ref = malloc(sizeof(double) * (size_t)n * V);
    hkm_kvcache *c1 = new_cache(m, n), *c2 = new_cache(m, n);
    fwd(m, c1, ids, n, HKM_LOGITS_ALL, all);
    for (int i = 0; i < n; i++) fwd(m, c2, ids + i, 1, HKM_LOGITS_LAST, step + (size_t)i * V);
    naive_forward(m, ids, n, NULL, ref);
    double r1 = rel_diff_f(step, all, (size_t)n * V), r0 = rel_diff_fd(all, ref, (size_t)n * V);
    CHECK(r1 <= 1e-5, "%s n=%d: decode vs prefill rel diff %.3g > 1e-5", name, n, r1);
    CHECK(r0 <= 1e-4, "%s n=%d: prefill vs naive reference rel diff %.3g > 1e-4", name, n, r0);
    CHECK(hkm_kvcache_next_pos(c1) == n && hkm_kvcache_next_pos(c2) == n, "%s: next_pos", name);
    // LAST equals the last row of ALL.
    hkm_kvcache_reset(c1);
    CHECK(hkm_kvcache_len(c1, 0, 0) == 0 && hkm_kvcache_next_pos(c1) == 0, "%s: reset", name);
    float *last = malloc(sizeof(float) * V);
    fwd(m, c1, ids, n, HKM_LOGITS_LAST, last);
    double r2 = rel_diff_f(last, all + (size_t)(n - 1) * V, V);
    CHECK(r2 <= 1e-6, "%s: LAST vs ALL's last row rel diff %.3g", name, r2);
    printf("%s n=%d: decode/prefill %.2g, prefill/naive %.2g\n", name, n, r1, r0);
    hkm_kvcache_free(c1), hkm_kvcache_free(c2);
    free(ids), free(all), free(step), free(ref), free(last);
}

/* (2) chunked prefill (chunks of `chunk`) equals one full prefill, logits and cache. */
static void test_chunked(const hkm_model *m, const char *name, int n, int chunk) {
    int V = m->cfg.vocab_size, hd = m->cfg.head_dim;
    int32_t *ids = random_ids(n, V);
    float *full = malloc(sizeof(float) * (size_t)n * V), *ch = malloc(sizeof(float) * (size_t)n * V);
    hkm_kvcache *c1 = new_cache(m, n), *c2 = new_cache(m, n);
    fwd(m, c1, ids, n, HKM_LOGITS_ALL, full);
    for (int i = 0; i < n; i += chunk) {
        int k = n - i < chunk ? n - i : chunk;
        fwd(m, c2, ids + i, k, HKM_LOGITS_ALL, ch + (size_t)i * V);
    }
    double r = rel_diff_f(ch, full, (size_t)n * V);
    CHECK(r <= 1e-5, "%s chunk=%d: logits rel diff %.3g > 1e-5", name, chunk, r);
    for (int l = 0; l < m->cfg.n_layers; l++)
        for (int h = 0; h < m->cfg.n_kv_heads; h++) {
            const float *k1, *k2, *v1, *v2;
            const int32_t *p1, *p2;
            hkm_kvcache_head(c1, l, h, &k1, &v1, &p1);
            hkm_kvcache_head(c2, l, h, &k2, &v2, &p2);
            CHECK(hkm_kvcache_len(c2, l, h) == n, "%s: len after chunks", name);
            double rk = rel_diff_f(k2, k1, (size_t)n * hd), rv = rel_diff_f(v2, v1, (size_t)n * hd);
            CHECK(rk <= 1e-5 && rv <= 1e-5, "%s chunk=%d layer %d head %d: cache k %.3g v %.3g",
                  name, chunk, l, h, rk, rv);
            for (int i = 0; i < n; i++) CHECK(p1[i] == i && p2[i] == i, "%s: pos[%d]", name, i);
        }
    hkm_kvcache_free(c1), hkm_kvcache_free(c2);
    free(ids), free(full), free(ch);
}

/* Random per-head eviction: keeps a different number of entries in each head
 * (at least one); records hide_from for the naive reference at time t_now. */
static void evict_random(const hkm_model *m, hkm_kvcache *c, int T, int t_now, int *hide_from) {
    int nkv = m->cfg.n_kv_heads, hd = m->cfg.head_dim;
    for (int l = 0; l < m->cfg.n_layers; l++)
        for (int h = 0; h < nkv; h++) {
            int len = hkm_kvcache_len(c, l, h), n_keep = 0;
            int32_t *keep = malloc(sizeof(int32_t) * (size_t)len);
            const float *k, *v;
            const int32_t *pos;
            hkm_kvcache_head(c, l, h, &k, &v, &pos);
            float *k0 = malloc(sizeof(float) * (size_t)len * hd);
            int32_t *p0 = malloc(sizeof(int32_t) * (size_t)len);
            memcpy(k0, k, sizeof(float) * (size_t)len * hd);
            memcpy(p0, pos, sizeof(int32_t) * (size_t)len);
            int keep_prob = 30 + 20 * ((l * nkv + h) % 3); // 30..70 %
            for (int i = 0; i < len; i++) {
                if (irand(100) < keep_prob || (i == len - 1 && n_keep == 0)) keep[n_keep++] = i;
                else hide_from[((size_t)l * nkv + h) * T + p0[i]] = t_now;
            }
            hkm_err err = {{0}};
            hkm_status st = hkm_kvcache_keep(c, l, h, keep, n_keep, &err);
            CHECK(st == HKM_OK, "keep: %s", err.msg);
            CHECK(hkm_kvcache_len(c, l, h) == n_keep, "len after keep");
            hkm_kvcache_head(c, l, h, &k, &v, &pos);
            for (int i = 0; i < n_keep; i++) {
                CHECK(pos[i] == p0[keep[i]], "kept pos[%d]=%d expected %d", i, pos[i], p0[keep[i]]);
                CHECK(!memcmp(k + (size_t)i * hd, k0 + (size_t)keep[i] * hd, sizeof(float) * hd),
                      "kept key row %d moved intact", i);
            }
            free(keep), free(k0), free(p0);
        }
}

/* (4) per-head eviction, then chunks and decode steps, equal the naive masked reference. */
static void test_eviction(const hkm_model *m, const char *name) {
    int V = m->cfg.vocab_size, nkv = m->cfg.n_kv_heads;
    const int steps[] = {20, 1, 1, 4, 1, 12, 1, 1}; // tokens per forward call
    int n_steps = (int)(sizeof steps / sizeof *steps), T = 0;
    for (int i = 0; i < n_steps; i++) T += steps[i];
    int32_t *ids = random_ids(T, V);
    int *hide = malloc(sizeof(int) * (size_t)m->cfg.n_layers * nkv * T);
    for (size_t i = 0; i < (size_t)m->cfg.n_layers * nkv * T; i++) hide[i] = INT_MAX;
    float *ours = malloc(sizeof(float) * (size_t)T * V);
    double *ref = malloc(sizeof(double) * (size_t)T * V);
    hkm_kvcache *c = new_cache(m, T);
    int t = 0;
    for (int s = 0; s < n_steps; s++) {
        if (s > 0 && s % 2 == 0) evict_random(m, c, T, t, hide); // evict before some calls
        fwd(m, c, ids + t, steps[s], HKM_LOGITS_ALL, ours + (size_t)t * V);
        t += steps[s];
    }
    int differ = 0;
    for (int l = 0; l < m->cfg.n_layers; l++)
        for (int h = 1; h < nkv; h++) differ |= hkm_kvcache_len(c, l, h) != hkm_kvcache_len(c, l, 0);
    CHECK(nkv == 1 || differ, "%s: heads should hold different counts after eviction", name);
    naive_forward(m, ids, T, hide, ref);
    double r = rel_diff_fd(ours, ref, (size_t)T * V);
    CHECK(r <= 1e-4, "%s: evicted-cache logits vs naive masked reference rel diff %.3g", name, r);
    // Sanity: the reference without masking differs, so the test can see eviction.
    double *ref0 = malloc(sizeof(double) * (size_t)T * V);
    naive_forward(m, ids, T, NULL, ref0);
    double r0 = rel_diff_fd(ours + (size_t)(T - 1) * V, ref0 + (size_t)(T - 1) * V, V);
    CHECK(r0 > 1e-3, "%s: eviction had no visible effect (%.3g)", name, r0);
    printf("%s eviction: ours vs masked reference %.2g (vs unmasked %.2g)\n", name, r, r0);
    hkm_kvcache_free(c);
    free(ids), free(hide), free(ours), free(ref), free(ref0);
}

/* (3) Capture: what one call exposes, copied out of the callback. */
typedef struct {
    const hkm_model *m;
    int calls;
    int n, n_rows, pos0;
    float *q[8], *k[8], *probs[8], *hidden0;
    int n_keys[8][8], stride[8];
} cap_store;

static float *dup_f(const float *p, size_t n) {
    float *d = malloc(sizeof(float) * n);
    memcpy(d, p, sizeof(float) * n);
    return d;
}

static void on_layer(void *user, const hkm_layer_capture *lc) {
    cap_store *s = user;
    const hkm_config *c = &s->m->cfg;
    CHECK(lc->layer == s->calls, "capture layer order: got %d expected %d", lc->layer, s->calls);
    s->calls++;
    int l = lc->layer;
    s->n = lc->n, s->n_rows = lc->n_rows, s->pos0 = lc->pos0, s->stride[l] = lc->n_keys_max;
    CHECK(lc->hidden && lc->q && lc->k && lc->v && lc->probs, "capture views present");
    if (!lc->q || !lc->probs) return;
    if (l == 0) s->hidden0 = dup_f(lc->hidden, (size_t)lc->n * c->d_model);
    s->q[l] = dup_f(lc->q, (size_t)c->n_heads * lc->n * c->head_dim);
    s->k[l] = dup_f(lc->k, (size_t)c->n_kv_heads * lc->n * c->head_dim);
    s->probs[l] = dup_f(lc->probs, (size_t)c->n_heads * lc->n_rows * lc->n_keys_max);
    for (int h = 0; h < c->n_kv_heads; h++) s->n_keys[l][h] = lc->n_keys[h];
}

static void check_capture(const hkm_model *m, hkm_kvcache *c, cap_store *s, const int *rows,
                          const int32_t *ids, const char *name) {
    const hkm_config *g = &m->cfg;
    int hd = g->head_dim, n = s->n, group = g->n_heads / g->n_kv_heads;
    CHECK(s->calls == g->n_layers, "%s: capture calls %d", name, s->calls);
    for (int i = 0; i < n && s->hidden0; i++)
        CHECK(!memcmp(s->hidden0 + (size_t)i * g->d_model, m->tok_emb + (size_t)ids[i] * g->d_model,
                      sizeof(float) * g->d_model), "%s: layer-0 hidden = embedding", name);
    double worst = 0, worst_sum = 0;
    for (int l = 0; l < g->n_layers && s->probs[l]; l++)
        for (int h = 0; h < g->n_heads; h++) {
            int kvh = h / group, nk = s->n_keys[l][kvh], lo = nk - n;
            const float *k;
            hkm_kvcache_head(c, l, kvh, &k, NULL, NULL);
            CHECK(nk == hkm_kvcache_len(c, l, kvh), "%s: n_keys = cache len", name);
            // Captured new k = the cache's last n rows.
            CHECK(!memcmp(s->k[l] + (size_t)kvh * n * hd, k + (size_t)lo * hd, sizeof(float) * n * hd),
                  "%s: captured k = cached k", name);
            for (int r = 0; r < s->n_rows; r++) {
                const float *p = s->probs[l] + ((size_t)h * s->n_rows + r) * s->stride[l];
                const float *q = s->q[l] + ((size_t)h * n + rows[r]) * hd;
                int nv = lo + rows[r] + 1;
                double mx = -INFINITY, sum = 0, psum = 0, sc[512];
                for (int j = 0; j < nv; j++) {
                    double dd = 0;
                    for (int e = 0; e < hd; e++) dd += (double)q[e] * k[(size_t)j * hd + e];
                    sc[j] = dd / sqrt(hd);
                    mx = fmax(mx, sc[j]);
                }
                for (int j = 0; j < nv; j++) sum += exp(sc[j] - mx);
                for (int j = 0; j < s->stride[l]; j++) {
                    double want = j < nv ? exp(sc[j] - mx) / sum : 0.0;
                    worst = fmax(worst, fabs(p[j] - want));
                    psum += p[j];
                }
                worst_sum = fmax(worst_sum, fabs(psum - 1.0));
            }
        }
    CHECK(worst <= 1e-5, "%s: captured probs vs recomputation max abs diff %.3g", name, worst);
    CHECK(worst_sum <= 1e-5, "%s: captured prob rows sum to 1 within %.3g", name, worst_sum);
    for (int l = 0; l < g->n_layers; l++) free(s->q[l]), free(s->k[l]), free(s->probs[l]);
    free(s->hidden0);
    memset(s->q, 0, sizeof s->q), memset(s->k, 0, sizeof s->k), memset(s->probs, 0, sizeof s->probs);
    s->hidden0 = NULL;
}

static void test_capture(const hkm_model *m, const char *name) {
    int V = m->cfg.vocab_size, T = 40;
    int32_t *ids = random_ids(T, V);
    int *hide = malloc(sizeof(int) * (size_t)m->cfg.n_layers * m->cfg.n_kv_heads * T);
    hkm_kvcache *c = new_cache(m, T);
    fwd(m, c, ids, 15, HKM_LOGITS_NONE, NULL);
    evict_random(m, c, T, 15, hide);
    // A GEMM-path chunk and a row-path chunk, each with some captured rows.
    const int rows_a[] = {0, 3, 9, 11}, rows_b[] = {1, 2};
    const int *rows[] = {rows_a, rows_b};
    int sizes[] = {12, 3}, n_rows[] = {4, 2}, t = 15;
    for (int i = 0; i < 2; i++) {
        cap_store s = {.m = m};
        hkm_capture cap = {.fn = on_layer, .user = &s, .want_hidden = 1, .want_qkv = 1,
                           .n_rows = n_rows[i], .rows = rows[i]};
        hkm_err err = {{0}};
        hkm_status st = hkm_forward_cpu(m, c, ids + t, sizes[i], HKM_LOGITS_NONE, NULL, &cap, &err);
        CHECK(st == HKM_OK, "%s capture forward: %s", name, err.msg);
        CHECK(s.pos0 == t && s.n == sizes[i], "%s: capture pos0/n", name);
        check_capture(m, c, &s, rows[i], ids + t, name);
        t += sizes[i];
    }
    // Capturing must not change the result.
    hkm_kvcache *c1 = new_cache(m, T), *c2 = new_cache(m, T);
    float *l1 = malloc(sizeof(float) * V * 10), *l2 = malloc(sizeof(float) * V * 10);
    cap_store s = {.m = m};
    hkm_capture cap = {.fn = on_layer, .user = &s, .want_hidden = 1, .want_qkv = 1, .n_rows = 2,
                       .rows = rows_b};
    hkm_err err = {{0}};
    hkm_forward_cpu(m, c1, ids, 10, HKM_LOGITS_ALL, l1, &cap, &err);
    fwd(m, c2, ids, 10, HKM_LOGITS_ALL, l2);
    CHECK(!memcmp(l1, l2, sizeof(float) * V * 10), "%s: capture changes logits", name);
    check_capture(m, c1, &s, rows_b, ids, name);
    hkm_kvcache_free(c), hkm_kvcache_free(c1), hkm_kvcache_free(c2);
    free(ids), free(hide), free(l1), free(l2);
}

/* (3b) Column statistics over a row range equal the max/sum of the captured
 * probability rows, with or without rows captured, on an evicted cache. */
typedef struct {
    const hkm_model *m;
    int stride[8], n_rows;
    float *probs[8], *cmax[8], *csum[8];
} stat_store;

static void on_stats(void *user, const hkm_layer_capture *lc) {
    stat_store *s = user;
    size_t hs = (size_t)s->m->cfg.n_heads * lc->n_keys_max;
    CHECK(lc->colmax && lc->colsum, "stats views present");
    if (!lc->colmax) return;
    s->stride[lc->layer] = lc->n_keys_max;
    s->cmax[lc->layer] = dup_f(lc->colmax, hs);
    s->csum[lc->layer] = dup_f(lc->colsum, hs);
    if (lc->probs) s->probs[lc->layer] = dup_f(lc->probs, hs * lc->n_rows);
}

static void test_capture_stats(const hkm_model *m, const char *name) {
    const hkm_config *g = &m->cfg;
    int V = g->vocab_size, T = 40, n = 12, r0 = 3, r1 = 10, rows[12];
    for (int i = 0; i < n; i++) rows[i] = i;
    int32_t *ids = random_ids(T, V);
    int *hide = malloc(sizeof(int) * (size_t)g->n_layers * g->n_kv_heads * T);
    hkm_kvcache *c = new_cache(m, T);
    fwd(m, c, ids, 15, HKM_LOGITS_NONE, NULL);
    evict_random(m, c, T, 15, hide);
    stat_store a = {.m = m}, b = {.m = m};
    hkm_capture ca = {.fn = on_stats, .user = &a, .stat_row0 = r0, .stat_row1 = r1};
    hkm_capture cb = {.fn = on_stats, .user = &b, .n_rows = n, .rows = rows, .stat_row0 = r0, .stat_row1 = r1};
    hkm_err err = {{0}};
    CHECK(hkm_forward_cpu(m, c, ids + 15, n, HKM_LOGITS_NONE, NULL, &ca, &err) == HKM_OK, "%s stats: %s", name, err.msg);
    CHECK(hkm_kvcache_rewind(c, 15, &err) == HKM_OK, "%s rewind: %s", name, err.msg);
    CHECK(hkm_forward_cpu(m, c, ids + 15, n, HKM_LOGITS_NONE, NULL, &cb, &err) == HKM_OK, "%s stats+probs: %s", name, err.msg);
    double worst = 0;
    int same = 1, layers = 0;
    for (int l = 0; l < g->n_layers; l++) layers += b.probs[l] && a.cmax[l] && b.cmax[l];
    CHECK(layers == g->n_layers, "%s: statistics of %d layers: expected %d", name, layers, g->n_layers);
    for (int l = 0; l < g->n_layers && layers == g->n_layers; l++) {
        size_t hs = (size_t)g->n_heads * b.stride[l];
        same &= a.stride[l] == b.stride[l] && !memcmp(a.cmax[l], b.cmax[l], hs * sizeof(float)) &&
                !memcmp(a.csum[l], b.csum[l], hs * sizeof(float));
        for (int h = 0; h < g->n_heads; h++)
            for (int j = 0; j < b.stride[l]; j++) {
                double mx = 0, sum = 0;
                for (int r = r0; r < r1; r++) {
                    double p = b.probs[l][((size_t)h * n + r) * b.stride[l] + j];
                    mx = fmax(mx, p);
                    sum += p;
                }
                worst = fmax(worst, fabs(b.cmax[l][(size_t)h * b.stride[l] + j] - mx));
                worst = fmax(worst, fabs(b.csum[l][(size_t)h * b.stride[l] + j] - sum));
            }
    }
    CHECK(same, "%s: statistics with and without captured rows differ", name);
    CHECK(worst <= 1e-6, "%s: colmax/colsum vs reductions of captured probs: max abs diff %.3g", name, worst);
    hkm_capture bad = {.fn = on_stats, .user = &a, .stat_row0 = 2, .stat_row1 = n + 1};
    CHECK(hkm_forward_cpu(m, c, ids, n, HKM_LOGITS_NONE, NULL, &bad, &err) == HKM_ERR_ARG,
          "%s: stat rows beyond the call accepted", name);
    for (int l = 0; l < 8; l++) free(a.cmax[l]), free(a.csum[l]), free(b.cmax[l]), free(b.csum[l]), free(b.probs[l]);
    hkm_kvcache_free(c);
    free(ids), free(hide);
}

/* Greedy generation = argmax of the naive reference, step by step; EOS stops. */
static void test_generate(const hkm_model *m, const char *name) {
    int V = m->cfg.vocab_size, n_prompt = 9, max_new = 6;
    int32_t seq[32], out[8];
    int32_t *p = random_ids(n_prompt, V);
    memcpy(seq, p, sizeof(int32_t) * n_prompt);
    int n_out = -1;
    hkm_err err = {{0}};
    hkm_status st = hkm_generate_greedy(m, p, n_prompt, max_new, -1, out, &n_out, &err);
    CHECK(st == HKM_OK && n_out == max_new, "%s generate: %s (n_out %d)", name, err.msg, n_out);
    double *ref = malloc(sizeof(double) * (size_t)(n_prompt + max_new) * V);
    for (int i = 0; i < max_new && n_out == max_new; i++) {
        naive_forward(m, seq, n_prompt + i, NULL, ref);
        const double *last = ref + (size_t)(n_prompt + i - 1) * V;
        int best = 0;
        for (int j = 1; j < V; j++) best = last[j] > last[best] ? j : best;
        CHECK(out[i] == best, "%s generate step %d: got %d, reference argmax %d", name, i, out[i], best);
        seq[n_prompt + i] = out[i];
    }
    // EOS = the third token: generation stops right after its first occurrence.
    int32_t eos = out[2], out2[8];
    int first = 0;
    while (out[first] != eos) first++;
    st = hkm_generate_greedy(m, p, n_prompt, max_new, eos, out2, &n_out, &err);
    CHECK(st == HKM_OK && n_out == first + 1 && out2[first] == eos, "%s: EOS stop n_out %d", name, n_out);
    free(p), free(ref);
}

/* (5) Bad arguments give errors and leave the cache usable. */
static void test_bad_args(const hkm_model *m) {
    hkm_err err = {{0}};
    int32_t ids[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    float logits[64 * 12];
    hkm_kvcache *c = NULL;
    CHECK(hkm_kvcache_create(&m->cfg, 0, &c, &err) == HKM_ERR_ARG && !c, "capacity 0");
    CHECK(hkm_kvcache_create(NULL, 4, &c, &err) == HKM_ERR_ARG, "NULL cfg");
    c = new_cache(m, 10);
    CHECK(hkm_forward_cpu(m, c, ids, 11, HKM_LOGITS_LAST, logits, NULL, &err) == HKM_ERR_ARG,
          "overflow on an empty cache");
    CHECK(strstr(err.msg, "11") && strstr(err.msg, "10"), "overflow message names needed 11 and "
          "capacity 10: %s", err.msg);
    fwd(m, c, ids, 8, HKM_LOGITS_NONE, NULL);
    err.msg[0] = 0;
    CHECK(hkm_forward_cpu(m, c, ids, 3, HKM_LOGITS_LAST, logits, NULL, &err) == HKM_ERR_ARG,
          "overflow after 8 tokens");
    CHECK(strstr(err.msg, "8") && strstr(err.msg, "11") && strstr(err.msg, "10"), "message: %s", err.msg);
    CHECK(hkm_kvcache_next_pos(c) == 8 && hkm_kvcache_len(c, 0, 0) == 8, "failed call left cache as is");
    int32_t bad_id = m->cfg.vocab_size, neg = -1;
    CHECK(hkm_forward_cpu(m, c, &bad_id, 1, HKM_LOGITS_LAST, logits, NULL, &err) == HKM_ERR_ARG, "id >= vocab");
    CHECK(hkm_forward_cpu(m, c, &neg, 1, HKM_LOGITS_LAST, logits, NULL, &err) == HKM_ERR_ARG, "id < 0");
    CHECK(hkm_forward_cpu(m, c, ids, 0, HKM_LOGITS_LAST, logits, NULL, &err) == HKM_ERR_ARG, "n = 0");
    CHECK(hkm_forward_cpu(m, c, ids, 1, HKM_LOGITS_LAST, NULL, NULL, &err) == HKM_ERR_ARG, "NULL logits");
    CHECK(hkm_forward_cpu(m, c, ids, 1, (hkm_logits_mode)7, logits, NULL, &err) == HKM_ERR_ARG, "bad mode");
    cap_store s = {.m = m};
    int bad_rows[] = {1, 1};
    hkm_capture cap = {.fn = on_layer, .user = &s, .n_rows = 2, .rows = bad_rows};
    CHECK(hkm_forward_cpu(m, c, ids, 2, HKM_LOGITS_LAST, logits, &cap, &err) == HKM_ERR_ARG,
          "repeated capture rows");
    int out_rows[] = {2};
    cap.rows = out_rows, cap.n_rows = 1;
    CHECK(hkm_forward_cpu(m, c, ids, 2, HKM_LOGITS_LAST, logits, &cap, &err) == HKM_ERR_ARG,
          "capture row beyond n");
    CHECK(s.calls == 0 && hkm_kvcache_next_pos(c) == 8, "rejected calls did nothing");
    // keep: indices must be strictly increasing and < len.
    int32_t k_dup[] = {0, 2, 2}, k_dec[] = {3, 1}, k_big[] = {0, 8}, k_neg[] = {-1, 2};
    CHECK(hkm_kvcache_keep(c, 0, 0, k_dup, 3, &err) == HKM_ERR_ARG, "repeated keep index");
    CHECK(hkm_kvcache_keep(c, 0, 0, k_dec, 2, &err) == HKM_ERR_ARG, "decreasing keep");
    CHECK(hkm_kvcache_keep(c, 0, 0, k_big, 2, &err) == HKM_ERR_ARG && strstr(err.msg, "8"),
          "keep index = len: %s", err.msg);
    CHECK(hkm_kvcache_keep(c, 0, 0, k_neg, 2, &err) == HKM_ERR_ARG, "negative keep");
    CHECK(hkm_kvcache_keep(c, 0, 0, k_dup, 9, &err) == HKM_ERR_ARG, "n_keep > len");
    CHECK(hkm_kvcache_keep(c, 0, 0, NULL, 2, &err) == HKM_ERR_ARG, "NULL keep");
    CHECK(hkm_kvcache_keep(c, m->cfg.n_layers, 0, k_dup, 1, &err) == HKM_ERR_ARG, "bad layer");
    CHECK(hkm_kvcache_keep(c, 0, m->cfg.n_kv_heads, k_dup, 1, &err) == HKM_ERR_ARG, "bad head");
    CHECK(hkm_kvcache_len(c, 0, 0) == 8, "rejected keeps changed nothing");
    CHECK(hkm_kvcache_keep(c, 0, 0, NULL, 0, &err) == HKM_OK && hkm_kvcache_len(c, 0, 0) == 0,
          "keep nothing empties the head");
    CHECK(hkm_kvcache_len(c, -1, 0) == -1, "len of a bad head");
    // A cache shaped for another model is refused.
    hkm_config other = m->cfg;
    other.n_layers += 1;
    hkm_kvcache *c2 = NULL;
    hkm_kvcache_create(&other, 10, &c2, &err);
    CHECK(hkm_forward_cpu(m, c2, ids, 1, HKM_LOGITS_LAST, logits, NULL, &err) == HKM_ERR_ARG,
          "cache of another shape");
    int n_out = 0;
    CHECK(hkm_generate_greedy(m, ids, 0, 4, -1, ids, &n_out, &err) == HKM_ERR_ARG, "empty prompt");
    CHECK(hkm_generate_greedy(m, ids, 2, 4, -1, NULL, &n_out, &err) == HKM_ERR_ARG, "NULL out");
    hkm_kvcache_free(c), hkm_kvcache_free(c2);
    hkm_kvcache_free(NULL);
}

/* Rewinding past a teacher-forced window leaves the cache as if only the
 * context had been seen: the next token's logits equal those of a cache that
 * never saw the window. Bad positions are refused. */
static void test_rewind(const hkm_model *m, const char *name) {
    int V = m->cfg.vocab_size, n = 20, extra = 7;
    int32_t *ids = random_ids(n + extra + 1, V);
    float *a = malloc(sizeof(float) * V), *b = malloc(sizeof(float) * V);
    hkm_kvcache *c1 = new_cache(m, n + extra + 1), *c2 = new_cache(m, n + 1);
    hkm_err err = {{0}};
    fwd(m, c1, ids, n, HKM_LOGITS_NONE, NULL);
    fwd(m, c1, ids + n, extra, HKM_LOGITS_NONE, NULL);
    CHECK(hkm_kvcache_rewind(c1, n + extra + 1, &err) == HKM_ERR_ARG, "%s: rewind past the end", name);
    CHECK(hkm_kvcache_rewind(c1, -1, &err) == HKM_ERR_ARG, "%s: rewind to -1", name);
    CHECK(hkm_kvcache_rewind(c1, n, &err) == HKM_OK, "%s: rewind: %s", name, err.msg);
    CHECK(hkm_kvcache_next_pos(c1) == n && hkm_kvcache_len(c1, 0, 0) == n, "%s: rewind state", name);
    fwd(m, c1, ids + n + extra, 1, HKM_LOGITS_LAST, a);
    fwd(m, c2, ids, n, HKM_LOGITS_NONE, NULL);
    fwd(m, c2, ids + n + extra, 1, HKM_LOGITS_LAST, b);
    double r = rel_diff_f(a, b, V);
    CHECK(r <= 1e-6, "%s: logits after rewind rel diff %.3g", name, r);
    hkm_kvcache_free(c1), hkm_kvcache_free(c2);
    free(ids), free(a), free(b);
}

int main(void) {
    struct { const char *name; hkm_config cfg; } models[] = {
        {"llama", tiny_cfg(HKM_ARCH_LLAMA)},
        {"qwen2", tiny_cfg(HKM_ARCH_QWEN2)},
        {"qwen3", tiny_cfg(HKM_ARCH_QWEN3)},
        {"llama3-rope", llama3_cfg()},
    };
    for (size_t i = 0; i < sizeof models / sizeof *models; i++) {
        hkm_model *m = make_model(models[i].cfg);
        const char *name = models[i].name;
        test_prefill_vs_decode(m, name, 5);
        test_prefill_vs_decode(m, name, 140); // several GEMM row blocks
        test_chunked(m, name, 37, 3);
        test_chunked(m, name, 37, 5);
        test_chunked(m, name, 150, 13);
        test_capture(m, name);
        test_capture_stats(m, name);
        test_eviction(m, name);
        test_generate(m, name);
        test_rewind(m, name);
        if (i == 0) test_bad_args(m);
        free_model(m);
    }
    return test_summary("test_forward");
}
