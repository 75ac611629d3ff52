/* Writes the solver's profile through hubkv_profile_write (format v1, with
 * the optional /baselines/adakv dataset), atomically, and reads a baseline
 * back. */
#ifndef HKS_PROFILE_OUT_H
#define HKS_PROFILE_OUT_H

#include "hkm_internal.h"
#include "hubkv.h"

#define HKS_DS_ADAKV "/baselines/adakv"

/* d: a complete profile; adakv: (99, L, H) keep fractions or NULL. */
hkm_status hks_profile_save(const char *path, const hubkv_profile_data *d, const float *adakv, hkm_err *err);

/* Reads an optional (99, L, H) float dataset (e.g. /baselines/adakv) from a
 * profile; *out NULL (and HKM_OK) if absent. */
hkm_status hks_profile_read_extra(const char *path, const char *name, int32_t L, int32_t H, float **out, hkm_err *err);

#endif
