/* SPDX-License-Identifier: Apache-2.0 */
/*
 * OpenSSL 3.5+ only: the symmetric key manager DKM, so that `openssl enc
 * -DKM-AES-256-GCM -skeymgmt DKM -skeyopt uri:dkm:GROUP` (and
 * EVP_SKEY_import with a "uri" parameter) can name the key of
 * DKM-AES-256-GCM directly instead of passing the URI as -K hex. The key
 * data is only the parsed URI; the key bytes stay in the cache as with
 * every other operation, so nothing secret can be exported from here.
 * OpenSSL 3.0 has no EVP_SKEY, so this file compiles to nothing there.
 *
 * Written against the 3.5 interface (provider-skeymgmt(7)): libcrypto
 * accepts a key manager only if it has free, import and export; import
 * allocates the key data; `openssl enc` types each -skeyopt name:value by
 * the import settable parameters, so "uri" must be declared there.
 */
#include <openssl/opensslv.h>

#if OPENSSL_VERSION_NUMBER >= 0x30500000L

#include <string.h>

#include <openssl/core_dispatch.h>
#include <openssl/crypto.h>
#include <openssl/params.h>

#include "dkm/base/error.h"
#include "dkm/base/uri.h"
#include "provider.h"

#define DKM_SKEY_PARAM_URI "uri"
#define DKM_SKEY_MAGIC 0x444b4d53u /* "DKMS" */

static OSSL_FUNC_skeymgmt_free_fn dkm_skey_free;
static OSSL_FUNC_skeymgmt_import_fn dkm_skey_import;
static OSSL_FUNC_skeymgmt_imp_settable_params_fn dkm_skey_imp_settable_params;
static OSSL_FUNC_skeymgmt_export_fn dkm_skey_export;
static OSSL_FUNC_skeymgmt_get_key_id_fn dkm_skey_get_key_id;

struct dkm_skey {
    uint32_t magic;
    struct dkm_prov_ctx *prov;
    struct dkm_uri uri;
    char text[DKM_URI_MAX + 1]; /* canonical form, for EVP_SKEY_get0_key_id */
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

/*
 * The selection is not looked at: a DKM key is a reference, and whatever
 * the caller asks for (enc passes OSSL_SKEYMGMT_SELECT_ALL) the "uri"
 * parameter is all there is to import.
 */
static void *dkm_skey_import(void *provctx, int selection, const OSSL_PARAM params[])
{
    struct dkm_prov_ctx *prov = provctx;
    const OSSL_PARAM *p = OSSL_PARAM_locate_const(params, DKM_SKEY_PARAM_URI);
    const char *reason = NULL;
    struct dkm_skey *k = NULL;
    size_t len;

    (void)selection;
    if (p == NULL || p->data_type != OSSL_PARAM_UTF8_STRING || p->data == NULL) {
        DKM_RAISE(prov, DKM_R_BAD_PARAM,
                  "a DKM key needs the UTF-8 parameter uri (openssl enc: -skeyopt "
                  "uri:dkm:GROUP)");
        return NULL;
    }
    /* A UTF-8 parameter need not be NUL-terminated: bound it by its size. */
    len = strnlen(p->data, p->data_size);
    k = OPENSSL_zalloc(sizeof(*k));
    if (k == NULL) {
        DKM_RAISE(prov, DKM_R_MALLOC, "out of memory for a DKM key");
        return NULL;
    }
    if (dkm_uri_parse(p->data, len, 0, &k->uri, &reason) < 0) {
        DKM_RAISE(prov, DKM_R_BAD_URI, "%.*s: %s", (int)(len > 128 ? 128 : len),
                  (const char *)p->data, reason);
        dkm_error_clear();
        OPENSSL_free(k);
        return NULL;
    }
    if (dkm_uri_format(&k->uri, k->text, sizeof(k->text)) < 0) {
        DKM_RAISE(prov, DKM_R_INTERNAL, "a parsed dkm: URI does not fit %d bytes",
                  DKM_URI_MAX);
        dkm_error_clear();
        OPENSSL_free(k);
        return NULL;
    }
    k->prov = prov;
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

/*
 * The URI is the key's only parameter and exporting it gives nothing
 * away. Raw key bytes (OSSL_SKEYMGMT_SELECT_SECRET_KEY, which is what
 * EVP_SKEY_get0_raw_key and EVP_SKEY_to_provider ask for) are refused,
 * as the asymmetric key manager refuses its private key.
 */
static int dkm_skey_export(void *keydata, int selection, OSSL_CALLBACK *param_cb,
                           void *cbarg)
{
    struct dkm_skey *k = keydata;
    OSSL_PARAM params[2];

    if (dkm_skey_uri(k) == NULL)
        return 0;
    if ((selection & OSSL_SKEYMGMT_SELECT_SECRET_KEY) != 0) {
        DKM_RAISE(k->prov, DKM_R_EXPORT_REFUSED, "the key of %s stays in the provider",
                  k->text);
        return 0;
    }
    params[0] = OSSL_PARAM_construct_utf8_string(DKM_SKEY_PARAM_URI, k->text, 0);
    params[1] = OSSL_PARAM_construct_end();
    return param_cb(params, cbarg);
}

static const char *dkm_skey_get_key_id(void *keydata)
{
    const struct dkm_skey *k = keydata;

    return dkm_skey_uri(k) != NULL ? k->text : NULL;
}

const OSSL_DISPATCH dkm_skeymgmt_functions[] = {
    {OSSL_FUNC_SKEYMGMT_FREE, (void (*)(void))dkm_skey_free},
    {OSSL_FUNC_SKEYMGMT_IMPORT, (void (*)(void))dkm_skey_import},
    {OSSL_FUNC_SKEYMGMT_IMP_SETTABLE_PARAMS,
     (void (*)(void))dkm_skey_imp_settable_params},
    {OSSL_FUNC_SKEYMGMT_EXPORT, (void (*)(void))dkm_skey_export},
    {OSSL_FUNC_SKEYMGMT_GET_KEY_ID, (void (*)(void))dkm_skey_get_key_id},
    {0, NULL},
};

#endif
