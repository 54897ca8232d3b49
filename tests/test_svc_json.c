/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of dkmd's strict request-body parsing: only a single JSON object
 * with declared members of the declared types and bounds is accepted;
 * unknown or duplicate members, wrong types, trailing bytes and bad
 * base64url are refused with a reason that names the field. Also the
 * error body every 4xx/5xx answer carries.
 */
#include <errno.h>
#include <string.h>

#include "json.h"
#include "unit.h"

static const struct svc_json_field fields[] = {
    {.name = "group", .type = SVC_JSON_STRING, .required = true, .min = 1, .max = 8},
    {.name = "nonce", .type = SVC_JSON_B64URL, .required = false, .min = 2, .max = 4},
    {.name = "version", .type = SVC_JSON_UINT, .required = false, .min = 1, .max = 100},
    {.name = "force", .type = SVC_JSON_BOOL, .required = false},
};
#define NFIELDS (sizeof(fields) / sizeof(fields[0]))

static int parse(const char *text, char *why, size_t size)
{
    json_t *o = NULL;
    int r = svc_json_parse(text, strlen(text), fields, NFIELDS, &o, why, size);

    if (r == 0) {
        CU_ASSERT_PTR_NOT_NULL(o);
    } else {
        CU_ASSERT_PTR_NULL(o);
    }
    json_decref(o);
    return r;
}

static void expect_refused(const char *text, const char *why_part)
{
    char why[256] = "";

    CU_ASSERT_EQUAL(parse(text, why, sizeof(why)), -EINVAL);
    if (strstr(why, why_part) == NULL) {
        fprintf(stderr, "\n  body %s: reason \"%s\" lacks \"%s\"\n", text, why, why_part);
        CU_FAIL("reason does not name the problem");
    }
}

static void test_svc_json_accepts_valid_body(void)
{
    char why[256];
    json_t *o = NULL;
    const char *text =
        "{\"group\":\"web\",\"nonce\":\"AAEC\",\"version\":7,\"force\":true}";
    uint8_t nonce[8];
    size_t n = 0;

    CU_ASSERT_EQUAL_FATAL(
        svc_json_parse(text, strlen(text), fields, NFIELDS, &o, why, sizeof(why)), 0);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "group")), "web");
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(o, "version")), 7);
    CU_ASSERT_EQUAL(svc_json_get_b64url(o, "nonce", nonce, sizeof(nonce), &n), 0);
    CU_ASSERT_EQUAL(n, 3);
    CU_ASSERT(nonce[0] == 0 && nonce[1] == 1 && nonce[2] == 2);
    json_decref(o);
    /* Only the required member. */
    CU_ASSERT_EQUAL(parse("{\"group\":\"a\"}", why, sizeof(why)), 0);
}

static void test_svc_json_rejects_unknown_field(void)
{
    expect_refused("{\"group\":\"web\",\"grop\":\"x\"}", "unknown field \"grop\"");
}

static void test_svc_json_rejects_wrong_types(void)
{
    expect_refused("{\"group\":5}", "\"group\" must be a string");
    expect_refused("{\"group\":\"a\",\"version\":\"7\"}",
                   "\"version\" must be an integer");
    expect_refused("{\"group\":\"a\",\"version\":7.5}", "\"version\" must be an integer");
    expect_refused("{\"group\":\"a\",\"force\":1}", "\"force\" must be true or false");
    expect_refused("{\"group\":\"a\",\"nonce\":12}", "\"nonce\" must be a base64url");
    expect_refused("{\"group\":null}", "\"group\" must be a string");
}

static void test_svc_json_rejects_out_of_bounds(void)
{
    expect_refused("{\"group\":\"\"}", "\"group\" must be 1 to 8 bytes");
    expect_refused("{\"group\":\"123456789\"}", "\"group\" must be 1 to 8 bytes");
    expect_refused("{\"group\":\"a\",\"version\":0}",
                   "\"version\" must be from 1 to 100");
    expect_refused("{\"group\":\"a\",\"version\":101}",
                   "\"version\" must be from 1 to 100");
    expect_refused("{\"group\":\"a\",\"version\":-1}",
                   "\"version\" must be from 1 to 100");
    /* One byte decoded is below min 2; seven bytes above max 4. */
    expect_refused("{\"group\":\"a\",\"nonce\":\"AA\"}", "\"nonce\"");
    expect_refused("{\"group\":\"a\",\"nonce\":\"AAAAAAAAAA\"}", "\"nonce\"");
}

static void test_svc_json_rejects_bad_base64url(void)
{
    expect_refused("{\"group\":\"a\",\"nonce\":\"AA+/\"}", "not valid base64url");
    expect_refused("{\"group\":\"a\",\"nonce\":\"AAA=\"}", "\"nonce\"");
    expect_refused("{\"group\":\"a\",\"nonce\":\"AAAAA\"}", "\"nonce\"");
}

static void test_svc_json_rejects_missing_required(void)
{
    expect_refused("{}", "missing field \"group\"");
    expect_refused("{\"version\":3}", "missing field \"group\"");
}

static void test_svc_json_rejects_non_objects_and_garbage(void)
{
    expect_refused("", "needs a JSON object");
    expect_refused("[1,2]", "must be a JSON object");
    expect_refused("\"group\"", "invalid JSON");
    expect_refused("{\"group\":\"a\"} {}", "invalid JSON");
    expect_refused("{\"group\":\"a\"", "invalid JSON");
    expect_refused("{\"group\":\"a\",}", "invalid JSON");
    expect_refused("\xff\xfe{}", "invalid JSON");
}

static void test_svc_json_rejects_duplicates(void)
{
    expect_refused("{\"group\":\"a\",\"group\":\"b\"}", "invalid JSON");
}

static void test_svc_json_rejects_embedded_nul(void)
{
    expect_refused("{\"group\":\"a\\u0000b\"}", "NUL");
}

static void test_svc_json_unknown_field_name_not_echoed_when_odd(void)
{
    char why[256] = "";

    CU_ASSERT_EQUAL(parse("{\"group\":\"a\",\"x\\\"y\":1}", why, sizeof(why)), -EINVAL);
    CU_ASSERT_STRING_EQUAL(why, "unknown field");
}

static void test_svc_json_error_body(void)
{
    char *t = svc_json_error_body("bad request", "missing field \"group\"");

    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT_STRING_EQUAL(t, "{\"error\":\"bad request\",\"detail\":\"missing field "
                              "\\\"group\\\"\"}");
    free(t);
    t = svc_json_error_body("not found", NULL);
    CU_ASSERT_STRING_EQUAL(t, "{\"error\":\"not found\"}");
    free(t);
    /* Invalid UTF-8 in a detail must not lose the error itself. */
    t = svc_json_error_body("bad request", "\xff");
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "\"error\":\"bad request\""));
    free(t);
}

static CU_TestInfo json_tests[] = {
    {"test_svc_json_accepts_valid_body", test_svc_json_accepts_valid_body},
    {"test_svc_json_rejects_unknown_field", test_svc_json_rejects_unknown_field},
    {"test_svc_json_rejects_wrong_types", test_svc_json_rejects_wrong_types},
    {"test_svc_json_rejects_out_of_bounds", test_svc_json_rejects_out_of_bounds},
    {"test_svc_json_rejects_bad_base64url", test_svc_json_rejects_bad_base64url},
    {"test_svc_json_rejects_missing_required", test_svc_json_rejects_missing_required},
    {"test_svc_json_rejects_non_objects_and_garbage",
     test_svc_json_rejects_non_objects_and_garbage},
    {"test_svc_json_rejects_duplicates", test_svc_json_rejects_duplicates},
    {"test_svc_json_rejects_embedded_nul", test_svc_json_rejects_embedded_nul},
    {"test_svc_json_unknown_field_name_not_echoed_when_odd",
     test_svc_json_unknown_field_name_not_echoed_when_odd},
    {"test_svc_json_error_body", test_svc_json_error_body},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {"svc_json", NULL, NULL, NULL, NULL, json_tests},
    CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv)
{
    return dkm_test_main(argc, argv, suites);
}
