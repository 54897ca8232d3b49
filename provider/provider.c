/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Entry point of the dkm OpenSSL provider: OSSL_provider_init, the
 * provider's parameters, and the table of operations it offers.
 */
#include "provider.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/params.h>

static OSSL_FUNC_provider_teardown_fn dkm_prov_teardown;
static OSSL_FUNC_provider_gettable_params_fn dkm_prov_gettable_params;
static OSSL_FUNC_provider_get_params_fn dkm_prov_get_params;
static OSSL_FUNC_provider_query_operation_fn dkm_prov_query_operation;

static const OSSL_PARAM dkm_prov_param_types[] = {
    OSSL_PARAM_DEFN(OSSL_PROV_PARAM_NAME, OSSL_PARAM_UTF8_PTR, NULL, 0),
    OSSL_PARAM_DEFN(OSSL_PROV_PARAM_VERSION, OSSL_PARAM_UTF8_PTR, NULL, 0),
    OSSL_PARAM_DEFN(OSSL_PROV_PARAM_BUILDINFO, OSSL_PARAM_UTF8_PTR, NULL, 0),
    OSSL_PARAM_DEFN(OSSL_PROV_PARAM_STATUS, OSSL_PARAM_INTEGER, NULL, 0),
    OSSL_PARAM_END,
};

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
    (void)operation_id;
    *no_cache = 0;
    /* Operations (store, keymgmt, asym cipher, cipher) are added here. */
    return NULL;
}

static void dkm_prov_teardown(void *provctx)
{
    struct dkm_prov_ctx *ctx = provctx;

    if (ctx == NULL)
        return;
    OSSL_LIB_CTX_free(ctx->libctx);
    free(ctx);
}

static const OSSL_DISPATCH dkm_prov_dispatch[] = {
    {OSSL_FUNC_PROVIDER_TEARDOWN, (void (*)(void))dkm_prov_teardown},
    {OSSL_FUNC_PROVIDER_GETTABLE_PARAMS, (void (*)(void))dkm_prov_gettable_params},
    {OSSL_FUNC_PROVIDER_GET_PARAMS, (void (*)(void))dkm_prov_get_params},
    {OSSL_FUNC_PROVIDER_QUERY_OPERATION, (void (*)(void))dkm_prov_query_operation},
    {0, NULL},
};

/* The only symbol the module exports (see provider.map). */
__attribute__((visibility("default"))) OSSL_provider_init_fn OSSL_provider_init;

int OSSL_provider_init(const OSSL_CORE_HANDLE *handle, const OSSL_DISPATCH *in,
                       const OSSL_DISPATCH **out, void **provctx)
{
    struct dkm_prov_ctx *ctx;

    ctx = calloc(1, sizeof(*ctx));
    if (ctx == NULL)
        return 0;
    ctx->handle = handle;
    /* Delegated algorithms come from a child context that never loads dkm. */
    ctx->libctx = OSSL_LIB_CTX_new_from_dispatch(handle, in);
    if (ctx->libctx == NULL) {
        free(ctx);
        return 0;
    }
    *provctx = ctx;
    *out = dkm_prov_dispatch;
    return 1;
}
