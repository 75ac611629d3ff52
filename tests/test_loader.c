/* Loader tests: config.json parsing and weights of the tiny checkpoints
 * against what transformers resolved/loaded (tests/data/tiny/<name>/
 * reference.json), the default GGUF's un-permuted Q/K rows against
 * transformers' dequantisation, exact f16/bf16 conversion, and clear
 * errors (status + file + tensor/field in the message) on broken files. */
#define _XOPEN_SOURCE 700 /* nftw */
#include "hkm_internal.h"
#include "test_util.h"

#include <cjson/cJSON.h>
#include <ftw.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *TINY[] = {"llama3", "mistral", "qwen2", "qwen3", "llama-sharded"};
#define N_TINY (sizeof TINY / sizeof TINY[0])

static char tmpdir[256];

/* ---------------------------------------------------------------- file helpers */

static int spit(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(data, 1, len, f);
    return fclose(f) == 0 && w == len ? 0 : -1;
}

static cJSON *load_json(const char *path) {
    char *t = test_slurp(path, NULL);
    cJSON *j = t ? cJSON_Parse(t) : NULL;
    free(t);
    return j;
}

static const char *tiny_path(const char *name, const char *file, char *buf, size_t cap) {
    char rel[256];
    snprintf(rel, sizeof rel, "tiny/%s%s%s", name, file ? "/" : "", file ? file : "");
    return test_data(rel, buf, cap);
}

static const char *tmp_path(const char *rel, char *buf, size_t cap) {
    snprintf(buf, cap, "%s/%s", tmpdir, rel);
    return buf;
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

/* A fresh case directory under tmpdir. */
static const char *case_dir(const char *name, char *buf, size_t cap) {
    tmp_path(name, buf, cap);
    nftw(buf, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    mkdir(buf, 0700);
    return buf;
}

static void copy_file(const char *src, const char *dst) {
    size_t n;
    char *d = test_slurp(src, &n);
    CHECK(d && spit(dst, d, n) == 0, "copy %s -> %s", src, dst);
    free(d);
}

/* ---------------------------------------------------------------- safetensors editing */

typedef void (*header_edit)(cJSON *hdr, size_t data_len);

/* Copy a safetensors file, passing its header through edit. */
static void rewrite_st(const char *src, const char *dst, header_edit edit) {
    size_t n;
    unsigned char *d = (unsigned char *)test_slurp(src, &n);
    CHECK(d != NULL && n >= 8, "read %s", src);
    if (!d) return;
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = (hl << 8) | d[i];
    cJSON *h = cJSON_ParseWithLength((char *)d + 8, hl);
    edit(h, n - 8 - hl);
    char *hs = cJSON_PrintUnformatted(h);
    size_t nl = strlen(hs);
    FILE *f = fopen(dst, "wb");
    for (int i = 0; i < 8; i++) fputc((int)((nl >> (8 * i)) & 0xff), f);
    fwrite(hs, 1, nl, f);
    fwrite(d + 8 + hl, 1, n - 8 - hl, f);
    fclose(f);
    free(hs);
    cJSON_Delete(h);
    free(d);
}

/* A tiny model dir whose safetensors header went through edit. */
static const char *edited_model(const char *case_name, header_edit edit, char *buf, size_t cap) {
    char src[1024], dst[1024];
    case_dir(case_name, buf, cap);
    copy_file(tiny_path("llama3", "config.json", src, sizeof src),
              (snprintf(dst, sizeof dst, "%s/config.json", buf), dst));
    snprintf(dst, sizeof dst, "%s/model.safetensors", buf);
    rewrite_st(tiny_path("llama3", "model.safetensors", src, sizeof src), dst, edit);
    return buf;
}

/* Write a safetensors file from a header string and raw data. */
static void write_st(const char *path, const char *header, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    size_t hl = strlen(header);
    for (int i = 0; i < 8; i++) fputc((int)((hl >> (8 * i)) & 0xff), f);
    fwrite(header, 1, hl, f);
    if (len) fwrite(data, 1, len, f);
    fclose(f);
}

/* ---------------------------------------------------------------- expectations */

/* Status and every needle present in the message. */
static void expect_fail(const char *what, hkm_status got, hkm_status want, const hkm_err *e,
                        const char *n1, const char *n2) {
    CHECK(got == want, "%s: status %s, expected %s (msg: %s)", what, hkm_status_str(got),
          hkm_status_str(want), e->msg);
    CHECK(!n1 || strstr(e->msg, n1), "%s: message lacks '%s': %s", what, n1, e->msg);
    CHECK(!n2 || strstr(e->msg, n2), "%s: message lacks '%s': %s", what, n2, e->msg);
}

static hkm_status try_load(const char *path, hkm_err *e) {
    hkm_model *m = NULL;
    e->msg[0] = 0;
    hkm_status st = hkm_model_load(path, &m, e);
    CHECK((st == HKM_OK) == (m != NULL), "model pointer set iff OK");
    hkm_model_free(m);
    return st;
}

/* ---------------------------------------------------------------- config */

static int jint(const cJSON *o, const char *k) {
    return (int)cJSON_GetObjectItemCaseSensitive(o, k)->valuedouble;
}
static double jnum(const cJSON *o, const char *k) {
    return cJSON_GetObjectItemCaseSensitive(o, k)->valuedouble;
}

static void check_config_vs(const char *name, const hkm_config *c, const cJSON *r) {
    const char *arch = cJSON_GetObjectItemCaseSensitive(r, "arch")->valuestring;
    CHECK(strcmp(hkm_arch_name(c->arch), arch) == 0, "%s: arch %s vs %s", name, hkm_arch_name(c->arch), arch);
#define EQ_INT(field, key) CHECK(c->field == jint(r, key), "%s: " key " %d vs %d", name, c->field, jint(r, key))
    EQ_INT(n_layers, "n_layers");
    EQ_INT(d_model, "d_model");
    EQ_INT(n_heads, "n_heads");
    EQ_INT(n_kv_heads, "n_kv_heads");
    EQ_INT(head_dim, "head_dim");
    EQ_INT(d_ff, "d_ff");
    EQ_INT(vocab_size, "vocab_size");
    EQ_INT(max_pos, "max_pos");
    EQ_INT(rope_orig_max_pos, "rope_orig_max_pos");
    EQ_INT(bos_id, "bos_id");
    EQ_INT(eos_id, "eos_id");
#undef EQ_INT
#define EQ_F(field, key) CHECK(c->field == (float)jnum(r, key), "%s: " key " %g vs %g", name, (double)c->field, jnum(r, key))
    EQ_F(rms_eps, "rms_eps");
    EQ_F(rope_theta, "rope_theta");
    EQ_F(rope_factor, "rope_factor");
    EQ_F(rope_low_freq_factor, "rope_low_freq_factor");
    EQ_F(rope_high_freq_factor, "rope_high_freq_factor");
#undef EQ_F
    const char *rt = cJSON_GetObjectItemCaseSensitive(r, "rope_type")->valuestring;
    CHECK((c->rope_type == HKM_ROPE_LLAMA3) == (strcmp(rt, "llama3") == 0), "%s: rope type %s", name, rt);
    CHECK(c->tie_embeddings == cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "tie_embeddings")),
          "%s: tie_embeddings", name);
    CHECK(c->qkv_bias == (c->arch == HKM_ARCH_QWEN2), "%s: qkv_bias only for qwen2", name);
    CHECK(c->qk_norm == (c->arch == HKM_ARCH_QWEN3), "%s: qk_norm only for qwen3", name);
}

static void test_tiny_configs(void) {
    char p[1024];
    for (size_t i = 0; i < N_TINY; i++) {
        hkm_config c;
        hkm_err e = {{0}};
        hkm_status st = hkm_config_load_json(tiny_path(TINY[i], "config.json", p, sizeof p), &c, &e);
        CHECK(st == HKM_OK, "%s: config: %s", TINY[i], e.msg);
        cJSON *ref = load_json(tiny_path(TINY[i], "reference.json", p, sizeof p));
        CHECK(ref != NULL, "%s: reference.json unreadable", TINY[i]);
        if (st == HKM_OK && ref)
            check_config_vs(TINY[i], &c, cJSON_GetObjectItemCaseSensitive(ref, "resolved"));
        cJSON_Delete(ref);
    }
    /* A few hard facts the generator set up on purpose. */
    hkm_config c;
    hkm_err e;
    if (hkm_config_load_json(tiny_path("llama3", "config.json", p, sizeof p), &c, &e) == HKM_OK)
        CHECK(c.rope_type == HKM_ROPE_LLAMA3 && c.rope_factor == 8.f && c.rope_orig_max_pos == 16 &&
              c.rope_theta == 50000.f && !c.tie_embeddings, "llama3 rope scaling facts");
    if (hkm_config_load_json(tiny_path("qwen3", "config.json", p, sizeof p), &c, &e) == HKM_OK)
        CHECK(c.arch == HKM_ARCH_QWEN3 && c.head_dim == 32 && c.d_model / c.n_heads == 16 && c.qk_norm,
              "qwen3 explicit head_dim");
    if (hkm_config_load_json(tiny_path("qwen2", "config.json", p, sizeof p), &c, &e) == HKM_OK)
        CHECK(c.arch == HKM_ARCH_QWEN2 && c.qkv_bias && c.tie_embeddings, "qwen2 biases, tied");
}

/* Write config text and parse it. */
static hkm_status parse_text(const char *text, hkm_config *c, hkm_err *e, char *path, size_t cap) {
    tmp_path("config_case.json", path, cap);
    spit(path, text, strlen(text));
    e->msg[0] = 0;
    return hkm_config_load_json(path, c, e);
}

#define BASE_CFG "\"hidden_size\":64,\"num_hidden_layers\":2,\"num_attention_heads\":4," \
                 "\"intermediate_size\":128,\"vocab_size\":256,\"max_position_embeddings\":128," \
                 "\"rms_norm_eps\":1e-5"

static void test_config_variants(void) {
    char p[1024];
    hkm_config c;
    hkm_err e;
    /* Pre-transformers-5 layout: top-level rope_theta + rope_scaling with "type". */
    hkm_status st = parse_text("{\"architectures\":[\"LlamaForCausalLM\"]," BASE_CFG ",\"rope_theta\":500000.0,"
                               "\"rope_scaling\":{\"type\":\"llama3\",\"factor\":32,\"low_freq_factor\":1,"
                               "\"high_freq_factor\":4,\"original_max_position_embeddings\":8192},"
                               "\"eos_token_id\":[7,9],\"bos_token_id\":null}", &c, &e, p, sizeof p);
    CHECK(st == HKM_OK, "old rope layout: %s", e.msg);
    if (st == HKM_OK)
        CHECK(c.rope_type == HKM_ROPE_LLAMA3 && c.rope_theta == 500000.f && c.rope_factor == 32.f &&
              c.rope_orig_max_pos == 8192 && c.eos_id == 7 && c.bos_id == -1 && c.n_kv_heads == 4 &&
              c.head_dim == 16 && !c.tie_embeddings, "old layout values");
    /* Defaults: theta 10000, Qwen3 head_dim 128, Mistral window caps the context. */
    st = parse_text("{\"architectures\":[\"Qwen3ForCausalLM\"]," BASE_CFG "}", &c, &e, p, sizeof p);
    CHECK(st == HKM_OK && c.rope_theta == 10000.f && c.head_dim == 128 && c.rope_type == HKM_ROPE_DEFAULT,
          "qwen3 defaults: %s", e.msg);
    st = parse_text("{\"architectures\":[\"MistralForCausalLM\"]," BASE_CFG ",\"sliding_window\":32}", &c, &e,
                    p, sizeof p);
    CHECK(st == HKM_OK && c.max_pos == 32, "mistral sliding window caps max_pos: %s", e.msg);

    st = parse_text("{\"architectures\":[\"GPT2LMHeadModel\"]," BASE_CFG "}", &c, &e, p, sizeof p);
    expect_fail("unknown arch", st, HKM_ERR_UNSUPPORTED, &e, "architectures", "LlamaForCausalLM");
    CHECK(strstr(e.msg, "GPT2LMHeadModel") && strstr(e.msg, p), "arch message names value and file: %s", e.msg);
    st = parse_text("{\"architectures\":[\"LlamaForCausalLM\"], \"hidden_size\": 64,", &c, &e, p, sizeof p);
    expect_fail("malformed config", st, HKM_ERR_FORMAT, &e, p, "JSON");
    st = parse_text("{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":\"64\",\"num_hidden_layers\":2}",
                    &c, &e, p, sizeof p);
    expect_fail("string hidden_size", st, HKM_ERR_FORMAT, &e, "hidden_size", "integer");
    CHECK(strstr(e.msg, p) != NULL, "names file: %s", e.msg);
    st = parse_text("{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":64,\"num_hidden_layers\":2,"
                    "\"num_attention_heads\":4,\"intermediate_size\":128,\"max_position_embeddings\":128,"
                    "\"rms_norm_eps\":1e-5}", &c, &e, p, sizeof p);
    expect_fail("missing vocab_size", st, HKM_ERR_MISSING, &e, "vocab_size", p);
    st = parse_text("{\"rms_norm_eps\":\"x\",\"architectures\":[\"LlamaForCausalLM\"]," BASE_CFG "}", &c, &e, p,
                    sizeof p);
    expect_fail("string rms_norm_eps", st, HKM_ERR_FORMAT, &e, "rms_norm_eps", "number");
    st = parse_text("{\"architectures\":\"LlamaForCausalLM\"," BASE_CFG "}", &c, &e, p, sizeof p);
    expect_fail("architectures not a list", st, HKM_ERR_FORMAT, &e, "architectures", "list");
    st = parse_text("{\"architectures\":[\"LlamaForCausalLM\"]," BASE_CFG ",\"attention_bias\":true}", &c, &e, p,
                    sizeof p);
    expect_fail("llama attention_bias", st, HKM_ERR_UNSUPPORTED, &e, "attention_bias", p);
    st = parse_text("{\"architectures\":[\"LlamaForCausalLM\"]," BASE_CFG ",\"rope_parameters\":{\"rope_type\":"
                    "\"yarn\",\"factor\":4}}", &c, &e, p, sizeof p);
    expect_fail("yarn rope", st, HKM_ERR_UNSUPPORTED, &e, "yarn", "llama3");
    st = parse_text("{\"architectures\":[\"LlamaForCausalLM\"]," BASE_CFG ",\"rope_scaling\":{\"rope_type\":"
                    "\"llama3\",\"factor\":8}}", &c, &e, p, sizeof p);
    expect_fail("llama3 without low_freq_factor", st, HKM_ERR_MISSING, &e, "rope_scaling.low_freq_factor", p);
    st = parse_text("{\"architectures\":[\"LlamaForCausalLM\"]," BASE_CFG ",\"num_key_value_heads\":3}", &c, &e,
                    p, sizeof p);
    expect_fail("kv heads not dividing", st, HKM_ERR_FORMAT, &e, "num_key_value_heads", p);
    st = parse_text("[1,2]", &c, &e, p, sizeof p);
    expect_fail("top-level array", st, HKM_ERR_FORMAT, &e, p, "object");
    e.msg[0] = 0;
    st = hkm_config_load_json(tmp_path("no_such_config.json", p, sizeof p), &c, &e);
    expect_fail("absent config", st, HKM_ERR_IO, &e, p, NULL);
}

/* ---------------------------------------------------------------- tiny weights */

/* The model tensor behind an HF name, or NULL. */
static const float *model_tensor(const hkm_model *m, const char *name) {
    int l;
    char rest[128];
    if (strcmp(name, "model.embed_tokens.weight") == 0) return m->tok_emb;
    if (strcmp(name, "model.norm.weight") == 0) return m->out_norm;
    if (strcmp(name, "lm_head.weight") == 0) return m->lm_head;
    if (sscanf(name, "model.layers.%d.%127s", &l, rest) != 2 || l < 0 || l >= m->cfg.n_layers) return NULL;
    const hkm_layer *L = &m->layers[l];
    static const struct { const char *n; size_t off; } F[] = {
        {"input_layernorm.weight", offsetof(hkm_layer, attn_norm)},
        {"self_attn.q_proj.weight", offsetof(hkm_layer, wq)},
        {"self_attn.k_proj.weight", offsetof(hkm_layer, wk)},
        {"self_attn.v_proj.weight", offsetof(hkm_layer, wv)},
        {"self_attn.o_proj.weight", offsetof(hkm_layer, wo)},
        {"self_attn.q_proj.bias", offsetof(hkm_layer, bq)},
        {"self_attn.k_proj.bias", offsetof(hkm_layer, bk)},
        {"self_attn.v_proj.bias", offsetof(hkm_layer, bv)},
        {"self_attn.q_norm.weight", offsetof(hkm_layer, q_norm)},
        {"self_attn.k_norm.weight", offsetof(hkm_layer, k_norm)},
        {"post_attention_layernorm.weight", offsetof(hkm_layer, ffn_norm)},
        {"mlp.gate_proj.weight", offsetof(hkm_layer, w_gate)},
        {"mlp.up_proj.weight", offsetof(hkm_layer, w_up)},
        {"mlp.down_proj.weight", offsetof(hkm_layer, w_down)},
    };
    for (size_t i = 0; i < sizeof F / sizeof F[0]; i++)
        if (strcmp(rest, F[i].n) == 0) return *(float *const *)((const char *)L + F[i].off);
    return NULL;
}

/* Sum, shape and entries of one tensor vs the generator's record. Entries are
 * exact (f16/bf16 -> f32 is exact); the sum differs only by summation order. */
static void check_tensor(const char *model, const hkm_model *m, const cJSON *chk) {
    const char *name = cJSON_GetObjectItemCaseSensitive(chk, "name")->valuestring;
    const float *t = model_tensor(m, name);
    CHECK(t != NULL, "%s: no tensor %s in the model", model, name);
    if (!t) return;
    size_t n = 1;
    const cJSON *d;
    cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(chk, "shape")) n *= (size_t)d->valuedouble;
    double sum = 0, asum = 0;
    for (size_t i = 0; i < n; i++) sum += t[i], asum += fabs(t[i]);
    double want = jnum(chk, "sum");
    CHECK(fabs(sum - want) <= 1e-6 * asum + 1e-6, "%s: %s sum %.9g vs %.9g", model, name, sum, want);
    const cJSON *idx = cJSON_GetObjectItemCaseSensitive(chk, "index");
    const cJSON *val = cJSON_GetObjectItemCaseSensitive(chk, "values");
    for (int i = 0; i < cJSON_GetArraySize(idx); i++) {
        size_t k = (size_t)cJSON_GetArrayItem(idx, i)->valuedouble;
        float v = (float)cJSON_GetArrayItem(val, i)->valuedouble;
        CHECK(k < n && t[k] == v, "%s: %s[%zu] = %.9g, expected %.9g", model, name, k, (double)t[k], (double)v);
    }
}

static void test_tiny_weights(void) {
    char p[1024];
    for (size_t i = 0; i < N_TINY; i++) {
        hkm_model *m = NULL;
        hkm_err e = {{0}};
        hkm_status st = hkm_model_load(tiny_path(TINY[i], NULL, p, sizeof p), &m, &e);
        CHECK(st == HKM_OK, "%s: load: %s", TINY[i], e.msg);
        cJSON *ref = load_json(tiny_path(TINY[i], "reference.json", p, sizeof p));
        if (m && ref) {
            const cJSON *chk;
            cJSON_ArrayForEach(chk, cJSON_GetObjectItemCaseSensitive(ref, "checks")) check_tensor(TINY[i], m, chk);
            const hkm_config *c = hkm_model_config(m);
            CHECK((m->lm_head == m->tok_emb) == (c->tie_embeddings != 0), "%s: lm_head tied iff config", TINY[i]);
            CHECK((m->layers[0].bq != NULL) == (c->qkv_bias != 0), "%s: biases iff qkv_bias", TINY[i]);
            CHECK((m->layers[1].k_norm != NULL) == (c->qk_norm != 0), "%s: qk norms iff qk_norm", TINY[i]);
            size_t want = (size_t)c->vocab_size * c->d_model * (c->tie_embeddings ? 1 : 2) + c->d_model;
            CHECK(m->arena_floats > want, "%s: arena holds embeddings and layers", TINY[i]);
        }
        cJSON_Delete(ref);
        hkm_model_free(m);
    }
    hkm_model_free(NULL);
    CHECK(hkm_model_config(NULL) == NULL, "config of NULL");
}

/* ---------------------------------------------------------------- conversions */

static void test_half_conversion(void) {
    /* f16 and bf16 patterns with their exact fp32 values. */
    static const uint16_t h[] = {0x0000, 0x8000, 0x3c00, 0xc000, 0x7bff, 0x0400, 0x0001, 0x03ff, 0x7c00, 0xfc00, 0x3555};
    static const float hv[] = {0.f, -0.f, 1.f, -2.f, 65504.f, 0x1p-14f, 0x1p-24f, 1023 * 0x1p-24f, INFINITY, -INFINITY,
                               0x1.554p-2f};
    static const uint16_t b[] = {0x3f80, 0xc040, 0x0001, 0x7f80, 0x4049};
    static const float bv[] = {1.f, -3.f, 0x1p-133f, INFINITY, 3.140625f};
    enum { NH = sizeof h / 2, NB = sizeof b / 2 };
    unsigned char data[2 * (NH + NB) + 1];
    memcpy(data, h, sizeof h);
    memcpy(data + sizeof h, b, sizeof b);
    data[sizeof data - 1] = 0x7e; /* trailing byte: unaligned end, no tensor */
    char header[512], p[1024];
    snprintf(header, sizeof header,
             "{\"__metadata__\":{\"format\":\"pt\"},\"h\":{\"dtype\":\"F16\",\"shape\":[%d],\"data_offsets\":[0,%d]},"
             "\"b\":{\"dtype\":\"BF16\",\"shape\":[%d],\"data_offsets\":[%d,%d]}}",
             NH, 2 * NH, NB, 2 * NH, 2 * (NH + NB));
    tmp_path("half.safetensors", p, sizeof p);
    write_st(p, header, data, sizeof data);
    hkm_st *st = NULL;
    hkm_err e = {{0}};
    CHECK(hkm_st_open(p, &st, &e) == HKM_OK, "open half.safetensors: %s", e.msg);
    if (!st) return;
    float out[NH];
    hkm_tensor_info ti;
    CHECK(hkm_st_info(st, "h", &ti, &e) == HKM_OK && ti.dtype == HKM_DT_F16 && ti.ndim == 1 && ti.dims[0] == NH,
          "info of h");
    CHECK(hkm_st_read_f32(st, "h", out, NH, &e) == HKM_OK, "read h: %s", e.msg);
    for (int i = 0; i < NH; i++)
        CHECK(memcmp(&out[i], &hv[i], 4) == 0, "f16 0x%04x -> %a, expected %a", h[i], (double)out[i], (double)hv[i]);
    CHECK(hkm_st_read_f32(st, "b", out, NB, &e) == HKM_OK, "read b: %s", e.msg);
    for (int i = 0; i < NB; i++)
        CHECK(memcmp(&out[i], &bv[i], 4) == 0, "bf16 0x%04x -> %a, expected %a", b[i], (double)out[i], (double)bv[i]);
    CHECK(hkm_st_read_f32(st, "b", out, NB + 1, &e) == HKM_ERR_SHAPE, "wrong element count refused");
    CHECK(hkm_st_info(st, "__metadata__", &ti, &e) == HKM_ERR_MISSING, "metadata is not a tensor");
    hkm_st_free(st);
}

/* ---------------------------------------------------------------- bad files */

static void edit_drop_v(cJSON *h, size_t n) { cJSON_DeleteItemFromObject(h, "model.layers.1.self_attn.v_proj.weight"); }

static void edit_swap_shape(cJSON *h, size_t n) {
    cJSON *t = cJSON_GetObjectItem(h, "model.layers.1.mlp.up_proj.weight");
    cJSON *s = cJSON_GetObjectItem(t, "shape");
    cJSON_ReplaceItemInArray(s, 0, cJSON_CreateNumber(64));
    cJSON_ReplaceItemInArray(s, 1, cJSON_CreateNumber(128));
}

/* model.norm.weight: 64 bf16 = 128 bytes = 16 I64. */
static void edit_i64(cJSON *h, size_t n) {
    cJSON *t = cJSON_GetObjectItem(h, "model.norm.weight");
    cJSON_ReplaceItemInObject(t, "dtype", cJSON_CreateString("I64"));
    cJSON_ReplaceItemInObject(t, "shape", cJSON_CreateIntArray((int[]){16}, 1));
}

static void edit_offsets_past_end(cJSON *h, size_t n) {
    cJSON *t = cJSON_GetObjectItem(h, "model.norm.weight");
    double b[2] = {(double)n - 64, (double)n + 64};
    cJSON_ReplaceItemInObject(t, "data_offsets", cJSON_CreateDoubleArray(b, 2));
}

static void edit_offsets_mismatch(cJSON *h, size_t n) {
    cJSON *t = cJSON_GetObjectItem(h, "model.norm.weight");
    cJSON *o = cJSON_GetObjectItem(t, "data_offsets");
    double b = cJSON_GetArrayItem(o, 0)->valuedouble;
    cJSON_ReplaceItemInArray(o, 1, cJSON_CreateNumber(b + 2));
}

static void edit_drop_lm_head(cJSON *h, size_t n) { cJSON_DeleteItemFromObject(h, "lm_head.weight"); }

static void edit_bad_dtype(cJSON *h, size_t n) {
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(h, "model.norm.weight"), "dtype", cJSON_CreateString("Q4"));
}

static void test_bad_safetensors(void) {
    char d[1024], p[1024];
    hkm_err e;
    hkm_status st;

    st = try_load(edited_model("missing_tensor", edit_drop_v, d, sizeof d), &e);
    expect_fail("missing tensor", st, HKM_ERR_MISSING, &e, "model.layers.1.self_attn.v_proj.weight", "model.safetensors");
    st = try_load(edited_model("wrong_shape", edit_swap_shape, d, sizeof d), &e);
    expect_fail("wrong shape", st, HKM_ERR_SHAPE, &e, "model.layers.1.mlp.up_proj.weight", "(128, 64)");
    CHECK(strstr(e.msg, "(64, 128)") && strstr(e.msg, "model.safetensors"), "shape message: %s", e.msg);
    st = try_load(edited_model("i64", edit_i64, d, sizeof d), &e);
    expect_fail("I64 dtype", st, HKM_ERR_UNSUPPORTED, &e, "model.norm.weight", "I64");
    CHECK(strstr(e.msg, "model.safetensors") != NULL, "I64 message names the file: %s", e.msg);
    st = try_load(edited_model("bad_dtype", edit_bad_dtype, d, sizeof d), &e);
    expect_fail("unknown dtype", st, HKM_ERR_UNSUPPORTED, &e, "model.norm.weight", "Q4");
    st = try_load(edited_model("past_end", edit_offsets_past_end, d, sizeof d), &e);
    expect_fail("offsets past end", st, HKM_ERR_FORMAT, &e, "model.norm.weight", "data_offsets");
    st = try_load(edited_model("mismatch", edit_offsets_mismatch, d, sizeof d), &e);
    expect_fail("offsets vs shape", st, HKM_ERR_FORMAT, &e, "model.norm.weight", "BF16");
    st = try_load(edited_model("no_lm_head", edit_drop_lm_head, d, sizeof d), &e);
    expect_fail("untied without lm_head", st, HKM_ERR_MISSING, &e, "lm_head.weight", "tie_word_embeddings");

    /* Truncated: the header claims more bytes than the file has. */
    case_dir("truncated", d, sizeof d);
    char q[1024];
    copy_file(tiny_path("llama3", "config.json", q, sizeof q), tmp_path("truncated/config.json", p, sizeof p));
    size_t n;
    char *full = test_slurp(tiny_path("llama3", "model.safetensors", p, sizeof p), &n);
    spit(tmp_path("truncated/model.safetensors", p, sizeof p), full, 200);
    st = try_load(d, &e);
    expect_fail("truncated", st, HKM_ERR_FORMAT, &e, p, "header length");
    /* Cut in the data section: offsets run past the end. */
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = (hl << 8) | (unsigned char)full[i];
    spit(p, full, (size_t)(8 + hl + 100));
    st = try_load(d, &e);
    expect_fail("truncated data", st, HKM_ERR_FORMAT, &e, p, "data_offsets");
    spit(p, full, 5);
    st = try_load(d, &e);
    expect_fail("5-byte file", st, HKM_ERR_FORMAT, &e, p, NULL);
    free(full);

    /* Malformed header JSON of the right length. */
    write_st(p, "{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]", "\0\0\0\0", 4);
    st = try_load(d, &e);
    expect_fail("malformed header", st, HKM_ERR_FORMAT, &e, p, "JSON");
    write_st(p, "{\"a\": {\"dtype\": \"F32\", \"shape\": [1.5], \"data_offsets\": [0, 4]}}", "\0\0\0\0", 4);
    st = try_load(d, &e);
    expect_fail("fractional shape", st, HKM_ERR_FORMAT, &e, "'a'", "shape");
    write_st(p, "{\"a\": {\"dtype\": \"F32\", \"shape\": [4294967296, 4294967296], \"data_offsets\": [0, 4]}}",
             "\0\0\0\0", 4);
    st = try_load(d, &e);
    expect_fail("overflowing shape", st, HKM_ERR_FORMAT, &e, "'a'", "overflow");

    /* No weights at all; a path that is neither dir nor .gguf; nothing there. */
    case_dir("no_weights", d, sizeof d);
    copy_file(tiny_path("llama3", "config.json", q, sizeof q), tmp_path("no_weights/config.json", p, sizeof p));
    st = try_load(d, &e);
    expect_fail("no weights", st, HKM_ERR_MISSING, &e, d, "model.safetensors");
    st = try_load(tmp_path("no_weights/config.json", p, sizeof p), &e);
    expect_fail("not a model path", st, HKM_ERR_ARG, &e, p, NULL);
    st = try_load(tmp_path("nothing_here", p, sizeof p), &e);
    CHECK(st != HKM_OK, "absent path fails");
    st = try_load(tmp_path("nothing_here.gguf", p, sizeof p), &e);
    CHECK(st != HKM_OK && strstr(e.msg, p), "absent gguf fails naming it: %s", e.msg);
}

static void test_bad_config_dirs(void) {
    char d[1024], p[1024];
    hkm_err e;
    const char *unknown = "{\"architectures\":[\"FalconForCausalLM\"]," BASE_CFG "}";
    case_dir("unknown_arch", d, sizeof d);
    spit(tmp_path("unknown_arch/config.json", p, sizeof p), unknown, strlen(unknown));
    hkm_status st = try_load(d, &e);
    expect_fail("unknown arch dir", st, HKM_ERR_UNSUPPORTED, &e, "architectures", "config.json");
    case_dir("bad_config", d, sizeof d);
    spit(tmp_path("bad_config/config.json", p, sizeof p), "{\"architectures\": [", 19);
    st = try_load(d, &e);
    expect_fail("malformed config dir", st, HKM_ERR_FORMAT, &e, "config.json", NULL);
    case_dir("no_config", d, sizeof d);
    st = try_load(d, &e);
    expect_fail("no config", st, HKM_ERR_IO, &e, "config.json", NULL);
}

static void test_bad_shards(void) {
    char d[1024], p[1024], q[1024];
    hkm_err e;
    cJSON *idx = load_json(tiny_path("llama-sharded", "model.safetensors.index.json", p, sizeof p));
    CHECK(idx != NULL, "sharded index readable");
    if (!idx) return;
    case_dir("missing_shard", d, sizeof d);
    copy_file(tiny_path("llama-sharded", "config.json", p, sizeof p), tmp_path("missing_shard/config.json", q, sizeof q));
    const cJSON *wm = cJSON_GetObjectItem(idx, "weight_map"), *it;
    const char *shard = cJSON_GetObjectItem(wm, "model.norm.weight")->valuestring;
    cJSON_ArrayForEach(it, wm) { /* copy every shard but the one holding model.norm.weight */
        char rel[512];
        if (strcmp(it->valuestring, shard) == 0) continue;
        snprintf(rel, sizeof rel, "missing_shard/%s", it->valuestring);
        copy_file(tiny_path("llama-sharded", it->valuestring, p, sizeof p), tmp_path(rel, q, sizeof q));
    }
    char *text = cJSON_Print(idx);
    spit(tmp_path("missing_shard/model.safetensors.index.json", p, sizeof p), text, strlen(text));
    free(text);
    hkm_status st = try_load(d, &e);
    expect_fail("missing shard", st, HKM_ERR_MISSING, &e, shard, "model.safetensors.index.json");
    /* The index names a tensor its shard lacks. */
    cJSON_AddStringToObject(cJSON_GetObjectItem(idx, "weight_map"), "model.extra.weight",
                            cJSON_GetArrayItem(wm, 0)->valuestring);
    case_dir("extra_entry", d, sizeof d);
    copy_file(tiny_path("llama-sharded", "config.json", p, sizeof p), tmp_path("extra_entry/config.json", q, sizeof q));
    cJSON_ArrayForEach(it, wm) {
        char rel[512];
        snprintf(rel, sizeof rel, "extra_entry/%s", it->valuestring);
        copy_file(tiny_path("llama-sharded", it->valuestring, p, sizeof p), tmp_path(rel, q, sizeof q));
    }
    text = cJSON_Print(idx);
    spit(tmp_path("extra_entry/model.safetensors.index.json", p, sizeof p), text, strlen(text));
    free(text);
    st = try_load(d, &e);
    expect_fail("index entry absent from shard", st, HKM_ERR_MISSING, &e, "model.extra.weight", "index.json");
    spit(tmp_path("extra_entry/model.safetensors.index.json", p, sizeof p), "{\"weight_map\": 3}", 17);
    st = try_load(d, &e);
    expect_fail("weight_map not an object", st, HKM_ERR_FORMAT, &e, "weight_map", p);
    cJSON_Delete(idx);
}

/* ---------------------------------------------------------------- default GGUF */

/* q/k rows after un-permutation, and other tensors, vs transformers. */
static void test_gguf(void) {
    char mp[1024], rp[1024];
    const char *path = test_default_model(mp, sizeof mp);
    if (!path) {
        printf("test_loader: default GGUF model absent: skipping its checks\n");
        return;
    }
    cJSON *ref = load_json(test_data("default_model_reference.json", rp, sizeof rp));
    CHECK(ref != NULL, "%s unreadable", rp);
    hkm_model *m = NULL;
    hkm_err e = {{0}};
    hkm_status st = hkm_model_load(path, &m, &e);
    CHECK(st == HKM_OK, "load %s: %s", path, e.msg);
    if (m && ref) {
        const hkm_config *c = hkm_model_config(m);
        CHECK(c->arch == HKM_ARCH_LLAMA && c->n_layers == 30 && c->d_model == 576 && c->n_heads == 9 &&
              c->n_kv_heads == 3 && c->head_dim == 64 && c->d_ff == 1536 && c->vocab_size == 49152 &&
              c->tie_embeddings && m->lm_head == m->tok_emb, "SmolLM2 config");
        const cJSON *chk;
        cJSON_ArrayForEach(chk, cJSON_GetObjectItemCaseSensitive(ref, "gguf_checks")) {
            const float *t = model_tensor(m, chk->string);
            CHECK(t != NULL, "gguf: tensor %s", chk->string);
            if (!t) continue;
            const cJSON *shape = cJSON_GetObjectItem(chk, "shape");
            size_t rows = (size_t)cJSON_GetArrayItem(shape, 0)->valuedouble;
            size_t cols = cJSON_GetArraySize(shape) > 1 ? (size_t)cJSON_GetArrayItem(shape, 1)->valuedouble : 1;
            double sum = 0, asum = 0;
            for (size_t i = 0; i < rows * cols; i++) sum += t[i], asum += fabs(t[i]);
            CHECK(fabs(sum - jnum(chk, "sum")) <= 1e-6 * asum + 1e-5, "gguf: %s sum %.9g vs %.9g", chk->string, sum,
                  jnum(chk, "sum"));
            const cJSON *rws = cJSON_GetObjectItem(chk, "rows"), *vals = cJSON_GetObjectItem(chk, "values");
            for (int r = 0; r < cJSON_GetArraySize(vals); r++) {
                size_t row = cJSON_GetArraySize(rws) ? (size_t)cJSON_GetArrayItem(rws, r)->valuedouble : 0;
                const cJSON *v = cJSON_GetArrayItem(vals, r);
                for (int k = 0; k < cJSON_GetArraySize(v); k++) {
                    float want = (float)cJSON_GetArrayItem(v, k)->valuedouble, got = t[row * cols + (size_t)k];
                    CHECK(got == want, "gguf: %s[%zu][%d] = %.9g, transformers %.9g", chk->string, row, k,
                          (double)got, (double)want);
                }
            }
        }
    }
    cJSON_Delete(ref);
    hkm_model_free(m);
}

/* ---------------------------------------------------------------- main */

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "%s/hkm_loader_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_tiny_configs();
    test_config_variants();
    test_tiny_weights();
    test_half_conversion();
    test_bad_safetensors();
    test_bad_config_dirs();
    test_bad_shards();
    test_gguf();
    nftw(tmpdir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    return test_summary("test_loader");
}
