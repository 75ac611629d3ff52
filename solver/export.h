/* Export/import of budgets in formats other tools read:
 *  - NumPy .npy v1.0 (float32, C order): LU-KV's per-head prune ratios
 *    (99, L, H) and KVzip-style head scores (L, H);
 *  - DuoAttention's full_attention_heads.tsv: L lines of H tab-separated
 *    values in [0, 1] (1 = full attention, 0 = streaming). */
#ifndef HKS_EXPORT_H
#define HKS_EXPORT_H

#include "hkm_internal.h"

#include <stdint.h>

/* Writes data (shape[0], ..., shape[ndim-1]) as '<f4' to path (path.tmp,
 * then rename). ndim 1..4. */
hkm_status hks_npy_write(const char *path, int ndim, const int64_t *shape, const float *data, hkm_err *err);
/* Reads a .npy v1/v2/v3 of dtype '<f4' or '<f8', C order, ndim <= 4, into
 * *data (malloc'ed float32; caller frees); shape (4), *ndim set. */
hkm_status hks_npy_read(const char *path, int *ndim, int64_t *shape, float **data, hkm_err *err);

/* DuoAttention head pattern: vals (L, H) in [0, 1]. */
hkm_status hks_duo_write(const char *path, int32_t L, int32_t H, const float *vals, hkm_err *err);
/* Reads L x H values (every line the same count, each in [0, 1]); *vals
 * malloc'ed. */
hkm_status hks_duo_read(const char *path, int32_t *L, int32_t *H, float **vals, hkm_err *err);

/* Derived per-head exports of a profile (keep: (99, L, H)):
 * prune (99, L, H) = 1 - keep (LU-KV); duo (L, H) = keep at ratio_pct;
 * kvzip (L, H) = mean keep over the 99 ratios (a head's share of memory
 * across budgets: higher = more important). */
void hks_lukv_from_keep(const float *keep, int32_t L, int32_t H, float *prune);
void hks_duo_from_keep(const float *keep, int32_t L, int32_t H, int ratio_pct, float *duo);
void hks_kvzip_from_keep(const float *keep, int32_t L, int32_t H, float *score);

#endif
