/* Crash-safe file replacement for the tools' outputs: write "<path>.tmp.<pid>",
 * fsync it, rename it over the destination (atomic on one file system), fsync
 * the directory. After a crash or power loss the destination is the old file
 * or the new one, never a partial one. (libhubkv keeps its own copy: it links
 * into other engines and depends on nothing of ours.) */
#include "hkm_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* fsync of an existing file or directory (O_RDONLY is enough on Linux). */
static int sync_path(const char *p, int flags) {
    int fd = open(p, O_RDONLY | flags);
    if (fd < 0) return -1;
    int r = fsync(fd), e = errno;
    close(fd);
    errno = e;
    return r;
}

hkm_status hkm_tmp_name(const char *path, char *buf, size_t cap, hkm_err *err) {
    if ((size_t)snprintf(buf, cap, "%s.tmp.%ld", path, (long)getpid()) >= cap)
        return hkm_fail(err, HKM_ERR_ARG, "%s: path too long for its temporary name (%zu bytes)", path,
                        strlen(path));
    return HKM_OK;
}

hkm_status hkm_file_commit(const char *tmp, const char *dst, hkm_err *err) {
    if (sync_path(tmp, 0) != 0)
        return hkm_fail(err, HKM_ERR_IO, "fsync %s (before renaming it to %s): %s", tmp, dst, strerror(errno));
    if (rename(tmp, dst) != 0)
        return hkm_fail(err, HKM_ERR_IO, "rename %s -> %s: %s", tmp, dst, strerror(errno));
    char dir[4200];
    const char *slash = strrchr(dst, '/');
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - dst) + 1 : 1, slash ? dst : ".");
    if (sync_path(dir, O_DIRECTORY) != 0)
        return hkm_fail(err, HKM_ERR_IO, "fsync of directory %s (after renaming %s to %s): %s", dir, tmp, dst,
                        strerror(errno));
    return HKM_OK;
}

hkm_status hkm_tmp_open(const char *path, const char *mode, char *tmp, size_t cap, FILE **out, hkm_err *err) {
    *out = NULL;
    HKM_TRY(hkm_tmp_name(path, tmp, cap, err));
    if (!(*out = fopen(tmp, mode)))
        return hkm_fail(err, HKM_ERR_IO, "%s: cannot create %s: %s", path, tmp, strerror(errno));
    return HKM_OK;
}

hkm_status hkm_tmp_commit(FILE *f, const char *tmp, const char *path, hkm_err *err) {
    int e = 0; /* the first failure's errno (a failed fwrite leaves it; fflush retries and sets it) */
    if (fflush(f) != 0 || ferror(f)) e = errno ? errno : EIO;
    if (fclose(f) != 0 && !e) e = errno ? errno : EIO;
    if (e) {
        unlink(tmp);
        return hkm_fail(err, HKM_ERR_IO, "%s: writing %s failed: %s", path, tmp, strerror(e));
    }
    hkm_status st = hkm_file_commit(tmp, path, err);
    if (st != HKM_OK) unlink(tmp);
    return st;
}
