/* Isotonic regression by the pool-adjacent-violators algorithm (PAVA):
 * the non-increasing sequence closest to y in weighted least squares. */
#ifndef HKS_PAVA_H
#define HKS_PAVA_H

#include <stdint.h>

/* Scratch for n points; reuse across calls of the same or smaller n. After
 * hks_pava_blocks, block b covers [start[b], start[b+1]) with value
 * sy[b] / sw[b] (start[nb] = n). */
typedef struct {
    int32_t cap;
    double *sw;     /* (cap) block weight sums          */
    double *sy;     /* (cap) block weighted value sums  */
    int32_t *start; /* (cap + 1) first index of a block */
} hks_pava_ws;

int hks_pava_ws_init(hks_pava_ws *ws, int32_t cap); /* 0 ok, -1 out of memory */
void hks_pava_ws_free(hks_pava_ws *ws);

/* The blocks of the fit to scale * y (n <= ws->cap) into ws; returns their
 * count. Means are compared by cross-multiplication, so no division per
 * pool. w: (n) > 0 or NULL = all 1. O(n); an already non-increasing
 * y (scale >= 0) returns n blocks of one point without pooling. */
int32_t hks_pava_blocks(const double *y, const double *w, double scale, int32_t n, hks_pava_ws *ws);

/* hks_pava_blocks without the order test, for callers that made it. */
int32_t hks_pava_pool(const double *y, const double *w, double scale, int32_t n, hks_pava_ws *ws);

/* 1 when y (n) is already non-increasing (y[i+1] <= y[i], NaN fails): then
 * the fit is y itself. One branch-free pass the compiler vectorises. */
int hks_pava_is_nonincreasing(const double *y, int32_t n);

/* out (n) = argmin sum_i w_i (out_i - y_i)^2 over non-increasing out.
 * y, out: (n) (may alias); w: (n) > 0 or NULL = all 1. O(n). */
void hks_pava_nonincreasing(const double *y, const double *w, int32_t n, double *out, hks_pava_ws *ws);

#endif
