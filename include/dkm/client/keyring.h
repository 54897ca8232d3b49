/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The kernel keyring cache of unsealed key versions (keyring.c).
 *
 * After a verified fetch or disk-cache load and unseal, the client keeps
 * the key version, with what it needs to use it, as a "user" key in the
 * keyring "dkm" that is linked into the user keyring. A new process of
 * the same uid then finds it with no TPM command and no service round
 * trip, until the kernel's timeout (the policy's cache TTL, never past
 * the version's expiry) removes it. Keys are described
 * "dkm:<context>:<group>/<version>", where the context is a hash of the
 * trust fingerprint, the TCTI and the cache directory, so that different
 * trust roots (or simulated nodes sharing a uid) never collide; the
 * group's current version is remembered as "dkm:<context>:<group>/current"
 * with a short timeout of its own, so a rotation is seen soon.
 *
 * Every key and the keyring grant possessor and user only (no group,
 * no other). Payloads are read straight into secure memory. A payload
 * that does not decode (wrong size, format version, key id) is
 * invalidated and never used.
 *
 * The trust boundary is the uid: docs/provider.md says what root and
 * same-uid processes can do.
 */
#ifndef DKM_KEYRING_H
#define DKM_KEYRING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/types.h>

#include "dkm/base/error.h"
#include "dkm/base/uri.h"

/* The parent of dkm's keyring: the user keyring (KEY_SPEC_USER_KEYRING). */
#define DKM_KEYRING_PARENT_USER (-4)
/* The description of dkm's keyring, linked into the parent keyring. */
#define DKM_KEYRING_NAME "dkm"
/* Hex characters of the context in every description. */
#define DKM_KEYRING_CONTEXT_HEX 16
/* Seconds the current version of a group is remembered. */
#define DKM_KEYRING_CURRENT_TTL 10u
/* Largest key and largest payload, in bytes. */
#define DKM_KEYRING_KEY_MAX 128u
#define DKM_KEYRING_PAYLOAD_MAX 256u
#define DKM_KEYRING_KEY_ID_SIZE 8

#define DKM_KEYRING_MAGIC 0x444b4b59u         /* "DKKY" */
#define DKM_KEYRING_CURRENT_MAGIC 0x444b4b43u /* "DKKC" */
#define DKM_KEYRING_VERSION 1

/* A key version as kept in the keyring. */
struct dkm_keyring_entry {
    char group[DKM_GROUP_MAX + 1];
    uint32_t version;
    uint32_t policy_serial;
    uint16_t algorithm;
    uint32_t cache_ttl;
    uint32_t pcr_mask;
    uint64_t expires_at;   /* the version's expiry (unix seconds) */
    uint64_t cached_until; /* the kernel forgets it then (unix seconds) */
    uint8_t key_id[DKM_KEYRING_KEY_ID_SIZE];
    const uint8_t *key; /* key_len bytes; NULL in listings */
    size_t key_len;
};

/*
 * The 8-byte key id: HMAC-SHA256(key, "dkm-key-id"), truncated; the same
 * id the provider and dkmctl show. HMAC and SHA-256 come from libctx
 * with propq (NULL: the default context) here and below.
 */
DKM_MUSTCHECK int dkm_keyring_key_id(OSSL_LIB_CTX *libctx, const char *propq,
                                     const void *key, size_t len,
                                     uint8_t ret[DKM_KEYRING_KEY_ID_SIZE]);

/*
 * The payload of an entry (docs/formats.md, "Keyring payload"); e's key
 * id is computed here from its key. encode writes at most
 * DKM_KEYRING_PAYLOAD_MAX bytes. decode refuses (DKM_E_FORMAT, or
 * DKM_E_INTEGRITY for a key id that does not match the key) anything that
 * is not exactly one valid payload; ret->key points into buf.
 */
DKM_MUSTCHECK int dkm_keyring_payload_encode(OSSL_LIB_CTX *libctx, const char *propq,
                                             const struct dkm_keyring_entry *e,
                                             uint8_t *buf, size_t cap, size_t *ret_len);
DKM_MUSTCHECK int dkm_keyring_payload_decode(OSSL_LIB_CTX *libctx, const char *propq,
                                             const uint8_t *buf, size_t len,
                                             struct dkm_keyring_entry *ret);

/* The payload of a group's current version: magic, format version, group,
 * version. Same rules as above. */
DKM_MUSTCHECK int dkm_keyring_current_encode(const char *group, uint32_t version,
                                             uint8_t *buf, size_t cap, size_t *ret_len);
DKM_MUSTCHECK int dkm_keyring_current_decode(const uint8_t *buf, size_t len,
                                             char ret_group[DKM_GROUP_MAX + 1],
                                             uint32_t *ret_version);

/*
 * The context of a node's keys: the first 8 bytes of SHA-256 over the
 * trust fingerprint (pin, pin_len bytes; may be empty), the TCTI and the
 * cache directory (either may be NULL), as 16 hex characters.
 */
DKM_MUSTCHECK int dkm_keyring_context(OSSL_LIB_CTX *libctx, const char *propq,
                                      const uint8_t *pin, size_t pin_len,
                                      const char *tcti, const char *cache_dir,
                                      char ret[DKM_KEYRING_CONTEXT_HEX + 1]);

struct dkm_keyring;

/*
 * Find dkm's keyring in parent (a keyring serial, or a special id such as
 * KEY_SPEC_USER_KEYRING, -4), creating and linking it when it is not
 * there. -EOPNOTSUPP with a detail when the kernel refuses (keyctl
 * blocked by seccomp, no such keyring, no keys support). libctx and
 * propq (kept, may be NULL) are for the key ids of payloads.
 */
DKM_MUSTCHECK int dkm_keyring_open(int32_t parent,
                                   const char context[DKM_KEYRING_CONTEXT_HEX + 1],
                                   OSSL_LIB_CTX *libctx, const char *propq,
                                   struct dkm_keyring **ret);
void dkm_keyring_close(struct dkm_keyring *kr);

/*
 * The entry for group/version: 0 with *ret (ret->key points to
 * *ret_secret, ret->key_len bytes of secure memory the caller frees with
 * dkm_secmem_free), or -ENOENT when there is none, it expired, or its
 * payload was refused (then it is invalidated).
 */
DKM_MUSTCHECK int dkm_keyring_get(struct dkm_keyring *kr, const char *group,
                                  uint32_t version, void **ret_secret,
                                  struct dkm_keyring_entry *ret);

/* Keep e (its key id is computed here) with the kernel timeout
 * e->cached_until - now (at least 1 s); -EINVAL when already past. */
DKM_MUSTCHECK int dkm_keyring_put(struct dkm_keyring *kr,
                                  const struct dkm_keyring_entry *e, uint64_t now);

/* The remembered current version of group, or -ENOENT. */
DKM_MUSTCHECK int dkm_keyring_get_current(struct dkm_keyring *kr, const char *group,
                                          uint32_t *ret_version);
/* Remember group's current version for timeout seconds (at least 1). */
DKM_MUSTCHECK int dkm_keyring_put_current(struct dkm_keyring *kr, const char *group,
                                          uint32_t version, unsigned timeout);

/*
 * Call fn for every key version of this context (key NULL: a listing
 * never hands out bytes); stop at fn's first error.
 */
DKM_MUSTCHECK int
dkm_keyring_list(struct dkm_keyring *kr,
                 int (*fn)(void *arg, const struct dkm_keyring_entry *e), void *arg);

/* Invalidate every key of this context, or only those of group (not
 * NULL); *ret_count (may be NULL) gets how many. */
DKM_MUSTCHECK int dkm_keyring_flush(struct dkm_keyring *kr, const char *group,
                                    size_t *ret_count);

#endif
