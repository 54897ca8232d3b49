/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TPM object files: an object created under the SRK (the server signing
 * key, the local cache key) kept on disk as its public and private blobs
 * together with the name of the SRK it belongs to, and the small atomic
 * file helpers those state files need.
 */
#include "dkm/tpm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>

#include "dkm/secmem.h"

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

int dkm_file_read(const char *path, size_t max, uint8_t **ret, size_t *ret_len)
{
    struct stat st;
    uint8_t *buf = NULL;
    size_t got = 0;
    int fd = -1, r = -EIO;

    if (path == NULL || ret == NULL || ret_len == NULL)
        return dkm_error_set(-EINVAL, "dkm_file_read: missing argument");
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        r = -errno;
        r = dkm_error_set(r, "cannot open %s: %s", path, strerror(-r));
        goto done;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        r = dkm_error_set(-EINVAL, "%s is not a regular file", path);
        goto done;
    }
    if ((uint64_t)st.st_size > max) {
        r = dkm_error_set(DKM_E_FORMAT, "%s is %lld bytes, more than %zu", path,
                          (long long)st.st_size, max);
        goto done;
    }
    /* One byte more than the limit, to notice a file that grew. */
    buf = malloc(max + 1);
    if (buf == NULL) {
        r = dkm_error_set(-ENOMEM, "out of memory reading %s", path);
        goto done;
    }
    for (;;) {
        ssize_t n = read(fd, buf + got, max + 1 - got);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = -errno;
            r = dkm_error_set(r, "cannot read %s: %s", path, strerror(-r));
            goto done;
        }
        if (n == 0)
            break;
        got += (size_t)n;
        if (got > max) {
            r = dkm_error_set(DKM_E_FORMAT, "%s is more than %zu bytes", path, max);
            goto done;
        }
    }
    *ret = buf;
    *ret_len = got;
    buf = NULL;
    r = 0;
done:
    free(buf);
    if (fd >= 0)
        close(fd);
    return r;
}

int dkm_file_write(const char *path, const void *data, size_t len, mode_t mode,
                   bool overwrite)
{
    char *tmp = NULL, *dir = NULL, *slash;
    size_t plen;
    int fd = -1, dfd = -1, r = -EIO;
    size_t done_len = 0;

    if (path == NULL || (data == NULL && len > 0))
        return dkm_error_set(-EINVAL, "dkm_file_write: missing argument");
    plen = strlen(path);
    tmp = malloc(plen + sizeof(".tmp.XXXXXX"));
    dir = strdup(path);
    if (tmp == NULL || dir == NULL) {
        r = dkm_error_set(-ENOMEM, "out of memory writing %s", path);
        goto done;
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp.XXXXXX", sizeof(".tmp.XXXXXX"));
    fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        r = -errno;
        r = dkm_error_set(r, "cannot create a file next to %s: %s", path, strerror(-r));
        free(tmp);
        tmp = NULL;
        goto done;
    }
    if (fchmod(fd, mode) < 0) {
        r = -errno;
        r = dkm_error_set(r, "cannot set the mode of %s: %s", tmp, strerror(-r));
        goto done;
    }
    while (done_len < len) {
        ssize_t n = write(fd, (const uint8_t *)data + done_len, len - done_len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = -errno;
            r = dkm_error_set(r, "cannot write %s: %s", tmp, strerror(-r));
            goto done;
        }
        done_len += (size_t)n;
    }
    if (fsync(fd) < 0) {
        r = -errno;
        r = dkm_error_set(r, "cannot sync %s: %s", tmp, strerror(-r));
        goto done;
    }
    /* The file appears complete or not at all; without overwrite, link()
     * refuses an existing file atomically, also against a concurrent
     * writer. */
    if (overwrite) {
        if (rename(tmp, path) < 0) {
            r = -errno;
            r = dkm_error_set(r, "cannot rename %s to %s: %s", tmp, path, strerror(-r));
            goto done;
        }
    } else {
        if (link(tmp, path) < 0) {
            r = -errno;
            r = dkm_error_set(r, "cannot create %s: %s", path, strerror(-r));
            goto done;
        }
        (void)unlink(tmp);
    }
    free(tmp);
    tmp = NULL;
    slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = '\0';
    else if (slash != NULL)
        *slash = '\0';
    dfd = open(slash != NULL ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0)
        (void)fsync(dfd);
    r = 0;
done:
    if (fd >= 0)
        close(fd);
    if (dfd >= 0)
        close(dfd);
    if (tmp != NULL) {
        (void)unlink(tmp);
        free(tmp);
    }
    free(dir);
    return r;
}
