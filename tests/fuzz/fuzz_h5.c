/* Fuzz entries for the HDF5 files of the profile tools: the calibration set
 * (hkp_calib_read, written by hubkv-synth) and the stats file (hkp_stats_read,
 * written by hubkv-profile, read by hubkv-solve). The input is written to a
 * scratch .h5 file, read, and what loaded is checked and used the way the
 * tools use it. Built with -DFZ_H5_SEED_MAIN it is instead the seed writer:
 * one small valid file of each kind from the tools' own writers. */
#include "calib_set.h"
#include "fuzz_entries.h"
#include "hkm_internal.h"
#include "stats_file.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef FZ_H5_SEED_MAIN
/* 3 contexts of 40 + 8 tokens, segments, one answer span each. */
static hkm_status write_calib(const char *path, hkm_err *err) {
    enum { N = 3, CTX = 40, FUT = 8 };
    static int32_t tokens[N * (CTX + FUT)], task[N], split[N], fs[N], fl[N], segs[2 * N], spans[2 * N];
    static int64_t off[N + 1], soff[N + 1], spoff[N + 1];
    static int32_t kvzip[4] = {11, 12, 13, 14};
    for (int i = 0; i < N * (CTX + FUT); i++) tokens[i] = (i * 7) % 250;
    for (int c = 0; c <= N; c++) off[c] = (int64_t)c * (CTX + FUT), soff[c] = 2 * c, spoff[c] = c;
    for (int c = 0; c < N; c++) {
        task[c] = c % HKP_TASK_COUNT, split[c] = c == N - 1, fs[c] = CTX, fl[c] = FUT;
        segs[2 * c] = 0, segs[2 * c + 1] = CTX / 2, spans[2 * c] = 5, spans[2 * c + 1] = 3;
    }
    hkp_calib c = {.n = N, .tokens = tokens, .offsets = off, .task = task, .split = split,
                   .future_start = fs, .future_len = fl, .seg_offsets = soff, .segs = segs,
                   .span_offsets = spoff, .spans = spans, .kvzip_prompt = kvzip, .n_kvzip = 4,
                   .seed = 7, .tokenizer = "tok.json", .mix = "natural:1,needle:1", .chat_template = 0};
    return hkp_calib_write(&c, path, err);
}

/* L=2, KV=2, G=4, two contexts added, complete. */
static hkm_status write_stats(const char *path, hkm_err *err) {
    hkp_stats s;
    HKM_TRY(hkp_stats_init(&s, 2, 2, 4, err));
    double cur[HKP_SC_COUNT * 2 * 2 * 4], orc[2 * 2 * 4], ent[(HKP_SC_COUNT + 1) * 2 * 2], top[(HKP_SC_COUNT + 1) * 2 * 2];
    for (size_t i = 0; i < sizeof cur / sizeof *cur; i++) cur[i] = 1.0 - (double)(i % 4) / 3;
    for (size_t i = 0; i < sizeof orc / sizeof *orc; i++) orc[i] = 0.5 - (double)(i % 4) / 6;
    for (size_t i = 0; i < sizeof ent / sizeof *ent; i++) ent[i] = 0.5, top[i] = 0.2;
    hkp_stats_add(&s, 300, cur, orc, ent, top);
    hkp_stats_add(&s, 900, cur, orc, ent, top);
    s.next = s.n_contexts = 2, s.complete = 1, s.shard_n = 1, s.sink = 4, s.recent = 8;
    snprintf(s.model, sizeof s.model, "model.gguf");
    snprintf(s.calib, sizeof s.calib, "calib.h5");
    snprintf(s.split, sizeof s.split, "calib");
    hkm_status st = hkp_stats_write(&s, path, err);
    hkp_stats_free(&s);
    return st;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: make_h5_seeds CALIB_OUT.h5 STATS_OUT.h5\n");
        return 2;
    }
    hkm_err err = {0};
    if (write_calib(argv[1], &err) != HKM_OK || write_stats(argv[2], &err) != HKM_OK) {
        fprintf(stderr, "make_h5_seeds: %s\n", err.msg);
        return 1;
    }
    return 0;
}
#else

static void die(const char *what, const char *msg) {
    fprintf(stderr, "fuzz invariant violated: %s (%s)\n", what, msg);
    abort();
}

/* The input as a file of its own (one per process and kind). */
static const char *input_file(const char *kind, const uint8_t *data, size_t size, char *path, size_t cap) {
    const char *base = getenv("FZ_SCRATCH");
    if (!base || !*base) base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(path, cap, "%s/hubkv-fuzz-%s-%d.h5", base, kind, (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size) die("cannot write the scratch file", path);
    fclose(f);
    return path;
}

int fz_calib(const uint8_t *data, size_t size) {
    char path[512];
    input_file("calib", data, size, path, sizeof path);
    hkp_calib c;
    hkm_err err = {0};
    hkm_status st = hkp_calib_read(path, &c, &err);
    if (st != HKM_OK) {
        if (!err.msg[0]) die("calib read failed without a message", path);
        if (c.tokens || c.offsets || c.n) die("calib read failed but left arrays set", err.msg);
    } else {
        /* What the reader promises, used the way hubkv-profile walks it. */
        if (c.n < 0 || c.offsets[0] != 0) die("calib offsets do not start at 0", path);
        volatile int64_t sum = 0;
        for (int64_t i = 0; i < c.n; i++) {
            int64_t len = c.offsets[i + 1] - c.offsets[i];
            if (c.future_start[i] <= 0 || (int64_t)c.future_start[i] + c.future_len[i] != len)
                die("calib context lengths inconsistent", path);
            for (int64_t t = c.offsets[i]; t < c.offsets[i + 1]; t++) sum += c.tokens[t];
            for (int64_t s = c.seg_offsets[i]; s < c.seg_offsets[i + 1]; s++)
                if (c.segs[s] < 0 || c.segs[s] >= len) die("calib segment out of its context", path);
            for (int64_t s = c.span_offsets[i]; s < c.span_offsets[i + 1]; s++)
                if (c.spans[2 * s] < 0 || c.spans[2 * s] + c.spans[2 * s + 1] > c.future_start[i])
                    die("calib span out of its context", path);
        }
        for (int32_t k = 0; k < c.n_kvzip; k++) sum += c.kvzip_prompt[k];
        if (hkp_calib_hash(&c) != c.content_hash) die("calib hash differs from the stored one", path);
        (void)sum;
        hkp_calib_free(&c);
    }
    unlink(path);
    return 0;
}

int fz_stats(const uint8_t *data, size_t size) {
    char path[512];
    input_file("stats", data, size, path, sizeof path);
    hkp_stats s;
    hkm_err err = {0};
    hkm_status st = hkp_stats_read(path, &s, &err);
    if (st != HKM_OK) {
        if (!err.msg[0]) die("stats read failed without a message", path);
        if (s.loss_sum || s.count) die("stats read failed but left arrays set", err.msg);
    } else {
        if (s.L <= 0 || s.KV <= 0 || s.G < 2 || s.NB != HKP_N_BUCKETS || s.S != HKP_SC_COUNT)
            die("stats shape not positive", path);
        if (s.next < 0 || s.next > s.n_contexts) die("stats next_context out of range", path);
        /* hubkv-solve merges shards: merging a file into a copy of itself
         * touches every array; it must succeed exactly when the run is complete. */
        hkp_stats d;
        hkm_err e2 = {0};
        if (hkp_stats_init(&d, s.L, s.KV, s.G, &e2) != HKM_OK) die("stats init of a read shape failed", e2.msg);
        double *keep[8] = {d.count, d.tokens, d.loss_sum, d.loss_sq, d.orc_sum, d.orc_sq, d.ent_sum, d.top_sum};
        int L = d.L, KV = d.KV, G = d.G;
        d = s; /* same metadata, own (zeroed) arrays */
        d.L = L, d.KV = KV, d.G = G;
        d.count = keep[0], d.tokens = keep[1], d.loss_sum = keep[2], d.loss_sq = keep[3];
        d.orc_sum = keep[4], d.orc_sq = keep[5], d.ent_sum = keep[6], d.top_sum = keep[7];
        hkm_status ms = hkp_stats_merge(&d, &s, path, &e2);
        if ((ms == HKM_OK) != (s.complete != 0)) die("stats merge disagrees with the complete flag", e2.msg);
        if (ms != HKM_OK && !e2.msg[0]) die("stats merge failed without a message", path);
        hkp_stats_free(&d);
        hkp_stats_free(&s);
    }
    unlink(path);
    return 0;
}
#endif
