/* .npy (NumPy format v1.0 on write, v1-3 on read) and DuoAttention .tsv
 * readers/writers, plus the per-head quantities exported from a profile. */
#include "export.h"

#include "solve.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---------------------------------------------------------------- npy */

hkm_status hks_npy_write(const char *path, int ndim, const int64_t *shape, const float *data, hkm_err *err) {
    if (ndim < 1 || ndim > 4 || !data)
        return hkm_fail(err, HKM_ERR_ARG, "%s: npy ndim %d; expected 1..4 and data", path, ndim);
    char hdr[256], dims[160] = "";
    size_t n = 1, o = 0;
    for (int k = 0; k < ndim; k++) {
        if (shape[k] < 0) return hkm_fail(err, HKM_ERR_ARG, "%s: npy shape[%d] = %lld; expected >= 0", path, k, (long long)shape[k]);
        n *= (size_t)shape[k];
        o += (size_t)snprintf(dims + o, sizeof dims - o, "%lld,%s", (long long)shape[k], ndim > 1 && k < ndim - 1 ? " " : "");
    }
    if (ndim > 1) dims[o - 1] = '\0'; /* (a, b) not (a, b,) */
    int hl = snprintf(hdr, sizeof hdr, "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }", dims);
    // Magic (6) + version (2) + length (2) + header, padded with spaces to 64 bytes, ending in '\n'.
    int total = 10 + hl + 1, pad = (64 - total % 64) % 64;
    memset(hdr + hl, ' ', (size_t)pad);
    hdr[hl + pad] = '\n';
    uint16_t len = (uint16_t)(hl + pad + 1);
    char tmp[4200];
    FILE *f;
    HKM_TRY(hkm_tmp_open(path, "wb", tmp, sizeof tmp, &f, err));
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(len & 0xff), (unsigned char)(len >> 8)};
    fwrite(pre, 1, 10, f);
    fwrite(hdr, 1, len, f);
    fwrite(data, sizeof *data, n, f); /* little-endian host (x86-64, aarch64) */
    return hkm_tmp_commit(f, tmp, path, err);
}

/* Value of 'key' in the header dict: pointer just after "'key':" and spaces. */
static const char *dict_value(const char *h, const char *key) {
    char pat[64];
    snprintf(pat, sizeof pat, "'%s':", key);
    const char *p = strstr(h, pat);
    if (!p) return NULL;
    p += strlen(pat);
    while (*p == ' ') p++;
    return p;
}

static hkm_status parse_header(const char *path, const char *h, int *is_f8, int *ndim, int64_t *shape, hkm_err *err) {
    const char *d = dict_value(h, "descr"), *fo = dict_value(h, "fortran_order"), *sh = dict_value(h, "shape");
    if (!d || !fo || !sh)
        return hkm_fail(err, HKM_ERR_FORMAT, "%s: npy header lacks descr, fortran_order or shape: %.120s", path, h);
    if (!strncmp(d, "'<f4'", 5)) *is_f8 = 0;
    else if (!strncmp(d, "'<f8'", 5)) *is_f8 = 1;
    else return hkm_fail(err, HKM_ERR_UNSUPPORTED, "%s: npy descr %.8s; expected '<f4' or '<f8'", path, d);
    if (strncmp(fo, "False", 5))
        return hkm_fail(err, HKM_ERR_UNSUPPORTED, "%s: npy fortran_order %.5s; expected False", path, fo);
    if (*sh != '(') return hkm_fail(err, HKM_ERR_FORMAT, "%s: npy shape %.20s; expected a tuple", path, sh);
    *ndim = 0;
    const char *p = sh + 1;
    for (;;) {
        while (*p == ' ' || *p == ',') p++;
        if (*p == ')') break;
        char *e;
        errno = 0;
        long long v = strtoll(p, &e, 10);
        if (e == p || errno || v < 0 || *ndim >= 4)
            return hkm_fail(err, HKM_ERR_FORMAT, "%s: npy shape %.40s; expected up to 4 non-negative integers", path, sh);
        shape[(*ndim)++] = v;
        p = e;
    }
    return HKM_OK;
}

hkm_status hks_npy_read(const char *path, int *ndim, int64_t *shape, float **data, hkm_err *err) {
    *data = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return hkm_fail(err, HKM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    unsigned char pre[12];
    hkm_status st = HKM_OK;
    char *h = NULL;
    void *raw = NULL;
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6)) {
        st = hkm_fail(err, HKM_ERR_FORMAT, "%s: no .npy magic (\\x93NUMPY): expected a NumPy array file", path);
        goto done;
    }
    size_t hl = pre[8] | (size_t)pre[9] << 8;
    if (pre[6] >= 2) { // v2/v3: 4-byte header length
        if (fread(pre + 10, 1, 2, f) != 2) { st = hkm_fail(err, HKM_ERR_FORMAT, "%s: truncated npy header", path); goto done; }
        hl |= (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
    } else if (pre[6] != 1) {
        st = hkm_fail(err, HKM_ERR_UNSUPPORTED, "%s: npy version %d.%d; expected 1, 2 or 3", path, pre[6], pre[7]);
        goto done;
    }
    if (hl == 0 || hl > 1 << 20) { st = hkm_fail(err, HKM_ERR_FORMAT, "%s: npy header length %zu; expected 1..1 MiB", path, hl); goto done; }
    h = calloc(hl + 1, 1);
    if (!h) { st = hkm_fail(err, HKM_ERR_NOMEM, "%s: out of memory", path); goto done; }
    if (fread(h, 1, hl, f) != hl) { st = hkm_fail(err, HKM_ERR_FORMAT, "%s: truncated npy header (%zu bytes)", path, hl); goto done; }
    int is_f8 = 0;
    if ((st = parse_header(path, h, &is_f8, ndim, shape, err))) goto done;
    size_t n = 1;
    for (int k = 0; k < *ndim; k++) {
        if (shape[k] > 0 && n > ((size_t)1 << 40) / (size_t)shape[k]) { st = hkm_fail(err, HKM_ERR_FORMAT, "%s: npy shape too large", path); goto done; }
        n *= (size_t)shape[k];
    }
    size_t es = is_f8 ? 8 : 4;
    raw = calloc(n ? n : 1, es);
    *data = calloc(n ? n : 1, sizeof **data);
    if (!raw || !*data) { st = hkm_fail(err, HKM_ERR_NOMEM, "%s: out of memory for %zu values", path, n); goto done; }
    if (fread(raw, es, n, f) != n) { st = hkm_fail(err, HKM_ERR_FORMAT, "%s: npy data truncated: expected %zu values", path, n); goto done; }
    for (size_t i = 0; i < n; i++) (*data)[i] = is_f8 ? (float)((double *)raw)[i] : ((float *)raw)[i];
done:
    if (st) { free(*data); *data = NULL; }
    free(h);
    free(raw);
    fclose(f);
    return st;
}

/* ---------------------------------------------------------------- DuoAttention tsv */

hkm_status hks_duo_write(const char *path, int32_t L, int32_t H, const float *vals, hkm_err *err) {
    char tmp[4200];
    FILE *f;
    HKM_TRY(hkm_tmp_open(path, "w", tmp, sizeof tmp, &f, err));
    for (int32_t l = 0; l < L; l++)
        for (int32_t h = 0; h < H; h++) fprintf(f, "%.9g%c", vals[l * H + h], h + 1 < H ? '\t' : '\n');
    return hkm_tmp_commit(f, tmp, path, err);
}

hkm_status hks_duo_read(const char *path, int32_t *L, int32_t *H, float **vals, hkm_err *err) {
    *vals = NULL;
    *L = *H = 0;
    FILE *f = fopen(path, "r");
    if (!f) return hkm_fail(err, HKM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0, n = 0, ncap = 0;
    hkm_status st = HKM_OK;
    int32_t rows = 0;
    while (getline(&line, &cap, f) > 0) {
        char *p = line, *e;
        int32_t cols = 0;
        while (*p == ' ' || *p == '\t') p++;
        if (*p == '\n' || *p == '\r' || !*p) continue; // blank line
        for (;;) {
            while (*p == ' ' || *p == '\t') p++;
            if (*p == '\n' || *p == '\r' || !*p) break;
            double v = strtod(p, &e);
            if (e == p || !(v >= 0 && v <= 1)) {
                st = hkm_fail(err, HKM_ERR_FORMAT, "%s: line %d, column %d: '%.16s'; expected a number in [0, 1]", path,
                              rows + 1, cols + 1, p);
                goto done;
            }
            if (n == ncap) {
                ncap = ncap ? 2 * ncap : 256;
                float *nv = realloc(*vals, ncap * sizeof *nv);
                if (!nv) { st = hkm_fail(err, HKM_ERR_NOMEM, "%s: out of memory", path); goto done; }
                *vals = nv;
            }
            (*vals)[n++] = (float)v;
            cols++;
            p = e;
        }
        if (rows && cols != *H) {
            st = hkm_fail(err, HKM_ERR_FORMAT, "%s: line %d has %d values; expected %d like line 1", path, rows + 1, cols, *H);
            goto done;
        }
        *H = cols;
        rows++;
    }
    if (!rows) st = hkm_fail(err, HKM_ERR_FORMAT, "%s: no values; expected one line of per-head values per layer", path);
    *L = rows;
done:
    if (st) { free(*vals); *vals = NULL; *L = *H = 0; }
    free(line);
    fclose(f);
    return st;
}

/* ---------------------------------------------------------------- derived */

void hks_lukv_from_keep(const float *keep, int32_t L, int32_t H, float *prune) {
    for (int64_t i = 0; i < (int64_t)HKS_N_RATIOS * L * H; i++) prune[i] = 1.0f - keep[i];
}

void hks_duo_from_keep(const float *keep, int32_t L, int32_t H, int ratio_pct, float *duo) {
    memcpy(duo, keep + (int64_t)(ratio_pct - 1) * L * H, (size_t)L * H * sizeof *duo);
}

void hks_kvzip_from_keep(const float *keep, int32_t L, int32_t H, float *score) {
    for (int64_t i = 0; i < (int64_t)L * H; i++) {
        double s = 0;
        for (int r = 0; r < HKS_N_RATIOS; r++) s += keep[(int64_t)r * L * H + i];
        score[i] = (float)(s / HKS_N_RATIOS);
    }
}
