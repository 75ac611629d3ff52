/* RoPE inverse frequencies, one implementation for the CPU and CUDA engines:
 * transformers' fp32 formula, its llama3 scaling, and llama.cpp's per-pair
 * frequency factors (GGUF rope_freqs.weight, how Llama 3.1/3.2 GGUFs store
 * the same llama3 scaling). */
#include "hkm_internal.h"

#include <math.h>

void hkm_rope_inv_freq(const hkm_config *c, float *inv) {
    int half = c->head_dim / 2;
    for (int j = 0; j < half; j++) inv[j] = 1.0f / powf(c->rope_theta, (float)(2 * j) / (float)c->head_dim);
    if (c->rope_type == HKM_ROPE_FREQ_FACTORS) {
        for (int j = 0; j < half; j++) inv[j] /= c->rope_freq_div[j];
        return;
    }
    if (c->rope_type != HKM_ROPE_LLAMA3) return;
    float factor = c->rope_factor, lo = c->rope_low_freq_factor, hi = c->rope_high_freq_factor;
    float old = (float)c->rope_orig_max_pos;
    float low_wl = old / lo, high_wl = old / hi;
    for (int j = 0; j < half; j++) {
        float wl = (float)(2.0 * M_PI) / inv[j];
        float f = wl > low_wl ? inv[j] / factor : inv[j];
        float smooth = (old / wl - lo) / (hi - lo);
        float smoothed = (1.0f - smooth) * f / factor + smooth * f;
        if (!(wl < high_wl) && !(wl > low_wl)) f = smoothed;
        inv[j] = f;
    }
}
