/* Status names and error-message formatting. */
#include "hubkv_internal.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

const char *hubkv_status_str(hubkv_status s) {
    switch (s) {
    case HUBKV_OK: return "HUBKV_OK";
    case HUBKV_ERR_INVALID_ARG: return "HUBKV_ERR_INVALID_ARG";
    case HUBKV_ERR_IO: return "HUBKV_ERR_IO";
    case HUBKV_ERR_FORMAT: return "HUBKV_ERR_FORMAT";
    case HUBKV_ERR_VERSION: return "HUBKV_ERR_VERSION";
    case HUBKV_ERR_FINGERPRINT: return "HUBKV_ERR_FINGERPRINT";
    case HUBKV_ERR_RANGE: return "HUBKV_ERR_RANGE";
    case HUBKV_ERR_NOMEM: return "HUBKV_ERR_NOMEM";
    case HUBKV_ERR_CUDA: return "HUBKV_ERR_CUDA";
    case HUBKV_ERR_NO_DEVICE: return "HUBKV_ERR_NO_DEVICE";
    case HUBKV_ERR_UNSUPPORTED: return "HUBKV_ERR_UNSUPPORTED";
    }
    return "HUBKV_ERR_UNKNOWN";
}

hubkv_status hkv_fail(char *err, size_t cap, hubkv_status st, const char *fmt, ...) {
    if (err && cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, cap, fmt, ap);
        va_end(ap);
    }
    return st;
}

void *hkv_calloc(size_t n, size_t size) {
    if (size && n > SIZE_MAX / size) return NULL;
    return calloc(n ? n : 1, size ? size : 1);
}
