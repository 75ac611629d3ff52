/* hubkv-solve and hubkv-inspect end to end on the tiny model: synth ->
 * profile -> solve; the profile opens in libhubkv with the model's
 * fingerprint, budgets sum to the targets, the runtime's own greedy agrees,
 * exports read back by the C importers, and bad input gives clear errors.
 * usage: test_solver_cli SYNTH PROFILE SOLVE INSPECT MODEL WORKDIR */
#include "export.h"
#include "hubkv.h"
#include "inputs.h"
#include "test_util.h"

#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char out_buf[8192];

/* Runs cmd, capturing stdout+stderr into out_buf; returns the exit code. */
static int run(const char *cmd) {
    char full[4096];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    if (!p) return -1;
    size_t n = fread(out_buf, 1, sizeof out_buf - 1, p);
    out_buf[n] = 0;
    int rc = pclose(p);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void test_npy_errors(const char *dir) {
    char path[1024];
    hkm_err err = {{0}};
    int nd;
    int64_t sh[4];
    float *x = NULL;
    snprintf(path, sizeof path, "%s/bad.npy", dir);
    FILE *f = fopen(path, "wb");
    fputs("not numpy", f);
    fclose(f);
    CHECK(hks_npy_read(path, &nd, sh, &x, &err) == HKM_ERR_FORMAT && strstr(err.msg, "magic"), "bad magic: %s", err.msg);
    // A 1-D array round trip and a truncated copy of it.
    float v[5] = {1, 2, 3, 4.5f, -1};
    int64_t s1[1] = {5};
    CHECK(hks_npy_write(path, 1, s1, v, &err) == HKM_OK, "%s", err.msg);
    CHECK(hks_npy_read(path, &nd, sh, &x, &err) == HKM_OK && nd == 1 && sh[0] == 5 && !memcmp(x, v, sizeof v), "1-D round trip");
    free(x);
    CHECK(truncate(path, 128 + 8) == 0, "truncate");
    CHECK(hks_npy_read(path, &nd, sh, &x, &err) == HKM_ERR_FORMAT && strstr(err.msg, "truncated"), "truncated: %s", err.msg);
    snprintf(path, sizeof path, "%s/bad.tsv", dir);
    f = fopen(path, "w");
    fputs("0.5\t1\n0.2\n", f);
    fclose(f);
    int32_t L, H;
    CHECK(hks_duo_read(path, &L, &H, &x, &err) == HKM_ERR_FORMAT && strstr(err.msg, "line 2"), "ragged tsv: %s", err.msg);
    f = fopen(path, "w");
    fputs("0.5\t1.5\n", f);
    fclose(f);
    CHECK(hks_duo_read(path, &L, &H, &x, &err) == HKM_ERR_FORMAT && strstr(err.msg, "[0, 1]"), "range tsv: %s", err.msg);
}

int main(int argc, char **argv) {
    if (argc != 7) { fprintf(stderr, "usage: %s SYNTH PROFILE SOLVE INSPECT MODEL WORKDIR\n", argv[0]); return 2; }
    const char *synth = argv[1], *prof = argv[2], *solve = argv[3], *insp = argv[4], *model = argv[5], *dir = argv[6];
    mkdir(dir, 0755);
    char cmd[8192], calib[1024], stats[1024], out[1024], lukv[1024], duo[1024], kvz[1024], svg[1024];
    snprintf(calib, sizeof calib, "%s/calib.h5", dir);
    snprintf(stats, sizeof stats, "%s/stats.h5", dir);
    snprintf(out, sizeof out, "%s/profile.h5", dir);
    snprintf(lukv, sizeof lukv, "%s/lukv_prune.npy", dir);
    snprintf(duo, sizeof duo, "%s/full_attention_heads.tsv", dir);
    snprintf(kvz, sizeof kvz, "%s/kvzip_head_scores.npy", dir);
    snprintf(svg, sizeof svg, "%s/heat.svg", dir);
    snprintf(cmd, sizeof cmd, "%s --random-vocab 320 --count 6 --min-len 48 --max-len 80 --future-min 6 --future-max 12 "
             "--heldout-frac 0.2 --seed 5 --out %s", synth, calib);
    CHECK(run(cmd) == 0, "synth: %s", out_buf);
    snprintf(cmd, sizeof cmd, "%s --model %s --calib %s --grid 64 --chunk 16 --recent 8 --snap-window 8 --out %s --restart",
             prof, model, calib, stats);
    CHECK(run(cmd) == 0, "profile: %s", out_buf);
    snprintf(cmd, sizeof cmd, "%s --stats %s --model %s --out %s --scorer kvzip --export-lukv %s --export-duo %s "
             "--duo-ratio 40 --export-kvzip %s", solve, stats, model, out, lukv, duo, kvz);
    CHECK(run(cmd) == 0 && strstr(out_buf, "loss(greedy)"), "solve: %s", out_buf);
    if (test_failures) return test_summary("test_solver_cli");

    // The profile opens with the model's fingerprint.
    hubkv_model_desc md;
    hkm_err err = {{0}};
    CHECK(hks_model_desc_load(model, &md, &err) == HKM_OK, "%s", err.msg);
    char msg[1024];
    hubkv_profile *p = NULL;
    CHECK(hubkv_profile_open(out, &md, &p, msg, sizeof msg) == HUBKV_OK, "open: %s", msg);
    if (!p) return test_summary("test_solver_cli");
    int32_t L = md.n_layers, H = md.n_kv_heads, n = L * H, G;
    CHECK(!strcmp(hubkv_profile_scorer(p), "kvzip"), "scorer %s", hubkv_profile_scorer(p));
    hubkv_profile_grid(p, &G);
    CHECK(G == 65, "grid %d", G);
    // Budgets: sums equal round((1-r) N L H) (or the sink+recent floor), and the
    // runtime's greedy at the calibration length reproduces them.
    const float *keep = hubkv_profile_budget_keep(p);
    FILE *f = fopen(out, "rb");
    CHECK(f != NULL, "profile exists");
    if (f) fclose(f);
    int64_t N = 0;
    { // calib_context_len is in the metadata string of hubkv-solve's params
        const char *sp = strstr(hubkv_profile_scorer_params(p), "\"context_len\": ");
        CHECK(sp != NULL, "context_len in scorer_params");
        if (sp) N = atoll(sp + strlen("\"context_len\": "));
    }
    int64_t lo = hubkv_profile_n_sink(p) + hubkv_profile_n_recent(p);
    int32_t *rt = calloc((size_t)n, sizeof *rt);
    for (int r = 1; r <= 99 && N > 0; r++) {
        double sum = 0;
        for (int i = 0; i < n; i++) sum += keep[(r - 1) * n + i] * (double)N;
        int64_t want = llround((1 - r / 100.0) * N * n);
        if (want < lo * n) want = lo * n;
        CHECK(llround(sum) == want, "ratio %d: kept %g tokens; expected %lld", r, sum, (long long)want);
        if (want > lo * n && hubkv_profile_budgets(p, r / 100.0f, N, rt) == HUBKV_OK) {
            double d = 0;
            for (int i = 0; i < n; i++) d = fmax(d, fabs(rt[i] - keep[(r - 1) * n + i] * (double)N));
            CHECK(d <= 1.0 + 1e-3, "ratio %d: runtime budgets differ by %g tokens", r, d);
        }
    }
    free(rt);
    // Exports read back by the C importers.
    int nd;
    int64_t sh[4];
    float *x = NULL;
    CHECK(hks_npy_read(lukv, &nd, sh, &x, &err) == HKM_OK && nd == 3 && sh[0] == 99 && sh[1] == L && sh[2] == H, "lukv: %s", err.msg);
    for (int i = 0; x && i < 99 * n; i++) CHECK(x[i] == 1.0f - keep[i], "lukv[%d] %g vs 1 - keep %g", i, x[i], keep[i]);
    free(x);
    CHECK(hks_npy_read(kvz, &nd, sh, &x, &err) == HKM_OK && nd == 2 && sh[0] == L && sh[1] == H, "kvzip: %s", err.msg);
    for (int i = 0; x && i < n; i++) {
        double m = 0;
        for (int r = 0; r < 99; r++) m += keep[r * n + i] / 99.0;
        CHECK(fabs(x[i] - m) < 1e-6, "kvzip[%d] %g vs mean keep %g", i, x[i], m);
    }
    free(x);
    int32_t dl, dh;
    CHECK(hks_duo_read(duo, &dl, &dh, &x, &err) == HKM_OK && dl == L && dh == H, "duo: %s", err.msg);
    for (int i = 0; x && i < n; i++) CHECK(x[i] == keep[39 * n + i], "duo[%d] %g vs keep at 40%% %g", i, x[i], keep[39 * n + i]);
    free(x);
    hubkv_profile_free(p);

    // hubkv-inspect: summary, SVG, comparisons.
    snprintf(cmd, sizeof cmd, "%s %s --ratio 40 --heatmap %s --compare-lukv %s --compare-duo %s", insp, out, svg, lukv, duo);
    CHECK(run(cmd) == 0 && strstr(out_buf, "budget summary") && strstr(out_buf, "max |prune difference| 0") &&
              strstr(out_buf, "to keep at 40%: 0"), "inspect: %s", out_buf);
    f = fopen(svg, "r");
    char head[64] = "";
    if (f) { if (!fgets(head, sizeof head, f)) head[0] = 0; fclose(f); }
    CHECK(!strncmp(head, "<svg", 4), "heat map is SVG: '%s'", head);

    // Clear errors.
    snprintf(cmd, sizeof cmd, "%s --stats %s/none.h5 --out %s/x.h5", solve, dir, dir);
    CHECK(run(cmd) != 0 && strstr(out_buf, "none.h5"), "missing stats: %s", out_buf);
    snprintf(cmd, sizeof cmd, "%s --stats %s --out %s/x.h5 --scorer foo", solve, stats, dir);
    CHECK(run(cmd) == 2 && strstr(out_buf, "expected snapkv"), "bad scorer: %s", out_buf);
    snprintf(cmd, sizeof cmd, "%s --stats %s --out %s/x.h5 --layer-weights 1", solve, stats, dir);
    CHECK(run(cmd) == 2 && strstr(out_buf, "--layer-weights"), "bad weights: %s", out_buf);
    snprintf(cmd, sizeof cmd, "%s --stats %s --out %s/x.h5 --model %s/none", solve, stats, dir, dir);
    CHECK(run(cmd) != 0 && strstr(out_buf, "--model"), "bad model: %s", out_buf);
    snprintf(cmd, sizeof cmd, "%s --stats %s --out /nonexistent-dir/x.h5", solve, stats);
    CHECK(run(cmd) != 0 && strstr(out_buf, "--out"), "bad out: %s", out_buf);
    snprintf(cmd, sizeof cmd, "%s %s/none.h5", insp, dir);
    CHECK(run(cmd) != 0 && strstr(out_buf, "none.h5"), "inspect missing: %s", out_buf);
    test_npy_errors(dir);
    return test_summary("test_solver_cli");
}
