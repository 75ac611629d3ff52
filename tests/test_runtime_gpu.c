/* CPU vs GPU on fresh random inputs: refinement (bitwise, same fmaf order),
 * per-head Top-K plain and fused with refinement (exact index sets, ties
 * included since both break them by index), and cache compaction (exact
 * rows, memory released). Outputs are poisoned before each launch so every
 * element must be written. Exit 77 without a CUDA device. */
#include "hubkv.h"
#include "test_util.h"

#include <math.h>
#include <string.h>

#ifndef HUBKV_TEST_CUDA
int main(void) {
    printf("no CUDA device: skipped (built without CUDA)\n");
    return TEST_SKIP;
}
#else
#include <cuda_runtime.h>

#define CUDA_OK(call)                                                                             \
    do {                                                                                          \
        cudaError_t e_ = (call);                                                                  \
        if (e_ != cudaSuccess) {                                                                  \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_)); \
            exit(1);                                                                              \
        }                                                                                         \
    } while (0)
#define HKV_OK(g, call)                                                                                        \
    do {                                                                                                       \
        hubkv_status s_ = (call);                                                                              \
        CHECK(s_ == HUBKV_OK, "%s: %s: %s", #call, hubkv_status_str(s_), hubkv_gpu_error(g));                 \
    } while (0)

static unsigned long long rng = 88172645463325252ULL;
static unsigned next_u32(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (unsigned)(rng >> 11);
}

static void *dev_copy(const void *h, size_t bytes) {
    void *d = NULL;
    CUDA_OK(cudaMalloc(&d, bytes ? bytes : 4));
    if (bytes) CUDA_OK(cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice));
    return d;
}

/* Distinct scores: a random permutation of n values (no ties), or small
 * integers (many ties) when `ties`. */
static void fill_scores(float *s, int heads, int n, int ties) {
    for (int h = 0; h < heads; h++) {
        float *x = s + (size_t)h * n;
        for (int i = 0; i < n; i++) x[i] = ties ? (float)(next_u32() % 16) : (float)i / (float)n - 0.3f;
        if (!ties)
            for (int i = n - 1; i > 0; i--) {
                int j = (int)(next_u32() % (unsigned)(i + 1));
                float t = x[i]; x[i] = x[j]; x[j] = t;
            }
    }
}

static void test_refine_topk(hubkv_gpu *g, int heads, int n, int ties) {
    size_t sz = (size_t)heads * n;
    float *s = malloc(sz * 4), *z = malloc(sz * 4), *zg = malloc(sz * 4), *beta = malloc(heads * 4);
    int32_t *off = malloc((heads + 1) * 4);
    int ns = 4, nr = 32;
    fill_scores(s, heads, n, ties);
    off[0] = 0;
    for (int h = 0; h < heads; h++) {
        beta[h] = 0.8f + 0.4f * (float)(next_u32() % 1000) / 1000.0f;
        int k = h == 0 ? ns + nr : h == 1 ? n : ns + nr + (int)(next_u32() % (unsigned)(n - ns - nr));
        off[h + 1] = off[h] + k;
    }
    int total = off[heads];
    int32_t *idx = malloc(total * 4 + 4), *idx_g = malloc(total * 4 + 4), *idx_f = malloc(total * 4 + 4);
    hubkv_refine_params p = hubkv_refine_default_params();
    p.ratio = 0.6f;
    char err[256];
    CHECK(hubkv_refine_cpu(s, beta, heads, n, &p, z, err, sizeof err) == HUBKV_OK, "cpu refine %s", err);
    CHECK(hubkv_topk_cpu(z, heads, n, off, ns, nr, idx, err, sizeof err) == HUBKV_OK, "cpu topk %s", err);

    float *d_s = dev_copy(s, sz * 4), *d_beta = dev_copy(beta, heads * 4), *d_z = dev_copy(NULL, sz * 4);
    int32_t *d_off = dev_copy(off, (heads + 1) * 4), *d_idx = dev_copy(NULL, total * 4 + 4);
    CUDA_OK(cudaMemset(d_z, 0xff, sz * 4)); /* NaN poison */
    HKV_OK(g, hubkv_gpu_refine(g, d_s, d_beta, heads, n, &p, d_z));
    HKV_OK(g, hubkv_gpu_sync(g));
    CUDA_OK(cudaMemcpy(zg, d_z, sz * 4, cudaMemcpyDeviceToHost));
    size_t bad = 0;
    double max_rel = 0;
    for (size_t i = 0; i < sz; i++) {
        double rel = fabs((double)zg[i] - z[i]) / (1e-30 + fabs(z[i]));
        if (isnan(zg[i]) || rel > 1e-6) bad++;
        if (rel > max_rel) max_rel = rel;
    }
    CHECK(bad == 0, "refine %dx%d ties=%d: %zu elements unwritten or off (max rel %g)", heads, n, ties, bad, max_rel);

    for (int fused = 0; fused < 2; fused++) {
        CUDA_OK(cudaMemset(d_idx, 0xff, total * 4 + 4)); /* -1 poison */
        if (fused) HKV_OK(g, hubkv_gpu_refine_topk(g, d_s, d_beta, heads, n, &p, d_off, ns, nr, d_idx));
        else HKV_OK(g, hubkv_gpu_topk(g, d_z, heads, n, d_off, ns, nr, d_idx));
        HKV_OK(g, hubkv_gpu_sync(g));
        CUDA_OK(cudaMemcpy(fused ? idx_f : idx_g, d_idx, total * 4, cudaMemcpyDeviceToHost));
        const int32_t *got = fused ? idx_f : idx_g;
        int first = -1, nbad = 0;
        for (int i = 0; i < total; i++)
            if (got[i] != idx[i] && nbad++ == 0) first = i;
        CHECK(nbad == 0, "topk %s %dx%d ties=%d: %d of %d indices differ (first at %d: gpu %d cpu %d)",
              fused ? "fused" : "plain", heads, n, ties, nbad, total, first, first >= 0 ? got[first] : 0,
              first >= 0 ? idx[first] : 0);
    }
    /* Bad offsets are caught on the device and reported by sync. */
    int32_t bad_off[2] = {0, ns + nr - 1};
    int32_t *d_bad = dev_copy(bad_off, 8);
    HKV_OK(g, hubkv_gpu_topk(g, d_z, 1, n, d_bad, ns, nr, d_idx));
    hubkv_status st = hubkv_gpu_sync(g);
    CHECK(st == HUBKV_ERR_RANGE && strstr(hubkv_gpu_error(g), "head 0"), "bad k: %s %s", hubkv_status_str(st),
          hubkv_gpu_error(g));
    cudaFree(d_bad), cudaFree(d_s), cudaFree(d_beta), cudaFree(d_z), cudaFree(d_off), cudaFree(d_idx);
    free(s), free(z), free(zg), free(beta), free(off), free(idx), free(idx_g), free(idx_f);
}

static void test_cache(hubkv_gpu *g, int H, int n, int d) {
    size_t rows = (size_t)H * n;
    uint16_t *k = malloc(rows * d * 2), *v = malloc(rows * d * 2);
    int32_t *pos = malloc(rows * 4), in_off[65], off[65], *idx = malloc(rows * 4);
    for (size_t i = 0; i < rows * d; i++) k[i] = (uint16_t)next_u32(), v[i] = (uint16_t)next_u32();
    for (size_t i = 0; i < rows; i++) pos[i] = (int32_t)(i % n);
    int tot = 0;
    off[0] = 0;
    for (int h = 0; h <= H; h++) in_off[h] = h * n;
    for (int h = 0; h < H; h++) {
        for (int i = 0; i < n; i++)
            if (next_u32() % 4 == 0 || i == 0) idx[tot++] = i;
        off[h + 1] = tot;
    }
    uint16_t *ck = malloc((size_t)tot * d * 2), *cv = malloc((size_t)tot * d * 2), *gk = malloc((size_t)tot * d * 2),
             *gv = malloc((size_t)tot * d * 2);
    int32_t *cpos = malloc(tot * 4), *gpos = malloc(tot * 4), goff[65];
    char err[256];
    CHECK(hubkv_compact_cpu(k, v, pos, in_off, H, d, idx, off, ck, cv, cpos, err, sizeof err) == HUBKV_OK, "%s", err);

    hubkv_cache *c = NULL;
    HKV_OK(g, hubkv_cache_create(g, 2, H, d, &c));
    if (!c) return;
    uint16_t *d_k = dev_copy(k, rows * d * 2), *d_v = dev_copy(v, rows * d * 2);
    int32_t *d_idx = dev_copy(idx, tot * 4);
    CHECK(hubkv_cache_set_dense(c, 1, d_k, d_v, n) == HUBKV_OK, "set_dense: %s", hubkv_cache_error(c));
    int64_t before = hubkv_cache_bytes(c);
    size_t free0, free1, totm;
    CUDA_OK(cudaMemGetInfo(&free0, &totm));
    CHECK(hubkv_cache_compact(c, 1, d_idx, off) == HUBKV_OK, "compact: %s", hubkv_cache_error(c));
    CUDA_OK(cudaMemGetInfo(&free1, &totm));
    int64_t after = hubkv_cache_bytes(c);
    CHECK(after < before, "cache bytes %lld -> %lld must shrink", (long long)before, (long long)after);
    if (rows * d * 2 > (8u << 20)) /* big enough for the allocator to show it */
        CHECK(free1 > free0, "device free memory %zu -> %zu must grow after compaction", free0, free1);
    const uint16_t *lk, *lv;
    const int32_t *lo, *lp;
    int64_t nr;
    hubkv_cache_layer(c, 1, &lk, &lv, &lo, &lp, &nr);
    CHECK(nr == tot, "rows %lld != %d", (long long)nr, tot);
    CUDA_OK(cudaMemcpy(gk, lk, (size_t)tot * d * 2, cudaMemcpyDeviceToHost));
    CUDA_OK(cudaMemcpy(gv, lv, (size_t)tot * d * 2, cudaMemcpyDeviceToHost));
    CUDA_OK(cudaMemcpy(gpos, lp, (size_t)tot * 4, cudaMemcpyDeviceToHost));
    CUDA_OK(cudaMemcpy(goff, lo, (size_t)(H + 1) * 4, cudaMemcpyDeviceToHost));
    CHECK(!memcmp(gk, ck, (size_t)tot * d * 2) && !memcmp(gv, cv, (size_t)tot * d * 2), "compacted K/V differ (d=%d)", d);
    CHECK(!memcmp(gpos, cpos, (size_t)tot * 4) && !memcmp(goff, off, (size_t)(H + 1) * 4), "positions/offsets differ");
    /* A second compaction (keep the first row of each head) re-gathers. */
    int32_t off2[65], *idx2 = malloc(H * 4);
    off2[0] = 0;
    for (int h = 0; h < H; h++) idx2[h] = 0, off2[h + 1] = h + 1;
    int32_t *d_idx2 = dev_copy(idx2, H * 4);
    CHECK(hubkv_cache_compact(c, 1, d_idx2, off2) == HUBKV_OK, "compact 2: %s", hubkv_cache_error(c));
    hubkv_cache_layer(c, 1, NULL, NULL, NULL, &lp, &nr);
    CUDA_OK(cudaMemcpy(gpos, lp, (size_t)H * 4, cudaMemcpyDeviceToHost));
    int okp = nr == H;
    for (int h = 0; h < H && okp; h++) okp = gpos[h] == cpos[off[h]];
    CHECK(okp, "second compaction keeps each head's first kept position");
    /* Out-of-range keep index: error, layer unchanged. */
    idx2[0] = 5;
    CUDA_OK(cudaMemcpy(d_idx2, idx2, H * 4, cudaMemcpyHostToDevice));
    hubkv_status st = hubkv_cache_compact(c, 1, d_idx2, off2);
    CHECK(st == HUBKV_ERR_RANGE, "bad keep index: %s %s", hubkv_status_str(st), hubkv_cache_error(c));
    hubkv_cache_free(c);
    cudaFree(d_k), cudaFree(d_v), cudaFree(d_idx), cudaFree(d_idx2);
    free(k), free(v), free(pos), free(idx), free(ck), free(cv), free(gk), free(gv), free(cpos), free(gpos), free(idx2);
}

int main(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
        printf("no CUDA device: skipped\n");
        return TEST_SKIP;
    }
    hubkv_gpu *g = NULL;
    char err[256] = "";
    if (hubkv_gpu_create(0, NULL, &g, err, sizeof err) != HUBKV_OK) {
        fprintf(stderr, "gpu_create: %s\n", err);
        return 1;
    }
    /* HUBKV_TEST_SMALL=1 (under compute-sanitizer) keeps only the small sizes. */
    int small = getenv("HUBKV_TEST_SMALL") != NULL;
    int sizes[][2] = {{6, 100}, {5, 4096}, {9, 5000}, {4, 70001}, {3, 131072}};
    for (int i = 0; i < (small ? 3 : 5); i++)
        for (int ties = 0; ties < 2; ties++) test_refine_topk(g, sizes[i][0], sizes[i][1], ties);
    test_cache(g, 4, 300, 128); /* vectorised rows */
    test_cache(g, 3, 257, 6);   /* scalar fallback */
    if (!small) test_cache(g, 8, 32768, 128);
    hubkv_gpu_free(g);
    return test_summary("test_runtime_gpu");
}
#endif
