/* One context through the model on the CPU: the prefill, the future window
 * and KVzip's reconstruction pass with capture, the scores, then the curves
 * added to the statistics. */
#ifndef HKP_PROFILE_RUN_H
#define HKP_PROFILE_RUN_H

#include "curves.h"
#include "scorers.h"
#include "stats_file.h"

typedef struct {
    const hkm_model *m;
    hkm_kvcache *cache;
    int cap_tokens;         /* longest context the buffers hold */
    int chunk;              /* prefill / reconstruction chunk (rows captured at once) */
    int kvzip;              /* run the reconstruction pass */
    hkp_score_params sp;
    hkp_curve_params cp;    /* n is set per context */
    hkp_scores sc;
    hkp_curve_ws ws;
    double *cur, *orc, *ent, *top; /* one context's curves and selectivity */
    int *rows;              /* (chunk) 0..chunk-1 */
    long long tokens_run;   /* tokens through the model so far (progress) */
} hkp_runner;

/* max_ctx, max_fut, n_kvzip: bounds of what will be run (sizes the cache). */
hkm_status hkp_runner_init(hkp_runner *r, const hkm_model *m, int max_ctx, int max_fut, int n_kvzip,
                           int grid, hkm_err *err);
void hkp_runner_free(hkp_runner *r);

/* Fills r->sc for a context ids[0..n_ctx) with future ids[n_ctx..n_ctx+n_fut)
 * and the KVzip prompt kvp (n_kvp ids). */
hkm_status hkp_run_scores(hkp_runner *r, const int32_t *ids, int n_ctx, int n_fut,
                          const int32_t *kvp, int n_kvp, hkm_err *err);

/* Curves and selectivity of the scores in r->sc, added to st. */
void hkp_run_accumulate(hkp_runner *r, hkp_stats *st);

#endif
