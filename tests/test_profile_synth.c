/* hubkv-synth's generators and calibration-set file: determinism for a seed,
 * answer spans really inside the context (decoded and compared), the
 * calibration-set round trip, and clear errors on bad files. Uses the Qwen2
 * tokenizer fixture (has <|im_start|>) and a small corpus written here. */
#include "calib_set.h"
#include "synth_tasks.h"
#include "test_util.h"

#include <dirent.h>
#include <hdf5.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static cJSON *load_json(const char *path) {
    char *buf = test_slurp(path, NULL);
    cJSON *j = buf ? cJSON_Parse(buf) : NULL;
    free(buf);
    return j;
}

static void make_corpus(const char *dir) { // dir: < 400 bytes
    static const char *words[] = {"kernel", "driver", "memory", "page", "the", "device", "maps", "a",
                                  "queue", "lock", "of", "interrupt", "and", "buffer", "is", "held"};
    mkdir(dir, 0755);
    for (int f = 0; f < 3; f++) {
        char p[1024];
        snprintf(p, sizeof p, "%s/doc%d.txt", dir, f);
        FILE *o = fopen(p, "w");
        for (int para = 0; para < 40; para++) {
            int nw = 8 + (para * 7 + f) % 30;
            for (int w = 0; w < nw; w++)
                fprintf(o, "%s%s", w ? " " : "", words[(para * 31 + w * 17 + f * 5) % 16]);
            fprintf(o, ".\n\n");
        }
        fclose(o);
    }
    char p[1024];
    snprintf(p, sizeof p, "%s/translations", dir); // must be skipped
    mkdir(p, 0755);
}

static char *decode(const hkm_tokenizer *t, const int32_t *ids, int n) {
    char *s = NULL;
    size_t len;
    hkm_err err;
    CHECK(hkm_tokenizer_decode(t, ids, (size_t)n, 0, &s, &len, &err) == HKM_OK, "%s", err.msg);
    return s;
}

/* First run of >= 7 digits in s (copied to out), or 0. */
static int digits7(const char *s, char *out) {
    for (; *s; s++) {
        int k = 0;
        while (s[k] >= '0' && s[k] <= '9') k++;
        if (k >= 7) { memcpy(out, s, 7); out[7] = 0; return 1; }
        if (k) s += k - 1;
    }
    return 0;
}

static void check_task(const hkp_synth *s, int task) {
    gsl_rng *r1 = gsl_rng_alloc(gsl_rng_mt19937), *r2 = gsl_rng_alloc(gsl_rng_mt19937);
    hkm_err err;
    for (int seed = 1; seed <= 4; seed++) {
        hkp_seq a, b, c;
        gsl_rng_set(r1, seed);
        gsl_rng_set(r2, seed);
        CHECK(hkp_synth_context(s, task, r1, &a, &err) == HKM_OK, "%s: %s", hkp_task_name(task), err.msg);
        CHECK(hkp_synth_context(s, task, r2, &b, &err) == HKM_OK, "%s: %s", hkp_task_name(task), err.msg);
        if (test_failures) return;
        CHECK(a.ids.n == b.ids.n && !memcmp(a.ids.v, b.ids.v, a.ids.n * 4) && a.spans.n == b.spans.n &&
              a.future_start == b.future_start, "%s seed %d: two runs differ", hkp_task_name(task), seed);
        gsl_rng_set(r2, seed + 100);
        CHECK(hkp_synth_context(s, task, r2, &c, &err) == HKM_OK, "%s", err.msg);
        CHECK(c.ids.n != a.ids.n || memcmp(c.ids.v, a.ids.v, a.ids.n * 4), "%s: seeds %d and %d give the same context",
              hkp_task_name(task), seed, seed + 100);
        int fs = a.future_start, fl = (int)a.ids.n - fs;
        CHECK(fs >= s->min_len / 2 && fs <= s->max_len, "%s: context %d tokens: expected about %d..%d",
              hkp_task_name(task), fs, s->min_len, s->max_len);
        CHECK(fl >= s->fut_min && fl <= s->fut_max, "%s: future %d tokens: expected %d..%d", hkp_task_name(task),
              fl, s->fut_min, s->fut_max);
        if (task == HKP_TASK_RANDOM) {
            int bad = 0;
            for (size_t k = 0; k < a.ids.n; k++) bad += a.ids.v[k] < 3 || a.ids.v[k] >= s->random_vocab;
            CHECK(bad == 0, "random ids: %d outside [3, %d)", bad, s->random_vocab);
            hkp_seq_free(&a); hkp_seq_free(&b); hkp_seq_free(&c);
            continue;
        }
        CHECK(task == HKP_TASK_NATURAL || a.spans.n >= 2, "%s: expected answer spans", hkp_task_name(task));
        char *fut = decode(s->tok, a.ids.v + fs, fl);
        int found = 0;
        for (size_t k = 0; k + 1 < a.spans.n; k += 2) {
            int at = a.spans.v[k], len = a.spans.v[k + 1];
            CHECK(at >= 0 && len > 0 && at + len <= fs, "%s: span (%d, %d) outside the context [0, %d)",
                  hkp_task_name(task), at, len, fs);
            char *sp = decode(s->tok, a.ids.v + at, len), num[8];
            if (task == HKP_TASK_NEEDLE) {
                CHECK(strstr(sp, "special magic number for") && digits7(sp, num), "needle span decodes to '%s'", sp);
                found += digits7(sp, num) && strstr(fut, num) != NULL;
            } else if (task == HKP_TASK_MDQA) { // the quoted answer is the span's paragraph
                size_t l = strlen(sp);
                while (l && sp[l - 1] == '\n') sp[--l] = 0;
                found += strstr(fut, sp) != NULL;
            } else if (task == HKP_TASK_VARTRACK) {
                CHECK(strstr(sp, "VAR ") != NULL, "vartrack span decodes to '%s'", sp);
                const char *name = strstr(sp, "VAR ");
                char nm[6] = {0};
                if (name) memcpy(nm, name + 4, 5); // each chain variable is named in the answer
                found += nm[0] && strstr(fut, nm) != NULL;
            } else {
                found = 1;
            }
            free(sp);
        }
        CHECK(task == HKP_TASK_NATURAL || found, "%s seed %d: no answer span matches the future window '%s'",
              hkp_task_name(task), seed, fut);
        free(fut);
        hkp_seq_free(&a); hkp_seq_free(&b); hkp_seq_free(&c);
    }
    gsl_rng_free(r1);
    gsl_rng_free(r2);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Replaces dataset `name` of a calibration set with an int32 one of extent
 * dims whose data is never written (chunked + deflate, or contiguous). */
static void redeclare(const char *path, const char *name, int rank, const hsize_t *dims, int chunked) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t sp = H5Screate_simple(rank, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hsize_t chunk[2] = {1024, 2};
    if (chunked) H5Pset_chunk(dcpl, rank, chunk), H5Pset_deflate(dcpl, 4);
    CHECK(f >= 0 && H5Ldelete(f, name, H5P_DEFAULT) >= 0, "%s: cannot replace %s", path, name);
    hid_t ds = H5Dcreate2(f, name, H5T_NATIVE_INT32, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    CHECK(ds >= 0, "%s: cannot create %s", path, name);
    H5Dclose(ds);
    H5Pclose(dcpl);
    H5Sclose(sp);
    H5Fclose(f);
}

/* Extents the file declares but does not store are refused before any
 * allocation (a 7 KB file once made the reader calloc 8 GiB). */
static void check_declared_extents(const char *dir, hkp_calib *c) {
    struct {
        const char *name;
        int rank, chunked;
        hsize_t dims[2];
    } cases[] = {{"tokens", 1, 1, {1ull << 31}}, {"tokens", 1, 0, {9}}, {"segs", 1, 1, {1ull << 30}},
                 {"kvzip_prompt", 1, 1, {1ull << 33}}, {"spans", 2, 1, {1ull << 30, 2}},
                 {"offsets", 1, 0, {1ull << 28}}};
    char path[600], cbuf[1024];
    hkm_err err;
    hkp_calib r;
    snprintf(path, sizeof path, "%s/extent.h5", dir);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        CHECK(hkp_calib_write(c, path, &err) == HKM_OK, "%s", err.msg);
        redeclare(path, cases[i].name, cases[i].rank, cases[i].dims, cases[i].chunked);
        double t0 = now_s();
        hkm_status st = hkp_calib_read(path, &r, &err);
        CHECK(st == HKM_ERR_FORMAT && strstr(err.msg, path) && strstr(err.msg, cases[i].name) &&
                  strstr(err.msg, "expected at most"),
              "%s declaring %llu entries: status %d, message '%s'", cases[i].name,
              (unsigned long long)cases[i].dims[0], st, err.msg);
        CHECK(now_s() - t0 < 1.0, "%s: refusal took %.2f s", cases[i].name, now_s() - t0);
        CHECK(!r.tokens && !r.offsets && !r.spans, "%s: arrays left set after a failure", cases[i].name);
    }
    hsize_t wide[2] = {1, 3};
    CHECK(hkp_calib_write(c, path, &err) == HKM_OK, "%s", err.msg);
    redeclare(path, "spans", 2, wide, 0);
    CHECK(hkp_calib_read(path, &r, &err) != HKM_OK && strstr(err.msg, "spans") && strstr(err.msg, path),
          "spans of width 3: '%s'", err.msg);
    // the fuzzer's reproducer: 2^31 tokens declared in a 7 KB file
    const char *repro = test_data("fuzz-regressions/fuzz_calib/tokens-dims-8GiB-calloc.h5", cbuf, sizeof cbuf);
    double t0 = now_s();
    CHECK(hkp_calib_read(repro, &r, &err) == HKM_ERR_FORMAT && strstr(err.msg, repro) &&
              strstr(err.msg, "declares") && strstr(err.msg, "expected at most"),
          "8 GiB reproducer: '%s'", err.msg);
    CHECK(now_s() - t0 < 1.0, "8 GiB reproducer: refusal took %.2f s", now_s() - t0);
    unlink(path);
}

/* The writer leaves only the destination (its temporary carries the pid and
 * is renamed away). */
static void check_no_temp(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)))
        CHECK(!strstr(e->d_name, ".tmp"), "temporary %s/%s left behind", dir, e->d_name);
    if (d) closedir(d);
}

static void check_file(const char *dir) {
    int32_t tokens[] = {5, 6, 7, 8, 9, 10, 11, 12, 13};
    int64_t off[] = {0, 5, 9}, so[] = {0, 2, 3}, spo[] = {0, 1, 1};
    int32_t task[] = {1, 6}, split[] = {0, 1}, fs[] = {3, 2}, fl[] = {2, 2}, segs[] = {0, 3, 0};
    int32_t spans[] = {1, 2}, kvp[] = {4, 4};
    hkp_calib c = {.n = 2, .tokens = tokens, .offsets = off, .task = task, .split = split,
                   .future_start = fs, .future_len = fl, .seg_offsets = so, .segs = segs,
                   .span_offsets = spo, .spans = spans, .kvzip_prompt = kvp, .n_kvzip = 2, .seed = 9};
    char path[600];
    hkm_err err;
    snprintf(path, sizeof path, "%s/calib.h5", dir);
    CHECK(hkp_calib_write(&c, path, &err) == HKM_OK, "%s", err.msg);
    hkp_calib r;
    CHECK(hkp_calib_read(path, &r, &err) == HKM_OK, "%s", err.msg);
    if (test_failures) return;
    CHECK(r.n == 2 && !memcmp(r.tokens, tokens, sizeof tokens) && r.spans[0] == 1 && r.spans[1] == 2 &&
          r.future_start[1] == 2 && r.split[1] == 1 && r.seed == 9 && r.n_kvzip == 2, "round trip differs");
    hkp_calib_free(&r);
    check_no_temp(dir);
    check_declared_extents(dir, &c);
    fs[0] = 5; // future_start + future_len no longer sums to the length
    CHECK(hkp_calib_write(&c, path, &err) == HKM_OK, "%s", err.msg);
    CHECK(hkp_calib_read(path, &r, &err) != HKM_OK && strstr(err.msg, "future_start") && strstr(err.msg, path),
          "bad future_start: message '%s'", err.msg);
    FILE *f = fopen(path, "w");
    fputs("not hdf5", f);
    fclose(f);
    CHECK(hkp_calib_read(path, &r, &err) != HKM_OK && strstr(err.msg, path), "garbage file: '%s'", err.msg);
}

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: %s templates.json\n", argv[0]); return 2; }
    cJSON *tmpl = load_json(argv[1]);
    hkm_err err;
    CHECK(tmpl && hkp_templates_check(tmpl, argv[1], &err) == HKM_OK, "templates: %s", tmpl ? err.msg : "not JSON");
    char dir[] = "/tmp/hubkv_synth_testXXXXXX", cdir[600], buf[1024];
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    snprintf(cdir, sizeof cdir, "%s/corpus", dir);
    make_corpus(cdir);
    hkp_corpus corpus;
    CHECK(hkp_corpus_load(cdir, &corpus, &err) == HKM_OK, "%s", err.msg);
    CHECK(corpus.n_files == 3 && corpus.n_para == 120, "corpus: %zu files %zu paragraphs: expected 3, 120",
          corpus.n_files, corpus.n_para);
    hkm_tokenizer *tok = NULL;
    CHECK(hkm_tokenizer_load(test_data("tokenizer/qwen2.tokenizer.json", buf, sizeof buf), &tok, &err) == HKM_OK, "%s", err.msg);
    if (test_failures) return test_summary("test_profile_synth");
    hkp_synth s = {.tmpl = tmpl, .tok = tok, .corpus = &corpus, .chat = 1, .min_len = 300,
                   .max_len = 500, .fut_min = 24, .fut_max = 120};
    for (int t = 0; t < HKP_TASK_RANDOM; t++) check_task(&s, t);
    hkp_synth longer = s; // more future than one question and answer: turns repeat
    longer.fut_min = 100;
    for (int t = 0; t < HKP_TASK_RANDOM; t++) check_task(&longer, t);
    s.chat = 0;
    check_task(&s, HKP_TASK_NEEDLE);
    hkp_synth rs = {.min_len = 40, .max_len = 60, .fut_min = 4, .fut_max = 8, .random_vocab = 100};
    check_task(&rs, HKP_TASK_RANDOM);
    hkp_corpus bad;
    CHECK(hkp_corpus_load("/nonexistent/dir", &bad, &err) != HKM_OK && strstr(err.msg, "/nonexistent/dir"),
          "missing corpus: '%s'", err.msg);
    check_file(dir);
    hkm_tokenizer_free(tok);
    hkp_corpus_free(&corpus);
    cJSON_Delete(tmpl);
    return test_summary("test_profile_synth");
}
