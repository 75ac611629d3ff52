/* Small open-addressing hash tables for the tokenizer: byte string -> id
 * (vocabulary) and id pair -> (rank, merged id) (BPE merges). Read-only after
 * building, so lookups are safe from several threads. */
#ifndef HKM_TOK_HASH_H
#define HKM_TOK_HASH_H

#include <stddef.h>
#include <stdint.h>

/* Keys are views (not copies): the strings must outlive the map. */
typedef struct {
    const char **keys; /* (cap) NULL = empty slot */
    uint32_t *lens;    /* (cap) */
    int32_t *vals;     /* (cap) */
    size_t cap;        /* power of two */
} hkm_strmap;

typedef struct {
    uint64_t *keys;    /* (cap) (left << 32 | right) + 1; 0 = empty slot */
    int32_t *rank;     /* (cap) */
    int32_t *merged;   /* (cap) id of the merged token */
    size_t cap;
} hkm_pairmap;

/* Return 0 on success, -1 when out of memory. n: expected entry count. */
int hkm_strmap_init(hkm_strmap *m, size_t n);
/* Insert unless present; an existing entry keeps its value. Returns 1 if
 * inserted, 0 if the key was there already. */
int hkm_strmap_put(hkm_strmap *m, const char *key, size_t len, int32_t val);
/* Value of key, or -1. */
int32_t hkm_strmap_get(const hkm_strmap *m, const char *key, size_t len);
void hkm_strmap_free(hkm_strmap *m);

int hkm_pairmap_init(hkm_pairmap *m, size_t n);
/* Insert unless present (the first, highest-priority merge of a pair wins). */
void hkm_pairmap_put(hkm_pairmap *m, int32_t left, int32_t right, int32_t rank, int32_t merged);
/* Rank of the pair (and *merged), or -1 if the pair never merges. */
int32_t hkm_pairmap_get(const hkm_pairmap *m, int32_t left, int32_t right, int32_t *merged);
void hkm_pairmap_free(hkm_pairmap *m);

#endif
