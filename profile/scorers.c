/* Oracle importance and base scorers from captured attention rows and the KV
 * cache. SnapKV follows kvpress's SnapKVPress (mean over the window queries,
 * 1-D pooling per query head, mean over the GQA group; window keys get the
 * maximum); H2O sums attention over every context query; KeyDiff is
 * kvpress's KeyDiffPress (-cos to the mean normalised key); KVzip follows
 * snu-mllab/KVzip attention/score.py (max over the group and the
 * reconstruction queries). */
#include "scorers.h"
#include "hkm_internal.h"

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <string.h>

static const char *NAMES[HKP_SC_COUNT + 1] = {"snapkv", "h2o", "keydiff", "kvzip", "oracle"};

const char *hkp_scorer_name(int s) { return s >= 0 && s <= HKP_SC_COUNT ? NAMES[s] : "?"; }

hkm_status hkp_scores_init(hkp_scores *s, const hkm_config *cfg, int cap, hkm_err *err) {
    memset(s, 0, sizeof *s);
    s->L = cfg->n_layers;
    s->KV = cfg->n_kv_heads;
    s->H = cfg->n_heads;
    s->cap = cap;
    s->d_model = cfg->d_model;
    if (cfg->head_dim > 512)
        return hkm_fail(err, HKM_ERR_UNSUPPORTED, "hkp_scores_init: head_dim %d: expected <= 512", cfg->head_dim);
    size_t q = (size_t)s->L * s->H * cap, k = (size_t)s->L * s->KV * cap;
    HKM_ALLOC(s->oracle_q, q, err);
    HKM_ALLOC(s->snap_q, q, err);
    HKM_ALLOC(s->h2o, k, err);
    HKM_ALLOC(s->kvzip, k, err);
    HKM_ALLOC(s->oracle, k, err);
    HKM_ALLOC(s->score[HKP_SC_SNAPKV], k, err);
    HKM_ALLOC(s->score[HKP_SC_KEYDIFF], k, err);
    HKM_ALLOC(s->work, (size_t)cap * cfg->d_model, err);
    s->score[HKP_SC_H2O] = s->h2o;
    s->score[HKP_SC_KVZIP] = s->kvzip;
    return HKM_OK;
}

void hkp_scores_free(hkp_scores *s) {
    if (!s) return;
    free(s->oracle_q);
    free(s->snap_q);
    free(s->h2o);
    free(s->kvzip);
    free(s->oracle);
    free(s->score[HKP_SC_SNAPKV]);
    free(s->score[HKP_SC_KEYDIFF]);
    free(s->work);
    memset(s, 0, sizeof *s);
}

void hkp_scores_reset(hkp_scores *s, int n) {
    s->n = n;
    size_t q = (size_t)s->L * s->H * n, k = (size_t)s->L * s->KV * n;
    memset(s->oracle_q, 0, q * sizeof(float));
    memset(s->snap_q, 0, q * sizeof(float));
    memset(s->h2o, 0, k * sizeof(float));
    memset(s->kvzip, 0, k * sizeof(float));
    memset(s->oracle, 0, k * sizeof(float));
    memset(s->score[HKP_SC_SNAPKV], 0, k * sizeof(float));
    memset(s->score[HKP_SC_KEYDIFF], 0, k * sizeof(float));
}

/* ---------------------------------------------------------------- capture */

static void row_add(float *dst, const float *p, int n) {
    for (int j = 0; j < n; j++) dst[j] += p[j];
}

static void row_max(float *dst, const float *p, int n) {
    for (int j = 0; j < n; j++) dst[j] = p[j] > dst[j] ? p[j] : dst[j];
}

void hkp_scores_add(hkp_scores *s, const hkp_score_params *p, int pass, const hkp_layer_stats *st) {
    int n = s->n, group = s->H / s->KV, l = st->layer;
    int keys = st->n_keys_max < n ? st->n_keys_max : n; // context keys this call saw
    int snap_cols = n - p->snap_window; // keys SnapKV scores (window keys excluded)
    int in_window = pass == HKP_PASS_PREFILL && st->pos0 >= n - p->snap_window;
    for (int h = 0; h < s->H; h++) {
        int kvh = h / group;
        const float *cm = st->colmax + (size_t)h * st->n_keys_max;
        const float *cs = st->colsum + (size_t)h * st->n_keys_max;
        size_t qo = ((size_t)l * s->H + h) * n, ko = ((size_t)l * s->KV + kvh) * n;
        if (pass == HKP_PASS_FUTURE) {
            row_max(s->oracle_q + qo, cm, keys);
        } else if (pass == HKP_PASS_KVZIP) {
            row_max(s->kvzip + ko, cm, keys);
        } else {
            row_add(s->h2o + ko, cs, keys);
            if (in_window && snap_cols > 0) row_add(s->snap_q + qo, cs, keys < snap_cols ? keys : snap_cols);
        }
    }
}

/* ---------------------------------------------------------------- finish */

/* SnapKV for one KV head: pool each query head's window mean, then average. */
static void snapkv_head(hkp_scores *s, const hkp_score_params *p, int l, int kvh) {
    int n = s->n, group = s->H / s->KV, cols = n - p->snap_window, half = p->snap_kernel / 2;
    float *out = s->score[HKP_SC_SNAPKV] + ((size_t)l * s->KV + kvh) * n;
    if (cols <= 0) { // everything is in the window
        for (int j = 0; j < n; j++) out[j] = 1.0f;
        return;
    }
    for (int g = 0; g < group; g++) {
        const float *sq = s->snap_q + ((size_t)l * s->H + kvh * group + g) * n;
        for (int j = 0; j < cols; j++) {
            float acc = p->snap_max ? -FLT_MAX : 0.0f;
            for (int m = j - half; m <= j + half; m++) {
                if (m < 0 || m >= cols) continue; // avg: zero padding, divided by the kernel
                float v = sq[m] / (float)p->snap_window;
                acc = p->snap_max ? (v > acc ? v : acc) : acc + v;
            }
            out[j] += (p->snap_max ? acc : acc / (float)p->snap_kernel) / (float)group;
        }
    }
    float mx = 0.0f;
    for (int j = 0; j < cols; j++) mx = out[j] > mx ? out[j] : mx;
    for (int j = cols; j < n; j++) out[j] = mx;
}

static void keydiff_head(hkp_scores *s, const float *k, int hd, int l, int kvh) {
    int n = s->n;
    float *out = s->score[HKP_SC_KEYDIFF] + ((size_t)l * s->KV + kvh) * n;
    double anchor[512] = {0};
    for (int i = 0; i < n; i++) {
        double nn = 0;
        for (int d = 0; d < hd; d++) nn += (double)k[(size_t)i * hd + d] * k[(size_t)i * hd + d];
        double inv = 1.0 / fmax(sqrt(nn), 1e-12);
        for (int d = 0; d < hd; d++) anchor[d] += k[(size_t)i * hd + d] * inv / n;
    }
    double an = 0;
    for (int d = 0; d < hd; d++) an += anchor[d] * anchor[d];
    an = sqrt(an);
    for (int i = 0; i < n; i++) {
        double dot = 0, nn = 0;
        for (int d = 0; d < hd; d++) {
            dot += anchor[d] * k[(size_t)i * hd + d];
            nn += (double)k[(size_t)i * hd + d] * k[(size_t)i * hd + d];
        }
        out[i] = (float)(-dot / fmax(sqrt(nn) * an, 1e-8)); // torch's cosine_similarity eps
    }
}

/* o_i = max_h max_t a * ||v_i|| (or ||W_o^h v_i|| per query head h). */
static void oracle_head(hkp_scores *s, const hkp_score_params *p, const hkm_model *m,
                        const float *v, int hd, int l, int kvh) {
    int n = s->n, group = s->H / s->KV;
    float *out = s->oracle + ((size_t)l * s->KV + kvh) * n;
    const float *hq0 = s->oracle_q + ((size_t)l * s->H + (size_t)kvh * group) * n;
    if (!p->oracle_wo) { // ||v_i|| once per key, shared by the group
        for (int i = 0; i < n; i++) {
            double nn = 0;
            for (int d = 0; d < hd; d++) nn += (double)v[(size_t)i * hd + d] * v[(size_t)i * hd + d];
            float norm = (float)sqrt(nn);
            for (int g = 0; g < group; g++) {
                float o = hq0[(size_t)g * n + i] * norm;
                out[i] = o > out[i] ? o : out[i];
            }
        }
        return;
    }
    for (int g = 0; g < group; g++) { // work (n, d_model) = V (n, hd) @ W_o[:, h]^T
        int h = kvh * group + g;
        const float *hq = hq0 + (size_t)g * n, *wo = m->layers[l].wo + (size_t)h * hd;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, s->d_model, hd, 1.0f, v, hd,
                    wo, s->H * hd, 0.0f, s->work, s->d_model);
        for (int i = 0; i < n; i++) {
            const float *x = s->work + (size_t)i * s->d_model;
            double nn = 0;
            for (int d = 0; d < s->d_model; d++) nn += (double)x[d] * x[d];
            float o = hq[i] * (float)sqrt(nn);
            out[i] = o > out[i] ? o : out[i];
        }
    }
}

void hkp_scores_finish_head(hkp_scores *s, const hkp_score_params *p, const hkm_model *m,
                            const float *k, const float *v, int l, int kvh) {
    int hd = hkm_model_config(m)->head_dim;
    snapkv_head(s, p, l, kvh);
    keydiff_head(s, k, hd, l, kvh);
    oracle_head(s, p, m, v, hd, l, kvh);
}

void hkp_scores_finish(hkp_scores *s, const hkp_score_params *p, const hkm_model *m,
                       const hkm_kvcache *c) {
    int heads = s->L * s->KV;
    // Heads are independent; the W_o variant shares s->work and calls BLAS: serial.
#pragma omp parallel for schedule(static) if (!p->oracle_wo)
    for (int hi = 0; hi < heads; hi++) {
        const float *k, *v;
        hkm_kvcache_head(c, hi / s->KV, hi % s->KV, &k, &v, NULL);
        hkp_scores_finish_head(s, p, m, k, v, hi / s->KV, hi % s->KV);
    }
}
