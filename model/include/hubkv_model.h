/* hubkv model engine: load llama-family checkpoints (HF safetensors or GGUF),
 * tokenize, and run a CPU fp32 forward with capture hooks over a KV cache whose
 * heads may hold different numbers of tokens.
 *
 * Conventions
 *  - Every fallible call returns hkm_status and, on failure, writes a message
 *    naming the file, the field and what was expected into *err (may be NULL).
 *  - create/open functions hand out objects the caller frees with the matching
 *    _free; every _free accepts NULL.
 *  - Thread safety: a model and a tokenizer are read-only after loading and may
 *    be shared between threads; a KV cache belongs to one thread at a time.
 *  - Tensor shapes are given in comments as (dim0, dim1, ...), row-major.
 */
#ifndef HUBKV_MODEL_H
#define HUBKV_MODEL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- status */

typedef enum {
    HKM_OK = 0,
    HKM_ERR_ARG,         /* caller passed an invalid argument */
    HKM_ERR_IO,          /* open/read/mmap failed */
    HKM_ERR_FORMAT,      /* file is malformed (bad magic, truncated, bad JSON...) */
    HKM_ERR_UNSUPPORTED, /* valid file, but an architecture/type we do not handle */
    HKM_ERR_MISSING,     /* a required tensor or field is absent */
    HKM_ERR_SHAPE,       /* a tensor has the wrong shape */
    HKM_ERR_NOMEM,       /* allocation failed */
} hkm_status;

typedef struct {
    char msg[1024]; /* human-readable detail of the last failure */
} hkm_err;

const char *hkm_status_str(hkm_status s);

/* ---------------------------------------------------------------- config */

typedef enum {
    HKM_ARCH_LLAMA = 0,
    HKM_ARCH_MISTRAL,
    HKM_ARCH_QWEN2,
    HKM_ARCH_QWEN3,
} hkm_arch;

typedef enum {
    HKM_ROPE_DEFAULT = 0,
    HKM_ROPE_LLAMA3,       /* HF rope_scaling llama3: factor, low/high freq factors */
    HKM_ROPE_FREQ_FACTORS, /* GGUF rope_freqs.weight: inv_freq[i] / rope_freq_div[i] */
} hkm_rope_type;

#define HKM_MAX_ROPE_PAIRS 256 /* head_dim / 2 bound for rope_freq_div */

typedef struct {
    hkm_arch arch;
    int n_layers;
    int d_model;      /* hidden size */
    int n_heads;      /* query heads */
    int n_kv_heads;   /* key/value heads (GQA) */
    int head_dim;
    int d_ff;         /* MLP intermediate size */
    int vocab_size;
    int max_pos;      /* max_position_embeddings / context_length */
    float rms_eps;
    float rope_theta;
    hkm_rope_type rope_type;
    float rope_factor;          /* llama3 scaling: factor */
    float rope_low_freq_factor; /* llama3 scaling */
    float rope_high_freq_factor;/* llama3 scaling */
    int rope_orig_max_pos;      /* llama3: original_max_position_embeddings */
    float rope_freq_div[HKM_MAX_ROPE_PAIRS]; /* HKM_ROPE_FREQ_FACTORS: per rotated pair, > 0 */
    int tie_embeddings;         /* lm_head shares token embeddings */
    int qkv_bias;               /* Qwen2: q/k/v projections have biases */
    int qk_norm;                /* Qwen3: RMSNorm over each q/k head */
    int bos_id, eos_id;         /* -1 when unknown */
} hkm_config;

const char *hkm_arch_name(hkm_arch a);

/* Parse a Hugging Face config.json. */
hkm_status hkm_config_load_json(const char *path, hkm_config *cfg, hkm_err *err);

/* ---------------------------------------------------------------- model */

typedef struct hkm_model hkm_model;

/* path: a directory holding config.json + model.safetensors (or a sharded
 * model.safetensors.index.json), or a .gguf file. Weights are kept in fp32. */
hkm_status hkm_model_load(const char *path, hkm_model **out, hkm_err *err);
void hkm_model_free(hkm_model *m);
const hkm_config *hkm_model_config(const hkm_model *m);

/* ---------------------------------------------------------------- tokenizer */

typedef struct hkm_tokenizer hkm_tokenizer;

/* path: a tokenizer.json, a directory containing one, or a .gguf file. */
hkm_status hkm_tokenizer_load(const char *path, hkm_tokenizer **out, hkm_err *err);
void hkm_tokenizer_free(hkm_tokenizer *t);

/* Encode UTF-8 text. Added/special tokens in the text map to their ids, as HF
 * tokenizers do. add_bos: prepend BOS if the tokenizer has one.
 * *ids is malloc'ed; the caller frees it. */
hkm_status hkm_tokenizer_encode(const hkm_tokenizer *t, const char *text, size_t len,
                                int add_bos, int32_t **ids, size_t *n_ids, hkm_err *err);
/* Decode ids to UTF-8 (*text malloc'ed, NUL-terminated). skip_special drops
 * special tokens. */
hkm_status hkm_tokenizer_decode(const hkm_tokenizer *t, const int32_t *ids, size_t n_ids,
                                int skip_special, char **text, size_t *len, hkm_err *err);
int hkm_tokenizer_vocab_size(const hkm_tokenizer *t);
/* id of a token string (exact match, e.g. "<|im_end|>"), or -1. */
int32_t hkm_tokenizer_token_id(const hkm_tokenizer *t, const char *token);
int32_t hkm_tokenizer_bos(const hkm_tokenizer *t); /* -1 if none */
int32_t hkm_tokenizer_eos(const hkm_tokenizer *t); /* -1 if none */

/* ---------------------------------------------------------------- KV cache */

/* Per layer, per KV head: a list of (key, value, position) entries. Heads may
 * hold different numbers of tokens after eviction. */
typedef struct hkm_kvcache hkm_kvcache;

/* capacity: max tokens per head. */
hkm_status hkm_kvcache_create(const hkm_config *cfg, int capacity, hkm_kvcache **out,
                              hkm_err *err);
void hkm_kvcache_free(hkm_kvcache *c);
/* Next absolute position a forward call will use (tokens seen so far). */
int hkm_kvcache_next_pos(const hkm_kvcache *c);
/* Number of entries the head holds now. */
int hkm_kvcache_len(const hkm_kvcache *c, int layer, int kv_head);
/* Views of one head's storage, valid until the next cache mutation:
 * k, v: (len, head_dim); pos: (len). Any output pointer may be NULL. */
void hkm_kvcache_head(const hkm_kvcache *c, int layer, int kv_head, const float **k,
                      const float **v, const int32_t **pos);
/* Keep only the entries keep[0..n_keep) (indices into the head's current list,
 * strictly increasing) of one head; the order of the kept entries is preserved. */
hkm_status hkm_kvcache_keep(hkm_kvcache *c, int layer, int kv_head, const int32_t *keep,
                            int n_keep, hkm_err *err);
/* Forget every entry at position >= n_pos in every head and continue at
 * position n_pos (e.g. drop a teacher-forced window after the context).
 * HKM_ERR_ARG if n_pos is negative or beyond the next position. */
hkm_status hkm_kvcache_rewind(hkm_kvcache *c, int n_pos, hkm_err *err);
/* Forget everything (positions restart at 0). */
void hkm_kvcache_reset(hkm_kvcache *c);

/* ---------------------------------------------------------------- capture */

/* What one layer exposes during a forward call. Pointers are valid only
 * inside the callback; copy what you need. n = tokens in this call. */
typedef struct {
    int layer;
    int n;              /* new tokens in this call */
    int pos0;           /* absolute position of the first new token */
    const float *hidden; /* (n, d_model) layer input (before attn RMSNorm); NULL unless asked */
    const float *q;      /* (n_heads, n, head_dim) post-RoPE (and post qk-norm) */
    const float *k;      /* (n_kv_heads, n, head_dim) post-RoPE, new tokens only */
    const float *v;      /* (n_kv_heads, n, head_dim) new tokens only */
    /* Attention probabilities of the chosen query rows over every key the
     * row's KV head saw (cache entries first, in cache order, then the new
     * tokens; causal: later new tokens get probability 0). */
    int n_rows;          /* rows captured */
    const int *rows;     /* (n_rows) indices into this call's tokens */
    int n_keys_max;      /* row stride of probs */
    const int *n_keys;   /* (n_kv_heads) keys visible to each KV head */
    const float *probs;  /* (n_heads, n_rows, n_keys_max); entries beyond a head's
                            n_keys are 0. NULL unless rows were asked */
    /* Per-key statistics over query rows [stat_row0, stat_row1) of this call
     * (as hkm_gpu_layer_stats): for query head h and key j of its KV head's
     * list, colmax = max over the rows of p(row, j), colsum = their sum; keys
     * a row cannot see count as 0; entries beyond the head's n_keys are 0.
     * Reduced inside the attention: no (rows x keys) copy is made. */
    int stat_row0, stat_row1;
    const float *colmax; /* (n_heads, n_keys_max); NULL unless asked */
    const float *colsum; /* (n_heads, n_keys_max); NULL unless asked */
} hkm_layer_capture;

typedef void (*hkm_capture_fn)(void *user, const hkm_layer_capture *lc);

typedef struct {
    hkm_capture_fn fn;   /* called once per layer, in order; NULL = no capture */
    void *user;
    int want_hidden;     /* fill lc->hidden */
    int want_qkv;        /* fill lc->q, lc->k, lc->v */
    int n_rows;          /* query rows whose attention probabilities to capture */
    const int *rows;     /* (n_rows) indices into this call's tokens, increasing */
    /* Column statistics (lc->colmax, lc->colsum) over the query rows
     * [stat_row0, stat_row1) of this call; off when stat_row1 <= stat_row0.
     * CPU forward only: hkm_gpu_forward takes its own range in hkm_gpu_capture. */
    int stat_row0, stat_row1;
} hkm_capture;

/* ---------------------------------------------------------------- forward */

typedef enum {
    HKM_LOGITS_NONE = 0, /* no logits (e.g. while prefilling a chunk) */
    HKM_LOGITS_LAST,     /* logits of the last new token: (1, vocab) */
    HKM_LOGITS_ALL,      /* logits of every new token: (n, vocab) */
} hkm_logits_mode;

/* Run n new tokens through the model on the CPU (fp32), attending to what the
 * cache holds plus the new tokens causally, and append their K/V to every
 * head of the cache. n > 1 is a batched prefill (or one chunk of a chunked
 * prefill); n == 1 is a decode step. cap may be NULL. */
hkm_status hkm_forward_cpu(const hkm_model *m, hkm_kvcache *cache, const int32_t *ids, int n,
                           hkm_logits_mode mode, float *logits, const hkm_capture *cap,
                           hkm_err *err);

/* Greedy continuation of a prompt: up to max_new tokens, stopping at EOS.
 * out must hold max_new ids; *n_out receives the count. */
hkm_status hkm_generate_greedy(const hkm_model *m, const int32_t *prompt, int n_prompt,
                               int max_new, int32_t eos_id, int32_t *out, int *n_out,
                               hkm_err *err);

#ifdef __cplusplus
}
#endif
#endif /* HUBKV_MODEL_H */
