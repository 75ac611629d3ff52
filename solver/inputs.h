/* Inputs of hubkv-solve: the stats file of hubkv-profile (means for one
 * scorer) and the model's fingerprint from its config. */
#ifndef HKS_INPUTS_H
#define HKS_INPUTS_H

#include "hkm_internal.h"
#include "hubkv.h"

#include <stdint.h>

/* Scorer index as in the stats file: 0 snapkv, 1 h2o, 2 keydiff, 3 kvzip,
 * 4 oracle (the oracle-metric curves); -1 if the name is unknown. */
int hks_scorer_index(const char *name);

typedef struct {
    int32_t L, H, G;
    double *grid;        /* (G) */
    double *loss;        /* (L, H, G) mean loss of the scorer over all contexts */
    double *entropy;     /* (L, H) mean normalised entropy of the scorer's scores */
    double *top1;        /* (L, H) mean top-1% mass */
    double *beta;        /* (L, H) mean/beta of the scorer */
    double n_contexts;   /* contexts in the sums */
    double mean_tokens;  /* mean context length */
    int32_t sink, recent;
    char model[512], calib[512];
} hks_stats_in;

/* Reads and averages the stats; refuses an incomplete run, no contexts, or
 * kvzip when it was not computed. */
hkm_status hks_stats_load(const char *path, int scorer, hks_stats_in *s, hkm_err *err);
void hks_stats_in_free(hks_stats_in *s);

/* Model description for the profile fingerprint from a .gguf file or an HF
 * directory (config.json); arch points to a static string. hash: FNV-1a 64
 * of the shape-defining config fields (hks_config_hash). */
hkm_status hks_model_desc_load(const char *path, hubkv_model_desc *d, hkm_err *err);
uint64_t hks_config_hash(const hkm_config *c);

#endif
