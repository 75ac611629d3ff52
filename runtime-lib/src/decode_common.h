/* Arithmetic shared bit-for-bit by the decode CPU references (decode_cpu.c)
 * and the CUDA kernels (decode.cu): H2O eviction eligibility, the gate's
 * projection / rmsnorm / sink softmax, and the diversity selector's V-space
 * cosine and gain. Explicit fmaf in a fixed order so both sides round alike. */
#ifndef HUBKV_DECODE_COMMON_H
#define HUBKV_DECODE_COMMON_H

#include "ops_common.h"

#define HKV_GATE_MAX_RANK 64 /* gate low-rank dimension r */
#define HKV_GATE_MAX_SINK 64 /* learned sink keys S */
#define HKV_DIV_MAX_DIM 512  /* head_dim of the diversity selector */

/* A row at position p may be evicted at step new_pos: not a sink, not recent. */
HKV_HD int hkv_h2o_evictable(int32_t p, int32_t new_pos, int32_t n_sink, int32_t n_recent) {
    return p >= n_sink && (int64_t)p < (int64_t)new_pos - n_recent;
}

/* out[j] = W[j, :] . x (+ bias[j]); W: (r, D). */
HKV_HD void hkv_gate_proj(const float *W, const float *bias, const float *x, int32_t D, int32_t r, float *out) {
    for (int32_t j = 0; j < r; j++) {
        float acc = 0.0f;
        for (int32_t k = 0; k < D; k++) acc = fmaf(W[(size_t)j * D + k], x[k], acc);
        out[j] = bias ? acc + bias[j] : acc;
    }
}

/* v = v / sqrt(mean(v^2) + eps) * w. */
HKV_HD void hkv_gate_rmsnorm(float *v, const float *w, int32_t r, float eps) {
    float ss = 0.0f;
    for (int32_t j = 0; j < r; j++) ss = fmaf(v[j], v[j], ss);
    float scale = 1.0f / sqrtf(ss / (float)r + eps);
    for (int32_t j = 0; j < r; j++) v[j] = v[j] * scale * w[j];
}

HKV_HD float hkv_dot(const float *a, const float *b, int32_t r) {
    float acc = 0.0f;
    for (int32_t j = 0; j < r; j++) acc = fmaf(a[j], b[j], acc);
    return acc;
}

/* Softmax mass of the token (logit k.q/sqrt(r) + b) against S sinks
 * (logits kbase_s.q/sqrt(r)): 1 / (1 + sum_s exp(m_s - l)). */
HKV_HD float hkv_gate_prob(const float *q, const float *k, const float *kbase, int32_t S, int32_t r, float b) {
    float inv = 1.0f / sqrtf((float)r);
    float l = hkv_dot(k, q, r) * inv + b, sum = 0.0f;
    for (int32_t s = 0; s < S; s++) sum += expf(hkv_dot(kbase + (size_t)s * r, q, r) * inv - l);
    return 1.0f / (1.0f + sum);
}

HKV_HD float hkv_bf16(uint16_t u) {
    uint32_t x = (uint32_t)u << 16;
    float f;
    memcpy(&f, &x, sizeof f);
    return f;
}

/* 1 / |v| of a bf16 row (0 for a zero row, whose cosines are then 0). */
HKV_HD float hkv_div_inv_norm(const uint16_t *v, int32_t d) {
    float ss = 0.0f;
    for (int32_t j = 0; j < d; j++) ss = fmaf(hkv_bf16(v[j]), hkv_bf16(v[j]), ss);
    return ss > 0.0f ? 1.0f / sqrtf(ss) : 0.0f;
}

HKV_HD float hkv_div_cos(const uint16_t *a, const uint16_t *b, float ia, float ib, int32_t d) {
    float acc = 0.0f;
    for (int32_t j = 0; j < d; j++) acc = fmaf(hkv_bf16(a[j]), hkv_bf16(b[j]), acc);
    return acc * ia * ib;
}

HKV_HD float hkv_div_gain(float s, float red, float lambda) { return fmaf(-lambda, red, s); }

#ifdef __cplusplus
extern "C" {
#endif
hubkv_status hkv_check_gate(const hubkv_gate_weights *w, int64_t n, char *err, size_t cap);
hubkv_status hkv_check_diverse(int32_t n_heads, int64_t n, int32_t d, const int32_t *off, float lambda,
                               int32_t n_sink, int32_t n_recent, char *err, size_t cap);
#ifdef __cplusplus
}
#endif

#endif
