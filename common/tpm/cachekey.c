/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The local cache key: created once as random bytes sealed under the
 * SRK, unsealed once per process into secure memory. Both directions go
 * through a salted, encrypting session, so the key is never in clear
 * between the process and the TPM.
 */
#include "dkm/tpm/cachekey.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "dkm/base/log.h"
#include "dkm/base/secmem.h"

struct dkm_cachekey {
    uint8_t *key; /* DKM_CACHEKEY_SIZE bytes of secure memory */
};

#define SEALED_ATTRIBUTES                                                                \
    (TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_USERWITHAUTH |         \
     TPMA_OBJECT_NODA)

/* A sealed data object: keyed-hash, no scheme, neither sign nor decrypt,
 * authorized by its empty auth value, bound to this TPM. */
static void sealed_template(TPM2B_PUBLIC *t)
{
    memset(t, 0, sizeof(*t));
    t->publicArea.type = TPM2_ALG_KEYEDHASH;
    t->publicArea.nameAlg = TPM2_ALG_SHA256;
    t->publicArea.objectAttributes = SEALED_ATTRIBUTES;
    t->publicArea.parameters.keyedHashDetail.scheme.scheme = TPM2_ALG_NULL;
}

static int sealed_public_check(const TPM2B_PUBLIC *pub)
{
    const TPMT_PUBLIC *p = &pub->publicArea;

    if (p->type != TPM2_ALG_KEYEDHASH || p->nameAlg != TPM2_ALG_SHA256 ||
        p->objectAttributes != SEALED_ATTRIBUTES || p->authPolicy.size != 0 ||
        p->parameters.keyedHashDetail.scheme.scheme != TPM2_ALG_NULL ||
        p->unique.keyedHash.size != 32)
        return dkm_error_set(DKM_E_FORMAT, "cache key file: the public area is not a "
                                           "sealed data object of this format");
    return 0;
}

void dkm_cachekey_free(struct dkm_cachekey *ck)
{
    if (ck == NULL)
        return;
    dkm_secmem_free(ck->key);
    free(ck);
}

const uint8_t *dkm_cachekey_bytes(const struct dkm_cachekey *ck)
{
    return ck->key;
}

/* Seal fresh random bytes; -EEXIST when another process published a file
 * first. */
static int cachekey_create(struct dkm_tpm *tpm, const char *path, uint8_t *key)
{
    TPM2B_SENSITIVE_DATA data;
    TPM2B_PUBLIC tmpl;
    struct dkm_tpm_object obj;
    int r;

    memset(&data, 0, sizeof(data));
    if (RAND_priv_bytes(key, DKM_CACHEKEY_SIZE) != 1)
        return dkm_error_set(DKM_E_CRYPTO, "no random bytes for the cache key");
    data.size = DKM_CACHEKEY_SIZE;
    memcpy(data.buffer, key, DKM_CACHEKEY_SIZE);
    sealed_template(&tmpl);
    r = dkm_tpm_object_create(tpm, &tmpl, &data, &obj);
    dkm_memzero(&data, sizeof(data));
    if (r < 0)
        return r;
    r = sealed_public_check(&obj.pub);
    if (r < 0)
        return r;
    r = dkm_tpm_object_write(path, DKM_CACHEKEY_MAGIC, &obj, /* overwrite= */ false);
    if (r == 0)
        log_info("created the cache key %s", path);
    return r;
}

static int cachekey_unseal(struct dkm_tpm *tpm, const struct dkm_tpm_object *obj,
                           uint8_t *key)
{
    ESYS_TR handle = ESYS_TR_NONE, srk = ESYS_TR_NONE, session = ESYS_TR_NONE;
    TPM2B_SENSITIVE_DATA *out = NULL;
    TSS2_RC rc;
    int r;

    r = sealed_public_check(&obj->pub);
    if (r < 0)
        return r;
    dkm_tpm_lock(tpm);
    r = dkm_tpm_object_load(tpm, obj, &handle);
    if (r < 0)
        goto done;
    r = dkm_tpm_srk_load(tpm, &srk, NULL, NULL);
    if (r < 0)
        goto done;
    r = dkm_tpm_encrypted_session(tpm, srk, &session);
    if (r < 0)
        goto done;
    /* The salt is used only when the session starts. */
    dkm_tpm_flush(tpm, &srk);
    rc =
        Esys_Unseal(dkm_tpm_esys(tpm), handle, session, ESYS_TR_NONE, ESYS_TR_NONE, &out);
    DKM_TPM_CHECK(rc, "Unseal of the cache key", r, done);
    if (out->size != DKM_CACHEKEY_SIZE) {
        r = dkm_error_set(DKM_E_FORMAT, "the sealed cache key is %u bytes, not %d",
                          (unsigned)out->size, DKM_CACHEKEY_SIZE);
        goto done;
    }
    memcpy(key, out->buffer, DKM_CACHEKEY_SIZE);
    r = 0;
done:
    if (out != NULL) {
        dkm_memzero(out, sizeof(*out));
        Esys_Free(out);
    }
    dkm_tpm_flush(tpm, &session);
    dkm_tpm_flush(tpm, &srk);
    dkm_tpm_flush(tpm, &handle);
    dkm_tpm_unlock(tpm);
    return r;
}

int dkm_cachekey_open(struct dkm_tpm *tpm, const char *dir, struct dkm_cachekey **ret)
{
    struct dkm_cachekey *ck = NULL;
    struct dkm_tpm_object obj;
    char *path = NULL;
    int r = -ENOMEM;

    if (tpm == NULL || dir == NULL || ret == NULL)
        return dkm_error_set(-EINVAL, "dkm_cachekey_open: missing argument");
    if (asprintf(&path, "%s/%s", dir, DKM_CACHEKEY_FILE) < 0) {
        path = NULL;
        return dkm_error_set(-ENOMEM, "out of memory for the cache key path");
    }
    ck = calloc(1, sizeof(*ck));
    if (ck == NULL) {
        r = dkm_error_set(-ENOMEM, "out of memory for the cache key");
        goto done;
    }
    r = dkm_secmem_alloc(DKM_CACHEKEY_SIZE, (void **)&ck->key);
    if (r < 0)
        goto done;
    r = dkm_tpm_object_read(path, DKM_CACHEKEY_MAGIC, "cache key file", &obj);
    if (r == -ENOENT) {
        dkm_error_clear();
        r = cachekey_create(tpm, path, ck->key);
        if (r == -EEXIST) {
            /* Another process was first: use its key. */
            dkm_error_clear();
            r = dkm_tpm_object_read(path, DKM_CACHEKEY_MAGIC, "cache key file", &obj);
            if (r == 0)
                r = cachekey_unseal(tpm, &obj, ck->key);
        }
    } else if (r == 0) {
        r = cachekey_unseal(tpm, &obj, ck->key);
    }
    if (r < 0)
        goto done;
    *ret = ck;
    ck = NULL;
    r = 0;
done:
    dkm_cachekey_free(ck);
    free(path);
    return r;
}
