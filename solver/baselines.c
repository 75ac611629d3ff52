/* Baseline budget allocations (uniform, PyramidKV, offline AdaKV-style), all
 * made integer and exact by one clamped-water-level rounding. */
#include "baselines.h"

#include "solve.h"

#include <gsl/gsl_sort.h>
#include <math.h>
#include <string.h>

/* ---------------------------------------------------------------- rounding */

static double clampd(double v, double lo, double hi) { return v < lo ? lo : v > hi ? hi : v; }

static double shifted_sum(const double *d, int32_t n, double c, double lo, double hi) {
    double s = 0;
    for (int32_t i = 0; i < n; i++) s += clampd(d[i] + c, lo, hi);
    return s;
}

void hks_fit_counts(const double *desired, int32_t n, int64_t target, int64_t lo, int64_t hi, int64_t *out) {
    // Water level c with sum clamp(d + c) = target (monotone in c: bisection).
    double a = -1e18, b = 1e18, mn = INFINITY, mx = -INFINITY;
    for (int32_t i = 0; i < n; i++) mn = fmin(mn, desired[i]), mx = fmax(mx, desired[i]);
    a = (double)lo - mx - 1;
    b = (double)hi - mn + 1;
    for (int it = 0; it < 200 && b - a > 1e-12 * (1 + fabs(a) + fabs(b)); it++) {
        double c = 0.5 * (a + b);
        if (shifted_sum(desired, n, c, (double)lo, (double)hi) < (double)target) a = c; else b = c;
    }
    double c = 0.5 * (a + b);
    int64_t sum = 0;
    double *frac = calloc((size_t)n, sizeof *frac);
    size_t *order = calloc((size_t)n, sizeof *order);
    for (int32_t i = 0; i < n; i++) {
        double v = clampd(desired[i] + c, (double)lo, (double)hi);
        out[i] = (int64_t)floor(v);
        sum += out[i];
        // Larger remainder first; index breaks ties (the key is exact for small i).
        if (frac) frac[i] = -((v - floor(v)) - 1e-12 * (double)i / n);
    }
    if (frac && order) gsl_sort_index(order, frac, 1, (size_t)n);
    else if (order) for (int32_t i = 0; i < n; i++) order[i] = (size_t)i;
    // Largest remainders take the missing units; cycle in case of rounding drift.
    for (int pass = 0; sum < target && pass < 1 + (int)(target - sum); pass++)
        for (int32_t k = 0; k < n && sum < target; k++) {
            size_t i = order ? order[k] : (size_t)k;
            if (out[i] < hi) out[i]++, sum++;
        }
    for (int pass = 0; sum > target && pass < 1 + (int)(sum - target); pass++)
        for (int32_t k = n - 1; k >= 0 && sum > target; k--) {
            size_t i = order ? order[k] : (size_t)k;
            if (out[i] > lo) out[i]--, sum--;
        }
    free(frac);
    free(order);
}

/* ---------------------------------------------------------------- baselines */

hkm_status hks_baseline_uniform(int32_t L, int32_t H, const int64_t *targets, int64_t lo, int64_t hi,
                                int64_t *out, hkm_err *err) {
    int32_t n = L * H;
    double *d;
    HKM_ALLOC(d, n, err);
    for (int r = 0; r < HKS_N_RATIOS; r++) {
        for (int32_t i = 0; i < n; i++) d[i] = (double)targets[r] / n;
        hks_fit_counts(d, n, targets[r], lo, hi, out + (int64_t)r * n);
    }
    free(d);
    return HKM_OK;
}

hkm_status hks_baseline_pyramidkv(int32_t L, int32_t H, const int64_t *targets, int64_t lo, int64_t hi,
                                  int64_t *out, hkm_err *err) {
    int32_t n = L * H;
    double *d;
    HKM_ALLOC(d, n, err);
    for (int r = 0; r < HKS_N_RATIOS; r++) {
        double mean = (double)targets[r] / n; // per head
        double top = mean / HKS_PYRAMID_BETA, bottom = 2 * mean - top;
        for (int32_t l = 0; l < L; l++) {
            double k = L > 1 ? bottom - (bottom - top) * l / (L - 1) : mean;
            for (int32_t h = 0; h < H; h++) d[l * H + h] = k;
        }
        hks_fit_counts(d, n, targets[r], lo, hi, out + (int64_t)r * n);
    }
    free(d);
    return HKM_OK;
}

/* Score model of one head over n tokens (normalised scores, sum 1): the top
 * 1% tokens share the top-1% mass T; the next m tokens share 1 - T, with
 * k1 + m = n^E the head's perplexity (E = normalised entropy); the rest score
 * 0. Fills value[2], size[2]. */
static void score_model(double E, double T, int64_t n, double *value, double *size) {
    double k1 = ceil((double)n / 100.0);
    double m = clampd(pow((double)n, clampd(E, 0, 1)) - k1, 1, (double)n - k1);
    T = clampd(T, 0, 1);
    size[0] = k1, value[0] = T / k1;
    size[1] = m, value[1] = (1 - T) / m;
}

/* One layer: floor alpha * B / H per head, then the layer's remaining budget
 * goes to the largest modelled scores across its heads (ties: lower head). */
static void adakv_layer(int32_t H, const double *E, const double *T, int64_t n, double B, double *d, double *val,
                        double *sz, size_t *order) {
    double floor_h = HKS_ADAKV_ALPHA * B / H, left = B - floor_h * H;
    for (int32_t h = 0; h < H; h++) {
        d[h] = floor_h;
        score_model(E[h], T[h], n, val + 2 * h, sz + 2 * h);
    }
    double *key = val + 2 * H; // scratch (2H): negated values, index-tied
    for (int32_t i = 0; i < 2 * H; i++) key[i] = -val[i] + 1e-15 * i;
    gsl_sort_index(order, key, 1, (size_t)(2 * H));
    for (int32_t k = 0; k < 2 * H && left > 0; k++) {
        int32_t i = (int32_t)order[k], h = i / 2;
        double room = fmin(sz[i], (double)n - d[h]);
        double give = fmin(room, left);
        if (give > 0) d[h] += give, left -= give;
    }
    for (int32_t h = 0; h < H && left > 0; h++) { // zero-score tokens: fill in head order
        double give = fmin((double)n - d[h], left);
        d[h] += give, left -= give;
    }
}

hkm_status hks_baseline_adakv(int32_t L, int32_t H, const double *entropy, const double *top1, int64_t n_tokens,
                              const int64_t *targets, int64_t lo, int64_t hi, int64_t *out, hkm_err *err) {
    int32_t n = L * H;
    double *d, *val, *sz;
    size_t *order;
    HKM_ALLOC(d, n, err);
    HKM_ALLOC(val, 4 * H, err);
    HKM_ALLOC(sz, 2 * H, err);
    HKM_ALLOC(order, 2 * H, err);
    for (int r = 0; r < HKS_N_RATIOS; r++) {
        double B = (double)targets[r] / L;
        for (int32_t l = 0; l < L; l++)
            adakv_layer(H, entropy + l * H, top1 + l * H, n_tokens, B, d + l * H, val, sz, order);
        hks_fit_counts(d, n, targets[r], lo, hi, out + (int64_t)r * n);
    }
    free(d), free(val), free(sz), free(order);
    return HKM_OK;
}
