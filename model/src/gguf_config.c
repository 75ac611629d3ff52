/* Model config from GGUF metadata: llama.cpp's <arch>.* keys for the llama,
 * qwen2 and qwen3 architectures, plus what the tensor list implies (tied
 * embeddings, q/k/v biases, q/k norms). */
#include "hkm_internal.h"

#include <limits.h>
#include <math.h>
#include <string.h>

typedef struct {
    const hkm_gguf *g;
    const char *arch; /* key prefix, e.g. "llama" */
    hkm_err *err;
} cfgctx;

/* <arch>.<name> as a positive int; def < 0 means required. */
static hkm_status arch_int(const cfgctx *c, const char *name, int64_t def, int *out) {
    char key[160];
    snprintf(key, sizeof key, "%s.%s", c->arch, name);
    int64_t v = def;
    if (hkm_gguf_has_key(c->g, key) || def < 0) HKM_TRY(hkm_gguf_get_i64(c->g, key, &v, c->err));
    if (v <= 0 || v > INT_MAX)
        return hkm_fail(c->err, HKM_ERR_FORMAT, "%s: key '%s' = %lld (expected a positive int)",
                        hkm_gguf_path(c->g), key, (long long)v);
    *out = (int)v;
    return HKM_OK;
}

static hkm_status arch_float(const cfgctx *c, const char *name, float def, int required, float *out) {
    char key[160];
    snprintf(key, sizeof key, "%s.%s", c->arch, name);
    *out = def;
    if (hkm_gguf_has_key(c->g, key) || required) HKM_TRY(hkm_gguf_get_f32(c->g, key, out, c->err));
    if (!(*out > 0.0f) || isinf(*out))
        return hkm_fail(c->err, HKM_ERR_FORMAT, "%s: key '%s' = %g (expected a positive finite number)",
                        hkm_gguf_path(c->g), key, (double)*out);
    return HKM_OK;
}

static hkm_status arch_of(const hkm_gguf *g, hkm_arch *arch, const char **name, hkm_err *err) {
    size_t len;
    HKM_TRY(hkm_gguf_get_str(g, "general.architecture", name, &len, err));
    static const struct { const char *s; hkm_arch a; } ARCHS[] = {
        {"llama", HKM_ARCH_LLAMA}, {"mistral", HKM_ARCH_MISTRAL},
        {"qwen2", HKM_ARCH_QWEN2}, {"qwen3", HKM_ARCH_QWEN3}};
    for (size_t i = 0; i < sizeof ARCHS / sizeof ARCHS[0]; i++)
        if (!strcmp(*name, ARCHS[i].s)) {
            *arch = ARCHS[i].a;
            return HKM_OK;
        }
    return hkm_fail(err, HKM_ERR_UNSUPPORTED,
                    "%s: key 'general.architecture' = '%.100s' is not supported (expected llama, mistral, qwen2 or qwen3)",
                    hkm_gguf_path(g), *name);
}

static int has_tensor(const hkm_gguf *g, const char *name) {
    hkm_tensor_info info;
    return hkm_gguf_info(g, name, &info, NULL) == HKM_OK;
}

/* vocab: <arch>.vocab_size, else the token list's length, else token_embd's rows. */
static hkm_status vocab_size(const cfgctx *c, int *out) {
    char key[160];
    snprintf(key, sizeof key, "%s.vocab_size", c->arch);
    if (hkm_gguf_has_key(c->g, key)) return arch_int(c, "vocab_size", -1, out);
    size_t n;
    const char **s;
    const size_t *l;
    int64_t rows = 0;
    hkm_tensor_info info;
    if (hkm_gguf_has_key(c->g, "tokenizer.ggml.tokens")) {
        HKM_TRY(hkm_gguf_get_str_array(c->g, "tokenizer.ggml.tokens", &n, &s, &l, c->err));
        rows = (int64_t)n;
    } else if (hkm_gguf_info(c->g, "token_embd.weight", &info, NULL) == HKM_OK) {
        rows = info.dims[0];
    }
    if (rows <= 0 || rows > INT_MAX)
        return hkm_fail(c->err, HKM_ERR_MISSING,
                        "%s: vocabulary size unknown (expected key '%s', 'tokenizer.ggml.tokens' or tensor 'token_embd.weight')",
                        hkm_gguf_path(c->g), key);
    *out = (int)rows;
    return HKM_OK;
}

/* rope_freqs.weight: head_dim / 2 finite divisors > 0 of the inverse
 * frequencies. */
static hkm_status rope_factors(const cfgctx *c, hkm_config *cfg) {
    const char *path = hkm_gguf_path(c->g);
    hkm_tensor_info info;
    HKM_TRY(hkm_gguf_info(c->g, "rope_freqs.weight", &info, c->err));
    int64_t half = cfg->head_dim / 2, n = 1;
    for (int d = 0; d < info.ndim; d++) n *= info.dims[d];
    if (info.ndim != 1 || n != half || half > HKM_MAX_ROPE_PAIRS)
        return hkm_fail(c->err, HKM_ERR_SHAPE,
                        "%s: tensor 'rope_freqs.weight' has %lld values in %d dims; expected one dim of head_dim / 2 = "
                        "%lld (at most %d)", path, (long long)n, info.ndim, (long long)half, HKM_MAX_ROPE_PAIRS);
    HKM_TRY(hkm_gguf_read_f32(c->g, "rope_freqs.weight", cfg->rope_freq_div, (size_t)half, c->err));
    for (int64_t j = 0; j < half; j++)
        if (!(cfg->rope_freq_div[j] > 0 && isfinite(cfg->rope_freq_div[j])))
            return hkm_fail(c->err, HKM_ERR_FORMAT, "%s: tensor 'rope_freqs.weight'[%lld] = %g; expected a finite value > 0",
                            path, (long long)j, cfg->rope_freq_div[j]);
    cfg->rope_type = HKM_ROPE_FREQ_FACTORS;
    return HKM_OK;
}

/* RoPE over the whole head, unscaled or with llama.cpp's per-pair frequency
 * factors (rope_freqs.weight: Llama 3.1/3.2 store their llama3 scaling so). */
static hkm_status check_rope(const cfgctx *c, hkm_config *cfg) {
    const char *path = hkm_gguf_path(c->g);
    char key[160];
    snprintf(key, sizeof key, "%s.rope.scaling.type", c->arch);
    if (hkm_gguf_has_key(c->g, key)) {
        const char *t;
        HKM_TRY(hkm_gguf_get_str(c->g, key, &t, NULL, c->err));
        if (strcmp(t, "none"))
            return hkm_fail(c->err, HKM_ERR_UNSUPPORTED, "%s: key '%s' = '%.40s' is not supported (expected 'none')",
                            path, key, t);
    }
    if (has_tensor(c->g, "rope_freqs.weight")) HKM_TRY(rope_factors(c, cfg));
    int rot;
    HKM_TRY(arch_int(c, "rope.dimension_count", cfg->head_dim, &rot));
    if (rot != cfg->head_dim)
        return hkm_fail(c->err, HKM_ERR_UNSUPPORTED,
                        "%s: key '%s.rope.dimension_count' = %d: partial RoPE is not supported (expected head_dim %d)",
                        path, c->arch, rot, cfg->head_dim);
    return HKM_OK;
}

static hkm_status check_dims(const cfgctx *c, const hkm_config *cfg) {
    const char *path = hkm_gguf_path(c->g);
    if (cfg->n_heads % cfg->n_kv_heads)
        return hkm_fail(c->err, HKM_ERR_FORMAT,
                        "%s: key '%s.attention.head_count_kv' = %d does not divide head_count %d", path, c->arch,
                        cfg->n_kv_heads, cfg->n_heads);
    int vdim;
    HKM_TRY(arch_int(c, "attention.value_length", cfg->head_dim, &vdim));
    if (vdim != cfg->head_dim)
        return hkm_fail(c->err, HKM_ERR_UNSUPPORTED,
                        "%s: key '%s.attention.value_length' = %d differs from key_length %d (not supported)", path,
                        c->arch, vdim, cfg->head_dim);
    return HKM_OK;
}

/* A special token id, -1 when absent. */
static hkm_status token_id(const hkm_gguf *g, const char *key, int *id, hkm_err *err) {
    *id = -1;
    if (!hkm_gguf_has_key(g, key)) return HKM_OK;
    int64_t v;
    HKM_TRY(hkm_gguf_get_i64(g, key, &v, err));
    if (v < 0 || v > INT_MAX)
        return hkm_fail(err, HKM_ERR_FORMAT, "%s: key '%s' = %lld (expected a token id)", hkm_gguf_path(g), key,
                        (long long)v);
    *id = (int)v;
    return HKM_OK;
}

hkm_status hkm_gguf_config(const hkm_gguf *g, hkm_config *cfg, hkm_err *err) {
    if (!g || !cfg) return hkm_fail(err, HKM_ERR_ARG, "hkm_gguf_config: NULL argument");
    memset(cfg, 0, sizeof *cfg);
    cfgctx c = {.g = g, .err = err};
    HKM_TRY(arch_of(g, &cfg->arch, &c.arch, err));
    HKM_TRY(arch_int(&c, "block_count", -1, &cfg->n_layers));
    HKM_TRY(arch_int(&c, "embedding_length", -1, &cfg->d_model));
    HKM_TRY(arch_int(&c, "feed_forward_length", -1, &cfg->d_ff));
    HKM_TRY(arch_int(&c, "attention.head_count", -1, &cfg->n_heads));
    HKM_TRY(arch_int(&c, "attention.head_count_kv", cfg->n_heads, &cfg->n_kv_heads));
    HKM_TRY(arch_int(&c, "attention.key_length", cfg->d_model / cfg->n_heads, &cfg->head_dim));
    HKM_TRY(arch_int(&c, "context_length", -1, &cfg->max_pos));
    HKM_TRY(arch_float(&c, "attention.layer_norm_rms_epsilon", 0.0f, 1, &cfg->rms_eps));
    HKM_TRY(arch_float(&c, "rope.freq_base", 10000.0f, 0, &cfg->rope_theta));
    HKM_TRY(vocab_size(&c, &cfg->vocab_size));
    HKM_TRY(check_dims(&c, cfg));
    cfg->rope_type = HKM_ROPE_DEFAULT;
    cfg->rope_factor = 1.0f;
    HKM_TRY(check_rope(&c, cfg)); /* may set HKM_ROPE_FREQ_FACTORS */
    /* llama.cpp writes output.weight only when the head is not the embedding. */
    cfg->tie_embeddings = !has_tensor(g, "output.weight");
    cfg->qkv_bias = has_tensor(g, "blk.0.attn_q.bias");
    cfg->qk_norm = has_tensor(g, "blk.0.attn_q_norm.weight");
    HKM_TRY(token_id(g, "tokenizer.ggml.bos_token_id", &cfg->bos_id, err));
    HKM_TRY(token_id(g, "tokenizer.ggml.eos_token_id", &cfg->eos_id, err));
    return HKM_OK;
}
