/* Profile output through libhubkv, which validates and writes every v1
 * dataset (the AdaKV-style baseline included) atomically. */
#include "profile_out.h"

#include "solve.h"

#include <stdlib.h>
#include <string.h>

/* The libhubkv writer's status as the engine's: its I/O, memory and format
 * failures keep their kind; bad data from the solver is an argument error. */
static hkm_status from_hubkv(hubkv_status hs) {
    switch (hs) {
    case HUBKV_OK: return HKM_OK;
    case HUBKV_ERR_INVALID_ARG:
    case HUBKV_ERR_RANGE: return HKM_ERR_ARG;
    case HUBKV_ERR_FORMAT:
    case HUBKV_ERR_VERSION:
    case HUBKV_ERR_FINGERPRINT: return HKM_ERR_FORMAT;
    case HUBKV_ERR_NOMEM: return HKM_ERR_NOMEM;
    case HUBKV_ERR_UNSUPPORTED: return HKM_ERR_UNSUPPORTED;
    default: return HKM_ERR_IO;
    }
}

hkm_status hks_profile_save(const char *path, const hubkv_profile_data *d, const float *adakv, hkm_err *err) {
    hubkv_profile_data full = *d;
    full.baseline_adakv = adakv;
    char msg[1024];
    hubkv_status hs = hubkv_profile_write(path, &full, msg, sizeof msg); // temp file, fsync, rename
    if (hs != HUBKV_OK)
        return hkm_fail(err, from_hubkv(hs), "%s: hubkv_profile_write: %s (%s)", path, msg, hubkv_status_str(hs));
    return HKM_OK;
}

hkm_status hks_profile_read_extra(const char *path, const char *name, int32_t L, int32_t H, float **out, hkm_err *err) {
    *out = NULL;
    static const char prefix[] = "/baselines/";
    if (strncmp(name, prefix, sizeof prefix - 1))
        return hkm_fail(err, HKM_ERR_ARG, "%s: %s: expected a dataset under %s", path, name, prefix);
    char msg[1024];
    hubkv_profile *p = NULL;
    hubkv_status hs = hubkv_profile_open(path, NULL, &p, msg, sizeof msg);
    if (hs != HUBKV_OK) return hkm_fail(err, from_hubkv(hs), "%s", msg);
    const hubkv_model_desc *m = hubkv_profile_model(p);
    const float *b = hubkv_profile_baseline(p, name + sizeof prefix - 1);
    hkm_status st = HKM_OK;
    if (b && (m->n_layers != L || m->n_kv_heads != H))
        st = hkm_fail(err, HKM_ERR_SHAPE, "%s: %s: profile has %d x %d heads, expected %d x %d", path, name,
                      m->n_layers, m->n_kv_heads, L, H);
    else if (b && !(*out = malloc(sizeof **out * HKS_N_RATIOS * (size_t)L * (size_t)H)))
        st = hkm_fail(err, HKM_ERR_NOMEM, "%s: out of memory", path);
    else if (b)
        memcpy(*out, b, sizeof **out * HKS_N_RATIOS * (size_t)L * (size_t)H);
    hubkv_profile_free(p);
    return st;
}
