/* Loss curves: rank a head's candidates by a score, then read off the oracle
 * mass left out at each budget from suffix sums; selectivity statistics. */
#include "curves.h"
#include "hkm_internal.h"

#include <math.h>
#include <string.h>

hkm_status hkp_curve_ws_init(hkp_curve_ws *w, int cap, hkm_err *err) {
    memset(w, 0, sizeof *w);
    w->cap = cap;
    HKM_ALLOC(w->idx, cap, err);
    HKM_ALLOC(w->tail, (size_t)cap + 1, err);
    HKM_ALLOC(w->tmp, cap, err);
    return HKM_OK;
}

void hkp_curve_ws_free(hkp_curve_ws *w) {
    if (!w) return;
    free(w->idx);
    free(w->tail);
    free(w->tmp);
    memset(w, 0, sizeof *w);
}

static const float *g_sort_key; // qsort has no user pointer in C11

static int by_score_desc(const void *a, const void *b) {
    int i = *(const int *)a, j = *(const int *)b;
    float x = g_sort_key[i], y = g_sort_key[j];
    if (x != y) return x > y ? -1 : 1;
    return (i > j) - (i < j);
}

void hkp_loss_curve(const hkp_curve_params *p, const float *score, const float *oracle,
                    hkp_curve_ws *w, double *loss) {
    int n = p->n, nc = 0, forced = 0;
    double total = 0;
    for (int i = 0; i < n; i++) {
        total += oracle[i];
        if (i < p->sink || i >= n - p->recent) forced++;
        else w->idx[nc++] = i;
    }
    g_sort_key = score;
    qsort(w->idx, (size_t)nc, sizeof *w->idx, by_score_desc);
    w->tail[nc] = 0.0; // evicted mass when the first m candidates are kept
    for (int m = nc - 1; m >= 0; m--) w->tail[m] = w->tail[m + 1] + oracle[w->idx[m]];
    for (int k = 0; k < p->grid; k++) {
        double b = (double)k / (double)(p->grid - 1);
        int budget = (int)floor(b * n + 0.5), m = budget - forced;
        m = m < 0 ? 0 : (m > nc ? nc : m);
        loss[k] = total > 0 ? w->tail[m] / total : 0.0;
    }
}

void hkp_selectivity(const float *score, int n, hkp_curve_ws *w, double *entropy, double *top1) {
    float mn = 0.0f;
    for (int i = 0; i < n; i++) mn = score[i] < mn ? score[i] : mn;
    double sum = 0;
    for (int i = 0; i < n; i++) {
        w->tmp[i] = score[i] - mn;
        sum += w->tmp[i];
    }
    if (!(sum > 0) || n < 2) { // uniform
        *entropy = 1.0;
        *top1 = n > 0 ? (double)((n + 99) / 100) / n : 0.0;
        return;
    }
    double h = 0;
    for (int i = 0; i < n; i++) {
        double q = w->tmp[i] / sum;
        if (q > 0) h -= q * log(q);
    }
    *entropy = h / log((double)n);
    int k = (n + 99) / 100;
    for (int i = 0; i < n; i++) w->idx[i] = i;
    g_sort_key = w->tmp;
    qsort(w->idx, (size_t)n, sizeof *w->idx, by_score_desc);
    double t = 0;
    for (int i = 0; i < k; i++) t += w->tmp[w->idx[i]];
    *top1 = t / sum;
}

double hkp_beta(double entropy, double top1) {
    double sel = 0.5 * (1.0 - entropy) + 0.5 * top1;
    sel = sel < 0 ? 0 : (sel > 1 ? 1 : sel);
    return 1.2 - 0.4 * sel;
}
