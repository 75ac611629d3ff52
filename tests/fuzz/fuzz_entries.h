/* Entry points shared by the libFuzzer targets (tests/fuzz/fuzz_main.c) and the
 * regression driver (tests/test_fuzz_regressions.c): each takes one input,
 * runs it through a loader the way a tool would, and returns 0. A violated
 * invariant calls fz_die (abort), which both harnesses report as a failure. */
#ifndef HUBKV_FUZZ_ENTRIES_H
#define HUBKV_FUZZ_ENTRIES_H

#include <stddef.h>
#include <stdint.h>

int fz_gguf(const uint8_t *data, size_t size);
/* Data starting with '{' is a model.safetensors.index.json, optionally
 * followed by FZ_SHARD_SEP and the bytes of shard "s.safetensors"; anything
 * else is a single model.safetensors. */
int fz_safetensors(const uint8_t *data, size_t size);
int fz_config_json(const uint8_t *data, size_t size);
int fz_tokenizer_json(const uint8_t *data, size_t size);
/* First byte picks the fixed tokenizer (even: llama3, odd: qwen2), the rest
 * is the text. */
int fz_tokenizer_encode(const uint8_t *data, size_t size);

/* HDF5 profile (tests/fuzz/fuzz_profile.c; only where runtime-lib is built). */
int fz_profile(const uint8_t *data, size_t size);
/* Calibration set and stats file of the profile tools (tests/fuzz/fuzz_h5.c;
 * only where profile/ is built). */
int fz_calib(const uint8_t *data, size_t size);
int fz_stats(const uint8_t *data, size_t size);

#define FZ_SHARD_SEP "\n#SHARD\n"

/* Entry of a target by name ("fuzz_gguf", ...), or NULL. */
typedef int (*fz_entry)(const uint8_t *data, size_t size);
fz_entry fz_entry_by_name(const char *target);

#endif
