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
    const float *baseline_adakv;   /* (99, L, H) or NULL (hubkv-solve's AdaKV-style allocation) */
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
const float *hubkv_profile_baseline(const hubkv_profile *p, const char *name); /* "uniform"|"pyramidkv"|"adakv", (99,L,H) or NULL */
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
    /* Optional knots (default NULL = every grid point): head h's curve is
     * linear between grid points knots[knot_off[h] .. knot_off[h+1])
     * (ascending, first 0, last G-1), e.g. its convex-hull vertices; the
     * greedy then costs O(total knots). */
    const int32_t *knots;
    const int64_t *knot_off; /* (n_heads + 1), knot_off[0] = 0 */
} hubkv_budget_params;

hubkv_budget_params hubkv_budget_default_params(void);

/* Marginal-utility greedy: each unit (token) goes to the head whose
 * piecewise-linear loss curve (loss vs keep fraction t/N) drops most for that
 * unit; ties go to the lowest head index (layer-major = (layer, head)).
 * Optimal for convex non-increasing curves. Runs in O(total knots) plus a
 * sort of the blocks near the cut, not per token. out: (n_heads) counts, each within
 * [effective min, effective max], summing exactly to target.
 * HUBKV_ERR_RANGE if target is outside [sum min, sum max]. */
hubkv_status hubkv_budget_greedy(const hubkv_budget_params *p, int64_t *out,
                                 char *err, size_t err_cap);

/* The same greedy for several targets in one pass: the unit sequence does not
 * depend on the target, so each allocation is a prefix of the next. targets:
 * (n_targets) ascending, each feasible (p->target is ignored); out:
 * (n_targets, n_heads), row k equal to hubkv_budget_greedy with targets[k]. */
hubkv_status hubkv_budget_greedy_multi(const hubkv_budget_params *p, int32_t n_targets,
                                       const int64_t *targets, int64_t *out, char *err,
                                       size_t err_cap);

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

/* Refinement + Top-K in one call, same result as hubkv_gpu_refine then
 * hubkv_gpu_topk: z is written once to a scratch buffer kept on the context
 * (n_heads * N * 4 bytes + 8 KiB per head, grow-only, freed by
 * hubkv_gpu_free) together with the first radix histogram, so the select
 * makes one pass fewer over it. */
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
/* Decode-time policies, gate and diversity selector: CPU references and      */
/* GPU versions (d_* device pointers; the GPU ones queue on the context's     */
/* stream like the operations above).                                        */

/* Appends n_new rows to every head of a flattened cache with spare capacity
 * (layout of hubkv_cache: rows of head h at off[h] .. off[h] + len[h],
 * capacity off[h+1] - off[h]). k, v: (off[H], d); pos: (off[H]); len: (H),
 * updated; new_k, new_v: (H, n_new, d). HUBKV_ERR_RANGE if a head lacks room
 * (nothing is written then). */
hubkv_status hubkv_append_cpu(uint16_t *k, uint16_t *v, int32_t *pos, const int32_t *off,
                              int32_t *len, int32_t n_heads, int32_t head_dim,
                              const uint16_t *new_k, const uint16_t *new_v, int32_t n_new,
                              int32_t pos0, char *err, size_t err_cap);

/* H2O step on that layout (see hubkv_cache_h2o_step): acc += attn over each
 * head's valid rows, then picks each head's slot for the token at new_pos,
 * sets acc[slot] = 0, pos[slot] = new_pos, len[h] = min(len[h] + 1, cap) and
 * slot[h] = absolute row. acc, attn: (off[H]); slot: (H). HUBKV_ERR_RANGE if
 * a full head has no evictable row. K/V rows are written by the caller (or
 * by hubkv_cache_h2o_step). */
hubkv_status hubkv_h2o_step_cpu(float *acc, int32_t *pos, const int32_t *off, int32_t *len,
                                int32_t n_heads, const float *attn, int32_t new_pos,
                                int32_t n_sink, int32_t n_recent, int32_t *slot, char *err,
                                size_t err_cap);
hubkv_status hubkv_gpu_h2o_step(hubkv_gpu *g, float *d_acc, int32_t *d_pos, const int32_t *d_off,
                                int32_t *d_len, int32_t n_heads, const float *d_attn,
                                int32_t new_pos, int32_t n_sink, int32_t n_recent, int32_t *d_slot);

/* Sink-attention gate of one layer (after Fast KVzip's low-rank sink
 * attention; docs/profile-format.md, /gate). For token n and KV head h, with
 * r = rank, G = query heads per KV head, S = learned sink keys:
 *   q[n,h,g] = rmsnorm(x_n Wq^T + bq)[h,g] * q_norm   (r values)
 *   k[n,h]   = rmsnorm(x_n Wk^T)[h] * k_norm          (r values)
 *   l[n,h,g] = k.q / sqrt(r) + b[h,g];  m[s] = k_base[h,s].q / sqrt(r)
 *   p[n,h,g] = 1 / (1 + sum_s exp(m[s] - l))   (softmax mass of the token
 *              against the S sinks)
 *   out[h,n] = mean over g of p  (in (0, 1); higher = keep). */
typedef struct {
    int32_t d_model, n_kv_heads, n_group, rank, n_sink;
    float eps;              /* rmsnorm epsilon (default 1e-6)       */
    const float *wq;        /* (H*G*r, d_model) rows (h, g, r)      */
    const float *bq;        /* (H*G*r)                              */
    const float *wk;        /* (H*r, d_model)                       */
    const float *q_norm;    /* (r)                                  */
    const float *k_norm;    /* (r)                                  */
    const float *k_base;    /* (H, S, r)                            */
    const float *b;         /* (H, G)                               */
} hubkv_gate_weights;

/* Points *w at layer `layer`'s gate tensors in the profile (q_proj_weight,
 * q_proj_bias, k_proj_weight, q_norm_weight, k_norm_weight, k_base, b) after
 * checking all shapes agree; pointers are owned by the profile. */
hubkv_status hubkv_profile_gate_weights(hubkv_profile *p, int32_t layer, hubkv_gate_weights *w);

/* x: (n, d_model); out: (H, n). */
hubkv_status hubkv_gate_forward_cpu(const hubkv_gate_weights *w, const float *x, int64_t n,
                                    float *out, char *err, size_t err_cap);
/* Same with every array of *w, d_x and d_out on the device (w itself on the
 * host). Agrees with the CPU to ~1e-5 relative (expf differs in the last bits). */
hubkv_status hubkv_gpu_gate_forward(hubkv_gpu *g, const hubkv_gate_weights *w, const float *d_x,
                                    int64_t n, float *d_out);

/* Decode buffer for the gate: collects the hidden states of new tokens and
 * scores them in chunks of `chunk` tokens (default 128) so the gate runs once
 * per chunk, not per token. */
typedef struct hubkv_gate_buffer hubkv_gate_buffer;
hubkv_status hubkv_gate_buffer_create(hubkv_gpu *g, int32_t d_model, int32_t n_kv_heads,
                                      int32_t chunk, hubkv_gate_buffer **out);
void hubkv_gate_buffer_free(hubkv_gate_buffer *b);
/* Copies n rows d_x (n, d_model) (device) into the buffer. Whenever it fills,
 * the chunk is scored with w into the buffer's score array and *n_ready is
 * set to the number of complete chunks scored by this call (rows beyond a
 * chunk wait for the next). After the call, hubkv_gate_buffer_scores returns
 * the last scored chunk: (H, chunk) on the device, token j of the chunk is
 * the j-th row pushed into it. */
hubkv_status hubkv_gate_buffer_push(hubkv_gate_buffer *b, const hubkv_gate_weights *w,
                                    const float *d_x, int32_t n, int32_t *n_ready);
const float *hubkv_gate_buffer_scores(const hubkv_gate_buffer *b);
int32_t hubkv_gate_buffer_pending(const hubkv_gate_buffer *b); /* rows waiting */

/* Diversity selector (minimal-intervention study): per head, keeps the sinks
 * and the recent window, then greedily adds the token with the largest
 * gain_i = score_i - lambda * red_i, where red_i = max(0, max over kept j of
 * cos(v_i, v_j)) is its redundancy with the kept set in V space (a facility-
 * location-style coverage penalty); ties go to the lower index. lambda
 * default 0.5. scores: (H, N); v: (H, N, d) bf16; offsets, idx as in
 * hubkv_topk_cpu (ascending indices). Cost O(k N d) per head: meant for
 * short contexts or a pre-filtered candidate set. */
hubkv_status hubkv_diverse_cpu(const float *scores, const uint16_t *v, int32_t n_heads,
                               int64_t n_tokens, int32_t head_dim, const int32_t *offsets,
                               float lambda, int32_t n_sink, int32_t n_recent, int32_t *idx,
                               char *err, size_t err_cap);
/* Same; exact agreement with the CPU (same fmaf order). d_offsets on the
 * device, h_offsets the same on the host (scheduling and checks). */
hubkv_status hubkv_gpu_diverse(hubkv_gpu *g, const float *d_scores, const uint16_t *d_v,
                               int32_t n_heads, int64_t n_tokens, int32_t head_dim,
                               const int32_t *d_offsets, const int32_t *h_offsets, float lambda,
                               int32_t n_sink, int32_t n_recent, int32_t *d_idx);

/* ------------------------------------------------------------------------ */
/* GPU variable-length KV cache: per layer one K and one V buffer            */
/* (sum of head capacities, d) bf16, head segment offsets (H+1) int32, valid  */
/* row counts per head (H) int32 and token positions int32, all owned by the  */
/* cache. Head h's valid rows are off[h] .. off[h] + len[h]; its capacity is  */
/* off[h+1] - off[h] = len[h] + spare rows. Compaction allocates new buffers  */
/* of kept rows + the per-head slack (default 0 = exact size), gathers, and   */
/* frees the old ones (memory is really released). Append writes decode      */
/* tokens into the spare rows and regrows a layer (by at least half of each  */
/* head's length: amortised O(1) per token) only when a head is full.        */

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
 * set/compact/append-with-growth of that layer) and its allocated row count
 * (sum of capacities; with slack 0 and no append, the kept rows); d_off are
 * the segment offsets (H+1). Any out may be NULL. */
hubkv_status hubkv_cache_layer(const hubkv_cache *c, int32_t layer, const uint16_t **d_k,
                               const uint16_t **d_v, const int32_t **d_off,
                               const int32_t **d_pos, int64_t *n_rows);

/* Valid rows per head of a layer: d_len (H) on the device, h_len (H) a host
 * mirror; both owned by the cache, valid like hubkv_cache_layer's pointers.
 * h_off (H+1, optional) is the host copy of the segment offsets. */
hubkv_status hubkv_cache_layer_lens(const hubkv_cache *c, int32_t layer, const int32_t **d_len,
                                    const int32_t **h_len, const int32_t **h_off);

/* Spare rows reserved per head by later set_dense/compact calls (default 0). */
hubkv_status hubkv_cache_set_slack(hubkv_cache *c, int32_t rows);

/* Appends n_new decode tokens to every head of `layer`: d_k, d_v (H, n_new, d)
 * bf16 on the device; positions pos0 .. pos0 + n_new - 1. Regrows the layer
 * first when a head lacks room (then its pointers change). */
hubkv_status hubkv_cache_append(hubkv_cache *c, int32_t layer, const uint16_t *d_k,
                                const uint16_t *d_v, int32_t n_new, int32_t pos0);

/* One H2O decode step on `layer` (fixed capacity, no regrowth): d_acc is the
 * caller's accumulated-attention array in the layer's row layout
 * (n_rows floats, zero it after set/compact); d_attn (n_rows) the new
 * query's attention weights per cached row (only valid rows are read); the
 * new token (d_k, d_v: (H, d)) at position new_pos goes into a free spare row
 * or, when the head is full, replaces in place the row with the lowest
 * accumulated attention whose position is neither a sink (< n_sink) nor in
 * the recent window (>= new_pos - n_recent); ties to the lower row.
 * Same semantics as hubkv_h2o_step_cpu. */
hubkv_status hubkv_cache_h2o_step(hubkv_cache *c, int32_t layer, float *d_acc,
                                  const float *d_attn, const uint16_t *d_k, const uint16_t *d_v,
                                  int32_t new_pos, int32_t n_sink, int32_t n_recent);

/* Device bytes held by the cache right now (all layers, all buffers). */
int64_t hubkv_cache_bytes(const hubkv_cache *c);

#ifdef __cplusplus
}
#endif

#endif /* HUBKV_H */
