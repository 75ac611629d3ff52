/* The calibration set: tokenised contexts with their task metadata, written by
 * hubkv-synth and read by hubkv-profile. Format: docs/calibration-set.md. */
#ifndef HKP_CALIB_SET_H
#define HKP_CALIB_SET_H

#include "hubkv_model.h"

#include <stdint.h>

#define HKP_CALIB_FORMAT "hubkv-calib"
#define HKP_CALIB_VERSION 1

typedef enum {
    HKP_TASK_NATURAL = 0, /* natural text; future = its true continuation */
    HKP_TASK_NEEDLE,      /* passkeys hidden at several depths */
    HKP_TASK_KV,          /* multi-key key-value retrieval */
    HKP_TASK_MDQA,        /* multi-document QA, answer = a span of one document */
    HKP_TASK_VARTRACK,    /* variable tracking through assignment chains */
    HKP_TASK_COPY,        /* copy a marked passage verbatim */
    HKP_TASK_RANDOM,      /* random ids (tests on tiny models) */
    HKP_TASK_COUNT
} hkp_task;

const char *hkp_task_name(int t);
/* -1 if unknown. */
int hkp_task_from_name(const char *name);

enum { HKP_SPLIT_CALIB = 0, HKP_SPLIT_HELDOUT = 1 };

/* Everything in the file, arrays concatenated over contexts. */
typedef struct {
    int64_t n;             /* contexts */
    int32_t *tokens;       /* (offsets[n]) every context's ids then its future window */
    int64_t *offsets;      /* (n + 1) start of context c in tokens */
    int32_t *task;         /* (n) hkp_task */
    int32_t *split;        /* (n) HKP_SPLIT_* */
    int32_t *future_start; /* (n) context length: the future window starts here */
    int32_t *future_len;   /* (n) tokens of the future window */
    int64_t *seg_offsets;  /* (n + 1) into segs */
    int32_t *segs;         /* segment start offsets (token index within the context) */
    int64_t *span_offsets; /* (n + 1) into spans */
    int32_t *spans;        /* (n_spans, 2) answer spans (start, len) inside the context */
    int32_t *kvzip_prompt; /* (n_kvzip) "Repeat the previous context exactly." as ids */
    int32_t n_kvzip;
    uint64_t seed;
    uint64_t content_hash; /* FNV-1a of tokens and metadata: profile runs refer to it */
    char tokenizer[512];   /* path of the tokenizer used ("" for random ids) */
    char mix[256];         /* the --mix used */
    int32_t chat_template; /* 1 if ChatML was applied */
} hkp_calib;

void hkp_calib_free(hkp_calib *c); /* frees arrays; c itself is the caller's */
/* Computes c->content_hash from the arrays. */
uint64_t hkp_calib_hash(const hkp_calib *c);
/* Writes path.tmp then renames it over path. Sets content_hash. */
hkm_status hkp_calib_write(hkp_calib *c, const char *path, hkm_err *err);
/* Reads and validates every field (sizes, offsets monotone, spans in range). */
hkm_status hkp_calib_read(const char *path, hkp_calib *c, hkm_err *err);

#endif
