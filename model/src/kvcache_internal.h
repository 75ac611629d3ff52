/* The KV cache's private layout, shared by kvcache.c (storage, eviction) and
 * forward_cpu.c (appends, attention, and the forward workspace it keeps here). */
#ifndef HKM_KVCACHE_INTERNAL_H
#define HKM_KVCACHE_INTERNAL_H

#include "hkm_internal.h"

/* One KV head of one layer: its own arrays, filled from index 0. */
typedef struct {
    float *k;     /* (capacity, head_dim) post-RoPE keys */
    float *v;     /* (capacity, head_dim) values */
    int32_t *pos; /* (capacity) absolute position of each entry */
    int len;      /* entries held */
} hkm_kv_head;

struct hkm_kvcache {
    hkm_config cfg;
    int capacity;          /* max entries per head */
    int next_pos;          /* tokens seen so far */
    hkm_kv_head *heads;    /* (n_layers * n_kv_heads), index layer * n_kv_heads + head */
    float *kv_arena;       /* every head's k and v */
    int32_t *pos_arena;    /* every head's pos */
    /* Forward scratch, grown on demand and reused so decode steps do not
     * allocate. Owned here because a cache is used by one thread at a time. */
    float *ws;
    size_t ws_floats;
};

static inline hkm_kv_head *hkm_kv_at(hkm_kvcache *c, int layer, int kv_head) {
    return &c->heads[(size_t)layer * (size_t)c->cfg.n_kv_heads + (size_t)kv_head];
}

#endif /* HKM_KVCACHE_INTERNAL_H */
