/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of dkmd's seen file (service/keys/seen.c): merging keeps the
 * highest serial of each key and says when anything rose, lookups find
 * exactly what was merged, a round trip through the file format gives
 * the same marks, and the decoder refuses every bad field (magic,
 * version, truncated header, count against the bytes left, an entry's
 * kind, a zero serial, entries out of order or repeated, a file over the
 * maximum) before any of it is used; a missing file is -ENOENT.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "seen.h"
#include "unit.h"

static struct ks_seen_entry obs(uint8_t kind, const char *name, uint64_t serial)
{
    struct ks_seen_entry e = {.kind = kind, .serial = serial};

    ks_seen_key(name, strlen(name), NULL, 0, e.key);
    return e;
}

static void test_svc_seen_merge_keeps_the_highest(void)
{
    struct ks_seen s = {0};
    struct ks_seen_entry o[4] = {obs(KS_SEEN_NODE, "a", 3), obs(KS_SEEN_POLICY, "a", 1),
                                 obs(KS_SEEN_NODE, "a", 2), obs(KS_SEEN_GRANT, "b", 7)};
    struct ks_seen_entry again[2] = {obs(KS_SEEN_NODE, "a", 1),
                                     obs(KS_SEEN_GRANT, "b", 7)};
    struct ks_seen_entry up[1] = {obs(KS_SEEN_NODE, "a", 9)};
    bool changed = false;
    uint8_t key[KS_SEEN_KEY_SIZE];

    CU_ASSERT_EQUAL_FATAL(ks_seen_merge(&s, o, 4, &changed), 0);
    CU_ASSERT_TRUE(changed);
    CU_ASSERT_EQUAL(s.n, 3);
    ks_seen_key("a", 1, NULL, 0, key);
    CU_ASSERT_EQUAL(ks_seen_get(&s, KS_SEEN_NODE, key), 3);
    CU_ASSERT_EQUAL(ks_seen_get(&s, KS_SEEN_POLICY, key), 1);
    /* The same key under another kind is another mark. */
    CU_ASSERT_EQUAL(ks_seen_get(&s, KS_SEEN_GRANT, key), 0);
    /* Nothing lower or equal changes anything. */
    CU_ASSERT_EQUAL(ks_seen_merge(&s, again, 2, &changed), 0);
    CU_ASSERT_FALSE(changed);
    CU_ASSERT_EQUAL(ks_seen_get(&s, KS_SEEN_NODE, key), 3);
    CU_ASSERT_EQUAL(ks_seen_merge(&s, up, 1, &changed), 0);
    CU_ASSERT_TRUE(changed);
    CU_ASSERT_EQUAL(ks_seen_get(&s, KS_SEEN_NODE, key), 9);
    /* A grant's key is the group and the node, apart. */
    {
        uint8_t k1[KS_SEEN_KEY_SIZE], k2[KS_SEEN_KEY_SIZE];

        ks_seen_key("ab", 2, "c", 1, k1);
        ks_seen_key("a", 1, "bc", 2, k2);
        CU_ASSERT_NOT_EQUAL(memcmp(k1, k2, sizeof(k1)), 0);
    }
    ks_seen_clear(&s);
    CU_ASSERT_EQUAL(ks_seen_get(&s, KS_SEEN_NODE, key), 0);
}

/* A file of two entries: header (22 bytes), then 41 bytes per entry. */
static uint8_t *two_entries(size_t *len, struct ks_seen *ret)
{
    struct ks_seen s = {.head = 42, .list_version = 3};
    struct ks_seen_entry o[2] = {obs(KS_SEEN_NODE, "n", 5), obs(KS_SEEN_GRANT, "g", 6)};
    uint8_t *buf = NULL;
    bool changed;

    CU_ASSERT_EQUAL_FATAL(ks_seen_merge(&s, o, 2, &changed), 0);
    CU_ASSERT_EQUAL_FATAL(ks_seen_encode(&s, &buf, len), 0);
    CU_ASSERT_EQUAL_FATAL(*len, KS_SEEN_HEADER + 2 * KS_SEEN_ENTRY);
    if (ret != NULL)
        *ret = s;
    else
        ks_seen_clear(&s);
    return buf;
}

static void test_svc_seen_round_trip(void)
{
    struct ks_seen s, got;
    size_t len;
    uint8_t *buf = two_entries(&len, &s);
    char dir[] = "/tmp/dkm-seen-XXXXXX", path[64];

    CU_ASSERT_EQUAL_FATAL(ks_seen_decode(buf, len, &got), 0);
    CU_ASSERT_EQUAL(got.head, 42);
    CU_ASSERT_EQUAL(got.list_version, 3);
    CU_ASSERT_EQUAL(got.n, 2);
    for (size_t i = 0; i < 2 && got.n == 2; i++) {
        CU_ASSERT_EQUAL(got.v[i].kind, s.v[i].kind);
        CU_ASSERT_EQUAL(got.v[i].serial, s.v[i].serial);
        CU_ASSERT_EQUAL(memcmp(got.v[i].key, s.v[i].key, KS_SEEN_KEY_SIZE), 0);
    }
    ks_seen_clear(&got);
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/seen", dir);
    CU_ASSERT_EQUAL(ks_seen_load(path, &got), -ENOENT);
    CU_ASSERT_EQUAL(got.n, 0);
    CU_ASSERT_EQUAL_FATAL(ks_seen_save(path, &s), 0);
    CU_ASSERT_EQUAL_FATAL(ks_seen_load(path, &got), 0);
    CU_ASSERT_EQUAL(got.head, 42);
    CU_ASSERT_EQUAL(got.n, 2);
    ks_seen_clear(&got);
    unlink(path);
    rmdir(dir);
    ks_seen_clear(&s);
    free(buf);
}

static int decode(const uint8_t *buf, size_t len)
{
    struct ks_seen s;
    int r = ks_seen_decode(buf, len, &s);

    if (r == 0)
        ks_seen_clear(&s);
    return r;
}

static void test_svc_seen_bad_fields(void)
{
    size_t len, e0 = KS_SEEN_HEADER, e1 = KS_SEEN_HEADER + KS_SEEN_ENTRY;
    uint8_t *buf = two_entries(&len, NULL), *copy = malloc(len + 1);

    CU_ASSERT_PTR_NOT_NULL_FATAL(copy);
#define RESET() memcpy(copy, buf, len)
    /* Magic, version. */
    RESET();
    copy[0] = 'X';
    CU_ASSERT_EQUAL(decode(copy, len), DKM_E_FORMAT);
    RESET();
    copy[5] = 2;
    CU_ASSERT_EQUAL(decode(copy, len), DKM_E_FORMAT);
    /* Every truncation, the header's included, and a byte too many. */
    for (size_t cut = 0; cut < len; cut++) {
        RESET();
        CU_ASSERT_EQUAL(decode(copy, cut), DKM_E_FORMAT);
    }
    RESET();
    copy[len] = 0;
    CU_ASSERT_EQUAL(decode(copy, len + 1), DKM_E_FORMAT);
    /* A count that does not match the entries, and one over the maximum. */
    RESET();
    copy[21] = 3;
    CU_ASSERT_EQUAL(decode(copy, len), DKM_E_FORMAT);
    RESET();
    copy[21] = 1;
    CU_ASSERT_EQUAL(decode(copy, len), DKM_E_FORMAT);
    RESET();
    copy[18] = 0xff;
    CU_ASSERT_EQUAL(decode(copy, len), DKM_E_FORMAT);
    /* An entry's kind: 0 and 4 are unknown. */
    RESET();
    copy[e1] = 0;
    CU_ASSERT_EQUAL(decode(copy, len), DKM_E_FORMAT);
    RESET();
    copy[e1] = 4;
    CU_ASSERT_EQUAL(decode(copy, len), DKM_E_FORMAT);
    /* A serial of 0. */
    RESET();
    memset(copy + e0 + 1 + KS_SEEN_KEY_SIZE, 0, 8);
    CU_ASSERT_EQUAL(decode(copy, len), DKM_E_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(dkm_error_detail(), "serial 0"));
    /* Entries out of order (kinds swapped), and a repeated entry. */
    RESET();
    copy[e0] = KS_SEEN_GRANT;
    copy[e1] = KS_SEEN_NODE;
    CU_ASSERT_EQUAL(decode(copy, len), DKM_E_FORMAT);
    RESET();
    memcpy(copy + e1, copy + e0, KS_SEEN_ENTRY);
    CU_ASSERT_EQUAL(decode(copy, len), DKM_E_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(dkm_error_detail(), "out of order or repeated"));
    /* Unchanged, it decodes. */
    RESET();
    CU_ASSERT_EQUAL(decode(copy, len), 0);
    /* Over the maximum size: refused before anything is read. */
    CU_ASSERT_EQUAL(
        decode(copy, KS_SEEN_HEADER + (size_t)KS_SEEN_ENTRY * KS_SEEN_MAX_ENTRIES + 1),
        DKM_E_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(dkm_error_detail(), "too large"));
#undef RESET
    free(copy);
    free(buf);
}

static CU_TestInfo seen_tests[] = {
    {"test_svc_seen_merge_keeps_the_highest", test_svc_seen_merge_keeps_the_highest},
    {"test_svc_seen_round_trip", test_svc_seen_round_trip},
    {"test_svc_seen_bad_fields", test_svc_seen_bad_fields},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {"svc_seen", NULL, NULL, NULL, NULL, seen_tests},
    CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv)
{
    return dkm_test_main(argc, argv, suites);
}
