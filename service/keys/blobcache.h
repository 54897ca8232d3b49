/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The import blobs a snapshot's fetches built (blobcache.c), kept for
 * reuse: the blob for a (version, node) pair does not depend on the
 * request. Lock-free reads, inserts by compare-and-swap.
 */
#ifndef DKM_KS_BLOBCACHE_H
#define DKM_KS_BLOBCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "dkm/base/error.h"

/* At most this many blobs per snapshot (a blob is ~0.5 KiB); beyond it a
 * fetch seals every time. */
#define KS_BLOBCACHE_MAX 65536u

struct ks_blobcache;
/* An empty cache sized for about `expected` entries. */
DKM_MUSTCHECK int ks_blobcache_new(size_t expected, struct ks_blobcache **ret);
void ks_blobcache_free(struct ks_blobcache *c);
/*
 * The blob for (version, node), or NULL. version is the address of a
 * struct ks_version and node an index into the nodes of the snapshot that
 * owns the cache; the result lives as long as that snapshot. Lock-free.
 */
const uint8_t *ks_blobcache_get(struct ks_blobcache *c, const void *version, size_t node,
                                size_t *ret_len);
/* Keep a copy (silently nothing when full or out of memory). Thread-safe. */
void ks_blobcache_put(struct ks_blobcache *c, const void *version, size_t node,
                      const uint8_t *blob, size_t len);
void ks_blobcache_size(const struct ks_blobcache *c, size_t *ret_count,
                       size_t *ret_bytes);

#endif
