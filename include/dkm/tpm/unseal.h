/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The node side of a key in transit: import an import blob (dup.h) under
 * this TPM's EK and unseal the secret it carries into secure memory.
 *
 * Import turns the blob into a private area wrapped by this TPM's EK
 * (TPM-bound: useless without this TPM), which a node may keep on disk
 * (struct dkm_sealed) and later unseal with Load + Unseal only. The
 * secret leaves the TPM through a session salted with the EK with
 * response encryption, so it is not in clear on the TPM bus, and lands in
 * secure memory (secmem.h). Every handle and session is flushed on every
 * path.
 *
 * Errors: DKM_E_TPM_NOT_MINE when the blob names another node (nothing is
 * sent to the TPM); DKM_E_INTEGRITY when the TPM refuses the blob or the
 * cached private area (altered, or encrypted to another TPM's EK);
 * DKM_E_TPM_POLICY when the platform state (PCR values) does not match
 * the object's policy; DKM_E_TPM for other TPM failures. Each comes with
 * a detail (dkm_error_detail()).
 */
#ifndef DKM_UNSEAL_H
#define DKM_UNSEAL_H

#include <stddef.h>
#include <stdint.h>

#include <tss2/tss2_tpm2_types.h>

#include "dkm/tpm/dup.h"
#include "dkm/base/error.h"
#include "dkm/tpm/node.h"
#include "dkm/tpm/tpm.h"

/*
 * A sealed object imported under this node's EK. Nothing in it is
 * secret: the private area is encrypted and integrity-protected by the
 * EK's storage seed, so only this TPM can load it.
 */
struct dkm_sealed {
    enum dkm_ek_type ek_type;   /* the parent EK */
    struct dkm_node_id node_id; /* that EK's name, checked before Load */
    TPM2B_PUBLIC public;        /* the sealed-data object's public area */
    TPM2B_PRIVATE private;      /* TPM2_Import's outPrivate */
    uint32_t pcr_mask;          /* SHA-256 PCRs of the object's policy; 0 = none */
};

/*
 * Cache format of a struct dkm_sealed: "DKSO", version 1. It was "DKMS"
 * (the stream header's magic) in disk cache entries of format 2; those
 * entries are refused (diskcache.h), so the old magic is never read.
 */
#define DKM_SEALED_MAGIC "DKSO"
#define DKM_SEALED_VERSION 1u
#define DKM_SEALED_ENCODED_MAX 2048u

/*
 * Encode a sealed object for a node's disk cache into buf (cap bytes;
 * DKM_SEALED_ENCODED_MAX always suffices): magic, version, EK type,
 * node id, object public, private, PCR selection (docs/import-blob.md).
 * Returns 0 and sets *ret_len, or -EINVAL (an object dkm_sealed_decode
 * would refuse) / -ENOBUFS with a detail.
 */
DKM_MUSTCHECK int dkm_sealed_encode(const struct dkm_sealed *sealed, uint8_t *buf,
                                    size_t cap, size_t *ret_len);

/*
 * Strictly decode a cached sealed object: every length bounded and
 * checked against the bytes left, the public area canonical and of the
 * shape dkm makes (dkm_dup_check_public), no trailing bytes. Returns 0
 * and fills *ret, or DKM_E_FORMAT with a detail naming the field. The TPM
 * checks the private area's integrity when it is loaded.
 */
DKM_MUSTCHECK int dkm_sealed_decode(const uint8_t *buf, size_t len,
                                    struct dkm_sealed *ret);

/*
 * Import blob under this TPM's EK of blob->ek_type, without unsealing.
 * The blob's node id must be this TPM's EK name (else DKM_E_TPM_NOT_MINE
 * and no TPM command beyond reading the EK). On success *ret_sealed can
 * be stored and passed to dkm_unseal later. Takes the TPM lock.
 */
DKM_MUSTCHECK int dkm_unseal_import(struct dkm_tpm *tpm,
                                    const struct dkm_import_blob *blob,
                                    struct dkm_sealed *ret_sealed);

/*
 * Load a sealed object under this TPM's EK and unseal it. For an object
 * with a PCR policy, a policy session runs TPM2_PolicyPCR over
 * sealed->pcr_mask (current values); otherwise the empty auth value is
 * used. On success *ret_secret points to *ret_len bytes in secure memory
 * that the caller releases with dkm_secmem_free. Takes the TPM lock.
 */
DKM_MUSTCHECK int dkm_unseal(struct dkm_tpm *tpm, const struct dkm_sealed *sealed,
                             void **ret_secret, size_t *ret_len);

/*
 * Import and unseal in one go (the EK is looked up once). ret_sealed may
 * be NULL; if not, it receives the imported object for caching (set only
 * when the whole operation succeeds). Secret ownership as for dkm_unseal.
 */
DKM_MUSTCHECK int dkm_unseal_blob(struct dkm_tpm *tpm, const struct dkm_import_blob *blob,
                                  struct dkm_sealed *ret_sealed, void **ret_secret,
                                  size_t *ret_len);

/*
 * Whether sealed is the object that blob imports to (the same public
 * area, EK and node, PCR selection): how a kept sealed object is tied to
 * the signed answer that carried its blob. No TPM command.
 */
bool dkm_sealed_matches_blob(const struct dkm_sealed *sealed,
                             const struct dkm_import_blob *blob);

#endif
