/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Server signatures: the TPM-resident signing key and its file, the
 * delegated software key, the delegation record, and software
 * verification of the chain SK -> delegation -> response.
 */
#include "dkm/trust/sign.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <tss2/tss2_rc.h>

#include "dkm/base/codec.h"
#include "dkm/base/log.h"

#define SECURE_HEAP_SIZE (64u * 1024u)
#define SECURE_HEAP_MINSIZE 32

struct dkm_signkey {
    struct dkm_tpm *tpm; /* borrowed */
    struct dkm_tpm_object obj;
    struct dkm_p256_public pub;
};

struct dkm_delegated_key {
    EVP_PKEY *key;
    bool secure;
    uint8_t record[DKM_DELEGATION_SIZE];
    struct dkm_delegation info;
};

/* ECC P-256 ECDSA-SHA256 signing key, unrestricted, bound to this TPM. */
static void signkey_template(TPM2B_PUBLIC *t)
{
    memset(t, 0, sizeof(*t));
    t->publicArea.type = TPM2_ALG_ECC;
    t->publicArea.nameAlg = TPM2_ALG_SHA256;
    t->publicArea.objectAttributes =
        TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
        TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_NODA | TPMA_OBJECT_SIGN_ENCRYPT;
    t->publicArea.parameters.eccDetail.symmetric.algorithm = TPM2_ALG_NULL;
    t->publicArea.parameters.eccDetail.scheme.scheme = TPM2_ALG_ECDSA;
    t->publicArea.parameters.eccDetail.scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
    t->publicArea.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
    t->publicArea.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
}

/* The public area of an SK file must be exactly the template's, with a
 * 32-byte point. */
static int signkey_public_check(const TPM2B_PUBLIC *pub, struct dkm_p256_public *ret)
{
    TPM2B_PUBLIC t;
    const TPMT_PUBLIC *a = &t.publicArea, *b = &pub->publicArea;
    const TPMS_ECC_PARMS *ea = &a->parameters.eccDetail, *eb = &b->parameters.eccDetail;
    const TPMS_ECC_POINT *pt = &b->unique.ecc;
    struct dkm_p256_public p;

    signkey_template(&t);
    if (b->type != a->type || b->nameAlg != a->nameAlg ||
        b->objectAttributes != a->objectAttributes || b->authPolicy.size != 0 ||
        eb->symmetric.algorithm != ea->symmetric.algorithm ||
        eb->scheme.scheme != ea->scheme.scheme ||
        eb->scheme.details.ecdsa.hashAlg != ea->scheme.details.ecdsa.hashAlg ||
        eb->curveID != ea->curveID || eb->kdf.scheme != ea->kdf.scheme)
        return dkm_error_set(DKM_E_FORMAT,
                             "signing key: the public area is not a dkm "
                             "signing key (ECC P-256, ECDSA-SHA256, sign only, "
                             "fixedTPM)");
    if (pt->x.size != 32 || pt->y.size != 32)
        return dkm_error_set(DKM_E_FORMAT,
                             "signing key: point coordinates are not 32 bytes");
    p.point[0] = 0x04;
    memcpy(p.point + 1, pt->x.buffer, 32);
    memcpy(p.point + 33, pt->y.buffer, 32);
    if (dkm_p256_public_check(&p) < 0)
        return dkm_error_set(DKM_E_FORMAT, "signing key: the point is not on P-256");
    *ret = p;
    return 0;
}

/* A context is 1..DKM_SIGCTX_MAX printable ASCII characters. */
static int context_check(const char *context)
{
    size_t n;

    if (context == NULL)
        return dkm_error_set(-EINVAL, "no signature context");
    n = strnlen(context, DKM_SIGCTX_MAX + 1);
    if (n == 0 || n > DKM_SIGCTX_MAX)
        return dkm_error_set(-EINVAL, "signature context must be 1..%d characters",
                             DKM_SIGCTX_MAX);
    for (size_t i = 0; i < n; i++)
        if (context[i] < 0x20 || context[i] > 0x7e)
            return dkm_error_set(-EINVAL, "signature context is not printable ASCII");
    return 0;
}

int dkm_sig_digest(const char *context, const void *msg, size_t len, uint8_t ret[32])
{
    static const uint8_t zero = 0;
    EVP_MD_CTX *md = NULL;
    unsigned int n = 0;
    int r;

    if (ret == NULL || (msg == NULL && len > 0))
        return dkm_error_set(-EINVAL, "dkm_sig_digest: missing argument");
    r = context_check(context);
    if (r < 0)
        return r;
    md = EVP_MD_CTX_new();
    if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(md, context, strlen(context)) != 1 ||
        EVP_DigestUpdate(md, &zero, 1) != 1 ||
        (len > 0 && EVP_DigestUpdate(md, msg, len) != 1) ||
        EVP_DigestFinal_ex(md, ret, &n) != 1 || n != 32) {
        r = dkm_error_set(DKM_E_CRYPTO, "SHA-256 failed");
        goto done;
    }
    r = 0;
done:
    EVP_MD_CTX_free(md);
    return r;
}

static int p256_pkey(const struct dkm_p256_public *pub, EVP_PKEY **ret)
{
    OSSL_PARAM params[3];
    EVP_PKEY_CTX *ctx = NULL, *check = NULL;
    EVP_PKEY *pkey = NULL;
    char group[] = "P-256";
    uint8_t point[DKM_P256_PUBLIC_SIZE];
    int r = DKM_E_FORMAT;

    if (pub->point[0] != 0x04)
        return dkm_error_set(DKM_E_FORMAT, "public key is not an uncompressed point");
    memcpy(point, pub->point, sizeof(point));
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0);
    params[1] =
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point));
    params[2] = OSSL_PARAM_construct_end();
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1) {
        r = dkm_error_set(DKM_E_CRYPTO, "cannot set up an EC key");
        goto done;
    }
    if (EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1 ||
        (check = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL)) == NULL ||
        EVP_PKEY_public_check(check) != 1) {
        r = dkm_error_set(DKM_E_FORMAT, "public key is not a point on P-256");
        goto done;
    }
    *ret = pkey;
    pkey = NULL;
    r = 0;
done:
    if (r < 0)
        ERR_clear_error();
    EVP_PKEY_free(pkey);
    EVP_PKEY_CTX_free(check);
    EVP_PKEY_CTX_free(ctx);
    return r;
}

int dkm_p256_public_check(const struct dkm_p256_public *pub)
{
    EVP_PKEY *pkey = NULL;
    int r;

    if (pub == NULL)
        return dkm_error_set(-EINVAL, "no public key");
    r = p256_pkey(pub, &pkey);
    EVP_PKEY_free(pkey);
    return r;
}

/* Software ECDSA verification of a raw r || s signature over a digest. */
static int verify_digest(EVP_PKEY *pkey, const uint8_t digest[32],
                         const uint8_t sig[DKM_SIG_SIZE])
{
    ECDSA_SIG *es = NULL;
    BIGNUM *br = NULL, *bs = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    unsigned char *der = NULL;
    int der_len, r = DKM_E_SIGNATURE;

    es = ECDSA_SIG_new();
    br = BN_bin2bn(sig, 32, NULL);
    bs = BN_bin2bn(sig + 32, 32, NULL);
    if (es == NULL || br == NULL || bs == NULL || ECDSA_SIG_set0(es, br, bs) != 1) {
        r = dkm_error_set(DKM_E_CRYPTO, "cannot build an ECDSA signature");
        goto done;
    }
    br = bs = NULL; /* owned by es now */
    der_len = i2d_ECDSA_SIG(es, &der);
    ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    if (der_len <= 0 || ctx == NULL || EVP_PKEY_verify_init(ctx) != 1 ||
        EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) != 1) {
        r = dkm_error_set(DKM_E_CRYPTO, "cannot set up ECDSA verification");
        goto done;
    }
    if (EVP_PKEY_verify(ctx, der, (size_t)der_len, digest, 32) != 1) {
        r = dkm_error_set(DKM_E_SIGNATURE, "ECDSA signature does not verify");
        goto done;
    }
    r = 0;
done:
    if (r < 0)
        ERR_clear_error();
    OPENSSL_free(der);
    EVP_PKEY_CTX_free(ctx);
    ECDSA_SIG_free(es);
    BN_free(br);
    BN_free(bs);
    return r;
}

int dkm_sig_verify(const struct dkm_p256_public *pub, const char *context,
                   const void *msg, size_t len, const uint8_t sig[DKM_SIG_SIZE])
{
    uint8_t digest[32];
    EVP_PKEY *pkey = NULL;
    int r;

    if (pub == NULL || sig == NULL)
        return dkm_error_set(-EINVAL, "dkm_sig_verify: missing argument");
    r = dkm_sig_digest(context, msg, len, digest);
    if (r < 0)
        return r;
    r = p256_pkey(pub, &pkey);
    if (r < 0)
        return r;
    r = verify_digest(pkey, digest, sig);
    EVP_PKEY_free(pkey);
    return r;
}

int dkm_signkey_create(struct dkm_tpm *tpm, const char *path, bool overwrite,
                       struct dkm_signkey **ret)
{
    struct dkm_signkey *sk = NULL;
    TPM2B_PUBLIC tmpl;
    int r = -ENOMEM;

    if (tpm == NULL || path == NULL || ret == NULL)
        return dkm_error_set(-EINVAL, "dkm_signkey_create: missing argument");
    if (!overwrite && access(path, F_OK) == 0)
        return dkm_error_set(-EEXIST, "%s exists; not replacing a signing key", path);
    sk = calloc(1, sizeof(*sk));
    if (sk == NULL)
        return dkm_error_set(-ENOMEM, "out of memory for a signing key");
    sk->tpm = tpm;
    signkey_template(&tmpl);
    r = dkm_tpm_object_create(tpm, &tmpl, NULL, &sk->obj);
    if (r < 0)
        goto done;
    r = signkey_public_check(&sk->obj.pub, &sk->pub);
    if (r < 0)
        goto done;
    r = dkm_tpm_object_write(path, DKM_SIGNKEY_MAGIC, &sk->obj, overwrite);
    if (r < 0)
        goto done;
    log_info("created a server signing key in %s", path);
    *ret = sk;
    sk = NULL;
    r = 0;
done:
    dkm_signkey_free(sk);
    return r;
}

int dkm_signkey_load(struct dkm_tpm *tpm, const char *path, struct dkm_signkey **ret)
{
    struct dkm_signkey *sk = NULL;
    int r = -ENOMEM;

    if (tpm == NULL || path == NULL || ret == NULL)
        return dkm_error_set(-EINVAL, "dkm_signkey_load: missing argument");
    sk = calloc(1, sizeof(*sk));
    if (sk == NULL)
        return dkm_error_set(-ENOMEM, "out of memory for a signing key");
    sk->tpm = tpm;
    r = dkm_tpm_object_read(path, DKM_SIGNKEY_MAGIC, "signing key file", &sk->obj);
    if (r < 0)
        goto done;
    r = signkey_public_check(&sk->obj.pub, &sk->pub);
    if (r < 0)
        goto done;
    *ret = sk;
    sk = NULL;
    r = 0;
done:
    dkm_signkey_free(sk);
    return r;
}

void dkm_signkey_free(struct dkm_signkey *sk)
{
    free(sk);
}

void dkm_signkey_public(const struct dkm_signkey *sk, struct dkm_p256_public *ret)
{
    *ret = sk->pub;
}

const TPM2B_PUBLIC *dkm_signkey_tpm_public(const struct dkm_signkey *sk)
{
    return &sk->obj.pub;
}

/* Have the TPM sign a digest: load, sign, flush. */
static int signkey_sign_digest(struct dkm_signkey *sk, const uint8_t digest[32],
                               uint8_t ret_sig[DKM_SIG_SIZE])
{
    TPM2B_DIGEST d = {.size = 32};
    TPMT_SIG_SCHEME scheme = {.scheme = TPM2_ALG_ECDSA,
                              .details = {.ecdsa = {.hashAlg = TPM2_ALG_SHA256}}};
    TPMT_TK_HASHCHECK check = {.tag = TPM2_ST_HASHCHECK, .hierarchy = TPM2_RH_NULL};
    TPMT_SIGNATURE *sig = NULL;
    ESYS_TR key = ESYS_TR_NONE;
    const TPMS_SIGNATURE_ECC *e;
    TSS2_RC rc;
    int r = DKM_E_TPM;

    memcpy(d.buffer, digest, 32);
    dkm_tpm_lock(sk->tpm);
    r = dkm_tpm_object_load(sk->tpm, &sk->obj, &key);
    if (r < 0)
        goto done;
    rc = Esys_Sign(dkm_tpm_esys(sk->tpm), key, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                   ESYS_TR_NONE, &d, &scheme, &check, &sig);
    DKM_TPM_CHECK(rc, "Sign with the server signing key", r, done);
    e = &sig->signature.ecdsa;
    if (sig->sigAlg != TPM2_ALG_ECDSA || e->signatureR.size == 0 ||
        e->signatureR.size > 32 || e->signatureS.size == 0 || e->signatureS.size > 32) {
        r = dkm_error_set(DKM_E_TPM, "the TPM returned a malformed ECDSA signature");
        goto done;
    }
    /* TPMs may drop leading zero bytes; the wire format is fixed-size. */
    memset(ret_sig, 0, DKM_SIG_SIZE);
    memcpy(ret_sig + 32 - e->signatureR.size, e->signatureR.buffer, e->signatureR.size);
    memcpy(ret_sig + 64 - e->signatureS.size, e->signatureS.buffer, e->signatureS.size);
    r = 0;
done:
    dkm_tpm_flush(sk->tpm, &key);
    dkm_tpm_unlock(sk->tpm);
    Esys_Free(sig);
    return r;
}

int dkm_signkey_sign(struct dkm_signkey *sk, const char *context, const void *msg,
                     size_t len, uint8_t ret_sig[DKM_SIG_SIZE])
{
    uint8_t digest[32];
    int r;

    if (sk == NULL || ret_sig == NULL)
        return dkm_error_set(-EINVAL, "dkm_signkey_sign: missing argument");
    if (context != NULL && strcmp(context, DKM_SIGCTX_DELEGATION) == 0)
        return dkm_error_set(-EINVAL, "the delegation context is reserved for "
                                      "dkm_delegation_create");
    r = dkm_sig_digest(context, msg, len, digest);
    if (r < 0)
        return r;
    return signkey_sign_digest(sk, digest, ret_sig);
}

int dkm_sign_secure_heap_init(void)
{
    if (CRYPTO_secure_malloc_initialized())
        return 0;
    /* 1 = initialised with everything locked; 2 = mlock failed. */
    if (CRYPTO_secure_malloc_init(SECURE_HEAP_SIZE, SECURE_HEAP_MINSIZE) != 1) {
        if (CRYPTO_secure_malloc_initialized())
            (void)CRYPTO_secure_malloc_done();
        return dkm_error_set(DKM_E_MEMLOCK,
                             "cannot set up OpenSSL's secure heap of %u "
                             "bytes (RLIMIT_MEMLOCK?)",
                             SECURE_HEAP_SIZE);
    }
    return 0;
}

static void delegation_body(const struct dkm_delegation *d, struct dkm_writer *w)
{
    dkm_put_u32be(w, DKM_DELEGATION_MAGIC);
    dkm_put_u16be(w, DKM_DELEGATION_VERSION);
    dkm_put_bytes(w, d->key.point, DKM_P256_PUBLIC_SIZE);
    dkm_put_u64be(w, d->not_before);
    dkm_put_u64be(w, d->not_after);
    dkm_put_bytes(w, d->server_id.bytes, DKM_NODE_ID_SIZE);
}

static int window_check(uint64_t not_before, uint64_t not_after)
{
    if (not_after <= not_before)
        return dkm_error_set(DKM_E_FORMAT,
                             "delegation window is empty (not-after %llu <= "
                             "not-before %llu)",
                             (unsigned long long)not_after,
                             (unsigned long long)not_before);
    if (not_after - not_before > DKM_DELEGATION_MAX_LIFETIME)
        return dkm_error_set(
            DKM_E_FORMAT, "delegation window of %llu s is longer than %u s",
            (unsigned long long)(not_after - not_before), DKM_DELEGATION_MAX_LIFETIME);
    return 0;
}

static int public_of(EVP_PKEY *key, struct dkm_p256_public *ret)
{
    size_t n = 0;

    if (EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, ret->point,
                                        sizeof(ret->point), &n) != 1 ||
        n != DKM_P256_PUBLIC_SIZE || ret->point[0] != 0x04) {
        ERR_clear_error();
        return dkm_error_set(DKM_E_CRYPTO, "cannot get the delegated public key");
    }
    return 0;
}

int dkm_delegation_create(struct dkm_signkey *sk, const struct dkm_node_id *server_id,
                          uint64_t not_before, uint64_t not_after,
                          struct dkm_delegated_key **ret)
{
    struct dkm_delegated_key *dk = NULL;
    struct dkm_writer w;
    uint8_t digest[32];
    size_t secure_before;
    bool heap;
    int r = -ENOMEM;

    if (sk == NULL || server_id == NULL || ret == NULL)
        return dkm_error_set(-EINVAL, "dkm_delegation_create: missing argument");
    r = window_check(not_before, not_after);
    if (r < 0)
        return -EINVAL; /* with window_check's detail */
    dk = calloc(1, sizeof(*dk));
    if (dk == NULL)
        return dkm_error_set(-ENOMEM, "out of memory for a delegated key");
    /* OpenSSL 3.0's CRYPTO_secure_used crashes without a secure heap. */
    heap = CRYPTO_secure_malloc_initialized() != 0;
    secure_before = heap ? CRYPTO_secure_used() : 0;
    dk->key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (dk->key == NULL) {
        ERR_clear_error();
        r = dkm_error_set(DKM_E_CRYPTO, "cannot generate the delegated P-256 key");
        goto done;
    }
    /* OpenSSL allocates EC private scalars with BN_secure_new, which
     * uses the secure heap when there is one. */
    dk->secure = heap && CRYPTO_secure_used() > secure_before;
    if (!dk->secure)
        log_warning("the delegated signing key is in ordinary heap memory (no OpenSSL "
                    "secure heap)");
    r = public_of(dk->key, &dk->info.key);
    if (r < 0)
        goto done;
    dk->info.not_before = not_before;
    dk->info.not_after = not_after;
    dk->info.server_id = *server_id;
    w = dkm_writer_init(dk->record, sizeof(dk->record));
    delegation_body(&dk->info, &w);
    if (!dkm_writer_ok(&w) || w.len != DKM_DELEGATION_SIZE - DKM_SIG_SIZE) {
        r = dkm_error_set(DKM_E_FORMAT, "delegation record has the wrong size");
        goto done;
    }
    r = dkm_sig_digest(DKM_SIGCTX_DELEGATION, dk->record, w.len, digest);
    if (r < 0)
        goto done;
    r = signkey_sign_digest(sk, digest, dk->record + w.len);
    if (r < 0)
        goto done;
    *ret = dk;
    dk = NULL;
    r = 0;
done:
    dkm_delegated_key_free(dk);
    return r;
}

void dkm_delegated_key_free(struct dkm_delegated_key *dk)
{
    if (dk == NULL)
        return;
    /* EVP_PKEY_free clears the private scalar (BN_clear_free). */
    EVP_PKEY_free(dk->key);
    free(dk);
}

const uint8_t *dkm_delegated_key_record(const struct dkm_delegated_key *dk)
{
    return dk->record;
}

const struct dkm_delegation *dkm_delegated_key_info(const struct dkm_delegated_key *dk)
{
    return &dk->info;
}

bool dkm_delegated_key_secure(const struct dkm_delegated_key *dk)
{
    return dk->secure;
}

int dkm_delegated_sign(struct dkm_delegated_key *dk, const char *context, const void *msg,
                       size_t len, uint8_t ret_sig[DKM_SIG_SIZE])
{
    uint8_t digest[32];
    unsigned char der[80];
    size_t der_len = sizeof(der);
    const unsigned char *p = der;
    EVP_PKEY_CTX *ctx = NULL;
    ECDSA_SIG *es = NULL;
    const BIGNUM *br, *bs;
    int r;

    if (dk == NULL || ret_sig == NULL)
        return dkm_error_set(-EINVAL, "dkm_delegated_sign: missing argument");
    if (context != NULL && strcmp(context, DKM_SIGCTX_DELEGATION) == 0)
        return dkm_error_set(-EINVAL, "a delegated key cannot sign delegations");
    r = dkm_sig_digest(context, msg, len, digest);
    if (r < 0)
        return r;
    ctx = EVP_PKEY_CTX_new_from_pkey(NULL, dk->key, NULL);
    if (ctx == NULL || EVP_PKEY_sign_init(ctx) != 1 ||
        EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()) != 1 ||
        EVP_PKEY_sign(ctx, der, &der_len, digest, sizeof(digest)) != 1 ||
        (es = d2i_ECDSA_SIG(NULL, &p, (long)der_len)) == NULL) {
        ERR_clear_error();
        r = dkm_error_set(DKM_E_CRYPTO, "ECDSA signing with the delegated key failed");
        goto done;
    }
    ECDSA_SIG_get0(es, &br, &bs);
    if (BN_bn2binpad(br, ret_sig, 32) != 32 || BN_bn2binpad(bs, ret_sig + 32, 32) != 32) {
        r = dkm_error_set(DKM_E_CRYPTO, "ECDSA signature does not fit 64 bytes");
        goto done;
    }
    r = 0;
done:
    ECDSA_SIG_free(es);
    EVP_PKEY_CTX_free(ctx);
    return r;
}

int dkm_delegation_decode(const uint8_t *buf, size_t len, struct dkm_delegation *ret)
{
    struct dkm_cursor c = dkm_cursor_init(buf, len);
    struct dkm_delegation d;
    uint32_t magic;
    uint16_t version;
    int r;

    if (buf == NULL || ret == NULL)
        return dkm_error_set(-EINVAL, "dkm_delegation_decode: missing argument");
    if (len != DKM_DELEGATION_SIZE)
        return dkm_error_set(DKM_E_FORMAT, "delegation is %zu bytes, not %u", len,
                             (unsigned)DKM_DELEGATION_SIZE);
    if (!dkm_get_u32be(&c, &magic) || magic != DKM_DELEGATION_MAGIC)
        return dkm_error_set(DKM_E_FORMAT, "not a delegation (bad magic)");
    if (!dkm_get_u16be(&c, &version) || version != DKM_DELEGATION_VERSION)
        return dkm_error_set(DKM_E_FORMAT, "delegation: unknown version %u",
                             (unsigned)version);
    if (!dkm_get_bytes(&c, d.key.point, DKM_P256_PUBLIC_SIZE) ||
        !dkm_get_u64be(&c, &d.not_before) || !dkm_get_u64be(&c, &d.not_after) ||
        !dkm_get_bytes(&c, d.server_id.bytes, DKM_NODE_ID_SIZE) ||
        !dkm_skip(&c, DKM_SIG_SIZE) || !dkm_cursor_empty(&c))
        return dkm_error_set(DKM_E_FORMAT, "delegation: truncated");
    r = dkm_p256_public_check(&d.key);
    if (r < 0)
        return dkm_error_set(DKM_E_FORMAT, "delegation: the delegated key is not an "
                                           "uncompressed P-256 point");
    r = window_check(d.not_before, d.not_after);
    if (r < 0)
        return r;
    if (d.server_id.bytes[0] != 0x00 || d.server_id.bytes[1] != 0x0b)
        return dkm_error_set(DKM_E_FORMAT,
                             "delegation: the server id is not a SHA-256 name");
    *ret = d;
    return 0;
}

int dkm_delegation_verify(const struct dkm_p256_public *server_sk,
                          const struct dkm_node_id *server_id, const uint8_t *buf,
                          size_t len, uint64_t now, struct dkm_delegation *ret)
{
    struct dkm_delegation d;
    char want[DKM_NODE_ID_HEX_SIZE], got[DKM_NODE_ID_HEX_SIZE];
    size_t body = DKM_DELEGATION_SIZE - DKM_SIG_SIZE;
    int r;

    if (server_sk == NULL || server_id == NULL || buf == NULL)
        return dkm_error_set(-EINVAL, "dkm_delegation_verify: missing argument");
    r = dkm_delegation_decode(buf, len, &d);
    if (r < 0)
        return r;
    r = dkm_sig_verify(server_sk, DKM_SIGCTX_DELEGATION, buf, body, buf + body);
    if (r == DKM_E_SIGNATURE)
        return dkm_error_set(DKM_E_SIGNATURE, "delegation is not signed by the server's "
                                              "signing key");
    if (r < 0)
        return r;
    if (!dkm_node_id_equal(&d.server_id, server_id)) {
        dkm_node_id_hex(server_id, want);
        dkm_node_id_hex(&d.server_id, got);
        return dkm_error_set(DKM_E_SIGNATURE, "delegation names server %s, expected %s",
                             got, want);
    }
    if (now < d.not_before)
        return dkm_error_set(DKM_E_EXPIRED,
                             "delegation is not valid yet (from %llu, now "
                             "%llu)",
                             (unsigned long long)d.not_before, (unsigned long long)now);
    if (now >= d.not_after)
        return dkm_error_set(DKM_E_EXPIRED, "delegation expired at %llu (now %llu)",
                             (unsigned long long)d.not_after, (unsigned long long)now);
    if (ret != NULL)
        *ret = d;
    return 0;
}

int dkm_response_verify(const struct dkm_p256_public *server_sk,
                        const struct dkm_node_id *server_id, const uint8_t *delegation,
                        size_t delegation_len, uint64_t now, const char *context,
                        const void *msg, size_t len, const uint8_t sig[DKM_SIG_SIZE])
{
    struct dkm_delegation d;
    int r;

    if (sig == NULL)
        return dkm_error_set(-EINVAL, "dkm_response_verify: no signature");
    if (context != NULL && strcmp(context, DKM_SIGCTX_DELEGATION) == 0)
        return dkm_error_set(-EINVAL, "a response cannot use the delegation context");
    r = dkm_delegation_verify(server_sk, server_id, delegation, delegation_len, now, &d);
    if (r < 0)
        return r;
    r = dkm_sig_verify(&d.key, context, msg, len, sig);
    if (r == DKM_E_SIGNATURE)
        return dkm_error_set(DKM_E_SIGNATURE,
                             "response is not signed by the delegated key");
    return r;
}
