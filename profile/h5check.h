/* Checked HDF5 calls for the profile tools: every call goes through H5TRY,
 * which on a negative return records file:line, the statement and the HDF5
 * file being handled, and jumps to the function's `fail:` label. */
#ifndef HKP_H5CHECK_H
#define HKP_H5CHECK_H

#include "hkm_internal.h"

#include <hdf5.h>

/* Needs in scope: hkm_err *err; hkm_status st; const char *h5path; a `fail:` label. */
#define H5TRY(call)                                                                    \
    do {                                                                               \
        if ((call) < 0) {                                                              \
            st = hkm_fail(err, HKM_ERR_IO, "%s:%d: %s failed (file %s)", __FILE__,     \
                          __LINE__, #call, h5path);                                    \
            goto fail;                                                                 \
        }                                                                              \
    } while (0)

/* Same, for calls returning an id (hid_t) that must be >= 0. */
#define H5ID(var, call)                                                                \
    do {                                                                               \
        (var) = (call);                                                                \
        if ((var) < 0) {                                                               \
            st = hkm_fail(err, HKM_ERR_IO, "%s:%d: %s failed (file %s)", __FILE__,     \
                          __LINE__, #call, h5path);                                    \
            goto fail;                                                                 \
        }                                                                              \
    } while (0)

/* Dataset/attribute helpers (h5util.c). Each returns HKM_OK or a message
 * naming the file and the field. dims: (rank) extents. */
hkm_status hkp_h5_write(hid_t loc, const char *path, const char *name, hid_t mem_type,
                        int rank, const hsize_t *dims, const void *data, hkm_err *err);
/* Read a whole dataset whose shape must equal dims exactly. */
hkm_status hkp_h5_read(hid_t loc, const char *path, const char *name, hid_t mem_type,
                       int rank, const hsize_t *dims, void *data, hkm_err *err);
/* Length of a 1-D dataset. */
hkm_status hkp_h5_len(hid_t loc, const char *path, const char *name, hsize_t *len, hkm_err *err);
hkm_status hkp_h5_attr_write(hid_t loc, const char *path, const char *name, hid_t mem_type,
                             const void *val, hkm_err *err);
hkm_status hkp_h5_attr_read(hid_t loc, const char *path, const char *name, hid_t mem_type,
                            void *val, hkm_err *err);
hkm_status hkp_h5_attr_write_str(hid_t loc, const char *path, const char *name, const char *s,
                                 hkm_err *err);
/* Reads a string attribute into buf (cap bytes, NUL-terminated). */
hkm_status hkp_h5_attr_read_str(hid_t loc, const char *path, const char *name, char *buf,
                                size_t cap, hkm_err *err);
/* Silence HDF5's own error stack printing (our messages say what failed). */
void hkp_h5_quiet(void);
/* Rename tmp over dst (atomic on one file system). */
hkm_status hkp_rename(const char *tmp, const char *dst, hkm_err *err);

#endif
