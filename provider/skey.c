/* SPDX-License-Identifier: Apache-2.0 */
/*
 * OpenSSL 3.5+ only: the symmetric key manager DKM, so that `openssl enc
 * -skeymgmt DKM -skeyopt uri:dkm:GROUP` (and EVP_SKEY_import with a "uri"
 * parameter) can name the key of DKM-AES-256-GCM directly instead of
 * passing the URI as -K hex. The key data is only the parsed URI; the key
 * bytes stay in the cache as with every other operation. OpenSSL 3.0 has
 * no EVP_SKEY, so this file compiles to nothing there.
 */
#include <openssl/opensslv.h>

#if OPENSSL_VERSION_NUMBER >= 0x30500000L

#include <string.h>

#include <openssl/core_dispatch.h>
#include <openssl/crypto.h>
#include <openssl/params.h>

#include "dkm/uri.h"
#include "provider.h"

#define DKM_SKEY_PARAM_URI "uri"
#define DKM_SKEY_MAGIC 0x444b4d53u /* "DKMS" */

static OSSL_FUNC_skeymgmt_free_fn dkm_skey_free;
static OSSL_FUNC_skeymgmt_import_fn dkm_skey_import;
static OSSL_FUNC_skeymgmt_imp_settable_params_fn dkm_skey_imp_settable_params;
static OSSL_FUNC_skeymgmt_export_fn dkm_skey_export;

struct dkm_skey {
    uint32_t magic;
    struct dkm_uri uri;
};

const struct dkm_uri *dkm_skey_uri(const void *skeydata)
{
    const struct dkm_skey *k = skeydata;

    return k != NULL && k->magic == DKM_SKEY_MAGIC ? &k->uri : NULL;
}

static void dkm_skey_free(void *keydata)
{
    OPENSSL_free(keydata);
}

static void *dkm_skey_import(void *provctx, int selection, const OSSL_PARAM params[])
{
    struct dkm_prov_ctx *prov = provctx;
    const OSSL_PARAM *p = OSSL_PARAM_locate_const(params, DKM_SKEY_PARAM_URI);
    const char *text = NULL, *reason = NULL;
    struct dkm_skey *k;

    (void)selection;
    if (p == NULL || !OSSL_PARAM_get_utf8_string_ptr(p, &text)) {
        DKM_RAISE(prov, DKM_R_BAD_PARAM, "a DKM key needs the parameter uri:dkm:GROUP");
        return NULL;
    }
    k = OPENSSL_zalloc(sizeof(*k));
    if (k == NULL) {
        DKM_RAISE(prov, DKM_R_MALLOC, "out of memory for a DKM key");
        return NULL;
    }
    if (dkm_uri_parse(text, strlen(text), 0, &k->uri, &reason) < 0) {
        DKM_RAISE(prov, DKM_R_BAD_URI, "%.128s: %s", text, reason);
        OPENSSL_free(k);
        return NULL;
    }
    k->magic = DKM_SKEY_MAGIC;
    return k;
}

static const OSSL_PARAM *dkm_skey_imp_settable_params(void *provctx)
{
    static const OSSL_PARAM settable[] = {
        OSSL_PARAM_utf8_string(DKM_SKEY_PARAM_URI, NULL, 0),
        OSSL_PARAM_END,
    };

    (void)provctx;
    return settable;
}

static int dkm_skey_export(void *keydata, int selection, OSSL_CALLBACK *param_cb,
                           void *cbarg)
{
    const struct dkm_uri *uri = dkm_skey_uri(keydata);
    char text[DKM_URI_MAX + 1];
    OSSL_PARAM params[2];

    (void)selection;
    /* The URI names the key; exporting it exports no secret. */
    if (uri == NULL || dkm_uri_format(uri, text, sizeof(text)) < 0)
        return 0;
    params[0] = OSSL_PARAM_construct_utf8_string(DKM_SKEY_PARAM_URI, text, 0);
    params[1] = OSSL_PARAM_construct_end();
    return param_cb(params, cbarg);
}

const OSSL_DISPATCH dkm_skeymgmt_functions[] = {
    {OSSL_FUNC_SKEYMGMT_FREE, (void (*)(void))dkm_skey_free},
    {OSSL_FUNC_SKEYMGMT_IMPORT, (void (*)(void))dkm_skey_import},
    {OSSL_FUNC_SKEYMGMT_IMP_SETTABLE_PARAMS,
     (void (*)(void))dkm_skey_imp_settable_params},
    {OSSL_FUNC_SKEYMGMT_EXPORT, (void (*)(void))dkm_skey_export},
    {0, NULL},
};

#endif
