/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Small file helpers for state files, node cards and the disk cache.
 */
#ifndef DKM_FILE_H
#define DKM_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "dkm/base/error.h"

/*
 * Read a regular file of at most max bytes into a malloc'd buffer.
 * -ENOENT when it is missing, -EINVAL when it is not a regular file,
 * DKM_E_FORMAT when it is larger than max; each with a detail naming the
 * path.
 */
DKM_MUSTCHECK int dkm_file_read(const char *path, size_t max, uint8_t **ret,
                                size_t *ret_len);

/*
 * Write data to path with the given mode, atomically: through a temporary
 * file in the same directory, fsync, then rename (overwrite) or link (no
 * overwrite: -EEXIST if path exists, atomically, also against a concurrent
 * writer), then fsync of the directory. The file appears complete or not
 * at all.
 */
DKM_MUSTCHECK int dkm_file_write(const char *path, const void *data, size_t len,
                                 mode_t mode, bool overwrite);

#endif
