/* Assemble the fp32 model from an HF directory (config.json + safetensors) or
 * a GGUF file: every tensor is looked up by its name in that format, checked
 * against the config's shape, converted into one arena, and (llama GGUF)
 * un-permuted back to HF's Q/K row order. */
#include "hkm_internal.h"

#include <stddef.h>
#include <string.h>
#include <sys/stat.h>

/* ---------------------------------------------------------------- sources */

typedef struct {
    hkm_st *st;     /* HF directory, or NULL */
    hkm_gguf *gg;   /* GGUF file, or NULL */
    const char *path;
    int unpermute;  /* llama GGUF: Q/K rows are in llama.cpp's rotary order */
} source;

static int is_dir(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

static const char *src_file(const source *s, const char *name) {
    if (s->gg) return hkm_gguf_path(s->gg);
    const char *f = hkm_st_file(s->st, name);
    return f ? f : s->path;
}

static hkm_status src_info(const source *s, const char *name, hkm_tensor_info *ti, hkm_err *err) {
    return s->gg ? hkm_gguf_info(s->gg, name, ti, err) : hkm_st_info(s->st, name, ti, err);
}

static hkm_status src_read(const source *s, const char *name, float *dst, size_t n, hkm_err *err) {
    return s->gg ? hkm_gguf_read_f32(s->gg, name, dst, n, err)
                 : hkm_st_read_f32(s->st, name, dst, n, err);
}

/* ---------------------------------------------------------------- tensor plan */

/* Shapes, in terms of the config. */
typedef enum { S_D, S_Q, S_KV, S_O, S_QB, S_KVB, S_HD, S_UP, S_DOWN, S_EMB } shape_kind;

enum { NEED_ALWAYS = 0, NEED_BIAS, NEED_QKNORM };
enum { PERM_NONE = 0, PERM_Q, PERM_K };

static const struct {
    const char *hf, *gg;
    shape_kind shape;
    int need, perm;
    size_t field; /* offsetof(hkm_layer, ...) */
} LAYER_TENSORS[] = {
#define F(x) offsetof(hkm_layer, x)
    {"input_layernorm.weight", "attn_norm.weight", S_D, NEED_ALWAYS, PERM_NONE, F(attn_norm)},
    {"self_attn.q_proj.weight", "attn_q.weight", S_Q, NEED_ALWAYS, PERM_Q, F(wq)},
    {"self_attn.k_proj.weight", "attn_k.weight", S_KV, NEED_ALWAYS, PERM_K, F(wk)},
    {"self_attn.v_proj.weight", "attn_v.weight", S_KV, NEED_ALWAYS, PERM_NONE, F(wv)},
    {"self_attn.o_proj.weight", "attn_output.weight", S_O, NEED_ALWAYS, PERM_NONE, F(wo)},
    {"self_attn.q_proj.bias", "attn_q.bias", S_QB, NEED_BIAS, PERM_NONE, F(bq)},
    {"self_attn.k_proj.bias", "attn_k.bias", S_KVB, NEED_BIAS, PERM_NONE, F(bk)},
    {"self_attn.v_proj.bias", "attn_v.bias", S_KVB, NEED_BIAS, PERM_NONE, F(bv)},
    {"self_attn.q_norm.weight", "attn_q_norm.weight", S_HD, NEED_QKNORM, PERM_NONE, F(q_norm)},
    {"self_attn.k_norm.weight", "attn_k_norm.weight", S_HD, NEED_QKNORM, PERM_NONE, F(k_norm)},
    {"post_attention_layernorm.weight", "ffn_norm.weight", S_D, NEED_ALWAYS, PERM_NONE, F(ffn_norm)},
    {"mlp.gate_proj.weight", "ffn_gate.weight", S_UP, NEED_ALWAYS, PERM_NONE, F(w_gate)},
    {"mlp.up_proj.weight", "ffn_up.weight", S_UP, NEED_ALWAYS, PERM_NONE, F(w_up)},
    {"mlp.down_proj.weight", "ffn_down.weight", S_DOWN, NEED_ALWAYS, PERM_NONE, F(w_down)},
#undef F
};
#define N_LAYER_TENSORS (sizeof LAYER_TENSORS / sizeof LAYER_TENSORS[0])

typedef struct {
    char name[96];
    float **dst;     /* where the arena pointer goes */
    int ndim;
    int64_t dims[2];
    size_t n;        /* element count */
    int perm;        /* PERM_* (applied only for permuted sources) */
} job;

static void shape_of(const hkm_config *c, shape_kind k, job *j) {
    int64_t q = (int64_t)c->n_heads * c->head_dim, kv = (int64_t)c->n_kv_heads * c->head_dim;
    int64_t d = c->d_model;
    int64_t r = 0, col = 0;
    switch (k) {
    case S_D: r = d; break;
    case S_Q: r = q, col = d; break;
    case S_KV: r = kv, col = d; break;
    case S_O: r = d, col = q; break;
    case S_QB: r = q; break;
    case S_KVB: r = kv; break;
    case S_HD: r = c->head_dim; break;
    case S_UP: r = c->d_ff, col = d; break;
    case S_DOWN: r = d, col = c->d_ff; break;
    case S_EMB: r = c->vocab_size, col = d; break;
    }
    j->ndim = col ? 2 : 1;
    j->dims[0] = r;
    j->dims[1] = col;
    j->n = (size_t)r * (size_t)(col ? col : 1);
}

static void add_job(job *jobs, int *n, const hkm_config *c, shape_kind k, float **dst, int perm,
                    const char *name) {
    job *j = &jobs[(*n)++];
    snprintf(j->name, sizeof j->name, "%s", name);
    j->dst = dst;
    j->perm = perm;
    shape_of(c, k, j);
}

/* Every tensor the config calls for, with its name in the source's format. */
static int plan(const source *s, hkm_model *m, job *jobs) {
    const hkm_config *c = &m->cfg;
    int n = 0, gg = s->gg != NULL;
    char name[96];
    add_job(jobs, &n, c, S_EMB, &m->tok_emb, PERM_NONE,
            gg ? "token_embd.weight" : "model.embed_tokens.weight");
    for (int l = 0; l < c->n_layers; l++) {
        for (size_t i = 0; i < N_LAYER_TENSORS; i++) {
            int need = LAYER_TENSORS[i].need;
            if ((need == NEED_BIAS && !c->qkv_bias) || (need == NEED_QKNORM && !c->qk_norm)) continue;
            if (gg) snprintf(name, sizeof name, "blk.%d.%s", l, LAYER_TENSORS[i].gg);
            else snprintf(name, sizeof name, "model.layers.%d.%s", l, LAYER_TENSORS[i].hf);
            float **dst = (float **)((char *)&m->layers[l] + LAYER_TENSORS[i].field);
            add_job(jobs, &n, c, LAYER_TENSORS[i].shape, dst, LAYER_TENSORS[i].perm, name);
        }
    }
    add_job(jobs, &n, c, S_D, &m->out_norm, PERM_NONE, gg ? "output_norm.weight" : "model.norm.weight");
    if (!c->tie_embeddings)
        add_job(jobs, &n, c, S_EMB, &m->lm_head, PERM_NONE, gg ? "output.weight" : "lm_head.weight");
    return n;
}

/* ---------------------------------------------------------------- checks */

static void dims_str(char *buf, size_t cap, int ndim, const int64_t *dims) {
    size_t o = (size_t)snprintf(buf, cap, "(");
    for (int i = 0; i < ndim && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%lld", i ? ", " : "", (long long)dims[i]);
    if (o < cap) snprintf(buf + o, cap - o, ")");
}

static hkm_status check_job(const source *s, const job *j, hkm_err *err) {
    hkm_tensor_info ti;
    hkm_status st = src_info(s, j->name, &ti, err);
    if (st == HKM_ERR_MISSING && s->gg)
        return hkm_fail(err, st, "%s: tensor '%s' is missing", hkm_gguf_path(s->gg), j->name);
    if (st == HKM_ERR_MISSING && err && strcmp(j->name, "lm_head.weight") == 0) {
        size_t len = strlen(err->msg);
        snprintf(err->msg + len, sizeof err->msg - len,
                 " (config.json says tie_word_embeddings is false)");
    }
    if (st != HKM_OK) return st;
    int same = ti.ndim == j->ndim;
    for (int i = 0; same && i < j->ndim; i++) same = ti.dims[i] == j->dims[i];
    if (same) return HKM_OK;
    char want[64], got[128];
    dims_str(want, sizeof want, j->ndim, j->dims);
    dims_str(got, sizeof got, ti.ndim < 0 ? 0 : ti.ndim > 8 ? 8 : ti.ndim, ti.dims);
    return hkm_fail(err, HKM_ERR_SHAPE, "%s: tensor '%s': expected shape %s from the config, got %s",
                    src_file(s, j->name), j->name, want, got);
}

/* Sizes the loader relies on, for configs from either format. */
static hkm_status check_config(const source *s, const hkm_config *c, hkm_err *err) {
    if (c->n_layers <= 0 || c->d_model <= 0 || c->n_heads <= 0 || c->n_kv_heads <= 0 ||
        c->head_dim <= 0 || c->d_ff <= 0 || c->vocab_size <= 0)
        return hkm_fail(err, HKM_ERR_FORMAT, "%s: config: expected positive sizes, got layers %d, "
                        "hidden %d, heads %d, kv heads %d, head_dim %d, ffn %d, vocab %d", s->path,
                        c->n_layers, c->d_model, c->n_heads, c->n_kv_heads, c->head_dim, c->d_ff,
                        c->vocab_size);
    if (c->n_heads % c->n_kv_heads != 0 || c->head_dim % 2 != 0)
        return hkm_fail(err, HKM_ERR_FORMAT, "%s: config: expected heads (%d) divisible by kv heads "
                        "(%d) and an even head_dim (%d)", s->path, c->n_heads, c->n_kv_heads,
                        c->head_dim);
    return HKM_OK;
}

/* ---------------------------------------------------------------- reading */

/* Undo convert_hf_to_gguf's permute(): GGUF row h*2d + 2i + j holds HF row
 * h*2d + j*d + i (d = head_dim/2), as transformers' reverse_permute does. */
static hkm_status unpermute(float *w, int64_t rows, int64_t cols, int n_head, hkm_err *err) {
    float *tmp;
    HKM_ALLOC(tmp, (size_t)(rows * cols), err);
    memcpy(tmp, w, (size_t)(rows * cols) * sizeof *w);
    int64_t d = rows / n_head / 2;
    for (int64_t h = 0; h < n_head; h++)
        for (int64_t i = 0; i < d; i++)
            for (int64_t j = 0; j < 2; j++)
                memcpy(w + (h * 2 * d + j * d + i) * cols, tmp + (h * 2 * d + 2 * i + j) * cols,
                       (size_t)cols * sizeof *w);
    free(tmp);
    return HKM_OK;
}

static hkm_status read_job(const source *s, const hkm_config *c, const job *j, hkm_err *err) {
    HKM_TRY(src_read(s, j->name, *j->dst, j->n, err));
    if (!s->unpermute || j->perm == PERM_NONE) return HKM_OK;
    return unpermute(*j->dst, j->dims[0], j->dims[1], j->perm == PERM_Q ? c->n_heads : c->n_kv_heads,
                     err);
}

/* Tensors are independent: convert them in parallel, report the first failure. */
static hkm_status read_all(const source *s, const hkm_config *c, const job *jobs, int n,
                           hkm_err *err) {
    hkm_status first = HKM_OK;
    int first_i = n;
#pragma omp parallel for schedule(dynamic, 1)
    for (int i = 0; i < n; i++) {
        hkm_err local;
        local.msg[0] = 0;
        hkm_status st = read_job(s, c, &jobs[i], &local);
        if (st != HKM_OK) {
#pragma omp critical(hkm_load_err)
            if (i < first_i) {
                first_i = i;
                first = st;
                if (err) *err = local;
            }
        }
    }
    return first;
}

static hkm_status assign_arena(hkm_model *m, job *jobs, int n, hkm_err *err) {
    size_t total = 0;
    for (int i = 0; i < n; i++)
        if (__builtin_add_overflow(total, jobs[i].n, &total))
            return hkm_fail(err, HKM_ERR_FORMAT, "model: total weight size overflows");
    HKM_ALLOC(m->arena, total, err);
    m->arena_floats = total;
    float *p = m->arena;
    for (int i = 0; i < n; i++) {
        *jobs[i].dst = p;
        p += jobs[i].n;
    }
    if (m->cfg.tie_embeddings) m->lm_head = m->tok_emb;
    return HKM_OK;
}

static hkm_status load_weights(const source *s, hkm_model *m, hkm_err *err) {
    HKM_TRY(check_config(s, &m->cfg, err));
    HKM_ALLOC(m->layers, m->cfg.n_layers, err);
    job *jobs;
    HKM_ALLOC(jobs, 3 + (size_t)m->cfg.n_layers * N_LAYER_TENSORS, err);
    int n = plan(s, m, jobs);
    hkm_status st = HKM_OK;
    for (int i = 0; i < n && st == HKM_OK; i++) st = check_job(s, &jobs[i], err);
    if (st == HKM_OK) st = assign_arena(m, jobs, n, err);
    if (st == HKM_OK) st = read_all(s, &m->cfg, jobs, n, err);
    free(jobs);
    return st;
}

/* ---------------------------------------------------------------- formats */

static hkm_status open_hf(const char *dir, source *s, hkm_config *cfg, hkm_err *err) {
    char path[4096];
    if (snprintf(path, sizeof path, "%s/config.json", dir) >= (int)sizeof path)
        return hkm_fail(err, HKM_ERR_ARG, "%s: path too long", dir);
    HKM_TRY(hkm_config_load_json(path, cfg, err));
    return hkm_st_open(dir, &s->st, err);
}

/* GGUF: flags follow the architecture; output.weight absent means tied. */
static hkm_status open_gguf(const char *path, source *s, hkm_config *cfg, hkm_err *err) {
    HKM_TRY(hkm_gguf_open(path, &s->gg, err));
    HKM_TRY(hkm_gguf_config(s->gg, cfg, err));
    const char *arch = NULL;
    size_t alen = 0;
    HKM_TRY(hkm_gguf_get_str(s->gg, "general.architecture", &arch, &alen, err));
    s->unpermute = alen == 5 && memcmp(arch, "llama", 5) == 0;
    cfg->qkv_bias = cfg->arch == HKM_ARCH_QWEN2;
    cfg->qk_norm = cfg->arch == HKM_ARCH_QWEN3;
    hkm_tensor_info ti;
    hkm_err scratch;
    if (cfg->vocab_size <= 0 && hkm_gguf_info(s->gg, "token_embd.weight", &ti, err) == HKM_OK)
        cfg->vocab_size = (int)ti.dims[0];
    hkm_status st = hkm_gguf_info(s->gg, "output.weight", &ti, &scratch);
    if (st != HKM_OK && st != HKM_ERR_MISSING) {
        if (err) *err = scratch;
        return st;
    }
    cfg->tie_embeddings = st == HKM_ERR_MISSING;
    return HKM_OK;
}

/* ---------------------------------------------------------------- public */

static hkm_status load(const char *path, hkm_model *m, hkm_err *err) {
    source s = {NULL, NULL, path, 0};
    hkm_status st;
    if (is_dir(path)) st = open_hf(path, &s, &m->cfg, err);
    else if (ends_with(path, ".gguf")) st = open_gguf(path, &s, &m->cfg, err);
    else st = hkm_fail(err, HKM_ERR_ARG, "%s: expected a directory (config.json + safetensors) or a "
                       ".gguf file", path);
    if (st == HKM_OK) st = load_weights(&s, m, err);
    hkm_st_free(s.st);
    if (s.gg) hkm_gguf_free(s.gg);
    return st;
}

hkm_status hkm_model_load(const char *path, hkm_model **out, hkm_err *err) {
    if (!path || !out) return hkm_fail(err, HKM_ERR_ARG, "hkm_model_load: NULL argument");
    *out = NULL;
    hkm_model *m;
    HKM_ALLOC(m, 1, err);
    hkm_status st = load(path, m, err);
    if (st != HKM_OK) {
        hkm_model_free(m);
        return st;
    }
    *out = m;
    return HKM_OK;
}

void hkm_model_free(hkm_model *m) {
    if (!m) return;
    free(m->arena);
    free(m->layers);
    free(m);
}

const hkm_config *hkm_model_config(const hkm_model *m) { return m ? &m->cfg : NULL; }
