/* Parity of the CPU forward with transformers (fp32, eager attention):
 *  - every tests/data/tiny/<name>/reference.json: logits of each sequence
 *    (batched prefill, and again token by token) within max|ours-ref|/max|ref|
 *    <= 1e-4, and the same 8-token greedy continuation;
 *  - tests/data/default_model_reference.json for the default GGUF model: the
 *    stored logit slices within 1e-4 (same measure) and the same 16-token
 *    greedy continuation; skipped with a message when the model is absent.
 * Golden data: tests/scripts/make_tiny_models.py (formats in tests/data/tiny/README.md).
 * 1e-4: fp32 with different summation orders (BLAS vs torch) drifts ~1e-6
 * per layer; 1e-4 leaves room for that and still catches any real mistake. */
#include "hkm_internal.h"
#include "test_util.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <string.h>

#define REL_TOL 1e-4
/* A greedy step whose top-2 margin in the reference is below this is a near
 * tie that fp32 noise may flip; a mismatch there ends the comparison, not the test. */
#define TIE_MARGIN 1e-3

static cJSON *load_json(const char *path) {
    char *buf = test_slurp(path, NULL);
    cJSON *j = buf ? cJSON_Parse(buf) : NULL;
    free(buf);
    return j;
}

static int32_t *json_ids(const cJSON *arr, int *n) {
    *n = cJSON_GetArraySize(arr);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(*n ? *n : 1));
    for (int i = 0; i < *n; i++) ids[i] = (int32_t)cJSON_GetArrayItem(arr, i)->valueint;
    return ids;
}

/* ---------------------------------------------------------------- greedy */

/* margins may be NULL (then every step must match). */
static void check_greedy(const hkm_model *m, const int32_t *ids, int n, const cJSON *want,
                         const cJSON *margins, const char *what) {
    int n_want = cJSON_GetArraySize(want), n_out = 0;
    int32_t *out = malloc(sizeof(int32_t) * (size_t)n_want);
    hkm_err err = {{0}};
    hkm_status st = hkm_generate_greedy(m, ids, n, n_want, -1, out, &n_out, &err);
    CHECK(st == HKM_OK && n_out == n_want, "%s: generate: %s (n_out %d)", what, err.msg, n_out);
    for (int i = 0; st == HKM_OK && i < n_want; i++) {
        int exp = cJSON_GetArrayItem(want, i)->valueint;
        if (out[i] == exp) continue;
        double margin = margins ? cJSON_GetArrayItem(margins, i)->valuedouble : INFINITY;
        CHECK(margin < TIE_MARGIN, "%s: greedy step %d: got %d, transformers %d (margin %.3g)",
              what, i, out[i], exp, margin);
        if (margin < TIE_MARGIN)
            printf("%s: greedy step %d is a near tie (margin %.2g); stopped comparing\n", what, i, margin);
        break;
    }
    free(out);
}

/* ---------------------------------------------------------------- tiny models */

/* max |ours - ref| / max |ref| over one sequence's (n, vocab) logits. */
static double rel_err(const float *ours, const cJSON *ref_seq, int vocab) {
    double num = 0, den = 0;
    int n = cJSON_GetArraySize(ref_seq);
    for (int t = 0; t < n; t++) {
        const cJSON *row = cJSON_GetArrayItem(ref_seq, t);
        int j = 0;
        for (const cJSON *v = row->child; v && j < vocab; v = v->next, j++) {
            num = fmax(num, fabs(ours[(size_t)t * vocab + j] - v->valuedouble));
            den = fmax(den, fabs(v->valuedouble));
        }
        CHECK(j == vocab, "reference row %d has %d logits, vocab %d", t, j, vocab);
    }
    return num / (den > 0 ? den : 1);
}

/* Logits of one sequence by batched prefill (ALL) and by decode steps (LAST). */
static void check_tiny_seq(const hkm_model *m, const cJSON *ids_j, const cJSON *ref_seq,
                           const char *what) {
    int n, V = hkm_model_config(m)->vocab_size;
    int32_t *ids = json_ids(ids_j, &n);
    float *all = malloc(sizeof(float) * (size_t)n * V), *step = malloc(sizeof(float) * (size_t)n * V);
    hkm_kvcache *c = NULL;
    hkm_err err = {{0}};
    hkm_status st = hkm_kvcache_create(hkm_model_config(m), n, &c, &err);
    if (st == HKM_OK) st = hkm_forward_cpu(m, c, ids, n, HKM_LOGITS_ALL, all, NULL, &err);
    CHECK(st == HKM_OK, "%s: prefill: %s", what, err.msg);
    hkm_kvcache_reset(c);
    for (int i = 0; st == HKM_OK && i < n; i++)
        st = hkm_forward_cpu(m, c, ids + i, 1, HKM_LOGITS_LAST, step + (size_t)i * V, NULL, &err);
    CHECK(st == HKM_OK, "%s: decode: %s", what, err.msg);
    if (st == HKM_OK) {
        double r1 = rel_err(all, ref_seq, V), r2 = rel_err(step, ref_seq, V);
        CHECK(r1 <= REL_TOL, "%s: prefill logits rel err %.3g > %g", what, r1, REL_TOL);
        CHECK(r2 <= REL_TOL, "%s: decode logits rel err %.3g > %g", what, r2, REL_TOL);
        printf("%s: logits rel err prefill %.2g, decode %.2g\n", what, r1, r2);
    }
    hkm_kvcache_free(c);
    free(ids), free(all), free(step);
}

/* The model at path (a checkpoint directory or a .gguf) against ref. */
static void check_against(const char *path, const char *label, const cJSON *ref) {
    char what[300];
    hkm_model *m = NULL;
    hkm_err err = {{0}};
    hkm_status st = hkm_model_load(path, &m, &err);
    CHECK(st == HKM_OK, "%s: load: %s: %s", label, hkm_status_str(st), err.msg);
    const cJSON *ids = cJSON_GetObjectItem(ref, "ids"), *logits = cJSON_GetObjectItem(ref, "logits");
    const cJSON *greedy = cJSON_GetObjectItem(ref, "greedy");
    const cJSON *margin = cJSON_GetObjectItem(ref, "greedy_margin");
    CHECK(ids && logits && greedy, "%s: reference.json lacks ids/logits/greedy", label);
    for (int s = 0; st == HKM_OK && ids && logits && greedy && s < cJSON_GetArraySize(ids); s++) {
        snprintf(what, sizeof what, "%s seq %d", label, s);
        const cJSON *ids_s = cJSON_GetArrayItem(ids, s);
        check_tiny_seq(m, ids_s, cJSON_GetArrayItem(logits, s), what);
        int n;
        int32_t *p = json_ids(ids_s, &n);
        check_greedy(m, p, n, cJSON_GetArrayItem(greedy, s), cJSON_GetArrayItem(margin, s), what);
        free(p);
    }
    hkm_model_free(m);
}

/* A tiny checkpoint directory, and any .gguf beside it (the same weights
 * converted as llama.cpp does, e.g. llama3/model-rope-freqs.gguf), against
 * the directory's transformers reference. */
static void check_tiny(const char *dir, const char *name) {
    char path[1400], label[600];
    snprintf(path, sizeof path, "%s/%s/reference.json", dir, name);
    cJSON *ref = load_json(path);
    if (!ref) return; // a directory without a reference is not a test case
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(label, sizeof label, "tiny/%s", name);
    check_against(path, label, ref);
    DIR *d = opendir(path);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 5 || strcmp(e->d_name + l - 5, ".gguf")) continue;
        char gp[1700];
        snprintf(gp, sizeof gp, "%s/%s", path, e->d_name);
        snprintf(label, sizeof label, "tiny/%s/%s", name, e->d_name);
        check_against(gp, label, ref);
    }
    if (d) closedir(d);
    cJSON_Delete(ref);
}

static int tiny_models(void) {
    char dir[1024];
    test_data("tiny", dir, sizeof dir);
    DIR *d = opendir(dir);
    CHECK(d != NULL, "cannot open %s", dir);
    if (!d) return 0;
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') check_tiny(dir, e->d_name), count++;
    closedir(d);
    return count;
}

/* ---------------------------------------------------------------- default model */

/* One prompt: its stored logit slices and its greedy continuation. */
static void check_default_prompt(const hkm_model *m, const cJSON *p, int idx) {
    char what[64];
    snprintf(what, sizeof what, "default model prompt %d", idx);
    int n, V = hkm_model_config(m)->vocab_size;
    int32_t *ids = json_ids(cJSON_GetObjectItem(p, "ids"), &n);
    float *logits = malloc(sizeof(float) * (size_t)n * V);
    hkm_kvcache *c = NULL;
    hkm_err err = {{0}};
    hkm_status st = hkm_kvcache_create(hkm_model_config(m), n, &c, &err);
    if (st == HKM_OK) st = hkm_forward_cpu(m, c, ids, n, HKM_LOGITS_ALL, logits, NULL, &err);
    CHECK(st == HKM_OK, "%s: forward: %s", what, err.msg);
    double num = 0, den = 0;
    const cJSON *row;
    cJSON_ArrayForEach(row, cJSON_GetObjectItem(p, "logits")) {
        if (st != HKM_OK) break;
        int pos = cJSON_GetObjectItem(row, "pos")->valueint, k = 0;
        const cJSON *sel = cJSON_GetObjectItem(row, "ids"), *vals = cJSON_GetObjectItem(row, "values");
        for (const cJSON *i = sel->child, *v = vals->child; i && v; i = i->next, v = v->next, k++) {
            num = fmax(num, fabs(logits[(size_t)pos * V + i->valueint] - v->valuedouble));
            den = fmax(den, fabs(v->valuedouble));
        }
        const float *lp = logits + (size_t)pos * V;
        int best = 0;
        for (int j = 1; j < V; j++) best = lp[j] > lp[best] ? j : best;
        int want = cJSON_GetObjectItem(row, "argmax")->valueint;
        CHECK(best == want, "%s pos %d: argmax %d, transformers %d", what, pos, best, want);
    }
    double r = num / (den > 0 ? den : 1);
    CHECK(r <= REL_TOL, "%s: logits rel err %.3g > %g", what, r, REL_TOL);
    printf("%s (%d tokens): logits rel err %.2g\n", what, n, r);
    check_greedy(m, ids, n, cJSON_GetObjectItem(p, "greedy"), NULL, what);
    hkm_kvcache_free(c);
    free(ids), free(logits);
}

static void default_model(void) {
    char mbuf[1024], rbuf[1024];
    const char *model = test_default_model(mbuf, sizeof mbuf);
    if (!model) {
        printf("default model absent (run scripts/setup.sh or set HUBKV_MODEL_GGUF); "
               "skipping its parity check\n");
        return;
    }
    cJSON *ref = load_json(test_data("default_model_reference.json", rbuf, sizeof rbuf));
    CHECK(ref != NULL, "cannot read %s", rbuf);
    hkm_model *m = NULL;
    hkm_err err = {{0}};
    hkm_status st = hkm_model_load(model, &m, &err);
    CHECK(st == HKM_OK, "%s: %s: %s", model, hkm_status_str(st), err.msg);
    const cJSON *p;
    int i = 0;
    if (ref && st == HKM_OK)
        cJSON_ArrayForEach(p, cJSON_GetObjectItem(ref, "prompts")) check_default_prompt(m, p, i++);
    hkm_model_free(m);
    cJSON_Delete(ref);
}

int main(void) {
    int n = tiny_models();
    CHECK(n > 0, "no tiny models found under tests/data/tiny");
    default_model();
    return test_summary("test_parity");
}
