/* PAVA, non-increasing: one left-to-right pass with a stack of blocks; a new
 * point that is larger than the block before it pools with it (and pooling
 * repeats while the order is violated). Each point is pushed and popped at
 * most once: O(n). */
#include "pava.h"

#include <stdlib.h>

int hks_pava_ws_init(hks_pava_ws *ws, int32_t cap) {
    ws->cap = cap;
    ws->sw = calloc((size_t)cap, sizeof *ws->sw);
    ws->mean = calloc((size_t)cap, sizeof *ws->mean);
    ws->len = calloc((size_t)cap, sizeof *ws->len);
    if (ws->sw && ws->mean && ws->len) return 0;
    hks_pava_ws_free(ws);
    return -1;
}

void hks_pava_ws_free(hks_pava_ws *ws) {
    free(ws->sw);
    free(ws->mean);
    free(ws->len);
    ws->sw = ws->mean = NULL;
    ws->len = NULL;
    ws->cap = 0;
}

void hks_pava_nonincreasing(const double *y, const double *w, int32_t n, double *out, hks_pava_ws *ws) {
    int32_t nb = 0;
    for (int32_t i = 0; i < n; i++) {
        double wi = w ? w[i] : 1.0;
        ws->sw[nb] = wi;
        ws->mean[nb] = y[i];
        ws->len[nb] = 1;
        nb++;
        // Non-increasing: a block may not exceed the block before it.
        while (nb > 1 && ws->mean[nb - 1] > ws->mean[nb - 2]) {
            double s = ws->sw[nb - 2] + ws->sw[nb - 1];
            ws->mean[nb - 2] = (ws->mean[nb - 2] * ws->sw[nb - 2] + ws->mean[nb - 1] * ws->sw[nb - 1]) / s;
            ws->sw[nb - 2] = s;
            ws->len[nb - 2] += ws->len[nb - 1];
            nb--;
        }
    }
    int32_t i = n;
    for (int32_t b = nb - 1; b >= 0; b--) // backwards: out may alias y
        for (int32_t k = 0; k < ws->len[b]; k++) out[--i] = ws->mean[b];
}
