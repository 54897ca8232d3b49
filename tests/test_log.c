/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of logging and error details: levels, and the guarantee that no
 * argument pointing into secure memory is ever formatted.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dkm/base/error.h"
#include "dkm/base/log.h"
#include "dkm/base/safefmt.h"
#include "dkm/base/secmem.h"
#include "unit.h"

/* Run fn with stderr sent to a file; return what it wrote (static). */
static const char *capture_stderr(void (*fn)(void *), void *arg)
{
    static char out[8192];
    char path[512];
    int saved, fd;
    ssize_t n;

    snprintf(path, sizeof(path), "%s/stderr.txt", dkm_test_tmpdir());
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    CU_ASSERT_FATAL(fd >= 0);
    fflush(stderr);
    saved = dup(2);
    dup2(fd, 2);
    fn(arg);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    n = pread(fd, out, sizeof(out) - 1, 0);
    close(fd);
    out[n > 0 ? n : 0] = '\0';
    return out;
}

static void log_secret(void *arg)
{
    log_error("key is %s", (const char *)arg);
}

static void log_plain(void *arg)
{
    log_warning("group %s has %d versions", (const char *)arg, 3);
    log_debug("hidden at info level");
}

static void test_log_levels(void)
{
    const char *out;

    dkm_log_setup("t", DKM_LOG_STDERR, DKM_LOG_INFO);
    CU_ASSERT_TRUE(dkm_log_enabled(DKM_LOG_ERR));
    CU_ASSERT_FALSE(dkm_log_enabled(DKM_LOG_DEBUG));
    out = capture_stderr(log_plain, "payments");
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "t: warning: group payments has 3 versions\n"));
    CU_ASSERT_PTR_NULL(strstr(out, "hidden"));
    dkm_log_set_level(DKM_LOG_DEBUG);
    out = capture_stderr(log_plain, "payments");
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "hidden at info level"));
    /* Debug lines say where they come from. */
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "test_log.c"));
    dkm_log_set_level(DKM_LOG_INFO);
}

static void test_log_secret_never_formatted(void)
{
    char *secret = NULL;
    const char *out;

    dkm_log_setup("t", DKM_LOG_STDERR, DKM_LOG_INFO);
    CU_ASSERT_EQUAL_FATAL(dkm_secmem_alloc(32, (void **)&secret), 0);
    memcpy(secret, "TOPSECRETKEYBYTES", 18);
    out = capture_stderr(log_secret, secret);
    CU_ASSERT_PTR_NULL(strstr(out, "TOPSECRET"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "withheld"));
    /* A pointer into the middle of the buffer is caught too. */
    out = capture_stderr(log_secret, secret + 3);
    CU_ASSERT_PTR_NULL(strstr(out, "SECRET"));
    dkm_secmem_free(secret);
}

static void test_error_detail_secret_never_formatted(void)
{
    char *secret = NULL;

    CU_ASSERT_EQUAL_FATAL(dkm_secmem_alloc(16, (void **)&secret), 0);
    memcpy(secret, "SEKRIT", 7);
    CU_ASSERT_EQUAL(dkm_error_set(-EIO, "failed with %s", secret), -EIO);
    CU_ASSERT_PTR_NULL(strstr(dkm_error_detail(), "SEKRIT"));
    CU_ASSERT_PTR_NOT_NULL(strstr(dkm_error_detail(), "withheld"));
    CU_ASSERT_EQUAL(dkm_error_set(-EIO, "at %p", (void *)secret), -EIO);
    CU_ASSERT_PTR_NOT_NULL(strstr(dkm_error_detail(), "withheld"));
    dkm_secmem_free(secret);
}

static int safe_format(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    int r;

    va_start(ap, fmt);
    r = dkm_safe_vformat(buf, size, fmt, ap);
    va_end(ap);
    return r;
}

static void test_safe_format_walks_all_conversions(void)
{
    char buf[256];
    char *secret = NULL;

    CU_ASSERT_EQUAL_FATAL(dkm_secmem_alloc(16, (void **)&secret), 0);
    memcpy(secret, "HIDDEN", 7);
    /* The secret comes after arguments of every width: all are skipped right. */
    CU_ASSERT_EQUAL(safe_format(buf, sizeof(buf),
                                "%d %ld %lld %zu %hhx %c %f %Lf %.*s %5.2g %s", 1, 2L,
                                3LL, (size_t)4, 5, 'x', 6.0, (long double)7.0, 2, "abc",
                                8.0, secret),
                    -EPERM);
    CU_ASSERT_PTR_NULL(strstr(buf, "HIDDEN"));
    CU_ASSERT_EQUAL(safe_format(buf, sizeof(buf), "%d %ld %lld %zu %hhx %c %.*s %s %%", 1,
                                2L, 3LL, (size_t)4, 5, 'x', 2, "abc", "ok"),
                    0);
    CU_ASSERT_STRING_EQUAL(buf, "1 2 3 4 5 x ab ok %");
    /* %n is refused outright. */
    CU_ASSERT_EQUAL(safe_format(buf, sizeof(buf), "%s%n", "x", (int *)NULL), -EPERM);
    /* NULL strings are fine (glibc prints "(null)"). */
    CU_ASSERT_EQUAL(safe_format(buf, sizeof(buf), "%p", (void *)NULL), 0);
    dkm_secmem_free(secret);
}

static void test_strerror_codes(void)
{
    CU_ASSERT_STRING_EQUAL(dkm_strerror(0), "success");
    CU_ASSERT_STRING_EQUAL(dkm_strerror(DKM_E_URI), "invalid dkm URI");
    CU_ASSERT_STRING_EQUAL(dkm_strerror(DKM_E_TPM_POLICY),
                           "platform state does not match the key's policy");
    CU_ASSERT_STRING_EQUAL(dkm_strerror(DKM_E_DB), "database error");
    CU_ASSERT_STRING_EQUAL(dkm_strerror(-ENOENT), "No such file or directory");
    CU_ASSERT_STRING_EQUAL(dkm_strerror(DKM_E_LAST), "unknown dkm error");
    CU_ASSERT_STRING_EQUAL(dkm_strerror(-100000), "unknown dkm error");
    CU_ASSERT_STRING_EQUAL(dkm_strerror(5), "unknown dkm error");
    dkm_error_set(-1, "x");
    dkm_error_clear();
    CU_ASSERT_STRING_EQUAL(dkm_error_detail(), "");
}

/* Regression: re-raising with the current detail as an argument formatted
 * the per-thread buffer into itself (overlapping vsnprintf). */
static void test_error_detail_can_quote_itself(void)
{
    dkm_error_set(-EINVAL, "inner %s %d", "cause", 42);
    CU_ASSERT_EQUAL(dkm_error_set(DKM_E_FORMAT, "outer: %s", dkm_error_detail()),
                    DKM_E_FORMAT);
    CU_ASSERT_STRING_EQUAL(dkm_error_detail(), "outer: inner cause 42");
    dkm_error_set(-EINVAL, "%s", "x");
    CU_ASSERT_EQUAL(
        dkm_error_set(-EINVAL, "%s%s", dkm_error_detail(), dkm_error_detail()), -EINVAL);
    CU_ASSERT_STRING_EQUAL(dkm_error_detail(), "xx");
}

static CU_TestInfo log_tests[] = {
    {"test_log_levels", test_log_levels},
    {"test_log_secret_never_formatted", test_log_secret_never_formatted},
    {"test_error_detail_secret_never_formatted",
     test_error_detail_secret_never_formatted},
    {"test_safe_format_walks_all_conversions", test_safe_format_walks_all_conversions},
    {"test_strerror_codes", test_strerror_codes},
    {"test_error_detail_can_quote_itself", test_error_detail_can_quote_itself},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {"log", NULL, NULL, NULL, NULL, log_tests},
    CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv)
{
    return dkm_test_main(argc, argv, suites);
}
