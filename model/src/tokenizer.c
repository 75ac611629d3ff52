/* Byte-level BPE tokenizer (GPT-2 / Llama-3 / Qwen2 family) built from an
 * hkm_tok_spec: added-token splitting, PCRE2 pre-tokenization, byte-to-unicode
 * mapping, rank-ordered BPE merges, and decoding, all matching HF tokenizers. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "hkm_internal.h"
#include "tok_hash.h"

#include <pcre2.h>
#include <string.h>

struct hkm_tokenizer {
    hkm_tok_spec spec;
    hkm_strmap vocab;     /* token string -> id */
    hkm_pairmap merges;   /* (left id, right id) -> (rank, merged id) */
    int32_t byte_id[256]; /* id of the one-symbol token of each byte, -1 if absent */
    char byte_sym[256][2];/* UTF-8 of each byte's symbol in the GPT-2 alphabet */
    uint8_t byte_sym_len[256];
    int16_t cp_byte[324]; /* symbol code point -> byte, -1 if not a symbol */
    uint8_t *kind;        /* (vocab_size) 0 normal, 1 added, 2 added special */
    pcre2_code **re;      /* (spec.n_pre) compiled pre-tokenizer steps */
    int32_t *added_order; /* (n_added) indices into spec.added_ids by (first byte, length desc) */
    int added_start[257]; /* added_order range of each first byte */
};

/* ---------------------------------------------------------------- byte <-> unicode */

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the
 * others to U+0100 onwards, so every byte is a visible character. */
static int byte_to_cp(int b) {
    if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) return b;
    int n = 0;
    for (int c = 0; c < b; c++)
        if (!((c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF))) n++;
    return 256 + n;
}

static size_t utf8_put(uint32_t cp, char *out) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    out[0] = (char)(0xC0 | (cp >> 6)); /* the byte alphabet stays below U+0800 */
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
}

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned c = s[0];
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (!len || len > n) return 0;
    uint32_t v = len == 1 ? c : c & (0x7F >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (v < min_cp[len] || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    if (cp) *cp = v;
    return len;
}

/* ---------------------------------------------------------------- spec */

void hkm_tok_spec_clear(hkm_tok_spec *s) {
    if (!s) return;
    for (int i = 0; s->tokens && i < s->vocab_size; i++) free(s->tokens[i]);
    for (int i = 0; s->merges && i < s->n_merges; i++) free(s->merges[i]);
    for (int i = 0; s->pre && i < s->n_pre; i++) free(s->pre[i].pattern);
    free(s->tokens);
    free(s->merges);
    free(s->pre);
    free(s->added_ids);
    free(s->added_special);
    memset(s, 0, sizeof *s);
    s->bos_id = s->eos_id = -1;
}

/* ---------------------------------------------------------------- building */

void hkm_tokenizer_free(hkm_tokenizer *t) {
    if (!t) return;
    for (int i = 0; t->re && i < t->spec.n_pre; i++) pcre2_code_free(t->re[i]);
    free(t->re);
    hkm_strmap_free(&t->vocab);
    hkm_pairmap_free(&t->merges);
    free(t->kind);
    free(t->added_order);
    hkm_tok_spec_clear(&t->spec);
    free(t);
}

static hkm_status build_vocab(hkm_tokenizer *t, hkm_err *err) {
    const hkm_tok_spec *s = &t->spec;
    if (s->vocab_size <= 0 || !s->tokens)
        return hkm_fail(err, HKM_ERR_MISSING, "tokenizer: empty vocabulary (expected at least one token)");
    if (hkm_strmap_init(&t->vocab, (size_t)s->vocab_size))
        return hkm_fail(err, HKM_ERR_NOMEM, "tokenizer: out of memory for %d vocabulary entries",
                        s->vocab_size);
    for (int i = 0; i < s->vocab_size; i++)
        if (s->tokens[i] && s->tokens[i][0]) /* id gaps are empty strings */
            hkm_strmap_put(&t->vocab, s->tokens[i], strlen(s->tokens[i]), i);
    for (int i = 0; i < 324; i++) t->cp_byte[i] = -1;
    for (int b = 0; b < 256; b++) {
        int cp = byte_to_cp(b);
        t->cp_byte[cp] = (int16_t)b;
        t->byte_sym_len[b] = (uint8_t)utf8_put((uint32_t)cp, t->byte_sym[b]);
        t->byte_id[b] = hkm_strmap_get(&t->vocab, t->byte_sym[b], t->byte_sym_len[b]);
    }
    return HKM_OK;
}

static hkm_status build_merges(hkm_tokenizer *t, hkm_err *err) {
    const hkm_tok_spec *s = &t->spec;
    if (hkm_pairmap_init(&t->merges, (size_t)(s->n_merges > 0 ? s->n_merges : 0)))
        return hkm_fail(err, HKM_ERR_NOMEM, "tokenizer: out of memory for %d merges", s->n_merges);
    for (int r = 0; r < s->n_merges; r++) {
        const char *m = s->merges[r];
        const char *sp = m ? strchr(m, ' ') : NULL;
        if (!sp || sp == m || !sp[1] || strchr(sp + 1, ' '))
            return hkm_fail(err, HKM_ERR_FORMAT, "merges[%d] \"%s\": expected \"left right\"", r,
                            m ? m : "(null)");
        size_t ll = (size_t)(sp - m), rl = strlen(sp + 1);
        int32_t a = hkm_strmap_get(&t->vocab, m, ll), b = hkm_strmap_get(&t->vocab, sp + 1, rl);
        if (a < 0 || b < 0)
            return hkm_fail(err, HKM_ERR_FORMAT, "merges[%d] \"%s\": token \"%.*s\" is not in the vocabulary",
                            r, m, (int)(a < 0 ? ll : rl), a < 0 ? m : sp + 1);
        char *joined = malloc(ll + rl + 1);
        if (!joined) return hkm_fail(err, HKM_ERR_NOMEM, "tokenizer: out of memory");
        memcpy(joined, m, ll);
        memcpy(joined + ll, sp + 1, rl + 1);
        int32_t ab = hkm_strmap_get(&t->vocab, joined, ll + rl);
        free(joined);
        if (ab < 0)
            return hkm_fail(err, HKM_ERR_FORMAT,
                            "merges[%d] \"%s\": merged token \"%.*s%s\" is not in the vocabulary", r, m,
                            (int)ll, m, sp + 1);
        hkm_pairmap_put(&t->merges, a, b, r, ab);
    }
    return HKM_OK;
}

typedef struct {
    unsigned char first;
    size_t len;
    int32_t idx; /* index into spec.added_ids */
} added_key;

static int added_cmp(const void *pa, const void *pb) {
    const added_key *a = pa, *b = pb;
    if (a->first != b->first) return a->first - b->first;
    return a->len > b->len ? -1 : a->len < b->len ? 1 : 0; /* longest first: HF takes the longest match */
}

static hkm_status build_added(hkm_tokenizer *t, hkm_err *err) {
    const hkm_tok_spec *s = &t->spec;
    HKM_ALLOC(t->kind, s->vocab_size, err);
    HKM_ALLOC(t->added_order, s->n_added, err);
    added_key *keys;
    HKM_ALLOC(keys, s->n_added, err);
    int n = 0;
    for (int i = 0; i < s->n_added; i++) {
        int32_t id = s->added_ids[i];
        if (id < 0 || id >= s->vocab_size) {
            free(keys);
            return hkm_fail(err, HKM_ERR_FORMAT, "added token %d: id %d out of range (vocab size %d)", i,
                            (int)id, s->vocab_size);
        }
        t->kind[id] = (s->added_special && s->added_special[i]) ? 2 : 1;
        const char *tok = s->tokens[id];
        if (tok && tok[0]) keys[n++] = (added_key){(unsigned char)tok[0], strlen(tok), i};
    }
    qsort(keys, (size_t)n, sizeof *keys, added_cmp);
    int k = 0;
    for (int b = 0; b < 256; b++) {
        while (k < n && keys[k].first < b) k++;
        t->added_start[b] = k;
    }
    t->added_start[256] = n;
    for (int i = 0; i < n; i++) t->added_order[i] = keys[i].idx;
    free(keys);
    return HKM_OK;
}

static hkm_status build_pre(hkm_tokenizer *t, hkm_err *err) {
    const hkm_tok_spec *s = &t->spec;
    HKM_ALLOC(t->re, s->n_pre, err);
    for (int i = 0; i < s->n_pre; i++) {
        /* Digits(individual_digits): every numeric character is its own piece. */
        const char *pat = s->pre[i].kind == HKM_PRE_DIGITS ? "\\p{N}" : s->pre[i].pattern;
        if (!pat)
            return hkm_fail(err, HKM_ERR_MISSING, "pre-tokenizer step %d: regex pattern missing", i);
        int code;
        PCRE2_SIZE off;
        t->re[i] = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &code,
                                 &off, NULL);
        if (!t->re[i]) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(code, msg, sizeof msg);
            return hkm_fail(err, HKM_ERR_FORMAT, "pre-tokenizer step %d: regex /%s/ rejected at offset %zu: %s",
                            i, pat, (size_t)off, (const char *)msg);
        }
        pcre2_jit_compile(t->re[i], PCRE2_JIT_COMPLETE); /* optional speed-up; the interpreter is the fallback */
    }
    return HKM_OK;
}

static hkm_status check_special_ids(const hkm_tok_spec *s, hkm_err *err) {
    if (s->bos_id < -1 || s->bos_id >= s->vocab_size)
        return hkm_fail(err, HKM_ERR_FORMAT, "tokenizer: BOS id %d out of range (vocab size %d)",
                        (int)s->bos_id, s->vocab_size);
    if (s->eos_id < -1 || s->eos_id >= s->vocab_size)
        return hkm_fail(err, HKM_ERR_FORMAT, "tokenizer: EOS id %d out of range (vocab size %d)",
                        (int)s->eos_id, s->vocab_size);
    return HKM_OK;
}

static hkm_status build_all(hkm_tokenizer *t, hkm_err *err) {
    HKM_TRY(check_special_ids(&t->spec, err));
    HKM_TRY(build_vocab(t, err));
    HKM_TRY(build_merges(t, err));
    HKM_TRY(build_added(t, err));
    return build_pre(t, err);
}

hkm_status hkm_tokenizer_from_spec(hkm_tok_spec *spec, hkm_tokenizer **out, hkm_err *err) {
    if (!spec || !out) return hkm_fail(err, HKM_ERR_ARG, "hkm_tokenizer_from_spec: NULL argument");
    *out = NULL;
    hkm_tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        hkm_tok_spec_clear(spec);
        return hkm_fail(err, HKM_ERR_NOMEM, "tokenizer: out of memory");
    }
    t->spec = *spec; /* ownership moves here, on failure too */
    memset(spec, 0, sizeof *spec);
    spec->bos_id = spec->eos_id = -1;
    hkm_status st = build_all(t, err);
    if (st != HKM_OK) {
        hkm_tokenizer_free(t);
        return st;
    }
    *out = t;
    return HKM_OK;
}

/* ---------------------------------------------------------------- encoding */

/* Per-call scratch: output ids, BPE symbols and heap, regex match data. */
typedef struct {
    int32_t *ids;
    size_t n, cap;
    int32_t *sym_id, *sym_prev, *sym_next; /* BPE symbols (linked list) */
    uint8_t *sym_dead;
    uint64_t *heap;                        /* (rank << 32 | pos) min-heap */
    size_t heap_n, sym_cap;
    char *mapped;                          /* byte-level form of one piece */
    pcre2_match_data **md;                 /* (n_pre) */
    int n_md;
    hkm_err *err;
} enc_state;

static hkm_status push_id(enc_state *e, int32_t id) {
    if (e->n == e->cap) {
        size_t cap = e->cap ? 2 * e->cap : 256;
        int32_t *p = realloc(e->ids, cap * sizeof *p);
        if (!p) return hkm_fail(e->err, HKM_ERR_NOMEM, "tokenizer: out of memory for %zu ids", cap);
        e->ids = p;
        e->cap = cap;
    }
    e->ids[e->n++] = id;
    return HKM_OK;
}

static hkm_status reserve_symbols(enc_state *e, size_t n) {
    if (n <= e->sym_cap) return HKM_OK;
    size_t cap = n < 64 ? 64 : n * 2;
    free(e->sym_id), free(e->sym_prev), free(e->sym_next), free(e->sym_dead), free(e->heap), free(e->mapped);
    e->sym_id = malloc(cap * sizeof *e->sym_id);
    e->sym_prev = malloc(cap * sizeof *e->sym_prev);
    e->sym_next = malloc(cap * sizeof *e->sym_next);
    e->sym_dead = malloc(cap);
    e->heap = malloc(cap * 3 * sizeof *e->heap); /* n-1 pairs, then at most 2 per merge */
    e->mapped = malloc(cap * 2);
    e->sym_cap = cap;
    if (!e->sym_id || !e->sym_prev || !e->sym_next || !e->sym_dead || !e->heap || !e->mapped) {
        e->sym_cap = 0;
        return hkm_fail(e->err, HKM_ERR_NOMEM, "tokenizer: out of memory for a %zu-byte piece", n);
    }
    return HKM_OK;
}

static void heap_push(enc_state *e, uint64_t v) {
    size_t i = e->heap_n++;
    while (i && e->heap[(i - 1) / 2] > v) {
        e->heap[i] = e->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    e->heap[i] = v;
}

static uint64_t heap_pop(enc_state *e) {
    uint64_t top = e->heap[0], v = e->heap[--e->heap_n];
    size_t i = 0, n = e->heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && e->heap[c + 1] < e->heap[c]) c++;
        if (e->heap[c] >= v) break;
        e->heap[i] = e->heap[c];
        i = c;
    }
    if (n) e->heap[i] = v;
    return top;
}

/* Queue the pair starting at symbol pos if it merges. */
static void queue_pair(const hkm_tokenizer *t, enc_state *e, int32_t pos) {
    int32_t nx = e->sym_next[pos], merged;
    if (pos < 0 || nx < 0) return;
    int32_t rank = hkm_pairmap_get(&t->merges, e->sym_id[pos], e->sym_id[nx], &merged);
    if (rank >= 0) heap_push(e, (uint64_t)rank << 32 | (uint32_t)pos);
}

/* Apply merges lowest rank first (leftmost on ties), as HF's BPE::merge_word;
 * stale heap entries are skipped when their pair no longer exists. */
static void bpe_merge(const hkm_tokenizer *t, enc_state *e) {
    while (e->heap_n) {
        uint64_t top = heap_pop(e);
        int32_t pos = (int32_t)(uint32_t)top, rank = (int32_t)(top >> 32), merged;
        int32_t nx = e->sym_next[pos];
        if (e->sym_dead[pos] || nx < 0) continue;
        if (hkm_pairmap_get(&t->merges, e->sym_id[pos], e->sym_id[nx], &merged) != rank) continue;
        e->sym_id[pos] = merged;
        e->sym_dead[nx] = 1;
        e->sym_next[pos] = e->sym_next[nx];
        if (e->sym_next[nx] >= 0) e->sym_prev[e->sym_next[nx]] = pos;
        if (e->sym_prev[pos] >= 0) queue_pair(t, e, e->sym_prev[pos]);
        queue_pair(t, e, pos);
    }
}

/* Byte-level BPE of one pre-tokenized piece. */
static hkm_status bpe_piece(const hkm_tokenizer *t, enc_state *e, const unsigned char *p, size_t n) {
    if (n == 1) return t->byte_id[p[0]] >= 0 ? push_id(e, t->byte_id[p[0]]) : HKM_OK;
    HKM_TRY(reserve_symbols(e, n));
    if (t->spec.ignore_merges) {
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            memcpy(e->mapped + m, t->byte_sym[p[i]], 2);
            m += t->byte_sym_len[p[i]];
        }
        int32_t id = hkm_strmap_get(&t->vocab, e->mapped, m);
        if (id >= 0) return push_id(e, id);
    }
    /* Bytes whose symbol is missing from the vocabulary are dropped, as HF does
     * without an unk_token. */
    int32_t ns = 0;
    for (size_t i = 0; i < n; i++) {
        if (t->byte_id[p[i]] < 0) continue;
        e->sym_id[ns] = t->byte_id[p[i]];
        e->sym_prev[ns] = ns - 1;
        e->sym_next[ns] = ns + 1;
        e->sym_dead[ns] = 0;
        ns++;
    }
    if (!ns) return HKM_OK;
    e->sym_next[ns - 1] = -1;
    e->heap_n = 0;
    for (int32_t i = 0; i + 1 < ns; i++) queue_pair(t, e, i);
    bpe_merge(t, e);
    for (int32_t i = 0; i >= 0; i = e->sym_next[i]) HKM_TRY(push_id(e, e->sym_id[i]));
    return HKM_OK;
}

/* Pre-tokenizer step `step` over piece p: matches and the gaps between them
 * become pieces (HF Split behavior=Isolated), each passed to the next step. */
static hkm_status pre_split(const hkm_tokenizer *t, enc_state *e, int step, const char *p, size_t n) {
    if (!n) return HKM_OK;
    if (step == t->spec.n_pre) return bpe_piece(t, e, (const unsigned char *)p, n);
    pcre2_match_data *md = e->md[step];
    size_t at = 0, gap = 0;
    while (at < n) {
        int rc = pcre2_match(t->re[step], (PCRE2_SPTR)p, n, at, PCRE2_NO_UTF_CHECK, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return hkm_fail(e->err, HKM_ERR_ARG, "tokenizer: pre-tokenizer step %d failed: %s", step,
                            (const char *)msg);
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t s = ov[0], f = ov[1];
        if (f == s) { /* empty match: yields no piece; step over one character */
            size_t k = utf8_len((const unsigned char *)p + s, n - s, NULL);
            at = s + (k ? k : 1);
            continue;
        }
        HKM_TRY(pre_split(t, e, step + 1, p + gap, s - gap));
        HKM_TRY(pre_split(t, e, step + 1, p + s, f - s));
        at = gap = f;
    }
    return pre_split(t, e, step + 1, p + gap, n - gap);
}

/* Longest added token starting at p (n bytes left): its id, *len set; or -1. */
static int32_t match_added(const hkm_tokenizer *t, const char *p, size_t n, size_t *len) {
    unsigned char b = (unsigned char)p[0];
    for (int k = t->added_start[b]; k < t->added_start[b + 1]; k++) {
        int32_t id = t->spec.added_ids[t->added_order[k]];
        const char *tok = t->spec.tokens[id];
        size_t l = strlen(tok);
        if (l <= n && memcmp(p, tok, l) == 0) {
            *len = l;
            return id;
        }
    }
    return -1;
}

static hkm_status check_utf8(const char *text, size_t len, hkm_err *err) {
    for (size_t i = 0; i < len;) {
        size_t k = utf8_len((const unsigned char *)text + i, len - i, NULL);
        if (!k) return hkm_fail(err, HKM_ERR_ARG, "tokenizer: text is not valid UTF-8 at byte %zu", i);
        i += k;
    }
    return HKM_OK;
}

static hkm_status encode_text(const hkm_tokenizer *t, enc_state *e, const char *text, size_t len) {
    size_t gap = 0;
    for (size_t i = 0; i < len;) {
        size_t l;
        int32_t id = match_added(t, text + i, len - i, &l);
        if (id < 0) {
            i++;
            continue;
        }
        HKM_TRY(pre_split(t, e, 0, text + gap, i - gap));
        HKM_TRY(push_id(e, id));
        i += l;
        gap = i;
    }
    return pre_split(t, e, 0, text + gap, len - gap);
}

static void enc_free(enc_state *e) {
    free(e->sym_id), free(e->sym_prev), free(e->sym_next), free(e->sym_dead), free(e->heap), free(e->mapped);
    for (int i = 0; e->md && i < e->n_md; i++) pcre2_match_data_free(e->md[i]);
    free(e->md);
}

static hkm_status encode_all(const hkm_tokenizer *t, enc_state *e, const char *text, size_t len,
                             int add_bos) {
    HKM_TRY(check_utf8(text, len, e->err));
    HKM_ALLOC(e->md, t->spec.n_pre, e->err);
    e->n_md = t->spec.n_pre;
    for (int i = 0; i < e->n_md; i++)
        if (!(e->md[i] = pcre2_match_data_create_from_pattern(t->re[i], NULL)))
            return hkm_fail(e->err, HKM_ERR_NOMEM, "tokenizer: out of memory for regex match data");
    /* BOS only where the tokenizer's own post-processor adds one (HF add_special_tokens). */
    if (add_bos && t->spec.add_bos && t->spec.bos_id >= 0) HKM_TRY(push_id(e, t->spec.bos_id));
    return encode_text(t, e, text, len);
}

hkm_status hkm_tokenizer_encode(const hkm_tokenizer *t, const char *text, size_t len, int add_bos,
                                int32_t **ids, size_t *n_ids, hkm_err *err) {
    if (!t || !ids || !n_ids || (!text && len))
        return hkm_fail(err, HKM_ERR_ARG, "hkm_tokenizer_encode: NULL argument");
    *ids = NULL;
    *n_ids = 0;
    enc_state e = {.err = err};
    hkm_status st = encode_all(t, &e, text, len, add_bos);
    enc_free(&e);
    if (st == HKM_OK && !e.ids && !(e.ids = malloc(sizeof *e.ids)))
        st = hkm_fail(err, HKM_ERR_NOMEM, "tokenizer: out of memory");
    if (st != HKM_OK) {
        free(e.ids);
        return st;
    }
    *ids = e.ids;
    *n_ids = e.n;
    return HKM_OK;
}

/* ---------------------------------------------------------------- decoding */

typedef struct {
    char *p;
    size_t n, cap;
} strbuf;

static int sb_reserve(strbuf *b, size_t extra) {
    if (b->n + extra + 1 <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + extra + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

/* A byte-level token back to bytes; a token with a character outside the
 * byte alphabet is copied verbatim, as HF's ByteLevel decoder does. */
static void decode_token(const hkm_tokenizer *t, const char *tok, strbuf *b) {
    size_t len = strlen(tok), start = b->n;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t k = utf8_len((const unsigned char *)tok + i, len - i, &cp);
        int byte = k && cp < 324 ? t->cp_byte[cp] : -1;
        if (byte < 0) {
            b->n = start;
            memcpy(b->p + b->n, tok, len);
            b->n += len;
            return;
        }
        b->p[b->n++] = (char)byte;
        i += k;
    }
}

hkm_status hkm_tokenizer_decode(const hkm_tokenizer *t, const int32_t *ids, size_t n_ids,
                                int skip_special, char **text, size_t *len, hkm_err *err) {
    if (!t || !text || (!ids && n_ids)) return hkm_fail(err, HKM_ERR_ARG, "hkm_tokenizer_decode: NULL argument");
    *text = NULL;
    if (len) *len = 0;
    strbuf b = {0};
    if (sb_reserve(&b, 0)) return hkm_fail(err, HKM_ERR_NOMEM, "tokenizer: out of memory");
    for (size_t i = 0; i < n_ids; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= t->spec.vocab_size) {
            free(b.p);
            return hkm_fail(err, HKM_ERR_ARG, "decode: id %d at position %zu is out of range (vocab size %d)",
                            (int)id, i, t->spec.vocab_size);
        }
        if (skip_special && t->kind[id] == 2) continue;
        const char *tok = t->spec.tokens[id] ? t->spec.tokens[id] : "";
        if (sb_reserve(&b, strlen(tok))) {
            free(b.p);
            return hkm_fail(err, HKM_ERR_NOMEM, "tokenizer: out of memory decoding %zu ids", n_ids);
        }
        if (t->kind[id]) { /* added tokens are plain text */
            memcpy(b.p + b.n, tok, strlen(tok));
            b.n += strlen(tok);
        } else {
            decode_token(t, tok, &b);
        }
    }
    b.p[b.n] = '\0';
    *text = b.p;
    if (len) *len = b.n;
    return HKM_OK;
}

/* ---------------------------------------------------------------- queries */

int hkm_tokenizer_vocab_size(const hkm_tokenizer *t) { return t ? t->spec.vocab_size : 0; }

int32_t hkm_tokenizer_token_id(const hkm_tokenizer *t, const char *token) {
    if (!t || !token) return -1;
    return hkm_strmap_get(&t->vocab, token, strlen(token));
}

int32_t hkm_tokenizer_bos(const hkm_tokenizer *t) { return t ? t->spec.bos_id : -1; }
int32_t hkm_tokenizer_eos(const hkm_tokenizer *t) { return t ? t->spec.eos_id : -1; }
