/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Bounded byte cursors, and the hex and base64url codecs used by every
 * binary format and by the JSON protocol.
 */
#include "dkm/base/codec.h"

#include <errno.h>
#include <string.h>

bool dkm_get_ref(struct dkm_cursor *c, size_t n, const uint8_t **ret)
{
    if (n > c->left)
        return false;
    *ret = c->p;
    c->p += n;
    c->left -= n;
    return true;
}

bool dkm_get_bytes(struct dkm_cursor *c, void *out, size_t n)
{
    const uint8_t *p;

    if (!dkm_get_ref(c, n, &p))
        return false;
    if (n > 0)
        memcpy(out, p, n);
    return true;
}

bool dkm_skip(struct dkm_cursor *c, size_t n)
{
    const uint8_t *p;

    return dkm_get_ref(c, n, &p);
}

/* Read an n-byte big-endian unsigned integer (n <= 8). */
static bool get_be(struct dkm_cursor *c, size_t n, uint64_t *ret)
{
    const uint8_t *p;
    uint64_t v = 0;

    if (!dkm_get_ref(c, n, &p))
        return false;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | p[i];
    *ret = v;
    return true;
}

bool dkm_get_u8(struct dkm_cursor *c, uint8_t *ret)
{
    uint64_t v;

    if (!get_be(c, 1, &v))
        return false;
    *ret = (uint8_t)v;
    return true;
}

bool dkm_get_u16be(struct dkm_cursor *c, uint16_t *ret)
{
    uint64_t v;

    if (!get_be(c, 2, &v))
        return false;
    *ret = (uint16_t)v;
    return true;
}

bool dkm_get_u32be(struct dkm_cursor *c, uint32_t *ret)
{
    uint64_t v;

    if (!get_be(c, 4, &v))
        return false;
    *ret = (uint32_t)v;
    return true;
}

bool dkm_get_u64be(struct dkm_cursor *c, uint64_t *ret)
{
    return get_be(c, 8, ret);
}

/* A length of lbytes bytes, then that many bytes; all or nothing. */
static bool get_len_ref(struct dkm_cursor *c, size_t lbytes, size_t max,
                        const uint8_t **ret, size_t *ret_len)
{
    struct dkm_cursor save = *c;
    uint64_t n;

    if (!get_be(c, lbytes, &n) || n > max || !dkm_get_ref(c, (size_t)n, ret)) {
        *c = save;
        return false;
    }
    *ret_len = (size_t)n;
    return true;
}

bool dkm_get_len16_ref(struct dkm_cursor *c, size_t max, const uint8_t **ret,
                       size_t *ret_len)
{
    return get_len_ref(c, 2, max, ret, ret_len);
}

bool dkm_get_len32_ref(struct dkm_cursor *c, size_t max, const uint8_t **ret,
                       size_t *ret_len)
{
    return get_len_ref(c, 4, max, ret, ret_len);
}

bool dkm_put_bytes(struct dkm_writer *w, const void *p, size_t n)
{
    if (w->overflow || n > w->cap - w->len) {
        w->overflow = true;
        return false;
    }
    if (n > 0)
        memcpy(w->buf + w->len, p, n);
    w->len += n;
    return true;
}

static bool put_be(struct dkm_writer *w, uint64_t v, size_t n)
{
    uint8_t b[8];

    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    return dkm_put_bytes(w, b, n);
}

bool dkm_put_u8(struct dkm_writer *w, uint8_t v)
{
    return put_be(w, v, 1);
}

bool dkm_put_u16be(struct dkm_writer *w, uint16_t v)
{
    return put_be(w, v, 2);
}

bool dkm_put_u32be(struct dkm_writer *w, uint32_t v)
{
    return put_be(w, v, 4);
}

bool dkm_put_u64be(struct dkm_writer *w, uint64_t v)
{
    return put_be(w, v, 8);
}

bool dkm_put_len16(struct dkm_writer *w, const void *p, size_t n)
{
    if (n > UINT16_MAX) {
        w->overflow = true;
        return false;
    }
    return put_be(w, n, 2) && dkm_put_bytes(w, p, n);
}

bool dkm_put_len32(struct dkm_writer *w, const void *p, size_t n)
{
    if (n > UINT32_MAX) {
        w->overflow = true;
        return false;
    }
    return put_be(w, n, 4) && dkm_put_bytes(w, p, n);
}

int dkm_hex_encode(const void *p, size_t n, char *out, size_t out_size)
{
    static const char digits[] = "0123456789abcdef";
    const uint8_t *b = p;

    if (n > (SIZE_MAX - 1) / 2 || out_size < 2 * n + 1)
        return dkm_error_set(-EINVAL, "hex output buffer too small");
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 0xf];
    }
    out[2 * n] = '\0';
    return 0;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int dkm_hex_decode(const char *s, size_t len, void *out, size_t out_size, size_t *ret_len)
{
    uint8_t *o = out;

    if (len % 2 != 0)
        return dkm_error_set(-EINVAL, "hex string has odd length %zu", len);
    if (len / 2 > out_size)
        return dkm_error_set(-EINVAL,
                             "hex string decodes to %zu bytes, at most %zu allowed",
                             len / 2, out_size);
    for (size_t i = 0; i < len; i += 2) {
        int hi = hex_value(s[i]), lo = hex_value(s[i + 1]);

        if (hi < 0 || lo < 0)
            return dkm_error_set(-EINVAL, "invalid hex digit at offset %zu",
                                 hi < 0 ? i : i + 1);
        o[i / 2] = (uint8_t)(hi << 4 | lo);
    }
    *ret_len = len / 2;
    return 0;
}

static const char b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t dkm_b64url_encoded_len(size_t n)
{
    return n / 3 * 4 + (n % 3 == 0 ? 0 : n % 3 + 1);
}

int dkm_b64url_encode(const void *p, size_t n, char *out, size_t out_size)
{
    const uint8_t *b = p;
    size_t o = 0, i;

    if (n > SIZE_MAX / 2 || out_size < dkm_b64url_encoded_len(n) + 1)
        return dkm_error_set(-EINVAL, "base64url output buffer too small");
    for (i = 0; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)b[i] << 16 | (uint32_t)b[i + 1] << 8 | b[i + 2];

        out[o++] = b64url_alphabet[v >> 18];
        out[o++] = b64url_alphabet[(v >> 12) & 63];
        out[o++] = b64url_alphabet[(v >> 6) & 63];
        out[o++] = b64url_alphabet[v & 63];
    }
    if (n - i == 1) {
        out[o++] = b64url_alphabet[b[i] >> 2];
        out[o++] = b64url_alphabet[(b[i] & 3) << 4];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)b[i] << 8 | b[i + 1];

        out[o++] = b64url_alphabet[v >> 10];
        out[o++] = b64url_alphabet[(v >> 4) & 63];
        out[o++] = b64url_alphabet[(v & 15) << 2];
    }
    out[o] = '\0';
    return 0;
}

static int b64url_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

int dkm_b64url_decode(const char *s, size_t len, void *out, size_t out_size,
                      size_t *ret_len)
{
    uint8_t *o = out;
    size_t need = len / 4 * 3, n = 0;
    uint32_t acc = 0;
    unsigned bits = 0;

    if (len % 4 == 1)
        return dkm_error_set(-EINVAL, "base64url text has impossible length %zu", len);
    if (len % 4 != 0)
        need += len % 4 - 1;
    if (need > out_size)
        return dkm_error_set(-EINVAL,
                             "base64url text decodes to %zu bytes, at most %zu allowed",
                             need, out_size);
    for (size_t i = 0; i < len; i++) {
        int v = b64url_value(s[i]);

        if (v < 0)
            return dkm_error_set(-EINVAL, "invalid base64url character at offset %zu", i);
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            o[n++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    /* Canonical encodings leave the unused low bits zero. */
    if (acc != 0)
        return dkm_error_set(-EINVAL, "base64url text has non-zero trailing bits");
    *ret_len = n;
    return 0;
}
