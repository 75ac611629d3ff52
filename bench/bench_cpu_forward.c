/* CPU forward benchmark: prefill tokens/s for fixed prompts of N tokens and
 * decode tokens/s after a prompt, at a given thread count. The token ids are
 * the deterministic sequence bench_cpu_torch.py also uses; results are printed
 * as JSON lines for bench/run_cpu_bench.sh. */
#include "hubkv_model.h"

#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Same formula as bench_cpu_torch.py: spread over the vocabulary, no specials. */
static int32_t bench_id(int i, int vocab) { return (int32_t)(1000 + (i * 7919L) % (vocab - 1000)); }

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void die(const char *what, hkm_status st, const hkm_err *err) {
    fprintf(stderr, "bench_cpu_forward: %s: %s: %s\n", what, hkm_status_str(st), err->msg);
    exit(1);
}

/* Best-of-reps seconds for one prefill of n tokens into an empty cache. */
static double time_prefill(const hkm_model *m, hkm_kvcache *c, const int32_t *ids, int n,
                           float *logits, int reps) {
    hkm_err err = {{0}};
    double best = 1e30;
    for (int r = 0; r < reps + 1; r++) { // the first run warms caches and the workspace
        hkm_kvcache_reset(c);
        double t0 = now_s();
        hkm_status st = hkm_forward_cpu(m, c, ids, n, HKM_LOGITS_LAST, logits, NULL, &err);
        double dt = now_s() - t0;
        if (st) die("prefill", st, &err);
        if (r > 0 && dt < best) best = dt;
    }
    return best;
}

/* Best-of-reps seconds for `steps` decode steps after a prompt of n_prompt tokens. */
static double time_decode(const hkm_model *m, hkm_kvcache *c, const int32_t *ids, int n_prompt,
                          int steps, float *logits, int reps) {
    hkm_err err = {{0}};
    double best = 1e30;
    for (int r = 0; r < reps + 1; r++) {
        hkm_kvcache_reset(c);
        hkm_status st = hkm_forward_cpu(m, c, ids, n_prompt, HKM_LOGITS_LAST, logits, NULL, &err);
        if (st) die("decode prompt", st, &err);
        double t0 = now_s();
        for (int i = 0; i < steps && !st; i++)
            st = hkm_forward_cpu(m, c, ids + n_prompt + i, 1, HKM_LOGITS_LAST, logits, NULL, &err);
        double dt = now_s() - t0;
        if (st) die("decode", st, &err);
        if (r > 0 && dt < best) best = dt;
    }
    return best;
}

static int parse_int(const char *flag, const char *s) {
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || v < 1 || v > 1000000) {
        fprintf(stderr, "bench_cpu_forward: %s: expected a positive integer, got '%s'\n", flag, s);
        exit(2);
    }
    return (int)v;
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help")) {
        fprintf(stderr, "usage: bench_cpu_forward MODEL [--threads T] [--prefill N1,N2,...] "
                        "[--decode-prompt N] [--decode-steps N] [--reps R]\n");
        return argc < 2 ? 2 : 0;
    }
    int threads = 0, decode_prompt = 256, steps = 64, reps = 3, n_pre = 0, pre[8];
    char pre_default[] = "256,1024", *pre_list = pre_default; // strtok writes into it
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--threads")) threads = parse_int(argv[i], argv[i + 1]);
        else if (!strcmp(argv[i], "--prefill")) pre_list = argv[i + 1];
        else if (!strcmp(argv[i], "--decode-prompt")) decode_prompt = parse_int(argv[i], argv[i + 1]);
        else if (!strcmp(argv[i], "--decode-steps")) steps = parse_int(argv[i], argv[i + 1]);
        else if (!strcmp(argv[i], "--reps")) reps = parse_int(argv[i], argv[i + 1]);
        else { fprintf(stderr, "bench_cpu_forward: unknown option %s\n", argv[i]); return 2; }
    }
    for (char *tok = strtok(pre_list, ","); tok && n_pre < 8; tok = strtok(NULL, ","))
        pre[n_pre++] = parse_int("--prefill", tok);
    if (threads) {
        omp_set_num_threads(threads);
        openblas_set_num_threads(threads);
    }

    hkm_err err = {{0}};
    hkm_model *m = NULL;
    hkm_status st = hkm_model_load(argv[1], &m, &err);
    if (st) die(argv[1], st, &err);
    const hkm_config *cfg = hkm_model_config(m);
    int max_n = decode_prompt + steps;
    for (int i = 0; i < n_pre; i++) max_n = pre[i] > max_n ? pre[i] : max_n;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)max_n);
    float *logits = malloc(sizeof(float) * (size_t)cfg->vocab_size);
    hkm_kvcache *c = NULL;
    if (!ids || !logits) die("alloc", HKM_ERR_NOMEM, &err);
    if ((st = hkm_kvcache_create(cfg, max_n, &c, &err))) die("cache", st, &err);
    for (int i = 0; i < max_n; i++) ids[i] = bench_id(i, cfg->vocab_size);

    int t = threads ? threads : omp_get_max_threads();
    for (int i = 0; i < n_pre; i++) {
        double s = time_prefill(m, c, ids, pre[i], logits, reps);
        printf("{\"impl\": \"hubkv\", \"test\": \"prefill\", \"n\": %d, \"threads\": %d, "
               "\"seconds\": %.6f, \"tok_s\": %.2f}\n", pre[i], t, s, pre[i] / s);
        fflush(stdout);
    }
    double s = time_decode(m, c, ids, decode_prompt, steps, logits, reps);
    printf("{\"impl\": \"hubkv\", \"test\": \"decode\", \"n\": %d, \"prompt\": %d, \"threads\": %d, "
           "\"seconds\": %.6f, \"tok_s\": %.2f}\n", steps, decode_prompt, t, s, steps / s);
    hkm_kvcache_free(c);
    hkm_model_free(m);
    free(ids);
    free(logits);
    return 0;
}
