/* Profile output: libhubkv writes and validates the v1 datasets; the AdaKV
 * baseline (not in the v1 writer's struct) is added with HDF5 before the
 * final rename, so readers see the whole file or none of it. */
#include "profile_out.h"

#include "h5check.h"
#include "solve.h"

#include <errno.h>
#include <hdf5.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static herr_t put_str_attr(hid_t obj, const char *name, const char *val) {
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

static hkm_status add_adakv(const char *tmp, int32_t L, int32_t H, const float *adakv, hkm_err *err) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(tmp, H5F_ACC_RDWR, H5P_DEFAULT);
    if (f < 0) return hkm_fail(err, HKM_ERR_IO, "%s: H5Fopen for adding %s failed", tmp, HKS_DS_ADAKV);
    hsize_t dims[3] = {HKS_N_RATIOS, (hsize_t)L, (hsize_t)H};
    hid_t sp = H5Screate_simple(3, dims, NULL), lcpl = H5Pcreate(H5P_LINK_CREATE), ds = -1;
    int ok = sp >= 0 && lcpl >= 0 && H5Pset_create_intermediate_group(lcpl, 1) >= 0 &&
             (ds = H5Dcreate2(f, HKS_DS_ADAKV, H5T_IEEE_F32LE, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT)) >= 0 &&
             H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, adakv) >= 0 &&
             put_str_attr(ds, "units", "fraction") >= 0 &&
             put_str_attr(ds, "description", "AdaKV-style offline baseline keep fractions (hubkv-solve; docs/solver.md)") >= 0;
    if (ds >= 0) H5Dclose(ds);
    if (lcpl >= 0) H5Pclose(lcpl);
    if (sp >= 0) H5Sclose(sp);
    errno = 0; // closing flushes the data: a full disk shows here
    if (H5Fclose(f) < 0) ok = 0;
    int e = errno;
    return ok ? HKM_OK : hkm_fail(err, HKM_ERR_IO, "%s: writing %s failed%s%s", tmp, HKS_DS_ADAKV,
                                  e ? ": " : "", e ? strerror(e) : "");
}

/* The libhubkv writer's status as the engine's: its I/O, memory and format
 * failures keep their kind; bad data from the solver is an argument error. */
static hkm_status from_hubkv(hubkv_status hs) {
    switch (hs) {
    case HUBKV_OK: return HKM_OK;
    case HUBKV_ERR_INVALID_ARG:
    case HUBKV_ERR_RANGE: return HKM_ERR_ARG;
    case HUBKV_ERR_FORMAT:
    case HUBKV_ERR_VERSION:
    case HUBKV_ERR_FINGERPRINT: return HKM_ERR_FORMAT;
    case HUBKV_ERR_NOMEM: return HKM_ERR_NOMEM;
    case HUBKV_ERR_UNSUPPORTED: return HKM_ERR_UNSUPPORTED;
    default: return HKM_ERR_IO;
    }
}

hkm_status hks_profile_save(const char *path, const hubkv_profile_data *d, const float *adakv, hkm_err *err) {
    char tmp[4200], msg[1024];
    snprintf(tmp, sizeof tmp, "%s.solve.%ld", path, (long)getpid());
    hubkv_status hs = hubkv_profile_write(tmp, d, msg, sizeof msg);
    if (hs != HUBKV_OK)
        return hkm_fail(err, from_hubkv(hs), "%s: hubkv_profile_write: %s (%s)", path, msg, hubkv_status_str(hs));
    hkm_status st = adakv ? add_adakv(tmp, d->model.n_layers, d->model.n_kv_heads, adakv, err) : HKM_OK;
    if (st == HKM_OK) st = hkp_rename(tmp, path, err); // fsync, rename, fsync the directory
    if (st != HKM_OK) unlink(tmp);
    return st;
}

hkm_status hks_profile_read_extra(const char *path, const char *name, int32_t L, int32_t H, float **out, hkm_err *err) {
    *out = NULL;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return hkm_fail(err, HKM_ERR_IO, "%s: H5Fopen failed", path);
    hkm_status st = HKM_OK;
    if (H5Lexists(f, "/baselines", H5P_DEFAULT) > 0 && H5Lexists(f, name, H5P_DEFAULT) > 0) {
        hid_t ds = H5Dopen2(f, name, H5P_DEFAULT), sp = ds >= 0 ? H5Dget_space(ds) : -1;
        hsize_t dims[3] = {0, 0, 0};
        int nd = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
        if (nd == 3) H5Sget_simple_extent_dims(sp, dims, NULL);
        if (nd != 3 || dims[0] != HKS_N_RATIOS || dims[1] != (hsize_t)L || dims[2] != (hsize_t)H)
            st = hkm_fail(err, HKM_ERR_SHAPE, "%s: %s: expected shape (99, %d, %d)", path, name, L, H);
        else if (!(*out = calloc((size_t)HKS_N_RATIOS * L * H, sizeof **out)))
            st = hkm_fail(err, HKM_ERR_NOMEM, "%s: out of memory", path);
        else if (H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, *out) < 0)
            st = hkm_fail(err, HKM_ERR_IO, "%s: reading %s failed", path, name);
        if (sp >= 0) H5Sclose(sp);
        if (ds >= 0) H5Dclose(ds);
    }
    H5Fclose(f);
    if (st) { free(*out); *out = NULL; }
    return st;
}
