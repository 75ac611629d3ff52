/* Private host-side structures of the GPU engine (model, cache) and the check
 * macros for CUDA and cuBLAS calls. */
#ifndef HKG_HOST_H
#define HKG_HOST_H

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "hkg_kernels.h"
#include "hkm_internal.h"
#include "hubkv_cuda.h"

/* Device failures have no status of their own: HKM_ERR_NOMEM for allocation
 * failures, HKM_ERR_IO (the device did not do what was asked) otherwise. */
#define HKG_CUDA(call, err)                                                            \
    do {                                                                               \
        cudaError_t hkg_e_ = (call);                                                   \
        if (hkg_e_ != cudaSuccess)                                                     \
            return hkm_fail((err),                                                     \
                            hkg_e_ == cudaErrorMemoryAllocation ? HKM_ERR_NOMEM : HKM_ERR_IO, \
                            "%s:%d: CUDA: %s: %s", __FILE__, __LINE__, #call,          \
                            cudaGetErrorString(hkg_e_));                               \
    } while (0)

#define HKG_BLAS(call, err)                                                            \
    do {                                                                               \
        cublasStatus_t hkg_b_ = (call);                                                \
        if (hkg_b_ != CUBLAS_STATUS_SUCCESS)                                           \
            return hkm_fail((err), HKM_ERR_IO, "%s:%d: cuBLAS: %s: %s", __FILE__,      \
                            __LINE__, #call, cublasGetStatusString(hkg_b_));           \
    } while (0)

/* One decoder layer on the device. */
typedef struct {
    hkg_bf16 *wqkv;   /* ((H + 2KV)*hd, d) rows of wq, wk, wv */
    hkg_bf16 *wo;     /* (d, H*hd) */
    hkg_bf16 *wgu;    /* (2*ff, d) rows of w_gate then w_up */
    hkg_bf16 *wdown;  /* (d, ff) */
    float *attn_norm; /* (d) */
    float *ffn_norm;  /* (d) */
    float *bqkv;      /* ((H + 2KV)*hd) or NULL */
    float *q_norm;    /* (hd) or NULL */
    float *k_norm;    /* (hd) or NULL */
} hkg_layer;

/* g->persist: not yet decided, used, not used */
enum { HKG_PD_UNDECIDED, HKG_PD_ON, HKG_PD_OFF };

/* Rows of logits computed per lm_head product when every row is asked. */
#define HKG_LOGIT_ROWS 256

struct hkm_gpu_model {
    hkm_config cfg;
    int max_chunk;
    cudaStream_t stream;
    cublasHandle_t blas;
    /* weights: one allocation */
    void *w_arena;
    hkg_bf16 *tok_emb;  /* (vocab, d) */
    hkg_bf16 *lm_head;  /* (vocab, d); == tok_emb when tied */
    float *out_norm;    /* (d) */
    float *inv_freq;    /* (hd/2) RoPE frequencies */
    hkg_layer *layers;  /* host array (n_layers) of device pointers */
    /* scratch for one chunk of C = max_chunk tokens: one allocation */
    void *s_arena;
    float *x;           /* (C, d) residual stream */
    hkg_bf16 *xn;       /* (C, max(d, ff)) normed input of a product */
    float *qkv;         /* (C, (H + 2KV)*hd) */
    hkg_bf16 *q;        /* (H, C, hd) */
    hkg_bf16 *attn;     /* (C, H*hd) */
    float *gu;          /* (C, 2*ff) */
    float *lse;         /* (H, C) */
    float *logits;      /* (HKG_LOGIT_ROWS, vocab) */
    float *dec_part;    /* decode split partials */
    int32_t *ids;       /* (C) */
    int32_t *amax;      /* (1) */
    int32_t *pos;       /* (1) position of a graph-replayed decode token */
    /* decode step as a CUDA graph, valid for one cache (its buffers are baked in) */
    cudaGraphExec_t graph;
    const hkm_gpu_cache *graph_cache;
    int no_graph;       /* capture failed once: plain launches from then on */
    int graph_replays;  /* decode tokens served by the graph (diagnostics) */
    int no_gemv;        /* decode products through cuBLAS instead of hkg_gemv */
    /* persistent decode kernel (hkg_decode_persistent): HUBKV_GPU_PERSIST
     * -1 unset (auto), 0 off, 1 on; HKG_PD_* state once decided */
    int persist_env, persist, no_prefetch;
    int persist_tokens; /* decode tokens it served (diagnostics) */
    int pd_no_stage, pd_kv_keys_max, pd_window; /* test knobs, see hkg_pd_args */
    hkg_pd_layer *pd_layers; /* device (n_layers) */
    hkg_bf16 *pd_wdT;        /* (n_layers, ff, d) down projections transposed */
    void *pd_scratch;
    size_t pd_bytes;
    int32_t *pd_tok;         /* (2) pinned host: greedy tokens, by step parity */
    cudaEvent_t pd_ev[2];    /* each slot's token has landed */
    float *logits_pin;       /* (vocab) pinned host: a decode step's logits */
    /* capture buffers, grown on demand */
    float *probs;
    size_t probs_cap;   /* floats */
    int32_t *rows;
    int rows_cap;
    float *colmax, *colsum;
    size_t cs_cap;      /* floats each */
    size_t bytes_now, bytes_peak;
};

struct hkm_gpu_cache {
    hkm_gpu_model *g;
    int cap, n_layers, n_kv, hd;
    int next_pos;
    void *arena;
    hkg_bf16 **k, **v;  /* host arrays (n_layers): (n_kv*cap, hd) each */
    hkg_bf16 *scratch;  /* (cap, hd) for compaction */
    int32_t *d_keep;    /* (cap) */
    int32_t *d_off;     /* (n_kv) = h*cap */
    int32_t *d_len;     /* (n_layers, n_kv) */
    int32_t *h_len;     /* (n_layers, n_kv) host mirror */
    int32_t *h_pos;     /* (n_layers, n_kv, cap) host */
};

/* Device allocation tracked in g's byte counters; NOMEM message names what,
 * the bytes asked and the bytes free. */
hkm_status hkg_malloc(hkm_gpu_model *g, void **p, size_t bytes, const char *what, hkm_err *err);
void hkg_free(hkm_gpu_model *g, void *p, size_t bytes);
/* Fail with HKM_ERR_NOMEM unless `need` bytes are free on the device. */
hkm_status hkg_check_free(size_t need, const char *what, hkm_err *err);
size_t hkg_cache_bytes(const hkm_config *cfg, int capacity);

#endif
