/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Node identity: the node id computed from an EK public area, the EK
 * read from the TPM, the EK certificate read from NV, and the EK as an
 * OpenSSL key for software that encrypts to it.
 */
#include "dkm/tpm/node.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>
#include <tss2/tss2_mu.h>

#include "dkm/base/codec.h"
#include "dkm/base/log.h"

/* NV indices may be larger than the certificate they hold (padding). */
#define DKM_EK_CERT_NV_MAX (2u * DKM_EK_CERT_MAX)

int dkm_node_id_from_public(const TPM2B_PUBLIC *ek, struct dkm_node_id *ret)
{
    TPM2B_NAME name;
    int r;

    if (ek == NULL || ret == NULL)
        return dkm_error_set(-EINVAL, "dkm_node_id_from_public: missing argument");
    r = dkm_tpm_ek_public_check(ek, NULL);
    if (r < 0)
        return r;
    r = dkm_tpm_public_name(ek, &name);
    if (r < 0)
        return r;
    if (name.size != DKM_NODE_ID_SIZE)
        return dkm_error_set(DKM_E_FORMAT, "EK name is %u bytes, not %u",
                             (unsigned)name.size, (unsigned)DKM_NODE_ID_SIZE);
    memcpy(ret->bytes, name.name, DKM_NODE_ID_SIZE);
    return 0;
}

void dkm_node_id_hex(const struct dkm_node_id *id, char out[DKM_NODE_ID_HEX_SIZE])
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < DKM_NODE_ID_SIZE; i++) {
        out[2 * i] = digits[id->bytes[i] >> 4];
        out[2 * i + 1] = digits[id->bytes[i] & 0x0f];
    }
    out[2 * DKM_NODE_ID_SIZE] = '\0';
}

int dkm_node_id_parse(const char *s, struct dkm_node_id *ret)
{
    struct dkm_node_id id;
    size_t len, n = 0;
    int r;

    if (s == NULL || ret == NULL)
        return dkm_error_set(-EINVAL, "dkm_node_id_parse: missing argument");
    len = strnlen(s, 2 * DKM_NODE_ID_SIZE + 1);
    if (len != 2 * DKM_NODE_ID_SIZE)
        return dkm_error_set(-EINVAL, "a node id is %u hex characters",
                             2u * DKM_NODE_ID_SIZE);
    r = dkm_hex_decode(s, len, id.bytes, sizeof(id.bytes), &n);
    if (r < 0)
        return dkm_error_set(-EINVAL, "node id is not %u hex characters",
                             2u * DKM_NODE_ID_SIZE);
    if (n != DKM_NODE_ID_SIZE || id.bytes[0] != 0x00 || id.bytes[1] != 0x0b)
        return dkm_error_set(-EINVAL, "node id does not start with 000b (SHA-256 name)");
    *ret = id;
    return 0;
}

bool dkm_node_id_equal(const struct dkm_node_id *a, const struct dkm_node_id *b)
{
    return CRYPTO_memcmp(a->bytes, b->bytes, DKM_NODE_ID_SIZE) == 0;
}

int dkm_node_default_ek_type(struct dkm_tpm *tpm, enum dkm_ek_type *ret)
{
    TPMS_CAPABILITY_DATA *cap = NULL;
    TPMI_YES_NO more = TPM2_YES;
    uint32_t next = 0;
    bool p256 = false;
    TSS2_RC rc;
    int r = DKM_E_TPM;

    if (tpm == NULL || ret == NULL)
        return dkm_error_set(-EINVAL, "dkm_node_default_ek_type: missing argument");
    dkm_tpm_lock(tpm);
    /* The list is short; the bound only guards against a TPM that keeps
     * saying there is more. */
    for (int round = 0; more == TPM2_YES && !p256 && round < 16; round++) {
        const TPML_ECC_CURVE *curves;

        rc = Esys_GetCapability(dkm_tpm_esys(tpm), ESYS_TR_NONE, ESYS_TR_NONE,
                                ESYS_TR_NONE, TPM2_CAP_ECC_CURVES, next,
                                TPM2_MAX_ECC_CURVES, &more, &cap);
        DKM_TPM_CHECK(rc, "GetCapability(ECC curves)", r, done);
        if (cap->capability != TPM2_CAP_ECC_CURVES) {
            r = dkm_error_set(DKM_E_TPM,
                              "the TPM answered GetCapability(ECC curves) with "
                              "another capability");
            goto done;
        }
        curves = &cap->data.eccCurves;
        for (uint32_t i = 0; i < curves->count && i < TPM2_MAX_ECC_CURVES; i++) {
            if (curves->eccCurves[i] == TPM2_ECC_NIST_P256)
                p256 = true;
            next = (uint32_t)curves->eccCurves[i] + 1;
        }
        if (curves->count == 0)
            break;
        Esys_Free(cap);
        cap = NULL;
    }
    *ret = p256 ? DKM_EK_ECCP256 : DKM_EK_RSA2048;
    r = 0;
done:
    Esys_Free(cap);
    dkm_tpm_unlock(tpm);
    return r;
}

int dkm_node_read_ek(struct dkm_tpm *tpm, enum dkm_ek_type type, TPM2B_PUBLIC *ret_public,
                     struct dkm_node_id *ret_id)
{
    ESYS_TR ek = ESYS_TR_NONE;
    TPM2B_PUBLIC pub;
    struct dkm_node_id id;
    int r;

    if (tpm == NULL)
        return dkm_error_set(-EINVAL, "dkm_node_read_ek: no TPM");
    dkm_tpm_lock(tpm);
    r = dkm_tpm_ek_load(tpm, type, &ek, NULL, &pub);
    if (r < 0)
        goto done;
    r = dkm_node_id_from_public(&pub, &id);
    if (r < 0)
        goto done;
    if (ret_public != NULL)
        *ret_public = pub;
    if (ret_id != NULL)
        *ret_id = id;
    r = 0;
done:
    dkm_tpm_flush(tpm, &ek);
    dkm_tpm_unlock(tpm);
    return r;
}

int dkm_node_ek_cert_check(const uint8_t *der, size_t len)
{
    const unsigned char *p = der;
    X509 *x = NULL;
    int r = DKM_E_FORMAT;

    if (der == NULL || len == 0)
        return dkm_error_set(DKM_E_FORMAT, "EK certificate is empty");
    if (len > DKM_EK_CERT_MAX)
        return dkm_error_set(DKM_E_FORMAT, "EK certificate is %zu bytes, more than %u",
                             len, DKM_EK_CERT_MAX);
    x = d2i_X509(NULL, &p, (long)len);
    if (x == NULL) {
        ERR_clear_error();
        r = dkm_error_set(DKM_E_FORMAT, "EK certificate is not a DER X.509 certificate");
        goto done;
    }
    if ((size_t)(p - der) != len) {
        r = dkm_error_set(DKM_E_FORMAT,
                          "EK certificate has %zu bytes after the DER "
                          "structure",
                          len - (size_t)(p - der));
        goto done;
    }
    r = 0;
done:
    X509_free(x);
    return r;
}

/* Length of the DER element at the start of buf (tag, length, contents),
 * so NV padding after it can be dropped; 0 if the header is not valid. */
static size_t der_element_len(const uint8_t *buf, size_t n)
{
    size_t len = 0, hdr;

    if (n < 2 || buf[0] != 0x30)
        return 0;
    if (buf[1] < 0x80) {
        len = buf[1];
        hdr = 2;
    } else {
        size_t k = buf[1] & 0x7f;

        if (k == 0 || k > 3 || n < 2 + k)
            return 0;
        for (size_t i = 0; i < k; i++)
            len = (len << 8) | buf[2 + i];
        hdr = 2 + k;
    }
    if (len > n - hdr)
        return 0;
    return hdr + len;
}

static int nv_buffer_max(struct dkm_tpm *tpm, uint32_t *ret)
{
    TPMS_CAPABILITY_DATA *cap = NULL;
    TPMI_YES_NO more;
    TSS2_RC rc;
    int r = DKM_E_TPM;

    rc = Esys_GetCapability(dkm_tpm_esys(tpm), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                            TPM2_CAP_TPM_PROPERTIES, TPM2_PT_NV_BUFFER_MAX, 1, &more,
                            &cap);
    DKM_TPM_CHECK(rc, "GetCapability(TPM_PT_NV_BUFFER_MAX)", r, done);
    if (cap->data.tpmProperties.count < 1 ||
        cap->data.tpmProperties.tpmProperty[0].property != TPM2_PT_NV_BUFFER_MAX ||
        cap->data.tpmProperties.tpmProperty[0].value == 0) {
        /* Every TPM can read this much at once. */
        *ret = 512;
    } else {
        *ret = cap->data.tpmProperties.tpmProperty[0].value;
        if (*ret > TPM2_MAX_NV_BUFFER_SIZE)
            *ret = TPM2_MAX_NV_BUFFER_SIZE;
    }
    r = 0;
done:
    Esys_Free(cap);
    return r;
}

int dkm_node_read_ek_cert(struct dkm_tpm *tpm, enum dkm_ek_type type, uint8_t **ret,
                          size_t *ret_len)
{
    TPM2_HANDLE index = type == DKM_EK_RSA2048 ? DKM_EK_CERT_NV_RSA : DKM_EK_CERT_NV_ECC;
    ESYS_CONTEXT *esys;
    ESYS_TR nv = ESYS_TR_NONE, auth;
    TPM2B_NV_PUBLIC *nvpub = NULL;
    TPM2B_MAX_NV_BUFFER *data = NULL;
    uint8_t *buf = NULL;
    uint32_t size, chunk = 0, off = 0;
    size_t len;
    bool exists = false;
    TSS2_RC rc;
    int r = DKM_E_TPM;

    if (tpm == NULL || ret == NULL || ret_len == NULL)
        return dkm_error_set(-EINVAL, "dkm_node_read_ek_cert: missing argument");
    dkm_tpm_lock(tpm);
    esys = dkm_tpm_esys(tpm);
    r = dkm_tpm_handle_exists(tpm, index, &exists);
    if (r < 0)
        goto done;
    if (!exists) {
        log_debug("no %s EK certificate at NV index 0x%08x", dkm_ek_type_name(type),
                  (unsigned)index);
        *ret = NULL;
        *ret_len = 0;
        r = 0;
        goto done;
    }
    rc =
        Esys_TR_FromTPMPublic(esys, index, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &nv);
    if (rc != TSS2_RC_SUCCESS) {
        nv = ESYS_TR_NONE;
        r = dkm_tpm_rc(rc, "reading the EK certificate NV index");
        goto done;
    }
    rc = Esys_NV_ReadPublic(esys, nv, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &nvpub,
                            NULL);
    DKM_TPM_CHECK(rc, "NV_ReadPublic of the EK certificate index", r, done);
    size = nvpub->nvPublic.dataSize;
    if (size == 0 || size > DKM_EK_CERT_NV_MAX) {
        r = dkm_error_set(DKM_E_FORMAT, "EK certificate NV index 0x%08x holds %u bytes",
                          (unsigned)index, (unsigned)size);
        goto done;
    }
    if (nvpub->nvPublic.attributes & TPMA_NV_AUTHREAD) {
        auth = nv;
    } else if (nvpub->nvPublic.attributes & TPMA_NV_OWNERREAD) {
        auth = ESYS_TR_RH_OWNER;
    } else {
        r = dkm_error_set(DKM_E_TPM,
                          "EK certificate NV index 0x%08x is readable neither "
                          "with its own nor with owner authorization",
                          (unsigned)index);
        goto done;
    }
    r = nv_buffer_max(tpm, &chunk);
    if (r < 0)
        goto done;
    buf = malloc(size);
    if (buf == NULL) {
        r = dkm_error_set(-ENOMEM, "out of memory for the EK certificate");
        goto done;
    }
    while (off < size) {
        uint16_t n = (uint16_t)(size - off < chunk ? size - off : chunk);

        rc = Esys_NV_Read(esys, auth, nv, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, n,
                          (uint16_t)off, &data);
        DKM_TPM_CHECK(rc, "NV_Read of the EK certificate", r, done);
        if (data->size != n) {
            r = dkm_error_set(DKM_E_TPM, "NV_Read returned %u bytes, asked for %u",
                              (unsigned)data->size, (unsigned)n);
            goto done;
        }
        memcpy(buf + off, data->buffer, n);
        off += n;
        Esys_Free(data);
        data = NULL;
    }
    len = der_element_len(buf, size);
    if (len == 0) {
        r = dkm_error_set(DKM_E_FORMAT, "EK certificate at NV index 0x%08x is not DER",
                          (unsigned)index);
        goto done;
    }
    r = dkm_node_ek_cert_check(buf, len);
    if (r < 0)
        goto done;
    *ret = buf;
    *ret_len = len;
    buf = NULL;
    r = 0;
done:
    free(buf);
    Esys_Free(data);
    Esys_Free(nvpub);
    dkm_tpm_flush(tpm, &nv);
    dkm_tpm_unlock(tpm);
    return r;
}

static int rsa_pkey(const TPM2B_PUBLIC *ek, EVP_PKEY **ret)
{
    const TPM2B_PUBLIC_KEY_RSA *n = &ek->publicArea.unique.rsa;
    uint32_t exp = ek->publicArea.parameters.rsaDetail.exponent;
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *pkey = NULL;
    BIGNUM *bn_n = NULL, *bn_e = NULL;
    int r = DKM_E_CRYPTO;

    bn_n = BN_bin2bn(n->buffer, n->size, NULL);
    bn_e = BN_new();
    bld = OSSL_PARAM_BLD_new();
    if (bn_n == NULL || bn_e == NULL || bld == NULL ||
        BN_set_word(bn_e, exp == 0 ? 65537 : exp) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e) != 1 ||
        (params = OSSL_PARAM_BLD_to_param(bld)) == NULL ||
        (ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) == NULL ||
        EVP_PKEY_fromdata_init(ctx) != 1) {
        r = dkm_error_set(DKM_E_CRYPTO, "cannot build an RSA key from the EK");
        goto done;
    }
    if (EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1 ||
        !BN_is_odd(bn_n) || BN_num_bits(bn_n) != 2048) {
        ERR_clear_error();
        r = dkm_error_set(DKM_E_FORMAT, "EK public: the RSA modulus is not a valid "
                                        "2048-bit modulus");
        goto done;
    }
    *ret = pkey;
    pkey = NULL;
    r = 0;
done:
    EVP_PKEY_free(pkey);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn_n);
    BN_free(bn_e);
    return r;
}

static int ecc_pkey(const TPM2B_PUBLIC *ek, EVP_PKEY **ret)
{
    const TPMS_ECC_POINT *pt = &ek->publicArea.unique.ecc;
    uint8_t point[65];
    OSSL_PARAM params[3];
    EVP_PKEY_CTX *ctx = NULL, *check = NULL;
    EVP_PKEY *pkey = NULL;
    char group[] = "P-256";
    int r = DKM_E_CRYPTO;

    point[0] = 0x04;
    memcpy(point + 1, pt->x.buffer, 32);
    memcpy(point + 33, pt->y.buffer, 32);
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0);
    params[1] =
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point));
    params[2] = OSSL_PARAM_construct_end();
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1) {
        r = dkm_error_set(DKM_E_CRYPTO, "cannot build an EC key from the EK");
        goto done;
    }
    if (EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1 ||
        (check = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL)) == NULL ||
        EVP_PKEY_public_check(check) != 1) {
        ERR_clear_error();
        r = dkm_error_set(DKM_E_FORMAT, "EK public: the ECC point is not on NIST P-256");
        goto done;
    }
    *ret = pkey;
    pkey = NULL;
    r = 0;
done:
    EVP_PKEY_free(pkey);
    EVP_PKEY_CTX_free(check);
    EVP_PKEY_CTX_free(ctx);
    return r;
}

int dkm_node_ek_pkey(const TPM2B_PUBLIC *ek, EVP_PKEY **ret)
{
    enum dkm_ek_type type;
    int r;

    if (ek == NULL || ret == NULL)
        return dkm_error_set(-EINVAL, "dkm_node_ek_pkey: missing argument");
    r = dkm_tpm_ek_public_check(ek, &type);
    if (r < 0)
        return r;
    return type == DKM_EK_RSA2048 ? rsa_pkey(ek, ret) : ecc_pkey(ek, ret);
}

#define EK_FILE_VERSION 1

int dkm_node_ek_file_encode(enum dkm_ek_type type, const TPM2B_PUBLIC *pub, uint8_t *buf,
                            size_t cap, size_t *ret_len)
{
    uint8_t area[sizeof(TPMT_PUBLIC)];
    struct dkm_writer w = dkm_writer_init(buf, cap);
    enum dkm_ek_type found;
    size_t off = 0;

    if (pub == NULL || buf == NULL || ret_len == NULL ||
        dkm_tpm_ek_public_check(pub, &found) < 0 || found != type)
        return dkm_error_set(-EINVAL, "EK file: not a TCG default %s EK",
                             dkm_ek_type_name(type));
    if (Tss2_MU_TPMT_PUBLIC_Marshal(&pub->publicArea, area, sizeof(area), &off) !=
        TSS2_RC_SUCCESS)
        return dkm_error_set(-EINVAL, "EK file: the public area cannot be marshaled");
    (void)dkm_put_u32be(&w, DKM_NODE_EK_FILE_MAGIC);
    (void)dkm_put_u16be(&w, EK_FILE_VERSION);
    (void)dkm_put_u8(&w, type == DKM_EK_RSA2048 ? 1 : 2);
    (void)dkm_put_len16(&w, area, off);
    if (!dkm_writer_ok(&w))
        return dkm_error_set(-ENOBUFS, "EK file: does not fit in %zu bytes", cap);
    *ret_len = w.len;
    return 0;
}

int dkm_node_ek_file_decode(const uint8_t *buf, size_t len, enum dkm_ek_type *ret_type,
                            TPM2B_PUBLIC *ret)
{
    struct dkm_cursor c = dkm_cursor_init(buf, len);
    uint8_t again[sizeof(TPMT_PUBLIC)];
    const uint8_t *area;
    size_t n, off = 0, off2 = 0;
    enum dkm_ek_type type, found;
    TPM2B_PUBLIC pub;
    uint32_t magic;
    uint16_t version;
    uint8_t t;

    if (buf == NULL || ret_type == NULL || ret == NULL)
        return dkm_error_set(-EINVAL, "EK file: missing argument");
    if (len > DKM_NODE_EK_FILE_MAX || !dkm_get_u32be(&c, &magic) ||
        magic != DKM_NODE_EK_FILE_MAGIC || !dkm_get_u16be(&c, &version) ||
        version != EK_FILE_VERSION || !dkm_get_u8(&c, &t) || (t != 1 && t != 2) ||
        !dkm_get_len16_ref(&c, sizeof(TPMT_PUBLIC), &area, &n) || !dkm_cursor_empty(&c))
        return dkm_error_set(DKM_E_FORMAT, "EK file: not a valid file (magic, version, "
                                           "type, length)");
    type = t == 1 ? DKM_EK_RSA2048 : DKM_EK_ECCP256;
    memset(&pub, 0, sizeof(pub));
    if (Tss2_MU_TPMT_PUBLIC_Unmarshal(area, n, &off, &pub.publicArea) !=
            TSS2_RC_SUCCESS ||
        off != n ||
        Tss2_MU_TPMT_PUBLIC_Marshal(&pub.publicArea, again, sizeof(again), &off2) !=
            TSS2_RC_SUCCESS ||
        off2 != n || memcmp(again, area, n) != 0)
        return dkm_error_set(DKM_E_FORMAT, "EK file: the public area is not canonically "
                                           "encoded");
    if (dkm_tpm_ek_public_check(&pub, &found) < 0 || found != type)
        return dkm_error_set(DKM_E_FORMAT, "EK file: not a TCG default %s EK",
                             dkm_ek_type_name(type));
    pub.size = (UINT16)n;
    *ret_type = type;
    *ret = pub;
    return 0;
}
