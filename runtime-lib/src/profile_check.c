/* Validation of profile contents, shared by the writer (before writing) and
 * the reader (after loading): one definition of a valid profile. */
#include "h5util.h"

#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

static pthread_mutex_t h5_mutex = PTHREAD_MUTEX_INITIALIZER;
void hkv_h5_lock(void) { pthread_mutex_lock(&h5_mutex); }
void hkv_h5_unlock(void) { pthread_mutex_unlock(&h5_mutex); }

void hkv_fmt_index(char *buf, size_t cap, int64_t i, int ndim, const int64_t *dims) {
    int64_t sub[8];
    for (int k = ndim - 1; k >= 0; k--) {
        sub[k] = i % dims[k];
        i /= dims[k];
    }
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (int k = 0; k < ndim && n < cap; k++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%lld", k ? "," : "", (long long)sub[k]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
}

/* Every element finite and within [lo, hi]. */
static hubkv_status check_range(const float *a, int ndim, const int64_t *dims, float lo, float hi,
                                const char *name, const char *path, char *err, size_t cap) {
    int64_t n = 1;
    for (int k = 0; k < ndim; k++) n *= dims[k];
    for (int64_t i = 0; i < n; i++) {
        if (isfinite(a[i]) && a[i] >= lo && a[i] <= hi) continue;
        char ix[96];
        hkv_fmt_index(ix, sizeof ix, i, ndim, dims);
        char want[64] = "a finite value";
        if (isfinite(lo) || isfinite(hi)) snprintf(want, sizeof want, "a finite value in [%g, %g]", lo, hi);
        if (isnan(a[i]))
            return hkv_fail(err, cap, HUBKV_ERR_RANGE, "%s: %s%s is NaN; expected %s", path, name, ix, want);
        return hkv_fail(err, cap, HUBKV_ERR_RANGE, "%s: %s%s = %g; expected %s", path, name, ix, a[i], want);
    }
    return HUBKV_OK;
}

hubkv_status hkv_check_model(const hubkv_model_desc *m, const char *path, char *err, size_t cap) {
    if (!m->architecture || !m->architecture[0])
        return hkv_fail(err, cap, HUBKV_ERR_FORMAT, "%s: model architecture is empty; expected a name like \"llama\"", path);
    if (m->n_layers <= 0 || m->n_kv_heads <= 0 || m->n_heads <= 0 || m->head_dim <= 0 || m->vocab <= 0)
        return hkv_fail(err, cap, HUBKV_ERR_FORMAT,
                        "%s: model n_layers=%d n_heads=%d n_kv_heads=%d head_dim=%d vocab=%d; expected all > 0",
                        path, m->n_layers, m->n_heads, m->n_kv_heads, m->head_dim, m->vocab);
    if (m->n_heads % m->n_kv_heads)
        return hkv_fail(err, cap, HUBKV_ERR_FORMAT, "%s: model n_heads=%d is not a multiple of n_kv_heads=%d", path,
                        m->n_heads, m->n_kv_heads);
    return HUBKV_OK;
}

/* Grid strictly increasing in [0,1]; each head's curve non-increasing and
 * convex in the grid, up to float32 storage: a slope may rise by 1e-4
 * relative + 1e-6, plus what rounding the three values to float can do
 * (each off by <= |y| 2^-24 from the exact curve; FLT_EPSILON = 2^-23 per
 * value leaves a factor 2). On fine grids the rounding term dominates: at
 * 4,096 points a 2.5-nat loss is stored to 1.5e-7 against steps of 2.4e-4. */
static hubkv_status check_curves(const hubkv_profile_data *d, const char *path, char *err, size_t cap) {
    int64_t L = d->model.n_layers, H = d->model.n_kv_heads, G = d->n_grid;
    int64_t gdim[1] = {G}, ldim[3] = {L, H, G};
    hubkv_status st = check_range(d->grid, 1, gdim, 0.0f, 1.0f, HKV_DS_GRID, path, err, cap);
    if (st) return st;
    for (int64_t g = 1; g < G; g++)
        if (!(d->grid[g] > d->grid[g - 1]))
            return hkv_fail(err, cap, HUBKV_ERR_RANGE, "%s: %s[%lld] = %g <= [%lld] = %g; expected strictly increasing",
                            path, HKV_DS_GRID, (long long)g, d->grid[g], (long long)g - 1, d->grid[g - 1]);
    st = check_range(d->loss, 3, ldim, -INFINITY, INFINITY, HKV_DS_LOSS, path, err, cap);
    if (st) return st;
    for (int64_t h = 0; h < L * H; h++) {
        const float *y = d->loss + h * G;
        double prev = INFINITY, prev_round = 0; /* rounding bound of the previous slope */
        for (int64_t g = 0; g + 1 < G; g++) {
            double dx = (double)d->grid[g + 1] - d->grid[g];
            double s = ((double)y[g] - y[g + 1]) / dx;
            double round = FLT_EPSILON * (fabs((double)y[g]) + fabs((double)y[g + 1])) / dx;
            double tol = 1e-4 * (fabs(s) + fabs(prev < INFINITY ? prev : 0)) + 1e-6 + round + prev_round;
            prev_round = round;
            if (s < -tol || s > prev + tol) {
                char ix[96];
                hkv_fmt_index(ix, sizeof ix, h * G + g + 1, 3, ldim);
                return hkv_fail(err, cap, HUBKV_ERR_RANGE,
                                "%s: %s%s breaks %s (segment slope %g after %g); expected a non-increasing convex curve",
                                path, HKV_DS_LOSS, ix, s < -tol ? "monotonicity" : "convexity", -s, prev < INFINITY ? -prev : 0.0);
            }
            prev = s;
        }
    }
    return HUBKV_OK;
}

hubkv_status hkv_validate_data(const hubkv_profile_data *d, const char *path, char *err, size_t cap) {
    hubkv_status st = hkv_check_model(&d->model, path, err, cap);
    if (st) return st;
    if (!d->scorer_name || !d->scorer_name[0])
        return hkv_fail(err, cap, HUBKV_ERR_FORMAT, "%s: scorer_name is empty; expected the scorer's name", path);
    if (d->n_sink < 0 || d->n_recent < 0 || d->calib_n_contexts < 0 || d->calib_context_len < 0)
        return hkv_fail(err, cap, HUBKV_ERR_RANGE,
                        "%s: calibration n_sink=%d n_recent=%d n_contexts=%d context_len=%d; expected all >= 0", path,
                        d->n_sink, d->n_recent, d->calib_n_contexts, d->calib_context_len);
    if (d->n_grid < 2)
        return hkv_fail(err, cap, HUBKV_ERR_FORMAT, "%s: %s has %d points; expected >= 2", path, HKV_DS_GRID, d->n_grid);
    if (!d->grid || !d->loss || !d->budget_keep || !d->selectivity || !d->beta)
        return hkv_fail(err, cap, HUBKV_ERR_INVALID_ARG, "%s: grid, loss, budget_keep, selectivity and beta are required", path);
    if ((st = check_curves(d, path, err, cap))) return st;
    int64_t L = d->model.n_layers, H = d->model.n_kv_heads;
    int64_t bdim[3] = {HUBKV_N_RATIOS, L, H}, hdim[2] = {L, H};
    if ((st = check_range(d->budget_keep, 3, bdim, 0.0f, 1.0f, HKV_DS_KEEP, path, err, cap))) return st;
    if ((st = check_range(d->selectivity, 2, hdim, 0.0f, INFINITY, HKV_DS_SEL, path, err, cap))) return st;
    if ((st = check_range(d->beta, 2, hdim, HKV_BETA_MIN, HKV_BETA_MAX, HKV_DS_BETA, path, err, cap))) return st;
    if (d->baseline_uniform &&
        (st = check_range(d->baseline_uniform, 3, bdim, 0.0f, 1.0f, HKV_DS_BASE_U, path, err, cap)))
        return st;
    if (d->baseline_pyramidkv &&
        (st = check_range(d->baseline_pyramidkv, 3, bdim, 0.0f, 1.0f, HKV_DS_BASE_P, path, err, cap)))
        return st;
    if (d->baseline_adakv &&
        (st = check_range(d->baseline_adakv, 3, bdim, 0.0f, 1.0f, HKV_DS_BASE_A, path, err, cap)))
        return st;
    for (int32_t i = 0; i < d->n_gate; i++) {
        const hubkv_gate_tensor *t = &d->gate[i];
        if (t->layer < 0 || t->layer >= L || t->ndim < 1 || t->ndim > 4 || !t->name || !t->name[0] || !t->data ||
            strspn(t->name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != strlen(t->name))
            return hkv_fail(err, cap, HUBKV_ERR_FORMAT,
                            "%s: gate tensor %d (layer %d, name \"%s\", ndim %d); expected layer in [0,%lld), "
                            "name [A-Za-z0-9_]+, ndim 1..4, data",
                            path, i, t->layer, t->name ? t->name : "(null)", t->ndim, (long long)L);
        for (int k = 0; k < t->ndim; k++)
            if (t->shape[k] <= 0 || t->shape[k] > (1LL << 31))
                return hkv_fail(err, cap, HUBKV_ERR_FORMAT, "%s: gate layer_%d/%s dim %d = %lld; expected 1..2^31", path,
                                t->layer, t->name, k, (long long)t->shape[k]);
        char nm[128];
        snprintf(nm, sizeof nm, "/gate/layer_%d/%s", t->layer, t->name);
        if ((st = check_range(t->data, t->ndim, t->shape, -INFINITY, INFINITY, nm, path, err, cap))) return st;
    }
    return HUBKV_OK;
}
