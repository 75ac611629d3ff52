/* Tokenizer loading: an HF tokenizer.json (byte-level BPE only) parsed with
 * cJSON into an hkm_tok_spec, and hkm_tokenizer_load, which also accepts a
 * directory holding a tokenizer.json or a .gguf file. */
#include "hkm_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

/* GPT-2's split pattern, used by ByteLevel(use_regex=true). */
static const char GPT2_PATTERN[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

#define MAX_VOCAB (1 << 24) /* ids beyond this are surely corrupt; keeps allocation bounded */

typedef struct {
    const char *path;
    hkm_err *err;
    hkm_tok_spec *spec;
    int seen_bytelevel;
} jctx;

/* hkm_fail with the file name in front. */
static hkm_status jfail(const jctx *c, hkm_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static hkm_status jfail(const jctx *c, hkm_status st, const char *fmt, ...) {
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return hkm_fail(c->err, st, "%s: %s", c->path, msg);
}

static const char *jstr(const cJSON *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* ---------------------------------------------------------------- model */

/* Integer id of a JSON number, or -1 if it is not an integer in [0, MAX_VOCAB). */
static int json_id(const cJSON *v) {
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble >= MAX_VOCAB ||
        v->valuedouble != (double)(int)v->valuedouble)
        return -1;
    return (int)v->valuedouble;
}

static hkm_status vocab_size_of(const jctx *c, const cJSON *vocab, const cJSON *added, int *size) {
    int max_id = -1;
    const cJSON *v;
    cJSON_ArrayForEach(v, vocab) {
        int id = json_id(v);
        if (id < 0)
            return jfail(c, HKM_ERR_FORMAT, "model.vocab[\"%s\"]: expected an integer id in [0, %d)",
                         v->string, MAX_VOCAB);
        if (id > max_id) max_id = id;
    }
    int i = 0;
    cJSON_ArrayForEach(v, added) {
        int id = json_id(cJSON_GetObjectItemCaseSensitive(v, "id"));
        if (id < 0)
            return jfail(c, HKM_ERR_FORMAT, "added_tokens[%d].id: expected an integer id in [0, %d)", i,
                         MAX_VOCAB);
        if (id > max_id) max_id = id;
        i++;
    }
    if (max_id < 0) return jfail(c, HKM_ERR_MISSING, "model.vocab: empty (expected token -> id entries)");
    *size = max_id + 1;
    return HKM_OK;
}

static hkm_status parse_vocab(jctx *c, const cJSON *vocab, const cJSON *added) {
    hkm_tok_spec *s = c->spec;
    HKM_TRY(vocab_size_of(c, vocab, added, &s->vocab_size));
    HKM_ALLOC(s->tokens, s->vocab_size, c->err);
    const cJSON *v;
    cJSON_ArrayForEach(v, vocab) {
        int id = json_id(v);
        if (s->tokens[id])
            return jfail(c, HKM_ERR_FORMAT, "model.vocab: id %d given to both \"%s\" and \"%s\"", id,
                         s->tokens[id], v->string);
        if (!(s->tokens[id] = dup_str(v->string))) return jfail(c, HKM_ERR_NOMEM, "out of memory");
    }
    for (int i = 0; i < s->vocab_size; i++) /* ids nobody uses decode to nothing */
        if (!s->tokens[i] && !(s->tokens[i] = dup_str(""))) return jfail(c, HKM_ERR_NOMEM, "out of memory");
    return HKM_OK;
}

/* "a b" or ["a", "b"] -> "a b" (malloc'ed), NULL if malformed. */
static char *merge_str(const cJSON *m) {
    if (cJSON_IsString(m)) return dup_str(m->valuestring);
    if (!cJSON_IsArray(m) || cJSON_GetArraySize(m) != 2) return NULL;
    const cJSON *a = cJSON_GetArrayItem(m, 0), *b = cJSON_GetArrayItem(m, 1);
    if (!cJSON_IsString(a) || !cJSON_IsString(b)) return NULL;
    size_t la = strlen(a->valuestring), lb = strlen(b->valuestring);
    char *s = malloc(la + lb + 2);
    if (!s) return NULL;
    memcpy(s, a->valuestring, la);
    s[la] = ' ';
    memcpy(s + la + 1, b->valuestring, lb + 1);
    return s;
}

static hkm_status parse_merges(jctx *c, const cJSON *merges) {
    hkm_tok_spec *s = c->spec;
    if (!merges) return HKM_OK; /* a BPE without merges is legal: one token per byte */
    if (!cJSON_IsArray(merges)) return jfail(c, HKM_ERR_FORMAT, "model.merges: expected an array");
    int n = cJSON_GetArraySize(merges);
    HKM_ALLOC(s->merges, n, c->err);
    const cJSON *m;
    cJSON_ArrayForEach(m, merges) {
        if (!(s->merges[s->n_merges] = merge_str(m)))
            return jfail(c, HKM_ERR_FORMAT, "model.merges[%d]: expected \"left right\" or [left, right]",
                         s->n_merges);
        s->n_merges++;
    }
    return HKM_OK;
}

/* Options of HF's BPE model that change results and that we do not implement. */
static hkm_status check_bpe_options(const jctx *c, const cJSON *model) {
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(model, "byte_fallback")))
        return jfail(c, HKM_ERR_UNSUPPORTED, "model.byte_fallback: true is not supported (expected false)");
    const char *keys[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        const char *v = jstr(model, keys[i]);
        if (v && v[0])
            return jfail(c, HKM_ERR_UNSUPPORTED, "model.%s: \"%s\" is not supported (expected \"\" or null)",
                         keys[i], v);
    }
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (cJSON_IsNumber(d) && d->valuedouble > 0)
        return jfail(c, HKM_ERR_UNSUPPORTED, "model.dropout: %g is not supported (expected null)", d->valuedouble);
    return HKM_OK;
}

static hkm_status parse_model(jctx *c, const cJSON *root) {
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(model)) return jfail(c, HKM_ERR_MISSING, "model: missing (expected the BPE model object)");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(model, "type");
    if (type && !(cJSON_IsString(type) && strcmp(type->valuestring, "BPE") == 0))
        return jfail(c, HKM_ERR_UNSUPPORTED, "model.type \"%s\" is not supported (expected \"BPE\")",
                     cJSON_IsString(type) ? type->valuestring : "(not a string)");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    if (!vocab) return jfail(c, HKM_ERR_MISSING, "model.vocab: missing (expected a token -> id object)");
    if (!cJSON_IsObject(vocab)) return jfail(c, HKM_ERR_FORMAT, "model.vocab: expected a token -> id object");
    HKM_TRY(check_bpe_options(c, model));
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (added && !cJSON_IsNull(added) && !cJSON_IsArray(added))
        return jfail(c, HKM_ERR_FORMAT, "added_tokens: expected an array");
    HKM_TRY(parse_vocab(c, vocab, cJSON_IsArray(added) ? added : NULL));
    c->spec->ignore_merges = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(model, "ignore_merges"));
    return parse_merges(c, cJSON_GetObjectItemCaseSensitive(model, "merges"));
}

/* ---------------------------------------------------------------- added tokens */

static hkm_status parse_added_one(jctx *c, const cJSON *a, int i) {
    hkm_tok_spec *s = c->spec;
    const char *content = jstr(a, "content");
    if (!content || !content[0])
        return jfail(c, HKM_ERR_MISSING, "added_tokens[%d].content: missing (expected a non-empty string)", i);
    const char *flags[] = {"lstrip", "rstrip", "single_word"};
    for (int k = 0; k < 3; k++)
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(a, flags[k])))
            return jfail(c, HKM_ERR_UNSUPPORTED, "added_tokens[%d].%s: true is not supported (expected false)",
                         i, flags[k]);
    int id = json_id(cJSON_GetObjectItemCaseSensitive(a, "id")); /* checked in vocab_size_of */
    char *copy = dup_str(content);
    if (!copy) return jfail(c, HKM_ERR_NOMEM, "out of memory");
    free(s->tokens[id]); /* the added content is the token's text, whatever model.vocab says */
    s->tokens[id] = copy;
    s->added_ids[s->n_added] = id;
    s->added_special[s->n_added] = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(a, "special"));
    s->n_added++;
    return HKM_OK;
}

static hkm_status parse_added(jctx *c, const cJSON *root) {
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (!cJSON_IsArray(added)) return HKM_OK;
    int n = cJSON_GetArraySize(added), i = 0;
    HKM_ALLOC(c->spec->added_ids, n, c->err);
    HKM_ALLOC(c->spec->added_special, n, c->err);
    const cJSON *a;
    cJSON_ArrayForEach(a, added) HKM_TRY(parse_added_one(c, a, i++));
    return HKM_OK;
}

/* ---------------------------------------------------------------- normalizer, decoder */

/* Text is not normalised: NFC is accepted because the models we serve use it
 * on text that is (nearly always) NFC already. */
static hkm_status parse_normalizer(const jctx *c, const cJSON *n, const char *where) {
    if (!n || cJSON_IsNull(n)) return HKM_OK;
    const char *type = jstr(n, "type");
    if (type && strcmp(type, "NFC") == 0) return HKM_OK;
    if (type && strcmp(type, "Sequence") == 0) {
        const cJSON *v;
        int i = 0;
        cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(n, "normalizers")) {
            char sub[128];
            snprintf(sub, sizeof sub, "%s.normalizers[%d]", where, i++);
            HKM_TRY(parse_normalizer(c, v, sub));
        }
        return HKM_OK;
    }
    return jfail(c, HKM_ERR_UNSUPPORTED, "%s.type \"%s\" is not supported (expected null or \"NFC\")", where,
                 type ? type : "(missing)");
}

static hkm_status parse_decoder(const jctx *c, const cJSON *d) {
    if (!d || cJSON_IsNull(d)) return HKM_OK;
    const char *type = jstr(d, "type");
    if (type && strcmp(type, "ByteLevel") == 0) return HKM_OK;
    return jfail(c, HKM_ERR_UNSUPPORTED, "decoder.type \"%s\" is not supported (expected \"ByteLevel\")",
                 type ? type : "(missing)");
}

/* ---------------------------------------------------------------- pre-tokenizer */

static hkm_status add_pre(jctx *c, hkm_pre_kind kind, const char *pattern) {
    hkm_tok_spec *s = c->spec;
    hkm_pre_step *p = realloc(s->pre, (size_t)(s->n_pre + 1) * sizeof *p);
    if (!p) return jfail(c, HKM_ERR_NOMEM, "out of memory");
    s->pre = p;
    p[s->n_pre].kind = kind;
    p[s->n_pre].pattern = pattern ? dup_str(pattern) : NULL;
    if (pattern && !p[s->n_pre].pattern) return jfail(c, HKM_ERR_NOMEM, "out of memory");
    s->n_pre++;
    return HKM_OK;
}

/* A literal string as a PCRE2 pattern: escape every non-alphanumeric ASCII byte. */
static char *escape_literal(const char *s) {
    char *out = malloc(2 * strlen(s) + 1), *o = out;
    if (!out) return NULL;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch < 0x80 && !((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')))
            *o++ = '\\';
        *o++ = *s;
    }
    *o = '\0';
    return out;
}

static hkm_status parse_split(jctx *c, const cJSON *p, const char *where) {
    const char *behavior = jstr(p, "behavior");
    if (!behavior || strcmp(behavior, "Isolated") != 0)
        return jfail(c, HKM_ERR_UNSUPPORTED, "%s.behavior \"%s\" is not supported (expected \"Isolated\")",
                     where, behavior ? behavior : "(missing)");
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "invert")))
        return jfail(c, HKM_ERR_UNSUPPORTED, "%s.invert: true is not supported (expected false)", where);
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(p, "pattern");
    const char *re = jstr(pat, "Regex"), *lit = jstr(pat, "String");
    if (re) return add_pre(c, HKM_PRE_REGEX, re);
    if (!lit)
        return jfail(c, HKM_ERR_MISSING, "%s.pattern: missing (expected {\"Regex\": ...} or {\"String\": ...})",
                     where);
    char *esc = escape_literal(lit);
    if (!esc) return jfail(c, HKM_ERR_NOMEM, "out of memory");
    hkm_status st = add_pre(c, HKM_PRE_REGEX, esc);
    free(esc);
    return st;
}

static hkm_status parse_bytelevel(jctx *c, const cJSON *p, const char *where) {
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "add_prefix_space")))
        return jfail(c, HKM_ERR_UNSUPPORTED, "%s.add_prefix_space: true is not supported (expected false)", where);
    c->seen_bytelevel = 1;
    const cJSON *use_regex = cJSON_GetObjectItemCaseSensitive(p, "use_regex");
    if (use_regex && cJSON_IsFalse(use_regex)) return HKM_OK;
    return add_pre(c, HKM_PRE_REGEX, GPT2_PATTERN); /* HF's default is use_regex=true */
}

static hkm_status parse_pre(jctx *c, const cJSON *p, const char *where) {
    const char *type = jstr(p, "type");
    if (c->seen_bytelevel)
        return jfail(c, HKM_ERR_UNSUPPORTED, "%s: a step after ByteLevel is not supported (expected ByteLevel last)",
                     where);
    if (type && strcmp(type, "Sequence") == 0) {
        const cJSON *v;
        int i = 0;
        cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(p, "pretokenizers")) {
            char sub[128];
            snprintf(sub, sizeof sub, "%s.pretokenizers[%d]", where, i++);
            HKM_TRY(parse_pre(c, v, sub));
        }
        return HKM_OK;
    }
    if (type && strcmp(type, "Split") == 0) return parse_split(c, p, where);
    if (type && strcmp(type, "ByteLevel") == 0) return parse_bytelevel(c, p, where);
    if (type && strcmp(type, "Digits") == 0)
        return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "individual_digits"))
                   ? add_pre(c, HKM_PRE_DIGITS, NULL)
                   : add_pre(c, HKM_PRE_REGEX, "\\p{N}+");
    return jfail(c, HKM_ERR_UNSUPPORTED,
                 "%s.type \"%s\" is not supported (expected Sequence, Split, ByteLevel or Digits)", where,
                 type ? type : "(missing)");
}

static hkm_status parse_pre_tokenizer(jctx *c, const cJSON *root) {
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    if (p && !cJSON_IsNull(p)) HKM_TRY(parse_pre(c, p, "pre_tokenizer"));
    if (!c->seen_bytelevel)
        return jfail(c, HKM_ERR_UNSUPPORTED,
                     "pre_tokenizer: no ByteLevel step (expected a byte-level BPE tokenizer)");
    return HKM_OK;
}

/* ---------------------------------------------------------------- post-processor, BOS/EOS */

/* id of the token whose text is s, or -1 (added tokens first: they are few). */
static int32_t find_token(const hkm_tok_spec *s, const char *text) {
    for (int i = 0; i < s->n_added; i++)
        if (strcmp(s->tokens[s->added_ids[i]], text) == 0) return s->added_ids[i];
    for (int i = 0; i < s->vocab_size; i++)
        if (strcmp(s->tokens[i], text) == 0) return i;
    return -1;
}

/* TemplateProcessing: a special token before $A is the BOS; none may follow. */
static hkm_status parse_template(jctx *c, const cJSON *p, const char *where) {
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(p, "single"), *item;
    int i = 0, seen_seq = 0, n_lead = 0;
    cJSON_ArrayForEach(item, single) {
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(item, "SpecialToken");
        if (cJSON_GetObjectItemCaseSensitive(item, "Sequence")) {
            seen_seq = 1;
        } else if (sp && !seen_seq && n_lead++ == 0) {
            const char *name = jstr(sp, "id");
            const cJSON *ids = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(p, "special_tokens"), name ? name : ""),
                "ids");
            int32_t id = cJSON_GetArraySize(ids) == 1 ? json_id(cJSON_GetArrayItem(ids, 0))
                                                      : (name ? find_token(c->spec, name) : -1);
            if (id < 0 || id >= c->spec->vocab_size)
                return jfail(c, HKM_ERR_FORMAT, "%s.single[%d]: special token \"%s\" has no id in the vocabulary",
                             where, i, name ? name : "(missing)");
            c->spec->bos_id = id;
            c->spec->add_bos = 1;
        } else {
            return jfail(c, HKM_ERR_UNSUPPORTED,
                         "%s.single[%d]: only one special token before $A is supported (expected a BOS)", where, i);
        }
        i++;
    }
    return HKM_OK;
}

static hkm_status parse_post(jctx *c, const cJSON *p, const char *where) {
    if (!p || cJSON_IsNull(p)) return HKM_OK;
    const char *type = jstr(p, "type");
    if (type && strcmp(type, "ByteLevel") == 0) return HKM_OK; /* only changes offsets */
    if (type && strcmp(type, "TemplateProcessing") == 0) return parse_template(c, p, where);
    if (type && strcmp(type, "Sequence") == 0) {
        const cJSON *v;
        int i = 0;
        cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(p, "processors")) {
            char sub[128];
            snprintf(sub, sizeof sub, "%s.processors[%d]", where, i++);
            HKM_TRY(parse_post(c, v, sub));
        }
        return HKM_OK;
    }
    return jfail(c, HKM_ERR_UNSUPPORTED,
                 "%s.type \"%s\" is not supported (expected TemplateProcessing, ByteLevel or Sequence)", where,
                 type ? type : "(missing)");
}

static char *read_file(const char *path, size_t *len, hkm_err *err, hkm_status *st) {
    FILE *f = fopen(path, "rb");
    *st = HKM_ERR_IO;
    if (!f) {
        hkm_fail(err, HKM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc((size_t)n + 1)) && fread(buf, 1, (size_t)n, f) == (size_t)n) {
        fclose(f);
        buf[n] = '\0';
        *len = (size_t)n;
        *st = HKM_OK;
        return buf;
    }
    *st = buf || n < 0 ? HKM_ERR_IO : HKM_ERR_NOMEM;
    hkm_fail(err, *st, "%s: cannot read %ld bytes", path, n);
    free(buf);
    fclose(f);
    return NULL;
}

static cJSON *parse_json_file(const char *path, hkm_err *err, hkm_status *st) {
    size_t len;
    char *buf = read_file(path, &len, err, st);
    if (!buf) return NULL;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
    if (!root || !cJSON_IsObject(root)) {
        *st = hkm_fail(err, HKM_ERR_FORMAT, "%s: malformed JSON near byte %ld of %zu (expected a JSON object)",
                       path, root ? 0L : (long)(end ? end - buf : 0), len);
        cJSON_Delete(root);
        root = NULL;
    }
    free(buf);
    return root;
}

/* tokenizer_config.json beside the tokenizer names the BOS/EOS tokens as a
 * string or as {"content": ...}. */
static int32_t config_token(const hkm_tok_spec *s, const cJSON *cfg, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    const char *name = cJSON_IsString(v) ? v->valuestring : jstr(v, "content");
    return name ? find_token(s, name) : -1;
}

static void set_bos_eos(const char *path, hkm_tok_spec *s) {
    char cfg_path[4096];
    const char *slash = strrchr(path, '/');
    int dir_len = slash ? (int)(slash - path + 1) : 0;
    snprintf(cfg_path, sizeof cfg_path, "%.*stokenizer_config.json", dir_len, path);
    hkm_status st;
    cJSON *cfg = parse_json_file(cfg_path, NULL, &st); /* optional file */
    if (cfg) {
        int32_t eos = config_token(s, cfg, "eos_token"), bos = config_token(s, cfg, "bos_token");
        if (eos >= 0) s->eos_id = eos;
        if (bos >= 0 && s->bos_id < 0) s->bos_id = bos;
        cJSON_Delete(cfg);
    }
    const char *eos_names[] = {"<|end_of_text|>", "<|endoftext|>", "</s>", "<eos>"};
    for (int i = 0; i < 4 && s->eos_id < 0; i++) s->eos_id = find_token(s, eos_names[i]);
}

static hkm_status json_to_spec(jctx *c, const cJSON *root) {
    HKM_TRY(parse_model(c, root));
    HKM_TRY(parse_added(c, root));
    HKM_TRY(parse_normalizer(c, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), "normalizer"));
    HKM_TRY(parse_pre_tokenizer(c, root));
    HKM_TRY(parse_post(c, cJSON_GetObjectItemCaseSensitive(root, "post_processor"), "post_processor"));
    HKM_TRY(parse_decoder(c, cJSON_GetObjectItemCaseSensitive(root, "decoder")));
    set_bos_eos(c->path, c->spec);
    return HKM_OK;
}

/* ---------------------------------------------------------------- loading */

/* from_spec's messages do not know the file: put its name in front. */
static hkm_status build_from_spec(const char *path, hkm_tok_spec *s, hkm_tokenizer **out, hkm_err *err) {
    hkm_err inner = {{0}};
    hkm_status st = hkm_tokenizer_from_spec(s, out, &inner);
    if (st != HKM_OK) hkm_fail(err, st, "%s: %s", path, inner.msg);
    return st;
}

static hkm_status load_json(const char *path, hkm_tokenizer **out, hkm_err *err) {
    hkm_status st;
    cJSON *root = parse_json_file(path, err, &st);
    if (!root) return st;
    hkm_tok_spec spec = {0};
    spec.bos_id = spec.eos_id = -1;
    jctx c = {.path = path, .err = err, .spec = &spec};
    st = json_to_spec(&c, root);
    cJSON_Delete(root);
    if (st != HKM_OK) {
        hkm_tok_spec_clear(&spec);
        return st;
    }
    return build_from_spec(path, &spec, out, err);
}

static hkm_status load_gguf(const char *path, hkm_tokenizer **out, hkm_err *err) {
    hkm_gguf *g = NULL;
    HKM_TRY(hkm_gguf_open(path, &g, err));
    hkm_tok_spec spec = {0};
    spec.bos_id = spec.eos_id = -1;
    hkm_status st = hkm_gguf_tok_spec(g, &spec, err);
    hkm_gguf_free(g);
    if (st != HKM_OK) {
        hkm_tok_spec_clear(&spec);
        return st;
    }
    return build_from_spec(path, &spec, out, err);
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

hkm_status hkm_tokenizer_load(const char *path, hkm_tokenizer **out, hkm_err *err) {
    if (!path || !out) return hkm_fail(err, HKM_ERR_ARG, "hkm_tokenizer_load: NULL argument");
    *out = NULL;
    struct stat sb;
    if (stat(path, &sb) != 0) return hkm_fail(err, HKM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (S_ISDIR(sb.st_mode)) {
        char file[4096];
        if (snprintf(file, sizeof file, "%s/tokenizer.json", path) >= (int)sizeof file)
            return hkm_fail(err, HKM_ERR_ARG, "%s: path too long", path);
        return load_json(file, out, err);
    }
    if (ends_with(path, ".gguf")) return load_gguf(path, out, err);
    return load_json(path, out, err);
}
