/* Per-head loss curves and selectivity statistics of one context. */
#ifndef HKP_CURVES_H
#define HKP_CURVES_H

#include "hubkv_model.h"

#include <stdint.h>

typedef struct {
    int n;          /* context tokens */
    int sink;       /* first tokens always kept (4) */
    int recent;     /* last tokens always kept (32) */
    int grid;       /* G: keep fractions b_k = k / (G - 1), k = 0..G-1 */
} hkp_curve_params;

/* Scratch for one head (n entries); one per thread when heads run in
 * parallel. */
enum { HKP_RADIX_BITS = 11, HKP_RADIX_PASSES = 3 }; /* 3 x 11 bits: a 32-bit key */
typedef struct {
    int cap;
    uint32_t *key, *key2; /* radix-sort keys and their double buffer */
    float *val, *val2;    /* payload (oracle mass, or the shifted score) */
    double *tail;         /* (cap + 1) suffix sums */
    uint32_t *hist;       /* (HKP_RADIX_PASSES, 2^HKP_RADIX_BITS) digit counts */
} hkp_curve_ws;

hkm_status hkp_curve_ws_init(hkp_curve_ws *w, int cap, hkm_err *err);
void hkp_curve_ws_free(hkp_curve_ws *w);

/* loss[k] (G) = share of the oracle mass sum(oracle) that is evicted when
 * the head keeps B = round(b_k * n) tokens: the sink and recent tokens, then
 * the top B - forced candidates by score (ties: earlier token first).
 * Non-increasing in k, exactly 0 at b = 1; 0 everywhere if the mass is 0. */
void hkp_loss_curve(const hkp_curve_params *p, const float *score, const float *oracle,
                    hkp_curve_ws *w, double *loss);

/* Selectivity of a score distribution over n tokens: p_i proportional to
 * s_i - min(0, min_j s_j); *entropy = H(p) / ln n in [0, 1]; *top1 = mass of
 * the ceil(n / 100) largest p_i. Uniform when every shifted score is 0. */
void hkp_selectivity(const float *score, int n, hkp_curve_ws *w, double *entropy, double *top1);

/* beta_h in [0.8, 1.2] from mean entropy E and top-1% mass T:
 * beta = 1.2 - 0.4 * (0.5 * (1 - E) + 0.5 * T). */
double hkp_beta(double entropy, double top1);

#endif
