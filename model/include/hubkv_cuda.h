/* hubkv GPU engine: the forward pass of hubkv_model.h on one CUDA device, with
 * bf16 weights, fp32 residual stream and accumulation, a per-head
 * variable-length KV cache in device memory, and the same capture hooks as the
 * CPU engine plus per-key attention statistics computed on the device.
 *
 * Conventions (as in hubkv_model.h)
 *  - Fallible calls return hkm_status and write a message into *err.
 *  - _upload/_create hand out objects the caller frees with the matching
 *    _free; every _free accepts NULL.
 *  - Thread safety: a gpu model and its caches belong to one host thread at a
 *    time (they share the model's CUDA stream and scratch buffers).
 *  - Every call is synchronous: when it returns, results are on the host.
 */
#ifndef HUBKV_CUDA_H
#define HUBKV_CUDA_H

#include "hubkv_model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 1 if a CUDA device is usable, else 0 (and a reason in *err, may be NULL). */
int hkm_gpu_available(hkm_err *err);

/* ---------------------------------------------------------------- memory plan */

typedef struct {
    size_t weights;  /* bf16 matrices + fp32 norms/biases */
    size_t cache;    /* K and V, bf16, every layer and KV head at full capacity */
    size_t work;     /* activations for one chunk, logits, attention scratch */
    size_t total;    /* sum of the above */
} hkm_gpu_plan_bytes;

/* Bytes needed to run cfg with max_context tokens per KV head and prefill
 * chunks of up to max_chunk tokens. Capture buffers (probabilities, column
 * statistics) are extra and allocated on first use. */
hkm_status hkm_gpu_plan(const hkm_config *cfg, int max_context, int max_chunk,
                        hkm_gpu_plan_bytes *out, hkm_err *err);

/* ---------------------------------------------------------------- model */

typedef struct hkm_gpu_model hkm_gpu_model;

/* Copy m to the device (matrices in bf16, round-to-nearest-even) and allocate
 * the scratch for chunks of up to max_chunk tokens. HKM_ERR_NOMEM, with the
 * needed and free bytes in the message, if it does not fit. m may be freed
 * afterwards. */
hkm_status hkm_gpu_model_upload(const hkm_model *m, int max_chunk, hkm_gpu_model **out,
                                hkm_err *err);
void hkm_gpu_model_free(hkm_gpu_model *g);
const hkm_config *hkm_gpu_model_config(const hkm_gpu_model *g);

/* ---------------------------------------------------------------- KV cache */

/* Per layer: K and V as one flattened (n_kv_heads * capacity, head_dim) bf16
 * array; head h owns rows [h*capacity, h*capacity + len(h)). Positions are
 * kept on the host. Heads may hold different numbers of entries. */
typedef struct hkm_gpu_cache hkm_gpu_cache;

/* capacity: max entries per head. HKM_ERR_NOMEM with needed/free bytes. */
hkm_status hkm_gpu_cache_create(const hkm_gpu_model *g, int capacity, hkm_gpu_cache **out,
                                hkm_err *err);
void hkm_gpu_cache_free(hkm_gpu_cache *c);
int hkm_gpu_cache_capacity(const hkm_gpu_cache *c);
int hkm_gpu_cache_next_pos(const hkm_gpu_cache *c);
int hkm_gpu_cache_len(const hkm_gpu_cache *c, int layer, int kv_head);
/* Host view of one head's positions (len entries), valid until the next
 * mutation of the cache. */
const int32_t *hkm_gpu_cache_positions(const hkm_gpu_cache *c, int layer, int kv_head);
/* Copy one head's entries to the host as fp32: k, v (len, head_dim); either
 * may be NULL. */
hkm_status hkm_gpu_cache_read(const hkm_gpu_cache *c, int layer, int kv_head, float *k,
                              float *v, hkm_err *err);
/* Keep entries keep[0..n_keep) (strictly increasing indices into the head's
 * current list) of one head, compacting on the device; order is preserved. */
hkm_status hkm_gpu_cache_keep(hkm_gpu_cache *c, int layer, int kv_head, const int32_t *keep,
                              int n_keep, hkm_err *err);
/* Forget every entry at position >= n_pos in every head and continue at
 * position n_pos, as hkm_kvcache_rewind does on the CPU. */
hkm_status hkm_gpu_cache_rewind(hkm_gpu_cache *c, int n_pos, hkm_err *err);
void hkm_gpu_cache_reset(hkm_gpu_cache *c);

/* ---------------------------------------------------------------- capture */

/* Per-key attention statistics of one layer over query rows [row0, row1) of
 * this call: for query head h and key j of its KV head's list (cache entries
 * first, then the new tokens), colmax = max over rows of p(row, j) and
 * colsum = sum over rows of p(row, j); keys a row cannot see count as p = 0.
 * Entries j >= n_keys[h / (n_heads/n_kv_heads)] are 0. */
typedef struct {
    int layer;
    int n, pos0;          /* tokens of this call, position of the first */
    int n_heads, n_kv_heads;
    int row0, row1;
    int n_keys_max;       /* row stride of the arrays below */
    const int *n_keys;    /* (n_kv_heads) keys visible to each KV head, host */
    const float *d_colmax;/* (n_heads, n_keys_max) device memory */
    const float *d_colsum;/* (n_heads, n_keys_max) device memory */
    const float *colmax;  /* host copies when stats_to_host, else NULL */
    const float *colsum;  /* (a statistic not selected by stats_which: NULL, device and host) */
} hkm_gpu_layer_stats;

typedef void (*hkm_gpu_stats_fn)(void *user, const hkm_gpu_layer_stats *st);

/* Which column statistics a capture computes (a mask; 0 means both). */
enum { HKM_GPU_STAT_MAX = 1, HKM_GPU_STAT_SUM = 2, HKM_GPU_STAT_BOTH = 3 };

/* Column statistics accumulated on the device over several forward calls
 * (e.g. every chunk of one pass), copied to the host once: per layer and
 * query head, keys [0, keys) of the head's list; colmax is the max over the
 * calls, colsum the sum. */
typedef struct hkm_gpu_stats_acc hkm_gpu_stats_acc;

/* Room for up to max_keys keys per head; zeroed, with keys = max_keys. */
hkm_status hkm_gpu_stats_acc_create(hkm_gpu_model *g, int max_keys, hkm_gpu_stats_acc **out,
                                    hkm_err *err);
void hkm_gpu_stats_acc_free(hkm_gpu_stats_acc *a);
/* Zero both statistics and keep keys [0, keys) (1 <= keys <= max_keys). */
hkm_status hkm_gpu_stats_acc_reset(hkm_gpu_stats_acc *a, int keys, hkm_err *err);
int hkm_gpu_stats_acc_keys(const hkm_gpu_stats_acc *a);
/* Copy to the host as (n_layers, n_heads, keys); either may be NULL. */
hkm_status hkm_gpu_stats_acc_read(const hkm_gpu_stats_acc *a, float *colmax, float *colsum,
                                  hkm_err *err);

typedef struct {
    hkm_capture cap;           /* same meaning as for hkm_forward_cpu */
    hkm_gpu_stats_fn stats_fn; /* called once per layer, in layer order; NULL = none. With
                                  cap.fn it runs right after that layer's cap.fn; without,
                                  after the call's last layer (no layer then waits for the
                                  host). The device arrays stay valid until the next call */
    void *stats_user;
    int stat_row0, stat_row1;  /* query rows of this call, [row0, row1) */
    int stats_to_host;         /* also copy the statistics to the host */
    int stats_which;           /* HKM_GPU_STAT_* mask; 0 = both. The other is neither
                                  computed nor copied */
    hkm_gpu_stats_acc *stats_acc; /* non-NULL: the selected statistics of keys below its
                                  keys are maxed / added into it (no other key is computed);
                                  then stats_fn may be NULL, and is not called */
} hkm_gpu_capture;

/* ---------------------------------------------------------------- forward */

/* Same semantics as hkm_forward_cpu: run n new tokens (n <= the model's
 * max_chunk; call repeatedly for a chunked prefill), attend to the cache plus
 * the new tokens causally, append their K/V to every head. logits is a host
 * buffer of (1 or n, vocab) floats per mode. cap may be NULL. Device pointers
 * handed to callbacks are valid only inside them.
 * A decode token without capture (n = 1, HKM_LOGITS_LAST) runs as one
 * persistent kernel for models whose layers fit four times in L2 (it adds
 * partial sums with fp32 atomics, so logits may differ between runs in the
 * last bits; HUBKV_GPU_PERSIST=0 turns it off, =1 on for any supported
 * shape), else as a replayed CUDA graph. */
hkm_status hkm_gpu_forward(hkm_gpu_model *g, hkm_gpu_cache *c, const int32_t *ids, int n,
                           hkm_logits_mode mode, float *logits, const hkm_gpu_capture *cap,
                           hkm_err *err);

/* Greedy continuation on the GPU; the cache is reset first. */
hkm_status hkm_gpu_generate_greedy(hkm_gpu_model *g, hkm_gpu_cache *c, const int32_t *prompt,
                                   int n_prompt, int max_new, int32_t eos_id, int32_t *out,
                                   int *n_out, hkm_err *err);

/* Peak device memory allocated by this model and its caches, bytes. */
size_t hkm_gpu_model_peak_bytes(const hkm_gpu_model *g);

#ifdef __cplusplus
}
#endif
#endif /* HUBKV_CUDA_H */
