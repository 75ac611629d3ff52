/* Profile v1: write + read round trip (values from formulas that
 * tests/scripts/check_profile_h5py.py recomputes), budgets from a profile,
 * and bad profiles (truncated, newer version, wrong shape, NaN in curves,
 * fingerprint mismatch, missing dataset) each with its status and message.
 * argv[1]: where to leave the round-trip profile for the h5py check. */
#include "hubkv.h"
#include "test_util.h"

#include <hdf5.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { L = 4, H = 2, G = 11, R = HUBKV_N_RATIOS };
static float grid[G], loss[L * H * G], keep[R * L * H], sel[L * H], beta[L * H], uni[R * L * H], gate_w[6];

/* The formulas (mirrored in check_profile_h5py.py). */
static hubkv_profile_data make_data(void) {
    for (int g = 0; g < G; g++) grid[g] = (float)g / (G - 1);
    for (int l = 0; l < L; l++)
        for (int h = 0; h < H; h++) {
            for (int g = 0; g < G; g++)
                loss[(l * H + h) * G + g] = (1.0f + l + 0.5f * h) * (1.0f - grid[g]) * (1.0f - grid[g]);
            sel[l * H + h] = l + 0.25f * h;
            beta[l * H + h] = 0.8f + 0.05f * (l * H + h);
            for (int r = 0; r < R; r++) {
                float u = 1.0f - (r + 1) / 100.0f, k = u + 0.01f * (l - h);
                uni[(r * L + l) * H + h] = u;
                keep[(r * L + l) * H + h] = k < 0 ? 0 : k > 1 ? 1 : k;
            }
        }
    for (int i = 0; i < 6; i++) gate_w[i] = 0.5f * i;
    static hubkv_gate_tensor gate = {1, "w", 2, {2, 3, 0, 0}, gate_w};
    hubkv_profile_data d = hubkv_profile_data_default();
    d.model = (hubkv_model_desc){"llama", L, 4, H, 8, 100, 0x0123456789abcdefULL};
    d.producer = "test_runtime_profile";
    d.scorer_name = "expected_attention";
    d.scorer_params = "{\"window\": 64}";
    d.calib_dataset = "wikitext";
    d.calib_n_contexts = 16, d.calib_context_len = 4096, d.n_sink = 4, d.n_recent = 16;
    d.n_grid = G, d.grid = grid, d.loss = loss, d.budget_keep = keep, d.selectivity = sel, d.beta = beta;
    d.baseline_uniform = uni;
    d.n_gate = 1, d.gate = &gate;
    return d;
}

static hubkv_model_desc expect(void) { return (hubkv_model_desc){"llama", L, 4, H, 8, 100, 0x0123456789abcdefULL}; }

static void test_roundtrip(const char *path) {
    hubkv_profile_data d = make_data();
    char err[512] = "";
    hubkv_status st = hubkv_profile_write(path, &d, err, sizeof err);
    CHECK(st == HUBKV_OK, "write: %s %s", hubkv_status_str(st), err);
    hubkv_profile *p = NULL;
    hubkv_model_desc m = expect();
    st = hubkv_profile_open(path, &m, &p, err, sizeof err);
    CHECK(st == HUBKV_OK && p, "open: %s %s", hubkv_status_str(st), err);
    if (!p) return;
    int32_t ng, maj, min;
    const float *gr = hubkv_profile_grid(p, &ng);
    hubkv_profile_version(p, &maj, &min);
    CHECK(maj == HUBKV_PROFILE_VERSION_MAJOR && min == HUBKV_PROFILE_VERSION_MINOR, "version %d.%d", maj, min);
    CHECK(ng == G && !memcmp(gr, grid, sizeof grid), "grid round trip");
    CHECK(!memcmp(hubkv_profile_loss(p), loss, sizeof loss), "loss round trip");
    CHECK(!memcmp(hubkv_profile_budget_keep(p), keep, sizeof keep), "keep round trip");
    CHECK(!memcmp(hubkv_profile_selectivity(p), sel, sizeof sel), "selectivity round trip");
    CHECK(!memcmp(hubkv_profile_beta(p), beta, sizeof beta), "beta round trip");
    CHECK(hubkv_profile_baseline(p, "uniform") && !memcmp(hubkv_profile_baseline(p, "uniform"), uni, sizeof uni),
          "uniform baseline round trip");
    CHECK(hubkv_profile_baseline(p, "pyramidkv") == NULL, "absent optional baseline is NULL");
    const hubkv_gate_tensor *gt = hubkv_profile_gate(p, 1, "w");
    CHECK(gt && gt->ndim == 2 && gt->shape[0] == 2 && gt->shape[1] == 3 && !memcmp(gt->data, gate_w, sizeof gate_w),
          "gate round trip");
    CHECK(!strcmp(hubkv_profile_scorer(p), "expected_attention") &&
              !strcmp(hubkv_profile_scorer_params(p), "{\"window\": 64}"),
          "scorer strings");
    const hubkv_model_desc *pm = hubkv_profile_model(p);
    CHECK(pm->hash == 0x0123456789abcdefULL && !strcmp(pm->architecture, "llama") && pm->n_layers == L, "model");
    /* Budgets: sum to the target, each head >= sinks + recent, more loss-heavy
     * heads (higher l) get at least as many tokens. */
    int32_t b[L * H];
    st = hubkv_profile_budgets(p, 0.75f, 1000, b);
    CHECK(st == HUBKV_OK, "budgets: %s", hubkv_profile_error(p));
    long sum = 0;
    for (int i = 0; i < L * H; i++) {
        sum += b[i];
        CHECK(b[i] >= 20 && b[i] <= 1000, "head %d budget %d outside [20, 1000]", i, b[i]);
    }
    CHECK(sum == 2000, "budgets sum %ld != 0.25 * 1000 * 8", sum);
    CHECK(b[(L - 1) * H] >= b[0], "steeper curve gets more: %d vs %d", b[(L - 1) * H], b[0]);
    st = hubkv_profile_budgets(p, 0.999f, 1000, b);
    CHECK(st == HUBKV_ERR_RANGE && strstr(hubkv_profile_error(p), "feasible"), "infeasible ratio: %s",
          hubkv_profile_error(p));
    hubkv_profile_free(p);
}

/* ------------------------------------------------------------------------ */
/* Bad profiles: each made from a good one, edited with libhdf5             */

static void copy_prefix(const char *src, const char *dst, long keep_bytes) {
    FILE *a = fopen(src, "rb"), *b = fopen(dst, "wb");
    if (!a || !b) return;
    char buf[4096];
    long done = 0;
    size_t n;
    while (done < keep_bytes && (n = fread(buf, 1, sizeof buf, a)) > 0) {
        if (done + (long)n > keep_bytes) n = (size_t)(keep_bytes - done);
        fwrite(buf, 1, n, b);
        done += (long)n;
    }
    fclose(a), fclose(b);
}

static void expect_open(const char *path, const hubkv_model_desc *m, hubkv_status want, const char *needle1,
                        const char *needle2, const char *what) {
    char err[512] = "";
    hubkv_profile *p = (hubkv_profile *)1;
    hubkv_status st = hubkv_profile_open(path, m, &p, err, sizeof err);
    CHECK(st == want, "%s: got %s, want %s (%s)", what, hubkv_status_str(st), hubkv_status_str(want), err);
    CHECK(p == NULL, "%s: out must be NULL on failure", what);
    CHECK(strstr(err, needle1) && (!needle2 || strstr(err, needle2)), "%s: message \"%s\" lacks \"%s\"/\"%s\"", what,
          err, needle1, needle2 ? needle2 : "");
    printf("%s -> %s: %s\n", what, hubkv_status_str(st), err);
}

static hid_t reopen_rw(const char *good, const char *path) {
    copy_prefix(good, path, 1L << 30);
    return H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
}

static void test_bad(const char *good, const char *tmpdir) {
    char path[1100];
    hubkv_model_desc m = expect();
    FILE *f = fopen(good, "rb");
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);

    snprintf(path, sizeof path, "%s/rt_truncated.h5", tmpdir);
    copy_prefix(good, path, size / 2);
    expect_open(path, &m, HUBKV_ERR_FORMAT, "truncated", NULL, "truncated file");

    snprintf(path, sizeof path, "%s/rt_missing.h5", tmpdir);
    expect_open(path, &m, HUBKV_ERR_IO, "cannot open", NULL, "missing file");

    snprintf(path, sizeof path, "%s/rt_version.h5", tmpdir);
    hid_t h = reopen_rw(good, path);
    int32_t two = 2;
    hid_t a = H5Aopen(h, "format_version_major", H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_INT32, &two);
    H5Aclose(a), H5Fclose(h);
    expect_open(path, &m, HUBKV_ERR_VERSION, "2.0", "1.x", "newer major version");

    snprintf(path, sizeof path, "%s/rt_shape.h5", tmpdir);
    h = reopen_rw(good, path);
    H5Ldelete(h, "/heads/beta", H5P_DEFAULT);
    hsize_t dims[2] = {L, H + 1};
    hid_t sp = H5Screate_simple(2, dims, NULL);
    hid_t ds = H5Dcreate2(h, "/heads/beta", H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dclose(ds), H5Sclose(sp), H5Fclose(h);
    expect_open(path, &m, HUBKV_ERR_FORMAT, "/heads/beta", "(4, 3)", "wrong shape");

    snprintf(path, sizeof path, "%s/rt_nan.h5", tmpdir);
    h = reopen_rw(good, path);
    float bad[L * H * G];
    memcpy(bad, loss, sizeof bad);
    bad[(2 * H + 1) * G + 7] = NAN;
    ds = H5Dopen2(h, "/curves/loss", H5P_DEFAULT);
    H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, bad);
    H5Dclose(ds), H5Fclose(h);
    expect_open(path, &m, HUBKV_ERR_RANGE, "/curves/loss[2,1,7]", "NaN", "NaN in curves");

    snprintf(path, sizeof path, "%s/rt_nodata.h5", tmpdir);
    h = reopen_rw(good, path);
    H5Ldelete(h, "/budgets/keep", H5P_DEFAULT);
    H5Fclose(h);
    expect_open(path, &m, HUBKV_ERR_FORMAT, "missing dataset /budgets/keep", NULL, "missing dataset");

    /* A variable-length string attribute (HDF5's global heap, which libhdf5
     * reads unvalidated and fuzzing crashed) is refused by name. */
    snprintf(path, sizeof path, "%s/rt_vlen.h5", tmpdir);
    h = reopen_rw(good, path);
    H5Adelete(h, "producer");
    hid_t vt = H5Tcopy(H5T_C_S1);
    H5Tset_size(vt, H5T_VARIABLE);
    sp = H5Screate(H5S_SCALAR);
    a = H5Acreate2(h, "producer", vt, sp, H5P_DEFAULT, H5P_DEFAULT);
    const char *who = "h5py";
    H5Awrite(a, vt, &who);
    H5Aclose(a), H5Sclose(sp), H5Tclose(vt), H5Fclose(h);
    expect_open(path, &m, HUBKV_ERR_FORMAT, "\"producer\"", "variable-length", "variable-length string");

    hubkv_model_desc m2 = m;
    m2.n_kv_heads = 8;
    expect_open(good, &m2, HUBKV_ERR_FINGERPRINT, "n_kv_heads", "profile has 2, model has 8", "fingerprint heads");
    m2 = m;
    m2.hash = 42;
    expect_open(good, &m2, HUBKV_ERR_FINGERPRINT, "hash", "0x000000000000002a", "fingerprint hash");
    m2 = m;
    m2.architecture = "qwen2";
    expect_open(good, &m2, HUBKV_ERR_FINGERPRINT, "architecture", "qwen2", "fingerprint architecture");

    /* The writer refuses bad data and leaves nothing behind. */
    hubkv_profile_data d = make_data();
    float b2[L * H];
    memcpy(b2, beta, sizeof b2);
    b2[3] = 1.5f;
    d.beta = b2;
    snprintf(path, sizeof path, "%s/rt_refused.h5", tmpdir);
    remove(path);
    char err[512] = "";
    hubkv_status st = hubkv_profile_write(path, &d, err, sizeof err);
    CHECK(st == HUBKV_ERR_RANGE && strstr(err, "/heads/beta[1,1]"), "writer range check: %s", err);
    CHECK(access(path, F_OK) != 0, "refused profile must not exist");
}

/* --dump-gate FILE LAYER NAME: prints "gate d_model H G r S" as
 * hubkv_profile_gate_weights assembles the layer (or "gate invalid: why"),
 * then the tensor as "shape d0 d1 ..." and one value a line (%.9g), for
 * tests/scripts/check_profile_h5py.py, which writes gate weights with h5py
 * and checks what the library reads. */
static int dump_gate(const char *path, int32_t layer, const char *name) {
    char err[512] = "";
    hubkv_profile *p = NULL;
    if (hubkv_profile_open(path, NULL, &p, err, sizeof err) != HUBKV_OK) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    const hubkv_gate_tensor *t = hubkv_profile_gate(p, layer, name);
    if (!t) {
        fprintf(stderr, "%s: no /gate/layer_%d/%s\n", path, layer, name);
        hubkv_profile_free(p);
        return 1;
    }
    hubkv_gate_weights w;
    if (hubkv_profile_gate_weights(p, layer, &w) == HUBKV_OK)
        printf("gate %d %d %d %d %d\n", w.d_model, w.n_kv_heads, w.n_group, w.rank, w.n_sink);
    else
        printf("gate invalid: %s\n", hubkv_profile_error(p));
    int64_t count = 1;
    printf("shape");
    for (int i = 0; i < t->ndim; i++) printf(" %lld", (long long)t->shape[i]), count *= t->shape[i];
    printf("\n");
    for (int64_t i = 0; i < count; i++) printf("%.9g\n", t->data[i]);
    hubkv_profile_free(p);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 5 && !strcmp(argv[1], "--dump-gate")) return dump_gate(argv[2], atoi(argv[3]), argv[4]);
    const char *path = argc > 1 ? argv[1] : "runtime_roundtrip.h5";
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0; else snprintf(dir, sizeof dir, ".");
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    test_roundtrip(path);
    test_bad(path, dir);
    return test_summary("test_runtime_profile");
}
