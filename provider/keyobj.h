/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The key manager's key object: what an EVP_PKEY of type DKM holds. It
 * names a group key version and remembers what the key source said about
 * it, but holds no key bytes: each operation takes the bytes from the key
 * cache when it starts, so that the cache's TTL bounds how long a key
 * stays in memory even while applications keep EVP_PKEYs around.
 */
#ifndef DKM_PROVIDER_KEYOBJ_H
#define DKM_PROVIDER_KEYOBJ_H

#include <stdbool.h>
#include <stdint.h>

#include "dkm/base/uri.h"
#include "keysource.h"
#include "provider.h"

#define DKM_KEYOBJ_MAGIC 0x444b4d4bu /* "DKMK": checks store references */

struct dkm_keyobj {
    uint32_t magic;
    struct dkm_prov_ctx *prov;
    char group[DKM_GROUP_MAX + 1];
    uint32_t version; /* resolved, >= 1 */
    bool pinned;      /* the URI named the version: unprotect only that one */
    struct dkm_key_info info;
    char key_id[17];
    uint64_t cache_until;
    int refs;
};

/*
 * Resolve uri (not a listing) through the cache and make a key object
 * with one reference. Errors are raised in the provider's library;
 * returns 1 or 0 as provider functions do.
 */
int dkm_keyobj_open(struct dkm_prov_ctx *prov, const struct dkm_uri *uri,
                    struct dkm_keyobj **ret);

struct dkm_keyobj *dkm_keyobj_ref(struct dkm_keyobj *obj);
void dkm_keyobj_unref(struct dkm_keyobj *obj);

/*
 * The key bytes for obj's group at version, from the cache; version 0
 * means the one obj stands for: its pinned version, or for "dkm:GROUP"
 * the group's current version now (so a long-lived EVP_PKEY follows
 * rotation). Raises on failure. Returns 1 with a reference, or 0.
 */
int dkm_keyobj_key(const struct dkm_keyobj *obj, uint32_t version, struct dkm_key **ret);

/* The canonical URI of obj ("dkm:GROUP/VERSION"). */
void dkm_keyobj_uri(const struct dkm_keyobj *obj, char *out, size_t out_size);

#endif
