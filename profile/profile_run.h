/* One context through the model (CPU, or GPU through profile_gpu.h): the
 * prefill, the future window and KVzip's reconstruction pass with per-key
 * column statistics, the scores, then the curves added to the statistics. */
#ifndef HKP_PROFILE_RUN_H
#define HKP_PROFILE_RUN_H

#include "curves.h"
#include "profile_gpu.h"
#include "scorers.h"
#include "stats_file.h"

typedef struct {
    const hkm_model *m;
    int use_gpu;            /* set before init: run on the GPU */
    hkm_kvcache *cache;     /* CPU engine, or NULL */
    hkp_gpu *gpu;           /* GPU engine, or NULL */
    int n_threads;          /* OpenMP threads of the per-head work (scores, curves) */
    float *kbuf, *vbuf;     /* (n_threads, cap_tokens, head_dim) heads read back from the GPU */
    int cap_tokens;         /* longest context the buffers hold */
    int chunk;              /* prefill / reconstruction chunk (rows captured at once) */
    int kvzip;              /* run the reconstruction pass */
    hkp_score_params sp;
    hkp_curve_params cp;    /* n is set per context */
    hkp_scores sc;
    hkp_curve_ws *ws;       /* (n_threads) */
    double *cur, *orc, *ent, *top; /* one context's curves and selectivity */
    long long tokens_run;   /* tokens through the model so far (progress) */
    double t_fwd, t_finish, t_curves; /* seconds in forward calls (with statistics), the
                                         per-head scores, the curves (--bench prints them) */
} hkp_runner;

/* max_ctx, max_fut, n_kvzip: bounds of what will be run (sizes the cache). */
hkm_status hkp_runner_init(hkp_runner *r, const hkm_model *m, int max_ctx, int max_fut, int n_kvzip,
                           int grid, hkm_err *err);
void hkp_runner_free(hkp_runner *r);

/* Fills r->sc for a context ids[0..n_ctx) with future ids[n_ctx..n_ctx+n_fut)
 * and the KVzip prompt kvp (n_kvp ids). */
hkm_status hkp_run_scores(hkp_runner *r, const int32_t *ids, int n_ctx, int n_fut,
                          const int32_t *kvp, int n_kvp, hkm_err *err);

/* A plain chunked prefill of ids[0..n) from an empty cache, no capture (the
 * baseline of the cost ratio). */
hkm_status hkp_run_plain(hkp_runner *r, const int32_t *ids, int n, hkm_err *err);

/* Curves and selectivity of the scores in r->sc, added to st. OpenMP over
 * (head, scorer); each output is one thread's, so the result does not depend
 * on the thread count. */
void hkp_run_accumulate(hkp_runner *r, hkp_stats *st);

#endif
