/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Where the provider's group keys come from, and the cache in front of it.
 *
 * A key source is a `const struct dkm_keysource_ops`, chosen at provider
 * init by the `keysource` setting:
 *   - "service" (default): the key service client: fetch, verify, TPM
 *     unseal, disk cache. Its place is keysource_service.c.
 *   - "test": deterministic keys from a seed (keysource_test.c), compiled
 *     only into the test build of the module (DKM_TEST_KEYSOURCE).
 *
 * The cache (keycache.c) is shared by every operation and thread. It holds
 * each resolved key version in secure memory for at most the policy's TTL
 * and never past the version's expiry, and hands out reference-counted
 * entries so that an operation in progress keeps its key while the cache
 * moves on.
 */
#ifndef DKM_PROVIDER_KEYSOURCE_H
#define DKM_PROVIDER_KEYSOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/types.h>

#include "dkm/base/error.h"
#include "dkm/base/uri.h"
#include "provider.h"

#define DKM_KEY_LEN 32
#define DKM_KEY_POLICY_MAX 128

/* What a key source says about a key version besides its bytes. */
struct dkm_key_info {
    uint32_t version;         /* resolved version, never DKM_VERSION_CURRENT */
    uint32_t current_version; /* the group's current version when resolved */
    uint64_t not_after; /* unix seconds after which the version is expired; 0: never */
    uint64_t ttl;       /* seconds the clear key may stay cached (group policy) */
    char policy[DKM_KEY_POLICY_MAX]; /* short human description of the policy */
};

struct dkm_keysource_ops {
    const char *name;
    /*
     * Open with the provider's configuration; libctx is the provider's
     * private library context. Returns 0 and *ret_state, or a negative
     * code with a detail (DKM_E_CONFIG names the setting).
     */
    int (*open)(const struct dkm_prov_config *cfg, OSSL_LIB_CTX *libctx,
                void **ret_state);
    void (*close)(void *state);
    /*
     * Resolve group (valid name) at version (DKM_VERSION_CURRENT or >= 1):
     * write DKM_KEY_LEN bytes to key (secure memory owned by the caller)
     * and fill *ret_info. Errors: -ENOENT (no such group or version),
     * DKM_E_DENIED, DKM_E_EXPIRED, DKM_E_UNAVAILABLE, ... with a detail.
     * Called without the cache lock held; must be thread-safe.
     */
    int (*resolve)(void *state, const char *group, uint32_t version, uint8_t *key,
                   struct dkm_key_info *ret_info);
    /* Call fn for each group this node may use; stop at fn's first error. */
    int (*list_groups)(void *state, int (*fn)(void *arg, const char *group), void *arg);
};

extern const struct dkm_keysource_ops dkm_keysource_service;
#ifdef DKM_TEST_KEYSOURCE
extern const struct dkm_keysource_ops dkm_keysource_test;
#endif

/* A cached key version: immutable except for its reference count. */
struct dkm_key {
    char group[DKM_GROUP_MAX + 1];
    struct dkm_key_info info;
    uint8_t *bytes;       /* DKM_KEY_LEN bytes of secure memory */
    char key_id[17];      /* hex of 8 bytes of HMAC(key, "dkm-key-id") */
    uint64_t cache_until; /* unix seconds */
    bool current;         /* answer to a "current" lookup (guarded by the cache lock) */
    int refs;
};

struct dkm_keycache;

/* New cache over an opened key source (state is closed by dkm_keycache_free). */
DKM_MUSTCHECK int dkm_keycache_new(const struct dkm_keysource_ops *ops, void *state,
                                   OSSL_LIB_CTX *libctx, struct dkm_keycache **ret);
void dkm_keycache_free(struct dkm_keycache *c);

/*
 * A reference to group's key at version (DKM_VERSION_CURRENT allowed),
 * from the cache or resolved through the key source. Refuses an expired
 * version (DKM_E_EXPIRED). Release with dkm_key_unref.
 */
DKM_MUSTCHECK int dkm_keycache_get(struct dkm_keycache *c, const char *group,
                                   uint32_t version, struct dkm_key **ret);

/* List the groups of the key source. */
DKM_MUSTCHECK int dkm_keycache_list(struct dkm_keycache *c,
                                    int (*fn)(void *arg, const char *group), void *arg);

/* Whether the key is still usable now (not expired, not past its cache time). */
bool dkm_key_fresh(const struct dkm_key *k);

struct dkm_key *dkm_key_ref(struct dkm_key *k);
void dkm_key_unref(struct dkm_key *k);

/* Current time in unix seconds (the cache's clock). */
uint64_t dkm_now(void);

#endif
