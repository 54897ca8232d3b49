/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TEXT encoder for DKM keys: what `openssl storeutl -text` and `openssl
 * pkey -text -noout` print. It describes the key (group, version, key id,
 * policy, expiry) and never its bytes, which the key object does not hold.
 */
#include <stdio.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>

#include "keyobj.h"
#include "provider.h"

static OSSL_FUNC_encoder_newctx_fn dkm_text_newctx;
static OSSL_FUNC_encoder_freectx_fn dkm_text_freectx;
static OSSL_FUNC_encoder_does_selection_fn dkm_text_does_selection;
static OSSL_FUNC_encoder_encode_fn dkm_text_encode;

static void *dkm_text_newctx(void *provctx)
{
    /* The provider context is all the encoder needs. */
    return provctx;
}

static void dkm_text_freectx(void *vctx)
{
    (void)vctx;
}

static int dkm_text_does_selection(void *provctx, int selection)
{
    (void)provctx;
    return (selection & OSSL_KEYMGMT_SELECT_ALL) != 0 || selection == 0;
}

static void format_time(uint64_t t, char *out, size_t out_size)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (t == 0 || gmtime_r(&tt, &tm) == NULL) {
        snprintf(out, out_size, "never");
        return;
    }
    strftime(out, out_size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int dkm_text_encode(void *vctx, OSSL_CORE_BIO *cout, const void *obj_raw,
                           const OSSL_PARAM obj_abstract[], int selection,
                           OSSL_PASSPHRASE_CALLBACK *cb, void *cbarg)
{
    struct dkm_prov_ctx *prov = vctx;
    const struct dkm_keyobj *obj = obj_raw;
    char not_after[32], cache_until[32];
    BIO *out = NULL;
    int ok = 0;

    (void)selection;
    (void)cb;
    (void)cbarg;
    if (obj == NULL || obj_abstract != NULL || obj->magic != DKM_KEYOBJ_MAGIC) {
        DKM_RAISE(prov, DKM_R_BAD_PARAM,
                  "the TEXT encoder takes DKM keys of this provider");
        return 0;
    }
    out = BIO_new_from_core_bio(prov->libctx, cout);
    if (out == NULL) {
        DKM_RAISE(prov, DKM_R_MALLOC, "cannot open the output");
        return 0;
    }
    format_time(obj->info.not_after, not_after, sizeof(not_after));
    format_time(obj->cache_until, cache_until, sizeof(cache_until));
    if (BIO_printf(out,
                   "DKM group key (held by the dkm provider; key material not shown)\n"
                   "    URI:          dkm:%s/%u%s\n"
                   "    group:        %s\n"
                   "    version:      %u (current: %u)\n"
                   "    key id:       %s\n"
                   "    algorithm:    AES-256-GCM (256 bits)\n"
                   "    policy:       %s\n"
                   "    not after:    %s\n"
                   "    cached until: %s\n",
                   obj->group, obj->version, obj->pinned ? "" : " (loaded as current)",
                   obj->group, obj->version, obj->info.current_version, obj->key_id,
                   obj->info.policy[0] != '\0' ? obj->info.policy : "-", not_after,
                   cache_until) <= 0) {
        DKM_RAISE(prov, DKM_R_INTERNAL, "cannot write the key description");
        goto done;
    }
    ok = 1;
done:
    BIO_free(out);
    return ok;
}

const OSSL_DISPATCH dkm_text_encoder_functions[] = {
    {OSSL_FUNC_ENCODER_NEWCTX, (void (*)(void))dkm_text_newctx},
    {OSSL_FUNC_ENCODER_FREECTX, (void (*)(void))dkm_text_freectx},
    {OSSL_FUNC_ENCODER_DOES_SELECTION, (void (*)(void))dkm_text_does_selection},
    {OSSL_FUNC_ENCODER_ENCODE, (void (*)(void))dkm_text_encode},
    {0, NULL},
};
