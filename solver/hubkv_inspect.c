/* hubkv-inspect: prints a profile's metadata and budget summary, draws the
 * budget heat map and loss curves as SVG, exports the budgets (LU-KV .npy,
 * DuoAttention .tsv, KVzip head scores .npy) and compares them with such
 * files (read back by the C importers). */
#include "export.h"
#include "profile_out.h"
#include "solve.h"
#include "svg.h"

#include <gsl/gsl_sort_float.h>
#include <gsl/gsl_statistics_float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
        "usage: hubkv-inspect PROFILE [options]\n"
        "  --ratio R            ratio in %% for the heat map and the per-layer table (default 50)\n"
        "  --heatmap FILE.svg   budget heat map (layer x KV head) at --ratio\n"
        "  --curves FILE.svg    loss curves (convex hulls) of --heads\n"
        "  --heads LIST         heads as layer:head, comma-separated (default: the 4 most and least kept)\n"
        "  --export-lukv FILE   LU-KV prune ratios .npy (99, L, H)\n"
        "  --export-duo FILE    DuoAttention full_attention_heads.tsv (keep at --ratio)\n"
        "  --export-kvzip FILE  KVzip-style head scores .npy (L, H)\n"
        "  --compare-lukv FILE  max |difference| of an LU-KV .npy against this profile's prune ratios\n"
        "  --compare-duo FILE   max |difference| of a DuoAttention .tsv against keep at --ratio\n");
}

static int die(const char *what, const char *msg) {
    fprintf(stderr, "hubkv-inspect: %s: %s\n", what, msg);
    return 1;
}

/* ---------------------------------------------------------------- printing */

static void print_meta(const char *path, hubkv_profile *p) {
    const hubkv_model_desc *m = hubkv_profile_model(p);
    int32_t maj, min, G;
    hubkv_profile_version(p, &maj, &min);
    const float *grid = hubkv_profile_grid(p, &G);
    printf("%s: hubkv-profile v%d.%d\n", path, maj, min);
    printf("  model      %s, %d layers, %d heads / %d KV heads, head_dim %d, vocab %d, hash %016llx\n", m->architecture,
           m->n_layers, m->n_heads, m->n_kv_heads, m->head_dim, m->vocab, (unsigned long long)m->hash);
    printf("  scorer     %s %s\n", hubkv_profile_scorer(p), hubkv_profile_scorer_params(p));
    printf("  grid       %d points in [%g, %g]; sink %d, recent %d always kept\n", G, grid[0], grid[G - 1],
           hubkv_profile_n_sink(p), hubkv_profile_n_recent(p));
    printf("  baselines  uniform %s, pyramidkv %s\n", hubkv_profile_baseline(p, "uniform") ? "yes" : "no",
           hubkv_profile_baseline(p, "pyramidkv") ? "yes" : "no");
}

/* Keep-fraction statistics of one ratio's row (GSL: mean, sd, median). */
static void print_row(int r, const float *k, int32_t n, float *sorted) {
    memcpy(sorted, k, (size_t)n * sizeof *k);
    gsl_sort_float(sorted, 1, (size_t)n);
    printf("  %3d%%  mean %.4f  sd %.4f  min %.4f  median %.4f  max %.4f\n", r, gsl_stats_float_mean(k, 1, (size_t)n),
           n > 1 ? gsl_stats_float_sd(k, 1, (size_t)n) : 0.0, sorted[0],
           gsl_stats_float_median_from_sorted_data(sorted, 1, (size_t)n), sorted[n - 1]);
}

static void print_budgets(const float *keep, int32_t L, int32_t H, int ratio, const float *adakv) {
    int32_t n = L * H;
    float *sorted = calloc((size_t)n, sizeof *sorted);
    if (!sorted) return;
    printf("budget summary (keep fraction per head; greedy over the convex hulls):\n");
    static const int rs[] = {10, 25, 50, 75, 90, 95};
    for (size_t i = 0; i < sizeof rs / sizeof *rs; i++) print_row(rs[i], keep + (int64_t)(rs[i] - 1) * n, n, sorted);
    printf("per-layer mean keep at %d%% (greedy%s):\n", ratio, adakv ? " | adakv baseline" : "");
    for (int32_t l = 0; l < L; l++) {
        const float *k = keep + (int64_t)(ratio - 1) * n + (int64_t)l * H;
        printf("  layer %3d  %.4f", l, gsl_stats_float_mean(k, 1, (size_t)H));
        if (adakv) printf("  |  %.4f", gsl_stats_float_mean(adakv + (int64_t)(ratio - 1) * n + (int64_t)l * H, 1, (size_t)H));
        printf("\n");
    }
    free(sorted);
}

/* ---------------------------------------------------------------- figures */

/* "l:h,l:h" -> flat head indices; default: the 4 most and 4 least kept. */
static int32_t pick_heads(const char *list, const float *k, int32_t L, int32_t H, int32_t *out) {
    int32_t n = 0;
    if (list) {
        for (const char *p = list; *p && n < 8;) {
            int l, h, used;
            if (sscanf(p, "%d:%d%n", &l, &h, &used) != 2 || l < 0 || l >= L || h < 0 || h >= H) return -1;
            out[n++] = l * H + h;
            p += used;
            if (*p == ',') p++;
            else if (*p) return -1;
        }
        return n;
    }
    size_t idx[8], m = (size_t)L * H < 4 ? (size_t)L * H : 4;
    gsl_sort_float_largest_index(idx, m, k, 1, (size_t)L * H);
    for (size_t i = 0; i < m; i++) out[n++] = (int32_t)idx[i];
    gsl_sort_float_smallest_index(idx, m, k, 1, (size_t)L * H);
    for (size_t i = 0; i < m; i++) {
        int dup = 0;
        for (int32_t j = 0; j < n; j++) dup |= out[j] == (int32_t)idx[i];
        if (!dup) out[n++] = (int32_t)idx[i];
    }
    return n;
}

static int draw_curves(const char *path, hubkv_profile *p, const char *list, const float *k, int ratio) {
    const hubkv_model_desc *m = hubkv_profile_model(p);
    int32_t G, heads[8], H = m->n_kv_heads;
    const float *grid = hubkv_profile_grid(p, &G), *loss = hubkv_profile_loss(p);
    int32_t n = pick_heads(list, k, m->n_layers, H, heads);
    if (n <= 0) return die("--heads", "expected up to 8 entries layer:head within the model");
    float *c = calloc((size_t)n * G, sizeof *c);
    char lab[8][64];
    const char *labels[8];
    for (int32_t i = 0; i < n; i++) {
        memcpy(c + (int64_t)i * G, loss + (int64_t)heads[i] * G, (size_t)G * sizeof *c);
        snprintf(lab[i], sizeof lab[i], "L%d H%d keep %.2f", heads[i] / H, heads[i] % H, k[heads[i]]);
        labels[i] = lab[i];
    }
    char title[128];
    snprintf(title, sizeof title, "loss curves (convex hulls), keep at %d%%", ratio);
    hkm_err err = {{0}};
    hkm_status st = hks_svg_curves(path, grid, G, n, c, labels, title, &err);
    free(c);
    return st ? die("--curves", err.msg) : 0;
}

static double max_diff(const float *a, const float *b, int64_t n) {
    double d = 0;
    for (int64_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - b[i]));
    return d;
}

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv) {
    const char *path = NULL, *heat = NULL, *curves = NULL, *heads = NULL, *lukv = NULL, *duo = NULL, *kvz = NULL;
    const char *cmp_lukv = NULL, *cmp_duo = NULL;
    int ratio = 50;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
        if (a[0] != '-') { path = a; continue; }
        if (i + 1 >= argc) { fprintf(stderr, "hubkv-inspect: %s: expected a value (or unknown option)\n", a); usage(stderr); return 2; }
        const char *v = argv[++i];
        if (!strcmp(a, "--ratio")) {
            char *e;
            long r = strtol(v, &e, 10);
            if (*e || e == v || r < 1 || r > 99) { fprintf(stderr, "hubkv-inspect: --ratio '%s': expected 1..99\n", v); return 2; }
            ratio = (int)r;
        } else if (!strcmp(a, "--heatmap")) heat = v;
        else if (!strcmp(a, "--curves")) curves = v;
        else if (!strcmp(a, "--heads")) heads = v;
        else if (!strcmp(a, "--export-lukv")) lukv = v;
        else if (!strcmp(a, "--export-duo")) duo = v;
        else if (!strcmp(a, "--export-kvzip")) kvz = v;
        else if (!strcmp(a, "--compare-lukv")) cmp_lukv = v;
        else if (!strcmp(a, "--compare-duo")) cmp_duo = v;
        else { fprintf(stderr, "hubkv-inspect: unknown option %s\n", a); usage(stderr); return 2; }
    }
    if (!path) { usage(stderr); return 2; }
    char msg[1024];
    hubkv_profile *p = NULL;
    hubkv_status hs = hubkv_profile_open(path, NULL, &p, msg, sizeof msg);
    if (hs != HUBKV_OK) return die(path, msg);
    const hubkv_model_desc *m = hubkv_profile_model(p);
    int32_t L = m->n_layers, H = m->n_kv_heads, n = L * H;
    const float *keep = hubkv_profile_budget_keep(p);
    hkm_err err = {{0}};
    float *adakv = NULL;
    if (hks_profile_read_extra(path, HKS_DS_ADAKV, L, H, &adakv, &err)) return die(path, err.msg);
    print_meta(path, p);
    printf("  adakv      %s\n", adakv ? "yes" : "no");
    print_budgets(keep, L, H, ratio, adakv);
    int rc = 0;
    const float *row = keep + (int64_t)(ratio - 1) * n;
    if (heat) {
        char title[128];
        snprintf(title, sizeof title, "keep fraction at ratio %d%% (%s)", ratio, hubkv_profile_scorer(p));
        if (hks_svg_heatmap(heat, L, H, row, title, &err)) rc = die("--heatmap", err.msg);
    }
    if (!rc && curves) rc = draw_curves(curves, p, heads, row, ratio);
    float *tmp = calloc((size_t)HKS_N_RATIOS * n, sizeof *tmp);
    int64_t s3[3] = {HKS_N_RATIOS, L, H}, s2[2] = {L, H};
    if (!tmp) rc = die("memory", "out of memory");
    if (!rc && lukv) { hks_lukv_from_keep(keep, L, H, tmp); if (hks_npy_write(lukv, 3, s3, tmp, &err)) rc = die("--export-lukv", err.msg); }
    if (!rc && duo) { hks_duo_from_keep(keep, L, H, ratio, tmp); if (hks_duo_write(duo, L, H, tmp, &err)) rc = die("--export-duo", err.msg); }
    if (!rc && kvz) { hks_kvzip_from_keep(keep, L, H, tmp); if (hks_npy_write(kvz, 2, s2, tmp, &err)) rc = die("--export-kvzip", err.msg); }
    if (!rc && cmp_lukv) {
        int nd;
        int64_t sh[4];
        float *x = NULL;
        if (hks_npy_read(cmp_lukv, &nd, sh, &x, &err)) rc = die("--compare-lukv", err.msg);
        else if (nd != 3 || sh[0] != HKS_N_RATIOS || sh[1] != L || sh[2] != H) rc = die("--compare-lukv", "expected shape (99, L, H) of this profile");
        else {
            hks_lukv_from_keep(keep, L, H, tmp);
            printf("LU-KV %s: max |prune difference| %.3g\n", cmp_lukv, max_diff(x, tmp, (int64_t)HKS_N_RATIOS * n));
        }
        free(x);
    }
    if (!rc && cmp_duo) {
        int32_t dl, dh;
        float *x = NULL;
        if (hks_duo_read(cmp_duo, &dl, &dh, &x, &err)) rc = die("--compare-duo", err.msg);
        else if (dl != L || dh != H) rc = die("--compare-duo", "expected L lines of H values of this profile");
        else printf("DuoAttention %s: max |difference| to keep at %d%%: %.3g\n", cmp_duo, ratio, max_diff(x, row, n));
        free(x);
    }
    free(tmp);
    free(adakv);
    hubkv_profile_free(p);
    return rc;
}
