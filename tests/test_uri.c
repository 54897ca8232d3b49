/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of the dkm: URI parser: every valid form, and invalid inputs each
 * refused with a reason; the enc -K mapping both ways.
 */
#include <stdio.h>
#include <string.h>

#include "dkm/base/uri.h"
#include "unit.h"

static void expect_ok(const char *s, const char *group, uint32_t version, bool list)
{
    struct dkm_uri u;
    const char *reason = NULL;
    int r = dkm_uri_parse(s, strlen(s), DKM_URI_ALLOW_LIST, &u, &reason);

    CU_ASSERT_EQUAL_FATAL(r, 0);
    CU_ASSERT_STRING_EQUAL(u.group, group);
    CU_ASSERT_EQUAL(u.version, version);
    CU_ASSERT_EQUAL(u.list, list);
}

static void test_uri_valid_forms(void)
{
    char g64[65];

    expect_ok("dkm:payments", "payments", DKM_VERSION_CURRENT, false);
    expect_ok("dkm:payments/3", "payments", 3, false);
    expect_ok("dkm:payments/current", "payments", DKM_VERSION_CURRENT, false);
    expect_ok("dkm://payments", "payments", DKM_VERSION_CURRENT, false);
    expect_ok("dkm://payments/17", "payments", 17, false);
    expect_ok("dkm://payments/current", "payments", DKM_VERSION_CURRENT, false);
    expect_ok("dkm:a", "a", DKM_VERSION_CURRENT, false);
    expect_ok("dkm:A.b_c-9/1", "A.b_c-9", 1, false);
    expect_ok("dkm:g/4294967295", "g", 4294967295u, false);
    expect_ok("DKM:g/2", "g", 2, false);
    expect_ok("dkm:", "", DKM_VERSION_CURRENT, true);
    memset(g64, 'x', 64);
    g64[64] = '\0';
    {
        char uri[80];

        snprintf(uri, sizeof(uri), "dkm:%s/9", g64);
        expect_ok(uri, g64, 9, false);
        snprintf(uri, sizeof(uri), "dkm://%s", g64);
        expect_ok(uri, g64, DKM_VERSION_CURRENT, false);
    }
}

struct bad {
    const char *text;
    size_t len; /* 0: strlen */
    const char *reason_part;
};

static void test_uri_invalid_inputs(void)
{
    static const char nul_uri[] = "dkm:gr\0oup";
    char long_group[80], long_uri[200];
    struct bad cases[] = {
        {"", 0, "empty URI"},
        {"dkm", 0, "scheme"},
        {"dk:group", 0, "scheme"},
        {"file:group", 0, "scheme"},
        {" dkm:group", 0, "scheme"},
        {"dkm:/group", 0, "single '/'"},
        {"dkm:///group", 0, "empty group"},
        {"dkm://", 0, "empty group"},
        {"dkm:/1", 0, "single '/'"},
        {"dkm:group/", 0, "empty version"},
        {"dkm://group/", 0, "empty version"},
        {"dkm:group/0", 0, "version 0"},
        {"dkm:group/007", 0, "leading zero"},
        {"dkm:group/-1", 0, "positive decimal"},
        {"dkm:group/+1", 0, "positive decimal"},
        {"dkm:group/1.5", 0, "positive decimal"},
        {"dkm:group/4294967296", 0, "larger than"},
        {"dkm:group/99999999999999999999999", 0, "larger than"},
        {"dkm:group/Current", 0, "positive decimal"},
        {"dkm:group/1/2", 0, "too many '/'"},
        {"dkm:group//1", 0, "too many '/'"},
        {"dkm:gr oup", 0, "outside"},
        {"dkm:gr/oup/x", 0, "positive decimal"},
        {"dkm:grüp", 0, "outside"},
        {"dkm:group?x=1", 0, "queries"},
        {"dkm:group#frag", 0, "queries"},
        {"dkm:gr%41up", 0, "percent"},
        {"dkm:group/1 ", 0, "positive decimal"},
        {"dkm:user@group", 0, "outside"},
        {"dkm:group:1", 0, "outside"},
        {nul_uri, sizeof(nul_uri) - 1, "NUL"},
        {"dkm:", 0, "no group"}, /* without DKM_URI_ALLOW_LIST */
        {long_group, 0, "longer than 64"},
        {long_uri, 0, "longer than 128"},
    };

    memset(long_group, 0, sizeof(long_group));
    memcpy(long_group, "dkm:", 4);
    memset(long_group + 4, 'g', 65);
    memset(long_uri, 0, sizeof(long_uri));
    memcpy(long_uri, "dkm:", 4);
    memset(long_uri + 4, 'g', 130);

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct dkm_uri u;
        const char *reason = NULL;
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].text);
        int r;

        dkm_error_clear();
        r = dkm_uri_parse(cases[i].text, len, 0, &u, &reason);
        if (r != DKM_E_URI || reason == NULL ||
            strstr(reason, cases[i].reason_part) == NULL)
            fprintf(stderr, "case %zu (%.*s): r=%d reason=%s\n", i, (int)len,
                    cases[i].text, r, reason ? reason : "(null)");
        CU_ASSERT_EQUAL(r, DKM_E_URI);
        CU_ASSERT_PTR_NOT_NULL_FATAL(reason);
        CU_ASSERT_PTR_NOT_NULL(strstr(reason, cases[i].reason_part));
        /* The same reason is left as the thread's error detail. */
        CU_ASSERT_PTR_NOT_NULL(strstr(dkm_error_detail(), reason));
    }
    CU_ASSERT(sizeof(cases) / sizeof(cases[0]) >= 20);
}

static void test_uri_null_and_zero_length(void)
{
    struct dkm_uri u;

    CU_ASSERT_EQUAL(dkm_uri_parse(NULL, 0, 0, &u, NULL), DKM_E_URI);
    CU_ASSERT_EQUAL(dkm_uri_parse("dkm:g", 0, 0, &u, NULL), DKM_E_URI);
    /* The length bounds the parse: "dkm:g/12" cut after "dkm:g/1". */
    CU_ASSERT_EQUAL(dkm_uri_parse("dkm:g/12", 7, 0, &u, NULL), 0);
    CU_ASSERT_EQUAL(u.version, 1);
}

static void test_uri_group_valid(void)
{
    CU_ASSERT_TRUE(dkm_group_valid("a", 1));
    CU_ASSERT_TRUE(dkm_group_valid("Az09._-", 7));
    CU_ASSERT_FALSE(dkm_group_valid("", 0));
    CU_ASSERT_FALSE(dkm_group_valid("a/b", 3));
    CU_ASSERT_FALSE(dkm_group_valid("a b", 3));
    {
        char g[65];

        memset(g, 'a', sizeof(g));
        CU_ASSERT_TRUE(dkm_group_valid(g, 64));
        CU_ASSERT_FALSE(dkm_group_valid(g, 65));
    }
}

static void test_uri_format_canonical(void)
{
    struct dkm_uri u;
    char out[DKM_URI_MAX + 1];

    CU_ASSERT_EQUAL_FATAL(dkm_uri_parse("dkm://g/current", 15, 0, &u, NULL), 0);
    CU_ASSERT_EQUAL(dkm_uri_format(&u, out, sizeof(out)), 0);
    CU_ASSERT_STRING_EQUAL(out, "dkm:g");
    CU_ASSERT_EQUAL_FATAL(dkm_uri_parse("DKM://g/42", 10, 0, &u, NULL), 0);
    CU_ASSERT_EQUAL(dkm_uri_format(&u, out, sizeof(out)), 0);
    CU_ASSERT_STRING_EQUAL(out, "dkm:g/42");
    CU_ASSERT_EQUAL(dkm_uri_format(&u, out, 8), -ENOSPC);
}

static void test_uri_key_round_trip(void)
{
    uint8_t key[DKM_URI_KEY_LEN];
    struct dkm_uri u, back;

    CU_ASSERT_EQUAL_FATAL(dkm_uri_parse("dkm://payments/7", 16, 0, &u, NULL), 0);
    CU_ASSERT_EQUAL_FATAL(dkm_uri_to_key(&u, key), 0);
    CU_ASSERT_EQUAL(memcmp(key, "dkm:payments/7", 14), 0);
    for (size_t i = 14; i < sizeof(key); i++)
        CU_ASSERT_EQUAL(key[i], 0);
    CU_ASSERT_EQUAL_FATAL(dkm_uri_from_key(key, sizeof(key), &back), 0);
    CU_ASSERT_STRING_EQUAL(back.group, "payments");
    CU_ASSERT_EQUAL(back.version, 7);
}

static void test_uri_key_does_not_fit(void)
{
    uint8_t key[DKM_URI_KEY_LEN];
    struct dkm_uri u;
    char text[80];

    /* "dkm:" + 60 characters is exactly 64 bytes: fits with no NUL. */
    memcpy(text, "dkm:", 4);
    memset(text + 4, 'g', 60);
    CU_ASSERT_EQUAL_FATAL(dkm_uri_parse(text, 64, 0, &u, NULL), 0);
    CU_ASSERT_EQUAL(dkm_uri_to_key(&u, key), 0);
    CU_ASSERT_EQUAL(dkm_uri_from_key(key, sizeof(key), &u), 0);
    /* One more character does not fit. */
    memset(text + 4, 'g', 61);
    CU_ASSERT_EQUAL_FATAL(dkm_uri_parse(text, 65, 0, &u, NULL), 0);
    CU_ASSERT_EQUAL(dkm_uri_to_key(&u, key), DKM_E_URI);
    CU_ASSERT_PTR_NOT_NULL(strstr(dkm_error_detail(), "at most 64"));
    /* A listing URI names no key. */
    CU_ASSERT_EQUAL_FATAL(dkm_uri_parse("dkm:", 4, DKM_URI_ALLOW_LIST, &u, NULL), 0);
    CU_ASSERT_EQUAL(dkm_uri_to_key(&u, key), DKM_E_URI);
}

static void test_uri_key_invalid(void)
{
    uint8_t key[DKM_URI_KEY_LEN] = {0};
    struct dkm_uri u;

    /* Wrong length. */
    CU_ASSERT_EQUAL(dkm_uri_from_key(key, 32, &u), DKM_E_URI);
    /* All zero: empty URI. */
    CU_ASSERT_EQUAL(dkm_uri_from_key(key, sizeof(key), &u), DKM_E_URI);
    /* Bytes after the terminating NUL. */
    memcpy(key, "dkm:g", 5);
    key[40] = 'x';
    CU_ASSERT_EQUAL(dkm_uri_from_key(key, sizeof(key), &u), DKM_E_URI);
    /* Not a URI at all (e.g. a real AES key passed by mistake). */
    memset(key, 0xa5, sizeof(key));
    CU_ASSERT_EQUAL(dkm_uri_from_key(key, sizeof(key), &u), DKM_E_URI);
}

static CU_TestInfo uri_tests[] = {
    {"test_uri_valid_forms", test_uri_valid_forms},
    {"test_uri_invalid_inputs", test_uri_invalid_inputs},
    {"test_uri_null_and_zero_length", test_uri_null_and_zero_length},
    {"test_uri_group_valid", test_uri_group_valid},
    {"test_uri_format_canonical", test_uri_format_canonical},
    {"test_uri_key_round_trip", test_uri_key_round_trip},
    {"test_uri_key_does_not_fit", test_uri_key_does_not_fit},
    {"test_uri_key_invalid", test_uri_key_invalid},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {"uri", NULL, NULL, NULL, NULL, uri_tests},
    CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv)
{
    return dkm_test_main(argc, argv, suites);
}
