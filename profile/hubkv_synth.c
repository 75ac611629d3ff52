/* hubkv-synth: write a calibration set (tokenised contexts of mixed task
 * families with their future windows) from data/templates.json and a corpus. */
#include "calib_set.h"
#include "hkm_internal.h"
#include "hubkv_cli.h"
#include "synth_tasks.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

#ifndef HUBKV_DATA_DIR
#define HUBKV_DATA_DIR "data"
#endif
#define DEFAULT_CORPUS "/usr/share/doc/linux-doc-6.1/html/_sources"

typedef struct {
    const char *model, *tokenizer, *corpus, *templates, *out, *mix;
    long count, min_len, max_len, fut_min, fut_max, random_vocab;
    unsigned long long seed;
    double heldout;
    int no_chat;
    double weights[HKP_TASK_COUNT];
} opts;

static void usage(FILE *f) {
    fprintf(f,
        "usage: hubkv-synth --model PATH --out FILE [options]\n"
        "Writes a calibration set (HDF5, docs/calibration-set.md) of tokenised contexts.\n"
        "  --model PATH        model whose tokenizer to use (.gguf, or a dir with tokenizer.json)\n"
        "  --tokenizer PATH    tokenizer to use instead of the model's\n"
        "  --out FILE          output file (written to FILE.tmp.<pid>, then renamed)\n"
        "  --corpus DIR        UTF-8 text tree (default " DEFAULT_CORPUS ", translations/ skipped)\n"
        "  --templates FILE    task templates (default " HUBKV_DATA_DIR "/templates.json)\n"
        "  --count N           contexts (default 64)\n"
        "  --seed S            seed; the same arguments and seed give the same file (default 1)\n"
        "  --mix LIST          task weights, e.g. natural=1,needle=1,kv=1,mdqa=1,vartrack=1,copy=1\n"
        "                      (the default; families left out get weight 0)\n"
        "  --min-len N         context tokens, lower bound (default 1024)\n"
        "  --max-len N         context tokens, upper bound (default 4096)\n"
        "  --future-min N      future-window tokens, lower bound (default 64)\n"
        "  --future-max N      future-window tokens, upper bound (default 512)\n"
        "  --heldout-frac F    share of contexts marked held-out (default 0.1)\n"
        "  --quick             small preset for a CPU smoke run: --count 16 --min-len 1024\n"
        "                      --max-len 2048 --future-min 64 --future-max 128 (flags override)\n"
        "  --no-chat           do not apply the ChatML template even if the tokenizer has it\n"
        "  --random-vocab V    random ids in [3, V) instead of text (tests on tiny models;\n"
        "                      needs no model, corpus or templates)\n");
}

static void parse_mix(opts *o, const char *s) {
    for (int t = 0; t < HKP_TASK_COUNT; t++) o->weights[t] = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq) hkc_die("--mix: '%s': expected name=weight", tok);
        *eq = 0;
        int t = hkp_task_from_name(tok);
        if (t < 0 || t == HKP_TASK_RANDOM)
            hkc_die("--mix: unknown task '%s': expected natural, needle, kv, mdqa, vartrack or copy", tok);
        o->weights[t] = hkc_double("--mix weight", eq + 1, 0, 1e6);
    }
    double sum = 0;
    for (int t = 0; t < HKP_TASK_COUNT; t++) sum += o->weights[t];
    if (sum <= 0) hkc_die("--mix '%s': expected a positive weight somewhere", s);
}

static void parse(opts *o, int argc, char **argv) {
    *o = (opts){.corpus = DEFAULT_CORPUS, .templates = HUBKV_DATA_DIR "/templates.json",
                .mix = "natural=1,needle=1,kv=1,mdqa=1,vartrack=1,copy=1", .count = 64,
                .min_len = 1024, .max_len = 4096, .fut_min = 64, .fut_max = 512, .seed = 1,
                .heldout = 0.1};
    for (int i = 1; i < argc; i++) // the preset first, so that explicit flags win wherever they are
        if (!strcmp(argv[i], "--quick")) {
            o->count = 16, o->min_len = 1024, o->max_len = 2048, o->fut_min = 64, o->fut_max = 128;
        }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); exit(0); }
        if (!strcmp(a, "--no-chat")) { o->no_chat = 1; continue; }
        if (!strcmp(a, "--quick")) continue;
        if (i + 1 >= argc) { fprintf(stderr, "hubkv-synth: %s: expected a value (or unknown option)\n", a); usage(stderr); exit(2); }
        const char *v = argv[++i];
        if (!strcmp(a, "--model")) o->model = v;
        else if (!strcmp(a, "--tokenizer")) o->tokenizer = v;
        else if (!strcmp(a, "--out")) o->out = v;
        else if (!strcmp(a, "--corpus")) o->corpus = v;
        else if (!strcmp(a, "--templates")) o->templates = v;
        else if (!strcmp(a, "--mix")) o->mix = v;
        else if (!strcmp(a, "--count")) o->count = hkc_long(a, v, 1, 100000000);
        else if (!strcmp(a, "--seed")) o->seed = (unsigned long long)hkc_long(a, v, 0, 0x7fffffffffffffffL);
        else if (!strcmp(a, "--min-len")) o->min_len = hkc_long(a, v, 8, 1 << 24);
        else if (!strcmp(a, "--max-len")) o->max_len = hkc_long(a, v, 8, 1 << 24);
        else if (!strcmp(a, "--future-min")) o->fut_min = hkc_long(a, v, 1, 1 << 20);
        else if (!strcmp(a, "--future-max")) o->fut_max = hkc_long(a, v, 1, 1 << 20);
        else if (!strcmp(a, "--heldout-frac")) o->heldout = hkc_double(a, v, 0, 1);
        else if (!strcmp(a, "--random-vocab")) o->random_vocab = hkc_long(a, v, 4, 1 << 24);
        else { fprintf(stderr, "hubkv-synth: unknown option %s\n", a); usage(stderr); exit(2); }
    }
    if (!o->out) hkc_die("--out: expected an output file");
    if (!o->random_vocab && !o->model && !o->tokenizer) hkc_die("--model: expected a model path (or --tokenizer, or --random-vocab)");
    if (o->min_len > o->max_len) hkc_die("--min-len > --max-len: expected min <= max");
    if (o->fut_min > o->fut_max) hkc_die("--future-min > --future-max: expected min <= max");
    parse_mix(o, o->mix);
}

/* ---------------------------------------------------------------- run */

static uint64_t splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static int pick_task(const opts *o, gsl_rng *r) {
    if (o->random_vocab) return HKP_TASK_RANDOM;
    double sum = 0, u;
    for (int t = 0; t < HKP_TASK_COUNT; t++) sum += o->weights[t];
    u = gsl_rng_uniform(r) * sum;
    for (int t = 0; t < HKP_TASK_COUNT; t++) {
        if (u < o->weights[t]) return t;
        u -= o->weights[t];
    }
    for (int t = HKP_TASK_COUNT - 1; t >= 0; t--) if (o->weights[t] > 0) return t;
    return 0;
}

/* Appends one sequence's arrays to the calibration set under construction. */
typedef struct {
    hkp_ivec tokens, task, split, fs, fl, segs, spans;
    int64_t *offsets, *seg_off, *span_off;
    size_t n, cap;
} builder;

static int builder_add(builder *b, const hkp_seq *s, int task, int split, hkm_err *err) {
    if (b->n + 2 > b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 64;
        int64_t *o1 = realloc(b->offsets, cap * sizeof *o1);
        if (o1) b->offsets = o1;
        int64_t *o2 = realloc(b->seg_off, cap * sizeof *o2);
        if (o2) b->seg_off = o2;
        int64_t *o3 = realloc(b->span_off, cap * sizeof *o3);
        if (o3) b->span_off = o3;
        if (!o1 || !o2 || !o3) { hkm_fail(err, HKM_ERR_NOMEM, "synth: out of memory"); return -1; }
        b->cap = cap;
        if (b->n == 0) b->offsets[0] = b->seg_off[0] = b->span_off[0] = 0;
    }
    int32_t fs = s->future_start, fl = (int32_t)s->ids.n - s->future_start;
    if (hkp_ivec_push(&b->tokens, s->ids.v, s->ids.n, err) || hkp_ivec_push(&b->task, &task, 1, err) ||
        hkp_ivec_push(&b->split, &split, 1, err) || hkp_ivec_push(&b->fs, &fs, 1, err) ||
        hkp_ivec_push(&b->fl, &fl, 1, err) || hkp_ivec_push(&b->segs, s->segs.v, s->segs.n, err) ||
        hkp_ivec_push(&b->spans, s->spans.v, s->spans.n, err))
        return -1;
    b->n++;
    b->offsets[b->n] = (int64_t)b->tokens.n;
    b->seg_off[b->n] = (int64_t)b->segs.n;
    b->span_off[b->n] = (int64_t)b->spans.n / 2;
    return 0;
}

static cJSON *load_templates(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) { fprintf(stderr, "hubkv-synth: templates %s: %s\n", path, strerror(errno)); exit(1); }
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    cJSON *j = cJSON_Parse(buf);
    if (!j) { fprintf(stderr, "hubkv-synth: templates %s: not valid JSON (near byte %ld)\n", path, (long)(cJSON_GetErrorPtr() - buf)); exit(1); }
    hkm_err err = {{0}};
    if (hkp_templates_check(j, path, &err) != HKM_OK) { fprintf(stderr, "hubkv-synth: %s\n", err.msg); exit(1); }
    return j;
}

int main(int argc, char **argv) {
    opts o;
    hkc_tool("hubkv-synth");
    parse(&o, argc, argv);
    hkm_err err = {{0}};
    hkm_tokenizer *tok = NULL;
    hkp_corpus corpus = {0};
    cJSON *tmpl = NULL;
    const char *tok_path = o.tokenizer ? o.tokenizer : o.model;
    if (!o.random_vocab) {
        tmpl = load_templates(o.templates);
        if (hkm_tokenizer_load(tok_path, &tok, &err) != HKM_OK) { fprintf(stderr, "hubkv-synth: %s\n", err.msg); return 1; }
        fprintf(stderr, "hubkv-synth: reading corpus %s\n", o.corpus);
        if (hkp_corpus_load(o.corpus, &corpus, &err) != HKM_OK) { fprintf(stderr, "hubkv-synth: %s\n", err.msg); return 1; }
        fprintf(stderr, "hubkv-synth: %zu files, %zu paragraphs\n", corpus.n_files, corpus.n_para);
    }
    hkp_synth s = {.tmpl = tmpl, .tok = tok, .corpus = o.random_vocab ? NULL : &corpus,
                   .chat = tok && !o.no_chat && hkm_tokenizer_token_id(tok, "<|im_start|>") >= 0 &&
                           hkm_tokenizer_token_id(tok, "<|im_end|>") >= 0,
                   .min_len = (int)o.min_len, .max_len = (int)o.max_len, .fut_min = (int)o.fut_min,
                   .fut_max = (int)o.fut_max, .random_vocab = (int)o.random_vocab};
    gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
    if (!r) { fprintf(stderr, "hubkv-synth: out of memory\n"); return 1; }
    builder b = {0};
    int tty = isatty(2);
    for (long i = 0; i < o.count; i++) {
        gsl_rng_set(r, (unsigned long)splitmix64(o.seed * 0x100000001B3ull + (uint64_t)i));
        // Evenly spaced, so exactly floor(count * heldout) contexts are held out.
        int split = floor((double)(i + 1) * o.heldout) > floor((double)i * o.heldout) ? HKP_SPLIT_HELDOUT
                                                                                      : HKP_SPLIT_CALIB;
        int task = pick_task(&o, r);
        hkp_seq seq;
        if (hkp_synth_context(&s, task, r, &seq, &err) != HKM_OK) {
            fprintf(stderr, "\nhubkv-synth: context %ld (%s): %s\n", i, hkp_task_name(task), err.msg);
            return 1;
        }
        if (builder_add(&b, &seq, task, split, &err)) { fprintf(stderr, "hubkv-synth: %s\n", err.msg); return 1; }
        hkp_seq_free(&seq);
        if (tty || i + 1 == o.count || (i + 1) % 16 == 0)
            fprintf(stderr, "%shubkv-synth: %ld/%ld contexts, %zu tokens%s", tty ? "\r" : "", i + 1,
                    o.count, b.tokens.n, tty && i + 1 < o.count ? "" : "\n");
    }
    gsl_rng_set(r, (unsigned long)splitmix64(o.seed ^ 0x6b767a6970ull)); // "kvzip"
    hkp_ivec kp;
    if (hkp_synth_kvzip_prompt(&s, r, &kp, &err) != HKM_OK) { fprintf(stderr, "hubkv-synth: %s\n", err.msg); return 1; }
    hkp_calib c = {.n = (int64_t)b.n, .tokens = b.tokens.v, .offsets = b.offsets, .task = b.task.v,
                   .split = b.split.v, .future_start = b.fs.v, .future_len = b.fl.v,
                   .seg_offsets = b.seg_off, .segs = b.segs.v, .span_offsets = b.span_off,
                   .spans = b.spans.v, .kvzip_prompt = kp.v, .n_kvzip = (int32_t)kp.n,
                   .seed = o.seed, .chat_template = s.chat};
    snprintf(c.tokenizer, sizeof c.tokenizer, "%s", o.random_vocab ? "" : tok_path);
    snprintf(c.mix, sizeof c.mix, "%s", o.random_vocab ? "random" : o.mix);
    if (hkp_calib_write(&c, o.out, &err) != HKM_OK) { fprintf(stderr, "hubkv-synth: %s\n", err.msg); return 1; }
    int n_held = 0;
    for (size_t i = 0; i < b.n; i++) n_held += c.split[i] == HKP_SPLIT_HELDOUT;
    fprintf(stderr, "hubkv-synth: wrote %s: %zu contexts (%d held out), %zu tokens, chat template %s\n",
            o.out, b.n, n_held, b.tokens.n, s.chat ? "on" : "off");
    hkp_calib_free(&c);
    gsl_rng_free(r);
    hkp_corpus_free(&corpus);
    hkm_tokenizer_free(tok);
    cJSON_Delete(tmpl);
    return 0;
}
