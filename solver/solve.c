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
    double *inv_dx;  /* (G-1) 1 / float-grid spacing, as the profile reader sees it */
    double *dx;      /* (G-1) the float-grid spacing */
    float *gf;       /* (G) the grid in float32 */
    double *ys;      /* (G) a monotone head's scaled curve */
    int32_t *ca, *cb; /* (G) hull candidates, two buffers */
    unsigned char *flag; /* (G) locally convex points, then the head's repair flags */
    unsigned char *flag_b; /* (G) the repair flags of an unfinished earlier head */
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

/* Slack for a slope rise from float rounding: a quarter of the profile
 * reader's tolerance (runtime-lib/src/profile_check.c: 1e-4 relative + 1e-6).
 * Branch-free (&, not &&) so the chunk check below vectorises. */
static inline int rise_ok(double sl, double sprev) {
    return sl <= sprev + 0.25 * (1e-4 * (sl + sprev) + 1e-6);
}

/* The next float up (nextafterf(c, INFINITY) without the libm call for the
 * usual positive finite c). */
static inline float float_up(float c) {
    if (!(c > 0 && c < FLT_MAX)) return nextafterf(c, INFINITY);
    uint32_t u;
    memcpy(&u, &c, sizeof u);
    u++;
    memcpy(&c, &u, sizeof c);
    return c;
}

/* One point of the repair: out[g] holds the plain rounding; keep it unless
 * it exceeds out[g-1] or steepens the slope beyond rise_ok, else raise it to
 * the lowest float at slope <= sprev. Returns the slope into g. */
static double fill_step(float *out, const double *inv_dx, const double *dx, int32_t g, double sprev) {
    float prev = out[g - 1], c = out[g];
    double inv = inv_dx[g - 1];
    if (c > prev) c = prev;
    double sl = ((double)prev - c) * inv;
    if (!rise_ok(sl, sprev)) {
        c = (float)((double)prev - sprev * dx[g - 1]); /* multiply: division latency is the chain's */
        while (c < prev && ((double)prev - c) * inv > sprev) c = float_up(c);
        sl = ((double)prev - c) * inv;
    }
    out[g] = c;
    return sl;
}

/* bad[g] = 1 where fill_step would change point g (g >= 2) given the
 * current values of g-2 and g-1; branch-free over contiguous points, so it
 * vectorises. */
static void mark_bad(const float *o, const double *inv, int32_t G, unsigned char *bad) {
    for (int32_t j = 2; j < G; j++) {
        double a = o[j - 2], b = o[j - 1], c = o[j];
        bad[j] = !((c <= b) & rise_ok((b - c) * inv[j - 1], (a - b) * inv[j - 2]));
    }
}

/* The hull on the grid, rounded to float32 such that the slopes the profile
 * reader computes from the stored floats, (y[g] - y[g+1]) / (grid[g+1] -
 * grid[g]) in double, are >= 0 and never rise by more than rise_ok allows:
 * each value is the float nearest the exact hull, raised (by as little as
 * possible) where rounding would steepen a segment. Plain rounding breaks
 * the reader's check once the grid step nears float eps times the loss
 * (about 1000 points); the raise drifts by at most about one float ulp per
 * grid point until the next hull vertex, where the slope falls. Done as a
 * vectorised plain rounding and check of every point (here), then the
 * serial repair only where the check fails (repair_two). */
HKS_SIMD static void fill_float(const double *x, int32_t G, int32_t k, const hull_ws *w, float *out) {
    const double *hx = w->hx, *hy = w->hy, *inv = w->inv_dx;
    out[0] = (float)hy[0];
    for (int32_t s = 0; s + 1 < k; s++) {
        int32_t a = w->hi[s], b = w->hi[s + 1];
        double slope = (hy[s + 1] - hy[s]) / (hx[s + 1] - hx[s]), ya = hy[s], xa = hx[s];
        for (int32_t g = a + 1; g < b; g++) out[g] = (float)(ya + slope * (x[g] - xa));
        out[b] = (float)hy[s + 1];
    }
    fill_step(out, inv, w->dx, 1, INFINITY); /* the first slope has nothing to rise from */
    mark_bad(out, inv, G, w->flag);
}

/* One head's serial repair: a point's test reads the final values of the
 * two before it, so where neither changed, the test on the plain values
 * (bad) is final; a run starts at a flagged point and lasts until two points
 * in a row stay unchanged, its last value and slope carried along. */
typedef struct {
    float *out;
    const unsigned char *bad;
    int32_t g, dirty;
    float prev;
    double sp;
} repair_run;

/* Moves r to the next flagged point and starts a run there; 0 if none. */
static inline int run_start(repair_run *r, const double *inv, int32_t G) {
    int32_t g = r->g;
    const unsigned char *bad = r->bad;
    uint64_t word; /* skip clean points, 8 flags at a time */
    while (g + 8 <= G && (memcpy(&word, bad + g, 8), word == 0)) g += 8;
    while (g < G && !bad[g]) g++;
    r->g = g;
    if (g >= G) return 0;
    r->prev = r->out[g - 1];
    r->sp = ((double)r->out[g - 2] - r->prev) * inv[g - 2];
    r->dirty = 2;
    return 1;
}

/* fill_step on r's next point, with the previous value and slope carried. */
static inline void run_step(repair_run *r, const double *inv, const double *dx) {
    int32_t g = r->g;
    float prev = r->prev, c = r->out[g], old = c;
    double iv = inv[g - 1], sp = r->sp;
    if (c > prev) c = prev;
    double sl = ((double)prev - c) * iv;
    if (!rise_ok(sl, sp)) {
        c = (float)((double)prev - sp * dx[g - 1]); /* multiply: division latency is the chain's */
        while (c < prev && ((double)prev - c) * iv > sp) c = float_up(c);
        sl = ((double)prev - c) * iv;
    }
    r->out[g] = c;
    r->dirty = c != old ? 2 : r->dirty - 1;
    r->prev = c, r->sp = sl, r->g = g + 1;
}

/* Repairs heads a and b with their runs interleaved, until one of them is
 * done: each run is one latency-bound chain (about 6 ns a point), two
 * independent chains overlap. Returns 1 if a is left unfinished, 2 if b, 0
 * if neither (a run in progress stays in its state, to be resumed). */
static int repair_two(repair_run *a, repair_run *b, int32_t G, const double *inv, const double *dx) {
    int la = (a->dirty && a->g < G) || run_start(a, inv, G), lb = (b->dirty && b->g < G) || run_start(b, inv, G);
    while (la && lb) {
        while (a->dirty && b->dirty && a->g < G && b->g < G) run_step(a, inv, dx), run_step(b, inv, dx);
        if (!a->dirty || a->g >= G) la = run_start(a, inv, G);
        if (!b->dirty || b->g >= G) lb = run_start(b, inv, G);
    }
    return la ? 1 : lb ? 2 : 0;
}

/* Finishes head r on its own. */
static void repair_one(repair_run *r, int32_t G, const double *inv, const double *dx) {
    for (int live = (r->dirty && r->g < G) || run_start(r, inv, G); live; live = run_start(r, inv, G))
        while (r->dirty && r->g < G) run_step(r, inv, dx);
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
    // to the neighbours at distance 1, then 2 and 4 (where they exist):
    // 4,096 -> about 1,000 candidates instead of 2,000.
#define HKS_BELOW(i, o, b) ((x[i] - x[o]) * (y[b] - y[o]) - (y[i] - y[o]) * (x[b] - x[o]) > 0)
    for (int32_t i = 1; i + 1 < G; i++) f[i] = HKS_BELOW(i, i - 1, i + 1);
    for (int32_t i = 8; i + 8 < G; i++)
        f[i] &= HKS_BELOW(i, i - 2, i + 2) & HKS_BELOW(i, i - 4, i + 4) & HKS_BELOW(i, i - 8, i + 8);
#undef HKS_BELOW
    c[0] = 0, m = 1;
    for (int32_t i = 1; i + 1 < G; i++) c[m] = i, m += f[i];
    c[m++] = G - 1;
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
    free(w->hx), free(w->hy), free(w->hi), free(w->inv_dx), free(w->dx), free(w->gf), free(w->ys), free(w->ca), free(w->cb), free(w->flag), free(w->flag_b);
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
    w.inv_dx = malloc((size_t)G * sizeof *w.inv_dx);
    w.dx = malloc((size_t)G * sizeof *w.dx);
    w.gf = malloc((size_t)G * sizeof *w.gf);
    w.ys = malloc((size_t)G * sizeof *w.ys);
    w.ca = malloc((size_t)G * sizeof *w.ca);
    w.cb = malloc((size_t)G * sizeof *w.cb);
    w.flag = malloc((size_t)G);
    w.flag_b = malloc((size_t)G);
    int64_t kcap = nh * 8 < nh * G ? nh * 8 : nh * G; /* grows on demand */
    int32_t *knots = malloc((size_t)kcap * sizeof *knots);
    if (!w.hx || !w.hy || !w.hi || !w.inv_dx || !w.dx || !w.gf || !w.ys || !w.ca || !w.cb || !w.flag || !w.flag_b || !knots || hks_pava_ws_init(&w.pava, p->G)) {
        hull_ws_free(&w);
        free(knots);
        return hkm_fail(err, HKM_ERR_NOMEM, "solver: out of memory for hulls of %d points", p->G);
    }
    for (int64_t g = 0; g < G; g++) w.gf[g] = (float)p->grid[g];
    for (int64_t g = 0; g + 1 < G; g++) w.dx[g] = (double)w.gf[g + 1] - w.gf[g], w.inv_dx[g] = 1.0 / w.dx[g];
    int64_t nk = 0;
    repair_run pend = {0};
    int have = 0; /* pend holds an unfinished head */
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
        fill_float(p->grid, p->G, k, &w, s->hull + h * G);
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
        // Each head's repair runs alongside the unfinished rest of an earlier
        // one (pend, its flags in flag_b); whichever is left over waits.
        repair_run cur = {s->hull + h * G, w.flag, 2, 0, 0, 0};
        int left = have ? repair_two(&pend, &cur, p->G, w.inv_dx, w.dx) : 2;
        if (left == 2) {
            unsigned char *t = w.flag; /* keep cur's flags */
            w.flag = w.flag_b, w.flag_b = t;
            pend = cur;
        }
        have = left != 0;
    }
    if (have) repair_one(&pend, p->G, w.inv_dx, w.dx);
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
