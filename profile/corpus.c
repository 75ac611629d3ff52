/* Corpus loading: walk a directory tree (sorted, so runs are reproducible),
 * keep valid UTF-8 text files, split them into paragraphs. */
#include "corpus.h"
#include "hkm_internal.h"

#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

/* ---------------------------------------------------------------- files */

typedef struct {
    char **v;
    size_t n, cap;
} strvec;

static int strvec_push(strvec *s, char *p) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 256;
        char **v = realloc(s->v, cap * sizeof *v);
        if (!v) return -1;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = p;
    return 0;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Appends regular files under dir (recursively) to out; paths are malloc'ed. */
static hkm_status walk(const char *dir, strvec *out, hkm_err *err) {
    DIR *d = opendir(dir);
    if (!d) return hkm_fail(err, HKM_ERR_IO, "corpus %s: %s: expected a readable directory", dir, strerror(errno));
    strvec names = {0};
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || !strcmp(e->d_name, "translations")) continue;
        char *p = strdup(e->d_name);
        if (!p || strvec_push(&names, p)) { closedir(d); return hkm_fail(err, HKM_ERR_NOMEM, "corpus: out of memory"); }
    }
    closedir(d);
    qsort(names.v, names.n, sizeof *names.v, cmp_str);
    hkm_status st = HKM_OK;
    for (size_t i = 0; i < names.n && st == HKM_OK; i++) {
        size_t len = strlen(dir) + strlen(names.v[i]) + 2;
        char *p = malloc(len);
        if (!p) { st = hkm_fail(err, HKM_ERR_NOMEM, "corpus: out of memory"); break; }
        snprintf(p, len, "%s/%s", dir, names.v[i]);
        struct stat sb;
        if (stat(p, &sb) != 0) { free(p); continue; }
        if (S_ISDIR(sb.st_mode)) { st = walk(p, out, err); free(p); }
        else if (S_ISREG(sb.st_mode)) { if (strvec_push(out, p)) { free(p); st = hkm_fail(err, HKM_ERR_NOMEM, "corpus: out of memory"); } }
        else free(p);
    }
    for (size_t i = 0; i < names.n; i++) free(names.v[i]);
    free(names.v);
    return st;
}

/* ---------------------------------------------------------------- text */

/* 1 if b[0..n) is valid UTF-8 without NUL bytes. */
static int valid_utf8(const unsigned char *b, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned c = b[i];
        int k = c < 0x80 ? 0 : (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : (c >> 3) == 30 ? 3 : -1;
        if (c == 0 || k < 0 || i + (size_t)k >= n + (k == 0)) return 0;
        for (int j = 1; j <= k; j++)
            if ((b[i + j] & 0xC0) != 0x80) return 0;
        i += (size_t)k + 1;
    }
    return 1;
}

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long sz = ftell(f);
        if (sz >= 0 && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)sz + 1))) {
            *len = fread(buf, 1, (size_t)sz, f);
            buf[*len] = 0;
        }
    }
    fclose(f);
    return buf;
}

/* Appends the paragraphs of one file to c (text grows by at most len + 1 per paragraph). */
static hkm_status add_paragraphs(hkp_corpus *c, const char *buf, size_t len, int file, size_t *cap_para,
                                 hkm_err *err) {
    size_t i = 0;
    while (i < len) {
        while (i < len && (buf[i] == '\n' || buf[i] == '\r')) i++;
        size_t s = i;
        while (i < len && !(buf[i] == '\n' && i + 1 < len && (buf[i + 1] == '\n' ||
               (buf[i + 1] == '\r' && i + 2 < len && buf[i + 2] == '\n')))) i++;
        size_t e = i < len ? i : len;
        int blank = 1;
        for (size_t j = s; j < e && blank; j++) blank = buf[j] == ' ' || buf[j] == '\t' || buf[j] == '\n' || buf[j] == '\r';
        if (blank) continue;
        if (c->n_para == *cap_para) {
            size_t cap = *cap_para ? 2 * *cap_para : 4096;
            size_t *p = realloc(c->para, cap * sizeof *p);
            int *pf = p ? realloc(c->para_file, cap * sizeof *pf) : NULL;
            if (p) c->para = p;
            if (!p || !pf) return hkm_fail(err, HKM_ERR_NOMEM, "corpus: out of memory");
            c->para_file = pf;
            *cap_para = cap;
        }
        c->para[c->n_para] = c->text_len;
        c->para_file[c->n_para++] = file;
        memcpy(c->text + c->text_len, buf + s, e - s);
        c->text_len += e - s;
        c->text[c->text_len++] = 0;
    }
    return HKM_OK;
}

hkm_status hkp_corpus_load(const char *dir, hkp_corpus *c, hkm_err *err) {
    memset(c, 0, sizeof *c);
    strvec files = {0};
    hkm_status st = walk(dir, &files, err);
    size_t total = 0, cap_para = 0;
    for (size_t i = 0; st == HKM_OK && i < files.n; i++) {
        struct stat sb;
        if (stat(files.v[i], &sb) == 0) total += (size_t)sb.st_size + 1;
    }
    if (st == HKM_OK && !(c->text = malloc(2 * total + 1)))
        st = hkm_fail(err, HKM_ERR_NOMEM, "corpus %s: out of memory for %zu bytes", dir, total);
    if (st == HKM_OK && !(c->file_names = calloc(files.n + 1, sizeof *c->file_names)))
        st = hkm_fail(err, HKM_ERR_NOMEM, "corpus: out of memory");
    for (size_t i = 0; st == HKM_OK && i < files.n; i++) {
        size_t len = 0;
        char *buf = read_file(files.v[i], &len);
        if (!buf) continue;
        if (valid_utf8((unsigned char *)buf, len)) {
            c->file_names[c->n_files] = strdup(files.v[i] + strlen(dir) + 1);
            st = add_paragraphs(c, buf, len, (int)c->n_files++, &cap_para, err);
        }
        free(buf);
    }
    for (size_t i = 0; i < files.n; i++) free(files.v[i]);
    free(files.v);
    if (st == HKM_OK && c->n_para == 0)
        st = hkm_fail(err, HKM_ERR_MISSING, "corpus %s: no UTF-8 text paragraphs found: expected a "
                      "directory of text files", dir);
    if (st != HKM_OK) hkp_corpus_free(c);
    return st;
}

void hkp_corpus_free(hkp_corpus *c) {
    if (!c) return;
    free(c->text);
    free(c->para);
    free(c->para_file);
    for (size_t i = 0; i < c->n_files; i++) free(c->file_names[i]);
    free(c->file_names);
    memset(c, 0, sizeof *c);
}
