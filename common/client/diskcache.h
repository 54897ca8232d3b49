/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A node's disk cache of fetched keys, for restarts and offline use.
 *
 * An entry holds nothing secret: the signed fetch response (records.h)
 * and the key's sealed object as imported under this node's EK
 * (unseal.h: only this TPM can load it). Its user verifies the response
 * (signed, naming the node) and that the sealed object is the object of
 * the response's import blob (dkm_sealed_matches_blob: same public area,
 * EK and PCR selection); the TPM loads no private area but that
 * object's under this EK. So a file swapped, edited or copied from
 * another node is refused without a key of the node's own. An entry is
 * never returned at or after its version's expiry, and expired entries
 * are removed when seen.
 *
 * Layout: one file per (group, version), "GROUP.VERSION.dkc", in a
 * directory owned by the caller's user and closed to others (0700).
 * docs/formats.md describes the entry format.
 */
#ifndef DKM_DISKCACHE_H
#define DKM_DISKCACHE_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/types.h>

#include "dkm/base/error.h"
#include "dkm/tpm/unseal.h"
#include "dkm/base/uri.h"

#define DKM_DISKCACHE_ENTRY_MAX 40960u
#define DKM_DISKCACHE_ENTRY_MAGIC "DKCE"
/*
 * Entry format 3. Entries of earlier formats are refused as malformed
 * (DKM_E_FORMAT) and replaced by the next fetch: 1 had an HMAC under a
 * TPM-sealed cache key; 2 carried the sealed object under the magic
 * "DKMS", which the stream header also uses (now "DKSO", unseal.h).
 */
#define DKM_DISKCACHE_ENTRY_VERSION 3

struct dkm_diskcache;

/*
 * Open (creating it with mode 0700 when missing) a cache directory. The
 * directory must be owned by the calling user and not writable by group
 * or others (-EPERM with a detail otherwise).
 */
DKM_MUSTCHECK int dkm_diskcache_open(const char *dir, struct dkm_diskcache **ret);

/* NULL is accepted. */
void dkm_diskcache_free(struct dkm_diskcache *c);

/*
 * Store an entry, replacing any for the same group and version. response
 * is an encoded fetch response for (group, version), expiring at
 * expires_at; sealed is its key imported under this node's EK.
 */
DKM_MUSTCHECK int dkm_diskcache_put(struct dkm_diskcache *c, const char *group,
                                    uint32_t version, uint64_t expires_at,
                                    const uint8_t *response, size_t response_len,
                                    const struct dkm_sealed *sealed);

/*
 * Read an entry. -ENOENT when there is none; DKM_E_EXPIRED when its
 * version expired at or before now (the file is removed); DKM_E_INTEGRITY
 * when it names another group or version than its file name;
 * DKM_E_FORMAT when it is malformed. On
 * success *ret_response is malloc'd (free()) and *ret_sealed filled. The
 * caller still verifies the response's signatures (records.h).
 */
DKM_MUSTCHECK int dkm_diskcache_get(struct dkm_diskcache *c, const char *group,
                                    uint32_t version, uint64_t now,
                                    uint8_t **ret_response, size_t *ret_response_len,
                                    uint64_t *ret_expires_at,
                                    struct dkm_sealed *ret_sealed);

/*
 * The highest cached version of group that has not expired at now: what
 * "current" means while the service is unreachable. -ENOENT if none.
 */
DKM_MUSTCHECK int dkm_diskcache_latest(struct dkm_diskcache *c, const char *group,
                                       uint64_t now, uint32_t *ret_version);

/*
 * Split an entry's file name "GROUP.VERSION.dkc" (GROUP valid, VERSION
 * 1..UINT32_MAX without leading zeros). 0, or -EINVAL for any other
 * name. Needs no open cache, so groups can be listed without one.
 */
DKM_MUSTCHECK int dkm_diskcache_parse_name(const char *name,
                                           char group[DKM_GROUP_MAX + 1],
                                           uint32_t *ret_version);

/* Remove every entry that expired at or before now; returns how many. */
int dkm_diskcache_prune(struct dkm_diskcache *c, uint64_t now);

#endif
