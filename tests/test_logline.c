/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of the log line formats (common/base/logline.c through
 * dkm_log_render and the logger itself): the text format's quoting and
 * every escape, JSON lines that jansson parses back to the values given,
 * numbers, the order ts, level, event, fields, names that are reserved
 * or not names, secrets withheld in every format, and lines cut to size
 * that stay well-formed.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "dkm/base/log.h"
#include "dkm/base/secmem.h"
#include "unit.h"

/* 2023-11-14T22:13:20.123Z */
#define T0 1700000000123ULL

static char line[DKM_LOG_LINE_MAX];

#define TEXT(...)                                                                        \
    dkm_log_render(line, sizeof(line), DKM_LOG_TEXT, DKM_LOG_INFO, true, T0, __VA_ARGS__)
#define JSON(...)                                                                        \
    dkm_log_render(line, sizeof(line), DKM_LOG_JSON, DKM_LOG_INFO, true, T0, __VA_ARGS__)

/* The line parsed as one JSON object (strictly: no duplicate keys); NULL fails. */
static json_t *parsed(void)
{
    json_error_t err;
    json_t *j = json_loads(line, JSON_REJECT_DUPLICATES, &err);

    if (j == NULL || !json_is_object(j)) {
        fprintf(stderr, "not a JSON object (%s): %s\n", err.text, line);
        json_decref(j);
        return NULL;
    }
    return j;
}

/* No byte below 0x20 (a raw newline above all) and no DEL in the line. */
static bool no_control_bytes(void)
{
    for (const unsigned char *p = (const unsigned char *)line; *p != '\0'; p++)
        if (*p < 0x20 || *p == 0x7f)
            return false;
    return true;
}

/* The text line's fields after "ts=... level=info event=e " . */
static const char *text_fields(void)
{
    const char *p = strstr(line, " event=e ");

    return p != NULL ? p + strlen(" event=e ") : "";
}

static void test_logline_text_order_and_fields(void)
{
    size_t n = TEXT("group.rotate group=%s version=%u", "payments", 3u);

    CU_ASSERT_STRING_EQUAL(line, "ts=2023-11-14T22:13:20.123Z level=info "
                                 "event=group.rotate group=payments version=3");
    CU_ASSERT_EQUAL(n, strlen(line));
    /* An event without fields, and levels by name. */
    dkm_log_render(line, sizeof(line), DKM_LOG_TEXT, DKM_LOG_WARNING, true, T0,
                   "service.stopped");
    CU_ASSERT_STRING_EQUAL(line, "ts=2023-11-14T22:13:20.123Z level=warning "
                                 "event=service.stopped");
    dkm_log_render(line, sizeof(line), DKM_LOG_TEXT, DKM_LOG_ERR, true, T0, "x a=1");
    CU_ASSERT_PTR_NOT_NULL(strstr(line, " level=error event=x a=1"));
    dkm_log_render(line, sizeof(line), DKM_LOG_TEXT, DKM_LOG_NOTICE, true, T0, "x");
    CU_ASSERT_PTR_NOT_NULL(strstr(line, " level=notice "));
    dkm_log_render(line, sizeof(line), DKM_LOG_TEXT, DKM_LOG_DEBUG, true, T0, "x");
    CU_ASSERT_PTR_NOT_NULL(strstr(line, " level=debug "));
    /* Several conversions in one value, literal text, %%, and extra spaces. */
    TEXT("e  which=%s/%u   pct=%d%%  state=ready", "pay", 7u, 50);
    CU_ASSERT_STRING_EQUAL(text_fields(), "which=pay/7 pct=50% state=ready");
    /* A space flag inside a conversion does not split the word. */
    TEXT("e n=% d m=%-3d|", 5, 7);
    CU_ASSERT_STRING_EQUAL(text_fields(), "n=\" 5\" m=\"7  |\"");
}

static void test_logline_text_escapes(void)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"plain", "v=plain"},
        {"", "v=\"\""},
        {"two words", "v=\"two words\""},
        {"say \"hi\"", "v=\"say \\\"hi\\\"\""},
        {"back\\slash", "v=\"back\\\\slash\""},
        {"a=b", "v=\"a=b\""},
        {"l1\nl2", "v=\"l1\\nl2\""},
        {"cr\rtab\t", "v=\"cr\\rtab\\t\""},
        {"bell\x07", "v=\"bell\\u0007\""},
        {"esc\x1b[31m", "v=\"esc\\u001b[31m\""},
        {"del\x7f", "v=\"del\\u007f\""},
        {"caf\xc3\xa9", "v=caf\xc3\xa9"}, /* UTF-8 needs no quotes */
        {"\xe2\x82\xac\xf0\x9f\x94\x91", "v=\xe2\x82\xac\xf0\x9f\x94\x91"},
        {"bad\xff", "v=\"bad\\ufffd\""},                            /* not UTF-8 */
        {"\xc0\xaf", "v=\"\\ufffd\\ufffd\""},                       /* overlong */
        {"\xed\xa0\x80", "v=\"\\ufffd\\ufffd\\ufffd\""},            /* a surrogate */
        {"\xf4\x90\x80\x80", "v=\"\\ufffd\\ufffd\\ufffd\\ufffd\""}, /* > U+10FFFF */
        {"cut\xe2\x82", "v=\"cut\\ufffd\\ufffd\""},       /* a sequence cut short */
        {"trailing newline\n", "v=\"trailing newline\""}, /* libpq's messages */
        {"\r\n", "v=\"\""},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        TEXT("e v=%s", cases[i].in);
        if (strcmp(text_fields(), cases[i].out) != 0)
            fprintf(stderr, "case %zu: got [%s], want [%s]\n", i, text_fields(),
                    cases[i].out);
        CU_ASSERT_STRING_EQUAL(text_fields(), cases[i].out);
        CU_ASSERT_TRUE(no_control_bytes());
    }
}

static void test_logline_json_escapes_parse_back(void)
{
    static const struct {
        const char *in, *back;
    } cases[] = {
        {"plain", "plain"},
        {"", ""},
        {"two words", "two words"},
        {"say \"hi\"", "say \"hi\""},
        {"back\\slash", "back\\slash"},
        {"l1\nl2\r\t", "l1\nl2\r\t"},
        {"\x01\x1f\x7f", "\x01\x1f\x7f"},
        {"caf\xc3\xa9 \xf0\x9f\x94\x91", "caf\xc3\xa9 \xf0\x9f\x94\x91"},
        {"bad\xff", "bad\xef\xbf\xbd"},
        {"\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd"},
        {"\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
        {"cut\xe2\x82", "cut\xef\xbf\xbd\xef\xbf\xbd"},
        {"</script>", "</script>"},
        {"{\"k\":1}", "{\"k\":1}"},
        {"error\n", "error"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_t *j;

        JSON("e v=%s", cases[i].in);
        CU_ASSERT_TRUE(no_control_bytes());
        j = parsed();
        CU_ASSERT_PTR_NOT_NULL_FATAL(j);
        CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "v")), cases[i].back);
        json_decref(j);
    }
}

static void test_logline_json_order_and_types(void)
{
    json_t *j;
    const char *keys[] = {"ts",    "level", "event",  "group",  "version", "n",
                          "ratio", "hex",   "padded", "signed", "which",   "lit"};
    const char *prev = line;
    const char *head = "{\"ts\":\"2023-11-14T22:13:20.123Z\",\"level\":\"info\","
                       "\"event\":\"group.rotate\",\"group\":";

    JSON("group.rotate group=%s version=%u n=%lld ratio=%.2f hex=%x padded=%05d "
         "signed=%+d which=%s/%u lit=ready",
         "payments", 3u, -42LL, 0.5, 255u, 42, 5, "pay", 7u);
    CU_ASSERT_TRUE(strncmp(line, head, strlen(head)) == 0);
    /* Fields in the order of the format. */
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        char quoted[32];
        const char *at;

        snprintf(quoted, sizeof(quoted), "\"%s\":", keys[i]);
        at = strstr(line, quoted);
        CU_ASSERT_PTR_NOT_NULL_FATAL(at);
        CU_ASSERT_TRUE(at >= prev);
        prev = at;
    }
    j = parsed();
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT_EQUAL(json_object_size(j), sizeof(keys) / sizeof(keys[0]));
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "level")), "info");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "event")),
                           "group.rotate");
    CU_ASSERT_TRUE(json_is_integer(json_object_get(j, "version")));
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "version")), 3);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "n")), -42);
    CU_ASSERT_TRUE(json_is_real(json_object_get(j, "ratio")));
    CU_ASSERT_DOUBLE_EQUAL(json_real_value(json_object_get(j, "ratio")), 0.5, 1e-9);
    /* What is not a JSON number stays a string: hex, leading zeros, a plus sign. */
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "hex")), "ff");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "padded")), "00042");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "signed")), "+5");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "which")), "pay/7");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "lit")), "ready");
    json_decref(j);
    /* A float that prints as no number (inf) is a string, so the line still parses. */
    JSON("e x=%f", (double)INFINITY);
    j = parsed();
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "x")), "inf");
    json_decref(j);
}

static void test_logline_names(void)
{
    json_t *j;

    /* Reserved names get a prefix, odd characters become '_', no '=' is "_". */
    JSON("ev!nt level=%s ts=%d src=a func=b event=c we ird=%s k\"ey=1", "x", 1, "y");
    j = parsed();
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "event")), "ev_nt");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "level")), "info");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "f_level")), "x");
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "f_ts")), 1);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "f_src")), "a");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "f_func")), "b");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "f_event")), "c");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "ird")), "y");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "k_ey")), "1");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "_")), "we");
    json_decref(j);
    /* "we" and "lonely" have no '=': both are "_", which text keeps apart. */
    TEXT("e we lonely");
    CU_ASSERT_STRING_EQUAL(text_fields(), "_=we _=lonely");
}

static void test_logline_messages(void)
{
    json_t *j;

    dkm_log_render(line, sizeof(line), DKM_LOG_TEXT, DKM_LOG_INFO, false, T0,
                   "group %s has %d versions\n", "pay", 3);
    CU_ASSERT_STRING_EQUAL(line, "ts=2023-11-14T22:13:20.123Z level=info event=message "
                                 "msg=\"group pay has 3 versions\"");
    dkm_log_render(line, sizeof(line), DKM_LOG_JSON, DKM_LOG_INFO, false, T0,
                   "multi\nline \"quoted\"");
    CU_ASSERT_TRUE(no_control_bytes());
    j = parsed();
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "event")), "message");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "msg")),
                           "multi\nline \"quoted\"");
    json_decref(j);
    /* Plain: as before, for a human; still one line. */
    dkm_log_setup("t", DKM_LOG_STDERR, DKM_LOG_INFO);
    dkm_log_render(line, sizeof(line), DKM_LOG_PLAIN, DKM_LOG_WARNING, false, T0,
                   "a %s\nb", "x");
    CU_ASSERT_STRING_EQUAL(line, "t: warning: a x\\nb");
    dkm_log_render(line, sizeof(line), DKM_LOG_PLAIN, DKM_LOG_NOTICE, true, T0,
                   "server.add node=%s why=%s", "000b", "two words");
    CU_ASSERT_STRING_EQUAL(line, "t: notice: server.add node=000b why=\"two words\"");
}

static void test_logline_secret_withheld_everywhere(void)
{
    static const enum dkm_log_format formats[] = {DKM_LOG_PLAIN, DKM_LOG_TEXT,
                                                  DKM_LOG_JSON};
    char *secret = NULL;
    int count = -1;

    CU_ASSERT_EQUAL_FATAL(dkm_secmem_alloc(32, (void **)&secret), 0);
    memcpy(secret, "TOPSECRETKEYBYTES", 18);
    for (size_t i = 0; i < 3; i++) {
        enum dkm_log_format f = formats[i];

        /* A secret in any field, even after harmless ones; a pointer into it. */
        dkm_log_render(line, sizeof(line), f, DKM_LOG_ERR, true, T0,
                       "key.fetch group=%s version=%u key=%s", "pay", 2u, secret);
        CU_ASSERT_PTR_NULL(strstr(line, "SECRET"));
        CU_ASSERT_PTR_NULL(strstr(line, "pay")); /* nothing of the event is formatted */
        CU_ASSERT_PTR_NOT_NULL(strstr(line, "withheld"));
        CU_ASSERT_PTR_NOT_NULL(strstr(line, "key.fetch"));
        CU_ASSERT_PTR_NOT_NULL(strstr(line, "secret argument"));
        dkm_log_render(line, sizeof(line), f, DKM_LOG_ERR, true, T0, "e p=%p",
                       (void *)(secret + 5));
        CU_ASSERT_PTR_NOT_NULL(strstr(line, "withheld"));
        dkm_log_render(line, sizeof(line), f, DKM_LOG_ERR, true, T0, "e%s x=1",
                       secret + 3);
        CU_ASSERT_PTR_NULL(strstr(line, "SECRET"));
        CU_ASSERT_PTR_NOT_NULL(strstr(line, "withheld"));
        /* A plain message too. */
        dkm_log_render(line, sizeof(line), f, DKM_LOG_ERR, false, T0, "key is %s",
                       secret);
        CU_ASSERT_PTR_NULL(strstr(line, "SECRET"));
        CU_ASSERT_PTR_NOT_NULL(strstr(line, "withheld"));
        /* %n is refused as unsupported (and never written through). */
        dkm_log_render(line, sizeof(line), f, DKM_LOG_ERR, true, T0, "e n=%n", &count);
        CU_ASSERT_PTR_NOT_NULL(strstr(line, "unsupported argument"));
        if (f == DKM_LOG_JSON) {
            json_t *j;

            dkm_log_render(line, sizeof(line), f, DKM_LOG_ERR, true, T0,
                           "key.fetch group=%s key=%s", "pay", secret);
            j = parsed();
            CU_ASSERT_PTR_NOT_NULL_FATAL(j);
            CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "level")),
                                   "error");
            CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "event")),
                                   "key.fetch");
            CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "withheld")),
                                   "secret argument in \"key.fetch group=%s key=%s\"");
            CU_ASSERT_PTR_NULL(json_object_get(j, "group"));
            json_decref(j);
        }
    }
    CU_ASSERT_EQUAL(count, -1);
    dkm_secmem_free(secret);
}

/* Every size from the smallest: the line fits, stays well-formed and says it was cut. */
static void test_logline_cut_lines_stay_well_formed(void)
{
    char big[3 * DKM_LOG_VALUE_MAX], small[1200];

    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    for (size_t i = 0; i < 400; i++)
        memcpy(big + 3 * i + 1, "\"\n\xc3", 3); /* escapes and a cut UTF-8 sequence */
    for (size_t size = 256; size <= sizeof(small); size += 7) {
        json_t *j;
        size_t n;

        n = dkm_log_render(small, size, DKM_LOG_JSON, DKM_LOG_INFO, true, T0,
                           "e a=%s b=%d c=%s", big, 12345, "end");
        CU_ASSERT_TRUE(n < size);
        CU_ASSERT_EQUAL(strlen(small), n);
        memcpy(line, small, n + 1);
        j = parsed();
        CU_ASSERT_PTR_NOT_NULL_FATAL(j);
        CU_ASSERT_TRUE(json_is_true(json_object_get(j, "truncated")));
        CU_ASSERT_PTR_NULL(json_object_get(j, "c"));
        json_decref(j);
        n = dkm_log_render(small, size, DKM_LOG_TEXT, DKM_LOG_INFO, true, T0,
                           "e a=%s b=%d", big, 1);
        CU_ASSERT_TRUE(n < size);
        CU_ASSERT_PTR_NOT_NULL(strstr(small, " truncated=true"));
        CU_ASSERT_EQUAL(strcmp(small + n - strlen(" truncated=true"), " truncated=true"),
                        0);
    }
    /* Below 256 bytes there is no room for a well-formed line: nothing. */
    CU_ASSERT_EQUAL(dkm_log_render(small, 255, DKM_LOG_JSON, DKM_LOG_INFO, true, T0, "e"),
                    0);
    CU_ASSERT_STRING_EQUAL(small, "");
    /* A value is cut at DKM_LOG_VALUE_MAX bytes; the line is not cut. */
    memset(big, 'b', sizeof(big) - 1);
    JSON("e a=%s", big);
    {
        json_t *j = parsed();

        CU_ASSERT_PTR_NOT_NULL_FATAL(j);
        CU_ASSERT_EQUAL(strlen(json_string_value(json_object_get(j, "a"))),
                        DKM_LOG_VALUE_MAX);
        CU_ASSERT_PTR_NULL(json_object_get(j, "truncated"));
        json_decref(j);
    }
}

/* Run fn with stderr sent to a file; return what it wrote (static). */
static const char *capture_stderr(void (*fn)(void))
{
    static char out[16384];
    char path[512];
    int saved, fd;
    ssize_t n;

    snprintf(path, sizeof(path), "%s/stderr.txt", dkm_test_tmpdir());
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    CU_ASSERT_FATAL(fd >= 0);
    saved = dup(2);
    dup2(fd, 2);
    fn();
    dup2(saved, 2);
    close(saved);
    n = pread(fd, out, sizeof(out) - 1, 0);
    close(fd);
    out[n > 0 ? n : 0] = '\0';
    return out;
}

static void log_some(void)
{
    log_event(DKM_LOG_NOTICE, "server.add node=%s copies=%zu", "000b", (size_t)14);
    log_info("a plain %s", "message");
    log_event(DKM_LOG_DEBUG, "debug.only");
}

static void test_logline_logger_writes_lines(void)
{
    const char *out;
    char *nl;
    json_t *j;

    dkm_log_setup("t", DKM_LOG_STDERR, DKM_LOG_INFO);
    dkm_log_set_format(DKM_LOG_JSON);
    out = capture_stderr(log_some);
    /* Two lines, each one JSON object. */
    nl = strchr(out, '\n');
    CU_ASSERT_PTR_NOT_NULL_FATAL(nl);
    snprintf(line, sizeof(line), "%.*s", (int)(nl - out), out);
    j = parsed();
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "event")), "server.add");
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "copies")), 14);
    CU_ASSERT_PTR_NULL(json_object_get(j, "src")); /* only at debug level */
    json_decref(j);
    snprintf(line, sizeof(line), "%s", nl + 1);
    nl = strchr(line, '\n');
    CU_ASSERT_PTR_NOT_NULL_FATAL(nl);
    CU_ASSERT_EQUAL(nl[1], '\0'); /* nothing after the second line */
    *nl = '\0';
    j = parsed();
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "msg")),
                           "a plain message");
    json_decref(j);
    CU_ASSERT_PTR_NULL(strstr(out, "debug.only"));
    /* At debug level each line says where it comes from. */
    dkm_log_set_level(DKM_LOG_DEBUG);
    dkm_log_set_format(DKM_LOG_TEXT);
    out = capture_stderr(log_some);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, " src=tests/test_logline.c:"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, " func=log_some\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, " event=debug.only src=tests/test_logline.c:"));
    /* Regression: plain debug lines keep the file's path in the tree, not only its name. */
    dkm_log_set_format(DKM_LOG_PLAIN);
    out = capture_stderr(log_some);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "t["));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, ": notice: server.add node=000b copies=14 "
                                       "(tests/test_logline.c:"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, " log_some)\n"));
    dkm_log_set_level(DKM_LOG_INFO);
    dkm_log_set_format(DKM_LOG_PLAIN);
}

static void test_logline_format_names(void)
{
    enum dkm_log_format f = DKM_LOG_PLAIN;

    CU_ASSERT_EQUAL(dkm_log_format_parse("text", &f), 0);
    CU_ASSERT_EQUAL(f, DKM_LOG_TEXT);
    CU_ASSERT_EQUAL(dkm_log_format_parse("json", &f), 0);
    CU_ASSERT_EQUAL(f, DKM_LOG_JSON);
    CU_ASSERT_EQUAL(dkm_log_format_parse("JSON ", &f), -EINVAL);
    CU_ASSERT_EQUAL(dkm_log_format_parse("plain", &f), -EINVAL);
    CU_ASSERT_EQUAL(f, DKM_LOG_JSON);
}

static CU_TestInfo logline_tests[] = {
    {"test_logline_text_order_and_fields", test_logline_text_order_and_fields},
    {"test_logline_text_escapes", test_logline_text_escapes},
    {"test_logline_json_escapes_parse_back", test_logline_json_escapes_parse_back},
    {"test_logline_json_order_and_types", test_logline_json_order_and_types},
    {"test_logline_names", test_logline_names},
    {"test_logline_messages", test_logline_messages},
    {"test_logline_secret_withheld_everywhere", test_logline_secret_withheld_everywhere},
    {"test_logline_cut_lines_stay_well_formed", test_logline_cut_lines_stay_well_formed},
    {"test_logline_logger_writes_lines", test_logline_logger_writes_lines},
    {"test_logline_format_names", test_logline_format_names},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {"logline", NULL, NULL, NULL, NULL, logline_tests},
    CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv)
{
    return dkm_test_main(argc, argv, suites);
}
