/* The budget solver: per-head loss curves -> monotone (PAVA) -> lower convex
 * hull -> marginal-utility greedy (libhubkv's hubkv_budget_greedy_multi) for
 * all 99 compression ratios in one pass. */
#ifndef HKS_SOLVE_H
#define HKS_SOLVE_H

#include "hkm_internal.h"

#include <stdint.h>

#define HKS_N_RATIOS 99

typedef struct {
    int32_t L, H, G;          /* layers, KV heads, grid points */
    const double *grid;       /* (G) keep fractions, strictly increasing in [0, 1] */
    const double *loss;       /* (L, H, G) mean loss curves */
    const double *weight;     /* (G) PAVA weights > 0, or NULL = 1 */
    const double *layer_w;    /* (L) per-layer loss weights >= 0, or NULL = 1 */
    int64_t n_tokens;         /* context length N the budgets are tabulated at */
    int32_t n_sink, n_recent; /* always kept per head */
    double min_keep, max_keep;/* per-head keep-fraction bounds (default 0, 1) */
} hks_problem;

typedef struct {
    int32_t L, H, G;
    float *hull;              /* (L, H, G) weighted hull on the grid (what the profile stores) */
    int32_t *knots;           /* hull vertices: grid indices, per head ascending */
    int64_t *knot_off;        /* (L*H + 1) */
    int64_t lo, hi;           /* effective per-head token bounds */
    int64_t targets[HKS_N_RATIOS]; /* tokens kept over all heads at ratio r+1 % */
    int32_t n_clamped;        /* ratios whose target was raised to the feasible minimum (or cut) */
    int64_t *counts;          /* (99, L*H) greedy tokens per head */
    float *keep;              /* (99, L, H) counts / N */
} hks_solution;

/* Defaults: no weights, min_keep 0, max_keep 1. */
hks_problem hks_problem_default(void);

/* Checks the problem (shapes, finite values, grid order) naming the field. */
hkm_status hks_problem_check(const hks_problem *p, hkm_err *err);

/* PAVA then lower hull of every head, times its layer weight: fills
 * s->hull, s->knots, s->knot_off. */
hkm_status hks_solve_hulls(const hks_problem *p, hks_solution *s, hkm_err *err);

/* Greedy over the hulls for ratios 1..99 %: targets, counts, keep. Needs
 * hks_solve_hulls first. Ratio r keeps round((1 - r/100) N L H) tokens,
 * clamped to [L H lo, L H hi] (counted in n_clamped). */
hkm_status hks_solve_budgets(const hks_problem *p, hks_solution *s, hkm_err *err);

void hks_solution_free(hks_solution *s);

/* Sum over heads of curve(count / N), linear on the grid (objective value). */
double hks_objective(const double *grid, int32_t G, const float *curves, int32_t n_heads, const int64_t *counts,
                     int64_t n_tokens);

#endif
