/* Profile reader: opens a profile, checks format name, version, model
 * fingerprint, every dataset's presence/dtype/shape, then the values (same
 * checks as the writer), and keeps everything in memory. */
#include "h5util.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if H5_VERSION_GE(1, 12, 0)
#define HKV_IS_HDF5(path) H5Fis_accessible(path, H5P_DEFAULT)
#else
#define HKV_IS_HDF5(path) H5Fis_hdf5(path)
#endif

struct hubkv_profile {
    hubkv_profile_data d;        /* pointers into the owned buffers below */
    int32_t ver_major, ver_minor;
    char *arch, *producer, *producer_version, *created, *scorer, *scorer_params, *calib_dataset;
    float *grid, *loss, *keep, *sel, *beta, *base_u, *base_p, *base_a;
    hubkv_gate_tensor *gate;     /* (n_gate), names and data owned */
    char err[HKV_ERR_CAP];
};

/* ------------------------------------------------------------------------ */
/* Attribute readers                                                         */

static hubkv_status open_attr(hid_t obj, const char *name, H5T_class_t cls, hid_t *a, const char *path, char *err,
                              size_t cap) {
    hubkv_status st = HUBKV_OK;
    htri_t ex;
    hid_t t = -1, sp = -1;
    *a = -1;
    H5CK(ex = H5Aexists(obj, name));
    if (!ex) return hkv_fail(err, cap, HUBKV_ERR_FORMAT, "%s: missing attribute \"%s\"", path, name);
    H5CK(*a = H5Aopen(obj, name, H5P_DEFAULT));
    H5CK(t = H5Aget_type(*a));
    H5CK(sp = H5Aget_space(*a));
    if (H5Tget_class(t) != cls || H5Sget_simple_extent_npoints(sp) != 1)
        st = hkv_fail(err, cap, HUBKV_ERR_FORMAT, "%s: attribute \"%s\" has the wrong type or is not a scalar; expected a %s",
                      path, name, cls == H5T_STRING ? "string" : cls == H5T_INTEGER ? "integer" : "number");
done:
    if (t >= 0) H5Tclose(t);
    if (sp >= 0) H5Sclose(sp);
    if (st && *a >= 0) {
        H5Aclose(*a);
        *a = -1;
    }
    return st;
}

static hubkv_status get_str(hid_t obj, const char *name, char **out, const char *path, char *err, size_t cap) {
    hid_t a = -1, t = -1, mt = -1;
    hubkv_status st = open_attr(obj, name, H5T_STRING, &a, path, err, cap);
    if (st) return st;
    H5CK(t = H5Aget_type(a));
    htri_t var;
    H5CK(var = H5Tis_variable_str(t));
    H5CK(mt = H5Tcopy(H5T_C_S1));
    if (var) {
        /* Variable-length strings live in HDF5's global heap, which libhdf5
         * reads without validation: a corrupt one crashes it (found by
         * fuzzing). Profiles store fixed-length strings; refuse the rest. */
        st = hkv_fail(err, cap, HUBKV_ERR_FORMAT,
                      "%s: attribute \"%s\": expected a fixed-length string, got a variable-length one",
                      path, name);
        goto done;
    } else {
        size_t n = H5Tget_size(t);
        H5CK(H5Tset_size(mt, n + 1));
        H5CK(H5Tset_cset(mt, H5Tget_cset(t))); /* HDF5 converts no charsets */
        *out = hkv_calloc(n + 2, 1);
        if (*out) H5CK(H5Aread(a, mt, *out));
    }
    if (!*out) st = hkv_fail(err, cap, HUBKV_ERR_NOMEM, "%s: out of memory reading attribute \"%s\"", path, name);
done:
    if (mt >= 0) H5Tclose(mt);
    if (t >= 0) H5Tclose(t);
    H5Aclose(a);
    return st;
}

static hubkv_status get_int(hid_t obj, const char *name, hid_t mem_type, void *out, const char *path, char *err,
                            size_t cap) {
    hid_t a = -1;
    hubkv_status st = open_attr(obj, name, H5T_INTEGER, &a, path, err, cap);
    if (st) return st;
    H5CK(H5Aread(a, mem_type, out));
done:
    H5Aclose(a);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Dataset readers                                                           */

/* True if every component of an absolute path exists (H5Lexists needs the
 * parents to exist). */
static htri_t path_exists(hid_t f, const char *name) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", name);
    for (char *p = buf + 1;; p++) {
        char c = *p;
        if (c == '/' || c == 0) {
            *p = 0;
            htri_t r = H5Lexists(f, buf, H5P_DEFAULT);
            if (r <= 0) return r;
            *p = c;
            if (!c) return 1;
        }
    }
}

static void fmt_dims(char *buf, size_t cap, int ndim, const hsize_t *d) {
    size_t n = (size_t)snprintf(buf, cap, "(");
    for (int k = 0; k < ndim && n < cap; k++) n += (size_t)snprintf(buf + n, cap - n, "%s%llu", k ? ", " : "", (unsigned long long)d[k]);
    if (n < cap) snprintf(buf + n, cap - n, ")");
}

/* Reads float32 dataset `name` into *out. dims: expected shape, or (when
 * got_dims is not NULL) any shape of rank 1..4 returned in got_dims/got_ndim.
 * Missing optional dataset: *out = NULL, OK. */
static hubkv_status get_f32(hid_t f, const char *name, int ndim, const int64_t *dims, int optional, float **out,
                            int *got_ndim, int64_t *got_dims, const char *path, char *err, size_t cap) {
    hubkv_status st = HUBKV_OK;
    hid_t ds = -1, t = -1, sp = -1;
    htri_t ex;
    *out = NULL;
    H5CK(ex = path_exists(f, name));
    if (!ex) return optional ? HUBKV_OK : hkv_fail(err, cap, HUBKV_ERR_FORMAT, "%s: missing dataset %s", path, name);
    H5CK(ds = H5Dopen2(f, name, H5P_DEFAULT));
    H5CK(t = H5Dget_type(ds));
    if (H5Tget_class(t) != H5T_FLOAT || H5Tget_size(t) != 4) {
        st = hkv_fail(err, cap, HUBKV_ERR_FORMAT, "%s: dataset %s has dtype class %d size %zu; expected float32", path,
                      name, (int)H5Tget_class(t), H5Tget_size(t));
        goto done;
    }
    H5CK(sp = H5Dget_space(ds));
    hsize_t hd[8];
    int nd;
    H5CK(nd = H5Sget_simple_extent_ndims(sp));
    if (nd > 8) nd = 8;
    H5CK(H5Sget_simple_extent_dims(sp, hd, NULL));
    int ok = got_dims ? (nd >= 1 && nd <= 4) : (nd == ndim);
    for (int k = 0; ok && !got_dims && k < nd; k++) ok = hd[k] == (hsize_t)dims[k];
    if (!ok) {
        char have[96], want[96] = "rank 1..4";
        fmt_dims(have, sizeof have, nd, hd);
        if (!got_dims) {
            hsize_t wd[8] = {0};
            int wn = ndim < 8 ? ndim : 8;
            for (int k = 0; k < wn; k++) wd[k] = (hsize_t)dims[k];
            fmt_dims(want, sizeof want, wn, wd);
        }
        st = hkv_fail(err, cap, HUBKV_ERR_FORMAT, "%s: dataset %s has shape %s; expected %s", path, name, have, want);
        goto done;
    }
    size_t n = 1;
    for (int k = 0; k < nd; k++) {
        if (hd[k] == 0 || n > ((size_t)1 << 40) / hd[k]) {
            st = hkv_fail(err, cap, HUBKV_ERR_FORMAT, "%s: dataset %s dim %d = %llu is empty or too large", path, name, k,
                          (unsigned long long)hd[k]);
            goto done;
        }
        n *= hd[k];
        if (got_dims) got_dims[k] = (int64_t)hd[k];
    }
    if (got_ndim) *got_ndim = nd;
    htri_t u, de;
    H5CK(u = H5Aexists(ds, "units"));
    H5CK(de = H5Aexists(ds, "description"));
    if (!u || !de) {
        st = hkv_fail(err, cap, HUBKV_ERR_FORMAT, "%s: dataset %s lacks its \"%s\" attribute", path, name, u ? "description" : "units");
        goto done;
    }
    *out = hkv_calloc(n, sizeof(float));
    if (!*out) {
        st = hkv_fail(err, cap, HUBKV_ERR_NOMEM, "%s: out of memory for %s (%zu floats)", path, name, n);
        goto done;
    }
    H5CK(H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, *out));
done:
    if (sp >= 0) H5Sclose(sp);
    if (t >= 0) H5Tclose(t);
    if (ds >= 0) H5Dclose(ds);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Sections                                                                  */

static hubkv_status read_header(hid_t f, hubkv_profile *p, const char *path, char *err, size_t cap) {
    hubkv_status st;
    char *fmt = NULL;
    HKV_TRY(get_str(f, "format", &fmt, path, err, cap));
    if (strcmp(fmt, HUBKV_PROFILE_FORMAT_NAME) != 0) {
        st = hkv_fail(err, cap, HUBKV_ERR_FORMAT, "%s: attribute \"format\" is \"%s\"; expected \"%s\"", path, fmt,
                      HUBKV_PROFILE_FORMAT_NAME);
        goto done;
    }
    HKV_TRY(get_int(f, "format_version_major", H5T_NATIVE_INT32, &p->ver_major, path, err, cap));
    HKV_TRY(get_int(f, "format_version_minor", H5T_NATIVE_INT32, &p->ver_minor, path, err, cap));
    if (p->ver_major != HUBKV_PROFILE_VERSION_MAJOR) {
        st = hkv_fail(err, cap, HUBKV_ERR_VERSION,
                      "%s: profile format version %d.%d is not supported; this libhubkv %s reads format version %d.x "
                      "(up to %d.%d)%s",
                      path, p->ver_major, p->ver_minor, HUBKV_VERSION_STRING, HUBKV_PROFILE_VERSION_MAJOR,
                      HUBKV_PROFILE_VERSION_MAJOR, HUBKV_PROFILE_VERSION_MINOR,
                      p->ver_major > HUBKV_PROFILE_VERSION_MAJOR ? "; upgrade libhubkv" : "");
        goto done;
    }
    HKV_TRY(get_str(f, "producer", &p->producer, path, err, cap));
    HKV_TRY(get_str(f, "producer_version", &p->producer_version, path, err, cap));
    HKV_TRY(get_str(f, "created", &p->created, path, err, cap));
    HKV_TRY(get_str(f, "scorer_name", &p->scorer, path, err, cap));
    HKV_TRY(get_str(f, "scorer_params", &p->scorer_params, path, err, cap));
    HKV_TRY(get_str(f, "calib_dataset", &p->calib_dataset, path, err, cap));
    HKV_TRY(get_int(f, "calib_n_contexts", H5T_NATIVE_INT32, &p->d.calib_n_contexts, path, err, cap));
    HKV_TRY(get_int(f, "calib_context_len", H5T_NATIVE_INT32, &p->d.calib_context_len, path, err, cap));
    HKV_TRY(get_int(f, "calib_n_sink", H5T_NATIVE_INT32, &p->d.n_sink, path, err, cap));
    HKV_TRY(get_int(f, "calib_n_recent", H5T_NATIVE_INT32, &p->d.n_recent, path, err, cap));
    hubkv_model_desc *m = &p->d.model;
    HKV_TRY(get_str(f, "model_architecture", &p->arch, path, err, cap));
    m->architecture = p->arch;
    HKV_TRY(get_int(f, "model_n_layers", H5T_NATIVE_INT32, &m->n_layers, path, err, cap));
    HKV_TRY(get_int(f, "model_n_heads", H5T_NATIVE_INT32, &m->n_heads, path, err, cap));
    HKV_TRY(get_int(f, "model_n_kv_heads", H5T_NATIVE_INT32, &m->n_kv_heads, path, err, cap));
    HKV_TRY(get_int(f, "model_head_dim", H5T_NATIVE_INT32, &m->head_dim, path, err, cap));
    HKV_TRY(get_int(f, "model_vocab", H5T_NATIVE_INT32, &m->vocab, path, err, cap));
    HKV_TRY(get_int(f, "model_hash", H5T_NATIVE_UINT64, &m->hash, path, err, cap));
    p->d.producer = p->producer;
    p->d.producer_version = p->producer_version;
    p->d.scorer_name = p->scorer;
    p->d.scorer_params = p->scorer_params;
    p->d.calib_dataset = p->calib_dataset;
done:
    free(fmt);
    return st;
}

static hubkv_status check_fingerprint(const hubkv_model_desc *have, const hubkv_model_desc *want, const char *path,
                                      char *err, size_t cap) {
    if (want->architecture && strcmp(want->architecture, have->architecture) != 0)
        return hkv_fail(err, cap, HUBKV_ERR_FINGERPRINT,
                        "%s: model fingerprint mismatch in architecture: profile has \"%s\", model has \"%s\"", path,
                        have->architecture, want->architecture);
    struct { const char *name; int32_t h, w; } f[] = {
        {"n_layers", have->n_layers, want->n_layers},       {"n_heads", have->n_heads, want->n_heads},
        {"n_kv_heads", have->n_kv_heads, want->n_kv_heads}, {"head_dim", have->head_dim, want->head_dim},
        {"vocab", have->vocab, want->vocab},
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (f[i].w != 0 && f[i].h != f[i].w)
            return hkv_fail(err, cap, HUBKV_ERR_FINGERPRINT,
                            "%s: model fingerprint mismatch in %s: profile has %d, model has %d", path, f[i].name, f[i].h,
                            f[i].w);
    if (want->hash != 0 && have->hash != want->hash)
        return hkv_fail(err, cap, HUBKV_ERR_FINGERPRINT,
                        "%s: model fingerprint mismatch in hash: profile has 0x%016llx, model has 0x%016llx", path,
                        (unsigned long long)have->hash, (unsigned long long)want->hash);
    return HUBKV_OK;
}

static hubkv_status read_gate(hid_t f, hubkv_profile *p, const char *path, char *err, size_t cap) {
    hubkv_status st = HUBKV_OK;
    hid_t g = -1, lg = -1;
    htri_t ex;
    H5CK(ex = H5Lexists(f, "/gate", H5P_DEFAULT));
    if (!ex) return HUBKV_OK;
    H5CK(g = H5Gopen2(f, "/gate", H5P_DEFAULT));
    H5G_info_t gi, li;
    H5CK(H5Gget_info(g, &gi));
    for (hsize_t i = 0; i < gi.nlinks; i++) {
        char lname[64], full[256];
        int layer;
        char tail;
        H5CK(H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, lname, sizeof lname, H5P_DEFAULT));
        if (sscanf(lname, "layer_%d%c", &layer, &tail) != 1 || layer < 0 || layer >= p->d.model.n_layers) {
            st = hkv_fail(err, cap, HUBKV_ERR_FORMAT, "%s: /gate/%s; expected groups layer_<0..%d>", path, lname,
                          p->d.model.n_layers - 1);
            goto done;
        }
        H5CK(lg = H5Gopen2(g, lname, H5P_DEFAULT));
        H5CK(H5Gget_info(lg, &li));
        hubkv_gate_tensor *ng = realloc(p->gate, (size_t)(p->d.n_gate + (int32_t)li.nlinks + 1) * sizeof *ng);
        if (!ng) {
            st = hkv_fail(err, cap, HUBKV_ERR_NOMEM, "%s: out of memory for gate tensors", path);
            goto done;
        }
        p->gate = ng;
        for (hsize_t j = 0; j < li.nlinks; j++) {
            char tname[128];
            H5CK(H5Lget_name_by_idx(lg, ".", H5_INDEX_NAME, H5_ITER_INC, j, tname, sizeof tname, H5P_DEFAULT));
            hubkv_gate_tensor *t = &p->gate[p->d.n_gate];
            memset(t, 0, sizeof *t);
            t->layer = layer;
            if (!(t->name = strdup(tname))) {
                st = hkv_fail(err, cap, HUBKV_ERR_NOMEM, "%s: out of memory for gate names", path);
                goto done;
            }
            p->d.n_gate++;
            snprintf(full, sizeof full, "/gate/%s/%s", lname, tname);
            float *data;
            HKV_TRY(get_f32(f, full, 0, NULL, 0, &data, &t->ndim, t->shape, path, err, cap));
            t->data = data;
        }
        H5Gclose(lg);
        lg = -1;
    }
    p->d.gate = p->gate;
done:
    if (lg >= 0) H5Gclose(lg);
    if (g >= 0) H5Gclose(g);
    return st;
}

static hubkv_status read_datasets(hid_t f, hubkv_profile *p, const char *path, char *err, size_t cap) {
    hubkv_status st = HUBKV_OK;
    int64_t L = p->d.model.n_layers, H = p->d.model.n_kv_heads;
    int64_t gdim[1] = {0}, r1[1] = {HUBKV_N_RATIOS}, b3[3] = {HUBKV_N_RATIOS, L, H}, h2[2] = {L, H};
    int nd = 0;
    float *ratios = NULL;
    HKV_TRY(get_f32(f, HKV_DS_GRID, 0, NULL, 0, &p->grid, &nd, gdim, path, err, cap));
    if (nd != 1 || gdim[0] < 2 || gdim[0] > 1000000) {
        st = hkv_fail(err, cap, HUBKV_ERR_FORMAT, "%s: dataset %s has rank %d, %lld points; expected shape (G), G >= 2",
                      path, HKV_DS_GRID, nd, (long long)gdim[0]);
        goto done;
    }
    p->d.n_grid = (int32_t)gdim[0];
    int64_t l3[3] = {L, H, gdim[0]};
    HKV_TRY(get_f32(f, HKV_DS_LOSS, 3, l3, 0, &p->loss, NULL, NULL, path, err, cap));
    HKV_TRY(get_f32(f, HKV_DS_RATIOS, 1, r1, 0, &ratios, NULL, NULL, path, err, cap));
    for (int i = 0; i < HUBKV_N_RATIOS; i++)
        if (!(ratios[i] > (i + 1) / 100.0f - 1e-5f && ratios[i] < (i + 1) / 100.0f + 1e-5f)) {
            st = hkv_fail(err, cap, HUBKV_ERR_RANGE, "%s: %s[%d] = %g; expected %g", path, HKV_DS_RATIOS, i, ratios[i],
                          (i + 1) / 100.0);
            goto done;
        }
    HKV_TRY(get_f32(f, HKV_DS_KEEP, 3, b3, 0, &p->keep, NULL, NULL, path, err, cap));
    HKV_TRY(get_f32(f, HKV_DS_SEL, 2, h2, 0, &p->sel, NULL, NULL, path, err, cap));
    HKV_TRY(get_f32(f, HKV_DS_BETA, 2, h2, 0, &p->beta, NULL, NULL, path, err, cap));
    HKV_TRY(get_f32(f, HKV_DS_BASE_U, 3, b3, 1, &p->base_u, NULL, NULL, path, err, cap));
    HKV_TRY(get_f32(f, HKV_DS_BASE_P, 3, b3, 1, &p->base_p, NULL, NULL, path, err, cap));
    HKV_TRY(get_f32(f, HKV_DS_BASE_A, 3, b3, 1, &p->base_a, NULL, NULL, path, err, cap));
    HKV_TRY(read_gate(f, p, path, err, cap));
    p->d.grid = p->grid;
    p->d.loss = p->loss;
    p->d.budget_keep = p->keep;
    p->d.selectivity = p->sel;
    p->d.beta = p->beta;
    p->d.baseline_uniform = p->base_u;
    p->d.baseline_pyramidkv = p->base_p;
    p->d.baseline_adakv = p->base_a;
done:
    free(ratios);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Public API                                                                */

static hubkv_status open_locked(const char *path, const hubkv_model_desc *expect, hubkv_profile *p, char *err,
                                size_t cap) {
    hubkv_status st = HUBKV_OK;
    hid_t f = -1;
    FILE *fp = fopen(path, "rb");
    if (!fp) return hkv_fail(err, cap, HUBKV_ERR_IO, "%s: cannot open profile for reading", path);
    fclose(fp);
    if (HKV_IS_HDF5(path) <= 0 || (f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT)) < 0)
        return hkv_fail(err, cap, HUBKV_ERR_FORMAT,
                        "%s: not a readable HDF5 file (truncated or corrupt); expected a hubkv-profile", path);
    HKV_TRY(read_header(f, p, path, err, cap));
    if (expect) HKV_TRY(check_fingerprint(&p->d.model, expect, path, err, cap));
    HKV_TRY(hkv_check_model(&p->d.model, path, err, cap)); /* before sizing buffers by it */
    HKV_TRY(read_datasets(f, p, path, err, cap));
    HKV_TRY(hkv_validate_data(&p->d, path, err, cap));
done:
    if (f >= 0 && H5Fclose(f) < 0 && st == HUBKV_OK)
        st = hkv_fail(err, cap, HUBKV_ERR_IO, "%s: H5Fclose failed", path);
    return st;
}

hubkv_status hubkv_profile_open(const char *path, const hubkv_model_desc *expect, hubkv_profile **out, char *err,
                                size_t cap) {
    if (!out) return hkv_fail(err, cap, HUBKV_ERR_INVALID_ARG, "profile_open: out must be non-NULL");
    *out = NULL;
    if (!path) return hkv_fail(err, cap, HUBKV_ERR_INVALID_ARG, "profile_open: path must be non-NULL");
    hubkv_profile *p = hkv_calloc(1, sizeof *p);
    if (!p) return hkv_fail(err, cap, HUBKV_ERR_NOMEM, "%s: out of memory", path);
    hkv_h5_lock();
    H5E_auto2_t efn;
    void *edata;
    H5Eget_auto2(H5E_DEFAULT, &efn, &edata);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* errors are reported via status */
    hubkv_status st = open_locked(path, expect, p, err, cap);
    H5Eset_auto2(H5E_DEFAULT, efn, edata);
    hkv_h5_unlock();
    if (st) {
        hubkv_profile_free(p);
        return st;
    }
    *out = p;
    return HUBKV_OK;
}

void hubkv_profile_free(hubkv_profile *p) {
    if (!p) return;
    for (int32_t i = 0; i < p->d.n_gate; i++) {
        free((char *)p->gate[i].name);
        free((float *)p->gate[i].data);
    }
    free(p->gate);
    free(p->arch), free(p->producer), free(p->producer_version), free(p->created);
    free(p->scorer), free(p->scorer_params), free(p->calib_dataset);
    free(p->grid), free(p->loss), free(p->keep), free(p->sel), free(p->beta), free(p->base_u), free(p->base_p), free(p->base_a);
    free(p);
}

const char *hubkv_profile_error(const hubkv_profile *p) { return p ? p->err : "profile is NULL"; }
const hubkv_model_desc *hubkv_profile_model(const hubkv_profile *p) { return p ? &p->d.model : NULL; }
const char *hubkv_profile_scorer(const hubkv_profile *p) { return p ? p->scorer : NULL; }
const char *hubkv_profile_scorer_params(const hubkv_profile *p) { return p ? p->scorer_params : NULL; }
int32_t hubkv_profile_n_sink(const hubkv_profile *p) { return p ? p->d.n_sink : 0; }
int32_t hubkv_profile_n_recent(const hubkv_profile *p) { return p ? p->d.n_recent : 0; }
const float *hubkv_profile_loss(const hubkv_profile *p) { return p ? p->loss : NULL; }
const float *hubkv_profile_budget_keep(const hubkv_profile *p) { return p ? p->keep : NULL; }
const float *hubkv_profile_selectivity(const hubkv_profile *p) { return p ? p->sel : NULL; }
const float *hubkv_profile_beta(const hubkv_profile *p) { return p ? p->beta : NULL; }

void hubkv_profile_version(const hubkv_profile *p, int32_t *major, int32_t *minor) {
    if (major) *major = p ? p->ver_major : 0;
    if (minor) *minor = p ? p->ver_minor : 0;
}

const float *hubkv_profile_grid(const hubkv_profile *p, int32_t *n_grid) {
    if (n_grid) *n_grid = p ? p->d.n_grid : 0;
    return p ? p->grid : NULL;
}

const float *hubkv_profile_baseline(const hubkv_profile *p, const char *name) {
    if (!p || !name) return NULL;
    if (!strcmp(name, "uniform")) return p->base_u;
    if (!strcmp(name, "pyramidkv")) return p->base_p;
    if (!strcmp(name, "adakv")) return p->base_a;
    return NULL;
}

const hubkv_gate_tensor *hubkv_profile_gate(const hubkv_profile *p, int32_t layer, const char *name) {
    if (!p || !name) return NULL;
    for (int32_t i = 0; i < p->d.n_gate; i++)
        if (p->gate[i].layer == layer && !strcmp(p->gate[i].name, name)) return &p->gate[i];
    return NULL;
}

hubkv_status hubkv_profile_budgets(hubkv_profile *p, float ratio, int64_t n_tokens, int32_t *out) {
    if (!p) return HUBKV_ERR_INVALID_ARG;
    p->err[0] = 0;
    if (!out || !(ratio >= 0.0f && ratio < 1.0f) || n_tokens <= 0 || n_tokens > INT32_MAX)
        return hkv_fail(p->err, sizeof p->err, HUBKV_ERR_INVALID_ARG,
                        "profile_budgets: ratio %g, n_tokens %lld; expected out != NULL, ratio in [0,1), "
                        "n_tokens in [1, 2^31)", ratio, (long long)n_tokens);
    int64_t nh = (int64_t)p->d.model.n_layers * p->d.model.n_kv_heads;
    int64_t *tmp = hkv_calloc((size_t)nh, sizeof *tmp);
    if (!tmp) return hkv_fail(p->err, sizeof p->err, HUBKV_ERR_NOMEM, "profile_budgets: out of memory");
    hubkv_budget_params bp = hubkv_budget_default_params();
    bp.n_heads = (int32_t)nh;
    bp.n_grid = p->d.n_grid;
    bp.grid = p->grid;
    bp.loss = p->loss;
    bp.n_tokens = n_tokens;
    bp.target = llround((1.0 - (double)ratio) * (double)n_tokens * (double)nh);
    bp.n_sink = p->d.n_sink;
    bp.n_recent = p->d.n_recent;
    hubkv_status st = hubkv_budget_greedy(&bp, tmp, p->err, sizeof p->err);
    for (int64_t i = 0; st == HUBKV_OK && i < nh; i++) out[i] = (int32_t)tmp[i];
    free(tmp);
    return st;
}

hubkv_status hkv_profile_set_error(hubkv_profile *p, hubkv_status st, const char *msg) {
    snprintf(p->err, sizeof p->err, "%s", msg);
    return st;
}
