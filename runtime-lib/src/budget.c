/* Per-head KV budget allocation: the marginal-utility greedy over per-head
 * piecewise-linear loss curves (the one implementation; solver/ reuses it).
 *
 * A unit (one kept token) moves a head from t to t+1 tokens; its gain is the
 * drop of the interpolated loss L(t/N). Inside one grid segment every unit
 * has the same gain (the segment slope), so a head that wins the heap keeps
 * winning ties for the rest of its segment: handing it the whole run at once
 * gives exactly the per-unit greedy, in O(heads * G * log heads). With knots
 * (e.g. the vertices of convex hulls) only those are segment ends, so the cost
 * is O(total knots * log heads). The unit sequence does not depend on the
 * target, so one pass records the allocations of many targets (prefixes). */
#include "hubkv_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Curve geometry                                                            */

/* One head's curve: K knots (x_k, y_k) = (grid[ix(k)], loss[ix(k)]), where
 * ix(k) = kn[k] with knots, else k. Linear between knots. */
typedef struct {
    const float *grid; /* (G) */
    const float *loss; /* (G) of this head */
    const int32_t *kn; /* (K) grid indices, or NULL = every grid point */
    int32_t K;
    double n;          /* N as double */
} curve;

static double kx(const curve *c, int32_t k) { return c->grid[c->kn ? c->kn[k] : k]; }
static double ky(const curve *c, int32_t k) { return c->loss[c->kn ? c->kn[k] : k]; }

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
/* Max-heap of heads keyed by (gain desc, head asc)                          */

typedef struct {
    double gain;
    int64_t run;
    int32_t head;
    int32_t seg; /* segment cursor of the head's curve */
} heap_item;

static int item_before(const heap_item *a, const heap_item *b) {
    if (a->gain != b->gain) return a->gain > b->gain;
    return a->head < b->head;
}

static void heap_push(heap_item *h, int32_t *n, heap_item it) {
    int32_t i = (*n)++;
    while (i > 0) {
        int32_t p = (i - 1) / 2;
        if (!item_before(&it, &h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = it;
}

static heap_item heap_pop(heap_item *h, int32_t *n) {
    heap_item top = h[0], last = h[--(*n)];
    int32_t i = 0;
    for (;;) {
        int32_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && item_before(&h[c + 1], &h[c])) c++;
        if (!item_before(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n > 0) h[i] = last;
    return top;
}

/* ------------------------------------------------------------------------ */
/* Greedy                                                                    */

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
    for (int64_t i = 0; i < (int64_t)p->n_heads * p->n_grid; i++)
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

static curve head_curve(const hubkv_budget_params *p, int32_t h) {
    curve c = {p->grid, p->loss + (size_t)h * p->n_grid, NULL, p->n_grid, (double)p->n_tokens};
    if (p->knots) {
        c.kn = p->knots + p->knot_off[h];
        c.K = (int32_t)(p->knot_off[h + 1] - p->knot_off[h]);
    }
    return c;
}

/* One greedy pass; the state after targets[k] units is copied to
 * out + k * n_heads (targets ascending, checked feasible). */
static hubkv_status greedy_sweep(const hubkv_budget_params *p, int64_t lo, int64_t hi, int32_t n_targets,
                                 const int64_t *targets, int64_t *out, char *err, size_t cap) {
    int32_t H = p->n_heads;
    heap_item *heap = hkv_calloc((size_t)H, sizeof *heap);
    int64_t *cur = hkv_calloc((size_t)H, sizeof *cur);
    if (!heap || !cur) {
        free(heap);
        free(cur);
        return hkv_fail(err, cap, HUBKV_ERR_NOMEM, "budget: out of memory for %d heads", H);
    }
    int32_t n = 0;
    for (int32_t h = 0; h < H; h++) {
        cur[h] = lo;
        if (lo >= hi) continue;
        curve c = head_curve(p, h);
        heap_item it = {0, 0, h, 0};
        it.gain = curve_next(&c, lo, &it.run, &it.seg);
        heap_push(heap, &n, it);
    }
    int64_t total = lo * H;
    int32_t k = 0;
    for (;;) {
        while (k < n_targets && targets[k] == total) memcpy(out + (size_t)k++ * H, cur, (size_t)H * sizeof *cur);
        if (k >= n_targets || n == 0) break;
        heap_item it = heap_pop(heap, &n);
        int64_t give = it.run;
        if (give > hi - cur[it.head]) give = hi - cur[it.head];
        if (give > targets[k] - total) give = targets[k] - total;
        cur[it.head] += give;
        total += give;
        if (cur[it.head] < hi) {
            curve c = head_curve(p, it.head);
            it.gain = curve_next(&c, cur[it.head], &it.run, &it.seg);
            heap_push(heap, &n, it);
        }
    }
    free(heap);
    free(cur);
    return HUBKV_OK;
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
