/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Server signatures: the TPM-resident server signing key (SK), the
 * short-lived software response key it delegates to, and the software
 * verification of both.
 *
 * Every signature is ECDSA P-256 over
 *     SHA-256(context || 0x00 || message)
 * where context is a short ASCII string naming the purpose and its
 * version ("dkm delegation v1", "dkm response v1", ...), so a signature
 * made for one purpose never verifies for another. Signatures are 64
 * bytes, r || s, each a 32-byte big-endian integer. Public keys are
 * uncompressed P-256 points, 0x04 || x || y (65 bytes). The formats of
 * the SK file and of a delegation are in docs/formats.md.
 *
 * The SK is created once per server (dkmd init) under the storage root
 * key and never leaves the TPM; its file holds the TPM-encrypted blobs.
 * At start, dkmd has the SK sign a delegation: a software P-256 key with
 * a validity window and the server's node id. The software key then
 * signs every response, so no TPM operation is on the request path. A
 * client checks the chain SK public -> delegation (signature, server id,
 * time window) -> response signature (dkm_response_verify).
 */
#ifndef DKM_SIGN_H
#define DKM_SIGN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <tss2/tss2_tpm2_types.h>

#include "dkm/base/error.h"
#include "dkm/tpm/node.h"
#include "dkm/tpm/tpm.h"

#define DKM_SIG_SIZE 64
#define DKM_P256_PUBLIC_SIZE 65

/* Longest context string, without its terminating NUL. */
#define DKM_SIGCTX_MAX 64
/* Reserved for delegations: only dkm_delegation_create signs with it. */
#define DKM_SIGCTX_DELEGATION "dkm delegation v1"
/* Responses of the key service, signed by the delegated key. */
#define DKM_SIGCTX_RESPONSE "dkm response v1"

#define DKM_SIGNKEY_MAGIC 0x444b534bu    /* "DKSK" */
#define DKM_DELEGATION_MAGIC 0x444b4447u /* "DKDG" */
#define DKM_DELEGATION_VERSION 1
/* magic, version, key, not-before, not-after, server id, signature */
#define DKM_DELEGATION_SIZE                                                              \
    (4 + 2 + DKM_P256_PUBLIC_SIZE + 8 + 8 + DKM_NODE_ID_SIZE + DKM_SIG_SIZE)
/* Longest validity window a delegation may have, in seconds (7 days). */
#define DKM_DELEGATION_MAX_LIFETIME (7u * 24u * 3600u)

/* An uncompressed P-256 public key: 0x04 || x || y. */
struct dkm_p256_public {
    uint8_t point[DKM_P256_PUBLIC_SIZE];
};

/* A TPM-resident server signing key. */
struct dkm_signkey;

/*
 * Create a new SK in the TPM (ECC P-256, ECDSA-SHA256, unrestricted
 * signing, fixedTPM, under the SRK: see dkm_tpm_srk_load) and save its
 * blobs to path (mode 0600, atomically). Without overwrite an existing
 * file is -EEXIST and nothing is created. The SK keeps a pointer to tpm,
 * which must outlive it. Free *ret with dkm_signkey_free.
 */
DKM_MUSTCHECK int dkm_signkey_create(struct dkm_tpm *tpm, const char *path,
                                     bool overwrite, struct dkm_signkey **ret);

/*
 * Read an SK file (strict decode; the public area must be the SK
 * template's). -ENOENT when the file does not exist; DKM_E_FORMAT when
 * it is malformed. The key is loaded into the TPM only while signing, so
 * it takes no object slot between signatures.
 */
DKM_MUSTCHECK int dkm_signkey_load(struct dkm_tpm *tpm, const char *path,
                                   struct dkm_signkey **ret);

/* Free an SK handle (the key stays in its file). NULL is accepted. */
void dkm_signkey_free(struct dkm_signkey *sk);

/* The SK's public key. */
void dkm_signkey_public(const struct dkm_signkey *sk, struct dkm_p256_public *ret);

/* The SK's TPM public area (for the authorized server list). */
const TPM2B_PUBLIC *dkm_signkey_tpm_public(const struct dkm_signkey *sk);

/*
 * Sign msg for the purpose named by context with the TPM: loads the key
 * under the SRK, signs SHA-256(context || 0 || msg), flushes. context
 * DKM_SIGCTX_DELEGATION is refused (-EINVAL). Writes 64 bytes r || s.
 * DKM_E_TPM_NOT_MINE when the SK file belongs to another TPM.
 */
DKM_MUSTCHECK int dkm_signkey_sign(struct dkm_signkey *sk, const char *context,
                                   const void *msg, size_t len,
                                   uint8_t ret_sig[DKM_SIG_SIZE]);

/* The digest every dkm signature covers: SHA-256(context || 0 || msg). */
DKM_MUSTCHECK int dkm_sig_digest(const char *context, const void *msg, size_t len,
                                 uint8_t ret[32]);

/* Check that a public key is an uncompressed point on P-256. */
DKM_MUSTCHECK int dkm_p256_public_check(const struct dkm_p256_public *pub);

/*
 * Verify a signature in software. 0 when valid; DKM_E_SIGNATURE when
 * not (or when r or s is out of range); DKM_E_FORMAT for a bad key.
 */
DKM_MUSTCHECK int dkm_sig_verify(const struct dkm_p256_public *pub, const char *context,
                                 const void *msg, size_t len,
                                 const uint8_t sig[DKM_SIG_SIZE]);

/* A decoded delegation record. */
struct dkm_delegation {
    struct dkm_p256_public key; /* the delegated software key */
    uint64_t not_before;        /* seconds since the epoch, inclusive */
    uint64_t not_after;         /* seconds since the epoch, exclusive */
    struct dkm_node_id server_id;
};

/* A delegated software key with its signed record. */
struct dkm_delegated_key;

/*
 * Make OpenSSL's secure heap available (CRYPTO_secure_malloc_init, 64
 * KiB) so that the delegated key's private scalar is allocated there:
 * locked, guard pages, excluded from core dumps, zeroised on free. Call
 * once at process start, before any thread uses OpenSSL. Idempotent.
 * DKM_E_MEMLOCK when the heap cannot be set up.
 */
DKM_MUSTCHECK int dkm_sign_secure_heap_init(void);

/*
 * Generate a software P-256 key and have the SK sign a delegation record
 * for it: the server's node id and the window [not_before, not_after),
 * which must be non-empty and at most DKM_DELEGATION_MAX_LIFETIME long.
 * Servers should start the window a few minutes in the past to absorb
 * clients' clock skew. The private key lives only in memory, in
 * OpenSSL's secure heap when dkm_sign_secure_heap_init was called (see
 * dkm_delegated_key_secure). Free with dkm_delegated_key_free.
 */
DKM_MUSTCHECK int dkm_delegation_create(struct dkm_signkey *sk,
                                        const struct dkm_node_id *server_id,
                                        uint64_t not_before, uint64_t not_after,
                                        struct dkm_delegated_key **ret);

/* Free a delegated key (its private scalar is zeroised). NULL is accepted. */
void dkm_delegated_key_free(struct dkm_delegated_key *dk);

/* The signed delegation record (DKM_DELEGATION_SIZE bytes), to send
 * along with signed responses. Owned by dk. */
const uint8_t *dkm_delegated_key_record(const struct dkm_delegated_key *dk);

/* The record's fields. Owned by dk. */
const struct dkm_delegation *dkm_delegated_key_info(const struct dkm_delegated_key *dk);

/* Whether the private scalar was allocated in OpenSSL's secure heap. */
bool dkm_delegated_key_secure(const struct dkm_delegated_key *dk);

/*
 * Sign msg with the delegated key (software, no TPM). Context
 * DKM_SIGCTX_DELEGATION is refused. The key does not look at the clock:
 * renewing the delegation before not_after is the caller's job.
 */
DKM_MUSTCHECK int dkm_delegated_sign(struct dkm_delegated_key *dk, const char *context,
                                     const void *msg, size_t len,
                                     uint8_t ret_sig[DKM_SIG_SIZE]);

/*
 * Parse a delegation record without checking its signature: exactly
 * DKM_DELEGATION_SIZE bytes, magic, version, a key on P-256, a SHA-256
 * server id, a window that is non-empty and at most
 * DKM_DELEGATION_MAX_LIFETIME. DKM_E_FORMAT otherwise.
 */
DKM_MUSTCHECK int dkm_delegation_decode(const uint8_t *buf, size_t len,
                                        struct dkm_delegation *ret);

/*
 * Verify a delegation record: format (dkm_delegation_decode), the SK's
 * signature (DKM_E_SIGNATURE), that it names server_id (DKM_E_SIGNATURE),
 * and that not_before <= now < not_after (DKM_E_EXPIRED, with a detail
 * saying whether it is not yet valid or expired). ret may be NULL.
 */
DKM_MUSTCHECK int dkm_delegation_verify(const struct dkm_p256_public *server_sk,
                                        const struct dkm_node_id *server_id,
                                        const uint8_t *buf, size_t len, uint64_t now,
                                        struct dkm_delegation *ret);

/*
 * Verify a response signature through the whole chain: the delegation
 * (dkm_delegation_verify with server_sk, server_id and now), then sig
 * over (context, msg) with the delegated key. 0 only when every link
 * holds.
 */
DKM_MUSTCHECK int dkm_response_verify(const struct dkm_p256_public *server_sk,
                                      const struct dkm_node_id *server_id,
                                      const uint8_t *delegation, size_t delegation_len,
                                      uint64_t now, const char *context, const void *msg,
                                      size_t len, const uint8_t sig[DKM_SIG_SIZE]);

#endif
