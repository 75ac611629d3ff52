/* Isotonic regression by the pool-adjacent-violators algorithm (PAVA):
 * the non-increasing sequence closest to y in weighted least squares. */
#ifndef HKS_PAVA_H
#define HKS_PAVA_H

#include <stdint.h>

/* Scratch for n points; reuse across calls of the same or smaller n. */
typedef struct {
    int32_t cap;
    double *sw;  /* (cap) block weight sums   */
    double *mean;/* (cap) block means         */
    int32_t *len;/* (cap) block lengths       */
} hks_pava_ws;

int hks_pava_ws_init(hks_pava_ws *ws, int32_t cap); /* 0 ok, -1 out of memory */
void hks_pava_ws_free(hks_pava_ws *ws);

/* out (n) = argmin sum_i w_i (out_i - y_i)^2 over non-increasing out.
 * y, out: (n) (may alias); w: (n) > 0 or NULL = all 1. O(n). */
void hks_pava_nonincreasing(const double *y, const double *w, int32_t n, double *out, hks_pava_ws *ws);

#endif
