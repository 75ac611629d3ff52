/* Task-family generators of hubkv-synth: each builds one tokenised context
 * and its future window from data/templates.json, a corpus and a seed. */
#ifndef HKP_SYNTH_TASKS_H
#define HKP_SYNTH_TASKS_H

#include "calib_set.h"
#include "corpus.h"

#include <cjson/cJSON.h>
#include <gsl/gsl_rng.h>

typedef struct {
    const cJSON *tmpl;          /* parsed templates.json */
    const hkm_tokenizer *tok;   /* NULL for HKP_TASK_RANDOM only */
    const hkp_corpus *corpus;   /* NULL for HKP_TASK_RANDOM only */
    int chat;                   /* wrap in ChatML (<|im_start|> present) */
    int min_len, max_len;       /* context tokens */
    int fut_min, fut_max;       /* future-window tokens */
    int random_vocab;           /* ids in [3, random_vocab) for HKP_TASK_RANDOM */
} hkp_synth;

/* A growing int32 vector. */
typedef struct {
    int32_t *v;
    size_t n, cap;
} hkp_ivec;

hkm_status hkp_ivec_push(hkp_ivec *a, const int32_t *x, size_t n, hkm_err *err);
void hkp_ivec_free(hkp_ivec *a);

/* One generated sequence: ids = context then future window. */
typedef struct {
    hkp_ivec ids;
    hkp_ivec segs;   /* segment starts */
    hkp_ivec spans;  /* (start, len) pairs */
    int32_t future_start;
} hkp_seq;

void hkp_seq_free(hkp_seq *s);

/* Builds context `task` with its own random stream r. */
hkm_status hkp_synth_context(const hkp_synth *s, int task, gsl_rng *r, hkp_seq *out, hkm_err *err);

/* Tokenises the KVzip prompt (chat-wrapped when s->chat). */
hkm_status hkp_synth_kvzip_prompt(const hkp_synth *s, gsl_rng *r, hkp_ivec *out, hkm_err *err);

/* Checks every template key the generators use; names the missing one. */
hkm_status hkp_templates_check(const cJSON *t, const char *path, hkm_err *err);

#endif
