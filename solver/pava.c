/* PAVA, non-increasing. An input that is already in order (the usual
 * profiled curve) is returned as one block per point after one vectorised
 * test. Otherwise one left-to-right pass with a stack of blocks; a new
 * point that is larger than the block before it pools with it (and pooling
 * repeats while the order is violated). Each point is pushed and popped at
 * most once: O(n). Blocks keep sums, not means, so a pool costs two adds. */
#include "pava.h"

#include <stdlib.h>

int hks_pava_ws_init(hks_pava_ws *ws, int32_t cap) {
    ws->cap = cap;
    ws->sw = calloc((size_t)cap, sizeof *ws->sw);
    ws->sy = calloc((size_t)cap, sizeof *ws->sy);
    ws->start = calloc((size_t)cap + 1, sizeof *ws->start);
    if (ws->sw && ws->sy && ws->start) return 0;
    hks_pava_ws_free(ws);
    return -1;
}

void hks_pava_ws_free(hks_pava_ws *ws) {
    free(ws->sw);
    free(ws->sy);
    free(ws->start);
    ws->sw = ws->sy = NULL;
    ws->start = NULL;
    ws->cap = 0;
}

int hks_pava_is_nonincreasing(const double *y, int32_t n) {
    int ok = 1; // no early exit: lets the loop vectorise (profiled curves mostly pass)
    for (int32_t i = 1; i < n; i++) ok &= y[i] <= y[i - 1];
    return ok;
}

int32_t hks_pava_blocks(const double *y, const double *w, double scale, int32_t n, hks_pava_ws *ws) {
    double *sw = ws->sw, *sy = ws->sy;
    int32_t *st = ws->start;
    if (scale >= 0 && hks_pava_is_nonincreasing(y, n)) { // nothing to pool: blocks = points
        for (int32_t i = 0; i < n; i++) {
            double wi = w ? w[i] : 1.0;
            st[i] = i, sw[i] = wi, sy[i] = wi * (scale * y[i]);
        }
        st[n] = n;
        return n;
    }
    return hks_pava_pool(y, w, scale, n, ws);
}

int32_t hks_pava_pool(const double *y, const double *w, double scale, int32_t n, hks_pava_ws *ws) {
    double *sw = ws->sw, *sy = ws->sy;
    int32_t *st = ws->start, nb = 0;
    for (int32_t i = 0; i < n; i++) {
        double wi = w ? w[i] : 1.0, s = wi, v = wi * (scale * y[i]);
        int32_t first = i;
        // Non-increasing: a block may not exceed the one before it
        // (v/s > sy/sw, weights > 0).
        while (nb > 0 && v * sw[nb - 1] > sy[nb - 1] * s) {
            nb--;
            s += sw[nb];
            v += sy[nb];
            first = st[nb];
        }
        st[nb] = first;
        sw[nb] = s;
        sy[nb] = v;
        nb++;
    }
    st[nb] = n;
    return nb;
}

void hks_pava_nonincreasing(const double *y, const double *w, int32_t n, double *out, hks_pava_ws *ws) {
    int32_t nb = hks_pava_blocks(y, w, 1.0, n, ws);
    for (int32_t b = 0; b < nb; b++) { // blocks only ever look back, so out may alias y
        double m = ws->sy[b] / ws->sw[b];
        for (int32_t i = ws->start[b]; i < ws->start[b + 1]; i++) out[i] = m;
    }
}
