/* End to end: the GPU forward against the CPU engine (hkm_forward_cpu) on
 * small random models of every supported kind, after chunked prefill and
 * per-head eviction, with capture; then the tiny HF checkpoints and the
 * default model (same greedy continuation).
 * Tolerance: bf16 weights give ~0.4% relative error per product; over a few
 * layers logits stay within 2e-2 of max |logit| (documented bound), and the
 * argmax must agree on >= 90% of positions (ties within that bound excepted). */
#include <math.h>
#include <string.h>

#include "hkg_host.h" /* graph_replays: is decode really replayed? */
#include "hkm_internal.h"
#include "hubkv_cuda.h"
#include "test_cuda_util.h"

#define LOGIT_TOL 2e-2f

/* ---------------------------------------------------------------- random model */

typedef struct {
    int n_layers, d, H, KV, hd, ff, V;
} shape;
/* the capture checks below assume this one (hidden 128, head_dim 32) */
static const shape SHAPE_SMALL = {3, 128, 4, 2, 32, 256, 300};

static hkm_model *random_model_shape(hkm_arch arch, hkm_rope_type rope, int tied,
                                     const shape *sh) {
    hkm_model *m = calloc(1, sizeof *m);
    hkm_config *c = &m->cfg;
    c->arch = arch;
    c->n_layers = sh->n_layers, c->d_model = sh->d, c->n_heads = sh->H;
    c->n_kv_heads = sh->KV, c->head_dim = sh->hd, c->d_ff = sh->ff, c->vocab_size = sh->V;
    c->max_pos = 8192, c->rms_eps = 1e-5f;
    c->rope_theta = 10000.0f, c->rope_type = rope, c->rope_factor = 8.0f;
    c->rope_low_freq_factor = 1.0f, c->rope_high_freq_factor = 4.0f, c->rope_orig_max_pos = 64;
    c->tie_embeddings = tied, c->qkv_bias = arch == HKM_ARCH_QWEN2, c->qk_norm = arch == HKM_ARCH_QWEN3;
    c->bos_id = c->eos_id = -1;
    size_t d = c->d_model, hd = c->head_dim, qd = c->n_heads * hd, kd = c->n_kv_heads * hd;
    size_t ff = c->d_ff, V = c->vocab_size;
    size_t per = 2 * qd * d + 2 * kd * d + 3 * ff * d + 2 * d + qd + 2 * kd + 2 * hd;
    m->arena_floats = 2 * V * d + d + c->n_layers * per;
    m->arena = malloc(m->arena_floats * 4);
    m->layers = calloc(c->n_layers, sizeof *m->layers);
    float *p = m->arena;
#define TAKE(ptr, cnt, amp, base)                                                      \
    do {                                                                               \
        (ptr) = p;                                                                     \
        fill(p, (cnt), (amp));                                                         \
        for (size_t i_ = 0; i_ < (size_t)(cnt); i_++) p[i_] += (base);                 \
        p += (cnt);                                                                    \
    } while (0)
    TAKE(m->tok_emb, V * d, 1.0f, 0.0f);
    if (tied) {
        m->lm_head = m->tok_emb;
    } else {
        TAKE(m->lm_head, V * d, 0.2f, 0.0f);
    }
    TAKE(m->out_norm, d, 0.2f, 1.0f);
    for (int l = 0; l < c->n_layers; l++) {
        hkm_layer *L = &m->layers[l];
        float a = 1.7f / sqrtf((float)d); /* keeps activations O(1) */
        float a_down = 1.6f / sqrtf((float)ff);
        TAKE(L->attn_norm, d, 0.2f, 1.0f);
        TAKE(L->wq, qd * d, a, 0);
        TAKE(L->wk, kd * d, a, 0);
        TAKE(L->wv, kd * d, a, 0);
        TAKE(L->wo, d * qd, a, 0);
        TAKE(L->ffn_norm, d, 0.2f, 1.0f);
        TAKE(L->w_gate, ff * d, a, 0);
        TAKE(L->w_up, ff * d, a, 0);
        TAKE(L->w_down, d * ff, a_down, 0);
        if (c->qkv_bias) {
            TAKE(L->bq, qd, 0.5f, 0);
            TAKE(L->bk, kd, 0.5f, 0);
            TAKE(L->bv, kd, 0.5f, 0);
        }
        if (c->qk_norm) {
            TAKE(L->q_norm, hd, 0.2f, 1.0f);
            TAKE(L->k_norm, hd, 0.2f, 1.0f);
        }
    }
#undef TAKE
    return m;
}

static hkm_model *random_model(hkm_arch arch, hkm_rope_type rope, int tied) {
    return random_model_shape(arch, rope, tied, &SHAPE_SMALL);
}

/* ---------------------------------------------------------------- comparisons */

/* rows x vocab logits: max error vs max |ref|, argmax agreement. */
static void compare_logits(const char *what, const float *got, const float *ref, int rows, int V) {
    float mx = 0, err = 0;
    int same = 0, nan = 0;
    for (int r = 0; r < rows; r++) {
        int ag = 0, ar = 0;
        for (int i = 0; i < V; i++) {
            float g = got[(size_t)r * V + i], e = ref[(size_t)r * V + i];
            if (isnan(g)) nan++;
            if (fabsf(e) > mx) mx = fabsf(e);
            if (fabsf(g - e) > err) err = fabsf(g - e);
            if (g > got[(size_t)r * V + ag]) ag = i;
            if (e > ref[(size_t)r * V + ar]) ar = i;
        }
        /* a near-tie in the reference may flip */
        float gap = ref[(size_t)r * V + ar] - ref[(size_t)r * V + ag];
        same += ag == ar || gap <= LOGIT_TOL * mx;
    }
    int ok = !nan && err <= LOGIT_TOL * mx && same * 10 >= rows * 9;
    CHECK(ok, "%s: max err %g vs max|logit| %g (tol %g), argmax same %d/%d, NaN %d", what, err,
          mx, LOGIT_TOL, same, rows, nan);
    printf("%s %s: rel err %.3g, argmax agree %d/%d\n", ok ? "PASS" : "FAIL", what,
           mx > 0 ? err / mx : err, same, rows);
}

/* ---------------------------------------------------------------- capture */

typedef struct {
    int layer;        /* layer to keep */
    int n_rows, nk_max;
    float *probs;     /* copy of that layer's probs */
    float *q, *hidden;
    size_t nq, nh;
} cap_copy;

static void on_layer(void *user, const hkm_layer_capture *lc) {
    cap_copy *cc = user;
    if (lc->layer != cc->layer) return;
    cc->n_rows = lc->n_rows;
    cc->nk_max = lc->n_keys_max;
    size_t H = cc->nq; /* reused below: set by caller to n_heads */
    size_t n = (size_t)lc->n;
    free(cc->probs), free(cc->q), free(cc->hidden);
    cc->probs = malloc(H * lc->n_rows * lc->n_keys_max * 4);
    memcpy(cc->probs, lc->probs, H * lc->n_rows * lc->n_keys_max * 4);
    cc->q = malloc(H * n * 32 * 4);
    memcpy(cc->q, lc->q, H * n * 32 * 4);
    cc->hidden = malloc(n * 128 * 4);
    memcpy(cc->hidden, lc->hidden, n * 128 * 4);
}

typedef struct {
    int layer, nk_max;
    float *colmax, *colsum;
} stat_copy;

static void on_stats(void *user, const hkm_gpu_layer_stats *st) {
    stat_copy *sc = user;
    if (st->layer != sc->layer) return;
    size_t ns = (size_t)st->n_heads * st->n_keys_max;
    sc->nk_max = st->n_keys_max;
    sc->colmax = malloc(ns * 4), sc->colsum = malloc(ns * 4);
    memcpy(sc->colmax, st->colmax, ns * 4);
    memcpy(sc->colsum, st->colsum, ns * 4);
}

/* GPU vs CPU capture of layer 1 for rows [r0, n) of a first prefill. */
static void test_capture(const hkm_model *m, hkm_gpu_model *g, const int32_t *ids, int n) {
    hkm_err err = {{0}};
    int H = m->cfg.n_heads, r0 = n / 2, nr = n - r0, rows[256];
    for (int i = 0; i < nr; i++) rows[i] = r0 + i;
    cap_copy cc = {1, 0, 0, 0, 0, 0, (size_t)H, 0}, gc = cc;
    hkm_capture cap = {on_layer, &cc, 1, 1, nr, rows, 0, 0};
    hkm_kvcache *kc = NULL;
    CHECK(hkm_kvcache_create(&m->cfg, 64, &kc, &err) == HKM_OK, "%s", err.msg);
    CHECK(hkm_forward_cpu(m, kc, ids, n, HKM_LOGITS_NONE, NULL, &cap, &err) == HKM_OK, "%s", err.msg);
    stat_copy sc = {1, 0, 0, 0};
    hkm_gpu_capture gcap = {{on_layer, &gc, 1, 1, nr, rows, 0, 0}, on_stats, &sc, r0, n, 1, 0, NULL};
    hkm_gpu_cache *c = NULL;
    CHECK(hkm_gpu_cache_create(g, 64, &c, &err) == HKM_OK, "%s", err.msg);
    CHECK(hkm_gpu_forward(g, c, ids, n, HKM_LOGITS_NONE, NULL, &gcap, &err) == HKM_OK, "%s", err.msg);
    if (cc.probs && gc.probs && sc.colmax && cc.nk_max == gc.nk_max) {
        size_t np = (size_t)H * nr * cc.nk_max;
        compare("capture probs (layer 1)", gc.probs, cc.probs, np, 2e-3f, 3e-2f);
        compare("capture q (layer 1)", gc.q, cc.q, (size_t)H * n * 32, 2e-2f, 2e-2f);
        compare("capture hidden (layer 1)", gc.hidden, cc.hidden, (size_t)n * 128, 2e-2f, 2e-2f);
        int nk = sc.nk_max;
        float *cm = calloc((size_t)H * nk, 4), *cs = calloc((size_t)H * nk, 4);
        for (int h = 0; h < H; h++)
            for (int i = 0; i < nr; i++)
                for (int j = 0; j < nk && j < cc.nk_max; j++) {
                    float p = cc.probs[((size_t)h * nr + i) * cc.nk_max + j];
                    if (p > cm[h * nk + j]) cm[h * nk + j] = p;
                    cs[h * nk + j] += p;
                }
        compare("column max (layer 1)", sc.colmax, cm, (size_t)H * nk, 2e-3f, 3e-2f);
        compare("column sum (layer 1)", sc.colsum, cs, (size_t)H * nk, 5e-3f, 3e-2f);
        free(cm), free(cs);
    } else {
        CHECK(0, "capture: missing callbacks or stride mismatch (cpu %d, gpu %d)", cc.nk_max, gc.nk_max);
        printf("FAIL capture\n");
    }
    free(cc.probs), free(cc.q), free(cc.hidden), free(gc.probs), free(gc.q), free(gc.hidden);
    free(sc.colmax), free(sc.colsum);
    hkm_kvcache_free(kc);
    hkm_gpu_cache_free(c);
}

/* Every layer's statistics of one call (full or selective mode), host copies. */
typedef struct {
    int L, H, nk, which;
    float *colmax, *colsum; /* (L, H, nk) */
    int null_ok;            /* the unselected statistic came as NULL (device and host) */
} call_stats;

static void on_call_stats(void *user, const hkm_gpu_layer_stats *st) {
    call_stats *cs = user;
    size_t per = (size_t)st->n_heads * st->n_keys_max, o = (size_t)st->layer * per;
    if (!cs->colmax) {
        cs->nk = st->n_keys_max, cs->H = st->n_heads;
        cs->colmax = calloc(cs->L * per, 4), cs->colsum = calloc(cs->L * per, 4);
    }
    int wm = cs->which & HKM_GPU_STAT_MAX, ws = cs->which & HKM_GPU_STAT_SUM;
    if ((!wm && (st->colmax || st->d_colmax)) || (!ws && (st->colsum || st->d_colsum)) ||
        (wm && !st->colmax) || (ws && !st->colsum))
        cs->null_ok = 0;
    if (st->colmax) memcpy(cs->colmax + o, st->colmax, per * 4);
    if (st->colsum) memcpy(cs->colsum + o, st->colsum, per * 4);
}

/* Two calls of 8 tokens from an empty cache; stats of each call into out[2]. */
static void two_calls(hkm_gpu_model *g, const int32_t *ids, int which, call_stats out[2]) {
    hkm_err err = {{0}};
    hkm_gpu_cache *c = NULL;
    CHECK(hkm_gpu_cache_create(g, 64, &c, &err) == HKM_OK, "%s", err.msg);
    for (int k = 0; c && k < 2; k++) {
        out[k] = (call_stats){hkm_gpu_model_config(g)->n_layers, 0, 0, which, NULL, NULL, 1};
        hkm_gpu_capture cap = {{0}, on_call_stats, &out[k], 0, 8, 1, which, NULL};
        CHECK(hkm_gpu_forward(g, c, ids + 8 * k, 8, HKM_LOGITS_NONE, NULL, &cap, &err) == HKM_OK,
              "%s", err.msg);
    }
    hkm_gpu_cache_free(c);
}

/* Selective statistics equal the full mode's; a device accumulator over the
 * two calls equals the host max / sum of their per-call statistics. */
static void test_stats_select(hkm_gpu_model *g, const int32_t *ids) {
    hkm_err err = {{0}};
    int L = hkm_gpu_model_config(g)->n_layers, K = 12;
    call_stats full[2], mx[2], sm[2];
    two_calls(g, ids, 0, full);
    full[0].which = full[1].which = HKM_GPU_STAT_BOTH;
    two_calls(g, ids, HKM_GPU_STAT_MAX, mx);
    two_calls(g, ids, HKM_GPU_STAT_SUM, sm);
    if (!full[1].colmax || !mx[1].colmax || !sm[1].colsum) {
        CHECK(0, "selective statistics: callback not called");
        return;
    }
    int H = full[0].H;
    for (int k = 0; k < 2; k++) {
        size_t n = (size_t)L * H * full[k].nk;
        CHECK(mx[k].null_ok && sm[k].null_ok, "selective statistics: the unselected one was "
              "handed out (call %d)", k);
        CHECK(mx[k].nk == full[k].nk && sm[k].nk == full[k].nk, "selective statistics: stride");
        compare("selective column max = full", mx[k].colmax, full[k].colmax, n, 0, 0);
        compare("selective column sum = full", sm[k].colsum, full[k].colsum, n, 0, 0);
    }
    /* host reference of the accumulation over keys [0, K) */
    size_t na = (size_t)L * H * K;
    float *rmax = calloc(na, 4), *rsum = calloc(na, 4), *amax = malloc(na * 4),
          *asum = malloc(na * 4);
    for (int k = 0; k < 2; k++)
        for (size_t lh = 0; lh < (size_t)L * H; lh++)
            for (int j = 0; j < K && j < full[k].nk; j++) {
                float m = full[k].colmax[lh * full[k].nk + j], s = full[k].colsum[lh * full[k].nk + j];
                if (m > rmax[lh * K + j]) rmax[lh * K + j] = m;
                rsum[lh * K + j] += s;
            }
    hkm_gpu_stats_acc *acc = NULL;
    hkm_gpu_cache *c = NULL;
    CHECK(hkm_gpu_stats_acc_create(g, 32, &acc, &err) == HKM_OK, "%s", err.msg);
    CHECK(hkm_gpu_cache_create(g, 64, &c, &err) == HKM_OK, "%s", err.msg);
    CHECK(hkm_gpu_stats_acc_reset(acc, 0, &err) == HKM_ERR_ARG, "acc reset to 0 keys accepted");
    CHECK(hkm_gpu_stats_acc_reset(acc, 33, &err) == HKM_ERR_ARG, "acc reset past max accepted");
    for (int which = HKM_GPU_STAT_MAX; acc && c && which <= HKM_GPU_STAT_BOTH; which++) {
        hkm_gpu_cache_reset(c);
        memset(amax, 0xff, na * 4), memset(asum, 0xff, na * 4);
        CHECK(hkm_gpu_stats_acc_reset(acc, K, &err) == HKM_OK, "%s", err.msg);
        for (int k = 0; k < 2; k++) {
            hkm_gpu_capture cap = {{0}, NULL, NULL, 0, 8, 0, which, acc};
            CHECK(hkm_gpu_forward(g, c, ids + 8 * k, 8, HKM_LOGITS_NONE, NULL, &cap, &err) ==
                  HKM_OK, "%s", err.msg);
        }
        CHECK(hkm_gpu_stats_acc_read(acc, amax, asum, &err) == HKM_OK, "%s", err.msg);
        const float *zero = calloc(na, 4);
        compare("accumulated column max", amax, which & HKM_GPU_STAT_MAX ? rmax : zero, na,
                1e-7f, 1e-6f);
        compare("accumulated column sum", asum, which & HKM_GPU_STAT_SUM ? rsum : zero, na,
                1e-7f, 1e-6f);
        free((void *)zero);
    }
    hkm_gpu_capture bad = {{0}, on_call_stats, &full[0], 0, 8, 1, 4, NULL};
    if (c) {
        int rc = hkm_gpu_forward(g, c, ids, 8, HKM_LOGITS_NONE, NULL, &bad, &err);
        CHECK(rc == HKM_ERR_ARG, "stats_which 4 accepted");
        if (rc == HKM_ERR_ARG) printf("PASS stats_which 4 refused: %s\n", err.msg);
    }
    hkm_gpu_cache_free(c);
    hkm_gpu_stats_acc_free(acc);
    free(rmax), free(rsum), free(amax), free(asum);
    for (int k = 0; k < 2; k++) {
        free(full[k].colmax), free(full[k].colsum), free(mx[k].colmax), free(mx[k].colsum);
        free(sm[k].colmax), free(sm[k].colsum);
    }
}

/* ---------------------------------------------------------------- random models */

/* Force decode onto the persistent kernel (1) or the per-kernel path (0). */
static void set_persist(hkm_gpu_model *g, int on) {
    g->persist_env = on;
    g->persist = HKG_PD_UNDECIDED;
}

/* Decode went the way asked: tokens served by the persistent kernel. */
static void check_persist(const char *name, const hkm_gpu_model *g, int on, int tokens) {
    int ok = on ? g->persist == HKG_PD_ON && g->persist_tokens == tokens
                : g->persist_tokens == 0;
    CHECK(ok, "%s: persistent decode served %d of %d tokens (asked %s)", name,
          g->persist_tokens, tokens, on ? "on" : "off");
    printf("%s %s: persistent decode served %d of %d decode tokens\n", ok ? "PASS" : "FAIL",
           name, g->persist_tokens, tokens);
}

static void test_random(const char *label, hkm_arch arch, hkm_rope_type rope, int tied,
                        int persist) {
    hkm_err err = {{0}};
    hkm_model *m = random_model(arch, rope, tied);
    int V = m->cfg.vocab_size, n = 40, cap = 64;
    int32_t ids[64];
    for (int i = 0; i < 64; i++) ids[i] = (int32_t)((i * 37 + 11) % V);
    char name[96];
    snprintf(name, sizeof name, "%s, %s decode", label, persist ? "persistent" : "per-kernel");
    hkm_gpu_model *g = NULL;
    if (hkm_gpu_model_upload(m, 16, &g, &err) != HKM_OK) {
        CHECK(0, "%s: upload: %s", name, err.msg);
        hkm_model_free(m);
        return;
    }
    set_persist(g, persist);
    hkm_kvcache *kc = NULL;
    hkm_gpu_cache *gc = NULL;
    CHECK(hkm_kvcache_create(&m->cfg, cap, &kc, &err) == HKM_OK, "%s", err.msg);
    CHECK(hkm_gpu_cache_create(g, cap, &gc, &err) == HKM_OK, "%s", err.msg);
    float *ref = malloc((size_t)n * V * 4), *got = malloc((size_t)n * V * 4);
    CHECK(hkm_forward_cpu(m, kc, ids, n, HKM_LOGITS_ALL, ref, NULL, &err) == HKM_OK, "%s", err.msg);
    /* chunked prefill 16 + 16 + 8 (max_chunk is 16) */
    for (int i = 0; i < n; i += 16) {
        int k = n - i < 16 ? n - i : 16;
        CHECK(hkm_gpu_forward(g, gc, ids + i, k, HKM_LOGITS_ALL, got + (size_t)i * V, NULL, &err)
              == HKM_OK, "%s", err.msg);
    }
    char what[128];
    snprintf(what, sizeof what, "%s: chunked prefill logits", name);
    compare_logits(what, got, ref, n, V);
    /* per-head eviction, a different keep per (layer, head), then decode */
    int32_t keep[64];
    for (int l = 0; l < m->cfg.n_layers; l++)
        for (int h = 0; h < m->cfg.n_kv_heads; h++) {
            int nk = 0;
            for (int j = 0; j < n; j++)
                if (j < 2 || (j * 7 + l * 3 + h) % 5 < 3) keep[nk++] = j;
            CHECK(hkm_kvcache_keep(kc, l, h, keep, nk, &err) == HKM_OK, "%s", err.msg);
            CHECK(hkm_gpu_cache_keep(gc, l, h, keep, nk, &err) == HKM_OK, "%s", err.msg);
            CHECK(hkm_gpu_cache_len(gc, l, h) == hkm_kvcache_len(kc, l, h), "len after keep");
        }
    for (int s = 0; s < 5; s++) {
        CHECK(hkm_forward_cpu(m, kc, ids + n + s, 1, HKM_LOGITS_LAST, ref + (size_t)s * V, NULL,
                              &err) == HKM_OK, "%s", err.msg);
        CHECK(hkm_gpu_forward(g, gc, ids + n + s, 1, HKM_LOGITS_LAST, got + (size_t)s * V, NULL,
                              &err) == HKM_OK, "%s", err.msg);
    }
    snprintf(what, sizeof what, "%s: decode after per-head eviction", name);
    compare_logits(what, got, ref, 5, V);
    /* positions survive compaction as on the CPU */
    const int32_t *pc = NULL, *pg = hkm_gpu_cache_positions(gc, 1, 1);
    hkm_kvcache_head(kc, 1, 1, NULL, NULL, &pc);
    int same = pc && pg && !memcmp(pc, pg, (size_t)hkm_kvcache_len(kc, 1, 1) * 4);
    CHECK(same, "%s: cache positions differ from the CPU's", name);
    /* rewind past the decoded tokens (an evicted cache), then one more token:
     * the GPU drops the same entries as the CPU and gives the same logits */
    CHECK(hkm_gpu_cache_rewind(gc, n + 6, &err) == HKM_ERR_ARG, "%s: rewind past the end accepted", name);
    CHECK(hkm_kvcache_rewind(kc, n + 2, &err) == HKM_OK, "%s", err.msg);
    CHECK(hkm_gpu_cache_rewind(gc, n + 2, &err) == HKM_OK, "%s", err.msg);
    CHECK(hkm_gpu_cache_next_pos(gc) == n + 2, "%s: next_pos after rewind", name);
    for (int l = 0; l < m->cfg.n_layers; l++)
        for (int h = 0; h < m->cfg.n_kv_heads; h++)
            CHECK(hkm_gpu_cache_len(gc, l, h) == hkm_kvcache_len(kc, l, h), "%s: len after rewind", name);
    CHECK(hkm_forward_cpu(m, kc, ids + 3, 1, HKM_LOGITS_LAST, ref, NULL, &err) == HKM_OK, "%s", err.msg);
    CHECK(hkm_gpu_forward(g, gc, ids + 3, 1, HKM_LOGITS_LAST, got, NULL, &err) == HKM_OK, "%s", err.msg);
    snprintf(what, sizeof what, "%s: decode after rewind", name);
    compare_logits(what, got, ref, 1, V);
    check_persist(name, g, persist, 6);
    /* errors: bad id, capacity */
    int32_t bad = V;
    CHECK(hkm_gpu_forward(g, gc, &bad, 1, HKM_LOGITS_NONE, NULL, NULL, &err) == HKM_ERR_ARG,
          "bad id accepted");
    test_capture(m, g, ids, 16); /* one chunk: the model was uploaded with max_chunk 16 */
    test_stats_select(g, ids);
    free(ref), free(got);
    hkm_kvcache_free(kc);
    hkm_gpu_cache_free(gc);
    hkm_gpu_model_free(g);
    hkm_model_free(m);
}

/* Persistent decode after a long chunked prefill and per-head eviction (so
 * every key split of the kernel holds keys, and the heads differ in length),
 * against the CPU engine. */
/* from_global: weights and most keys read from global memory (test knobs
 * of the kernel's shared memory plan). */
static void test_persist_long(const char *name, hkm_arch arch, const shape *sh, int n,
                              int from_global) {
    hkm_err err = {{0}};
    hkm_model *m = random_model_shape(arch, HKM_ROPE_DEFAULT, 1, sh);
    int V = sh->V, cap = n + 8, steps = 4, chunk = 512;
    int32_t *ids = malloc((size_t)(n + steps) * 4), *keep = malloc((size_t)n * 4);
    float *ref = malloc((size_t)steps * V * 4), *got = malloc((size_t)steps * V * 4);
    for (int i = 0; i < n + steps; i++) ids[i] = (int32_t)(((size_t)i * 7919 + 13) % V);
    hkm_gpu_model *g = NULL;
    hkm_gpu_cache *gc = NULL;
    hkm_kvcache *kc = NULL;
    CHECK(hkm_gpu_model_upload(m, chunk, &g, &err) == HKM_OK, "%s: %s", name, err.msg);
    CHECK(g && hkm_gpu_cache_create(g, cap, &gc, &err) == HKM_OK, "%s: %s", name, err.msg);
    CHECK(hkm_kvcache_create(&m->cfg, cap, &kc, &err) == HKM_OK, "%s: %s", name, err.msg);
    if (g && gc && kc) {
        set_persist(g, 1);
        if (from_global) g->pd_no_stage = 1, g->pd_kv_keys_max = 16;
        g->pd_window = from_global ? 1 : -1; /* one region in flight; no limit */
        CHECK(hkm_forward_cpu(m, kc, ids, n, HKM_LOGITS_NONE, NULL, NULL, &err) == HKM_OK,
              "%s", err.msg);
        for (int i = 0; i < n; i += chunk) {
            int k = n - i < chunk ? n - i : chunk;
            CHECK(hkm_gpu_forward(g, gc, ids + i, k, HKM_LOGITS_NONE, NULL, NULL, &err) ==
                  HKM_OK, "%s", err.msg);
        }
        for (int l = 0; l < sh->n_layers; l++)
            for (int h = 0; h < sh->KV; h++) {
                int nk = 0;
                for (int j = 0; j < n; j++)
                    if (j < 4 || (j * 7 + l * 3 + h * 5) % (5 + h) < 3) keep[nk++] = j;
                CHECK(hkm_kvcache_keep(kc, l, h, keep, nk, &err) == HKM_OK, "%s", err.msg);
                CHECK(hkm_gpu_cache_keep(gc, l, h, keep, nk, &err) == HKM_OK, "%s", err.msg);
            }
        for (int s = 0; s < steps; s++) {
            CHECK(hkm_forward_cpu(m, kc, ids + n + s, 1, HKM_LOGITS_LAST, ref + (size_t)s * V,
                                  NULL, &err) == HKM_OK, "%s", err.msg);
            CHECK(hkm_gpu_forward(g, gc, ids + n + s, 1, HKM_LOGITS_LAST, got + (size_t)s * V,
                                  NULL, &err) == HKM_OK, "%s", err.msg);
        }
        char what[160];
        snprintf(what, sizeof what, "%s: persistent decode after %d tokens and eviction%s",
                 name, n, from_global ? " (weights and most keys read from global memory)" : "");
        compare_logits(what, got, ref, steps, V);
        check_persist(name, g, 1, steps);
    }
    hkm_kvcache_free(kc);
    hkm_gpu_cache_free(gc);
    hkm_gpu_model_free(g);
    hkm_model_free(m);
    free(ids), free(keep), free(ref), free(got);
}

/* ---------------------------------------------------------------- checkpoints */

/* 1 if, after prompt + the common prefix path[0..k), the CPU's logit of the
 * GPU's pick is within LOGIT_TOL * max|logit| of the CPU's best: with bf16
 * weights such a near-tie may flip, and greedy paths then part. */
static int near_tie(const hkm_model *m, const int32_t *prompt, int np, const int32_t *path, int k,
                    int32_t gpu_pick) {
    hkm_err err = {{0}};
    int V = m->cfg.vocab_size, n = np + k;
    int32_t ids[128];
    float *lg = malloc((size_t)V * 4);
    hkm_kvcache *kc = NULL;
    int ok = n <= 128 && lg && hkm_kvcache_create(&m->cfg, n, &kc, &err) == HKM_OK;
    if (ok) {
        memcpy(ids, prompt, (size_t)np * 4);
        memcpy(ids + np, path, (size_t)k * 4);
        ok = hkm_forward_cpu(m, kc, ids, n, HKM_LOGITS_LAST, lg, NULL, &err) == HKM_OK;
    }
    if (ok) {
        float best = lg[0], mx = 0;
        for (int i = 0; i < V; i++) {
            if (lg[i] > best) best = lg[i];
            if (fabsf(lg[i]) > mx) mx = fabsf(lg[i]);
        }
        ok = best - lg[gpu_pick] <= LOGIT_TOL * mx;
    }
    hkm_kvcache_free(kc);
    free(lg);
    return ok;
}

/* Greedy decode stops at eos. On the persistent kernel the step queued after
 * the eos token is taken back: the device lengths must equal the host's,
 * and decoding on from there must give a fresh prefill's logits. */
static void test_greedy_eos(const char *name, hkm_gpu_model *g, hkm_gpu_cache *gc,
                            const int32_t *ids, int np, int32_t eos) {
    hkm_err err = {{0}};
    const int V = g->cfg.vocab_size, heads = gc->n_layers * gc->n_kv;
    int32_t out[16], seq[64], dl[4096];
    int n = 0;
    CHECK(hkm_gpu_generate_greedy(g, gc, ids, np, 16, eos, out, &n, &err) == HKM_OK, "%s: %s",
          name, err.msg);
    int stop = 0;
    while (stop < n && out[stop] != eos) stop++;
    int ok = n > 0 && stop == n - 1 && heads <= 4096 &&
             cudaMemcpy(dl, gc->d_len, (size_t)heads * 4, cudaMemcpyDeviceToHost) == cudaSuccess &&
             hkm_gpu_cache_next_pos(gc) == np + n - 1;
    for (int i = 0; ok && i < heads; i++) ok = dl[i] == gc->h_len[i] && dl[i] == np + n - 1;
    CHECK(ok, "%s: greedy to eos %d: %d tokens (eos at %d), cache next_pos %d, expected %d, and "
          "device lengths equal to the host's", name, eos, n, stop, hkm_gpu_cache_next_pos(gc),
          np + n - 1);
    printf("%s %s: greedy stops at eos after %d tokens; cache lengths %d on host and device\n",
           ok ? "PASS" : "FAIL", name, n, np + n - 1);
    if (!ok) return;
    float *a = malloc((size_t)V * 4), *b = malloc((size_t)V * 4);
    hkm_gpu_cache *fresh = NULL;
    memcpy(seq, ids, (size_t)np * 4);
    memcpy(seq + np, out, (size_t)n * 4);
    CHECK(a && b && hkm_gpu_cache_create(g, 128, &fresh, &err) == HKM_OK, "%s: %s", name, err.msg);
    if (a && b && fresh) {
        CHECK(hkm_gpu_forward(g, gc, out + n - 1, 1, HKM_LOGITS_LAST, a, NULL, &err) == HKM_OK,
              "%s: %s", name, err.msg);
        for (int s = 0; s < np + n; s += g->max_chunk) {
            int m = np + n - s < g->max_chunk ? np + n - s : g->max_chunk;
            CHECK(hkm_gpu_forward(g, fresh, seq + s, m, HKM_LOGITS_LAST, b, NULL, &err) == HKM_OK,
                  "%s: %s", name, err.msg);
        }
        char what[160];
        snprintf(what, sizeof what, "%s: decode on after eos vs a fresh prefill", name);
        compare_logits(what, a, b, 1, V);
    }
    hkm_gpu_cache_free(fresh);
    free(a), free(b);
}

static void test_checkpoint(const char *name, const char *path, const int32_t *prompt, int np) {
    hkm_err err = {{0}};
    hkm_model *m = NULL;
    if (hkm_model_load(path, &m, &err) != HKM_OK) {
        CHECK(0, "%s: load %s: %s", name, path, err.msg);
        printf("FAIL %s: load\n", name);
        return;
    }
    int V = m->cfg.vocab_size;
    int32_t ids[64];
    for (int i = 0; i < np; i++) ids[i] = prompt[i] % V;
    hkm_gpu_model *g = NULL;
    hkm_gpu_cache *gc = NULL;
    hkm_kvcache *kc = NULL;
    CHECK(hkm_gpu_model_upload(m, 32, &g, &err) == HKM_OK, "%s: %s", name, err.msg);
    CHECK(g && hkm_gpu_cache_create(g, 128, &gc, &err) == HKM_OK, "%s: %s", name, err.msg);
    CHECK(hkm_kvcache_create(&m->cfg, 128, &kc, &err) == HKM_OK, "%s: %s", name, err.msg);
    if (g && gc && kc) {
        float *ref = malloc((size_t)np * V * 4), *got = malloc((size_t)np * V * 4);
        CHECK(hkm_forward_cpu(m, kc, ids, np, HKM_LOGITS_ALL, ref, NULL, &err) == HKM_OK, "%s", err.msg);
        CHECK(hkm_gpu_forward(g, gc, ids, np, HKM_LOGITS_ALL, got, NULL, &err) == HKM_OK, "%s", err.msg);
        char what[160];
        snprintf(what, sizeof what, "%s: prompt logits", name);
        compare_logits(what, got, ref, np, V);
        int32_t oc[16], og[16];
        int nc = 0, ng = 0;
        CHECK(hkm_generate_greedy(m, ids, np, 16, -1, oc, &nc, &err) == HKM_OK, "%s", err.msg);
        CHECK(hkm_gpu_generate_greedy(g, gc, ids, np, 16, -1, og, &ng, &err) == HKM_OK, "%s", err.msg);
        int k = 0;
        while (k < nc && k < ng && oc[k] == og[k]) k++;
        int ok = k == nc && nc == ng, tie = 0;
        if (!ok && k < nc && k < ng) tie = near_tie(m, ids, np, oc, k, og[k]);
        CHECK(ok || tie, "%s: greedy continuations differ at step %d of %d/%d", name, k, nc, ng);
        printf("%s %s: greedy continuation (%d tokens, same for %d%s)\n", ok || tie ? "PASS" : "FAIL",
               name, nc, k, tie ? ", then a near-tie within bf16 tolerance" : "");
        /* every decode step after the first token goes through the graph or
         * the persistent kernel */
        int fast = g->graph_replays + g->persist_tokens;
        CHECK(fast >= ng - 1, "%s: %d of %d decode steps by graph or persistent kernel", name,
              fast, ng - 1);
        printf("%s %s: decode steps by graph replay %d, by the persistent kernel %d\n",
               fast >= ng - 1 ? "PASS" : "FAIL", name, g->graph_replays, g->persist_tokens);
        if (ng >= 4) test_greedy_eos(name, g, gc, ids, np, og[2]);
        free(ref), free(got);
    }
    hkm_kvcache_free(kc);
    hkm_gpu_cache_free(gc);
    hkm_gpu_model_free(g);
    hkm_model_free(m);
}

int main(void) {
    skip_without_gpu();
    /* HUBKV_TEST_PERSIST_ONLY=1: the persistent decode tests alone (for
     * compute-sanitizer's racecheck and synccheck, which are slow) */
    int persist_only = getenv("HUBKV_TEST_PERSIST_ONLY") != NULL;
    for (int persist = persist_only; persist < 2; persist++) {
        test_random("llama", HKM_ARCH_LLAMA, HKM_ROPE_DEFAULT, 1, persist);
        test_random("llama3-rope untied", HKM_ARCH_LLAMA, HKM_ROPE_LLAMA3, 0, persist);
        test_random("qwen2 (biases)", HKM_ARCH_QWEN2, HKM_ROPE_DEFAULT, 1, persist);
        test_random("qwen3 (qk-norm)", HKM_ARCH_QWEN3, HKM_ROPE_DEFAULT, 0, persist);
    }
    /* persistent decode shapes: SmolLM2's heads (3 query heads per KV head,
     * head_dim 64) with biases; head_dim 128 with 8 per KV head; MHA with
     * qk-norm */
    static const shape smol = {2, 192, 9, 3, 64, 512, 1000};
    static const shape wide = {2, 256, 8, 1, 128, 384, 1000};
    static const shape mha = {2, 256, 4, 4, 64, 520, 1000};
    test_persist_long("SmolLM2 heads, qwen2 biases", HKM_ARCH_QWEN2, &smol, 3000, 0);
    test_persist_long("SmolLM2 heads, qwen2 biases", HKM_ARCH_QWEN2, &smol, 3000, 1);
    test_persist_long("head_dim 128, 8 per KV head", HKM_ARCH_LLAMA, &wide, 2100, 0);
    test_persist_long("MHA, qwen3 qk-norm", HKM_ARCH_QWEN3, &mha, 1500, 0);
    test_persist_long("MHA, qwen3 qk-norm", HKM_ARCH_QWEN3, &mha, 1500, 1);
    if (persist_only) return test_summary("test_cuda_forward (persistent decode only)");
    static const int32_t prompt[] = {1, 450, 7483, 310, 3444, 338, 263, 4802, 29892, 322, 278, 1900};
    const char *tiny[] = {"tiny/llama3", "tiny/mistral", "tiny/qwen2", "tiny/qwen3",
                          "tiny/llama-sharded"};
    char buf[512];
    for (int i = 0; i < 5; i++)
        test_checkpoint(tiny[i], test_data(tiny[i], buf, sizeof buf), prompt, 12);
    buf[0] = 0;
    const char *dm = test_default_model(buf, sizeof buf);
    if (dm) test_checkpoint("default model", dm, prompt, 12);
    else printf("default model absent: that part skipped\n");
    return test_summary("test_cuda_forward");
}
