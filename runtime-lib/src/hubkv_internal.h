/* Internal helpers shared by libhubkv sources: error formatting and the HDF5
 * check macro. Not installed. */
#ifndef HUBKV_INTERNAL_H
#define HUBKV_INTERNAL_H

#include "hubkv.h"

#include <stdarg.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Formats "msg" into err (if err && cap) and returns st. */
hubkv_status hkv_fail(char *err, size_t cap, hubkv_status st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Error buffer size kept on handles. */
#define HKV_ERR_CAP 512

/* Stores msg as the profile's error message and returns st. */
hubkv_status hkv_profile_set_error(hubkv_profile *p, hubkv_status st, const char *msg);

/* calloc of n elements of `size` bytes; NULL on overflow or failure. */
void *hkv_calloc(size_t n, size_t size);

#ifdef __cplusplus
}
#endif

#endif
