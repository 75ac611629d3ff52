/* CPU references of the runtime operations: HubKV refinement, per-head
 * Top-K and compaction into the flattened variable-length cache. The CUDA
 * kernels (ops.cu) must match these exactly (index sets, bf16 rows) or to
 * the last bit (refinement: both sides use fmaf in the same order). */
#include "hubkv_internal.h"
#include "ops_common.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

hubkv_refine_params hubkv_refine_default_params(void) {
    hubkv_refine_params p = {5, 0.5f, 0.0f, 0.0f};
    return p;
}

hubkv_status hkv_check_refine(const hubkv_refine_params *p, int32_t n_heads, int64_t n_tokens, char *err,
                              size_t cap) {
    if (!p) return hkv_fail(err, cap, HUBKV_ERR_INVALID_ARG, "refine: params must be non-NULL");
    if (p->width < 1 || p->width % 2 == 0 || p->width > 63)
        return hkv_fail(err, cap, HUBKV_ERR_INVALID_ARG, "refine: width %d; expected an odd value in [1, 63]", p->width);
    if (!(p->ratio >= 0.0f && p->ratio <= 1.0f) || !isfinite(p->discount) || !isfinite(p->ratio_gate))
        return hkv_fail(err, cap, HUBKV_ERR_INVALID_ARG, "refine: ratio %g (expected [0,1]), discount %g, ratio_gate %g",
                        p->ratio, p->discount, p->ratio_gate);
    if (n_heads <= 0 || n_tokens <= 0 || n_tokens > INT32_MAX)
        return hkv_fail(err, cap, HUBKV_ERR_INVALID_ARG, "refine: n_heads %d, n_tokens %lld; expected > 0, N < 2^31",
                        n_heads, (long long)n_tokens);
    return HUBKV_OK;
}

/* ------------------------------------------------------------------------ */
/* Refinement                                                                */

hubkv_status hubkv_refine_cpu(const float *s, const float *beta, int32_t n_heads, int64_t n, const hubkv_refine_params *p,
                              float *out, char *err, size_t cap) {
    hubkv_status st = hkv_check_refine(p, n_heads, n, err, cap);
    if (st) return st;
    if (!s || !beta || !out) return hkv_fail(err, cap, HUBKV_ERR_INVALID_ARG, "refine: NULL array");
    int on = p->ratio >= p->ratio_gate;
    float r2 = p->ratio * p->ratio;
    int64_t half = p->width / 2;
    for (int32_t h = 0; h < n_heads; h++) {
        const float *sh = s + (size_t)h * n;
        float *zh = out + (size_t)h * n;
        for (int64_t i = 0; i < n; i++) {
            if (!on) {
                zh[i] = sh[i];
                continue;
            }
            int64_t a = i - half < 0 ? 0 : i - half, b = i + half >= n ? n - 1 : i + half;
            float m = sh[a];
            for (int64_t j = a + 1; j <= b; j++) m = fmaxf(m, sh[j]);
            zh[i] = hkv_refine_one(sh[i], m, beta[h], p->discount, r2);
        }
    }
    return HUBKV_OK;
}

/* ------------------------------------------------------------------------ */
/* Top-K                                                                     */

static const float *sort_scores; /* comparator context (reference code only) */

static int by_key_desc(const void *a, const void *b) {
    int32_t i = *(const int32_t *)a, j = *(const int32_t *)b;
    uint32_t ki = hkv_float_key(sort_scores[i]), kj = hkv_float_key(sort_scores[j]);
    if (ki != kj) return ki > kj ? -1 : 1;
    return i < j ? -1 : 1;
}

hubkv_status hkv_check_topk(int32_t n_heads, int64_t n, const int32_t *off, int32_t n_sink, int32_t n_recent,
                            char *err, size_t cap) {
    if (n_heads <= 0 || n <= 0 || n > INT32_MAX || n_sink < 0 || n_recent < 0 || !off)
        return hkv_fail(err, cap, HUBKV_ERR_INVALID_ARG,
                        "topk: n_heads %d, n_tokens %lld, n_sink %d, n_recent %d; expected > 0, N < 2^31, >= 0, offsets",
                        n_heads, (long long)n, n_sink, n_recent);
    if (off[0] != 0) return hkv_fail(err, cap, HUBKV_ERR_INVALID_ARG, "topk: offsets[0] = %d; expected 0", off[0]);
    int64_t forced = hkv_n_forced(n, n_sink, n_recent);
    for (int32_t h = 0; h < n_heads; h++) {
        int64_t k = (int64_t)off[h + 1] - off[h];
        if (k < forced || k > n)
            return hkv_fail(err, cap, HUBKV_ERR_RANGE,
                            "topk: head %d keeps k = %lld; expected %lld (sinks + recent) <= k <= N = %lld", h,
                            (long long)k, (long long)forced, (long long)n);
    }
    return HUBKV_OK;
}

hubkv_status hubkv_topk_cpu(const float *scores, int32_t n_heads, int64_t n, const int32_t *off, int32_t n_sink,
                            int32_t n_recent, int32_t *idx, char *err, size_t cap) {
    hubkv_status st = hkv_check_topk(n_heads, n, off, n_sink, n_recent, err, cap);
    if (st) return st;
    if (!scores || !idx) return hkv_fail(err, cap, HUBKV_ERR_INVALID_ARG, "topk: NULL array");
    int32_t *cand = hkv_calloc((size_t)n, sizeof *cand);
    unsigned char *keep = hkv_calloc((size_t)n, 1);
    if (!cand || !keep) {
        free(cand), free(keep);
        return hkv_fail(err, cap, HUBKV_ERR_NOMEM, "topk: out of memory for N = %lld", (long long)n);
    }
    for (int32_t h = 0; h < n_heads; h++) {
        const float *sh = scores + (size_t)h * n;
        int64_t k = (int64_t)off[h + 1] - off[h], nc = 0, forced = 0;
        for (int64_t i = 0; i < n; i++) {
            keep[i] = hkv_is_forced(i, n, n_sink, n_recent);
            forced += keep[i];
            if (!keep[i]) cand[nc++] = (int32_t)i;
        }
        sort_scores = sh;
        qsort(cand, (size_t)nc, sizeof *cand, by_key_desc);
        for (int64_t j = 0; j < k - forced; j++) keep[cand[j]] = 1;
        int32_t *o = idx + off[h];
        for (int64_t i = 0; i < n; i++)
            if (keep[i]) *o++ = (int32_t)i;
    }
    free(cand), free(keep);
    return HUBKV_OK;
}

/* ------------------------------------------------------------------------ */
/* Compaction                                                                */

hubkv_status hubkv_compact_cpu(const uint16_t *in_k, const uint16_t *in_v, const int32_t *in_pos, const int32_t *in_off,
                               int32_t n_heads, int32_t d, const int32_t *keep_idx, const int32_t *keep_off,
                               uint16_t *out_k, uint16_t *out_v, int32_t *out_pos, char *err, size_t cap) {
    if (!in_k || !in_v || !in_pos || !in_off || !keep_idx || !keep_off || !out_k || !out_v || !out_pos ||
        n_heads <= 0 || d <= 0)
        return hkv_fail(err, cap, HUBKV_ERR_INVALID_ARG, "compact: NULL array or n_heads %d / head_dim %d <= 0",
                        n_heads, d);
    for (int32_t h = 0; h < n_heads; h++) {
        int32_t len = in_off[h + 1] - in_off[h];
        for (int32_t j = keep_off[h]; j < keep_off[h + 1]; j++) {
            int32_t r = keep_idx[j];
            if (r < 0 || r >= len)
                return hkv_fail(err, cap, HUBKV_ERR_RANGE, "compact: keep_idx[%d] = %d for head %d; expected [0, %d)", j,
                                r, h, len);
            size_t src = (size_t)in_off[h] + (size_t)r;
            memcpy(out_k + (size_t)j * d, in_k + src * d, (size_t)d * sizeof *out_k);
            memcpy(out_v + (size_t)j * d, in_v + src * d, (size_t)d * sizeof *out_v);
            out_pos[j] = in_pos[src];
        }
    }
    return HUBKV_OK;
}
