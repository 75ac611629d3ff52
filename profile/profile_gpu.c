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
    int L, KV, hd;
};

int hkp_gpu_usable(hkm_err *err) { return hkm_gpu_available(err); }

hkm_status hkp_gpu_open(const hkm_model *m, int chunk, int capacity, hkp_gpu **out, hkm_err *err) {
    *out = NULL;
    const hkm_config *cfg = hkm_model_config(m);
    hkp_gpu *g = calloc(1, sizeof *g);
    if (!g) return hkm_fail(err, HKM_ERR_NOMEM, "hkp_gpu_open: out of memory");
    g->L = cfg->n_layers;
    g->KV = cfg->n_kv_heads;
    g->hd = cfg->head_dim;
    hkm_status st = hkm_gpu_model_upload(m, chunk, &g->g, err);
    if (st == HKM_OK) st = hkm_gpu_cache_create(g->g, capacity, &g->c, err);
    if (st != HKM_OK) { hkp_gpu_free(g); return st; }
    *out = g;
    return HKM_OK;
}

void hkp_gpu_free(hkp_gpu *g) {
    if (!g) return;
    hkm_gpu_cache_free(g->c);
    hkm_gpu_model_free(g->g);
    free(g);
}

void hkp_gpu_reset(hkp_gpu *g) { hkm_gpu_cache_reset(g->c); }

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

hkm_status hkp_gpu_forward(hkp_gpu *g, const int32_t *ids, int n, hkp_stats_fn fn, void *user,
                           hkm_err *err) {
    relay r = {fn, user};
    hkm_gpu_capture cap = {.stats_fn = on_stats, .stats_user = &r, .stat_row0 = 0, .stat_row1 = n,
                           .stats_to_host = 1};
    return hkm_gpu_forward(g->g, g->c, ids, n, HKM_LOGITS_NONE, NULL, fn ? &cap : NULL, err);
}

hkm_status hkp_gpu_rewind(hkp_gpu *g, int n_pos, hkm_err *err) {
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
hkm_status hkp_gpu_rewind(hkp_gpu *g, int n_pos, hkm_err *err) { return no_cuda(err); }
hkm_status hkp_gpu_read_head(hkp_gpu *g, int layer, int kv_head, int n, float *k, float *v,
                             hkm_err *err) { return no_cuda(err); }
#endif
