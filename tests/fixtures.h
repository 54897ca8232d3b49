/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fixtures shared by the unit tests that need TPM-shaped data without a
 * TPM.
 */
#ifndef DKM_TESTS_FIXTURES_H
#define DKM_TESTS_FIXTURES_H

#include <openssl/evp.h>

#include "dkm/trust/records.h"
#include "dkm/tpm/tpm.h"

/*
 * An EK public area of the TCG default template for type, holding a
 * fresh software key (RSA-2048 or P-256), so formats and software sealing
 * can be tested without a TPM. *ret_pkey (may be NULL) receives the key
 * pair; the caller frees it. Returns 0, or -1 on failure (no CUnit
 * asserts, so suite init functions can use it).
 */
int dkm_test_soft_ek(enum dkm_ek_type type, TPM2B_PUBLIC *ret, EVP_PKEY **ret_pkey);

/*
 * A software stand-in for a server: an EK (so a node id) and a P-256
 * signing key that signs exactly as a server's TPM signing key does
 * (sign.h), so signed records can be made without a TPM.
 */
struct dkm_test_server {
    EVP_PKEY *pkey;
    struct dkm_p256_public pub;
    struct dkm_node_id id;
    TPM2B_PUBLIC ek;
};

/* Make one; 0 or -1 (no CUnit asserts). Free with dkm_test_server_free. */
int dkm_test_server_make(struct dkm_test_server *s);
void dkm_test_server_free(struct dkm_test_server *s);

/* A records.h signer backed by s (which must outlive it). */
struct dkm_signer dkm_test_server_signer(struct dkm_test_server *s);

#endif
