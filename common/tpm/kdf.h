/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The two key derivation functions of TPM 2.0 (Part 1, section 11.4.10),
 * computed in software so that a server can build what a TPM will accept
 * (import blobs) without a TPM of its own.
 *
 * KDFa is the SP800-108 counter-mode KDF with HMAC:
 *     K(i) = HMAC(key, [i]32 || label || 0x00 || contextU || contextV || [bits]32)
 * KDFe is the SP800-56A single-step hash KDF used after ECDH:
 *     K(i) = H([i]32 || Z || use || 0x00 || partyUInfo || partyVInfo)
 * Both return the leftmost ceil(bits/8) octets of K(1) || K(2) || ...,
 * with the unused high-order bits of the first octet set to zero when bits
 * is not a multiple of 8. Labels are C strings: the terminating zero
 * octet is part of what is hashed, as the specification requires, and an
 * empty label hashes as the single octet 0x00.
 */
#ifndef DKM_KDF_H
#define DKM_KDF_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "dkm/base/error.h"

/* Largest output the KDFs will produce, in bits (64 KiB). */
#define DKM_KDF_MAX_BITS (65536u * 8u)

/*
 * KDFa. md is the hash of the HMAC (EVP_sha256() etc.); key may be empty
 * (key_len 0); label NULL means the empty label; context_u/context_v may
 * be NULL when their length is 0. bits is 1..DKM_KDF_MAX_BITS and out_len
 * must be exactly (bits + 7) / 8.
 *
 * Returns 0 and fills out, or -EINVAL (bad arguments) or DKM_E_CRYPTO
 * (OpenSSL failed), with a detail. On failure out is wiped. Intermediate
 * HMAC outputs are wiped before returning.
 */
DKM_MUSTCHECK int dkm_kdfa(const EVP_MD *md, const void *key, size_t key_len,
                           const char *label, const void *context_u, size_t u_len,
                           const void *context_v, size_t v_len, uint32_t bits, void *out,
                           size_t out_len);

/*
 * KDFe. md is the hash; z is the shared secret (for ECDH the x coordinate
 * of the shared point, at full field size); use is the label (NULL means
 * empty); party_u/party_v may be NULL when their length is 0. bits and
 * out_len as for dkm_kdfa. Same returns and wiping.
 */
DKM_MUSTCHECK int dkm_kdfe(const EVP_MD *md, const void *z, size_t z_len, const char *use,
                           const void *party_u, size_t u_len, const void *party_v,
                           size_t v_len, uint32_t bits, void *out, size_t out_len);

#endif
