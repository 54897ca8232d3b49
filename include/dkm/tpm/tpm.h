/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TPM context over tpm2-tss ESAPI.
 *
 * One struct dkm_tpm per owner (process or component). Every Esys_* call
 * is made with the context's lock held (dkm_tpm_lock/unlock), every TSS
 * return code goes through DKM_TPM_CHECK, and every transient handle and
 * session is flushed on every path: swtpm has three object slots and no
 * resource manager, so one leaked handle breaks the next command.
 */
#ifndef DKM_TPM_H
#define DKM_TPM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <tss2/tss2_esys.h>

#include "dkm/base/error.h"
#include "dkm/base/file.h" /* the TPM object files use it; older users include it through here */

struct dkm_tpm;

enum dkm_ek_type {
    DKM_EK_RSA2048, /* TCG default template, persistent handle 0x81010001 */
    DKM_EK_ECCP256, /* TCG default template, persistent handle 0x81010016 */
};

#define DKM_EK_HANDLE_RSA 0x81010001u
#define DKM_EK_HANDLE_ECC 0x81010016u
/* Where provisioning tools put the storage root key. */
#define DKM_SRK_HANDLE 0x81000001u

/*
 * Open a TPM through a TCTI configuration string such as
 * "swtpm:host=127.0.0.1,port=2321" or "device:/dev/tpmrm0". tcti NULL
 * means the DKM_TCTI environment variable; if that is unset too, the
 * call fails with DKM_E_CONFIG. Returns 0 and sets *ret, or a negative
 * code with a detail.
 */
DKM_MUSTCHECK int dkm_tpm_open(const char *tcti, struct dkm_tpm **ret);

/*
 * Open the context's TCTI again and start a new ESAPI context on it, in
 * place (holders of the context keep their pointer): for a TPM whose
 * connection died (it restarted). Handles of the old context are gone;
 * persistent objects are read again when next used. Takes the lock.
 */
DKM_MUSTCHECK int dkm_tpm_reopen(struct dkm_tpm *tpm);

/* Close the ESYS context and the TCTI. NULL is accepted. */
void dkm_tpm_close(struct dkm_tpm *tpm);

/* Serialize TPM access: every Esys_* call is made between these. */
void dkm_tpm_lock(struct dkm_tpm *tpm);
void dkm_tpm_unlock(struct dkm_tpm *tpm);

/* The ESYS context; only to be used with the lock held. */
ESYS_CONTEXT *dkm_tpm_esys(struct dkm_tpm *tpm);

/*
 * Turn a TSS2 return code into a dkm code: 0 for TSS2_RC_SUCCESS, else
 * DKM_E_TPM (DKM_E_TPM_POLICY for policy failures) with a detail naming
 * the operation and the decoded code (Tss2_RC_Decode).
 *
 * Mapping (on the code's base, see dkm_tpm_rc_base): TPM_RC_POLICY_FAIL
 * and TPM_RC_PCR_CHANGED are DKM_E_TPM_POLICY; TPM_RC_VALUE is
 * DKM_E_TPM_POLICY only when what contains "PolicyPCR" (PolicyPCR's
 * answer to a PCR digest that is not the current one), else DKM_E_TPM;
 * TPM_RC_INTEGRITY and TPM_RC_BINDING (a private or duplication blob
 * whose HMAC does not verify: altered, or made for another TPM or
 * parent) are DKM_E_INTEGRITY; everything else is DKM_E_TPM.
 */
int dkm_tpm_rc(TSS2_RC rc, const char *what);

/*
 * The TPM error number of a TPM-layer return code, without the handle,
 * session or parameter number that format-1 codes carry: compare it with
 * TPM2_RC_* constants (e.g. dkm_tpm_rc_base(rc) == TPM2_RC_POLICY_FAIL).
 * Codes of other layers (TCTI, ESAPI, ...) are returned unchanged.
 */
uint32_t dkm_tpm_rc_base(TSS2_RC rc);

/* Check a TSS2 return code; on failure set r and jump to the label. */
#define DKM_TPM_CHECK(rc, what, r, label)                                                \
    do {                                                                                 \
        TSS2_RC dkm_rc_ = (rc);                                                          \
        if (dkm_rc_ != TSS2_RC_SUCCESS) {                                                \
            (r) = dkm_tpm_rc(dkm_rc_, (what));                                           \
            goto label;                                                                  \
        }                                                                                \
    } while (0)

/* Flush a transient object or session if it is not ESYS_TR_NONE, and
 * set it to ESYS_TR_NONE. A persistent object or NV index stays in the
 * TPM and its ESAPI record stays in the context (ESAPI hands the same
 * ESYS_TR to every caller of Esys_TR_FromTPMPublic for one handle, so
 * closing it would break other holders); only *handle is reset. Callers
 * may therefore flush whatever dkm_tpm_ek_load or dkm_tpm_srk_load gave
 * them without looking at *ret_transient. Takes the (recursive) lock. */
void dkm_tpm_flush(struct dkm_tpm *tpm, ESYS_TR *handle);

/*
 * Get a handle to the EK of the given type: the persistent one when
 * present and exactly of the TCG default template (L-1 RSA-2048, L-2
 * ECC P-256), else a transient one created from that template
 * (*ret_transient then true). Either way the caller releases the handle
 * with dkm_tpm_flush. A persistent EK is read once per context (or not at
 * all after dkm_tpm_ek_known). ret_transient and ret_public may be NULL;
 * ret_public receives the EK's public area. Lock must be held (the lock
 * is recursive; the function also takes it).
 */
DKM_MUSTCHECK int dkm_tpm_ek_load(struct dkm_tpm *tpm, enum dkm_ek_type type,
                                  ESYS_TR *ret, bool *ret_transient,
                                  TPM2B_PUBLIC *ret_public);

/*
 * Tell the context the public area of the persistent EK of this type, as
 * an earlier process read it (from the node's cache directory), so that
 * dkm_tpm_ek_load needs no TPM command: 0, or DKM_E_FORMAT when pub is
 * not a TCG default EK of that type. If the TPM holds another key there,
 * the commands that use it fail. Takes the lock.
 */
DKM_MUSTCHECK int dkm_tpm_ek_known(struct dkm_tpm *tpm, enum dkm_ek_type type,
                                   const TPM2B_PUBLIC *pub);

/*
 * Forget the persistent EKs and SRK read so far (dkm_tpm_ek_load and
 * dkm_tpm_srk_load read each once per context): for whoever changes
 * persistent objects under a context.
 */
void dkm_tpm_forget(struct dkm_tpm *tpm);

/*
 * Start a policy session that satisfies the TCG default EK policy
 * (PolicySecret on the endorsement hierarchy, empty endorsement auth),
 * to authorize use of the EK as a parent. A policy session authorizes
 * one command: start a new one for each Import or Load. The caller
 * flushes the session. Lock must be held.
 */
DKM_MUSTCHECK int dkm_tpm_ek_policy_session(struct dkm_tpm *tpm, ESYS_TR *ret);

/*
 * Whether a persistent object or NV index exists at handle, asked with
 * GetCapability(TPM_CAP_HANDLES) so that an absent handle is not an
 * error (ESAPI would log one). Takes the lock.
 */
DKM_MUSTCHECK int dkm_tpm_handle_exists(struct dkm_tpm *tpm, TPM2_HANDLE handle,
                                        bool *ret);

/* "rsa" or "ecc". */
const char *dkm_ek_type_name(enum dkm_ek_type type);

/* The TCG default EK template of the given type (L-1 or L-2). */
DKM_MUSTCHECK int dkm_tpm_ek_template(enum dkm_ek_type type, TPM2B_PUBLIC *ret);

/*
 * Check that a public area is an EK of one of the TCG default templates:
 * RSA-2048 or ECC P-256, SHA-256 name, the EK object attributes
 * (restricted decryption, adminWithPolicy, no userWithAuth), the default
 * EK policy, AES-128-CFB, no scheme, right-sized unique field. Sets
 * *ret_type (may be NULL). DKM_E_FORMAT with a detail naming the field
 * otherwise. Pure software; does not check that an ECC point is on the
 * curve (see dkm_node_ek_pkey in node.h).
 */
DKM_MUSTCHECK int dkm_tpm_ek_public_check(const TPM2B_PUBLIC *pub,
                                          enum dkm_ek_type *ret_type);

/*
 * Compute the TPM name of a public area in software: nameAlg (2 bytes
 * big-endian) || H_nameAlg(marshaled TPMT_PUBLIC). SHA-256, -384 and
 * -512 name algorithms are supported.
 */
DKM_MUSTCHECK int dkm_tpm_public_name(const TPM2B_PUBLIC *pub, TPM2B_NAME *ret);

/* The template used when no persistent SRK exists: ECC P-256, SHA-256,
 * AES-128-CFB, restricted decrypt, userWithAuth, noDA, empty unique. */
DKM_MUSTCHECK int dkm_tpm_srk_template(TPM2B_PUBLIC *ret);

/*
 * Get a handle to the storage root key: the persistent one at
 * DKM_SRK_HANDLE when it is a usable storage key, else a transient
 * primary created in the owner hierarchy from dkm_tpm_srk_template().
 * ret_transient and ret_name (the SRK's name, to detect blobs made under
 * another SRK) may be NULL. Release with dkm_tpm_flush. Takes the lock.
 */
DKM_MUSTCHECK int dkm_tpm_srk_load(struct dkm_tpm *tpm, ESYS_TR *ret, bool *ret_transient,
                                   TPM2B_NAME *ret_name);

/*
 * Start an HMAC session salted with salt_key (a loaded decryption key,
 * e.g. the SRK) with AES-128-CFB parameter encryption both ways, so that
 * secrets passed to (Create) or returned by (Unseal) the TPM are not in
 * clear on the bus. Use it as the authorization session of an object
 * with userWithAuth and an empty auth value. The caller flushes it.
 * Takes the lock.
 */
DKM_MUSTCHECK int dkm_tpm_encrypted_session(struct dkm_tpm *tpm, ESYS_TR salt_key,
                                            ESYS_TR *ret);

/*
 * Number of free transient object slots reported by the TPM
 * (TPM_PT_HR_TRANSIENT_AVAIL), for leak checks in tests.
 */
DKM_MUSTCHECK int dkm_tpm_transient_avail(struct dkm_tpm *tpm, uint32_t *ret);

/*
 * TPM object files. An object created under the SRK lives on disk as
 *   magic (u32, chosen by the module) | version (u16, 1) |
 *   TPM2B_NAME of the SRK | TPM2B_PUBLIC | TPM2B_PRIVATE
 * all TPM-marshaled (big-endian); see docs/formats.md. The module that
 * owns the file checks the public area's shape itself.
 */
struct dkm_tpm_object {
    TPM2B_NAME parent; /* name of the SRK it was created under */
    TPM2B_PUBLIC pub;
    TPM2B_PRIVATE priv;
};

/* Upper bound of an object file, in bytes. */
#define DKM_TPM_OBJECT_FILE_MAX 4096u

/* Encode an object file; *ret is malloc'd (the private blob is TPM-
 * encrypted, so it needs no wiping). */
DKM_MUSTCHECK int dkm_tpm_object_encode(uint32_t magic, const struct dkm_tpm_object *obj,
                                        uint8_t **ret, size_t *ret_len);

/*
 * Decode an object file strictly: magic, version, every length bounded,
 * a canonical public area, no trailing bytes. what names the file kind
 * in error details. DKM_E_FORMAT otherwise.
 */
DKM_MUSTCHECK int dkm_tpm_object_decode(uint32_t magic, const char *what,
                                        const uint8_t *buf, size_t len,
                                        struct dkm_tpm_object *ret);

/* Encode and write atomically with mode 0600 (see dkm_file_write). */
DKM_MUSTCHECK int dkm_tpm_object_write(const char *path, uint32_t magic,
                                       const struct dkm_tpm_object *obj, bool overwrite);

/* Read and decode; -ENOENT when the file does not exist. */
DKM_MUSTCHECK int dkm_tpm_object_read(const char *path, uint32_t magic, const char *what,
                                      struct dkm_tpm_object *ret);

/*
 * Create an object from a template under the SRK (dkm_tpm_srk_load),
 * through a salted session with parameter encryption so that data (the
 * sealed secret, or NULL) is not in clear on the bus. Takes the lock.
 */
DKM_MUSTCHECK int dkm_tpm_object_create(struct dkm_tpm *tpm, const TPM2B_PUBLIC *tmpl,
                                        const TPM2B_SENSITIVE_DATA *data,
                                        struct dkm_tpm_object *ret);

/*
 * Load an object under the SRK. DKM_E_TPM_NOT_MINE when the SRK's name
 * is not the one recorded in the object (another TPM, or a cleared
 * one). The caller flushes *ret. Takes the lock.
 */
DKM_MUSTCHECK int dkm_tpm_object_load(struct dkm_tpm *tpm,
                                      const struct dkm_tpm_object *obj, ESYS_TR *ret);

/*
 * Overwrite the TSS buffer the last response was read into, with no TPM
 * command: ESAPI decrypts a response parameter in place and offers no way
 * to wipe its buffer, so after an Unseal the secret would linger there.
 * Takes the lock.
 */
void dkm_tpm_scrub(struct dkm_tpm *tpm);

#endif
