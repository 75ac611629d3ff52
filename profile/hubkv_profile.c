/* hubkv-profile: oracle importance, base scorers and per-head loss curves
 * over a calibration set, aggregated into a stats file; resumable, shardable
 * (`hubkv-profile merge OUT A B ...` adds shard files) and, built with MPI,
 * split over the ranks of `mpirun -n R hubkv-profile ...` (reduced at the
 * end). Runs on the GPU when one is usable (--device), else on the CPU. */
#include "calib_set.h"
#include "hkm_internal.h"
#include "hubkv_cli.h"
#include "mpi_reduce.h"
#include "profile_run.h"
#include "stats_file.h"

#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    const char *model, *calib, *out, *split, *device;
    long shard_i, shard_n, limit, fut_max, chunk, grid, sink, recent, snap_window, snap_kernel;
    int snap_max, oracle_wo, kvzip, restart, bench_prefill, bench;
} opts;

static void usage(FILE *f) {
    fprintf(f,
        "usage: hubkv-profile --model PATH --calib FILE --out FILE [options]\n"
        "       hubkv-profile merge OUT.h5 SHARD.h5 SHARD.h5 ...\n"
        "       mpirun -n R hubkv-profile ... (built with MPI: the contexts split over R ranks,\n"
        "       checkpoints OUT.rank<k>.h5, one GPU per rank, OUT reduced on rank 0)\n"
        "Per layer and KV head: oracle importance, SnapKV/H2O/KeyDiff/KVzip scores and their loss\n"
        "curves, aggregated into a stats file (docs/stats-format.md). Rerunning the same command\n"
        "after an interruption continues from the last finished context.\n"
        "  --model PATH        .gguf or HF directory\n"
        "  --calib FILE        calibration set from hubkv-synth\n"
        "  --out FILE          stats file (also the checkpoint)\n"
        "  --split S           calib (default), heldout or all\n"
        "  --shard I/N         process every N-th context starting at I (default 0/1)\n"
        "  --limit N           at most N contexts (of this shard)\n"
        "  --future-max N      future-window tokens used at most (default 512)\n"
        "  --grid N            loss-curve points: keep fractions k/N, k = 0..N (default 256)\n"
        "  --sink N            first tokens always kept (default 4)\n"
        "  --recent N          last context tokens always kept (default 32)\n"
        "  --snap-window N     SnapKV observation window (default 32)\n"
        "  --snap-kernel N     SnapKV pooling kernel, odd (default 7)\n"
        "  --snap-pool P       max (default) or avg (kvpress's SnapKVPress)\n"
        "  --oracle-wo         oracle with ||W_o^h v_i|| instead of ||v_i||\n"
        "  --no-kvzip          skip KVzip's reconstruction pass (about one prefill cheaper)\n"
        "  --chunk N           tokens per forward chunk (default 256 on the CPU, 1024 on the GPU)\n"
        "  --device D          cpu, gpu or auto (default: the GPU when one is usable)\n"
        "  --restart           discard an existing --out made with other arguments\n"
        "  --bench-prefill     only time a plain prefill (no capture) of the same contexts\n"
        "  --bench             time a plain prefill, then the profiling of the same contexts\n"
        "                      (nothing written), and print the cost ratio\n"
        "Environment: HUBKV_TEST_EXIT_AFTER=K exits with 137 after K contexts (tests).\n");
}

static void parse(opts *o, int argc, char **argv) {
    *o = (opts){.split = "calib", .device = "auto", .shard_n = 1, .fut_max = 512, .grid = 256, .sink = 4,
                .recent = 32, .snap_window = 32, .snap_kernel = 7, .snap_max = 1, .kvzip = 1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); exit(0); }
        if (!strcmp(a, "--oracle-wo")) { o->oracle_wo = 1; continue; }
        if (!strcmp(a, "--no-kvzip")) { o->kvzip = 0; continue; }
        if (!strcmp(a, "--restart")) { o->restart = 1; continue; }
        if (!strcmp(a, "--bench-prefill")) { o->bench_prefill = 1; continue; }
        if (!strcmp(a, "--bench")) { o->bench = 1; continue; }
        if (i + 1 >= argc) { fprintf(stderr, "hubkv-profile: %s: expected a value (or unknown option)\n", a); usage(stderr); exit(2); }
        const char *v = argv[++i];
        if (!strcmp(a, "--model")) o->model = v;
        else if (!strcmp(a, "--calib")) o->calib = v;
        else if (!strcmp(a, "--out")) o->out = v;
        else if (!strcmp(a, "--split")) {
            if (strcmp(v, "calib") && strcmp(v, "heldout") && strcmp(v, "all")) hkc_bad(a, "calib, heldout or all", v);
            o->split = v;
        } else if (!strcmp(a, "--shard")) {
            char *end;
            o->shard_i = strtol(v, &end, 10);
            if (*end != '/' || end == v) hkc_bad(a, "I/N", v);
            o->shard_n = strtol(end + 1, &end, 10);
            if (*end || o->shard_n < 1 || o->shard_i < 0 || o->shard_i >= o->shard_n) hkc_bad(a, "I/N with 0 <= I < N", v);
        }
        else if (!strcmp(a, "--limit")) o->limit = hkc_long(a, v, 1, 1L << 40);
        else if (!strcmp(a, "--future-max")) o->fut_max = hkc_long(a, v, 1, 1 << 20);
        else if (!strcmp(a, "--grid")) o->grid = hkc_long(a, v, 1, 65535);
        else if (!strcmp(a, "--sink")) o->sink = hkc_long(a, v, 0, 1 << 20);
        else if (!strcmp(a, "--recent")) o->recent = hkc_long(a, v, 0, 1 << 20);
        else if (!strcmp(a, "--snap-window")) o->snap_window = hkc_long(a, v, 1, 1 << 20);
        else if (!strcmp(a, "--snap-kernel")) { o->snap_kernel = hkc_long(a, v, 1, 1023); if (!(o->snap_kernel & 1)) hkc_bad(a, "an odd kernel", v); }
        else if (!strcmp(a, "--snap-pool")) {
            if (strcmp(v, "max") && strcmp(v, "avg")) hkc_bad(a, "max or avg", v);
            o->snap_max = !strcmp(v, "max");
        }
        else if (!strcmp(a, "--chunk")) o->chunk = hkc_long(a, v, 1, 1 << 16);
        else if (!strcmp(a, "--device")) {
            if (strcmp(v, "cpu") && strcmp(v, "gpu") && strcmp(v, "auto")) hkc_bad(a, "cpu, gpu or auto", v);
            o->device = v;
        }
        else { fprintf(stderr, "hubkv-profile: unknown option %s\n", a); usage(stderr); exit(2); }
    }
    if (!o->model) hkc_bad("--model", "a model path", "");
    if (!o->calib) hkc_bad("--calib", "a calibration set", "");
    if (!o->out && !o->bench && !o->bench_prefill) hkc_bad("--out", "an output file", "");
}

/* ---------------------------------------------------------------- merge */

static int cmd_merge(int argc, char **argv) {
    if (argc < 4 || !strcmp(argv[2], "--help")) {
        usage(argc < 4 ? stderr : stdout);
        return argc < 4 ? 2 : 0;
    }
    hkm_err err = {{0}};
    hkp_stats acc, s;
    if (hkp_stats_read(argv[3], &acc, &err) != HKM_OK) { fprintf(stderr, "hubkv-profile merge: %s\n", err.msg); return 1; }
    if (!acc.complete) { fprintf(stderr, "hubkv-profile merge: %s: run not complete: expected a finished shard\n", argv[3]); return 1; }
    for (int i = 4; i < argc; i++) {
        if (hkp_stats_read(argv[i], &s, &err) != HKM_OK || hkp_stats_merge(&acc, &s, argv[i], &err) != HKM_OK) {
            fprintf(stderr, "hubkv-profile merge: %s\n", err.msg);
            return 1;
        }
        hkp_stats_free(&s);
    }
    acc.shard_i = 0;
    acc.shard_n = 1;
    acc.fingerprint = 0; // a merged file is not a resumable run
    acc.complete = 1;
    if (hkp_stats_write(&acc, argv[2], &err) != HKM_OK) { fprintf(stderr, "hubkv-profile merge: %s\n", err.msg); return 1; }
    fprintf(stderr, "hubkv-profile: merged %d files into %s (%lld contexts)\n", argc - 3, argv[2], (long long)acc.n_contexts);
    hkp_stats_free(&acc);
    return 0;
}

/* ---------------------------------------------------------------- run */

static uint64_t fnv_str(uint64_t h, const char *s) {
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* Hash of everything that shapes the sums: a checkpoint resumes only under it. */
static uint64_t fingerprint(const opts *o, uint64_t calib_hash) {
    char buf[1200];
    snprintf(buf, sizeof buf, "%s|%016llx|%s|%ld/%ld|%ld|%ld|%ld|%ld|%ld|%ld|%ld|%d|%d|%d", o->model,
             (unsigned long long)calib_hash, o->split, o->shard_i, o->shard_n, o->limit, o->fut_max,
             o->grid, o->sink, o->recent, o->snap_window, o->snap_kernel, o->snap_max, o->oracle_wo, o->kvzip);
    return fnv_str(1469598103934665603ull, buf);
}

/* Contexts of this run: split filter, then every shard_n-th, then limit. */
static int64_t *context_list(const opts *o, const hkp_calib *c, int64_t *n) {
    int64_t *v = malloc((size_t)(c->n + 1) * sizeof *v), k = 0, m = 0;
    if (!v) return NULL;
    int want = !strcmp(o->split, "heldout") ? HKP_SPLIT_HELDOUT : HKP_SPLIT_CALIB;
    for (int64_t i = 0; i < c->n; i++) {
        if (strcmp(o->split, "all") && c->split[i] != want) continue;
        if (k++ % o->shard_n != o->shard_i) continue;
        if (o->limit && m >= o->limit) break;
        v[m++] = i;
    }
    *n = m;
    return v;
}

static void fmt_time(double s, char *buf, size_t cap) {
    if (s < 0 || s > 1e7) { snprintf(buf, cap, "?"); return; }
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, cap, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else snprintf(buf, cap, "%ldm%02lds", t / 60, t % 60);
}

static void progress(int tty, int64_t done, int64_t total, long long toks, double secs, long long toks_left) {
    double rate = secs > 0 ? toks / secs : 0;
    char eta[32];
    fmt_time(rate > 0 ? toks_left / rate : -1, eta, sizeof eta);
    if (tty) {
        char bar[31];
        int fill = total ? (int)(30 * done / total) : 30;
        for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
        bar[30] = 0;
        fprintf(stderr, "\r[%s] %lld/%lld contexts  %.0f tok/s  ETA %s ", bar, (long long)done,
                (long long)total, rate, eta);
        if (done == total) fputc('\n', stderr);
    } else {
        fprintf(stderr, "hubkv-profile: %lld/%lld contexts, %.0f tok/s, ETA %s\n", (long long)done,
                (long long)total, rate, eta);
    }
}

/* A checkpoint at path of the same run (fingerprint fp), or a fresh start. */
static int load_or_init(const opts *o, const hkp_calib *c, const hkm_config *cfg, const char *path,
                        uint64_t fp, int64_t n_ctx, hkp_stats *st) {
    hkm_err err = {{0}};
    struct stat sb;
    if (stat(path, &sb) == 0) {
        if (hkp_stats_read(path, st, &err) != HKM_OK) {
            if (!o->restart) { fprintf(stderr, "hubkv-profile: %s exists but cannot be resumed: %s (use --restart)\n", path, err.msg); return -1; }
        } else if (st->fingerprint == fp && st->n_contexts == n_ctx) {
            if (st->next > 0) fprintf(stderr, "hubkv-profile: resuming %s at context %lld of %lld\n", path, (long long)st->next, (long long)n_ctx);
            return 0;
        } else if (!o->restart) {
            fprintf(stderr, "hubkv-profile: %s holds a run with other arguments, data or rank count: "
                    "expected the same command to resume (or --restart to overwrite)\n", path);
            return -1;
        } else hkp_stats_free(st);
    }
    if (hkp_stats_init(st, cfg->n_layers, cfg->n_kv_heads, (int)o->grid + 1, &err) != HKM_OK) {
        fprintf(stderr, "hubkv-profile: %s\n", err.msg);
        return -1;
    }
    st->fingerprint = fp;
    st->calib_hash = c->content_hash;
    st->n_contexts = n_ctx;
    st->shard_i = (int32_t)o->shard_i;
    st->shard_n = (int32_t)o->shard_n;
    st->kvzip = o->kvzip;
    st->sink = (int32_t)o->sink;
    st->recent = (int32_t)o->recent;
    st->snap_window = (int32_t)o->snap_window;
    st->snap_kernel = (int32_t)o->snap_kernel;
    st->snap_max = o->snap_max;
    st->oracle_wo = o->oracle_wo;
    snprintf(st->model, sizeof st->model, "%s", o->model);
    snprintf(st->calib, sizeof st->calib, "%s", o->calib);
    snprintf(st->split, sizeof st->split, "%s", o->split);
    return 0;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* The baseline of the cost ratio: the same contexts, same chunks, no
 * capture. Returns seconds, or -1 on failure. */
static double bench_prefill(hkp_runner *r, const hkp_calib *c, const int64_t *list, int64_t n_ctx) {
    hkm_err err = {{0}};
    long long toks = 0;
    double t0 = now();
    for (int64_t k = 0; k < n_ctx; k++) {
        int n = c->future_start[list[k]];
        if (hkp_run_plain(r, c->tokens + c->offsets[list[k]], n, &err) != HKM_OK) {
            fprintf(stderr, "hubkv-profile: %s\n", err.msg);
            return -1;
        }
        toks += n;
    }
    double dt = now() - t0;
    printf("plain prefill: %lld context tokens in %.2f s (%.1f tok/s)\n", toks, dt, toks / dt);
    return dt;
}

/* --bench: the profiling passes of every context (scores and curves, no
 * file), timed against a plain prefill of the same contexts. */
static int bench_ratio(hkp_runner *r, const hkp_calib *c, const int64_t *list, int64_t n_ctx,
                       long fut_max) {
    hkm_err err = {{0}};
    double t_plain = bench_prefill(r, c, list, n_ctx);
    if (t_plain < 0) return 1;
    r->t_fwd = r->t_finish = r->t_curves = 0;
    hkp_stats st;
    if (hkp_stats_init(&st, r->sc.L, r->sc.KV, r->cp.grid, &err) != HKM_OK) { fprintf(stderr, "hubkv-profile: %s\n", err.msg); return 1; }
    long long toks = 0;
    double t0 = now();
    for (int64_t k = 0; k < n_ctx; k++) {
        int64_t i = list[k];
        int fs = c->future_start[i], fl = c->future_len[i] < fut_max ? c->future_len[i] : (int)fut_max;
        if (hkp_run_scores(r, c->tokens + c->offsets[i], fs, fl, c->kvzip_prompt, c->n_kvzip, &err) != HKM_OK) {
            fprintf(stderr, "hubkv-profile: %s\n", err.msg);
            return 1;
        }
        hkp_run_accumulate(r, &st);
        toks += fs;
    }
    double dt = now() - t0;
    hkp_stats_free(&st);
    printf("profile: %lld context tokens in %.2f s (%.1f tok/s)\n", toks, dt, toks / dt);
    printf("  of which forward calls with statistics %.2f s, rewind + per-head scores %.2f s, "
           "curves %.2f s\n", r->t_fwd, r->t_finish, r->t_curves);
    printf("cost ratio (profile / plain prefill, per context token): %.2f\n", dt / t_plain);
    return 0;
}

/* --device: the GPU when asked for or, with auto, when one is usable. */
static int pick_gpu(const opts *o) {
    if (!strcmp(o->device, "cpu")) return 0;
    hkm_err err = {{0}};
    int ok = hkp_gpu_usable(&err);
    if (!ok && !strcmp(o->device, "gpu")) {
        fprintf(stderr, "hubkv-profile: --device gpu: %s\n", err.msg);
        exit(1);
    }
    if (!ok && isatty(2)) fprintf(stderr, "hubkv-profile: no GPU (%s): running on the CPU\n", err.msg);
    return ok;
}

/* ---------------------------------------------------------------- MPI */

/* A rank's checkpoint: OUT without a trailing .h5, then .rank<k>.h5. */
static void rank_path(const char *out, int rank, char *buf, size_t cap) {
    size_t n = strlen(out);
    int cut = n > 3 && !strcmp(out + n - 3, ".h5") ? 3 : 0;
    snprintf(buf, cap, "%.*s.rank%d.h5", (int)(n - cut), out, rank);
}

/* The rank checkpoints resume only under the same rank count. */
static uint64_t rank_fingerprint(uint64_t fp, const hkp_mpi *w) {
    char buf[64];
    snprintf(buf, sizeof buf, "%016llx|rank %d/%d", (unsigned long long)fp, w->rank, w->size);
    return fnv_str(1469598103934665603ull, buf);
}

/* Rank 0, before the ranks start: 1 if --out already holds this run
 * finished, 0 to go on, -1 (message printed) if it holds something else. */
static int final_state(const opts *o, uint64_t fp, int64_t n_all) {
    struct stat sb;
    if (stat(o->out, &sb) != 0 || o->restart) return 0;
    hkm_err err = {{0}};
    hkp_stats s;
    if (hkp_stats_read(o->out, &s, &err) != HKM_OK) {
        fprintf(stderr, "hubkv-profile: %s exists but cannot be resumed: %s (use --restart)\n", o->out, err.msg);
        return -1;
    }
    int done = s.fingerprint == fp && s.n_contexts == n_all && s.complete, same = s.fingerprint == fp;
    hkp_stats_free(&s);
    if (done) return 1;
    fprintf(stderr, same ? "hubkv-profile: %s is the checkpoint of a run without mpirun: expected it "
                           "resumed the same way (or --restart)\n"
                         : "hubkv-profile: %s holds a run with other arguments or data: expected the "
                           "same command to resume (or --restart to overwrite)\n", o->out);
    return -1;
}

/* Every rank agrees on the run, then on whether --out is already done:
 * 1 done, 0 go on, -1 refused. */
static int mpi_agree(const opts *o, const hkp_mpi *w, uint64_t fp, int64_t n_all) {
    uint64_t key = fp ^ ((uint64_t)n_all * 0x9e3779b97f4a7c15ull);
    if (!hkp_mpi_all_ok(w, hkp_mpi_bcast_u64(w, key) == key)) {
        if (w->rank == 0)
            fprintf(stderr, "hubkv-profile: the ranks see different arguments or calibration sets: "
                    "expected one run (same files on every node)\n");
        return -1;
    }
    int st = w->rank == 0 ? final_state(o, fp, n_all) : 0;
    return (int)(int64_t)hkp_mpi_bcast_u64(w, (uint64_t)(int64_t)st);
}

/* Rank 0 writes the reduced sums as the file a single run would have
 * written; then the rank checkpoints go. */
static int mpi_finish(const opts *o, const hkp_mpi *w, hkp_stats *st, uint64_t fp, int64_t n_all,
                      const char *ckpt) {
    hkm_err err = {{0}};
    hkm_status s = hkp_mpi_reduce_stats(w, st, &err);
    if (s == HKM_OK && w->rank == 0) {
        st->fingerprint = fp;
        st->n_contexts = st->next = n_all;
        st->complete = 1;
        s = hkp_stats_write(st, o->out, &err);
    }
    if (s != HKM_OK) fprintf(stderr, "hubkv-profile: rank %d: %s\n", w->rank, err.msg);
    if (!hkp_mpi_all_ok(w, s == HKM_OK)) return 1;
    unlink(ckpt);
    if (w->rank == 0)
        fprintf(stderr, "hubkv-profile: %s: %lld contexts done on %d ranks\n", o->out, (long long)n_all, w->size);
    return 0;
}

/* ---------------------------------------------------------------- main */

/* Contexts list[st->next..n) into st, checkpointed at path after each one.
 * 0, or 1 after an error (printed). */
static int run_contexts(const opts *o, hkp_runner *r, const hkp_calib *c, const int64_t *list,
                        int64_t n, hkp_stats *st, const char *path, int show) {
    hkm_err err = {{0}};
    long long toks_left = 0;
    for (int64_t k = st->next; k < n; k++) {
        int64_t i = list[k];
        int fl = c->future_len[i] < o->fut_max ? c->future_len[i] : (int)o->fut_max;
        toks_left += c->future_start[i] + fl + (o->kvzip ? c->future_start[i] + c->n_kvzip : 0);
    }
    const char *ex = getenv("HUBKV_TEST_EXIT_AFTER");
    long exit_after = ex ? strtol(ex, NULL, 10) : 0, done_here = 0;
    int tty = isatty(2);
    double t0 = now();
    for (int64_t k = st->next; k < n; k++) {
        int64_t i = list[k];
        int fs = c->future_start[i], fl = c->future_len[i] < o->fut_max ? c->future_len[i] : (int)o->fut_max;
        if (hkp_run_scores(r, c->tokens + c->offsets[i], fs, fl, c->kvzip_prompt, c->n_kvzip, &err) != HKM_OK) {
            fprintf(stderr, "\nhubkv-profile: context %lld: %s\n", (long long)i, err.msg);
            return 1;
        }
        hkp_run_accumulate(r, st);
        st->next = k + 1;
        st->complete = st->next == n;
        if (hkp_stats_write(st, path, &err) != HKM_OK) { fprintf(stderr, "\nhubkv-profile: %s\n", err.msg); return 1; }
        toks_left -= fs + fl + (o->kvzip ? fs + c->n_kvzip : 0);
        if (show) progress(tty, st->next, n, r->tokens_run, now() - t0, toks_left);
        if (exit_after && ++done_here >= exit_after && !st->complete) _exit(137);
    }
    return 0;
}

/* The runner sized for the contexts of list, on the device --device picks
 * (under MPI with several GPUs: one per rank). */
static int runner_open(const opts *o, const hkp_mpi *w, hkp_runner *r, const hkm_model *m,
                       const hkp_calib *c, const int64_t *list, int64_t n) {
    hkm_err err = {{0}};
    int max_ctx = 1, max_fut = 1;
    for (int64_t k = 0; k < n; k++) {
        int64_t i = list[k];
        int fs = c->future_start[i], fl = c->future_len[i] < o->fut_max ? c->future_len[i] : (int)o->fut_max;
        max_ctx = fs > max_ctx ? fs : max_ctx;
        max_fut = fl > max_fut ? fl : max_fut;
    }
    *r = (hkp_runner){.chunk = (int)o->chunk, .kvzip = o->kvzip, .use_gpu = pick_gpu(o),
                      .sp = {.snap_window = (int)o->snap_window, .snap_kernel = (int)o->snap_kernel,
                             .snap_max = o->snap_max, .oracle_wo = o->oracle_wo},
                      .cp = {.sink = (int)o->sink, .recent = (int)o->recent}};
    int dev = r->use_gpu ? hkp_mpi_pick_device(w, &err) : -1;
    if (dev < -1) { fprintf(stderr, "hubkv-profile: %s\n", err.msg); return 1; }
    if (dev >= 0) fprintf(stderr, "hubkv-profile: rank %d on GPU %d\n", w->rank, dev);
    if (hkp_runner_init(r, m, max_ctx, max_fut, c->n_kvzip, (int)o->grid + 1, &err) != HKM_OK) {
        fprintf(stderr, "hubkv-profile: %s\n", err.msg);
        return 1;
    }
    return 0;
}

/* Calibration set, model, this shard's context list. 0, or 1 (printed). */
static int setup(const opts *o, hkp_calib *c, hkm_model **m, int64_t **list, int64_t *n_all) {
    hkm_err err = {{0}};
    if (hkp_calib_read(o->calib, c, &err) != HKM_OK) { fprintf(stderr, "hubkv-profile: %s\n", err.msg); return 1; }
    if (hkm_model_load(o->model, m, &err) != HKM_OK) { fprintf(stderr, "hubkv-profile: %s\n", err.msg); return 1; }
    const hkm_config *cfg = hkm_model_config(*m);
    for (int64_t i = 0; i < c->offsets[c->n]; i++)
        if (c->tokens[i] >= cfg->vocab_size) {
            fprintf(stderr, "hubkv-profile: %s: token %d at %lld: expected < the model's vocab %d (made with another tokenizer?)\n",
                    o->calib, c->tokens[i], (long long)i, cfg->vocab_size);
            return 1;
        }
    *list = context_list(o, c, n_all);
    if (!*list) { fprintf(stderr, "hubkv-profile: out of memory\n"); return 1; }
    if (*n_all == 0) { fprintf(stderr, "hubkv-profile: no contexts in split '%s' for shard %ld/%ld\n", o->split, o->shard_i, o->shard_n); return 1; }
    return 0;
}

static int profile_main(int argc, char **argv, const hkp_mpi *w) {
    opts o;
    parse(&o, argc, argv);
    if (w->size > 1 && (o.bench || o.bench_prefill)) {
        if (w->rank == 0) fprintf(stderr, "hubkv-profile: --bench/--bench-prefill: expected one process (no mpirun)\n");
        return 2;
    }
    hkp_calib c = {0};
    hkm_model *m = NULL;
    int64_t n_all = 0, *list = NULL;
    // A failure here may be one rank's: agreed on before any other collective.
    if (!hkp_mpi_all_ok(w, !setup(&o, &c, &m, &list, &n_all))) return 1;
    const hkm_config *cfg = hkm_model_config(m);
    uint64_t fp = fingerprint(&o, c.content_hash);
    char ckpt[4200];
    const char *path = o.out;
    int64_t n_mine = n_all;
    if (w->size > 1) {
        int state = mpi_agree(&o, w, fp, n_all);
        rank_path(o.out, w->rank, ckpt, sizeof ckpt);
        if (state) { if (state > 0) unlink(ckpt); return state < 0; }
        n_mine = 0; // positions rank, rank + R, ... of this shard's list
        for (int64_t k = w->rank; k < n_all; k += w->size) list[n_mine++] = list[k];
        path = ckpt;
    }
    hkp_stats st = {0};
    int ok = (o.bench || o.bench_prefill) ||
             !load_or_init(&o, &c, cfg, path, w->size > 1 ? rank_fingerprint(fp, w) : fp, n_mine, &st);
    if (!hkp_mpi_all_ok(w, ok)) return 1;
    hkp_runner r = {0};
    ok = n_mine == 0 || st.next == n_mine || !runner_open(&o, w, &r, m, &c, list, n_mine);
    if (!hkp_mpi_all_ok(w, ok)) return 1;
    if (w->rank == 0 && r.m)
        fprintf(stderr, "hubkv-profile: %s, %lld contexts%s, chunk %d\n", r.use_gpu ? "GPU" : "CPU",
                (long long)n_all, w->size > 1 ? " over the ranks" : "", r.chunk);
    if (o.bench_prefill) return bench_prefill(&r, &c, list, n_mine) < 0;
    if (o.bench) return bench_ratio(&r, &c, list, n_mine, o.fut_max);
    ok = !run_contexts(&o, &r, &c, list, n_mine, &st, path, w->rank == 0);
    if (!hkp_mpi_all_ok(w, ok)) return 1;
    int rc = 0;
    if (w->size > 1) rc = mpi_finish(&o, w, &st, fp, n_all, ckpt);
    else if (st.complete) fprintf(stderr, "hubkv-profile: %s: %lld contexts done\n", o.out, (long long)n_all);
    hkp_runner_free(&r);
    hkp_stats_free(&st);
    free(list);
    hkp_calib_free(&c);
    hkm_model_free(m);
    return rc;
}

int main(int argc, char **argv) {
    hkc_tool("hubkv-profile");
    if (argc > 1 && !strcmp(argv[1], "merge")) return cmd_merge(argc, argv);
    hkp_mpi w;
    hkp_mpi_init(&argc, &argv, &w);
    int rc = profile_main(argc, argv, &w);
    // Every return above is agreed by all ranks (hkp_mpi_all_ok); the exits
    // (bad arguments, --device gpu without one) skip MPI_Finalize, and
    // mpirun then ends the whole job.
    hkp_mpi_finalize(&w);
    return rc;
}
