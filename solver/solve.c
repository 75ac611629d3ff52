/* Solver core: hulls of the per-head curves and the one-pass greedy over all
 * 99 ratios (the greedy itself is libhubkv's; nothing here re-implements it). */
#include "solve.h"

#include "hubkv.h"
#include "hull.h"
#include "pava.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Memory for the large outputs (the 84 MB hull at 80 x 64 x 4,096), not
 * zeroed (callers write every element): 2 MiB-aligned and marked for
 * transparent huge pages, since faulting it in 4 KiB pages costs about as
 * much as computing it (about 2.5 us per fault here). Freed with free(). */
static void *alloc_big(size_t n, size_t size) {
    size_t bytes = n * size;
    enum { HUGE_PAGE = 2 << 20 };
#ifdef MADV_HUGEPAGE
    if (n && bytes / n == size && bytes >= 2 * HUGE_PAGE) {
        void *q;
        if (posix_memalign(&q, HUGE_PAGE, bytes)) return NULL;
        madvise(q, bytes, MADV_HUGEPAGE); /* advisory: failure costs only speed */
        return q;
    }
#endif
    return malloc(bytes ? bytes : 1);
}

hks_problem hks_problem_default(void) {
    hks_problem p;
    memset(&p, 0, sizeof p);
    p.max_keep = 1.0;
    return p;
}

/* The first non-finite value of loss[from, to) (flat indices), if any. */
static hkm_status check_loss(const hks_problem *p, int64_t from, int64_t to, hkm_err *err) {
    int ok = 1; /* branch-free scan first (vectorises), then locate */
    for (int64_t i = from; i < to; i++) ok &= fabs(p->loss[i]) <= DBL_MAX;
    if (ok) return HKM_OK;
    for (int64_t i = from; i < to; i++)
        if (!isfinite(p->loss[i]))
            return hkm_fail(err, HKM_ERR_ARG, "solver: loss[%lld, %lld, %lld] = %g; expected a finite value",
                            (long long)(i / ((int64_t)p->H * p->G)), (long long)(i / p->G % p->H),
                            (long long)(i % p->G), p->loss[i]);
    return HKM_OK;
}

/* Everything but the loss values (hks_solve_hulls checks those per head,
 * while the head is in cache, instead of one more pass over all of them). */
static hkm_status check_shape(const hks_problem *p, hkm_err *err) {
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

hkm_status hks_problem_check(const hks_problem *p, hkm_err *err) {
    HKM_TRY(check_shape(p, err));
    return check_loss(p, 0, (int64_t)p->L * p->H * p->G, err);
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
    double *ys;      /* (G) a monotone head's scaled curve */
    int32_t *ca, *cb; /* (G) hull candidates, two buffers */
    unsigned char *flag; /* (G) locally convex points */
    double chord_dev;    /* bound on |chord at x_i - mean of its ends| / |rise| for symmetric chords */
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

/* The per-point loops below vectorise; on x86-64 GCC also builds them for
 * AVX2 (picked at load time; no FMA, so results equal the SSE2 build). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define HKS_SIMD __attribute__((target_clones("avx2", "default")))
#else
#define HKS_SIMD
#endif

/* The hull sampled on the grid, each value rounded to the nearest float.
 * Rounding is monotone, so the floats stay non-increasing; their slopes may
 * rise by the rounding of three values, which the profile reader's check
 * allows for (runtime-lib/src/profile_check.c), and the greedy is exact on
 * any curve. */
HKS_SIMD static void fill_float(const double *x, int32_t k, const hull_ws *w, float *out) {
    const double *hx = w->hx, *hy = w->hy;
    out[0] = (float)hy[0];
    for (int32_t s = 0; s + 1 < k; s++) {
        int32_t a = w->hi[s], b = w->hi[s + 1];
        if (b > a + 1) { /* interior points (none where every point is a vertex) */
            double slope = (hy[s + 1] - hy[s]) / (hx[s + 1] - hx[s]), ya = hy[s], xa = hx[s];
            for (int32_t g = a + 1; g < b; g++) out[g] = (float)(ya + slope * (x[g] - xa));
        }
        out[b] = (float)hy[s + 1];
    }
}

/* Drops the candidates of c (m, ascending, ends kept) that do not turn
 * strictly left with their neighbours in c: a lower-hull vertex (collinear
 * points dropped) lies strictly below the chord of any two points around
 * it, so it survives every pass. Branch-free compaction into out; returns
 * the new count. */
static int32_t convex_pass(const double *x, const double *y, const int32_t *c, int32_t m, int32_t *out) {
    int32_t n = 1;
    out[0] = c[0];
    for (int32_t j = 1; j + 1 < m; j++) {
        int32_t o = c[j - 1], a = c[j], b = c[j + 1];
        double cr = (x[a] - x[o]) * (y[b] - y[o]) - (y[a] - y[o]) * (x[b] - x[o]);
        out[n] = a;
        n += cr > 0;
    }
    out[n++] = c[m - 1];
    return n;
}

/* Monotone input: every point is its own PAVA block. Local-convexity passes
 * (no data-dependent branches) shrink the candidates, typically 4,096 to a
 * few hundred; the monotone chain (same test as block_hull) runs over the
 * rest. Returns k. */
HKS_SIMD static int32_t point_hull(const double *x, const double *y0, double scale, int32_t G, hull_ws *w) {
    const double *y = scale == 1.0 ? y0 : w->ys; /* unweighted: no scaled copy */
    double *hx = w->hx, *hy = w->hy;
    int32_t *hi = w->hi, k = 0, *c = w->ca, *d = w->cb, m;
    unsigned char *f = w->flag;
    if (y != y0)
        for (int32_t i = 0; i < G; i++) w->ys[i] = scale * y0[i];
    // The first pass on contiguous points vectorises. A vertex lies strictly
    // below the chord of any two points around it, so it tests the chords
    // to the neighbours at distance 1 (exactly: the chain's own test), then
    // 2, 4 and 8 (where they exist): 4,096 -> about 1,000 candidates instead
    // of 2,000. Those three are symmetric chords on a near-uniform grid: the
    // chord's value at x_i is the mean of its ends, off by at most
    // w->chord_dev of the head's range (grid non-uniformity) plus rounding;
    // a point is dropped only if it lies above the mean by more than that
    // (3 operations per chord instead of 7, and never a vertex dropped).
#define HKS_BELOW(i, o, b) ((x[i] - x[o]) * (y[b] - y[o]) - (y[i] - y[o]) * (x[b] - x[o]) > 0)
    for (int32_t i = 1; i + 1 < G; i++) f[i] = HKS_BELOW(i, i - 1, i + 1);
#undef HKS_BELOW
    double tol = w->chord_dev * fabs(y[0] - y[G - 1]) + 8 * DBL_EPSILON * (fabs(y[0]) + fabs(y[G - 1]));
#define HKS_NOT_ABOVE(i, d) (y[i] - 0.5 * (y[i - d] + y[i + d]) <= tol)
    for (int32_t i = 8; i + 8 < G; i++) f[i] &= HKS_NOT_ABOVE(i, 2) & HKS_NOT_ABOVE(i, 4) & HKS_NOT_ABOVE(i, 8);
#undef HKS_NOT_ABOVE
    c[0] = 0, m = 1;
    for (int32_t i = 1; i + 1 < G; i++) c[m] = i, m += f[i];
    c[m++] = G - 1;
    if (m == G) { /* every point turns strictly left: the chain would pop none */
        memcpy(hx, x, (size_t)G * sizeof *hx);
        memcpy(hy, y, (size_t)G * sizeof *hy);
        for (int32_t i = 0; i < G; i++) hi[i] = i;
        return G;
    }
    for (int pass = 0; pass < 8 && m > 2 && m <= G - G / 8; pass++) { /* not for (nearly) convex curves */ /* stop once a pass removes little */
        int32_t n = convex_pass(x, y, c, m, d), *t = c;
        c = d, d = t;
        int little = n > m - m / 8;
        m = n;
        if (little) break;
    }
    for (int32_t j = 0; j < m; j++) {
        int32_t i = c[j];
        double px = x[i], py = y[i];
        while (k >= 2 && (hx[k - 1] - hx[k - 2]) * (py - hy[k - 2]) - (hy[k - 1] - hy[k - 2]) * (px - hx[k - 2]) <= 0) k--;
        hx[k] = px, hy[k] = py, hi[k] = i;
        k++;
    }
    return k;
}

static void hull_ws_free(hull_ws *w) {
    hks_pava_ws_free(&w->pava);
    free(w->hx), free(w->hy), free(w->hi), free(w->ys), free(w->ca), free(w->cb), free(w->flag);
}

hkm_status hks_solve_hulls(const hks_problem *p, hks_solution *s, hkm_err *err) {
    HKM_TRY(check_shape(p, err)); /* loss values: per head below */
    int64_t nh = (int64_t)p->L * p->H, G = p->G;
    s->L = p->L;
    s->H = p->H;
    s->G = p->G;
    s->hull = alloc_big((size_t)(nh * G), sizeof *s->hull);
    if (!s->hull) return hkm_fail(err, HKM_ERR_NOMEM, "solver: out of memory for %lld hull points", (long long)(nh * G));
    HKM_ALLOC(s->knot_off, nh + 1, err);
    hull_ws w = {0};
    w.hx = malloc((size_t)G * sizeof *w.hx);
    w.hy = malloc((size_t)G * sizeof *w.hy);
    w.hi = malloc((size_t)G * sizeof *w.hi);
    w.ys = malloc((size_t)G * sizeof *w.ys);
    w.ca = malloc((size_t)G * sizeof *w.ca);
    w.cb = malloc((size_t)G * sizeof *w.cb);
    w.flag = malloc((size_t)G);
    int64_t kcap = nh * 8 < nh * G ? nh * 8 : nh * G; /* grows on demand */
    int32_t *knots = malloc((size_t)kcap * sizeof *knots);
    if (!w.hx || !w.hy || !w.hi || !w.ys || !w.ca || !w.cb || !w.flag || !knots || hks_pava_ws_init(&w.pava, p->G)) {
        hull_ws_free(&w);
        free(knots);
        return hkm_fail(err, HKM_ERR_NOMEM, "solver: out of memory for hulls of %d points", p->G);
    }
    // Symmetric chords (x_{i-d}, x_{i+d}) cut x_i at 1/2 + delta of their
    // width, |delta| <= the spacing's largest relative deviation from the
    // mean step (first order; doubled for the rest and for rounding).
    double step = (p->grid[G - 1] - p->grid[0]) / (double)(G - 1), dev = 0;
    for (int64_t g = 0; g + 1 < G; g++) dev = fmax(dev, fabs(p->grid[g + 1] - p->grid[g] - step));
    w.chord_dev = 2 * dev / step + 4 * DBL_EPSILON;
    int64_t nk = 0;
    for (int64_t h = 0; h < nh; h++) {
        double lw = p->layer_w ? p->layer_w[h / p->H] : 1.0;
        const double *y = p->loss + h * G;
        int32_t k;
        // A non-increasing head is finite when its ends are; one that is not
        // (noise, or a bad value) gets the full check and PAVA.
        if (hks_pava_is_nonincreasing(y, p->G) && isfinite(y[0]) && isfinite(y[G - 1])) {
            k = point_hull(p->grid, y, lw, p->G, &w);
        } else {
            hkm_status st = check_loss(p, h * G, (h + 1) * G, err);
            if (st != HKM_OK) {
                hull_ws_free(&w);
                free(knots);
                free(s->hull), free(s->knot_off);
                s->hull = NULL, s->knot_off = NULL;
                return st;
            }
            int32_t nb = hks_pava_pool(y, p->weight, lw, p->G, &w.pava); /* not monotone: skip the test */
            k = block_hull(p->grid, p->G, nb, &w.pava, &w);
        }
        fill_float(p->grid, k, &w, s->hull + h * G);
        if (nk + k > kcap) {
            while (nk + k > kcap) kcap *= 2;
            int32_t *nkn = realloc(knots, (size_t)kcap * sizeof *knots);
            if (!nkn) {
                hull_ws_free(&w);
                free(knots);
                free(s->hull), free(s->knot_off);
                s->hull = NULL, s->knot_off = NULL;
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
    int64_t *rev = alloc_big((size_t)(HKS_N_RATIOS * nh), sizeof *rev);
    if (!rev) return free(gridf), hkm_fail(err, HKM_ERR_NOMEM, "solver: out of memory for %lld budgets", (long long)(HKS_N_RATIOS * nh));
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
    s->keep = alloc_big((size_t)(HKS_N_RATIOS * nh), sizeof *s->keep);
    if (!s->keep) return hkm_fail(err, HKM_ERR_NOMEM, "solver: out of memory for %lld keep fractions", (long long)(HKS_N_RATIOS * nh));
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
