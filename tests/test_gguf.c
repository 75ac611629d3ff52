/* GGUF reader tests: tensors dequantised bit-for-bit as gguf-py does (a fixture
 * with every supported type, and slices of the default model), typed metadata,
 * config and tokenizer spec, and clear errors (never a crash) on corrupt
 * copies of the fixture made in a temp file.
 * Golden data: tests/scripts/make_gguf_fixtures.py. */
#include "hkm_internal.h"
#include "test_util.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

/* ---------------------------------------------------------------- helpers */

static cJSON *load_json(const char *rel) {
    char p[1024];
    char *s = test_slurp(test_data(rel, p, sizeof p), NULL);
    cJSON *j = s ? cJSON_Parse(s) : NULL;
    free(s);
    return j;
}

static const cJSON *jget(const cJSON *o, const char *k) { return cJSON_GetObjectItemCaseSensitive(o, k); }

/* Compare dst (n floats) with a JSON array of float32 bit patterns; print the first misses. */
static int bits_equal(const float *dst, size_t n, const cJSON *bits, const char *what) {
    size_t m = (size_t)cJSON_GetArraySize(bits), bad = 0;
    if (m != n) {
        fprintf(stderr, "%s: %zu values, expected %zu\n", what, n, m);
        return 0;
    }
    size_t i = 0;
    const cJSON *b;
    cJSON_ArrayForEach(b, bits) {
        uint32_t want = (uint32_t)b->valuedouble, got;
        memcpy(&got, &dst[i], 4);
        if (got != want && bad++ < 5)
            fprintf(stderr, "%s[%zu]: got %08x (%g), expected %08x\n", what, i, got, (double)dst[i], want);
        i++;
    }
    return bad == 0;
}

static int has(const char *s, const char *sub) { return s && sub && strstr(s, sub) != NULL; }

/* ---------------------------------------------------------------- tiny fixture: tensors */

static int dtype_of(const char *type) {
    if (!strcmp(type, "F32")) return HKM_DT_F32;
    if (!strcmp(type, "F16")) return HKM_DT_F16;
    if (!strcmp(type, "BF16")) return HKM_DT_BF16;
    return -1;
}

static void check_tensor(const hkm_gguf *g, const cJSON *t) {
    const char *name = jget(t, "name")->valuestring;
    const cJSON *dims = jget(t, "dims");
    hkm_tensor_info info;
    hkm_err err = {{0}};
    hkm_status st = hkm_gguf_info(g, name, &info, &err);
    CHECK(st == HKM_OK, "%s: %s", name, err.msg);
    if (st != HKM_OK) return;
    CHECK(info.ndim == cJSON_GetArraySize(dims), "%s: ndim %d", name, info.ndim);
    size_t n = 1;
    for (int d = 0; d < info.ndim && d < cJSON_GetArraySize(dims); d++) {
        int64_t want = (int64_t)cJSON_GetArrayItem(dims, d)->valuedouble;
        CHECK(info.dims[d] == want, "%s: dims[%d] = %lld, expected %lld (HF order)", name, d,
              (long long)info.dims[d], (long long)want);
        n *= (size_t)info.dims[d];
    }
    CHECK(info.dtype == dtype_of(jget(t, "type")->valuestring), "%s: dtype %d", name, info.dtype);
    float *buf = malloc(n * sizeof *buf);
    st = hkm_gguf_read_f32(g, name, buf, n, &err);
    CHECK(st == HKM_OK, "%s: %s", name, err.msg);
    if (st == HKM_OK) {
        char what[160];
        snprintf(what, sizeof what, "%s (%s)", name, jget(t, "type")->valuestring);
        CHECK(bits_equal(buf, n, jget(t, "bits"), what), "%s: dequantised values differ from gguf-py", what);
    }
    st = hkm_gguf_read_f32(g, name, buf, n + 1, &err);
    CHECK(st == HKM_ERR_SHAPE && has(err.msg, name), "%s: wrong count gave %d: %s", name, st, err.msg);
    free(buf);
}

static void test_tiny_tensors(const hkm_gguf *g, const cJSON *exp) {
    const cJSON *t;
    int n = 0;
    cJSON_ArrayForEach(t, jget(exp, "tensors")) {
        check_tensor(g, t);
        n++;
    }
    CHECK(n >= 14, "fixture lists only %d tensors", n);
    hkm_err err = {{0}};
    hkm_tensor_info info;
    hkm_status st = hkm_gguf_info(g, "no.such.tensor", &info, &err);
    CHECK(st == HKM_ERR_MISSING && has(err.msg, "no.such.tensor") && has(err.msg, hkm_gguf_path(g)),
          "missing tensor: %d %s", st, err.msg);
}

/* ---------------------------------------------------------------- tiny fixture: metadata */

/* The values below are the script's inputs (META in make_gguf_fixtures.py);
 * 64-bit ones are spelled here because JSON numbers lose them. */
static void test_tiny_keys(const hkm_gguf *g, const cJSON *exp) {
    static const struct { const char *key; int64_t v; } INTS[] = {
        {"test.u8", 200}, {"test.i8", -100}, {"test.u16", 60000}, {"test.i16", -30000},
        {"test.u32", 4000000000LL}, {"test.i32", -2000000000LL}, {"test.bool", 1},
        {"test.u64", (1LL << 62) + 1}, {"test.i64", -(1LL << 62)}};
    hkm_err err = {{0}};
    for (size_t i = 0; i < sizeof INTS / sizeof INTS[0]; i++) {
        int64_t v = 0;
        hkm_status st = hkm_gguf_get_i64(g, INTS[i].key, &v, &err);
        CHECK(st == HKM_OK && v == INTS[i].v, "%s: st %d v %lld (%s)", INTS[i].key, st, (long long)v, err.msg);
    }
    const cJSON *keys = jget(exp, "keys");
    float f = 0;
    CHECK(hkm_gguf_get_f32(g, "test.f32", &f, &err) == HKM_OK && f == (float)jget(keys, "test.f32")->valuedouble,
          "test.f32 = %g", (double)f);
    CHECK(hkm_gguf_get_f32(g, "test.f64", &f, &err) == HKM_OK && f == 2.5f, "test.f64 = %g", (double)f);
    const char *s = NULL;
    size_t len = 0;
    CHECK(hkm_gguf_get_str(g, "test.str", &s, &len, &err) == HKM_OK && s &&
              !strcmp(s, jget(keys, "test.str")->valuestring) && len == strlen(s),
          "test.str = %s", s ? s : "(null)");

    size_t n = 0;
    int32_t *vals = NULL;
    CHECK(hkm_gguf_get_i32_array(g, "test.arr_i16", &n, &vals, &err) == HKM_OK && n == 3 && vals[0] == 1 &&
              vals[1] == -2 && vals[2] == 3,
          "test.arr_i16: %s", err.msg);
    free(vals);
    const char **strs = NULL;
    const size_t *lens = NULL;
    const cJSON *want = jget(keys, "test.arr_str");
    hkm_status st = hkm_gguf_get_str_array(g, "test.arr_str", &n, &strs, &lens, &err);
    CHECK(st == HKM_OK && n == (size_t)cJSON_GetArraySize(want), "test.arr_str: %s", err.msg);
    for (size_t i = 0; st == HKM_OK && i < n; i++) {
        const char *w = cJSON_GetArrayItem(want, (int)i)->valuestring;
        CHECK(lens[i] == strlen(w) && !memcmp(strs[i], w, lens[i]), "test.arr_str[%zu]", i);
    }

    /* Wrong types and ranges: FORMAT, naming the file and the key. */
    static const struct { const char *key; int kind; } BAD[] = {
        {"test.str", 0}, {"test.arr_i16", 0}, {"test.big_u64", 0}, {"test.u32", 1}, {"test.i32", 2},
        {"test.arr_u32", 3}, {"test.arr_f32", 3}, {"test.nested", 3}, {"test.arr_str", 3}, {"test.u8", 4}};
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
        int64_t v;
        memset(&err, 0, sizeof err);
        switch (BAD[i].kind) {
        case 0: st = hkm_gguf_get_i64(g, BAD[i].key, &v, &err); break;
        case 1: st = hkm_gguf_get_f32(g, BAD[i].key, &f, &err); break;
        case 2: st = hkm_gguf_get_str(g, BAD[i].key, &s, &len, &err); break;
        case 3: st = hkm_gguf_get_i32_array(g, BAD[i].key, &n, &vals, &err); break;
        default: st = hkm_gguf_get_str_array(g, BAD[i].key, &n, &strs, &lens, &err); break;
        }
        CHECK(st == HKM_ERR_FORMAT && has(err.msg, BAD[i].key) && has(err.msg, hkm_gguf_path(g)),
              "%s (getter %d): st %d msg '%s'", BAD[i].key, BAD[i].kind, st, err.msg);
    }
    int64_t v;
    st = hkm_gguf_get_i64(g, "test.absent", &v, &err);
    CHECK(st == HKM_ERR_MISSING && has(err.msg, "test.absent"), "absent key: %d %s", st, err.msg);
    CHECK(hkm_gguf_has_key(g, "test.u8") && !hkm_gguf_has_key(g, "test.absent"), "has_key");
}

/* Inputs of write_tiny() in the script. */
static void test_tiny_config(const hkm_gguf *g) {
    hkm_config c;
    hkm_err err = {{0}};
    hkm_status st = hkm_gguf_config(g, &c, &err);
    CHECK(st == HKM_OK, "tiny config: %s", err.msg);
    if (st != HKM_OK) return;
    CHECK(c.arch == HKM_ARCH_QWEN3 && c.n_layers == 2 && c.d_model == 8 && c.d_ff == 24 && c.n_heads == 2 &&
              c.n_kv_heads == 1 && c.head_dim == 4 && c.max_pos == 128,
          "tiny config dims: arch %d L %d d %d ff %d h %d kv %d hd %d ctx %d", c.arch, c.n_layers, c.d_model,
          c.d_ff, c.n_heads, c.n_kv_heads, c.head_dim, c.max_pos);
    CHECK(c.rms_eps == 1e-6f && c.rope_theta == 1e6f && c.rope_type == HKM_ROPE_DEFAULT, "eps %g theta %g",
          (double)c.rms_eps, (double)c.rope_theta);
    CHECK(c.vocab_size == 12, "vocab from the token list: %d", c.vocab_size);
    CHECK(c.tie_embeddings && c.qkv_bias && c.qk_norm, "flags: tie %d bias %d qknorm %d", c.tie_embeddings,
          c.qkv_bias, c.qk_norm);
    CHECK(c.bos_id == 1 && c.eos_id == 0, "bos %d eos %d", c.bos_id, c.eos_id);
}

static void test_tiny_tok(const hkm_gguf *g) {
    hkm_tok_spec s;
    hkm_err err = {{0}};
    hkm_status st = hkm_gguf_tok_spec(g, &s, &err);
    CHECK(st == HKM_OK, "tiny tok spec: %s", err.msg);
    if (st != HKM_OK) return;
    CHECK(s.vocab_size == 12 && !strcmp(s.tokens[6], "ab") && !strcmp(s.tokens[8], "\xc4\xa0" "a"), "tokens");
    /* "<ctl x>": the space is outside the byte alphabet, so it is respelled (as transformers does). */
    CHECK(!strcmp(s.tokens[3], "<ctl\xc4\xa0x>"), "respelled token: '%s'", s.tokens[3]);
    CHECK(s.n_merges == 2 && !strcmp(s.merges[0], "a b") && !strcmp(s.merges[1], "\xc4\xa0 a"), "merges");
    CHECK(s.n_added == 3 && s.added_ids[0] == 0 && s.added_ids[1] == 1 && s.added_ids[2] == 2 &&
              s.added_special[0] && s.added_special[1] && !s.added_special[2],
          "added tokens: n %d", s.n_added);
    CHECK(s.n_pre == 2 && s.pre[0].kind == HKM_PRE_DIGITS && s.pre[1].kind == HKM_PRE_REGEX &&
              has(s.pre[1].pattern, "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+"),
          "smollm pre-tokenizer: Digits then the GPT-2 regex");
    CHECK(s.bos_id == 1 && s.eos_id == 0 && s.add_bos == 1 && s.ignore_merges == 0, "bos %d eos %d add_bos %d",
          s.bos_id, s.eos_id, s.add_bos);
    hkm_tok_spec_clear(&s);
}

/* ---------------------------------------------------------------- default model */

/* SmolLM2-135M-Instruct's HF config.json values. */
static void test_model_config(const hkm_gguf *g) {
    hkm_config c;
    hkm_err err = {{0}};
    hkm_status st = hkm_gguf_config(g, &c, &err);
    CHECK(st == HKM_OK, "model config: %s", err.msg);
    if (st != HKM_OK) return;
    CHECK(c.arch == HKM_ARCH_LLAMA && c.n_layers == 30 && c.d_model == 576 && c.n_heads == 9 &&
              c.n_kv_heads == 3 && c.head_dim == 64 && c.d_ff == 1536 && c.vocab_size == 49152 && c.max_pos == 8192,
          "model dims: L %d d %d h %d kv %d hd %d ff %d V %d ctx %d", c.n_layers, c.d_model, c.n_heads,
          c.n_kv_heads, c.head_dim, c.d_ff, c.vocab_size, c.max_pos);
    CHECK(c.rope_theta == 100000.0f && c.rms_eps == 1e-5f && c.rope_type == HKM_ROPE_DEFAULT, "theta %g eps %g",
          (double)c.rope_theta, (double)c.rms_eps);
    CHECK(c.tie_embeddings == 1 && c.qkv_bias == 0 && c.qk_norm == 0, "tie %d bias %d qknorm %d",
          c.tie_embeddings, c.qkv_bias, c.qk_norm);
    CHECK(c.bos_id == 1 && c.eos_id == 2, "bos %d eos %d", c.bos_id, c.eos_id);
}

static void test_model_slices(const hkm_gguf *g, const cJSON *exp) {
    const cJSON *sl;
    cJSON_ArrayForEach(sl, jget(exp, "slices")) {
        const char *name = jget(sl, "tensor")->valuestring;
        hkm_tensor_info info;
        hkm_err err = {{0}};
        CHECK(hkm_gguf_info(g, name, &info, &err) == HKM_OK, "%s", err.msg);
        const cJSON *dims = jget(sl, "dims");
        size_t n = 1;
        for (int d = 0; d < info.ndim; d++) {
            CHECK(info.dims[d] == (int64_t)cJSON_GetArrayItem(dims, d)->valuedouble, "%s dims[%d]", name, d);
            n *= (size_t)info.dims[d];
        }
        float *buf = malloc(n * sizeof *buf);
        hkm_status st = hkm_gguf_read_f32(g, name, buf, n, &err);
        CHECK(st == HKM_OK, "%s: %s", name, err.msg);
        size_t start = (size_t)jget(sl, "start")->valuedouble;
        const cJSON *bits = jget(sl, "bits");
        char what[160];
        snprintf(what, sizeof what, "%s (%s) [%zu..]", name, jget(sl, "type")->valuestring, start);
        if (st == HKM_OK && start + (size_t)cJSON_GetArraySize(bits) <= n)
            CHECK(bits_equal(buf + start, (size_t)cJSON_GetArraySize(bits), bits, what), "%s differs from gguf-py",
                  what);
        free(buf);
    }
}

static void test_model_tok(const hkm_gguf *g, const cJSON *exp) {
    const cJSON *t = jget(exp, "tokenizer");
    hkm_tok_spec s;
    hkm_err err = {{0}};
    hkm_status st = hkm_gguf_tok_spec(g, &s, &err);
    CHECK(st == HKM_OK, "model tok spec: %s", err.msg);
    if (st != HKM_OK) return;
    CHECK(s.vocab_size == jget(t, "n_tokens")->valueint && s.n_merges == jget(t, "n_merges")->valueint,
          "vocab %d merges %d", s.vocab_size, s.n_merges);
    CHECK(s.n_merges > 0 && !strcmp(s.merges[0], jget(t, "first_merge")->valuestring), "first merge");
    CHECK(!strcmp(s.tokens[s.vocab_size - 1], jget(t, "last_token")->valuestring), "last token");
    const cJSON *ctl = jget(t, "control_ids");
    int n_ctl = cJSON_GetArraySize(ctl) + cJSON_GetArraySize(jget(t, "user_defined_ids"));
    CHECK(s.n_added == n_ctl, "added %d, expected %d", s.n_added, n_ctl);
    for (int i = 0; i < s.n_added && i < cJSON_GetArraySize(ctl); i++)
        CHECK(s.added_ids[i] == cJSON_GetArrayItem(ctl, i)->valueint && s.added_special[i], "added[%d]", i);
    CHECK(!strcmp(jget(t, "pre")->valuestring, "smollm") && s.n_pre == 2 && s.pre[0].kind == HKM_PRE_DIGITS,
          "pre steps for '%s'", jget(t, "pre")->valuestring);
    CHECK(s.bos_id == jget(t, "bos")->valueint && s.eos_id == jget(t, "eos")->valueint &&
              s.add_bos == cJSON_IsTrue(jget(t, "add_bos")),
          "bos %d eos %d add_bos %d", s.bos_id, s.eos_id, s.add_bos);
    hkm_tok_spec_clear(&s);
}

static int test_model(void) {
    char buf[1024];
    const char *path = test_default_model(buf, sizeof buf);
    if (!path) {
        printf("test_gguf: default model not found (set HUBKV_MODEL_GGUF or run setup): skipping its checks\n");
        return 0;
    }
    hkm_gguf *g = NULL;
    hkm_err err = {{0}};
    hkm_status st = hkm_gguf_open(path, &g, &err);
    CHECK(st == HKM_OK, "open %s: %s", path, err.msg);
    if (st != HKM_OK) return 1;
    test_model_config(g);
    cJSON *exp = load_json("gguf/model.expected.json");
    size_t size = 0;
    FILE *f = fopen(path, "rb");
    if (f) {
        fseek(f, 0, SEEK_END);
        size = (size_t)ftell(f);
        fclose(f);
    }
    if (!exp) {
        printf("test_gguf: tests/data/gguf/model.expected.json absent: skipping the model's golden slices\n");
    } else if ((double)size != jget(exp, "file_size")->valuedouble) {
        printf("test_gguf: %s is not the file model.expected.json was made from (size %zu): skipping slices\n",
               path, size);
    } else {
        test_model_slices(g, exp);
        test_model_tok(g, exp);
    }
    cJSON_Delete(exp);
    hkm_gguf_free(g);
    return 1;
}

/* ---------------------------------------------------------------- corrupt files */

typedef struct {
    unsigned char *orig;
    size_t size;
    char path[64]; /* the temp file each variant is written to */
} corrupt_ctx;

static void put_u32(unsigned char *p, uint32_t v) { memcpy(p, &v, 4); }
static void put_u64(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }

/* Offset just past a GGUF string (u64 length + bytes) equal to name, or 0. */
static size_t after_name(const unsigned char *buf, size_t size, const char *name) {
    size_t n = strlen(name);
    for (size_t i = 0; i + 8 + n <= size; i++) {
        uint64_t len;
        memcpy(&len, buf + i, 8);
        if (len == n && !memcmp(buf + i + 8, name, n)) return i + 8 + n;
    }
    return 0;
}

/* Write buf to the temp file and open it. */
static hkm_status open_variant(corrupt_ctx *c, const unsigned char *buf, size_t len, hkm_gguf **g, hkm_err *err) {
    FILE *f = fopen(c->path, "wb");
    if (!f) return HKM_ERR_IO;
    if (len) fwrite(buf, 1, len, f);
    fclose(f);
    memset(err, 0, sizeof *err);
    *g = NULL;
    return hkm_gguf_open(c->path, g, err);
}

/* A variant that hkm_gguf_open must reject with `want`, naming the file and `sub`. */
static void expect_open_fail(corrupt_ctx *c, const unsigned char *buf, size_t len, hkm_status want, const char *sub,
                             const char *what) {
    hkm_gguf *g;
    hkm_err err;
    hkm_status st = open_variant(c, buf, len, &g, &err);
    if (getenv("HUBKV_TEST_VERBOSE")) printf("  %-36s -> %s: %s\n", what, hkm_status_str(st), err.msg);
    CHECK(st == want && has(err.msg, c->path) && has(err.msg, sub), "%s: status %d (want %d), msg '%s'", what, st,
          want, err.msg);
    CHECK(g == NULL, "%s: handle returned on failure", what);
    hkm_gguf_free(g);
}

static void test_truncations(corrupt_ctx *c, size_t min_valid) {
    int bad = 0;
    for (size_t len = 0; len < min_valid; len += len < 2048 ? 1 : 61) {
        hkm_gguf *g;
        hkm_err err;
        hkm_status st = open_variant(c, c->orig, len, &g, &err);
        if ((st != HKM_ERR_FORMAT || !has(err.msg, c->path)) && bad++ < 5)
            fprintf(stderr, "truncated to %zu: status %d, msg '%s'\n", len, st, err.msg);
        hkm_gguf_free(g);
    }
    CHECK(bad == 0, "%d truncated files were not rejected with HKM_ERR_FORMAT naming the file", bad);
    expect_open_fail(c, c->orig, 0, HKM_ERR_FORMAT, "offset 0", "empty file");
    expect_open_fail(c, c->orig, 20, HKM_ERR_FORMAT, "offset 16", "cut in the header");
    expect_open_fail(c, c->orig, min_valid - 1, HKM_ERR_FORMAT, "beyond the end", "cut in the last tensor");
    hkm_gguf *g;
    hkm_err err;
    CHECK(open_variant(c, c->orig, min_valid, &g, &err) == HKM_OK, "cut after the last tensor: %s", err.msg);
    hkm_gguf_free(g);
}

/* Patch a u32 or u64 field at off (relative to after_name(name) + skip). */
static unsigned char *patched(corrupt_ctx *c, const char *name, size_t skip, int width, uint64_t v) {
    unsigned char *b = malloc(c->size);
    memcpy(b, c->orig, c->size);
    size_t at = name ? after_name(b, c->size, name) : 0;
    CHECK(!name || at, "fixture has no '%s'", name);
    if (width == 4) put_u32(b + at + skip, (uint32_t)v);
    else put_u64(b + at + skip, v);
    return b;
}

static void expect_patch(corrupt_ctx *c, const char *name, size_t skip, int width, uint64_t v, hkm_status want,
                         const char *sub, const char *what) {
    unsigned char *b = patched(c, name, skip, width, v);
    expect_open_fail(c, b, c->size, want, sub, what);
    free(b);
}

static void test_header_and_infos(corrupt_ctx *c) {
    expect_patch(c, NULL, 0, 4, 0x46554747u ^ 0x20u, HKM_ERR_FORMAT, "magic", "wrong magic");
    expect_patch(c, NULL, 4, 4, 4, HKM_ERR_UNSUPPORTED, "version 4", "version 4");
    expect_patch(c, NULL, 4, 4, 1, HKM_ERR_UNSUPPORTED, "expected 3", "version 1");
    expect_patch(c, NULL, 4, 4, 0x03000000u, HKM_ERR_UNSUPPORTED, "big-endian", "byte-swapped version");
    expect_patch(c, NULL, 8, 8, 1ull << 60, HKM_ERR_FORMAT, "tensor_count", "absurd tensor count");
    expect_patch(c, NULL, 16, 8, UINT64_MAX, HKM_ERR_FORMAT, "kv_count", "absurd kv count");
    expect_patch(c, NULL, 24, 8, 1ull << 62, HKM_ERR_FORMAT, "absurd", "absurd key length");
    /* the string value of test.str: type (4) then its u64 length */
    expect_patch(c, "test.str", 4, 8, 1ull << 40, HKM_ERR_FORMAT, "test.str", "absurd string length");
    expect_patch(c, "test.arr_str", 8, 8, 1ull << 59, HKM_ERR_FORMAT, "test.arr_str", "absurd array count");
    expect_patch(c, "test.u8", 0, 4, 99, HKM_ERR_FORMAT, "test.u8", "unknown value type");
    expect_patch(c, "test.arr_i16", 4, 4, 77, HKM_ERR_FORMAT, "test.arr_i16", "unknown array element type");
    /* tensor info: n_dims (4), ne (8 * n_dims), type (4), offset (8); t.q4_0 is 2-D */
    expect_patch(c, "t.q4_0", 0, 4, 9, HKM_ERR_FORMAT, "n_dims", "n_dims 9");
    expect_patch(c, "t.q4_0", 4, 8, 48, HKM_ERR_FORMAT, "multiple", "row not a whole number of blocks");
    expect_patch(c, "t.q4_0", 4, 8, 0, HKM_ERR_FORMAT, "t.q4_0", "zero dimension");
    expect_patch(c, "t.q4_0", 20, 4, 200, HKM_ERR_UNSUPPORTED, "200", "unknown tensor type 200");
    expect_patch(c, "t.q4_0", 20, 4, 4, HKM_ERR_UNSUPPORTED, "t.q4_0", "removed tensor type 4");
    expect_patch(c, "t.q4_0", 24, 8, 1ull << 40, HKM_ERR_FORMAT, "beyond the end", "tensor data beyond EOF");
    expect_patch(c, "t.q4_0", 24, 8, 1ull << 63, HKM_ERR_FORMAT, "t.q4_0", "tensor offset near 2^64");
    expect_patch(c, "t.q4_0", 24, 8, 33, HKM_ERR_FORMAT, "alignment", "misaligned tensor offset");
    expect_patch(c, "t.q4_0", 4, 8, 1ull << 62, HKM_ERR_FORMAT, "t.q4_0", "huge dimension");
}

static void test_duplicates(corrupt_ctx *c) {
    unsigned char *b = malloc(c->size);
    memcpy(b, c->orig, c->size);
    size_t at = after_name(b, c->size, "t.q4_1");
    CHECK(at, "fixture has no t.q4_1");
    if (at) memcpy(b + at - 6, "t.q4_0", 6);
    expect_open_fail(c, b, c->size, HKM_ERR_FORMAT, "twice", "duplicate tensor name");
    memcpy(b, c->orig, c->size);
    at = after_name(b, c->size, "test.i16");
    if (at) memcpy(b + at - 8, "test.u16", 8);
    expect_open_fail(c, b, c->size, HKM_ERR_FORMAT, "twice", "duplicate key");
    free(b);
}

/* Files that open but hold something a later step must refuse. */
static void expect_later(corrupt_ctx *c, const unsigned char *b, int step, hkm_status want, const char *sub,
                         const char *what) {
    hkm_gguf *g;
    hkm_err err;
    hkm_status st = open_variant(c, b, c->size, &g, &err);
    CHECK(st == HKM_OK, "%s: open: %s", what, err.msg);
    if (st != HKM_OK) return;
    memset(&err, 0, sizeof err);
    hkm_config cfg;
    hkm_tok_spec spec;
    float buf[256];
    if (step == 0) st = hkm_gguf_config(g, &cfg, &err);
    else if (step == 1) st = hkm_gguf_tok_spec(g, &spec, &err);
    else st = hkm_gguf_read_f32(g, "t.q4_1", buf, 256, &err);
    if (getenv("HUBKV_TEST_VERBOSE")) printf("  %-36s -> %s: %s\n", what, hkm_status_str(st), err.msg);
    CHECK(st == want && has(err.msg, c->path) && has(err.msg, sub), "%s: status %d (want %d), msg '%s'", what, st,
          want, err.msg);
    hkm_gguf_free(g);
}

static void replace_str(unsigned char *b, size_t size, const char *key, const char *from, const char *to) {
    size_t at = after_name(b, size, key); /* then type (4), u64 length, bytes */
    CHECK(at && !memcmp(b + at + 12, from, strlen(from)), "fixture: %s is not '%s'", key, from);
    if (at) memcpy(b + at + 12, to, strlen(to));
}

static void test_semantic(corrupt_ctx *c) {
    unsigned char *b = patched(c, "qwen3.block_count", 0, 4, 6); /* uint32 -> float32 */
    expect_later(c, b, 0, HKM_ERR_FORMAT, "qwen3.block_count", "block_count of the wrong type");
    free(b);
    b = patched(c, "t.q4_1", 20, 4, 20); /* Q4_1 -> IQ4_NL: valid, but no dequantiser */
    expect_later(c, b, 2, HKM_ERR_UNSUPPORTED, "IQ4_NL", "type without a dequantiser");
    free(b);
    b = patched(c, "tokenizer.ggml.bos_token_id", 4, 4, 1000);
    expect_later(c, b, 1, HKM_ERR_FORMAT, "tokenizer.ggml.bos_token_id", "bos id out of range");
    free(b);
    b = malloc(c->size);
    memcpy(b, c->orig, c->size);
    replace_str(b, c->size, "general.architecture", "qwen3", "qwen9");
    expect_later(c, b, 0, HKM_ERR_UNSUPPORTED, "general.architecture", "unknown architecture");
    memcpy(b, c->orig, c->size);
    replace_str(b, c->size, "tokenizer.ggml.model", "gpt2", "bert");
    expect_later(c, b, 1, HKM_ERR_UNSUPPORTED, "tokenizer.ggml.model", "non-BPE tokenizer model");
    memcpy(b, c->orig, c->size);
    replace_str(b, c->size, "tokenizer.ggml.pre", "smollm", "smolxx");
    expect_later(c, b, 1, HKM_ERR_UNSUPPORTED, "tokenizer.ggml.pre", "unknown pre-tokenizer");
    free(b);
}

/* Every later step on whatever opens; only a clean status may come back. */
static void exercise(hkm_gguf *g, const cJSON *tensors) {
    hkm_config cfg;
    hkm_tok_spec spec;
    hkm_err err;
    if (hkm_gguf_config(g, &cfg, &err) == HKM_OK) CHECK(cfg.n_layers > 0, "config without layers");
    if (hkm_gguf_tok_spec(g, &spec, &err) == HKM_OK) hkm_tok_spec_clear(&spec);
    const cJSON *t;
    cJSON_ArrayForEach(t, tensors) {
        hkm_tensor_info info;
        if (hkm_gguf_info(g, jget(t, "name")->valuestring, &info, &err) != HKM_OK) continue;
        size_t n = 1;
        for (int d = 0; d < info.ndim; d++) n *= (size_t)info.dims[d];
        float *buf = malloc(n * sizeof *buf);
        if (buf) hkm_gguf_read_f32(g, jget(t, "name")->valuestring, buf, n, &err);
        free(buf);
    }
}

/* Flip each byte of the metadata region in turn: no crash, and any failure names the file. */
static void test_byte_flips(corrupt_ctx *c, const cJSON *tensors) {
    unsigned char *b = malloc(c->size);
    memcpy(b, c->orig, c->size);
    size_t end = c->size < 3072 ? c->size : 3072, unnamed = 0;
    for (size_t i = 0; i < end; i++) {
        b[i] ^= 0xFF;
        hkm_gguf *g;
        hkm_err err;
        hkm_status st = open_variant(c, b, c->size, &g, &err);
        if (st == HKM_OK) exercise(g, tensors);
        else if (!has(err.msg, c->path) && unnamed++ < 5) fprintf(stderr, "flip at %zu: '%s'\n", i, err.msg);
        hkm_gguf_free(g);
        b[i] ^= 0xFF;
    }
    CHECK(unnamed == 0, "%zu corrupt files were rejected without naming the file", unnamed);
    free(b);
}

static void test_corrupt(const char *fixture, size_t min_valid, const cJSON *tensors) {
    corrupt_ctx c = {0};
    c.orig = (unsigned char *)test_slurp(fixture, &c.size);
    CHECK(c.orig && c.size >= min_valid, "read %s", fixture);
    if (!c.orig) return;
    snprintf(c.path, sizeof c.path, "/tmp/hkm_gguf_XXXXXX");
    int fd = mkstemp(c.path);
    CHECK(fd >= 0, "mkstemp");
    if (fd >= 0) {
        close(fd);
        test_truncations(&c, min_valid);
        test_header_and_infos(&c);
        test_duplicates(&c);
        test_semantic(&c);
        test_byte_flips(&c, tensors);
        unlink(c.path);
    }
    hkm_gguf *g = NULL;
    hkm_err err = {{0}};
    hkm_status st = hkm_gguf_open("/nonexistent/x.gguf", &g, &err);
    CHECK(st == HKM_ERR_IO && has(err.msg, "/nonexistent/x.gguf"), "missing file: %d %s", st, err.msg);
    free(c.orig);
}

/* rope_freqs.weight (Llama 3.1/3.2's rope scaling as per-pair factors; the
 * good case is test_parity's llama3/model-rope-freqs.gguf): a wrong length
 * and a negative factor are refused naming the tensor. */
static void test_rope_freqs_bad(void) {
    static const struct {
        const char *file, *want;
        hkm_status st;
    } cases[] = {{"gguf/rope-freqs-short.gguf", "expected one dim of head_dim / 2 = 8", HKM_ERR_SHAPE},
                 {"gguf/rope-freqs-negative.gguf", "'rope_freqs.weight'[3] = -2", HKM_ERR_FORMAT}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char path[1024];
        test_data(cases[i].file, path, sizeof path);
        hkm_gguf *g = NULL;
        hkm_err err = {{0}};
        hkm_config c;
        hkm_status st = hkm_gguf_open(path, &g, &err);
        CHECK(st == HKM_OK, "open %s: %s", path, err.msg);
        if (st == HKM_OK) st = hkm_gguf_config(g, &c, &err);
        CHECK(st == cases[i].st && has(err.msg, cases[i].want) && has(err.msg, path), "%s: status %d, message '%s'",
              cases[i].file, st, err.msg);
        printf("%s %s: %s\n", st == cases[i].st ? "PASS" : "FAIL", cases[i].file, err.msg);
        hkm_gguf_free(g);
    }
}

/* ---------------------------------------------------------------- main */

int main(void) {
    char path[1024];
    test_data("gguf/tiny.gguf", path, sizeof path);
    cJSON *exp = load_json("gguf/tiny.expected.json");
    CHECK(exp != NULL, "cannot read tests/data/gguf/tiny.expected.json");
    hkm_gguf *g = NULL;
    hkm_err err = {{0}};
    hkm_status st = hkm_gguf_open(path, &g, &err);
    CHECK(st == HKM_OK, "open %s: %s", path, err.msg);
    if (st == HKM_OK && exp) {
        CHECK(!strcmp(hkm_gguf_path(g), path), "path");
        test_tiny_tensors(g, exp);
        test_tiny_keys(g, exp);
        test_tiny_config(g);
        test_tiny_tok(g);
    }
    hkm_gguf_free(g);
    if (exp) test_corrupt(path, (size_t)jget(exp, "min_valid_size")->valuedouble, jget(exp, "tensors"));
    cJSON_Delete(exp);
    test_rope_freqs_bad();
    test_model();
    return test_summary("test_gguf");
}
