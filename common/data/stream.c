/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The DKM-AES-256-GCM stream format (include/dkm/data/stream.h): a state
 * machine for each direction that never writes more than the caller's
 * output allowance, keeps constant memory, and checks every segment's tag
 * and the terminator.
 */
#include "dkm/data/stream.h"

#include <errno.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "dkm/base/codec.h"
#include "dkm/base/secmem.h"
#include "dkm/base/uri.h"

#define PROPQ "provider!=dkm"
#define PREFIX_LEN 7
#define NONCE_LEN 12
#define INFO_LABEL "dkm-stream-v1"
#define GROUP_ID_LABEL "dkm-group:"
/* Output an encryptor may hold when the caller gives less room than EVP. */
#define QUEUE_MAX 512

struct dkm_stream {
    OSSL_LIB_CTX *libctx;
    EVP_CIPHER *gcm;
    EVP_CIPHER_CTX *cctx;
    bool encrypt;
    bool started; /* encrypt: header queued; decrypt: header read and keyed */
    bool failed;
    bool finished;
    char group[DKM_GROUP_MAX + 1];
    uint32_t group_id;
    uint32_t version;
    uint8_t kind;
    size_t seg_size;
    uint8_t header[DKM_STREAM_HEADER_LEN];
    size_t header_len;
    uint8_t prefix[PREFIX_LEN];
    uint32_t seg_index;
    size_t seg_pos;
    /* encryption */
    uint8_t empty_header[DKM_STREAM_HEADER_SHORT];
    uint8_t empty_tag[DKM_STREAM_TAG_LEN];
    uint8_t queue[QUEUE_MAX];
    size_t queue_len;
    /* decryption */
    dkm_stream_key_fn get_key;
    void *get_key_arg;
    uint8_t holdback[2 * DKM_STREAM_TAG_LEN];
    size_t holdback_len;
    uint8_t tag[DKM_STREAM_TAG_LEN];
    size_t tag_got;
};

static size_t min_size(size_t a, size_t b)
{
    return a < b ? a : b;
}

static int fail(struct dkm_stream *s, int r)
{
    s->failed = true;
    return r;
}

static int group_id(OSSL_LIB_CTX *libctx, const char *group, uint32_t *ret)
{
    uint8_t buf[sizeof(GROUP_ID_LABEL) - 1 + DKM_GROUP_MAX];
    uint8_t md[EVP_MAX_MD_SIZE];
    size_t glen = strlen(group), mdlen = 0;

    memcpy(buf, GROUP_ID_LABEL, sizeof(GROUP_ID_LABEL) - 1);
    memcpy(buf + sizeof(GROUP_ID_LABEL) - 1, group, glen);
    if (!EVP_Q_digest(libctx, "SHA256", PROPQ, buf, sizeof(GROUP_ID_LABEL) - 1 + glen, md,
                      &mdlen) ||
        mdlen < 4)
        return dkm_error_set(DKM_E_CRYPTO, "SHA-256 is not available");
    *ret = (uint32_t)md[0] << 24 | (uint32_t)md[1] << 16 | (uint32_t)md[2] << 8 | md[3];
    return 0;
}

/* HKDF-SHA256 of the group key into the stream key and the nonce prefix. */
static int derive(OSSL_LIB_CTX *libctx, const uint8_t *gkey, const uint8_t *header16,
                  const uint8_t *salt, size_t salt_len, const char *group,
                  uint8_t out[DKM_STREAM_KEY_LEN + PREFIX_LEN])
{
    uint8_t info[sizeof(INFO_LABEL) - 1 + DKM_STREAM_HEADER_SHORT + DKM_GROUP_MAX];
    size_t glen = strlen(group), info_len;
    EVP_KDF *kdf = NULL;
    EVP_KDF_CTX *kctx = NULL;
    OSSL_PARAM params[5], *p = params;
    int r = DKM_E_CRYPTO;

    memcpy(info, INFO_LABEL, sizeof(INFO_LABEL) - 1);
    memcpy(info + sizeof(INFO_LABEL) - 1, header16, DKM_STREAM_HEADER_SHORT);
    memcpy(info + sizeof(INFO_LABEL) - 1 + DKM_STREAM_HEADER_SHORT, group, glen);
    info_len = sizeof(INFO_LABEL) - 1 + DKM_STREAM_HEADER_SHORT + glen;

    kdf = EVP_KDF_fetch(libctx, "HKDF", PROPQ);
    kctx = kdf != NULL ? EVP_KDF_CTX_new(kdf) : NULL;
    if (kctx == NULL) {
        r = dkm_error_set(DKM_E_CRYPTO, "HKDF is not available");
        goto done;
    }
    *p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
    *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)gkey,
                                             DKM_STREAM_KEY_LEN);
    if (salt_len > 0)
        *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt,
                                                 salt_len);
    *p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, info_len);
    *p = OSSL_PARAM_construct_end();
    if (EVP_KDF_derive(kctx, out, DKM_STREAM_KEY_LEN + PREFIX_LEN, params) != 1) {
        r = dkm_error_set(DKM_E_CRYPTO, "HKDF failed");
        goto done;
    }
    r = 0;
done:
    EVP_KDF_CTX_free(kctx);
    EVP_KDF_free(kdf);
    return r;
}

static void make_nonce(const uint8_t prefix[PREFIX_LEN], uint32_t index, uint8_t last,
                       uint8_t nonce[NONCE_LEN])
{
    memcpy(nonce, prefix, PREFIX_LEN);
    nonce[7] = (uint8_t)(index >> 24);
    nonce[8] = (uint8_t)(index >> 16);
    nonce[9] = (uint8_t)(index >> 8);
    nonce[10] = (uint8_t)index;
    nonce[11] = last;
}

/* Start GCM for a segment (last = 0) or the terminator (last = 1). */
static int start_segment(struct dkm_stream *s, uint8_t last)
{
    uint8_t nonce[NONCE_LEN];
    int n;

    make_nonce(s->prefix, s->seg_index, last, nonce);
    if (!EVP_CipherInit_ex2(s->cctx, NULL, NULL, nonce, s->encrypt ? 1 : 0, NULL) ||
        !EVP_CipherUpdate(s->cctx, NULL, &n, s->header, (int)s->header_len))
        return dkm_error_set(DKM_E_CRYPTO, "AES-256-GCM segment setup failed");
    s->seg_pos = 0;
    return 0;
}

/* Key the GCM context from a derived key and start segment 0. */
static int key_stream(struct dkm_stream *s, const uint8_t *gkey)
{
    uint8_t okm[DKM_STREAM_KEY_LEN + PREFIX_LEN];
    const uint8_t *salt = s->header + DKM_STREAM_HEADER_SHORT;
    size_t salt_len = s->kind == DKM_STREAM_KIND_DATA ? DKM_STREAM_SALT_LEN : 0;
    int r;

    r = derive(s->libctx, gkey, s->header, salt, salt_len, s->group, okm);
    if (r < 0)
        goto done;
    memcpy(s->prefix, okm + DKM_STREAM_KEY_LEN, PREFIX_LEN);
    if (!EVP_CipherInit_ex2(s->cctx, s->gcm, okm, NULL, s->encrypt ? 1 : 0, NULL)) {
        r = dkm_error_set(DKM_E_CRYPTO, "AES-256-GCM key setup failed");
        goto done;
    }
    s->seg_index = 0;
    r = start_segment(s, s->kind == DKM_STREAM_KIND_EMPTY ? 1 : 0);
done:
    dkm_memzero(okm, sizeof(okm));
    return r;
}

static void put_header16(uint8_t *h, uint8_t kind, unsigned seg_log2, uint32_t version,
                         uint32_t gid)
{
    struct dkm_writer w = dkm_writer_init(h, DKM_STREAM_HEADER_SHORT);

    dkm_put_bytes(&w, DKM_STREAM_MAGIC, 4);
    dkm_put_u8(&w, DKM_STREAM_FORMAT);
    dkm_put_u8(&w, kind);
    dkm_put_u8(&w, (uint8_t)seg_log2);
    dkm_put_u8(&w, 0);
    dkm_put_u32be(&w, version);
    dkm_put_u32be(&w, gid);
}

static int stream_alloc(OSSL_LIB_CTX *libctx, const char *group, bool encrypt,
                        struct dkm_stream **ret)
{
    struct dkm_stream *s = NULL;
    int r = -EINVAL;

    if (group == NULL || !dkm_group_valid(group, strlen(group))) {
        r = dkm_error_set(-EINVAL, "stream needs a valid group name");
        goto done;
    }
    s = OPENSSL_zalloc(sizeof(*s));
    if (s == NULL) {
        r = dkm_error_set(-ENOMEM, "out of memory for a stream");
        goto done;
    }
    s->libctx = libctx;
    s->encrypt = encrypt;
    strcpy(s->group, group);
    r = group_id(libctx, group, &s->group_id);
    if (r < 0)
        goto done;
    s->gcm = EVP_CIPHER_fetch(libctx, "AES-256-GCM", PROPQ);
    s->cctx = EVP_CIPHER_CTX_new();
    if (s->gcm == NULL || s->cctx == NULL) {
        r = dkm_error_set(DKM_E_CRYPTO, "AES-256-GCM is not available");
        goto done;
    }
    *ret = s;
    s = NULL;
    r = 0;
done:
    dkm_stream_free(s);
    return r;
}

/* The terminator tag of an empty stream, computed up front from the group key. */
static int empty_stream_tag(struct dkm_stream *s, const uint8_t *gkey, unsigned seg_log2)
{
    struct dkm_stream *e = NULL;
    int r, n;

    r = stream_alloc(s->libctx, s->group, true, &e);
    if (r < 0)
        goto done;
    e->kind = DKM_STREAM_KIND_EMPTY;
    put_header16(e->header, DKM_STREAM_KIND_EMPTY, seg_log2, s->version, s->group_id);
    e->header_len = DKM_STREAM_HEADER_SHORT;
    r = key_stream(e, gkey);
    if (r < 0)
        goto done;
    if (!EVP_CipherFinal_ex(e->cctx, e->tag, &n) ||
        !EVP_CIPHER_CTX_ctrl(e->cctx, EVP_CTRL_GCM_GET_TAG, DKM_STREAM_TAG_LEN,
                             s->empty_tag)) {
        r = dkm_error_set(DKM_E_CRYPTO, "AES-256-GCM failed");
        goto done;
    }
    memcpy(s->empty_header, e->header, DKM_STREAM_HEADER_SHORT);
    r = 0;
done:
    dkm_stream_free(e);
    return r;
}

int dkm_stream_encrypt_new(OSSL_LIB_CTX *libctx, const char *group, uint32_t version,
                           const uint8_t *key, unsigned seg_log2, struct dkm_stream **ret)
{
    struct dkm_stream *s = NULL;
    int r = -EINVAL;

    if (key == NULL || version == 0 || seg_log2 < DKM_STREAM_SEG_LOG2_MIN ||
        seg_log2 > DKM_STREAM_SEG_LOG2_MAX) {
        r = dkm_error_set(-EINVAL, "invalid stream parameters");
        goto done;
    }
    r = stream_alloc(libctx, group, true, &s);
    if (r < 0)
        goto done;
    s->version = version;
    s->seg_size = (size_t)1 << seg_log2;
    s->kind = DKM_STREAM_KIND_DATA;
    put_header16(s->header, DKM_STREAM_KIND_DATA, seg_log2, version, s->group_id);
    if (RAND_bytes_ex(libctx, s->header + DKM_STREAM_HEADER_SHORT, DKM_STREAM_SALT_LEN,
                      0) != 1) {
        r = dkm_error_set(DKM_E_CRYPTO, "no random bytes for the stream salt");
        goto done;
    }
    s->header_len = DKM_STREAM_HEADER_LEN;
    r = key_stream(s, key);
    if (r < 0)
        goto done;
    r = empty_stream_tag(s, key, seg_log2);
    if (r < 0)
        goto done;
    *ret = s;
    s = NULL;
    r = 0;
done:
    dkm_stream_free(s);
    return r;
}

int dkm_stream_decrypt_new(OSSL_LIB_CTX *libctx, const char *group, unsigned seg_log2,
                           dkm_stream_key_fn get_key, void *arg, struct dkm_stream **ret)
{
    struct dkm_stream *s = NULL;
    int r = -EINVAL;

    if (get_key == NULL || seg_log2 < DKM_STREAM_SEG_LOG2_MIN ||
        seg_log2 > DKM_STREAM_SEG_LOG2_MAX) {
        r = dkm_error_set(-EINVAL, "stream decryption needs a key source");
        goto done;
    }
    r = stream_alloc(libctx, group, false, &s);
    if (r < 0)
        goto done;
    s->get_key = get_key;
    s->get_key_arg = arg;
    s->seg_size = (size_t)1 << seg_log2;
    *ret = s;
    r = 0;
done:
    return r;
}

uint32_t dkm_stream_version(const struct dkm_stream *s)
{
    return s != NULL && (s->encrypt || s->started) ? s->version : 0;
}

void dkm_stream_free(struct dkm_stream *s)
{
    if (s == NULL)
        return;
    EVP_CIPHER_CTX_free(s->cctx);
    EVP_CIPHER_free(s->gcm);
    OPENSSL_clear_free(s, sizeof(*s));
}

/* ---- encryption ---- */

static void flush_queue(struct dkm_stream *s, uint8_t *out, size_t out_size, size_t *w)
{
    size_t d = min_size(s->queue_len, out_size - *w);

    if (d == 0)
        return;
    memcpy(out + *w, s->queue, d);
    *w += d;
    memmove(s->queue, s->queue + d, s->queue_len - d);
    s->queue_len -= d;
}

/* Append len bytes to the output: to out while the queue is empty, else queued. */
static int emit(struct dkm_stream *s, const uint8_t *p, size_t len, uint8_t *out,
                size_t out_size, size_t *w)
{
    if (s->queue_len == 0) {
        size_t d = min_size(len, out_size - *w);

        memcpy(out + *w, p, d);
        *w += d;
        p += d;
        len -= d;
    }
    if (len > QUEUE_MAX - s->queue_len)
        return dkm_error_set(-ENOSPC, "stream output exceeds the room the caller gives "
                                      "(EVP allows input length + 32 per update; feed "
                                      "updates of at most one segment, 64 KiB)");
    memcpy(s->queue + s->queue_len, p, len);
    s->queue_len += len;
    return 0;
}

/* Close the current segment: emit its tag and start the next one. */
static int close_segment(struct dkm_stream *s, uint8_t *out, size_t out_size, size_t *w)
{
    uint8_t tag[DKM_STREAM_TAG_LEN];
    int n, r;

    if (!EVP_CipherFinal_ex(s->cctx, tag, &n) ||
        !EVP_CIPHER_CTX_ctrl(s->cctx, EVP_CTRL_GCM_GET_TAG, sizeof(tag), tag))
        return dkm_error_set(DKM_E_CRYPTO, "AES-256-GCM failed");
    r = emit(s, tag, sizeof(tag), out, out_size, w);
    if (r < 0)
        return r;
    if (s->seg_index == UINT32_MAX)
        return dkm_error_set(-EFBIG, "stream has too many segments");
    s->seg_index++;
    return start_segment(s, 0);
}

static int encrypt_update(struct dkm_stream *s, const uint8_t *in, size_t in_len,
                          uint8_t *out, size_t out_size, size_t *ret_len)
{
    uint8_t scratch[256];
    size_t w = 0;
    int r, n;

    if (in_len > 0 && !s->started) {
        r = emit(s, s->header, s->header_len, out, out_size, &w);
        if (r < 0)
            return r;
        s->started = true;
    }
    flush_queue(s, out, out_size, &w);
    while (in_len > 0) {
        size_t take = min_size(in_len, s->seg_size - s->seg_pos);

        if (s->queue_len == 0 && w < out_size) {
            take = min_size(take, out_size - w);
            if (!EVP_CipherUpdate(s->cctx, out + w, &n, in, (int)take))
                return dkm_error_set(DKM_E_CRYPTO, "AES-256-GCM failed");
            w += take;
        } else {
            take = min_size(take, sizeof(scratch));
            if (!EVP_CipherUpdate(s->cctx, scratch, &n, in, (int)take))
                return dkm_error_set(DKM_E_CRYPTO, "AES-256-GCM failed");
            r = emit(s, scratch, take, out, out_size, &w);
            if (r < 0)
                return r;
        }
        in += take;
        in_len -= take;
        s->seg_pos += take;
        if (s->seg_pos == s->seg_size) {
            r = close_segment(s, out, out_size, &w);
            if (r < 0)
                return r;
        }
    }
    dkm_memzero(scratch, sizeof(scratch));
    *ret_len = w;
    return 0;
}

static int encrypt_final(struct dkm_stream *s, uint8_t *out, size_t out_size,
                         size_t *ret_len)
{
    uint8_t tag[DKM_STREAM_TAG_LEN];
    size_t need, w = 0;
    int n, r;

    if (!s->started) {
        need = DKM_STREAM_HEADER_SHORT + DKM_STREAM_TAG_LEN;
        if (out_size < need)
            return dkm_error_set(-ENOSPC, "stream final needs %zu bytes, got %zu", need,
                                 out_size);
        memcpy(out, s->empty_header, DKM_STREAM_HEADER_SHORT);
        memcpy(out + DKM_STREAM_HEADER_SHORT, s->empty_tag, DKM_STREAM_TAG_LEN);
        *ret_len = need;
        return 0;
    }
    need = s->queue_len + (s->seg_pos > 0 ? DKM_STREAM_TAG_LEN : 0) + DKM_STREAM_TAG_LEN;
    if (out_size < need)
        return dkm_error_set(-ENOSPC,
                             "stream final needs %zu bytes, got %zu (updates were larger "
                             "than EVP's output allowance lets a stream catch up with)",
                             need, out_size);
    flush_queue(s, out, out_size, &w);
    if (s->seg_pos > 0) {
        r = close_segment(s, out, out_size, &w);
        if (r < 0)
            return r;
    }
    /* close_segment started segment seg_index; the terminator takes its place. */
    r = start_segment(s, 1);
    if (r < 0)
        return r;
    if (!EVP_CipherFinal_ex(s->cctx, tag, &n) ||
        !EVP_CIPHER_CTX_ctrl(s->cctx, EVP_CTRL_GCM_GET_TAG, sizeof(tag), tag))
        return dkm_error_set(DKM_E_CRYPTO, "AES-256-GCM failed");
    r = emit(s, tag, sizeof(tag), out, out_size, &w);
    if (r < 0)
        return r;
    *ret_len = w;
    return 0;
}

/* ---- decryption ---- */

static int parse_header16(struct dkm_stream *s)
{
    struct dkm_cursor c = dkm_cursor_init(s->header, DKM_STREAM_HEADER_SHORT);
    uint8_t format = 0, log2 = 0, reserved = 0;
    uint32_t gid = 0;

    if (memcmp(s->header, DKM_STREAM_MAGIC, 4) != 0)
        return dkm_error_set(DKM_E_FORMAT, "not a DKM-AES-256-GCM stream (bad magic)");
    if (!dkm_skip(&c, 4) || !dkm_get_u8(&c, &format) || !dkm_get_u8(&c, &s->kind) ||
        !dkm_get_u8(&c, &log2) || !dkm_get_u8(&c, &reserved) ||
        !dkm_get_u32be(&c, &s->version) || !dkm_get_u32be(&c, &gid))
        return dkm_error_set(DKM_E_FORMAT, "stream header is truncated");
    if (format != DKM_STREAM_FORMAT)
        return dkm_error_set(DKM_E_FORMAT, "stream format %u is not supported",
                             (unsigned)format);
    if (s->kind != DKM_STREAM_KIND_EMPTY && s->kind != DKM_STREAM_KIND_DATA)
        return dkm_error_set(DKM_E_FORMAT, "stream kind %u is unknown",
                             (unsigned)s->kind);
    if (reserved != 0)
        return dkm_error_set(DKM_E_FORMAT, "stream header has a non-zero reserved byte");
    if (log2 >= 32 || ((size_t)1 << log2) != s->seg_size)
        return dkm_error_set(DKM_E_FORMAT,
                             "stream segment size 2^%u is not the 2^%u "
                             "this reader accepts",
                             (unsigned)log2, (unsigned)__builtin_ctzl(s->seg_size));
    if (s->version == 0)
        return dkm_error_set(DKM_E_FORMAT, "stream header has key version 0");
    if (gid != s->group_id)
        return dkm_error_set(DKM_E_DENIED,
                             "stream was made for another group, not \"%s\"", s->group);
    return 0;
}

/* Read header bytes; keys the stream once the header is complete. */
static int read_header(struct dkm_stream *s, const uint8_t **in, size_t *in_len)
{
    uint8_t gkey[DKM_STREAM_KEY_LEN];
    size_t want, take;
    int r = 0;

    while (*in_len > 0 && !s->started) {
        want = s->header_len < DKM_STREAM_HEADER_SHORT ? DKM_STREAM_HEADER_SHORT
               : s->kind == DKM_STREAM_KIND_DATA       ? DKM_STREAM_HEADER_LEN
                                                       : DKM_STREAM_HEADER_SHORT;
        take = min_size(want - s->header_len, *in_len);
        memcpy(s->header + s->header_len, *in, take);
        s->header_len += take;
        *in += take;
        *in_len -= take;
        if (s->header_len == DKM_STREAM_HEADER_SHORT && take > 0) {
            r = parse_header16(s);
            if (r < 0)
                return r;
        }
        if ((s->kind == DKM_STREAM_KIND_DATA && s->header_len == DKM_STREAM_HEADER_LEN) ||
            (s->kind == DKM_STREAM_KIND_EMPTY &&
             s->header_len == DKM_STREAM_HEADER_SHORT)) {
            r = s->get_key(s->get_key_arg, s->version, gkey);
            if (r >= 0)
                r = key_stream(s, gkey);
            dkm_memzero(gkey, sizeof(gkey));
            if (r < 0)
                return r;
            s->started = true;
        }
    }
    return 0;
}

static int verify_tag(struct dkm_stream *s, const uint8_t *tag, const char *what)
{
    uint8_t dummy[DKM_STREAM_BLOCK_SIZE];
    int n;

    if (!EVP_CIPHER_CTX_ctrl(s->cctx, EVP_CTRL_GCM_SET_TAG, DKM_STREAM_TAG_LEN,
                             (void *)tag) ||
        !EVP_CipherFinal_ex(s->cctx, dummy, &n))
        return dkm_error_set(
            DKM_E_INTEGRITY,
            "stream %s %u does not authenticate: the stream was changed, "
            "reordered or truncated, or made with another key",
            what, s->seg_index);
    return 0;
}

/* Process body bytes known not to be among the stream's last 32. */
static int process(struct dkm_stream *s, const uint8_t *p, size_t len, uint8_t *out,
                   size_t out_size, size_t *w)
{
    int n, r;

    if (len > 0 && s->kind == DKM_STREAM_KIND_EMPTY)
        return dkm_error_set(DKM_E_INTEGRITY, "data after the end of an empty stream");
    while (len > 0) {
        if (s->seg_pos < s->seg_size) {
            size_t take = min_size(len, s->seg_size - s->seg_pos);

            if (take > out_size - *w)
                return dkm_error_set(-ENOSPC, "no room for the stream's plaintext");
            if (!EVP_CipherUpdate(s->cctx, out + *w, &n, p, (int)take))
                return dkm_error_set(DKM_E_CRYPTO, "AES-256-GCM failed");
            *w += take;
            s->seg_pos += take;
            p += take;
            len -= take;
        } else {
            size_t take = min_size(len, DKM_STREAM_TAG_LEN - s->tag_got);

            memcpy(s->tag + s->tag_got, p, take);
            s->tag_got += take;
            p += take;
            len -= take;
            if (s->tag_got == DKM_STREAM_TAG_LEN) {
                r = verify_tag(s, s->tag, "segment");
                if (r < 0)
                    return r;
                if (s->seg_index == UINT32_MAX)
                    return dkm_error_set(DKM_E_FORMAT, "stream has too many segments");
                s->seg_index++;
                s->tag_got = 0;
                r = start_segment(s, 0);
                if (r < 0)
                    return r;
            }
        }
    }
    return 0;
}

static int decrypt_update(struct dkm_stream *s, const uint8_t *in, size_t in_len,
                          uint8_t *out, size_t out_size, size_t *ret_len)
{
    size_t w = 0, total, process_n, from_hb, from_in;
    int r;

    r = read_header(s, &in, &in_len);
    if (r < 0)
        return r;
    if (in_len == 0) {
        *ret_len = 0;
        return 0;
    }
    /* Hold back the last 32 bytes: they may be the last tag and the terminator. */
    total = s->holdback_len + in_len;
    if (total <= sizeof(s->holdback)) {
        memcpy(s->holdback + s->holdback_len, in, in_len);
        s->holdback_len = total;
        if (s->kind == DKM_STREAM_KIND_EMPTY && total > DKM_STREAM_TAG_LEN)
            return dkm_error_set(DKM_E_INTEGRITY,
                                 "data after the end of an empty stream");
        *ret_len = 0;
        return 0;
    }
    process_n = total - sizeof(s->holdback);
    from_hb = min_size(s->holdback_len, process_n);
    r = process(s, s->holdback, from_hb, out, out_size, &w);
    if (r < 0)
        return r;
    memmove(s->holdback, s->holdback + from_hb, s->holdback_len - from_hb);
    s->holdback_len -= from_hb;
    from_in = process_n - from_hb;
    r = process(s, in, from_in, out, out_size, &w);
    if (r < 0)
        return r;
    memcpy(s->holdback + s->holdback_len, in + from_in, in_len - from_in);
    s->holdback_len += in_len - from_in;
    *ret_len = w;
    return 0;
}

static int decrypt_final(struct dkm_stream *s, size_t *ret_len)
{
    int r;

    if (!s->started)
        return dkm_error_set(DKM_E_FORMAT, s->header_len == 0
                                               ? "input is empty: not a stream"
                                               : "stream is truncated in its header");
    if (s->kind == DKM_STREAM_KIND_EMPTY) {
        if (s->holdback_len != DKM_STREAM_TAG_LEN)
            return dkm_error_set(DKM_E_INTEGRITY, "empty stream is truncated");
        r = verify_tag(s, s->holdback, "terminator");
        if (r < 0)
            return r;
        *ret_len = 0;
        return 0;
    }
    if (s->holdback_len != sizeof(s->holdback) || s->tag_got != 0 || s->seg_pos == 0)
        return dkm_error_set(DKM_E_INTEGRITY, "stream is truncated (segment %u)",
                             s->seg_index);
    r = verify_tag(s, s->holdback, "segment");
    if (r < 0)
        return r;
    if (s->seg_index == UINT32_MAX)
        return dkm_error_set(DKM_E_FORMAT, "stream has too many segments");
    s->seg_index++;
    r = start_segment(s, 1);
    if (r < 0)
        return r;
    r = verify_tag(s, s->holdback + DKM_STREAM_TAG_LEN, "terminator");
    if (r < 0)
        return r;
    *ret_len = 0;
    return 0;
}

int dkm_stream_update(struct dkm_stream *s, const uint8_t *in, size_t in_len,
                      uint8_t *out, size_t out_size, size_t *ret_len)
{
    size_t n = 0;
    int r;

    if (s == NULL || (in == NULL && in_len > 0) || (out == NULL && out_size > 0))
        return dkm_error_set(-EINVAL, "invalid arguments to a stream update");
    if (s->failed || s->finished)
        return dkm_error_set(-EINVAL, "stream has %s", s->failed ? "failed" : "ended");
    if (in_len > 0 && out != NULL && in < out + out_size && out < in + in_len)
        return fail(s, dkm_error_set(-EINVAL, "stream input and output overlap"));
    r = s->encrypt ? encrypt_update(s, in, in_len, out, out_size, &n)
                   : decrypt_update(s, in, in_len, out, out_size, &n);
    if (r < 0)
        return fail(s, r);
    *ret_len = n;
    return 0;
}

int dkm_stream_final(struct dkm_stream *s, uint8_t *out, size_t out_size, size_t *ret_len)
{
    size_t n = 0;
    int r;

    if (s == NULL || (out == NULL && out_size > 0))
        return dkm_error_set(-EINVAL, "invalid arguments to a stream final");
    if (s->failed || s->finished)
        return dkm_error_set(-EINVAL, "stream has %s", s->failed ? "failed" : "ended");
    r = s->encrypt ? encrypt_final(s, out, out_size, &n) : decrypt_final(s, &n);
    if (r < 0)
        return fail(s, r);
    s->finished = true;
    *ret_len = n;
    return 0;
}
