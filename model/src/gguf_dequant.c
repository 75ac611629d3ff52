/* Dequantisation of ggml block types to fp32, bit-identical to gguf-py's
 * numpy code (gguf/quants.py): each element is computed with the same float32
 * operations in the same order. Compiled with -ffp-contract=off so that
 * d * q + m stays two roundings, as in numpy. */
#include "gguf_dequant.h"

#include <string.h>

#define QK_K 256

/* ---------------------------------------------------------------- type table */

/* Block sizes from ggml (gguf-py GGML_QUANT_SIZES); ids absent here are unknown. */
static const hkm_ggml_type TYPES[] = {
    [0] = {"F32", 1, 4, 1},        [1] = {"F16", 1, 2, 1},
    [2] = {"Q4_0", 32, 18, 1},     [3] = {"Q4_1", 32, 20, 1},
    [6] = {"Q5_0", 32, 22, 1},     [7] = {"Q5_1", 32, 24, 1},
    [8] = {"Q8_0", 32, 34, 1},     [9] = {"Q8_1", 32, 40, 0},
    [10] = {"Q2_K", 256, 84, 1},   [11] = {"Q3_K", 256, 110, 1},
    [12] = {"Q4_K", 256, 144, 1},  [13] = {"Q5_K", 256, 176, 1},
    [14] = {"Q6_K", 256, 210, 1},  [15] = {"Q8_K", 256, 292, 0},
    [16] = {"IQ2_XXS", 256, 66, 0}, [17] = {"IQ2_XS", 256, 74, 0},
    [18] = {"IQ3_XXS", 256, 98, 0}, [19] = {"IQ1_S", 256, 50, 0},
    [20] = {"IQ4_NL", 32, 18, 0},  [21] = {"IQ3_S", 256, 110, 0},
    [22] = {"IQ2_S", 256, 82, 0},  [23] = {"IQ4_XS", 256, 136, 0},
    [24] = {"I8", 1, 1, 0},        [25] = {"I16", 1, 2, 0},
    [26] = {"I32", 1, 4, 0},       [27] = {"I64", 1, 8, 0},
    [28] = {"F64", 1, 8, 0},       [29] = {"IQ1_M", 256, 56, 0},
    [30] = {"BF16", 1, 2, 1},      [34] = {"TQ1_0", 256, 54, 0},
    [35] = {"TQ2_0", 256, 66, 0},  [39] = {"MXFP4", 32, 17, 0},
};

const hkm_ggml_type *hkm_ggml_type_of(uint32_t type) {
    if (type >= sizeof TYPES / sizeof TYPES[0] || !TYPES[type].name) return NULL;
    return &TYPES[type];
}

const char *hkm_ggml_dequant_list(void) {
    return "F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K";
}

/* ---------------------------------------------------------------- scalars */

float hkm_fp16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13); /* inf / NaN */
    } else if (exp == 0) {
        float f = (float)man * 0x1p-24f; /* subnormal: exact in fp32 */
        memcpy(&bits, &f, 4);
        bits |= sign;
    } else {
        bits = sign | ((exp + 112u) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline float rdh(const uint8_t *p) { return hkm_fp16_to_f32(rd16(p)); }

/* ---------------------------------------------------------------- 32-element blocks */

static void dq_f32(const uint8_t *b, float *y) { memcpy(y, b, 4); }
static void dq_f16(const uint8_t *b, float *y) { y[0] = rdh(b); }

static void dq_bf16(const uint8_t *b, float *y) {
    uint32_t bits = (uint32_t)rd16(b) << 16;
    memcpy(y, &bits, 4);
}

/* Element j < 16 is the low nibble of qs[j], j >= 16 the high nibble of qs[j-16]. */
static inline int nib(const uint8_t *qs, int j) { return j < 16 ? qs[j] & 0xF : qs[j - 16] >> 4; }

static void dq_q4_0(const uint8_t *b, float *y) { /* d(2) qs(16) */
    float d = rdh(b);
    for (int j = 0; j < 32; j++) y[j] = d * (float)(nib(b + 2, j) - 8);
}

static void dq_q4_1(const uint8_t *b, float *y) { /* d(2) m(2) qs(16) */
    float d = rdh(b), m = rdh(b + 2);
    for (int j = 0; j < 32; j++) y[j] = d * (float)nib(b + 4, j) + m;
}

static inline uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void dq_q5_0(const uint8_t *b, float *y) { /* d(2) qh(4) qs(16) */
    float d = rdh(b);
    uint32_t qh = rd32(b + 2);
    for (int j = 0; j < 32; j++) {
        int q = nib(b + 6, j) | (int)((qh >> j) & 1u) << 4;
        y[j] = d * (float)(q - 16);
    }
}

static void dq_q5_1(const uint8_t *b, float *y) { /* d(2) m(2) qh(4) qs(16) */
    float d = rdh(b), m = rdh(b + 2);
    uint32_t qh = rd32(b + 4);
    for (int j = 0; j < 32; j++) {
        int q = nib(b + 8, j) | (int)((qh >> j) & 1u) << 4;
        y[j] = d * (float)q + m;
    }
}

static void dq_q8_0(const uint8_t *b, float *y) { /* d(2) qs(32) int8 */
    float d = rdh(b);
    for (int j = 0; j < 32; j++) y[j] = (float)(int8_t)b[2 + j] * d;
}

/* ---------------------------------------------------------------- K-quants (256) */

static void dq_q2_k(const uint8_t *b, float *y) { /* scales(16) qs(64) d(2) dmin(2) */
    const uint8_t *sc = b, *qs = b + 16;
    float d = rdh(b + 80), dmin = rdh(b + 82);
    for (int i = 0; i < QK_K; i++) {
        int h = i / 128, k = (i / 32) % 4, j = i % 32;
        int q = (qs[h * 32 + j] >> (2 * k)) & 3;
        float dl = d * (float)(sc[i / 16] & 0xF), ml = dmin * (float)(sc[i / 16] >> 4);
        y[i] = dl * (float)q - ml;
    }
}

static void dq_q3_k(const uint8_t *b, float *y) { /* hmask(32) qs(64) scales(12) d(2) */
    const uint8_t *hm = b, *qs = b + 32, *s = b + 96;
    float d = rdh(b + 108), dl[16];
    for (int k = 0; k < 16; k++) {
        int lo = k < 8 ? s[k] & 0xF : s[k - 8] >> 4;
        int hi = (s[8 + k % 4] >> (2 * (k / 4))) & 3;
        dl[k] = d * (float)((int8_t)(lo | hi << 4) - 32);
    }
    for (int i = 0; i < QK_K; i++) {
        int h = i / 128, k = (i / 32) % 4, j = i % 32;
        int ql = (qs[h * 32 + j] >> (2 * k)) & 3;
        int qh = ((hm[j] >> (i / 32)) & 1) ^ 1; /* offset applies when the bit is 0 */
        y[i] = dl[i / 16] * (float)(ql - (qh << 2));
    }
}

/* 6-bit scales and mins of Q4_K/Q5_K, packed in 12 bytes (gguf-py get_scale_min). */
static void k_scale_min(const uint8_t *s, int sc[8], int mn[8]) {
    for (int j = 0; j < 4; j++) {
        sc[j] = s[j] & 0x3F;
        mn[j] = s[4 + j] & 0x3F;
        sc[4 + j] = (s[8 + j] & 0x0F) | ((s[j] >> 2) & 0x30);
        mn[4 + j] = (s[8 + j] >> 4) | ((s[4 + j] >> 2) & 0x30);
    }
}

static void dq_q4_k(const uint8_t *b, float *y) { /* d(2) dmin(2) scales(12) qs(128) */
    float d = rdh(b), dmin = rdh(b + 2);
    const uint8_t *qs = b + 16;
    int sc[8], mn[8];
    k_scale_min(b + 4, sc, mn);
    for (int sb = 0; sb < 8; sb++) {
        float ds = d * (float)sc[sb], dm = dmin * (float)mn[sb];
        for (int j = 0; j < 32; j++) {
            int q = (qs[(sb / 2) * 32 + j] >> (4 * (sb % 2))) & 0xF;
            y[sb * 32 + j] = ds * (float)q - dm;
        }
    }
}

static void dq_q5_k(const uint8_t *b, float *y) { /* d dmin scales(12) qh(32) qs(128) */
    float d = rdh(b), dmin = rdh(b + 2);
    const uint8_t *qh = b + 16, *qs = b + 48;
    int sc[8], mn[8];
    k_scale_min(b + 4, sc, mn);
    for (int sb = 0; sb < 8; sb++) {
        float ds = d * (float)sc[sb], dm = dmin * (float)mn[sb];
        for (int j = 0; j < 32; j++) {
            int q = ((qs[(sb / 2) * 32 + j] >> (4 * (sb % 2))) & 0xF) | ((qh[j] >> sb) & 1) << 4;
            y[sb * 32 + j] = ds * (float)q - dm;
        }
    }
}

static void dq_q6_k(const uint8_t *b, float *y) { /* ql(128) qh(64) scales(16) d(2) */
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    float d = rdh(b + 208);
    for (int i = 0; i < QK_K; i++) {
        int h = i / 128, r = i % 128;
        int lo = (ql[h * 64 + r % 64] >> (4 * (r / 64))) & 0xF;
        int hi = (qh[h * 32 + r % 32] >> (2 * (r / 32))) & 3;
        y[i] = (d * (float)sc[i / 16]) * (float)((lo | hi << 4) - 32);
    }
}

/* ---------------------------------------------------------------- driver */

typedef void (*dq_fn)(const uint8_t *b, float *y);

static dq_fn fn_of(uint32_t type) {
    switch (type) {
    case 0: return dq_f32;
    case 1: return dq_f16;
    case 30: return dq_bf16;
    case 2: return dq_q4_0;
    case 3: return dq_q4_1;
    case 6: return dq_q5_0;
    case 7: return dq_q5_1;
    case 8: return dq_q8_0;
    case 10: return dq_q2_k;
    case 11: return dq_q3_k;
    case 12: return dq_q4_k;
    case 13: return dq_q5_k;
    case 14: return dq_q6_k;
    }
    return NULL;
}

int hkm_gguf_dequant(uint32_t type, const uint8_t *src, float *dst, int64_t n_blocks) {
    dq_fn fn = fn_of(type);
    if (!fn) return -1;
    const hkm_ggml_type *t = hkm_ggml_type_of(type);
    const int64_t blck = t->blck, tsize = t->tsize;
    /* Blocks are independent, so the split cannot change any result. */
#pragma omp parallel for schedule(static) if (n_blocks * blck >= (1 << 16))
    for (int64_t i = 0; i < n_blocks; i++) fn(src + i * tsize, dst + i * blck);
    return 0;
}
