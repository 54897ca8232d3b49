/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of configuration loading: typed getters, and errors for a
 * missing file, a missing key, a wrong type or an unknown key, each with
 * a message that names the file, the section and the key.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "dkm/base/config.h"
#include "unit.h"

static const char sample[] = "# a dkmd.conf-like file\n"
                             "[service]\n"
                             "listen = 127.0.0.1:8443\n"
                             "workers = 2\n"
                             "debug = Yes\n"
                             "rotate = 7d\n"
                             "timeout = 30\n"
                             "empty =\n"
                             "bad_int = 12x\n"
                             "neg = -1\n"
                             "huge = 99999999999999999999999\n"
                             "bad_bool = maybe\n"
                             "bad_dur = 5w\n"
                             "bad_dur2 = 5mm\n"
                             "[db]\n"
                             "conninfo = host=127.0.0.1 port=5432\n";

static struct dkm_config *load_sample(void)
{
    struct dkm_config *cfg = NULL;

    CU_ASSERT_EQUAL_FATAL(dkm_config_load_string("dkmd.conf", sample, &cfg), 0);
    return cfg;
}

static void assert_detail_has(const char *a, const char *b, const char *c)
{
    const char *d = dkm_error_detail();

    if (strstr(d, a) == NULL || strstr(d, b) == NULL || (c && strstr(d, c) == NULL))
        fprintf(stderr, "detail: %s\n", d);
    CU_ASSERT_PTR_NOT_NULL(strstr(d, a));
    CU_ASSERT_PTR_NOT_NULL(strstr(d, b));
    if (c != NULL)
        CU_ASSERT_PTR_NOT_NULL(strstr(d, c));
}

static void test_config_typed_values(void)
{
    struct dkm_config *cfg = load_sample();
    const char *s;
    uint64_t u;
    bool b;

    CU_ASSERT_EQUAL(dkm_config_string(cfg, "service", "listen", NULL, &s), 0);
    CU_ASSERT_STRING_EQUAL(s, "127.0.0.1:8443");
    CU_ASSERT_EQUAL(dkm_config_string(cfg, "db", "conninfo", NULL, &s), 0);
    CU_ASSERT_STRING_EQUAL(s, "host=127.0.0.1 port=5432");
    CU_ASSERT_EQUAL(dkm_config_string(cfg, "service", "empty", NULL, &s), 0);
    CU_ASSERT_STRING_EQUAL(s, "");
    CU_ASSERT_EQUAL(dkm_config_uint(cfg, "service", "workers", NULL, 1, 64, &u), 0);
    CU_ASSERT_EQUAL(u, 2);
    CU_ASSERT_EQUAL(dkm_config_bool(cfg, "service", "debug", NULL, &b), 0);
    CU_ASSERT_TRUE(b);
    CU_ASSERT_EQUAL(
        dkm_config_duration(cfg, "service", "rotate", NULL, 0, UINT64_MAX, &u), 0);
    CU_ASSERT_EQUAL(u, 7 * 86400);
    CU_ASSERT_EQUAL(dkm_config_duration(cfg, "service", "timeout", NULL, 1, 60, &u), 0);
    CU_ASSERT_EQUAL(u, 30);
    CU_ASSERT_TRUE(dkm_config_has_section(cfg, "db"));
    CU_ASSERT_FALSE(dkm_config_has_section(cfg, "nope"));
    CU_ASSERT_STRING_EQUAL(dkm_config_name(cfg), "dkmd.conf");
    dkm_config_free(cfg);
}

static void test_config_defaults(void)
{
    struct dkm_config *cfg = load_sample();
    const uint64_t def_u = 5;
    const bool def_b = false;
    const char *s;
    uint64_t u;
    bool b;

    CU_ASSERT_EQUAL(dkm_config_string(cfg, "service", "absent", "dflt", &s), 0);
    CU_ASSERT_STRING_EQUAL(s, "dflt");
    CU_ASSERT_EQUAL(dkm_config_uint(cfg, "service", "absent", &def_u, 1, 10, &u), 0);
    CU_ASSERT_EQUAL(u, 5);
    CU_ASSERT_EQUAL(dkm_config_bool(cfg, "nosection", "absent", &def_b, &b), 0);
    CU_ASSERT_FALSE(b);
    CU_ASSERT_EQUAL(dkm_config_duration(cfg, "service", "absent", &def_u, 0, 10, &u), 0);
    CU_ASSERT_EQUAL(u, 5);
    dkm_config_free(cfg);
}

static void test_config_missing_file(void)
{
    struct dkm_config *cfg = NULL;
    char path[512];

    snprintf(path, sizeof(path), "%s/does-not-exist.conf", dkm_test_tmpdir());
    CU_ASSERT_EQUAL(dkm_config_load(path, &cfg), -ENOENT);
    CU_ASSERT_PTR_NULL(cfg);
    assert_detail_has(path, "cannot open", NULL);
}

static void test_config_syntax_error_names_line(void)
{
    struct dkm_config *cfg = NULL;
    char path[512];
    FILE *f;

    snprintf(path, sizeof(path), "%s/broken.conf", dkm_test_tmpdir());
    f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs("[service]\nok = 1\n[unterminated\n", f);
    fclose(f);
    CU_ASSERT_EQUAL(dkm_config_load(path, &cfg), DKM_E_CONFIG);
    CU_ASSERT_PTR_NULL(cfg);
    assert_detail_has(path, "line 3", NULL);
}

static void test_config_load_file(void)
{
    struct dkm_config *cfg = NULL;
    char path[512];
    const char *s;
    FILE *f;

    snprintf(path, sizeof(path), "%s/good.conf", dkm_test_tmpdir());
    f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs(sample, f);
    fclose(f);
    CU_ASSERT_EQUAL_FATAL(dkm_config_load(path, &cfg), 0);
    CU_ASSERT_EQUAL(dkm_config_string(cfg, "service", "listen", NULL, &s), 0);
    CU_ASSERT_STRING_EQUAL(s, "127.0.0.1:8443");
    dkm_config_free(cfg);
}

static void test_config_missing_key(void)
{
    struct dkm_config *cfg = load_sample();
    const char *s;
    uint64_t u;
    bool b;

    CU_ASSERT_EQUAL(dkm_config_string(cfg, "service", "tls_cert", NULL, &s),
                    DKM_E_CONFIG);
    assert_detail_has("dkmd.conf", "[service] tls_cert", "missing");
    CU_ASSERT_EQUAL(dkm_config_uint(cfg, "db", "pool", NULL, 1, 9, &u), DKM_E_CONFIG);
    assert_detail_has("dkmd.conf", "[db] pool", "missing");
    CU_ASSERT_EQUAL(dkm_config_bool(cfg, "db", "ssl", NULL, &b), DKM_E_CONFIG);
    assert_detail_has("dkmd.conf", "[db] ssl", "missing");
    /* A key of another section does not leak through. */
    CU_ASSERT_EQUAL(dkm_config_string(cfg, "db", "listen", NULL, &s), DKM_E_CONFIG);
    /* Nor does a missing section fall back to the default section. */
    CU_ASSERT_EQUAL(dkm_config_string(cfg, "nosuch", "listen", NULL, &s), DKM_E_CONFIG);
    assert_detail_has("dkmd.conf", "[nosuch] listen", "missing");
    dkm_config_free(cfg);
}

static void test_config_wrong_type(void)
{
    struct dkm_config *cfg = load_sample();
    const uint64_t d = 1;
    const bool db = true;
    uint64_t u = 77;
    bool b;

    CU_ASSERT_EQUAL(dkm_config_uint(cfg, "service", "bad_int", &d, 0, 100, &u),
                    DKM_E_CONFIG);
    assert_detail_has("[service] bad_int", "integer", "12x");
    CU_ASSERT_EQUAL(u, 77); /* untouched on failure */
    CU_ASSERT_EQUAL(dkm_config_uint(cfg, "service", "neg", NULL, 0, 100, &u),
                    DKM_E_CONFIG);
    assert_detail_has("[service] neg", "integer", NULL);
    CU_ASSERT_EQUAL(dkm_config_uint(cfg, "service", "huge", NULL, 0, UINT64_MAX, &u),
                    DKM_E_CONFIG);
    assert_detail_has("[service] huge", "integer", NULL);
    /* In range is part of the type. */
    CU_ASSERT_EQUAL(dkm_config_uint(cfg, "service", "workers", NULL, 3, 64, &u),
                    DKM_E_CONFIG);
    assert_detail_has("[service] workers", "from 3 to 64", NULL);
    CU_ASSERT_EQUAL(dkm_config_bool(cfg, "service", "bad_bool", &db, &b), DKM_E_CONFIG);
    assert_detail_has("[service] bad_bool", "yes or no", "maybe");
    CU_ASSERT_EQUAL(dkm_config_bool(cfg, "service", "workers", NULL, &b), DKM_E_CONFIG);
    CU_ASSERT_EQUAL(
        dkm_config_duration(cfg, "service", "bad_dur", NULL, 0, UINT64_MAX, &u),
        DKM_E_CONFIG);
    assert_detail_has("[service] bad_dur", "duration", "5w");
    CU_ASSERT_EQUAL(
        dkm_config_duration(cfg, "service", "bad_dur2", NULL, 0, UINT64_MAX, &u),
        DKM_E_CONFIG);
    CU_ASSERT_EQUAL(dkm_config_duration(cfg, "service", "rotate", NULL, 0, 3600, &u),
                    DKM_E_CONFIG);
    assert_detail_has("[service] rotate", "to 3600s", NULL);
    CU_ASSERT_EQUAL(dkm_config_duration(cfg, "service", "listen", NULL, 0, 10, &u),
                    DKM_E_CONFIG);
    dkm_config_free(cfg);
}

static void test_config_unknown_key(void)
{
    struct dkm_config *cfg = load_sample();
    static const char *const db_keys[] = {"conninfo", NULL};
    static const char *const few[] = {"listen", NULL};

    CU_ASSERT_EQUAL(dkm_config_check_keys(cfg, "db", db_keys), 0);
    CU_ASSERT_EQUAL(dkm_config_check_keys(cfg, "absent", few), 0);
    CU_ASSERT_EQUAL(dkm_config_check_keys(cfg, "service", few), DKM_E_CONFIG);
    assert_detail_has("dkmd.conf", "[service] workers", "unknown");
    dkm_config_free(cfg);
}

static void test_config_free_null(void)
{
    dkm_config_free(NULL);
}

static CU_TestInfo config_tests[] = {
    {"test_config_typed_values", test_config_typed_values},
    {"test_config_defaults", test_config_defaults},
    {"test_config_missing_file", test_config_missing_file},
    {"test_config_syntax_error_names_line", test_config_syntax_error_names_line},
    {"test_config_load_file", test_config_load_file},
    {"test_config_missing_key", test_config_missing_key},
    {"test_config_wrong_type", test_config_wrong_type},
    {"test_config_unknown_key", test_config_unknown_key},
    {"test_config_free_null", test_config_free_null},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {"config", NULL, NULL, NULL, NULL, config_tests},
    CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv)
{
    return dkm_test_main(argc, argv, suites);
}
