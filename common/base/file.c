/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Small, careful file helpers for state files, node cards and the disk
 * cache: bounded reads of regular files, and atomic writes that leave
 * either the old file or the complete new one, never a torn one.
 */
#include "dkm/base/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int dkm_file_read(const char *path, size_t max, uint8_t **ret, size_t *ret_len)
{
    struct stat st;
    uint8_t *buf = NULL;
    size_t got = 0;
    int fd = -1, r = -EIO;

    if (path == NULL || ret == NULL || ret_len == NULL)
        return dkm_error_set(-EINVAL, "dkm_file_read: missing argument");
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        r = -errno;
        r = dkm_error_set(r, "cannot open %s: %s", path, strerror(-r));
        goto done;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        r = dkm_error_set(-EINVAL, "%s is not a regular file", path);
        goto done;
    }
    if ((uint64_t)st.st_size > max) {
        r = dkm_error_set(DKM_E_FORMAT, "%s is %lld bytes, more than %zu", path,
                          (long long)st.st_size, max);
        goto done;
    }
    /* One byte more than the limit, to notice a file that grew. */
    buf = malloc(max + 1);
    if (buf == NULL) {
        r = dkm_error_set(-ENOMEM, "out of memory reading %s", path);
        goto done;
    }
    for (;;) {
        ssize_t n = read(fd, buf + got, max + 1 - got);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = -errno;
            r = dkm_error_set(r, "cannot read %s: %s", path, strerror(-r));
            goto done;
        }
        if (n == 0)
            break;
        got += (size_t)n;
        if (got > max) {
            r = dkm_error_set(DKM_E_FORMAT, "%s is more than %zu bytes", path, max);
            goto done;
        }
    }
    *ret = buf;
    *ret_len = got;
    buf = NULL;
    r = 0;
done:
    free(buf);
    if (fd >= 0)
        close(fd);
    return r;
}

int dkm_file_write(const char *path, const void *data, size_t len, mode_t mode,
                   bool overwrite)
{
    char *tmp = NULL, *dir = NULL, *slash;
    size_t plen;
    int fd = -1, dfd = -1, r = -EIO;
    size_t done_len = 0;

    if (path == NULL || (data == NULL && len > 0))
        return dkm_error_set(-EINVAL, "dkm_file_write: missing argument");
    plen = strlen(path);
    tmp = malloc(plen + sizeof(".tmp.XXXXXX"));
    dir = strdup(path);
    if (tmp == NULL || dir == NULL) {
        r = dkm_error_set(-ENOMEM, "out of memory writing %s", path);
        goto done;
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp.XXXXXX", sizeof(".tmp.XXXXXX"));
    fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        r = -errno;
        r = dkm_error_set(r, "cannot create a file next to %s: %s", path, strerror(-r));
        free(tmp);
        tmp = NULL;
        goto done;
    }
    if (fchmod(fd, mode) < 0) {
        r = -errno;
        r = dkm_error_set(r, "cannot set the mode of %s: %s", tmp, strerror(-r));
        goto done;
    }
    while (done_len < len) {
        ssize_t n = write(fd, (const uint8_t *)data + done_len, len - done_len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = -errno;
            r = dkm_error_set(r, "cannot write %s: %s", tmp, strerror(-r));
            goto done;
        }
        done_len += (size_t)n;
    }
    if (fsync(fd) < 0) {
        r = -errno;
        r = dkm_error_set(r, "cannot sync %s: %s", tmp, strerror(-r));
        goto done;
    }
    /* The file appears complete or not at all; without overwrite, link()
     * refuses an existing file atomically, also against a concurrent
     * writer. */
    if (overwrite) {
        if (rename(tmp, path) < 0) {
            r = -errno;
            r = dkm_error_set(r, "cannot rename %s to %s: %s", tmp, path, strerror(-r));
            goto done;
        }
    } else {
        if (link(tmp, path) < 0) {
            r = -errno;
            r = dkm_error_set(r, "cannot create %s: %s", path, strerror(-r));
            goto done;
        }
        (void)unlink(tmp);
    }
    free(tmp);
    tmp = NULL;
    slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = '\0';
    else if (slash != NULL)
        *slash = '\0';
    dfd = open(slash != NULL ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0)
        (void)fsync(dfd);
    r = 0;
done:
    if (fd >= 0)
        close(fd);
    if (dfd >= 0)
        close(dfd);
    if (tmp != NULL) {
        (void)unlink(tmp);
        free(tmp);
    }
    free(dir);
    return r;
}
