/* KV cache: per layer and per KV head, a list of (key, value, position)
 * entries that eviction may shorten head by head. */
#include "kvcache_internal.h"

#include <stdint.h>
#include <string.h>

static hkm_status check_cfg(const hkm_config *cfg, int capacity, hkm_err *err) {
    if (!cfg) return hkm_fail(err, HKM_ERR_ARG, "hkm_kvcache_create: cfg: expected non-NULL");
    if (cfg->n_layers <= 0 || cfg->n_kv_heads <= 0 || cfg->head_dim <= 0)
        return hkm_fail(err, HKM_ERR_ARG,
                        "hkm_kvcache_create: cfg n_layers=%d n_kv_heads=%d head_dim=%d: "
                        "expected all > 0", cfg->n_layers, cfg->n_kv_heads, cfg->head_dim);
    if (capacity <= 0)
        return hkm_fail(err, HKM_ERR_ARG, "hkm_kvcache_create: capacity=%d: expected > 0",
                        capacity);
    return HKM_OK;
}

hkm_status hkm_kvcache_create(const hkm_config *cfg, int capacity, hkm_kvcache **out,
                              hkm_err *err) {
    if (!out) return hkm_fail(err, HKM_ERR_ARG, "hkm_kvcache_create: out: expected non-NULL");
    *out = NULL;
    HKM_TRY(check_cfg(cfg, capacity, err));
    size_t n_heads = (size_t)cfg->n_layers * (size_t)cfg->n_kv_heads;
    size_t per_head = (size_t)capacity * (size_t)cfg->head_dim;
    if (per_head > SIZE_MAX / sizeof(float) / 2 / n_heads)
        return hkm_fail(err, HKM_ERR_ARG,
                        "hkm_kvcache_create: capacity=%d x head_dim=%d x %zu heads: "
                        "expected a size that fits in memory", capacity, cfg->head_dim, n_heads);

    hkm_kvcache *c;
    HKM_ALLOC(c, 1, err);
    c->cfg = *cfg;
    c->capacity = capacity;
    c->heads = calloc(n_heads, sizeof *c->heads);
    c->kv_arena = malloc(2 * n_heads * per_head * sizeof(float));
    c->pos_arena = malloc(n_heads * (size_t)capacity * sizeof(int32_t));
    if (!c->heads || !c->kv_arena || !c->pos_arena) {
        hkm_kvcache_free(c);
        return hkm_fail(err, HKM_ERR_NOMEM,
                        "hkm_kvcache_create: out of memory for %zu heads x %d entries x "
                        "head_dim %d", n_heads, capacity, cfg->head_dim);
    }
    for (size_t i = 0; i < n_heads; i++) {
        c->heads[i].k = c->kv_arena + 2 * i * per_head;
        c->heads[i].v = c->heads[i].k + per_head;
        c->heads[i].pos = c->pos_arena + i * (size_t)capacity;
    }
    *out = c;
    return HKM_OK;
}

void hkm_kvcache_free(hkm_kvcache *c) {
    if (!c) return;
    free(c->heads);
    free(c->kv_arena);
    free(c->pos_arena);
    free(c->ws);
    free(c);
}

int hkm_kvcache_next_pos(const hkm_kvcache *c) { return c ? c->next_pos : 0; }

static int valid_head(const hkm_kvcache *c, int layer, int kv_head) {
    return c && layer >= 0 && layer < c->cfg.n_layers && kv_head >= 0 &&
           kv_head < c->cfg.n_kv_heads;
}

int hkm_kvcache_len(const hkm_kvcache *c, int layer, int kv_head) {
    if (!valid_head(c, layer, kv_head)) return -1;
    return c->heads[(size_t)layer * (size_t)c->cfg.n_kv_heads + (size_t)kv_head].len;
}

void hkm_kvcache_head(const hkm_kvcache *c, int layer, int kv_head, const float **k,
                      const float **v, const int32_t **pos) {
    const hkm_kv_head *h = NULL;
    if (valid_head(c, layer, kv_head))
        h = &c->heads[(size_t)layer * (size_t)c->cfg.n_kv_heads + (size_t)kv_head];
    if (k) *k = h ? h->k : NULL;
    if (v) *v = h ? h->v : NULL;
    if (pos) *pos = h ? h->pos : NULL;
}

/* keep[] must be strictly increasing indices below len. */
static hkm_status check_keep(const hkm_kv_head *h, int layer, int kv_head, const int32_t *keep,
                             int n_keep, hkm_err *err) {
    if (n_keep < 0 || n_keep > h->len)
        return hkm_fail(err, HKM_ERR_ARG,
                        "hkm_kvcache_keep: layer %d head %d: n_keep=%d: expected 0..%d (entries held)",
                        layer, kv_head, n_keep, h->len);
    if (n_keep > 0 && !keep)
        return hkm_fail(err, HKM_ERR_ARG, "hkm_kvcache_keep: keep: expected non-NULL for n_keep=%d",
                        n_keep);
    for (int i = 0; i < n_keep; i++) {
        int prev = i ? keep[i - 1] : -1;
        if (keep[i] <= prev || keep[i] >= h->len)
            return hkm_fail(err, HKM_ERR_ARG,
                            "hkm_kvcache_keep: layer %d head %d: keep[%d]=%d: expected strictly "
                            "increasing indices in (%d, %d)", layer, kv_head, i, keep[i], prev, h->len);
    }
    return HKM_OK;
}

hkm_status hkm_kvcache_keep(hkm_kvcache *c, int layer, int kv_head, const int32_t *keep,
                            int n_keep, hkm_err *err) {
    if (!valid_head(c, layer, kv_head))
        return hkm_fail(err, HKM_ERR_ARG,
                        "hkm_kvcache_keep: layer %d head %d: expected a valid cache, layer in "
                        "[0, %d) and head in [0, %d)", layer, kv_head, c ? c->cfg.n_layers : 0,
                        c ? c->cfg.n_kv_heads : 0);
    hkm_kv_head *h = hkm_kv_at(c, layer, kv_head);
    HKM_TRY(check_keep(h, layer, kv_head, keep, n_keep, err));
    size_t hd = (size_t)c->cfg.head_dim;
    // keep[i] >= i, so moving entries forward in order never overwrites a kept one.
    for (int i = 0; i < n_keep; i++) {
        size_t src = (size_t)keep[i];
        if (src == (size_t)i) continue;
        memcpy(h->k + (size_t)i * hd, h->k + src * hd, hd * sizeof(float));
        memcpy(h->v + (size_t)i * hd, h->v + src * hd, hd * sizeof(float));
        h->pos[i] = h->pos[src];
    }
    h->len = n_keep;
    return HKM_OK;
}

hkm_status hkm_kvcache_rewind(hkm_kvcache *c, int n_pos, hkm_err *err) {
    if (!c) return hkm_fail(err, HKM_ERR_ARG, "hkm_kvcache_rewind: NULL cache");
    if (n_pos < 0 || n_pos > c->next_pos)
        return hkm_fail(err, HKM_ERR_ARG, "hkm_kvcache_rewind: position %d: expected 0..%d", n_pos,
                        c->next_pos);
    size_t n_heads = (size_t)c->cfg.n_layers * (size_t)c->cfg.n_kv_heads;
    for (size_t i = 0; i < n_heads; i++) {
        hkm_kv_head *h = &c->heads[i];
        while (h->len > 0 && h->pos[h->len - 1] >= n_pos) h->len--; // entries are in position order
    }
    c->next_pos = n_pos;
    return HKM_OK;
}

void hkm_kvcache_reset(hkm_kvcache *c) {
    if (c) hkm_kvcache_rewind(c, 0, NULL);
}
