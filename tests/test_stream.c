/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of the DKM-AES-256-GCM stream format (include/dkm/data/stream.h):
 * round trips for many sizes and update split patterns, each call given
 * exactly EVP's output allowance (input length + 32, final 32) with canary
 * bytes behind it; the empty stream; and that tampering, truncation,
 * extension, segment reordering and another group's key are all refused,
 * with at most one segment of plaintext released before the error.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "dkm/data/stream.h"
#include "unit.h"

#define ALLOW DKM_STREAM_BLOCK_SIZE
#define CANARY 0xc5
#define SEG_LOG2 8 /* 256-byte segments keep the tests fast */

static uint8_t gkey[32] = {7};
static uint8_t gkey_other[32] = {8};
static int key_calls;
static unsigned dkm_test_log2 = SEG_LOG2; /* segment size the decryptor accepts */

static int get_key(void *arg, uint32_t version, uint8_t *key)
{
    key_calls++;
    if (version != 4)
        return dkm_error_set(-ENOENT, "no version %u", version);
    memcpy(key, arg, 32);
    return 0;
}

/* A growable output that checks every call stays inside its allowance. */
struct sink {
    uint8_t *buf;
    size_t len, cap;
    bool overrun;
};

static uint8_t *sink_room(struct sink *s, size_t allowance)
{
    if (s->len + allowance + 64 > s->cap) {
        s->cap = (s->len + allowance + 64) * 2;
        s->buf = realloc(s->buf, s->cap);
        CU_ASSERT_PTR_NOT_NULL_FATAL(s->buf);
    }
    memset(s->buf + s->len, CANARY, allowance + 64);
    return s->buf + s->len;
}

static void sink_commit(struct sink *s, size_t allowance, size_t written)
{
    for (size_t i = allowance; i < allowance + 64; i++) {
        if (s->buf[s->len + i] != CANARY)
            s->overrun = true;
    }
    if (written > allowance)
        s->overrun = true;
    s->len += written;
}

/* Run data through a stream with updates of the sizes in pattern (cycled). */
static int run(struct dkm_stream *st, const uint8_t *in, size_t n, const size_t *pattern,
               size_t npattern, struct sink *out)
{
    size_t pos = 0, k = 0, w;
    uint8_t *o;
    int r;

    while (pos < n) {
        size_t take = pattern[k++ % npattern];

        if (take > n - pos)
            take = n - pos;
        o = sink_room(out, take + ALLOW);
        r = dkm_stream_update(st, in + pos, take, o, take + ALLOW, &w);
        if (r < 0)
            return r;
        sink_commit(out, take + ALLOW, w);
        pos += take;
    }
    o = sink_room(out, ALLOW);
    r = dkm_stream_final(st, o, ALLOW, &w);
    if (r < 0)
        return r;
    sink_commit(out, ALLOW, w);
    return 0;
}

static struct sink encrypt_with(const uint8_t *pt, size_t n, unsigned log2,
                                const size_t *pattern, size_t np)
{
    struct dkm_stream *st = NULL;
    struct sink ct = {0};

    CU_ASSERT_EQUAL_FATAL(dkm_stream_encrypt_new(NULL, "grp", 4, gkey, log2, &st), 0);
    CU_ASSERT_EQUAL(run(st, pt, n, pattern, np, &ct), 0);
    CU_ASSERT_FALSE(ct.overrun);
    dkm_stream_free(st);
    return ct;
}

static int decrypt_with(const char *group, const uint8_t *key, const uint8_t *ct,
                        size_t n, const size_t *pattern, size_t np, struct sink *pt)
{
    struct dkm_stream *st = NULL;
    int r;

    CU_ASSERT_EQUAL_FATAL(
        dkm_stream_decrypt_new(NULL, group, dkm_test_log2, get_key, (void *)key, &st), 0);
    r = run(st, ct, n, pattern, np, pt);
    CU_ASSERT_FALSE(pt->overrun);
    dkm_stream_free(st);
    return r;
}

static size_t expected_len(size_t n, size_t seg)
{
    if (n == 0)
        return 32;
    return DKM_STREAM_HEADER_LEN + n + ((n + seg - 1) / seg) * 16 + 16;
}

static void test_stream_round_trip_splits(void)
{
    static const size_t sizes[] = {0, 1, 31, 32, 33, 255, 256, 257, 512, 1000, 5000};
    static const size_t p1[] = {1};
    static const size_t p2[] = {7, 1, 300, 2};
    static const size_t p3[] = {256};
    static const size_t p4[] = {512};
    static const size_t p5[] = {4096};
    static const size_t p6[] = {0, 3, 0, 255};
    static const struct {
        const size_t *p;
        size_t n;
    } patterns[] = {{p1, 1}, {p2, 4}, {p3, 1}, {p4, 1}, {p5, 1}, {p6, 4}};
    uint8_t data[5000];

    CU_ASSERT_FATAL(RAND_bytes(data, sizeof(data)) == 1);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        for (size_t pe = 0; pe < sizeof(patterns) / sizeof(patterns[0]); pe++) {
            /* Updates longer than a segment may outrun EVP's allowance. */
            if (patterns[pe].p[0] > 256 && sizes[i] > 256)
                continue;
            for (size_t pd = 0; pd < sizeof(patterns) / sizeof(patterns[0]); pd++) {
                struct sink ct, pt = {0};

                ct = encrypt_with(data, sizes[i], SEG_LOG2, patterns[pe].p,
                                  patterns[pe].n);
                CU_ASSERT_EQUAL(ct.len, expected_len(sizes[i], 256));
                CU_ASSERT_EQUAL(decrypt_with("grp", gkey, ct.buf, ct.len, patterns[pd].p,
                                             patterns[pd].n, &pt),
                                0);
                CU_ASSERT_EQUAL(pt.len, sizes[i]);
                CU_ASSERT(sizes[i] == 0 || memcmp(pt.buf, data, sizes[i]) == 0);
                free(ct.buf);
                free(pt.buf);
            }
        }
    }
}

static void test_stream_default_segments_large(void)
{
    static const size_t p[] = {4096};
    size_t n = 3 * 65536 + 5;
    uint8_t *data = calloc(1, n);
    struct sink ct, pt = {0};

    CU_ASSERT_PTR_NOT_NULL_FATAL(data);
    ct = encrypt_with(data, n, DKM_STREAM_SEG_LOG2_DEFAULT, p, 1);
    CU_ASSERT_EQUAL(ct.len, expected_len(n, 65536));
    /* A reader expecting 256-byte segments refuses 64 KiB ones. */
    CU_ASSERT_EQUAL(decrypt_with("grp", gkey, ct.buf, ct.len, p, 1, &pt), DKM_E_FORMAT);
    CU_ASSERT_EQUAL(pt.len, 0);
    dkm_test_log2 = DKM_STREAM_SEG_LOG2_DEFAULT;
    CU_ASSERT_EQUAL(decrypt_with("grp", gkey, ct.buf, ct.len, p, 1, &pt), 0);
    dkm_test_log2 = SEG_LOG2;
    CU_ASSERT_EQUAL(pt.len, n);
    CU_ASSERT(memcmp(pt.buf, data, n) == 0);
    free(ct.buf);
    free(pt.buf);
    free(data);
}

static void test_stream_empty_is_32_bytes(void)
{
    static const size_t p[] = {1};
    struct sink ct = encrypt_with(NULL, 0, SEG_LOG2, p, 1), pt = {0};

    CU_ASSERT_EQUAL(ct.len, 32);
    CU_ASSERT(memcmp(ct.buf, "DKMS\x01\x00", 6) == 0);
    CU_ASSERT_EQUAL(decrypt_with("grp", gkey, ct.buf, ct.len, p, 1, &pt), 0);
    CU_ASSERT_EQUAL(pt.len, 0);
    /* The empty stream is bound to the key too. */
    free(pt.buf);
    pt = (struct sink){0};
    CU_ASSERT_EQUAL(decrypt_with("grp", gkey_other, ct.buf, ct.len, p, 1, &pt),
                    DKM_E_INTEGRITY);
    free(pt.buf);
    pt = (struct sink){0};
    CU_ASSERT(decrypt_with("grp", gkey, ct.buf, 31, p, 1, &pt) < 0);
    free(pt.buf);
    free(ct.buf);
}

/* Decrypting bad must fail and release at most one segment (256 bytes). */
static void expect_refused(const uint8_t *bad, size_t n, const char *group,
                           const uint8_t *key, const uint8_t *orig_pt, size_t orig_len)
{
    static const size_t pats[][1] = {{1}, {100}, {4096}};

    for (size_t i = 0; i < 3; i++) {
        struct sink pt = {0};
        int r = decrypt_with(group, key, bad, n, pats[i], 1, &pt);

        size_t good = 0;

        CU_ASSERT(r < 0);
        /*
         * Released plaintext is right up to a segment boundary, and at most
         * one (unauthenticated) segment goes beyond it.
         */
        while (orig_pt != NULL && good < pt.len && good < orig_len &&
               pt.buf[good] == orig_pt[good])
            good++;
        CU_ASSERT(pt.len <= (good / 256) * 256 + 256);
        free(pt.buf);
    }
}

static void test_stream_tamper_truncate_reorder(void)
{
    static const size_t p[] = {100};
    uint8_t data[1000];
    struct sink ct;
    uint8_t *bad;
    size_t seg_ct = 256 + 16, body = DKM_STREAM_HEADER_LEN;

    CU_ASSERT_FATAL(RAND_bytes(data, sizeof(data)) == 1);
    ct = encrypt_with(data, sizeof(data), SEG_LOG2, p, 1);
    bad = malloc(ct.len + 64);
    CU_ASSERT_PTR_NOT_NULL_FATAL(bad);
    /* Every single-bit change anywhere. */
    for (size_t i = 0; i < ct.len; i += 1) {
        memcpy(bad, ct.buf, ct.len);
        bad[i] ^= 0x04;
        expect_refused(bad, ct.len, "grp", gkey, data, sizeof(data));
    }
    /* Every truncation. */
    for (size_t n = 0; n < ct.len; n++)
        expect_refused(ct.buf, n, "grp", gkey, data, sizeof(data));
    /* Extension. */
    memcpy(bad, ct.buf, ct.len);
    bad[ct.len] = 0;
    expect_refused(bad, ct.len + 1, "grp", gkey, data, sizeof(data));
    memcpy(bad + ct.len, ct.buf + ct.len - 16, 16);
    expect_refused(bad, ct.len + 16, "grp", gkey, data, sizeof(data));
    /* Swap segments 0 and 1. */
    memcpy(bad, ct.buf, ct.len);
    memcpy(bad + body, ct.buf + body + seg_ct, seg_ct);
    memcpy(bad + body + seg_ct, ct.buf + body, seg_ct);
    expect_refused(bad, ct.len, "grp", gkey, data, sizeof(data));
    /* Drop segment 1 (the stream is still well-formed in length). */
    memcpy(bad, ct.buf, body + seg_ct);
    memcpy(bad + body + seg_ct, ct.buf + body + 2 * seg_ct, ct.len - body - 2 * seg_ct);
    expect_refused(bad, ct.len - seg_ct, "grp", gkey, data, sizeof(data));
    /* Drop the last data segment, keep the terminator. */
    {
        size_t last = ct.len - 16 - (1000 - 3 * 256 + 16);

        memcpy(bad, ct.buf, last);
        memcpy(bad + last, ct.buf + ct.len - 16, 16);
        expect_refused(bad, last + 16, "grp", gkey, data, sizeof(data));
    }
    free(bad);
    free(ct.buf);
}

static void test_stream_wrong_group_or_key(void)
{
    static const size_t p[] = {64};
    uint8_t data[600] = {0};
    struct sink ct = encrypt_with(data, sizeof(data), SEG_LOG2, p, 1), pt = {0};

    /* Another group's name is caught from the header, before any key is asked. */
    key_calls = 0;
    CU_ASSERT_EQUAL(decrypt_with("other", gkey, ct.buf, ct.len, p, 1, &pt), DKM_E_DENIED);
    CU_ASSERT_EQUAL(key_calls, 0);
    CU_ASSERT_EQUAL(pt.len, 0);
    free(pt.buf);
    pt = (struct sink){0};
    /* Right group, wrong key bytes: the first segment's tag fails. */
    CU_ASSERT_EQUAL(decrypt_with("grp", gkey_other, ct.buf, ct.len, p, 1, &pt),
                    DKM_E_INTEGRITY);
    CU_ASSERT(pt.len <= 256);
    free(pt.buf);
    free(ct.buf);
}

static void test_stream_key_error_passes_through(void)
{
    struct dkm_stream *st = NULL;
    uint8_t hdr[32] = "DKMS\x01\x01\x08\x00\x00\x00\x00\x05";
    uint8_t out[64];
    size_t w;

    CU_ASSERT_EQUAL_FATAL(
        dkm_stream_decrypt_new(NULL, "grp", SEG_LOG2, get_key, gkey, &st), 0);
    /* Copy the real group id so that only the version is wrong. */
    {
        static const size_t p[] = {1};
        struct sink ct = encrypt_with((const uint8_t *)"x", 1, SEG_LOG2, p, 1);

        memcpy(hdr + 12, ct.buf + 12, 4);
        free(ct.buf);
    }
    CU_ASSERT_EQUAL(dkm_stream_update(st, hdr, 32, out, sizeof(out), &w), -ENOENT);
    /* A failed stream refuses to go on. */
    CU_ASSERT(dkm_stream_update(st, hdr, 1, out, sizeof(out), &w) < 0);
    dkm_stream_free(st);
}

static void test_stream_header_fields(void)
{
    static const size_t p[] = {1000};
    uint8_t data[10] = {0};
    struct sink ct = encrypt_with(data, sizeof(data), SEG_LOG2, p, 1);
    static const size_t fields[] = {0, 4, 5, 6, 7, 8, 12, 16, 31};

    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        uint8_t *bad = malloc(ct.len);
        struct sink pt = {0};

        memcpy(bad, ct.buf, ct.len);
        bad[fields[i]] ^= 0x80;
        CU_ASSERT(decrypt_with("grp", gkey, bad, ct.len, p, 1, &pt) < 0);
        /* A changed salt is noticed at the first tag, a changed field at once. */
        CU_ASSERT(fields[i] >= 16 ? pt.len <= 256 : pt.len == 0);
        free(pt.buf);
        free(bad);
    }
    free(ct.buf);
}

static void test_stream_overlap_and_allowance(void)
{
    struct dkm_stream *st = NULL;
    uint8_t buf[4096];
    size_t w;

    CU_ASSERT_EQUAL_FATAL(dkm_stream_encrypt_new(NULL, "grp", 4, gkey, SEG_LOG2, &st), 0);
    CU_ASSERT_EQUAL(dkm_stream_update(st, buf, 100, buf + 50, 132, &w), -EINVAL);
    dkm_stream_free(st);
    /* Far more than two segments in one update cannot fit EVP's allowance. */
    CU_ASSERT_EQUAL_FATAL(dkm_stream_encrypt_new(NULL, "grp", 4, gkey, SEG_LOG2, &st), 0);
    {
        static uint8_t big[65536], out[65536 + 32];

        CU_ASSERT_EQUAL(dkm_stream_update(st, big, sizeof(big), out, sizeof(out), &w),
                        -ENOSPC);
    }
    dkm_stream_free(st);
}

static CU_TestInfo stream_tests[] = {
    {"test_stream_round_trip_splits", test_stream_round_trip_splits},
    {"test_stream_default_segments_large", test_stream_default_segments_large},
    {"test_stream_empty_is_32_bytes", test_stream_empty_is_32_bytes},
    {"test_stream_tamper_truncate_reorder", test_stream_tamper_truncate_reorder},
    {"test_stream_wrong_group_or_key", test_stream_wrong_group_or_key},
    {"test_stream_key_error_passes_through", test_stream_key_error_passes_through},
    {"test_stream_header_fields", test_stream_header_fields},
    {"test_stream_overlap_and_allowance", test_stream_overlap_and_allowance},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {"stream", NULL, NULL, NULL, NULL, stream_tests},
    CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv)
{
    return dkm_test_main(argc, argv, suites);
}
