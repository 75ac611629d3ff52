// Benchmark of the libhubkv GPU kernels at the issue's shapes:
// refinement + per-head Top-K over fp32 scores (L, H_kv, N), and compaction of
// bf16 K/V (head_dim 128), plus D2D cudaMemcpy bandwidth as the HBM reference.
// Prints "RESULT <name> <ms> <GB/s>" lines that bench_runtime_torch.py parses
// to compute ratios against PyTorch on the same shapes.
// Usage: bench_runtime [keep_fraction=0.2]
#include "hubkv.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cuda_runtime.h>
#include <vector>

#define CK(call)                                                                                   \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess) {                                                                   \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)
#define HK(g, call)                                                                                         \
    do {                                                                                                    \
        hubkv_status s_ = (call);                                                                           \
        if (s_ != HUBKV_OK) {                                                                               \
            fprintf(stderr, "%s:%d: %s: %s: %s\n", __FILE__, __LINE__, #call, hubkv_status_str(s_), hubkv_gpu_error(g)); \
            exit(1);                                                                                        \
        }                                                                                                   \
    } while (0)

__global__ void fill_uniform(float *x, size_t n, unsigned seed) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        unsigned h = (unsigned)i * 2654435761u ^ seed;
        h ^= h >> 16, h *= 0x7feb352du, h ^= h >> 15, h *= 0x846ca68bu, h ^= h >> 16;
        x[i] = (float)(h >> 8) / 16777216.0f;
    }
}

__global__ void fill_u16(uint16_t *x, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        x[i] = (uint16_t)(0x3c00u + (unsigned)(i * 2654435761u >> 22)); // finite bf16 values
}

// Median time in ms of `iters` runs of f after 3 warm-up runs.
template <typename F> static float time_ms(F f, int iters = 10) {
    cudaEvent_t a, b;
    CK(cudaEventCreate(&a));
    CK(cudaEventCreate(&b));
    for (int i = 0; i < 3; i++) f();
    std::vector<float> t;
    for (int i = 0; i < iters; i++) {
        CK(cudaEventRecord(a));
        f();
        CK(cudaEventRecord(b));
        CK(cudaEventSynchronize(b));
        float ms;
        CK(cudaEventElapsedTime(&ms, a, b));
        t.push_back(ms);
    }
    CK(cudaEventDestroy(a));
    CK(cudaEventDestroy(b));
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
}

static void report(const char *name, float ms, double bytes) {
    printf("RESULT %s %.4f %.1f\n", name, ms, bytes / (ms * 1e-3) / 1e9);
}

static void bench_select(hubkv_gpu *g, int L, int H, int N, float keep) {
    int heads = L * H;
    size_t sz = (size_t)heads * N;
    float *s, *z, *beta;
    int32_t *off, *idx;
    std::vector<int32_t> h_off(heads + 1, 0);
    std::vector<float> h_beta(heads);
    for (int h = 0; h < heads; h++) { // per-head k from 0.5x to 1.5x the mean, mean = keep * N
        double f = keep * (0.5 + (double)((h * 37) % heads) / (heads - 1 ? heads - 1 : 1));
        h_off[h + 1] = h_off[h] + std::min(N, std::max(64 + 4, (int)(f * N)));
        h_beta[h] = 0.8f + 0.4f * (float)((h * 13) % 17) / 16.0f;
    }
    CK(cudaMalloc(&s, sz * 4));
    CK(cudaMalloc(&z, sz * 4));
    CK(cudaMalloc(&beta, heads * 4));
    CK(cudaMalloc(&off, (heads + 1) * 4));
    CK(cudaMalloc(&idx, (size_t)h_off[heads] * 4));
    fill_uniform<<<1024, 256>>>(s, sz, 1234u);
    CK(cudaGetLastError());
    CK(cudaMemcpy(beta, h_beta.data(), heads * 4, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(off, h_off.data(), (heads + 1) * 4, cudaMemcpyHostToDevice));
    hubkv_refine_params p = hubkv_refine_default_params();
    p.ratio = 1.0f - keep;
    double sbytes = (double)sz * 4; // one read of the scores: the minimum traffic
    char name[128];
    float t_ref = time_ms([&] { HK(g, hubkv_gpu_refine(g, s, beta, heads, N, &p, z)); });
    float t_topk = time_ms([&] { HK(g, hubkv_gpu_topk(g, z, heads, N, off, 4, 64, idx)); });
    float t_fused = time_ms([&] { HK(g, hubkv_gpu_refine_topk(g, s, beta, heads, N, &p, off, 4, 64, idx)); });
    HK(g, hubkv_gpu_sync(g));
    snprintf(name, sizeof name, "refine_%dx%dx%d", L, H, N);
    report(name, t_ref, 2 * sbytes);
    snprintf(name, sizeof name, "topk_%dx%dx%d", L, H, N);
    report(name, t_topk, sbytes);
    snprintf(name, sizeof name, "refine+topk_%dx%dx%d", L, H, N);
    report(name, t_ref + t_topk, 3 * sbytes);
    snprintf(name, sizeof name, "fused_refine_topk_%dx%dx%d", L, H, N);
    report(name, t_fused, sbytes);
    CK(cudaFree(s)); CK(cudaFree(z)); CK(cudaFree(beta)); CK(cudaFree(off)); CK(cudaFree(idx));
}

// Compaction of all L layers (one dense layer buffer reused as every layer's
// input to fit memory); GB/s counts bytes read + written for K, V, positions.
static void bench_compact(hubkv_gpu *g, int L, int H, int N, int d, float keep) {
    size_t rows = (size_t)H * N;
    uint16_t *k, *v, *ok, *ov;
    int32_t *pos, *ioff, *kidx, *koff, *opos;
    std::vector<int32_t> h_ioff(H + 1), h_koff(H + 1, 0), h_idx;
    for (int h = 0; h <= H; h++) h_ioff[h] = h * N;
    for (int h = 0; h < H; h++) {
        int kk = (int)(keep * N * (0.5 + (double)h / (H > 1 ? H - 1 : 1)));
        for (int j = 0; j < kk; j++) h_idx.push_back((int32_t)((long long)j * N / kk)); // ascending, spread
        h_koff[h + 1] = (int32_t)h_idx.size();
    }
    size_t nk = h_idx.size();
    CK(cudaMalloc(&k, rows * d * 2));
    CK(cudaMalloc(&v, rows * d * 2));
    CK(cudaMalloc(&pos, rows * 4));
    CK(cudaMalloc(&ioff, (H + 1) * 4));
    CK(cudaMalloc(&kidx, nk * 4));
    CK(cudaMalloc(&koff, (H + 1) * 4));
    CK(cudaMalloc(&ok, nk * d * 2));
    CK(cudaMalloc(&ov, nk * d * 2));
    CK(cudaMalloc(&opos, nk * 4));
    fill_u16<<<1024, 256>>>(k, rows * d);
    fill_u16<<<1024, 256>>>(v, rows * d);
    CK(cudaGetLastError());
    CK(cudaMemset(pos, 0, rows * 4));
    CK(cudaMemcpy(ioff, h_ioff.data(), (H + 1) * 4, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(koff, h_koff.data(), (H + 1) * 4, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(kidx, h_idx.data(), nk * 4, cudaMemcpyHostToDevice));
    float t = time_ms([&] {
        for (int l = 0; l < L; l++)
            HK(g, hubkv_gpu_compact(g, k, v, pos, ioff, H, d, kidx, koff, (int64_t)nk, ok, ov, opos));
    });
    HK(g, hubkv_gpu_sync(g));
    double bytes = (double)L * nk * (2.0 * 2 * d * 2 + 3 * 4); // K,V read+write; idx, pos read, pos write
    char name[128];
    snprintf(name, sizeof name, "compact_%dx%dx%dxd%d", L, H, N, d);
    report(name, t, bytes);
    CK(cudaFree(k)); CK(cudaFree(v)); CK(cudaFree(pos)); CK(cudaFree(ioff)); CK(cudaFree(kidx));
    CK(cudaFree(koff)); CK(cudaFree(ok)); CK(cudaFree(ov)); CK(cudaFree(opos));
}

static void bench_memcpy(void) {
    size_t bytes = (size_t)1 << 30;
    void *a, *b;
    CK(cudaMalloc(&a, bytes));
    CK(cudaMalloc(&b, bytes));
    CK(cudaMemset(a, 1, bytes));
    float t = time_ms([&] { CK(cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice)); });
    report("memcpy_d2d_1GiB", t, 2.0 * bytes); // read + write
    CK(cudaFree(a)); CK(cudaFree(b));
}

int main(int argc, char **argv) {
    float keep = argc > 1 ? (float)atof(argv[1]) : 0.2f;
    hubkv_gpu *g = NULL;
    char err[256];
    if (hubkv_gpu_create(0, NULL, &g, err, sizeof err) != HUBKV_OK) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    printf("device %s, keep fraction %.2f\n", prop.name, keep);
    bench_memcpy();
    bench_select(g, 32, 8, 131072, keep);
    bench_select(g, 8, 32, 32768, keep);
    bench_compact(g, 32, 8, 131072, 128, keep);
    bench_compact(g, 8, 32, 32768, 128, keep);
    hubkv_gpu_free(g);
    return 0;
}
