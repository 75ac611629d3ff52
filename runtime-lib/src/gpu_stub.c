/* GPU entry points of a build without CUDA (HUBKV_CUDA=OFF): each reports
 * HUBKV_ERR_UNSUPPORTED so callers link the same API either way. */
#include "hubkv_internal.h"

#define NO_CUDA "libhubkv was built without CUDA (configure with -DHUBKV_CUDA=ON)"

hubkv_status hubkv_gpu_create(int32_t device, void *stream, hubkv_gpu **out, char *err, size_t cap) {
    if (out) *out = NULL;
    return hkv_fail(err, cap, HUBKV_ERR_UNSUPPORTED, NO_CUDA);
}
void hubkv_gpu_free(hubkv_gpu *g) { (void)g; }
const char *hubkv_gpu_error(const hubkv_gpu *g) { return NO_CUDA; }
hubkv_status hubkv_gpu_sync(hubkv_gpu *g) { return HUBKV_ERR_UNSUPPORTED; }
hubkv_status hubkv_gpu_refine(hubkv_gpu *g, const float *s, const float *b, int32_t nh, int64_t n,
                              const hubkv_refine_params *p, float *o) {
    return HUBKV_ERR_UNSUPPORTED;
}
hubkv_status hubkv_gpu_topk(hubkv_gpu *g, const float *s, int32_t nh, int64_t n, const int32_t *off, int32_t ns,
                            int32_t nr, int32_t *idx) {
    return HUBKV_ERR_UNSUPPORTED;
}
hubkv_status hubkv_gpu_refine_topk(hubkv_gpu *g, const float *s, const float *b, int32_t nh, int64_t n,
                                   const hubkv_refine_params *p, const int32_t *off, int32_t ns, int32_t nr,
                                   int32_t *idx) {
    return HUBKV_ERR_UNSUPPORTED;
}
hubkv_status hubkv_gpu_compact(hubkv_gpu *g, const uint16_t *ik, const uint16_t *iv, const int32_t *ip,
                               const int32_t *io, int32_t nh, int32_t d, const int32_t *ki, const int32_t *ko,
                               int64_t nk, uint16_t *ok, uint16_t *ov, int32_t *op) {
    return HUBKV_ERR_UNSUPPORTED;
}
hubkv_status hubkv_cache_create(hubkv_gpu *g, int32_t nl, int32_t nh, int32_t d, hubkv_cache **out) {
    if (out) *out = NULL;
    return HUBKV_ERR_UNSUPPORTED;
}
void hubkv_cache_free(hubkv_cache *c) { (void)c; }
const char *hubkv_cache_error(const hubkv_cache *c) { return NO_CUDA; }
hubkv_status hubkv_cache_set_dense(hubkv_cache *c, int32_t l, const uint16_t *k, const uint16_t *v, int64_t n) {
    return HUBKV_ERR_UNSUPPORTED;
}
hubkv_status hubkv_cache_compact(hubkv_cache *c, int32_t l, const int32_t *ki, const int32_t *ko) {
    return HUBKV_ERR_UNSUPPORTED;
}
hubkv_status hubkv_cache_layer(const hubkv_cache *c, int32_t l, const uint16_t **k, const uint16_t **v,
                               const int32_t **o, const int32_t **p, int64_t *n) {
    return HUBKV_ERR_UNSUPPORTED;
}
int64_t hubkv_cache_bytes(const hubkv_cache *c) { return 0; }
hubkv_status hubkv_cache_layer_lens(const hubkv_cache *c, int32_t l, const int32_t **dl, const int32_t **hl,
                                    const int32_t **ho) {
    return HUBKV_ERR_UNSUPPORTED;
}
hubkv_status hubkv_cache_set_slack(hubkv_cache *c, int32_t rows) { return HUBKV_ERR_UNSUPPORTED; }
hubkv_status hubkv_cache_append(hubkv_cache *c, int32_t l, const uint16_t *k, const uint16_t *v, int32_t n, int32_t p0) {
    return HUBKV_ERR_UNSUPPORTED;
}
hubkv_status hubkv_cache_h2o_step(hubkv_cache *c, int32_t l, float *acc, const float *attn, const uint16_t *k,
                                  const uint16_t *v, int32_t np, int32_t ns, int32_t nr) {
    return HUBKV_ERR_UNSUPPORTED;
}
hubkv_status hubkv_gpu_h2o_step(hubkv_gpu *g, float *acc, int32_t *pos, const int32_t *off, int32_t *len, int32_t nh,
                                const float *attn, int32_t np, int32_t ns, int32_t nr, int32_t *slot) {
    return HUBKV_ERR_UNSUPPORTED;
}
hubkv_status hubkv_gpu_gate_forward(hubkv_gpu *g, const hubkv_gate_weights *w, const float *x, int64_t n, float *o) {
    return HUBKV_ERR_UNSUPPORTED;
}
hubkv_status hubkv_gate_buffer_create(hubkv_gpu *g, int32_t dm, int32_t nh, int32_t chunk, hubkv_gate_buffer **out) {
    if (out) *out = NULL;
    return HUBKV_ERR_UNSUPPORTED;
}
void hubkv_gate_buffer_free(hubkv_gate_buffer *b) { (void)b; }
hubkv_status hubkv_gate_buffer_push(hubkv_gate_buffer *b, const hubkv_gate_weights *w, const float *x, int32_t n,
                                    int32_t *ready) {
    if (ready) *ready = 0;
    return HUBKV_ERR_UNSUPPORTED;
}
const float *hubkv_gate_buffer_scores(const hubkv_gate_buffer *b) { return NULL; }
int32_t hubkv_gate_buffer_pending(const hubkv_gate_buffer *b) { return 0; }
hubkv_status hubkv_gpu_diverse(hubkv_gpu *g, const float *s, const uint16_t *v, int32_t nh, int64_t n, int32_t d,
                               const int32_t *doff, const int32_t *hoff, float lambda, int32_t ns, int32_t nr,
                               int32_t *idx) {
    return HUBKV_ERR_UNSUPPORTED;
}
