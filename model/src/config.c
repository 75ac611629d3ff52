/* Hugging Face config.json -> hkm_config, with transformers' defaults per
 * architecture and a message naming the file and field for every bad value. */
#include "hkm_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <string.h>

/* ---------------------------------------------------------------- architectures */

static const struct {
    const char *hf_name;
    hkm_arch arch;
} ARCHS[] = {
    {"LlamaForCausalLM", HKM_ARCH_LLAMA},
    {"MistralForCausalLM", HKM_ARCH_MISTRAL},
    {"Qwen2ForCausalLM", HKM_ARCH_QWEN2},
    {"Qwen3ForCausalLM", HKM_ARCH_QWEN3},
};
#define N_ARCHS (sizeof ARCHS / sizeof ARCHS[0])
#define SUPPORTED_ARCHS "LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM"

const char *hkm_arch_name(hkm_arch a) {
    switch (a) {
    case HKM_ARCH_LLAMA: return "llama";
    case HKM_ARCH_MISTRAL: return "mistral";
    case HKM_ARCH_QWEN2: return "qwen2";
    case HKM_ARCH_QWEN3: return "qwen3";
    }
    return "unknown";
}

/* ---------------------------------------------------------------- typed fields */

typedef struct {
    const char *path;
    hkm_err *err;
} cctx;

static const char *json_type(const cJSON *v) {
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsObject(v)) return "an object";
    return "an invalid value";
}

/* Absent or null: the field takes its default. */
static int absent(const cJSON *v) { return v == NULL || cJSON_IsNull(v); }

static int is_int(const cJSON *v) {
    return cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble) &&
           fabs(v->valuedouble) <= 2147483647.0;
}

/* Integer field; required fields fail when absent, others take def. */
static hkm_status get_int(const cctx *c, const cJSON *obj, const char *where, const char *key,
                          int required, int def, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (absent(v)) {
        if (required)
            return hkm_fail(c->err, HKM_ERR_MISSING, "%s: field '%s%s' is missing (expected an integer)",
                            c->path, where, key);
        *out = def;
        return HKM_OK;
    }
    if (!is_int(v))
        return hkm_fail(c->err, HKM_ERR_FORMAT, "%s: field '%s%s': expected an integer, got %s",
                        c->path, where, key, json_type(v));
    *out = (int)v->valuedouble;
    return HKM_OK;
}

static hkm_status get_float(const cctx *c, const cJSON *obj, const char *where, const char *key,
                            int required, float def, float *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (absent(v)) {
        if (required)
            return hkm_fail(c->err, HKM_ERR_MISSING, "%s: field '%s%s' is missing (expected a number)",
                            c->path, where, key);
        *out = def;
        return HKM_OK;
    }
    if (!cJSON_IsNumber(v))
        return hkm_fail(c->err, HKM_ERR_FORMAT, "%s: field '%s%s': expected a number, got %s",
                        c->path, where, key, json_type(v));
    *out = (float)v->valuedouble;
    return HKM_OK;
}

static hkm_status get_bool(const cctx *c, const cJSON *obj, const char *key, int def, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (absent(v)) {
        *out = def;
        return HKM_OK;
    }
    if (!cJSON_IsBool(v))
        return hkm_fail(c->err, HKM_ERR_FORMAT, "%s: field '%s': expected a boolean, got %s", c->path,
                        key, json_type(v));
    *out = cJSON_IsTrue(v);
    return HKM_OK;
}

/* bos/eos: an integer, a list of integers (the first counts) or null (-1). */
static hkm_status get_token_id(const cctx *c, const cJSON *root, const char *key, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    *out = -1;
    if (cJSON_IsArray(v)) v = cJSON_GetArrayItem(v, 0);
    if (absent(v)) return HKM_OK;
    if (!is_int(v) || v->valuedouble < 0)
        return hkm_fail(c->err, HKM_ERR_FORMAT,
                        "%s: field '%s': expected a non-negative integer or a list of them, got %s",
                        c->path, key, json_type(v));
    *out = (int)v->valuedouble;
    return HKM_OK;
}

/* ---------------------------------------------------------------- sections */

static hkm_status parse_arch(const cctx *c, const cJSON *root, hkm_config *cfg) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, "architectures");
    if (absent(a))
        return hkm_fail(c->err, HKM_ERR_MISSING,
                        "%s: field 'architectures' is missing (expected a list holding one of: %s)",
                        c->path, SUPPORTED_ARCHS);
    const cJSON *name = cJSON_IsArray(a) ? cJSON_GetArrayItem(a, 0) : NULL;
    if (!cJSON_IsString(name))
        return hkm_fail(c->err, HKM_ERR_FORMAT,
                        "%s: field 'architectures': expected a list whose first entry is a string, got %s",
                        c->path, json_type(name ? name : a));
    for (size_t i = 0; i < N_ARCHS; i++) {
        if (strcmp(name->valuestring, ARCHS[i].hf_name) == 0) {
            cfg->arch = ARCHS[i].arch;
            return HKM_OK;
        }
    }
    return hkm_fail(c->err, HKM_ERR_UNSUPPORTED,
                    "%s: field 'architectures': unsupported architecture '%s' (supported: %s)", c->path,
                    name->valuestring, SUPPORTED_ARCHS);
}

static hkm_status parse_sizes(const cctx *c, const cJSON *root, hkm_config *cfg) {
    HKM_TRY(get_int(c, root, "", "hidden_size", 1, 0, &cfg->d_model));
    HKM_TRY(get_int(c, root, "", "num_hidden_layers", 1, 0, &cfg->n_layers));
    HKM_TRY(get_int(c, root, "", "num_attention_heads", 1, 0, &cfg->n_heads));
    HKM_TRY(get_int(c, root, "", "num_key_value_heads", 0, cfg->n_heads, &cfg->n_kv_heads));
    HKM_TRY(get_int(c, root, "", "intermediate_size", 1, 0, &cfg->d_ff));
    HKM_TRY(get_int(c, root, "", "vocab_size", 1, 0, &cfg->vocab_size));
    HKM_TRY(get_int(c, root, "", "max_position_embeddings", 1, 0, &cfg->max_pos));
    if (cfg->n_heads <= 0)
        return hkm_fail(c->err, HKM_ERR_FORMAT, "%s: field 'num_attention_heads': expected > 0, got %d",
                        c->path, cfg->n_heads);
    /* transformers: Qwen3 defaults head_dim to 128, the others to hidden/heads. */
    int def_hd = cfg->arch == HKM_ARCH_QWEN3 ? 128 : cfg->d_model / cfg->n_heads;
    HKM_TRY(get_int(c, root, "", "head_dim", 0, def_hd, &cfg->head_dim));
    HKM_TRY(get_float(c, root, "", "rms_norm_eps", 1, 0.f, &cfg->rms_eps));
    return HKM_OK;
}

static hkm_status check_positive(const cctx *c, const char *key, double v) {
    if (v > 0) return HKM_OK;
    return hkm_fail(c->err, HKM_ERR_FORMAT, "%s: field '%s': expected a positive value, got %g",
                    c->path, key, v);
}

static hkm_status check_sizes(const cctx *c, const hkm_config *cfg) {
    HKM_TRY(check_positive(c, "hidden_size", cfg->d_model));
    HKM_TRY(check_positive(c, "num_hidden_layers", cfg->n_layers));
    HKM_TRY(check_positive(c, "num_key_value_heads", cfg->n_kv_heads));
    HKM_TRY(check_positive(c, "head_dim", cfg->head_dim));
    HKM_TRY(check_positive(c, "intermediate_size", cfg->d_ff));
    HKM_TRY(check_positive(c, "vocab_size", cfg->vocab_size));
    HKM_TRY(check_positive(c, "max_position_embeddings", cfg->max_pos));
    HKM_TRY(check_positive(c, "rms_norm_eps", cfg->rms_eps));
    if (cfg->n_heads % cfg->n_kv_heads != 0)
        return hkm_fail(c->err, HKM_ERR_FORMAT,
                        "%s: field 'num_key_value_heads': expected a divisor of num_attention_heads "
                        "(%d), got %d", c->path, cfg->n_heads, cfg->n_kv_heads);
    if (cfg->head_dim % 2 != 0)
        return hkm_fail(c->err, HKM_ERR_UNSUPPORTED, "%s: field 'head_dim': expected an even value "
                        "(RoPE rotates pairs), got %d", c->path, cfg->head_dim);
    return HKM_OK;
}

/* The rope dict: rope_scaling wins over rope_parameters, as in transformers 5. */
static hkm_status rope_dict(const cctx *c, const cJSON *root, const cJSON **dict,
                            const char **where) {
    static const char *keys[] = {"rope_scaling", "rope_parameters"};
    *dict = NULL;
    for (int i = 0; i < 2; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, keys[i]);
        if (absent(v)) continue;
        if (!cJSON_IsObject(v))
            return hkm_fail(c->err, HKM_ERR_FORMAT, "%s: field '%s': expected an object, got %s",
                            c->path, keys[i], json_type(v));
        *dict = v;
        *where = i == 0 ? "rope_scaling." : "rope_parameters.";
        return HKM_OK;
    }
    return HKM_OK;
}

static hkm_status rope_type_of(const cctx *c, const cJSON *d, const char *where, const char **t) {
    *t = "default";
    if (!d) return HKM_OK;
    const char *key = "rope_type";
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(d, key);
    if (absent(v)) v = cJSON_GetObjectItemCaseSensitive(d, key = "type");
    if (absent(v)) return HKM_OK;
    if (!cJSON_IsString(v))
        return hkm_fail(c->err, HKM_ERR_FORMAT, "%s: field '%s%s': expected a string, got %s",
                        c->path, where, key, json_type(v));
    *t = v->valuestring;
    return HKM_OK;
}

static hkm_status parse_llama3_rope(const cctx *c, const cJSON *d, const char *where,
                                    hkm_config *cfg) {
    cfg->rope_type = HKM_ROPE_LLAMA3;
    HKM_TRY(get_float(c, d, where, "factor", 1, 0.f, &cfg->rope_factor));
    HKM_TRY(get_float(c, d, where, "low_freq_factor", 1, 0.f, &cfg->rope_low_freq_factor));
    HKM_TRY(get_float(c, d, where, "high_freq_factor", 1, 0.f, &cfg->rope_high_freq_factor));
    HKM_TRY(get_int(c, d, where, "original_max_position_embeddings", 0, cfg->max_pos,
                    &cfg->rope_orig_max_pos));
    HKM_TRY(check_positive(c, "factor", cfg->rope_factor));
    HKM_TRY(check_positive(c, "low_freq_factor", cfg->rope_low_freq_factor));
    HKM_TRY(check_positive(c, "original_max_position_embeddings", cfg->rope_orig_max_pos));
    if (!(cfg->rope_high_freq_factor > cfg->rope_low_freq_factor))
        return hkm_fail(c->err, HKM_ERR_FORMAT,
                        "%s: field '%shigh_freq_factor': expected > low_freq_factor (%g), got %g",
                        c->path, where, cfg->rope_low_freq_factor, cfg->rope_high_freq_factor);
    return HKM_OK;
}

static hkm_status parse_rope(const cctx *c, const cJSON *root, hkm_config *cfg) {
    const cJSON *d;
    const char *where = "", *type;
    HKM_TRY(rope_dict(c, root, &d, &where));
    /* rope_theta: inside the dict (transformers 5), else top level, else 10000. */
    float top = 10000.f;
    HKM_TRY(get_float(c, root, "", "rope_theta", 0, 10000.f, &top));
    cfg->rope_theta = top;
    if (d) HKM_TRY(get_float(c, d, where, "rope_theta", 0, top, &cfg->rope_theta));
    HKM_TRY(check_positive(c, "rope_theta", cfg->rope_theta));
    float prf = 1.f;
    if (d) HKM_TRY(get_float(c, d, where, "partial_rotary_factor", 0, 1.f, &prf));
    if (prf != 1.f)
        return hkm_fail(c->err, HKM_ERR_UNSUPPORTED, "%s: field '%spartial_rotary_factor': only 1.0 "
                        "is supported, got %g", c->path, where, prf);
    cfg->rope_type = HKM_ROPE_DEFAULT;
    cfg->rope_factor = cfg->rope_low_freq_factor = cfg->rope_high_freq_factor = 1.f;
    cfg->rope_orig_max_pos = cfg->max_pos;
    HKM_TRY(rope_type_of(c, d, where, &type));
    if (strcmp(type, "default") == 0) return HKM_OK;
    if (strcmp(type, "llama3") == 0) return parse_llama3_rope(c, d, where, cfg);
    return hkm_fail(c->err, HKM_ERR_UNSUPPORTED,
                    "%s: field '%srope_type': unsupported RoPE type '%s' (supported: default, llama3)",
                    c->path, where, type);
}

/* Features the fp32 engine does not implement are refused, not ignored. */
static hkm_status refuse_flag(const cctx *c, const cJSON *root, const char *key, const char *why) {
    int on = 0;
    HKM_TRY(get_bool(c, root, key, 0, &on));
    if (on)
        return hkm_fail(c->err, HKM_ERR_UNSUPPORTED, "%s: field '%s': true is not supported (%s)",
                        c->path, key, why);
    return HKM_OK;
}

static hkm_status parse_features(const cctx *c, const cJSON *root, hkm_config *cfg) {
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "hidden_act");
    if (!absent(act) && !(cJSON_IsString(act) && strcmp(act->valuestring, "silu") == 0))
        return hkm_fail(c->err, HKM_ERR_UNSUPPORTED, "%s: field 'hidden_act': expected \"silu\", got %s",
                        c->path, cJSON_IsString(act) ? act->valuestring : json_type(act));
    HKM_TRY(get_bool(c, root, "tie_word_embeddings", 0, &cfg->tie_embeddings));
    HKM_TRY(refuse_flag(c, root, "mlp_bias", "the MLP has no biases here"));
    /* Qwen2 always has q/k/v biases and no attention_bias field; elsewhere
     * attention_bias would also add an o_proj bias, which the engine lacks. */
    cfg->qkv_bias = cfg->arch == HKM_ARCH_QWEN2;
    cfg->qk_norm = cfg->arch == HKM_ARCH_QWEN3;
    if (cfg->arch != HKM_ARCH_QWEN2)
        HKM_TRY(refuse_flag(c, root, "attention_bias", "o_proj bias is not implemented"));
    if (cfg->arch == HKM_ARCH_QWEN2 || cfg->arch == HKM_ARCH_QWEN3)
        HKM_TRY(refuse_flag(c, root, "use_sliding_window", "sliding-window attention is not implemented"));
    /* Mistral's sliding window only matters past it: cap the usable context. */
    int sw = 0;
    if (cfg->arch == HKM_ARCH_MISTRAL) HKM_TRY(get_int(c, root, "", "sliding_window", 0, 0, &sw));
    if (sw > 0 && sw < cfg->max_pos) cfg->max_pos = sw;
    HKM_TRY(get_token_id(c, root, "bos_token_id", &cfg->bos_id));
    HKM_TRY(get_token_id(c, root, "eos_token_id", &cfg->eos_id));
    return HKM_OK;
}

/* ---------------------------------------------------------------- entry point */

static char *slurp(const char *path, size_t *len, hkm_err *err, hkm_status *st) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        *st = hkm_fail(err, HKM_ERR_IO, "%s: cannot open config: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0) n = ftell(f);
    if (n >= 0 && fseek(f, 0, SEEK_SET) == 0) buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (!buf) {
        *st = hkm_fail(err, HKM_ERR_IO, "%s: cannot read config", path);
        return NULL;
    }
    buf[n] = 0;
    *len = (size_t)n;
    return buf;
}

static hkm_status parse_root(const cctx *c, const cJSON *root, hkm_config *cfg) {
    if (!cJSON_IsObject(root))
        return hkm_fail(c->err, HKM_ERR_FORMAT, "%s: expected a JSON object at top level, got %s",
                        c->path, json_type(root));
    HKM_TRY(parse_arch(c, root, cfg));
    HKM_TRY(parse_sizes(c, root, cfg));
    HKM_TRY(check_sizes(c, cfg));
    HKM_TRY(parse_rope(c, root, cfg));
    HKM_TRY(parse_features(c, root, cfg));
    return HKM_OK;
}

hkm_status hkm_config_load_json(const char *path, hkm_config *cfg, hkm_err *err) {
    if (!path || !cfg) return hkm_fail(err, HKM_ERR_ARG, "hkm_config_load_json: NULL argument");
    hkm_status st = HKM_OK;
    size_t len = 0;
    char *text = slurp(path, &len, err, &st);
    if (!text) return st;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root) {
        st = hkm_fail(err, HKM_ERR_FORMAT, "%s: malformed JSON near byte %td (expected a JSON object)",
                      path, end ? end - text : (ptrdiff_t)0);
        free(text);
        return st;
    }
    cctx c = {path, err};
    hkm_config tmp;
    memset(&tmp, 0, sizeof tmp);
    st = parse_root(&c, root, &tmp);
    cJSON_Delete(root);
    free(text);
    if (st == HKM_OK) *cfg = tmp;
    return st;
}
