/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Cipher DKM-AES-256-GCM for `openssl enc`: the "key" is a dkm: URI
 * NUL-padded to 64 bytes (dkm_uri_to_key), the IV length is 0, and the
 * data is a stream in the format of include/dkm/data/stream.h. The block size
 * reported to EVP is 32: in OpenSSL 3.0 EVP passes a provider cipher an
 * output allowance of inl + block size per update and block size per
 * final (no allowance at all for block size 1), and 32 is the most
 * BIO_f_cipher's buffer takes. The stream state machine never writes past
 * the outsize it is given.
 */
#include <errno.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/opensslv.h>

#include "dkm/data/stream.h"
#include "dkm/base/uri.h"
#include "keyobj.h"
#include "provider.h"

static OSSL_FUNC_cipher_newctx_fn dkm_cipher_newctx;
static OSSL_FUNC_cipher_freectx_fn dkm_cipher_freectx;
static OSSL_FUNC_cipher_encrypt_init_fn dkm_cipher_encrypt_init;
static OSSL_FUNC_cipher_decrypt_init_fn dkm_cipher_decrypt_init;
static OSSL_FUNC_cipher_update_fn dkm_cipher_update;
static OSSL_FUNC_cipher_final_fn dkm_cipher_final;
static OSSL_FUNC_cipher_get_params_fn dkm_cipher_get_params;
static OSSL_FUNC_cipher_gettable_params_fn dkm_cipher_gettable_params;
static OSSL_FUNC_cipher_get_ctx_params_fn dkm_cipher_get_ctx_params;
static OSSL_FUNC_cipher_gettable_ctx_params_fn dkm_cipher_gettable_ctx_params;
static OSSL_FUNC_cipher_set_ctx_params_fn dkm_cipher_set_ctx_params;
static OSSL_FUNC_cipher_settable_ctx_params_fn dkm_cipher_settable_ctx_params;

struct dkm_cipher_ctx {
    struct dkm_prov_ctx *prov;
    bool encrypt;
    bool have_uri;
    bool raised; /* the key callback raised its own error */
    struct dkm_uri uri;
    struct dkm_stream *stream;
};

static void *dkm_cipher_newctx(void *provctx)
{
    struct dkm_prov_ctx *prov = provctx;
    struct dkm_cipher_ctx *ctx = OPENSSL_zalloc(sizeof(*ctx));

    if (ctx == NULL) {
        DKM_RAISE(prov, DKM_R_MALLOC, "out of memory for a %s context", DKM_ALG_STREAM);
        return NULL;
    }
    ctx->prov = prov;
    return ctx;
}

static void dkm_cipher_freectx(void *vctx)
{
    struct dkm_cipher_ctx *ctx = vctx;

    if (ctx == NULL)
        return;
    dkm_stream_free(ctx->stream);
    OPENSSL_clear_free(ctx, sizeof(*ctx));
}

/* Stream errors, with the reasons that say most about streams. */
static int raise_stream(struct dkm_cipher_ctx *ctx, int r)
{
    const char *detail = dkm_error_detail();

    if (ctx->raised) {
        ctx->raised = false;
        dkm_error_clear();
        return 0;
    }
    if (r == DKM_E_DENIED || r == DKM_E_FORMAT) {
        DKM_RAISE(ctx->prov, r == DKM_E_DENIED ? DKM_R_WRONG_GROUP : DKM_R_BAD_STREAM,
                  "%s", detail);
        dkm_error_clear();
        return 0;
    }
    return DKM_RAISE_CODE(ctx->prov, r);
}

/* The decryptor's key callback: the version comes from the stream header. */
static int stream_key(void *arg, uint32_t version, uint8_t *out)
{
    struct dkm_cipher_ctx *ctx = arg;
    struct dkm_key *key = NULL;
    int r;

    if (ctx->uri.version != DKM_VERSION_CURRENT && ctx->uri.version != version) {
        DKM_RAISE(ctx->prov, DKM_R_VERSION_MISMATCH,
                  "stream was made with version %u, the key is dkm:%s/%u (use dkm:%s for "
                  "any valid version)",
                  version, ctx->uri.group, ctx->uri.version, ctx->uri.group);
        ctx->raised = true;
        return -EINVAL;
    }
    r = dkm_keycache_get(ctx->prov->cache, ctx->uri.group, version, &key);
    if (r < 0)
        return r;
    memcpy(out, key->bytes, DKM_KEY_LEN);
    dkm_key_unref(key);
    return 0;
}

static int start_stream(struct dkm_cipher_ctx *ctx)
{
    struct dkm_key *key = NULL;
    int r;

    dkm_stream_free(ctx->stream);
    ctx->stream = NULL;
    if (!ctx->encrypt) {
        r = dkm_stream_decrypt_new(ctx->prov->libctx, ctx->uri.group,
                                   DKM_STREAM_SEG_LOG2_DEFAULT, stream_key, ctx,
                                   &ctx->stream);
        return r < 0 ? DKM_RAISE_CODE(ctx->prov, r) : 1;
    }
    r = dkm_keycache_get(ctx->prov->cache, ctx->uri.group, ctx->uri.version, &key);
    if (r < 0)
        return DKM_RAISE_CODE(ctx->prov, r);
    r = dkm_stream_encrypt_new(ctx->prov->libctx, ctx->uri.group, key->info.version,
                               key->bytes, DKM_STREAM_SEG_LOG2_DEFAULT, &ctx->stream);
    dkm_key_unref(key);
    return r < 0 ? DKM_RAISE_CODE(ctx->prov, r) : 1;
}

static int cipher_init(struct dkm_cipher_ctx *ctx, const unsigned char *key,
                       size_t keylen, const unsigned char *iv, size_t ivlen,
                       const OSSL_PARAM params[], bool encrypt)
{
    int r;

    (void)iv;
    ctx->encrypt = encrypt;
    if (ivlen != 0) {
        DKM_RAISE(ctx->prov, DKM_R_BAD_PARAM,
                  "%s takes no IV (the stream carries its own "
                  "nonces)",
                  DKM_ALG_STREAM);
        return 0;
    }
    if (!dkm_cipher_set_ctx_params(ctx, params))
        return 0;
    if (key != NULL) {
        r = dkm_uri_from_key(key, keylen, &ctx->uri);
        if (r < 0) {
            DKM_RAISE(ctx->prov, DKM_R_BAD_CIPHER_KEY,
                      "%s: the key must be a dkm: URI NUL-padded to %d bytes (see dkmctl "
                      "uri-hex): %s",
                      DKM_ALG_STREAM, DKM_URI_KEY_LEN, dkm_error_detail());
            dkm_error_clear();
            ctx->have_uri = false;
            return 0;
        }
        ctx->have_uri = true;
    }
    if (!ctx->have_uri)
        return 1; /* direction only; the key comes in a later init */
    return start_stream(ctx);
}

#if OPENSSL_VERSION_NUMBER >= 0x30500000L
/*
 * OpenSSL 3.5+: the key is an EVP_SKEY of this provider's DKM key manager
 * (EVP_CipherInit_SKEY refuses a key from another provider, so skeydata is
 * always ours). Without these two entries EVP would fall back to the raw
 * bytes of the key, which the key manager never gives out.
 */
static OSSL_FUNC_cipher_encrypt_skey_init_fn dkm_cipher_encrypt_skey_init;
static OSSL_FUNC_cipher_decrypt_skey_init_fn dkm_cipher_decrypt_skey_init;

static int skey_init(struct dkm_cipher_ctx *ctx, void *skeydata, size_t ivlen,
                     const OSSL_PARAM params[], bool encrypt)
{
    const struct dkm_uri *uri;

    /* No key: direction, IV or parameters only, as with init(key = NULL). */
    if (skeydata == NULL)
        return cipher_init(ctx, NULL, 0, NULL, ivlen, params, encrypt);
    uri = dkm_skey_uri(skeydata);
    if (uri == NULL) {
        DKM_RAISE(ctx->prov, DKM_R_BAD_CIPHER_KEY, "%s needs a key of the %s key manager",
                  DKM_ALG_STREAM, DKM_ALG_KEY);
        return 0;
    }
    ctx->uri = *uri;
    ctx->have_uri = true;
    return cipher_init(ctx, NULL, 0, NULL, ivlen, params, encrypt);
}

static int dkm_cipher_encrypt_skey_init(void *vctx, void *skeydata,
                                        const unsigned char *iv, size_t ivlen,
                                        const OSSL_PARAM params[])
{
    (void)iv;
    return skey_init(vctx, skeydata, ivlen, params, true);
}

static int dkm_cipher_decrypt_skey_init(void *vctx, void *skeydata,
                                        const unsigned char *iv, size_t ivlen,
                                        const OSSL_PARAM params[])
{
    (void)iv;
    return skey_init(vctx, skeydata, ivlen, params, false);
}
#endif

static int dkm_cipher_encrypt_init(void *vctx, const unsigned char *key, size_t keylen,
                                   const unsigned char *iv, size_t ivlen,
                                   const OSSL_PARAM params[])
{
    return cipher_init(vctx, key, keylen, iv, ivlen, params, true);
}

static int dkm_cipher_decrypt_init(void *vctx, const unsigned char *key, size_t keylen,
                                   const unsigned char *iv, size_t ivlen,
                                   const OSSL_PARAM params[])
{
    return cipher_init(vctx, key, keylen, iv, ivlen, params, false);
}

static int dkm_cipher_update(void *vctx, unsigned char *out, size_t *outl, size_t outsize,
                             const unsigned char *in, size_t inl)
{
    struct dkm_cipher_ctx *ctx = vctx;
    int r;

    if (ctx->stream == NULL) {
        DKM_RAISE(ctx->prov, DKM_R_BAD_STATE, "%s has no key: give the dkm: URI as key",
                  DKM_ALG_STREAM);
        return 0;
    }
    r = dkm_stream_update(ctx->stream, in, inl, out, outsize, outl);
    return r < 0 ? raise_stream(ctx, r) : 1;
}

static int dkm_cipher_final(void *vctx, unsigned char *out, size_t *outl, size_t outsize)
{
    struct dkm_cipher_ctx *ctx = vctx;
    int r;

    if (ctx->stream == NULL) {
        DKM_RAISE(ctx->prov, DKM_R_BAD_STATE, "%s has no key: give the dkm: URI as key",
                  DKM_ALG_STREAM);
        return 0;
    }
    r = dkm_stream_final(ctx->stream, out, outsize, outl);
    return r < 0 ? raise_stream(ctx, r) : 1;
}

static const OSSL_PARAM *dkm_cipher_gettable_params(void *provctx)
{
    static const OSSL_PARAM gettable[] = {
        OSSL_PARAM_uint(OSSL_CIPHER_PARAM_MODE, NULL),
        OSSL_PARAM_size_t(OSSL_CIPHER_PARAM_KEYLEN, NULL),
        OSSL_PARAM_size_t(OSSL_CIPHER_PARAM_IVLEN, NULL),
        OSSL_PARAM_size_t(OSSL_CIPHER_PARAM_BLOCK_SIZE, NULL),
        OSSL_PARAM_int(OSSL_CIPHER_PARAM_AEAD, NULL),
        OSSL_PARAM_int(OSSL_CIPHER_PARAM_CUSTOM_IV, NULL),
        OSSL_PARAM_int(OSSL_CIPHER_PARAM_CTS, NULL),
        OSSL_PARAM_int(OSSL_CIPHER_PARAM_TLS1_MULTIBLOCK, NULL),
        OSSL_PARAM_int(OSSL_CIPHER_PARAM_HAS_RAND_KEY, NULL),
        OSSL_PARAM_END,
    };

    (void)provctx;
    return gettable;
}

static int set_size(OSSL_PARAM params[], const char *key, size_t v)
{
    OSSL_PARAM *p = OSSL_PARAM_locate(params, key);

    return p == NULL || OSSL_PARAM_set_size_t(p, v);
}

static int set_int(OSSL_PARAM params[], const char *key, int v)
{
    OSSL_PARAM *p = OSSL_PARAM_locate(params, key);

    return p == NULL || OSSL_PARAM_set_int(p, v);
}

static int dkm_cipher_get_params(OSSL_PARAM params[])
{
    OSSL_PARAM *p = OSSL_PARAM_locate(params, OSSL_CIPHER_PARAM_MODE);

    /* A stream cipher for EVP's purposes: no padding, no IV. */
    if (p != NULL && !OSSL_PARAM_set_uint(p, EVP_CIPH_STREAM_CIPHER))
        return 0;
    return set_size(params, OSSL_CIPHER_PARAM_KEYLEN, DKM_URI_KEY_LEN) &&
           set_size(params, OSSL_CIPHER_PARAM_IVLEN, 0) &&
           set_size(params, OSSL_CIPHER_PARAM_BLOCK_SIZE, DKM_STREAM_BLOCK_SIZE) &&
           set_int(params, OSSL_CIPHER_PARAM_AEAD, 0) &&
           set_int(params, OSSL_CIPHER_PARAM_CUSTOM_IV, 0) &&
           set_int(params, OSSL_CIPHER_PARAM_CTS, 0) &&
           set_int(params, OSSL_CIPHER_PARAM_TLS1_MULTIBLOCK, 0) &&
           set_int(params, OSSL_CIPHER_PARAM_HAS_RAND_KEY, 0);
}

static const OSSL_PARAM *dkm_cipher_gettable_ctx_params(void *vctx, void *provctx)
{
    static const OSSL_PARAM gettable[] = {
        OSSL_PARAM_size_t(OSSL_CIPHER_PARAM_KEYLEN, NULL),
        OSSL_PARAM_size_t(OSSL_CIPHER_PARAM_IVLEN, NULL),
        OSSL_PARAM_uint(OSSL_CIPHER_PARAM_PADDING, NULL),
        OSSL_PARAM_uint(DKM_PARAM_VERSION, NULL),
        OSSL_PARAM_END,
    };

    (void)vctx;
    (void)provctx;
    return gettable;
}

static int dkm_cipher_get_ctx_params(void *vctx, OSSL_PARAM params[])
{
    struct dkm_cipher_ctx *ctx = vctx;
    OSSL_PARAM *p;

    if (!set_size(params, OSSL_CIPHER_PARAM_KEYLEN, DKM_URI_KEY_LEN) ||
        !set_size(params, OSSL_CIPHER_PARAM_IVLEN, 0))
        return 0;
    p = OSSL_PARAM_locate(params, OSSL_CIPHER_PARAM_PADDING);
    if (p != NULL && !OSSL_PARAM_set_uint(p, 0))
        return 0;
    p = OSSL_PARAM_locate(params, DKM_PARAM_VERSION);
    if (p != NULL && !OSSL_PARAM_set_uint(p, dkm_stream_version(ctx->stream)))
        return 0;
    return 1;
}

static const OSSL_PARAM *dkm_cipher_settable_ctx_params(void *vctx, void *provctx)
{
    static const OSSL_PARAM settable[] = {
        OSSL_PARAM_size_t(OSSL_CIPHER_PARAM_KEYLEN, NULL),
        OSSL_PARAM_uint(OSSL_CIPHER_PARAM_PADDING, NULL),
        OSSL_PARAM_END,
    };

    (void)vctx;
    (void)provctx;
    return settable;
}

static int dkm_cipher_set_ctx_params(void *vctx, const OSSL_PARAM params[])
{
    struct dkm_cipher_ctx *ctx = vctx;
    const OSSL_PARAM *p;
    size_t keylen;
    unsigned pad;

    if (params == NULL)
        return 1;
    p = OSSL_PARAM_locate_const(params, OSSL_CIPHER_PARAM_KEYLEN);
    if (p != NULL && (!OSSL_PARAM_get_size_t(p, &keylen) || keylen != DKM_URI_KEY_LEN)) {
        DKM_RAISE(ctx->prov, DKM_R_BAD_PARAM, "%s key length is fixed at %d bytes",
                  DKM_ALG_STREAM, DKM_URI_KEY_LEN);
        return 0;
    }
    /* Padding means nothing to a stream; accept it so that -nopad works. */
    p = OSSL_PARAM_locate_const(params, OSSL_CIPHER_PARAM_PADDING);
    if (p != NULL && !OSSL_PARAM_get_uint(p, &pad)) {
        DKM_RAISE(ctx->prov, DKM_R_BAD_PARAM, "padding must be an integer");
        return 0;
    }
    return 1;
}

const OSSL_DISPATCH dkm_stream_cipher_functions[] = {
    {OSSL_FUNC_CIPHER_NEWCTX, (void (*)(void))dkm_cipher_newctx},
    {OSSL_FUNC_CIPHER_FREECTX, (void (*)(void))dkm_cipher_freectx},
    {OSSL_FUNC_CIPHER_ENCRYPT_INIT, (void (*)(void))dkm_cipher_encrypt_init},
    {OSSL_FUNC_CIPHER_DECRYPT_INIT, (void (*)(void))dkm_cipher_decrypt_init},
#if OPENSSL_VERSION_NUMBER >= 0x30500000L
    {OSSL_FUNC_CIPHER_ENCRYPT_SKEY_INIT, (void (*)(void))dkm_cipher_encrypt_skey_init},
    {OSSL_FUNC_CIPHER_DECRYPT_SKEY_INIT, (void (*)(void))dkm_cipher_decrypt_skey_init},
#endif
    {OSSL_FUNC_CIPHER_UPDATE, (void (*)(void))dkm_cipher_update},
    {OSSL_FUNC_CIPHER_FINAL, (void (*)(void))dkm_cipher_final},
    {OSSL_FUNC_CIPHER_GET_PARAMS, (void (*)(void))dkm_cipher_get_params},
    {OSSL_FUNC_CIPHER_GETTABLE_PARAMS, (void (*)(void))dkm_cipher_gettable_params},
    {OSSL_FUNC_CIPHER_GET_CTX_PARAMS, (void (*)(void))dkm_cipher_get_ctx_params},
    {OSSL_FUNC_CIPHER_GETTABLE_CTX_PARAMS,
     (void (*)(void))dkm_cipher_gettable_ctx_params},
    {OSSL_FUNC_CIPHER_SET_CTX_PARAMS, (void (*)(void))dkm_cipher_set_ctx_params},
    {OSSL_FUNC_CIPHER_SETTABLE_CTX_PARAMS,
     (void (*)(void))dkm_cipher_settable_ctx_params},
    {0, NULL},
};
