/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fixtures shared by the unit tests that need TPM-shaped data without a
 * TPM.
 */
#ifndef DKM_TESTS_FIXTURES_H
#define DKM_TESTS_FIXTURES_H

#include <openssl/evp.h>

#include "dkm/tpm.h"

/*
 * An EK public area of the TCG default template for type, holding a
 * fresh software key (RSA-2048 or P-256), so formats and software sealing
 * can be tested without a TPM. *ret_pkey (may be NULL) receives the key
 * pair; the caller frees it. Returns 0, or -1 on failure (no CUnit
 * asserts, so suite init functions can use it).
 */
int dkm_test_soft_ek(enum dkm_ek_type type, TPM2B_PUBLIC *ret, EVP_PKEY **ret_pkey);

#endif
