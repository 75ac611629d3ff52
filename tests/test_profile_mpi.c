/* hubkv-profile under mpirun on the tiny model: 1 rank, 2 ranks, 4 ranks on
 * a shard (one rank without contexts), 2 merged shards and a killed then
 * resumed 2-rank run all give the stats of one plain run (sums equal up to
 * float summation order, metadata equal), and leave no rank checkpoints.
 * Skips (77) without mpirun or a build without MPI.
 * usage: test_profile_mpi SYNTH PROFILE MPIRUN MODEL WORKDIR */
#include "stats_file.h"
#include "test_util.h"

#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char mpirun[1100], base[4096];

static int sh(const char *cmd) {
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* rc of `[env] mpirun -n R base args`. Leak detection is off for the ranks:
 * in the sanitizer build LeakSanitizer reports Open MPI's own allocations
 * (its dlopen'ed components), which are not ours; every other test of
 * hubkv-profile runs it with leak detection on. */
static int mpi(const char *env, int ranks, const char *args) {
    char cmd[16384];
    snprintf(cmd, sizeof cmd, "ASAN_OPTIONS=detect_leaks=0 %s %s -n %d %s %s >/dev/null 2>&1", env, mpirun,
             ranks, base, args);
    return sh(cmd);
}

static int exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

static int close_rel(double a, double b) { return fabs(a - b) <= 1e-9 * (fabs(a) + fabs(b)) + 1e-12; }

/* Element-wise relative comparison of every sum, plus the metadata a
 * single run writes. */
static void same_stats(const char *pa, const char *pb) {
    hkp_stats a, b;
    hkm_err err = {{0}};
    int before = test_failures;
    CHECK(hkp_stats_read(pa, &a, &err) == HKM_OK, "%s", err.msg);
    CHECK(hkp_stats_read(pb, &b, &err) == HKM_OK, "%s", err.msg);
    if (test_failures > before) return;
    CHECK(a.L == b.L && a.KV == b.KV && a.G == b.G, "%s vs %s: shapes differ", pa, pb);
    CHECK(b.complete && b.next == a.next && b.n_contexts == a.n_contexts,
          "%s: complete %d, %lld of %lld contexts: expected as %s", pb, b.complete, (long long)b.next,
          (long long)b.n_contexts, pa);
    if (test_failures > before) return;
    size_t no = (size_t)a.NB * a.L * a.KV * a.G, nl = no * a.S, ns = (size_t)a.NB * (a.S + 1) * a.L * a.KV;
    size_t bad = 0, tot = 0;
    for (int i = 0; i < a.NB; i++) { bad += a.count[i] != b.count[i] || a.tokens[i] != b.tokens[i]; tot += (size_t)a.count[i]; }
    CHECK(bad == 0 && tot > 0, "%s vs %s: context or token counts differ (or none)", pa, pb);
    for (size_t i = 0; i < nl; i++) bad += !close_rel(a.loss_sum[i], b.loss_sum[i]) + !close_rel(a.loss_sq[i], b.loss_sq[i]);
    for (size_t i = 0; i < no; i++) bad += !close_rel(a.orc_sum[i], b.orc_sum[i]) + !close_rel(a.orc_sq[i], b.orc_sq[i]);
    for (size_t i = 0; i < ns; i++) bad += !close_rel(a.ent_sum[i], b.ent_sum[i]) + !close_rel(a.top_sum[i], b.top_sum[i]);
    CHECK(bad == 0, "%s vs %s: %zu sums differ beyond 1e-9 relative", pa, pb, bad);
    double nz = 0;
    for (size_t i = 0; i < nl; i++) nz += a.loss_sum[i];
    CHECK(nz > 0, "%s: loss sums are all 0", pa);
    hkp_stats_free(&a);
    hkp_stats_free(&b);
}

static void no_rank_files(const char *dir, const char *stem) {
    char p[1200];
    for (int r = 0; r < 4; r++) {
        snprintf(p, sizeof p, "%s/%s.rank%d.h5", dir, stem, r);
        CHECK(!exists(p), "%s left behind", p);
    }
}

int main(int argc, char **argv) {
    if (argc != 6) { fprintf(stderr, "usage: %s SYNTH PROFILE MPIRUN MODEL WORKDIR\n", argv[0]); return 2; }
    const char *synth = argv[1], *prof = argv[2], *model = argv[4], *dir = argv[5];
    static char cmd[16384], p[8][1200];
    if (!*argv[3] || access(argv[3], X_OK) != 0) {
        fprintf(stderr, "test_profile_mpi: SKIP: no mpirun (install openmpi-bin and libopenmpi-dev)\n");
        return TEST_SKIP;
    }
    snprintf(cmd, sizeof cmd, "%s --version 2>&1 | grep -Eqi 'Open MPI|OpenRTE|open-mpi'", argv[3]);
    int ompi = sh(cmd) == 0;
    // Open MPI: root in containers, 2 cores, shared memory only (no network probing).
    snprintf(mpirun, sizeof mpirun, "%s%s", argv[3], ompi ? " --allow-run-as-root --oversubscribe" : "");
    if (ompi) {
        setenv("OMPI_MCA_btl", "self,vader", 0);
        setenv("OMPI_MCA_btl_vader_single_copy_mechanism", "none", 0);
        setenv("OMPI_MCA_plm", "isolated", 0);
    }
    mkdir(dir, 0755);
    const char *names[] = {"calib", "one", "r1", "r2", "s0", "s1", "merged", "r4"};
    for (int i = 0; i < 8; i++) { snprintf(p[i], sizeof p[i], "%s/%s.h5", dir, names[i]); remove(p[i]); }
    const char *calib = p[0], *one = p[1], *r1 = p[2], *r2 = p[3], *s0 = p[4], *s1 = p[5], *merged = p[6], *r4 = p[7];
    snprintf(cmd, sizeof cmd, "rm -f %s/*.rank*.h5", dir);
    sh(cmd);
    snprintf(cmd, sizeof cmd, "%s --random-vocab 320 --count 7 --min-len 48 --max-len 80 --future-min 6 "
             "--future-max 12 --heldout-frac 0.2 --seed 5 --out %s >/dev/null 2>&1", synth, calib);
    CHECK(sh(cmd) == 0, "synth failed: %s", cmd);
    snprintf(base, sizeof base, "%s --model %s --calib %s --grid 64 --chunk 16 --recent 8 --snap-window 8 "
             "--device cpu", prof, model, calib);
    snprintf(cmd, sizeof cmd, "%s --out %s 2>/dev/null", base, one);
    CHECK(sh(cmd) == 0, "plain run failed: %s", cmd);

    // Is this hubkv-profile built with MPI? Two ranks of a build without it
    // would both write the whole run to one file: the log says "on 2 ranks".
    char o[4096];
    snprintf(cmd, sizeof cmd, "%s -n 2 %s --out %s 2>&1 | grep -q 'on 2 ranks'", mpirun, base, r2);
    if (sh(cmd) != 0) {
        fprintf(stderr, "test_profile_mpi: SKIP: hubkv-profile without MPI support, or mpirun cannot "
                "start ranks here (run: %s -n 2 %s --out %s)\n", mpirun, base, r2);
        return TEST_SKIP;
    }
    same_stats(one, r2);
    no_rank_files(dir, "r2");

    CHECK(mpi("", 1, (snprintf(o, sizeof o, "--out %s", r1), o)) == 0, "1 rank failed");
    same_stats(one, r1);

    // A finished file is left as it is; other arguments are refused.
    CHECK(mpi("", 2, (snprintf(o, sizeof o, "--out %s", r2), o)) == 0, "rerun of a finished run failed");
    same_stats(one, r2);
    CHECK(mpi("", 2, (snprintf(o, sizeof o, "--out %s --grid 32", r2), o)) != 0, "other --grid: expected a refusal");

    // Killed after one context per rank: rank checkpoints, then resumed.
    remove(r2);
    CHECK(mpi("HUBKV_TEST_EXIT_AFTER=1", 2, (snprintf(o, sizeof o, "--out %s", r2), o)) != 0,
          "killed 2-rank run: expected a non-zero exit");
    // The first rank to exit wrote its checkpoint; mpirun may kill the other
    // before its first one.
    int found = 0;
    for (int r = 0; r < 2; r++) {
        hkp_stats part;
        hkm_err err = {{0}};
        snprintf(o, sizeof o, "%s/r2.rank%d.h5", dir, r);
        if (!exists(o)) continue;
        found++;
        CHECK(hkp_stats_read(o, &part, &err) == HKM_OK && part.next == 1 && part.n_contexts == 3 && !part.complete,
              "%s: expected a checkpoint at context 1 of 3 (%s)", o, err.msg);
        hkp_stats_free(&part);
    }
    CHECK(found > 0, "killed run: expected rank checkpoints %s/r2.rank<k>.h5", dir);
    CHECK(!exists(r2), "killed run wrote the final file");
    CHECK(mpi("", 3, (snprintf(o, sizeof o, "--out %s", r2), o)) != 0, "resume with 3 ranks: expected a refusal");
    CHECK(mpi("", 2, (snprintf(o, sizeof o, "--out %s", r2), o)) == 0, "resumed 2-rank run failed");
    same_stats(one, r2);
    no_rank_files(dir, "r2");

    // Shards merged, with 4 ranks on shard 0 (3 contexts: rank 3 has none).
    snprintf(cmd, sizeof cmd, "%s --shard 0/2 --out %s 2>/dev/null && %s --shard 1/2 --out %s 2>/dev/null && "
             "%s merge %s %s %s 2>/dev/null", base, s0, base, s1, prof, merged, s0, s1);
    CHECK(sh(cmd) == 0, "shards or merge failed");
    same_stats(one, merged);
    CHECK(mpi("", 4, (snprintf(o, sizeof o, "--shard 0/2 --out %s", r4), o)) == 0, "4 ranks on shard 0/2 failed");
    same_stats(s0, r4);
    no_rank_files(dir, "r4");
    return test_summary("test_profile_mpi");
}
