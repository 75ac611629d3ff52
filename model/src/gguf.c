/* GGUF (v2/v3) reader: mmap the file read-only, validate the header, the typed
 * metadata and the tensor infos field by field against the file size, then
 * serve typed key look-ups and fp32 tensors (dequantised in gguf_dequant.c). */
#include "hkm_internal.h"
#include "gguf_dequant.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the GGUF reader assumes a little-endian host"
#endif

/* GGUF value types (gguf-py GGUFValueType). */
enum { GT_U8, GT_I8, GT_U16, GT_I16, GT_U32, GT_I32, GT_F32, GT_BOOL, GT_STR, GT_ARR,
       GT_U64, GT_I64, GT_F64, GT_COUNT };

#define MAX_NAME (1u << 16)  /* longer key or tensor names are surely corrupt */
#define MAX_DIMS 4           /* GGML_MAX_DIMS */
#define MAX_DEPTH 8          /* nested arrays deeper than this are refused */
#define MIN_KV_BYTES 14      /* key len (8) + 1 char + type (4) + 1 value byte */
#define MIN_TENSOR_BYTES 33  /* name len (8) + 1 char + n_dims (4) + ne (8) + type (4) + offset (8) */

typedef struct {
    char *key;            /* NUL-terminated copy */
    uint32_t type;        /* GT_* */
    uint32_t arr_type;    /* element type when type == GT_ARR */
    uint64_t n;           /* element count of an array */
    const uint8_t *data;  /* scalar value or first array element, in the map */
    char *str;            /* GT_STR: NUL-terminated copy */
    size_t str_len;
    const char **strs;    /* array of strings: views into the map */
    size_t *lens;
} gkv;

typedef struct {
    char *name;           /* NUL-terminated copy */
    uint32_t n_dims;
    int64_t ne[MAX_DIMS]; /* GGUF order: ne[0] is the contiguous dimension */
    uint32_t type;        /* ggml type id */
    uint64_t offset;      /* from the start of the data section */
    uint64_t nbytes;
    int64_t nelem;
} gtensor;

struct hkm_gguf {
    char *path;
    const uint8_t *map;
    size_t size;
    uint32_t version;
    uint64_t n_kv, n_tensors;
    gkv *kv;              /* (n_kv) sorted by key */
    gtensor *t;           /* (n_tensors) sorted by name */
    uint64_t alignment;
    uint64_t data_start;
};

static const char *const TYPE_NAMES[GT_COUNT] = {
    "uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
    "bool", "string", "array", "uint64", "int64", "float64"};
static const uint8_t TYPE_SIZE[GT_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

static const char *type_name(uint32_t t) { return t < GT_COUNT ? TYPE_NAMES[t] : "unknown"; }

/* ---------------------------------------------------------------- cursor */

/* Reads fields in order; every read is checked against the file size. */
typedef struct {
    hkm_gguf *g;
    uint64_t pos;
    hkm_err *err;
    char what[320]; /* the item being read, for messages */
} cur;

static hkm_status need(cur *c, uint64_t n, const char *field) {
    uint64_t left = c->g->size - c->pos;
    if (n <= left) return HKM_OK;
    return hkm_fail(c->err, HKM_ERR_FORMAT,
                    "%s: truncated at offset %" PRIu64 ": %s%s%s needs %" PRIu64 " bytes, only %" PRIu64
                    " left (file size %zu)",
                    c->g->path, c->pos, c->what, *c->what ? ": " : "", field, n, left, c->g->size);
}

static hkm_status rd_u32(cur *c, uint32_t *v, const char *field) {
    HKM_TRY(need(c, 4, field));
    memcpy(v, c->g->map + c->pos, 4);
    c->pos += 4;
    return HKM_OK;
}

static hkm_status rd_u64(cur *c, uint64_t *v, const char *field) {
    HKM_TRY(need(c, 8, field));
    memcpy(v, c->g->map + c->pos, 8);
    c->pos += 8;
    return HKM_OK;
}

/* A GGUF string: u64 length + bytes. Returns a view. */
static hkm_status rd_str(cur *c, const char **s, uint64_t *len, uint64_t max, const char *field) {
    uint64_t at = c->pos;
    HKM_TRY(rd_u64(c, len, field));
    if (*len > max)
        return hkm_fail(c->err, HKM_ERR_FORMAT,
                        "%s: offset %" PRIu64 ": %s: %s length %" PRIu64 " is absurd (expected at most %" PRIu64 ")",
                        c->g->path, at, c->what, field, *len, max);
    HKM_TRY(need(c, *len, field));
    *s = (const char *)c->g->map + c->pos;
    c->pos += *len;
    return HKM_OK;
}

static char *dup_n(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}

/* A name (key or tensor): non-empty, no NUL inside, copied. */
static hkm_status rd_name(cur *c, char **out, const char *field) {
    const char *s = NULL;
    uint64_t n = 0;
    uint64_t at = c->pos;
    HKM_TRY(rd_str(c, &s, &n, MAX_NAME, field));
    if (n == 0 || memchr(s, 0, n))
        return hkm_fail(c->err, HKM_ERR_FORMAT, "%s: offset %" PRIu64 ": %s: %s is %s (expected a non-empty name)",
                        c->g->path, at, c->what, field, n ? "has a NUL byte" : "empty");
    if (!(*out = dup_n(s, n))) return hkm_fail(c->err, HKM_ERR_NOMEM, "%s: out of memory", c->g->path);
    return HKM_OK;
}

/* ---------------------------------------------------------------- metadata */

static hkm_status check_vtype(cur *c, uint32_t t, uint64_t at, const char *field) {
    if (t < GT_COUNT) return HKM_OK;
    return hkm_fail(c->err, HKM_ERR_FORMAT, "%s: offset %" PRIu64 ": %s: unknown %s %u (expected 0..%d)",
                    c->g->path, at, c->what, field, t, GT_COUNT - 1);
}

/* Array header checks: the count must fit in what is left of the file. */
static hkm_status check_count(cur *c, uint64_t n, uint64_t min_elem, uint64_t at) {
    uint64_t left = c->g->size - c->pos;
    if (n <= left / min_elem) return HKM_OK;
    return hkm_fail(c->err, HKM_ERR_FORMAT,
                    "%s: offset %" PRIu64 ": %s: array count %" PRIu64 " is absurd (at most %" PRIu64
                    " elements of >= %" PRIu64 " bytes fit in the %" PRIu64 " bytes left)",
                    c->g->path, at, c->what, n, left / min_elem, min_elem, left);
}

static hkm_status skip_value(cur *c, uint32_t type, int depth);

static hkm_status skip_array(cur *c, int depth) {
    uint32_t et;
    uint64_t n, at = c->pos;
    if (depth > MAX_DEPTH)
        return hkm_fail(c->err, HKM_ERR_FORMAT, "%s: offset %" PRIu64 ": %s: arrays nested deeper than %d",
                        c->g->path, at, c->what, MAX_DEPTH);
    HKM_TRY(rd_u32(c, &et, "array element type"));
    HKM_TRY(check_vtype(c, et, at, "array element type"));
    at = c->pos;
    HKM_TRY(rd_u64(c, &n, "array count"));
    if (TYPE_SIZE[et]) {
        HKM_TRY(check_count(c, n, TYPE_SIZE[et], at));
        c->pos += n * TYPE_SIZE[et];
        return HKM_OK;
    }
    HKM_TRY(check_count(c, n, et == GT_STR ? 8 : 12, at));
    for (uint64_t i = 0; i < n; i++) HKM_TRY(skip_value(c, et, depth + 1));
    return HKM_OK;
}

static hkm_status skip_value(cur *c, uint32_t type, int depth) {
    if (type == GT_ARR) return skip_array(c, depth);
    if (type == GT_STR) {
        const char *s;
        uint64_t n;
        return rd_str(c, &s, &n, UINT64_MAX, "string");
    }
    HKM_TRY(need(c, TYPE_SIZE[type], type_name(type)));
    c->pos += TYPE_SIZE[type];
    return HKM_OK;
}

/* Views of every string of a string array, kept for hkm_gguf_get_str_array. */
static hkm_status index_str_array(cur *c, gkv *kv) {
    HKM_ALLOC(kv->strs, kv->n, c->err);
    HKM_ALLOC(kv->lens, kv->n, c->err);
    for (uint64_t i = 0; i < kv->n; i++) {
        uint64_t len;
        HKM_TRY(rd_str(c, &kv->strs[i], &len, UINT64_MAX, "array string"));
        kv->lens[i] = (size_t)len;
    }
    return HKM_OK;
}

static hkm_status read_value(cur *c, gkv *kv) {
    uint64_t at = c->pos;
    kv->data = c->g->map + c->pos;
    if (kv->type == GT_STR) {
        const char *s;
        uint64_t n;
        HKM_TRY(rd_str(c, &s, &n, UINT64_MAX, "string value"));
        if (!(kv->str = dup_n(s, (size_t)n))) return hkm_fail(c->err, HKM_ERR_NOMEM, "%s: out of memory", c->g->path);
        kv->str_len = (size_t)n;
        return HKM_OK;
    }
    if (kv->type != GT_ARR) return skip_value(c, kv->type, 0);
    HKM_TRY(rd_u32(c, &kv->arr_type, "array element type"));
    HKM_TRY(check_vtype(c, kv->arr_type, at, "array element type"));
    uint64_t at_n = c->pos;
    HKM_TRY(rd_u64(c, &kv->n, "array count"));
    kv->data = c->g->map + c->pos;
    if (kv->arr_type == GT_STR) {
        HKM_TRY(check_count(c, kv->n, 8, at_n));
        return index_str_array(c, kv);
    }
    c->pos = at; /* re-read as a generic array to validate (nested) contents */
    return skip_array(c, 1);
}

static hkm_status read_kvs(cur *c) {
    hkm_gguf *g = c->g;
    HKM_ALLOC(g->kv, g->n_kv, c->err);
    for (uint64_t i = 0; i < g->n_kv; i++) {
        gkv *kv = &g->kv[i];
        snprintf(c->what, sizeof c->what, "key #%" PRIu64, i);
        HKM_TRY(rd_name(c, &kv->key, "key name"));
        snprintf(c->what, sizeof c->what, "key '%.200s'", kv->key);
        uint64_t at = c->pos;
        HKM_TRY(rd_u32(c, &kv->type, "value type"));
        HKM_TRY(check_vtype(c, kv->type, at, "value type"));
        HKM_TRY(read_value(c, kv));
    }
    return HKM_OK;
}

/* ---------------------------------------------------------------- tensor infos */

static hkm_status tensor_sizes(cur *c, gtensor *t, uint64_t at) {
    const hkm_ggml_type *tt = hkm_ggml_type_of(t->type);
    if (!tt)
        return hkm_fail(c->err, HKM_ERR_UNSUPPORTED,
                        "%s: offset %" PRIu64 ": %s: unknown ggml tensor type id %u", c->g->path, at, c->what,
                        t->type);
    if (t->ne[0] % tt->blck)
        return hkm_fail(c->err, HKM_ERR_FORMAT,
                        "%s: %s: ne[0] = %" PRId64 " is not a multiple of the %s block size %u", c->g->path,
                        c->what, t->ne[0], tt->name, tt->blck);
    int64_t nelem = 1;
    uint64_t rows = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        if (nelem > INT64_MAX / t->ne[d])
            return hkm_fail(c->err, HKM_ERR_FORMAT, "%s: %s: element count overflows int64", c->g->path, c->what);
        nelem *= t->ne[d];
        if (d > 0) rows *= (uint64_t)t->ne[d];
    }
    uint64_t row_bytes = (uint64_t)(t->ne[0] / tt->blck) * tt->tsize;
    if (rows && row_bytes > UINT64_MAX / rows)
        return hkm_fail(c->err, HKM_ERR_FORMAT, "%s: %s: byte size overflows", c->g->path, c->what);
    t->nelem = nelem;
    t->nbytes = row_bytes * rows;
    return HKM_OK;
}

static hkm_status read_tensor(cur *c, gtensor *t) {
    HKM_TRY(rd_name(c, &t->name, "tensor name"));
    snprintf(c->what, sizeof c->what, "tensor '%.200s'", t->name);
    uint64_t at = c->pos;
    HKM_TRY(rd_u32(c, &t->n_dims, "n_dims"));
    if (t->n_dims < 1 || t->n_dims > MAX_DIMS)
        return hkm_fail(c->err, HKM_ERR_FORMAT, "%s: offset %" PRIu64 ": %s: n_dims = %u (expected 1..%d)",
                        c->g->path, at, c->what, t->n_dims, MAX_DIMS);
    for (uint32_t d = 0; d < t->n_dims; d++) {
        uint64_t ne;
        at = c->pos;
        HKM_TRY(rd_u64(c, &ne, "ne"));
        if (ne < 1 || ne > (uint64_t)INT64_MAX)
            return hkm_fail(c->err, HKM_ERR_FORMAT,
                            "%s: offset %" PRIu64 ": %s: ne[%u] = %" PRIu64 " (expected 1..2^63-1)", c->g->path,
                            at, c->what, d, ne);
        t->ne[d] = (int64_t)ne;
    }
    for (uint32_t d = t->n_dims; d < MAX_DIMS; d++) t->ne[d] = 1;
    at = c->pos;
    HKM_TRY(rd_u32(c, &t->type, "type"));
    HKM_TRY(rd_u64(c, &t->offset, "offset"));
    return tensor_sizes(c, t, at);
}

static hkm_status read_tensors(cur *c) {
    hkm_gguf *g = c->g;
    HKM_ALLOC(g->t, g->n_tensors, c->err);
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        snprintf(c->what, sizeof c->what, "tensor info #%" PRIu64, i);
        HKM_TRY(read_tensor(c, &g->t[i]));
    }
    return HKM_OK;
}

/* ---------------------------------------------------------------- layout */

static const gkv *find_kv(const hkm_gguf *g, const char *key);

static hkm_status read_alignment(cur *c) {
    hkm_gguf *g = c->g;
    g->alignment = 32; /* GGUF_DEFAULT_ALIGNMENT */
    const gkv *kv = find_kv(g, "general.alignment");
    if (!kv) return HKM_OK;
    uint32_t a = 0;
    if (kv->type == GT_U32) memcpy(&a, kv->data, 4);
    if (kv->type != GT_U32 || a == 0 || (a & (a - 1)))
        return hkm_fail(c->err, HKM_ERR_FORMAT, "%s: key 'general.alignment': expected a uint32 power of two, got %s %u",
                        g->path, type_name(kv->type), a);
    g->alignment = a;
    return HKM_OK;
}

static hkm_status check_tensor_data(cur *c) {
    hkm_gguf *g = c->g;
    uint64_t pad = (g->alignment - c->pos % g->alignment) % g->alignment;
    g->data_start = c->pos + pad;
    if (g->n_tensors == 0) return HKM_OK;
    if (pad > g->size - c->pos)
        return hkm_fail(c->err, HKM_ERR_FORMAT,
                        "%s: truncated at offset %" PRIu64 ": data section starts at %" PRIu64
                        " (aligned to %" PRIu64 "), file size %zu",
                        g->path, c->pos, g->data_start, g->alignment, g->size);
    uint64_t avail = g->size - g->data_start;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const gtensor *t = &g->t[i];
        if (t->offset % g->alignment)
            return hkm_fail(c->err, HKM_ERR_FORMAT,
                            "%s: tensor '%s': offset %" PRIu64 " is not a multiple of the alignment %" PRIu64,
                            g->path, t->name, t->offset, g->alignment);
        if (t->offset > avail || t->nbytes > avail - t->offset)
            return hkm_fail(c->err, HKM_ERR_FORMAT,
                            "%s: tensor '%s': data [%" PRIu64 ", +%" PRIu64 ") at file offset %" PRIu64
                            " extends beyond the end of the file (size %zu, data section starts at %" PRIu64 ")",
                            g->path, t->name, t->offset, t->nbytes, g->data_start + t->offset, g->size,
                            g->data_start);
    }
    return HKM_OK;
}

static int cmp_kv(const void *a, const void *b) { return strcmp(((const gkv *)a)->key, ((const gkv *)b)->key); }
static int cmp_t(const void *a, const void *b) {
    return strcmp(((const gtensor *)a)->name, ((const gtensor *)b)->name);
}

/* Sort for binary search; a duplicate name would make look-ups ambiguous. */
static hkm_status sort_and_dedup(cur *c) {
    hkm_gguf *g = c->g;
    qsort(g->kv, g->n_kv, sizeof *g->kv, cmp_kv);
    qsort(g->t, g->n_tensors, sizeof *g->t, cmp_t);
    for (uint64_t i = 1; i < g->n_kv; i++)
        if (!strcmp(g->kv[i - 1].key, g->kv[i].key))
            return hkm_fail(c->err, HKM_ERR_FORMAT, "%s: key '%s' appears twice (expected unique keys)", g->path,
                            g->kv[i].key);
    for (uint64_t i = 1; i < g->n_tensors; i++)
        if (!strcmp(g->t[i - 1].name, g->t[i].name))
            return hkm_fail(c->err, HKM_ERR_FORMAT, "%s: tensor '%s' appears twice (expected unique names)",
                            g->path, g->t[i].name);
    return HKM_OK;
}

/* ---------------------------------------------------------------- header */

static hkm_status read_header(cur *c) {
    hkm_gguf *g = c->g;
    snprintf(c->what, sizeof c->what, "header");
    HKM_TRY(need(c, 4, "magic"));
    if (memcmp(g->map, "GGUF", 4)) {
        const uint8_t *m = g->map;
        return hkm_fail(c->err, HKM_ERR_FORMAT,
                        "%s: bad magic at offset 0: expected \"GGUF\" (47 47 55 46), got %02x %02x %02x %02x",
                        g->path, m[0], m[1], m[2], m[3]);
    }
    c->pos = 4;
    HKM_TRY(rd_u32(c, &g->version, "version"));
    if (g->version != 2 && g->version != 3)
        return hkm_fail(c->err, HKM_ERR_UNSUPPORTED, "%s: GGUF version %u%s is not supported (expected 3, or 2)",
                        g->path, g->version, (g->version & 0xFFFF) == 0 ? " (a big-endian file?)" : "");
    HKM_TRY(rd_u64(c, &g->n_tensors, "tensor_count"));
    HKM_TRY(rd_u64(c, &g->n_kv, "kv_count"));
    uint64_t left = g->size - c->pos;
    if (g->n_kv > left / MIN_KV_BYTES)
        return hkm_fail(c->err, HKM_ERR_FORMAT,
                        "%s: header: kv_count %" PRIu64 " is absurd (at most %" PRIu64 " fit in the %" PRIu64
                        " bytes after the header)", g->path, g->n_kv, left / MIN_KV_BYTES, left);
    if (g->n_tensors > left / MIN_TENSOR_BYTES)
        return hkm_fail(c->err, HKM_ERR_FORMAT,
                        "%s: header: tensor_count %" PRIu64 " is absurd (at most %" PRIu64 " fit in the %" PRIu64
                        " bytes after the header)", g->path, g->n_tensors, left / MIN_TENSOR_BYTES, left);
    return HKM_OK;
}

static hkm_status map_file(hkm_gguf *g, hkm_err *err) {
    int fd = open(g->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return hkm_fail(err, HKM_ERR_IO, "%s: cannot open: %s", g->path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        int e = errno;
        close(fd);
        return hkm_fail(err, HKM_ERR_IO, "%s: not a regular file%s%s", g->path, e ? ": " : "", e ? strerror(e) : "");
    }
    g->size = (size_t)st.st_size;
    if (g->size == 0) {
        close(fd);
        return hkm_fail(err, HKM_ERR_FORMAT, "%s: truncated at offset 0: the file is empty (expected a GGUF header)",
                        g->path);
    }
    void *m = mmap(NULL, g->size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (m == MAP_FAILED) return hkm_fail(err, HKM_ERR_IO, "%s: mmap of %zu bytes failed: %s", g->path, g->size, strerror(e));
    g->map = m;
    return HKM_OK;
}

static hkm_status parse(hkm_gguf *g, hkm_err *err) {
    cur c = {.g = g, .pos = 0, .err = err};
    HKM_TRY(read_header(&c));
    HKM_TRY(read_kvs(&c));
    HKM_TRY(read_tensors(&c));
    HKM_TRY(sort_and_dedup(&c));
    HKM_TRY(read_alignment(&c));
    return check_tensor_data(&c);
}

hkm_status hkm_gguf_open(const char *path, hkm_gguf **out, hkm_err *err) {
    if (!path || !out) return hkm_fail(err, HKM_ERR_ARG, "hkm_gguf_open: NULL argument");
    *out = NULL;
    hkm_gguf *g;
    HKM_ALLOC(g, 1, err);
    if (!(g->path = dup_n(path, strlen(path)))) {
        free(g);
        return hkm_fail(err, HKM_ERR_NOMEM, "%s: out of memory", path);
    }
    hkm_status st = map_file(g, err);
    if (st == HKM_OK) st = parse(g, err);
    if (st != HKM_OK) {
        hkm_gguf_free(g);
        return st;
    }
    *out = g;
    return HKM_OK;
}

void hkm_gguf_free(hkm_gguf *g) {
    if (!g) return;
    for (uint64_t i = 0; g->kv && i < g->n_kv; i++) {
        free(g->kv[i].key);
        free(g->kv[i].str);
        free(g->kv[i].strs);
        free(g->kv[i].lens);
    }
    for (uint64_t i = 0; g->t && i < g->n_tensors; i++) free(g->t[i].name);
    free(g->kv);
    free(g->t);
    if (g->map) munmap((void *)g->map, g->size);
    free(g->path);
    free(g);
}

const char *hkm_gguf_path(const hkm_gguf *g) { return g ? g->path : NULL; }

/* ---------------------------------------------------------------- key look-ups */

static const gkv *find_kv(const hkm_gguf *g, const char *key) {
    gkv probe = {.key = (char *)key};
    return g->n_kv ? bsearch(&probe, g->kv, g->n_kv, sizeof *g->kv, cmp_kv) : NULL;
}

int hkm_gguf_has_key(const hkm_gguf *g, const char *key) { return g && key && find_kv(g, key) != NULL; }

static hkm_status get_kv(const hkm_gguf *g, const char *key, const gkv **kv, hkm_err *err) {
    if (!g || !key) return hkm_fail(err, HKM_ERR_ARG, "hkm_gguf: NULL argument");
    if (!(*kv = find_kv(g, key))) return hkm_fail(err, HKM_ERR_MISSING, "%s: key '%s' is missing", g->path, key);
    return HKM_OK;
}

static hkm_status wrong_type(const hkm_gguf *g, const gkv *kv, const char *expected, hkm_err *err) {
    if (kv->type == GT_ARR)
        return hkm_fail(err, HKM_ERR_FORMAT, "%s: key '%s': expected %s, got an array of %s", g->path, kv->key,
                        expected, type_name(kv->arr_type));
    return hkm_fail(err, HKM_ERR_FORMAT, "%s: key '%s': expected %s, got %s", g->path, kv->key, expected,
                    type_name(kv->type));
}

static int is_int(uint32_t t) { return t <= GT_I32 || t == GT_U64 || t == GT_I64; }

/* One integer element of type t at p; 0 if t is not an integer type. */
static int int_at(uint32_t t, const uint8_t *p, int64_t *v, int *overflow) {
    *overflow = 0;
    switch (t) {
    case GT_U8: *v = p[0]; return 1;
    case GT_I8: *v = (int8_t)p[0]; return 1;
    case GT_U16: { uint16_t x; memcpy(&x, p, 2); *v = x; return 1; }
    case GT_I16: { int16_t x; memcpy(&x, p, 2); *v = x; return 1; }
    case GT_U32: { uint32_t x; memcpy(&x, p, 4); *v = x; return 1; }
    case GT_I32: { int32_t x; memcpy(&x, p, 4); *v = x; return 1; }
    case GT_I64: { int64_t x; memcpy(&x, p, 8); *v = x; return 1; }
    case GT_U64: {
        uint64_t x;
        memcpy(&x, p, 8);
        *overflow = x > (uint64_t)INT64_MAX;
        *v = (int64_t)(x & (uint64_t)INT64_MAX);
        return 1;
    }
    }
    return 0;
}

/* Integers of any width; a bool reads as 0 or 1 (flags like add_bos_token). */
hkm_status hkm_gguf_get_i64(const hkm_gguf *g, const char *key, int64_t *v, hkm_err *err) {
    const gkv *kv;
    HKM_TRY(get_kv(g, key, &kv, err));
    if (kv->type == GT_BOOL) {
        *v = kv->data[0] != 0;
        return HKM_OK;
    }
    int ovf;
    if (!int_at(kv->type, kv->data, v, &ovf)) return wrong_type(g, kv, "an integer", err);
    if (ovf) return hkm_fail(err, HKM_ERR_FORMAT, "%s: key '%s': uint64 value does not fit in int64", g->path, key);
    return HKM_OK;
}

hkm_status hkm_gguf_get_f32(const hkm_gguf *g, const char *key, float *v, hkm_err *err) {
    const gkv *kv;
    HKM_TRY(get_kv(g, key, &kv, err));
    if (kv->type == GT_F32) {
        memcpy(v, kv->data, 4);
    } else if (kv->type == GT_F64) {
        double d;
        memcpy(&d, kv->data, 8);
        *v = (float)d;
    } else {
        return wrong_type(g, kv, "a float32 or float64", err);
    }
    return HKM_OK;
}

hkm_status hkm_gguf_get_str(const hkm_gguf *g, const char *key, const char **v, size_t *len, hkm_err *err) {
    const gkv *kv;
    HKM_TRY(get_kv(g, key, &kv, err));
    if (kv->type != GT_STR) return wrong_type(g, kv, "a string", err);
    *v = kv->str; /* NUL-terminated copy, owned by g */
    if (len) *len = kv->str_len;
    return HKM_OK;
}

hkm_status hkm_gguf_get_str_array(const hkm_gguf *g, const char *key, size_t *count, const char ***strs,
                                  const size_t **lens, hkm_err *err) {
    const gkv *kv;
    HKM_TRY(get_kv(g, key, &kv, err));
    if (kv->type != GT_ARR || kv->arr_type != GT_STR) return wrong_type(g, kv, "an array of strings", err);
    *count = (size_t)kv->n;
    *strs = kv->strs;
    *lens = kv->lens;
    return HKM_OK;
}

hkm_status hkm_gguf_get_i32_array(const hkm_gguf *g, const char *key, size_t *count, int32_t **vals,
                                  hkm_err *err) {
    const gkv *kv;
    HKM_TRY(get_kv(g, key, &kv, err));
    int64_t x = 0;
    int ovf = 0;
    if (kv->type != GT_ARR || !is_int(kv->arr_type)) return wrong_type(g, kv, "an array of integers", err);
    int32_t *out;
    HKM_ALLOC(out, kv->n, err);
    for (uint64_t i = 0; i < kv->n; i++) {
        int_at(kv->arr_type, kv->data + i * TYPE_SIZE[kv->arr_type], &x, &ovf);
        if (ovf || x < INT32_MIN || x > INT32_MAX) {
            free(out);
            return hkm_fail(err, HKM_ERR_FORMAT, "%s: key '%s': element %" PRIu64 " does not fit in int32",
                            g->path, key, i);
        }
        out[i] = (int32_t)x;
    }
    *count = (size_t)kv->n;
    *vals = out;
    return HKM_OK;
}

/* ---------------------------------------------------------------- tensors */

static const gtensor *find_t(const hkm_gguf *g, const char *name) {
    gtensor probe = {.name = (char *)name};
    return g->n_tensors ? bsearch(&probe, g->t, g->n_tensors, sizeof *g->t, cmp_t) : NULL;
}

static hkm_status get_t(const hkm_gguf *g, const char *name, const gtensor **t, hkm_err *err) {
    if (!g || !name) return hkm_fail(err, HKM_ERR_ARG, "hkm_gguf: NULL argument");
    if (!(*t = find_t(g, name))) return hkm_fail(err, HKM_ERR_MISSING, "%s: tensor '%s' is missing", g->path, name);
    return HKM_OK;
}

/* dtype: HKM_DT_F32/F16/BF16 for those ggml types, -1 for quantised ones. */
hkm_status hkm_gguf_info(const hkm_gguf *g, const char *name, hkm_tensor_info *info, hkm_err *err) {
    const gtensor *t;
    HKM_TRY(get_t(g, name, &t, err));
    memset(info, 0, sizeof *info);
    info->ndim = (int)t->n_dims;
    for (uint32_t d = 0; d < t->n_dims; d++) info->dims[d] = t->ne[t->n_dims - 1 - d];
    info->dtype = t->type == 0 ? HKM_DT_F32 : t->type == 1 ? HKM_DT_F16 : t->type == 30 ? HKM_DT_BF16 : -1;
    return HKM_OK;
}

hkm_status hkm_gguf_read_f32(const hkm_gguf *g, const char *name, float *dst, size_t n, hkm_err *err) {
    const gtensor *t;
    HKM_TRY(get_t(g, name, &t, err));
    if ((uint64_t)t->nelem != (uint64_t)n)
        return hkm_fail(err, HKM_ERR_SHAPE, "%s: tensor '%s' has %" PRId64 " elements, caller expected %zu",
                        g->path, name, t->nelem, n);
    const hkm_ggml_type *tt = hkm_ggml_type_of(t->type);
    const uint8_t *src = g->map + g->data_start + t->offset;
    if (hkm_gguf_dequant(t->type, src, dst, t->nelem / tt->blck))
        return hkm_fail(err, HKM_ERR_UNSUPPORTED, "%s: tensor '%s': ggml type %s (id %u) cannot be dequantised (supported: %s)",
                        g->path, name, tt->name, t->type, hkm_ggml_dequant_list());
    return HKM_OK;
}
