/* Solver core: hulls of the per-head curves and the one-pass greedy over all
 * 99 ratios (the greedy itself is libhubkv's; nothing here re-implements it). */
#include "solve.h"

#include "hubkv.h"
#include "hull.h"
#include "pava.h"

#include <math.h>
#include <string.h>

hks_problem hks_problem_default(void) {
    hks_problem p;
    memset(&p, 0, sizeof p);
    p.max_keep = 1.0;
    return p;
}

hkm_status hks_problem_check(const hks_problem *p, hkm_err *err) {
    if (!p || !p->grid || !p->loss)
        return hkm_fail(err, HKM_ERR_ARG, "solver: problem, grid and loss must be non-NULL");
    if (p->L <= 0 || p->H <= 0 || p->G < 2 || p->n_tokens <= 0)
        return hkm_fail(err, HKM_ERR_ARG, "solver: L=%d H=%d G=%d N=%lld; expected L, H, N > 0 and G >= 2", p->L, p->H,
                        p->G, (long long)p->n_tokens);
    if ((int64_t)p->L * p->H > INT32_MAX / 2)
        return hkm_fail(err, HKM_ERR_ARG, "solver: %d x %d heads; expected fewer than 2^30", p->L, p->H);
    for (int32_t g = 0; g < p->G; g++)
        if (!(p->grid[g] >= 0 && p->grid[g] <= 1) || (g && !(p->grid[g] > p->grid[g - 1])))
            return hkm_fail(err, HKM_ERR_ARG, "solver: grid[%d] = %g; expected strictly increasing in [0, 1]", g,
                            p->grid[g]);
    for (int64_t i = 0; i < (int64_t)p->L * p->H * p->G; i++)
        if (!isfinite(p->loss[i]))
            return hkm_fail(err, HKM_ERR_ARG, "solver: loss[%lld, %lld, %lld] = %g; expected a finite value",
                            (long long)(i / ((int64_t)p->H * p->G)), (long long)(i / p->G % p->H),
                            (long long)(i % p->G), p->loss[i]);
    for (int32_t l = 0; p->layer_w && l < p->L; l++)
        if (!(p->layer_w[l] >= 0 && isfinite(p->layer_w[l])))
            return hkm_fail(err, HKM_ERR_ARG, "solver: layer weight %d = %g; expected a finite value >= 0", l,
                            p->layer_w[l]);
    for (int32_t g = 0; p->weight && g < p->G; g++)
        if (!(p->weight[g] > 0 && isfinite(p->weight[g])))
            return hkm_fail(err, HKM_ERR_ARG, "solver: PAVA weight %d = %g; expected a finite value > 0", g,
                            p->weight[g]);
    if (!(p->min_keep >= 0 && p->min_keep <= p->max_keep && p->max_keep <= 1))
        return hkm_fail(err, HKM_ERR_ARG, "solver: min_keep %g, max_keep %g; expected 0 <= min <= max <= 1",
                        p->min_keep, p->max_keep);
    if (p->n_sink < 0 || p->n_recent < 0)
        return hkm_fail(err, HKM_ERR_ARG, "solver: n_sink %d, n_recent %d; expected >= 0", p->n_sink, p->n_recent);
    return HKM_OK;
}

void hks_solution_free(hks_solution *s) {
    if (!s) return;
    free(s->hull);
    free(s->knots);
    free(s->knot_off);
    free(s->counts);
    free(s->keep);
    memset(s, 0, sizeof *s);
}

/* ---------------------------------------------------------------- hulls */

hkm_status hks_solve_hulls(const hks_problem *p, hks_solution *s, hkm_err *err) {
    HKM_TRY(hks_problem_check(p, err));
    int64_t nh = (int64_t)p->L * p->H, G = p->G;
    s->L = p->L;
    s->H = p->H;
    s->G = p->G;
    HKM_ALLOC(s->hull, nh * G, err);
    HKM_ALLOC(s->knots, nh * G, err);
    HKM_ALLOC(s->knot_off, nh + 1, err);
    double *y, *out;
    int32_t *idx;
    HKM_ALLOC(y, G, err);
    HKM_ALLOC(out, G, err);
    HKM_ALLOC(idx, G, err);
    hks_pava_ws ws;
    if (hks_pava_ws_init(&ws, p->G)) {
        free(y), free(out), free(idx);
        return hkm_fail(err, HKM_ERR_NOMEM, "solver: out of memory for PAVA on %d points", p->G);
    }
    int64_t nk = 0;
    for (int64_t h = 0; h < nh; h++) {
        double w = p->layer_w ? p->layer_w[h / p->H] : 1.0;
        const double *src = p->loss + h * G;
        for (int64_t g = 0; g < G; g++) y[g] = w * src[g];
        hks_pava_nonincreasing(y, p->weight, p->G, y, &ws);
        int32_t k = hks_lower_hull(p->grid, y, p->G, idx);
        hks_hull_fill(p->grid, y, idx, k, p->G, out);
        for (int64_t g = 0; g < G; g++) s->hull[h * G + g] = (float)out[g];
        s->knot_off[h] = nk;
        memcpy(s->knots + nk, idx, (size_t)k * sizeof *idx);
        nk += k;
    }
    s->knot_off[nh] = nk;
    hks_pava_ws_free(&ws);
    free(y), free(out), free(idx);
    return HKM_OK;
}

/* ---------------------------------------------------------------- budgets */

hkm_status hks_solve_budgets(const hks_problem *p, hks_solution *s, hkm_err *err) {
    if (!s->hull) return hkm_fail(err, HKM_ERR_ARG, "solver: hks_solve_budgets needs hks_solve_hulls first");
    int64_t nh = (int64_t)p->L * p->H, N = p->n_tokens;
    float *gridf;
    HKM_ALLOC(gridf, p->G, err);
    for (int32_t g = 0; g < p->G; g++) gridf[g] = (float)p->grid[g];
    hubkv_budget_params bp = hubkv_budget_default_params();
    bp.n_heads = (int32_t)nh;
    bp.n_grid = p->G;
    bp.grid = gridf;
    bp.loss = s->hull;
    bp.n_tokens = N;
    bp.n_sink = p->n_sink;
    bp.n_recent = p->n_recent;
    bp.min_per_head = (int64_t)ceil(p->min_keep * (double)N - 1e-9);
    bp.max_per_head = (int64_t)floor(p->max_keep * (double)N + 1e-9);
    if (bp.max_per_head < 1) bp.max_per_head = 1; /* 0 would mean "N" to the greedy */
    bp.knots = s->knots;
    bp.knot_off = s->knot_off;
    // Effective bounds exactly as the greedy derives them.
    int64_t lo = bp.min_per_head > (int64_t)p->n_sink + p->n_recent ? bp.min_per_head : (int64_t)p->n_sink + p->n_recent;
    if (lo > N) lo = N;
    int64_t hi = bp.max_per_head > N ? N : bp.max_per_head;
    if (hi < lo) hi = lo;
    s->lo = lo;
    s->hi = hi;
    s->n_clamped = 0;
    // Ratio r removes r %; targets grow as r falls, so fill them in reverse.
    int64_t asc[HKS_N_RATIOS];
    for (int r = 1; r <= HKS_N_RATIOS; r++) {
        int64_t t = llround((1.0 - r / 100.0) * (double)N * (double)nh);
        if (t < lo * nh) t = lo * nh, s->n_clamped++;
        if (t > hi * nh) t = hi * nh, s->n_clamped++;
        s->targets[r - 1] = t;
        asc[HKS_N_RATIOS - r] = t;
    }
    int64_t *rev;
    HKM_ALLOC(rev, HKS_N_RATIOS * nh, err);
    char msg[512];
    hubkv_status hs = hubkv_budget_greedy_multi(&bp, HKS_N_RATIOS, asc, rev, msg, sizeof msg);
    free(gridf);
    if (hs != HUBKV_OK) {
        free(rev);
        return hkm_fail(err, HKM_ERR_ARG, "solver: hubkv_budget_greedy_multi: %s (%s)", msg, hubkv_status_str(hs));
    }
    free(s->counts);
    free(s->keep);
    s->counts = rev; // reorder rows in place: row r-1 <- rev row 99-r
    for (int i = 0; i < HKS_N_RATIOS / 2; i++) {
        int64_t *a = rev + (int64_t)i * nh, *b = rev + (int64_t)(HKS_N_RATIOS - 1 - i) * nh;
        for (int64_t h = 0; h < nh; h++) {
            int64_t t = a[h];
            a[h] = b[h];
            b[h] = t;
        }
    }
    HKM_ALLOC(s->keep, HKS_N_RATIOS * nh, err);
    for (int64_t i = 0; i < HKS_N_RATIOS * nh; i++) s->keep[i] = (float)((double)s->counts[i] / (double)N);
    return HKM_OK;
}

double hks_objective(const double *grid, int32_t G, const float *curves, int32_t n_heads, const int64_t *counts,
                     int64_t n_tokens) {
    double tot = 0;
    for (int32_t h = 0; h < n_heads; h++) {
        double x = (double)counts[h] / (double)n_tokens;
        const float *y = curves + (int64_t)h * G;
        int32_t g = 0;
        while (g < G - 2 && x > grid[g + 1]) g++;
        tot += y[g] + ((double)y[g + 1] - y[g]) * (x - grid[g]) / (grid[g + 1] - grid[g]);
    }
    return tot;
}
