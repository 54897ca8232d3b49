/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TPM object files: an object created under the SRK (the server signing
 * key, the local cache key) kept on disk as its public and private blobs
 * together with the name of the SRK it belongs to, and the small atomic
 * file helpers those state files need.
 */
#include "dkm/tpm/tpm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>

#include "dkm/base/secmem.h"

#define DKM_TPM_OBJECT_VERSION 1
#define DKM_TPM_OBJECT_NAME_MIN 34 /* SHA-256 name */
#define DKM_TPM_OBJECT_NAME_MAX ((size_t)sizeof(TPMU_NAME))

int dkm_tpm_object_encode(uint32_t magic, const struct dkm_tpm_object *obj, uint8_t **ret,
                          size_t *ret_len)
{
    uint8_t *buf = NULL;
    size_t off = 0;
    TSS2_RC rc;
    int r = -ENOMEM;

    if (obj == NULL || ret == NULL || ret_len == NULL)
        return dkm_error_set(-EINVAL, "dkm_tpm_object_encode: missing argument");
    buf = malloc(DKM_TPM_OBJECT_FILE_MAX);
    if (buf == NULL)
        return dkm_error_set(-ENOMEM, "out of memory for a TPM object file");
    rc = Tss2_MU_UINT32_Marshal(magic, buf, DKM_TPM_OBJECT_FILE_MAX, &off);
    if (rc == TSS2_RC_SUCCESS)
        rc = Tss2_MU_UINT16_Marshal(DKM_TPM_OBJECT_VERSION, buf, DKM_TPM_OBJECT_FILE_MAX,
                                    &off);
    if (rc == TSS2_RC_SUCCESS)
        rc = Tss2_MU_TPM2B_NAME_Marshal(&obj->parent, buf, DKM_TPM_OBJECT_FILE_MAX, &off);
    if (rc == TSS2_RC_SUCCESS)
        rc = Tss2_MU_TPM2B_PUBLIC_Marshal(&obj->pub, buf, DKM_TPM_OBJECT_FILE_MAX, &off);
    if (rc == TSS2_RC_SUCCESS)
        rc =
            Tss2_MU_TPM2B_PRIVATE_Marshal(&obj->priv, buf, DKM_TPM_OBJECT_FILE_MAX, &off);
    if (rc != TSS2_RC_SUCCESS) {
        r = dkm_error_set(DKM_E_FORMAT, "cannot encode a TPM object: %s",
                          Tss2_RC_Decode(rc));
        goto done;
    }
    *ret = buf;
    *ret_len = off;
    buf = NULL;
    r = 0;
done:
    free(buf);
    return r;
}

int dkm_tpm_object_decode(uint32_t magic, const char *what, const uint8_t *buf,
                          size_t len, struct dkm_tpm_object *ret)
{
    struct dkm_tpm_object obj;
    uint8_t again[sizeof(TPM2B_PUBLIC)];
    size_t off = 0, start, again_len = 0;
    uint32_t got_magic;
    uint16_t version, size;
    TSS2_RC rc;

    if (buf == NULL || ret == NULL)
        return dkm_error_set(-EINVAL, "dkm_tpm_object_decode: missing argument");
    if (what == NULL)
        what = "TPM object file";
    memset(&obj, 0, sizeof(obj));
    if (len > DKM_TPM_OBJECT_FILE_MAX)
        return dkm_error_set(DKM_E_FORMAT, "%s: %zu bytes, more than %u", what, len,
                             (unsigned)DKM_TPM_OBJECT_FILE_MAX);
    if (Tss2_MU_UINT32_Unmarshal(buf, len, &off, &got_magic) != TSS2_RC_SUCCESS ||
        got_magic != magic)
        return dkm_error_set(DKM_E_FORMAT, "%s: bad magic", what);
    if (Tss2_MU_UINT16_Unmarshal(buf, len, &off, &version) != TSS2_RC_SUCCESS)
        return dkm_error_set(DKM_E_FORMAT, "%s: truncated before the version", what);
    if (version != DKM_TPM_OBJECT_VERSION)
        return dkm_error_set(DKM_E_FORMAT, "%s: unknown version %u", what,
                             (unsigned)version);

    /* Each TPM2B is bounded here before the TSS unmarshals it, so the
     * messages say which field is wrong. */
    if (Tss2_MU_UINT16_Unmarshal(buf, len, &(size_t){off}, &size) != TSS2_RC_SUCCESS ||
        size < DKM_TPM_OBJECT_NAME_MIN || size > DKM_TPM_OBJECT_NAME_MAX ||
        size > len - off - 2)
        return dkm_error_set(DKM_E_FORMAT, "%s: parent name length is wrong", what);
    rc = Tss2_MU_TPM2B_NAME_Unmarshal(buf, len, &off, &obj.parent);
    if (rc != TSS2_RC_SUCCESS)
        return dkm_error_set(DKM_E_FORMAT, "%s: bad parent name", what);

    start = off;
    if (Tss2_MU_UINT16_Unmarshal(buf, len, &(size_t){off}, &size) != TSS2_RC_SUCCESS ||
        size == 0 || size > sizeof(TPMT_PUBLIC) || size > len - off - 2)
        return dkm_error_set(DKM_E_FORMAT, "%s: public area length is wrong", what);
    rc = Tss2_MU_TPM2B_PUBLIC_Unmarshal(buf, len, &off, &obj.pub);
    if (rc != TSS2_RC_SUCCESS || off - start != (size_t)size + 2)
        return dkm_error_set(DKM_E_FORMAT, "%s: bad public area", what);
    /* Only the canonical encoding is accepted: no field may hide bytes
     * that the TSS would silently drop. */
    if (Tss2_MU_TPM2B_PUBLIC_Marshal(&obj.pub, again, sizeof(again), &again_len) !=
            TSS2_RC_SUCCESS ||
        again_len != off - start || memcmp(again, buf + start, again_len) != 0)
        return dkm_error_set(DKM_E_FORMAT, "%s: public area is not canonically encoded",
                             what);

    if (Tss2_MU_UINT16_Unmarshal(buf, len, &(size_t){off}, &size) != TSS2_RC_SUCCESS ||
        size == 0 || size > sizeof(obj.priv.buffer) || size > len - off - 2)
        return dkm_error_set(DKM_E_FORMAT, "%s: private blob length is wrong", what);
    rc = Tss2_MU_TPM2B_PRIVATE_Unmarshal(buf, len, &off, &obj.priv);
    if (rc != TSS2_RC_SUCCESS)
        return dkm_error_set(DKM_E_FORMAT, "%s: bad private blob", what);
    if (off != len)
        return dkm_error_set(DKM_E_FORMAT, "%s: %zu trailing bytes", what, len - off);
    *ret = obj;
    return 0;
}

int dkm_tpm_object_write(const char *path, uint32_t magic,
                         const struct dkm_tpm_object *obj, bool overwrite)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int r;

    r = dkm_tpm_object_encode(magic, obj, &buf, &len);
    if (r < 0)
        return r;
    r = dkm_file_write(path, buf, len, 0600, overwrite);
    free(buf);
    return r;
}

int dkm_tpm_object_read(const char *path, uint32_t magic, const char *what,
                        struct dkm_tpm_object *ret)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int r;

    r = dkm_file_read(path, DKM_TPM_OBJECT_FILE_MAX, &buf, &len);
    if (r < 0)
        return r;
    r = dkm_tpm_object_decode(magic, what, buf, len, ret);
    free(buf);
    if (r < 0) {
        char d[512];

        /* Copied first: the detail buffer is the one being written. */
        snprintf(d, sizeof(d), "%s", dkm_error_detail());
        return dkm_error_set(r, "%s: %s", path, d);
    }
    return 0;
}

int dkm_tpm_object_create(struct dkm_tpm *tpm, const TPM2B_PUBLIC *tmpl,
                          const TPM2B_SENSITIVE_DATA *data, struct dkm_tpm_object *ret)
{
    TPM2B_SENSITIVE_CREATE sens;
    TPM2B_DATA outside;
    TPML_PCR_SELECTION pcrs;
    TPM2B_PUBLIC *pub = NULL;
    TPM2B_PRIVATE *priv = NULL;
    ESYS_TR srk = ESYS_TR_NONE, session = ESYS_TR_NONE;
    struct dkm_tpm_object obj;
    TSS2_RC rc;
    int r = DKM_E_TPM;

    if (tpm == NULL || tmpl == NULL || ret == NULL)
        return dkm_error_set(-EINVAL, "dkm_tpm_object_create: missing argument");
    memset(&sens, 0, sizeof(sens));
    memset(&outside, 0, sizeof(outside));
    memset(&pcrs, 0, sizeof(pcrs));
    memset(&obj, 0, sizeof(obj));
    if (data != NULL)
        sens.sensitive.data = *data;
    dkm_tpm_lock(tpm);
    r = dkm_tpm_srk_load(tpm, &srk, NULL, &obj.parent);
    if (r < 0)
        goto done;
    /* The sensitive data travels encrypted to the TPM. */
    r = dkm_tpm_encrypted_session(tpm, srk, &session);
    if (r < 0)
        goto done;
    rc = Esys_Create(dkm_tpm_esys(tpm), srk, session, ESYS_TR_NONE, ESYS_TR_NONE, &sens,
                     tmpl, &outside, &pcrs, &priv, &pub, NULL, NULL, NULL);
    DKM_TPM_CHECK(rc, "Create under the SRK", r, done);
    obj.pub = *pub;
    obj.priv = *priv;
    *ret = obj;
    r = 0;
done:
    dkm_memzero(&sens, sizeof(sens));
    dkm_tpm_flush(tpm, &session);
    dkm_tpm_flush(tpm, &srk);
    dkm_tpm_unlock(tpm);
    Esys_Free(pub);
    Esys_Free(priv);
    return r;
}

int dkm_tpm_object_load(struct dkm_tpm *tpm, const struct dkm_tpm_object *obj,
                        ESYS_TR *ret)
{
    ESYS_TR srk = ESYS_TR_NONE, handle = ESYS_TR_NONE;
    TPM2B_NAME name;
    TSS2_RC rc;
    int r = DKM_E_TPM;

    if (tpm == NULL || obj == NULL || ret == NULL)
        return dkm_error_set(-EINVAL, "dkm_tpm_object_load: missing argument");
    dkm_tpm_lock(tpm);
    r = dkm_tpm_srk_load(tpm, &srk, NULL, &name);
    if (r < 0)
        goto done;
    if (name.size != obj->parent.size ||
        memcmp(name.name, obj->parent.name, name.size) != 0) {
        r = dkm_error_set(DKM_E_TPM_NOT_MINE,
                          "the object was created under another storage "
                          "root key (another TPM, or the TPM was "
                          "cleared)");
        goto done;
    }
    rc = Esys_Load(dkm_tpm_esys(tpm), srk, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                   &obj->priv, &obj->pub, &handle);
    DKM_TPM_CHECK(rc, "Load under the SRK", r, done);
    *ret = handle;
    handle = ESYS_TR_NONE;
    r = 0;
done:
    dkm_tpm_flush(tpm, &handle);
    dkm_tpm_flush(tpm, &srk);
    dkm_tpm_unlock(tpm);
    return r;
}
