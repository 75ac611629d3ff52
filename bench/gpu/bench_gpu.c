/* hubkv GPU benchmark: prefill tokens/s at given lengths (chunked by
 * max_chunk), decode tokens/s at batch 1 after a context, peak device memory,
 * plus the measured cuBLAS bf16 GEMM rate and device copy bandwidth to put
 * them against. Prints one "key value" per line for bench_peer.py.
 * usage: hubkv_bench_gpu MODEL_PATH [--prefill N]... [--decode CTX] [--chunk C]
 *        [--rates 0] (skip the GEMM/copy rates) [--cap 0] (skip the capture runs)
 * --decode 0 skips decode (for profiling a prefill alone). */
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hubkv_cuda.h"

#define DIE(...) do { fprintf(stderr, __VA_ARGS__); fprintf(stderr, "\n"); exit(1); } while (0)
#define CU(call) do { cudaError_t e_ = (call); if (e_ != cudaSuccess) \
    DIE("%s:%d: %s: %s", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); } while (0)

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* bf16 GEMM rate (TFLOP/s) of an 8192^3 product, fp32 accumulate. */
static double gemm_rate(void) {
    int N = 8192;
    void *a, *b, *c;
    CU(cudaMalloc(&a, (size_t)N * N * 2)); CU(cudaMalloc(&b, (size_t)N * N * 2));
    CU(cudaMalloc(&c, (size_t)N * N * 2));
    CU(cudaMemset(a, 0, (size_t)N * N * 2)); CU(cudaMemset(b, 0, (size_t)N * N * 2));
    cublasHandle_t h;
    if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS) DIE("cublasCreate failed");
    float al = 1, be = 0;
    double t = 0;
    for (int it = 0; it < 12; it++) {
        if (it == 2) { CU(cudaDeviceSynchronize()); t = now(); }
        if (cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, N, N, N, &al, a, CUDA_R_16BF, N, b, CUDA_R_16BF,
                         N, &be, c, CUDA_R_16BF, N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT) !=
            CUBLAS_STATUS_SUCCESS) DIE("cublasGemmEx failed");
    }
    CU(cudaDeviceSynchronize());
    t = now() - t;
    cublasDestroy(h);
    cudaFree(a), cudaFree(b), cudaFree(c);
    return 10.0 * 2.0 * N * (double)N * N / t / 1e12;
}

/* Device-to-device copy bandwidth, GB/s (read + write bytes). */
static double copy_bw(void) {
    size_t n = (size_t)1 << 30;
    void *a, *b;
    CU(cudaMalloc(&a, n)); CU(cudaMalloc(&b, n));
    CU(cudaMemcpy(b, a, n, cudaMemcpyDeviceToDevice));
    CU(cudaDeviceSynchronize());
    double t = now();
    for (int i = 0; i < 10; i++) CU(cudaMemcpy(b, a, n, cudaMemcpyDeviceToDevice));
    CU(cudaDeviceSynchronize());
    t = now() - t;
    cudaFree(a), cudaFree(b);
    return 10.0 * 2.0 * n / t / 1e9;
}

static void on_stats(void *user, const hkm_gpu_layer_stats *st) {
    (void)st;
    ++*(int *)user;
}

/* Best of 2 timed runs (after a warm-up) of an n-token chunked prefill; with
 * cap, column statistics of the last 64 query rows are computed on every layer
 * of the last chunk (left on the device, as a scorer would read them). */
static double prefill_time(hkm_gpu_model *g, hkm_gpu_cache *kc, const int32_t *ids, int n,
                           int chunk, float *logits, int cap) {
    hkm_err err = {{0}};
    double best = 1e30;
    int calls = 0;
    for (int rep = 0; rep < 3; rep++) { /* first rep warms up cuBLAS */
        hkm_gpu_cache_reset(kc);
        double t = now();
        for (int s = 0; s < n; s += chunk) {
            int k = n - s < chunk ? n - s : chunk, last = s + k == n;
            hkm_gpu_capture gc = {{0}, on_stats, &calls, k > 64 ? k - 64 : 0, k, 0, 0, NULL};
            if (hkm_gpu_forward(g, kc, ids + s, k, last ? HKM_LOGITS_LAST : HKM_LOGITS_NONE, logits,
                                cap && last ? &gc : NULL, &err) != HKM_OK)
                DIE("prefill: %s", err.msg);
        }
        t = now() - t;
        if (rep && t < best) best = t;
    }
    if (cap && calls != 3 * hkm_gpu_model_config(g)->n_layers) DIE("stats callback: %d calls", calls);
    return best;
}

/* Decode tokens/s at batch 1 after a dctx-token context: with the logits
 * copied to the host each step, then greedy (token picked on the device). */
static void decode_bench(hkm_gpu_model *g, hkm_gpu_cache *kc, const int32_t *ids, int dctx,
                         int ndec, int chunk, float *logits) {
    hkm_err err = {{0}};
    hkm_gpu_cache_reset(kc);
    for (int s = 0; s < dctx; s += chunk) {
        int k = dctx - s < chunk ? dctx - s : chunk;
        if (hkm_gpu_forward(g, kc, ids + s, k, HKM_LOGITS_NONE, NULL, NULL, &err) != HKM_OK)
            DIE("decode context: %s", err.msg);
    }
    /* one untimed step first: the decode path's one-time setup (persistent
     * kernel tables, pinned buffers) is not per-token cost */
    if (hkm_gpu_forward(g, kc, ids + dctx, 1, HKM_LOGITS_LAST, logits, NULL, &err) != HKM_OK)
        DIE("decode: %s", err.msg);
    double t = now();
    for (int s = 1; s <= ndec; s++)
        if (hkm_gpu_forward(g, kc, ids + dctx + s, 1, HKM_LOGITS_LAST, logits, NULL, &err) != HKM_OK)
            DIE("decode: %s", err.msg);
    t = now() - t;
    printf("decode_ctx %d\ndecode_tok_s %.1f\n", dctx, ndec / t);
    /* greedy decode: the token id is picked on the device, no logits leave it;
     * the difference of two runs cancels the prompt's prefill */
    int32_t *out = malloc((size_t)(ndec + 1) * 4);
    int n_out = 0;
    double tg[2];
    for (int rep = 0; rep < 3; rep++) {
        int k = rep == 1 ? 1 : ndec + 1;
        double t0 = now();
        if (hkm_gpu_generate_greedy(g, kc, ids, dctx, k, -1, out, &n_out, &err) != HKM_OK)
            DIE("greedy: %s", err.msg);
        if (rep) tg[rep - 1] = now() - t0; /* rep 0 warms up */
    }
    printf("decode_greedy_tok_s %.1f\n", ndec / (tg[1] - tg[0]));
    free(out);
}

int main(int argc, char **argv) {
    if (argc < 2) DIE("usage: %s MODEL [--prefill N]... [--decode CTX] [--chunk C]", argv[0]);
    int pre[8], npre = 0, dctx = 8192, chunk = 8192, ndec = 256, rates = 1, capr = 1;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--prefill") && npre < 8) pre[npre++] = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--decode")) dctx = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--chunk")) chunk = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--rates")) rates = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--cap")) capr = atoi(argv[i + 1]);
        else DIE("unknown option %s", argv[i]);
    }
    if (!npre) pre[npre++] = 2048, pre[npre++] = 8192;
    if (rates) printf("gemm_bf16_tflops %.1f\ncopy_gbps %.0f\n", gemm_rate(), copy_bw());
    hkm_err err = {{0}};
    hkm_model *m = NULL;
    if (hkm_model_load(argv[1], &m, &err) != HKM_OK) DIE("load: %s", err.msg);
    const hkm_config *c = hkm_model_config(m);
    if (dctx < 0) dctx = 0;
    int maxctx = dctx + ndec + 1;
    for (int i = 0; i < npre; i++) maxctx = pre[i] > maxctx ? pre[i] : maxctx;
    hkm_gpu_plan_bytes plan;
    if (hkm_gpu_plan(c, maxctx, chunk, &plan, &err) != HKM_OK) DIE("plan: %s", err.msg);
    printf("plan_bytes %zu\n", plan.total);
    hkm_gpu_model *g = NULL;
    hkm_gpu_cache *kc = NULL;
    if (hkm_gpu_model_upload(m, chunk, &g, &err) != HKM_OK) DIE("upload: %s", err.msg);
    if (hkm_gpu_cache_create(g, maxctx, &kc, &err) != HKM_OK) DIE("cache: %s", err.msg);
    int32_t *ids = malloc((size_t)maxctx * 4);
    for (int i = 0; i < maxctx; i++) ids[i] = (i * 7919 + 13) % c->vocab_size;
    float *logits = malloc((size_t)c->vocab_size * 4);
    for (int i = 0; i < npre; i++) {
        if (pre[i] <= 0) continue; /* --prefill 0: decode only */
        printf("prefill_%d_tok_s %.0f\n", pre[i], pre[i] / prefill_time(g, kc, ids, pre[i], chunk, logits, 0));
        if (capr)
            printf("prefill_cap_%d_tok_s %.0f\n", pre[i],
                   pre[i] / prefill_time(g, kc, ids, pre[i], chunk, logits, 1));
    }
    if (dctx > 0) decode_bench(g, kc, ids, dctx, ndec, chunk, logits);
    printf("weights_bytes %zu\nkv_bytes_per_token_at_ctx %zu\n", plan.weights,
           (size_t)2 * c->n_layers * c->n_kv_heads * c->head_dim * 2 * (size_t)dctx);
    printf("peak_bytes %zu\n", hkm_gpu_model_peak_bytes(g));
    hkm_gpu_cache_free(kc);
    hkm_gpu_model_free(g);
    hkm_model_free(m);
    free(ids), free(logits);
    return 0;
}
