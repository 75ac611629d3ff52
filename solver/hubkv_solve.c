/* hubkv-solve: stats file of hubkv-profile -> HubKV profile (format v1) with
 * convex-hull loss curves, greedy budgets for ratios 1..99 %, baselines, and
 * optional LU-KV / DuoAttention / KVzip exports. */
#include "baselines.h"
#include "export.h"
#include "hubkv_cli.h"
#include "inputs.h"
#include "profile_out.h"
#include "solve.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

typedef struct {
    const char *stats, *model, *out, *scorer, *ratios, *layer_w;
    const char *lukv, *duo, *kvzip;
    long context_len;
    double min_keep, max_keep;
    int duo_ratio, quiet;
} opts;

static void usage(FILE *f) {
    fprintf(f,
        "usage: hubkv-solve --stats FILE --out FILE [options]\n"
        "Per-head loss curves -> PAVA + lower convex hull -> marginal-utility greedy budgets for\n"
        "compression ratios 1..99 %% (one pass), plus uniform/PyramidKV/AdaKV baselines, in a\n"
        "HubKV profile v1 (docs/profile-format.md, docs/solver.md).\n"
        "  --stats FILE         stats file of hubkv-profile (complete run or merged shards)\n"
        "  --out FILE           profile to write (FILE.solve.<pid>, then renamed)\n"
        "  --model PATH         .gguf or HF directory for the fingerprint (default: the stats' model)\n"
        "  --scorer S           snapkv (default), h2o, keydiff, kvzip or oracle\n"
        "  --ratios LIST        ratios in %% to print in the summary (default 10,25,50,75,90)\n"
        "  --context-len N      context length the budgets are tabulated at (default: mean of the stats)\n"
        "  --layer-weights LIST comma-separated loss weight per layer (default all 1)\n"
        "  --min-keep F         per-head minimum keep fraction (default 0; sinks+recent always kept)\n"
        "  --max-keep F         per-head maximum keep fraction (default 1)\n"
        "  --export-lukv FILE   LU-KV per-head prune ratios .npy (99, L, H) = 1 - keep\n"
        "  --export-duo FILE    DuoAttention full_attention_heads.tsv: keep at --duo-ratio\n"
        "  --duo-ratio R        ratio in %% for --export-duo (default 50)\n"
        "  --export-kvzip FILE  KVzip-style head scores .npy (L, H): mean keep over the ratios\n"
        "  --quiet              no summary\n");
}

static void parse_args(int argc, char **argv, opts *o) {
    memset(o, 0, sizeof *o);
    o->scorer = "snapkv";
    o->ratios = "10,25,50,75,90";
    o->max_keep = 1;
    o->duo_ratio = 50;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); exit(0); }
        if (!strcmp(a, "--quiet")) { o->quiet = 1; continue; }
        if (i + 1 >= argc) { fprintf(stderr, "hubkv-solve: %s: expected a value (or unknown option)\n", a); usage(stderr); exit(2); }
        const char *v = argv[++i];
        if (!strcmp(a, "--stats")) o->stats = v;
        else if (!strcmp(a, "--model")) o->model = v;
        else if (!strcmp(a, "--out")) o->out = v;
        else if (!strcmp(a, "--scorer")) o->scorer = v;
        else if (!strcmp(a, "--ratios")) o->ratios = v;
        else if (!strcmp(a, "--layer-weights")) o->layer_w = v;
        else if (!strcmp(a, "--context-len")) o->context_len = hkc_long(a, v, 1, 1 << 30);
        else if (!strcmp(a, "--min-keep")) o->min_keep = hkc_double(a, v, 0, 1);
        else if (!strcmp(a, "--max-keep")) o->max_keep = hkc_double(a, v, 0, 1);
        else if (!strcmp(a, "--export-lukv")) o->lukv = v;
        else if (!strcmp(a, "--export-duo")) o->duo = v;
        else if (!strcmp(a, "--duo-ratio")) o->duo_ratio = (int)hkc_long(a, v, 1, 99);
        else if (!strcmp(a, "--export-kvzip")) o->kvzip = v;
        else { fprintf(stderr, "hubkv-solve: unknown option %s\n", a); usage(stderr); exit(2); }
    }
    if (!o->stats) hkc_die("--stats: expected the stats file of hubkv-profile");
    if (!o->out) hkc_die("--out: expected the profile to write");
    if (hks_scorer_index(o->scorer) < 0)
        hkc_die("--scorer '%s': expected snapkv, h2o, keydiff, kvzip or oracle", o->scorer);
    if (o->min_keep > o->max_keep) hkc_die("--min-keep must not exceed --max-keep");
}

/* Comma-separated numbers: exactly n values into out. */
static int parse_list(const char *s, double *out, int n, double lo, double hi) {
    int k = 0;
    for (const char *p = s; *p;) {
        char *e;
        double v = strtod(p, &e);
        if (e == p || k >= n || !(v >= lo && v <= hi)) return -1;
        out[k++] = v;
        p = *e == ',' ? e + 1 : e;
        if (*e && *e != ',') return -1;
    }
    return k;
}

/* ---------------------------------------------------------------- summary */

static void summary(const opts *o, const hks_problem *p, const hks_solution *s, const int64_t *base[3]) {
    double rl[99];
    int nr = parse_list(o->ratios, rl, 99, 1, 99);
    if (nr < 0) { fprintf(stderr, "hubkv-solve: --ratios '%s': expected percents 1..99, comma-separated\n", o->ratios); return; }
    int32_t nh = p->L * p->H;
    printf("%d layers x %d KV heads, grid %d, N = %lld, per head [%lld, %lld] tokens, %lld hull knots (mean %.1f/head)\n",
           p->L, p->H, p->G, (long long)p->n_tokens, (long long)s->lo, (long long)s->hi, (long long)s->knot_off[nh],
           (double)s->knot_off[nh] / nh);
    if (s->n_clamped) printf("note: %d ratio targets fall outside the per-head bounds and were clamped\n", s->n_clamped);
    printf("ratio  kept_tokens  loss(greedy)  loss(uniform)  loss(pyramidkv)  loss(adakv)  keep min/mean/max\n");
    for (int i = 0; i < nr; i++) {
        int r = (int)rl[i];
        const int64_t *c = s->counts + (int64_t)(r - 1) * nh;
        double obj[4] = {hks_objective(p->grid, p->G, s->hull, nh, c, p->n_tokens)};
        for (int b = 0; b < 3; b++) obj[b + 1] = hks_objective(p->grid, p->G, s->hull, nh, base[b] + (int64_t)(r - 1) * nh, p->n_tokens);
        const float *k = s->keep + (int64_t)(r - 1) * nh;
        double mn = 1, mx = 0, mean = 0;
        for (int32_t h = 0; h < nh; h++) mn = fmin(mn, k[h]), mx = fmax(mx, k[h]), mean += k[h] / nh;
        printf("%3d%%  %11lld  %12.5g  %13.5g  %15.5g  %11.5g  %.3f/%.3f/%.3f\n", r, (long long)s->targets[r - 1], obj[0],
               obj[1], obj[2], obj[3], mn, mean, mx);
    }
}

/* ---------------------------------------------------------------- main */

static int fail(const char *what, const hkm_err *err) {
    fprintf(stderr, "hubkv-solve: %s: %s\n", what, err->msg);
    return 1;
}

static float *to_keep(const int64_t *counts, int64_t n, int64_t N) {
    float *k = calloc((size_t)n, sizeof *k);
    for (int64_t i = 0; k && i < n; i++) k[i] = (float)((double)counts[i] / (double)N);
    return k;
}

int main(int argc, char **argv) {
    opts o;
    hkc_tool("hubkv-solve");
    parse_args(argc, argv, &o);
    hkm_err err = {{0}};
    int sc = hks_scorer_index(o.scorer);
    hks_stats_in st;
    if (hks_stats_load(o.stats, sc, &st, &err)) return fail("stats", &err);
    hubkv_model_desc md;
    const char *model = o.model ? o.model : st.model;
    if (hks_model_desc_load(model, &md, &err)) {
        hks_stats_in_free(&st);
        return fail(o.model ? "--model" : "model named in the stats file (pass --model)", &err);
    }
    if (md.n_layers != st.L || md.n_kv_heads != st.H) {
        fprintf(stderr, "hubkv-solve: %s has %d layers x %d KV heads but %s has %d x %d: expected the profiled model\n",
                model, md.n_layers, md.n_kv_heads, o.stats, st.L, st.H);
        hks_stats_in_free(&st);
        return 1;
    }
    double *lw = NULL;
    if (o.layer_w) {
        lw = calloc((size_t)st.L, sizeof *lw);
        if (!lw || parse_list(o.layer_w, lw, st.L, 0, 1e30) != st.L) {
            fprintf(stderr, "hubkv-solve: --layer-weights '%s': expected %d comma-separated numbers >= 0\n", o.layer_w, st.L);
            free(lw); // error paths free what they hold (LeakSanitizer in CI)
            hks_stats_in_free(&st);
            return 2;
        }
    }
    hks_problem p = hks_problem_default();
    p.L = st.L, p.H = st.H, p.G = st.G;
    p.grid = st.grid, p.loss = st.loss, p.layer_w = lw;
    p.n_tokens = o.context_len ? o.context_len : (int64_t)llround(st.mean_tokens);
    p.n_sink = st.sink, p.n_recent = st.recent;
    p.min_keep = o.min_keep, p.max_keep = o.max_keep;
    hks_solution s = {0};
    clock_t t0 = clock();
    if (hks_solve_hulls(&p, &s, &err) || hks_solve_budgets(&p, &s, &err)) {
        free(lw);
        hks_solution_free(&s);
        hks_stats_in_free(&st);
        return fail("solve", &err);
    }
    double ms = 1e3 * (double)(clock() - t0) / CLOCKS_PER_SEC;
    int32_t nh = p.L * p.H;
    int64_t *base[3];
    for (int b = 0; b < 3; b++) base[b] = calloc((size_t)HKS_N_RATIOS * nh, sizeof **base);
    if (!base[0] || !base[1] || !base[2]) { fprintf(stderr, "hubkv-solve: out of memory\n"); return 1; }
    if (hks_baseline_uniform(p.L, p.H, s.targets, s.lo, s.hi, base[0], &err) ||
        hks_baseline_pyramidkv(p.L, p.H, s.targets, s.lo, s.hi, base[1], &err) ||
        hks_baseline_adakv(p.L, p.H, st.entropy, st.top1, p.n_tokens, s.targets, s.lo, s.hi, base[2], &err))
        return fail("baselines", &err);
    float *kb[3], *grid = calloc((size_t)p.G, sizeof *grid), *sel = calloc((size_t)nh, sizeof *sel),
                  *beta = calloc((size_t)nh, sizeof *beta);
    for (int b = 0; b < 3; b++) kb[b] = to_keep(base[b], (int64_t)HKS_N_RATIOS * nh, p.n_tokens);
    if (!kb[0] || !kb[1] || !kb[2] || !grid || !sel || !beta) { fprintf(stderr, "hubkv-solve: out of memory\n"); return 1; }
    for (int32_t g = 0; g < p.G; g++) grid[g] = (float)p.grid[g];
    for (int32_t i = 0; i < nh; i++) {
        sel[i] = (float)fmax(0.0, 1.0 - st.entropy[i]); // 1 - normalised entropy: 0 flat .. 1 one token
        beta[i] = (float)fmin(1.2, fmax(0.8, st.beta[i]));
    }
    char wl[2048] = "null", params[2600];
    for (int32_t l = 0, k = 0; lw && l < p.L && k < (int)sizeof wl - 24; l++)
        k += snprintf(wl + k, sizeof wl - (size_t)k, "%s%g%s", l ? ", " : "[", lw[l], l + 1 == p.L ? "]" : "");
    snprintf(params, sizeof params,
             "{\"solver\": \"pava+hull+greedy\", \"context_len\": %lld, \"min_keep\": %g, \"max_keep\": %g, "
             "\"pyramid_beta\": %g, \"adakv_alpha\": %g, \"layer_weights\": %s}",
             (long long)p.n_tokens, p.min_keep, p.max_keep, HKS_PYRAMID_BETA, HKS_ADAKV_ALPHA, wl);
    hubkv_profile_data d = hubkv_profile_data_default();
    d.model = md;
    d.producer = "hubkv-solve";
    d.scorer_name = o.scorer;
    d.scorer_params = params;
    d.calib_dataset = st.calib;
    d.calib_n_contexts = (int32_t)st.n_contexts;
    d.calib_context_len = (int32_t)p.n_tokens;
    d.n_sink = st.sink, d.n_recent = st.recent;
    d.n_grid = p.G, d.grid = grid, d.loss = s.hull, d.budget_keep = s.keep;
    d.selectivity = sel, d.beta = beta;
    d.baseline_uniform = kb[0], d.baseline_pyramidkv = kb[1];
    if (hks_profile_save(o.out, &d, kb[2], &err)) return fail("--out", &err);
    float *tmp = calloc((size_t)HKS_N_RATIOS * nh, sizeof *tmp);
    if (!tmp) { fprintf(stderr, "hubkv-solve: out of memory\n"); return 1; }
    int64_t shp3[3] = {HKS_N_RATIOS, p.L, p.H}, shp2[2] = {p.L, p.H};
    if (o.lukv) { hks_lukv_from_keep(s.keep, p.L, p.H, tmp); if (hks_npy_write(o.lukv, 3, shp3, tmp, &err)) return fail("--export-lukv", &err); }
    if (o.duo) { hks_duo_from_keep(s.keep, p.L, p.H, o.duo_ratio, tmp); if (hks_duo_write(o.duo, p.L, p.H, tmp, &err)) return fail("--export-duo", &err); }
    if (o.kvzip) { hks_kvzip_from_keep(s.keep, p.L, p.H, tmp); if (hks_npy_write(o.kvzip, 2, shp2, tmp, &err)) return fail("--export-kvzip", &err); }
    if (!o.quiet) {
        printf("hubkv-solve: %s (scorer %s, %.0f contexts) -> %s in %.1f ms (hulls + 99 ratios)\n", o.stats, o.scorer,
               st.n_contexts, o.out, ms);
        const int64_t *bc[3] = {base[0], base[1], base[2]};
        summary(&o, &p, &s, bc);
    }
    for (int b = 0; b < 3; b++) free(base[b]), free(kb[b]);
    free(tmp), free(grid), free(sel), free(beta), free(lw);
    hks_solution_free(&s);
    hks_stats_in_free(&st);
    return 0;
}
