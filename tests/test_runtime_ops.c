/* CPU references vs naive versions: HubKV refinement, per-head Top-K (with
 * sinks, recent window and ties) and compaction. */
#include "hubkv.h"
#include "test_util.h"

#include <math.h>
#include <string.h>

static unsigned rng = 777;
static float frand(void) {
    rng = rng * 1664525u + 1013904223u;
    return (float)(rng >> 8) / 16777216.0f;
}

/* Naive refine in double: a hub has no strictly larger neighbour in the window. */
static void test_refine(void) {
    enum { H = 5, N = 301 };
    static float s[H * N], z[H * N];
    float beta[H];
    for (int i = 0; i < H * N; i++) s[i] = frand() * 4 - 2;
    for (int i = 0; i < 40; i++) s[i] = 1.0f; /* plateau: every equal value is a hub */
    for (int h = 0; h < H; h++) beta[h] = 0.8f + 0.1f * h;
    int widths[3] = {5, 3, 1};
    for (int w = 0; w < 3; w++) {
        hubkv_refine_params p = hubkv_refine_default_params();
        p.width = widths[w], p.ratio = 0.7f, p.discount = 0.5f;
        char err[256] = "";
        CHECK(hubkv_refine_cpu(s, beta, H, N, &p, z, err, sizeof err) == HUBKV_OK, "refine: %s", err);
        int bad = 0;
        for (int h = 0; h < H; h++)
            for (int i = 0; i < N; i++) {
                double si = s[h * N + i];
                int hub = 1;
                for (int j = i - p.width / 2; j <= i + p.width / 2; j++)
                    if (j >= 0 && j < N && s[h * N + j] > si) hub = 0;
                double q = hub ? si : 0.5 * si, r2 = 0.7 * 0.7;
                double want = si + r2 * (beta[h] * q - si);
                double got = z[h * N + i];
                if (fabs(got - want) > 1e-5 * (1 + fabs(want)) && bad++ < 5)
                    CHECK(0, "width %d head %d i %d: z %.9g, want %.9g", p.width, h, i, got, want);
            }
        CHECK(bad == 0, "width %d: %d mismatches", p.width, bad);
    }
    hubkv_refine_params p = hubkv_refine_default_params();
    p.ratio = 0.3f, p.ratio_gate = 0.5f; /* gate closed: z = s */
    hubkv_refine_cpu(s, beta, H, N, &p, z, NULL, 0);
    CHECK(memcmp(s, z, sizeof s) == 0, "ratio below gate must leave scores unchanged");
    char err[256];
    p.width = 4;
    CHECK(hubkv_refine_cpu(s, beta, H, N, &p, z, err, sizeof err) == HUBKV_ERR_INVALID_ARG && strstr(err, "width"),
          "even width refused: %s", err);
}

/* Naive Top-K: forced tokens, then repeated argmax (ties -> lower index). */
static void naive_topk(const float *s, int n, int k, int ns, int nr, unsigned char *keep) {
    int taken = 0;
    for (int i = 0; i < n; i++) {
        keep[i] = i < ns || i >= n - nr;
        taken += keep[i];
    }
    while (taken < k) {
        int b = -1;
        for (int i = 0; i < n; i++)
            if (!keep[i] && (b < 0 || s[i] > s[b])) b = i;
        keep[b] = 1, taken++;
    }
}

static void test_topk(int quantize) {
    enum { H = 7, N = 257 };
    static float s[H * N];
    static int32_t idx[H * N];
    static unsigned char keep[N];
    int32_t off[H + 1] = {0};
    int ns = 3, nr = 5;
    for (int i = 0; i < H * N; i++) s[i] = quantize ? floorf(frand() * 8) : frand();
    int ks[H] = {8, 9, 50, 128, 256, 257, 100};
    for (int h = 0; h < H; h++) off[h + 1] = off[h] + ks[h];
    memset(idx, 0xff, sizeof idx);
    char err[256] = "";
    CHECK(hubkv_topk_cpu(s, H, N, off, ns, nr, idx, err, sizeof err) == HUBKV_OK, "topk: %s", err);
    for (int h = 0; h < H; h++) {
        naive_topk(s + h * N, N, ks[h], ns, nr, keep);
        int prev = -1, ok = 1;
        for (int j = off[h]; j < off[h + 1]; j++) {
            int i = idx[j];
            if (i <= prev || i >= N || !keep[i]) ok = 0;
            prev = i;
        }
        CHECK(ok, "quantize %d head %d: index set differs from naive or not ascending", quantize, h);
    }
    off[1] = 7; /* k below sinks + recent */
    CHECK(hubkv_topk_cpu(s, H, N, off, ns, nr, idx, err, sizeof err) == HUBKV_ERR_RANGE && strstr(err, "head 0"),
          "k < forced refused: %s", err);
}

static void test_compact(void) {
    enum { H = 3, N = 50, D = 6 };
    static uint16_t k[H * N * D], v[H * N * D], ok[H * N * D], ov[H * N * D];
    int32_t pos[H * N], opos[H * N], in_off[H + 1], off[H + 1] = {0}, idx[H * N];
    for (int i = 0; i < H * N * D; i++) k[i] = (uint16_t)(frand() * 65535), v[i] = (uint16_t)(frand() * 65535);
    for (int h = 0; h <= H; h++) in_off[h] = h * N;
    for (int i = 0; i < H * N; i++) pos[i] = 1000 + i;
    int n = 0;
    for (int h = 0; h < H; h++) {
        for (int i = 0; i < N; i++)
            if ((i * (h + 2)) % 3 == 0) idx[n++] = i;
        off[h + 1] = n;
    }
    char err[256] = "";
    CHECK(hubkv_compact_cpu(k, v, pos, in_off, H, D, idx, off, ok, ov, opos, err, sizeof err) == HUBKV_OK, "%s", err);
    int bad = 0;
    for (int h = 0; h < H; h++)
        for (int j = off[h]; j < off[h + 1]; j++) {
            int src = h * N + idx[j];
            bad += memcmp(ok + j * D, k + src * D, D * 2) != 0 || memcmp(ov + j * D, v + src * D, D * 2) != 0 ||
                   opos[j] != 1000 + src;
        }
    CHECK(bad == 0, "%d compacted rows differ from their source", bad);
    idx[0] = N; /* out of its head's rows */
    CHECK(hubkv_compact_cpu(k, v, pos, in_off, H, D, idx, off, ok, ov, opos, err, sizeof err) == HUBKV_ERR_RANGE,
          "bad keep index refused: %s", err);
}

int main(void) {
    test_refine();
    test_topk(0);
    test_topk(1);
    test_compact();
    return test_summary("test_runtime_ops");
}
