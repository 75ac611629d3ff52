/* Runs hubkv-synth and hubkv-profile on the tiny model: a run killed after
 * one context (HUBKV_TEST_EXIT_AFTER=1, exit 137) then rerun gives the same
 * stats as an uninterrupted run; 2 shards merged give them too (up to float
 * summation order). usage: test_profile_resume SYNTH PROFILE MODEL WORKDIR */
#include "stats_file.h"
#include "test_util.h"

#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

static const char *synth, *prof, *model, *dir;

static int run(const char *fmt, const char *a, const char *b) {
    char cmd[4096], tail[2048];
    snprintf(tail, sizeof tail, fmt, a ? a : "", b ? b : "");
    snprintf(cmd, sizeof cmd, "%s", tail);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void same_stats(const char *pa, const char *pb, double tol) {
    hkp_stats a, b;
    hkm_err err;
    CHECK(hkp_stats_read(pa, &a, &err) == HKM_OK, "%s", err.msg);
    CHECK(hkp_stats_read(pb, &b, &err) == HKM_OK, "%s", err.msg);
    if (test_failures) return;
    CHECK(a.L == b.L && a.KV == b.KV && a.G == b.G, "shapes differ");
    size_t nl = (size_t)a.NB * a.S * a.L * a.KV * a.G, no = (size_t)a.NB * a.L * a.KV * a.G;
    size_t ns = (size_t)a.NB * (a.S + 1) * a.L * a.KV;
    double e = 0, tot = 0;
    for (int i = 0; i < a.NB; i++) { e = fmax(e, fabs(a.count[i] - b.count[i])); tot += a.count[i]; }
    CHECK(e == 0 && tot > 0, "%s vs %s: context counts differ (or none)", pa, pb);
    e = 0;
    for (size_t i = 0; i < nl; i++) e = fmax(e, fabs(a.loss_sum[i] - b.loss_sum[i]) + fabs(a.loss_sq[i] - b.loss_sq[i]));
    for (size_t i = 0; i < no; i++) e = fmax(e, fabs(a.orc_sum[i] - b.orc_sum[i]));
    for (size_t i = 0; i < ns; i++) e = fmax(e, fabs(a.ent_sum[i] - b.ent_sum[i]) + fabs(a.top_sum[i] - b.top_sum[i]));
    CHECK(e <= tol, "%s vs %s: sums differ by %g", pa, pb, e);
    double nz = 0;
    for (size_t i = 0; i < nl; i++) nz += a.loss_sum[i];
    CHECK(nz > 0, "%s: loss sums are all 0", pa);
    hkp_stats_free(&a);
    hkp_stats_free(&b);
}

int main(int argc, char **argv) {
    if (argc != 5) { fprintf(stderr, "usage: %s SYNTH PROFILE MODEL WORKDIR\n", argv[0]); return 2; }
    synth = argv[1]; prof = argv[2]; model = argv[3]; dir = argv[4];
    mkdir(dir, 0755);
    char calib[1024], base[1200], cmd[4096];
    snprintf(calib, sizeof calib, "%s/calib.h5", dir);
    snprintf(cmd, sizeof cmd, "%s --random-vocab 320 --count 7 --min-len 48 --max-len 80 --future-min 6 "
             "--future-max 12 --heldout-frac 0.2 --seed 5 --out %s", synth, calib);
    CHECK(run("%s%s", cmd, NULL) == 0, "synth failed: %s", cmd);
    snprintf(base, sizeof base, "%s --model %s --calib %s --grid 64 --chunk 16 --recent 8 --snap-window 8",
             prof, model, calib);
    char full[1100], resumed[1100], s0[1100], s1[1100], merged[1100];
    snprintf(full, sizeof full, "%s/full.h5", dir);
    snprintf(resumed, sizeof resumed, "%s/resumed.h5", dir);
    snprintf(s0, sizeof s0, "%s/s0.h5", dir);
    snprintf(s1, sizeof s1, "%s/s1.h5", dir);
    snprintf(merged, sizeof merged, "%s/merged.h5", dir);
    const char *outs[] = {full, resumed, s0, s1, merged};
    for (int i = 0; i < 5; i++) remove(outs[i]);

    CHECK(run("%s --out %s", base, full) == 0, "uninterrupted run failed");
    CHECK(run("HUBKV_TEST_EXIT_AFTER=1 %s --out %s", base, resumed) == 137, "killed run: expected exit 137");
    hkp_stats part;
    hkm_err err;
    CHECK(hkp_stats_read(resumed, &part, &err) == HKM_OK && part.next == 1 && !part.complete,
          "checkpoint after one context: expected next_context 1 (%s)", err.msg);
    hkp_stats_free(&part);
    CHECK(run("HUBKV_TEST_EXIT_AFTER=2 %s --out %s", base, resumed) == 137, "second kill: expected 137");
    CHECK(run("%s --out %s", base, resumed) == 0, "resumed run failed");
    same_stats(full, resumed, 1e-9);
    // Other arguments must not silently resume someone else's checkpoint.
    CHECK(run("%s --out %s --grid 32 2>/dev/null", base, resumed) != 0, "mismatched resume: expected a refusal");

    CHECK(run("%s --shard 0/2 --out %s", base, s0) == 0, "shard 0 failed");
    CHECK(run("%s --shard 1/2 --out %s", base, s1) == 0, "shard 1 failed");
    snprintf(cmd, sizeof cmd, "%s merge %s %s %s", prof, merged, s0, s1);
    CHECK(run("%s%s", cmd, NULL) == 0, "merge failed");
    same_stats(full, merged, 1e-9);
    snprintf(cmd, sizeof cmd, "%s merge %s/bad.h5 %s %s 2>/dev/null", prof, dir, s0, calib);
    CHECK(run("%s%s", cmd, NULL) != 0, "merging a calibration set: expected an error");
    return test_summary("test_profile_resume");
}
