/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of the protect blob (include/dkm/data/protect.h): round trips, the
 * layout checked against an independent AES-256-GCM computation, AAD
 * binding, a negative test for every header field, and that opening a
 * changed blob fails without writing to the output.
 */
#include <errno.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "dkm/data/protect.h"
#include "unit.h"

static const uint8_t key1[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11,
                                 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
                                 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
static const uint8_t key2[32] = {99};

static uint8_t *seal(const char *group, uint32_t version, const uint8_t *aad,
                     size_t aad_len, const uint8_t *pt, size_t n, size_t *ret_len)
{
    size_t size = dkm_protect_blob_size(group, n), len = 0;
    uint8_t *blob = OPENSSL_malloc(size);

    CU_ASSERT_PTR_NOT_NULL_FATAL(blob);
    CU_ASSERT_EQUAL_FATAL(dkm_protect_seal(NULL, NULL, key1, group, version, aad, aad_len,
                                           NULL, pt, n, blob, size, &len),
                          0);
    CU_ASSERT_EQUAL(len, size);
    *ret_len = len;
    return blob;
}

/* Open blob; returns the code and leaves out untouched on failure. */
static int open_blob(const uint8_t *key, const uint8_t *blob, size_t len,
                     const uint8_t *aad, size_t aad_len, uint8_t *out, size_t out_size,
                     size_t *ret_len)
{
    struct dkm_protect_header h;
    int r = dkm_protect_parse_header(blob, len, &h);

    if (r < 0)
        return r;
    return dkm_protect_open(NULL, NULL, key, &h, blob, len, aad, aad_len, out, out_size,
                            ret_len);
}

static void test_protect_round_trip_sizes(void)
{
    static const size_t sizes[] = {0, 1, 15, 16, 17, 4096, 65537, 1024 * 1024};
    uint8_t *pt = OPENSSL_malloc(1024 * 1024), *out = OPENSSL_malloc(1024 * 1024 + 1);

    CU_ASSERT_FATAL(pt != NULL && out != NULL);
    CU_ASSERT_FATAL(RAND_bytes(pt, 1024 * 1024) == 1);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        size_t len, n = 0;
        uint8_t *blob = seal("grp", 7, NULL, 0, pt, sizes[i], &len);

        CU_ASSERT_EQUAL(len, DKM_PROTECT_HEADER_FIXED + 3 + sizes[i] + 16);
        CU_ASSERT_EQUAL(open_blob(key1, blob, len, NULL, 0, out, sizes[i], &n), 0);
        CU_ASSERT_EQUAL(n, sizes[i]);
        CU_ASSERT(memcmp(out, pt, sizes[i]) == 0);
        OPENSSL_free(blob);
    }
    OPENSSL_free(pt);
    OPENSSL_free(out);
}

/* The layout of protect.h, recomputed with plain EVP calls. */
static void test_protect_layout_independent(void)
{
    static const uint8_t nonce[12] = {0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5,
                                      0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab};
    static const uint8_t pt[] = "attack at dawn";
    static const uint8_t aad[] = "ctx";
    uint8_t blob[128], expect[128];
    size_t len = 0, n = 0;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int outl;

    CU_ASSERT_EQUAL_FATAL(dkm_protect_seal(NULL, NULL, key1, "pay", 0x01020304, aad, 3,
                                           nonce, pt, 14, blob, sizeof(blob), &len),
                          0);
    memcpy(expect, "DKMP\x01\x01\x03pay\x01\x02\x03\x04", 14);
    memcpy(expect + 14, nonce, 12);
    n = 26;
    CU_ASSERT_FATAL(c != NULL);
    CU_ASSERT(EVP_EncryptInit_ex2(c, EVP_aes_256_gcm(), key1, nonce, NULL) == 1);
    CU_ASSERT(EVP_EncryptUpdate(c, NULL, &outl, expect, 26) == 1);
    CU_ASSERT(EVP_EncryptUpdate(c, NULL, &outl, aad, 3) == 1);
    CU_ASSERT(EVP_EncryptUpdate(c, expect + n, &outl, pt, 14) == 1);
    n += 14;
    CU_ASSERT(EVP_EncryptFinal_ex(c, expect + n, &outl) == 1);
    CU_ASSERT(EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, expect + n) == 1);
    n += 16;
    EVP_CIPHER_CTX_free(c);
    CU_ASSERT_EQUAL(len, n);
    CU_ASSERT(memcmp(blob, expect, n) == 0);
}

static void test_protect_aad_binding(void)
{
    static const uint8_t pt[] = "payload";
    uint8_t out[16];
    size_t len, n;
    uint8_t *with = seal("g", 1, (const uint8_t *)"A", 1, pt, 7, &len);
    uint8_t *without;

    CU_ASSERT_EQUAL(open_blob(key1, with, len, (const uint8_t *)"A", 1, out, 16, &n), 0);
    CU_ASSERT_EQUAL(open_blob(key1, with, len, (const uint8_t *)"B", 1, out, 16, &n),
                    DKM_E_INTEGRITY);
    CU_ASSERT_EQUAL(open_blob(key1, with, len, NULL, 0, out, 16, &n), DKM_E_INTEGRITY);
    OPENSSL_free(with);
    without = seal("g", 1, NULL, 0, pt, 7, &len);
    CU_ASSERT_EQUAL(open_blob(key1, without, len, (const uint8_t *)"A", 1, out, 16, &n),
                    DKM_E_INTEGRITY);
    OPENSSL_free(without);
}

static void test_protect_tamper_writes_nothing(void)
{
    uint8_t pt[100], out[100], canary[100];
    size_t len, n;
    uint8_t *blob;

    memset(pt, 0x5a, sizeof(pt));
    memset(canary, 0xee, sizeof(canary));
    blob = seal("group", 2, NULL, 0, pt, sizeof(pt), &len);
    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit += 7) {
            int r;

            blob[i] ^= (uint8_t)(1u << bit);
            memcpy(out, canary, sizeof(out));
            r = open_blob(key1, blob, len, NULL, 0, out, sizeof(out), &n);
            CU_ASSERT(r < 0);
            CU_ASSERT(memcmp(out, canary, sizeof(out)) == 0);
            blob[i] ^= (uint8_t)(1u << bit);
        }
    }
    memcpy(out, canary, sizeof(out));
    CU_ASSERT_EQUAL(open_blob(key2, blob, len, NULL, 0, out, sizeof(out), &n),
                    DKM_E_INTEGRITY);
    CU_ASSERT(memcmp(out, canary, sizeof(out)) == 0);
    /* Truncated by one byte, extended by one byte. */
    CU_ASSERT(open_blob(key1, blob, len - 1, NULL, 0, out, sizeof(out), &n) < 0);
    CU_ASSERT(memcmp(out, canary, sizeof(out)) == 0);
    OPENSSL_free(blob);
}

static void test_protect_header_fields(void)
{
    uint8_t pt[4] = {0}, blob[64];
    struct dkm_protect_header h;
    size_t len = 0;
    uint8_t save;

    CU_ASSERT_EQUAL_FATAL(dkm_protect_seal(NULL, NULL, key1, "ab", 5, NULL, 0, NULL, pt,
                                           4, blob, sizeof(blob), &len),
                          0);
    CU_ASSERT_EQUAL(dkm_protect_parse_header(blob, len, &h), 0);
    CU_ASSERT_STRING_EQUAL(h.group, "ab");
    CU_ASSERT_EQUAL(h.version, 5);
    CU_ASSERT_EQUAL(h.plaintext_len, 4);
    /* magic */
    save = blob[0], blob[0] = 'X';
    CU_ASSERT_EQUAL(dkm_protect_parse_header(blob, len, &h), DKM_E_FORMAT);
    blob[0] = save;
    /* format version */
    blob[4] = 2;
    CU_ASSERT_EQUAL(dkm_protect_parse_header(blob, len, &h), DKM_E_FORMAT);
    blob[4] = 1;
    /* unknown flag */
    blob[5] = 0x02;
    CU_ASSERT_EQUAL(dkm_protect_parse_header(blob, len, &h), DKM_E_FORMAT);
    blob[5] = 0;
    /* group length 0, too long, beyond the blob */
    blob[6] = 0;
    CU_ASSERT_EQUAL(dkm_protect_parse_header(blob, len, &h), DKM_E_FORMAT);
    blob[6] = 65;
    CU_ASSERT_EQUAL(dkm_protect_parse_header(blob, len, &h), DKM_E_FORMAT);
    blob[6] = 2;
    /* group character */
    blob[7] = '/';
    CU_ASSERT_EQUAL(dkm_protect_parse_header(blob, len, &h), DKM_E_FORMAT);
    blob[7] = 'a';
    /* version 0 */
    memset(blob + 9, 0, 4);
    CU_ASSERT_EQUAL(dkm_protect_parse_header(blob, len, &h), DKM_E_FORMAT);
    blob[12] = 5;
    /* too short for nonce, for tag */
    CU_ASSERT_EQUAL(dkm_protect_parse_header(blob, 20, &h), DKM_E_FORMAT);
    CU_ASSERT_EQUAL(dkm_protect_parse_header(blob, 25 + 15, &h), DKM_E_FORMAT);
    CU_ASSERT_EQUAL(dkm_protect_parse_header(blob, 25 + 16, &h), 0);
    CU_ASSERT_EQUAL(dkm_protect_parse_header(NULL, 0, &h), DKM_E_FORMAT);
}

static void test_protect_bad_arguments(void)
{
    uint8_t out[64];
    size_t len;

    CU_ASSERT_EQUAL(dkm_protect_blob_size("bad group", 1), 0);
    CU_ASSERT_EQUAL(dkm_protect_blob_size("g", DKM_PROTECT_MAX_PLAINTEXT + 1), 0);
    CU_ASSERT_EQUAL(dkm_protect_seal(NULL, NULL, key1, "g", 0, NULL, 0, NULL, NULL, 0,
                                     out, sizeof(out), &len),
                    -EINVAL);
    CU_ASSERT_EQUAL(dkm_protect_seal(NULL, NULL, key1, "g", 1, NULL, 0, NULL, NULL, 0,
                                     out, DKM_PROTECT_HEADER_FIXED + 1 + 15, &len),
                    -ENOSPC);
}

static CU_TestInfo protect_tests[] = {
    {"test_protect_round_trip_sizes", test_protect_round_trip_sizes},
    {"test_protect_layout_independent", test_protect_layout_independent},
    {"test_protect_aad_binding", test_protect_aad_binding},
    {"test_protect_tamper_writes_nothing", test_protect_tamper_writes_nothing},
    {"test_protect_header_fields", test_protect_header_fields},
    {"test_protect_bad_arguments", test_protect_bad_arguments},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {"protect", NULL, NULL, NULL, NULL, protect_tests},
    CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv)
{
    return dkm_test_main(argc, argv, suites);
}
