/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Software creation of TPM 2.0 import (duplication) blobs for a node's EK,
 * the PolicyPCR digest, and the dkm envelope that carries a blob.
 *
 * This is what lets a key service hand a key to exactly one TPM without
 * owning that TPM: the wrapping below must agree with TPM2_Import bit for
 * bit (TPM 2.0 Part 1, "Protected Storage" and "Duplication"; Part 3,
 * TPM2_Import). docs/import-blob.md walks through the same steps and
 * every byte of the envelope.
 */
#include "dkm/tpm/dup.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <tss2/tss2_mu.h>

#include "dkm/base/codec.h"
#include "kdf.h"
#include "envelope.h"

/* The terminating zero octet is part of the label (Part 1, 11.4.10). */
static const char duplicate_label[] = "DUPLICATE";

#define SEALED_ATTRS_NO_POLICY (TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_NODA)
#define SEALED_ATTRS_POLICY (TPMA_OBJECT_ADMINWITHPOLICY | TPMA_OBJECT_NODA)

/* Size of a marshaled TPM2B_SENSITIVE holding a keyed-hash object with an
 * empty auth value, a 32-byte seedValue and n bytes of data. */
#define SENSITIVE_SIZE(n) (2u + 2u + 2u + 0u + 2u + DKM_DUP_DIGEST_SIZE + 2u + (n))
/* Bounds of the encrypted part of a duplicate dkm accepts: as above, but
 * allowing an auth value padded to the digest size as a TPM would. */
#define ENC_SENSITIVE_MIN SENSITIVE_SIZE(1u)
#define ENC_SENSITIVE_MAX (SENSITIVE_SIZE(DKM_DUP_SECRET_MAX) + DKM_DUP_DIGEST_SIZE)

static unsigned popcount24(uint32_t mask)
{
    unsigned n = 0;

    for (unsigned i = 0; i < DKM_DUP_PCR_COUNT; i++)
        n += (mask >> i) & 1u;
    return n;
}

int dkm_dup_policy_pcr(uint32_t pcr_mask, const uint8_t *pcr_values, size_t values_len,
                       uint8_t ret_digest[DKM_DUP_DIGEST_SIZE])
{
    static const uint8_t zero[DKM_DUP_DIGEST_SIZE];
    uint8_t sel[10], cc[4], pcr_digest[DKM_DUP_DIGEST_SIZE], out[DKM_DUP_DIGEST_SIZE];
    EVP_MD_CTX *ctx = NULL;
    size_t sel_len;
    int r = DKM_E_CRYPTO;

    if (ret_digest == NULL || pcr_values == NULL)
        return dkm_error_set(-EINVAL, "PCR policy: missing argument");
    if (pcr_mask == 0 || (pcr_mask & ~DKM_DUP_PCR_MASK_ALL) != 0)
        return dkm_error_set(
            -EINVAL, "PCR policy: selection 0x%x is empty or names a PCR above 23",
            (unsigned)pcr_mask);
    if (values_len != (size_t)popcount24(pcr_mask) * DKM_DUP_DIGEST_SIZE)
        return dkm_error_set(-EINVAL,
                             "PCR policy: %zu bytes of PCR values for %u selected PCRs "
                             "(need 32 each)",
                             values_len, popcount24(pcr_mask));
    sel_len = dkm_env_pcr_selection_marshal(pcr_mask, sel);
    cc[0] = (uint8_t)(TPM2_CC_PolicyPCR >> 24);
    cc[1] = (uint8_t)(TPM2_CC_PolicyPCR >> 16);
    cc[2] = (uint8_t)(TPM2_CC_PolicyPCR >> 8);
    cc[3] = (uint8_t)TPM2_CC_PolicyPCR;

    ctx = EVP_MD_CTX_new();
    if (ctx == NULL) {
        r = dkm_error_set(-ENOMEM, "PCR policy: out of memory");
        goto done;
    }
    if (!EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) ||
        !EVP_DigestUpdate(ctx, pcr_values, values_len) ||
        !EVP_DigestFinal_ex(ctx, pcr_digest, NULL) ||
        !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) ||
        !EVP_DigestUpdate(ctx, zero, sizeof(zero)) ||
        !EVP_DigestUpdate(ctx, cc, sizeof(cc)) || !EVP_DigestUpdate(ctx, sel, sel_len) ||
        !EVP_DigestUpdate(ctx, pcr_digest, sizeof(pcr_digest)) ||
        !EVP_DigestFinal_ex(ctx, out, NULL)) {
        r = dkm_error_set(r, "PCR policy: SHA-256 failed");
        goto done;
    }
    memcpy(ret_digest, out, sizeof(out));
    r = 0;
done:
    EVP_MD_CTX_free(ctx);
    return r;
}

/* The public area of the sealed-data object (everything but unique). */
static void sealed_public_init(TPM2B_PUBLIC *pub, const uint8_t *policy)
{
    TPMT_PUBLIC *p = &pub->publicArea;

    memset(pub, 0, sizeof(*pub));
    p->type = TPM2_ALG_KEYEDHASH;
    p->nameAlg = TPM2_ALG_SHA256;
    /* fixedTPM and fixedParent must be clear for TPM2_Import; sign and
     * decrypt clear make it a sealed data object; sensitiveDataOrigin
     * clear because the data came from outside. */
    if (policy != NULL) {
        /* Every role needs the policy: nothing, not even ChangeAuth, can
         * be done with the object outside the required platform state. */
        p->objectAttributes = SEALED_ATTRS_POLICY;
        p->authPolicy.size = DKM_DUP_DIGEST_SIZE;
        memcpy(p->authPolicy.buffer, policy, DKM_DUP_DIGEST_SIZE);
    } else {
        p->objectAttributes = SEALED_ATTRS_NO_POLICY;
    }
    p->parameters.keyedHashDetail.scheme.scheme = TPM2_ALG_NULL;
}

/*
 * Encrypt a fresh seed to the EK. RSA: OAEP (SHA-256, MGF1-SHA-256, label
 * "DUPLICATE\0") of 32 random bytes. ECC: an ephemeral P-256 key, Z = the
 * x coordinate of ECDH with the EK, seed = KDFe(SHA-256, Z, "DUPLICATE",
 * ephemeral x, EK x, 256); the encrypted seed is the ephemeral point.
 */
static int seed_make(enum dkm_ek_type type, const TPM2B_PUBLIC *ek_public, EVP_PKEY *ek,
                     uint8_t seed[DKM_DUP_DIGEST_SIZE], TPM2B_ENCRYPTED_SECRET *ret)
{
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *eph = NULL;
    uint8_t z[32], point[65];
    TPM2B_ENCRYPTED_SECRET enc;
    size_t len;
    int r = DKM_E_CRYPTO;

    memset(&enc, 0, sizeof(enc));
    if (type == DKM_EK_RSA2048) {
        unsigned char *label = NULL;

        if (RAND_priv_bytes(seed, DKM_DUP_DIGEST_SIZE) != 1) {
            r = dkm_error_set(r, "seal: no random bytes for the seed");
            goto done;
        }
        ctx = EVP_PKEY_CTX_new_from_pkey(NULL, ek, NULL);
        if (ctx == NULL || EVP_PKEY_encrypt_init(ctx) <= 0 ||
            EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) <= 0 ||
            EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256()) <= 0 ||
            EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha256()) <= 0) {
            r = dkm_error_set(r, "seal: cannot set up RSA-OAEP with the EK");
            goto done;
        }
        /* The context takes ownership of the label on success. */
        label = OPENSSL_memdup(duplicate_label, sizeof(duplicate_label));
        if (label == NULL) {
            r = dkm_error_set(-ENOMEM, "seal: out of memory");
            goto done;
        }
        if (EVP_PKEY_CTX_set0_rsa_oaep_label(ctx, label, sizeof(duplicate_label)) <= 0) {
            OPENSSL_free(label);
            r = dkm_error_set(r, "seal: cannot set the OAEP label");
            goto done;
        }
        len = sizeof(enc.secret);
        if (EVP_PKEY_encrypt(ctx, enc.secret, &len, seed, DKM_DUP_DIGEST_SIZE) <= 0 ||
            len != 256) {
            r = dkm_error_set(r, "seal: RSA-OAEP encryption of the seed failed");
            goto done;
        }
        enc.size = (UINT16)len;
    } else {
        const TPM2B_ECC_PARAMETER *ek_x = &ek_public->publicArea.unique.ecc.x;
        TPMS_ECC_POINT q;
        size_t off = 0;

        eph = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        if (eph == NULL) {
            r = dkm_error_set(r, "seal: cannot generate an ephemeral P-256 key");
            goto done;
        }
        ctx = EVP_PKEY_CTX_new_from_pkey(NULL, eph, NULL);
        len = sizeof(z);
        if (ctx == NULL || EVP_PKEY_derive_init(ctx) <= 0 ||
            EVP_PKEY_derive_set_peer(ctx, ek) <= 0 ||
            EVP_PKEY_derive(ctx, z, &len) <= 0 || len != sizeof(z)) {
            r = dkm_error_set(r, "seal: ECDH with the EK failed");
            goto done;
        }
        /* Uncompressed point 04 || x || y: the TPM wants x and y at full
         * field size, as a TPMS_ECC_POINT. */
        if (!EVP_PKEY_get_octet_string_param(eph, OSSL_PKEY_PARAM_PUB_KEY, point,
                                             sizeof(point), &len) ||
            len != sizeof(point) || point[0] != 0x04) {
            r = dkm_error_set(r, "seal: cannot read the ephemeral public point");
            goto done;
        }
        memset(&q, 0, sizeof(q));
        q.x.size = 32;
        memcpy(q.x.buffer, point + 1, 32);
        q.y.size = 32;
        memcpy(q.y.buffer, point + 33, 32);
        r = dkm_kdfe(EVP_sha256(), z, sizeof(z), duplicate_label, q.x.buffer, q.x.size,
                     ek_x->buffer, ek_x->size, 8 * DKM_DUP_DIGEST_SIZE, seed,
                     DKM_DUP_DIGEST_SIZE);
        if (r < 0)
            goto done;
        r = DKM_E_CRYPTO;
        if (Tss2_MU_TPMS_ECC_POINT_Marshal(&q, enc.secret, sizeof(enc.secret), &off) !=
            TSS2_RC_SUCCESS) {
            r = dkm_error_set(r, "seal: cannot marshal the ephemeral point");
            goto done;
        }
        enc.size = (UINT16)off;
    }
    *ret = enc;
    r = 0;
done:
    OPENSSL_cleanse(z, sizeof(z));
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(eph);
    if (r < 0)
        OPENSSL_cleanse(seed, DKM_DUP_DIGEST_SIZE);
    return r;
}

/* HMAC-SHA256(key, a || b) */
static int hmac2(const uint8_t *key, size_t key_len, const uint8_t *a, size_t a_len,
                 const uint8_t *b, size_t b_len, uint8_t out[DKM_DUP_DIGEST_SIZE])
{
    EVP_MAC *mac = NULL;
    EVP_MAC_CTX *ctx = NULL;
    OSSL_PARAM params[2];
    size_t got = 0;
    int r = DKM_E_CRYPTO;

    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0);
    params[1] = OSSL_PARAM_construct_end();
    mac = EVP_MAC_fetch(NULL, OSSL_MAC_NAME_HMAC, NULL);
    if (mac == NULL || (ctx = EVP_MAC_CTX_new(mac)) == NULL ||
        !EVP_MAC_init(ctx, key, key_len, params) || !EVP_MAC_update(ctx, a, a_len) ||
        !EVP_MAC_update(ctx, b, b_len) ||
        !EVP_MAC_final(ctx, out, &got, DKM_DUP_DIGEST_SIZE) ||
        got != DKM_DUP_DIGEST_SIZE) {
        r = dkm_error_set(r, "seal: HMAC-SHA256 failed");
        goto done;
    }
    r = 0;
done:
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    return r;
}

static int aes_cfb_encrypt(const uint8_t *key, unsigned key_bits, const uint8_t *in,
                           size_t len, uint8_t *out)
{
    static const uint8_t iv[16];
    EVP_CIPHER_CTX *ctx = NULL;
    const EVP_CIPHER *cipher =
        key_bits == 256 ? EVP_aes_256_cfb128() : EVP_aes_128_cfb128();
    int n1 = 0, n2 = 0;
    int r = DKM_E_CRYPTO;

    ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL || !EVP_EncryptInit_ex(ctx, cipher, NULL, key, iv) ||
        !EVP_EncryptUpdate(ctx, out, &n1, in, (int)len) ||
        !EVP_EncryptFinal_ex(ctx, out + n1, &n2) || (size_t)(n1 + n2) != len) {
        r = dkm_error_set(r, "seal: AES-CFB encryption failed");
        goto done;
    }
    r = 0;
done:
    EVP_CIPHER_CTX_free(ctx);
    return r;
}

int dkm_dup_seal(const TPM2B_PUBLIC *ek_public, const void *secret, size_t secret_len,
                 uint32_t pcr_mask, const uint8_t *policy, struct dkm_import_blob *ret)
{
    uint8_t seed[DKM_DUP_DIGEST_SIZE], sym_key[16], hmac_key[DKM_DUP_DIGEST_SIZE];
    uint8_t obfuscate[DKM_DUP_DIGEST_SIZE];
    uint8_t sens[SENSITIVE_SIZE(DKM_DUP_SECRET_MAX)];
    uint8_t enc[sizeof(sens)], integrity[DKM_DUP_DIGEST_SIZE];
    struct dkm_import_blob blob;
    enum dkm_ek_type type;
    TPM2B_NAME name;
    EVP_PKEY *ek = NULL;
    EVP_MD_CTX *md = NULL;
    struct dkm_writer w;
    size_t sens_len = 0;
    unsigned sym_bits;
    int r = -EINVAL;

    memset(&blob, 0, sizeof(blob));
    if (ek_public == NULL || secret == NULL || ret == NULL)
        return dkm_error_set(r, "seal: missing argument");
    if (secret_len < 1 || secret_len > DKM_DUP_SECRET_MAX)
        return dkm_error_set(r, "seal: secret of %zu bytes, allowed 1..%u", secret_len,
                             DKM_DUP_SECRET_MAX);
    if ((pcr_mask == 0) != (policy == NULL))
        return dkm_error_set(r, "seal: a PCR selection needs a policy digest and the "
                                "other way round");
    if ((pcr_mask & ~DKM_DUP_PCR_MASK_ALL) != 0)
        return dkm_error_set(r, "seal: PCR selection 0x%x names a PCR above 23",
                             (unsigned)pcr_mask);
    r = dkm_tpm_ek_public_check(ek_public, &type);
    if (r < 0)
        return r;
    r = dkm_node_id_from_public(ek_public, &blob.node_id);
    if (r < 0)
        return r;
    r = dkm_node_ek_pkey(ek_public, &ek);
    if (r < 0)
        return r;
    blob.ek_type = type;
    blob.pcr_mask = pcr_mask;
    /* The outer wrapper uses the new parent's symmetric algorithm. */
    sym_bits = type == DKM_EK_RSA2048
                   ? ek_public->publicArea.parameters.rsaDetail.symmetric.keyBits.aes
                   : ek_public->publicArea.parameters.eccDetail.symmetric.keyBits.aes;
    r = DKM_E_CRYPTO;
    if (sym_bits != 128) {
        r = dkm_error_set(-EINVAL, "seal: EK symmetric key of %u bits is not supported",
                          sym_bits);
        goto done;
    }

    /* Sensitive area: TPM2B_SENSITIVE { KEYEDHASH, authValue empty,
     * seedValue = random obfuscation value, bits = secret }. */
    if (RAND_priv_bytes(obfuscate, sizeof(obfuscate)) != 1) {
        r = dkm_error_set(r, "seal: no random bytes");
        goto done;
    }
    w = dkm_writer_init(sens, sizeof(sens));
    (void)dkm_put_u16be(&w, (uint16_t)(SENSITIVE_SIZE(secret_len) - 2));
    (void)dkm_put_u16be(&w, TPM2_ALG_KEYEDHASH);
    (void)dkm_put_len16(&w, NULL, 0);
    (void)dkm_put_len16(&w, obfuscate, sizeof(obfuscate));
    (void)dkm_put_len16(&w, secret, secret_len);
    if (!dkm_writer_ok(&w) || w.len != SENSITIVE_SIZE(secret_len)) {
        r = dkm_error_set(r, "seal: sensitive area does not fit");
        goto done;
    }
    sens_len = w.len;

    /* Public area; unique = H(seedValue || data) binds it to the data. */
    sealed_public_init(&blob.public, policy);
    md = EVP_MD_CTX_new();
    if (md == NULL || !EVP_DigestInit_ex(md, EVP_sha256(), NULL) ||
        !EVP_DigestUpdate(md, obfuscate, sizeof(obfuscate)) ||
        !EVP_DigestUpdate(md, secret, secret_len) ||
        !EVP_DigestFinal_ex(md, blob.public.publicArea.unique.keyedHash.buffer, NULL)) {
        r = dkm_error_set(r, "seal: SHA-256 failed");
        goto done;
    }
    blob.public.publicArea.unique.keyedHash.size = DKM_DUP_DIGEST_SIZE;
    {
        uint8_t pub[sizeof(TPMT_PUBLIC)];
        size_t pub_len = 0;

        if (Tss2_MU_TPMT_PUBLIC_Marshal(&blob.public.publicArea, pub, sizeof(pub),
                                        &pub_len) != TSS2_RC_SUCCESS) {
            r = dkm_error_set(r, "seal: cannot marshal the object's public area");
            goto done;
        }
        blob.public.size = (UINT16)pub_len;
    }
    r = dkm_tpm_public_name(&blob.public, &name);
    if (r < 0)
        goto done;

    r = seed_make(type, ek_public, ek, seed, &blob.seed);
    if (r < 0)
        goto done;

    /* Outer wrapper, hash = the EK's nameAlg (SHA-256):
     * symKey = KDFa(seed, "STORAGE", name, -, 128), AES-128-CFB, IV 0;
     * hmacKey = KDFa(seed, "INTEGRITY", -, -, 256);
     * outerHMAC = HMAC(hmacKey, encSensitive || name). */
    r = dkm_kdfa(EVP_sha256(), seed, sizeof(seed), "STORAGE", name.name, name.size, NULL,
                 0, 128, sym_key, sizeof(sym_key));
    if (r < 0)
        goto done;
    r = dkm_kdfa(EVP_sha256(), seed, sizeof(seed), "INTEGRITY", NULL, 0, NULL, 0,
                 8 * DKM_DUP_DIGEST_SIZE, hmac_key, sizeof(hmac_key));
    if (r < 0)
        goto done;
    r = aes_cfb_encrypt(sym_key, 128, sens, sens_len, enc);
    if (r < 0)
        goto done;
    r = hmac2(hmac_key, sizeof(hmac_key), enc, sens_len, name.name, name.size, integrity);
    if (r < 0)
        goto done;
    w = dkm_writer_init(blob.duplicate.buffer, sizeof(blob.duplicate.buffer));
    (void)dkm_put_len16(&w, integrity, sizeof(integrity));
    (void)dkm_put_bytes(&w, enc, sens_len);
    if (!dkm_writer_ok(&w)) {
        r = dkm_error_set(DKM_E_CRYPTO, "seal: duplicate does not fit");
        goto done;
    }
    blob.duplicate.size = (UINT16)w.len;

    *ret = blob;
    r = 0;
done:
    OPENSSL_cleanse(seed, sizeof(seed));
    OPENSSL_cleanse(sym_key, sizeof(sym_key));
    OPENSSL_cleanse(hmac_key, sizeof(hmac_key));
    OPENSSL_cleanse(obfuscate, sizeof(obfuscate));
    OPENSSL_cleanse(sens, sizeof(sens));
    OPENSSL_cleanse(&blob, sizeof(blob));
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(ek);
    return r;
}

/* Shared by decode (on wire data), encode (on a caller's blob) and the
 * node's cache format: the object is exactly the shape dkm_dup_seal makes. */
int dkm_dup_check_public(const TPMT_PUBLIC *p, uint32_t pcr_mask)
{
    if (p == NULL)
        return dkm_error_set(-EINVAL, "import blob: no public area");
    if (p->type != TPM2_ALG_KEYEDHASH)
        return dkm_error_set(DKM_E_FORMAT,
                             "import blob: object type 0x%04x is not keyed-hash",
                             (unsigned)p->type);
    if (p->nameAlg != TPM2_ALG_SHA256)
        return dkm_error_set(DKM_E_FORMAT,
                             "import blob: object name algorithm 0x%04x is not SHA-256",
                             (unsigned)p->nameAlg);
    if (p->parameters.keyedHashDetail.scheme.scheme != TPM2_ALG_NULL)
        return dkm_error_set(DKM_E_FORMAT,
                             "import blob: object has a keyed-hash scheme (not sealed "
                             "data)");
    if (p->unique.keyedHash.size != DKM_DUP_DIGEST_SIZE)
        return dkm_error_set(DKM_E_FORMAT,
                             "import blob: object unique is %u bytes, not 32",
                             (unsigned)p->unique.keyedHash.size);
    if (pcr_mask != 0) {
        if (p->objectAttributes != SEALED_ATTRS_POLICY)
            return dkm_error_set(DKM_E_FORMAT,
                                 "import blob: object attributes 0x%08x are not those of "
                                 "a policy-bound sealed object (0x%08x)",
                                 (unsigned)p->objectAttributes,
                                 (unsigned)SEALED_ATTRS_POLICY);
        if (p->authPolicy.size != DKM_DUP_DIGEST_SIZE)
            return dkm_error_set(DKM_E_FORMAT,
                                 "import blob: PCR selection present but the object's "
                                 "policy is %u bytes, not 32",
                                 (unsigned)p->authPolicy.size);
    } else {
        if (p->objectAttributes != SEALED_ATTRS_NO_POLICY)
            return dkm_error_set(DKM_E_FORMAT,
                                 "import blob: object attributes 0x%08x are not those of "
                                 "a sealed object without policy (0x%08x)",
                                 (unsigned)p->objectAttributes,
                                 (unsigned)SEALED_ATTRS_NO_POLICY);
        if (p->authPolicy.size != 0)
            return dkm_error_set(DKM_E_FORMAT,
                                 "import blob: object has a policy but no PCR selection");
    }
    return 0;
}

static int check_duplicate(const uint8_t *p, size_t len)
{
    struct dkm_cursor c = dkm_cursor_init(p, len);
    const uint8_t *ref;
    size_t n;

    if (!dkm_get_len16_ref(&c, DKM_DUP_DIGEST_SIZE, &ref, &n) || n != DKM_DUP_DIGEST_SIZE)
        return dkm_error_set(DKM_E_FORMAT,
                             "import blob: duplicate does not start with a 32-byte "
                             "outer HMAC");
    if (c.left < ENC_SENSITIVE_MIN || c.left > ENC_SENSITIVE_MAX)
        return dkm_error_set(DKM_E_FORMAT,
                             "import blob: encrypted sensitive area of %zu bytes, "
                             "allowed %u..%u",
                             c.left, (unsigned)ENC_SENSITIVE_MIN,
                             (unsigned)ENC_SENSITIVE_MAX);
    return 0;
}

static int check_seed(enum dkm_ek_type type, const uint8_t *p, size_t len)
{
    struct dkm_cursor c = dkm_cursor_init(p, len);
    const uint8_t *ref;
    size_t n;

    if (type == DKM_EK_RSA2048) {
        if (len != 256)
            return dkm_error_set(DKM_E_FORMAT,
                                 "import blob: RSA-encrypted seed is %zu bytes, not 256",
                                 len);
        return 0;
    }
    for (int i = 0; i < 2; i++) {
        if (!dkm_get_len16_ref(&c, 32, &ref, &n) || n != 32)
            return dkm_error_set(DKM_E_FORMAT,
                                 "import blob: ephemeral ECC point %s coordinate is not "
                                 "32 bytes",
                                 i == 0 ? "x" : "y");
    }
    if (!dkm_cursor_empty(&c))
        return dkm_error_set(
            DKM_E_FORMAT, "import blob: %zu bytes after the ephemeral ECC point", c.left);
    return 0;
}

int dkm_dup_decode(const uint8_t *buf, size_t len, struct dkm_import_blob *ret)
{
    static const char what[] = "import blob";
    struct dkm_cursor c = dkm_cursor_init(buf, len);
    struct dkm_import_blob blob;
    const uint8_t *ref;
    size_t n;
    int r;

    memset(&blob, 0, sizeof(blob));
    if (buf == NULL || ret == NULL)
        return dkm_error_set(-EINVAL, "import blob: missing argument");
    if (len > DKM_DUP_ENCODED_MAX)
        return dkm_error_set(DKM_E_FORMAT, "import blob: %zu bytes, more than %u", len,
                             DKM_DUP_ENCODED_MAX);
    r = dkm_env_get_prefix(&c, DKM_DUP_MAGIC, DKM_DUP_VERSION, what, &blob.ek_type,
                           &blob.node_id, &blob.public);
    if (r < 0)
        return r;

    if (!dkm_get_len16_ref(&c, sizeof(blob.duplicate.buffer), &ref, &n))
        return dkm_error_set(DKM_E_FORMAT,
                             "import blob: duplicate length too large or beyond the end");
    r = check_duplicate(ref, n);
    if (r < 0)
        return r;
    memcpy(blob.duplicate.buffer, ref, n);
    blob.duplicate.size = (UINT16)n;

    if (!dkm_get_len16_ref(&c, sizeof(blob.seed.secret), &ref, &n))
        return dkm_error_set(DKM_E_FORMAT, "import blob: encrypted seed length too large "
                                           "or beyond the end");
    r = check_seed(blob.ek_type, ref, n);
    if (r < 0)
        return r;
    memcpy(blob.seed.secret, ref, n);
    blob.seed.size = (UINT16)n;

    r = dkm_env_get_pcr_selection(&c, what, &blob.pcr_mask);
    if (r < 0)
        return r;
    if (!dkm_cursor_empty(&c))
        return dkm_error_set(DKM_E_FORMAT, "import blob: %zu trailing bytes", c.left);

    r = dkm_dup_check_public(&blob.public.publicArea, blob.pcr_mask);
    if (r < 0)
        return r;
    *ret = blob;
    return 0;
}

int dkm_dup_encode(const struct dkm_import_blob *blob, uint8_t *buf, size_t cap,
                   size_t *ret_len)
{
    struct dkm_import_blob check;
    struct dkm_writer w;
    int r;

    if (blob == NULL || buf == NULL || ret_len == NULL)
        return dkm_error_set(-EINVAL, "import blob: missing argument");
    if (blob->ek_type != DKM_EK_RSA2048 && blob->ek_type != DKM_EK_ECCP256)
        return dkm_error_set(-EINVAL, "import blob: unknown EK type %d",
                             (int)blob->ek_type);
    if ((blob->pcr_mask & ~DKM_DUP_PCR_MASK_ALL) != 0)
        return dkm_error_set(-EINVAL,
                             "import blob: PCR selection 0x%x names a PCR above 23",
                             (unsigned)blob->pcr_mask);
    w = dkm_writer_init(buf, cap);
    if (!dkm_env_put_prefix(&w, DKM_DUP_MAGIC, DKM_DUP_VERSION, blob->ek_type,
                            &blob->node_id, &blob->public) &&
        dkm_writer_ok(&w))
        return dkm_error_set(-EINVAL, "import blob: object public area cannot be "
                                      "marshaled");
    (void)dkm_put_len16(&w, blob->duplicate.buffer,
                        blob->duplicate.size <= sizeof(blob->duplicate.buffer)
                            ? blob->duplicate.size
                            : 0);
    (void)dkm_put_len16(&w, blob->seed.secret,
                        blob->seed.size <= sizeof(blob->seed.secret) ? blob->seed.size
                                                                     : 0);
    (void)dkm_env_put_pcr_selection(&w, blob->pcr_mask);
    if (!dkm_writer_ok(&w))
        return dkm_error_set(-ENOBUFS, "import blob: does not fit in %zu bytes", cap);
    /* Never emit what the decoder would refuse. */
    r = dkm_dup_decode(buf, w.len, &check);
    if (r < 0) {
        OPENSSL_cleanse(buf, w.len);
        return dkm_error_set(-EINVAL, "import blob: not encodable: %s",
                             dkm_error_detail());
    }
    *ret_len = w.len;
    return 0;
}
