/* Fuzz entry points: write the input where a loader expects a file, load it
 * through the engine's own readers, use what loaded (metadata, tensors,
 * tokenizer) and check the invariants the API promises. Shared by the
 * libFuzzer targets and the regression test, so a reproducer takes exactly
 * the path the fuzzer took. */
#define _XOPEN_SOURCE 700 /* nftw */
#include "fuzz_entries.h"
#include "hkm_internal.h"

#include <cjson/cJSON.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef HUBKV_FUZZ_DATA_DIR
#define HUBKV_FUZZ_DATA_DIR "tests/data"
#endif

/* Tensors above this many elements are looked at but not read: libFuzzer's
 * memory limit would otherwise report big (valid) allocations. */
#define FZ_MAX_ELEMS (1u << 20)
/* Models above this many parameters are not loaded, for the same reason. */
#define FZ_MAX_PARAMS (4.0 * 1024 * 1024)
#define FZ_MAX_NAMES 512

/* The micro llama of the safetensors seeds (tests/fuzz/make_seeds.py MICRO). */
static const char MICRO_CONFIG[] =
    "{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\",\"hidden_size\":8,"
    "\"num_hidden_layers\":1,\"num_attention_heads\":2,\"num_key_value_heads\":1,\"head_dim\":4,"
    "\"intermediate_size\":16,\"vocab_size\":16,\"max_position_embeddings\":64,"
    "\"rms_norm_eps\":1e-5,\"rope_theta\":10000.0,\"tie_word_embeddings\":false}";

/* ---------------------------------------------------------------- failure */

static void fz_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fz_die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fuzz invariant violated: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    abort();
}

/* A failed call must say why (the engine's contract). FZ_VERBOSE=1 prints
 * every outcome, to see how deep the seeds get. */
static void expect_msg(hkm_status st, const hkm_err *err, const char *call) {
    static int verbose = -1;
    if (verbose < 0) verbose = getenv("FZ_VERBOSE") != NULL;
    if (verbose) fprintf(stderr, "  %s: %s %s\n", call, hkm_status_str(st), st ? err->msg : "");
    if (st != HKM_OK && err->msg[0] == 0) fz_die("%s failed (%s) with an empty message", call, hkm_status_str(st));
}

/* ---------------------------------------------------------------- scratch files */

static char g_root[256];

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static void cleanup(void) {
    if (g_root[0]) nftw(g_root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Per-process scratch directory, under FZ_SCRATCH (scripts/fuzz.sh removes
 * it, with what crashed runs left), else on tmpfs when there is one. */
static const char *root_dir(void) {
    if (g_root[0]) return g_root;
    const char *base = getenv("FZ_SCRATCH");
    if (!base || !*base) base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
    snprintf(g_root, sizeof g_root, "%s/hubkv-fuzz-XXXXXX", base ? base : "/tmp");
    if (!mkdtemp(g_root)) fz_die("cannot create a scratch directory %s", g_root);
    atexit(cleanup);
    return g_root;
}

static const char *scratch(const char *rel, char *buf, size_t cap) {
    snprintf(buf, cap, "%s/%s", root_dir(), rel);
    return buf;
}

static void mkdir_in(const char *rel) {
    char p[512];
    mkdir(scratch(rel, p, sizeof p), 0700);
}

static void write_file(const char *path, const void *data, size_t size) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) fz_die("cannot write %s", path);
    const char *p = data;
    while (size > 0) {
        ssize_t n = write(fd, p, size);
        if (n <= 0) fz_die("short write to %s", path);
        p += n;
        size -= (size_t)n;
    }
    close(fd);
}

static const char *data_dir(void) {
    const char *d = getenv("HUBKV_TEST_DATA");
    return d && *d ? d : HUBKV_FUZZ_DATA_DIR;
}

static void copy_file(const char *from, const char *to) {
    FILE *f = fopen(from, "rb");
    if (!f) fz_die("missing test data %s (set HUBKV_TEST_DATA)", from);
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) fwrite(chunk, 1, n, m);
    fclose(f);
    fclose(m);
    write_file(to, buf, len);
    free(buf);
}

/* ---------------------------------------------------------------- shared checks */

/* Element count of a tensor's dims, or 0 when it is above the cap. */
static size_t capped_elems(const hkm_tensor_info *ti) {
    if (ti->ndim < 0 || ti->ndim > 8) fz_die("tensor info: ndim %d outside 0..8", ti->ndim);
    uint64_t n = 1;
    for (int i = 0; i < ti->ndim; i++) {
        if (ti->dims[i] < 0) fz_die("tensor info: negative dim %lld", (long long)ti->dims[i]);
        if (ti->dims[i] > 0 && n > FZ_MAX_ELEMS / (uint64_t)ti->dims[i]) return 0;
        n *= (uint64_t)ti->dims[i];
    }
    return n <= FZ_MAX_ELEMS ? (size_t)n : 0;
}

typedef hkm_status (*info_fn)(const void *src, const char *name, hkm_tensor_info *ti, hkm_err *err);
typedef hkm_status (*read_fn)(const void *src, const char *name, float *dst, size_t n, hkm_err *err);

/* Look a tensor up and read it whole; a wrong count must be refused. */
static void read_tensor(const void *src, info_fn info, read_fn rd, const char *name) {
    hkm_err err = {{0}};
    hkm_tensor_info ti;
    hkm_status st = info(src, name, &ti, &err);
    expect_msg(st, &err, "tensor info");
    if (st != HKM_OK) return;
    size_t n = capped_elems(&ti);
    if (n == 0) return;
    float *dst = malloc((n + 1) * sizeof *dst);
    if (!dst) return;
    err.msg[0] = 0;
    st = rd(src, name, dst, n, &err);
    expect_msg(st, &err, "tensor read");
    if (st != HKM_OK && st != HKM_ERR_UNSUPPORTED && st != HKM_ERR_SHAPE)
        fz_die("tensor '%s' read gave %s for its own element count", name, hkm_status_str(st));
    if (st == HKM_OK) {
        volatile float sum = 0; /* touch every element: uninitialised reads show under MSan/valgrind */
        for (size_t i = 0; i < n; i++) sum += dst[i];
        (void)sum;
        if (rd(src, name, dst, n + 1, &err) == HKM_OK) fz_die("tensor '%s' read with a wrong count succeeded", name);
    }
    free(dst);
}

static void check_ids(const int32_t *ids, size_t n, int vocab, const char *what) {
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= vocab) fz_die("%s: id %d outside [0, %d)", what, ids[i], vocab);
}

/* Encode then decode; returns the decoded text (caller frees) or NULL. */
static char *round_trip(const hkm_tokenizer *t, const char *text, size_t len, int add_bos, size_t *out_len) {
    hkm_err err = {{0}};
    int32_t *ids = NULL;
    size_t n = 0;
    hkm_status st = hkm_tokenizer_encode(t, text, len, add_bos, &ids, &n, &err);
    expect_msg(st, &err, "encode");
    if (st != HKM_OK) return NULL;
    check_ids(ids, n, hkm_tokenizer_vocab_size(t), "encode");
    char *dec = NULL;
    st = hkm_tokenizer_decode(t, ids, n, 0, &dec, out_len, &err);
    expect_msg(st, &err, "decode");
    free(ids);
    if (st == HKM_OK && strlen(dec) > *out_len) fz_die("decode: strlen %zu > len %zu", strlen(dec), *out_len);
    return st == HKM_OK ? dec : NULL;
}

/* Use a freshly loaded tokenizer the way a tool would. */
static void exercise_tokenizer(const hkm_tokenizer *t) {
    int vocab = hkm_tokenizer_vocab_size(t);
    if (vocab <= 0) fz_die("loaded tokenizer has vocab size %d", vocab);
    int32_t bos = hkm_tokenizer_bos(t), eos = hkm_tokenizer_eos(t);
    if (bos < -1 || bos >= vocab || eos < -1 || eos >= vocab) fz_die("bos %d / eos %d outside [-1, %d)", bos, eos, vocab);
    int32_t im = hkm_tokenizer_token_id(t, "<|im_end|>");
    if (im < -1 || im >= vocab) fz_die("token_id outside [-1, %d)", vocab);
    static const char *const texts[] = {"Hello world 123", "<|im_end|><|endoftext|> ab\n\n  x", "caf\xc3\xa9 \xe2\x82\xac",
                                        "\xff\xfe bad utf8", ""};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        size_t len = 0;
        free(round_trip(t, texts[i], strlen(texts[i]), (int)(i & 1), &len));
    }
    /* Every id decodes (up to a few hundred), out-of-range ids are refused. */
    int n = vocab < 512 ? vocab : 512;
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    if (!ids) return;
    for (int i = 0; i < n; i++) ids[i] = i;
    hkm_err err = {{0}};
    char *dec = NULL;
    size_t len = 0;
    hkm_status st = hkm_tokenizer_decode(t, ids, (size_t)n, 1, &dec, &len, &err);
    expect_msg(st, &err, "decode of every id");
    free(dec);
    int32_t bad[2] = {-1, vocab};
    for (int i = 0; i < 2; i++) {
        dec = NULL;
        if (hkm_tokenizer_decode(t, &bad[i], 1, 0, &dec, &len, &err) == HKM_OK)
            fz_die("decode accepted id %d (vocab %d)", bad[i], vocab);
        free(dec);
    }
    free(ids);
}

/* ---------------------------------------------------------------- GGUF */

static hkm_status gguf_info(const void *g, const char *n, hkm_tensor_info *ti, hkm_err *e) {
    return hkm_gguf_info(g, n, ti, e);
}
static hkm_status gguf_read(const void *g, const char *n, float *d, size_t k, hkm_err *e) {
    return hkm_gguf_read_f32(g, n, d, k, e);
}

static const char *const GGUF_KEYS[] = {
    "general.architecture", "general.alignment", "general.name",
    "tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens", "tokenizer.ggml.token_type",
    "tokenizer.ggml.merges", "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
    "tokenizer.ggml.add_bos_token", "test.u8", "test.i8", "test.u16", "test.i16", "test.u32", "test.i32",
    "test.f32", "test.bool", "test.str", "test.u64", "test.i64", "test.f64", "test.big_u64",
    "test.arr_i16", "test.arr_u32", "test.arr_str", "test.arr_f32", "test.nested"};
static const char *const GGUF_ARCH_KEYS[] = {
    "block_count", "embedding_length", "feed_forward_length", "attention.head_count",
    "attention.head_count_kv", "attention.key_length", "attention.value_length", "context_length",
    "attention.layer_norm_rms_epsilon", "rope.freq_base", "rope.scaling.type", "rope.scaling.factor",
    "vocab_size", "rope.dimension_count"};
static const char *const GGUF_TENSORS[] = {
    "t.f32", "t.f16", "t.q4_0", "t.q4_1", "t.q5_0", "t.q5_1", "t.q8_0", "t.bf16", "t.q2_k", "t.q3_k",
    "t.q4_k", "t.q5_k", "t.q6_k", "t.f32_3d", "token_embd.weight", "output.weight", "output_norm.weight"};
static const char *const GGUF_BLK[] = {
    "attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight", "attn_norm.weight",
    "ffn_norm.weight", "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight", "attn_q.bias",
    "attn_k.bias", "attn_v.bias", "attn_q_norm.weight", "attn_k_norm.weight"};

/* Every getter on one key; the answers must agree with has_key. */
static void gguf_key(const hkm_gguf *g, const char *key) {
    hkm_err err = {{0}};
    int has = hkm_gguf_has_key(g, key);
    int64_t i64;
    float f;
    const char *s;
    size_t len, count;
    const char **strs;
    const size_t *lens;
    int32_t *vals = NULL;
    hkm_status st[5];
    st[0] = hkm_gguf_get_i64(g, key, &i64, &err);
    st[1] = hkm_gguf_get_f32(g, key, &f, &err);
    st[2] = hkm_gguf_get_str(g, key, &s, &len, &err);
    st[3] = hkm_gguf_get_str_array(g, key, &count, &strs, &lens, &err);
    st[4] = hkm_gguf_get_i32_array(g, key, &count, &vals, &err);
    for (int i = 0; i < 5; i++) {
        if (!has && st[i] != HKM_ERR_MISSING) fz_die("key '%s' absent but getter %d gave %s", key, i, hkm_status_str(st[i]));
        if (has && st[i] == HKM_ERR_MISSING) fz_die("key '%s' present but getter %d said missing", key, i);
    }
    if (st[2] == HKM_OK && (s[len] != 0 || strlen(s) > len)) fz_die("key '%s': string not NUL-terminated at len", key);
    if (st[3] == HKM_OK) {
        volatile unsigned sum = 0;
        for (size_t i = 0; i < count; i++)
            for (size_t k = 0; k < lens[i]; k++) sum += (unsigned char)strs[i][k];
        (void)sum;
    }
    free(vals);
}

static void gguf_walk_keys(const hkm_gguf *g) {
    for (size_t i = 0; i < sizeof GGUF_KEYS / sizeof *GGUF_KEYS; i++) gguf_key(g, GGUF_KEYS[i]);
    static const char *const archs[] = {"llama", "qwen2", "qwen3"};
    char key[128];
    for (size_t a = 0; a < 3; a++)
        for (size_t i = 0; i < sizeof GGUF_ARCH_KEYS / sizeof *GGUF_ARCH_KEYS; i++) {
            snprintf(key, sizeof key, "%s.%s", archs[a], GGUF_ARCH_KEYS[i]);
            gguf_key(g, key);
        }
}

static void gguf_read_tensors(const hkm_gguf *g) {
    for (size_t i = 0; i < sizeof GGUF_TENSORS / sizeof *GGUF_TENSORS; i++)
        read_tensor(g, gguf_info, gguf_read, GGUF_TENSORS[i]);
    char name[96];
    for (int b = 0; b < 2; b++)
        for (size_t i = 0; i < sizeof GGUF_BLK / sizeof *GGUF_BLK; i++) {
            snprintf(name, sizeof name, "blk.%d.%s", b, GGUF_BLK[i]);
            read_tensor(g, gguf_info, gguf_read, name);
        }
}

static double model_params(const hkm_config *c) {
    double d = c->d_model, q = (double)c->n_heads * c->head_dim, kv = (double)c->n_kv_heads * c->head_dim;
    return 2.0 * c->vocab_size * d + c->n_layers * (2 * d * q + 2 * d * kv + 3 * d * c->d_ff + 2 * d + q + 2 * kv);
}

static void check_config(const hkm_config *c, const char *from) {
    if (c->n_layers <= 0 || c->d_model <= 0 || c->n_heads <= 0 || c->n_kv_heads <= 0 || c->head_dim <= 0 ||
        c->d_ff <= 0 || c->vocab_size <= 0 || !(c->rms_eps > 0))
        fz_die("%s accepted a config with a non-positive size", from);
    if (c->n_heads % c->n_kv_heads) fz_die("%s accepted n_heads %d, n_kv_heads %d", from, c->n_heads, c->n_kv_heads);
}

static void load_model(const char *path, const char *from) {
    hkm_err err = {{0}};
    hkm_model *m = NULL;
    hkm_status st = hkm_model_load(path, &m, &err);
    expect_msg(st, &err, "hkm_model_load");
    if (st == HKM_OK) check_config(hkm_model_config(m), from);
    hkm_model_free(m);
}

int fz_gguf(const uint8_t *data, size_t size) {
    char path[512];
    write_file(scratch("in.gguf", path, sizeof path), data, size);
    hkm_err err = {{0}};
    hkm_gguf *g = NULL;
    hkm_status st = hkm_gguf_open(path, &g, &err);
    expect_msg(st, &err, "hkm_gguf_open");
    if (st != HKM_OK) return 0;
    gguf_walk_keys(g);
    hkm_config cfg;
    err.msg[0] = 0;
    st = hkm_gguf_config(g, &cfg, &err);
    expect_msg(st, &err, "hkm_gguf_config");
    int small_model = st == HKM_OK && model_params(&cfg) <= FZ_MAX_PARAMS;
    if (st == HKM_OK) check_config(&cfg, "hkm_gguf_config");
    hkm_tok_spec spec = {0};
    spec.bos_id = spec.eos_id = -1;
    err.msg[0] = 0;
    st = hkm_gguf_tok_spec(g, &spec, &err);
    expect_msg(st, &err, "hkm_gguf_tok_spec");
    if (st == HKM_OK) {
        hkm_tokenizer *t = NULL;
        st = hkm_tokenizer_from_spec(&spec, &t, &err); /* owns the spec from here */
        expect_msg(st, &err, "hkm_tokenizer_from_spec");
        if (st == HKM_OK) exercise_tokenizer(t);
        hkm_tokenizer_free(t);
    } else {
        hkm_tok_spec_clear(&spec);
    }
    gguf_read_tensors(g);
    hkm_gguf_free(g);
    if (small_model) load_model(path, "hkm_model_load (gguf)");
    return 0;
}

/* ---------------------------------------------------------------- safetensors */

static hkm_status st_info(const void *s, const char *n, hkm_tensor_info *ti, hkm_err *e) {
    return hkm_st_info(s, n, ti, e);
}
static hkm_status st_read(const void *s, const char *n, float *d, size_t k, hkm_err *e) {
    return hkm_st_read_f32(s, n, d, k, e);
}

/* Keys of a JSON object (the harness's own view of what a file names). */
static int json_keys(cJSON *obj, char **names, int n, int cap) {
    const cJSON *e;
    cJSON_ArrayForEach(e, obj) {
        if (n < cap && e->string) names[n++] = strdup(e->string);
    }
    return n;
}

static int header_names(const uint8_t *data, size_t size, char **names, int n) {
    if (size < 8) return n;
    uint64_t h = 0;
    for (int i = 7; i >= 0; i--) h = (h << 8) | data[i];
    if (h > size - 8) return n;
    cJSON *root = cJSON_ParseWithLength((const char *)data + 8, (size_t)h);
    n = json_keys(root, names, n, FZ_MAX_NAMES);
    cJSON_Delete(root);
    return n;
}

static int index_names(const char *text, size_t len, char **names, int n) {
    cJSON *root = cJSON_ParseWithLength(text, len);
    n = json_keys(cJSON_GetObjectItemCaseSensitive(root, "weight_map"), names, n, FZ_MAX_NAMES);
    cJSON_Delete(root);
    return n;
}

/* Two directories: st1 (a single file, micro config) and st2 (an index beside
 * the real shards of tests/data/tiny/llama-sharded and its config). */
static void setup_st_dirs(void) {
    static int done;
    if (done) return;
    done = 1;
    char p[512], from[1024];
    mkdir_in("st1");
    mkdir_in("st2");
    write_file(scratch("st1/config.json", p, sizeof p), MICRO_CONFIG, sizeof MICRO_CONFIG - 1);
    static const char *const files[] = {"config.json", "model-00001-of-00003.safetensors",
                                        "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors"};
    for (int i = 0; i < 4; i++) {
        char rel[128];
        snprintf(from, sizeof from, "%s/tiny/llama-sharded/%s", data_dir(), files[i]);
        snprintf(rel, sizeof rel, "st2/%s", files[i]);
        copy_file(from, scratch(rel, p, sizeof p));
    }
}

static const uint8_t *find_sep(const uint8_t *data, size_t size) {
    size_t k = sizeof FZ_SHARD_SEP - 1;
    for (size_t i = 0; i + k <= size; i++)
        if (memcmp(data + i, FZ_SHARD_SEP, k) == 0) return data + i;
    return NULL;
}

int fz_safetensors(const uint8_t *data, size_t size) {
    setup_st_dirs();
    char path[512], dir[512];
    char *names[FZ_MAX_NAMES];
    int n_names = 0;
    int index = size > 0 && data[0] == '{';
    if (index) {
        const uint8_t *sep = find_sep(data, size);
        size_t ilen = sep ? (size_t)(sep - data) : size;
        write_file(scratch("st2/model.safetensors.index.json", path, sizeof path), data, ilen);
        scratch("st2/s.safetensors", path, sizeof path);
        if (sep) {
            const uint8_t *shard = sep + sizeof FZ_SHARD_SEP - 1;
            size_t slen = size - (size_t)(shard - data);
            write_file(path, shard, slen);
            n_names = header_names(shard, slen, names, n_names);
        } else {
            unlink(path);
        }
        n_names = index_names((const char *)data, ilen, names, n_names);
        scratch("st2", dir, sizeof dir);
    } else {
        write_file(scratch("st1/model.safetensors", path, sizeof path), data, size);
        n_names = header_names(data, size, names, n_names);
        scratch("st1", dir, sizeof dir);
    }
    hkm_err err = {{0}};
    hkm_st *st = NULL;
    hkm_status s = hkm_st_open(dir, &st, &err);
    expect_msg(s, &err, "hkm_st_open");
    if (s == HKM_OK) {
        for (int i = 0; i < n_names; i++) {
            read_tensor(st, st_info, st_read, names[i]);
            hkm_tensor_info ti;
            if (hkm_st_info(st, names[i], &ti, &err) == HKM_OK && !hkm_st_file(st, names[i]))
                fz_die("tensor '%s' has info but no file", names[i]);
        }
        hkm_st_free(st);
        load_model(dir, "hkm_model_load (safetensors)");
    }
    for (int i = 0; i < n_names; i++) free(names[i]);
    return 0;
}

/* ---------------------------------------------------------------- config.json */

int fz_config_json(const uint8_t *data, size_t size) {
    char path[512];
    write_file(scratch("config.json", path, sizeof path), data, size);
    hkm_err err = {{0}};
    hkm_config cfg;
    hkm_status st = hkm_config_load_json(path, &cfg, &err);
    expect_msg(st, &err, "hkm_config_load_json");
    if (st == HKM_OK) check_config(&cfg, "hkm_config_load_json");
    return 0;
}

/* ---------------------------------------------------------------- tokenizer */

int fz_tokenizer_json(const uint8_t *data, size_t size) {
    char path[512];
    mkdir_in("tok");
    write_file(scratch("tok/tokenizer.json", path, sizeof path), data, size);
    hkm_err err = {{0}};
    hkm_tokenizer *t = NULL;
    hkm_status st = hkm_tokenizer_load(path, &t, &err);
    expect_msg(st, &err, "hkm_tokenizer_load");
    if (st == HKM_OK) exercise_tokenizer(t);
    hkm_tokenizer_free(t);
    return 0;
}

static const hkm_tokenizer *fixed_tokenizer(int which) {
    static hkm_tokenizer *toks[2];
    static const char *const names[2] = {"llama3", "qwen2"};
    if (!toks[which]) {
        char path[1024];
        hkm_err err = {{0}};
        snprintf(path, sizeof path, "%s/tokenizer/%s.tokenizer.json", data_dir(), names[which]);
        if (hkm_tokenizer_load(path, &toks[which], &err) != HKM_OK)
            fz_die("cannot load the fixed tokenizer: %s (set HUBKV_TEST_DATA)", err.msg);
    }
    return toks[which];
}

static int is_ascii(const uint8_t *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] >= 0x80) return 0;
    return 1;
}

/* Byte-level BPE is lossless: decode(encode(text)) == text for ASCII (NFC,
 * the only normalizer of the two, leaves ASCII alone). */
int fz_tokenizer_encode(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    const hkm_tokenizer *t = fixed_tokenizer(data[0] & 1);
    const char *text = (const char *)data + 1;
    size_t len = size - 1, out_len = 0;
    char *dec = round_trip(t, text, len, (data[0] >> 1) & 1, &out_len);
    free(dec);
    dec = round_trip(t, text, len, 0, &out_len);
    if (dec && is_ascii(data + 1, len) && (out_len != len || memcmp(dec, text, len) != 0))
        fz_die("round trip changed ASCII text (%zu bytes in, %zu out)", len, out_len);
    free(dec);
    return 0;
}

/* ---------------------------------------------------------------- registry */

fz_entry fz_entry_by_name(const char *target) {
    static const struct {
        const char *name;
        fz_entry fn;
    } E[] = {{"fuzz_gguf", fz_gguf},
             {"fuzz_safetensors", fz_safetensors},
             {"fuzz_config_json", fz_config_json},
             {"fuzz_tokenizer_json", fz_tokenizer_json},
             {"fuzz_tokenizer_encode", fz_tokenizer_encode}};
    for (size_t i = 0; i < sizeof E / sizeof E[0]; i++)
        if (strcmp(E[i].name, target) == 0) return E[i].fn;
    return NULL;
}
