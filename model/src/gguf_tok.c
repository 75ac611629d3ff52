/* Tokenizer spec from GGUF metadata (tokenizer.ggml.*): byte-level BPE only.
 * The pre-tokenizer follows tokenizer.ggml.pre as llama.cpp maps it
 * (llama-vocab.cpp), written with the patterns of the HF tokenizer.json files
 * those names stand for (e.g. smollm = Digits(individual) + ByteLevel regex). */
#include "hkm_internal.h"

#include <string.h>

/* ---------------------------------------------------------------- pre-tokenizers */

/* ByteLevel(use_regex=true), i.e. GPT-2's split. */
static const char GPT2_RE[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
static const char LLAMA3_RE[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}"
    "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char QWEN2_RE[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}"
    "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

typedef struct {
    const char *name;     /* tokenizer.ggml.pre */
    int digits_first;     /* a Digits(individual_digits) step before the regex */
    const char *pattern;
    int ignore_merges;    /* llama.cpp: tokenizer_ignore_merges */
} pre_map;

static const pre_map PRES[] = {
    {"default", 0, GPT2_RE, 0},    {"gpt2", 0, GPT2_RE, 0},       {"gpt-2", 0, GPT2_RE, 0},
    {"phi-2", 0, GPT2_RE, 0},      {"roberta-bpe", 0, GPT2_RE, 0}, {"mpt", 0, GPT2_RE, 0},
    {"olmo", 0, GPT2_RE, 0},
    {"llama3", 0, LLAMA3_RE, 1},   {"llama-v3", 0, LLAMA3_RE, 1}, {"llama-bpe", 0, LLAMA3_RE, 1},
    {"falcon3", 0, LLAMA3_RE, 1},  {"dbrx", 0, LLAMA3_RE, 0},     {"smaug-bpe", 0, LLAMA3_RE, 0},
    {"qwen2", 0, QWEN2_RE, 0},     {"deepseek-r1-qwen", 0, QWEN2_RE, 0},
    {"megrez", 0, QWEN2_RE, 0},    {"stablelm2", 0, QWEN2_RE, 0},
    {"smollm", 1, GPT2_RE, 0},     {"starcoder", 1, GPT2_RE, 0},
};

static hkm_status set_pre(const hkm_gguf *g, hkm_tok_spec *s, hkm_err *err) {
    const char *pre = "default";
    if (hkm_gguf_has_key(g, "tokenizer.ggml.pre")) HKM_TRY(hkm_gguf_get_str(g, "tokenizer.ggml.pre", &pre, NULL, err));
    const pre_map *m = NULL;
    for (size_t i = 0; i < sizeof PRES / sizeof PRES[0]; i++)
        if (!strcmp(pre, PRES[i].name)) m = &PRES[i];
    if (!m) {
        char names[512] = "";
        for (size_t i = 0; i < sizeof PRES / sizeof PRES[0]; i++)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "", PRES[i].name);
        return hkm_fail(err, HKM_ERR_UNSUPPORTED, "%s: key 'tokenizer.ggml.pre' = '%.80s' is not supported (expected one of: %s)",
                        hkm_gguf_path(g), pre, names);
    }
    HKM_ALLOC(s->pre, 2, err);
    if (m->digits_first) s->pre[s->n_pre++].kind = HKM_PRE_DIGITS;
    hkm_pre_step *st = &s->pre[s->n_pre];
    st->kind = HKM_PRE_REGEX;
    if (!(st->pattern = strdup(m->pattern))) return hkm_fail(err, HKM_ERR_NOMEM, "%s: out of memory", hkm_gguf_path(g));
    s->n_pre++;
    s->ignore_merges = m->ignore_merges;
    return HKM_OK;
}

/* ---------------------------------------------------------------- byte-level spelling */

/* GPT-2's bytes_to_unicode: printable bytes map to themselves, the rest to 256+. */
static void byte_cps(uint32_t cp[256]) {
    uint32_t next = 256;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
        cp[b] = printable ? (uint32_t)b : next++;
    }
}

static int in_alphabet(uint32_t c) {
    return (c >= 33 && c <= 126) || (c >= 161 && c <= 172) || (c >= 174 && c <= 323);
}

/* 1 if every character of s is a byte-level symbol (valid UTF-8 assumed where it decodes). */
static int byte_level_spelled(const unsigned char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        uint32_t c;
        if (s[i] < 0x80) {
            c = s[i++];
        } else if ((s[i] & 0xE0) == 0xC0 && i + 1 < n && (s[i + 1] & 0xC0) == 0x80) {
            c = (uint32_t)(s[i] & 0x1F) << 6 | (s[i + 1] & 0x3F);
            i += 2;
        } else {
            return 0; /* every byte-level symbol is one or two UTF-8 bytes */
        }
        if (!in_alphabet(c)) return 0;
    }
    return 1;
}

/* A token as a NUL-terminated byte-level string; one spelled in raw text
 * (a llama.cpp quirk) is respelled byte by byte, as transformers does. */
static char *spell(const char *s, size_t n, int *respelled) {
    *respelled = !byte_level_spelled((const unsigned char *)s, n);
    if (!*respelled) {
        char *d = malloc(n + 1);
        if (d) memcpy(d, s, n), d[n] = 0;
        return d;
    }
    uint32_t cp[256];
    byte_cps(cp);
    char *d = malloc(2 * n + 1), *o = d;
    if (!d) return NULL;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = cp[(unsigned char)s[i]];
        if (c < 0x80) {
            *o++ = (char)c;
        } else {
            *o++ = (char)(0xC0 | (c >> 6));
            *o++ = (char)(0x80 | (c & 0x3F));
        }
    }
    *o = 0;
    return d;
}

/* ---------------------------------------------------------------- vocabulary */

static hkm_status set_tokens(const hkm_gguf *g, hkm_tok_spec *s, unsigned char **respelled, hkm_err *err) {
    const char *path = hkm_gguf_path(g);
    size_t n;
    const char **strs;
    const size_t *lens;
    HKM_TRY(hkm_gguf_get_str_array(g, "tokenizer.ggml.tokens", &n, &strs, &lens, err));
    if (n == 0 || n > (1u << 24))
        return hkm_fail(err, HKM_ERR_FORMAT, "%s: key 'tokenizer.ggml.tokens' has %zu tokens (expected 1..2^24)", path, n);
    HKM_ALLOC(s->tokens, n, err);
    HKM_ALLOC(*respelled, n, err);
    s->vocab_size = (int)n;
    for (size_t i = 0; i < n; i++) {
        if (memchr(strs[i], 0, lens[i]))
            return hkm_fail(err, HKM_ERR_FORMAT, "%s: key 'tokenizer.ggml.tokens': token %zu has a NUL byte", path, i);
        int r;
        if (!(s->tokens[i] = spell(strs[i], lens[i], &r))) return hkm_fail(err, HKM_ERR_NOMEM, "%s: out of memory", path);
        (*respelled)[i] = (unsigned char)r;
    }
    return HKM_OK;
}

static hkm_status set_merges(const hkm_gguf *g, hkm_tok_spec *s, hkm_err *err) {
    const char *path = hkm_gguf_path(g);
    size_t n;
    const char **strs;
    const size_t *lens;
    HKM_TRY(hkm_gguf_get_str_array(g, "tokenizer.ggml.merges", &n, &strs, &lens, err));
    if (n > (1u << 24))
        return hkm_fail(err, HKM_ERR_FORMAT, "%s: key 'tokenizer.ggml.merges' has %zu merges (expected <= 2^24)", path, n);
    HKM_ALLOC(s->merges, n, err);
    s->n_merges = (int)n;
    for (size_t i = 0; i < n; i++) {
        const char *sp = memchr(strs[i], ' ', lens[i]);
        if (!sp || sp == strs[i] || sp == strs[i] + lens[i] - 1 || memchr(strs[i], 0, lens[i]))
            return hkm_fail(err, HKM_ERR_FORMAT, "%s: key 'tokenizer.ggml.merges': merge %zu is not \"left right\"",
                            path, i);
        if (!(s->merges[i] = malloc(lens[i] + 1))) return hkm_fail(err, HKM_ERR_NOMEM, "%s: out of memory", path);
        memcpy(s->merges[i], strs[i], lens[i]);
        s->merges[i][lens[i]] = 0;
    }
    return HKM_OK;
}

/* CONTROL (3) tokens become special added tokens, USER_DEFINED (4) plain ones,
 * as transformers builds them; a token not spelled in the byte alphabet is
 * skipped there too. */
static hkm_status set_added(const hkm_gguf *g, hkm_tok_spec *s, const unsigned char *respelled, hkm_err *err) {
    if (!hkm_gguf_has_key(g, "tokenizer.ggml.token_type")) return HKM_OK;
    size_t n;
    int32_t *tt;
    HKM_TRY(hkm_gguf_get_i32_array(g, "tokenizer.ggml.token_type", &n, &tt, err));
    if (n != (size_t)s->vocab_size) {
        free(tt);
        return hkm_fail(err, HKM_ERR_FORMAT, "%s: key 'tokenizer.ggml.token_type' has %zu entries (expected %d, one per token)",
                        hkm_gguf_path(g), n, s->vocab_size);
    }
    int k = 0;
    for (size_t i = 0; i < n; i++) k += (tt[i] == 3 || tt[i] == 4) && !respelled[i];
    s->added_ids = calloc(k ? k : 1, sizeof *s->added_ids);
    s->added_special = calloc(k ? k : 1, sizeof *s->added_special);
    if (!s->added_ids || !s->added_special) {
        free(tt);
        return hkm_fail(err, HKM_ERR_NOMEM, "%s: out of memory", hkm_gguf_path(g));
    }
    for (size_t i = 0; i < n; i++)
        if ((tt[i] == 3 || tt[i] == 4) && !respelled[i]) {
            s->added_ids[s->n_added] = (int32_t)i;
            s->added_special[s->n_added++] = tt[i] == 3;
        }
    free(tt);
    return HKM_OK;
}

static hkm_status special_id(const hkm_gguf *g, const char *key, int vocab, int32_t *id, hkm_err *err) {
    *id = -1;
    if (!hkm_gguf_has_key(g, key)) return HKM_OK;
    int64_t v;
    HKM_TRY(hkm_gguf_get_i64(g, key, &v, err));
    if (v < 0 || v >= vocab)
        return hkm_fail(err, HKM_ERR_FORMAT, "%s: key '%s' = %lld (expected a token id in [0, %d))", hkm_gguf_path(g),
                        key, (long long)v, vocab);
    *id = (int32_t)v;
    return HKM_OK;
}

static hkm_status fill(const hkm_gguf *g, hkm_tok_spec *s, unsigned char **respelled, hkm_err *err) {
    const char *model;
    HKM_TRY(hkm_gguf_get_str(g, "tokenizer.ggml.model", &model, NULL, err));
    if (strcmp(model, "gpt2"))
        return hkm_fail(err, HKM_ERR_UNSUPPORTED,
                        "%s: key 'tokenizer.ggml.model' = '%.80s' is not supported (expected 'gpt2', byte-level BPE)",
                        hkm_gguf_path(g), model);
    HKM_TRY(set_tokens(g, s, respelled, err));
    HKM_TRY(set_merges(g, s, err));
    HKM_TRY(set_added(g, s, *respelled, err));
    HKM_TRY(set_pre(g, s, err));
    HKM_TRY(special_id(g, "tokenizer.ggml.bos_token_id", s->vocab_size, &s->bos_id, err));
    HKM_TRY(special_id(g, "tokenizer.ggml.eos_token_id", s->vocab_size, &s->eos_id, err));
    int64_t add_bos = 0; /* GPT-2 style tokenizers add no BOS unless told */
    if (hkm_gguf_has_key(g, "tokenizer.ggml.add_bos_token"))
        HKM_TRY(hkm_gguf_get_i64(g, "tokenizer.ggml.add_bos_token", &add_bos, err));
    s->add_bos = add_bos != 0;
    return HKM_OK;
}

hkm_status hkm_gguf_tok_spec(const hkm_gguf *g, hkm_tok_spec *spec, hkm_err *err) {
    if (!g || !spec) return hkm_fail(err, HKM_ERR_ARG, "hkm_gguf_tok_spec: NULL argument");
    memset(spec, 0, sizeof *spec);
    spec->bos_id = spec->eos_id = -1;
    unsigned char *respelled = NULL;
    hkm_status st = fill(g, spec, &respelled, err);
    free(respelled);
    if (st != HKM_OK) hkm_tok_spec_clear(spec);
    return st;
}
