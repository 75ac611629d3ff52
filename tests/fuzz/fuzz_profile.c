/* Fuzz entry for the HDF5 calibration profile reader (runtime-lib
 * hubkv_profile_open): the input is written to a scratch .h5 file, opened,
 * and every accessor is used. Built with -DFZ_PROFILE_SEED_MAIN it is instead
 * the seed writer: a small valid profile from hubkv_profile_write, so the
 * fuzzer starts from the real on-disk format without Python. */
#include "hubkv.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { L = 2, H = 2, G = 4, R = 99 };

#ifdef FZ_PROFILE_SEED_MAIN
int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: make_profile_seed OUT.h5\n");
        return 2;
    }
    static float grid[G], loss[L * H * G], keep[R * L * H], sel[L * H], beta[L * H], gate_w[6];
    for (int g = 0; g < G; g++) grid[g] = (float)g / (G - 1);
    for (int i = 0; i < L * H * G; i++) loss[i] = 1.0f - grid[i % G];
    for (int i = 0; i < R * L * H; i++) keep[i] = 1.0f - (float)(i / (L * H) + 1) / 100.0f;
    for (int i = 0; i < L * H; i++) sel[i] = (float)i, beta[i] = 0.9f;
    for (int i = 0; i < 6; i++) gate_w[i] = 0.5f * (float)i;
    static hubkv_gate_tensor gate = {1, "w", 2, {2, 3, 0, 0}, gate_w};
    hubkv_profile_data d = hubkv_profile_data_default();
    d.model = (hubkv_model_desc){"llama", L, 4, H, 8, 100, 0x0123456789abcdefULL};
    d.producer = "make_profile_seed";
    d.scorer_name = "expected_attention";
    d.scorer_params = "{}";
    d.calib_dataset = "seed";
    d.calib_n_contexts = 1, d.calib_context_len = 64, d.n_sink = 4, d.n_recent = 8;
    d.n_grid = G, d.grid = grid, d.loss = loss, d.budget_keep = keep, d.selectivity = sel, d.beta = beta;
    d.baseline_uniform = keep;
    d.n_gate = 1, d.gate = &gate;
    char err[512] = "";
    hubkv_status st = hubkv_profile_write(argv[1], &d, err, sizeof err);
    if (st != HUBKV_OK) fprintf(stderr, "make_profile_seed: %s\n", err);
    return st == HUBKV_OK ? 0 : 1;
}
#else
int fz_profile(const uint8_t *data, size_t size);

int fz_profile(const uint8_t *data, size_t size) {
    static char path[256];
    if (!path[0]) snprintf(path, sizeof path, "%s/hubkv-fuzz-profile-%d.h5",
                           access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size) abort();
    fclose(f);
    char err[512] = "";
    hubkv_profile *p = NULL;
    hubkv_status st = hubkv_profile_open(path, NULL, &p, err, sizeof err);
    if (st != HUBKV_OK && (p || !err[0])) {
        fprintf(stderr, "fuzz invariant violated: profile open failed without a message or left *out set\n");
        abort();
    }
    if (p) {
        const hubkv_model_desc *m = hubkv_profile_model(p);
        int32_t ng = 0, maj, min;
        const float *grid = hubkv_profile_grid(p, &ng);
        hubkv_profile_version(p, &maj, &min);
        volatile float s = 0;
        size_t lh = m ? (size_t)m->n_layers * (size_t)m->n_kv_heads : 0;
        const float *loss = hubkv_profile_loss(p), *keep = hubkv_profile_budget_keep(p);
        for (int32_t g = 0; grid && g < ng; g++) s += grid[g];
        for (size_t i = 0; loss && i < lh * (size_t)ng; i++) s += loss[i];
        for (size_t i = 0; keep && i < 99 * lh; i++) s += keep[i];
        (void)hubkv_profile_scorer(p), (void)hubkv_profile_baseline(p, "uniform");
        (void)s;
        for (int32_t l = 0; m && l < m->n_layers && l < 64; l++) (void)hubkv_profile_gate(p, l, "w");
        hubkv_profile_free(p);
    }
    unlink(path);
    return 0;
}
#endif
