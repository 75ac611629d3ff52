/* Lower convex hull of a sampled curve (x strictly increasing) and its
 * piecewise-linear evaluation back on the sample points. */
#ifndef HKS_HULL_H
#define HKS_HULL_H

#include <stdint.h>

/* Indices (ascending, first 0, last n-1) of the lower hull's vertices, with
 * collinear points dropped; returns their count (>= 2 for n >= 2; n for
 * n < 2). x, y: (n); idx: (n). O(n) (Andrew's monotone chain). */
int32_t hks_lower_hull(const double *x, const double *y, int32_t n, int32_t *idx);

/* out (n) = the hull through (x[idx[k]], y[idx[k]]) evaluated at every x. */
void hks_hull_fill(const double *x, const double *y, const int32_t *idx, int32_t k, int32_t n, double *out);

#endif
