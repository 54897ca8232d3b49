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
#include <tss2/tss2_esys.h>

#include "dkm/error.h"

struct dkm_tpm;

enum dkm_ek_type {
    DKM_EK_RSA2048, /* TCG default template, persistent handle 0x81010001 */
    DKM_EK_ECCP256, /* TCG default template, persistent handle 0x81010016 */
};

#define DKM_EK_HANDLE_RSA 0x81010001u
#define DKM_EK_HANDLE_ECC 0x81010016u

/*
 * Open a TPM through a TCTI configuration string such as
 * "swtpm:host=127.0.0.1,port=2321" or "device:/dev/tpmrm0". tcti NULL
 * means the DKM_TCTI environment variable; if that is unset too, the
 * call fails with DKM_E_CONFIG. Returns 0 and sets *ret, or a negative
 * code with a detail.
 */
DKM_MUSTCHECK int dkm_tpm_open(const char *tcti, struct dkm_tpm **ret);

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
 */
int dkm_tpm_rc(TSS2_RC rc, const char *what);

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
 * set it to ESYS_TR_NONE. Lock must be held. */
void dkm_tpm_flush(struct dkm_tpm *tpm, ESYS_TR *handle);

/*
 * Get a handle to the EK of the given type: the persistent one when
 * present, else a transient one created from the TCG default template
 * (*ret_transient then true: the caller flushes it with dkm_tpm_flush).
 * ret_public, if not NULL, receives the EK's public area. Lock must be
 * held.
 */
DKM_MUSTCHECK int dkm_tpm_ek_load(struct dkm_tpm *tpm, enum dkm_ek_type type, ESYS_TR *ret,
                                  bool *ret_transient, TPM2B_PUBLIC *ret_public);

/*
 * Start a policy session that satisfies the TCG default EK policy
 * (PolicySecret on the endorsement hierarchy), to authorize use of the EK
 * as a parent. The caller flushes the session. Lock must be held.
 */
DKM_MUSTCHECK int dkm_tpm_ek_policy_session(struct dkm_tpm *tpm, ESYS_TR *ret);

/*
 * Number of free transient object slots reported by the TPM
 * (TPM_PT_HR_TRANSIENT_AVAIL), for leak checks in tests.
 */
DKM_MUSTCHECK int dkm_tpm_transient_avail(struct dkm_tpm *tpm, uint32_t *ret);

#endif
