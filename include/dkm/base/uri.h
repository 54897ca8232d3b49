/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dkm: URIs, as fixed in DESIGN.md:
 *
 *     dkm:GROUP            the group's current version
 *     dkm:GROUP/VERSION    VERSION is a positive decimal or "current"
 *     dkm://GROUP[/VERSION]
 *     dkm:                 (only where listing is allowed) all groups
 *
 * GROUP is 1-64 characters of [A-Za-z0-9._-]. VERSION is 1..4294967295
 * without leading zeros. The scheme is matched without regard to case (as
 * RFC 3986 says of schemes, and as OSSL_STORE dispatches); everything
 * else is exact. Anything else is refused with a reason.
 */
#ifndef DKM_URI_H
#define DKM_URI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dkm/base/error.h"

#define DKM_GROUP_MAX 64
#define DKM_URI_MAX 128        /* longest accepted URI text */
#define DKM_VERSION_CURRENT 0u /* version field value meaning "current" */
#define DKM_URI_KEY_LEN 64     /* DKM-AES-256-GCM "key": the URI, NUL-padded */

struct dkm_uri {
    char group[DKM_GROUP_MAX + 1]; /* NUL-terminated; empty for a listing URI */
    uint32_t version;              /* DKM_VERSION_CURRENT or 1..UINT32_MAX */
    bool list;                     /* "dkm:" alone */
};

/* Parse flags. */
#define DKM_URI_ALLOW_LIST 0x1u /* accept "dkm:" alone as a listing URI */

/*
 * Parse len bytes of s (which need not be NUL-terminated; an embedded NUL
 * is an error). On success fills *ret and returns 0. On failure returns
 * DKM_E_URI, sets *ret_reason (if not NULL) to a static string saying
 * what is wrong, and records the same reason as the error detail.
 */
DKM_MUSTCHECK int dkm_uri_parse(const char *s, size_t len, unsigned flags,
                                struct dkm_uri *ret, const char **ret_reason);

/* Whether a group name is valid (1-64 of [A-Za-z0-9._-]). */
bool dkm_group_valid(const char *group, size_t len);

/*
 * Canonical text of a URI: "dkm:GROUP" for current, "dkm:GROUP/N" for a
 * version, "dkm:" for a listing. Returns 0 or -ENOSPC.
 */
DKM_MUSTCHECK int dkm_uri_format(const struct dkm_uri *uri, char *out, size_t out_size);

/*
 * The 64-byte value that stands for a URI where OpenSSL wants a key
 * (openssl enc -K): the canonical text, NUL-padded. A URI whose canonical
 * text is longer than 64 bytes, or a listing URI, does not fit: DKM_E_URI.
 */
DKM_MUSTCHECK int dkm_uri_to_key(const struct dkm_uri *uri, uint8_t out[DKM_URI_KEY_LEN]);

/*
 * The reverse: the key must be a valid URI followed only by NUL bytes
 * (at least one, or exactly 64 bytes of text).
 */
DKM_MUSTCHECK int dkm_uri_from_key(const uint8_t *key, size_t key_len,
                                   struct dkm_uri *ret);

#endif
