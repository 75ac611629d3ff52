/* Tokenizer golden test: ids equal to HF tokenizers/transformers on awkward
 * strings for a Llama-3-style and a Qwen2-style tokenizer.json and for the
 * default model's GGUF; decode round trips; clear errors on bad files.
 * Golden data: tests/scripts/make_tokenizer_fixtures.py. */
#include "hkm_internal.h"
#include "test_util.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char g_tmpdir[64];

/* ---------------------------------------------------------------- helpers */

static cJSON *load_json(const char *path) {
    char *s = test_slurp(path, NULL);
    cJSON *j = s ? cJSON_Parse(s) : NULL;
    free(s);
    return j;
}

static void write_file(const char *path, const char *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(data, 1, len, f);
    fclose(f);
}

static const char *tmp_path(const char *name, char *buf, size_t cap) {
    snprintf(buf, cap, "%s/%s", g_tmpdir, name);
    return buf;
}

/* ids (n) equal to a JSON array of numbers? Prints the first difference. */
static int ids_equal(const int32_t *ids, size_t n, const cJSON *want, const char *what, int idx) {
    size_t m = (size_t)cJSON_GetArraySize(want);
    for (size_t i = 0; i < n || i < m; i++) {
        int got = i < n ? ids[i] : -2;
        int exp = i < m ? cJSON_GetArrayItem(want, (int)i)->valueint : -2;
        if (got != exp) {
            fprintf(stderr, "  %s case %d: first difference at id %zu: got %d, HF %d (got %zu ids, HF %zu)\n",
                    what, idx, i, got, exp, n, m);
            return 0;
        }
    }
    return 1;
}

/* ---------------------------------------------------------------- golden cases */

static void check_case(const hkm_tokenizer *t, const cJSON *c, const char *name, int idx) {
    const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
    size_t len = strlen(text);
    int32_t *ids = NULL;
    size_t n = 0;
    hkm_err err = {{0}};
    hkm_status st = hkm_tokenizer_encode(t, text, len, 0, &ids, &n, &err);
    CHECK(st == HKM_OK, "%s case %d: encode: %s", name, idx, err.msg);
    if (st != HKM_OK) return;
    CHECK(ids_equal(ids, n, cJSON_GetObjectItem(c, "ids"), name, idx), "%s case %d: ids differ from HF for %.60s",
          name, idx, text);
    if (cJSON_IsTrue(cJSON_GetObjectItem(c, "roundtrip"))) {
        char *back = NULL;
        size_t blen = 0;
        st = hkm_tokenizer_decode(t, ids, n, 0, &back, &blen, &err);
        CHECK(st == HKM_OK && blen == len && memcmp(back, text, len) == 0,
              "%s case %d: decode(encode(s)) != s for %.60s (got %.60s)", name, idx, text, back ? back : "");
        free(back);
    }
    free(ids);
    st = hkm_tokenizer_encode(t, text, len, 1, &ids, &n, &err);
    CHECK(st == HKM_OK && ids_equal(ids, n, cJSON_GetObjectItem(c, "ids_bos"), name, idx),
          "%s case %d: ids with add_bos differ from HF add_special_tokens=True", name, idx);
    free(ids);
}

static void check_named_tokens(const hkm_tokenizer *t, const cJSON *cases, const char *name) {
    const cJSON *kv;
    cJSON_ArrayForEach(kv, cJSON_GetObjectItem(cases, "token_ids")) {
        CHECK(hkm_tokenizer_token_id(t, kv->string) == kv->valueint, "%s: token_id(%s) = %d, HF %d", name,
              kv->string, hkm_tokenizer_token_id(t, kv->string), kv->valueint);
    }
    CHECK(hkm_tokenizer_token_id(t, "no such token \x01") == -1, "%s: unknown token string must give -1", name);
}

/* Run every case of <name>.cases.json against tokenizer t. */
static void check_golden(const hkm_tokenizer *t, const char *name) {
    char rel[128], path[1024];
    snprintf(rel, sizeof rel, "tokenizer/%s.cases.json", name);
    cJSON *cases = load_json(test_data(rel, path, sizeof path));
    CHECK(cases != NULL, "cannot read %s", path);
    if (!cases) return;
    int vs = cJSON_GetObjectItem(cases, "vocab_size")->valueint;
    CHECK(hkm_tokenizer_vocab_size(t) == vs, "%s: vocab size %d, HF %d", name, hkm_tokenizer_vocab_size(t), vs);
    check_named_tokens(t, cases, name);
    int i = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(cases, "cases")) check_case(t, c, name, i++);
    printf("%s: %d golden cases\n", name, i);
    cJSON_Delete(cases);
}

static hkm_tokenizer *load_fixture(const char *file) {
    char rel[128], path[1024];
    snprintf(rel, sizeof rel, "tokenizer/%s", file);
    hkm_tokenizer *t = NULL;
    hkm_err err = {{0}};
    hkm_status st = hkm_tokenizer_load(test_data(rel, path, sizeof path), &t, &err);
    CHECK(st == HKM_OK, "load %s: %s", path, err.msg);
    return t;
}

static void test_llama3(void) {
    hkm_tokenizer *t = load_fixture("llama3.tokenizer.json");
    if (!t) return;
    check_golden(t, "llama3");
    /* The template adds <|begin_of_text|>; no tokenizer_config.json: EOS by name. */
    CHECK(hkm_tokenizer_bos(t) == hkm_tokenizer_token_id(t, "<|begin_of_text|>"), "llama3: bos %d",
          hkm_tokenizer_bos(t));
    CHECK(hkm_tokenizer_eos(t) == hkm_tokenizer_token_id(t, "<|end_of_text|>"), "llama3: eos %d",
          hkm_tokenizer_eos(t));
    hkm_tokenizer_free(t);
}

static void test_qwen2(void) {
    hkm_tokenizer *t = load_fixture("qwen2.tokenizer.json");
    if (!t) return;
    check_golden(t, "qwen2");
    CHECK(hkm_tokenizer_bos(t) == -1, "qwen2: no BOS expected, got %d", hkm_tokenizer_bos(t));
    hkm_tokenizer_free(t);
}

/* skip_special drops special tokens only. */
static void test_skip_special(void) {
    hkm_tokenizer *t = load_fixture("qwen2.tokenizer.json");
    if (!t) return;
    const char *text = "<|im_start|>user\nhi<|im_end|>";
    int32_t *ids = NULL;
    size_t n = 0;
    char *out = NULL;
    hkm_err err = {{0}};
    CHECK(hkm_tokenizer_encode(t, text, strlen(text), 0, &ids, &n, &err) == HKM_OK, "%s", err.msg);
    CHECK(hkm_tokenizer_decode(t, ids, n, 1, &out, NULL, &err) == HKM_OK, "%s", err.msg);
    CHECK(out && strcmp(out, "user\nhi") == 0, "skip_special: got \"%s\"", out ? out : "");
    free(out);
    free(ids);
    hkm_tokenizer_free(t);
}

static void test_gguf(void) {
    char buf[1024];
    const char *model = test_default_model(buf, sizeof buf);
    if (!model) {
        printf("skipping GGUF tokenizer: default model not found (set HUBKV_MODEL_GGUF)\n");
        return;
    }
    hkm_tokenizer *t = NULL;
    hkm_err err = {{0}};
    hkm_status st = hkm_tokenizer_load(model, &t, &err);
    CHECK(st == HKM_OK, "load %s: %s", model, err.msg);
    if (!t) return;
    check_golden(t, "smollm2");
    char path[1024];
    cJSON *cases = load_json(test_data("tokenizer/smollm2.cases.json", path, sizeof path));
    if (cases) {
        CHECK(hkm_tokenizer_bos(t) == cJSON_GetObjectItem(cases, "bos_id")->valueint, "smollm2: bos %d",
              hkm_tokenizer_bos(t));
        CHECK(hkm_tokenizer_eos(t) == cJSON_GetObjectItem(cases, "eos_id")->valueint, "smollm2: eos %d",
              hkm_tokenizer_eos(t));
        cJSON_Delete(cases);
    }
    hkm_tokenizer_free(t);
}

/* ---------------------------------------------------------------- speed */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* 1 MB of reST-like text must encode in well under a couple of seconds
 * (a quadratic BPE or regex scan would take minutes), and round-trip. */
static void test_speed(void) {
    hkm_tokenizer *t = load_fixture("llama3.tokenizer.json");
    char path[1024];
    size_t flen = 0;
    char *src = test_slurp(test_data("tokenizer/llama3.tokenizer.json", path, sizeof path), &flen);
    if (!t || !src) {
        hkm_tokenizer_free(t);
        free(src);
        return;
    }
    size_t len = 1 << 20;
    char *text = malloc(len + 1);
    for (size_t i = 0; i < len; i++) { /* the fixture's JSON: words, symbols, long runs */
        unsigned char c = (unsigned char)src[i % flen];
        text[i] = c < 0x80 ? (char)c : ' ';
    }
    text[len] = '\0';
    int32_t *ids = NULL;
    size_t n = 0;
    hkm_err err = {{0}};
    double t0 = now_s();
    hkm_status st = hkm_tokenizer_encode(t, text, len, 0, &ids, &n, &err);
    double dt = now_s() - t0;
    printf("encode 1 MiB: %zu ids in %.3f s\n", n, dt);
    CHECK(st == HKM_OK && n > 0, "encode 1 MiB: %s", err.msg);
    CHECK(dt < 2.0, "encode 1 MiB took %.2f s (expected < 2 s)", dt);
    char *back = NULL;
    size_t blen = 0;
    st = hkm_tokenizer_decode(t, ids, n, 0, &back, &blen, &err);
    CHECK(st == HKM_OK && blen == len && memcmp(back, text, len) == 0, "1 MiB round trip failed");
    free(back);
    free(ids);
    free(text);
    free(src);
    hkm_tokenizer_free(t);
}

/* ---------------------------------------------------------------- bad input */

/* Load path expecting status want and a message containing each needle. */
static void expect_fail(const char *path, hkm_status want, const char *needle1, const char *needle2) {
    hkm_tokenizer *t = NULL;
    hkm_err err = {{0}};
    hkm_status st = hkm_tokenizer_load(path, &t, &err);
    CHECK(st == want, "load %s: status %s, expected %s (%s)", path, hkm_status_str(st), hkm_status_str(want),
          err.msg);
    CHECK(t == NULL, "load %s: no tokenizer expected on failure", path);
    CHECK(strstr(err.msg, needle1) != NULL, "load %s: message \"%s\" lacks \"%s\"", path, err.msg, needle1);
    if (needle2)
        CHECK(strstr(err.msg, needle2) != NULL, "load %s: message \"%s\" lacks \"%s\"", path, err.msg, needle2);
    hkm_tokenizer_free(t);
}

static void write_json(const char *name, const cJSON *j, char *path, size_t cap) {
    char *s = cJSON_PrintUnformatted(j);
    write_file(tmp_path(name, path, cap), s, strlen(s));
    free(s);
}

/* A small valid byte-level BPE as JSON, for targeted breakage. */
static cJSON *tiny_tokenizer(void) {
    return cJSON_Parse("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"a b\"]},"
                       "\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false},"
                       "\"decoder\":{\"type\":\"ByteLevel\"}}");
}

static void test_bad_files(void) {
    char src_path[1024], path[1024];
    size_t len = 0;
    char *src = test_slurp(test_data("tokenizer/llama3.tokenizer.json", src_path, sizeof src_path), &len);
    CHECK(src != NULL, "cannot read %s", src_path);
    if (!src) return;

    write_file(tmp_path("truncated.json", path, sizeof path), src, len / 2);
    expect_fail(path, HKM_ERR_FORMAT, path, "JSON");
    expect_fail("/nonexistent/tokenizer.json", HKM_ERR_IO, "/nonexistent/tokenizer.json", NULL);

    cJSON *j = cJSON_Parse(src);
    cJSON *pre = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "pre_tokenizer"), "pretokenizers");
    cJSON_ReplaceItemInArray(pre, 1, cJSON_Parse("{\"type\":\"Whitespace\"}"));
    write_json("bad_pre.json", j, path, sizeof path);
    expect_fail(path, HKM_ERR_UNSUPPORTED, "pre_tokenizer.pretokenizers[1].type", "Whitespace");
    cJSON_Delete(j);

    j = cJSON_Parse(src);
    cJSON_DeleteItemFromObject(cJSON_GetObjectItem(j, "model"), "vocab");
    write_json("no_vocab.json", j, path, sizeof path);
    expect_fail(path, HKM_ERR_MISSING, "model.vocab", path);
    cJSON_Delete(j);

    j = cJSON_Parse(src);
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(j, "model"), "type", cJSON_CreateString("Unigram"));
    write_json("unigram.json", j, path, sizeof path);
    expect_fail(path, HKM_ERR_UNSUPPORTED, "model.type", "Unigram");
    cJSON_Delete(j);

    j = cJSON_Parse(src);
    cJSON_ReplaceItemInObject(j, "normalizer", cJSON_Parse("{\"type\":\"Lowercase\"}"));
    write_json("lowercase.json", j, path, sizeof path);
    expect_fail(path, HKM_ERR_UNSUPPORTED, "normalizer.type", "Lowercase");
    cJSON_Delete(j);

    j = tiny_tokenizer();
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(j, "model"), "merges", cJSON_Parse("[\"a zz\"]"));
    write_json("merge_unknown.json", j, path, sizeof path);
    expect_fail(path, HKM_ERR_FORMAT, "\"zz\" is not in the vocabulary", "merges[0]");
    cJSON_Delete(j);

    j = tiny_tokenizer();
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(j, "model"), "merges", cJSON_Parse("[[\"b\", \"a\"]]"));
    write_json("merge_result_unknown.json", j, path, sizeof path);
    expect_fail(path, HKM_ERR_FORMAT, "merged token \"ba\"", "merges[0]");
    cJSON_Delete(j);

    j = tiny_tokenizer();
    cJSON_ReplaceItemInObject(j, "pre_tokenizer", cJSON_Parse("{\"type\":\"Sequence\",\"pretokenizers\":["
        "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(unclosed\"},\"behavior\":\"Isolated\"},"
        "{\"type\":\"ByteLevel\",\"use_regex\":false}]}"));
    write_json("bad_regex.json", j, path, sizeof path);
    expect_fail(path, HKM_ERR_FORMAT, "(unclosed", path);
    cJSON_Delete(j);

    j = tiny_tokenizer();
    cJSON_DeleteItemFromObject(j, "pre_tokenizer");
    write_json("no_bytelevel.json", j, path, sizeof path);
    expect_fail(path, HKM_ERR_UNSUPPORTED, "ByteLevel", path);
    cJSON_Delete(j);

    write_file(tmp_path("empty.json", path, sizeof path), "", 0);
    expect_fail(path, HKM_ERR_FORMAT, path, NULL);
    write_file(tmp_path("array.json", path, sizeof path), "[1,2]", 5);
    expect_fail(path, HKM_ERR_FORMAT, path, NULL);
    free(src);
}

/* A directory holding tokenizer.json (+ tokenizer_config.json naming EOS). */
static void test_directory(void) {
    char src_path[1024], path[1024];
    size_t len = 0;
    char *src = test_slurp(test_data("tokenizer/llama3.tokenizer.json", src_path, sizeof src_path), &len);
    if (!src) return;
    write_file(tmp_path("tokenizer.json", path, sizeof path), src, len);
    const char *cfg = "{\"bos_token\": \"<|begin_of_text|>\", \"eos_token\": {\"content\": \"<|eot_id|>\"}}";
    write_file(tmp_path("tokenizer_config.json", path, sizeof path), cfg, strlen(cfg));
    hkm_tokenizer *t = NULL;
    hkm_err err = {{0}};
    CHECK(hkm_tokenizer_load(g_tmpdir, &t, &err) == HKM_OK, "load dir %s: %s", g_tmpdir, err.msg);
    if (t) {
        CHECK(hkm_tokenizer_eos(t) == hkm_tokenizer_token_id(t, "<|eot_id|>"), "eos from tokenizer_config.json: %d",
              hkm_tokenizer_eos(t));
        CHECK(hkm_tokenizer_token_id(t, "<|eot_id|>") >= 0, "<|eot_id|> must exist");
    }
    hkm_tokenizer_free(t);
    unlink(tmp_path("tokenizer.json", path, sizeof path));
    unlink(tmp_path("tokenizer_config.json", path, sizeof path));
    free(src);
}

/* Bad arguments to encode/decode give an error, never a crash. */
static void test_bad_calls(void) {
    hkm_tokenizer *t = load_fixture("llama3.tokenizer.json");
    if (!t) return;
    hkm_err err = {{0}};
    int32_t bad[2] = {5, 999999};
    char *out = NULL;
    hkm_status st = hkm_tokenizer_decode(t, bad, 2, 0, &out, NULL, &err);
    CHECK(st == HKM_ERR_ARG && out == NULL, "decode of id 999999 must fail with HKM_ERR_ARG");
    CHECK(strstr(err.msg, "999999") && strstr(err.msg, "3001"), "decode message \"%s\" must name id and vocab size",
          err.msg);
    int32_t neg = -1;
    CHECK(hkm_tokenizer_decode(t, &neg, 1, 0, &out, NULL, &err) == HKM_ERR_ARG, "decode of -1 must fail");
    int32_t *ids = NULL;
    size_t n = 0;
    st = hkm_tokenizer_encode(t, "ok \xff\xfe bad", 9, 0, &ids, &n, &err);
    CHECK(st == HKM_ERR_ARG && ids == NULL, "invalid UTF-8 must fail with HKM_ERR_ARG (%s)", err.msg);
    CHECK(strstr(err.msg, "UTF-8") != NULL, "message \"%s\" must say UTF-8", err.msg);
    CHECK(hkm_tokenizer_encode(t, NULL, 3, 0, &ids, &n, &err) == HKM_ERR_ARG, "NULL text must fail");
    CHECK(hkm_tokenizer_load(NULL, &t, &err) == HKM_ERR_ARG, "NULL path must fail");
    hkm_tokenizer_free(t);
    hkm_tokenizer_free(NULL);
}

static void cleanup_tmp(void) {
    const char *names[] = {"truncated.json", "bad_pre.json", "no_vocab.json", "unigram.json", "lowercase.json",
                           "merge_unknown.json", "merge_result_unknown.json", "bad_regex.json",
                           "no_bytelevel.json", "empty.json", "array.json"};
    char path[1024];
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) unlink(tmp_path(names[i], path, sizeof path));
    rmdir(g_tmpdir);
}

int main(void) {
    snprintf(g_tmpdir, sizeof g_tmpdir, "/tmp/hkm_tok_XXXXXX");
    if (!mkdtemp(g_tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_llama3();
    test_qwen2();
    test_skip_special();
    test_bad_files();
    test_directory();
    test_bad_calls();
    test_speed();
    test_gguf();
    cleanup_tmp();
    return test_summary("test_tokenizer");
}
