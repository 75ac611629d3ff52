/* Launchers of the GPU engine's kernels, callable from C (the engine and the
 * kernel tests). Pointers are device memory unless named h_*. Every launcher
 * checks the launch (cudaGetLastError) and returns its cudaError_t. */
#ifndef HKG_KERNELS_H
#define HKG_KERNELS_H

#include <cuda_runtime_api.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef uint16_t hkg_bf16; /* bit pattern of a bfloat16 (same as __nv_bfloat16) */

/* Streaming multiprocessors of the current device, for sizing grids. */
int hkg_sm_count(void);

/* Largest head_dim the attention kernels handle. */
#define HKG_MAX_HEAD_DIM 256

/* ---------------------------------------------------------------- host bf16 */

/* fp32 -> bf16, round to nearest even (NaN kept quiet). */
static inline hkg_bf16 hkg_f2bf(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (hkg_bf16)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (hkg_bf16)(u >> 16);
}
static inline float hkg_bf2f(hkg_bf16 b) {
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* ---------------------------------------------------------------- elementwise */

/* x (n, d) fp32 = emb[ids[t]] (vocab, d) bf16. */
cudaError_t hkg_embed(const hkg_bf16 *emb, const int32_t *ids, int n, int d, float *x,
                      cudaStream_t s);
/* If res != NULL: x += res first (in place). Then out (n, d) bf16 =
 * x * rsqrt(mean(x^2) + eps) * w. */
cudaError_t hkg_rmsnorm(float *x, const float *res, const float *w, int n, int d, float eps,
                        hkg_bf16 *out, cudaStream_t s);
/* In place on the heads of a row: x[t*row_stride + h*hd + i] for h < n_heads:
 * per-head RMSNorm with weight w (hd) (Qwen3 q/k norm). */
cudaError_t hkg_head_rmsnorm(float *x, int n, int n_heads, int row_stride, int hd,
                             const float *w, float eps, cudaStream_t s);
/* x[t*width + i] += b[i]. */
cudaError_t hkg_add_bias(float *x, const float *b, int n, int width, cudaStream_t s);
/* In place rotate_half RoPE on heads laid out as in hkg_head_rmsnorm; token t
 * has position pos0 + t, or *d_pos0 + t when d_pos0 (device) is given, so a
 * captured CUDA graph can replay at new positions; inv_freq (hd/2). */
cudaError_t hkg_rope(float *x, int n, int n_heads, int row_stride, int hd, int pos0,
                     const int32_t *d_pos0, const float *inv_freq, cudaStream_t s);
/* gu (n, 2*ff) = [gate | up] fp32 -> out (n, ff) bf16 = silu(gate) * up. */
cudaError_t hkg_swiglu(const float *gu, int n, int ff, hkg_bf16 *out, cudaStream_t s);
/* The same with gu in bf16; ff even. */
cudaError_t hkg_swiglu_bf16(const hkg_bf16 *gu, int n, int ff, hkg_bf16 *out,
                            cudaStream_t s);
/* out[r] = index of the max of x[r*cols ..] (first on ties). */
cudaError_t hkg_argmax(const float *x, int rows, int cols, int32_t *out, cudaStream_t s);
/* Split qkv (n, (H + 2*KV)*hd) fp32 into q (H, n, hd) bf16 and append k, v to
 * the cache: head h's new rows go to row off[h] + len[h] + t of kc, vc
 * ((*, hd) bf16); off, len (KV) device arrays. */
cudaError_t hkg_qkv_scatter(const float *qkv, int n, int H, int KV, int hd, hkg_bf16 *q,
                            hkg_bf16 *kc, hkg_bf16 *vc, const int32_t *off,
                            const int32_t *len, cudaStream_t s);
/* hkg_rope then hkg_qkv_scatter in one pass, for when the roped fp32 qkv is
 * not wanted: qkv itself is left unchanged. */
cudaError_t hkg_rope_scatter(const float *qkv, int n, int H, int KV, int hd, int pos0,
                             const int32_t *d_pos0, const float *inv_freq, hkg_bf16 *q,
                             hkg_bf16 *kc, hkg_bf16 *vc, const int32_t *off,
                             const int32_t *len, cudaStream_t s);
/* dst[i] = src[keep[i]*hd ..] rows, for i < n_keep (rows of hd bf16). */
cudaError_t hkg_gather_rows(const hkg_bf16 *src, const int32_t *keep, int n_keep, int hd,
                            hkg_bf16 *dst, cudaStream_t s);

/* ---------------------------------------------------------------- decode products */

/* Largest input width of hkg_gemv (its input is staged in shared memory). */
#define HKG_GEMV_MAX_IN 16384
typedef enum { HKG_GEMV_STORE, HKG_GEMV_ADD, HKG_GEMV_SWIGLU } hkg_gemv_mode;
/* Whether hkg_gemv takes inputs of width in (a multiple of 8, <= the max). */
int hkg_gemv_ok(int in);
/* One token through W (rows, in) bf16 row-major. The input is xb (in) bf16,
 * or when xb is NULL the fp32 x (in) normed on the fly exactly as hkg_rmsnorm
 * does with norm_w and eps. STORE: y (rows) = W.xn; ADD: y += W.xn; SWIGLU:
 * W has 2*rows rows (gate then up) and yb (rows) bf16 = silu(gate.xn) * up.xn,
 * as hkg_swiglu. fp32 accumulation. */
cudaError_t hkg_gemv(const hkg_bf16 *W, int rows, int in, const hkg_bf16 *xb, const float *x,
                     const float *norm_w, float eps, hkg_gemv_mode mode, float *y,
                     hkg_bf16 *yb, cudaStream_t s);

/* ---------------------------------------------------------------- attention */

/* Geometry shared by the attention kernels. The keys of query head h are the
 * rows [off[kvh], off[kvh] + len[kvh] + n) of K/V with kvh = h / (H/KV):
 * len[kvh] old cache entries followed by the n new tokens (already appended).
 * New token t sees keys j < len[kvh] + t + 1. */
typedef struct {
    const hkg_bf16 *q;   /* (H, n, hd) */
    const hkg_bf16 *k;   /* (*, hd) flattened cache of one layer */
    const hkg_bf16 *v;   /* (*, hd) */
    const int32_t *off;  /* (KV) */
    const int32_t *len;  /* (KV) entries before this call */
    int n, H, KV, hd;
    float scale;         /* 1/sqrt(hd) */
} hkg_attn_args;

/* out (n, H*hd) bf16, lse (H, n) fp32: log-sum-exp of each row's scaled scores. */
cudaError_t hkg_attn_prefill(const hkg_attn_args *a, hkg_bf16 *out, float *lse,
                             cudaStream_t s);
/* The same on Hopper's warpgroup MMA, head_dim 64 or 128; cudaErrorNotSupported
 * for other shapes or where its sm_90a code does not run. */
cudaError_t hkg_attn_prefill_wg(const hkg_attn_args *a, hkg_bf16 *out, float *lse,
                                cudaStream_t s);
/* n == 1, split over keys. part: scratch of hkg_attn_decode_scratch floats. */
size_t hkg_attn_decode_scratch(int H, int hd);
cudaError_t hkg_attn_decode(const hkg_attn_args *a, int max_keys, float *part, hkg_bf16 *out,
                            float *lse, cudaStream_t s);
/* probs (H, n_rows, nk_max): p(row, j) = exp(score - lse), 0 where masked or
 * j beyond the head's keys. rows (n_rows) device indices into this call. */
cudaError_t hkg_attn_probs(const hkg_attn_args *a, const float *lse, const int32_t *rows,
                           int n_rows, int nk_max, float *probs, cudaStream_t s);
/* colmax, colsum (H, nk_max) over rows [r0, r1), as in hkm_gpu_layer_stats. */
cudaError_t hkg_attn_colstats(const hkg_attn_args *a, const float *lse, int r0, int r1,
                              int nk_max, float *colmax, float *colsum, cudaStream_t s);
/* The same for keys [0, nk_out) only, rows of stride ld; colmax or colsum may
 * be NULL (skipped); acc != 0 maxes / adds into them instead of storing. */
cudaError_t hkg_attn_colstats_ex(const hkg_attn_args *a, const float *lse, int r0, int r1,
                                 int nk_out, int ld, int acc, float *colmax, float *colsum,
                                 cudaStream_t s);

/* ---------------------------------------------------------------- persistent decode */

/* One layer's weights as the persistent decode kernel reads them. */
typedef struct {
    const hkg_bf16 *wqkv, *wo, *wgu;     /* as in the engine's layer */
    const hkg_bf16 *wdownT;              /* (ff, d): the engine's wdown transposed */
    const float *attn_norm, *ffn_norm;
    const float *bqkv, *q_norm, *k_norm; /* or NULL */
} hkg_pd_layer;

/* One decode token (batch 1) through every layer and the lm_head in one
 * cooperative launch (k_decode_persist.cu). Same cache layout and lengths as
 * the attention kernels: layer l's K of KV head h starts at row off[h] of
 * kv_base + l*kv_lstride, its V kv_vofs elements after its K; the new K/V go
 * to row off[h] + len[l*KV + h], and the kernel advances every len by one
 * (no copy from the host between tokens). */
typedef struct {
    const hkg_pd_layer *layers;       /* device array (n_layers) */
    int n_layers, d, ff, H, KV, hd, vocab;
    float eps;
    const hkg_bf16 *tok_emb, *lm_head; /* (vocab, d) */
    const float *out_norm, *inv_freq;  /* (d), (hd/2) */
    int32_t id, pos;                   /* the token (unless id_dev) and its position */
    const int32_t *id_dev;             /* (1) or NULL: the token on the device (greedy) */
    const int32_t *off;                /* (KV) */
    int32_t *len;                      /* (n_layers, KV), advanced by one */
    hkg_bf16 *kv_base;
    size_t kv_lstride, kv_vofs;        /* elements */
    int prefetch;                      /* 1: lm_head into L2 during the last layer */
    void *scratch;                     /* hkg_pd_scratch_bytes, 256-byte aligned,
                                        * zeroed once; launches leave it so */
    float *logits;                     /* (vocab) */
    int32_t *argmax;                   /* (1) or NULL: the logits' argmax (ties: lowest) */
    /* test knobs (0: off): read every weight from global memory; stage at
     * most this many keys per block (the rest read from global memory);
     * regions the producer warp keeps in flight (0: the default, < 0: no
     * limit) */
    int no_stage, kv_keys_max, window;
} hkg_pd_args;
/* Whether the shape and the device allow the kernel (grp <= 8, head_dim and
 * widths multiples of 8, cooperative launch). */
int hkg_pd_supported(const hkg_pd_args *a);
size_t hkg_pd_scratch_bytes(const hkg_pd_args *a);
cudaError_t hkg_decode_persistent(const hkg_pd_args *a, cudaStream_t s);
/* dst (cols, rows) = src (rows, cols) transposed, bf16 (hkg_pd_layer.wdownT). */
cudaError_t hkg_transpose_bf16(const hkg_bf16 *src, int rows, int cols, hkg_bf16 *dst,
                               cudaStream_t s);

#ifdef __cplusplus
}
#endif
#endif /* HKG_KERNELS_H */
