/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fixtures shared by the unit tests: software stand-ins for TPM objects.
 */
#include "fixtures.h"

#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>

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

static int soft_sign(void *ctx, const char *context, const void *msg, size_t len,
                     uint8_t ret_sig[DKM_SIG_SIZE])
{
    struct dkm_test_server *k = ctx;
    uint8_t digest[32], der[80];
    const uint8_t *p = der;
    size_t der_len = sizeof(der);
    EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new(k->pkey, NULL);
    ECDSA_SIG *sig = NULL;
    int r = -1;

    if (pctx == NULL || dkm_sig_digest(context, msg, len, digest) < 0 ||
        EVP_PKEY_sign_init(pctx) != 1 ||
        EVP_PKEY_sign(pctx, der, &der_len, digest, sizeof(digest)) != 1)
        goto done;
    sig = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
    if (sig == NULL || BN_bn2binpad(ECDSA_SIG_get0_r(sig), ret_sig, 32) != 32 ||
        BN_bn2binpad(ECDSA_SIG_get0_s(sig), ret_sig + 32, 32) != 32)
        goto done;
    r = 0;
done:
    ECDSA_SIG_free(sig);
    EVP_PKEY_CTX_free(pctx);
    return r;
}

int dkm_test_server_make(struct dkm_test_server *s)
{
    size_t n = 0;

    s->pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    return s->pkey != NULL &&
                   EVP_PKEY_get_octet_string_param(s->pkey, OSSL_PKEY_PARAM_PUB_KEY,
                                                   s->pub.point, sizeof(s->pub.point),
                                                   &n) == 1 &&
                   n == DKM_P256_PUBLIC_SIZE &&
                   dkm_test_soft_ek(DKM_EK_ECCP256, &s->ek, NULL) == 0 &&
                   dkm_node_id_from_public(&s->ek, &s->id) == 0
               ? 0
               : -1;
}

void dkm_test_server_free(struct dkm_test_server *s)
{
    EVP_PKEY_free(s->pkey);
    s->pkey = NULL;
}

struct dkm_signer dkm_test_server_signer(struct dkm_test_server *s)
{
    struct dkm_signer signer = {.sign = soft_sign, .ctx = s, .id = s->id};

    return signer;
}
