/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Entry point of the dkm OpenSSL provider: OSSL_provider_init, the
 * provider's parameters and reason strings, and the table of operations
 * it offers. Init reads and checks the configuration, picks the key
 * source, and makes the key cache that every operation shares.
 */
#include "provider.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/params.h>

#include "dkm/base/error.h"
#include "dkm/base/log.h"
#include "keysource.h"

static OSSL_FUNC_provider_teardown_fn dkm_prov_teardown;
static OSSL_FUNC_provider_gettable_params_fn dkm_prov_gettable_params;
static OSSL_FUNC_provider_get_params_fn dkm_prov_get_params;
static OSSL_FUNC_provider_query_operation_fn dkm_prov_query_operation;
static OSSL_FUNC_provider_get_reason_strings_fn dkm_prov_get_reason_strings;

static const OSSL_PARAM dkm_prov_param_types[] = {
    OSSL_PARAM_DEFN(OSSL_PROV_PARAM_NAME, OSSL_PARAM_UTF8_PTR, NULL, 0),
    OSSL_PARAM_DEFN(OSSL_PROV_PARAM_VERSION, OSSL_PARAM_UTF8_PTR, NULL, 0),
    OSSL_PARAM_DEFN(OSSL_PROV_PARAM_BUILDINFO, OSSL_PARAM_UTF8_PTR, NULL, 0),
    OSSL_PARAM_DEFN(OSSL_PROV_PARAM_STATUS, OSSL_PARAM_INTEGER, NULL, 0),
    OSSL_PARAM_END,
};

static const OSSL_ALGORITHM dkm_store_algs[] = {
    {DKM_ALG_STORE, DKM_PROV_PROPERTIES, dkm_store_functions, DKM_ALG_STORE_DESC},
    {NULL, NULL, NULL, NULL},
};

static const OSSL_ALGORITHM dkm_keymgmt_algs[] = {
    {DKM_ALG_KEY, DKM_PROV_PROPERTIES, dkm_keymgmt_functions, DKM_ALG_KEY_DESC},
    {NULL, NULL, NULL, NULL},
};

static const OSSL_ALGORITHM dkm_asym_cipher_algs[] = {
    {DKM_ALG_KEY, DKM_PROV_PROPERTIES, dkm_asym_cipher_functions, DKM_ALG_KEY_DESC},
    {NULL, NULL, NULL, NULL},
};

static const OSSL_ALGORITHM dkm_cipher_algs[] = {
    {DKM_ALG_STREAM, DKM_PROV_PROPERTIES, dkm_stream_cipher_functions,
     DKM_ALG_STREAM_DESC},
    {NULL, NULL, NULL, NULL},
};

static const OSSL_ALGORITHM dkm_encoder_algs[] = {
    {DKM_ALG_KEY, DKM_ENCODER_TEXT_PROPS, dkm_text_encoder_functions,
     "text description of a DKM key"},
    {NULL, NULL, NULL, NULL},
};

#if OPENSSL_VERSION_NUMBER >= 0x30500000L
/*
 * `openssl enc` fetches the key manager named by -skeymgmt, or else one
 * named like the cipher: the second entry lets -skeymgmt be left out.
 */
static const OSSL_ALGORITHM dkm_skeymgmt_algs[] = {
    {DKM_ALG_KEY, DKM_PROV_PROPERTIES, dkm_skeymgmt_functions, DKM_ALG_KEY_DESC},
    {DKM_ALG_STREAM, DKM_PROV_PROPERTIES, dkm_skeymgmt_functions,
     "dkm: URI naming the key of " DKM_ALG_STREAM},
    {NULL, NULL, NULL, NULL},
};
#endif

static const OSSL_PARAM *dkm_prov_gettable_params(void *provctx)
{
    (void)provctx;
    return dkm_prov_param_types;
}

static int dkm_prov_get_params(void *provctx, OSSL_PARAM params[])
{
    OSSL_PARAM *p;

    (void)provctx;
    p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_NAME);
    if (p != NULL && !OSSL_PARAM_set_utf8_ptr(p, "dkm: TPM-rooted group keys"))
        return 0;
    p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_VERSION);
    if (p != NULL && !OSSL_PARAM_set_utf8_ptr(p, DKM_VERSION))
        return 0;
    p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_BUILDINFO);
    if (p != NULL && !OSSL_PARAM_set_utf8_ptr(p, "dkm " DKM_VERSION))
        return 0;
    p = OSSL_PARAM_locate(params, OSSL_PROV_PARAM_STATUS);
    if (p != NULL && !OSSL_PARAM_set_int(p, 1))
        return 0;
    return 1;
}

static const OSSL_ALGORITHM *dkm_prov_query_operation(void *provctx, int operation_id,
                                                      int *no_cache)
{
    (void)provctx;
    *no_cache = 0;
    switch (operation_id) {
    case OSSL_OP_STORE:
        return dkm_store_algs;
    case OSSL_OP_KEYMGMT:
        return dkm_keymgmt_algs;
    case OSSL_OP_ASYM_CIPHER:
        return dkm_asym_cipher_algs;
    case OSSL_OP_CIPHER:
        return dkm_cipher_algs;
    case OSSL_OP_ENCODER:
        return dkm_encoder_algs;
#if OPENSSL_VERSION_NUMBER >= 0x30500000L
    case OSSL_OP_SKEYMGMT:
        return dkm_skeymgmt_algs;
#endif
    default:
        return NULL;
    }
}

static const OSSL_ITEM *dkm_prov_get_reason_strings(void *provctx)
{
    (void)provctx;
    return dkm_prov_reason_strings();
}

EVP_CIPHER *dkm_prov_gcm(struct dkm_prov_ctx *ctx)
{
    EVP_CIPHER *gcm;

    pthread_mutex_lock(&ctx->gcm_lock);
    if (ctx->gcm == NULL) {
        /* Not there yet (or no memory): callers fall back to fetching per call. */
        ERR_set_mark();
        ctx->gcm = EVP_CIPHER_fetch(ctx->libctx, "AES-256-GCM", DKM_PRIVATE_PROPQ);
        ERR_pop_to_mark();
    }
    gcm = ctx->gcm;
    pthread_mutex_unlock(&ctx->gcm_lock);
    return gcm;
}

static void dkm_prov_teardown(void *provctx)
{
    struct dkm_prov_ctx *ctx = provctx;

    if (ctx == NULL)
        return;
    EVP_CIPHER_free(ctx->gcm);
    pthread_mutex_destroy(&ctx->gcm_lock);
    dkm_keycache_free(ctx->cache);
    dkm_prov_config_clear(&ctx->cfg);
    OSSL_LIB_CTX_free(ctx->libctx);
    OPENSSL_free(ctx);
}

static const OSSL_DISPATCH dkm_prov_dispatch[] = {
    {OSSL_FUNC_PROVIDER_TEARDOWN, (void (*)(void))dkm_prov_teardown},
    {OSSL_FUNC_PROVIDER_GETTABLE_PARAMS, (void (*)(void))dkm_prov_gettable_params},
    {OSSL_FUNC_PROVIDER_GET_PARAMS, (void (*)(void))dkm_prov_get_params},
    {OSSL_FUNC_PROVIDER_QUERY_OPERATION, (void (*)(void))dkm_prov_query_operation},
    {OSSL_FUNC_PROVIDER_GET_REASON_STRINGS, (void (*)(void))dkm_prov_get_reason_strings},
    {0, NULL},
};

static void take_core_functions(struct dkm_prov_ctx *ctx, const OSSL_DISPATCH *in)
{
    for (; in->function_id != 0; in++) {
        switch (in->function_id) {
        case OSSL_FUNC_CORE_NEW_ERROR:
            ctx->core_new_error = OSSL_FUNC_core_new_error(in);
            break;
        case OSSL_FUNC_CORE_SET_ERROR_DEBUG:
            ctx->core_set_error_debug = OSSL_FUNC_core_set_error_debug(in);
            break;
        case OSSL_FUNC_CORE_VSET_ERROR:
            ctx->core_vset_error = OSSL_FUNC_core_vset_error(in);
            break;
        default:
            break;
        }
    }
}

/* The key source named by the configuration. */
static int pick_keysource(struct dkm_prov_ctx *ctx)
{
    const char *name = ctx->cfg.keysource;

    if (name == NULL || strcmp(name, DKM_KEYSOURCE_SERVICE) == 0) {
        ctx->keysource = &dkm_keysource_service;
        return 0;
    }
#ifdef DKM_TEST_KEYSOURCE
    if (strcmp(name, DKM_KEYSOURCE_TEST) == 0) {
        ctx->keysource = &dkm_keysource_test;
        return 0;
    }
#endif
    return dkm_error_set(DKM_E_CONFIG,
                         "keysource: \"%.32s\" is not available in this "
                         "module (the test key source exists only in test "
                         "builds)",
                         name);
}

/* The only symbol the module exports (see provider.map). */
__attribute__((visibility("default"))) OSSL_provider_init_fn OSSL_provider_init;

int OSSL_provider_init(const OSSL_CORE_HANDLE *handle, const OSSL_DISPATCH *in,
                       const OSSL_DISPATCH **out, void **provctx)
{
    struct dkm_prov_ctx *ctx;
    void *state = NULL;
    int r;

    ctx = OPENSSL_zalloc(sizeof(*ctx));
    if (ctx == NULL)
        return 0;
    ctx->handle = handle;
    if (pthread_mutex_init(&ctx->gcm_lock, NULL) != 0) {
        OPENSSL_free(ctx);
        return 0;
    }
    take_core_functions(ctx, in);
    /* Delegated algorithms come from a child context; fetches also exclude dkm. */
    ctx->libctx = OSSL_LIB_CTX_new_from_dispatch(handle, in);
    if (ctx->libctx == NULL) {
        DKM_RAISE(ctx, DKM_R_MALLOC, "cannot create the provider's library context");
        goto fail;
    }
    r = dkm_prov_config_load(ctx, in);
    if (r >= 0)
        r = pick_keysource(ctx);
    if (r < 0) {
        /* Reason strings are not registered before init succeeds: say who speaks. */
        DKM_RAISE(ctx, DKM_R_BAD_CONFIG, "dkm provider configuration: %s",
                  dkm_error_detail());
        goto fail;
    }
    if (ctx->cfg.debug)
        dkm_log_set_level(DKM_LOG_DEBUG);
    r = ctx->keysource->open(&ctx->cfg, ctx->libctx, &state);
    if (r < 0) {
        DKM_RAISE_CODE(ctx, r);
        goto fail;
    }
    r = dkm_keycache_new(ctx->keysource, state, ctx->libctx, &ctx->cache);
    if (r < 0) {
        ctx->keysource->close(state);
        DKM_RAISE_CODE(ctx, r);
        goto fail;
    }
    log_debug("dkm provider %s ready, key source %s", DKM_VERSION, ctx->keysource->name);
    *provctx = ctx;
    *out = dkm_prov_dispatch;
    return 1;
fail:
    dkm_prov_teardown(ctx);
    return 0;
}
