/* Per-context token scores of one model run: the oracle importance and the
 * base scorers (SnapKV, H2O, KeyDiff, KVzip), each (n_layers, n_kv_heads, n)
 * over the n context tokens. Definitions: docs/stats-format.md. */
#ifndef HKP_SCORERS_H
#define HKP_SCORERS_H

#include "hubkv_model.h"

enum { HKP_SC_SNAPKV = 0, HKP_SC_H2O, HKP_SC_KEYDIFF, HKP_SC_KVZIP, HKP_SC_COUNT };
#define HKP_SC_ORACLE HKP_SC_COUNT /* index of the oracle in selectivity arrays */

const char *hkp_scorer_name(int s);

typedef struct {
    int snap_window;  /* w: last context queries SnapKV observes (32) */
    int snap_kernel;  /* pooling kernel (7) */
    int snap_max;     /* 1: max-pool (the SnapKV), 0: avg-pool (kvpress) */
    int oracle_wo;    /* weight the oracle by ||W_o^h v_i|| instead of ||v_i|| */
} hkp_score_params;

typedef struct {
    int L, KV, H, n;      /* layers, kv heads, query heads, context tokens */
    int cap;              /* tokens the arrays were sized for */
    float *oracle_q;      /* (L, H, n) max over future queries of a_{t,i}, per query head */
    float *snap_q;        /* (L, H, n) sum over the window queries of a_{t,i} */
    float *h2o;           /* (L, KV, n) attention accumulated over context queries and the group */
    float *kvzip;         /* (L, KV, n) max over reconstruction queries and the group */
    float *oracle;        /* (L, KV, n) final oracle o_i */
    float *score[HKP_SC_COUNT]; /* (L, KV, n) final scores; score[H2O], [KVZIP] alias the above */
    float *work;          /* (n, d_model) scratch for the W_o variant */
    int d_model;
} hkp_scores;

hkm_status hkp_scores_init(hkp_scores *s, const hkm_config *cfg, int cap, hkm_err *err);
void hkp_scores_free(hkp_scores *s);
/* Zero everything for a context of n tokens (n <= cap). */
void hkp_scores_reset(hkp_scores *s, int n);

/* Which pass a capture belongs to. */
enum { HKP_PASS_PREFILL = 0, HKP_PASS_FUTURE, HKP_PASS_KVZIP };

/* One layer's per-key column statistics over every query row of one forward
 * call, in host memory (CPU: hkm_layer_capture; GPU: hkm_gpu_layer_stats). */
typedef struct {
    int layer;
    int n, pos0;          /* tokens of the call, absolute position of the first */
    int n_keys_max;       /* row stride */
    const float *colmax;  /* (n_heads, n_keys_max) max over the rows of p(row, key) */
    const float *colsum;  /* (n_heads, n_keys_max) sum over the rows */
} hkp_layer_stats;

/* Accumulates one layer's statistics of a pass; only keys [0, n) are read.
 * Prefill: the cache started empty, and every call lies wholly inside or
 * wholly outside the SnapKV window [n - snap_window, n) (the runner splits
 * its chunks there), so a call's colsum is its share of the window sum. */
void hkp_scores_add(hkp_scores *s, const hkp_score_params *p, int pass, const hkp_layer_stats *st);

/* After the future pass, per KV head, from the head's first n cache entries
 * k, v (n, head_dim): SnapKV pooling and group mean, KeyDiff, and the oracle
 * (W_o from m when oracle_wo). Distinct heads may run in parallel unless
 * oracle_wo (it uses s->work). */
void hkp_scores_finish_head(hkp_scores *s, const hkp_score_params *p, const hkm_model *m,
                            const float *k, const float *v, int l, int kvh);

/* hkp_scores_finish_head for every head of a CPU cache (OpenMP over heads;
 * call it outside BLAS calls). */
void hkp_scores_finish(hkp_scores *s, const hkp_score_params *p, const hkm_model *m,
                       const hkm_kvcache *c);

#endif
