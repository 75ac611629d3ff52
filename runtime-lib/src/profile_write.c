/* Profile writer: validates, writes <path>.tmp.<pid> with HDF5, renames it
 * onto <path> so no reader ever sees a partial profile. */
#include "h5util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

hubkv_profile_data hubkv_profile_data_default(void) {
    hubkv_profile_data d;
    memset(&d, 0, sizeof d);
    d.producer = "libhubkv";
    d.producer_version = HUBKV_VERSION_STRING;
    d.scorer_params = "{}";
    d.calib_dataset = "";
    d.n_sink = 4;
    d.n_recent = 64;
    return d;
}

/* ------------------------------------------------------------------------ */
/* Attribute and dataset writers (each returns < 0 on HDF5 failure)          */

static herr_t put_str(hid_t obj, const char *name, const char *val) {
    hid_t t = H5Tcopy(H5T_C_S1), sp = H5Screate(H5S_SCALAR), a = -1;
    herr_t r = -1;
    /* Fixed-length, so readers never touch HDF5's global heap, which libhdf5
     * does not validate (a corrupt variable-length string crashes it). */
    size_t n = strlen(val);
    if (t >= 0 && sp >= 0 && H5Tset_size(t, n ? n : 1) >= 0 && H5Tset_strpad(t, H5T_STR_NULLPAD) >= 0 &&
        H5Tset_cset(t, H5T_CSET_UTF8) >= 0 && (a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT)) >= 0)
        r = H5Awrite(a, t, n ? val : "");
    if (a >= 0) H5Aclose(a);
    if (sp >= 0) H5Sclose(sp);
    if (t >= 0) H5Tclose(t);
    return r;
}

static herr_t put_num(hid_t obj, const char *name, hid_t file_type, hid_t mem_type, const void *val) {
    hid_t sp = H5Screate(H5S_SCALAR), a = -1;
    herr_t r = -1;
    if (sp >= 0 && (a = H5Acreate2(obj, name, file_type, sp, H5P_DEFAULT, H5P_DEFAULT)) >= 0)
        r = H5Awrite(a, mem_type, val);
    if (a >= 0) H5Aclose(a);
    if (sp >= 0) H5Sclose(sp);
    return r;
}

static herr_t put_i32(hid_t obj, const char *name, int32_t v) {
    return put_num(obj, name, H5T_STD_I32LE, H5T_NATIVE_INT32, &v);
}

/* float32 dataset at `name` (intermediate groups created) with units and
 * description attributes. */
static herr_t put_f32(hid_t file, const char *name, int ndim, const int64_t *dims, const float *data,
                      const char *units, const char *desc) {
    hsize_t hd[4];
    for (int k = 0; k < ndim; k++) hd[k] = (hsize_t)dims[k];
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE), sp = H5Screate_simple(ndim, hd, NULL), ds = -1;
    herr_t r = -1;
    if (lcpl >= 0 && sp >= 0 && H5Pset_create_intermediate_group(lcpl, 1) >= 0 &&
        (ds = H5Dcreate2(file, name, H5T_IEEE_F32LE, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT)) >= 0 &&
        H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0 &&
        put_str(ds, "units", units) >= 0)
        r = put_str(ds, "description", desc);
    if (ds >= 0) H5Dclose(ds);
    if (sp >= 0) H5Sclose(sp);
    if (lcpl >= 0) H5Pclose(lcpl);
    return r;
}

/* ------------------------------------------------------------------------ */
/* Root attributes and datasets                                              */

static void iso_now(char *buf, size_t cap) {
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static hubkv_status write_root_attrs(hid_t f, const hubkv_profile_data *d, const char *path, char *err, size_t cap) {
    hubkv_status st = HUBKV_OK;
    char created[32];
    iso_now(created, sizeof created);
    const hubkv_model_desc *m = &d->model;
    H5CK(put_str(f, "format", HUBKV_PROFILE_FORMAT_NAME));
    H5CK(put_i32(f, "format_version_major", HUBKV_PROFILE_VERSION_MAJOR));
    H5CK(put_i32(f, "format_version_minor", HUBKV_PROFILE_VERSION_MINOR));
    H5CK(put_str(f, "producer", d->producer ? d->producer : "libhubkv"));
    H5CK(put_str(f, "producer_version", d->producer_version ? d->producer_version : HUBKV_VERSION_STRING));
    H5CK(put_str(f, "created", created));
    H5CK(put_str(f, "model_architecture", m->architecture));
    H5CK(put_i32(f, "model_n_layers", m->n_layers));
    H5CK(put_i32(f, "model_n_heads", m->n_heads));
    H5CK(put_i32(f, "model_n_kv_heads", m->n_kv_heads));
    H5CK(put_i32(f, "model_head_dim", m->head_dim));
    H5CK(put_i32(f, "model_vocab", m->vocab));
    H5CK(put_num(f, "model_hash", H5T_STD_U64LE, H5T_NATIVE_UINT64, &m->hash));
    H5CK(put_str(f, "scorer_name", d->scorer_name));
    H5CK(put_str(f, "scorer_params", d->scorer_params ? d->scorer_params : "{}"));
    H5CK(put_str(f, "calib_dataset", d->calib_dataset ? d->calib_dataset : ""));
    H5CK(put_i32(f, "calib_n_contexts", d->calib_n_contexts));
    H5CK(put_i32(f, "calib_context_len", d->calib_context_len));
    H5CK(put_i32(f, "calib_n_sink", d->n_sink));
    H5CK(put_i32(f, "calib_n_recent", d->n_recent));
done:
    return st;
}

static hubkv_status write_datasets(hid_t f, const hubkv_profile_data *d, const char *path, char *err, size_t cap) {
    hubkv_status st = HUBKV_OK;
    int64_t L = d->model.n_layers, H = d->model.n_kv_heads;
    int64_t g1[1] = {d->n_grid}, l3[3] = {L, H, d->n_grid}, r1[1] = {HUBKV_N_RATIOS};
    int64_t b3[3] = {HUBKV_N_RATIOS, L, H}, h2[2] = {L, H};
    float ratios[HUBKV_N_RATIOS];
    for (int i = 0; i < HUBKV_N_RATIOS; i++) ratios[i] = (float)(i + 1) / 100.0f;
    H5CK(put_f32(f, HKV_DS_GRID, 1, g1, d->grid, "fraction",
                 "keep fractions (kept tokens / context tokens) at which the loss curves are sampled"));
    H5CK(put_f32(f, HKV_DS_LOSS, 3, l3, d->loss, "loss",
                 "per (layer, kv_head) loss when only that head is compressed to grid[g]; convex, non-increasing in g"));
    H5CK(put_f32(f, HKV_DS_RATIOS, 1, r1, ratios, "fraction",
                 "compression ratios (fraction of tokens removed) 0.01..0.99; row r-1 of the budget tables"));
    H5CK(put_f32(f, HKV_DS_KEEP, 3, b3, d->budget_keep, "fraction",
                 "keep fraction per (ratio, layer, kv_head) from the greedy over the loss curves"));
    H5CK(put_f32(f, HKV_DS_SEL, 2, h2, d->selectivity, "1", "head selectivity (how peaked the head's attention is)"));
    H5CK(put_f32(f, HKV_DS_BETA, 2, h2, d->beta, "1", "HubKV per-head calibration beta in [0.8, 1.2]"));
    if (d->baseline_uniform)
        H5CK(put_f32(f, HKV_DS_BASE_U, 3, b3, d->baseline_uniform, "fraction", "uniform baseline keep fractions"));
    if (d->baseline_pyramidkv)
        H5CK(put_f32(f, HKV_DS_BASE_P, 3, b3, d->baseline_pyramidkv, "fraction", "PyramidKV baseline keep fractions"));
    if (d->baseline_adakv)
        H5CK(put_f32(f, HKV_DS_BASE_A, 3, b3, d->baseline_adakv, "fraction",
                     "AdaKV-style offline baseline keep fractions (hubkv-solve; docs/solver.md)"));
    for (int32_t i = 0; i < d->n_gate; i++) {
        const hubkv_gate_tensor *t = &d->gate[i];
        char nm[160];
        snprintf(nm, sizeof nm, "/gate/layer_%d/%s", t->layer, t->name);
        H5CK(put_f32(f, nm, t->ndim, t->shape, t->data, "1", "sink-attention gate weight"));
    }
done:
    return st;
}

/* fsync of an existing file or directory (O_RDONLY is enough on Linux). */
static int sync_path(const char *p, int flags) {
    int fd = open(p, O_RDONLY | flags);
    if (fd < 0) return -1;
    int r = fsync(fd), e = errno;
    close(fd);
    errno = e;
    return r;
}

/* fsync tmp, rename it onto path, fsync the directory: after a power loss
 * path holds the old or the new profile, never a torn one. */
static hubkv_status commit(const char *tmp, const char *path, char *err, size_t cap) {
    if (sync_path(tmp, 0) != 0)
        return hkv_fail(err, cap, HUBKV_ERR_IO, "%s: fsync of %s failed: %s", path, tmp, strerror(errno));
    if (rename(tmp, path) != 0)
        return hkv_fail(err, cap, HUBKV_ERR_IO, "%s: rename from %s failed: %s", path, tmp, strerror(errno));
    char dir[4096];
    const char *slash = strrchr(path, '/');
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) + 1 : 1, slash ? path : ".");
    if (sync_path(dir, O_DIRECTORY) != 0)
        return hkv_fail(err, cap, HUBKV_ERR_IO, "%s: fsync of directory %s after the rename failed: %s", path,
                        dir, strerror(errno));
    return HUBKV_OK;
}

hubkv_status hubkv_profile_write(const char *path, const hubkv_profile_data *d, char *err, size_t cap) {
    if (!path || !d) return hkv_fail(err, cap, HUBKV_ERR_INVALID_ARG, "profile_write: path and data must be non-NULL");
    hubkv_status st = hkv_validate_data(d, path, err, cap);
    if (st) return st;
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= sizeof tmp)
        return hkv_fail(err, cap, HUBKV_ERR_INVALID_ARG, "profile_write: path too long (%zu bytes)", strlen(path));
    hkv_h5_lock();
    H5E_auto2_t efn;
    void *edata;
    H5Eget_auto2(H5E_DEFAULT, &efn, &edata);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* we report errors ourselves */
    errno = 0;
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) {
        int e = errno;
        st = hkv_fail(err, cap, HUBKV_ERR_IO, "%s: cannot create temporary file %s%s%s", path, tmp, e ? ": " : "",
                      e ? strerror(e) : "");
        goto done;
    }
    HKV_TRY(write_root_attrs(f, d, path, err, cap));
    HKV_TRY(write_datasets(f, d, path, err, cap));
done:
    errno = 0;
    if (f >= 0 && H5Fclose(f) < 0 && st == HUBKV_OK) {
        int e = errno; // closing flushes cached data: a full disk shows here
        st = hkv_fail(err, cap, HUBKV_ERR_IO, "%s: H5Fclose of %s failed%s%s", path, tmp, e ? ": " : "",
                      e ? strerror(e) : "");
    }
    H5Eset_auto2(H5E_DEFAULT, efn, edata);
    hkv_h5_unlock();
    if (st == HUBKV_OK) st = commit(tmp, path, err, cap);
    if (st != HUBKV_OK) remove(tmp);
    return st;
}
