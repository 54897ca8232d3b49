/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of the byte cursors and the hex and base64url codecs: round
 * trips, every truncation, every out-of-bounds read refused.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dkm/base/codec.h"
#include "unit.h"

/* A record: u8, u16, u32, u64, len16 bytes, len32 bytes, raw 3 bytes. */
static size_t write_record(uint8_t *buf, size_t cap)
{
    struct dkm_writer w = dkm_writer_init(buf, cap);

    dkm_put_u8(&w, 0xab);
    dkm_put_u16be(&w, 0x1234);
    dkm_put_u32be(&w, 0xdeadbeef);
    dkm_put_u64be(&w, 0x0102030405060708ull);
    dkm_put_len16(&w, "hello", 5);
    dkm_put_len32(&w, "world!", 6);
    dkm_put_bytes(&w, "xyz", 3);
    return dkm_writer_ok(&w) ? w.len : 0;
}

static bool read_record(const uint8_t *buf, size_t n)
{
    struct dkm_cursor c = dkm_cursor_init(buf, n);
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    uint64_t u64;
    const uint8_t *p;
    size_t len;
    uint8_t raw[3];

    if (!dkm_get_u8(&c, &u8) || u8 != 0xab)
        return false;
    if (!dkm_get_u16be(&c, &u16) || u16 != 0x1234)
        return false;
    if (!dkm_get_u32be(&c, &u32) || u32 != 0xdeadbeef)
        return false;
    if (!dkm_get_u64be(&c, &u64) || u64 != 0x0102030405060708ull)
        return false;
    if (!dkm_get_len16_ref(&c, 64, &p, &len) || len != 5 || memcmp(p, "hello", 5) != 0)
        return false;
    if (!dkm_get_len32_ref(&c, 64, &p, &len) || len != 6 || memcmp(p, "world!", 6) != 0)
        return false;
    if (!dkm_get_bytes(&c, raw, 3) || memcmp(raw, "xyz", 3) != 0)
        return false;
    return dkm_cursor_empty(&c);
}

static void test_cursor_round_trip(void)
{
    uint8_t buf[128];
    size_t n = write_record(buf, sizeof(buf));

    CU_ASSERT_EQUAL_FATAL(n, 1 + 2 + 4 + 8 + 2 + 5 + 4 + 6 + 3);
    CU_ASSERT_TRUE(read_record(buf, n));
    /* Big-endian on the wire. */
    CU_ASSERT_EQUAL(buf[1], 0x12);
    CU_ASSERT_EQUAL(buf[2], 0x34);
}

static void test_cursor_every_truncation(void)
{
    uint8_t buf[128];
    size_t n = write_record(buf, sizeof(buf));

    /* Each prefix is refused; copied to the heap so ASan sees overreads. */
    for (size_t cut = 0; cut < n; cut++) {
        uint8_t *copy = malloc(cut ? cut : 1);

        memcpy(copy, buf, cut);
        CU_ASSERT_FALSE(read_record(copy, cut));
        free(copy);
    }
}

static void test_cursor_failed_get_consumes_nothing(void)
{
    const uint8_t data[3] = {0x00, 0x05, 'a'};
    struct dkm_cursor c = dkm_cursor_init(data, sizeof(data));
    const uint8_t *p;
    size_t len;
    uint32_t u32;
    uint64_t u64;

    CU_ASSERT_FALSE(dkm_get_u32be(&c, &u32));
    CU_ASSERT_FALSE(dkm_get_u64be(&c, &u64));
    CU_ASSERT_EQUAL(c.left, 3);
    /* Length 5 claimed, 1 byte present. */
    CU_ASSERT_FALSE(dkm_get_len16_ref(&c, 100, &p, &len));
    CU_ASSERT_EQUAL(c.left, 3);
    CU_ASSERT_PTR_EQUAL(c.p, data);
    CU_ASSERT_FALSE(dkm_skip(&c, 4));
    CU_ASSERT_TRUE(dkm_skip(&c, 3));
    CU_ASSERT_TRUE(dkm_cursor_empty(&c));
}

static void test_cursor_length_over_max(void)
{
    uint8_t buf[16];
    struct dkm_writer w = dkm_writer_init(buf, sizeof(buf));
    struct dkm_cursor c;
    const uint8_t *p;
    size_t len;

    CU_ASSERT_TRUE(dkm_put_len16(&w, "abcdef", 6));
    c = dkm_cursor_init(buf, w.len);
    CU_ASSERT_FALSE(dkm_get_len16_ref(&c, 5, &p, &len));
    CU_ASSERT_EQUAL(c.left, 8);
    CU_ASSERT_TRUE(dkm_get_len16_ref(&c, 6, &p, &len));
    CU_ASSERT_EQUAL(len, 6);
}

static void test_cursor_huge_length_refused(void)
{
    /* A 32-bit length of 0xffffffff with 2 bytes behind it. */
    const uint8_t data[6] = {0xff, 0xff, 0xff, 0xff, 1, 2};
    struct dkm_cursor c = dkm_cursor_init(data, sizeof(data));
    const uint8_t *p;
    size_t len;

    CU_ASSERT_FALSE(dkm_get_len32_ref(&c, SIZE_MAX, &p, &len));
    CU_ASSERT_EQUAL(c.left, 6);
}

static void test_writer_overflow_is_sticky(void)
{
    uint8_t buf[5];
    struct dkm_writer w = dkm_writer_init(buf, sizeof(buf));

    CU_ASSERT_TRUE(dkm_put_u32be(&w, 1));
    CU_ASSERT_FALSE(dkm_put_u16be(&w, 2));
    CU_ASSERT_FALSE(dkm_writer_ok(&w));
    /* Even a put that would fit is refused after an overflow. */
    CU_ASSERT_FALSE(dkm_put_u8(&w, 3));
    CU_ASSERT_EQUAL(w.len, 4);
}

static void test_writer_exact_fit_and_len16_limit(void)
{
    uint8_t buf[4];
    static uint8_t big[70000];
    uint8_t *large = malloc(70010);
    struct dkm_writer w = dkm_writer_init(buf, sizeof(buf));

    CU_ASSERT_TRUE(dkm_put_u32be(&w, 0xffffffff));
    CU_ASSERT_TRUE(dkm_writer_ok(&w));
    w = dkm_writer_init(large, 70010);
    CU_ASSERT_FALSE(dkm_put_len16(&w, big, sizeof(big)));
    CU_ASSERT_FALSE(dkm_writer_ok(&w));
    free(large);
}

static void test_hex_round_trip(void)
{
    uint8_t data[256], back[256];
    char hex[513];
    size_t n;

    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)i;
    for (size_t len = 0; len <= sizeof(data); len += 37) {
        CU_ASSERT_EQUAL_FATAL(dkm_hex_encode(data, len, hex, sizeof(hex)), 0);
        CU_ASSERT_EQUAL(strlen(hex), 2 * len);
        CU_ASSERT_EQUAL_FATAL(dkm_hex_decode(hex, 2 * len, back, sizeof(back), &n), 0);
        CU_ASSERT_EQUAL(n, len);
        CU_ASSERT_EQUAL(memcmp(data, back, len), 0);
    }
    CU_ASSERT_EQUAL(dkm_hex_encode("\x01\xab", 2, hex, sizeof(hex)), 0);
    CU_ASSERT_STRING_EQUAL(hex, "01ab");
    CU_ASSERT_EQUAL(dkm_hex_decode("01AB", 4, back, sizeof(back), &n), 0);
    CU_ASSERT_EQUAL(back[1], 0xab);
}

static void test_hex_invalid(void)
{
    uint8_t out[4];
    char small[4];
    size_t n;

    CU_ASSERT_EQUAL(dkm_hex_decode("abc", 3, out, sizeof(out), &n), -EINVAL);
    CU_ASSERT_EQUAL(dkm_hex_decode("zz", 2, out, sizeof(out), &n), -EINVAL);
    CU_ASSERT_EQUAL(dkm_hex_decode("0g", 2, out, sizeof(out), &n), -EINVAL);
    CU_ASSERT_EQUAL(dkm_hex_decode(" 0", 2, out, sizeof(out), &n), -EINVAL);
    CU_ASSERT_EQUAL(dkm_hex_decode("0011223344", 10, out, sizeof(out), &n), -EINVAL);
    CU_ASSERT_EQUAL(dkm_hex_encode("abc", 3, small, sizeof(small)), -EINVAL);
    CU_ASSERT_EQUAL(dkm_hex_encode("abc", 3, small, 6), -EINVAL);
}

/* RFC 4648 section 10 vectors, in the URL-safe alphabet and unpadded. */
static void test_b64url_rfc4648_vectors(void)
{
    static const char *const in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const out[] = {"",       "Zg",      "Zm8",     "Zm9v",
                                      "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
    char enc[16];
    uint8_t dec[16];
    size_t n;

    for (size_t i = 0; i < 7; i++) {
        CU_ASSERT_EQUAL(dkm_b64url_encoded_len(strlen(in[i])), strlen(out[i]));
        CU_ASSERT_EQUAL_FATAL(dkm_b64url_encode(in[i], strlen(in[i]), enc, sizeof(enc)),
                              0);
        CU_ASSERT_STRING_EQUAL(enc, out[i]);
        CU_ASSERT_EQUAL_FATAL(
            dkm_b64url_decode(out[i], strlen(out[i]), dec, sizeof(dec), &n), 0);
        CU_ASSERT_EQUAL(n, strlen(in[i]));
        CU_ASSERT_EQUAL(memcmp(dec, in[i], n), 0);
    }
    /* The two URL-safe characters. */
    CU_ASSERT_EQUAL(dkm_b64url_encode("\xfb\xff", 2, enc, sizeof(enc)), 0);
    CU_ASSERT_STRING_EQUAL(enc, "-_8");
}

static void test_b64url_round_trip_all_lengths(void)
{
    uint8_t data[100], back[100];
    char enc[200];
    size_t n;

    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 37 + 11);
    for (size_t len = 0; len <= sizeof(data); len++) {
        CU_ASSERT_EQUAL_FATAL(dkm_b64url_encode(data, len, enc, sizeof(enc)), 0);
        CU_ASSERT_EQUAL_FATAL(dkm_b64url_decode(enc, strlen(enc), back, len, &n), 0);
        CU_ASSERT_EQUAL(n, len);
        CU_ASSERT_EQUAL(memcmp(back, data, len), 0);
        /* Every truncation either fails or decodes to a strict prefix. */
        for (size_t cut = 0; cut < strlen(enc); cut++) {
            size_t m;
            int r = dkm_b64url_decode(enc, cut, back, sizeof(back), &m);

            if (r == 0) {
                CU_ASSERT(m < len || len == 0);
                CU_ASSERT_EQUAL(memcmp(back, data, m), 0);
            } else {
                CU_ASSERT_EQUAL(r, -EINVAL);
            }
        }
    }
}

static void test_b64url_invalid(void)
{
    uint8_t out[16];
    size_t n;

    CU_ASSERT_EQUAL(dkm_b64url_decode("Zg==", 4, out, sizeof(out), &n), -EINVAL);
    CU_ASSERT_EQUAL(dkm_b64url_decode("Zm9v+A", 6, out, sizeof(out), &n), -EINVAL);
    CU_ASSERT_EQUAL(dkm_b64url_decode("Zm9v/A", 6, out, sizeof(out), &n), -EINVAL);
    CU_ASSERT_EQUAL(dkm_b64url_decode("Zm 9v", 5, out, sizeof(out), &n), -EINVAL);
    CU_ASSERT_EQUAL(dkm_b64url_decode("Zm9v\n", 5, out, sizeof(out), &n), -EINVAL);
    /* Length mod 4 == 1 is impossible. */
    CU_ASSERT_EQUAL(dkm_b64url_decode("Zm9vY", 5, out, sizeof(out), &n), -EINVAL);
    /* Non-canonical: unused low bits set ("Zh" would be "f" with junk bits). */
    CU_ASSERT_EQUAL(dkm_b64url_decode("Zh", 2, out, sizeof(out), &n), -EINVAL);
    CU_ASSERT_EQUAL(dkm_b64url_decode("Zm9", 3, out, sizeof(out), &n), -EINVAL);
    /* Output too small. */
    CU_ASSERT_EQUAL(dkm_b64url_decode("Zm9vYmFy", 8, out, 5, &n), -EINVAL);
    /* Encoder output too small (needs length + NUL). */
    CU_ASSERT_EQUAL(dkm_b64url_encode("foo", 3, (char *)out, 4), -EINVAL);
}

static CU_TestInfo cursor_tests[] = {
    {"test_cursor_round_trip", test_cursor_round_trip},
    {"test_cursor_every_truncation", test_cursor_every_truncation},
    {"test_cursor_failed_get_consumes_nothing", test_cursor_failed_get_consumes_nothing},
    {"test_cursor_length_over_max", test_cursor_length_over_max},
    {"test_cursor_huge_length_refused", test_cursor_huge_length_refused},
    {"test_writer_overflow_is_sticky", test_writer_overflow_is_sticky},
    {"test_writer_exact_fit_and_len16_limit", test_writer_exact_fit_and_len16_limit},
    CU_TEST_INFO_NULL,
};

static CU_TestInfo codec_tests[] = {
    {"test_hex_round_trip", test_hex_round_trip},
    {"test_hex_invalid", test_hex_invalid},
    {"test_b64url_rfc4648_vectors", test_b64url_rfc4648_vectors},
    {"test_b64url_round_trip_all_lengths", test_b64url_round_trip_all_lengths},
    {"test_b64url_invalid", test_b64url_invalid},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {"cursor", NULL, NULL, NULL, NULL, cursor_tests},
    {"codec", NULL, NULL, NULL, NULL, codec_tests},
    CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv)
{
    return dkm_test_main(argc, argv, suites);
}
