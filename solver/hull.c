/* Lower convex hull by Andrew's monotone chain: the chain turns left
 * (counter-clockwise) at every vertex; a point that makes a right turn or
 * lies on the line pops the last vertex. Slopes of the result increase, so a
 * non-increasing input yields non-increasing marginal gains. */
#include "hull.h"

/* > 0 when o -> a -> b turns counter-clockwise. */
static double cross(double ox, double oy, double ax, double ay, double bx, double by) {
    return (ax - ox) * (by - oy) - (ay - oy) * (bx - ox);
}

int32_t hks_lower_hull(const double *x, const double *y, int32_t n, int32_t *idx) {
    if (n < 2) {
        for (int32_t i = 0; i < n; i++) idx[i] = i;
        return n;
    }
    int32_t k = 0;
    for (int32_t i = 0; i < n; i++) {
        while (k >= 2 && cross(x[idx[k - 2]], y[idx[k - 2]], x[idx[k - 1]], y[idx[k - 1]], x[i], y[i]) <= 0) k--;
        idx[k++] = i;
    }
    return k;
}

void hks_hull_fill(const double *x, const double *y, const int32_t *idx, int32_t k, int32_t n, double *out) {
    for (int32_t s = 0; s + 1 < k; s++) {
        int32_t a = idx[s], b = idx[s + 1];
        double slope = (y[b] - y[a]) / (x[b] - x[a]);
        out[a] = y[a];
        for (int32_t i = a + 1; i < b; i++) out[i] = y[a] + slope * (x[i] - x[a]);
    }
    if (k >= 1) out[idx[k - 1]] = y[idx[k - 1]];
    (void)n;
}
