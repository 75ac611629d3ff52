/* A text corpus held in memory as paragraphs (text between blank lines), read
 * from every UTF-8 file under a directory in sorted path order. */
#ifndef HKP_CORPUS_H
#define HKP_CORPUS_H

#include "hubkv_model.h"

#include <stddef.h>

typedef struct {
    char *text;          /* every paragraph, NUL-separated */
    size_t text_len;
    size_t *para;        /* (n_para) offset of each paragraph in text */
    int *para_file;      /* (n_para) file index */
    size_t n_para;
    char **file_names;   /* (n_files) path relative to the root, for titles */
    size_t n_files;
} hkp_corpus;

/* Skips directories named "translations" and files that are not valid UTF-8
 * or contain NUL bytes. Fails if no paragraph was found. */
hkm_status hkp_corpus_load(const char *dir, hkp_corpus *c, hkm_err *err);
void hkp_corpus_free(hkp_corpus *c);
static inline const char *hkp_corpus_para(const hkp_corpus *c, size_t i) {
    return c->text + c->para[i];
}

#endif
