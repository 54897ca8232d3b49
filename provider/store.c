/* SPDX-License-Identifier: Apache-2.0 */
/*
 * OSSL_STORE loader for the "dkm" scheme. open() parses the URI and
 * resolves the key there, so that a bad URI or an unavailable key is
 * reported by OSSL_STORE_open with the provider's reason; load() then
 * passes a reference to a key object of type DKM, which the core hands to
 * the DKM key manager's load(). "dkm:" alone lists the groups this node
 * may use, one name object per load().
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/core_object.h>
#include <openssl/crypto.h>
#include <openssl/params.h>
#include <openssl/store.h>

#include "keyobj.h"
#include "provider.h"

#define STORE_LIST_MAX 4096

static OSSL_FUNC_store_open_fn dkm_store_open;
static OSSL_FUNC_store_settable_ctx_params_fn dkm_store_settable_ctx_params;
static OSSL_FUNC_store_set_ctx_params_fn dkm_store_set_ctx_params;
static OSSL_FUNC_store_load_fn dkm_store_load;
static OSSL_FUNC_store_eof_fn dkm_store_eof;
static OSSL_FUNC_store_close_fn dkm_store_close;

struct dkm_store_ctx {
    struct dkm_prov_ctx *prov;
    struct dkm_uri uri;
    struct dkm_keyobj *obj; /* key URI */
    char **names;           /* listing URI */
    size_t n_names;
    size_t next;
    int expect; /* OSSL_STORE_INFO_* the caller wants, 0 for any */
    bool done;
};

static void store_ctx_free(struct dkm_store_ctx *sc)
{
    if (sc == NULL)
        return;
    dkm_keyobj_unref(sc->obj);
    for (size_t i = 0; i < sc->n_names; i++)
        OPENSSL_free(sc->names[i]);
    OPENSSL_free(sc->names);
    OPENSSL_free(sc);
}

static int add_name(void *arg, const char *group)
{
    struct dkm_store_ctx *sc = arg;
    char **grown;
    char uri[DKM_URI_MAX + 1];

    if (sc->n_names == STORE_LIST_MAX)
        return dkm_error_set(-E2BIG, "more than %d groups to list", STORE_LIST_MAX);
    snprintf(uri, sizeof(uri), "dkm:%s", group);
    grown = OPENSSL_realloc(sc->names, (sc->n_names + 1) * sizeof(*grown));
    if (grown == NULL)
        return dkm_error_set(-ENOMEM, "out of memory listing groups");
    sc->names = grown;
    sc->names[sc->n_names] = OPENSSL_strdup(uri);
    if (sc->names[sc->n_names] == NULL)
        return dkm_error_set(-ENOMEM, "out of memory listing groups");
    sc->n_names++;
    return 0;
}

static void *dkm_store_open(void *provctx, const char *uri)
{
    struct dkm_prov_ctx *prov = provctx;
    struct dkm_store_ctx *sc = NULL;
    const char *reason = NULL;
    int r;

    sc = OPENSSL_zalloc(sizeof(*sc));
    if (sc == NULL) {
        DKM_RAISE(prov, DKM_R_MALLOC, "out of memory opening %.128s", uri);
        goto fail;
    }
    sc->prov = prov;
    r = dkm_uri_parse(uri, uri != NULL ? strlen(uri) : 0, DKM_URI_ALLOW_LIST, &sc->uri,
                      &reason);
    if (r < 0) {
        DKM_RAISE(prov, DKM_R_BAD_URI, "%.128s: %s", uri != NULL ? uri : "(null)",
                  reason != NULL ? reason : "not a dkm URI");
        goto fail;
    }
    if (sc->uri.list) {
        r = dkm_keycache_list(prov->cache, add_name, sc);
        if (r < 0) {
            DKM_RAISE_CODE(prov, r);
            goto fail;
        }
        return sc;
    }
    if (!dkm_keyobj_open(prov, &sc->uri, &sc->obj))
        goto fail;
    return sc;
fail:
    store_ctx_free(sc);
    return NULL;
}

static const OSSL_PARAM *dkm_store_settable_ctx_params(void *provctx)
{
    static const OSSL_PARAM settable[] = {
        OSSL_PARAM_int(OSSL_STORE_PARAM_EXPECT, NULL),
        OSSL_PARAM_END,
    };

    (void)provctx;
    return settable;
}

static int dkm_store_set_ctx_params(void *loaderctx, const OSSL_PARAM params[])
{
    struct dkm_store_ctx *sc = loaderctx;
    const OSSL_PARAM *p;

    if (params == NULL)
        return 1;
    p = OSSL_PARAM_locate_const(params, OSSL_STORE_PARAM_EXPECT);
    if (p != NULL && !OSSL_PARAM_get_int(p, &sc->expect)) {
        DKM_RAISE(sc->prov, DKM_R_BAD_PARAM, "%s must be an integer",
                  OSSL_STORE_PARAM_EXPECT);
        return 0;
    }
    return 1;
}

static int load_key(struct dkm_store_ctx *sc, OSSL_CALLBACK *object_cb,
                    void *object_cbarg)
{
    int type = OSSL_OBJECT_PKEY;
    struct dkm_keyobj *ref = sc->obj;
    char desc[DKM_URI_MAX + 32];
    OSSL_PARAM params[5];

    sc->done = true;
    if (sc->expect != 0 && sc->expect != OSSL_STORE_INFO_PKEY)
        return 1; /* nothing of the kind asked for */
    dkm_keyobj_uri(sc->obj, desc, sizeof(desc));
    params[0] = OSSL_PARAM_construct_int(OSSL_OBJECT_PARAM_TYPE, &type);
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_OBJECT_PARAM_DATA_TYPE,
                                                 (char *)DKM_ALG_KEY, 0);
    /* The reference is the object's address; the key manager takes a reference. */
    params[2] =
        OSSL_PARAM_construct_octet_string(OSSL_OBJECT_PARAM_REFERENCE, &ref, sizeof(ref));
    params[3] = OSSL_PARAM_construct_utf8_string(OSSL_OBJECT_PARAM_DESC, desc, 0);
    params[4] = OSSL_PARAM_construct_end();
    return object_cb(params, object_cbarg);
}

static int load_name(struct dkm_store_ctx *sc, OSSL_CALLBACK *object_cb,
                     void *object_cbarg)
{
    int type = OSSL_OBJECT_NAME;
    OSSL_PARAM params[3];

    if (sc->next >= sc->n_names) {
        sc->done = true;
        return 0;
    }
    if (sc->expect != 0 && sc->expect != OSSL_STORE_INFO_NAME) {
        sc->done = true;
        return 1;
    }
    params[0] = OSSL_PARAM_construct_int(OSSL_OBJECT_PARAM_TYPE, &type);
    params[1] =
        OSSL_PARAM_construct_utf8_string(OSSL_OBJECT_PARAM_DATA, sc->names[sc->next], 0);
    params[2] = OSSL_PARAM_construct_end();
    sc->next++;
    if (sc->next == sc->n_names)
        sc->done = true;
    return object_cb(params, object_cbarg);
}

static int dkm_store_load(void *loaderctx, OSSL_CALLBACK *object_cb, void *object_cbarg,
                          OSSL_PASSPHRASE_CALLBACK *pw_cb, void *pw_cbarg)
{
    struct dkm_store_ctx *sc = loaderctx;

    (void)pw_cb;
    (void)pw_cbarg;
    if (sc->done)
        return 0;
    if (sc->uri.list)
        return load_name(sc, object_cb, object_cbarg);
    return load_key(sc, object_cb, object_cbarg);
}

static int dkm_store_eof(void *loaderctx)
{
    struct dkm_store_ctx *sc = loaderctx;

    return sc->done || (sc->uri.list && sc->next >= sc->n_names);
}

static int dkm_store_close(void *loaderctx)
{
    store_ctx_free(loaderctx);
    return 1;
}

const OSSL_DISPATCH dkm_store_functions[] = {
    {OSSL_FUNC_STORE_OPEN, (void (*)(void))dkm_store_open},
    {OSSL_FUNC_STORE_SETTABLE_CTX_PARAMS, (void (*)(void))dkm_store_settable_ctx_params},
    {OSSL_FUNC_STORE_SET_CTX_PARAMS, (void (*)(void))dkm_store_set_ctx_params},
    {OSSL_FUNC_STORE_LOAD, (void (*)(void))dkm_store_load},
    {OSSL_FUNC_STORE_EOF, (void (*)(void))dkm_store_eof},
    {OSSL_FUNC_STORE_CLOSE, (void (*)(void))dkm_store_close},
    {0, NULL},
};
