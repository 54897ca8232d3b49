/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Sealing a secret to a remote TPM's endorsement key, in software.
 *
 * The server builds a TPM 2.0 duplication blob (Part 1, "Protected
 * Storage" and "Duplication") of a keyed-hash sealed-data object that
 * holds the secret, wrapped for the node's EK as the new parent: a random
 * seed is encrypted to the EK (RSA-OAEP, or ECDH + KDFe), and the object's
 * sensitive area is encrypted and HMACed with keys derived from that seed
 * (KDFa). Only the TPM that holds the EK's private key can TPM2_Import it;
 * no TPM is needed to create it. The object's authPolicy may bind its use
 * to PCR values (PolicyPCR), computed here in software too.
 *
 * The import blob as dkm carries it (the "envelope": magic, version, EK
 * type, target node id, object public, duplicate, encrypted seed, PCR
 * selection) is encoded and strictly decoded here; docs/import-blob.md
 * describes every byte. The node side (TPM2_Import and Unseal) is in
 * unseal.h.
 */
#ifndef DKM_DUP_H
#define DKM_DUP_H

#include <stddef.h>
#include <stdint.h>

#include <tss2/tss2_tpm2_types.h>

#include "dkm/base/error.h"
#include "dkm/tpm/node.h"
#include "dkm/tpm/tpm.h"

/* Sealed secrets are 1..128 bytes (the TPM's MAX_SYM_DATA). */
#define DKM_DUP_SECRET_MAX 128u
/* The sealed object's name algorithm is SHA-256: digests are 32 bytes. */
#define DKM_DUP_DIGEST_SIZE 32u
/* PCR policies use the SHA-256 bank, PCRs 0..23 (bit i = PCR i). */
#define DKM_DUP_PCR_COUNT 24u
#define DKM_DUP_PCR_MASK_ALL ((1u << DKM_DUP_PCR_COUNT) - 1u)

/* Envelope: "DKMI", format version 1. */
#define DKM_DUP_MAGIC "DKMI"
#define DKM_DUP_VERSION 1u
/* No envelope is larger than this (the real ones are under 700 bytes). */
#define DKM_DUP_ENCODED_MAX 2048u

/*
 * A decoded import blob. Every field has been checked by dkm_dup_decode
 * (or was made by dkm_dup_seal); the TPM checks the cryptography.
 */
struct dkm_import_blob {
    enum dkm_ek_type ek_type;    /* which of the node's EKs is the parent */
    struct dkm_node_id node_id;  /* the target node: that EK's name */
    TPM2B_PUBLIC public;         /* the sealed-data object's public area */
    TPM2B_PRIVATE duplicate;     /* outer HMAC || AES-CFB(TPM2B_SENSITIVE) */
    TPM2B_ENCRYPTED_SECRET seed; /* the seed, encrypted to the EK */
    uint32_t pcr_mask;           /* SHA-256 PCRs of the PolicyPCR; 0 = none */
};

/*
 * The authPolicy digest of TPM2_PolicyPCR over the SHA-256 bank, starting
 * from an empty policy:
 *     H(0^32 || TPM_CC_PolicyPCR || TPML_PCR_SELECTION || H(values))
 * pcr_mask selects PCRs (bit i = PCR i, non-zero, within 0..23);
 * pcr_values holds their 32-byte values concatenated in ascending PCR
 * order, so values_len must be 32 times the number of bits set.
 * Returns 0 and fills ret_digest, or -EINVAL with a detail.
 */
DKM_MUSTCHECK int dkm_dup_policy_pcr(uint32_t pcr_mask, const uint8_t *pcr_values,
                                     size_t values_len,
                                     uint8_t ret_digest[DKM_DUP_DIGEST_SIZE]);

/*
 * Seal secret (1..DKM_DUP_SECRET_MAX bytes) to the EK whose public area
 * is ek_public (a TCG default RSA-2048 or ECC P-256 EK, as checked by
 * dkm_tpm_ek_public_check; an ECC point must be on the curve).
 *
 * Without a policy (pcr_mask 0, policy NULL) the object is usable with
 * an empty password (userWithAuth). With one (pcr_mask non-zero, policy
 * the 32-byte digest from dkm_dup_policy_pcr for the PCR values the node
 * must have) only a policy session satisfying it can unseal the object;
 * pcr_mask is carried in the envelope so the node knows which PCRs to
 * select.
 *
 * The object has fixedTPM and fixedParent clear (TPM2_Import refuses
 * anything else), no encryptedDuplication (there is no inner wrapper),
 * noDA, and an empty auth value; see docs/import-blob.md.
 *
 * Returns 0 and fills *ret, or -EINVAL / DKM_E_FORMAT (bad EK public
 * area) / DKM_E_CRYPTO with a detail. The secret and every intermediate
 * key are wiped before returning; *ret holds nothing in clear.
 */
DKM_MUSTCHECK int dkm_dup_seal(const TPM2B_PUBLIC *ek_public, const void *secret,
                               size_t secret_len, uint32_t pcr_mask,
                               const uint8_t *policy, struct dkm_import_blob *ret);

/*
 * Check that a public area is the sealed-data object dkm_dup_seal makes:
 * keyed-hash, SHA-256 name, NULL scheme, 32-byte unique, the attributes
 * for "no policy" (pcr_mask 0) or "PCR policy" with a 32-byte authPolicy.
 * Returns 0 or DKM_E_FORMAT with a detail naming the field.
 */
DKM_MUSTCHECK int dkm_dup_check_public(const TPMT_PUBLIC *pub, uint32_t pcr_mask);

/*
 * Encode a blob into buf (cap bytes; DKM_DUP_ENCODED_MAX always suffices).
 * Returns 0 and sets *ret_len, or -EINVAL (blob fails the checks
 * dkm_dup_decode applies) / -ENOBUFS (cap too small) with a detail.
 */
DKM_MUSTCHECK int dkm_dup_encode(const struct dkm_import_blob *blob, uint8_t *buf,
                                 size_t cap, size_t *ret_len);

/*
 * Strictly decode an envelope: magic, version, EK type, every length
 * bounded and checked against the bytes left, the object's public area
 * re-marshaled to exactly the bytes given, the object shape dkm makes
 * (keyed-hash sealed data, SHA-256, fixedTPM/fixedParent clear, policy
 * iff PCR selection), the seed's shape for the EK type, no trailing bytes.
 * Returns 0 and fills *ret, or DKM_E_FORMAT with a detail naming the
 * field.
 */
DKM_MUSTCHECK int dkm_dup_decode(const uint8_t *buf, size_t len,
                                 struct dkm_import_blob *ret);

#endif
