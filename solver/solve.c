/* Solver core: hulls of the per-head curves and the one-pass greedy over all
 * 99 ratios (the greedy itself is libhubkv's; nothing here re-implements it). */
#include "solve.h"

#include "hubkv.h"
#include "hull.h"
#include "pava.h"

#include <math.h>
#include <stdlib.h>
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

/* Per-head scratch, allocated once per solve (no allocation per head). */
typedef struct {
    hks_pava_ws pava;
    double *hx, *hy; /* (G) hull vertices */
    int32_t *hi;     /* (G) their grid indices */
    double *inv_dx;  /* (G-1) 1 / float-grid spacing, as the profile reader sees it */
    float *gf;       /* (G) the grid in float32 */
} hull_ws;

/* Lower convex hull of the PAVA step function: inside a flat block only its
 * first point can be a vertex (the others lie on or above the chord to their
 * neighbours), so the monotone chain runs over block starts and the last
 * point. Collinear points are dropped, as in hks_lower_hull. Returns k. */
static int32_t block_hull(const double *x, int32_t G, int32_t nb, const hks_pava_ws *pw, hull_ws *w) {
    double *hx = w->hx, *hy = w->hy;
    int32_t *hi = w->hi, k = 0;
    for (int32_t b = 0; b <= nb; b++) {
        int32_t i = b < nb ? pw->start[b] : G - 1;
        if (b == nb && pw->start[nb - 1] == G - 1) break; /* last block is the last point */
        double px = x[i], py = pw->sy[b < nb ? b : nb - 1] / pw->sw[b < nb ? b : nb - 1];
        while (k >= 2 && (hx[k - 1] - hx[k - 2]) * (py - hy[k - 2]) - (hy[k - 1] - hy[k - 2]) * (px - hx[k - 2]) <= 0) k--;
        hx[k] = px, hy[k] = py, hi[k] = i;
        k++;
    }
    return k;
}

/* Slack for a slope rise from float rounding: a quarter of the profile
 * reader's tolerance (runtime-lib/src/profile_check.c: 1e-4 relative + 1e-6). */
static int rise_ok(double sl, double sprev) {
    return sl <= sprev + 0.25 * (1e-4 * (sl + sprev) + 1e-6);
}

/* The hull on the grid, rounded to float32 such that the slopes the profile
 * reader computes from the stored floats, (y[g] - y[g+1]) / (grid[g+1] -
 * grid[g]) in double, are >= 0 and never rise by more than rise_ok allows:
 * each value is the float nearest the exact hull, raised (by as little as
 * possible) where rounding would steepen a segment. Plain rounding breaks
 * the reader's check once the grid step nears float eps times the loss
 * (about 1000 points); the raise drifts by at most about one float ulp per
 * grid point until the next hull vertex, where the slope falls. */
static void fill_float(const double *x, int32_t k, const hull_ws *w, float *out) {
    const double *hx = w->hx, *hy = w->hy;
    double sprev = INFINITY;
    float prev = (float)hy[0];
    out[0] = prev;
    int32_t g = 1;
    for (int32_t s = 0; s + 1 < k; s++) {
        double slope = (hy[s + 1] - hy[s]) / (hx[s + 1] - hx[s]);
        for (; g <= w->hi[s + 1]; g++) {
            double yt = g == w->hi[s + 1] ? hy[s + 1] : hy[s] + slope * (x[g] - hx[s]);
            double inv = w->inv_dx[g - 1];
            float c = (float)yt;
            if (c > prev) c = prev;
            double sl = ((double)prev - c) * inv;
            if (!rise_ok(sl, sprev)) { /* too steep: the lowest float at slope <= sprev */
                c = (float)((double)prev - sprev / inv);
                while (c < prev && ((double)prev - c) * inv > sprev) c = nextafterf(c, INFINITY);
                sl = ((double)prev - c) * inv;
            }
            out[g] = prev = c;
            sprev = sl;
        }
    }
}

static void hull_ws_free(hull_ws *w) {
    hks_pava_ws_free(&w->pava);
    free(w->hx), free(w->hy), free(w->hi), free(w->inv_dx), free(w->gf);
}

hkm_status hks_solve_hulls(const hks_problem *p, hks_solution *s, hkm_err *err) {
    HKM_TRY(hks_problem_check(p, err));
    int64_t nh = (int64_t)p->L * p->H, G = p->G;
    s->L = p->L;
    s->H = p->H;
    s->G = p->G;
    HKM_ALLOC(s->hull, nh * G, err);
    HKM_ALLOC(s->knot_off, nh + 1, err);
    hull_ws w = {0};
    w.hx = malloc((size_t)G * sizeof *w.hx);
    w.hy = malloc((size_t)G * sizeof *w.hy);
    w.hi = malloc((size_t)G * sizeof *w.hi);
    w.inv_dx = malloc((size_t)G * sizeof *w.inv_dx);
    w.gf = malloc((size_t)G * sizeof *w.gf);
    int64_t kcap = nh * 8 < nh * G ? nh * 8 : nh * G; /* grows on demand */
    int32_t *knots = malloc((size_t)kcap * sizeof *knots);
    if (!w.hx || !w.hy || !w.hi || !w.inv_dx || !w.gf || !knots || hks_pava_ws_init(&w.pava, p->G)) {
        hull_ws_free(&w);
        free(knots);
        return hkm_fail(err, HKM_ERR_NOMEM, "solver: out of memory for hulls of %d points", p->G);
    }
    for (int64_t g = 0; g < G; g++) w.gf[g] = (float)p->grid[g];
    for (int64_t g = 0; g + 1 < G; g++) w.inv_dx[g] = 1.0 / ((double)w.gf[g + 1] - w.gf[g]);
    int64_t nk = 0;
    for (int64_t h = 0; h < nh; h++) {
        double lw = p->layer_w ? p->layer_w[h / p->H] : 1.0;
        int32_t nb = hks_pava_blocks(p->loss + h * G, p->weight, lw, p->G, &w.pava);
        int32_t k = block_hull(p->grid, p->G, nb, &w.pava, &w);
        fill_float(p->grid, k, &w, s->hull + h * G);
        if (nk + k > kcap) {
            while (nk + k > kcap) kcap *= 2;
            int32_t *nkn = realloc(knots, (size_t)kcap * sizeof *knots);
            if (!nkn) {
                hull_ws_free(&w);
                free(knots);
                return hkm_fail(err, HKM_ERR_NOMEM, "solver: out of memory for %lld hull knots", (long long)kcap);
            }
            knots = nkn;
        }
        s->knot_off[h] = nk;
        memcpy(knots + nk, w.hi, (size_t)k * sizeof *knots);
        nk += k;
    }
    s->knot_off[nh] = nk;
    s->knots = knots;
    hull_ws_free(&w);
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
