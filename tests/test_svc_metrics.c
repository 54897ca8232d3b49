/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of dkmd's metrics registry and its Prometheus text output:
 * counters with two labels, cumulative histogram buckets, gauges read at
 * scrape time, label escaping, and refusal of bad or duplicate names.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "unit.h"

static double seven(void *arg)
{
    (void)arg;
    return 7;
}

static void expect_line(const char *text, const char *line)
{
    if (strstr(text, line) == NULL) {
        fprintf(stderr, "\n  missing line: %s\n%s", line, text);
        CU_FAIL("metrics output lacks a line");
    }
}

static void test_svc_metrics_counter(void)
{
    struct svc_metrics *m = NULL;
    struct svc_metric *c = NULL;
    char *t;

    CU_ASSERT_EQUAL_FATAL(svc_metrics_new(&m), 0);
    CU_ASSERT_EQUAL_FATAL(
        svc_metrics_counter(m, "x_requests_total", "Requests", "endpoint", "status", &c),
        0);
    svc_metric_inc(c, "health", "200", 1);
    svc_metric_inc(c, "health", "200", 2);
    svc_metric_inc(c, "health", "503", 1);
    t = svc_metrics_render(m);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    expect_line(t, "# HELP x_requests_total Requests\n# TYPE x_requests_total counter\n");
    expect_line(t, "x_requests_total{endpoint=\"health\",status=\"200\"} 3\n");
    expect_line(t, "x_requests_total{endpoint=\"health\",status=\"503\"} 1\n");
    free(t);
    svc_metrics_free(m);
}

static void test_svc_metrics_histogram(void)
{
    static const double b[] = {0.1, 1, 10};
    struct svc_metrics *m = NULL;
    struct svc_metric *h = NULL;
    char *t;

    CU_ASSERT_EQUAL_FATAL(svc_metrics_new(&m), 0);
    CU_ASSERT_EQUAL_FATAL(
        svc_metrics_histogram(m, "x_seconds", "Latency", "op", b, 3, &h), 0);
    svc_metric_observe(h, "sign", 0.05);
    svc_metric_observe(h, "sign", 0.1); /* on the bound: counts in le=0.1 */
    svc_metric_observe(h, "sign", 5);
    svc_metric_observe(h, "sign", 50);
    t = svc_metrics_render(m);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    expect_line(t, "x_seconds_bucket{op=\"sign\",le=\"0.1\"} 2\n");
    expect_line(t, "x_seconds_bucket{op=\"sign\",le=\"1\"} 2\n");
    expect_line(t, "x_seconds_bucket{op=\"sign\",le=\"10\"} 3\n");
    expect_line(t, "x_seconds_bucket{op=\"sign\",le=\"+Inf\"} 4\n");
    expect_line(t, "x_seconds_count{op=\"sign\"} 4\n");
    expect_line(t, "x_seconds_sum{op=\"sign\"} 55.15\n");
    free(t);
    svc_metrics_free(m);
}

static void test_svc_metrics_gauge_and_unlabelled(void)
{
    static const double b[] = {1};
    struct svc_metrics *m = NULL;
    struct svc_metric *h = NULL, *c = NULL;
    char *t;

    CU_ASSERT_EQUAL_FATAL(svc_metrics_new(&m), 0);
    CU_ASSERT_EQUAL(svc_metrics_gauge(m, "x_cache_entries", "Entries", seven, NULL), 0);
    CU_ASSERT_EQUAL(svc_metrics_histogram(m, "x_plain", "Plain", NULL, b, 1, &h), 0);
    CU_ASSERT_EQUAL(svc_metrics_counter(m, "x_total", "Total", NULL, NULL, &c), 0);
    t = svc_metrics_render(m);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    expect_line(t, "# TYPE x_cache_entries gauge\nx_cache_entries 7\n");
    expect_line(t, "x_plain_bucket{le=\"+Inf\"} 0\n");
    expect_line(t, "x_total 0\n");
    free(t);
    svc_metric_inc(c, NULL, NULL, 4);
    t = svc_metrics_render(m);
    expect_line(t, "x_total 4\n");
    free(t);
    svc_metrics_free(m);
}

static void test_svc_metrics_label_escaping(void)
{
    struct svc_metrics *m = NULL;
    struct svc_metric *c = NULL;
    char *t;

    CU_ASSERT_EQUAL_FATAL(svc_metrics_new(&m), 0);
    CU_ASSERT_EQUAL_FATAL(svc_metrics_counter(m, "x_total", "T", "v", NULL, &c), 0);
    svc_metric_inc(c, "a\"b\\c\nd", NULL, 1);
    t = svc_metrics_render(m);
    expect_line(t, "x_total{v=\"a\\\"b\\\\c\\nd\"} 1\n");
    free(t);
    svc_metrics_free(m);
}

static void test_svc_metrics_refuse_bad_registration(void)
{
    static const double b[] = {2, 1};
    struct svc_metrics *m = NULL;
    struct svc_metric *x = NULL;

    CU_ASSERT_EQUAL_FATAL(svc_metrics_new(&m), 0);
    CU_ASSERT_EQUAL(svc_metrics_counter(m, "1bad", "h", NULL, NULL, &x), -EINVAL);
    CU_ASSERT_EQUAL(svc_metrics_counter(m, "bad name", "h", NULL, NULL, &x), -EINVAL);
    CU_ASSERT_EQUAL(svc_metrics_counter(m, "ok", "h", "bad-label", NULL, &x), -EINVAL);
    CU_ASSERT_EQUAL(svc_metrics_counter(m, "ok", "h", NULL, "l2", &x), -EINVAL);
    CU_ASSERT_EQUAL(svc_metrics_histogram(m, "h", "h", NULL, b, 2, &x), -EINVAL);
    CU_ASSERT_EQUAL(svc_metrics_counter(m, "dup", "h", NULL, NULL, &x), 0);
    CU_ASSERT_EQUAL(svc_metrics_counter(m, "dup", "h", NULL, NULL, &x), -EEXIST);
    svc_metrics_free(m);
    svc_metrics_free(NULL);
}

static CU_TestInfo metrics_tests[] = {
    {"test_svc_metrics_counter", test_svc_metrics_counter},
    {"test_svc_metrics_histogram", test_svc_metrics_histogram},
    {"test_svc_metrics_gauge_and_unlabelled", test_svc_metrics_gauge_and_unlabelled},
    {"test_svc_metrics_label_escaping", test_svc_metrics_label_escaping},
    {"test_svc_metrics_refuse_bad_registration",
     test_svc_metrics_refuse_bad_registration},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {"svc_metrics", NULL, NULL, NULL, NULL, metrics_tests},
    CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv)
{
    return dkm_test_main(argc, argv, suites);
}
