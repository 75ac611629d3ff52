/* Baseline allocations written next to the greedy's, each with the greedy's
 * exact targets and per-head bounds so they compare at equal memory:
 *  - uniform: every head the same share;
 *  - PyramidKV (Cai et al. 2024): per-layer budgets decreasing linearly from
 *    the first to the last layer, top = mean / beta, bottom = 2 mean - top
 *    (beta = 20 as in the paper and kvpress), heads of a layer equal;
 *  - AdaKV-style offline (Feng et al. 2024): each layer gets the mean share;
 *    inside it a floor of alpha = 0.2 of the share per head, the rest goes to
 *    the layer's largest token scores across heads, from a per-head score
 *    model fitted to the profiled selectivity (docs/solver.md). */
#ifndef HKS_BASELINES_H
#define HKS_BASELINES_H

#include "hkm_internal.h"

#include <stdint.h>

#define HKS_PYRAMID_BETA 20.0
#define HKS_ADAKV_ALPHA 0.2

/* Integer counts out (n) within [lo, hi] summing exactly to target, closest
 * to desired (n) shifted by one constant (clamped water level), rounded by
 * largest remainder (ties: lower index). target must be in [n lo, n hi]. */
void hks_fit_counts(const double *desired, int32_t n, int64_t target, int64_t lo, int64_t hi, int64_t *out);

/* Each fills out (99, L*H) counts for targets (99). */
hkm_status hks_baseline_uniform(int32_t L, int32_t H, const int64_t *targets, int64_t lo, int64_t hi,
                                int64_t *out, hkm_err *err);
hkm_status hks_baseline_pyramidkv(int32_t L, int32_t H, const int64_t *targets, int64_t lo, int64_t hi,
                                  int64_t *out, hkm_err *err);
/* entropy, top1: (L, H) mean normalised entropy and top-1% mass of the
 * scorer; n_tokens: context length. */
hkm_status hks_baseline_adakv(int32_t L, int32_t H, const double *entropy, const double *top1, int64_t n_tokens,
                              const int64_t *targets, int64_t lo, int64_t hi, int64_t *out, hkm_err *err);

#endif
