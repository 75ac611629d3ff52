/* HDF5 helpers for the profile reader/writer: the check macro, a process-wide
 * lock (Debian's libhdf5 is the non-thread-safe build) and data validation
 * shared by both sides so the writer can never emit what the reader refuses. */
#ifndef HUBKV_H5UTIL_H
#define HUBKV_H5UTIL_H

#include "hubkv_internal.h"

#include <errno.h>
#include <hdf5.h>
#include <string.h>

/* Evaluates an HDF5 call once; on a negative result records file:line, the
 * statement and strerror(errno) if the call set errno (EFBIG, ENOSPC) into
 * (err, cap), sets st = HUBKV_ERR_IO and jumps to `done`.
 * Requires locals: hubkv_status st; char *err; size_t cap; const char *path. */
#define H5CK(call)                                                                 \
    do {                                                                           \
        errno = 0;                                                                 \
        if ((call) < 0) {                                                          \
            int e_ = errno;                                                        \
            st = hkv_fail(err, cap, HUBKV_ERR_IO, "%s: HDF5 call failed at %s:%d: %s%s%s", \
                          path, __FILE__, __LINE__, #call, e_ ? ": " : "",         \
                          e_ ? strerror(e_) : "");                                 \
            goto done;                                                             \
        }                                                                          \
    } while (0)

/* Jumps to done with a formatted error when st != OK. */
#define HKV_TRY(expr)                                                              \
    do {                                                                           \
        st = (expr);                                                               \
        if (st != HUBKV_OK) goto done;                                             \
    } while (0)

void hkv_h5_lock(void);
void hkv_h5_unlock(void);

/* Checks every array and scalar of d (ranges, NaN, shapes implied by the
 * model description). `path` only labels messages. */
hubkv_status hkv_validate_data(const hubkv_profile_data *d, const char *path, char *err, size_t cap);

/* Model description sanity (counts > 0, GQA divisibility). */
hubkv_status hkv_check_model(const hubkv_model_desc *m, const char *path, char *err, size_t cap);

/* Formats flat index i of an array with dims (ndim) as "[a,b,c]". */
void hkv_fmt_index(char *buf, size_t cap, int64_t i, int ndim, const int64_t *dims);

/* Dataset names/units/descriptions (docs/profile-format.md). */
#define HKV_DS_GRID "/curves/grid"
#define HKV_DS_LOSS "/curves/loss"
#define HKV_DS_RATIOS "/budgets/ratios"
#define HKV_DS_KEEP "/budgets/keep"
#define HKV_DS_SEL "/heads/selectivity"
#define HKV_DS_BETA "/heads/beta"
#define HKV_DS_BASE_U "/baselines/uniform"
#define HKV_DS_BASE_P "/baselines/pyramidkv"
#define HKV_DS_BASE_A "/baselines/adakv"

#define HKV_BETA_MIN 0.8f
#define HKV_BETA_MAX 1.2f

#endif
