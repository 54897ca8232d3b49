/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Bounded byte cursors for reading and writing binary formats, and hex
 * and base64url codecs.
 *
 * Readers never trust a length: every get checks the bytes left first and
 * returns false, consuming nothing, when they are not there. Writers never
 * write past their capacity: a put that does not fit returns false and
 * marks the writer as overflowed, so a sequence of puts can be checked
 * once at the end with dkm_writer_ok().
 */
#ifndef DKM_CODEC_H
#define DKM_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dkm/base/error.h"

struct dkm_cursor {
    const uint8_t *p;
    size_t left;
};

static inline struct dkm_cursor dkm_cursor_init(const void *p, size_t n)
{
    struct dkm_cursor c = {.p = p, .left = n};
    return c;
}

DKM_MUSTCHECK bool dkm_get_u8(struct dkm_cursor *c, uint8_t *ret);
DKM_MUSTCHECK bool dkm_get_u16be(struct dkm_cursor *c, uint16_t *ret);
DKM_MUSTCHECK bool dkm_get_u32be(struct dkm_cursor *c, uint32_t *ret);
DKM_MUSTCHECK bool dkm_get_u64be(struct dkm_cursor *c, uint64_t *ret);
/* Copy n bytes out. */
DKM_MUSTCHECK bool dkm_get_bytes(struct dkm_cursor *c, void *out, size_t n);
/* Point *ret at the next n bytes inside the cursor's buffer (no copy). */
DKM_MUSTCHECK bool dkm_get_ref(struct dkm_cursor *c, size_t n, const uint8_t **ret);
DKM_MUSTCHECK bool dkm_skip(struct dkm_cursor *c, size_t n);
/*
 * A 16-bit big-endian length followed by that many bytes, as TPM2B_*
 * structures are: fails when the length exceeds max or the bytes left.
 */
DKM_MUSTCHECK bool dkm_get_len16_ref(struct dkm_cursor *c, size_t max,
                                     const uint8_t **ret, size_t *ret_len);
/* The same with a 32-bit length. */
DKM_MUSTCHECK bool dkm_get_len32_ref(struct dkm_cursor *c, size_t max,
                                     const uint8_t **ret, size_t *ret_len);
/* True when nothing is left: formats call this to refuse trailing bytes. */
static inline bool dkm_cursor_empty(const struct dkm_cursor *c)
{
    return c->left == 0;
}

struct dkm_writer {
    uint8_t *buf;
    size_t cap;
    size_t len;
    bool overflow;
};

static inline struct dkm_writer dkm_writer_init(void *buf, size_t cap)
{
    struct dkm_writer w = {.buf = buf, .cap = cap, .len = 0, .overflow = false};
    return w;
}

bool dkm_put_u8(struct dkm_writer *w, uint8_t v);
bool dkm_put_u16be(struct dkm_writer *w, uint16_t v);
bool dkm_put_u32be(struct dkm_writer *w, uint32_t v);
bool dkm_put_u64be(struct dkm_writer *w, uint64_t v);
bool dkm_put_bytes(struct dkm_writer *w, const void *p, size_t n);
/* 16-bit big-endian length, then the bytes (fails if n > 0xffff). */
bool dkm_put_len16(struct dkm_writer *w, const void *p, size_t n);
bool dkm_put_len32(struct dkm_writer *w, const void *p, size_t n);
/* True when no put has overflowed. */
static inline bool dkm_writer_ok(const struct dkm_writer *w)
{
    return !w->overflow;
}

/* Lower-case hex of n bytes: needs 2n+1 bytes of out (NUL-terminated). */
DKM_MUSTCHECK int dkm_hex_encode(const void *p, size_t n, char *out, size_t out_size);
/*
 * Decode exactly len hex characters (either case) into out. Odd length,
 * a non-hex character or too small an output is -EINVAL with a detail.
 */
DKM_MUSTCHECK int dkm_hex_decode(const char *s, size_t len, void *out, size_t out_size,
                                 size_t *ret_len);

/* Length of the unpadded base64url text of n bytes, without the NUL. */
size_t dkm_b64url_encoded_len(size_t n);
/* Unpadded base64url (RFC 4648 section 5), NUL-terminated. */
DKM_MUSTCHECK int dkm_b64url_encode(const void *p, size_t n, char *out, size_t out_size);
/*
 * Strict decode: no padding, no whitespace, only the URL-safe alphabet,
 * length mod 4 != 1, unused trailing bits zero. Anything else is -EINVAL
 * with a detail.
 */
DKM_MUSTCHECK int dkm_b64url_decode(const char *s, size_t len, void *out, size_t out_size,
                                    size_t *ret_len);

#endif
