/* Checked HDF5 calls for the profile tools: every call goes through H5TRY,
 * which on a negative return records file:line, the statement and the HDF5
 * file being handled, and jumps to the function's `fail:` label. */
#ifndef HKP_H5CHECK_H
#define HKP_H5CHECK_H

#include "hkm_internal.h"

#include <errno.h>
#include <hdf5.h>

/* Needs in scope: hkm_err *err; hkm_status st; const char *h5path; a `fail:` label.
 * errno is cleared first so a cause it reports (ENOSPC, EFBIG) is this call's. */
#define H5TRY(call)                                                                    \
    do {                                                                               \
        errno = 0;                                                                     \
        if ((call) < 0) {                                                              \
            st = hkp_h5_fail(err, __FILE__, __LINE__, #call, h5path, errno);           \
            goto fail;                                                                 \
        }                                                                              \
    } while (0)

/* Same, for calls returning an id (hid_t) that must be >= 0. */
#define H5ID(var, call)                                                                \
    do {                                                                               \
        errno = 0;                                                                     \
        (var) = (call);                                                                \
        if ((var) < 0) {                                                               \
            st = hkp_h5_fail(err, __FILE__, __LINE__, #call, h5path, errno);           \
            goto fail;                                                                 \
        }                                                                              \
    } while (0)

/* HKM_ERR_IO naming the source line, the HDF5 call and the file, plus
 * strerror(errnum) when errnum is set. */
hkm_status hkp_h5_fail(hkm_err *err, const char *src, int line, const char *call, const char *h5path,
                       int errnum);

/* Dataset/attribute helpers (h5util.c). Each returns HKM_OK or a message
 * naming the file and the field. dims: (rank) extents. */
hkm_status hkp_h5_write(hid_t loc, const char *path, const char *name, hid_t mem_type,
                        int rank, const hsize_t *dims, const void *data, hkm_err *err);
/* Read a whole dataset whose shape must equal dims exactly. */
hkm_status hkp_h5_read(hid_t loc, const char *path, const char *name, hid_t mem_type,
                       int rank, const hsize_t *dims, void *data, hkm_err *err);
/* Extents (rank of them) of a dataset; like every read, refused when they
 * exceed what the file stores. */
hkm_status hkp_h5_dims(hid_t loc, const char *path, const char *name, int rank, hsize_t *dims,
                       hkm_err *err);
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

#endif
