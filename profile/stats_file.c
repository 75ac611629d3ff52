/* Stats file: sums over contexts per length bucket, derived means, HDF5 I/O
 * (temp file + rename), and merging of shard files. */
#include "stats_file.h"
#include "h5check.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

const int32_t HKP_BUCKET_EDGES[HKP_N_BUCKETS + 1] = {0, 512, 1024, 2048, 4096, 8192, 16384, 32768, INT32_MAX};

int hkp_stats_bucket(int n) {
    for (int b = 0; b < HKP_N_BUCKETS; b++)
        if (n < HKP_BUCKET_EDGES[b + 1]) return b;
    return HKP_N_BUCKETS - 1;
}

static size_t n_loss(const hkp_stats *s) { return (size_t)s->NB * s->S * s->L * s->KV * s->G; }
static size_t n_orc(const hkp_stats *s) { return (size_t)s->NB * s->L * s->KV * s->G; }
static size_t n_sel(const hkp_stats *s) { return (size_t)s->NB * (s->S + 1) * s->L * s->KV; }

hkm_status hkp_stats_init(hkp_stats *s, int L, int KV, int G, hkm_err *err) {
    memset(s, 0, sizeof *s);
    if (L <= 0 || KV <= 0 || G < 2 || L > 4096 || KV > 4096 || G > 1 << 16)
        return hkm_fail(err, HKM_ERR_ARG, "hkp_stats_init: L=%d KV=%d G=%d: expected positive sizes, G >= 2", L, KV, G);
    s->L = L; s->KV = KV; s->G = G; s->NB = HKP_N_BUCKETS; s->S = HKP_SC_COUNT;
    HKM_ALLOC(s->count, s->NB, err);
    HKM_ALLOC(s->tokens, s->NB, err);
    HKM_ALLOC(s->loss_sum, n_loss(s), err);
    HKM_ALLOC(s->loss_sq, n_loss(s), err);
    HKM_ALLOC(s->orc_sum, n_orc(s), err);
    HKM_ALLOC(s->orc_sq, n_orc(s), err);
    HKM_ALLOC(s->ent_sum, n_sel(s), err);
    HKM_ALLOC(s->top_sum, n_sel(s), err);
    return HKM_OK;
}

void hkp_stats_free(hkp_stats *s) {
    if (!s) return;
    free(s->count); free(s->tokens); free(s->loss_sum); free(s->loss_sq);
    free(s->orc_sum); free(s->orc_sq); free(s->ent_sum); free(s->top_sum);
    memset(s, 0, sizeof *s);
}

void hkp_stats_add(hkp_stats *s, int n_tokens, const double *cur, const double *orc,
                   const double *ent, const double *top) {
    int b = hkp_stats_bucket(n_tokens);
    s->count[b] += 1;
    s->tokens[b] += n_tokens;
    size_t nl = n_loss(s) / s->NB, no = n_orc(s) / s->NB, ns = n_sel(s) / s->NB;
    for (size_t i = 0; i < nl; i++) {
        s->loss_sum[b * nl + i] += cur[i];
        s->loss_sq[b * nl + i] += cur[i] * cur[i];
    }
    for (size_t i = 0; i < no; i++) {
        s->orc_sum[b * no + i] += orc[i];
        s->orc_sq[b * no + i] += orc[i] * orc[i];
    }
    for (size_t i = 0; i < ns; i++) {
        s->ent_sum[b * ns + i] += ent[i];
        s->top_sum[b * ns + i] += top[i];
    }
}

/* ---------------------------------------------------------------- derived */

/* mean and std over all buckets of per-bucket sums x (NB, m) / sq. */
static void mean_std(const hkp_stats *s, const double *x, const double *sq, size_t m, double *mean,
                     double *std) {
    double cnt = 0;
    for (int b = 0; b < s->NB; b++) cnt += s->count[b];
    for (size_t i = 0; i < m; i++) {
        double a = 0, q = 0;
        for (int b = 0; b < s->NB; b++) { a += x[b * m + i]; if (sq) q += sq[b * m + i]; }
        mean[i] = cnt > 0 ? a / cnt : 0;
        if (std) std[i] = cnt > 1 ? sqrt(fmax(0, (q - a * a / cnt) / (cnt - 1))) : 0;
    }
}

static hkm_status write_derived(const hkp_stats *s, hid_t f, const char *h5path, hkm_err *err) {
    size_t ml = n_loss(s) / s->NB, mo = n_orc(s) / s->NB, ms = n_sel(s) / s->NB;
    size_t nb = ml * 2 + mo * 2 + ml + ms * 3;
    double *buf = calloc(nb, sizeof *buf);
    if (!buf) return hkm_fail(err, HKM_ERR_NOMEM, "%s:%d: out of memory", __FILE__, __LINE__);
    double *lm = buf, *ls = lm + ml, *om = ls + ml, *os = om + mo, *gap = os + mo;
    double *em = gap + ml, *tm = em + ms, *beta = tm + ms;
    mean_std(s, s->loss_sum, s->loss_sq, ml, lm, ls);
    mean_std(s, s->orc_sum, s->orc_sq, mo, om, os);
    mean_std(s, s->ent_sum, NULL, ms, em, NULL);
    mean_std(s, s->top_sum, NULL, ms, tm, NULL);
    for (size_t i = 0; i < ml; i++) gap[i] = lm[i] - om[i % mo];
    for (size_t i = 0; i < ms; i++) beta[i] = hkp_beta(em[i], tm[i]);
    hsize_t dl[4] = {(hsize_t)s->S, (hsize_t)s->L, (hsize_t)s->KV, (hsize_t)s->G};
    hsize_t dsel[3] = {(hsize_t)s->S + 1, (hsize_t)s->L, (hsize_t)s->KV};
    hkm_status st = HKM_OK;
    hid_t g = H5Gcreate2(f, "mean", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) st = hkm_fail(err, HKM_ERR_IO, "%s:%d: H5Gcreate2 mean failed (file %s)", __FILE__, __LINE__, h5path);
#define W(name, rank, dims, data) \
    if (st == HKM_OK) st = hkp_h5_write(g, h5path, name, H5T_NATIVE_DOUBLE, rank, dims, data, err)
    W("loss", 4, dl, lm);
    W("loss_std", 4, dl, ls);
    W("oracle_loss", 3, dl + 1, om);
    W("oracle_loss_std", 3, dl + 1, os);
    W("gap", 4, dl, gap);
    W("entropy", 3, dsel, em);
    W("top1", 3, dsel, tm);
    W("beta", 3, dsel, beta);
#undef W
    if (g >= 0) H5Gclose(g);
    free(buf);
    return st;
}

/* ---------------------------------------------------------------- write */

static hkm_status write_attrs(const hkp_stats *s, hid_t f, const char *h5path, hkm_err *err) {
    int32_t version = HKP_STATS_VERSION;
    char names[128] = "";
    for (int i = 0; i <= s->S; i++)
        snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? "," : "", hkp_scorer_name(i));
    HKM_TRY(hkp_h5_attr_write_str(f, h5path, "format", HKP_STATS_FORMAT, err));
    HKM_TRY(hkp_h5_attr_write(f, h5path, "version", H5T_NATIVE_INT32, &version, err));
    HKM_TRY(hkp_h5_attr_write_str(f, h5path, "scorers", names, err));
    HKM_TRY(hkp_h5_attr_write_str(f, h5path, "model", s->model, err));
    HKM_TRY(hkp_h5_attr_write_str(f, h5path, "calib", s->calib, err));
    HKM_TRY(hkp_h5_attr_write_str(f, h5path, "split", s->split, err));
    HKM_TRY(hkp_h5_attr_write(f, h5path, "fingerprint", H5T_NATIVE_UINT64, &s->fingerprint, err));
    HKM_TRY(hkp_h5_attr_write(f, h5path, "calib_hash", H5T_NATIVE_UINT64, &s->calib_hash, err));
    HKM_TRY(hkp_h5_attr_write(f, h5path, "next_context", H5T_NATIVE_INT64, &s->next, err));
    HKM_TRY(hkp_h5_attr_write(f, h5path, "n_contexts", H5T_NATIVE_INT64, &s->n_contexts, err));
    const struct { const char *name; const int32_t *v; } ints[] = {
        {"complete", &s->complete}, {"shard_i", &s->shard_i}, {"shard_n", &s->shard_n},
        {"kvzip", &s->kvzip}, {"sink", &s->sink}, {"recent", &s->recent},
        {"snap_window", &s->snap_window}, {"snap_kernel", &s->snap_kernel},
        {"snap_max", &s->snap_max}, {"oracle_wo", &s->oracle_wo}};
    for (size_t i = 0; i < sizeof ints / sizeof *ints; i++)
        HKM_TRY(hkp_h5_attr_write(f, h5path, ints[i].name, H5T_NATIVE_INT32, ints[i].v, err));
    return HKM_OK;
}

static hkm_status write_sums(const hkp_stats *s, hid_t f, const char *h5path, hkm_err *err) {
    hsize_t nb = (hsize_t)s->NB, ne = nb + 1, G = (hsize_t)s->G;
    hsize_t dl[5] = {nb, (hsize_t)s->S, (hsize_t)s->L, (hsize_t)s->KV, G};
    hsize_t dorc[4] = {nb, (hsize_t)s->L, (hsize_t)s->KV, G};
    hsize_t dsel[4] = {nb, (hsize_t)s->S + 1, (hsize_t)s->L, (hsize_t)s->KV};
    double *grid = malloc(G * sizeof *grid);
    if (!grid) return hkm_fail(err, HKM_ERR_NOMEM, "%s:%d: out of memory", __FILE__, __LINE__);
    for (hsize_t k = 0; k < G; k++) grid[k] = (double)k / (double)(G - 1);
    hkm_status st = hkp_h5_write(f, h5path, "grid", H5T_NATIVE_DOUBLE, 1, &G, grid, err);
    free(grid);
    HKM_TRY(st);
    HKM_TRY(hkp_h5_write(f, h5path, "bucket_edges", H5T_NATIVE_INT32, 1, &ne, HKP_BUCKET_EDGES, err));
    HKM_TRY(hkp_h5_write(f, h5path, "count", H5T_NATIVE_DOUBLE, 1, &nb, s->count, err));
    HKM_TRY(hkp_h5_write(f, h5path, "tokens", H5T_NATIVE_DOUBLE, 1, &nb, s->tokens, err));
    HKM_TRY(hkp_h5_write(f, h5path, "loss_sum", H5T_NATIVE_DOUBLE, 5, dl, s->loss_sum, err));
    HKM_TRY(hkp_h5_write(f, h5path, "loss_sq", H5T_NATIVE_DOUBLE, 5, dl, s->loss_sq, err));
    HKM_TRY(hkp_h5_write(f, h5path, "oracle_loss_sum", H5T_NATIVE_DOUBLE, 4, dorc, s->orc_sum, err));
    HKM_TRY(hkp_h5_write(f, h5path, "oracle_loss_sq", H5T_NATIVE_DOUBLE, 4, dorc, s->orc_sq, err));
    HKM_TRY(hkp_h5_write(f, h5path, "entropy_sum", H5T_NATIVE_DOUBLE, 4, dsel, s->ent_sum, err));
    HKM_TRY(hkp_h5_write(f, h5path, "top1_sum", H5T_NATIVE_DOUBLE, 4, dsel, s->top_sum, err));
    return HKM_OK;
}

hkm_status hkp_stats_write(const hkp_stats *s, const char *path, hkm_err *err) {
    char tmp[4200];
    HKM_TRY(hkm_tmp_name(path, tmp, sizeof tmp, err));
    hkp_h5_quiet();
    errno = 0;
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) return hkp_h5_fail(err, __FILE__, __LINE__, "H5Fcreate", tmp, errno);
    hkm_status st = write_attrs(s, f, tmp, err);
    if (st == HKM_OK) st = write_sums(s, f, tmp, err);
    if (st == HKM_OK) st = write_derived(s, f, tmp, err);
    errno = 0;
    if (H5Fclose(f) < 0 && st == HKM_OK) st = hkp_h5_fail(err, __FILE__, __LINE__, "H5Fclose", tmp, errno);
    if (st == HKM_OK) st = hkm_file_commit(tmp, path, err);
    if (st != HKM_OK) unlink(tmp);
    return st;
}

/* ---------------------------------------------------------------- read */

static hkm_status read_attrs(hkp_stats *s, hid_t f, const char *path, hkm_err *err) {
    char fmt[64];
    int32_t version;
    HKM_TRY(hkp_h5_attr_read_str(f, path, "format", fmt, sizeof fmt, err));
    if (strcmp(fmt, HKP_STATS_FORMAT))
        return hkm_fail(err, HKM_ERR_FORMAT, "%s: attribute format='%s': expected '%s'", path, fmt, HKP_STATS_FORMAT);
    HKM_TRY(hkp_h5_attr_read(f, path, "version", H5T_NATIVE_INT32, &version, err));
    if (version != HKP_STATS_VERSION)
        return hkm_fail(err, HKM_ERR_UNSUPPORTED, "%s: version %d: expected %d", path, version, HKP_STATS_VERSION);
    HKM_TRY(hkp_h5_attr_read_str(f, path, "model", s->model, sizeof s->model, err));
    HKM_TRY(hkp_h5_attr_read_str(f, path, "calib", s->calib, sizeof s->calib, err));
    HKM_TRY(hkp_h5_attr_read_str(f, path, "split", s->split, sizeof s->split, err));
    HKM_TRY(hkp_h5_attr_read(f, path, "fingerprint", H5T_NATIVE_UINT64, &s->fingerprint, err));
    HKM_TRY(hkp_h5_attr_read(f, path, "calib_hash", H5T_NATIVE_UINT64, &s->calib_hash, err));
    HKM_TRY(hkp_h5_attr_read(f, path, "next_context", H5T_NATIVE_INT64, &s->next, err));
    HKM_TRY(hkp_h5_attr_read(f, path, "n_contexts", H5T_NATIVE_INT64, &s->n_contexts, err));
    struct { const char *name; int32_t *v; } ints[] = {
        {"complete", &s->complete}, {"shard_i", &s->shard_i}, {"shard_n", &s->shard_n},
        {"kvzip", &s->kvzip}, {"sink", &s->sink}, {"recent", &s->recent},
        {"snap_window", &s->snap_window}, {"snap_kernel", &s->snap_kernel},
        {"snap_max", &s->snap_max}, {"oracle_wo", &s->oracle_wo}};
    for (size_t i = 0; i < sizeof ints / sizeof *ints; i++)
        HKM_TRY(hkp_h5_attr_read(f, path, ints[i].name, H5T_NATIVE_INT32, ints[i].v, err));
    if (s->next < 0 || s->next > s->n_contexts)
        return hkm_fail(err, HKM_ERR_FORMAT, "%s: next_context=%lld: expected 0..n_contexts=%lld", path,
                        (long long)s->next, (long long)s->n_contexts);
    return HKM_OK;
}

/* Shape from the loss_sum dataset, then every array. */
static hkm_status read_sums(hkp_stats *s, hid_t f, const char *path, hkm_err *err) {
    hsize_t dl[5];
    hid_t ds = H5Lexists(f, "loss_sum", H5P_DEFAULT) > 0 ? H5Dopen2(f, "loss_sum", H5P_DEFAULT) : -1;
    if (ds < 0) return hkm_fail(err, HKM_ERR_MISSING, "%s: dataset 'loss_sum' missing", path);
    hid_t sp = H5Dget_space(ds);
    int rank = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    if (rank == 5) H5Sget_simple_extent_dims(sp, dl, NULL);
    if (sp >= 0) H5Sclose(sp);
    H5Dclose(ds);
    if (rank != 5 || dl[0] != HKP_N_BUCKETS || dl[1] != HKP_SC_COUNT)
        return hkm_fail(err, HKM_ERR_SHAPE, "%s: loss_sum: expected shape (%d, %d, L, KV, G)", path,
                        HKP_N_BUCKETS, HKP_SC_COUNT);
    HKM_TRY(hkp_stats_init(s, (int)dl[2], (int)dl[3], (int)dl[4], err));
    hsize_t nb = (hsize_t)s->NB;
    hsize_t dorc[4] = {nb, dl[2], dl[3], dl[4]};
    hsize_t dsel[4] = {nb, (hsize_t)s->S + 1, dl[2], dl[3]};
    HKM_TRY(hkp_h5_read(f, path, "count", H5T_NATIVE_DOUBLE, 1, &nb, s->count, err));
    HKM_TRY(hkp_h5_read(f, path, "tokens", H5T_NATIVE_DOUBLE, 1, &nb, s->tokens, err));
    HKM_TRY(hkp_h5_read(f, path, "loss_sum", H5T_NATIVE_DOUBLE, 5, dl, s->loss_sum, err));
    HKM_TRY(hkp_h5_read(f, path, "loss_sq", H5T_NATIVE_DOUBLE, 5, dl, s->loss_sq, err));
    HKM_TRY(hkp_h5_read(f, path, "oracle_loss_sum", H5T_NATIVE_DOUBLE, 4, dorc, s->orc_sum, err));
    HKM_TRY(hkp_h5_read(f, path, "oracle_loss_sq", H5T_NATIVE_DOUBLE, 4, dorc, s->orc_sq, err));
    HKM_TRY(hkp_h5_read(f, path, "entropy_sum", H5T_NATIVE_DOUBLE, 4, dsel, s->ent_sum, err));
    HKM_TRY(hkp_h5_read(f, path, "top1_sum", H5T_NATIVE_DOUBLE, 4, dsel, s->top_sum, err));
    return HKM_OK;
}

hkm_status hkp_stats_read(const char *path, hkp_stats *s, hkm_err *err) {
    memset(s, 0, sizeof *s);
    hkp_h5_quiet();
    if (H5Fis_hdf5(path) <= 0)
        return hkm_fail(err, HKM_ERR_IO, "%s: cannot open or not HDF5: expected a hubkv-profile stats file", path);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return hkm_fail(err, HKM_ERR_IO, "%s: H5Fopen failed", path);
    hkp_stats meta = {0};
    hkm_status st = read_attrs(&meta, f, path, err);
    if (st == HKM_OK) st = read_sums(s, f, path, err);
    H5Fclose(f);
    if (st != HKM_OK) { hkp_stats_free(s); return st; }
    double *keep[8] = {s->count, s->tokens, s->loss_sum, s->loss_sq, s->orc_sum, s->orc_sq, s->ent_sum, s->top_sum};
    int L = s->L, KV = s->KV, G = s->G;
    *s = meta;
    s->L = L; s->KV = KV; s->G = G; s->NB = HKP_N_BUCKETS; s->S = HKP_SC_COUNT;
    s->count = keep[0]; s->tokens = keep[1]; s->loss_sum = keep[2]; s->loss_sq = keep[3];
    s->orc_sum = keep[4]; s->orc_sq = keep[5]; s->ent_sum = keep[6]; s->top_sum = keep[7];
    return HKM_OK;
}

/* ---------------------------------------------------------------- merge */

hkm_status hkp_stats_merge(hkp_stats *d, const hkp_stats *s, const char *src_path, hkm_err *err) {
    if (d->L != s->L || d->KV != s->KV || d->G != s->G)
        return hkm_fail(err, HKM_ERR_SHAPE, "%s: L/KV/G = %d/%d/%d: expected %d/%d/%d as the first file",
                        src_path, s->L, s->KV, s->G, d->L, d->KV, d->G);
    if (d->calib_hash != s->calib_hash || strcmp(d->model, s->model) || strcmp(d->split, s->split) ||
        d->kvzip != s->kvzip || d->sink != s->sink || d->recent != s->recent ||
        d->snap_window != s->snap_window || d->snap_kernel != s->snap_kernel ||
        d->snap_max != s->snap_max || d->oracle_wo != s->oracle_wo)
        return hkm_fail(err, HKM_ERR_ARG, "%s: model, calibration set, split or scorer parameters differ "
                        "from the first file's: expected shards of one run", src_path);
    if (!s->complete)
        return hkm_fail(err, HKM_ERR_ARG, "%s: run not complete (%lld of %lld contexts): expected a "
                        "finished shard", src_path, (long long)s->next, (long long)s->n_contexts);
    size_t nl = n_loss(d), no = n_orc(d), ns = n_sel(d);
    for (int b = 0; b < d->NB; b++) { d->count[b] += s->count[b]; d->tokens[b] += s->tokens[b]; }
    for (size_t i = 0; i < nl; i++) { d->loss_sum[i] += s->loss_sum[i]; d->loss_sq[i] += s->loss_sq[i]; }
    for (size_t i = 0; i < no; i++) { d->orc_sum[i] += s->orc_sum[i]; d->orc_sq[i] += s->orc_sq[i]; }
    for (size_t i = 0; i < ns; i++) { d->ent_sum[i] += s->ent_sum[i]; d->top_sum[i] += s->top_sum[i]; }
    d->next += s->next;
    d->n_contexts += s->n_contexts;
    return HKM_OK;
}
