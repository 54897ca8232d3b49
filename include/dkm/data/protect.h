/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The protect blob: one message encrypted under a group key version with
 * AES-256-GCM, self-describing so that unprotect needs only the group's
 * keys. This is what `openssl pkeyutl -encrypt -inkey dkm:GROUP` writes.
 *
 *     offset  size  field
 *     0       4     magic "DKMP"
 *     4       1     format version (1)
 *     5       1     flags: bit 0 set when caller AAD was given; others 0
 *     6       1     group length L (1..64)
 *     7       L     group name ([A-Za-z0-9._-])
 *     7+L     4     key version, big-endian, >= 1
 *     11+L    12    nonce (random)
 *     23+L    n     ciphertext (n = plaintext length)
 *     23+L+n  16    GCM tag
 *
 * The header (bytes 0 .. 23+L) followed by the caller's AAD, if any, is
 * the GCM additional data, so no header field can be changed without the
 * tag failing. The functions here are pure: keys are passed in, and the
 * cipher comes from the library context given (the provider passes its
 * private one).
 */
#ifndef DKM_PROTECT_H
#define DKM_PROTECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/types.h>

#include "dkm/base/error.h"
#include "dkm/base/uri.h"

#define DKM_PROTECT_MAGIC "DKMP"
#define DKM_PROTECT_FORMAT 1
#define DKM_PROTECT_FLAG_AAD 0x01u
#define DKM_PROTECT_KEY_LEN 32
#define DKM_PROTECT_NONCE_LEN 12
#define DKM_PROTECT_TAG_LEN 16
/* Header without the group name, and the largest header. */
#define DKM_PROTECT_HEADER_FIXED (4 + 1 + 1 + 1 + 4 + DKM_PROTECT_NONCE_LEN)
#define DKM_PROTECT_HEADER_MAX (DKM_PROTECT_HEADER_FIXED + DKM_GROUP_MAX)
/* Largest message protect accepts (larger data belongs in a stream). */
#define DKM_PROTECT_MAX_PLAINTEXT (64u * 1024u * 1024u)
/* Largest blob: what the key manager reports as max-size. */
#define DKM_PROTECT_MAX_BLOB                                                             \
    (DKM_PROTECT_HEADER_MAX + DKM_PROTECT_MAX_PLAINTEXT + DKM_PROTECT_TAG_LEN)
/* Largest caller AAD. */
#define DKM_PROTECT_MAX_AAD (64u * 1024u)

/* A parsed header (the group is copied out of the blob). */
struct dkm_protect_header {
    char group[DKM_GROUP_MAX + 1];
    uint32_t version;
    uint8_t flags;
    uint8_t nonce[DKM_PROTECT_NONCE_LEN];
    size_t header_len;    /* bytes of header, the start of the ciphertext */
    size_t plaintext_len; /* bytes the ciphertext will decrypt to */
};

/*
 * Exact size of the blob for a plaintext of pt_len bytes under group, or
 * 0 if group is not valid or pt_len exceeds DKM_PROTECT_MAX_PLAINTEXT.
 */
size_t dkm_protect_blob_size(const char *group, size_t pt_len);

/*
 * Parse and check the header of blob (len bytes, the whole blob): magic,
 * format, flags, group syntax, version >= 1, and that a tag fits after
 * it. On success fills *ret and returns 0; otherwise DKM_E_FORMAT with a
 * detail naming the field.
 */
DKM_MUSTCHECK int dkm_protect_parse_header(const uint8_t *blob, size_t len,
                                           struct dkm_protect_header *ret);

/*
 * Protect pt (pt_len bytes, may be 0) under key (DKM_PROTECT_KEY_LEN bytes)
 * of group/version with optional AAD (aad may be NULL when aad_len is 0;
 * aad_len 0 means no AAD). nonce is NULL for a random one (a fixed nonce
 * is for known-answer tests only). Writes the blob to out (out_size bytes
 * available) and sets *ret_len. libctx may be NULL (default context); it
 * gives the random nonce and, when gcm is NULL, AES-256-GCM (fetched per
 * call; pass a fetched gcm to save that).
 * Returns 0, -EINVAL (bad arguments), -ENOSPC (out too small) or
 * DKM_E_CRYPTO, with a detail. Nothing is written on -ENOSPC/-EINVAL.
 */
DKM_MUSTCHECK int dkm_protect_seal(OSSL_LIB_CTX *libctx, EVP_CIPHER *gcm,
                                   const uint8_t *key, const char *group,
                                   uint32_t version, const uint8_t *aad, size_t aad_len,
                                   const uint8_t *nonce, const uint8_t *pt, size_t pt_len,
                                   uint8_t *out, size_t out_size, size_t *ret_len);

/*
 * Unprotect blob (len bytes) whose header was parsed into *hdr (libctx and
 * gcm as for dkm_protect_seal), with the
 * key of hdr->group/hdr->version and the same AAD as at protect time.
 * Decrypts into a temporary buffer and copies the plaintext to out only
 * when the tag verifies: on any failure out is left untouched. Returns 0
 * and *ret_len, or DKM_E_FORMAT (header and flags disagree with the AAD
 * given), DKM_E_INTEGRITY (wrong key, wrong AAD or tampered blob),
 * -ENOSPC, -ENOMEM, DKM_E_CRYPTO.
 */
DKM_MUSTCHECK int dkm_protect_open(OSSL_LIB_CTX *libctx, EVP_CIPHER *gcm,
                                   const uint8_t *key,
                                   const struct dkm_protect_header *hdr,
                                   const uint8_t *blob, size_t len, const uint8_t *aad,
                                   size_t aad_len, uint8_t *out, size_t out_size,
                                   size_t *ret_len);

#endif
