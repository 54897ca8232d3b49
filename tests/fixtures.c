/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fixtures shared by the unit tests: software stand-ins for TPM objects.
 */
#include "fixtures.h"

#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>

int dkm_test_soft_ek(enum dkm_ek_type type, TPM2B_PUBLIC *ret, EVP_PKEY **ret_pkey)
{
    TPM2B_PUBLIC ek;
    EVP_PKEY *k = NULL;
    BIGNUM *n = NULL;
    uint8_t point[65];
    size_t len = 0;
    int r = -1;

    if (dkm_tpm_ek_template(type, &ek) < 0)
        return -1;
    if (type == DKM_EK_RSA2048) {
        k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
        if (k == NULL || EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_N, &n) != 1 ||
            BN_bn2binpad(n, ek.publicArea.unique.rsa.buffer, 256) != 256)
            goto done;
        ek.publicArea.unique.rsa.size = 256;
    } else {
        k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        if (k == NULL ||
            EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY, point,
                                            sizeof(point), &len) != 1 ||
            len != sizeof(point))
            goto done;
        memcpy(ek.publicArea.unique.ecc.x.buffer, point + 1, 32);
        memcpy(ek.publicArea.unique.ecc.y.buffer, point + 33, 32);
    }
    if (dkm_tpm_ek_public_check(&ek, NULL) < 0)
        goto done;
    *ret = ek;
    if (ret_pkey != NULL) {
        *ret_pkey = k;
        k = NULL;
    }
    r = 0;
done:
    BN_free(n);
    EVP_PKEY_free(k);
    return r;
}
