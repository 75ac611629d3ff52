/* Per-head KV budget allocation: the marginal-utility greedy over per-head
 * piecewise-linear loss curves (the one implementation; solver/ reuses it).
 *
 * A unit (one kept token) moves a head from t to t+1 tokens; its gain is the
 * drop of the interpolated loss L(t/N). Inside one segment every unit has
 * the same gain (the segment slope), so a head's units come in runs; a unit
 * straddling a knot is a run of its own. The per-unit greedy (largest gain,
 * ties to the lower head) takes a head's runs in order, and once it takes a
 * run it takes every following run of that head whose gain is >= the first
 * one's (nothing else can beat it). So each head's runs pool into blocks
 * whose keys (the first run's gain) strictly decrease, and the greedy's unit
 * order is exactly the blocks sorted by (key desc, head asc). The order does
 * not depend on the target, and each target is a prefix of it.
 *
 * All targets are therefore resolved without sorting all blocks: a histogram
 * of units over up to 2^16 buckets of the (order-preserving) key bits finds the
 * bucket where each target's prefix ends; a second pass counts every head's
 * units in earlier buckets and gathers the blocks of those boundary buckets,
 * which alone are sorted (each bucket on its own). Blocks are generated from
 * the knots once and stored when they fit (up to 64 MiB or twice the loss
 * array; the buckets then span their exact key range), else twice: O(total
 * knots + boundary blocks log) time, O(n_heads * n_targets + buckets) memory
 * beyond that store. */
#include "hubkv_internal.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* ------------------------------------------------------------------------ */
/* Curve geometry                                                            */

/* One head's curve: K knots (x_k, y_k), linear between knots. With a knot
 * list the knots are first gathered from the (large, cache-cold) loss array
 * into per-call scratch (head_curve), so the run loop reads two small
 * contiguous arrays instead of missing the cache at every knot. */
typedef struct {
    const double *x;   /* (K) keep fractions */
    const double *y;   /* (K) loss */
    int32_t K;
    double n;          /* N as double */
} curve;

static double kx(const curve *c, int32_t k) { return c->x[k]; }
static double ky(const curve *c, int32_t k) { return c->y[k]; }

/* Loss at token count t, linear inside the knots and extrapolated with the
 * end segments outside them. The search starts at segment g0 (t only grows). */
static double curve_loss(const curve *c, double t, int32_t g0) {
    double x = t / c->n;
    int32_t g = g0;
    while (g < c->K - 2 && x > kx(c, g + 1)) g++;
    double x0 = kx(c, g), x1 = kx(c, g + 1), y0 = ky(c, g), y1 = ky(c, g + 1);
    return y0 + (y1 - y0) * (x - x0) / (x1 - x0);
}

/* The next run of equal-gain units for a head at t tokens: returns the gain
 * per unit and sets *run (>= 1, uncapped). *seg is the head's segment cursor
 * (advanced here; t never decreases, so the scan is amortised O(K)). */
static double curve_next(const curve *c, int64_t t, int64_t *run, int32_t *seg) {
    int32_t g = *seg;
    while (g < c->K - 2 && (double)t >= kx(c, g + 1) * c->n) g++;
    *seg = g;
    double b1 = kx(c, g + 1) * c->n;
    int last = (g == c->K - 2);
    if (last || (double)(t + 1) <= b1) {
        double slope = (ky(c, g) - ky(c, g + 1)) / ((kx(c, g + 1) - kx(c, g)) * c->n);
        *run = last ? INT64_MAX : (int64_t)floor(b1) - t;
        if (*run < 1) *run = 1;
        return slope;
    }
    *run = 1; /* the unit straddles a knot */
    return curve_loss(c, (double)t, g) - curve_loss(c, (double)(t + 1), g);
}

/* ------------------------------------------------------------------------ */
/* Blocks of one head                                                        */

typedef struct {
    curve c;
    int64_t t, hi;    /* next unit, per-head maximum */
    int32_t seg;      /* segment cursor */
    int pend;         /* a run was read past the last block */
    double pend_gain;
    int64_t pend_run;
} blocks;

static blocks blocks_start(curve c, int64_t lo, int64_t hi) {
    blocks b = {c, lo, hi, 0, 0, 0, 0};
    return b;
}

static double next_run(blocks *b, int64_t *run) {
    double g = curve_next(&b->c, b->t, run, &b->seg);
    if (*run > b->hi - b->t) *run = b->hi - b->t;
    b->t += *run;
    return g;
}

/* The head's next block: key (gain of its first run) and units; 0 at the end. */
static int blocks_next(blocks *b, double *key, int64_t *cnt) {
    if (b->pend) {
        *key = b->pend_gain, *cnt = b->pend_run;
        b->pend = 0;
    } else {
        if (b->t >= b->hi) return 0;
        *key = next_run(b, cnt);
    }
    while (b->t < b->hi) {
        int64_t run;
        double g = next_run(b, &run);
        if (g >= *key) {
            *cnt += run;
            continue;
        }
        b->pend = 1, b->pend_gain = g, b->pend_run = run;
        break;
    }
    return 1;
}

/* Ascending in this = descending gain (IEEE order on the bits); -0 == +0. */
static uint64_t desc_bits(double g) {
    g += 0.0;
    uint64_t u;
    memcpy(&u, &g, sizeof u);
    u = (u >> 63) ? ~u : (u | (UINT64_C(1) << 63));
    return ~u;
}

/* ------------------------------------------------------------------------ */
/* Buckets of keys                                                           */

/* Up to 2^16 buckets, about 16 per head (small calls stay cheap). */
enum { NBKT_MAX = 1 << 16 };

typedef struct {
    uint64_t dmin;
    int shift;
    int32_t nb;
} bucketing;

static int32_t bucket_of(const bucketing *bk, uint64_t d) {
    if (d <= bk->dmin) return 0;
    uint64_t b = (d - bk->dmin) >> bk->shift;
    return b >= (uint64_t)bk->nb ? bk->nb - 1 : (int32_t)b;
}

/* Segment cursor at or before the one holding unit t (binary search). */
static int32_t seg_at(const curve *c, int64_t t) {
    int32_t a = 0, b = c->K - 2;
    while (a < b) {
        int32_t m = (a + b + 1) / 2;
        if (kx(c, m) * c->n <= (double)t) a = m;
        else b = m - 1;
    }
    return a;
}

/* Key range: the largest key is some head's first gain (keys only fall);
 * the last units' gains estimate the smallest (smaller keys share the last
 * bucket, which costs time, never correctness). */
static bucketing make_bucketing(const hubkv_budget_params *p, int64_t lo, int64_t hi, double *sx, double *sy);
static bucketing range_bucketing(uint64_t dmin, uint64_t dmax, int32_t n_heads);

typedef struct {
    uint64_t d;
    int64_t cnt;
    int32_t head;
} gblock;

static int gblock_cmp(const void *va, const void *vb) {
    const gblock *a = va, *b = vb;
    if (a->d != b->d) return a->d < b->d ? -1 : 1;
    return (a->head > b->head) - (a->head < b->head);
}

/* ------------------------------------------------------------------------ */
/* Greedy                                                                    */

/* The block store's limit (16 bytes a block, at most 2 per knot and head):
 * 2^22 blocks (64 MiB), or up to twice the loss array's bytes when that is
 * more: at 5,120 heads x 4,096 points hulls of up to about 1,000 knots a head
 * fit (oracle-scorer hulls have about 500), all-knot curves do not. */
static int64_t store_max(const hubkv_budget_params *p) {
    int64_t by_input = (int64_t)p->n_heads * p->n_grid / 2;
    return by_input > (1 << 22) ? by_input : (1 << 22);
}

/* Large scratch, not zeroed: 2 MiB-aligned and marked for transparent huge
 * pages, since faulting it in 4 KiB pages costs about as much as filling it.
 * Freed with free(). */
static void *alloc_big(size_t n, size_t size) {
    size_t bytes = n * size;
    enum { HUGE_PAGE = 2 << 20 };
#ifdef MADV_HUGEPAGE
    if (n && bytes / n == size && bytes >= HUGE_PAGE) {
        void *q;
        if (posix_memalign(&q, HUGE_PAGE, bytes)) return NULL;
        madvise(q, bytes, MADV_HUGEPAGE); /* advisory: failure costs only speed */
        return q;
    }
#endif
    return malloc(bytes ? bytes : 1);
}

hubkv_budget_params hubkv_budget_default_params(void) {
    hubkv_budget_params p = {0};
    return p;
}

static hubkv_status check_params(const hubkv_budget_params *p, char *err, size_t cap) {
    if (!p || !p->grid || !p->loss)
        return hkv_fail(err, cap, HUBKV_ERR_INVALID_ARG, "budget: params, grid and loss must be non-NULL");
    if (p->n_heads <= 0 || p->n_grid < 2 || p->n_tokens <= 0)
        return hkv_fail(err, cap, HUBKV_ERR_INVALID_ARG,
                        "budget: need n_heads > 0, n_grid >= 2, n_tokens > 0 (got %d, %d, %lld)",
                        p->n_heads, p->n_grid, (long long)p->n_tokens);
    if (p->n_sink < 0 || p->n_recent < 0 || p->min_per_head < 0 || p->max_per_head < 0)
        return hkv_fail(err, cap, HUBKV_ERR_INVALID_ARG, "budget: n_sink, n_recent, min/max_per_head must be >= 0");
    for (int32_t g = 0; g < p->n_grid; g++) {
        float x = p->grid[g];
        if (!(x >= 0.0f && x <= 1.0f) || (g > 0 && !(x > p->grid[g - 1])))
            return hkv_fail(err, cap, HUBKV_ERR_RANGE,
                            "budget: grid[%d] = %g; expected strictly increasing values in [0, 1]", g, x);
    }
    int64_t n = (int64_t)p->n_heads * p->n_grid;
    int ok = 1; /* branch-free scan first (vectorises), then locate */
    for (int64_t i = 0; i < n; i++) ok &= fabsf(p->loss[i]) <= FLT_MAX;
    for (int64_t i = 0; !ok && i < n; i++)
        if (!isfinite(p->loss[i]))
            return hkv_fail(err, cap, HUBKV_ERR_RANGE, "budget: loss[%lld] (head %lld, grid %lld) is not finite",
                            (long long)i, (long long)(i / p->n_grid), (long long)(i % p->n_grid));
    return HUBKV_OK;
}

/* Knot lists: per head ascending grid indices, first 0 and last G-1. */
static hubkv_status check_knots(const hubkv_budget_params *p, char *err, size_t cap) {
    if (!p->knots) return HUBKV_OK;
    if (!p->knot_off || p->knot_off[0] != 0)
        return hkv_fail(err, cap, HUBKV_ERR_INVALID_ARG, "budget: knots need knot_off (n_heads + 1) with knot_off[0] = 0");
    for (int32_t h = 0; h < p->n_heads; h++) {
        int64_t a = p->knot_off[h], b = p->knot_off[h + 1];
        if (b - a < 2 || p->knots[a] != 0 || p->knots[b - 1] != p->n_grid - 1)
            return hkv_fail(err, cap, HUBKV_ERR_INVALID_ARG,
                            "budget: head %d has %lld knots; expected >= 2, the first 0 and the last %d", h,
                            (long long)(b - a), p->n_grid - 1);
        for (int64_t k = a + 1; k < b; k++)
            if (p->knots[k] <= p->knots[k - 1])
                return hkv_fail(err, cap, HUBKV_ERR_INVALID_ARG, "budget: head %d knots[%lld] = %d; expected ascending",
                                h, (long long)(k - a), p->knots[k]);
    }
    return HUBKV_OK;
}

/* Head h's knots into sx, sy (G each): the gathers are independent loads,
 * so their cache misses overlap. Values are the floats, widened exactly. */
static curve head_curve(const hubkv_budget_params *p, int32_t h, double *sx, double *sy) {
    const float *y = p->loss + (size_t)h * p->n_grid;
    curve c = {sx, sy, p->n_grid, (double)p->n_tokens};
    if (p->knots) {
        const int32_t *kn = p->knots + p->knot_off[h];
        c.K = (int32_t)(p->knot_off[h + 1] - p->knot_off[h]);
        for (int32_t k = 0; k < c.K; k++) sx[k] = p->grid[kn[k]], sy[k] = y[kn[k]];
    } else {
        for (int32_t k = 0; k < c.K; k++) sx[k] = p->grid[k], sy[k] = y[k];
    }
    return c;
}

static bucketing make_bucketing(const hubkv_budget_params *p, int64_t lo, int64_t hi, double *sx, double *sy) {
    uint64_t dmin = UINT64_MAX, dmax = 0;
    for (int32_t h = 0; h < p->n_heads; h++) {
        curve c = head_curve(p, h, sx, sy);
        int64_t run;
        int32_t seg = 0;
        uint64_t d0 = desc_bits(curve_next(&c, lo, &run, &seg));
        seg = seg_at(&c, hi - 1);
        uint64_t d1 = desc_bits(curve_next(&c, hi - 1, &run, &seg));
        if (d0 < dmin) dmin = d0;
        if (d1 > dmax) dmax = d1;
    }
    return range_bucketing(dmin, dmax, p->n_heads);
}

/* Buckets spanning keys [dmin, dmax]. */
static bucketing range_bucketing(uint64_t dmin, uint64_t dmax, int32_t n_heads) {
    bucketing bk = {dmin, 0, 256};
    while (bk.nb < NBKT_MAX && bk.nb < 16 * (int64_t)n_heads) bk.nb *= 2;
    uint64_t span = dmax > dmin ? dmax - dmin : 0;
    while ((span >> bk.shift) >= (uint64_t)bk.nb) bk.shift++;
    return bk;
}

/* Where target k's prefix ends: bucket bnd[k] (-1 for none) and the units
 * rem[k] it takes from that bucket (0 < rem <= its units). */
static void find_cuts(const uint64_t *units, int32_t nb, int64_t base, int32_t n_targets, const int64_t *targets, int32_t *bnd,
                      int64_t *rem) {
    uint64_t below = 0;
    int32_t c = 0;
    for (int32_t k = 0; k < n_targets; k++) {
        uint64_t need = (uint64_t)(targets[k] - base);
        if (need == 0) {
            bnd[k] = -1, rem[k] = 0;
            continue;
        }
        while (c < nb - 1 && below + units[c] < need) below += units[c++]; /* all units (H (hi - lo)) >= need */
        bnd[k] = c, rem[k] = (int64_t)(need - below);
    }
}

/* All targets (ascending, feasible) at once; row k of out = the greedy's
 * counts after targets[k] units in total. */
static hubkv_status greedy_sweep(const hubkv_budget_params *p, int64_t lo, int64_t hi, int32_t n_targets,
                                 const int64_t *targets, int64_t *out, char *err, size_t cap) {
    int32_t H = p->n_heads;
    for (int64_t i = 0; i < (int64_t)n_targets * H; i++) out[i] = lo;
    if (lo >= hi) return HUBKV_OK; /* every target is H * lo */
    double *sx = hkv_calloc((size_t)p->n_grid, sizeof *sx), *sy = hkv_calloc((size_t)p->n_grid, sizeof *sy);
    if (!sx || !sy) {
        free(sx), free(sy);
        return hkv_fail(err, cap, HUBKV_ERR_NOMEM, "budget: out of memory for %d grid points", p->n_grid);
    }
    uint64_t *sd = NULL; /* stored blocks: keys, units, per-head offsets */
    int64_t *sc = NULL, *boff = NULL;
    uint64_t *units = NULL;
    uint32_t *items = NULL;
    int32_t *first_after = NULL, *bnd = NULL;
    int64_t *gpos = NULL, *rem = NULL, *acc = NULL;
    gblock *gat = NULL;
    int64_t *cum = NULL;
    hubkv_status st = HUBKV_OK;
    // The blocks are kept for the passes below when they fit (at most 2 per
    // knot and head) in a bounded store; then one generation serves all and
    // the buckets span the exact key range. Otherwise each pass generates
    // them again and the range is estimated.
    int64_t nknots = p->knots ? p->knot_off[H] : (int64_t)H * p->n_grid, scap = 2 * nknots + 2 * (int64_t)H;
    bucketing bk;
    if (scap <= store_max(p)) {
        sd = alloc_big((size_t)scap, sizeof *sd);
        sc = alloc_big((size_t)scap, sizeof *sc);
        boff = hkv_calloc((size_t)H + 1, sizeof *boff);
        if (!sd || !sc || !boff) { /* no room to store: generate them twice */
            free(sd), free(sc), free(boff);
            sd = NULL, sc = NULL, boff = NULL;
        }
    }
    if (sd) {
        uint64_t dmin = UINT64_MAX, dmax = 0;
        int64_t nbk = 0;
        for (int32_t h = 0; h < H; h++) {
            blocks b = blocks_start(head_curve(p, h, sx, sy), lo, hi);
            double key;
            int64_t cnt;
            while (blocks_next(&b, &key, &cnt)) {
                uint64_t d = desc_bits(key);
                dmin = d < dmin ? d : dmin, dmax = d > dmax ? d : dmax;
                sd[nbk] = d, sc[nbk] = cnt, nbk++;
            }
            boff[h + 1] = nbk;
        }
        bk = range_bucketing(dmin, dmax, H);
    } else {
        bk = make_bucketing(p, lo, hi, sx, sy);
    }
    int32_t NB = bk.nb;
    units = hkv_calloc((size_t)NB, sizeof *units);
    items = hkv_calloc((size_t)NB, sizeof *items);
    first_after = hkv_calloc((size_t)NB, sizeof *first_after); /* first k with bnd[k] > bucket */
    gpos = hkv_calloc((size_t)NB, sizeof *gpos);               /* boundary bucket: 1 + gathered offset */
    bnd = hkv_calloc((size_t)n_targets, sizeof *bnd);
    rem = hkv_calloc((size_t)n_targets, sizeof *rem), acc = hkv_calloc((size_t)n_targets + 1, sizeof *acc);
    if (!units || !items || !first_after || !gpos || !bnd || !rem || !acc) goto nomem;
    // Pass 1: units and blocks per bucket.
    if (sd) {
        for (int64_t i = 0; i < boff[H]; i++) {
            int32_t c = bucket_of(&bk, sd[i]);
            units[c] += (uint64_t)sc[i];
            items[c]++;
        }
    } else {
        for (int32_t h = 0; h < H; h++) {
            blocks b = blocks_start(head_curve(p, h, sx, sy), lo, hi);
            double key;
            int64_t cnt;
            while (blocks_next(&b, &key, &cnt)) {
                int32_t c = bucket_of(&bk, desc_bits(key));
                units[c] += (uint64_t)cnt;
                items[c]++;
            }
        }
    }
    find_cuts(units, NB, lo * H, n_targets, targets, bnd, rem);
    for (int32_t c = 0, k = 0; c < NB; c++) {
        while (k < n_targets && bnd[k] <= c) k++;
        first_after[c] = k;
    }
    int64_t ng = 0;
    for (int32_t k = 0; k < n_targets; k++) // mark boundary buckets by their gathered offset + 1
        if (bnd[k] >= 0 && !gpos[bnd[k]]) gpos[bnd[k]] = ng + 1, ng += items[bnd[k]];
    gat = alloc_big((size_t)(ng ? ng : 1), sizeof *gat);
    cum = alloc_big((size_t)n_targets * H, sizeof *cum);
    if (!gat || !cum) goto nomem;
    // Pass 2: units in buckets before each target's boundary, per head (into
    // cum, head-major: out's rows are H apart, and 99 writes that far apart
    // per head conflict in the cache); gather boundary blocks, each bucket's
    // into its own slice (gpos: 1 + its next free slot).
    for (int32_t h = 0; h < H; h++) {
        memset(acc, 0, ((size_t)n_targets + 1) * sizeof *acc);
        if (sd) {
            for (int64_t i = boff[h]; i < boff[h + 1]; i++) {
                int32_t c = bucket_of(&bk, sd[i]);
                acc[first_after[c]] += sc[i];
                if (gpos[c]) gat[gpos[c]++ - 1] = (gblock){sd[i], sc[i], h};
            }
        } else {
            blocks b = blocks_start(head_curve(p, h, sx, sy), lo, hi);
            double key;
            int64_t cnt;
            while (blocks_next(&b, &key, &cnt)) {
                uint64_t d = desc_bits(key);
                int32_t c = bucket_of(&bk, d);
                acc[first_after[c]] += cnt;
                if (gpos[c]) gat[gpos[c]++ - 1] = (gblock){d, cnt, h};
            }
        }
        int64_t sum = 0, *ch = cum + (int64_t)h * n_targets;
        for (int32_t k = 0; k < n_targets; k++) ch[k] = (sum += acc[k]);
    }
    enum { TILE = 64 }; /* transpose in tiles of heads */
    for (int32_t h0 = 0; h0 < H; h0 += TILE)
        for (int32_t k = 0; k < n_targets; k++)
            for (int32_t h = h0; h < H && h < h0 + TILE; h++) out[(int64_t)k * H + h] += cum[(int64_t)h * n_targets + k];
    // Inside a boundary bucket the greedy's order is (key desc, head asc);
    // bucket c's blocks are gat[gpos[c] - 1 - items[c], gpos[c] - 1).
    for (int32_t k = 0; k < n_targets; k++) {
        int32_t c = bnd[k];
        if (c < 0) continue;
        gblock *g = gat + (gpos[c] - 1 - items[c]);
        if (k == 0 || c != bnd[k - 1]) qsort(g, items[c], sizeof *g, gblock_cmp);
        int64_t r = rem[k];
        for (uint32_t i = 0; r > 0 && i < items[c]; i++) {
            int64_t take = g[i].cnt < r ? g[i].cnt : r;
            out[(int64_t)k * H + g[i].head] += take;
            r -= take;
        }
    }
    goto done;
nomem:
    st = hkv_fail(err, cap, HUBKV_ERR_NOMEM, "budget: out of memory for %d heads x %d targets", H, n_targets);
done:
    free(sx), free(sy), free(sd), free(sc), free(boff), free(cum);
    free(units), free(items), free(first_after), free(gpos), free(bnd), free(rem), free(acc), free(gat);
    return st;
}

hubkv_status hubkv_budget_greedy_multi(const hubkv_budget_params *p, int32_t n_targets, const int64_t *targets,
                                       int64_t *out, char *err, size_t cap) {
    hubkv_status st = check_params(p, err, cap);
    if (st || (st = check_knots(p, err, cap))) return st;
    if (!out || !targets || n_targets <= 0)
        return hkv_fail(err, cap, HUBKV_ERR_INVALID_ARG, "budget: out and targets must be non-NULL, n_targets > 0");
    int64_t N = p->n_tokens;
    int64_t lo = p->min_per_head > (int64_t)p->n_sink + p->n_recent ? p->min_per_head
                                                                    : (int64_t)p->n_sink + p->n_recent;
    if (lo > N) lo = N;
    int64_t hi = (p->max_per_head == 0 || p->max_per_head > N) ? N : p->max_per_head;
    if (hi < lo) hi = lo; /* the always-kept tokens win over a smaller max */
    int64_t sum_lo = lo * p->n_heads, sum_hi = hi * p->n_heads;
    for (int32_t k = 0; k < n_targets; k++) {
        if (targets[k] < sum_lo || targets[k] > sum_hi)
            return hkv_fail(err, cap, HUBKV_ERR_RANGE,
                            "budget: target %lld tokens is outside the feasible [%lld, %lld] "
                            "(%d heads x per-head [%lld, %lld]; sinks %d + recent %d always kept)",
                            (long long)targets[k], (long long)sum_lo, (long long)sum_hi, p->n_heads,
                            (long long)lo, (long long)hi, p->n_sink, p->n_recent);
        if (k > 0 && targets[k] < targets[k - 1])
            return hkv_fail(err, cap, HUBKV_ERR_INVALID_ARG, "budget: targets[%d] = %lld < targets[%d] = %lld; expected ascending",
                            k, (long long)targets[k], k - 1, (long long)targets[k - 1]);
    }
    return greedy_sweep(p, lo, hi, n_targets, targets, out, err, cap);
}

hubkv_status hubkv_budget_greedy(const hubkv_budget_params *p, int64_t *out, char *err, size_t cap) {
    if (!p) return hkv_fail(err, cap, HUBKV_ERR_INVALID_ARG, "budget: params, grid and loss must be non-NULL");
    return hubkv_budget_greedy_multi(p, 1, &p->target, out, err, cap);
}
