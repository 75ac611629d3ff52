/* Reads a hubkv-profile stats file into per-scorer means, and a model's
 * config (GGUF metadata or config.json, no weights) into a fingerprint. */
#include "inputs.h"

#include "h5check.h"
#include "stats_file.h"

#include <string.h>
#include <sys/stat.h>

int hks_scorer_index(const char *name) {
    static const char *names[] = {"snapkv", "h2o", "keydiff", "kvzip", "oracle"};
    for (int i = 0; i < 5; i++)
        if (name && !strcmp(name, names[i])) return i;
    return -1;
}

void hks_stats_in_free(hks_stats_in *s) {
    if (!s) return;
    free(s->grid), free(s->loss), free(s->entropy), free(s->top1), free(s->beta);
    memset(s, 0, sizeof *s);
}

/* grid and mean/beta come from the file's datasets (the same numbers
 * hubkv-profile derived; not re-derived here). */
static hkm_status read_extra(const char *path, const hkp_stats *st, int scorer, hks_stats_in *s, hkm_err *err) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return hkm_fail(err, HKM_ERR_IO, "%s: H5Fopen failed", path);
    hsize_t G = (hsize_t)st->G, db[3] = {(hsize_t)st->S + 1, (hsize_t)st->L, (hsize_t)st->KV};
    double *beta = calloc(db[0] * db[1] * db[2], sizeof *beta);
    hkm_status r = beta ? HKM_OK : hkm_fail(err, HKM_ERR_NOMEM, "%s: out of memory", path);
    if (!r) r = hkp_h5_read(f, path, "grid", H5T_NATIVE_DOUBLE, 1, &G, s->grid, err);
    if (!r) r = hkp_h5_read(f, path, "mean/beta", H5T_NATIVE_DOUBLE, 3, db, beta, err);
    if (!r) memcpy(s->beta, beta + (size_t)scorer * st->L * st->KV, (size_t)st->L * st->KV * sizeof *beta);
    free(beta);
    H5Fclose(f);
    return r;
}

hkm_status hks_stats_load(const char *path, int scorer, hks_stats_in *s, hkm_err *err) {
    memset(s, 0, sizeof *s);
    if (scorer < 0 || scorer > HKP_SC_COUNT)
        return hkm_fail(err, HKM_ERR_ARG, "scorer index %d; expected 0..%d", scorer, HKP_SC_COUNT);
    hkp_stats st;
    HKM_TRY(hkp_stats_read(path, &st, err));
    hkm_status r = HKM_OK;
    double cnt = 0, tok = 0;
    for (int b = 0; b < st.NB; b++) cnt += st.count[b], tok += st.tokens[b];
    if (!st.complete)
        r = hkm_fail(err, HKM_ERR_ARG, "%s: complete=0 (%lld of %lld contexts): expected a finished hubkv-profile run "
                     "(rerun it to resume, or merge the shards)", path, (long long)st.next, (long long)st.n_contexts);
    else if (cnt <= 0)
        r = hkm_fail(err, HKM_ERR_ARG, "%s: count sums to 0: expected at least one profiled context", path);
    else if (scorer == HKP_SC_KVZIP && !st.kvzip)
        r = hkm_fail(err, HKM_ERR_ARG, "%s: kvzip=0 (run with --no-kvzip): expected KVzip curves for --scorer kvzip", path);
    if (r) { hkp_stats_free(&st); return r; }
    int64_t L = st.L, H = st.KV, G = st.G, lhg = L * H * G;
    s->L = st.L, s->H = st.KV, s->G = st.G;
    s->grid = calloc((size_t)G, sizeof *s->grid);
    s->loss = calloc((size_t)lhg, sizeof *s->loss);
    s->entropy = calloc((size_t)(L * H), sizeof *s->entropy);
    s->top1 = calloc((size_t)(L * H), sizeof *s->top1);
    s->beta = calloc((size_t)(L * H), sizeof *s->beta);
    if (!s->grid || !s->loss || !s->entropy || !s->top1 || !s->beta) {
        hkp_stats_free(&st);
        hks_stats_in_free(s);
        return hkm_fail(err, HKM_ERR_NOMEM, "%s: out of memory for %lld curve points", path, (long long)lhg);
    }
    for (int b = 0; b < st.NB; b++) {
        const double *src = scorer == HKP_SC_ORACLE ? st.orc_sum + (size_t)b * lhg
                                                    : st.loss_sum + ((size_t)b * st.S + scorer) * lhg;
        for (int64_t i = 0; i < lhg; i++) s->loss[i] += src[i] / cnt;
        const double *e = st.ent_sum + ((size_t)b * (st.S + 1) + scorer) * L * H;
        const double *t = st.top_sum + ((size_t)b * (st.S + 1) + scorer) * L * H;
        for (int64_t i = 0; i < L * H; i++) s->entropy[i] += e[i] / cnt, s->top1[i] += t[i] / cnt;
    }
    s->n_contexts = cnt;
    s->mean_tokens = tok / cnt;
    s->sink = st.sink, s->recent = st.recent;
    snprintf(s->model, sizeof s->model, "%s", st.model);
    snprintf(s->calib, sizeof s->calib, "%s", st.calib);
    r = read_extra(path, &st, scorer, s, err);
    hkp_stats_free(&st);
    if (r) hks_stats_in_free(s);
    return r;
}

/* ---------------------------------------------------------------- model */

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

uint64_t hks_config_hash(const hkm_config *c) {
    // Fields that fix every tensor shape, in a fixed order and width.
    int32_t v[] = {(int32_t)c->arch, c->n_layers, c->d_model, c->n_heads, c->n_kv_heads, c->head_dim,
                   c->d_ff, c->vocab_size, c->tie_embeddings, c->qkv_bias, c->qk_norm};
    uint64_t h = 0xcbf29ce484222325ULL;
    const char *name = hkm_arch_name(c->arch);
    h = fnv(h, name, strlen(name));
    for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
        unsigned char le[4] = {(unsigned char)v[i], (unsigned char)(v[i] >> 8), (unsigned char)(v[i] >> 16),
                               (unsigned char)(v[i] >> 24)};
        h = fnv(h, le, 4);
    }
    return h ? h : 1; /* 0 means "do not compare" to the reader */
}

hkm_status hks_model_desc_load(const char *path, hubkv_model_desc *d, hkm_err *err) {
    struct stat sb;
    if (!path || stat(path, &sb))
        return hkm_fail(err, HKM_ERR_IO, "%s: no such file or directory: expected a .gguf file or an HF model directory",
                        path ? path : "(null)");
    hkm_config c;
    memset(&c, 0, sizeof c);
    if (S_ISDIR(sb.st_mode)) {
        char cfg[4200];
        snprintf(cfg, sizeof cfg, "%s/config.json", path);
        HKM_TRY(hkm_config_load_json(cfg, &c, err));
    } else {
        hkm_gguf *g = NULL;
        HKM_TRY(hkm_gguf_open(path, &g, err));
        hkm_status st = hkm_gguf_config(g, &c, err);
        hkm_gguf_free(g);
        HKM_TRY(st);
    }
    d->architecture = hkm_arch_name(c.arch);
    d->n_layers = c.n_layers;
    d->n_heads = c.n_heads;
    d->n_kv_heads = c.n_kv_heads;
    d->head_dim = c.head_dim;
    d->vocab = c.vocab_size;
    d->hash = hks_config_hash(&c);
    return HKM_OK;
}
