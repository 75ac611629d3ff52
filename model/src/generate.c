/* Greedy decoding: prefill the prompt into a fresh cache, then feed back the
 * argmax token until max_new tokens or EOS. */
#include "hkm_internal.h"

#include <limits.h>

/* Index of the largest logit; the lowest id wins ties (as torch.argmax). */
static int32_t argmax(const float *x, int n) {
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

static hkm_status check_args(const hkm_model *m, const int32_t *prompt, int n_prompt, int max_new,
                             const int32_t *out, const int *n_out, hkm_err *err) {
    if (!m || !prompt || !n_out)
        return hkm_fail(err, HKM_ERR_ARG,
                        "hkm_generate_greedy: model, prompt and n_out: expected non-NULL");
    if (n_prompt <= 0)
        return hkm_fail(err, HKM_ERR_ARG, "hkm_generate_greedy: n_prompt=%d: expected > 0", n_prompt);
    if (max_new < 0 || max_new > INT_MAX - n_prompt)
        return hkm_fail(err, HKM_ERR_ARG,
                        "hkm_generate_greedy: max_new=%d: expected 0..%d", max_new, INT_MAX - n_prompt);
    if (max_new > 0 && !out)
        return hkm_fail(err, HKM_ERR_ARG, "hkm_generate_greedy: out: expected room for %d ids",
                        max_new);
    return HKM_OK;
}

/* The loop proper; the caller owns cache and logits. EOS, when produced, is
 * the last id written (as transformers' generate returns it). */
static hkm_status greedy_loop(const hkm_model *m, hkm_kvcache *cache, float *logits,
                              const int32_t *prompt, int n_prompt, int max_new, int32_t eos_id,
                              int32_t *out, int *n_out, hkm_err *err) {
    HKM_TRY(hkm_forward_cpu(m, cache, prompt, n_prompt, HKM_LOGITS_LAST, logits, NULL, err));
    for (;;) {
        int32_t tok = argmax(logits, m->cfg.vocab_size);
        out[(*n_out)++] = tok;
        if (tok == eos_id || *n_out == max_new) return HKM_OK;
        HKM_TRY(hkm_forward_cpu(m, cache, &tok, 1, HKM_LOGITS_LAST, logits, NULL, err));
    }
}

hkm_status hkm_generate_greedy(const hkm_model *m, const int32_t *prompt, int n_prompt,
                               int max_new, int32_t eos_id, int32_t *out, int *n_out,
                               hkm_err *err) {
    HKM_TRY(check_args(m, prompt, n_prompt, max_new, out, n_out, err));
    *n_out = 0;
    if (max_new == 0) return HKM_OK;
    hkm_kvcache *cache = NULL;
    HKM_TRY(hkm_kvcache_create(&m->cfg, n_prompt + max_new, &cache, err));
    float *logits = malloc((size_t)m->cfg.vocab_size * sizeof(float));
    hkm_status st = logits ? HKM_OK
                           : hkm_fail(err, HKM_ERR_NOMEM,
                                      "hkm_generate_greedy: out of memory for %d logits",
                                      m->cfg.vocab_size);
    if (st == HKM_OK)
        st = greedy_loop(m, cache, logits, prompt, n_prompt, max_new, eos_id, out, n_out, err);
    free(logits);
    hkm_kvcache_free(cache);
    return st;
}
