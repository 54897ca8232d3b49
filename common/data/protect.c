/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The protect blob (include/dkm/data/protect.h): header encoding and parsing,
 * and AES-256-GCM sealing and opening with the header as AAD. Opening
 * decrypts into a scratch buffer so that a caller's buffer never holds
 * plaintext that failed authentication.
 */
#include "dkm/data/protect.h"

#include <errno.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "dkm/base/codec.h"
#include "dkm/base/secmem.h"

/* Delegated algorithms never come from the dkm provider itself. */
#define GCM_PROPQ "provider!=dkm"

size_t dkm_protect_blob_size(const char *group, size_t pt_len)
{
    size_t glen = group != NULL ? strlen(group) : 0;

    if (!dkm_group_valid(group, glen) || pt_len > DKM_PROTECT_MAX_PLAINTEXT)
        return 0;
    return DKM_PROTECT_HEADER_FIXED + glen + pt_len + DKM_PROTECT_TAG_LEN;
}

int dkm_protect_parse_header(const uint8_t *blob, size_t len,
                             struct dkm_protect_header *ret)
{
    struct dkm_cursor c = dkm_cursor_init(blob, len);
    struct dkm_protect_header h = {0};
    const uint8_t *magic, *group;
    uint8_t format, glen;

    if (blob == NULL || !dkm_get_ref(&c, 4, &magic) ||
        memcmp(magic, DKM_PROTECT_MAGIC, 4) != 0)
        return dkm_error_set(DKM_E_FORMAT, "not a dkm protect blob (bad magic)");
    if (!dkm_get_u8(&c, &format) || format != DKM_PROTECT_FORMAT)
        return dkm_error_set(DKM_E_FORMAT, "protect blob format %u is not supported",
                             (unsigned)format);
    if (!dkm_get_u8(&c, &h.flags) || (h.flags & ~DKM_PROTECT_FLAG_AAD) != 0)
        return dkm_error_set(DKM_E_FORMAT, "protect blob has unknown flags 0x%02x",
                             (unsigned)h.flags);
    if (!dkm_get_u8(&c, &glen) || glen == 0 || glen > DKM_GROUP_MAX ||
        !dkm_get_ref(&c, glen, &group) || !dkm_group_valid((const char *)group, glen))
        return dkm_error_set(DKM_E_FORMAT, "protect blob has an invalid group name");
    memcpy(h.group, group, glen);
    h.group[glen] = '\0';
    if (!dkm_get_u32be(&c, &h.version) || h.version == 0)
        return dkm_error_set(DKM_E_FORMAT, "protect blob has an invalid key version");
    if (!dkm_get_bytes(&c, h.nonce, sizeof(h.nonce)))
        return dkm_error_set(DKM_E_FORMAT, "protect blob is truncated in its header");
    if (c.left < DKM_PROTECT_TAG_LEN)
        return dkm_error_set(DKM_E_FORMAT, "protect blob is too short for its tag");
    h.header_len = len - c.left;
    h.plaintext_len = c.left - DKM_PROTECT_TAG_LEN;
    if (h.plaintext_len > DKM_PROTECT_MAX_PLAINTEXT)
        return dkm_error_set(DKM_E_FORMAT, "protect blob is larger than %u bytes",
                             DKM_PROTECT_MAX_PLAINTEXT);
    *ret = h;
    return 0;
}

/* Header bytes for group/version/flags/nonce into w. */
static bool put_header(struct dkm_writer *w, const char *group, uint32_t version,
                       uint8_t flags, const uint8_t *nonce)
{
    size_t glen = strlen(group);

    dkm_put_bytes(w, DKM_PROTECT_MAGIC, 4);
    dkm_put_u8(w, DKM_PROTECT_FORMAT);
    dkm_put_u8(w, flags);
    dkm_put_u8(w, (uint8_t)glen);
    dkm_put_bytes(w, group, glen);
    dkm_put_u32be(w, version);
    dkm_put_bytes(w, nonce, DKM_PROTECT_NONCE_LEN);
    return dkm_writer_ok(w);
}

/* One GCM pass; enc selects the direction. tag is written (enc) or checked. */
static int gcm_run(OSSL_LIB_CTX *libctx, EVP_CIPHER *given, bool enc, const uint8_t *key,
                   const uint8_t *nonce, const uint8_t *hdr, size_t hdr_len,
                   const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t in_len,
                   uint8_t *out, uint8_t *tag)
{
    EVP_CIPHER *gcm = NULL;
    EVP_CIPHER_CTX *cctx = NULL;
    int r = DKM_E_CRYPTO, n, fin;
    size_t done = 0;

    if (given != NULL && EVP_CIPHER_up_ref(given))
        gcm = given;
    else if (given == NULL)
        gcm = EVP_CIPHER_fetch(libctx, "AES-256-GCM", GCM_PROPQ);
    cctx = EVP_CIPHER_CTX_new();
    if (gcm == NULL || cctx == NULL) {
        r = dkm_error_set(DKM_E_CRYPTO, "AES-256-GCM is not available");
        goto done;
    }
    if (!EVP_CipherInit_ex2(cctx, gcm, key, nonce, enc ? 1 : 0, NULL) ||
        !EVP_CipherUpdate(cctx, NULL, &n, hdr, (int)hdr_len) ||
        (aad_len > 0 && !EVP_CipherUpdate(cctx, NULL, &n, aad, (int)aad_len))) {
        r = dkm_error_set(DKM_E_CRYPTO, "AES-256-GCM setup failed");
        goto done;
    }
    /* EVP takes int lengths: feed large inputs in slices. */
    while (done < in_len) {
        size_t take = in_len - done > (1u << 30) ? (1u << 30) : in_len - done;

        if (!EVP_CipherUpdate(cctx, out + done, &n, in + done, (int)take)) {
            r = dkm_error_set(DKM_E_CRYPTO, "AES-256-GCM failed");
            goto done;
        }
        done += take;
    }
    if (!enc &&
        !EVP_CIPHER_CTX_ctrl(cctx, EVP_CTRL_GCM_SET_TAG, DKM_PROTECT_TAG_LEN, tag)) {
        r = dkm_error_set(DKM_E_CRYPTO, "AES-256-GCM tag setup failed");
        goto done;
    }
    fin = EVP_CipherFinal_ex(cctx, out + done, &n);
    if (!fin) {
        r = enc ? dkm_error_set(DKM_E_CRYPTO, "AES-256-GCM failed")
                : dkm_error_set(DKM_E_INTEGRITY,
                                "protect blob does not authenticate: wrong key or AAD, "
                                "or the blob was changed");
        goto done;
    }
    if (enc &&
        !EVP_CIPHER_CTX_ctrl(cctx, EVP_CTRL_GCM_GET_TAG, DKM_PROTECT_TAG_LEN, tag)) {
        r = dkm_error_set(DKM_E_CRYPTO, "AES-256-GCM tag retrieval failed");
        goto done;
    }
    r = 0;
done:
    EVP_CIPHER_CTX_free(cctx);
    EVP_CIPHER_free(gcm);
    return r;
}

int dkm_protect_seal(OSSL_LIB_CTX *libctx, EVP_CIPHER *gcm, const uint8_t *key,
                     const char *group, uint32_t version, const uint8_t *aad,
                     size_t aad_len, const uint8_t *nonce, const uint8_t *pt,
                     size_t pt_len, uint8_t *out, size_t out_size, size_t *ret_len)
{
    uint8_t nonce_buf[DKM_PROTECT_NONCE_LEN];
    struct dkm_writer w;
    size_t size;
    int r = -EINVAL;

    if (key == NULL || group == NULL || version == 0 || (pt == NULL && pt_len > 0) ||
        (aad == NULL && aad_len > 0) || aad_len > DKM_PROTECT_MAX_AAD || out == NULL) {
        r = dkm_error_set(-EINVAL, "invalid arguments to protect");
        goto done;
    }
    size = dkm_protect_blob_size(group, pt_len);
    if (size == 0) {
        r = dkm_error_set(-EINVAL, "cannot protect %zu bytes under group \"%.64s\"",
                          pt_len, group);
        goto done;
    }
    if (out_size < size) {
        r = dkm_error_set(-ENOSPC, "protect needs %zu bytes of output, got %zu", size,
                          out_size);
        goto done;
    }
    if (nonce == NULL) {
        if (RAND_bytes_ex(libctx, nonce_buf, sizeof(nonce_buf), 0) != 1) {
            r = dkm_error_set(DKM_E_CRYPTO, "no random bytes for the nonce");
            goto done;
        }
        nonce = nonce_buf;
    }
    w = dkm_writer_init(out, out_size);
    if (!put_header(&w, group, version, aad_len > 0 ? DKM_PROTECT_FLAG_AAD : 0, nonce)) {
        r = dkm_error_set(-ENOSPC, "protect header does not fit");
        goto done;
    }
    r = gcm_run(libctx, gcm, true, key, nonce, out, w.len, aad, aad_len, pt, pt_len,
                out + w.len, out + w.len + pt_len);
    if (r < 0) {
        OPENSSL_cleanse(out, size);
        goto done;
    }
    *ret_len = size;
    r = 0;
done:
    return r;
}

int dkm_protect_open(OSSL_LIB_CTX *libctx, EVP_CIPHER *gcm, const uint8_t *key,
                     const struct dkm_protect_header *hdr, const uint8_t *blob,
                     size_t len, const uint8_t *aad, size_t aad_len, uint8_t *out,
                     size_t out_size, size_t *ret_len)
{
    uint8_t *tmp = NULL;
    uint8_t tag[DKM_PROTECT_TAG_LEN];
    size_t n;
    int r = -EINVAL;

    if (key == NULL || hdr == NULL || blob == NULL ||
        hdr->header_len + hdr->plaintext_len + DKM_PROTECT_TAG_LEN != len ||
        (aad == NULL && aad_len > 0) || aad_len > DKM_PROTECT_MAX_AAD) {
        r = dkm_error_set(-EINVAL, "invalid arguments to unprotect");
        goto done;
    }
    if (((hdr->flags & DKM_PROTECT_FLAG_AAD) != 0) != (aad_len > 0)) {
        r = dkm_error_set(DKM_E_INTEGRITY, hdr->flags & DKM_PROTECT_FLAG_AAD
                                               ? "blob was protected with AAD; none given"
                                               : "blob was protected without AAD");
        goto done;
    }
    n = hdr->plaintext_len;
    if (out_size < n || (out == NULL && n > 0)) {
        r = dkm_error_set(-ENOSPC, "unprotect needs %zu bytes of output, got %zu", n,
                          out_size);
        goto done;
    }
    /* +1: a zero-length allocation may legitimately return NULL. */
    tmp = OPENSSL_malloc(n + 1);
    if (tmp == NULL) {
        r = dkm_error_set(-ENOMEM, "out of memory for %zu bytes of plaintext", n);
        goto done;
    }
    memcpy(tag, blob + hdr->header_len + n, sizeof(tag));
    r = gcm_run(libctx, gcm, false, key, hdr->nonce, blob, hdr->header_len, aad, aad_len,
                blob + hdr->header_len, n, tmp, tag);
    if (r < 0)
        goto done;
    if (n > 0)
        memcpy(out, tmp, n);
    *ret_len = n;
    r = 0;
done:
    OPENSSL_clear_free(tmp, hdr != NULL ? hdr->plaintext_len + 1 : 0);
    return r;
}
