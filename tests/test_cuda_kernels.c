/* Every GPU kernel against a plain C reference on fresh random inputs, with
 * outputs poisoned with NaN before the launch.
 * Tolerances: fp32 outputs of fp32 math 1e-5 abs + 1e-5 rel (1e-4 for RoPE,
 * whose angles reach ~1e3 rad); bf16 outputs 1e-2 rel + 1e-3 abs (bf16 keeps
 * 8 significant bits: 2^-8 = 0.4% rounding); attention outputs 2e-2 (bf16
 * inputs rounded identically for the reference, fp32 accumulation, bf16 out). */
#include <math.h>
#include <string.h>

#include "test_cuda_util.h"

/* ---------------------------------------------------------------- norms */

static void ref_rmsnorm(const float *x, const float *w, int n, int d, float eps, float *out) {
    for (int t = 0; t < n; t++) {
        double ss = 0;
        for (int i = 0; i < d; i++) ss += (double)x[t * d + i] * x[t * d + i];
        float inv = 1.0f / sqrtf((float)(ss / d) + eps);
        for (int i = 0; i < d; i++) out[t * d + i] = x[t * d + i] * inv * w[i];
    }
}

static void test_rmsnorm(int n, int d, int with_res) {
    float *x = malloc(n * d * 4), *r = malloc(n * d * 4), *w = malloc(d * 4);
    float *ref = malloc(n * d * 4), *got = malloc(n * d * 4), *xs = malloc(n * d * 4);
    fill(x, n * d, 3.0f), fill(r, n * d, 1.0f), fill(w, d, 1.0f);
    float *dx = dput_f32(x, n * d), *dr = dput_f32(r, n * d), *dw = dput_f32(w, d);
    hkg_bf16 *dout = dalloc_nan(n * d * 2);
    CU(hkg_rmsnorm(dx, with_res ? dr : NULL, dw, n, d, 1e-5f, dout, 0));
    if (with_res)
        for (int i = 0; i < n * d; i++) x[i] += r[i];
    ref_rmsnorm(x, w, n, d, 1e-5f, ref);
    dget_bf16(got, dout, n * d);
    char name[64];
    snprintf(name, sizeof name, "rmsnorm n=%d d=%d res=%d", n, d, with_res);
    compare(name, got, ref, n * d, 1e-3f, 1e-2f);
    dget_f32(xs, dx, n * d);
    compare("rmsnorm residual sum", xs, x, n * d, 1e-6f, 1e-6f);
    cudaFree(dx), cudaFree(dr), cudaFree(dw), cudaFree(dout);
    free(x), free(r), free(w), free(ref), free(got), free(xs);
}

static void test_head_rmsnorm(void) {
    int n = 5, nh = 3, hd = 64, stride = 7 * hd;
    float *x = malloc(n * stride * 4), *w = malloc(hd * 4), *got = malloc(n * stride * 4);
    fill(x, n * stride, 2.0f), fill(w, hd, 1.0f);
    float *dx = dput_f32(x, n * stride), *dw = dput_f32(w, hd);
    CU(hkg_head_rmsnorm(dx, n, nh, stride, hd, dw, 1e-6f, 0));
    for (int t = 0; t < n; t++)
        for (int h = 0; h < nh; h++) {
            float *p = x + t * stride + h * hd, tmp[256];
            ref_rmsnorm(p, w, 1, hd, 1e-6f, tmp);
            memcpy(p, tmp, hd * 4);
        }
    dget_f32(got, dx, n * stride);
    compare("head_rmsnorm (heads beyond n_heads untouched)", got, x, n * stride, 1e-5f, 1e-5f);
    cudaFree(dx), cudaFree(dw), free(x), free(w), free(got);
}

/* ---------------------------------------------------------------- element-wise */

static void test_rope(void) {
    int n = 9, nh = 4, hd = 128, stride = 5 * hd, pos0 = 3000, half = hd / 2;
    float *x = malloc(n * stride * 4), *inv = malloc(half * 4), *got = malloc(n * stride * 4);
    fill(x, n * stride, 1.0f);
    for (int i = 0; i < half; i++) inv[i] = 1.0f / powf(500000.0f, (float)(2 * i) / hd);
    float *dx = dput_f32(x, n * stride), *dinv = dput_f32(inv, half);
    CU(hkg_rope(dx, n, nh, stride, hd, pos0, NULL, dinv, 0));
    for (int t = 0; t < n; t++)
        for (int h = 0; h < nh; h++)
            for (int i = 0; i < half; i++) {
                float *p = x + t * stride + h * hd, ang = (float)(pos0 + t) * inv[i];
                float a = p[i], b = p[i + half];
                p[i] = a * cosf(ang) - b * sinf(ang);
                p[i + half] = b * cosf(ang) + a * sinf(ang);
            }
    dget_f32(got, dx, n * stride);
    compare("rope hd=128 pos0=3000", got, x, n * stride, 1e-4f, 1e-4f);
    cudaFree(dx), cudaFree(dinv), free(x), free(inv), free(got);
}

static void test_swiglu_bias_embed(void) {
    int n = 7, ff = 300, V = 50, d = 96;
    float *gu = malloc(n * 2 * ff * 4), *ref = malloc(n * ff * 4), *got = malloc(n * ff * 4);
    fill(gu, n * 2 * ff, 4.0f);
    float *dgu = dput_f32(gu, n * 2 * ff);
    hkg_bf16 *dout = dalloc_nan(n * ff * 2);
    CU(hkg_swiglu(dgu, n, ff, dout, 0));
    for (int t = 0; t < n; t++)
        for (int i = 0; i < ff; i++) {
            float g = gu[t * 2 * ff + i], u = gu[t * 2 * ff + ff + i];
            ref[t * ff + i] = g / (1.0f + expf(-g)) * u;
        }
    dget_bf16(got, dout, n * ff);
    compare("swiglu", got, ref, n * ff, 1e-3f, 1e-2f);

    /* bf16 gate/up: the reference reads the same rounded inputs */
    round_bf16(gu, n * 2 * ff);
    hkg_bf16 *dgub = dput_bf16(gu, n * 2 * ff), *doutb = dalloc_nan(n * ff * 2);
    CU(hkg_swiglu_bf16(dgub, n, ff, doutb, 0));
    for (int t = 0; t < n; t++)
        for (int i = 0; i < ff; i++) {
            float g = gu[t * 2 * ff + i], u = gu[t * 2 * ff + ff + i];
            ref[t * ff + i] = g / (1.0f + expf(-g)) * u;
        }
    dget_bf16(got, doutb, n * ff);
    compare("swiglu bf16 in", got, ref, n * ff, 1e-3f, 1e-2f);
    CHECK(hkg_swiglu_bf16(dgub, n, 301, doutb, 0) == cudaErrorInvalidValue,
          "swiglu_bf16 must refuse an odd ff");
    cudaFree(dgub), cudaFree(doutb);
    dget_f32(gu, dgu, n * 2 * ff); /* the unrounded values again, for add_bias */

    float *b = malloc(2 * ff * 4), *gs = malloc(n * 2 * ff * 4);
    fill(b, 2 * ff, 1.0f);
    float *db = dput_f32(b, 2 * ff);
    CU(hkg_add_bias(dgu, db, n, 2 * ff, 0));
    for (int i = 0; i < n * 2 * ff; i++) gu[i] += b[i % (2 * ff)];
    dget_f32(gs, dgu, n * 2 * ff);
    compare("add_bias", gs, gu, n * 2 * ff, 1e-6f, 1e-6f);

    float *emb = malloc(V * d * 4), *x = malloc(n * d * 4), *xr = malloc(n * d * 4);
    int32_t ids[7] = {0, 49, 3, 3, 17, 25, 48};
    fill(emb, V * d, 1.0f);
    round_bf16(emb, V * d);
    hkg_bf16 *demb = dput_bf16(emb, V * d);
    int32_t *dids = dalloc_nan(sizeof ids);
    float *dx = dalloc_nan(n * d * 4);
    CU(cudaMemcpy(dids, ids, sizeof ids, cudaMemcpyHostToDevice));
    CU(hkg_embed(demb, dids, n, d, dx, 0));
    for (int t = 0; t < n; t++) memcpy(xr + t * d, emb + ids[t] * d, d * 4);
    dget_f32(x, dx, n * d);
    compare("embed (exact)", x, xr, n * d, 0, 0);
    cudaFree(dgu), cudaFree(dout), cudaFree(db), cudaFree(demb), cudaFree(dids), cudaFree(dx);
    free(gu), free(ref), free(got), free(b), free(gs), free(emb), free(x), free(xr);
}

static void test_argmax(void) {
    int rows = 3, cols = 128256;
    float *x = malloc((size_t)rows * cols * 4);
    fill(x, (size_t)rows * cols, 10.0f);
    x[0 * cols + 77] = 50.0f;
    x[1 * cols + cols - 1] = 50.0f;
    x[2 * cols + 5] = 50.0f, x[2 * cols + 9000] = 50.0f; /* tie: lowest index */
    float *dx = dput_f32(x, (size_t)rows * cols);
    int32_t *dout = dalloc_nan(rows * 4), got[3];
    CU(hkg_argmax(dx, rows, cols, dout, 0));
    CU(cudaDeviceSynchronize());
    CU(cudaMemcpy(got, dout, sizeof got, cudaMemcpyDeviceToHost));
    int ok = got[0] == 77 && got[1] == cols - 1 && got[2] == 5;
    CHECK(ok, "argmax got %d %d %d, expected 77 %d 5", got[0], got[1], got[2], cols - 1);
    printf("%s argmax\n", ok ? "PASS" : "FAIL");
    cudaFree(dx), cudaFree(dout), free(x);
    /* fresh random rows of odd widths against a CPU argmax, with a NaN, a
     * repeated maximum and an all-NaN row (gives 0) */
    const int widths[3] = {49152, 1001, 7};
    for (int w = 0; w < 3; w++) {
        cols = widths[w];
        x = malloc((size_t)rows * cols * 4);
        fill(x, (size_t)rows * cols, 10.0f);
        x[cols / 3] = NAN;
        x[cols + cols / 2] = x[cols + cols / 5] = 100.0f;
        for (int i = 0; i < cols; i++) x[2 * cols + i] = NAN;
        dx = dput_f32(x, (size_t)rows * cols);
        dout = dalloc_nan(rows * 4);
        CU(hkg_argmax(dx, rows, cols, dout, 0));
        CU(cudaDeviceSynchronize());
        CU(cudaMemcpy(got, dout, sizeof got, cudaMemcpyDeviceToHost));
        ok = 1;
        for (int r = 0; r < rows; r++) {
            int best = 0;
            float bv = -INFINITY;
            for (int i = 0; i < cols; i++)
                if (x[r * cols + i] > bv) bv = x[r * cols + i], best = i;
            CHECK(got[r] == best, "argmax width %d row %d: got %d, expected %d", cols, r, got[r],
                  best);
            ok &= got[r] == best;
        }
        printf("%s argmax, width %d vs CPU\n", ok ? "PASS" : "FAIL", cols);
        cudaFree(dx), cudaFree(dout), free(x);
    }
}

/* ---------------------------------------------------------------- attention */

/* One layer's attention problem with per-head cache lengths. */
typedef struct {
    int H, KV, hd, n, cap;
    int len[4];          /* (KV) old entries */
    float *q, *k, *v;    /* (H, n, hd), (KV*cap, hd) x2, bf16-rounded */
} attn_case;

static void case_make(attn_case *c) {
    size_t nq = (size_t)c->H * c->n * c->hd, nk = (size_t)c->KV * c->cap * c->hd;
    c->q = malloc(nq * 4), c->k = malloc(nk * 4), c->v = malloc(nk * 4);
    fill(c->q, nq, 2.0f), fill(c->k, nk, 2.0f), fill(c->v, nk, 1.0f);
    round_bf16(c->q, nq), round_bf16(c->k, nk), round_bf16(c->v, nk);
}

/* Probabilities of query (h, t) over its head's keys: p (n_keys), returns lse. */
static double ref_row(const attn_case *c, int h, int t, double *p) {
    int kvh = h / (c->H / c->KV), nvis = c->len[kvh] + t + 1;
    const float *q = c->q + ((size_t)h * c->n + t) * c->hd;
    double m = -INFINITY, s = 0, scale = 1.0 / sqrt((double)c->hd);
    for (int j = 0; j < nvis; j++) {
        const float *kr = c->k + ((size_t)kvh * c->cap + j) * c->hd;
        double acc = 0;
        for (int d = 0; d < c->hd; d++) acc += (double)q[d] * kr[d];
        p[j] = acc * scale;
        if (p[j] > m) m = p[j];
    }
    for (int j = 0; j < nvis; j++) s += exp(p[j] - m);
    for (int j = 0; j < nvis; j++) p[j] = exp(p[j] - m) / s;
    for (int j = nvis; j < c->len[kvh] + c->n; j++) p[j] = 0;
    return m + log(s);
}

typedef struct {
    hkg_bf16 *q, *k, *v;
    int32_t *off, *len;
    hkg_attn_args a;
} attn_dev;

static void dev_make(const attn_case *c, attn_dev *d) {
    d->q = dput_bf16(c->q, (size_t)c->H * c->n * c->hd);
    d->k = dput_bf16(c->k, (size_t)c->KV * c->cap * c->hd);
    d->v = dput_bf16(c->v, (size_t)c->KV * c->cap * c->hd);
    int32_t off[4];
    for (int h = 0; h < c->KV; h++) off[h] = h * c->cap;
    d->off = dalloc_nan(c->KV * 4), d->len = dalloc_nan(c->KV * 4);
    CU(cudaMemcpy(d->off, off, c->KV * 4, cudaMemcpyHostToDevice));
    CU(cudaMemcpy(d->len, c->len, c->KV * 4, cudaMemcpyHostToDevice));
    hkg_attn_args a = {d->q, d->k, d->v, d->off, d->len, c->n, c->H, c->KV, c->hd,
                       1.0f / sqrtf((float)c->hd)};
    d->a = a;
}

static void dev_free(attn_dev *d) {
    cudaFree(d->q), cudaFree(d->k), cudaFree(d->v), cudaFree(d->off), cudaFree(d->len);
}

/* out (n, H*hd) and lse (H, n) of the reference. */
static void ref_attention(const attn_case *c, float *out, float *lse) {
    double *p = malloc(((size_t)c->cap + 1) * sizeof *p);
    for (int h = 0; h < c->H; h++)
        for (int t = 0; t < c->n; t++) {
            int kvh = h / (c->H / c->KV), nvis = c->len[kvh] + t + 1;
            lse[h * c->n + t] = (float)ref_row(c, h, t, p);
            for (int d = 0; d < c->hd; d++) {
                double acc = 0;
                for (int j = 0; j < nvis; j++)
                    acc += p[j] * c->v[((size_t)kvh * c->cap + j) * c->hd + d];
                out[((size_t)t * c->H + h) * c->hd + d] = (float)acc;
            }
        }
    free(p);
}

static void test_attention(int H, int KV, int hd, int n, int len0, int len1, int decode) {
    attn_case c = {H, KV, hd, n, 0, {len0, len1, len0 / 2, len1 / 3}, 0, 0, 0};
    int mx = 0;
    for (int h = 0; h < KV; h++) mx = c.len[h] > mx ? c.len[h] : mx;
    c.cap = mx + n + 3;
    case_make(&c);
    attn_dev d;
    dev_make(&c, &d);
    size_t no = (size_t)n * H * hd;
    float *ref = malloc(no * 4), *got = malloc(no * 4), *lr = malloc(H * n * 4), *lg = malloc(H * n * 4);
    hkg_bf16 *dout = dalloc_nan(no * 2);
    float *dlse = dalloc_nan(H * n * 4);
    if (decode) {
        float *part = dalloc_nan(hkg_attn_decode_scratch(H, hd) * 4);
        CU(hkg_attn_decode(&d.a, mx + 1, part, dout, dlse, 0));
        CU(cudaDeviceSynchronize());
        cudaFree(part);
    } else {
        CU(hkg_attn_prefill(&d.a, dout, dlse, 0));
    }
    ref_attention(&c, ref, lr);
    dget_bf16(got, dout, no);
    dget_f32(lg, dlse, H * n);
    char name[128];
    snprintf(name, sizeof name, "%s H=%d KV=%d hd=%d n=%d lens=%d,%d", decode ? "decode" : "prefill",
             H, KV, hd, n, len0, len1);
    compare(name, got, ref, no, 2e-3f, 2e-2f);
    strncat(name, " lse", sizeof name - strlen(name) - 1);
    compare(name, lg, lr, H * n, 1e-3f, 1e-4f);

    /* capture: probabilities of chosen rows, column stats over a row range */
    int rows[3] = {0, n / 2, n - 1}, nr = n >= 3 ? 3 : 1;
    if (n < 3) rows[0] = n - 1;
    int nk_max = mx + n, r0 = n / 3, r1 = n;
    int32_t *drows = dalloc_nan(nr * 4);
    CU(cudaMemcpy(drows, rows, nr * 4, cudaMemcpyHostToDevice));
    size_t np = (size_t)H * nr * nk_max, ns = (size_t)H * nk_max;
    float *dp = dalloc_nan(np * 4), *dcm = dalloc_nan(ns * 4), *dcs = dalloc_nan(ns * 4);
    CU(hkg_attn_probs(&d.a, dlse, drows, nr, nk_max, dp, 0));
    CU(hkg_attn_colstats(&d.a, dlse, r0, r1, nk_max, dcm, dcs, 0));
    float *pg = malloc(np * 4), *pr = calloc(np, 4), *cmg = malloc(ns * 4), *csg = malloc(ns * 4);
    float *cmr = calloc(ns, 4), *csr = calloc(ns, 4);
    double *p = malloc(((size_t)c.cap + 1) * sizeof *p);
    for (int h = 0; h < H; h++) {
        int kvh = h / (H / KV), nk = c.len[kvh] + n;
        for (int i = 0; i < nr; i++) {
            ref_row(&c, h, rows[i], p);
            for (int j = 0; j < nk; j++) pr[((size_t)h * nr + i) * nk_max + j] = (float)p[j];
        }
        for (int t = r0; t < r1; t++) {
            ref_row(&c, h, t, p);
            for (int j = 0; j < nk; j++) {
                float *cm = cmr + (size_t)h * nk_max + j;
                if (p[j] > *cm) *cm = (float)p[j];
                csr[(size_t)h * nk_max + j] += (float)p[j];
            }
        }
    }
    dget_f32(pg, dp, np), dget_f32(cmg, dcm, ns), dget_f32(csg, dcs, ns);
    snprintf(name, sizeof name, "probs H=%d hd=%d n=%d", H, hd, n);
    compare(name, pg, pr, np, 1e-4f, 2e-3f);
    snprintf(name, sizeof name, "colmax H=%d hd=%d n=%d", H, hd, n);
    compare(name, cmg, cmr, ns, 1e-4f, 2e-3f);
    snprintf(name, sizeof name, "colsum H=%d hd=%d n=%d", H, hd, n);
    compare(name, csg, csr, ns, 1e-4f, 2e-3f);
    cudaFree(drows), cudaFree(dp), cudaFree(dcm), cudaFree(dcs), cudaFree(dout), cudaFree(dlse);
    dev_free(&d);
    free(pg), free(pr), free(cmg), free(csg), free(cmr), free(csr), free(p);
    free(ref), free(got), free(lr), free(lg), free(c.q), free(c.k), free(c.v);
}

/* With HKG_ATTN_BENCH set: prefill attention time and TFLOP/s (causal:
 * 2 n^2 H hd) for the Llama-3.2-1B head shape, no cache. Not a check. */
static void bench_prefill(int n, int hd) {
    int H = 32, KV = 8;
    size_t nq = (size_t)H * n * hd, nkv = (size_t)KV * n * hd;
    hkg_bf16 *q, *k, *v, *o;
    float *lse;
    int32_t off[8], len[8] = {0}, *doff, *dlen;
    for (int i = 0; i < KV; i++) off[i] = i * n;
    CU(cudaMalloc((void **)&q, nq * 2));
    CU(cudaMalloc((void **)&k, nkv * 2));
    CU(cudaMalloc((void **)&v, nkv * 2));
    CU(cudaMalloc((void **)&o, nq * 2));
    CU(cudaMalloc((void **)&lse, (size_t)H * n * 4));
    CU(cudaMalloc((void **)&doff, 32));
    CU(cudaMalloc((void **)&dlen, 32));
    CU(cudaMemset(q, 0x3c, nq * 2));
    CU(cudaMemset(k, 0x3b, nkv * 2));
    CU(cudaMemset(v, 0x3c, nkv * 2));
    CU(cudaMemcpy(doff, off, 32, cudaMemcpyHostToDevice));
    CU(cudaMemcpy(dlen, len, 32, cudaMemcpyHostToDevice));
    hkg_attn_args a = {q, k, v, doff, dlen, n, H, KV, hd, 1.0f / sqrtf((float)hd)};
    cudaEvent_t e0, e1;
    CU(cudaEventCreate(&e0));
    CU(cudaEventCreate(&e1));
    CU(hkg_attn_prefill(&a, o, lse, 0));
    int reps = 10;
    CU(cudaEventRecord(e0, 0));
    for (int r = 0; r < reps; r++) CU(hkg_attn_prefill(&a, o, lse, 0));
    CU(cudaEventRecord(e1, 0));
    CU(cudaEventSynchronize(e1));
    float ms;
    CU(cudaEventElapsedTime(&ms, e0, e1));
    ms /= reps;
    printf("bench prefill attention H=32 KV=8 hd=%d n=%d: %.3f ms, %.1f TFLOP/s\n", hd, n, ms,
           2.0 * n * n * H * hd / (ms * 1e-3) / 1e12);
    cudaFree(q), cudaFree(k), cudaFree(v), cudaFree(o), cudaFree(lse), cudaFree(doff), cudaFree(dlen);
    cudaEventDestroy(e0), cudaEventDestroy(e1);
}

/* ---------------------------------------------------------------- layouts */

static void test_scatter_gather(void) {
    int n = 6, H = 4, KV = 2, hd = 32, cap = 20, w = (H + 2 * KV) * hd;
    /* keep indexes rows of head 1 that the scatter wrote (11..16): the rest is
     * NaN poison, which no comparison can pass */
    int32_t off[2] = {0, cap}, len[2] = {3, 11}, keep[4] = {11, 13, 14, 16};
    float *qkv = malloc(n * w * 4);
    fill(qkv, n * w, 1.0f);
    round_bf16(qkv, n * w);
    float *dqkv = dput_f32(qkv, n * w);
    hkg_bf16 *dq = dalloc_nan(H * n * hd * 2), *dk = dalloc_nan(KV * cap * hd * 2);
    hkg_bf16 *dv = dalloc_nan(KV * cap * hd * 2), *dg = dalloc_nan(4 * hd * 2);
    int32_t *doff = dalloc_nan(8), *dlen = dalloc_nan(8), *dkeep = dalloc_nan(16);
    CU(cudaMemcpy(doff, off, 8, cudaMemcpyHostToDevice));
    CU(cudaMemcpy(dlen, len, 8, cudaMemcpyHostToDevice));
    CU(cudaMemcpy(dkeep, keep, 16, cudaMemcpyHostToDevice));
    CU(hkg_qkv_scatter(dqkv, n, H, KV, hd, dq, dk, dv, doff, dlen, 0));
    float *q = malloc(H * n * hd * 4), *k = malloc(KV * cap * hd * 4), *qr = malloc(H * n * hd * 4);
    dget_bf16(q, dq, H * n * hd);
    dget_bf16(k, dk, KV * cap * hd);
    for (int h = 0; h < H; h++)
        for (int t = 0; t < n; t++) memcpy(qr + (h * n + t) * hd, qkv + t * w + h * hd, hd * 4);
    compare("qkv_scatter q", q, qr, H * n * hd, 0, 0);
    /* k of kv head 1, token t lands at row cap + 11 + t */
    float *kr = malloc(n * hd * 4);
    for (int t = 0; t < n; t++) memcpy(kr + t * hd, qkv + t * w + (H + 1) * hd, hd * 4);
    compare("qkv_scatter k (head 1)", k + (cap + 11) * hd, kr, n * hd, 0, 0);
    CU(hkg_gather_rows(dk + cap * hd, dkeep, 4, hd, dg, 0));
    float *g = malloc(4 * hd * 4), *gr = malloc(4 * hd * 4);
    dget_bf16(g, dg, 4 * hd);
    for (int i = 0; i < 4; i++) memcpy(gr + i * hd, k + (cap + keep[i]) * hd, hd * 4);
    compare("gather_rows", g, gr, 4 * hd, 0, 0);
    cudaFree(dqkv), cudaFree(dq), cudaFree(dk), cudaFree(dv), cudaFree(dg);
    cudaFree(doff), cudaFree(dlen), cudaFree(dkeep);
    free(qkv), free(q), free(k), free(qr), free(kr), free(g), free(gr);
}

/* hkg_transpose_bf16 (persistent decode's down projections) against the C
 * transpose, exact, on ragged tile edges; the output starts as NaN poison. */
static void test_transpose(int rows, int cols) {
    size_t n = (size_t)rows * cols;
    float *a = malloc(n * 4), *got = malloc(n * 4), *ref = malloc(n * 4);
    fill(a, n, 1.0f);
    round_bf16(a, n);
    hkg_bf16 *da = dput_bf16(a, n), *dt = dalloc_nan(n * 2);
    CU(hkg_transpose_bf16(da, rows, cols, dt, 0));
    dget_bf16(got, dt, n);
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) ref[(size_t)c * rows + r] = a[(size_t)r * cols + c];
    char what[64];
    snprintf(what, sizeof what, "transpose %d x %d", rows, cols);
    compare(what, got, ref, n, 0, 0);
    cudaFree(da), cudaFree(dt);
    free(a), free(got), free(ref);
}

/* ---------------------------------------------------------------- decode products */

/* hkg_gemv against a double reference on the bf16 operands, in each mode and
 * with its input bf16 or normed on the fly; rows and in chosen to hit every
 * lanes-per-row variant and the unrolled loop's remainder. */
static void test_gemv(int rows, int in, int mode, int norm) {
    const int wrows = mode == HKG_GEMV_SWIGLU ? 2 * rows : rows;
    float *W = malloc((size_t)wrows * in * 4), *x = malloc(in * 4), *nw = malloc(in * 4);
    float *xn = malloc(in * 4), *y0 = malloc(rows * 4), *ref = malloc(rows * 4);
    float *got = malloc(rows * 4);
    fill(W, (size_t)wrows * in, 1.0f), fill(x, in, 2.0f), fill(nw, in, 1.0f), fill(y0, rows, 3.0f);
    round_bf16(W, (size_t)wrows * in);
    if (norm) {
        ref_rmsnorm(x, nw, 1, in, 1e-5f, xn);
    } else {
        memcpy(xn, x, in * 4);
    }
    round_bf16(xn, in);
    for (int r = 0; r < rows; r++) {
        double a = 0, b = 0;
        for (int i = 0; i < in; i++) a += (double)W[(size_t)r * in + i] * xn[i];
        if (mode == HKG_GEMV_SWIGLU)
            for (int i = 0; i < in; i++) b += (double)W[(size_t)(r + rows) * in + i] * xn[i];
        ref[r] = mode == HKG_GEMV_STORE ? (float)a : mode == HKG_GEMV_ADD ? y0[r] + (float)a
                 : (float)(a / (1.0 + exp(-a)) * b);
    }
    hkg_bf16 *dW = dput_bf16(W, (size_t)wrows * in), *dxb = dput_bf16(x, in);
    float *dx = dput_f32(x, in), *dnw = dput_f32(nw, in);
    float *dy = mode == HKG_GEMV_ADD ? dput_f32(y0, rows) : dalloc_nan(rows * 4);
    hkg_bf16 *dyb = dalloc_nan(rows * 2);
    CU(hkg_gemv(dW, rows, in, norm ? NULL : dxb, norm ? dx : NULL, norm ? dnw : NULL, 1e-5f,
                (hkg_gemv_mode)mode, dy, dyb, 0));
    if (mode == HKG_GEMV_SWIGLU) dget_bf16(got, dyb, rows);
    else dget_f32(got, dy, rows);
    char name[96];
    snprintf(name, sizeof name, "gemv rows=%d in=%d mode=%d norm=%d", rows, in, mode, norm);
    /* fp32 accumulation of in products of size ~1: atol scales with sqrt(in);
     * the normed input may round differently in one bf16 ulp (2^-8) */
    float atol = 1e-4f * sqrtf((float)in) + (norm ? 4e-3f * sqrtf((float)in) : 0.0f);
    compare(name, got, ref, rows, atol, mode == HKG_GEMV_SWIGLU ? 1e-2f : 1e-3f);
    cudaFree(dW), cudaFree(dxb), cudaFree(dx), cudaFree(dnw), cudaFree(dy), cudaFree(dyb);
    free(W), free(x), free(nw), free(xn), free(y0), free(ref), free(got);
}

/* RoPE + scatter fused, against the two unfused kernels (bit-exact); n >= 256
 * takes the one-block-per-token path, hd 80 a pair count that is no power of
 * two. */
static void test_rope_scatter(int n, int hd) {
    int H = 4, KV = 2, cap = n + 8, w = (H + 2 * KV) * hd, half = hd / 2;
    int32_t off[2] = {0, cap}, len[2] = {2, 5};
    float *qkv = malloc(n * w * 4), *inv = malloc(half * 4);
    fill(qkv, n * w, 1.0f);
    for (int i = 0; i < half; i++) inv[i] = 1.0f / powf(10000.0f, (float)(2 * i) / hd);
    float *dqkv = dput_f32(qkv, n * w), *dqkv2 = dput_f32(qkv, n * w), *dinv = dput_f32(inv, half);
    int32_t *doff = dalloc_nan(8), *dlen = dalloc_nan(8);
    CU(cudaMemcpy(doff, off, 8, cudaMemcpyHostToDevice));
    CU(cudaMemcpy(dlen, len, 8, cudaMemcpyHostToDevice));
    size_t nq = (size_t)H * n * hd, nc = (size_t)KV * cap * hd;
    hkg_bf16 *q1 = dalloc_nan(nq * 2), *k1 = dalloc_nan(nc * 2), *v1 = dalloc_nan(nc * 2);
    hkg_bf16 *q2 = dalloc_nan(nq * 2), *k2 = dalloc_nan(nc * 2), *v2 = dalloc_nan(nc * 2);
    CU(hkg_rope(dqkv, n, H + KV, w, hd, 700, NULL, dinv, 0));
    CU(hkg_qkv_scatter(dqkv, n, H, KV, hd, q1, k1, v1, doff, dlen, 0));
    CU(hkg_rope_scatter(dqkv2, n, H, KV, hd, 700, NULL, dinv, q2, k2, v2, doff, dlen, 0));
    size_t nmax = nq > nc ? nq : nc;
    float *a = malloc(nmax * 4), *b = malloc(nmax * 4);
    dget_bf16(a, q1, nq), dget_bf16(b, q2, nq);
    compare("rope_scatter q", b, a, nq, 0, 0);
    for (int h = 0; h < KV; h++) { /* only the appended rows were written */
        size_t r0 = (size_t)(off[h] + len[h]) * hd;
        dget_bf16(a, k1, nc), dget_bf16(b, k2, nc);
        compare("rope_scatter k", b + r0, a + r0, (size_t)n * hd, 0, 0);
        dget_bf16(a, v1, nc), dget_bf16(b, v2, nc);
        compare("rope_scatter v", b + r0, a + r0, (size_t)n * hd, 0, 0);
    }
    cudaFree(dqkv), cudaFree(dqkv2), cudaFree(dinv), cudaFree(doff), cudaFree(dlen);
    cudaFree(q1), cudaFree(k1), cudaFree(v1), cudaFree(q2), cudaFree(k2), cudaFree(v2);
    free(qkv), free(inv), free(a), free(b);
}

int main(void) {
    skip_without_gpu();
    test_rmsnorm(4, 576, 0);
    test_rmsnorm(3, 2048, 1);
    test_rmsnorm(2, 4096, 1); /* the widest row of the vector kernel */
    test_rmsnorm(2, 1030, 1); /* d % 4 != 0: the scalar kernel */
    test_head_rmsnorm();
    test_rope();
    test_swiglu_bias_embed();
    test_argmax();
    test_scatter_gather();
    test_transpose(576, 1536);
    test_transpose(45, 70);
    test_rope_scatter(3, 64);
    test_rope_scatter(300, 64);
    test_rope_scatter(260, 80);
    test_gemv(2048, 2048, HKG_GEMV_STORE, 1);   /* 1B q/k/v product, norm fused */
    test_gemv(2048, 8192, HKG_GEMV_ADD, 0);     /* 1B down product into the residual */
    test_gemv(1536, 576, HKG_GEMV_SWIGLU, 1);   /* SmolLM2 gate/up, 16 lanes per row */
    test_gemv(77, 200, HKG_GEMV_STORE, 0);      /* 8 lanes per row, ragged */
    test_gemv(3000, 1032, HKG_GEMV_ADD, 1);     /* unrolled loop remainder */
    test_attention(8, 2, 64, 70, 0, 0, 0);    /* plain causal prefill */
    test_attention(8, 2, 64, 45, 37, 100, 0); /* chunk after a cache, uneven heads */
    test_attention(4, 4, 128, 33, 5, 64, 0);  /* MHA, hd 128 */
    test_attention(9, 3, 64, 17, 20, 3, 0);   /* SmolLM2 head shape */
    test_attention(8, 2, 64, 200, 37, 100, 0);/* several query and key tiles */
    test_attention(4, 2, 128, 130, 0, 70, 0); /* hd 128, tiles off the diagonal */
    test_attention(4, 2, 16, 40, 3, 9, 0);    /* hd 16 (tiny checkpoints), padded */
    test_attention(2, 1, 256, 70, 33, 0, 0);  /* hd 256, narrow key tiles */
    test_attention(8, 2, 64, 1100, 37, 300, 0); /* long chunk: the wgmma kernel on Hopper (32 rows per warp elsewhere) */
    test_attention(4, 4, 64, 2000, 0, 0, 0);  /* long chunk, MHA, no cache: many diagonal tiles */
    test_attention(8, 2, 64, 1301, 700, 1234, 0); /* long chunk after uneven caches, ragged last tiles */
    test_attention(4, 2, 128, 1100, 37, 300, 0); /* long chunk, hd 128 (the wgmma kernel's two 64-wide halves) */
    test_attention(32, 4, 64, 520, 900, 1500, 0); /* a 520-token chunk after caches: 160 blocks of 128 rows (wgmma) */
    test_attention(2, 2, 128, 1301, 700, 0, 0); /* long chunk, hd 128, MHA after a cache */
    test_attention(4, 1, 32, 1030, 64, 0, 0); /* long chunk, hd 32 */
    test_attention(8, 2, 64, 1, 300, 5000, 1);/* decode, split over keys */
    test_attention(4, 2, 128, 1, 0, 17, 1);   /* decode, first token of a head */
    test_attention(16, 2, 128, 1, 1000, 2000, 1); /* decode, 8 query heads per KV head */
    test_attention(9, 1, 64, 1, 700, 0, 1);   /* decode, 9 heads per KV head: two groups */
    test_attention(9, 3, 64, 1, 8000, 6000, 1); /* decode, SmolLM2 shape at 8K: 128 splits */
    test_attention(4, 4, 16, 1, 7, 300, 1);   /* decode, hd 16 */
    if (getenv("HKG_ATTN_BENCH"))
        bench_prefill(8192, 64), bench_prefill(32768, 64), bench_prefill(8192, 128), bench_prefill(32768, 128);
    return test_summary("test_cuda_kernels");
}
