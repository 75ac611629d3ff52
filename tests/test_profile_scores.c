/* hubkv-profile's oracle and base scorers against a naive computation from
 * full attention matrices rebuilt from captured q/k/v (tiny Llama-3 model,
 * 4 query heads over 2 KV heads: GQA groups of 2), and loss-curve properties. */
#include "profile_run.h"
#include "test_util.h"

#include <float.h>
#include <math.h>
#include <string.h>

/* q (H, n, hd), k/v (KV, n, hd) of every layer from one uncached call. */
typedef struct {
    int L, H, KV, hd, n;
    float *q, *k, *v;
} qkv_dump;

static void on_qkv(void *user, const hkm_layer_capture *lc) {
    qkv_dump *d = user;
    size_t qs = (size_t)d->H * d->n * d->hd, ks = (size_t)d->KV * d->n * d->hd;
    memcpy(d->q + lc->layer * qs, lc->q, qs * sizeof(float));
    memcpy(d->k + lc->layer * ks, lc->k, ks * sizeof(float));
    memcpy(d->v + lc->layer * ks, lc->v, ks * sizeof(float));
}

static void dump_run(const hkm_model *m, const int32_t *ids, int n, qkv_dump *d) {
    const hkm_config *c = hkm_model_config(m);
    *d = (qkv_dump){.L = c->n_layers, .H = c->n_heads, .KV = c->n_kv_heads, .hd = c->head_dim, .n = n};
    d->q = calloc((size_t)d->L * d->H * n * d->hd, sizeof(float));
    d->k = calloc((size_t)d->L * d->KV * n * d->hd, sizeof(float));
    d->v = calloc((size_t)d->L * d->KV * n * d->hd, sizeof(float));
    hkm_kvcache *cache = NULL;
    hkm_err err;
    CHECK(hkm_kvcache_create(c, n, &cache, &err) == HKM_OK, "%s", err.msg);
    hkm_capture cap = {.fn = on_qkv, .user = d, .want_qkv = 1};
    CHECK(hkm_forward_cpu(m, cache, ids, n, HKM_LOGITS_NONE, NULL, &cap, &err) == HKM_OK, "%s", err.msg);
    hkm_kvcache_free(cache);
}

/* Causal softmax attention a (n, n) of query head h in layer l, in double. */
static void attn(const qkv_dump *d, int l, int h, double *a) {
    int kvh = h / (d->H / d->KV), n = d->n, hd = d->hd;
    const float *q = d->q + (((size_t)l * d->H + h) * n) * hd;
    const float *k = d->k + (((size_t)l * d->KV + kvh) * n) * hd;
    for (int t = 0; t < n; t++) {
        double mx = -DBL_MAX, sum = 0;
        for (int j = 0; j <= t; j++) {
            double s = 0;
            for (int x = 0; x < hd; x++) s += (double)q[(size_t)t * hd + x] * k[(size_t)j * hd + x];
            a[(size_t)t * n + j] = s / sqrt((double)hd);
            mx = fmax(mx, a[(size_t)t * n + j]);
        }
        for (int j = 0; j <= t; j++) sum += (a[(size_t)t * n + j] = exp(a[(size_t)t * n + j] - mx));
        for (int j = 0; j < n; j++) a[(size_t)t * n + j] = j <= t ? a[(size_t)t * n + j] / sum : 0;
    }
}

static double max_err(const float *got, const double *want, int n) {
    double e = 0;
    for (int i = 0; i < n; i++) e = fmax(e, fabs(got[i] - want[i]));
    return e;
}

/* Every scorer of one KV head vs the naive definitions. */
static void check_head(const hkp_runner *r, const qkv_dump *full, const qkv_dump *zip, int n, int n_fut,
                       int l, int kvh) {
    int H = full->H, group = H / full->KV, hd = full->hd, w = r->sp.snap_window, half = r->sp.snap_kernel / 2;
    int nf = full->n, nz = zip->n, cols = n - w;
    double *a = malloc(sizeof(double) * nf * nf), *b = malloc(sizeof(double) * nz * nz);
    double oracle[256] = {0}, h2o[256] = {0}, snap[256] = {0}, kz[256] = {0}, kd[256];
    for (int g = 0; g < group; g++) {
        int h = kvh * group + g;
        attn(full, l, h, a);
        attn(zip, l, h, b);
        double win[256] = {0};
        for (int i = 0; i < n; i++) {
            const float *v = full->v + (((size_t)l * full->KV + kvh) * nf + i) * hd;
            double vn = 0;
            for (int x = 0; x < hd; x++) vn += (double)v[x] * v[x];
            for (int t = n; t < n + n_fut; t++) oracle[i] = fmax(oracle[i], a[(size_t)t * nf + i] * sqrt(vn));
            for (int t = 0; t < n; t++) h2o[i] += a[(size_t)t * nf + i];
            for (int t = n - w; t < n; t++) win[i] += a[(size_t)t * nf + i] / w;
            for (int t = n; t < nz; t++) kz[i] = fmax(kz[i], b[(size_t)t * nz + i]);
        }
        for (int j = 0; j < cols; j++) { // pool per query head, then the group mean
            double acc = r->sp.snap_max ? -DBL_MAX : 0;
            for (int m = j - half; m <= j + half; m++)
                if (m >= 0 && m < cols) acc = r->sp.snap_max ? fmax(acc, win[m]) : acc + win[m];
            snap[j] += (r->sp.snap_max ? acc : acc / r->sp.snap_kernel) / group;
        }
    }
    double mx = 0;
    for (int j = 0; j < cols; j++) mx = fmax(mx, snap[j]);
    for (int j = cols; j < n; j++) snap[j] = mx;
    const float *k = full->k + (((size_t)l * full->KV + kvh) * nf) * hd;
    double anchor[64] = {0};
    for (int i = 0; i < n; i++) {
        double nn = 0;
        for (int x = 0; x < hd; x++) nn += (double)k[i * hd + x] * k[i * hd + x];
        for (int x = 0; x < hd; x++) anchor[x] += k[i * hd + x] / sqrt(nn) / n;
    }
    for (int i = 0; i < n; i++) {
        double dot = 0, nk = 0, na = 0;
        for (int x = 0; x < hd; x++) { dot += anchor[x] * k[i * hd + x]; nk += (double)k[i * hd + x] * k[i * hd + x]; na += anchor[x] * anchor[x]; }
        kd[i] = -dot / (sqrt(nk) * sqrt(na));
    }
    size_t off = ((size_t)l * r->sc.KV + kvh) * n;
    double e;
    CHECK((e = max_err(r->sc.oracle + off, oracle, n)) < 1e-4, "layer %d head %d oracle err %g", l, kvh, e);
    CHECK((e = max_err(r->sc.h2o + off, h2o, n)) < 1e-4, "layer %d head %d h2o err %g", l, kvh, e);
    CHECK((e = max_err(r->sc.score[HKP_SC_SNAPKV] + off, snap, n)) < 1e-5, "layer %d head %d snapkv err %g", l, kvh, e);
    CHECK((e = max_err(r->sc.kvzip + off, kz, n)) < 1e-4, "layer %d head %d kvzip err %g", l, kvh, e);
    CHECK((e = max_err(r->sc.score[HKP_SC_KEYDIFF] + off, kd, n)) < 1e-5, "layer %d head %d keydiff err %g", l, kvh, e);
    free(a);
    free(b);
}

static void check_curves(hkp_runner *r, const hkm_config *c) {
    hkp_stats st;
    hkm_err err;
    CHECK(hkp_stats_init(&st, c->n_layers, c->n_kv_heads, r->cp.grid, &err) == HKM_OK, "%s", err.msg);
    hkp_run_accumulate(r, &st);
    size_t heads = (size_t)c->n_layers * c->n_kv_heads;
    int G = r->cp.grid, bad_mono = 0, bad_end = 0, bad_opt = 0;
    for (size_t s = 0; s < HKP_SC_COUNT * heads; s++) {
        const double *cur = r->cur + s * G, *orc = r->orc + (s % heads) * G;
        for (int k = 1; k < G; k++) bad_mono += cur[k] > cur[k - 1] || orc[k] > orc[k - 1];
        for (int k = 0; k < G; k++) bad_opt += orc[k] > cur[k] + 1e-12;
        bad_end += cur[G - 1] != 0.0 || orc[G - 1] != 0.0;
        CHECK(cur[0] > 0 && cur[0] <= 1, "curve %zu at b=0 is %g: expected in (0, 1]", s, cur[0]);
    }
    CHECK(bad_mono == 0, "%d loss-curve steps increase: expected non-increasing in b", bad_mono);
    CHECK(bad_end == 0, "%d curves not 0 at b = 1", bad_end);
    CHECK(bad_opt == 0, "%d points where the oracle ranking loses more than a scorer", bad_opt);
    for (size_t i = 0; i < (HKP_SC_COUNT + 1) * heads; i++) {
        CHECK(r->ent[i] >= 0 && r->ent[i] <= 1 + 1e-9, "entropy %g: expected in [0, 1]", r->ent[i]);
        CHECK(r->top[i] > 0 && r->top[i] <= 1 + 1e-9, "top-1%% mass %g: expected in (0, 1]", r->top[i]);
        double beta = hkp_beta(r->ent[i], r->top[i]);
        CHECK(beta >= 0.8 && beta <= 1.2, "beta %g: expected in [0.8, 1.2]", beta);
    }
    CHECK(st.count[hkp_stats_bucket(r->sc.n)] == 1, "one context counted");
    hkp_stats_free(&st);
}

static void run_case(const hkm_model *m, int n, int n_fut, int chunk, int snap_max) {
    const hkm_config *c = hkm_model_config(m);
    enum { P = 5 };
    int32_t ids[256], zip[256], kvp[P] = {7, 11, 13, 17, 19};
    srand(1234 + n);
    for (int i = 0; i < n + n_fut; i++) ids[i] = 3 + rand() % (c->vocab_size - 3);
    hkp_runner r = {.chunk = chunk, .kvzip = 1, .sp = {.snap_window = 8, .snap_kernel = 3, .snap_max = snap_max},
                    .cp = {.sink = 2, .recent = 8}};
    hkm_err err;
    CHECK(hkp_runner_init(&r, m, n, n_fut, P, 33, &err) == HKM_OK, "%s", err.msg);
    CHECK(hkp_run_scores(&r, ids, n, n_fut, kvp, P, &err) == HKM_OK, "%s", err.msg);
    qkv_dump full, z;
    dump_run(m, ids, n + n_fut, &full);
    memcpy(zip, ids, n * sizeof *ids);
    memcpy(zip + n, kvp, sizeof kvp);
    memcpy(zip + n + P, ids, n * sizeof *ids);
    dump_run(m, zip, 2 * n + P, &z);
    for (int l = 0; l < c->n_layers; l++)
        for (int h = 0; h < c->n_kv_heads; h++) check_head(&r, &full, &z, n, n_fut, l, h);
    check_curves(&r, c);
    free(full.q); free(full.k); free(full.v); free(z.q); free(z.k); free(z.v);
    hkp_runner_free(&r);
}

int main(void) {
    char buf[1024];
    hkm_model *m = NULL;
    hkm_err err;
    if (hkm_model_load(test_data("tiny/llama3", buf, sizeof buf), &m, &err) != HKM_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    CHECK(hkm_model_config(m)->n_heads == 2 * hkm_model_config(m)->n_kv_heads, "tiny llama3 has GQA groups of 2");
    run_case(m, 70, 12, 16, 1);  // chunked prefill, max-pooled SnapKV
    run_case(m, 53, 9, 256, 0);  // one chunk, avg-pooled (kvpress)
    hkm_model_free(m);
    return test_summary("test_profile_scores");
}
