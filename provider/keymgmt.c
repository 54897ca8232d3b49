/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Key manager DKM: key objects that name a group key version (keyobj.h),
 * loaded from store references, described by parameters, and never
 * exported: the key bytes stay in the provider's cache.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/params.h>

#include "dkm/data/protect.h"
#include "keyobj.h"
#include "provider.h"

static OSSL_FUNC_keymgmt_load_fn dkm_keymgmt_load;
static OSSL_FUNC_keymgmt_free_fn dkm_keymgmt_free;
static OSSL_FUNC_keymgmt_dup_fn dkm_keymgmt_dup;
static OSSL_FUNC_keymgmt_has_fn dkm_keymgmt_has;
static OSSL_FUNC_keymgmt_match_fn dkm_keymgmt_match;
static OSSL_FUNC_keymgmt_get_params_fn dkm_keymgmt_get_params;
static OSSL_FUNC_keymgmt_gettable_params_fn dkm_keymgmt_gettable_params;
static OSSL_FUNC_keymgmt_export_fn dkm_keymgmt_export;
static OSSL_FUNC_keymgmt_export_types_fn dkm_keymgmt_export_types;
static OSSL_FUNC_keymgmt_query_operation_name_fn dkm_keymgmt_query_operation_name;

int dkm_keyobj_open(struct dkm_prov_ctx *prov, const struct dkm_uri *uri,
                    struct dkm_keyobj **ret)
{
    struct dkm_keyobj *obj = NULL;
    struct dkm_key *key = NULL;
    int r;

    r = dkm_keycache_get(prov->cache, uri->group, uri->version, &key);
    if (r < 0) {
        DKM_RAISE_CODE(prov, r);
        return 0;
    }
    obj = OPENSSL_zalloc(sizeof(*obj));
    if (obj == NULL) {
        dkm_key_unref(key);
        DKM_RAISE(prov, DKM_R_MALLOC, "out of memory for a key object");
        return 0;
    }
    obj->magic = DKM_KEYOBJ_MAGIC;
    obj->prov = prov;
    strcpy(obj->group, uri->group);
    obj->version = key->info.version;
    obj->pinned = uri->version != DKM_VERSION_CURRENT;
    obj->info = key->info;
    memcpy(obj->key_id, key->key_id, sizeof(obj->key_id));
    obj->cache_until = key->cache_until;
    obj->refs = 1;
    dkm_key_unref(key);
    *ret = obj;
    return 1;
}

struct dkm_keyobj *dkm_keyobj_ref(struct dkm_keyobj *obj)
{
    if (obj != NULL)
        __atomic_fetch_add(&obj->refs, 1, __ATOMIC_RELAXED);
    return obj;
}

void dkm_keyobj_unref(struct dkm_keyobj *obj)
{
    if (obj == NULL || __atomic_sub_fetch(&obj->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    obj->magic = 0;
    OPENSSL_free(obj);
}

int dkm_keyobj_key(const struct dkm_keyobj *obj, uint32_t version, struct dkm_key **ret)
{
    int r;

    if (version == 0)
        version = obj->pinned ? obj->version : DKM_VERSION_CURRENT;
    r = dkm_keycache_get(obj->prov->cache, obj->group, version, ret);
    if (r < 0)
        return DKM_RAISE_CODE(obj->prov, r);
    return 1;
}

void dkm_keyobj_uri(const struct dkm_keyobj *obj, char *out, size_t out_size)
{
    snprintf(out, out_size, "dkm:%s/%u", obj->group, obj->version);
}

static void *dkm_keymgmt_load(const void *reference, size_t reference_sz)
{
    struct dkm_keyobj *obj;

    if (reference == NULL || reference_sz != sizeof(obj))
        return NULL;
    memcpy(&obj, reference, sizeof(obj));
    if (obj == NULL || obj->magic != DKM_KEYOBJ_MAGIC)
        return NULL;
    return dkm_keyobj_ref(obj);
}

static void dkm_keymgmt_free(void *keydata)
{
    dkm_keyobj_unref(keydata);
}

static void *dkm_keymgmt_dup(const void *keydata, int selection)
{
    (void)selection;
    /* Key objects are immutable: a duplicate can share the object. */
    return dkm_keyobj_ref((struct dkm_keyobj *)keydata);
}

static int dkm_keymgmt_has(const void *keydata, int selection)
{
    (void)selection;
    /* A symmetric key: whatever is asked about, the private key answers it. */
    return keydata != NULL;
}

static int dkm_keymgmt_match(const void *keydata1, const void *keydata2, int selection)
{
    const struct dkm_keyobj *a = keydata1, *b = keydata2;

    (void)selection;
    return a != NULL && b != NULL && strcmp(a->group, b->group) == 0 &&
           a->version == b->version;
}

static const OSSL_PARAM *dkm_keymgmt_gettable_params(void *provctx)
{
    static const OSSL_PARAM gettable[] = {
        OSSL_PARAM_int(OSSL_PKEY_PARAM_BITS, NULL),
        OSSL_PARAM_int(OSSL_PKEY_PARAM_SECURITY_BITS, NULL),
        OSSL_PARAM_int(OSSL_PKEY_PARAM_MAX_SIZE, NULL),
        OSSL_PARAM_utf8_string(DKM_PARAM_GROUP, NULL, 0),
        OSSL_PARAM_uint(DKM_PARAM_VERSION, NULL),
        OSSL_PARAM_utf8_string(DKM_PARAM_KEY_ID, NULL, 0),
        OSSL_PARAM_utf8_string(DKM_PARAM_URI, NULL, 0),
        OSSL_PARAM_uint64(DKM_PARAM_NOT_AFTER, NULL),
        OSSL_PARAM_uint64(DKM_PARAM_CACHE_UNTIL, NULL),
        OSSL_PARAM_END,
    };

    (void)provctx;
    return gettable;
}

static int dkm_keymgmt_get_params(void *keydata, OSSL_PARAM params[])
{
    struct dkm_keyobj *obj = keydata;
    char uri[DKM_URI_MAX + 1];
    OSSL_PARAM *p;

    if (obj == NULL)
        return 0;
    if ((p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_BITS)) != NULL &&
        !OSSL_PARAM_set_int(p, 256))
        goto bad;
    if ((p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_SECURITY_BITS)) != NULL &&
        !OSSL_PARAM_set_int(p, 256))
        goto bad;
    if ((p = OSSL_PARAM_locate(params, OSSL_PKEY_PARAM_MAX_SIZE)) != NULL &&
        !OSSL_PARAM_set_int(p, (int)DKM_PROTECT_MAX_BLOB))
        goto bad;
    if ((p = OSSL_PARAM_locate(params, DKM_PARAM_GROUP)) != NULL &&
        !OSSL_PARAM_set_utf8_string(p, obj->group))
        goto bad;
    if ((p = OSSL_PARAM_locate(params, DKM_PARAM_VERSION)) != NULL &&
        !OSSL_PARAM_set_uint(p, obj->version))
        goto bad;
    if ((p = OSSL_PARAM_locate(params, DKM_PARAM_KEY_ID)) != NULL &&
        !OSSL_PARAM_set_utf8_string(p, obj->key_id))
        goto bad;
    dkm_keyobj_uri(obj, uri, sizeof(uri));
    if ((p = OSSL_PARAM_locate(params, DKM_PARAM_URI)) != NULL &&
        !OSSL_PARAM_set_utf8_string(p, uri))
        goto bad;
    if ((p = OSSL_PARAM_locate(params, DKM_PARAM_NOT_AFTER)) != NULL &&
        !OSSL_PARAM_set_uint64(p, obj->info.not_after))
        goto bad;
    if ((p = OSSL_PARAM_locate(params, DKM_PARAM_CACHE_UNTIL)) != NULL &&
        !OSSL_PARAM_set_uint64(p, obj->cache_until))
        goto bad;
    return 1;
bad:
    DKM_RAISE(obj->prov, DKM_R_BAD_PARAM, "cannot return key parameter %s", p->key);
    return 0;
}

static const OSSL_PARAM *dkm_keymgmt_export_types(int selection)
{
    static const OSSL_PARAM none[] = {OSSL_PARAM_END};

    (void)selection;
    return none;
}

static int dkm_keymgmt_export(void *keydata, int selection, OSSL_CALLBACK *param_cb,
                              void *cbarg)
{
    struct dkm_keyobj *obj = keydata;
    OSSL_PARAM none[] = {OSSL_PARAM_END};

    if (obj == NULL)
        return 0;
    if ((selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) != 0) {
        DKM_RAISE(obj->prov, DKM_R_EXPORT_REFUSED,
                  "the key of dkm:%s/%u stays in the "
                  "provider",
                  obj->group, obj->version);
        return 0;
    }
    /* Nothing public to say: a symmetric key has no public half. */
    return param_cb(none, cbarg);
}

static const char *dkm_keymgmt_query_operation_name(int operation_id)
{
    (void)operation_id;
    return DKM_ALG_KEY;
}

const OSSL_DISPATCH dkm_keymgmt_functions[] = {
    {OSSL_FUNC_KEYMGMT_LOAD, (void (*)(void))dkm_keymgmt_load},
    {OSSL_FUNC_KEYMGMT_FREE, (void (*)(void))dkm_keymgmt_free},
    {OSSL_FUNC_KEYMGMT_DUP, (void (*)(void))dkm_keymgmt_dup},
    {OSSL_FUNC_KEYMGMT_HAS, (void (*)(void))dkm_keymgmt_has},
    {OSSL_FUNC_KEYMGMT_MATCH, (void (*)(void))dkm_keymgmt_match},
    {OSSL_FUNC_KEYMGMT_GET_PARAMS, (void (*)(void))dkm_keymgmt_get_params},
    {OSSL_FUNC_KEYMGMT_GETTABLE_PARAMS, (void (*)(void))dkm_keymgmt_gettable_params},
    {OSSL_FUNC_KEYMGMT_EXPORT, (void (*)(void))dkm_keymgmt_export},
    {OSSL_FUNC_KEYMGMT_EXPORT_TYPES, (void (*)(void))dkm_keymgmt_export_types},
    {OSSL_FUNC_KEYMGMT_QUERY_OPERATION_NAME,
     (void (*)(void))dkm_keymgmt_query_operation_name},
    {0, NULL},
};
