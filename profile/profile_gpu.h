/* hubkv-profile's GPU engine: the model and one KV cache on the device
 * (model/include/hubkv_cuda.h); each forward call hands the per-key column
 * statistics of every layer (reduced on the device, only they are copied) to
 * a callback, per call or summed over a pass on the device. Without CUDA in the build every call fails with
 * HKM_ERR_UNSUPPORTED and hkp_gpu_usable() is 0. */
#ifndef HKP_PROFILE_GPU_H
#define HKP_PROFILE_GPU_H

#include "scorers.h"

typedef struct hkp_gpu hkp_gpu;

typedef void (*hkp_stats_fn)(void *user, const hkp_layer_stats *st);

/* 1 if built with CUDA and a device is usable; else 0 with the reason in *err. */
int hkp_gpu_usable(hkm_err *err);

/* Uploads m (bf16) for chunks of up to chunk tokens, with a cache of
 * capacity entries per head. m stays the caller's. */
hkm_status hkp_gpu_open(const hkm_model *m, int chunk, int capacity, hkp_gpu **out, hkm_err *err);
void hkp_gpu_free(hkp_gpu *g);
void hkp_gpu_reset(hkp_gpu *g);

/* n new tokens (n <= chunk); fn (may be NULL: a plain forward) gets each
 * layer's statistics over all n query rows. */
hkm_status hkp_gpu_forward(hkp_gpu *g, const int32_t *ids, int n, hkp_stats_fn fn, void *user,
                           hkm_err *err);

/* Which statistics a pass needs: the prefill sums (H2O, SnapKV), the future
 * and reconstruction passes maxima (oracle, KVzip). */
enum { HKP_STAT_MAX = 1, HKP_STAT_SUM = 2 };

/* As hkp_gpu_forward, computing and copying only the statistics in which
 * (HKP_STAT_* mask); the other's pointer is NULL in fn's hkp_layer_stats. */
hkm_status hkp_gpu_forward_sel(hkp_gpu *g, const int32_t *ids, int n, int which, hkp_stats_fn fn,
                               void *user, hkm_err *err);

/* A pass of several calls with its statistics summed / maxed on the device
 * and copied once: acc_begin selects which (HKP_STAT_* mask) and keeps keys
 * [0, keys) (the context; keys <= the cache capacity); each acc_forward adds
 * its n tokens' rows; acc_flush hands fn one hkp_layer_stats per layer
 * (n_keys_max = keys, pos0 = the position at acc_begin, n = the tokens run)
 * and ends the pass. */
hkm_status hkp_gpu_acc_begin(hkp_gpu *g, int which, int keys, hkm_err *err);
hkm_status hkp_gpu_acc_forward(hkp_gpu *g, const int32_t *ids, int n, hkm_err *err);
hkm_status hkp_gpu_acc_flush(hkp_gpu *g, hkp_stats_fn fn, void *user, hkm_err *err);

/* Forgets every entry at position >= n_pos and continues at n_pos (as
 * hkm_kvcache_rewind does on the CPU). */
hkm_status hkp_gpu_rewind(hkp_gpu *g, int n_pos, hkm_err *err);

/* One head's entries as fp32 into k, v (n, head_dim); the head must hold
 * exactly n. Safe to call for distinct heads from several threads (no shared
 * host buffer; the copies are synchronous). */
hkm_status hkp_gpu_read_head(hkp_gpu *g, int layer, int kv_head, int n, float *k, float *v,
                             hkm_err *err);

#endif
