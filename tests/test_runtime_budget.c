/* Budget greedy: sums, bounds, sinks, optimality against a per-unit greedy
 * and an exhaustive search, tie-break, and infeasible/bad input. */
#include "hubkv.h"
#include "test_util.h"

#include <math.h>
#include <string.h>

static unsigned rng = 12345;
static double urand(void) {
    rng = rng * 1103515245u + 12345u;
    return (double)((rng >> 8) & 0xffffff) / 16777216.0;
}

/* Random convex non-increasing curves: per-segment slopes sorted descending. */
static void make_curves(float *grid, float *loss, int H, int G) {
    for (int g = 0; g < G; g++) grid[g] = (float)g / (float)(G - 1);
    for (int h = 0; h < H; h++) {
        double sl[64];
        for (int g = 0; g < G - 1; g++) sl[g] = urand() * 5.0;
        for (int i = 0; i < G - 1; i++) /* sort descending */
            for (int j = i + 1; j < G - 1; j++)
                if (sl[j] > sl[i]) { double t = sl[i]; sl[i] = sl[j]; sl[j] = t; }
        float *y = loss + h * G;
        y[G - 1] = (float)urand();
        for (int g = G - 2; g >= 0; g--) y[g] = y[g + 1] + (float)(sl[g] * (grid[g + 1] - grid[g]));
    }
}

/* Interpolated loss of head h at t tokens (independent of budget.c). */
static double interp(const float *grid, const float *y, int G, double t, double n) {
    double x = t / n;
    for (int g = 0; g < G - 1; g++)
        if (x <= grid[g + 1] || g == G - 2)
            return y[g] + (y[g + 1] - y[g]) * (x - grid[g]) / (grid[g + 1] - grid[g]);
    return y[G - 1];
}

static double total_loss(const float *grid, const float *loss, int H, int G, const int64_t *b, double n) {
    double s = 0;
    for (int h = 0; h < H; h++) s += interp(grid, loss + h * G, G, (double)b[h], n);
    return s;
}

/* Per-unit greedy, the naive definition. */
static void naive_greedy(const float *grid, const float *loss, int H, int G, int64_t n, int64_t lo, int64_t target,
                         int64_t *out) {
    for (int h = 0; h < H; h++) out[h] = lo;
    for (int64_t left = target - lo * H; left > 0; left--) {
        int best = -1;
        double bg = -INFINITY;
        for (int h = 0; h < H; h++) {
            if (out[h] >= n) continue;
            const float *y = loss + h * G;
            double gain = interp(grid, y, G, (double)out[h], (double)n) - interp(grid, y, G, (double)out[h] + 1, (double)n);
            if (gain > bg + 1e-12) bg = gain, best = h;
        }
        out[best]++;
    }
}

static void test_properties(void) {
    enum { H = 24, G = 9 };
    float grid[G], loss[H * G];
    int64_t out[H], ref[H];
    for (int trial = 0; trial < 30; trial++) {
        make_curves(grid, loss, H, G);
        hubkv_budget_params p = hubkv_budget_default_params();
        p.n_heads = H, p.n_grid = G, p.grid = grid, p.loss = loss;
        p.n_tokens = 200 + (int64_t)(urand() * 800);
        p.n_sink = 4, p.n_recent = 8;
        int64_t lo = 12;
        p.target = lo * H + (int64_t)(urand() * (double)((p.n_tokens - lo) * H));
        char err[256] = "";
        hubkv_status st = hubkv_budget_greedy(&p, out, err, sizeof err);
        CHECK(st == HUBKV_OK, "trial %d: %s: %s", trial, hubkv_status_str(st), err);
        int64_t sum = 0;
        for (int h = 0; h < H; h++) {
            sum += out[h];
            CHECK(out[h] >= lo && out[h] <= p.n_tokens, "head %d budget %lld outside [%lld, %lld]", h,
                  (long long)out[h], (long long)lo, (long long)p.n_tokens);
        }
        CHECK(sum == p.target, "sum %lld != target %lld", (long long)sum, (long long)p.target);
        naive_greedy(grid, loss, H, G, p.n_tokens, lo, p.target, ref);
        double a = total_loss(grid, loss, H, G, out, (double)p.n_tokens);
        double b = total_loss(grid, loss, H, G, ref, (double)p.n_tokens);
        CHECK(fabs(a - b) <= 1e-6 * (1 + fabs(b)), "trial %d: greedy loss %.9g vs per-unit greedy %.9g", trial, a, b);
    }
}

/* Exhaustive optimum over 3 heads on a short context. */
static void test_exhaustive(void) {
    enum { H = 3, G = 5, N = 40 };
    float grid[G], loss[H * G];
    for (int trial = 0; trial < 20; trial++) {
        make_curves(grid, loss, H, G);
        int64_t target = 10 + (int64_t)(urand() * 100), out[H];
        hubkv_budget_params p = hubkv_budget_default_params();
        p.n_heads = H, p.n_grid = G, p.grid = grid, p.loss = loss, p.n_tokens = N, p.target = target;
        CHECK(hubkv_budget_greedy(&p, out, NULL, 0) == HUBKV_OK, "exhaustive trial %d", trial);
        double best = INFINITY;
        for (int64_t a = 0; a <= N; a++)
            for (int64_t b = 0; b <= N; b++) {
                int64_t c = target - a - b;
                if (c < 0 || c > N) continue;
                int64_t x[H] = {a, b, c};
                double l = total_loss(grid, loss, H, G, x, N);
                if (l < best) best = l;
            }
        double got = total_loss(grid, loss, H, G, out, N);
        CHECK(got <= best + 1e-6 * (1 + fabs(best)), "trial %d: greedy %.9g > optimum %.9g", trial, got, best);
    }
}

static void test_ties_and_errors(void) {
    float grid[3] = {0, 0.5f, 1}, loss[6] = {2, 1, 0.5f, 2, 1, 0.5f};
    int64_t out[2];
    hubkv_budget_params p = hubkv_budget_default_params();
    p.n_heads = 2, p.n_grid = 3, p.grid = grid, p.loss = loss, p.n_tokens = 100, p.target = 51;
    CHECK(hubkv_budget_greedy(&p, out, NULL, 0) == HUBKV_OK, "ties");
    /* Equal heads: the lower index takes its whole first segment first. */
    CHECK(out[0] == 50 && out[1] == 1, "tie-break by head index: got %lld, %lld", (long long)out[0], (long long)out[1]);
    char err[256] = "";
    p.n_sink = 30, p.n_recent = 30; /* 60 per head forced > 51 in all */
    hubkv_status st = hubkv_budget_greedy(&p, out, err, sizeof err);
    CHECK(st == HUBKV_ERR_RANGE && strstr(err, "feasible"), "infeasible target: %s %s", hubkv_status_str(st), err);
    p.n_sink = p.n_recent = 0;
    loss[4] = NAN;
    st = hubkv_budget_greedy(&p, out, err, sizeof err);
    CHECK(st == HUBKV_ERR_RANGE && strstr(err, "loss[4]"), "NaN loss: %s %s", hubkv_status_str(st), err);
    loss[4] = 1;
    grid[1] = 1.5f;
    st = hubkv_budget_greedy(&p, out, err, sizeof err);
    CHECK(st == HUBKV_ERR_RANGE && strstr(err, "grid[1]"), "bad grid: %s %s", hubkv_status_str(st), err);
    CHECK(hubkv_budget_greedy(NULL, out, err, sizeof err) == HUBKV_ERR_INVALID_ARG, "NULL params");
}

int main(void) {
    test_properties();
    test_exhaustive();
    test_ties_and_errors();
    return test_summary("test_runtime_budget");
}
