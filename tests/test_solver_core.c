/* Solver core: PAVA against the naive min-max formula, hulls against the
 * definition of the greatest convex minorant, the greedy (libhubkv, one pass
 * over 99 ratios) against an exact DP on convex and on non-convex curves,
 * exact budget sums, prefixes, and the baselines' sums and shapes; the
 * monotone fast path against the plain chain and the rounded exact hull. */
#include "baselines.h"
#include "hubkv.h"
#include "hull.h"
#include "pava.h"
#include "solve.h"
#include "test_util.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint64_t rng = 88172645463325252ULL;
static double urand(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}

/* ---------------------------------------------------------------- PAVA */

/* Non-increasing isotonic regression, O(n^2) with prefix sums:
 * out_i = min_{j <= i} max_{k >= i} wmean(y[j..k]). */
static void naive_pava(const double *y, const double *w, int n, double *out) {
    double sw[65] = {0}, swy[65] = {0};
    for (int i = 0; i < n; i++) sw[i + 1] = sw[i] + (w ? w[i] : 1), swy[i + 1] = swy[i] + (w ? w[i] : 1) * y[i];
    for (int i = 0; i < n; i++) {
        double best = INFINITY;
        for (int j = 0; j <= i; j++) {
            double mx = -INFINITY;
            for (int k = i; k < n; k++) mx = fmax(mx, (swy[k + 1] - swy[j]) / (sw[k + 1] - sw[j]));
            best = fmin(best, mx);
        }
        out[i] = best;
    }
}

static void test_pava(void) {
    hks_pava_ws ws;
    CHECK(hks_pava_ws_init(&ws, 64) == 0, "ws");
    double worst = 0;
    for (int t = 0; t < 300; t++) {
        int n = 1 + (int)(urand() * 64);
        double y[64], w[64], a[64], b[64];
        for (int i = 0; i < n; i++) {
            y[i] = 1 - (double)i / n + 0.3 * (urand() - 0.5); // noisy decreasing
            if (t % 7 == 0) y[i] = floor(urand() * 4);         // many ties
            w[i] = 0.1 + urand();
        }
        const double *wp = t % 2 ? w : NULL;
        hks_pava_nonincreasing(y, wp, n, a, &ws);
        naive_pava(y, wp, n, b);
        for (int i = 0; i < n; i++) worst = fmax(worst, fabs(a[i] - b[i]));
        for (int i = 1; i < n; i++) CHECK(a[i] <= a[i - 1], "trial %d: PAVA output increases at %d", t, i);
        double s1 = 0, s2 = 0; // weighted mean is preserved
        for (int i = 0; i < n; i++) s1 += (wp ? w[i] : 1) * a[i], s2 += (wp ? w[i] : 1) * y[i];
        CHECK(fabs(s1 - s2) < 1e-9, "trial %d: weighted sum changed %g -> %g", t, s2, s1);
    }
    CHECK(worst < 1e-12, "PAVA vs naive min-max formula: max |diff| %g", worst);
    hks_pava_ws_free(&ws);
}

/* ---------------------------------------------------------------- hull */

static void test_hull(void) {
    for (int t = 0; t < 200; t++) {
        int n = 2 + (int)(urand() * 40);
        double x[48], y[48], hv[48];
        int32_t idx[48];
        for (int i = 0; i < n; i++) x[i] = (double)i / (n - 1), y[i] = urand() + (t % 3 ? 1 - x[i] : 0);
        int32_t k = hks_lower_hull(x, y, n, idx);
        hks_hull_fill(x, y, idx, k, n, hv);
        CHECK(k >= 2 && idx[0] == 0 && idx[k - 1] == n - 1, "trial %d: hull ends", t);
        for (int32_t s = 0; s < k; s++) CHECK(hv[idx[s]] == y[idx[s]], "trial %d: vertex %d moved", t, s);
        for (int i = 0; i < n; i++) CHECK(hv[i] <= y[i] + 1e-12, "trial %d: hull above point %d", t, i);
        for (int i = 2; i < n; i++) { // convex: slopes non-decreasing
            double s0 = (hv[i - 1] - hv[i - 2]) / (x[i - 1] - x[i - 2]), s1 = (hv[i] - hv[i - 1]) / (x[i] - x[i - 1]);
            CHECK(s1 >= s0 - 1e-9, "trial %d: hull not convex at %d", t, i);
        }
        // Greatest convex minorant: at every point no chord between two data points lies below it.
        for (int a = 0; a < n; a++)
            for (int b = a + 2; b < n; b++)
                for (int i = a + 1; i < b; i++) {
                    double chord = y[a] + (y[b] - y[a]) * (x[i] - x[a]) / (x[b] - x[a]);
                    CHECK(hv[i] <= chord + 1e-12, "trial %d: hull %g above chord %g at %d", t, hv[i], chord, i);
                }
        for (int32_t s = 1; s + 1 < k; s++) { // strictly convex at kept vertices (collinear points dropped)
            int32_t a = idx[s - 1], m = idx[s], b = idx[s + 1];
            double s0 = (y[m] - y[a]) / (x[m] - x[a]), s1 = (y[b] - y[m]) / (x[b] - x[m]);
            CHECK(s1 > s0, "trial %d: vertex %d is collinear", t, s);
        }
    }
}

/* ---------------------------------------------------------------- DP */

/* f(h, u) = curve h at u tokens (linear on the grid). */
static double at(const float *c, const double *grid, int G, double x) {
    int g = 0;
    while (g < G - 2 && x > grid[g + 1]) g++;
    return c[g] + ((double)c[g + 1] - c[g]) * (x - grid[g]) / (grid[g + 1] - grid[g]);
}

/* best[b] = min sum_h f_h(x_h) over integer x_h in [0, U], sum = b (b <= nh U). */
static void exact_dp(int nh, int U, double (*f)(int, int, void *), void *ctx, double *best) {
    int B = nh * U;
    double *cur = calloc((size_t)B + 1, sizeof *cur), *nxt = calloc((size_t)B + 1, sizeof *nxt);
    for (int b = 0; b <= B; b++) cur[b] = b == 0 ? 0 : INFINITY;
    for (int h = 0; h < nh; h++) {
        for (int b = 0; b <= B; b++) {
            nxt[b] = INFINITY;
            for (int x = 0; x <= U && x <= b; x++) nxt[b] = fmin(nxt[b], cur[b - x] + f(h, x, ctx));
        }
        memcpy(cur, nxt, ((size_t)B + 1) * sizeof *cur);
    }
    memcpy(best, cur, ((size_t)B + 1) * sizeof *cur);
    free(cur), free(nxt);
}

typedef struct { const float *c; const double *grid; int G, U; } curves_ctx;
static double f_curve(int h, int x, void *v) {
    curves_ctx *c = v;
    return at(c->c + (size_t)h * c->G, c->grid, c->G, (double)x / c->U);
}

/* Convex curves (random slopes sorted): greedy = DP optimum, for all 99 ratios. */
static void test_greedy_convex(void) {
    enum { L = 2, H = 3, G = 9, M = 3 };
    double grid[G], loss[L * H * G], best[L * H * (G - 1) * M + 1];
    for (int g = 0; g < G; g++) grid[g] = g / (double)(G - 1);
    for (int t = 0; t < 20; t++) {
        for (int h = 0; h < L * H; h++) {
            double d[G - 1];
            for (int g = 0; g < G - 1; g++) d[g] = urand();
            for (int i = 0; i < G - 1; i++) // sort decrements descending: convex curve
                for (int j = i + 1; j < G - 1; j++) if (d[j] > d[i]) { double s = d[i]; d[i] = d[j]; d[j] = s; }
            double y = 0;
            for (int g = G - 1; g >= 0; g--) loss[h * G + g] = y, y += g ? d[g - 1] : 0;
        }
        hks_problem p = hks_problem_default();
        p.L = L, p.H = H, p.G = G, p.grid = grid, p.loss = loss, p.n_tokens = (G - 1) * M;
        hks_solution s = {0};
        hkm_err err = {{0}};
        CHECK(hks_solve_hulls(&p, &s, &err) == HKM_OK && hks_solve_budgets(&p, &s, &err) == HKM_OK, "%s", err.msg);
        curves_ctx c = {s.hull, grid, G, (int)p.n_tokens};
        exact_dp(L * H, (int)p.n_tokens, f_curve, &c, best);
        for (int r = 0; r < 99; r++) {
            int64_t *cnt = s.counts + r * L * H, sum = 0;
            for (int h = 0; h < L * H; h++) sum += cnt[h];
            CHECK(sum == s.targets[r], "ratio %d: sum %lld != target %lld", r + 1, (long long)sum, (long long)s.targets[r]);
            double got = hks_objective(grid, G, s.hull, L * H, cnt, p.n_tokens);
            CHECK(fabs(got - best[s.targets[r]]) <= 1e-6 * (1 + fabs(got)), "trial %d ratio %d: greedy %.9g vs DP %.9g",
                  t, r + 1, got, best[s.targets[r]]);
        }
        hks_solution_free(&s);
    }
}

/* Non-convex monotone curves on the unit grid (N = G-1, one token per grid
 * step): the DP optimum of the original curves against the greedy on their
 * hulls. gap = original(greedy) - DP >= 0; bounded by sum over heads of
 * (original - hull) at the greedy's counts (the hull is a lower bound and the
 * greedy optimal on it), and by the largest single hull-segment deviation
 * (only the last head served sits inside a segment for distinct slopes). */
static void test_greedy_nonconvex(void) {
    enum { L = 2, H = 3, G = 13, NH = L * H };
    double grid[G], loss[NH * G], best[NH * (G - 1) + 1];
    float orig[NH * G];
    for (int g = 0; g < G; g++) grid[g] = g / (double)(G - 1);
    double max_gap = 0, max_ratio = 0;
    for (int t = 0; t < 40; t++) {
        for (int h = 0; h < NH; h++) {
            double y = 0;
            for (int g = G - 1; g >= 0; g--) {
                loss[h * G + g] = y;
                orig[h * G + g] = (float)y;
                y += urand() * urand() * 2; // heavy-tailed steps: non-convex
            }
        }
        hks_problem p = hks_problem_default();
        p.L = L, p.H = H, p.G = G, p.grid = grid, p.loss = loss, p.n_tokens = G - 1;
        hks_solution s = {0};
        hkm_err err = {{0}};
        CHECK(hks_solve_hulls(&p, &s, &err) == HKM_OK && hks_solve_budgets(&p, &s, &err) == HKM_OK, "%s", err.msg);
        curves_ctx c = {orig, grid, G, G - 1};
        exact_dp(NH, G - 1, f_curve, &c, best);
        double seg_dev = 0; // largest (original - hull) anywhere
        for (int i = 0; i < NH * G; i++) seg_dev = fmax(seg_dev, (double)orig[i] - s.hull[i]);
        for (int r = 0; r < 99; r++) {
            const int64_t *cnt = s.counts + r * NH;
            double got = hks_objective(grid, G, orig, NH, cnt, G - 1);
            double hull = hks_objective(grid, G, s.hull, NH, cnt, G - 1);
            double gap = got - best[s.targets[r]];
            CHECK(gap >= -1e-6, "trial %d ratio %d: greedy %.9g below the DP optimum %.9g", t, r + 1, got, best[s.targets[r]]);
            CHECK(hull <= best[s.targets[r]] + 1e-5, "trial %d ratio %d: hull optimum %.9g above DP %.9g", t, r + 1, hull,
                  best[s.targets[r]]);
            CHECK(gap <= got - hull + 1e-5, "trial %d ratio %d: gap %.6g > a-posteriori bound %.6g", t, r + 1, gap, got - hull);
            CHECK(gap <= seg_dev + 1e-5, "trial %d ratio %d: gap %.6g > max hull deviation %.6g", t, r + 1, gap, seg_dev);
            max_gap = fmax(max_gap, gap);
            if (seg_dev > 0) max_ratio = fmax(max_ratio, gap / seg_dev);
        }
        hks_solution_free(&s);
    }
    printf("non-convex DP vs hull greedy: max gap %.4g, max gap / max hull deviation %.3f\n", max_gap, max_ratio);
}

/* ---------------------------------------------------------------- budgets */

static void test_budget_properties(void) {
    enum { L = 4, H = 5, G = 33, NH = L * H };
    double grid[G], loss[NH * G];
    for (int g = 0; g < G; g++) grid[g] = g / (double)(G - 1);
    for (int h = 0; h < NH; h++)
        for (int g = 0; g < G; g++) loss[h * G + g] = exp(-(1 + 9 * urand()) * grid[g]) * (1 - grid[g]) + 0.02 * urand();
    double lw[L] = {1, 0.5, 2, 1};
    hks_problem p = hks_problem_default();
    p.L = L, p.H = H, p.G = G, p.grid = grid, p.loss = loss, p.layer_w = lw, p.n_tokens = 1000;
    p.n_sink = 4, p.n_recent = 16, p.max_keep = 0.9;
    hks_solution s = {0};
    hkm_err err = {{0}};
    CHECK(hks_solve_hulls(&p, &s, &err) == HKM_OK && hks_solve_budgets(&p, &s, &err) == HKM_OK, "%s", err.msg);
    CHECK(s.lo == 20 && s.hi == 900, "bounds %lld..%lld", (long long)s.lo, (long long)s.hi);
    for (int r = 0; r < 99; r++) {
        int64_t sum = 0;
        for (int h = 0; h < NH; h++) {
            int64_t c = s.counts[r * NH + h];
            sum += c;
            CHECK(c >= 20 && c <= 900, "ratio %d head %d count %lld outside [20, 900]", r + 1, h, (long long)c);
            if (r) CHECK(c <= s.counts[(r - 1) * NH + h], "ratio %d head %d: budget grew with the ratio", r + 1, h);
            CHECK(fabsf(s.keep[r * NH + h] - c / 1000.0f) < 1e-6f, "keep = count / N");
        }
        CHECK(sum == s.targets[r], "ratio %d: sum %lld != target %lld", r + 1, (long long)sum, (long long)s.targets[r]);
        int64_t want = llround((1 - (r + 1) / 100.0) * 1000 * NH);
        CHECK(s.targets[r] == (want < 20 * NH ? 20 * NH : want > 900 * NH ? 900 * NH : want), "ratio %d target", r + 1);
    }
    // The one-pass sweep equals single greedy calls, and knots change nothing.
    float gf[G];
    for (int g = 0; g < G; g++) gf[g] = (float)grid[g];
    hubkv_budget_params bp = hubkv_budget_default_params();
    bp.n_heads = NH, bp.n_grid = G, bp.grid = gf, bp.loss = s.hull, bp.n_tokens = 1000, bp.n_sink = 4, bp.n_recent = 16;
    bp.max_per_head = 900;
    int64_t one[NH];
    for (int r = 0; r < 99; r += 7) {
        bp.target = s.targets[r];
        bp.knots = NULL, bp.knot_off = NULL;
        CHECK(hubkv_budget_greedy(&bp, one, NULL, 0) == HUBKV_OK, "single greedy");
        double a = hks_objective(grid, G, s.hull, NH, one, 1000), b = hks_objective(grid, G, s.hull, NH, s.counts + r * NH, 1000);
        CHECK(fabs(a - b) <= 1e-5 * (1 + fabs(a)), "ratio %d: no-knot greedy %.9g vs knots %.9g", r + 1, a, b);
        bp.knots = s.knots, bp.knot_off = s.knot_off;
        CHECK(hubkv_budget_greedy(&bp, one, NULL, 0) == HUBKV_OK, "single greedy with knots");
        CHECK(!memcmp(one, s.counts + r * NH, sizeof one), "ratio %d: sweep row differs from a single call", r + 1);
    }
    // Layer weights scale the hull.
    CHECK(s.hull[1 * H * G] <= 0.5 * 1.03 + 1e-6, "layer 1 weight 0.5 applied (hull start %g)", s.hull[1 * H * G]);
    hks_solution_free(&s);
    // Bad input is refused with a message.
    p.layer_w = NULL;
    double bad = loss[3];
    loss[3] = NAN;
    CHECK(hks_solve_hulls(&p, &s, &err) == HKM_ERR_ARG && strstr(err.msg, "loss[0, 0, 3]"), "NaN: %s", err.msg);
    loss[3] = bad;
    hks_solution_free(&s);
    grid[5] = grid[4];
    CHECK(hks_solve_hulls(&p, &s, &err) == HKM_ERR_ARG && strstr(err.msg, "grid[5]"), "grid: %s", err.msg);
    hks_solution_free(&s);
}

/* The profile reader's curve check (runtime-lib/src/profile_check.c), with
 * or without its float32 storage term; returns the first failing grid
 * index + 1, or 0. */
static int reader_violation(const float *gf, const float *y, int G, int storage_term) {
    double prev = INFINITY, prev_round = 0;
    for (int g = 0; g + 1 < G; g++) {
        double dx = (double)gf[g + 1] - gf[g];
        double sl = ((double)y[g] - y[g + 1]) / dx;
        double round = storage_term ? FLT_EPSILON * (fabs((double)y[g]) + fabs((double)y[g + 1])) / dx : 0;
        double tol = 1e-4 * (fabs(sl) + fabs(prev < INFINITY ? prev : 0)) + 1e-6 + round + prev_round;
        prev_round = round;
        if (sl < -tol || sl > prev + tol) return g + 1;
        prev = sl;
    }
    return 0;
}

/* Distance in float steps (same sign). */
static int ulps(float a, float b) {
    int32_t ua, ub;
    memcpy(&ua, &a, 4), memcpy(&ub, &b, 4);
    return abs(ua - ub);
}

/* LM-loss-like curves (2.5 nats plus a small drop) on a fine grid: the
 * float32 hulls are the exact hull rounded to nearest (within an ulp: the
 * PAVA means of the noisy heads are summed in another order than the
 * reference's), the reader's check passes them only thanks to its storage
 * term (without it, it fails: the test would lose its point), and a profile
 * holding them is written and read back by libhubkv, whose writer and reader
 * run that check. */
static void test_float_hulls(void) {
    enum { L = 2, H = 3, G = 4097, NH = L * H };
    double *grid = calloc(G, sizeof *grid), *loss = calloc((size_t)NH * G, sizeof *loss);
    for (int g = 0; g < G; g++) grid[g] = g / (double)(G - 1);
    for (int h = 0; h < NH; h++) {
        double a = 2 + 20 * urand();
        for (int g = 0; g < G; g++)
            loss[h * G + g] = 2.5 + (h % 2 ? 0.3 * (1 - grid[g]) * (1 - grid[g]) * (1 + a) / (1 + a * grid[g]) // convex
                                           : 0.3 * exp(-a * grid[g]) * (1 - grid[g]) + 0.001 * (urand() - 0.5));
    }
    hks_problem p = hks_problem_default();
    p.L = L, p.H = H, p.G = G, p.grid = grid, p.loss = loss, p.n_tokens = 32768;
    hks_solution s = {0};
    hkm_err err = {{0}};
    CHECK(hks_solve_hulls(&p, &s, &err) == HKM_OK && hks_solve_budgets(&p, &s, &err) == HKM_OK, "%s", err.msg);
    float *gf = calloc(G, sizeof *gf);
    for (int g = 0; g < G; g++) gf[g] = (float)grid[g];
    int old_fails = 0, worst_ulp = 0;
    hks_pava_ws ws;
    CHECK(hks_pava_ws_init(&ws, G) == 0, "ws");
    double *y = calloc(G, sizeof *y), *hv = calloc(G, sizeof *hv);
    int32_t *idx = calloc(G, sizeof *idx);
    for (int h = 0; h < NH && s.hull; h++) {
        const float *f = s.hull + (size_t)h * G;
        int v = reader_violation(gf, f, G, 1);
        CHECK(v == 0, "head %d: grid %d fails the reader's check", h, v);
        old_fails += reader_violation(gf, f, G, 0) != 0;
        hks_pava_nonincreasing(loss + (size_t)h * G, NULL, G, y, &ws);
        int32_t k = hks_lower_hull(grid, y, G, idx);
        hks_hull_fill(grid, y, idx, k, G, hv);
        CHECK(k == s.knot_off[h + 1] - s.knot_off[h], "head %d: %d knots vs %lld from the block hull", h, k,
              (long long)(s.knot_off[h + 1] - s.knot_off[h]));
        for (int g = 0; g < G; g++) worst_ulp = ulps(f[g], (float)hv[g]) > worst_ulp ? ulps(f[g], (float)hv[g]) : worst_ulp;
    }
    CHECK(worst_ulp <= 1, "float hull is %d ulp from the rounded exact hull", worst_ulp);
    CHECK(old_fails > 0, "without the storage term the check passes too: the test lost its point");
    // Through libhubkv: the writer validates, the reader validates again.
    float *sel = calloc(NH, sizeof *sel), *beta = calloc(NH, sizeof *beta);
    for (int i = 0; i < NH; i++) beta[i] = 1.0f;
    hubkv_profile_data d = hubkv_profile_data_default();
    d.model = (hubkv_model_desc){"llama", L, H, H, 64, 100, 0};
    d.scorer_name = "test";
    d.n_grid = G, d.grid = gf, d.loss = s.hull, d.budget_keep = s.keep, d.selectivity = sel, d.beta = beta;
    char path[] = "/tmp/hubkv_test_float_hulls_XXXXXX", msg[512] = "";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp");
    close(fd);
    CHECK(hubkv_profile_write(path, &d, msg, sizeof msg) == HUBKV_OK, "write: %s", msg);
    hubkv_profile *pr = NULL;
    CHECK(hubkv_profile_open(path, NULL, &pr, msg, sizeof msg) == HUBKV_OK, "read back: %s", msg);
    hubkv_profile_free(pr);
    unlink(path);
    printf("float hulls on %d points: within %d ulp of the exact hull; reader's check passes (without its storage term "
           "%d of %d heads fail); written and read back by libhubkv\n", G, worst_ulp, old_fails, NH);
    hks_pava_ws_free(&ws);
    free(y), free(hv), free(idx), free(grid), free(loss), free(gf), free(sel), free(beta);
    hks_solution_free(&s);
}

/* Monotone, bumpy curves (means of step curves with flat runs, as profiled
 * curves are) take the fast path: no PAVA pooling, candidates filtered by
 * local convexity before the chain. Knots must equal the plain monotone
 * chain's and the floats the exact hull's rounded to nearest, with layer
 * weights; a non-finite value at either path's ends or inside is reported
 * by index. */
static void test_monotone_fast_path(int warped) {
    enum { L = 3, H = 4, G = 2049, NH = L * H, K = 8 };
    double *grid = calloc(G, sizeof *grid), *loss = calloc((size_t)NH * G, sizeof *loss), *ctx = calloc(G, sizeof *ctx);
    double lw[L] = {1.0, 0.37, 2.5};
    for (int g = 0; g < G; g++) grid[g] = g / (double)(G - 1);
    if (warped) // non-uniform spacing: the symmetric-chord prefilter must widen its margin
        for (int g = 0; g < G; g++) grid[g] = grid[g] * (0.5 + 0.5 * grid[g]);
    for (int h = 0; h < NH; h++) {
        double a = 1 + 15 * urand(), q = h % 3 == 0 ? 0.02 : 0.2; // sparse steps: long flat runs
        for (int c = 0; c < K; c++) {
            ctx[G - 1] = 0;
            for (int g = G - 2; g >= 0; g--) ctx[g] = ctx[g + 1] + (urand() < q ? urand() * exp(-a * grid[g]) : 0);
            for (int g = 0; g < G; g++) loss[(size_t)h * G + g] += ctx[g] / K;
        }
        if (h == 5) // linear stretch: collinear points must be dropped alike
            for (int g = 100; g < 900; g++) loss[(size_t)h * G + g] = loss[(size_t)h * G + 100] * (1 - (g - 100) / 1600.0);
        for (int g = 1; g < G; g++) CHECK(loss[(size_t)h * G + g] <= loss[(size_t)h * G + g - 1], "head %d: not monotone", h);
    }
    hks_problem p = hks_problem_default();
    p.L = L, p.H = H, p.G = G, p.grid = grid, p.loss = loss, p.layer_w = lw, p.n_tokens = 4096;
    hks_solution s = {0};
    hkm_err err = {{0}};
    CHECK(hks_solve_hulls(&p, &s, &err) == HKM_OK, "%s", err.msg);
    double *y = calloc(G, sizeof *y), *hv = calloc(G, sizeof *hv);
    int32_t *idx = calloc(G, sizeof *idx);
    int differ = 0;
    for (int h = 0; h < NH && s.hull; h++) {
        for (int g = 0; g < G; g++) y[g] = lw[h / H] * loss[(size_t)h * G + g];
        int32_t k = hks_lower_hull(grid, y, G, idx);
        CHECK(k == s.knot_off[h + 1] - s.knot_off[h], "head %d: %d knots vs %lld", h, k,
              (long long)(s.knot_off[h + 1] - s.knot_off[h]));
        for (int32_t j = 0; j < k && k == s.knot_off[h + 1] - s.knot_off[h]; j++)
            CHECK(idx[j] == s.knots[s.knot_off[h] + j], "head %d: knot %d at %d vs %d", h, j, s.knots[s.knot_off[h] + j], idx[j]);
        hks_hull_fill(grid, y, idx, k, G, hv);
        for (int g = 0; g < G; g++) differ += s.hull[(size_t)h * G + g] != (float)hv[g];
    }
    CHECK(differ == 0, "fast-path floats differ from the rounded exact hull at %d points", differ);
    hks_solution_free(&s);
    // Non-finite values: at the end of a monotone head (inf passes the order
    // test), and inside one (NaN fails it): both named by index.
    const int bad_g[3] = {0, G - 1, 700};
    const double bad_v[3] = {INFINITY, -INFINITY, NAN};
    for (int t = 0; t < 3; t++) {
        size_t at = (size_t)7 * G + bad_g[t];
        double keep = loss[at];
        loss[at] = bad_v[t];
        char want[64];
        snprintf(want, sizeof want, "loss[1, 3, %d]", bad_g[t]);
        CHECK(hks_solve_hulls(&p, &s, &err) == HKM_ERR_ARG && strstr(err.msg, want), "bad value %d: %s", t, err.msg);
        CHECK(!s.hull, "bad value %d: hull left allocated", t);
        hks_solution_free(&s);
        loss[at] = keep;
    }
    printf("monotone fast path (%s grid): knots equal the monotone chain's, floats the rounded exact hull's at all %d points\n",
           warped ? "non-uniform" : "uniform", NH * G);
    free(grid), free(loss), free(ctx), free(y), free(hv), free(idx);
}

static void test_baselines(void) {
    enum { L = 6, H = 4, NH = L * H };
    int64_t targets[99], lo = 10, hi = 500, out[99 * NH];
    for (int r = 0; r < 99; r++) {
        int64_t t = llround((1 - (r + 1) / 100.0) * 500 * NH);
        targets[r] = t < lo * NH ? lo * NH : t;
    }
    double E[NH], T[NH];
    for (int i = 0; i < NH; i++) E[i] = urand(), T[i] = urand() * 0.5;
    hkm_err err = {{0}};
    for (int m = 0; m < 3; m++) {
        hkm_status st = m == 0 ? hks_baseline_uniform(L, H, targets, lo, hi, out, &err)
                      : m == 1 ? hks_baseline_pyramidkv(L, H, targets, lo, hi, out, &err)
                               : hks_baseline_adakv(L, H, E, T, 500, targets, lo, hi, out, &err);
        CHECK(st == HKM_OK, "baseline %d: %s", m, err.msg);
        for (int r = 0; r < 99; r++) {
            int64_t sum = 0, *c = out + r * NH;
            for (int i = 0; i < NH; i++) {
                sum += c[i];
                CHECK(c[i] >= lo && c[i] <= hi, "baseline %d ratio %d head %d = %lld", m, r + 1, i, (long long)c[i]);
            }
            CHECK(sum == targets[r], "baseline %d ratio %d: sum %lld != %lld", m, r + 1, (long long)sum, (long long)targets[r]);
            if (m == 0) for (int i = 1; i < NH; i++) CHECK(llabs(c[i] - c[0]) <= 1, "uniform differs by > 1");
            if (m == 1 && r == 49) for (int l = 1; l < L; l++) CHECK(c[l * H] <= c[(l - 1) * H], "pyramid not decreasing at layer %d", l);
            if (m == 2 && r == 49) for (int l = 0; l < L; l++) { // AdaKV keeps each layer's share
                int64_t ls = 0;
                for (int h = 0; h < H; h++) ls += c[l * H + h];
                CHECK(llabs(ls - targets[r] / L) <= H, "adakv layer %d sum %lld vs share %lld", l, (long long)ls, (long long)(targets[r] / L));
            }
        }
    }
}

int main(void) {
    test_pava();
    test_hull();
    test_greedy_convex();
    test_greedy_nonconvex();
    test_budget_properties();
    test_float_hulls();
    test_monotone_fast_path(0);
    test_monotone_fast_path(1);
    test_baselines();
    return test_summary("test_solver_core");
}
