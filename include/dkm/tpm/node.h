/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Node identity: a node is its TPM's endorsement key. The node id is the
 * EK's TPM name, nameAlg (2 bytes, big-endian, always SHA-256 here) ||
 * SHA-256(marshaled TPMT_PUBLIC), 34 bytes, printed as 68 lower-case hex
 * characters. It is computed in software from the public area, so a node
 * card (nodecard.h) names its node without a TPM.
 *
 * A TPM has two EKs that dkm can use, RSA-2048 and ECC P-256 (TCG default
 * templates); a node uses one of them as its identity. The default is the
 * ECC EK when the TPM implements NIST P-256, else the RSA EK.
 */
#ifndef DKM_NODE_H
#define DKM_NODE_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <tss2/tss2_tpm2_types.h>

#include "dkm/base/error.h"
#include "dkm/tpm/tpm.h"

#define DKM_NODE_ID_SIZE 34
/* 68 hex characters and a NUL. */
#define DKM_NODE_ID_HEX_SIZE (2 * DKM_NODE_ID_SIZE + 1)

/* NV indices of the EK certificates (TCG EK Credential Profile, low range). */
#define DKM_EK_CERT_NV_RSA 0x01c00002u
#define DKM_EK_CERT_NV_ECC 0x01c0000au
/* Largest EK certificate accepted, in bytes of DER. */
#define DKM_EK_CERT_MAX 4096u

struct dkm_node_id {
    uint8_t bytes[DKM_NODE_ID_SIZE];
};

/*
 * Node id of an EK public area. The public area must pass
 * dkm_tpm_ek_public_check (so its name algorithm is SHA-256); otherwise
 * DKM_E_FORMAT with the check's detail.
 */
DKM_MUSTCHECK int dkm_node_id_from_public(const TPM2B_PUBLIC *ek,
                                          struct dkm_node_id *ret);

/* Lower-case hex of a node id into out (DKM_NODE_ID_HEX_SIZE bytes). */
void dkm_node_id_hex(const struct dkm_node_id *id, char out[DKM_NODE_ID_HEX_SIZE]);

/*
 * Parse a node id from text: exactly 68 hex characters (either case)
 * starting with 000b (SHA-256). -EINVAL with a detail otherwise.
 */
DKM_MUSTCHECK int dkm_node_id_parse(const char *s, struct dkm_node_id *ret);

/* Constant-time comparison of two node ids. */
bool dkm_node_id_equal(const struct dkm_node_id *a, const struct dkm_node_id *b);

/*
 * The EK type this TPM's node identity uses by default: ECC P-256 when
 * the TPM lists NIST P-256 among its curves, else RSA-2048. The answer
 * depends only on the TPM's capabilities, so it is stable. Takes the lock.
 */
DKM_MUSTCHECK int dkm_node_default_ek_type(struct dkm_tpm *tpm, enum dkm_ek_type *ret);

/*
 * Read this TPM's EK of the given type (persistent, or created from the
 * template and flushed again) and compute its node id. ret_public and
 * ret_id may each be NULL. Takes the lock.
 */
DKM_MUSTCHECK int dkm_node_read_ek(struct dkm_tpm *tpm, enum dkm_ek_type type,
                                   TPM2B_PUBLIC *ret_public, struct dkm_node_id *ret_id);

/*
 * Read the EK certificate of the given type from its NV index. Returns 0
 * with *ret NULL and *ret_len 0 when the index does not exist (not an
 * error: many TPMs, and swtpm by default, have none). Otherwise *ret is
 * a malloc'd DER certificate (trailing NV padding removed) that the
 * caller frees with free(). A certificate that does not parse as X.509,
 * or is larger than DKM_EK_CERT_MAX, is DKM_E_FORMAT. Takes the lock.
 */
DKM_MUSTCHECK int dkm_node_read_ek_cert(struct dkm_tpm *tpm, enum dkm_ek_type type,
                                        uint8_t **ret, size_t *ret_len);

/*
 * Check that a DER buffer is exactly one X.509 certificate (no trailing
 * bytes). DKM_E_FORMAT with a detail otherwise.
 */
DKM_MUSTCHECK int dkm_node_ek_cert_check(const uint8_t *der, size_t len);

/*
 * Build an OpenSSL public key from an EK public area, after
 * dkm_tpm_ek_public_check: RSA with the TPM default exponent 65537, or an
 * EC P-256 key whose point is checked to lie on the curve. The caller
 * frees *ret with EVP_PKEY_free. DKM_E_FORMAT when the key is not valid.
 */
DKM_MUSTCHECK int dkm_node_ek_pkey(const TPM2B_PUBLIC *ek, EVP_PKEY **ret);

/*
 * The EK file of a node's cache directory (docs/formats.md, "EK file"):
 * the public area of the node's persistent EK as a process read it, so
 * that later processes know the node id and the EK with no TPM command
 * (dkm_tpm_ek_known). Magic "DKEP", format version 1, EK type, the
 * marshaled TPMT_PUBLIC. decode refuses anything but one canonical
 * encoding of a TCG default EK of the type it names (DKM_E_FORMAT).
 */
#define DKM_NODE_EK_FILE "ek.pub"
#define DKM_NODE_EK_FILE_MAX 1024u
#define DKM_NODE_EK_FILE_MAGIC 0x444b4550u /* "DKEP" */
DKM_MUSTCHECK int dkm_node_ek_file_encode(enum dkm_ek_type type, const TPM2B_PUBLIC *pub,
                                          uint8_t *buf, size_t cap, size_t *ret_len);
DKM_MUSTCHECK int dkm_node_ek_file_decode(const uint8_t *buf, size_t len,
                                          enum dkm_ek_type *ret_type, TPM2B_PUBLIC *ret);

#endif
