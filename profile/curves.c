/* Loss curves: rank a head's candidates by a score (a stable radix sort of
 * (score, oracle) pairs), then read off the oracle mass left out at each
 * budget from suffix sums; selectivity statistics. */
#include "curves.h"
#include "hkm_internal.h"

#include <math.h>
#include <string.h>

hkm_status hkp_curve_ws_init(hkp_curve_ws *w, int cap, hkm_err *err) {
    memset(w, 0, sizeof *w);
    w->cap = cap;
    HKM_ALLOC(w->key, cap, err);
    HKM_ALLOC(w->key2, cap, err);
    HKM_ALLOC(w->val, cap, err);
    HKM_ALLOC(w->val2, cap, err);
    HKM_ALLOC(w->tail, (size_t)cap + 1, err);
    HKM_ALLOC(w->hist, (size_t)HKP_RADIX_PASSES << HKP_RADIX_BITS, err);
    return HKM_OK;
}

void hkp_curve_ws_free(hkp_curve_ws *w) {
    if (!w) return;
    free(w->key); free(w->key2);
    free(w->val); free(w->val2);
    free(w->tail);
    free(w->hist);
    memset(w, 0, sizeof *w);
}

/* Unsigned key whose ascending order is the float's descending order; -0 and
 * +0 map alike (they compare equal, so ties keep token order). */
static uint32_t desc_key(float f) {
    if (f == 0.0f) f = 0.0f;
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    u = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
    return ~u;
}

enum { RADIX_BITS = HKP_RADIX_BITS, RADIX = 1 << RADIX_BITS, RADIX_PASSES = HKP_RADIX_PASSES };

/* Stable LSD radix sort of w->key/w->val [0, n) by ascending key; returns the
 * buffer holding the sorted values (w->val or w->val2). Stability keeps equal
 * scores in token order, as the curve's tie rule asks. */
static const float *radix_sort(hkp_curve_ws *w, int n) {
    uint32_t *hist = w->hist;
    memset(hist, 0, (size_t)RADIX_PASSES * RADIX * sizeof *hist);
    for (int i = 0; i < n; i++)
        for (int p = 0; p < RADIX_PASSES; p++) hist[p * RADIX + ((w->key[i] >> (p * RADIX_BITS)) & (RADIX - 1))]++;
    uint32_t *ks = w->key, *kd = w->key2;
    float *vs = w->val, *vd = w->val2;
    for (int p = 0; p < RADIX_PASSES && n > 0; p++) {
        int sh = p * RADIX_BITS;
        uint32_t *h = hist + p * RADIX;
        if (h[(ks[0] >> sh) & (RADIX - 1)] == (uint32_t)n) continue; // one digit: identity pass
        uint32_t at = 0;
        for (int d = 0; d < RADIX; d++) {
            uint32_t c = h[d];
            h[d] = at;
            at += c;
        }
        for (int i = 0; i < n; i++) {
            uint32_t dst = h[(ks[i] >> sh) & (RADIX - 1)]++;
            kd[dst] = ks[i];
            vd[dst] = vs[i];
        }
        uint32_t *tk = ks; ks = kd; kd = tk;
        float *tv = vs; vs = vd; vd = tv;
    }
    return vs;
}

void hkp_loss_curve(const hkp_curve_params *p, const float *score, const float *oracle,
                    hkp_curve_ws *w, double *loss) {
    int n = p->n, nc = 0, forced = 0;
    double total = 0;
    for (int i = 0; i < n; i++) {
        total += oracle[i];
        if (i < p->sink || i >= n - p->recent) {
            forced++;
        } else {
            w->key[nc] = desc_key(score[i]);
            w->val[nc++] = oracle[i];
        }
    }
    const float *ranked = radix_sort(w, nc); // oracle mass in the scorer's order
    w->tail[nc] = 0.0; // evicted mass when the first m candidates are kept
    for (int m = nc - 1; m >= 0; m--) w->tail[m] = w->tail[m + 1] + ranked[m];
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
        w->val[i] = score[i] - mn;
        w->key[i] = desc_key(w->val[i]);
        sum += w->val[i];
    }
    if (!(sum > 0) || n < 2) { // uniform
        *entropy = 1.0;
        *top1 = n > 0 ? (double)((n + 99) / 100) / n : 0.0;
        return;
    }
    double h = 0;
    for (int i = 0; i < n; i++) {
        double q = w->val[i] / sum;
        if (q > 0) h -= q * log(q);
    }
    *entropy = h / log((double)n);
    int k = (n + 99) / 100;
    const float *sorted = radix_sort(w, n); // largest first
    double t = 0;
    for (int i = 0; i < k; i++) t += sorted[i];
    *top1 = t / sum;
}

double hkp_beta(double entropy, double top1) {
    double sel = 0.5 * (1.0 - entropy) + 0.5 * top1;
    sel = sel < 0 ? 0 : (sel > 1 ? 1 : sel);
    return 1.2 - 0.4 * sel;
}
