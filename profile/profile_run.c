/* Runs one context: chunked prefill capturing every row (H2O, SnapKV), the
 * teacher-forced future window (oracle), a rewind of the cache to the
 * context, the reconstruction pass (KVzip); then curves per head. */
#include "profile_run.h"

#include "hkm_internal.h"

#include <stdlib.h>
#include <string.h>

hkm_status hkp_runner_init(hkp_runner *r, const hkm_model *m, int max_ctx, int max_fut, int n_kvzip,
                           int grid, hkm_err *err) {
    const hkm_config *cfg = hkm_model_config(m);
    int after = max_fut > max_ctx + n_kvzip ? max_fut : max_ctx + n_kvzip;
    r->m = m;
    r->cap_tokens = max_ctx;
    if (r->chunk <= 0) r->chunk = 256;
    r->cp.grid = grid;
    HKM_TRY(hkm_kvcache_create(cfg, max_ctx + after + 1, &r->cache, err));
    HKM_TRY(hkp_scores_init(&r->sc, cfg, max_ctx, err));
    HKM_TRY(hkp_curve_ws_init(&r->ws, max_ctx, err));
    size_t heads = (size_t)cfg->n_layers * cfg->n_kv_heads;
    HKM_ALLOC(r->cur, (size_t)HKP_SC_COUNT * heads * grid, err);
    HKM_ALLOC(r->orc, heads * grid, err);
    HKM_ALLOC(r->ent, (size_t)(HKP_SC_COUNT + 1) * heads, err);
    HKM_ALLOC(r->top, (size_t)(HKP_SC_COUNT + 1) * heads, err);
    HKM_ALLOC(r->rows, r->chunk, err);
    for (int i = 0; i < r->chunk; i++) r->rows[i] = i;
    return HKM_OK;
}

void hkp_runner_free(hkp_runner *r) {
    if (!r) return;
    hkm_kvcache_free(r->cache);
    hkp_scores_free(&r->sc);
    hkp_curve_ws_free(&r->ws);
    free(r->cur); free(r->orc); free(r->ent); free(r->top); free(r->rows);
    memset(r, 0, sizeof *r);
}

/* ---------------------------------------------------------------- passes */

typedef struct {
    hkp_runner *r;
    int pass;
} cap_user;

static void on_layer(void *user, const hkm_layer_capture *lc) {
    cap_user *u = user;
    hkp_scores_capture(&u->r->sc, &u->r->sp, u->pass, lc);
}

/* ids[0..n) in chunks of r->chunk, every row captured. */
static hkm_status run_pass(hkp_runner *r, int pass, const int32_t *ids, int n, hkm_err *err) {
    cap_user u = {r, pass};
    for (int c0 = 0; c0 < n; c0 += r->chunk) {
        int len = n - c0 < r->chunk ? n - c0 : r->chunk;
        hkm_capture cap = {.fn = on_layer, .user = &u, .n_rows = len, .rows = r->rows};
        HKM_TRY(hkm_forward_cpu(r->m, r->cache, ids + c0, len, HKM_LOGITS_NONE, NULL, &cap, err));
        r->tokens_run += len;
    }
    return HKM_OK;
}

hkm_status hkp_run_scores(hkp_runner *r, const int32_t *ids, int n_ctx, int n_fut,
                          const int32_t *kvp, int n_kvp, hkm_err *err) {
    if (n_ctx <= 0 || n_ctx > r->cap_tokens || n_fut <= 0)
        return hkm_fail(err, HKM_ERR_ARG, "hkp_run_scores: context %d tokens, future %d: expected "
                        "1..%d and > 0", n_ctx, n_fut, r->cap_tokens);
    hkm_kvcache_reset(r->cache);
    hkp_scores_reset(&r->sc, n_ctx);
    HKM_TRY(run_pass(r, HKP_PASS_PREFILL, ids, n_ctx, err));
    HKM_TRY(run_pass(r, HKP_PASS_FUTURE, ids + n_ctx, n_fut, err));
    HKM_TRY(hkm_kvcache_rewind(r->cache, n_ctx, err));
    if (r->kvzip) {
        HKM_TRY(run_pass(r, HKP_PASS_KVZIP, kvp, n_kvp, err));
        HKM_TRY(run_pass(r, HKP_PASS_KVZIP, ids, n_ctx, err));
    }
    hkp_scores_finish(&r->sc, &r->sp, r->m, r->cache);
    return HKM_OK;
}

void hkp_run_accumulate(hkp_runner *r, hkp_stats *st) {
    const hkp_scores *s = &r->sc;
    int n = s->n, G = r->cp.grid;
    size_t heads = (size_t)s->L * s->KV;
    r->cp.n = n;
    for (size_t h = 0; h < heads; h++) {
        const float *orc = s->oracle + h * n;
        hkp_loss_curve(&r->cp, orc, orc, &r->ws, r->orc + h * G);
        hkp_selectivity(orc, n, &r->ws, &r->ent[HKP_SC_ORACLE * heads + h], &r->top[HKP_SC_ORACLE * heads + h]);
        for (int k = 0; k < HKP_SC_COUNT; k++) {
            double *cur = r->cur + ((size_t)k * heads + h) * G;
            if (k == HKP_SC_KVZIP && !r->kvzip) {
                memset(cur, 0, (size_t)G * sizeof *cur);
                r->ent[k * heads + h] = r->top[k * heads + h] = 0;
                continue;
            }
            hkp_loss_curve(&r->cp, s->score[k] + h * n, orc, &r->ws, cur);
            hkp_selectivity(s->score[k] + h * n, n, &r->ws, &r->ent[k * heads + h], &r->top[k * heads + h]);
        }
    }
    hkp_stats_add(st, n, r->cur, r->orc, r->ent, r->top);
}
