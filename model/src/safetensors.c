/* safetensors reader: one file or the shards of an index, mmap'ed read-only,
 * every header entry validated (dtype, shape, offsets within the file) before
 * any tensor is read; F32/F16/BF16 converted to fp32 exactly. */
#include "hkm_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------- types */

typedef struct {
    char *path;
    void *map;
    size_t size;
    const uint8_t *data; /* start of the data section */
    size_t data_len;
} st_file;

typedef struct {
    char *name;
    int file;             /* index into files */
    const char *dtype_str;/* points into dtype_names below */
    int dtype;            /* HKM_DT_*, or -1 when the dtype is valid but not convertible */
    int ndim;
    int64_t dims[8];
    size_t begin, end;    /* byte range within the file's data section */
} st_tensor;

struct hkm_st {
    char *origin; /* what was opened: the single file or the index, for messages */
    int n_files;
    st_file *files;
    int n_tensors, cap;
    st_tensor *tensors; /* sorted by name once opened */
};

/* Every safetensors dtype with its size, so unused tensors of other dtypes
 * are still validated; only the first three can be read. */
static const struct {
    const char *name;
    int dtype;
    size_t size;
} DTYPES[] = {
    {"F32", HKM_DT_F32, 4}, {"F16", HKM_DT_F16, 2},   {"BF16", HKM_DT_BF16, 2},
    {"F64", -1, 8},         {"I64", -1, 8},           {"U64", -1, 8},
    {"I32", -1, 4},         {"U32", -1, 4},           {"I16", -1, 2},
    {"U16", -1, 2},         {"I8", -1, 1},            {"U8", -1, 1},
    {"BOOL", -1, 1},        {"F8_E4M3", -1, 1},       {"F8_E5M2", -1, 1},
};
#define N_DTYPES (sizeof DTYPES / sizeof DTYPES[0])

/* ---------------------------------------------------------------- helpers */

static char *path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

static int file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* Exact JSON integer in [0, 2^53). */
static int json_u53(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= 0 && d < 9007199254740992.0) || d != floor(d)) return 0;
    *out = (uint64_t)d;
    return 1;
}

/* ---------------------------------------------------------------- mapping */

static hkm_status map_file(st_file *f, hkm_err *err) {
    int fd = open(f->path, O_RDONLY);
    if (fd < 0) return hkm_fail(err, HKM_ERR_IO, "%s: cannot open: %s", f->path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return hkm_fail(err, HKM_ERR_IO, "%s: not a regular file", f->path);
    }
    f->size = (size_t)sb.st_size;
    if (f->size < 8) {
        close(fd);
        return hkm_fail(err, HKM_ERR_FORMAT, "%s: file is %zu bytes, expected at least the 8-byte "
                        "header length", f->path, f->size);
    }
    f->map = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (f->map == MAP_FAILED) {
        f->map = NULL;
        return hkm_fail(err, HKM_ERR_IO, "%s: mmap failed: %s", f->path, strerror(errno));
    }
    return HKM_OK;
}

/* ---------------------------------------------------------------- header */

static hkm_status add_tensor(hkm_st *st, st_tensor *t, hkm_err *err) {
    if (st->n_tensors == st->cap) {
        int cap = st->cap ? 2 * st->cap : 64;
        st_tensor *nt = realloc(st->tensors, (size_t)cap * sizeof *nt);
        if (!nt) return hkm_fail(err, HKM_ERR_NOMEM, "safetensors: out of memory for the tensor list");
        st->tensors = nt;
        st->cap = cap;
    }
    t->name = strdup(t->name);
    if (!t->name) return hkm_fail(err, HKM_ERR_NOMEM, "safetensors: out of memory for a tensor name");
    st->tensors[st->n_tensors++] = *t;
    return HKM_OK;
}

static hkm_status parse_dtype(const st_file *f, const char *name, const cJSON *e, st_tensor *t,
                              size_t *elsize, hkm_err *err) {
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    if (!cJSON_IsString(d))
        return hkm_fail(err, HKM_ERR_FORMAT, "%s: tensor '%s': field 'dtype' missing or not a string",
                        f->path, name);
    for (size_t i = 0; i < N_DTYPES; i++) {
        if (strcmp(d->valuestring, DTYPES[i].name) == 0) {
            t->dtype_str = DTYPES[i].name;
            t->dtype = DTYPES[i].dtype;
            *elsize = DTYPES[i].size;
            return HKM_OK;
        }
    }
    return hkm_fail(err, HKM_ERR_UNSUPPORTED, "%s: tensor '%s': unknown dtype '%s' (expected F32, F16 "
                    "or BF16)", f->path, name, d->valuestring);
}

/* Shape -> dims and byte size, overflow-checked. */
static hkm_status parse_shape(const st_file *f, const char *name, const cJSON *e, st_tensor *t,
                              size_t elsize, uint64_t *nbytes, hkm_err *err) {
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(e, "shape");
    int n = cJSON_IsArray(s) ? cJSON_GetArraySize(s) : -1;
    if (n < 0 || n > 8)
        return hkm_fail(err, HKM_ERR_FORMAT, "%s: tensor '%s': field 'shape': expected a list of at "
                        "most 8 integers", f->path, name);
    uint64_t total = elsize;
    t->ndim = n;
    for (int i = 0; i < n; i++) {
        uint64_t d;
        if (!json_u53(cJSON_GetArrayItem(s, i), &d))
            return hkm_fail(err, HKM_ERR_FORMAT, "%s: tensor '%s': field 'shape[%d]': expected a "
                            "non-negative integer", f->path, name, i);
        t->dims[i] = (int64_t)d;
        if (__builtin_mul_overflow(total, d, &total))
            return hkm_fail(err, HKM_ERR_FORMAT, "%s: tensor '%s': shape overflows 64-bit byte size",
                            f->path, name);
    }
    *nbytes = total;
    return HKM_OK;
}

static hkm_status parse_offsets(const st_file *f, const char *name, const cJSON *e, st_tensor *t,
                                uint64_t nbytes, hkm_err *err) {
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    uint64_t b, en;
    if (!cJSON_IsArray(o) || cJSON_GetArraySize(o) != 2 || !json_u53(cJSON_GetArrayItem(o, 0), &b) ||
        !json_u53(cJSON_GetArrayItem(o, 1), &en))
        return hkm_fail(err, HKM_ERR_FORMAT, "%s: tensor '%s': field 'data_offsets': expected "
                        "[begin, end] non-negative integers", f->path, name);
    if (b > en || en > f->data_len)
        return hkm_fail(err, HKM_ERR_FORMAT, "%s: tensor '%s': data_offsets [%llu, %llu) outside the "
                        "data section of %zu bytes", f->path, name, (unsigned long long)b,
                        (unsigned long long)en, f->data_len);
    if (en - b != nbytes)
        return hkm_fail(err, HKM_ERR_FORMAT, "%s: tensor '%s': data_offsets span %llu bytes, expected "
                        "%llu for its shape and dtype %s", f->path, name,
                        (unsigned long long)(en - b), (unsigned long long)nbytes, t->dtype_str);
    t->begin = (size_t)b;
    t->end = (size_t)en;
    return HKM_OK;
}

static hkm_status parse_entry(hkm_st *st, int fi, const cJSON *e, hkm_err *err) {
    const st_file *f = &st->files[fi];
    const char *name = e->string;
    if (!cJSON_IsObject(e))
        return hkm_fail(err, HKM_ERR_FORMAT, "%s: tensor '%s': expected an object with dtype, shape, "
                        "data_offsets", f->path, name);
    st_tensor t;
    memset(&t, 0, sizeof t);
    t.name = (char *)name;
    t.file = fi;
    size_t elsize = 0;
    uint64_t nbytes = 0;
    HKM_TRY(parse_dtype(f, name, e, &t, &elsize, err));
    HKM_TRY(parse_shape(f, name, e, &t, elsize, &nbytes, err));
    HKM_TRY(parse_offsets(f, name, e, &t, nbytes, err));
    return add_tensor(st, &t, err);
}

static hkm_status parse_header(hkm_st *st, int fi, hkm_err *err) {
    st_file *f = &st->files[fi];
    const uint8_t *p = f->map;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | p[i]; /* little-endian */
    if (hlen > f->size - 8)
        return hkm_fail(err, HKM_ERR_FORMAT, "%s: header length %llu exceeds the file size %zu "
                        "(truncated file?)", f->path, (unsigned long long)hlen, f->size);
    f->data = p + 8 + hlen;
    f->data_len = f->size - 8 - (size_t)hlen;
    cJSON *h = cJSON_ParseWithLength((const char *)p + 8, (size_t)hlen);
    if (!cJSON_IsObject(h)) {
        cJSON_Delete(h);
        return hkm_fail(err, HKM_ERR_FORMAT, "%s: header is not a valid JSON object (expected "
                        "{\"name\": {dtype, shape, data_offsets}, ...})", f->path);
    }
    hkm_status s = HKM_OK;
    const cJSON *e;
    cJSON_ArrayForEach(e, h) {
        if (strcmp(e->string, "__metadata__") == 0) continue;
        if ((s = parse_entry(st, fi, e, err)) != HKM_OK) break;
    }
    cJSON_Delete(h);
    return s;
}

/* ---------------------------------------------------------------- lookup */

static int cmp_tensor(const void *a, const void *b) {
    return strcmp(((const st_tensor *)a)->name, ((const st_tensor *)b)->name);
}

static const st_tensor *find(const hkm_st *st, const char *name) {
    st_tensor key;
    key.name = (char *)name;
    if (st->n_tensors == 0) return NULL; /* bsearch on a NULL array is undefined */
    return bsearch(&key, st->tensors, (size_t)st->n_tensors, sizeof key, cmp_tensor);
}

static hkm_status sort_and_check_unique(hkm_st *st, hkm_err *err) {
    if (st->n_tensors < 2) return HKM_OK; /* qsort on a NULL array is undefined */
    qsort(st->tensors, (size_t)st->n_tensors, sizeof *st->tensors, cmp_tensor);
    for (int i = 1; i < st->n_tensors; i++) {
        if (strcmp(st->tensors[i - 1].name, st->tensors[i].name) == 0)
            return hkm_fail(err, HKM_ERR_FORMAT, "%s: tensor '%s' also appears in %s",
                            st->files[st->tensors[i].file].path, st->tensors[i].name,
                            st->files[st->tensors[i - 1].file].path);
    }
    return HKM_OK;
}

/* ---------------------------------------------------------------- open */

static hkm_status add_file(hkm_st *st, char *path, hkm_err *err) {
    st_file *nf = realloc(st->files, (size_t)(st->n_files + 1) * sizeof *nf);
    if (!nf) {
        free(path);
        return hkm_fail(err, HKM_ERR_NOMEM, "safetensors: out of memory for the file list");
    }
    st->files = nf;
    memset(&nf[st->n_files], 0, sizeof *nf);
    nf[st->n_files].path = path;
    st->n_files++;
    HKM_TRY(map_file(&nf[st->n_files - 1], err));
    return parse_header(st, st->n_files - 1, err);
}

static int file_index(const hkm_st *st, const char *path) {
    for (int i = 0; i < st->n_files; i++)
        if (strcmp(st->files[i].path, path) == 0) return i;
    return -1;
}

/* One weight_map entry: open its shard if new, check the shard holds it. */
static hkm_status index_entry(hkm_st *st, const char *dir, const char *ipath, const cJSON *e,
                              hkm_err *err) {
    if (!cJSON_IsString(e) || strchr(e->valuestring, '/') || e->valuestring[0] == '.')
        return hkm_fail(err, HKM_ERR_FORMAT, "%s: weight_map['%s']: expected a shard file name in "
                        "the same directory", ipath, e->string);
    char *path = path_join(dir, e->valuestring);
    if (!path) return hkm_fail(err, HKM_ERR_NOMEM, "safetensors: out of memory");
    int fi = file_index(st, path);
    if (fi < 0) {
        if (!file_exists(path)) {
            hkm_status s = hkm_fail(err, HKM_ERR_MISSING, "%s: weight_map['%s'] names shard %s, "
                                    "which does not exist", ipath, e->string, path);
            free(path);
            return s;
        }
        HKM_TRY(add_file(st, path, err));
    } else {
        free(path);
    }
    return HKM_OK;
}

static hkm_status check_index_entry(const hkm_st *st, const char *dir, const char *ipath,
                                    const cJSON *e, hkm_err *err) {
    char *path = path_join(dir, e->valuestring);
    if (!path) return hkm_fail(err, HKM_ERR_NOMEM, "safetensors: out of memory");
    const st_tensor *t = find(st, e->string);
    hkm_status s = HKM_OK;
    if (!t || strcmp(st->files[t->file].path, path) != 0)
        s = hkm_fail(err, HKM_ERR_MISSING, "%s: tensor '%s' is missing from %s (named by %s)", path,
                     e->string, path, ipath);
    free(path);
    return s;
}

static hkm_status open_index(hkm_st *st, const char *dir, const char *ipath, hkm_err *err) {
    FILE *fp = fopen(ipath, "rb");
    if (!fp) return hkm_fail(err, HKM_ERR_IO, "%s: cannot open: %s", ipath, strerror(errno));
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    char buf[65536];
    size_t n;
    while (mem && (n = fread(buf, 1, sizeof buf, fp)) > 0) fwrite(buf, 1, n, mem);
    fclose(fp);
    if (!mem) return hkm_fail(err, HKM_ERR_NOMEM, "%s: out of memory", ipath);
    fclose(mem);
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    hkm_status s = HKM_OK;
    if (!cJSON_IsObject(wm))
        s = hkm_fail(err, HKM_ERR_FORMAT, "%s: %s (expected an object with field 'weight_map')", ipath,
                     root ? "field 'weight_map' missing or not an object" : "malformed JSON");
    const cJSON *e;
    if (s == HKM_OK) cJSON_ArrayForEach(e, wm) {
            if ((s = index_entry(st, dir, ipath, e, err)) != HKM_OK) break;
        }
    if (s == HKM_OK) s = sort_and_check_unique(st, err);
    if (s == HKM_OK) cJSON_ArrayForEach(e, wm) {
            if ((s = check_index_entry(st, dir, ipath, e, err)) != HKM_OK) break;
        }
    cJSON_Delete(root);
    return s;
}

static hkm_status open_any(hkm_st *st, const char *dir, hkm_err *err) {
    struct stat sb;
    if (stat(dir, &sb) != 0)
        return hkm_fail(err, HKM_ERR_IO, "%s: cannot access: %s", dir, strerror(errno));
    if (S_ISREG(sb.st_mode)) { /* a single .safetensors file given directly */
        char *p = strdup(dir);
        st->origin = strdup(dir);
        if (!p || !st->origin) {
            free(p);
            return hkm_fail(err, HKM_ERR_NOMEM, "safetensors: out of memory");
        }
        HKM_TRY(add_file(st, p, err));
        return sort_and_check_unique(st, err);
    }
    char *single = path_join(dir, "model.safetensors");
    char *index = path_join(dir, "model.safetensors.index.json");
    hkm_status s;
    if (!single || !index) {
        s = hkm_fail(err, HKM_ERR_NOMEM, "safetensors: out of memory");
    } else if (file_exists(single)) {
        st->origin = strdup(single);
        s = add_file(st, single, err);
        single = NULL;
        if (s == HKM_OK) s = sort_and_check_unique(st, err);
    } else if (file_exists(index)) {
        st->origin = index;
        s = open_index(st, dir, index, err);
        index = NULL;
    } else {
        s = hkm_fail(err, HKM_ERR_MISSING, "%s: neither model.safetensors nor "
                     "model.safetensors.index.json found", dir);
    }
    free(single);
    free(index);
    return s;
}

hkm_status hkm_st_open(const char *dir, hkm_st **out, hkm_err *err) {
    if (!dir || !out) return hkm_fail(err, HKM_ERR_ARG, "hkm_st_open: NULL argument");
    *out = NULL;
    hkm_st *st;
    HKM_ALLOC(st, 1, err);
    hkm_status s = open_any(st, dir, err);
    if (s != HKM_OK) {
        hkm_st_free(st);
        return s;
    }
    *out = st;
    return HKM_OK;
}

void hkm_st_free(hkm_st *st) {
    if (!st) return;
    for (int i = 0; i < st->n_files; i++) {
        if (st->files[i].map) munmap(st->files[i].map, st->files[i].size);
        free(st->files[i].path);
    }
    for (int i = 0; i < st->n_tensors; i++) free(st->tensors[i].name);
    free(st->files);
    free(st->tensors);
    free(st->origin);
    free(st);
}

/* ---------------------------------------------------------------- read */

const char *hkm_st_file(const hkm_st *st, const char *name) {
    const st_tensor *t = st && name ? find(st, name) : NULL;
    return t ? st->files[t->file].path : NULL;
}

static hkm_status lookup(const hkm_st *st, const char *name, const st_tensor **out, hkm_err *err) {
    const st_tensor *t = find(st, name);
    if (!t)
        return hkm_fail(err, HKM_ERR_MISSING, "%s: tensor '%s' is missing",
                        st->origin ? st->origin : "safetensors", name);
    if (t->dtype < 0)
        return hkm_fail(err, HKM_ERR_UNSUPPORTED, "%s: tensor '%s': dtype %s is not supported "
                        "(expected F32, F16 or BF16)", st->files[t->file].path, name, t->dtype_str);
    *out = t;
    return HKM_OK;
}

hkm_status hkm_st_info(const hkm_st *st, const char *name, hkm_tensor_info *info, hkm_err *err) {
    if (!st || !name || !info) return hkm_fail(err, HKM_ERR_ARG, "hkm_st_info: NULL argument");
    const st_tensor *t = NULL;
    HKM_TRY(lookup(st, name, &t, err));
    info->ndim = t->ndim;
    memcpy(info->dims, t->dims, sizeof info->dims);
    info->dtype = t->dtype;
    return HKM_OK;
}

/* IEEE half -> single, exact (subnormals, inf and NaN included). */
static float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13);
    } else if (exp != 0) {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    } else if (man == 0) {
        bits = sign;
    } else { /* subnormal: value = man * 2^-24, exact in fp32 */
        float v = (float)man * 0x1p-24f;
        return sign ? -v : v;
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static void convert(const uint8_t *src, int dtype, float *dst, size_t n) {
    if (dtype == HKM_DT_F32) {
        memcpy(dst, src, n * 4); /* data may be unaligned: memcpy, not a cast */
        return;
    }
    for (size_t i = 0; i < n; i++) {
        uint16_t h = (uint16_t)(src[2 * i] | (src[2 * i + 1] << 8));
        if (dtype == HKM_DT_F16) {
            dst[i] = f16_to_f32(h);
        } else {
            uint32_t bits = (uint32_t)h << 16;
            memcpy(&dst[i], &bits, 4);
        }
    }
}

hkm_status hkm_st_read_f32(const hkm_st *st, const char *name, float *dst, size_t n, hkm_err *err) {
    if (!st || !name || !dst) return hkm_fail(err, HKM_ERR_ARG, "hkm_st_read_f32: NULL argument");
    const st_tensor *t = NULL;
    HKM_TRY(lookup(st, name, &t, err));
    size_t elsize = t->dtype == HKM_DT_F32 ? 4 : 2;
    size_t count = (t->end - t->begin) / elsize;
    if (count != n)
        return hkm_fail(err, HKM_ERR_SHAPE, "%s: tensor '%s': holds %zu elements, caller expected %zu",
                        st->files[t->file].path, name, count, n);
    convert(st->files[t->file].data + t->begin, t->dtype, dst, n);
    return HKM_OK;
}
