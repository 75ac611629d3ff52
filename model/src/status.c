/* Status strings and the failure-recording helper shared by the engine. */
#include "hkm_internal.h"

#include <string.h>

const char *hkm_status_str(hkm_status s) {
    switch (s) {
    case HKM_OK: return "ok";
    case HKM_ERR_ARG: return "invalid argument";
    case HKM_ERR_IO: return "I/O error";
    case HKM_ERR_FORMAT: return "malformed file";
    case HKM_ERR_UNSUPPORTED: return "unsupported";
    case HKM_ERR_MISSING: return "missing";
    case HKM_ERR_SHAPE: return "wrong shape";
    case HKM_ERR_NOMEM: return "out of memory";
    }
    return "unknown status";
}

hkm_status hkm_fail(hkm_err *err, hkm_status st, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return st;
}
