/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of the keeper's progress reports (service/keys/progress.c): what
 * is logged and when. A short operation logs nothing; a big one announces
 * itself; a running one logs at most a line a second with done/total;
 * a phase change logs the last count of the phase that ends; the end is
 * logged once something was.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dkm/base/log.h"
#include "progress.h"
#include "unit.h"

static int capture_fd = -1, saved_fd = -1;

static void capture_start(void)
{
    char path[512];

    snprintf(path, sizeof(path), "%s/progress.log", dkm_test_tmpdir());
    capture_fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    CU_ASSERT_FATAL(capture_fd >= 0);
    saved_fd = dup(2);
    dup2(capture_fd, 2);
}

/* What was logged since capture_start (static). */
static const char *capture_end(void)
{
    static char out[8192];
    ssize_t n;

    dup2(saved_fd, 2);
    close(saved_fd);
    n = pread(capture_fd, out, sizeof(out) - 1, 0);
    close(capture_fd);
    out[n > 0 ? n : 0] = '\0';
    return out;
}

static size_t count(const char *s, const char *needle)
{
    size_t n = 0;

    for (const char *p = s; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0)
        ;
}

static void setup_log(void)
{
    dkm_log_setup("t", DKM_LOG_STDERR, DKM_LOG_INFO);
    dkm_log_set_format(DKM_LOG_TEXT);
}

static void test_svc_progress_quick_is_quiet(void)
{
    struct ks_progress p;
    const char *out;

    setup_log();
    capture_start();
    ks_progress_begin(&p, "t.op", "x", "work", KS_PROGRESS_ANNOUNCE - 1);
    for (size_t i = 0; i < KS_PROGRESS_ANNOUNCE - 1; i++)
        ks_progress_step(&p);
    ks_progress_end(&p);
    out = capture_end();
    CU_ASSERT_STRING_EQUAL(out, "");
}

static void test_svc_progress_big_announces_and_ends(void)
{
    struct ks_progress p;
    const char *out;

    setup_log();
    capture_start();
    ks_progress_begin(&p, "t.op", "tgt", "one", KS_PROGRESS_ANNOUNCE);
    for (size_t i = 0; i < 10; i++)
        ks_progress_step(&p);
    ks_progress_phase(&p, "two", 2);
    ks_progress_step(&p);
    ks_progress_end(&p);
    out = capture_end();
    CU_ASSERT_PTR_NOT_NULL(strstr(out,
                                  " event=progress op=t.op target=tgt phase=one done=0 "
                                  "total=100 elapsed_ms="));
    /* The phase that ends gets its last count, the next one a first line. */
    CU_ASSERT_PTR_NOT_NULL(strstr(out,
                                  " event=progress op=t.op target=tgt phase=one done=10 "
                                  "total=100 elapsed_ms="));
    CU_ASSERT_PTR_NOT_NULL(strstr(out,
                                  " event=progress op=t.op target=tgt phase=two done=0 "
                                  "total=2 elapsed_ms="));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, " event=progress.end op=t.op target=tgt phase=two "
                                       "done=1 total=2 elapsed_ms="));
    CU_ASSERT_EQUAL(count(out, "\n"), 4);
}

static void test_svc_progress_a_line_a_second(void)
{
    struct ks_progress p;
    const char *out;

    setup_log();
    capture_start();
    ks_progress_begin(&p, "t.slow", NULL, "work", 5);
    ks_progress_step(&p);
    ks_progress_step(&p); /* within the first second: nothing */
    sleep_ms(KS_PROGRESS_INTERVAL_MS + 50);
    ks_progress_step(&p); /* a second passed: done=3 */
    ks_progress_step(&p); /* just after a line: nothing */
    ks_progress_end(&p);
    out = capture_end();
    /* No target: no target field. */
    CU_ASSERT_PTR_NOT_NULL(strstr(out,
                                  " event=progress op=t.slow phase=work done=3 total=5 "
                                  "elapsed_ms="));
    CU_ASSERT_PTR_NULL(strstr(out, "done=1 "));
    CU_ASSERT_PTR_NULL(strstr(out, "done=2 "));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, " event=progress.end op=t.slow phase=work done=4 "
                                       "total=5 elapsed_ms="));
    CU_ASSERT_EQUAL(count(out, "\n"), 2);
    CU_ASSERT_TRUE(ks_progress_elapsed_ms(&p) >= KS_PROGRESS_INTERVAL_MS);
}

static CU_TestInfo progress_tests[] = {
    {"test_svc_progress_quick_is_quiet", test_svc_progress_quick_is_quiet},
    {"test_svc_progress_big_announces_and_ends",
     test_svc_progress_big_announces_and_ends},
    {"test_svc_progress_a_line_a_second", test_svc_progress_a_line_a_second},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {"svc_progress", NULL, NULL, NULL, NULL, progress_tests},
    CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv)
{
    return dkm_test_main(argc, argv, suites);
}
