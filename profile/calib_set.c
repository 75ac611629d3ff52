/* Calibration-set HDF5 file: write (temp file + rename) and validated read. */
#include "calib_set.h"
#include "h5check.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char *TASK_NAMES[HKP_TASK_COUNT] = {"natural", "needle", "kv",    "mdqa",
                                                 "vartrack", "copy",  "random"};

const char *hkp_task_name(int t) { return t >= 0 && t < HKP_TASK_COUNT ? TASK_NAMES[t] : "?"; }

int hkp_task_from_name(const char *name) {
    for (int t = 0; t < HKP_TASK_COUNT; t++)
        if (!strcmp(name, TASK_NAMES[t])) return t;
    return -1;
}

void hkp_calib_free(hkp_calib *c) {
    if (!c) return;
    free(c->tokens);
    free(c->offsets);
    free(c->task);
    free(c->split);
    free(c->future_start);
    free(c->future_len);
    free(c->seg_offsets);
    free(c->segs);
    free(c->span_offsets);
    free(c->spans);
    free(c->kvzip_prompt);
    memset(c, 0, sizeof *c);
}

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

uint64_t hkp_calib_hash(const hkp_calib *c) {
    uint64_t h = 1469598103934665603ull;
    int64_t n = c->n;
    h = fnv(h, &n, sizeof n);
    h = fnv(h, c->tokens, (size_t)c->offsets[n] * sizeof(int32_t));
    h = fnv(h, c->offsets, (size_t)(n + 1) * sizeof(int64_t));
    h = fnv(h, c->future_start, (size_t)n * sizeof(int32_t));
    h = fnv(h, c->future_len, (size_t)n * sizeof(int32_t));
    h = fnv(h, c->split, (size_t)n * sizeof(int32_t));
    h = fnv(h, c->kvzip_prompt, (size_t)c->n_kvzip * sizeof(int32_t));
    return h;
}

/* ---------------------------------------------------------------- write */

hkm_status hkp_calib_write(hkp_calib *c, const char *path, hkm_err *err) {
    hkm_status st = HKM_OK;
    char tmp[4200];
    HKM_TRY(hkm_tmp_name(path, tmp, sizeof tmp, err));
    const char *h5path = tmp;
    hid_t f = -1;
    hkp_h5_quiet();
    c->content_hash = hkp_calib_hash(c);
    H5ID(f, H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
    int32_t version = HKP_CALIB_VERSION;
    hsize_t n = (hsize_t)c->n, n1 = n + 1;
    hsize_t nt = (hsize_t)c->offsets[c->n], ns = (hsize_t)c->seg_offsets[c->n];
    hsize_t nsp[2] = {(hsize_t)c->span_offsets[c->n], 2}, nk = (hsize_t)c->n_kvzip;
#define W(name, type, rank, dims, data) \
    if ((st = hkp_h5_write(f, tmp, name, type, rank, dims, data, err)) != HKM_OK) goto fail
    W("tokens", H5T_NATIVE_INT32, 1, &nt, c->tokens);
    W("offsets", H5T_NATIVE_INT64, 1, &n1, c->offsets);
    W("task", H5T_NATIVE_INT32, 1, &n, c->task);
    W("split", H5T_NATIVE_INT32, 1, &n, c->split);
    W("future_start", H5T_NATIVE_INT32, 1, &n, c->future_start);
    W("future_len", H5T_NATIVE_INT32, 1, &n, c->future_len);
    W("seg_offsets", H5T_NATIVE_INT64, 1, &n1, c->seg_offsets);
    W("segs", H5T_NATIVE_INT32, 1, &ns, c->segs);
    W("span_offsets", H5T_NATIVE_INT64, 1, &n1, c->span_offsets);
    W("spans", H5T_NATIVE_INT32, 2, nsp, c->spans);
    W("kvzip_prompt", H5T_NATIVE_INT32, 1, &nk, c->kvzip_prompt);
#undef W
#define A(call) if ((st = (call)) != HKM_OK) goto fail
    A(hkp_h5_attr_write_str(f, tmp, "format", HKP_CALIB_FORMAT, err));
    A(hkp_h5_attr_write(f, tmp, "version", H5T_NATIVE_INT32, &version, err));
    A(hkp_h5_attr_write(f, tmp, "seed", H5T_NATIVE_UINT64, &c->seed, err));
    A(hkp_h5_attr_write(f, tmp, "content_hash", H5T_NATIVE_UINT64, &c->content_hash, err));
    A(hkp_h5_attr_write(f, tmp, "chat_template", H5T_NATIVE_INT32, &c->chat_template, err));
    A(hkp_h5_attr_write_str(f, tmp, "tokenizer", c->tokenizer, err));
    A(hkp_h5_attr_write_str(f, tmp, "mix", c->mix, err));
    char names[256] = "";
    for (int t = 0; t < HKP_TASK_COUNT; t++)
        snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", t ? "," : "",
                 TASK_NAMES[t]);
    A(hkp_h5_attr_write_str(f, tmp, "task_names", names, err));
#undef A
    hid_t closing = f; // a failed close must not be retried on the fail path
    f = -1;
    H5TRY(H5Fclose(closing));
    if ((st = hkm_file_commit(tmp, path, err)) != HKM_OK) goto fail;
    return HKM_OK;
fail:
    if (f >= 0) H5Fclose(f);
    unlink(tmp);
    return st;
}

/* ---------------------------------------------------------------- read */

static hkm_status check_offsets(const char *path, const char *name, const int64_t *off, int64_t n,
                                int64_t total, hkm_err *err) {
    if (off[0] != 0)
        return hkm_fail(err, HKM_ERR_FORMAT, "%s: %s[0]=%lld: expected 0", path, name,
                        (long long)off[0]);
    for (int64_t i = 0; i < n; i++)
        if (off[i + 1] < off[i])
            return hkm_fail(err, HKM_ERR_FORMAT, "%s: %s[%lld]=%lld < %s[%lld]: expected non-decreasing",
                            path, name, (long long)i + 1, (long long)off[i + 1], name, (long long)i);
    if (off[n] != total)
        return hkm_fail(err, HKM_ERR_FORMAT, "%s: %s[n]=%lld: expected %lld (the data's length)",
                        path, name, (long long)off[n], (long long)total);
    return HKM_OK;
}

/* Per-context fields against the token ranges. */
static hkm_status check_contexts(const char *path, const hkp_calib *c, hkm_err *err) {
    for (int64_t i = 0; i < c->n; i++) {
        int64_t len = c->offsets[i + 1] - c->offsets[i];
        int32_t fs = c->future_start[i], fl = c->future_len[i];
        if (c->task[i] < 0 || c->task[i] >= HKP_TASK_COUNT)
            return hkm_fail(err, HKM_ERR_FORMAT, "%s: task[%lld]=%d: expected 0..%d", path,
                            (long long)i, c->task[i], HKP_TASK_COUNT - 1);
        if (c->split[i] != HKP_SPLIT_CALIB && c->split[i] != HKP_SPLIT_HELDOUT)
            return hkm_fail(err, HKM_ERR_FORMAT, "%s: split[%lld]=%d: expected 0 or 1", path,
                            (long long)i, c->split[i]);
        if (fs <= 0 || fl <= 0 || (int64_t)fs + fl != len)
            return hkm_fail(err, HKM_ERR_FORMAT,
                            "%s: context %lld: future_start=%d future_len=%d: expected both > 0 "
                            "and summing to its %lld tokens", path, (long long)i, fs, fl, (long long)len);
        for (int64_t s = c->seg_offsets[i]; s < c->seg_offsets[i + 1]; s++)
            if (c->segs[s] < 0 || c->segs[s] >= len)
                return hkm_fail(err, HKM_ERR_FORMAT, "%s: context %lld: segment start %d: expected 0..%lld",
                                path, (long long)i, c->segs[s], (long long)len - 1);
        for (int64_t s = c->span_offsets[i]; s < c->span_offsets[i + 1]; s++) {
            int32_t a = c->spans[2 * s], l = c->spans[2 * s + 1];
            if (a < 0 || l <= 0 || (int64_t)a + l > fs)
                return hkm_fail(err, HKM_ERR_FORMAT, "%s: context %lld: span (%d, %d): expected inside "
                                "the context [0, %d)", path, (long long)i, a, l, fs);
        }
    }
    return HKM_OK;
}

/* Length of a 1-D dataset, refused above `cap` entries (the int32 fields and
 * indices of hkp_calib) before anything is allocated from it. */
static hkm_status capped_len(hid_t f, const char *path, const char *name, hsize_t cap, hsize_t *len,
                             hkm_err *err) {
    HKM_TRY(hkp_h5_len(f, path, name, len, err));
    if (*len > cap)
        return hkm_fail(err, HKM_ERR_FORMAT, "%s: dataset '%s' has %llu entries: expected at most %llu",
                        path, name, (unsigned long long)*len, (unsigned long long)cap);
    return HKM_OK;
}

static hkm_status read_arrays(hid_t f, const char *path, hkp_calib *c, hkm_err *err) {
    const hsize_t cap = INT32_MAX; // token positions and the kvzip count are int32
    hsize_t n1, nt, ns, nk, nsp;
    HKM_TRY(capped_len(f, path, "offsets", cap, &n1, err));
    if (n1 < 1) return hkm_fail(err, HKM_ERR_FORMAT, "%s: offsets is empty: expected n + 1 >= 1", path);
    c->n = (int64_t)n1 - 1;
    hsize_t n = n1 - 1;
    HKM_TRY(capped_len(f, path, "tokens", cap, &nt, err));
    HKM_TRY(capped_len(f, path, "segs", cap, &ns, err));
    HKM_TRY(capped_len(f, path, "kvzip_prompt", cap, &nk, err));
    hsize_t dsp[2];
    HKM_TRY(hkp_h5_dims(f, path, "spans", 2, dsp, err));
    if (dsp[0] > cap || dsp[1] != 2)
        return hkm_fail(err, HKM_ERR_FORMAT, "%s: dataset 'spans' is %llu x %llu: expected (n_spans, 2) "
                        "with n_spans <= %llu", path, (unsigned long long)dsp[0],
                        (unsigned long long)dsp[1], (unsigned long long)cap);
    HKM_ALLOC(c->offsets, n1, err);
    HKM_ALLOC(c->seg_offsets, n1, err);
    HKM_ALLOC(c->span_offsets, n1, err);
    HKM_ALLOC(c->tokens, nt, err);
    HKM_ALLOC(c->task, n, err);
    HKM_ALLOC(c->split, n, err);
    HKM_ALLOC(c->future_start, n, err);
    HKM_ALLOC(c->future_len, n, err);
    HKM_ALLOC(c->segs, ns, err);
    HKM_ALLOC(c->kvzip_prompt, nk, err);
    c->n_kvzip = (int32_t)nk;
    HKM_TRY(hkp_h5_read(f, path, "offsets", H5T_NATIVE_INT64, 1, &n1, c->offsets, err));
    HKM_TRY(hkp_h5_read(f, path, "seg_offsets", H5T_NATIVE_INT64, 1, &n1, c->seg_offsets, err));
    HKM_TRY(hkp_h5_read(f, path, "span_offsets", H5T_NATIVE_INT64, 1, &n1, c->span_offsets, err));
    HKM_TRY(check_offsets(path, "offsets", c->offsets, c->n, (int64_t)nt, err));
    HKM_TRY(check_offsets(path, "seg_offsets", c->seg_offsets, c->n, (int64_t)ns, err));
    nsp = dsp[0];
    HKM_TRY(check_offsets(path, "span_offsets", c->span_offsets, c->n, (int64_t)nsp, err));
    HKM_ALLOC(c->spans, 2 * nsp, err);
    HKM_TRY(hkp_h5_read(f, path, "tokens", H5T_NATIVE_INT32, 1, &nt, c->tokens, err));
    HKM_TRY(hkp_h5_read(f, path, "task", H5T_NATIVE_INT32, 1, &n, c->task, err));
    HKM_TRY(hkp_h5_read(f, path, "split", H5T_NATIVE_INT32, 1, &n, c->split, err));
    HKM_TRY(hkp_h5_read(f, path, "future_start", H5T_NATIVE_INT32, 1, &n, c->future_start, err));
    HKM_TRY(hkp_h5_read(f, path, "future_len", H5T_NATIVE_INT32, 1, &n, c->future_len, err));
    HKM_TRY(hkp_h5_read(f, path, "segs", H5T_NATIVE_INT32, 1, &ns, c->segs, err));
    HKM_TRY(hkp_h5_read(f, path, "spans", H5T_NATIVE_INT32, 2, dsp, c->spans, err));
    HKM_TRY(hkp_h5_read(f, path, "kvzip_prompt", H5T_NATIVE_INT32, 1, &nk, c->kvzip_prompt, err));
    for (hsize_t i = 0; i < nt; i++)
        if (c->tokens[i] < 0)
            return hkm_fail(err, HKM_ERR_FORMAT, "%s: tokens[%llu]=%d: expected >= 0", path,
                            (unsigned long long)i, c->tokens[i]);
    return check_contexts(path, c, err);
}

static hkm_status read_attrs(hid_t f, const char *path, hkp_calib *c, hkm_err *err) {
    char fmt[64];
    int32_t version = 0;
    HKM_TRY(hkp_h5_attr_read_str(f, path, "format", fmt, sizeof fmt, err));
    if (strcmp(fmt, HKP_CALIB_FORMAT))
        return hkm_fail(err, HKM_ERR_FORMAT, "%s: attribute format='%s': expected '%s'", path, fmt,
                        HKP_CALIB_FORMAT);
    HKM_TRY(hkp_h5_attr_read(f, path, "version", H5T_NATIVE_INT32, &version, err));
    if (version != HKP_CALIB_VERSION)
        return hkm_fail(err, HKM_ERR_UNSUPPORTED, "%s: version %d: expected %d", path, version,
                        HKP_CALIB_VERSION);
    HKM_TRY(hkp_h5_attr_read(f, path, "seed", H5T_NATIVE_UINT64, &c->seed, err));
    HKM_TRY(hkp_h5_attr_read(f, path, "content_hash", H5T_NATIVE_UINT64, &c->content_hash, err));
    HKM_TRY(hkp_h5_attr_read(f, path, "chat_template", H5T_NATIVE_INT32, &c->chat_template, err));
    HKM_TRY(hkp_h5_attr_read_str(f, path, "tokenizer", c->tokenizer, sizeof c->tokenizer, err));
    HKM_TRY(hkp_h5_attr_read_str(f, path, "mix", c->mix, sizeof c->mix, err));
    return HKM_OK;
}

hkm_status hkp_calib_read(const char *path, hkp_calib *c, hkm_err *err) {
    memset(c, 0, sizeof *c);
    hkp_h5_quiet();
    if (H5Fis_hdf5(path) <= 0)
        return hkm_fail(err, HKM_ERR_IO, "%s: cannot open or not HDF5: expected a calibration set "
                        "written by hubkv-synth", path);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return hkm_fail(err, HKM_ERR_IO, "%s: H5Fopen failed", path);
    hkm_status st = read_attrs(f, path, c, err);
    if (st == HKM_OK) st = read_arrays(f, path, c, err);
    H5Fclose(f);
    if (st == HKM_OK && hkp_calib_hash(c) != c->content_hash)
        st = hkm_fail(err, HKM_ERR_FORMAT, "%s: content hash %016llx: expected the stored %016llx "
                      "(file modified?)", path, (unsigned long long)hkp_calib_hash(c),
                      (unsigned long long)c->content_hash);
    if (st != HKM_OK) hkp_calib_free(c);
    return st;
}
