/* hubkv-profile on the GPU through hubkv_cuda.h: column statistics are
 * reduced on the device and only (n_heads, n_keys) per layer come back. */
#include "profile_gpu.h"

#include "hkm_internal.h"

#include <stdlib.h>
#include <string.h>

#ifdef HUBKV_HAVE_CUDA
#include "hubkv_cuda.h"

struct hkp_gpu {
    hkm_gpu_model *g;
    hkm_gpu_cache *c;
    int L, KV, H, hd, capacity;
    /* the pass being accumulated (acc_begin .. acc_flush) */
    hkm_gpu_stats_acc *acc;
    int acc_which, acc_pos0, acc_n, acc_open;
    float *h_max, *h_sum; /* (L, H, keys) host copies */
    size_t h_cap;         /* floats each */
};

int hkp_gpu_usable(hkm_err *err) { return hkm_gpu_available(err); }

hkm_status hkp_gpu_open(const hkm_model *m, int chunk, int capacity, hkp_gpu **out, hkm_err *err) {
    *out = NULL;
    const hkm_config *cfg = hkm_model_config(m);
    hkp_gpu *g = calloc(1, sizeof *g);
    if (!g) return hkm_fail(err, HKM_ERR_NOMEM, "hkp_gpu_open: out of memory");
    g->L = cfg->n_layers;
    g->KV = cfg->n_kv_heads;
    g->H = cfg->n_heads;
    g->hd = cfg->head_dim;
    g->capacity = capacity;
    hkm_status st = hkm_gpu_model_upload(m, chunk, &g->g, err);
    if (st == HKM_OK) st = hkm_gpu_cache_create(g->g, capacity, &g->c, err);
    if (st != HKM_OK) { hkp_gpu_free(g); return st; }
    *out = g;
    return HKM_OK;
}

void hkp_gpu_free(hkp_gpu *g) {
    if (!g) return;
    hkm_gpu_stats_acc_free(g->acc);
    free(g->h_max);
    free(g->h_sum);
    hkm_gpu_cache_free(g->c);
    hkm_gpu_model_free(g->g);
    free(g);
}

void hkp_gpu_reset(hkp_gpu *g) {
    hkm_gpu_cache_reset(g->c);
    g->acc_open = 0;
}

typedef struct {
    hkp_stats_fn fn;
    void *user;
} relay;

static void on_stats(void *user, const hkm_gpu_layer_stats *st) {
    relay *r = user;
    hkp_layer_stats ls = {.layer = st->layer, .n = st->n, .pos0 = st->pos0,
                          .n_keys_max = st->n_keys_max, .colmax = st->colmax, .colsum = st->colsum};
    r->fn(r->user, &ls);
}

/* HKP_STAT_* -> HKM_GPU_STAT_* (the same bits, kept apart so the header
 * needs no CUDA) */
static int engine_which(int which) {
    return (which & HKP_STAT_MAX ? HKM_GPU_STAT_MAX : 0) |
           (which & HKP_STAT_SUM ? HKM_GPU_STAT_SUM : 0);
}

static hkm_status check_which(int which, const char *fn, hkm_err *err) {
    if (which < 1 || which > (HKP_STAT_MAX | HKP_STAT_SUM))
        return hkm_fail(err, HKM_ERR_ARG, "%s: statistics mask %d, expected HKP_STAT_MAX, "
                        "HKP_STAT_SUM or both", fn, which);
    return HKM_OK;
}

hkm_status hkp_gpu_forward_sel(hkp_gpu *g, const int32_t *ids, int n, int which, hkp_stats_fn fn,
                               void *user, hkm_err *err) {
    HKM_TRY(check_which(which, "hkp_gpu_forward_sel", err));
    relay r = {fn, user};
    hkm_gpu_capture cap = {.stats_fn = on_stats, .stats_user = &r, .stat_row0 = 0, .stat_row1 = n,
                           .stats_to_host = 1, .stats_which = engine_which(which)};
    return hkm_gpu_forward(g->g, g->c, ids, n, HKM_LOGITS_NONE, NULL, fn ? &cap : NULL, err);
}

hkm_status hkp_gpu_forward(hkp_gpu *g, const int32_t *ids, int n, hkp_stats_fn fn, void *user,
                           hkm_err *err) {
    return hkp_gpu_forward_sel(g, ids, n, HKP_STAT_MAX | HKP_STAT_SUM, fn, user, err);
}

hkm_status hkp_gpu_acc_begin(hkp_gpu *g, int which, int keys, hkm_err *err) {
    HKM_TRY(check_which(which, "hkp_gpu_acc_begin", err));
    if (keys < 1 || keys > g->capacity)
        return hkm_fail(err, HKM_ERR_ARG, "hkp_gpu_acc_begin: %d keys, expected 1..%d (the "
                        "cache capacity)", keys, g->capacity);
    if (!g->acc) HKM_TRY(hkm_gpu_stats_acc_create(g->g, g->capacity, &g->acc, err));
    HKM_TRY(hkm_gpu_stats_acc_reset(g->acc, keys, err));
    g->acc_which = which;
    g->acc_pos0 = hkm_gpu_cache_next_pos(g->c);
    g->acc_n = 0;
    g->acc_open = 1;
    return HKM_OK;
}

hkm_status hkp_gpu_acc_forward(hkp_gpu *g, const int32_t *ids, int n, hkm_err *err) {
    if (!g->acc_open)
        return hkm_fail(err, HKM_ERR_ARG, "hkp_gpu_acc_forward: no pass begun: expected "
                        "hkp_gpu_acc_begin first");
    hkm_gpu_capture cap = {.stat_row0 = 0, .stat_row1 = n, .stats_which = engine_which(g->acc_which),
                           .stats_acc = g->acc};
    HKM_TRY(hkm_gpu_forward(g->g, g->c, ids, n, HKM_LOGITS_NONE, NULL, &cap, err));
    g->acc_n += n;
    return HKM_OK;
}

/* Host room for (L, H, keys) of each statistic. */
static hkm_status grow_host(hkp_gpu *g, size_t need, hkm_err *err) {
    if (g->h_cap >= need) return HKM_OK;
    free(g->h_max);
    free(g->h_sum);
    g->h_max = g->h_sum = NULL;
    g->h_cap = 0;
    HKM_ALLOC(g->h_max, need, err);
    HKM_ALLOC(g->h_sum, need, err);
    g->h_cap = need;
    return HKM_OK;
}

hkm_status hkp_gpu_acc_flush(hkp_gpu *g, hkp_stats_fn fn, void *user, hkm_err *err) {
    if (!g->acc_open)
        return hkm_fail(err, HKM_ERR_ARG, "hkp_gpu_acc_flush: no pass begun: expected "
                        "hkp_gpu_acc_begin first");
    g->acc_open = 0;
    int keys = hkm_gpu_stats_acc_keys(g->acc);
    size_t per = (size_t)g->H * keys;
    HKM_TRY(grow_host(g, (size_t)g->L * per, err));
    float *mx = g->acc_which & HKP_STAT_MAX ? g->h_max : NULL;
    float *sm = g->acc_which & HKP_STAT_SUM ? g->h_sum : NULL;
    HKM_TRY(hkm_gpu_stats_acc_read(g->acc, mx, sm, err));
    for (int l = 0; fn && l < g->L; l++) {
        hkp_layer_stats st = {.layer = l, .n = g->acc_n, .pos0 = g->acc_pos0, .n_keys_max = keys,
                              .colmax = mx ? mx + l * per : NULL, .colsum = sm ? sm + l * per : NULL};
        fn(user, &st);
    }
    return HKM_OK;
}

hkm_status hkp_gpu_rewind(hkp_gpu *g, int n_pos, hkm_err *err) {
    g->acc_open = 0;
    return hkm_gpu_cache_rewind(g->c, n_pos, err);
}

hkm_status hkp_gpu_read_head(hkp_gpu *g, int layer, int kv_head, int n, float *k, float *v,
                             hkm_err *err) {
    int len = hkm_gpu_cache_len(g->c, layer, kv_head);
    if (len != n) // the read copies all len entries: the buffers hold n
        return hkm_fail(err, HKM_ERR_ARG, "hkp_gpu_read_head: layer %d head %d holds %d entries: "
                        "expected %d", layer, kv_head, len, n);
    return hkm_gpu_cache_read(g->c, layer, kv_head, k, v, err);
}

#else /* built without CUDA */

static hkm_status no_cuda(hkm_err *err) {
    return hkm_fail(err, HKM_ERR_UNSUPPORTED, "hubkv-profile: built without CUDA: expected "
                    "--device cpu (or a build with nvcc, HUBKV_CUDA=ON)");
}

int hkp_gpu_usable(hkm_err *err) { no_cuda(err); return 0; }
hkm_status hkp_gpu_open(const hkm_model *m, int chunk, int capacity, hkp_gpu **out, hkm_err *err) {
    *out = NULL;
    return no_cuda(err);
}
void hkp_gpu_free(hkp_gpu *g) { (void)g; }
void hkp_gpu_reset(hkp_gpu *g) { (void)g; }
hkm_status hkp_gpu_forward(hkp_gpu *g, const int32_t *ids, int n, hkp_stats_fn fn, void *user,
                           hkm_err *err) { return no_cuda(err); }
hkm_status hkp_gpu_forward_sel(hkp_gpu *g, const int32_t *ids, int n, int which, hkp_stats_fn fn,
                               void *user, hkm_err *err) { return no_cuda(err); }
hkm_status hkp_gpu_acc_begin(hkp_gpu *g, int which, int keys, hkm_err *err) { return no_cuda(err); }
hkm_status hkp_gpu_acc_forward(hkp_gpu *g, const int32_t *ids, int n, hkm_err *err) {
    return no_cuda(err);
}
hkm_status hkp_gpu_acc_flush(hkp_gpu *g, hkp_stats_fn fn, void *user, hkm_err *err) {
    return no_cuda(err);
}
hkm_status hkp_gpu_rewind(hkp_gpu *g, int n_pos, hkm_err *err) { return no_cuda(err); }
hkm_status hkp_gpu_read_head(hkp_gpu *g, int layer, int kv_head, int n, float *k, float *v,
                             hkm_err *err) { return no_cuda(err); }
#endif
