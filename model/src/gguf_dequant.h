/* ggml tensor types: block sizes for validating GGUF tensor infos, and
 * dequantisation to fp32 that rounds exactly like gguf-py's numpy code. */
#ifndef HKM_GGUF_DEQUANT_H
#define HKM_GGUF_DEQUANT_H

#include <stdint.h>

typedef struct {
    const char *name;  /* ggml's name, e.g. "Q4_1" */
    uint32_t blck;     /* elements per block */
    uint32_t tsize;    /* bytes per block */
    int can_dequant;   /* hkm_gguf_dequant handles it */
} hkm_ggml_type;

/* Traits of a ggml type id, or NULL if the id is unknown. */
const hkm_ggml_type *hkm_ggml_type_of(uint32_t type);

/* Names of the types hkm_gguf_dequant handles, for error messages. */
const char *hkm_ggml_dequant_list(void);

/* Dequantise n_blocks consecutive blocks of `type` from src into dst
 * (n_blocks * blck floats). Returns 0, or -1 if the type has no dequantiser. */
int hkm_gguf_dequant(uint32_t type, const uint8_t *src, float *dst, int64_t n_blocks);

/* IEEE half to float, exact (NaN payloads kept). */
float hkm_fp16_to_f32(uint16_t h);

#endif
