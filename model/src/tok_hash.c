/* Open-addressing (linear probing) hash tables used by the BPE tokenizer. */
#include "tok_hash.h"

#include <stdlib.h>
#include <string.h>

static size_t table_cap(size_t n) {
    size_t cap = 16;
    while (cap < 2 * n + 1) cap <<= 1; /* load factor <= 1/2 keeps probes short */
    return cap;
}

/* FNV-1a, then a final mix so that similar strings spread over the table. */
static uint64_t hash_bytes(const char *s, size_t len) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

static uint64_t hash_u64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

int hkm_strmap_init(hkm_strmap *m, size_t n) {
    memset(m, 0, sizeof *m);
    m->cap = table_cap(n);
    m->keys = calloc(m->cap, sizeof *m->keys);
    m->lens = calloc(m->cap, sizeof *m->lens);
    m->vals = calloc(m->cap, sizeof *m->vals);
    if (!m->keys || !m->lens || !m->vals) {
        hkm_strmap_free(m);
        return -1;
    }
    return 0;
}

static size_t strmap_slot(const hkm_strmap *m, const char *key, size_t len) {
    size_t i = hash_bytes(key, len) & (m->cap - 1);
    while (m->keys[i] && !(m->lens[i] == len && memcmp(m->keys[i], key, len) == 0))
        i = (i + 1) & (m->cap - 1);
    return i;
}

int hkm_strmap_put(hkm_strmap *m, const char *key, size_t len, int32_t val) {
    size_t i = strmap_slot(m, key, len);
    if (m->keys[i]) return 0;
    m->keys[i] = key;
    m->lens[i] = (uint32_t)len;
    m->vals[i] = val;
    return 1;
}

int32_t hkm_strmap_get(const hkm_strmap *m, const char *key, size_t len) {
    if (!m->cap) return -1;
    size_t i = strmap_slot(m, key, len);
    return m->keys[i] ? m->vals[i] : -1;
}

void hkm_strmap_free(hkm_strmap *m) {
    free(m->keys);
    free(m->lens);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

int hkm_pairmap_init(hkm_pairmap *m, size_t n) {
    memset(m, 0, sizeof *m);
    m->cap = table_cap(n);
    m->keys = calloc(m->cap, sizeof *m->keys);
    m->rank = calloc(m->cap, sizeof *m->rank);
    m->merged = calloc(m->cap, sizeof *m->merged);
    if (!m->keys || !m->rank || !m->merged) {
        hkm_pairmap_free(m);
        return -1;
    }
    return 0;
}

static uint64_t pair_key(int32_t left, int32_t right) {
    return (((uint64_t)(uint32_t)left << 32) | (uint32_t)right) + 1;
}

static size_t pairmap_slot(const hkm_pairmap *m, uint64_t key) {
    size_t i = hash_u64(key) & (m->cap - 1);
    while (m->keys[i] && m->keys[i] != key) i = (i + 1) & (m->cap - 1);
    return i;
}

void hkm_pairmap_put(hkm_pairmap *m, int32_t left, int32_t right, int32_t rank, int32_t merged) {
    uint64_t key = pair_key(left, right);
    size_t i = pairmap_slot(m, key);
    if (m->keys[i]) return;
    m->keys[i] = key;
    m->rank[i] = rank;
    m->merged[i] = merged;
}

int32_t hkm_pairmap_get(const hkm_pairmap *m, int32_t left, int32_t right, int32_t *merged) {
    if (!m->cap) return -1;
    size_t i = pairmap_slot(m, pair_key(left, right));
    if (!m->keys[i]) return -1;
    *merged = m->merged[i];
    return m->rank[i];
}

void hkm_pairmap_free(hkm_pairmap *m) {
    free(m->keys);
    free(m->rank);
    free(m->merged);
    memset(m, 0, sizeof *m);
}
