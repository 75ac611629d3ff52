/* CPU vs GPU on fresh random inputs: refinement (bitwise, same fmaf order),
 * per-head Top-K plain and fused with refinement (exact index sets, ties
 * included since both break them by index), cache compaction (exact rows,
 * memory released), append with slack and regrowth, H2O steps, the gate
 * forward (to 2e-5) and its decode buffer, and the diversity selector. Outputs are poisoned before each launch so every
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
/* A failed launch or setup stops the test: later checks would only cascade. */
#define HKV_OK(g, call)                                                                           \
    do {                                                                                          \
        hubkv_status s_ = (call);                                                                 \
        if (s_ != HUBKV_OK) {                                                                     \
            fprintf(stderr, "%s:%d: %s: %s: %s\n", __FILE__, __LINE__, #call, hubkv_status_str(s_), \
                    hubkv_gpu_error(g));                                                          \
            exit(1);                                                                              \
        }                                                                                         \
    } while (0)

static unsigned long long rng = 88172645463325252ULL;
static unsigned next_u32(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (unsigned)(rng >> 11);
}

static void *dev_alloc(size_t bytes) {
    void *d = NULL;
    CUDA_OK(cudaMalloc(&d, bytes ? bytes : 4));
    return d;
}

static void *dev_copy(const void *h, size_t bytes) {
    void *d = dev_alloc(bytes);
    if (bytes) CUDA_OK(cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice));
    return d;
}

/* Distinct scores: a random permutation of n values (ties 0), small integers
 * (ties 1: many ties), or one constant (ties 2: every token lands in the
 * threshold bin of every radix pass; ties go by index). */
static void fill_scores(float *s, int heads, int n, int ties) {
    for (int h = 0; h < heads; h++) {
        float *x = s + (size_t)h * n;
        for (int i = 0; i < n; i++)
            x[i] = ties == 2 ? 0.75f : ties ? (float)(next_u32() % 16) : (float)i / (float)n - 0.3f;
        if (!ties)
            for (int i = n - 1; i > 0; i--) {
                int j = (int)(next_u32() % (unsigned)(i + 1));
                float t = x[i]; x[i] = x[j]; x[j] = t;
            }
    }
}

static void test_refine_topk(hubkv_gpu *g, int heads, int n, int ties, int width) {
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
    p.ratio = 0.6f, p.width = width;
    char err[256];
    CHECK(hubkv_refine_cpu(s, beta, heads, n, &p, z, err, sizeof err) == HUBKV_OK, "cpu refine %s", err);
    CHECK(hubkv_topk_cpu(z, heads, n, off, ns, nr, idx, err, sizeof err) == HUBKV_OK, "cpu topk %s", err);

    float *d_s = dev_copy(s, sz * 4), *d_beta = dev_copy(beta, heads * 4), *d_z = dev_alloc(sz * 4);
    int32_t *d_off = dev_copy(off, (heads + 1) * 4), *d_idx = dev_alloc(total * 4 + 4);
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

/* Append with per-head slack and regrowth vs a host model kept per head. */
static void test_append(hubkv_gpu *g, int H, int n, int d) {
    enum { MAXR = 400 };
    size_t rows = (size_t)H * n;
    uint16_t *k = malloc(rows * d * 2), *v = malloc(rows * d * 2);
    for (size_t i = 0; i < rows * d; i++) k[i] = (uint16_t)next_u32(), v[i] = (uint16_t)next_u32();
    /* Host model: per head, up to MAXR rows of (source id, position). K/V of a
     * row come from `k`/`v` (prefill) or from the appended blocks. */
    uint16_t *mk = calloc((size_t)H * MAXR * d, 2), *mv = calloc((size_t)H * MAXR * d, 2);
    int32_t *mpos = calloc((size_t)H * MAXR, 4), mlen[64] = {0}, off[65], *idx = malloc(rows * 4);
    int tot = 0;
    off[0] = 0;
    for (int h = 0; h < H; h++) {
        for (int i = 0; i < n; i++)
            if (i % 3 == 0 || i == n - 1) {
                idx[tot++] = i;
                memcpy(mk + ((size_t)h * MAXR + mlen[h]) * d, k + ((size_t)h * n + i) * d, (size_t)d * 2);
                memcpy(mv + ((size_t)h * MAXR + mlen[h]) * d, v + ((size_t)h * n + i) * d, (size_t)d * 2);
                mpos[h * MAXR + mlen[h]++] = i;
            }
        off[h + 1] = tot;
    }
    hubkv_cache *c = NULL;
    HKV_OK(g, hubkv_cache_create(g, 1, H, d, &c));
    CHECK(hubkv_cache_set_slack(c, 3) == HUBKV_OK, "set_slack");
    uint16_t *d_k = dev_copy(k, rows * d * 2), *d_v = dev_copy(v, rows * d * 2);
    int32_t *d_idx = dev_copy(idx, tot * 4);
    CHECK(hubkv_cache_set_dense(c, 0, d_k, d_v, n) == HUBKV_OK, "set_dense: %s", hubkv_cache_error(c));
    CHECK(hubkv_cache_compact(c, 0, d_idx, off) == HUBKV_OK, "compact: %s", hubkv_cache_error(c));
    int64_t rows0;
    hubkv_cache_layer(c, 0, NULL, NULL, NULL, NULL, &rows0);
    CHECK(rows0 == tot + 3 * H, "compaction with slack 3: %lld rows, expected %d", (long long)rows0, tot + 3 * H);
    /* Appends of 1 token (three fit in the slack of 3), then of 40 (regrow). */
    int steps[4] = {1, 1, 1, 40}, p0 = n;
    uint16_t *nk = malloc((size_t)H * 40 * d * 2), *nv = malloc((size_t)H * 40 * d * 2);
    uint16_t *d_nk = dev_alloc((size_t)H * 40 * d * 2), *d_nv = dev_alloc((size_t)H * 40 * d * 2);
    for (int st = 0; st < 4; st++) {
        int m = steps[st];
        for (size_t i = 0; i < (size_t)H * m * d; i++) nk[i] = (uint16_t)next_u32(), nv[i] = (uint16_t)next_u32();
        CUDA_OK(cudaMemcpy(d_nk, nk, (size_t)H * m * d * 2, cudaMemcpyHostToDevice));
        CUDA_OK(cudaMemcpy(d_nv, nv, (size_t)H * m * d * 2, cudaMemcpyHostToDevice));
        int64_t b0 = hubkv_cache_bytes(c);
        CHECK(hubkv_cache_append(c, 0, d_nk, d_nv, m, p0) == HUBKV_OK, "append %d: %s", m, hubkv_cache_error(c));
        CHECK(st == 3 ? hubkv_cache_bytes(c) > b0 : hubkv_cache_bytes(c) == b0,
              "append %d: bytes %lld -> %lld (grow only when a head is full)", m, (long long)b0,
              (long long)hubkv_cache_bytes(c));
        for (int h = 0; h < H; h++)
            for (int r = 0; r < m; r++) {
                memcpy(mk + ((size_t)h * MAXR + mlen[h]) * d, nk + ((size_t)h * m + r) * d, (size_t)d * 2);
                memcpy(mv + ((size_t)h * MAXR + mlen[h]) * d, nv + ((size_t)h * m + r) * d, (size_t)d * 2);
                mpos[h * MAXR + mlen[h]++] = p0 + r;
            }
        p0 += m;
    }
    HKV_OK(g, hubkv_gpu_sync(g));
    const uint16_t *lk, *lv;
    const int32_t *lp, *hl, *ho;
    int64_t nr;
    hubkv_cache_layer(c, 0, &lk, &lv, NULL, &lp, &nr);
    hubkv_cache_layer_lens(c, 0, NULL, &hl, &ho);
    uint16_t *gk = malloc((size_t)nr * d * 2), *gv = malloc((size_t)nr * d * 2);
    int32_t *gp = malloc((size_t)nr * 4), gl[64], go[65];
    const int32_t *dl, *dof;
    hubkv_cache_layer_lens(c, 0, &dl, NULL, NULL);
    hubkv_cache_layer(c, 0, NULL, NULL, &dof, NULL, NULL);
    CUDA_OK(cudaMemcpy(gk, lk, (size_t)nr * d * 2, cudaMemcpyDeviceToHost));
    CUDA_OK(cudaMemcpy(gv, lv, (size_t)nr * d * 2, cudaMemcpyDeviceToHost));
    CUDA_OK(cudaMemcpy(gp, lp, (size_t)nr * 4, cudaMemcpyDeviceToHost));
    CUDA_OK(cudaMemcpy(gl, dl, (size_t)H * 4, cudaMemcpyDeviceToHost));
    CUDA_OK(cudaMemcpy(go, dof, (size_t)(H + 1) * 4, cudaMemcpyDeviceToHost));
    int bad = 0;
    for (int h = 0; h < H; h++) {
        bad += gl[h] != mlen[h] || hl[h] != mlen[h] || go[h] != ho[h];
        if (gl[h] != mlen[h]) continue;
        bad += memcmp(gk + (size_t)go[h] * d, mk + (size_t)h * MAXR * d, (size_t)mlen[h] * d * 2) != 0;
        bad += memcmp(gv + (size_t)go[h] * d, mv + (size_t)h * MAXR * d, (size_t)mlen[h] * d * 2) != 0;
        bad += memcmp(gp + go[h], mpos + h * MAXR, (size_t)mlen[h] * 4) != 0;
    }
    CHECK(bad == 0, "append d=%d: %d mismatches in lens, offsets, rows or positions", d, bad);
    hubkv_cache_free(c);
    cudaFree(d_k), cudaFree(d_v), cudaFree(d_idx), cudaFree(d_nk), cudaFree(d_nv);
    free(k), free(v), free(mk), free(mv), free(mpos), free(idx), free(nk), free(nv), free(gk), free(gv), free(gp);
}

/* H2O on the cache vs hubkv_h2o_step_cpu on host mirrors, 30 steps. */
static void test_h2o(hubkv_gpu *g, int H, int n, int d) {
    size_t rows = (size_t)H * n;
    uint16_t *k = malloc(rows * d * 2), *v = malloc(rows * d * 2);
    for (size_t i = 0; i < rows * d; i++) k[i] = (uint16_t)next_u32(), v[i] = (uint16_t)next_u32();
    hubkv_cache *c = NULL;
    HKV_OK(g, hubkv_cache_create(g, 1, H, d, &c));
    hubkv_cache_set_slack(c, 2); /* two steps fill spare rows, then rows are reused */
    uint16_t *d_k = dev_copy(k, rows * d * 2), *d_v = dev_copy(v, rows * d * 2);
    CHECK(hubkv_cache_set_dense(c, 0, d_k, d_v, n) == HUBKV_OK, "set_dense: %s", hubkv_cache_error(c));
    const int32_t *ho, *hl, *dp;
    int64_t nr;
    hubkv_cache_layer_lens(c, 0, NULL, &hl, &ho);
    hubkv_cache_layer(c, 0, NULL, NULL, NULL, &dp, &nr);
    int32_t off[65], len[64], *pos = malloc(nr * 4), slot[64];
    memcpy(off, ho, (H + 1) * 4), memcpy(len, hl, H * 4);
    CUDA_OK(cudaMemcpy(pos, dp, nr * 4, cudaMemcpyDeviceToHost));
    uint16_t *hk = malloc(nr * d * 2), *hv = malloc(nr * d * 2), *nk = malloc((size_t)H * d * 2), *nv = malloc((size_t)H * d * 2);
    const uint16_t *lk, *lv;
    hubkv_cache_layer(c, 0, &lk, &lv, NULL, NULL, NULL);
    CUDA_OK(cudaMemcpy(hk, lk, nr * d * 2, cudaMemcpyDeviceToHost));
    CUDA_OK(cudaMemcpy(hv, lv, nr * d * 2, cudaMemcpyDeviceToHost));
    float *acc = calloc(nr, 4), *attn = malloc(nr * 4), *d_acc = dev_copy(acc, nr * 4), *d_attn = dev_alloc(nr * 4);
    uint16_t *d_nk = dev_alloc((size_t)H * d * 2), *d_nv = dev_alloc((size_t)H * d * 2);
    char err[256];
    for (int step = 0; step < 30; step++) {
        int32_t new_pos = n + step;
        /* Quantised weights make ties likely: both sides break them by row. */
        for (int64_t i = 0; i < nr; i++) attn[i] = (float)(next_u32() % 8) / 64.0f;
        for (int i = 0; i < H * d; i++) nk[i] = (uint16_t)next_u32(), nv[i] = (uint16_t)next_u32();
        CUDA_OK(cudaMemcpy(d_attn, attn, nr * 4, cudaMemcpyHostToDevice));
        CUDA_OK(cudaMemcpy(d_nk, nk, (size_t)H * d * 2, cudaMemcpyHostToDevice));
        CUDA_OK(cudaMemcpy(d_nv, nv, (size_t)H * d * 2, cudaMemcpyHostToDevice));
        CHECK(hubkv_h2o_step_cpu(acc, pos, off, len, H, attn, new_pos, 4, 8, slot, err, sizeof err) == HUBKV_OK, "%s", err);
        for (int h = 0; h < H; h++)
            memcpy(hk + (size_t)slot[h] * d, nk + (size_t)h * d, d * 2), memcpy(hv + (size_t)slot[h] * d, nv + (size_t)h * d, d * 2);
        CHECK(hubkv_cache_h2o_step(c, 0, d_acc, d_attn, d_nk, d_nv, new_pos, 4, 8) == HUBKV_OK, "h2o step %d: %s", step,
              hubkv_cache_error(c));
    }
    float *gacc = malloc(nr * 4);
    int32_t *gpos = malloc(nr * 4);
    uint16_t *gk = malloc(nr * d * 2), *gv = malloc(nr * d * 2);
    CUDA_OK(cudaMemcpy(gacc, d_acc, nr * 4, cudaMemcpyDeviceToHost));
    CUDA_OK(cudaMemcpy(gpos, dp, nr * 4, cudaMemcpyDeviceToHost));
    CUDA_OK(cudaMemcpy(gk, lk, nr * d * 2, cudaMemcpyDeviceToHost));
    CUDA_OK(cudaMemcpy(gv, lv, nr * d * 2, cudaMemcpyDeviceToHost));
    CHECK(!memcmp(gacc, acc, nr * 4) && !memcmp(gpos, pos, nr * 4), "h2o: accumulated attention or positions differ");
    CHECK(!memcmp(gk, hk, nr * d * 2) && !memcmp(gv, hv, nr * d * 2), "h2o: K/V rows differ (slot reuse)");
    CHECK(!memcmp(hl, len, H * 4), "h2o: lens differ");
    hubkv_cache_free(c);
    cudaFree(d_k), cudaFree(d_v), cudaFree(d_acc), cudaFree(d_attn), cudaFree(d_nk), cudaFree(d_nv);
    free(k), free(v), free(pos), free(hk), free(hv), free(nk), free(nv), free(acc), free(attn), free(gacc), free(gpos),
        free(gk), free(gv);
}

static float urand(void) { return (float)(next_u32() % 1000000) / 1e6f; }

/* Gate forward GPU vs CPU, and the 128-token decode buffer. */
static void test_gate(hubkv_gpu *g) {
    enum { D = 96, H = 3, G = 3, R = 16, S = 8, N = 300 };
    size_t nq = (size_t)H * G * R;
    float *wq = malloc(nq * D * 4), *bq = malloc(nq * 4), *wk = malloc((size_t)H * R * D * 4), qn[R], kn[R];
    float *kb = malloc((size_t)H * S * R * 4), b[H * G], *x = malloc((size_t)N * D * 4), *out = malloc((size_t)H * N * 4),
          *gout = malloc((size_t)H * N * 4);
    for (size_t i = 0; i < nq * D; i++) wq[i] = urand() - 0.5f;
    for (size_t i = 0; i < (size_t)H * R * D; i++) wk[i] = urand() - 0.5f;
    for (size_t i = 0; i < nq; i++) bq[i] = 0.1f * (urand() - 0.5f);
    for (int i = 0; i < R; i++) qn[i] = 0.5f + urand(), kn[i] = 0.5f + urand();
    for (int i = 0; i < H * S * R; i++) kb[i] = 2 * (urand() - 0.5f);
    for (int i = 0; i < H * G; i++) b[i] = urand() - 0.5f;
    for (int i = 0; i < N * D; i++) x[i] = 2 * (urand() - 0.5f);
    hubkv_gate_weights w = {D, H, G, R, S, 1e-6f, wq, bq, wk, qn, kn, kb, b};
    char err[256];
    CHECK(hubkv_gate_forward_cpu(&w, x, N, out, err, sizeof err) == HUBKV_OK, "%s", err);
    hubkv_gate_weights dw = w;
    dw.wq = dev_copy(wq, nq * D * 4), dw.bq = dev_copy(bq, nq * 4), dw.wk = dev_copy(wk, (size_t)H * R * D * 4);
    dw.q_norm = dev_copy(qn, R * 4), dw.k_norm = dev_copy(kn, R * 4), dw.k_base = dev_copy(kb, (size_t)H * S * R * 4);
    dw.b = dev_copy(b, H * G * 4);
    float *d_x = dev_copy(x, (size_t)N * D * 4), *d_out = dev_alloc((size_t)H * N * 4);
    HKV_OK(g, hubkv_gpu_gate_forward(g, &dw, d_x, N, d_out));
    HKV_OK(g, hubkv_gpu_sync(g));
    CUDA_OK(cudaMemcpy(gout, d_out, (size_t)H * N * 4, cudaMemcpyDeviceToHost));
    double worst = 0;
    for (int i = 0; i < H * N; i++) worst = fmax(worst, fabs((double)gout[i] - out[i]));
    CHECK(worst < 2e-5, "gate GPU vs CPU: max abs diff %g (expf and fma contraction only)", worst);
    /* Decode buffer: pushes of 100 rows; chunks complete at 128 and 256. */
    hubkv_gate_buffer *buf = NULL;
    HKV_OK(g, hubkv_gate_buffer_create(g, D, H, 128, &buf));
    int32_t ready[3];
    for (int i = 0; i < 3; i++) HKV_OK(g, hubkv_gate_buffer_push(buf, &dw, d_x + (size_t)i * 100 * D, 100, &ready[i]));
    HKV_OK(g, hubkv_gpu_sync(g));
    CHECK(ready[0] == 0 && ready[1] == 1 && ready[2] == 1 && hubkv_gate_buffer_pending(buf) == 300 - 256,
          "buffer: ready %d %d %d, pending %d", ready[0], ready[1], ready[2], hubkv_gate_buffer_pending(buf));
    float *bs = malloc((size_t)H * 128 * 4);
    CUDA_OK(cudaMemcpy(bs, hubkv_gate_buffer_scores(buf), (size_t)H * 128 * 4, cudaMemcpyDeviceToHost));
    worst = 0;
    for (int h = 0; h < H; h++)
        for (int j = 0; j < 128; j++) worst = fmax(worst, fabs((double)bs[h * 128 + j] - out[h * N + 128 + j]));
    CHECK(worst < 2e-5, "buffer chunk 2 (tokens 128..255) vs CPU: max abs diff %g", worst);
    hubkv_gate_buffer_free(buf);
    cudaFree((void *)dw.wq), cudaFree((void *)dw.bq), cudaFree((void *)dw.wk), cudaFree((void *)dw.q_norm);
    cudaFree((void *)dw.k_norm), cudaFree((void *)dw.k_base), cudaFree((void *)dw.b), cudaFree(d_x), cudaFree(d_out);
    free(wq), free(bq), free(wk), free(kb), free(x), free(out), free(gout), free(bs);
}

/* Diversity selector GPU vs CPU: exact index sets. */
static void test_diverse(hubkv_gpu *g, int H, int n, int d) {
    float *s = malloc((size_t)H * n * 4);
    uint16_t *v = malloc((size_t)H * n * d * 2);
    int32_t off[65];
    for (int i = 0; i < H * n; i++) s[i] = urand();
    for (size_t i = 0; i < (size_t)H * n * d; i++) {
        float f = urand() - 0.5f;
        uint32_t u;
        memcpy(&u, &f, 4);
        v[i] = (uint16_t)(u >> 16);
    }
    off[0] = 0;
    for (int h = 0; h < H; h++) off[h + 1] = off[h] + 4 + 16 + (int)(next_u32() % (unsigned)(n / 3));
    int tot = off[H];
    int32_t *idx = malloc(tot * 4), *gidx = malloc(tot * 4);
    char err[256];
    CHECK(hubkv_diverse_cpu(s, v, H, n, d, off, 0.5f, 4, 16, idx, err, sizeof err) == HUBKV_OK, "%s", err);
    float *d_s = dev_copy(s, (size_t)H * n * 4);
    uint16_t *d_v = dev_copy(v, (size_t)H * n * d * 2);
    int32_t *d_off = dev_copy(off, (H + 1) * 4), *d_idx = dev_alloc(tot * 4);
    CUDA_OK(cudaMemset(d_idx, 0xff, tot * 4));
    HKV_OK(g, hubkv_gpu_diverse(g, d_s, d_v, H, n, d, d_off, off, 0.5f, 4, 16, d_idx));
    HKV_OK(g, hubkv_gpu_sync(g));
    CUDA_OK(cudaMemcpy(gidx, d_idx, tot * 4, cudaMemcpyDeviceToHost));
    int nbad = 0;
    for (int i = 0; i < tot; i++) nbad += gidx[i] != idx[i];
    CHECK(nbad == 0, "diverse %dx%d d=%d: %d of %d indices differ", H, n, d, nbad, tot);
    cudaFree(d_s), cudaFree(d_v), cudaFree(d_off), cudaFree(d_idx);
    free(s), free(v), free(idx), free(gidx);
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
    /* Widths: 5 and 9 use the float4 path (n % 4 == 0), 11 the scalar one. */
    int widths[] = {5, 9, 11, 5, 5};
    for (int i = 0; i < (small ? 3 : 5); i++)
        for (int ties = 0; ties < 3; ties++) test_refine_topk(g, sizes[i][0], sizes[i][1], ties, widths[i]);
    test_cache(g, 4, 300, 128); /* vectorised rows */
    test_cache(g, 3, 257, 6);   /* scalar fallback */
    if (!small) test_cache(g, 8, 32768, 128);
    test_append(g, 4, 120, 128);
    test_append(g, 3, 90, 6);
    test_h2o(g, 3, 40, 64);
    test_gate(g);
    test_diverse(g, 3, 700, 64);
    if (!small) test_diverse(g, 4, 2048, 128);
    hubkv_gpu_free(g);
    return test_summary("test_runtime_gpu");
}
#endif
