/* Kill-mid-write and disk-full test of every writer of a product file: the
 * profile (libhubkv hubkv_profile_write), the calibration set (hubkv-synth,
 * hkp_calib_write), the stats file (hubkv-profile, hkp_stats_write),
 * hubkv-solve's profile (hks_profile_save) and its exports (hks_npy_write;
 * the .tsv and .svg writers share its hkm_tmp_open/commit). A forked child writes a large
 * file; the parent waits until a temporary file has appeared and grown, then
 * SIGKILLs the child. The destination must then be absent (first write) or
 * byte-identical to the previous complete version, which must still read.
 * If the child finished before the kill, the input doubles and the trial is
 * retried; the test fails only if no kill landed mid-write after MAX_TRIES.
 * Disk full: the child writes under RLIMIT_FSIZE (SIGXFSZ ignored, so write()
 * fails with EFBIG); the writer must fail with a message naming the file,
 * leave the destination as it was, and leave no temporary file. */
#include "calib_set.h"
#include "export.h"
#include "hubkv.h"
#include "profile_out.h"
#include "stats_file.h"
#include "test_util.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { MAX_TRIES = 7, MAX_DOUBLINGS = 6 };

/* ---------------------------------------------------------------- data */

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t next_rand(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

/* A valid profile (L=2, H=2, G=4) whose size is set by a gate tensor of
 * `extra` floats; adakv for hubkv-solve's writer. */
typedef struct {
    float grid[4], loss[16], keep[99 * 4], sel[4], beta[4], adakv[99 * 4];
    float *gate_w;
    hubkv_gate_tensor gate;
    hubkv_profile_data d;
} profile_in;

static int profile_make(profile_in *p, int64_t extra) {
    memset(p, 0, sizeof *p);
    for (int g = 0; g < 4; g++) p->grid[g] = (float)g / 3;
    for (int i = 0; i < 16; i++) p->loss[i] = 1.0f - p->grid[i % 4];
    for (int i = 0; i < 99 * 4; i++) p->keep[i] = p->adakv[i] = 1.0f - (float)(i / 4 + 1) / 100.0f;
    for (int i = 0; i < 4; i++) p->sel[i] = (float)i, p->beta[i] = 1.0f;
    if (!(p->gate_w = malloc((size_t)extra * sizeof(float)))) return -1;
    for (int64_t i = 0; i < extra; i++) p->gate_w[i] = (float)next_rand() / 4294967296.0f;
    p->gate = (hubkv_gate_tensor){0, "w", 1, {extra, 0, 0, 0}, p->gate_w};
    hubkv_profile_data d = hubkv_profile_data_default();
    d.model = (hubkv_model_desc){"llama", 2, 4, 2, 8, 100, 0x1234};
    d.producer = "test_kill_write";
    d.scorer_name = "expected_attention";
    d.n_grid = 4, d.grid = p->grid, d.loss = p->loss, d.budget_keep = p->keep;
    d.selectivity = p->sel, d.beta = p->beta, d.n_gate = 1, d.gate = &p->gate;
    p->d = d;
    return 0;
}

/* ---------------------------------------------------------------- writers */

/* Each writer writes a file of about `scale` 4-byte values to path and
 * returns 0, or 1 with the writer's message in msg. */
typedef int (*write_fn)(const char *path, int64_t scale, char *msg, size_t cap);
/* Each check reads a complete file back with the product's own reader. */
typedef int (*check_fn)(const char *path, char *msg, size_t cap);

static int w_profile(const char *path, int64_t scale, char *msg, size_t cap) {
    profile_in p;
    if (profile_make(&p, scale)) return snprintf(msg, cap, "out of memory"), 1;
    hubkv_status st = hubkv_profile_write(path, &p.d, msg, cap);
    free(p.gate_w);
    return st != HUBKV_OK;
}

static int c_profile(const char *path, char *msg, size_t cap) {
    hubkv_profile *p = NULL;
    hubkv_status st = hubkv_profile_open(path, NULL, &p, msg, cap);
    if (p) hubkv_profile_free(p);
    return st != HUBKV_OK;
}

static int w_solve(const char *path, int64_t scale, char *msg, size_t cap) {
    profile_in p;
    if (profile_make(&p, scale)) return snprintf(msg, cap, "out of memory"), 1;
    hkm_err err = {0};
    hkm_status st = hks_profile_save(path, &p.d, p.adakv, &err);
    free(p.gate_w);
    snprintf(msg, cap, "%s", err.msg);
    return st != HKM_OK;
}

static int c_solve(const char *path, char *msg, size_t cap) {
    if (c_profile(path, msg, cap)) return 1;
    float *adakv = NULL;
    hkm_err err = {0};
    hkm_status st = hks_profile_read_extra(path, HKS_DS_ADAKV, 2, 2, &adakv, &err);
    int bad = st != HKM_OK || !adakv;
    if (bad) snprintf(msg, cap, "%s: %s", path, st != HKM_OK ? err.msg : "no /baselines/adakv");
    free(adakv);
    return bad;
}

/* Contexts of 1024 + 64 random tokens: random ids defeat the deflate filter. */
static int w_calib(const char *path, int64_t scale, char *msg, size_t cap) {
    int64_t len = 1024 + 64, n = scale / len < 1 ? 1 : scale / len;
    hkp_calib c = {.n = n, .seed = 1, .n_kvzip = 2};
    c.tokens = malloc((size_t)(n * len) * sizeof *c.tokens);
    c.offsets = malloc((size_t)(n + 1) * sizeof *c.offsets);
    c.seg_offsets = calloc((size_t)(n + 1), sizeof *c.seg_offsets);
    c.span_offsets = calloc((size_t)(n + 1), sizeof *c.span_offsets);
    c.task = calloc((size_t)n, sizeof *c.task);
    c.split = calloc((size_t)n, sizeof *c.split);
    c.future_start = malloc((size_t)n * sizeof *c.future_start);
    c.future_len = malloc((size_t)n * sizeof *c.future_len);
    c.segs = malloc(sizeof *c.segs);
    c.spans = malloc(2 * sizeof *c.spans);
    c.kvzip_prompt = calloc(2, sizeof *c.kvzip_prompt);
    int bad = 1;
    if (c.tokens && c.offsets && c.seg_offsets && c.span_offsets && c.task && c.split && c.future_start &&
        c.future_len && c.segs && c.spans && c.kvzip_prompt) {
        for (int64_t i = 0; i < n * len; i++) c.tokens[i] = (int32_t)(next_rand() % 49152);
        for (int64_t i = 0; i <= n; i++) c.offsets[i] = i * len;
        for (int64_t i = 0; i < n; i++) c.future_start[i] = 1024, c.future_len[i] = 64;
        hkm_err err = {0};
        bad = hkp_calib_write(&c, path, &err) != HKM_OK;
        snprintf(msg, cap, "%s", err.msg);
    } else {
        snprintf(msg, cap, "out of memory");
    }
    hkp_calib_free(&c);
    return bad;
}

static int c_calib(const char *path, char *msg, size_t cap) {
    hkp_calib c;
    hkm_err err = {0};
    hkm_status st = hkp_calib_read(path, &c, &err);
    if (st == HKM_OK) hkp_calib_free(&c);
    snprintf(msg, cap, "%s", err.msg);
    return st != HKM_OK;
}

/* L=8, KV=8 and G from scale; random sums (incompressible). */
static int w_stats(const char *path, int64_t scale, char *msg, size_t cap) {
    int64_t G = scale / (2 * HKP_N_BUCKETS * HKP_SC_COUNT * 64);
    hkp_stats s;
    hkm_err err = {0};
    if (hkp_stats_init(&s, 8, 8, (int)(G < 2 ? 2 : G > 65536 ? 65536 : G), &err) != HKM_OK)
        return snprintf(msg, cap, "%s", err.msg), 1;
    size_t nl = (size_t)s.NB * s.S * s.L * s.KV * s.G, no = (size_t)s.NB * s.L * s.KV * s.G;
    for (size_t i = 0; i < nl; i++) s.loss_sum[i] = next_rand(), s.loss_sq[i] = next_rand();
    for (size_t i = 0; i < no; i++) s.orc_sum[i] = next_rand(), s.orc_sq[i] = next_rand();
    for (int b = 0; b < s.NB; b++) s.count[b] = 1 + b, s.tokens[b] = 1000.0 * (1 + b);
    s.next = s.n_contexts = 36, s.complete = 1, s.shard_n = 1;
    snprintf(s.split, sizeof s.split, "calib");
    int bad = hkp_stats_write(&s, path, &err) != HKM_OK;
    snprintf(msg, cap, "%s", err.msg);
    hkp_stats_free(&s);
    return bad;
}

static int c_stats(const char *path, char *msg, size_t cap) {
    hkp_stats s;
    hkm_err err = {0};
    hkm_status st = hkp_stats_read(path, &s, &err);
    if (st == HKM_OK) hkp_stats_free(&s);
    snprintf(msg, cap, "%s", err.msg);
    return st != HKM_OK;
}

/* hubkv-solve's text and .npy exports (hkm_tmp_open/commit): a flat float
 * array of `scale` random values. */
static int w_npy(const char *path, int64_t scale, char *msg, size_t cap) {
    float *v = malloc((size_t)scale * sizeof *v);
    if (!v) return snprintf(msg, cap, "out of memory"), 1;
    for (int64_t i = 0; i < scale; i++) v[i] = (float)next_rand();
    hkm_err err = {0};
    int bad = hks_npy_write(path, 1, &scale, v, &err) != HKM_OK;
    snprintf(msg, cap, "%s", err.msg);
    free(v);
    return bad;
}

static int c_npy(const char *path, char *msg, size_t cap) {
    int nd = 0;
    int64_t shape[4];
    float *v = NULL;
    hkm_err err = {0};
    hkm_status st = hks_npy_read(path, &nd, shape, &v, &err);
    free(v);
    snprintf(msg, cap, "%s", err.msg);
    return st != HKM_OK;
}

static const struct {
    const char *name;
    write_fn write;
    check_fn check;
    int64_t scale0; /* first size tried (4-byte values) */
} WRITERS[] = {
    {"hubkv_profile_write", w_profile, c_profile, 8 << 20},
    {"hkp_calib_write (hubkv-synth)", w_calib, c_calib, 1 << 20},
    {"hkp_stats_write (hubkv-profile)", w_stats, c_stats, 1 << 20},
    {"hks_profile_save (hubkv-solve)", w_solve, c_solve, 8 << 20},
    {"hks_npy_write (hubkv-solve exports)", w_npy, c_npy, 4 << 20},
};

/* ---------------------------------------------------------------- files */

static char g_root[256];

static int read_all(const char *path, char **buf, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    *buf = malloc(n > 0 ? (size_t)n : 1);
    *len = *buf && n >= 0 ? fread(*buf, 1, (size_t)n, f) : 0;
    fclose(f);
    return *buf && (long)*len == n ? 0 : -1;
}

/* Largest regular file in dir other than `dest` (the writer's temporary),
 * its name in name; -1 if none. */
static off_t temp_size(const char *dir, const char *dest, char *name, size_t cap) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    off_t best = -1;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || !strcmp(e->d_name, dest)) continue;
        char p[600];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (stat(p, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > best) {
            best = st.st_size;
            if (name) snprintf(name, cap, "%s", e->d_name);
        }
    }
    closedir(d);
    return best;
}

static void clear_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char p[600];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void sleep_s(double s) {
    struct timespec t = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&t, NULL);
}

/* ---------------------------------------------------------------- kill */

/* One trial: 1 if the kill landed before the rename (a temporary file is
 * left), 0 if the child finished first; checks the destination either way. */
static int kill_trial(int w, const char *dir, const char *prev, size_t prev_len, int64_t scale, double delay) {
    char dest[600], msg[1024] = "";
    snprintf(dest, sizeof dest, "%s/out.h5", dir);
    pid_t pid = fork();
    if (pid == 0) _exit(WRITERS[w].write(dest, scale, msg, sizeof msg) ? 3 : 0);
    if (pid < 0) {
        CHECK(0, "fork: %s", strerror(errno));
        return 0;
    }
    /* Poll until the temporary exists and has grown past its first bytes. */
    double t0 = now_s(), seen = -1;
    int status = 0, exited = 0;
    while (!exited && now_s() - t0 < 60) {
        if (waitpid(pid, &status, WNOHANG) == pid) {
            exited = 1;
            break;
        }
        off_t sz = temp_size(dir, "out.h5", NULL, 0);
        if (sz > 0 && seen < 0) seen = now_s();
        if (seen >= 0 && now_s() - seen >= delay) {
            kill(pid, SIGKILL);
            break;
        }
        sleep_s(0.0002);
    }
    if (!exited) {
        if (seen < 0) kill(pid, SIGKILL); /* timed out */
        waitpid(pid, &status, 0);
    }
    char tname[300] = "";
    off_t left = temp_size(dir, "out.h5", tname, sizeof tname);
    int landed = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL && left >= 0;
    if (WIFEXITED(status))
        CHECK(WEXITSTATUS(status) == 0, "%s: writer exited %d before the kill", WRITERS[w].name, WEXITSTATUS(status));
    char *got = NULL;
    size_t got_len = 0;
    int have = read_all(dest, &got, &got_len) == 0;
    if (landed && prev) {
        CHECK(have && got_len == prev_len && !memcmp(got, prev, prev_len),
              "%s: killed mid-write (temp %s, %lld bytes): destination is not the previous version byte for byte",
              WRITERS[w].name, tname, (long long)left);
        CHECK(!WRITERS[w].check(dest, msg, sizeof msg), "%s: previous version no longer reads after the kill: %s",
              WRITERS[w].name, msg);
    } else if (landed) {
        CHECK(!have, "%s: killed mid-write (temp %s, %lld bytes) on a first write: destination exists (%zu bytes)",
              WRITERS[w].name, tname, (long long)left, got_len);
    } else if (have) { /* finished (or killed after the rename): the new file must be whole */
        CHECK(!WRITERS[w].check(dest, msg, sizeof msg), "%s: finished write does not read: %s", WRITERS[w].name, msg);
    }
    free(got);
    return landed;
}

/* Kills at several delays after the temporary appears, on a first write and
 * over a previous version; doubles the input until each kill lands. */
static void kill_writer(int w, const char *dir) {
    static const double delays[] = {0, 0.003, 0.015};
    int64_t scale = WRITERS[w].scale0;
    for (int overwrite = 0; overwrite < 2; overwrite++) {
        for (size_t k = 0; k < sizeof delays / sizeof *delays; k++) {
            int landed = 0, tries = 0;
            while (!landed && tries < MAX_TRIES) {
                clear_dir(dir);
                char *prev = NULL, dest[600], msg[1024] = "";
                size_t prev_len = 0;
                snprintf(dest, sizeof dest, "%s/out.h5", dir);
                if (overwrite) { /* a small complete previous version */
                    CHECK(!WRITERS[w].write(dest, 4096, msg, sizeof msg), "%s: writing the previous version: %s",
                          WRITERS[w].name, msg);
                    CHECK(read_all(dest, &prev, &prev_len) == 0, "%s: cannot read back %s", WRITERS[w].name, dest);
                }
                double t0 = now_s();
                landed = kill_trial(w, dir, prev, prev_len, scale, delays[k]);
                free(prev);
                tries++;
                printf("%s: %s, kill %.0f ms after the temp file grew, %lld values: %s (%.0f ms)\n",
                       WRITERS[w].name, overwrite ? "overwrite" : "first write", 1e3 * delays[k],
                       (long long)scale, landed ? "killed mid-write" : "finished first, retry larger",
                       1e3 * (now_s() - t0));
                if (!landed && tries <= MAX_DOUBLINGS) scale *= 2;
            }
            CHECK(landed, "%s: no kill landed mid-write in %d tries (last size %lld values)", WRITERS[w].name,
                  MAX_TRIES, (long long)scale);
        }
    }
    clear_dir(dir);
}

/* ---------------------------------------------------------------- disk full */

/* The child writes under a file-size limit; the message comes back through
 * a pipe. */
static void disk_full(int w, const char *dir, int overwrite) {
    char dest[600], msg[1024] = "";
    snprintf(dest, sizeof dest, "%s/out.h5", dir);
    clear_dir(dir);
    char *prev = NULL;
    size_t prev_len = 0;
    if (overwrite) {
        CHECK(!WRITERS[w].write(dest, 4096, msg, sizeof msg), "%s: previous version: %s", WRITERS[w].name, msg);
        CHECK(read_all(dest, &prev, &prev_len) == 0, "%s: cannot read back %s", WRITERS[w].name, dest);
    }
    int fd[2];
    if (pipe(fd)) {
        CHECK(0, "pipe: %s", strerror(errno));
        free(prev);
        return;
    }
    pid_t pid = fork();
    if (pid == 0) {
        close(fd[0]);
        signal(SIGXFSZ, SIG_IGN); /* write() then fails with EFBIG, as on a full disk */
        struct rlimit rl = {1 << 20, 1 << 20};
        setrlimit(RLIMIT_FSIZE, &rl);
        int bad = WRITERS[w].write(dest, 4 << 20, msg, sizeof msg);
        ssize_t n = write(fd[1], msg, strlen(msg));
        (void)n;
        _exit(bad ? 3 : 0);
    }
    close(fd[1]);
    char got_msg[1024] = "";
    size_t n = 0;
    ssize_t r;
    while ((r = read(fd[0], got_msg + n, sizeof got_msg - 1 - n)) > 0) n += (size_t)r;
    got_msg[n] = 0;
    close(fd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    printf("%s: disk full (%s): exit %d, message: %s\n", WRITERS[w].name, overwrite ? "overwrite" : "first write",
           WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status), got_msg);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 3, "%s: disk full: expected an error return, got status %d",
          WRITERS[w].name, status);
    CHECK(strstr(got_msg, dest) != NULL, "%s: disk full: message does not name %s: '%s'", WRITERS[w].name, dest, got_msg);
    CHECK(strstr(got_msg, strerror(EFBIG)) != NULL, "%s: disk full: message does not give the cause '%s': '%s'",
          WRITERS[w].name, strerror(EFBIG), got_msg);
    char *got = NULL;
    size_t got_len = 0;
    int have = read_all(dest, &got, &got_len) == 0;
    if (overwrite)
        CHECK(have && got_len == prev_len && !memcmp(got, prev, prev_len),
              "%s: disk full: previous version changed", WRITERS[w].name);
    else
        CHECK(!have, "%s: disk full: destination exists (%zu bytes)", WRITERS[w].name, got_len);
    char tname[300] = "";
    off_t left = temp_size(dir, "out.h5", tname, sizeof tname);
    CHECK(left < 0, "%s: disk full: temporary file %s (%lld bytes) left behind", WRITERS[w].name, tname, (long long)left);
    free(got);
    free(prev);
    clear_dir(dir);
}

/* ---------------------------------------------------------------- statuses */

/* hubkv-solve's writer keeps the kind of libhubkv's failure: I/O stays
 * HKM_ERR_IO, bad data is HKM_ERR_ARG. */
static void solve_statuses(const char *dir) {
    profile_in p;
    CHECK(!profile_make(&p, 16), "out of memory");
    hkm_err err = {0};
    char dest[600];
    snprintf(dest, sizeof dest, "%s/no-such-dir/out.h5", dir);
    hkm_status st = hks_profile_save(dest, &p.d, p.adakv, &err);
    CHECK(st == HKM_ERR_IO && strstr(err.msg, dest), "missing directory: status %d, message '%s'", st, err.msg);
    snprintf(dest, sizeof dest, "%s/out.h5", dir);
    p.loss[3] = 0.0f / 0.0f;
    st = hks_profile_save(dest, &p.d, p.adakv, &err);
    CHECK(st == HKM_ERR_ARG && strstr(err.msg, dest), "NaN loss: status %d, message '%s'", st, err.msg);
    free(p.gate_w);
    clear_dir(dir);
}

int main(void) {
    const char *base = getenv("TMPDIR");
    snprintf(g_root, sizeof g_root, "%s/hubkv-kill-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(g_root)) {
        fprintf(stderr, "cannot create %s: %s\n", g_root, strerror(errno));
        return 1;
    }
    for (size_t w = 0; w < sizeof WRITERS / sizeof *WRITERS; w++) {
        kill_writer((int)w, g_root);
        disk_full((int)w, g_root, 0);
        disk_full((int)w, g_root, 1);
    }
    solve_statuses(g_root);
    clear_dir(g_root);
    rmdir(g_root);
    return test_summary("test_kill_write");
}
