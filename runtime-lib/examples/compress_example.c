/* Example: load a HubKV profile, get per-head budgets for a ratio, and
 * compress layer 0 of a random KV cache with the CPU reference path (the GPU
 * path takes the same arrays: hubkv_gpu_refine_topk + hubkv_gpu_compact).
 * Usage: hubkv_example PROFILE.h5 [ratio] [n_tokens] */
#include "hubkv.h"

#include <stdio.h>
#include <stdlib.h>

#define CK(call)                                                                      \
    do {                                                                              \
        hubkv_status st_ = (call);                                                    \
        if (st_ != HUBKV_OK) {                                                        \
            fprintf(stderr, "%s:%d: %s failed: %s: %s\n", __FILE__, __LINE__, #call, \
                    hubkv_status_str(st_), err);                                      \
            return 1;                                                                 \
        }                                                                             \
    } while (0)

static float frand(unsigned *s) {
    *s = *s * 1664525u + 1013904223u;
    return (float)(*s >> 8) / 16777216.0f;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s PROFILE.h5 [ratio=0.8] [n_tokens=4096]\n", argv[0]);
        return 2;
    }
    float ratio = argc > 2 ? (float)atof(argv[2]) : 0.8f;
    int64_t n = argc > 3 ? atoll(argv[3]) : 4096;
    char err[512] = "";
    hubkv_profile *p = NULL;
    CK(hubkv_profile_open(argv[1], NULL, &p, err, sizeof err));
    const hubkv_model_desc *m = hubkv_profile_model(p);
    int32_t H = m->n_kv_heads, d = m->head_dim;
    int32_t *budget = calloc((size_t)m->n_layers * H, sizeof *budget);
    if (!budget) return 1;
    if (hubkv_profile_budgets(p, ratio, n, budget) != HUBKV_OK) {
        fprintf(stderr, "budgets: %s\n", hubkv_profile_error(p));
        return 1;
    }
    // Layer 0 on the CPU: random scores -> refine -> per-head top-k -> compact.
    float *s = malloc(sizeof(float) * H * n), *z = malloc(sizeof(float) * H * n);
    uint16_t *k = malloc(2 * (size_t)H * n * d), *v = malloc(2 * (size_t)H * n * d);
    int32_t *pos = malloc(4 * (size_t)H * n), *in_off = malloc(4 * (size_t)(H + 1)), *off = malloc(4 * (size_t)(H + 1));
    if (!s || !z || !k || !v || !pos || !in_off || !off) return 1;
    unsigned seed = 1;
    for (int64_t i = 0; i < H * n; i++) s[i] = frand(&seed), pos[i] = (int32_t)(i % n);
    for (int64_t i = 0; i < (int64_t)H * n * d; i++) k[i] = v[i] = (uint16_t)(frand(&seed) * 65535);
    off[0] = in_off[0] = 0;
    for (int32_t h = 0; h < H; h++) off[h + 1] = off[h] + budget[h], in_off[h + 1] = (int32_t)((h + 1) * n);
    int32_t *idx = malloc(4 * (size_t)off[H] + 4);
    uint16_t *ck = malloc(2 * (size_t)off[H] * d + 2), *cv = malloc(2 * (size_t)off[H] * d + 2);
    int32_t *cpos = malloc(4 * (size_t)off[H] + 4);
    if (!idx || !ck || !cv || !cpos) return 1;
    hubkv_refine_params rp = hubkv_refine_default_params();
    rp.ratio = ratio;
    CK(hubkv_refine_cpu(s, hubkv_profile_beta(p), H, n, &rp, z, err, sizeof err));
    CK(hubkv_topk_cpu(z, H, n, off, hubkv_profile_n_sink(p), hubkv_profile_n_recent(p), idx, err, sizeof err));
    CK(hubkv_compact_cpu(k, v, pos, in_off, H, d, idx, off, ck, cv, cpos, err, sizeof err));
    printf("profile %s (scorer %s): ratio %.2f, N %lld, layer 0 kept %d of %lld rows:", argv[1],
           hubkv_profile_scorer(p), ratio, (long long)n, off[H], (long long)H * n);
    for (int32_t h = 0; h < H; h++) printf(" %d", budget[h]);
    printf("\n");
    free(s), free(z), free(k), free(v), free(pos), free(in_off), free(off), free(idx), free(ck), free(cv), free(cpos);
    free(budget);
    hubkv_profile_free(p);
    return 0;
}
