/* Small HDF5 helpers shared by the calibration-set and stats files: whole
 * datasets and scalar attributes, every call checked. */
#include "h5check.h"

#include <stdio.h>
#include <string.h>

void hkp_h5_quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

hkm_status hkp_h5_fail(hkm_err *err, const char *src, int line, const char *call, const char *h5path,
                       int errnum) {
    return hkm_fail(err, HKM_ERR_IO, "%s:%d: %s failed (file %s)%s%s", src, line, call, h5path,
                    errnum ? ": " : "", errnum ? strerror(errnum) : "");
}

hkm_status hkp_h5_write(hid_t loc, const char *h5path, const char *name, hid_t mem_type,
                        int rank, const hsize_t *dims, const void *data, hkm_err *err) {
    hkm_status st = HKM_OK;
    hid_t sp = -1, ds = -1, dcpl = -1;
    hsize_t n = 1;
    for (int i = 0; i < rank; i++) n *= dims[i];
    H5ID(sp, H5Screate_simple(rank, dims, NULL));
    H5ID(dcpl, H5Pcreate(H5P_DATASET_CREATE));
    if (n >= 4096) { // compress big arrays; chunks along the first axis
        hsize_t chunk[8];
        for (int i = 0; i < rank; i++) chunk[i] = dims[i];
        hsize_t per = n / dims[0];
        chunk[0] = per >= 65536 ? 1 : (65536 / per < dims[0] ? 65536 / per : dims[0]);
        if (chunk[0] == 0) chunk[0] = 1;
        H5TRY(H5Pset_chunk(dcpl, rank, chunk));
        H5TRY(H5Pset_deflate(dcpl, 4));
    }
    H5ID(ds, H5Dcreate2(loc, name, mem_type, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT));
    if (n) H5TRY(H5Dwrite(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data));
    hid_t done = ds; // closing flushes cached chunks: its failure is a write failure
    ds = -1;
    H5TRY(H5Dclose(done));
fail:
    if (ds >= 0) H5Dclose(ds);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (sp >= 0) H5Sclose(sp);
    if (st != HKM_OK && err && !strstr(err->msg, name)) {
        char tmp[sizeof err->msg];
        snprintf(tmp, sizeof tmp, "%.900s (dataset %.100s)", err->msg, name);
        memcpy(err->msg, tmp, sizeof tmp);
    }
    return st;
}

/* Deflate cannot shrink data by more than 1032:1, so a dataset may not declare
 * more bytes than that times what it stores (plus a little slack). */
enum { MAX_DEFLATE_RATIO = 1032, STORAGE_SLACK = 4096 };

/* Refuses filters other than the ones hubkv writes (their ratio is unbounded). */
static hkm_status check_filters(hid_t dcpl, const char *h5path, const char *name, hkm_err *err) {
    int nf = H5Pget_nfilters(dcpl);
    for (int i = 0; i < nf; i++) {
        unsigned flags = 0, cd[8];
        size_t ncd = 8;
        H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)i, &flags, &ncd, cd, 0, NULL, NULL);
        if (id != H5Z_FILTER_DEFLATE && id != H5Z_FILTER_SHUFFLE && id != H5Z_FILTER_FLETCHER32)
            return hkm_fail(err, HKM_ERR_FORMAT, "%s: dataset '%s' uses HDF5 filter %d: expected only "
                            "deflate, shuffle or fletcher32", h5path, name, (int)id);
    }
    return nf < 0 ? hkm_fail(err, HKM_ERR_IO, "%s: dataset '%s': H5Pget_nfilters failed", h5path, name)
                  : HKM_OK;
}

/* The declared extent must fit in the bytes the file stores for the dataset,
 * so a small file cannot make a reader allocate gigabytes. */
static hkm_status check_storage(hid_t ds, const char *h5path, const char *name, int rank,
                                const hsize_t *dims, hkm_err *err) {
    hkm_status st = HKM_OK;
    hid_t dcpl = -1, ty = -1;
    H5ID(ty, H5Dget_type(ds));
    H5ID(dcpl, H5Dget_create_plist(ds));
    size_t tsize = H5Tget_size(ty);
    double bytes = (double)(tsize ? tsize : 1);
    for (int i = 0; i < rank; i++) bytes *= (double)dims[i];
    H5D_layout_t lay = H5Pget_layout(dcpl);
    if ((lay != H5D_CONTIGUOUS && lay != H5D_CHUNKED && lay != H5D_COMPACT) ||
        H5Pget_external_count(dcpl) != 0) {
        st = hkm_fail(err, HKM_ERR_FORMAT, "%s: dataset '%s' has layout %d or external storage: "
                      "expected its data inside the file", h5path, name, (int)lay);
        goto fail;
    }
    if (lay == H5D_CHUNKED && (st = check_filters(dcpl, h5path, name, err)) != HKM_OK) goto fail;
    double stored = (double)H5Dget_storage_size(ds);
    double limit = lay == H5D_CHUNKED ? stored * MAX_DEFLATE_RATIO + STORAGE_SLACK : stored;
    if (bytes > limit)
        st = hkm_fail(err, HKM_ERR_FORMAT, "%s: dataset '%s' declares %.0f bytes but the file stores "
                      "%.0f: expected at most %.0f (truncated or corrupt file)", h5path, name, bytes,
                      stored, limit);
fail:
    if (dcpl >= 0) H5Pclose(dcpl);
    if (ty >= 0) H5Tclose(ty);
    return st;
}

static hkm_status open_checked(hid_t loc, const char *h5path, const char *name, int rank,
                               hsize_t *got, hid_t *ds_out, hkm_err *err) {
    hkm_status st = HKM_OK;
    hid_t ds = -1, sp = -1;
    if (H5Lexists(loc, name, H5P_DEFAULT) <= 0)
        return hkm_fail(err, HKM_ERR_MISSING, "%s: dataset '%s' missing", h5path, name);
    H5ID(ds, H5Dopen2(loc, name, H5P_DEFAULT));
    H5ID(sp, H5Dget_space(ds));
    int r = H5Sget_simple_extent_ndims(sp);
    if (r != rank) {
        st = hkm_fail(err, HKM_ERR_FORMAT, "%s: dataset '%s' has rank %d: expected %d", h5path,
                      name, r, rank);
        goto fail;
    }
    H5TRY(H5Sget_simple_extent_dims(sp, got, NULL));
    if ((st = check_storage(ds, h5path, name, rank, got, err)) != HKM_OK) goto fail;
    H5Sclose(sp);
    *ds_out = ds;
    return HKM_OK;
fail:
    if (sp >= 0) H5Sclose(sp);
    if (ds >= 0) H5Dclose(ds);
    return st;
}

hkm_status hkp_h5_len(hid_t loc, const char *h5path, const char *name, hsize_t *len,
                      hkm_err *err) {
    hid_t ds = -1;
    HKM_TRY(open_checked(loc, h5path, name, 1, len, &ds, err));
    H5Dclose(ds);
    return HKM_OK;
}

hkm_status hkp_h5_dims(hid_t loc, const char *h5path, const char *name, int rank, hsize_t *dims,
                       hkm_err *err) {
    hid_t ds = -1;
    HKM_TRY(open_checked(loc, h5path, name, rank, dims, &ds, err));
    H5Dclose(ds);
    return HKM_OK;
}

hkm_status hkp_h5_read(hid_t loc, const char *h5path, const char *name, hid_t mem_type, int rank,
                       const hsize_t *dims, void *data, hkm_err *err) {
    hkm_status st = HKM_OK;
    hid_t ds = -1;
    hsize_t got[8];
    HKM_TRY(open_checked(loc, h5path, name, rank, got, &ds, err));
    for (int i = 0; i < rank; i++)
        if (got[i] != dims[i]) {
            st = hkm_fail(err, HKM_ERR_SHAPE, "%s: dataset '%s' axis %d has %llu entries: expected %llu",
                          h5path, name, i, (unsigned long long)got[i], (unsigned long long)dims[i]);
            goto fail;
        }
    hsize_t n = 1;
    for (int i = 0; i < rank; i++) n *= dims[i];
    if (n) H5TRY(H5Dread(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data));
fail:
    H5Dclose(ds);
    return st;
}

hkm_status hkp_h5_attr_write(hid_t loc, const char *h5path, const char *name, hid_t mem_type,
                             const void *val, hkm_err *err) {
    hkm_status st = HKM_OK;
    hid_t sp = -1, at = -1;
    H5ID(sp, H5Screate(H5S_SCALAR));
    H5ID(at, H5Acreate2(loc, name, mem_type, sp, H5P_DEFAULT, H5P_DEFAULT));
    H5TRY(H5Awrite(at, mem_type, val));
fail:
    if (at >= 0) H5Aclose(at);
    if (sp >= 0) H5Sclose(sp);
    return st;
}

hkm_status hkp_h5_attr_read(hid_t loc, const char *h5path, const char *name, hid_t mem_type,
                            void *val, hkm_err *err) {
    hkm_status st = HKM_OK;
    hid_t at = -1;
    if (H5Aexists(loc, name) <= 0)
        return hkm_fail(err, HKM_ERR_MISSING, "%s: attribute '%s' missing", h5path, name);
    H5ID(at, H5Aopen(loc, name, H5P_DEFAULT));
    H5TRY(H5Aread(at, mem_type, val));
fail:
    if (at >= 0) H5Aclose(at);
    return st;
}

hkm_status hkp_h5_attr_write_str(hid_t loc, const char *h5path, const char *name, const char *s,
                                 hkm_err *err) {
    hkm_status st = HKM_OK;
    hid_t ty = -1;
    H5ID(ty, H5Tcopy(H5T_C_S1));
    H5TRY(H5Tset_size(ty, strlen(s) + 1));
    st = hkp_h5_attr_write(loc, h5path, name, ty, s, err);
fail:
    if (ty >= 0) H5Tclose(ty);
    return st;
}

hkm_status hkp_h5_attr_read_str(hid_t loc, const char *h5path, const char *name, char *buf,
                                size_t cap, hkm_err *err) {
    hkm_status st = HKM_OK;
    hid_t at = -1, ty = -1, mt = -1;
    if (H5Aexists(loc, name) <= 0)
        return hkm_fail(err, HKM_ERR_MISSING, "%s: attribute '%s' missing", h5path, name);
    H5ID(at, H5Aopen(loc, name, H5P_DEFAULT));
    H5ID(ty, H5Aget_type(at));
    if (H5Tget_class(ty) != H5T_STRING || H5Tis_variable_str(ty) > 0) {
        st = hkm_fail(err, HKM_ERR_FORMAT, "%s: attribute '%s': expected a fixed-length string",
                      h5path, name);
        goto fail;
    }
    size_t sz = H5Tget_size(ty);
    if (sz + 1 > cap) {
        st = hkm_fail(err, HKM_ERR_FORMAT, "%s: attribute '%s' is %zu bytes: expected < %zu",
                      h5path, name, sz, cap);
        goto fail;
    }
    H5ID(mt, H5Tcopy(H5T_C_S1));
    H5TRY(H5Tset_size(mt, sz));
    H5TRY(H5Aread(at, mt, buf));
    buf[sz] = 0;
fail:
    if (mt >= 0) H5Tclose(mt);
    if (ty >= 0) H5Tclose(ty);
    if (at >= 0) H5Aclose(at);
    return st;
}
