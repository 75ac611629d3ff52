/* Per-head KV budget allocation: the marginal-utility greedy over per-head
 * piecewise-linear loss curves (the one implementation; solver/ reuses it).
 *
 * A unit (one kept token) moves a head from t to t+1 tokens; its gain is the
 * drop of the interpolated loss L(t/N). Inside one grid segment every unit
 * has the same gain (the segment slope), so a head that wins the heap keeps
 * winning ties for the rest of its segment: handing it the whole run at once
 * gives exactly the per-unit greedy, in O(heads * G * log heads). */
#include "hubkv_internal.h"

#include <math.h>
#include <stdlib.h>

/* ------------------------------------------------------------------------ */
/* Curve geometry                                                            */

typedef struct {
    const float *grid; /* (G) */
    const float *loss; /* (G) of this head */
    int32_t G;
    double n;          /* N as double */
} curve;

/* Loss at token count t, linear inside the grid and extrapolated with the end
 * segments outside it. */
static double curve_loss(const curve *c, double t) {
    double x = t / c->n;
    int32_t g = 0;
    while (g < c->G - 2 && x > c->grid[g + 1]) g++;
    double x0 = c->grid[g], x1 = c->grid[g + 1];
    double y0 = c->loss[g], y1 = c->loss[g + 1];
    return y0 + (y1 - y0) * (x - x0) / (x1 - x0);
}

/* The next run of equal-gain units for a head at t tokens: returns the gain
 * per unit and sets *run (>= 1, uncapped). */
static double curve_next(const curve *c, int64_t t, int64_t *run) {
    int32_t g = 0;
    while (g < c->G - 2 && (double)t >= (double)c->grid[g + 1] * c->n) g++;
    double b1 = (double)c->grid[g + 1] * c->n;
    int last = (g == c->G - 2);
    if (last || (double)(t + 1) <= b1) {
        double slope = ((double)c->loss[g] - c->loss[g + 1]) /
                       (((double)c->grid[g + 1] - c->grid[g]) * c->n);
        *run = last ? INT64_MAX : (int64_t)floor(b1) - t;
        if (*run < 1) *run = 1;
        return slope;
    }
    *run = 1; /* the unit straddles a grid point */
    return curve_loss(c, (double)t) - curve_loss(c, (double)(t + 1));
}

/* ------------------------------------------------------------------------ */
/* Max-heap of heads keyed by (gain desc, head asc)                          */

typedef struct {
    double gain;
    int64_t run;
    int32_t head;
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

hubkv_status hubkv_budget_greedy(const hubkv_budget_params *p, int64_t *out, char *err, size_t cap) {
    hubkv_status st = check_params(p, err, cap);
    if (st) return st;
    if (!out) return hkv_fail(err, cap, HUBKV_ERR_INVALID_ARG, "budget: out must be non-NULL");
    int64_t N = p->n_tokens;
    int64_t lo = p->min_per_head > (int64_t)p->n_sink + p->n_recent ? p->min_per_head
                                                                    : (int64_t)p->n_sink + p->n_recent;
    if (lo > N) lo = N;
    int64_t hi = (p->max_per_head == 0 || p->max_per_head > N) ? N : p->max_per_head;
    if (hi < lo) hi = lo; /* the always-kept tokens win over a smaller max */
    int64_t sum_lo = lo * p->n_heads, sum_hi = hi * p->n_heads;
    if (p->target < sum_lo || p->target > sum_hi)
        return hkv_fail(err, cap, HUBKV_ERR_RANGE,
                        "budget: target %lld tokens is outside the feasible [%lld, %lld] "
                        "(%d heads x per-head [%lld, %lld]; sinks %d + recent %d always kept)",
                        (long long)p->target, (long long)sum_lo, (long long)sum_hi, p->n_heads,
                        (long long)lo, (long long)hi, p->n_sink, p->n_recent);
    heap_item *heap = hkv_calloc((size_t)p->n_heads, sizeof *heap);
    if (!heap) return hkv_fail(err, cap, HUBKV_ERR_NOMEM, "budget: out of memory for %d heads", p->n_heads);
    int32_t n = 0;
    for (int32_t h = 0; h < p->n_heads; h++) {
        out[h] = lo;
        if (lo >= hi) continue;
        curve c = {p->grid, p->loss + (size_t)h * p->n_grid, p->n_grid, (double)N};
        heap_item it = {0, 0, h};
        it.gain = curve_next(&c, lo, &it.run);
        heap_push(heap, &n, it);
    }
    int64_t left = p->target - sum_lo;
    while (left > 0 && n > 0) {
        heap_item it = heap_pop(heap, &n);
        int64_t give = it.run;
        if (give > hi - out[it.head]) give = hi - out[it.head];
        if (give > left) give = left;
        out[it.head] += give;
        left -= give;
        if (out[it.head] < hi) {
            curve c = {p->grid, p->loss + (size_t)it.head * p->n_grid, p->n_grid, (double)N};
            it.gain = curve_next(&c, out[it.head], &it.run);
            heap_push(heap, &n, it);
        }
    }
    free(heap);
    return HUBKV_OK;
}
