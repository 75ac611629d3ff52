/* Solver benchmark: hulls + all 99 ratios for 80 layers x 64 KV heads on a
 * 4,096-point grid (goal < 100 ms on one core), for three kinds of curves:
 * profiled-like (a mean over contexts of non-increasing step curves, as real
 * profiles are: monotone but bumpy, non-convex), adversarial (i.i.d. noise on
 * every point: non-monotone, PAVA pools everywhere) and the greedy's worst case
 * (strictly convex: every point a knot); then the greedy against an exact DP
 * on small instances to show cost growth.
 * With --stats, also real curves: every scorer's mean curves of a
 * hubkv-profile stats file (its grid), repeated over the layers x heads.
 * usage: bench_solver [--stats FILE [--scorer S]] [layers heads grid [kinds]]  (kinds,
 * bits: 1 profiled-like, 2 adversarial, 4 convex, 8 the DP comparison, 16
 * the stats file's curves; default 15, 31 with --stats) */
#include "inputs.h"
#include "solve.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* CPU time of this (single-threaded) process: on the shared 2-core machine
 * wall time also counts the slices other jobs take from the pinned core. */
static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static uint64_t rng = 0x9E3779B97F4A7C15ULL;
static double urand(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}

static double median5(double *v) {
    for (int i = 0; i < 5; i++)
        for (int j = i + 1; j < 5; j++)
            if (v[j] < v[i]) { double t = v[i]; v[i] = v[j]; v[j] = t; }
    return v[2];
}

/* Median of 5: hull time and greedy time (CPU ms). */
static void time_solve(const hks_problem *p, double *t_hull, double *t_greedy, int64_t *knots) {
    double th[5], tg[5];
    for (int rep = 0; rep < 5; rep++) {
        hks_solution s = {0};
        hkm_err err = {{0}};
        double t0 = now_ms();
        if (hks_solve_hulls(p, &s, &err)) { fprintf(stderr, "%s\n", err.msg); exit(1); }
        double t1 = now_ms();
        if (hks_solve_budgets(p, &s, &err)) { fprintf(stderr, "%s\n", err.msg); exit(1); }
        double t2 = now_ms();
        th[rep] = t1 - t0;
        tg[rep] = t2 - t1;
        *knots = s.knot_off[p->L * p->H];
        if (rep == 0 && getenv("HKS_BENCH_HASH")) { /* outputs' checksum, to compare versions */
            uint64_t hsh = 1469598103934665603ULL;
            const unsigned char *bytes[3] = {(const void *)s.hull, (const void *)s.knots, (const void *)s.counts};
            size_t len[3] = {(size_t)p->L * p->H * p->G * sizeof *s.hull, (size_t)*knots * sizeof *s.knots,
                             (size_t)HKS_N_RATIOS * p->L * p->H * sizeof *s.counts};
            for (int a = 0; a < 3; a++)
                for (size_t i = 0; i < len[a]; i++) hsh = (hsh ^ bytes[a][i]) * 1099511628211ULL;
            printf("  outputs' FNV-1a hash %016llx\n", (unsigned long long)hsh);
        }
        hks_solution_free(&s);
    }
    *t_hull = median5(th);
    *t_greedy = median5(tg);
}

/* Exact DP over integer budgets (min-plus convolution), O(heads * B * U). */
static double dp_ms(int nh, int U) {
    double *cur = calloc((size_t)nh * U + 1, sizeof *cur), *nxt = calloc((size_t)nh * U + 1, sizeof *nxt);
    double *f = calloc((size_t)U + 1, sizeof *f);
    double t0 = now_ms();
    for (int b = 1; b <= nh * U; b++) cur[b] = INFINITY;
    for (int h = 0; h < nh; h++) {
        for (int x = 0; x <= U; x++) f[x] = exp(-3.0 * x / U) + 0.01 * urand();
        for (int b = 0; b <= (h + 1) * U; b++) {
            double best = INFINITY;
            for (int x = 0; x <= U && x <= b; x++) best = fmin(best, cur[b - x] + f[x]);
            nxt[b] = best;
        }
        memcpy(cur, nxt, ((size_t)nh * U + 1) * sizeof *cur);
    }
    double t = now_ms() - t0;
    volatile double sink = cur[nh * U / 2];
    (void)sink;
    free(cur), free(nxt), free(f);
    return t;
}

/* All scorers' mean curves of a stats file (or only `only`'s, >= 0), (n,
 * G) into *curves, and its grid (G) into *grid (it may not be k / (G-1));
 * returns n (0 on error, reported). */
static int load_real(const char *path, int only, int32_t *G, double **curves, double **grid) {
    int n = 0;
    *curves = NULL, *grid = NULL;
    for (int sc = 0; sc <= 4; sc++) {
        if (only >= 0 && sc != only) continue;
        hks_stats_in st = {0};
        hkm_err err = {{0}};
        if (hks_stats_load(path, sc, &st, &err)) { /* e.g. kvzip not computed */
            fprintf(stderr, "bench_solver: scorer %d skipped: %s\n", sc, err.msg);
            continue;
        }
        int m = st.L * st.H;
        *G = st.G;
        double *c = realloc(*curves, (size_t)(n + m) * st.G * sizeof *c);
        if (!c || (!*grid && !(*grid = malloc((size_t)st.G * sizeof **grid)))) exit(1);
        memcpy(*grid, st.grid, (size_t)st.G * sizeof **grid);
        *curves = c;
        memcpy(c + (size_t)n * st.G, st.loss, (size_t)m * st.G * sizeof *c);
        n += m;
        hks_stats_in_free(&st);
    }
    return n;
}

int main(int argc, char **argv) {
    const char *stats = NULL;
    int only = -1;
    if (argc > 2 && !strcmp(argv[1], "--stats")) stats = argv[2], argc -= 2, argv += 2;
    if (argc > 2 && !strcmp(argv[1], "--scorer")) {
        if ((only = hks_scorer_index(argv[2])) < 0) return fprintf(stderr, "bench_solver: unknown scorer %s\n", argv[2]), 2;
        argc -= 2, argv += 2;
    }
    int L = argc > 3 ? atoi(argv[1]) : 80, H = argc > 3 ? atoi(argv[2]) : 64, G = argc > 3 ? atoi(argv[3]) : 4096;
    int kinds = argc > 4 ? atoi(argv[4]) : stats ? 31 : 15;
    double *real = NULL, *real_grid = NULL;
    int n_real = 0;
    if (stats && (kinds & 16)) {
        n_real = load_real(stats, only, &G, &real, &real_grid);
        if (!n_real) return 1;
    }
    size_t n = (size_t)L * H * G;
    double *grid = calloc((size_t)G, sizeof *grid), *loss = calloc(n, sizeof *loss);
    for (int g = 0; g < G; g++) grid[g] = g / (double)(G - 1);
    hks_problem p = hks_problem_default();
    p.L = L, p.H = H, p.G = G, p.grid = grid, p.loss = loss, p.n_tokens = 32768, p.n_sink = 4, p.n_recent = 32;
    printf("bench_solver: %d layers x %d KV heads x %d grid points, N = %lld, 99 ratios, one core, CPU ms (median of 5)\n", L, H, G,
           (long long)p.n_tokens);
    const char *kind[3] = {"profiled-like (mean of 16 monotone step curves)", "adversarial (non-monotone noise)",
                           "worst case (strictly convex, all knots)"};
    double *ctx = calloc((size_t)G, sizeof *ctx);
    for (int k = 0; k < 3; k++) {
        if (!(kinds >> k & 1)) continue;
        for (int h = 0; h < L * H; h++) {
            double a = 2 + 20 * urand(), *y = loss + (size_t)h * G;
            if (k == 0) { // evicted mass of one context: sparse heavy-tailed token masses, suffix sums
                enum { K = 16 };
                for (int g = 0; g < G; g++) y[g] = 0;
                for (int c = 0; c < K; c++) {
                    ctx[G - 1] = 0;
                    for (int g = G - 2; g >= 0; g--)
                        ctx[g] = ctx[g + 1] + (urand() < 0.1 ? -log(1 - urand()) * exp(-a * grid[g]) : 0);
                    double norm = ctx[0] > 0 ? 1 / ctx[0] : 0;
                    for (int g = 0; g < G; g++) y[g] += ctx[g] * norm;
                }
                for (int g = 0; g < G; g++) y[g] /= K;
                continue;
            }
            for (int g = 0; g < G; g++) {
                double x = grid[g];
                y[g] = k == 2 ? (1 - x) * (1 - x) * (1 + a) / (1 + a * x) : exp(-a * x) * (1 - x) + 0.01 * (urand() - 0.5) / 8;
            }
        }
        double th, tg;
        int64_t knots;
        time_solve(&p, &th, &tg, &knots);
        printf("  %-48s PAVA+hull %7.1f ms  greedy (99 ratios) %7.1f ms  total %7.1f ms  (%.1f knots/head)\n", kind[k],
               th, tg, th + tg, (double)knots / (L * H));
    }
    if (n_real) {
        memcpy(grid, real_grid, (size_t)G * sizeof *grid);
        for (int h = 0; h < L * H; h++) memcpy(loss + (size_t)h * G, real + (size_t)(h % n_real) * G, (size_t)G * sizeof *loss);
        double th, tg;
        int64_t knots;
        time_solve(&p, &th, &tg, &knots);
        char what[96];
        snprintf(what, sizeof what, "real (%d curves of the stats file, repeated)", n_real);
        printf("  %-48s PAVA+hull %7.1f ms  greedy (99 ratios) %7.1f ms  total %7.1f ms  (%.1f knots/head)\n", what, th,
               tg, th + tg, (double)knots / (L * H));
    }
    for (int U = 64; U <= 1024 && (kinds & 8); U *= 2) {
        if (U == 64) printf("exact DP vs greedy on small instances (6 heads, U tokens per head, all budgets):\n");
        enum { NH = 6 };
        double *sg = calloc(17, sizeof *sg), *sl = calloc((size_t)NH * 17, sizeof *sl);
        for (int g = 0; g < 17; g++) sg[g] = g / 16.0;
        for (int i = 0; i < NH * 17; i++) sl[i] = exp(-3.0 * sg[i % 17]) + 0.01 * urand();
        hks_problem q = hks_problem_default();
        q.L = 1, q.H = NH, q.G = 17, q.grid = sg, q.loss = sl, q.n_tokens = U;
        double th, tg;
        int64_t knots;
        time_solve(&q, &th, &tg, &knots);
        printf("  U = %5d: DP %9.2f ms   hull + greedy %.3f ms\n", U, dp_ms(NH, U), th + tg);
        free(sg), free(sl);
    }
    free(grid), free(loss), free(ctx), free(real), free(real_grid);
    return 0;
}
