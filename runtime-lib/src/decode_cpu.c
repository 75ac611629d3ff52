/* CPU references of the decode-time operations: append into a cache with
 * spare capacity, the H2O step (accumulated attention + recent window, slot
 * reuse), the sink-attention gate forward and the diversity selector. The
 * CUDA versions (decode.cu, cache.cu) match these exactly, except the gate
 * (expf differs in the last bits). */
#include "decode_common.h"
#include "hubkv_internal.h"
#include "ops_common.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

// ---------------------------------------------------------------------------
// Append

hubkv_status hubkv_append_cpu(uint16_t *k, uint16_t *v, int32_t *pos, const int32_t *off, int32_t *len,
                              int32_t n_heads, int32_t d, const uint16_t *new_k, const uint16_t *new_v, int32_t n_new,
                              int32_t pos0, char *err, size_t cap) {
    if (!k || !v || !pos || !off || !len || !new_k || !new_v || n_heads <= 0 || d <= 0 || n_new < 0)
        return hkv_fail(err, cap, HUBKV_ERR_INVALID_ARG, "append: NULL array, n_heads %d, head_dim %d or n_new %d",
                        n_heads, d, n_new);
    for (int32_t h = 0; h < n_heads; h++) /* check all heads first: all or nothing */
        if ((int64_t)len[h] + n_new > (int64_t)off[h + 1] - off[h])
            return hkv_fail(err, cap, HUBKV_ERR_RANGE, "append: head %d holds %d of %d rows; %d more do not fit", h,
                            len[h], off[h + 1] - off[h], n_new);
    for (int32_t h = 0; h < n_heads; h++) {
        for (int32_t r = 0; r < n_new; r++) {
            size_t dst = (size_t)off[h] + (size_t)len[h] + (size_t)r, src = (size_t)h * n_new + (size_t)r;
            memcpy(k + dst * d, new_k + src * d, (size_t)d * sizeof *k);
            memcpy(v + dst * d, new_v + src * d, (size_t)d * sizeof *v);
            pos[dst] = pos0 + r;
        }
        len[h] += n_new;
    }
    return HUBKV_OK;
}

// ---------------------------------------------------------------------------
// H2O

hubkv_status hubkv_h2o_step_cpu(float *acc, int32_t *pos, const int32_t *off, int32_t *len, int32_t n_heads,
                                const float *attn, int32_t new_pos, int32_t n_sink, int32_t n_recent, int32_t *slot,
                                char *err, size_t cap) {
    if (!acc || !pos || !off || !len || !attn || !slot || n_heads <= 0 || n_sink < 0 || n_recent < 0)
        return hkv_fail(err, cap, HUBKV_ERR_INVALID_ARG, "h2o: NULL array, n_heads %d, n_sink %d or n_recent %d",
                        n_heads, n_sink, n_recent);
    for (int32_t h = 0; h < n_heads; h++) {
        int32_t o = off[h], c = off[h + 1] - off[h], l = len[h];
        if (l < 0 || l > c || c <= 0)
            return hkv_fail(err, cap, HUBKV_ERR_RANGE, "h2o: head %d has len %d, capacity %d; expected 0 <= len <= cap, cap > 0",
                            h, l, c);
        for (int32_t r = 0; r < l; r++) acc[o + r] += attn[o + r];
        int32_t s = -1;
        if (l < c) {
            s = l, len[h] = l + 1;
        } else {
            for (int32_t r = 0; r < l; r++)
                if (hkv_h2o_evictable(pos[o + r], new_pos, n_sink, n_recent) && (s < 0 || acc[o + r] < acc[o + s])) s = r;
            if (s < 0)
                return hkv_fail(err, cap, HUBKV_ERR_RANGE,
                                "h2o: head %d is full (%d rows) and every row is a sink or recent; expected capacity > "
                                "n_sink + n_recent",
                                h, c);
        }
        acc[o + s] = 0.0f;
        pos[o + s] = new_pos;
        slot[h] = o + s;
    }
    return HUBKV_OK;
}

// ---------------------------------------------------------------------------
// Sink-attention gate

hubkv_status hkv_check_gate(const hubkv_gate_weights *w, int64_t n, char *err, size_t cap) {
    if (!w) return hkv_fail(err, cap, HUBKV_ERR_INVALID_ARG, "gate: weights must be non-NULL");
    if (w->d_model <= 0 || w->n_kv_heads <= 0 || w->n_group <= 0 || w->rank <= 0 || w->rank > HKV_GATE_MAX_RANK ||
        w->n_sink < 0 || w->n_sink > HKV_GATE_MAX_SINK || !(w->eps > 0.0f) || n < 0 || n > INT32_MAX)
        return hkv_fail(err, cap, HUBKV_ERR_INVALID_ARG,
                        "gate: d_model %d, n_kv_heads %d, n_group %d, rank %d (1..%d), n_sink %d (0..%d), eps %g, n %lld",
                        w->d_model, w->n_kv_heads, w->n_group, w->rank, HKV_GATE_MAX_RANK, w->n_sink,
                        HKV_GATE_MAX_SINK, w->eps, (long long)n);
    if (!w->wq || !w->bq || !w->wk || !w->q_norm || !w->k_norm || !w->b || (w->n_sink && !w->k_base))
        return hkv_fail(err, cap, HUBKV_ERR_INVALID_ARG, "gate: a weight array is NULL");
    return HUBKV_OK;
}

hubkv_status hubkv_gate_forward_cpu(const hubkv_gate_weights *w, const float *x, int64_t n, float *out, char *err,
                                    size_t cap) {
    hubkv_status st = hkv_check_gate(w, n, err, cap);
    if (st) return st;
    if (!x || !out) return hkv_fail(err, cap, HUBKV_ERR_INVALID_ARG, "gate: NULL x or out");
    int32_t H = w->n_kv_heads, r = w->rank;
    for (int64_t t = 0; t < n; t++) {
        const float *xt = x + (size_t)t * w->d_model;
        for (int32_t h = 0; h < H; h++) {
            float k[HKV_GATE_MAX_RANK];
            hkv_gate_proj(w->wk + (size_t)h * r * w->d_model, NULL, xt, w->d_model, r, k);
            hkv_gate_rmsnorm(k, w->k_norm, r, w->eps);
            float sum = 0.0f;
            for (int32_t g = 0; g < w->n_group; g++) {
                float q[HKV_GATE_MAX_RANK];
                size_t row = ((size_t)h * w->n_group + g) * r;
                hkv_gate_proj(w->wq + row * w->d_model, w->bq + row, xt, w->d_model, r, q);
                hkv_gate_rmsnorm(q, w->q_norm, r, w->eps);
                sum += hkv_gate_prob(q, k, w->k_base + (size_t)h * w->n_sink * r, w->n_sink, r,
                                     w->b[(size_t)h * w->n_group + g]);
            }
            out[(size_t)h * n + t] = sum / (float)w->n_group;
        }
    }
    return HUBKV_OK;
}

/* Looks up one gate tensor and checks its shape. */
static hubkv_status gate_tensor(hubkv_profile *p, int32_t layer, const char *name, int ndim, const int64_t *shape,
                                const float **out, char *err, size_t cap) {
    const hubkv_gate_tensor *t = hubkv_profile_gate(p, layer, name);
    if (!t) return hkv_fail(err, cap, HUBKV_ERR_FORMAT, "gate: /gate/layer_%d/%s is missing", layer, name);
    int ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = shape[i] < 0 || t->shape[i] == shape[i];
    if (!ok)
        return hkv_fail(err, cap, HUBKV_ERR_FORMAT, "gate: /gate/layer_%d/%s has rank %d, shape[0] %lld; expected rank %d, shape[0] %lld",
                        layer, name, t->ndim, (long long)t->shape[0], ndim, (long long)shape[0]);
    *out = t->data;
    return HUBKV_OK;
}

hubkv_status hubkv_profile_gate_weights(hubkv_profile *p, int32_t layer, hubkv_gate_weights *w) {
    if (!p || !w) return HUBKV_ERR_INVALID_ARG;
    char err[HKV_ERR_CAP];
    const hubkv_gate_tensor *kb = hubkv_profile_gate(p, layer, "k_base"), *b = hubkv_profile_gate(p, layer, "b");
    const hubkv_gate_tensor *kn = hubkv_profile_gate(p, layer, "k_norm_weight");
    const hubkv_gate_tensor *wk = hubkv_profile_gate(p, layer, "k_proj_weight");
    if (!kb || !b || !kn || !wk || kb->ndim != 3 || b->ndim != 2 || kn->ndim != 1 || wk->ndim != 2) {
        hkv_fail(err, sizeof err, HUBKV_ERR_FORMAT,
                 "gate: layer %d needs k_base (H,S,r), b (H,G), k_norm_weight (r), k_proj_weight (H*r, d_model)", layer);
        return hkv_profile_set_error(p, HUBKV_ERR_FORMAT, err);
    }
    hubkv_gate_weights x = {0};
    x.n_kv_heads = (int32_t)kb->shape[0], x.n_sink = (int32_t)kb->shape[1], x.rank = (int32_t)kb->shape[2];
    x.n_group = (int32_t)b->shape[1], x.d_model = (int32_t)wk->shape[1], x.eps = 1e-6f;
    int64_t H = x.n_kv_heads, G = x.n_group, r = x.rank, D = x.d_model;
    int64_t s_wq[2] = {H * G * r, D}, s_bq[1] = {H * G * r}, s_wk[2] = {H * r, D}, s_r[1] = {r};
    int64_t s_kb[3] = {H, x.n_sink, r}, s_b[2] = {H, G};
    hubkv_status st = HUBKV_OK;
    if (!st) st = gate_tensor(p, layer, "q_proj_weight", 2, s_wq, &x.wq, err, sizeof err);
    if (!st) st = gate_tensor(p, layer, "q_proj_bias", 1, s_bq, &x.bq, err, sizeof err);
    if (!st) st = gate_tensor(p, layer, "k_proj_weight", 2, s_wk, &x.wk, err, sizeof err);
    if (!st) st = gate_tensor(p, layer, "q_norm_weight", 1, s_r, &x.q_norm, err, sizeof err);
    if (!st) st = gate_tensor(p, layer, "k_norm_weight", 1, s_r, &x.k_norm, err, sizeof err);
    if (!st) st = gate_tensor(p, layer, "k_base", 3, s_kb, &x.k_base, err, sizeof err);
    if (!st) st = gate_tensor(p, layer, "b", 2, s_b, &x.b, err, sizeof err);
    if (!st) st = hkv_check_gate(&x, 0, err, sizeof err);
    if (st) return hkv_profile_set_error(p, st, err);
    *w = x;
    return HUBKV_OK;
}

// ---------------------------------------------------------------------------
// Diversity selector

hubkv_status hkv_check_diverse(int32_t n_heads, int64_t n, int32_t d, const int32_t *off, float lambda,
                               int32_t n_sink, int32_t n_recent, char *err, size_t cap) {
    if (d <= 0 || d > HKV_DIV_MAX_DIM || !isfinite(lambda) || lambda < 0.0f)
        return hkv_fail(err, cap, HUBKV_ERR_INVALID_ARG, "diverse: head_dim %d (1..%d) or lambda %g (finite, >= 0)", d,
                        HKV_DIV_MAX_DIM, lambda);
    return hkv_check_topk(n_heads, n, off, n_sink, n_recent, err, cap);
}

hubkv_status hubkv_diverse_cpu(const float *scores, const uint16_t *v, int32_t n_heads, int64_t n, int32_t d,
                               const int32_t *off, float lambda, int32_t n_sink, int32_t n_recent, int32_t *idx,
                               char *err, size_t cap) {
    hubkv_status st = hkv_check_diverse(n_heads, n, d, off, lambda, n_sink, n_recent, err, cap);
    if (st) return st;
    if (!scores || !v || !idx) return hkv_fail(err, cap, HUBKV_ERR_INVALID_ARG, "diverse: NULL array");
    float *red = hkv_calloc((size_t)n, sizeof *red), *inv = hkv_calloc((size_t)n, sizeof *inv);
    unsigned char *sel = hkv_calloc((size_t)n, 1);
    if (!red || !inv || !sel) {
        free(red), free(inv), free(sel);
        return hkv_fail(err, cap, HUBKV_ERR_NOMEM, "diverse: out of memory for N = %lld", (long long)n);
    }
    for (int32_t h = 0; h < n_heads; h++) {
        const float *sh = scores + (size_t)h * n;
        const uint16_t *vh = v + (size_t)h * n * d;
        int64_t k = (int64_t)off[h + 1] - off[h], taken = 0;
        for (int64_t i = 0; i < n; i++) inv[i] = hkv_div_inv_norm(vh + (size_t)i * d, d), red[i] = 0.0f, sel[i] = 0;
        /* Forced tokens first (ascending), then the greedy picks. */
        for (int64_t i = 0; i < n; i++) {
            if (!hkv_is_forced(i, n, n_sink, n_recent)) continue;
            sel[i] = 1, taken++;
            for (int64_t j = 0; j < n; j++)
                red[j] = fmaxf(red[j], hkv_div_cos(vh + (size_t)j * d, vh + (size_t)i * d, inv[j], inv[i], d));
        }
        for (; taken < k; taken++) {
            int64_t best = -1;
            float bg = 0.0f;
            for (int64_t i = 0; i < n; i++) {
                if (sel[i]) continue;
                float gi = hkv_div_gain(sh[i], red[i], lambda);
                if (best < 0 || gi > bg) best = i, bg = gi;
            }
            sel[best] = 1;
            for (int64_t j = 0; j < n; j++)
                red[j] = fmaxf(red[j], hkv_div_cos(vh + (size_t)j * d, vh + (size_t)best * d, inv[j], inv[best], d));
        }
        int32_t *o = idx + off[h];
        for (int64_t i = 0; i < n; i++)
            if (sel[i]) *o++ = (int32_t)i;
    }
    free(red), free(inv), free(sel);
    return HUBKV_OK;
}
