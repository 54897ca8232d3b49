/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Asymmetric cipher DKM: protect (encrypt) a message into a protect blob
 * (include/dkm/data/protect.h) under the key object's version, and unprotect
 * (decrypt) a blob under the version named in the blob. Unprotect refuses
 * a blob of another group, a version the key object is pinned away from,
 * an expired version and any change, and writes nothing to the caller's
 * buffer unless the blob authenticates. Caller AAD is the context
 * parameter "dkm-aad".
 */
#include <errno.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/params.h>

#include "dkm/data/protect.h"
#include "keyobj.h"
#include "provider.h"

static OSSL_FUNC_asym_cipher_newctx_fn dkm_asym_newctx;
static OSSL_FUNC_asym_cipher_freectx_fn dkm_asym_freectx;
static OSSL_FUNC_asym_cipher_dupctx_fn dkm_asym_dupctx;
static OSSL_FUNC_asym_cipher_encrypt_init_fn dkm_asym_encrypt_init;
static OSSL_FUNC_asym_cipher_encrypt_fn dkm_asym_encrypt;
static OSSL_FUNC_asym_cipher_decrypt_init_fn dkm_asym_decrypt_init;
static OSSL_FUNC_asym_cipher_decrypt_fn dkm_asym_decrypt;
static OSSL_FUNC_asym_cipher_set_ctx_params_fn dkm_asym_set_ctx_params;
static OSSL_FUNC_asym_cipher_settable_ctx_params_fn dkm_asym_settable_ctx_params;
static OSSL_FUNC_asym_cipher_get_ctx_params_fn dkm_asym_get_ctx_params;
static OSSL_FUNC_asym_cipher_gettable_ctx_params_fn dkm_asym_gettable_ctx_params;

struct dkm_asym_ctx {
    struct dkm_prov_ctx *prov;
    struct dkm_keyobj *obj;
    bool encrypt;
    uint8_t *aad;
    size_t aad_len;
};

static void *dkm_asym_newctx(void *provctx)
{
    struct dkm_prov_ctx *prov = provctx;
    struct dkm_asym_ctx *ctx = OPENSSL_zalloc(sizeof(*ctx));

    if (ctx == NULL) {
        DKM_RAISE(prov, DKM_R_MALLOC, "out of memory for a DKM cipher context");
        return NULL;
    }
    ctx->prov = prov;
    return ctx;
}

static void dkm_asym_freectx(void *vctx)
{
    struct dkm_asym_ctx *ctx = vctx;

    if (ctx == NULL)
        return;
    dkm_keyobj_unref(ctx->obj);
    OPENSSL_clear_free(ctx->aad, ctx->aad_len);
    OPENSSL_free(ctx);
}

static void *dkm_asym_dupctx(void *vctx)
{
    struct dkm_asym_ctx *src = vctx, *dst;

    dst = dkm_asym_newctx(src->prov);
    if (dst == NULL)
        return NULL;
    dst->encrypt = src->encrypt;
    if (src->aad_len > 0) {
        dst->aad = OPENSSL_memdup(src->aad, src->aad_len);
        if (dst->aad == NULL) {
            DKM_RAISE(src->prov, DKM_R_MALLOC, "out of memory copying AAD");
            dkm_asym_freectx(dst);
            return NULL;
        }
        dst->aad_len = src->aad_len;
    }
    dst->obj = dkm_keyobj_ref(src->obj);
    return dst;
}

static int asym_init(struct dkm_asym_ctx *ctx, void *keydata, const OSSL_PARAM params[],
                     bool encrypt)
{
    struct dkm_keyobj *obj = keydata;

    if (obj == NULL || obj->magic != DKM_KEYOBJ_MAGIC) {
        DKM_RAISE(ctx->prov, DKM_R_BAD_PARAM, "DKM needs a key from the dkm provider");
        return 0;
    }
    dkm_keyobj_unref(ctx->obj);
    ctx->obj = dkm_keyobj_ref(obj);
    ctx->encrypt = encrypt;
    return dkm_asym_set_ctx_params(ctx, params);
}

static int dkm_asym_encrypt_init(void *vctx, void *keydata, const OSSL_PARAM params[])
{
    return asym_init(vctx, keydata, params, true);
}

static int dkm_asym_decrypt_init(void *vctx, void *keydata, const OSSL_PARAM params[])
{
    return asym_init(vctx, keydata, params, false);
}

static int dkm_asym_encrypt(void *vctx, unsigned char *out, size_t *outlen,
                            size_t outsize, const unsigned char *in, size_t inlen)
{
    struct dkm_asym_ctx *ctx = vctx;
    struct dkm_key *key = NULL;
    size_t size;
    int ok = 0, r;

    if (ctx->obj == NULL || !ctx->encrypt) {
        DKM_RAISE(ctx->prov, DKM_R_BAD_STATE, "DKM encrypt was not initialised");
        goto done;
    }
    size = dkm_protect_blob_size(ctx->obj->group, inlen);
    if (size == 0) {
        DKM_RAISE(ctx->prov, DKM_R_INPUT_TOO_LARGE,
                  "DKM protects at most %u bytes, got %zu; use DKM-AES-256-GCM for more",
                  DKM_PROTECT_MAX_PLAINTEXT, inlen);
        goto done;
    }
    if (out == NULL) {
        *outlen = size;
        ok = 1;
        goto done;
    }
    if (outsize < size) {
        DKM_RAISE(ctx->prov, DKM_R_OUTPUT_TOO_SMALL, "protect needs %zu bytes, got %zu",
                  size, outsize);
        goto done;
    }
    if (!dkm_keyobj_key(ctx->obj, 0, &key))
        goto done;
    r = dkm_protect_seal(ctx->prov->libctx, dkm_prov_gcm(ctx->prov), key->bytes,
                         ctx->obj->group, key->info.version, ctx->aad, ctx->aad_len,
                         /* nonce= */ NULL, in, inlen, out, outsize, outlen);
    if (r < 0) {
        DKM_RAISE_CODE(ctx->prov, r);
        goto done;
    }
    ok = 1;
done:
    dkm_key_unref(key);
    return ok;
}

static int dkm_asym_decrypt(void *vctx, unsigned char *out, size_t *outlen,
                            size_t outsize, const unsigned char *in, size_t inlen)
{
    struct dkm_asym_ctx *ctx = vctx;
    struct dkm_protect_header hdr;
    struct dkm_key *key = NULL;
    int ok = 0, r;

    if (ctx->obj == NULL || ctx->encrypt) {
        DKM_RAISE(ctx->prov, DKM_R_BAD_STATE, "DKM decrypt was not initialised");
        goto done;
    }
    r = dkm_protect_parse_header(in, inlen, &hdr);
    if (r < 0) {
        DKM_RAISE_CODE(ctx->prov, r);
        goto done;
    }
    if (strcmp(hdr.group, ctx->obj->group) != 0) {
        DKM_RAISE(ctx->prov, DKM_R_WRONG_GROUP,
                  "blob was protected under group \"%s\", the key is of group \"%s\"",
                  hdr.group, ctx->obj->group);
        goto done;
    }
    if (ctx->obj->pinned && hdr.version != ctx->obj->version) {
        DKM_RAISE(ctx->prov, DKM_R_VERSION_MISMATCH,
                  "blob was protected under version %u, the key is dkm:%s/%u (use "
                  "dkm:%s for any valid version)",
                  hdr.version, ctx->obj->group, ctx->obj->version, ctx->obj->group);
        goto done;
    }
    if (out == NULL) {
        *outlen = hdr.plaintext_len;
        ok = 1;
        goto done;
    }
    if (outsize < hdr.plaintext_len) {
        DKM_RAISE(ctx->prov, DKM_R_OUTPUT_TOO_SMALL, "unprotect needs %zu bytes, got %zu",
                  hdr.plaintext_len, outsize);
        goto done;
    }
    if (!dkm_keyobj_key(ctx->obj, hdr.version, &key))
        goto done;
    r = dkm_protect_open(ctx->prov->libctx, dkm_prov_gcm(ctx->prov), key->bytes, &hdr, in,
                         inlen, ctx->aad, ctx->aad_len, out, outsize, outlen);
    if (r < 0) {
        DKM_RAISE_CODE(ctx->prov, r);
        goto done;
    }
    ok = 1;
done:
    dkm_key_unref(key);
    return ok;
}

static const OSSL_PARAM *dkm_asym_settable_ctx_params(void *vctx, void *provctx)
{
    static const OSSL_PARAM settable[] = {
        OSSL_PARAM_octet_string(DKM_PARAM_AAD, NULL, 0),
        OSSL_PARAM_END,
    };

    (void)vctx;
    (void)provctx;
    return settable;
}

static int dkm_asym_set_ctx_params(void *vctx, const OSSL_PARAM params[])
{
    struct dkm_asym_ctx *ctx = vctx;
    const OSSL_PARAM *p;
    void *aad = NULL;
    size_t aad_len = 0;

    if (params == NULL)
        return 1;
    p = OSSL_PARAM_locate_const(params, DKM_PARAM_AAD);
    if (p == NULL)
        return 1;
    if (p->data_size > DKM_PROTECT_MAX_AAD) {
        DKM_RAISE(ctx->prov, DKM_R_BAD_PARAM, "%s is longer than %u bytes", DKM_PARAM_AAD,
                  DKM_PROTECT_MAX_AAD);
        return 0;
    }
    if (p->data_size > 0 && !OSSL_PARAM_get_octet_string(p, &aad, 0, &aad_len)) {
        DKM_RAISE(ctx->prov, DKM_R_BAD_PARAM, "%s must be an octet string",
                  DKM_PARAM_AAD);
        return 0;
    }
    OPENSSL_clear_free(ctx->aad, ctx->aad_len);
    ctx->aad = aad;
    ctx->aad_len = aad_len;
    return 1;
}

static const OSSL_PARAM *dkm_asym_gettable_ctx_params(void *vctx, void *provctx)
{
    static const OSSL_PARAM gettable[] = {OSSL_PARAM_END};

    (void)vctx;
    (void)provctx;
    return gettable;
}

static int dkm_asym_get_ctx_params(void *vctx, OSSL_PARAM params[])
{
    (void)vctx;
    (void)params;
    return 1;
}

const OSSL_DISPATCH dkm_asym_cipher_functions[] = {
    {OSSL_FUNC_ASYM_CIPHER_NEWCTX, (void (*)(void))dkm_asym_newctx},
    {OSSL_FUNC_ASYM_CIPHER_FREECTX, (void (*)(void))dkm_asym_freectx},
    {OSSL_FUNC_ASYM_CIPHER_DUPCTX, (void (*)(void))dkm_asym_dupctx},
    {OSSL_FUNC_ASYM_CIPHER_ENCRYPT_INIT, (void (*)(void))dkm_asym_encrypt_init},
    {OSSL_FUNC_ASYM_CIPHER_ENCRYPT, (void (*)(void))dkm_asym_encrypt},
    {OSSL_FUNC_ASYM_CIPHER_DECRYPT_INIT, (void (*)(void))dkm_asym_decrypt_init},
    {OSSL_FUNC_ASYM_CIPHER_DECRYPT, (void (*)(void))dkm_asym_decrypt},
    {OSSL_FUNC_ASYM_CIPHER_SET_CTX_PARAMS, (void (*)(void))dkm_asym_set_ctx_params},
    {OSSL_FUNC_ASYM_CIPHER_SETTABLE_CTX_PARAMS,
     (void (*)(void))dkm_asym_settable_ctx_params},
    {OSSL_FUNC_ASYM_CIPHER_GET_CTX_PARAMS, (void (*)(void))dkm_asym_get_ctx_params},
    {OSSL_FUNC_ASYM_CIPHER_GETTABLE_CTX_PARAMS,
     (void (*)(void))dkm_asym_gettable_ctx_params},
    {0, NULL},
};
