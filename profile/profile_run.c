/* Runs one context: chunked prefill with column sums (H2O; SnapKV from the
 * calls of the observation window, split off), the teacher-forced future
 * window with column maxima (oracle), a rewind of the cache to the context,
 * the per-head scores that read the cached K/V, the reconstruction pass
 * (KVzip); then curves per head. No probability rows are copied: the engine
 * reduces them to per-key statistics inside its attention. */
#include "profile_run.h"

#include "hkm_internal.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

hkm_status hkp_runner_init(hkp_runner *r, const hkm_model *m, int max_ctx, int max_fut, int n_kvzip,
                           int grid, hkm_err *err) {
    const hkm_config *cfg = hkm_model_config(m);
    int after = max_fut > max_ctx + n_kvzip ? max_fut : max_ctx + n_kvzip;
    r->m = m;
    r->cap_tokens = max_ctx;
    if (r->chunk <= 0) r->chunk = r->use_gpu ? 1024 : 256;
    r->cp.grid = grid;
    r->n_threads = omp_get_max_threads();
    if (r->use_gpu) {
        size_t head = (size_t)max_ctx * cfg->head_dim;
        HKM_TRY(hkp_gpu_open(m, r->chunk, max_ctx + after + 1, &r->gpu, err));
        HKM_ALLOC(r->kbuf, r->n_threads * head, err);
        HKM_ALLOC(r->vbuf, r->n_threads * head, err);
    } else {
        HKM_TRY(hkm_kvcache_create(cfg, max_ctx + after + 1, &r->cache, err));
    }
    HKM_TRY(hkp_scores_init(&r->sc, cfg, max_ctx, err));
    HKM_ALLOC(r->ws, r->n_threads, err);
    for (int t = 0; t < r->n_threads; t++) HKM_TRY(hkp_curve_ws_init(&r->ws[t], max_ctx, err));
    size_t heads = (size_t)cfg->n_layers * cfg->n_kv_heads;
    HKM_ALLOC(r->cur, (size_t)HKP_SC_COUNT * heads * grid, err);
    HKM_ALLOC(r->orc, heads * grid, err);
    HKM_ALLOC(r->ent, (size_t)(HKP_SC_COUNT + 1) * heads, err);
    HKM_ALLOC(r->top, (size_t)(HKP_SC_COUNT + 1) * heads, err);
    return HKM_OK;
}

void hkp_runner_free(hkp_runner *r) {
    if (!r) return;
    hkm_kvcache_free(r->cache);
    hkp_gpu_free(r->gpu);
    free(r->kbuf); free(r->vbuf);
    hkp_scores_free(&r->sc);
    for (int t = 0; r->ws && t < r->n_threads; t++) hkp_curve_ws_free(&r->ws[t]);
    free(r->ws);
    free(r->cur); free(r->orc); free(r->ent); free(r->top);
    memset(r, 0, sizeof *r);
}

/* ---------------------------------------------------------------- passes */

typedef struct {
    hkp_runner *r;
    int pass;
} cap_user;

static void on_stats(void *user, const hkp_layer_stats *st) {
    cap_user *u = user;
    hkp_scores_add(&u->r->sc, &u->r->sp, u->pass, st);
}

static void on_layer(void *user, const hkm_layer_capture *lc) {
    hkp_layer_stats st = {.layer = lc->layer, .n = lc->n, .pos0 = lc->pos0,
                          .n_keys_max = lc->n_keys_max, .colmax = lc->colmax, .colsum = lc->colsum};
    if (lc->colmax) on_stats(user, &st);
}

/* One call of len tokens on either engine; u == NULL: no statistics. */
static hkm_status forward(hkp_runner *r, const int32_t *ids, int len, cap_user *u, hkm_err *err) {
    r->tokens_run += len;
    if (r->gpu) return hkp_gpu_forward(r->gpu, ids, len, u ? on_stats : NULL, u, err);
    hkm_capture cap = {.fn = on_layer, .user = u, .stat_row0 = 0, .stat_row1 = len};
    return hkm_forward_cpu(r->m, r->cache, ids, len, HKM_LOGITS_NONE, NULL, u ? &cap : NULL, err);
}

/* A GPU pass: only the statistic the pass reads (prefill: sums; future and
 * reconstruction: maxima) of the context's keys, accumulated on the device
 * and copied once; the SnapKV window [split, n) is a part of its own. */
static hkm_status gpu_pass(hkp_runner *r, int pass, const int32_t *ids, int n, int split,
                           hkm_err *err) {
    cap_user u = {r, pass};
    int which = pass == HKP_PASS_PREFILL ? HKP_STAT_SUM : HKP_STAT_MAX;
    HKM_TRY(hkp_gpu_acc_begin(r->gpu, which, r->sc.n, err));
    for (int c0 = 0; c0 < n;) {
        int end = c0 + r->chunk < n ? c0 + r->chunk : n;
        if (c0 < split && split < end) end = split;
        if (c0 > 0 && c0 == split) {
            HKM_TRY(hkp_gpu_acc_flush(r->gpu, on_stats, &u, err));
            HKM_TRY(hkp_gpu_acc_begin(r->gpu, which, r->sc.n, err));
        }
        r->tokens_run += end - c0;
        HKM_TRY(hkp_gpu_acc_forward(r->gpu, ids + c0, end - c0, err));
        c0 = end;
    }
    return hkp_gpu_acc_flush(r->gpu, on_stats, &u, err);
}

/* ids[0..n) in chunks of r->chunk, with a chunk boundary at split too (the
 * SnapKV window's start; ignored outside (0, n)). */
static hkm_status run_pass(hkp_runner *r, int pass, const int32_t *ids, int n, int split,
                           hkm_err *err) {
    cap_user u = {r, pass};
    double t0 = now_s();
    if (r->gpu && pass >= 0) {
        hkm_status st = gpu_pass(r, pass, ids, n, split, err);
        r->t_fwd += now_s() - t0;
        return st;
    }
    for (int c0 = 0; c0 < n;) {
        int end = c0 + r->chunk < n ? c0 + r->chunk : n;
        if (c0 < split && split < end) end = split;
        HKM_TRY(forward(r, ids + c0, end - c0, pass < 0 ? NULL : &u, err));
        c0 = end;
    }
    r->t_fwd += now_s() - t0;
    return HKM_OK;
}

static void reset(hkp_runner *r) {
    if (r->gpu) hkp_gpu_reset(r->gpu);
    else hkm_kvcache_reset(r->cache);
}

hkm_status hkp_run_plain(hkp_runner *r, const int32_t *ids, int n, hkm_err *err) {
    reset(r);
    return run_pass(r, -1, ids, n, -1, err);
}

/* Per-head scores on the GPU path: each thread reads its heads' K/V back into
 * its own buffers (the bf16 -> fp32 conversion runs in parallel too). Every
 * head runs; the error reported is the lowest failing head's. */
static hkm_status finish_gpu(hkp_runner *r, int n_ctx, hkm_err *err) {
    int heads = r->sc.L * r->sc.KV, bad = heads, hd = hkm_model_config(r->m)->head_dim;
    hkm_status st = HKM_OK;
#pragma omp parallel for schedule(static) num_threads(r->n_threads) if (!r->sp.oracle_wo)
    for (int hi = 0; hi < heads; hi++) {
        size_t off = (size_t)omp_get_thread_num() * r->cap_tokens * hd;
        int l = hi / r->sc.KV, h = hi % r->sc.KV;
        hkm_err e;
        hkm_status s = hkp_gpu_read_head(r->gpu, l, h, n_ctx, r->kbuf + off, r->vbuf + off, &e);
        if (s == HKM_OK) {
            hkp_scores_finish_head(&r->sc, &r->sp, r->m, r->kbuf + off, r->vbuf + off, l, h);
            continue;
        }
#pragma omp critical(hkp_finish_err)
        if (hi < bad) {
            bad = hi;
            st = s;
            *err = e;
        }
    }
    return st;
}

/* Back to the context only (positions too, so KVzip's reconstruction sits
 * right after it); then the scores that read its K/V. */
static hkm_status rewind_and_finish(hkp_runner *r, int n_ctx, hkm_err *err) {
    if (!r->gpu) {
        HKM_TRY(hkm_kvcache_rewind(r->cache, n_ctx, err));
        hkp_scores_finish(&r->sc, &r->sp, r->m, r->cache);
        return HKM_OK;
    }
    HKM_TRY(hkp_gpu_rewind(r->gpu, n_ctx, err));
    return finish_gpu(r, n_ctx, err);
}

hkm_status hkp_run_scores(hkp_runner *r, const int32_t *ids, int n_ctx, int n_fut,
                          const int32_t *kvp, int n_kvp, hkm_err *err) {
    if (n_ctx <= 0 || n_ctx > r->cap_tokens || n_fut <= 0)
        return hkm_fail(err, HKM_ERR_ARG, "hkp_run_scores: context %d tokens, future %d: expected "
                        "1..%d and > 0", n_ctx, n_fut, r->cap_tokens);
    reset(r);
    hkp_scores_reset(&r->sc, n_ctx);
    HKM_TRY(run_pass(r, HKP_PASS_PREFILL, ids, n_ctx, n_ctx - r->sp.snap_window, err));
    HKM_TRY(run_pass(r, HKP_PASS_FUTURE, ids + n_ctx, n_fut, -1, err));
    double t0 = now_s();
    HKM_TRY(rewind_and_finish(r, n_ctx, err));
    r->t_finish += now_s() - t0;
    if (r->kvzip) {
        HKM_TRY(run_pass(r, HKP_PASS_KVZIP, kvp, n_kvp, -1, err));
        HKM_TRY(run_pass(r, HKP_PASS_KVZIP, ids, n_ctx, -1, err));
    }
    return HKM_OK;
}

/* One (head, scorer) task: k == HKP_SC_COUNT is the oracle's own ranking. */
static void curve_task(hkp_runner *r, hkp_curve_ws *w, size_t h, int k) {
    const hkp_scores *s = &r->sc;
    int n = s->n, G = r->cp.grid;
    size_t heads = (size_t)s->L * s->KV;
    const float *orc = s->oracle + h * n;
    double *ent = &r->ent[k * heads + h], *top = &r->top[k * heads + h];
    if (k == HKP_SC_ORACLE) {
        hkp_loss_curve(&r->cp, orc, orc, w, r->orc + h * G);
        hkp_selectivity(orc, n, w, ent, top);
        return;
    }
    double *cur = r->cur + ((size_t)k * heads + h) * G;
    if (k == HKP_SC_KVZIP && !r->kvzip) {
        memset(cur, 0, (size_t)G * sizeof *cur);
        *ent = *top = 0;
        return;
    }
    hkp_loss_curve(&r->cp, s->score[k] + h * n, orc, w, cur);
    hkp_selectivity(s->score[k] + h * n, n, w, ent, top);
}

void hkp_run_accumulate(hkp_runner *r, hkp_stats *st) {
    const hkp_scores *s = &r->sc;
    double t0 = now_s();
    long heads = (long)s->L * s->KV, tasks = heads * (HKP_SC_COUNT + 1);
    r->cp.n = s->n;
    // Head-major task order spreads the cheap skipped KVzip tasks over the threads.
#pragma omp parallel for schedule(static) num_threads(r->n_threads)
    for (long t = 0; t < tasks; t++)
        curve_task(r, &r->ws[omp_get_thread_num()], (size_t)(t / (HKP_SC_COUNT + 1)),
                   (int)(t % (HKP_SC_COUNT + 1)));
    hkp_stats_add(st, s->n, r->cur, r->orc, r->ent, r->top);
    r->t_curves += now_s() - t0;
}
