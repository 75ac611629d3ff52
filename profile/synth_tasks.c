/* Task-family generators: natural continuation, needles, key-value retrieval,
 * multi-document QA, variable tracking, copying, random ids. A context is a
 * list of separately tokenised pieces (prefix, filler paragraphs, inserted
 * items), so every item's token span is known exactly. */
#include "synth_tasks.h"
#include "hkm_internal.h"

#include <string.h>

/* ---------------------------------------------------------------- vectors */

hkm_status hkp_ivec_push(hkp_ivec *a, const int32_t *x, size_t n, hkm_err *err) {
    if (n == 0) return HKM_OK; /* x may be NULL then; memcpy from NULL is undefined */
    if (a->n + n > a->cap) {
        size_t cap = a->cap ? a->cap : 256;
        while (cap < a->n + n) cap *= 2;
        int32_t *v = realloc(a->v, cap * sizeof *v);
        if (!v) return hkm_fail(err, HKM_ERR_NOMEM, "%s:%d: out of memory (%zu ids)", __FILE__, __LINE__, cap);
        a->v = v;
        a->cap = cap;
    }
    memcpy(a->v + a->n, x, n * sizeof *x);
    a->n += n;
    return HKM_OK;
}

void hkp_ivec_free(hkp_ivec *a) {
    free(a->v);
    memset(a, 0, sizeof *a);
}

void hkp_seq_free(hkp_seq *s) {
    hkp_ivec_free(&s->ids);
    hkp_ivec_free(&s->segs);
    hkp_ivec_free(&s->spans);
}

/* ---------------------------------------------------------------- templates */

static const char *tstr(const cJSON *t, const char *fam, const char *key) {
    const cJSON *o = fam ? cJSON_GetObjectItemCaseSensitive(t, fam) : t;
    const cJSON *v = o ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

hkm_status hkp_templates_check(const cJSON *t, const char *path, hkm_err *err) {
    static const char *need[][2] = {
        {NULL, "system"}, {NULL, "kvzip_prompt"}, {NULL, "plain_question"},
        {"needle", "needle"}, {"needle", "question"}, {"needle", "answer"},
        {"kv", "intro"}, {"kv", "line"}, {"kv", "outro"}, {"kv", "question"}, {"kv", "answer"},
        {"mdqa", "doc"}, {"mdqa", "question"}, {"mdqa", "answer"},
        {"vartrack", "assign_value"}, {"vartrack", "assign_var"}, {"vartrack", "question"},
        {"vartrack", "answer"}, {"copy", "passage"}, {"copy", "passage_end"},
        {"copy", "question"}, {"copy", "answer"}};
    for (size_t i = 0; i < sizeof need / sizeof *need; i++)
        if (!tstr(t, need[i][0], need[i][1]))
            return hkm_fail(err, HKM_ERR_FORMAT, "%s: %s%s%s: expected a string", path,
                            need[i][0] ? need[i][0] : "", need[i][0] ? "." : "", need[i][1]);
    const cJSON *keys = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(t, "needle"), "keys");
    if (!cJSON_IsArray(keys) || cJSON_GetArraySize(keys) < 4)
        return hkm_fail(err, HKM_ERR_FORMAT, "%s: needle.keys: expected an array of >= 4 strings", path);
    for (const cJSON *k = keys->child; k; k = k->next)
        if (!cJSON_IsString(k))
            return hkm_fail(err, HKM_ERR_FORMAT, "%s: needle.keys: expected strings only", path);
    return HKM_OK;
}

/* Replaces each {name} of tmpl by its value; malloc'ed result (NULL: no memory). */
static char *fill(const char *tmpl, int n, const char *const *names, const char *const *vals) {
    size_t cap = strlen(tmpl) + 1;
    for (int i = 0; i < n; i++) cap += 4 * strlen(vals[i]) + 8;
    char *out = malloc(cap), *o = out;
    if (!out) return NULL;
    for (const char *p = tmpl; *p;) {
        int hit = -1;
        if (*p == '{')
            for (int i = 0; i < n && hit < 0; i++) {
                size_t l = strlen(names[i]);
                if (!strncmp(p + 1, names[i], l) && p[1 + l] == '}') hit = i;
            }
        if (hit < 0) { *o++ = *p++; continue; }
        size_t vl = strlen(vals[hit]);
        if ((size_t)(o - out) + vl + strlen(p) + 1 > cap) { // grow (values may repeat)
            size_t at = (size_t)(o - out);
            cap = 2 * (cap + vl);
            char *nb = realloc(out, cap);
            if (!nb) { free(out); return NULL; }
            out = nb;
            o = out + at;
        }
        memcpy(o, vals[hit], vl);
        o += vl;
        p += strlen(names[hit]) + 2;
    }
    *o = 0;
    return out;
}

/* ---------------------------------------------------------------- tokens */

typedef struct {
    const hkp_synth *s;
    gsl_rng *r;
    hkp_seq *out;
    hkm_err *err;
} gen;

/* Appends the tokens of text; *start receives where they begin (may be NULL). */
static hkm_status put_text(gen *g, const char *text, int32_t *start, int32_t *count) {
    int32_t *ids = NULL;
    size_t n = 0;
    HKM_TRY(hkm_tokenizer_encode(g->s->tok, text, strlen(text), 0, &ids, &n, g->err));
    if (start) *start = (int32_t)g->out->ids.n;
    if (count) *count = (int32_t)n;
    hkm_status st = hkp_ivec_push(&g->out->ids, ids, n, g->err);
    free(ids);
    return st;
}

static hkm_status put_seg(gen *g) {
    int32_t at = (int32_t)g->out->ids.n;
    return hkp_ivec_push(&g->out->segs, &at, 1, g->err);
}

static hkm_status put_span(gen *g, int32_t a, int32_t l) {
    int32_t p[2] = {a, l};
    return l > 0 ? hkp_ivec_push(&g->out->spans, p, 2, g->err) : HKM_OK;
}

/* Tokens of text, malloc'ed. */
static hkm_status encode(gen *g, const char *text, hkp_ivec *v) {
    int32_t *ids = NULL;
    size_t n = 0;
    HKM_TRY(hkm_tokenizer_encode(g->s->tok, text, strlen(text), 0, &ids, &n, g->err));
    hkm_status st = hkp_ivec_push(v, ids, n, g->err);
    free(ids);
    return st;
}

static int uniform_int(gsl_rng *r, int lo, int hi) { // inclusive
    return hi <= lo ? lo : lo + (int)gsl_rng_uniform_int(r, (unsigned long)(hi - lo + 1));
}

/* Prefix: BOS when the tokenizer has one (not with ChatML, whose BOS is
 * often <|im_start|> itself), then the system and user turns. */
static hkm_status put_prefix(gen *g) {
    int32_t bos = hkm_tokenizer_bos(g->s->tok);
    HKM_TRY(put_seg(g));
    if (bos >= 0 && !g->s->chat) HKM_TRY(hkp_ivec_push(&g->out->ids, &bos, 1, g->err));
    if (!g->s->chat) return HKM_OK;
    const char *names[] = {"system"};
    const char *vals[] = {tstr(g->s->tmpl, NULL, "system")};
    char *t = fill("<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n", 1, names, vals);
    if (!t) return hkm_fail(g->err, HKM_ERR_NOMEM, "synth: out of memory");
    hkm_status st = put_text(g, t, NULL, NULL);
    free(t);
    return st;
}

/* ---------------------------------------------------------------- filler */

/* Consecutive corpus paragraphs from a random start, each tokenised with a
 * trailing blank line, until `budget` tokens (the last one cut). */
typedef struct {
    hkp_ivec ids;
    hkp_ivec bounds; /* paragraph starts within ids */
} filler;

static void filler_free(filler *f) { hkp_ivec_free(&f->ids); hkp_ivec_free(&f->bounds); }

static hkm_status make_filler(gen *g, int budget, filler *f) {
    const hkp_corpus *c = g->s->corpus;
    size_t p = gsl_rng_uniform_int(g->r, c->n_para);
    while ((int)f->ids.n < budget) {
        const char *para = hkp_corpus_para(c, p);
        size_t len = strlen(para);
        char *t = malloc(len + 3);
        if (!t) return hkm_fail(g->err, HKM_ERR_NOMEM, "synth: out of memory");
        memcpy(t, para, len);
        memcpy(t + len, "\n\n", 3);
        int32_t at = (int32_t)f->ids.n;
        hkm_status st = hkp_ivec_push(&f->bounds, &at, 1, g->err);
        if (st == HKM_OK) st = encode(g, t, &f->ids);
        free(t);
        HKM_TRY(st);
        p = (p + 1) % c->n_para;
    }
    if ((int)f->ids.n > budget) f->ids.n = (size_t)(budget > 0 ? budget : 0);
    while (f->bounds.n && f->bounds.v[f->bounds.n - 1] >= (int32_t)f->ids.n) f->bounds.n--;
    return HKM_OK;
}

/* An item to insert between filler paragraphs at a relative depth. */
typedef struct {
    hkp_ivec ids;
    double depth;
    int span;   /* record its token span */
} item;

static int cmp_item(const void *a, const void *b) {
    double x = ((const item *)a)->depth, y = ((const item *)b)->depth;
    return x < y ? -1 : x > y;
}

/* Emits filler with items inserted at the paragraph boundaries nearest their
 * depths; items are sorted by depth in place. */
static hkm_status put_with_items(gen *g, filler *f, item *it, int n_it) {
    qsort(it, (size_t)n_it, sizeof *it, cmp_item);
    size_t pos = 0;
    for (int j = 0; j <= n_it; j++) {
        size_t until = f->ids.n;
        if (j < n_it) { // boundary nearest depth * length, at or after pos
            double want = it[j].depth * (double)f->ids.n;
            until = pos;
            for (size_t b = 0; b < f->bounds.n; b++) {
                size_t at = (size_t)f->bounds.v[b];
                if (at >= pos && (until == pos || (double)at <= want)) until = at;
                if ((double)at > want) break;
            }
        }
        if (until > pos) {
            HKM_TRY(put_seg(g));
            HKM_TRY(hkp_ivec_push(&g->out->ids, f->ids.v + pos, until - pos, g->err));
        }
        pos = until;
        if (j == n_it) break;
        HKM_TRY(put_seg(g));
        int32_t at = (int32_t)g->out->ids.n;
        HKM_TRY(hkp_ivec_push(&g->out->ids, it[j].ids.v, it[j].ids.n, g->err));
        if (it[j].span) HKM_TRY(put_span(g, at, (int32_t)it[j].ids.n));
    }
    return HKM_OK;
}

/* ---------------------------------------------------------------- future */

typedef struct {
    char *q, *a;
} qa;

/* Question/answer turns until the future window reaches fut_min (at least
 * one), cut at fut_max. When the questions run out first they are asked
 * again, in the same order, as further turns: fut_min is a guarantee. */
static hkm_status put_future(gen *g, qa *qs, int n_q) {
    const hkp_synth *s = g->s;
    g->out->future_start = (int32_t)g->out->ids.n;
    for (int k = 0; n_q > 0; k++) {
        int i = k % n_q;
        if (k && (int)(g->out->ids.n - (size_t)g->out->future_start) >= s->fut_min) break;
        const char *names[] = {"question"};
        const char *vals[] = {qs[i].q};
        const char *tm = s->chat ? (k ? "<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"
                                      : "\n\n{question}<|im_end|>\n<|im_start|>assistant\n")
                                 : tstr(s->tmpl, NULL, "plain_question");
        char *t = fill(tm, 1, names, vals);
        if (!t) return hkm_fail(g->err, HKM_ERR_NOMEM, "synth: out of memory");
        HKM_TRY(put_seg(g));
        hkm_status st = put_text(g, t, NULL, NULL);
        free(t);
        HKM_TRY(st);
        size_t la = strlen(qs[i].a);
        char *a = malloc(la + 16);
        if (!a) return hkm_fail(g->err, HKM_ERR_NOMEM, "synth: out of memory");
        snprintf(a, la + 16, "%s%s", qs[i].a, s->chat ? "<|im_end|>\n" : "\n");
        HKM_TRY(put_seg(g));
        st = put_text(g, a, NULL, NULL);
        free(a);
        HKM_TRY(st);
    }
    size_t max = (size_t)g->out->future_start + (size_t)s->fut_max;
    if (g->out->ids.n > max) g->out->ids.n = max;
    while (g->out->segs.n && g->out->segs.v[g->out->segs.n - 1] >= (int32_t)g->out->ids.n) g->out->segs.n--;
    return HKM_OK;
}

static void qa_free(qa *qs, int n) {
    for (int i = 0; i < n; i++) { free(qs[i].q); free(qs[i].a); }
}

/* ---------------------------------------------------------------- families */

static void rand_digits(gsl_rng *r, char *buf, int n) {
    buf[0] = (char)('1' + gsl_rng_uniform_int(r, 9));
    for (int i = 1; i < n; i++) buf[i] = (char)('0' + gsl_rng_uniform_int(r, 10));
    buf[n] = 0;
}

static void rand_uuid(gsl_rng *r, char *buf) {
    static const char hex[] = "0123456789abcdef";
    static const int groups[] = {8, 4, 4, 4, 12};
    char *o = buf;
    for (int gi = 0; gi < 5; gi++) {
        if (gi) *o++ = '-';
        for (int i = 0; i < groups[gi]; i++) *o++ = hex[gsl_rng_uniform_int(r, 16)];
    }
    *o = 0;
}

/* Context length target and the tokens left for the body after the prefix. */
static int body_budget(gen *g, int target) {
    return target - (int)g->out->ids.n > 0 ? target - (int)g->out->ids.n : 0;
}

static hkm_status task_natural(gen *g, int target) {
    filler f = {0};
    int fut = uniform_int(g->r, g->s->fut_min, g->s->fut_max);
    hkm_status st = make_filler(g, body_budget(g, target) + fut, &f);
    if (st == HKM_OK) {
        size_t ctx = f.ids.n - (size_t)fut;
        st = put_seg(g);
        if (st == HKM_OK) st = hkp_ivec_push(&g->out->ids, f.ids.v, ctx, g->err);
        g->out->future_start = (int32_t)g->out->ids.n;
        if (st == HKM_OK) st = put_seg(g);
        if (st == HKM_OK) st = hkp_ivec_push(&g->out->ids, f.ids.v + ctx, (size_t)fut, g->err);
    }
    filler_free(&f);
    return st;
}

/* Needles, vartrack and copy share: items at depths among filler, then Q/A. */
static hkm_status items_then_future(gen *g, int target, item *it, int n_it, qa *qs, int n_q) {
    int used = 0;
    for (int i = 0; i < n_it; i++) used += (int)it[i].ids.n;
    filler f = {0};
    hkm_status st = make_filler(g, body_budget(g, target) - used, &f);
    if (st == HKM_OK) st = put_with_items(g, &f, it, n_it);
    if (st == HKM_OK) st = put_future(g, qs, n_q);
    filler_free(&f);
    return st;
}

#define MAX_ITEMS 64

static hkm_status task_needle(gen *g, int target) {
    const cJSON *keys = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(g->s->tmpl, "needle"), "keys");
    int nk = cJSON_GetArraySize(keys), n = uniform_int(g->r, 2, 4);
    int perm[64];
    for (int i = 0; i < nk && i < 64; i++) perm[i] = i;
    for (int i = (nk < 64 ? nk : 64) - 1; i > 0; i--) { // Fisher-Yates
        int j = (int)gsl_rng_uniform_int(g->r, (unsigned long)i + 1), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    item it[4] = {0};
    qa qs[4] = {0};
    hkm_status st = HKM_OK;
    for (int i = 0; i < n && st == HKM_OK; i++) {
        char value[16];
        rand_digits(g->r, value, 7);
        const char *names[] = {"key", "value"};
        const char *vals[] = {cJSON_GetArrayItem(keys, perm[i])->valuestring, value};
        char *nd = fill(tstr(g->s->tmpl, "needle", "needle"), 2, names, vals);
        char *text = nd ? malloc(strlen(nd) + 4) : NULL;
        qs[i].q = fill(tstr(g->s->tmpl, "needle", "question"), 2, names, vals);
        qs[i].a = fill(tstr(g->s->tmpl, "needle", "answer"), 2, names, vals);
        if (!text || !qs[i].q || !qs[i].a) { free(nd); free(text); st = hkm_fail(g->err, HKM_ERR_NOMEM, "synth: out of memory"); break; }
        snprintf(text, strlen(nd) + 4, "%s\n\n", nd);
        free(nd);
        it[i].depth = 0.05 + 0.9 * gsl_rng_uniform(g->r);
        it[i].span = 1;
        st = encode(g, text, &it[i].ids);
        free(text);
    }
    // Ask in a random order: the first question is not always the first needle.
    for (int i = n - 1; i > 0 && st == HKM_OK; i--) {
        int j = (int)gsl_rng_uniform_int(g->r, (unsigned long)i + 1);
        qa t = qs[i]; qs[i] = qs[j]; qs[j] = t;
    }
    if (st == HKM_OK) st = items_then_future(g, target, it, n, qs, n);
    for (int i = 0; i < n; i++) hkp_ivec_free(&it[i].ids);
    qa_free(qs, n);
    return st;
}

/* Key-value retrieval: a JSON object filling the context; 2-8 keys asked. */
static hkm_status task_kv(gen *g, int target) {
    const cJSON *t = g->s->tmpl;
    hkm_status st = put_seg(g);
    if (st == HKM_OK) st = put_text(g, tstr(t, "kv", "intro"), NULL, NULL);
    static const int KV_MAX = 1024;
    char (*keys)[40] = malloc(KV_MAX * sizeof *keys), (*vals)[40] = malloc(KV_MAX * sizeof *vals);
    int32_t *at = malloc(KV_MAX * sizeof *at), *len = malloc(KV_MAX * sizeof *len);
    int n = 0;
    hkp_ivec outro = {0};
    if (!keys || !vals || !at || !len) st = hkm_fail(g->err, HKM_ERR_NOMEM, "synth: out of memory");
    if (st == HKM_OK) st = encode(g, tstr(t, "kv", "outro"), &outro);
    while (st == HKM_OK && n < KV_MAX) {
        rand_uuid(g->r, keys[n]);
        rand_uuid(g->r, vals[n]);
        const char *names[] = {"key", "value"};
        const char *v[] = {keys[n], vals[n]};
        char *line = fill(tstr(t, "kv", "line"), 2, names, v);
        if (!line) { st = hkm_fail(g->err, HKM_ERR_NOMEM, "synth: out of memory"); break; }
        hkp_ivec ids = {0};
        st = encode(g, line, &ids);
        free(line);
        if (st == HKM_OK && n > 0 && (int)(g->out->ids.n + ids.n + outro.n) > target) { hkp_ivec_free(&ids); break; }
        at[n] = (int32_t)g->out->ids.n;
        len[n] = (int32_t)ids.n;
        if (st == HKM_OK) st = put_seg(g);
        if (st == HKM_OK) st = hkp_ivec_push(&g->out->ids, ids.v, ids.n, g->err);
        hkp_ivec_free(&ids);
        n++;
    }
    if (st == HKM_OK) st = hkp_ivec_push(&g->out->ids, outro.v, outro.n, g->err);
    hkp_ivec_free(&outro);
    int n_q = n < 8 ? n : 8;
    qa qs[8] = {0};
    for (int i = 0; i < n_q && st == HKM_OK; i++) { // distinct keys, random order
        int j = i + (int)gsl_rng_uniform_int(g->r, (unsigned long)(n - i));
        char tk[40], tv[40];
        int32_t ta = at[i], tl = len[i];
        memcpy(tk, keys[i], 40); memcpy(keys[i], keys[j], 40); memcpy(keys[j], tk, 40);
        memcpy(tv, vals[i], 40); memcpy(vals[i], vals[j], 40); memcpy(vals[j], tv, 40);
        at[i] = at[j]; at[j] = ta; len[i] = len[j]; len[j] = tl;
        const char *names[] = {"key", "value"};
        const char *v[] = {keys[i], vals[i]};
        qs[i].q = fill(tstr(t, "kv", "question"), 2, names, v);
        qs[i].a = fill(tstr(t, "kv", "answer"), 2, names, v);
        if (!qs[i].q || !qs[i].a) st = hkm_fail(g->err, HKM_ERR_NOMEM, "synth: out of memory");
    }
    // Spans of the asked keys in context order.
    int order[8];
    for (int i = 0; i < n_q; i++) order[i] = i;
    for (int i = 1; i < n_q; i++)
        for (int j = i; j > 0 && at[order[j]] < at[order[j - 1]]; j--) { int x = order[j]; order[j] = order[j - 1]; order[j - 1] = x; }
    for (int i = 0; i < n_q && st == HKM_OK; i++) st = put_span(g, at[order[i]], len[order[i]]);
    if (st == HKM_OK) st = put_future(g, qs, n_q);
    qa_free(qs, n_q);
    free(keys); free(vals); free(at); free(len);
    return st;
}

/* Multi-document QA: corpus excerpts as titled documents; the answer is one
 * paragraph (5..80 tokens) of one of them, quoted. */
static hkm_status task_mdqa(gen *g, int target) {
    const hkp_corpus *c = g->s->corpus;
    const cJSON *t = g->s->tmpl;
    hkm_status st = HKM_OK;
    int32_t best_at = -1, best_len = 0;
    size_t best_para = 0;
    int best_doc = 0, n_cand = 0;
    char title[256] = "";
    for (int d = 1; st == HKM_OK && (int)g->out->ids.n < target; d++) {
        size_t p = gsl_rng_uniform_int(g->r, c->n_para);
        char idx[16];
        snprintf(idx, sizeof idx, "%d", d);
        const char *names[] = {"index", "title"};
        const char *vals[] = {idx, c->file_names[c->para_file[p]]};
        char *hdr = fill(tstr(t, "mdqa", "doc"), 2, names, vals);
        if (!hdr) return hkm_fail(g->err, HKM_ERR_NOMEM, "synth: out of memory");
        st = put_seg(g);
        if (st == HKM_OK) st = put_text(g, hdr, NULL, NULL);
        free(hdr);
        int doc_len = uniform_int(g->r, 128, 512), start = (int)g->out->ids.n;
        for (size_t q = p; st == HKM_OK && (int)g->out->ids.n - start < doc_len && (int)g->out->ids.n < target; q = (q + 1) % c->n_para) {
            if (c->para_file[q] != c->para_file[p]) break; // one file per document
            size_t len = strlen(hkp_corpus_para(c, q));
            char *txt = malloc(len + 2);
            if (!txt) return hkm_fail(g->err, HKM_ERR_NOMEM, "synth: out of memory");
            snprintf(txt, len + 2, "%s\n", hkp_corpus_para(c, q));
            int32_t at, n;
            st = put_text(g, txt, &at, &n);
            free(txt);
            // Reservoir choice among eligible paragraphs fully inside the target.
            if (st == HKM_OK && n >= 5 && n <= 80 && at + n <= target && len >= 24 &&
                gsl_rng_uniform_int(g->r, (unsigned long)++n_cand) == 0) {
                best_at = at; best_len = n; best_para = q; best_doc = d;
                snprintf(title, sizeof title, "%s", c->file_names[c->para_file[p]]);
            }
        }
    }
    HKM_TRY(st);
    if ((int)g->out->ids.n > target) g->out->ids.n = (size_t)target;
    while (g->out->segs.n && g->out->segs.v[g->out->segs.n - 1] >= (int32_t)g->out->ids.n) g->out->segs.n--;
    if (best_at < 0) return hkm_fail(g->err, HKM_ERR_MISSING, "synth mdqa: no paragraph of 5..80 tokens: expected a corpus of prose paragraphs");
    HKM_TRY(put_span(g, best_at, best_len));
    const char *para = hkp_corpus_para(c, best_para);
    char prefix[96];
    size_t k = 0;
    for (int words = 0; para[k] && k < sizeof prefix - 8; k++) { // first 6 words
        if ((para[k] == ' ' || para[k] == '\n') && ++words == 6) break;
    }
    while (k > 0 && (para[k - 1] & 0xC0) == 0x80) k--; // do not cut a UTF-8 sequence
    memcpy(prefix, para, k);
    prefix[k] = 0;
    for (size_t i = 0; i < k; i++) if (prefix[i] == '\n') prefix[i] = ' ';
    char idx[16];
    snprintf(idx, sizeof idx, "%d", best_doc);
    const char *names[] = {"index", "title", "prefix", "span"};
    const char *vals[] = {idx, title, prefix, para};
    qa q = {fill(tstr(t, "mdqa", "question"), 4, names, vals), fill(tstr(t, "mdqa", "answer"), 4, names, vals)};
    st = q.q && q.a ? put_future(g, &q, 1) : hkm_fail(g->err, HKM_ERR_NOMEM, "synth: out of memory");
    qa_free(&q, 1);
    return st;
}

/* Variable tracking: one chain from a value (asked) and distractor chains. */
static hkm_status task_vartrack(gen *g, int target) {
    const cJSON *t = g->s->tmpl;
    item it[MAX_ITEMS] = {0};
    int n = 0, n_chain = 3, chain_len = uniform_int(g->r, 3, 5);
    char asked_value[16], names_list[256] = "";
    hkm_status st = HKM_OK;
    for (int ch = 0; ch < n_chain && st == HKM_OK; ch++) {
        char value[16], prev[8] = "";
        rand_digits(g->r, value, 5);
        if (ch == 0) memcpy(asked_value, value, sizeof value);
        double d0 = 0.05 + 0.5 * gsl_rng_uniform(g->r);
        for (int k = 0; k < chain_len && st == HKM_OK; k++) {
            char name[8];
            for (int i = 0; i < 5; i++) name[i] = (char)('A' + gsl_rng_uniform_int(g->r, 26));
            name[5] = 0;
            const char *nm[] = {"name", "value", "src"};
            const char *vv[] = {name, value, prev};
            char *s = fill(tstr(t, "vartrack", k ? "assign_var" : "assign_value"), 3, nm, vv);
            if (!s) { st = hkm_fail(g->err, HKM_ERR_NOMEM, "synth: out of memory"); break; }
            it[n].depth = d0 + (0.95 - d0) * k / chain_len;
            it[n].span = ch == 0;
            st = encode(g, s, &it[n++].ids);
            if (st == HKM_OK) st = encode(g, "\n", &it[n - 1].ids); // ends its line
            free(s);
            if (ch == 0) snprintf(names_list + strlen(names_list), sizeof names_list - strlen(names_list), "%s%s", k ? ", " : "", name);
            memcpy(prev, name, sizeof prev);
        }
    }
    const char *nm[] = {"value", "names"};
    const char *vv[] = {asked_value, names_list};
    qa q = {fill(tstr(t, "vartrack", "question"), 2, nm, vv), fill(tstr(t, "vartrack", "answer"), 2, nm, vv)};
    if (st == HKM_OK && (!q.q || !q.a)) st = hkm_fail(g->err, HKM_ERR_NOMEM, "synth: out of memory");
    if (st == HKM_OK) st = items_then_future(g, target, it, n, &q, 1);
    for (int i = 0; i < n; i++) hkp_ivec_free(&it[i].ids);
    qa_free(&q, 1);
    return st;
}

/* Copying: a marked passage of consecutive paragraphs, to be repeated. */
static hkm_status task_copy(gen *g, int target) {
    const hkp_corpus *c = g->s->corpus;
    const cJSON *t = g->s->tmpl;
    char key[16];
    rand_digits(g->r, key, 6);
    size_t p = gsl_rng_uniform_int(g->r, c->n_para), cap = 4096, len = 0;
    char *text = malloc(cap);
    if (!text) return hkm_fail(g->err, HKM_ERR_NOMEM, "synth: out of memory");
    text[0] = 0;
    int want_chars = 4 * uniform_int(g->r, g->s->fut_min, g->s->fut_max); // ~4 chars a token
    while ((int)len < want_chars) {
        const char *para = hkp_corpus_para(c, p);
        size_t l = strlen(para);
        if (len + l + 3 > cap) break;
        len += (size_t)snprintf(text + len, cap - len, "%s%s", len ? "\n\n" : "", para);
        p = (p + 1) % c->n_para;
    }
    const char *nm[] = {"key", "text"};
    const char *vv[] = {key, text};
    char *head = fill(tstr(t, "copy", "passage"), 2, nm, vv);
    qa q = {fill(tstr(t, "copy", "question"), 2, nm, vv), fill(tstr(t, "copy", "answer"), 2, nm, vv)};
    item it = {.depth = 0.1 + 0.8 * gsl_rng_uniform(g->r), .span = 1};
    hkm_status st = head && q.q && q.a ? HKM_OK : hkm_fail(g->err, HKM_ERR_NOMEM, "synth: out of memory");
    if (st == HKM_OK) st = encode(g, head, &it.ids);
    if (st == HKM_OK) st = encode(g, text, &it.ids);
    if (st == HKM_OK) st = encode(g, tstr(t, "copy", "passage_end"), &it.ids);
    if (st == HKM_OK) st = items_then_future(g, target, &it, 1, &q, 1);
    hkp_ivec_free(&it.ids);
    qa_free(&q, 1);
    free(head);
    free(text);
    return st;
}

/* Random ids for tests on tiny models: no tokenizer, no corpus. */
static hkm_status task_random(gen *g, int target) {
    int fut = uniform_int(g->r, g->s->fut_min, g->s->fut_max);
    HKM_TRY(put_seg(g));
    for (int i = 0; i < target + fut; i++) {
        if (i == target) {
            g->out->future_start = (int32_t)g->out->ids.n;
            HKM_TRY(put_seg(g));
        }
        int32_t id = (int32_t)uniform_int(g->r, 3, g->s->random_vocab - 1);
        HKM_TRY(hkp_ivec_push(&g->out->ids, &id, 1, g->err));
    }
    return HKM_OK;
}

/* ---------------------------------------------------------------- entry */

hkm_status hkp_synth_context(const hkp_synth *s, int task, gsl_rng *r, hkp_seq *out, hkm_err *err) {
    memset(out, 0, sizeof *out);
    gen g = {s, r, out, err};
    int target = uniform_int(r, s->min_len, s->max_len);
    hkm_status st;
    if (task == HKP_TASK_RANDOM) {
        st = task_random(&g, target);
    } else {
        if (!s->tok || !s->corpus)
            return hkm_fail(err, HKM_ERR_ARG, "synth: task %s needs a tokenizer and a corpus", hkp_task_name(task));
        st = put_prefix(&g);
        if (st == HKM_OK) switch (task) {
            case HKP_TASK_NATURAL: st = task_natural(&g, target); break;
            case HKP_TASK_NEEDLE: st = task_needle(&g, target); break;
            case HKP_TASK_KV: st = task_kv(&g, target); break;
            case HKP_TASK_MDQA: st = task_mdqa(&g, target); break;
            case HKP_TASK_VARTRACK: st = task_vartrack(&g, target); break;
            case HKP_TASK_COPY: st = task_copy(&g, target); break;
            default: st = hkm_fail(err, HKM_ERR_ARG, "synth: task %d: expected 0..%d", task, HKP_TASK_COUNT - 1);
        }
    }
    if (st == HKM_OK && (out->future_start <= 0 || out->ids.n <= (size_t)out->future_start))
        st = hkm_fail(err, HKM_ERR_ARG, "synth: task %s made an empty context or future window "
                      "(length %d): expected --min-len larger than the prompt", hkp_task_name(task), target);
    if (st != HKM_OK) hkp_seq_free(out);
    return st;
}

hkm_status hkp_synth_kvzip_prompt(const hkp_synth *s, gsl_rng *r, hkp_ivec *out, hkm_err *err) {
    memset(out, 0, sizeof *out);
    if (!s->tok) { // random ids stand in for the prompt on tiny models
        for (int i = 0; i < 8; i++) {
            int32_t id = (int32_t)uniform_int(r, 3, s->random_vocab - 1);
            HKM_TRY(hkp_ivec_push(out, &id, 1, err));
        }
        return HKM_OK;
    }
    const char *names[] = {"prompt"};
    const char *vals[] = {tstr(s->tmpl, NULL, "kvzip_prompt")};
    char *t = fill(s->chat ? "<|im_end|>\n<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n"
                           : "\n\n{prompt}\n", 1, names, vals);
    if (!t) return hkm_fail(err, HKM_ERR_NOMEM, "synth: out of memory");
    gen g = {s, r, NULL, err};
    hkm_status st = encode(&g, t, out);
    free(t);
    return st;
}
