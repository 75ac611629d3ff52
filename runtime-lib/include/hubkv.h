/* libhubkv: load a calibrated HubKV profile (HDF5, docs/profile-format.md),
 * turn it into per-head KV budgets, and apply them to a KV cache (CPU
 * references + CUDA kernels).
 *
 * Conventions (whole header):
 *  - Every fallible function returns hubkv_status; HUBKV_OK is 0. Nothing in
 *    the library prints or exits.
 *  - Errors: functions on a handle keep a message on that handle, read with
 *    hubkv_<handle>_error(h) (valid until the next call on that handle).
 *    Functions without a handle (constructors, pure functions) take an
 *    optional `char *err, size_t err_cap` buffer (may be NULL / 0).
 *  - Ownership: pointers passed in are borrowed for the duration of the call
 *    only (the library copies what it keeps). Pointers returned by a
 *    getter belong to the handle and stay valid until it is freed.
 *    Every *_free(NULL) is a no-op.
 *  - Thread safety: functions without a handle are thread-safe. A handle may
 *    be used by one thread at a time; distinct handles are independent.
 *    A hubkv_profile is read-only after open, so its getters and
 *    hubkv_profile_budgets may run concurrently if the caller ignores the
 *    per-handle error message (it is the only shared mutable state).
 *  - Shapes are given as (dim0, dim1, ...) row-major; L = n_layers,
 *    H = n_kv_heads, N = tokens, G = curve grid points, d = head_dim.
 *  - bf16 values are passed as uint16_t bit patterns.
 */
#ifndef HUBKV_H
#define HUBKV_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HUBKV_VERSION_MAJOR 0
#define HUBKV_VERSION_MINOR 1
#define HUBKV_VERSION_PATCH 0
#define HUBKV_VERSION_STRING "0.1.0"

/* Profile file format written by this library (docs/profile-format.md). A
 * reader accepts any minor of its major and refuses a newer major. */
#define HUBKV_PROFILE_FORMAT_NAME "hubkv-profile"
#define HUBKV_PROFILE_VERSION_MAJOR 1
#define HUBKV_PROFILE_VERSION_MINOR 0
#define HUBKV_N_RATIOS 99 /* compression ratios 1..99 % */

/* ------------------------------------------------------------------------ */
/* Status                                                                    */

typedef enum {
    HUBKV_OK = 0,
    HUBKV_ERR_INVALID_ARG = 1,  /* NULL pointer, bad size or parameter       */
    HUBKV_ERR_IO = 2,           /* file cannot be opened/read/written/renamed */
    HUBKV_ERR_FORMAT = 3,       /* not a profile, missing or ill-shaped data  */
    HUBKV_ERR_VERSION = 4,      /* profile major version newer than library   */
    HUBKV_ERR_FINGERPRINT = 5,  /* profile made for another model             */
    HUBKV_ERR_RANGE = 6,        /* value out of range, NaN, infeasible budget */
    HUBKV_ERR_NOMEM = 7,        /* host or device allocation failed           */
    HUBKV_ERR_CUDA = 8,         /* CUDA runtime error                         */
    HUBKV_ERR_NO_DEVICE = 9,    /* no CUDA device available                   */
    HUBKV_ERR_UNSUPPORTED = 10, /* built without CUDA, or feature not built   */
} hubkv_status;

/* Static string naming the status ("HUBKV_ERR_FORMAT"); never NULL. */
const char *hubkv_status_str(hubkv_status s);

/* ------------------------------------------------------------------------ */
/* Model fingerprint                                                         */

/* What a profile was calibrated for. `hash` is a 64-bit hash of the model's
 * config and tensor shapes, computed by the caller (e.g. the engine); the
 * library only stores and compares it. hash == 0 in an expectation passed to
 * hubkv_profile_open means "do not compare the hash". */
typedef struct {
    const char *architecture; /* e.g. "llama"; NULL in an expectation = any */
    int32_t n_layers;
    int32_t n_heads;          /* query heads */
    int32_t n_kv_heads;
    int32_t head_dim;
    int32_t vocab;
    uint64_t hash;
} hubkv_model_desc;

/* ------------------------------------------------------------------------ */
/* Profile writing                                                           */

/* One optional gate tensor, stored as /gate/layer_<layer>/<name>. */
typedef struct {
    int32_t layer;
    const char *name;         /* [A-Za-z0-9_]+ */
    int32_t ndim;             /* 1..4 */
    int64_t shape[4];
    const float *data;        /* (shape[0], ..., shape[ndim-1]) */
} hubkv_gate_tensor;

/* Everything a profile holds. All arrays are borrowed during
 * hubkv_profile_write. Fill with hubkv_profile_data_default() first so new
 * fields get defaults. */
typedef struct {
    hubkv_model_desc model;
    const char *producer;          /* default "libhubkv"                      */
    const char *producer_version;  /* default HUBKV_VERSION_STRING            */
    const char *scorer_name;       /* e.g. "expected_attention"; required     */
    const char *scorer_params;     /* JSON object text; default "{}"          */
    /* Calibration settings. */
    const char *calib_dataset;     /* default ""                              */
    int32_t calib_n_contexts;
    int32_t calib_context_len;     /* tokens per calibration context          */
    int32_t n_sink;                /* sink tokens always kept (default 4)     */
    int32_t n_recent;              /* recent-window tokens always kept (default 64) */
    int32_t n_grid;                /* G >= 2                                  */
    const float *grid;             /* (G) keep fractions, strictly increasing in [0,1] */
    const float *loss;             /* (L, H, G) loss; non-increasing, convex in grid */
    const float *budget_keep;      /* (99, L, H) keep fractions in [0,1], row r-1 = ratio r % */
    const float *selectivity;      /* (L, H) >= 0                             */
    const float *beta;             /* (L, H) in [0.8, 1.2]                    */
    const float *baseline_uniform; /* (99, L, H) or NULL                      */
    const float *baseline_pyramidkv; /* (99, L, H) or NULL                    */
    int32_t n_gate;
    const hubkv_gate_tensor *gate; /* (n_gate) or NULL                        */
} hubkv_profile_data;

hubkv_profile_data hubkv_profile_data_default(void);

/* Validates `data` (same checks as the reader) and writes it to
 * `path`.tmp.<pid>, then renames it onto `path`: readers never see a partial
 * file. On error nothing is left at `path` (an old file there is kept). */
hubkv_status hubkv_profile_write(const char *path, const hubkv_profile_data *data,
                                 char *err, size_t err_cap);

/* ------------------------------------------------------------------------ */
/* Profile reading                                                           */

typedef struct hubkv_profile hubkv_profile; /* opaque, read-only after open */

/* Opens and fully validates a profile: format name, version (newer major ->
 * HUBKV_ERR_VERSION naming both versions), presence, dtype and shape of every
 * dataset, value ranges (NaN -> HUBKV_ERR_RANGE naming dataset and index),
 * and, if `expect` is not NULL, the fingerprint against it (mismatch ->
 * HUBKV_ERR_FINGERPRINT naming the field and both values). On success *out
 * owns all data; free with hubkv_profile_free. On failure *out is NULL. */
hubkv_status hubkv_profile_open(const char *path, const hubkv_model_desc *expect,
                                hubkv_profile **out, char *err, size_t err_cap);
void hubkv_profile_free(hubkv_profile *p);
const char *hubkv_profile_error(const hubkv_profile *p); /* "" if none */

/* Getters: pointers owned by the profile. */
const hubkv_model_desc *hubkv_profile_model(const hubkv_profile *p);
const char *hubkv_profile_scorer(const hubkv_profile *p);
const char *hubkv_profile_scorer_params(const hubkv_profile *p);
void hubkv_profile_version(const hubkv_profile *p, int32_t *major, int32_t *minor);
int32_t hubkv_profile_n_sink(const hubkv_profile *p);
int32_t hubkv_profile_n_recent(const hubkv_profile *p);
const float *hubkv_profile_grid(const hubkv_profile *p, int32_t *n_grid); /* (G) */
const float *hubkv_profile_loss(const hubkv_profile *p);        /* (L, H, G) */
const float *hubkv_profile_budget_keep(const hubkv_profile *p); /* (99, L, H) */
const float *hubkv_profile_selectivity(const hubkv_profile *p); /* (L, H) */
const float *hubkv_profile_beta(const hubkv_profile *p);        /* (L, H) */
const float *hubkv_profile_baseline(const hubkv_profile *p, const char *name); /* "uniform"|"pyramidkv", (99,L,H) or NULL */
/* Gate tensor /gate/layer_<layer>/<name>, or NULL if absent. */
const hubkv_gate_tensor *hubkv_profile_gate(const hubkv_profile *p, int32_t layer,
                                            const char *name);

/* Per-head token budgets for compression ratio `ratio` in [0, 1) (fraction of
 * tokens removed) at context length n_tokens: runs hubkv_budget_greedy on the
 * stored curves with target round((1 - ratio) * n_tokens * L * H), the
 * profile's n_sink + n_recent as the per-head minimum and n_tokens as the
 * maximum. out: (L, H) token counts summing exactly to the target.
 * HUBKV_ERR_RANGE if the target is below the sum of minimums. */
hubkv_status hubkv_profile_budgets(hubkv_profile *p, float ratio, int64_t n_tokens,
                                   int32_t *out);

/* ------------------------------------------------------------------------ */
/* Budget allocation (shared with the solver tool)                            */

typedef struct {
    int32_t n_heads;     /* number of heads (all layers flattened), > 0        */
    int32_t n_grid;      /* G >= 2                                             */
    const float *grid;   /* (G) keep fractions, strictly increasing in [0,1]   */
    const float *loss;   /* (n_heads, G) loss at each grid point                */
    int64_t n_tokens;    /* context length N > 0                               */
    int64_t target;      /* total tokens to keep over all heads                */
    int32_t n_sink;      /* first tokens always kept (default 0)               */
    int32_t n_recent;    /* last tokens always kept (default 0)                */
    int64_t min_per_head; /* default 0; effective min = max(this, sink+recent) capped at N */
    int64_t max_per_head; /* default 0 = N; capped at N                        */
} hubkv_budget_params;

hubkv_budget_params hubkv_budget_default_params(void);

/* Marginal-utility greedy: each unit (token) goes to the head whose
 * piecewise-linear loss curve (loss vs keep fraction t/N) drops most for that
 * unit; ties go to the lowest head index (layer-major = (layer, head)).
 * Optimal for convex non-increasing curves. Runs in O(n_heads * G * log
 * n_heads), not per token. out: (n_heads) counts, each within
 * [effective min, effective max], summing exactly to target.
 * HUBKV_ERR_RANGE if target is outside [sum min, sum max]. */
hubkv_status hubkv_budget_greedy(const hubkv_budget_params *p, int64_t *out,
                                 char *err, size_t err_cap);

/* ------------------------------------------------------------------------ */
/* CPU reference operations                                                  */

typedef struct {
    int32_t width;      /* hub window width, odd, >= 1 (default 5)              */
    float discount;     /* q_i = discount * s_i for non-hubs (default 0.5)      */
    float ratio;        /* compression ratio r in [0,1]; z = s + r^2 (beta q - s) */
    float ratio_gate;   /* refinement applied only if ratio >= ratio_gate (default 0) */
} hubkv_refine_params;

hubkv_refine_params hubkv_refine_default_params(void);

/* HubKV refinement. hub_i = (s_i == max of s over the window of `width`
 * centred at i, clipped at the edges); q_i = s_i if hub else discount * s_i;
 * z_i = s_i + r^2 (beta_h q_i - s_i) (z = s when ratio < ratio_gate).
 * scores, out: (L*H, N) (out may alias nothing); beta: (L*H). */
hubkv_status hubkv_refine_cpu(const float *scores, const float *beta, int32_t n_heads,
                              int64_t n_tokens, const hubkv_refine_params *p, float *out,
                              char *err, size_t err_cap);

/* Per-head Top-K with a different k per head. Head s keeps
 * k_s = offsets[s+1] - offsets[s] tokens: the first n_sink and the last
 * n_recent tokens always (when k_s >= their count, else the error), then the
 * highest scores of the rest, ties by lower index. Output: idx[offsets[s] ..
 * offsets[s+1]) = kept token indices of head s in ascending order.
 * scores: (n_heads, N); offsets: (n_heads + 1), offsets[0] = 0. */
hubkv_status hubkv_topk_cpu(const float *scores, int32_t n_heads, int64_t n_tokens,
                            const int32_t *offsets, int32_t n_sink, int32_t n_recent,
                            int32_t *idx, char *err, size_t err_cap);

/* Compaction into a flattened variable-length cache (AdaKV layout) for one
 * layer. Input rows of head h are in_k[in_off[h] .. in_off[h+1]) with their
 * token positions in_pos (a dense (H, N, d) cache is in_off[h] = h*N,
 * in_pos = 0..N-1 per head). keep_idx[keep_off[h] ..] are row numbers within
 * head h (ascending). Output: out_k, out_v (keep_off[H], d), out_pos
 * (keep_off[H]); the output offsets are keep_off. */
hubkv_status hubkv_compact_cpu(const uint16_t *in_k, const uint16_t *in_v,
                               const int32_t *in_pos, const int32_t *in_off,
                               int32_t n_heads, int32_t head_dim, const int32_t *keep_idx,
                               const int32_t *keep_off, uint16_t *out_k, uint16_t *out_v,
                               int32_t *out_pos, char *err, size_t err_cap);

/* ------------------------------------------------------------------------ */
/* GPU operations (CUDA). Built with HUBKV_CUDA=ON; otherwise every function  */
/* below returns HUBKV_ERR_UNSUPPORTED. All pointers named d_* are device     */
/* pointers. Work is queued on the context's stream; the functions return     */
/* after queuing unless stated (call hubkv_gpu_sync to wait and to see       */
/* asynchronous errors).                                                     */

typedef struct hubkv_gpu hubkv_gpu; /* opaque: device, stream, error text */

/* Binds to CUDA device `device` and `stream` (a cudaStream_t, NULL = the
 * legacy default stream; borrowed). HUBKV_ERR_NO_DEVICE if there is none. */
hubkv_status hubkv_gpu_create(int32_t device, void *stream, hubkv_gpu **out, char *err,
                              size_t err_cap);
void hubkv_gpu_free(hubkv_gpu *g);
const char *hubkv_gpu_error(const hubkv_gpu *g);
hubkv_status hubkv_gpu_sync(hubkv_gpu *g);

/* Same semantics as hubkv_refine_cpu. d_scores, d_out: (n_heads, N). */
hubkv_status hubkv_gpu_refine(hubkv_gpu *g, const float *d_scores, const float *d_beta,
                              int32_t n_heads, int64_t n_tokens, const hubkv_refine_params *p,
                              float *d_out);

/* Same semantics as hubkv_topk_cpu (one radix select per head). d_offsets:
 * (n_heads + 1) on the device; max_k: an upper bound of any k_s (for
 * scheduling only; pass 0 if unknown). */
hubkv_status hubkv_gpu_topk(hubkv_gpu *g, const float *d_scores, int32_t n_heads,
                            int64_t n_tokens, const int32_t *d_offsets, int32_t n_sink,
                            int32_t n_recent, int32_t *d_idx);

/* Refinement fused into the Top-K (z is recomputed from s on the fly and
 * never stored): same result as hubkv_gpu_refine then hubkv_gpu_topk. */
hubkv_status hubkv_gpu_refine_topk(hubkv_gpu *g, const float *d_scores, const float *d_beta,
                                   int32_t n_heads, int64_t n_tokens,
                                   const hubkv_refine_params *p, const int32_t *d_offsets,
                                   int32_t n_sink, int32_t n_recent, int32_t *d_idx);

/* Same semantics as hubkv_compact_cpu, all arrays on the device. */
hubkv_status hubkv_gpu_compact(hubkv_gpu *g, const uint16_t *d_in_k, const uint16_t *d_in_v,
                               const int32_t *d_in_pos, const int32_t *d_in_off,
                               int32_t n_heads, int32_t head_dim, const int32_t *d_keep_idx,
                               const int32_t *d_keep_off, int64_t n_keep, uint16_t *d_out_k,
                               uint16_t *d_out_v, int32_t *d_out_pos);

/* ------------------------------------------------------------------------ */
/* GPU variable-length KV cache: per layer one K and one V buffer            */
/* (sum of head lengths, d) bf16, head offsets (H+1) int32 and token          */
/* positions int32, all owned by the cache. Compaction allocates exact-size   */
/* new buffers, gathers, and frees the old ones (memory is really released). */

typedef struct hubkv_cache hubkv_cache;

hubkv_status hubkv_cache_create(hubkv_gpu *g, int32_t n_layers, int32_t n_kv_heads,
                                int32_t head_dim, hubkv_cache **out);
void hubkv_cache_free(hubkv_cache *c);
/* Message of the last failed call on this cache. */
const char *hubkv_cache_error(const hubkv_cache *c);

/* Replaces layer `layer` by a copy of a dense cache. d_k, d_v: (H, N, d) bf16
 * on the device; positions become 0..N-1. */
hubkv_status hubkv_cache_set_dense(hubkv_cache *c, int32_t layer, const uint16_t *d_k,
                                   const uint16_t *d_v, int64_t n_tokens);

/* Keeps, per head h, rows keep_idx[keep_off[h] .. keep_off[h+1]) (ascending
 * row numbers within the head, device array) of layer `layer`. h_keep_off:
 * (H+1) on the host. Synchronises the stream before freeing the old buffers. */
hubkv_status hubkv_cache_compact(hubkv_cache *c, int32_t layer, const int32_t *d_keep_idx,
                                 const int32_t *h_keep_off);

/* Device pointers of a layer (owned by the cache, valid until the next
 * set/compact of that layer) and its total row count; any out may be NULL. */
hubkv_status hubkv_cache_layer(const hubkv_cache *c, int32_t layer, const uint16_t **d_k,
                               const uint16_t **d_v, const int32_t **d_off,
                               const int32_t **d_pos, int64_t *n_rows);

/* Device bytes held by the cache right now (all layers, all buffers). */
int64_t hubkv_cache_bytes(const hubkv_cache *c);

#ifdef __cplusplus
}
#endif

#endif /* HUBKV_H */
