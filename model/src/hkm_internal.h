/* Internal helpers and structures of the model engine: error reporting,
 * checked allocation, crash-safe output files (shared with the tools), the
 * fp32 weight layout, and the file readers' APIs. */
#ifndef HKM_INTERNAL_H
#define HKM_INTERNAL_H

#include "hubkv_model.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* ---------------------------------------------------------------- errors */

/* Record a failure message in err (may be NULL) and return st. */
hkm_status hkm_fail(hkm_err *err, hkm_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Checked allocation: on failure, record file:line and return HKM_ERR_NOMEM
 * from the enclosing function. */
#define HKM_ALLOC(ptr, count, err)                                                     \
    do {                                                                               \
        size_t hkm_n_ = (size_t)(count);                                               \
        (ptr) = calloc(hkm_n_ ? hkm_n_ : 1, sizeof(*(ptr)));                           \
        if (!(ptr))                                                                    \
            return hkm_fail((err), HKM_ERR_NOMEM, "%s:%d: out of memory allocating %zu x %zu bytes", \
                            __FILE__, __LINE__, hkm_n_, sizeof(*(ptr)));               \
    } while (0)

/* Evaluate a call returning hkm_status once; propagate a failure. */
#define HKM_TRY(call)                                                                  \
    do {                                                                               \
        hkm_status hkm_st_ = (call);                                                   \
        if (hkm_st_ != HKM_OK) return hkm_st_;                                         \
    } while (0)

/* ---------------------------------------------------------------- files */
/* Crash-safe replacement of the tools' output files (file_commit.c). */

/* "<path>.tmp.<pid>" into buf (cap bytes): distinct per writing process. */
hkm_status hkm_tmp_name(const char *path, char *buf, size_t cap, hkm_err *err);
/* fsync tmp, rename it over dst (atomic on one file system), fsync dst's
 * directory: after a power loss dst is the old or the new file. */
hkm_status hkm_file_commit(const char *tmp, const char *dst, hkm_err *err);
/* stdio pair: opens path's temporary name (tmp, cap bytes) with mode; the
 * commit checks every write, closes, and commits it onto path (on failure
 * the temporary is removed and path left as it was). */
hkm_status hkm_tmp_open(const char *path, const char *mode, char *tmp, size_t cap, FILE **out, hkm_err *err);
hkm_status hkm_tmp_commit(FILE *f, const char *tmp, const char *path, hkm_err *err);

/* ---------------------------------------------------------------- RoPE */
/* inv (head_dim / 2): RoPE inverse frequencies as transformers computes them
 * in fp32 (1 / theta^(2j / hd), then llama3 smoothing), or divided by a GGUF's
 * per-pair factors as llama.cpp does (rope.c; the CPU and CUDA engines). */
void hkm_rope_inv_freq(const hkm_config *c, float *inv);

/* ---------------------------------------------------------------- weights */

/* One decoder layer in fp32, HF layout: a linear weight is (out, in). */
typedef struct {
    float *attn_norm; /* (d_model) */
    float *wq;        /* (n_heads*head_dim, d_model) */
    float *wk;        /* (n_kv_heads*head_dim, d_model) */
    float *wv;        /* (n_kv_heads*head_dim, d_model) */
    float *wo;        /* (d_model, n_heads*head_dim) */
    float *bq;        /* (n_heads*head_dim) or NULL (Qwen2 only) */
    float *bk;        /* (n_kv_heads*head_dim) or NULL */
    float *bv;        /* (n_kv_heads*head_dim) or NULL */
    float *q_norm;    /* (head_dim) or NULL (Qwen3 only) */
    float *k_norm;    /* (head_dim) or NULL */
    float *ffn_norm;  /* (d_model) */
    float *w_gate;    /* (d_ff, d_model) */
    float *w_up;      /* (d_ff, d_model) */
    float *w_down;    /* (d_model, d_ff) */
} hkm_layer;

struct hkm_model {
    hkm_config cfg;
    float *tok_emb;   /* (vocab, d_model) */
    float *out_norm;  /* (d_model) */
    float *lm_head;   /* (vocab, d_model); == tok_emb when tied */
    hkm_layer *layers;/* (n_layers) */
    float *arena;     /* one allocation holding every tensor above */
    size_t arena_floats;
};

/* ---------------------------------------------------------------- safetensors */

/* A set of safetensors files (one file or the shards named by an index),
 * mmap'ed read-only. Tensors are looked up by their HF name. */
typedef struct hkm_st hkm_st;

typedef struct {
    int ndim;
    int64_t dims[8];
    int dtype; /* HKM_DT_* */
} hkm_tensor_info;

enum { HKM_DT_F32 = 0, HKM_DT_F16, HKM_DT_BF16 };

/* dir: directory with model.safetensors or model.safetensors.index.json. */
hkm_status hkm_st_open(const char *dir, hkm_st **out, hkm_err *err);
void hkm_st_free(hkm_st *st);
/* HKM_ERR_MISSING (message names the tensor and file) if absent. */
hkm_status hkm_st_info(const hkm_st *st, const char *name, hkm_tensor_info *info, hkm_err *err);
/* Convert a tensor to fp32; n must equal its element count. */
hkm_status hkm_st_read_f32(const hkm_st *st, const char *name, float *dst, size_t n, hkm_err *err);
/* Path of the file holding a tensor (for messages), or NULL if absent. */
const char *hkm_st_file(const hkm_st *st, const char *name);

/* ---------------------------------------------------------------- GGUF */

typedef struct hkm_gguf hkm_gguf;

hkm_status hkm_gguf_open(const char *path, hkm_gguf **out, hkm_err *err);
void hkm_gguf_free(hkm_gguf *g);
const char *hkm_gguf_path(const hkm_gguf *g);

/* Typed metadata look-ups; HKM_ERR_MISSING if the key is absent, HKM_ERR_FORMAT
 * if it has another type. Integer getters accept any integer type that fits. */
hkm_status hkm_gguf_get_i64(const hkm_gguf *g, const char *key, int64_t *v, hkm_err *err);
hkm_status hkm_gguf_get_f32(const hkm_gguf *g, const char *key, float *v, hkm_err *err);
hkm_status hkm_gguf_get_str(const hkm_gguf *g, const char *key, const char **v, size_t *len,
                            hkm_err *err);
/* Array of strings: views into the mapped file (not NUL-terminated). */
hkm_status hkm_gguf_get_str_array(const hkm_gguf *g, const char *key, size_t *count,
                                  const char ***strs, const size_t **lens, hkm_err *err);
/* Array of integers, converted to int32 (malloc'ed, caller frees). */
hkm_status hkm_gguf_get_i32_array(const hkm_gguf *g, const char *key, size_t *count,
                                  int32_t **vals, hkm_err *err);
int hkm_gguf_has_key(const hkm_gguf *g, const char *key);

/* Tensor look-up by GGUF name (e.g. "blk.0.attn_q.weight"). dims are given in
 * HF order (dims[0] = rows/out features), i.e. reversed from GGUF's ne[]. */
hkm_status hkm_gguf_info(const hkm_gguf *g, const char *name, hkm_tensor_info *info,
                         hkm_err *err);
/* Dequantise a tensor to fp32 exactly as gguf-py does (row-major, HF order);
 * n must equal its element count. */
hkm_status hkm_gguf_read_f32(const hkm_gguf *g, const char *name, float *dst, size_t n,
                             hkm_err *err);

/* Fill cfg from llama.* (or qwen2.*, qwen3.*) metadata. */
hkm_status hkm_gguf_config(const hkm_gguf *g, hkm_config *cfg, hkm_err *err);

/* ---------------------------------------------------------------- tokenizer spec */

/* Everything a byte-level BPE tokenizer needs, independent of the file it came
 * from (tokenizer.json or GGUF metadata). Strings are NUL-terminated copies. */
typedef enum {
    HKM_PRE_REGEX = 0,   /* split by a regex (PCRE2 syntax), keep matches and gaps */
    HKM_PRE_DIGITS,      /* split digits individually (HF Digits individual_digits) */
} hkm_pre_kind;

typedef struct {
    hkm_pre_kind kind;
    char *pattern;       /* HKM_PRE_REGEX */
} hkm_pre_step;

typedef struct {
    int vocab_size;
    char **tokens;       /* (vocab_size) byte-level token strings, by id */
    int n_merges;
    char **merges;       /* (n_merges) "left right", highest priority first */
    int n_pre;
    hkm_pre_step *pre;   /* pre-tokenizer steps, applied in order */
    int n_added;
    int32_t *added_ids;  /* (n_added) added tokens matched verbatim in text */
    int *added_special;  /* (n_added) 1 if special (skipped by decode skip_special) */
    int32_t bos_id, eos_id; /* -1 if none */
    int add_bos;         /* prepend BOS by default */
    int ignore_merges;   /* a pre-token that is itself in the vocab maps directly (Llama-3) */
} hkm_tok_spec;

void hkm_tok_spec_clear(hkm_tok_spec *s);
/* Build a tokenizer from a spec; takes ownership of the spec's contents. */
hkm_status hkm_tokenizer_from_spec(hkm_tok_spec *spec, hkm_tokenizer **out, hkm_err *err);
/* Fill a spec from GGUF metadata (tokenizer.ggml.*). */
hkm_status hkm_gguf_tok_spec(const hkm_gguf *g, hkm_tok_spec *spec, hkm_err *err);

#endif /* HKM_INTERNAL_H */
