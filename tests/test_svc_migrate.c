/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of dkmd's migration files: the NNN_name.sql naming rule, loading
 * a directory in version order with checksums, and refusing gaps,
 * duplicates, misnamed files and empty directories. Also checks that the
 * repository's own sql/ directory loads (the files dkmd ships).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "migrate.h"
#include "unit.h"

static void test_svc_migration_name_valid(void)
{
    char name[SVC_MIGRATION_NAME_MAX];
    unsigned v = 0;

    CU_ASSERT_EQUAL(svc_migration_parse_name("001_initial.sql", &v, name, sizeof(name)),
                    0);
    CU_ASSERT_EQUAL(v, 1);
    CU_ASSERT_STRING_EQUAL(name, "initial");
    CU_ASSERT_EQUAL(svc_migration_parse_name("042_add_x2.sql", &v, name, sizeof(name)),
                    0);
    CU_ASSERT_EQUAL(v, 42);
    CU_ASSERT_STRING_EQUAL(name, "add_x2");
    CU_ASSERT_EQUAL(svc_migration_parse_name("999_z.sql", &v, name, sizeof(name)), 0);
    CU_ASSERT_EQUAL(v, 999);
}

static void test_svc_migration_name_invalid(void)
{
    static const char *const bad[] = {
        "000_zero.sql",  "01_short.sql", "0001_long.sql", "001-dash.sql",  "001_.sql",
        "001_Upper.sql", "001_a b.sql",  "001_init.SQL",  "001_init.sql~", "abc_x.sql",
        "001_init",      ".sql",         "001_a.b.sql",
    };
    char name[SVC_MIGRATION_NAME_MAX], longname[100];
    unsigned v = 77;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int r = svc_migration_parse_name(bad[i], &v, name, sizeof(name));
        if (r != -EINVAL)
            fprintf(stderr, "\n  accepted %s\n", bad[i]);
        CU_ASSERT_EQUAL(r, -EINVAL);
    }
    CU_ASSERT_EQUAL(v, 77); /* untouched on failure */
    memset(longname, 'a', sizeof(longname));
    memcpy(longname, "001_", 4);
    strcpy(longname + sizeof(longname) - 5, ".sql");
    CU_ASSERT_EQUAL(svc_migration_parse_name(longname, &v, name, sizeof(name)), -EINVAL);
}

static char *make_dir(const char *sub)
{
    static char path[512];

    snprintf(path, sizeof(path), "%s/%s", dkm_test_tmpdir(), sub);
    CU_ASSERT_EQUAL_FATAL(mkdir(path, 0700), 0);
    return path;
}

static void write_file(const char *dir, const char *file, const char *text)
{
    char path[600];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, file);
    f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs(text, f);
    fclose(f);
}

static void test_svc_migrations_load_in_order(void)
{
    struct svc_migrations m = {0};
    const char *dir = make_dir("ordered");

    write_file(dir, "002_second.sql", "SELECT 2;\n");
    write_file(dir, "001_first.sql", "SELECT 1;\n");
    write_file(dir, "003_third.sql", "SELECT 3;\n");
    write_file(dir, "README", "not a migration\n");
    CU_ASSERT_EQUAL_FATAL(svc_migrations_load(dir, &m), 0);
    CU_ASSERT_EQUAL_FATAL(m.n, 3);
    CU_ASSERT_EQUAL(m.v[0].version, 1);
    CU_ASSERT_STRING_EQUAL(m.v[0].name, "first");
    CU_ASSERT_STRING_EQUAL(m.v[0].sql, "SELECT 1;\n");
    CU_ASSERT_EQUAL(m.v[2].version, 3);
    /* sha256("SELECT 1;\n"), from sha256sum */
    CU_ASSERT_STRING_EQUAL(
        m.v[0].checksum,
        "b4e0497804e46e0a0b0b8c31975b062152d551bac49c3c2e80932567b4085dcd");
    CU_ASSERT_EQUAL(strlen(m.v[0].checksum), 64);
    CU_ASSERT(strcmp(m.v[0].checksum, m.v[1].checksum) != 0);
    svc_migrations_clear(&m);
    CU_ASSERT_EQUAL(m.n, 0);
}

static void test_svc_migrations_checksum_known_answer(void)
{
    struct svc_migrations m = {0};
    const char *dir = make_dir("kat");

    /* printf 'abc' | sha256sum */
    write_file(dir, "001_abc.sql", "abc");
    CU_ASSERT_EQUAL_FATAL(svc_migrations_load(dir, &m), 0);
    CU_ASSERT_STRING_EQUAL(
        m.v[0].checksum,
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    svc_migrations_clear(&m);
}

static void test_svc_migrations_refuse_gap(void)
{
    struct svc_migrations m = {0};
    const char *dir = make_dir("gap");

    write_file(dir, "001_a.sql", "SELECT 1;");
    write_file(dir, "003_c.sql", "SELECT 3;");
    CU_ASSERT_EQUAL(svc_migrations_load(dir, &m), -EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(dkm_error_detail(), "003"));
    CU_ASSERT_EQUAL(m.n, 0);
}

static void test_svc_migrations_refuse_duplicate(void)
{
    struct svc_migrations m = {0};
    const char *dir = make_dir("dup");

    write_file(dir, "001_a.sql", "SELECT 1;");
    write_file(dir, "001_b.sql", "SELECT 1;");
    CU_ASSERT_EQUAL(svc_migrations_load(dir, &m), -EINVAL);
}

static void test_svc_migrations_refuse_misnamed(void)
{
    struct svc_migrations m = {0};
    const char *dir = make_dir("misnamed");

    write_file(dir, "001_a.sql", "SELECT 1;");
    write_file(dir, "2_b.sql", "SELECT 2;");
    CU_ASSERT_EQUAL(svc_migrations_load(dir, &m), -EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(dkm_error_detail(), "2_b.sql"));
}

static void test_svc_migrations_refuse_empty_and_missing(void)
{
    struct svc_migrations m = {0};
    const char *dir = make_dir("empty");
    char missing[600];

    CU_ASSERT_EQUAL(svc_migrations_load(dir, &m), -ENOENT);
    snprintf(missing, sizeof(missing), "%s/none", dir);
    CU_ASSERT_EQUAL(svc_migrations_load(missing, &m), -ENOENT);
}

static void test_svc_migrations_refuse_nul_byte(void)
{
    struct svc_migrations m = {0};
    const char *dir = make_dir("nul");
    char path[600];
    FILE *f;

    snprintf(path, sizeof(path), "%s/001_a.sql", dir);
    f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fwrite("SELECT\0 1;", 1, 10, f);
    fclose(f);
    CU_ASSERT_EQUAL(svc_migrations_load(dir, &m), -EINVAL);
}

static void test_svc_migrations_shipped_files_load(void)
{
    struct svc_migrations m = {0};
    const char *src = getenv("DKM_SOURCE_DIR");
    char dir[4096];

    CU_ASSERT_PTR_NOT_NULL_FATAL(src);
    snprintf(dir, sizeof(dir), "%s/sql", src);
    CU_ASSERT_EQUAL_FATAL(svc_migrations_load(dir, &m), 0);
    CU_ASSERT(m.n >= 1);
    CU_ASSERT_STRING_EQUAL(m.v[0].name, "initial");
    svc_migrations_clear(&m);
}

static CU_TestInfo migrate_tests[] = {
    {"test_svc_migration_name_valid", test_svc_migration_name_valid},
    {"test_svc_migration_name_invalid", test_svc_migration_name_invalid},
    {"test_svc_migrations_load_in_order", test_svc_migrations_load_in_order},
    {"test_svc_migrations_checksum_known_answer",
     test_svc_migrations_checksum_known_answer},
    {"test_svc_migrations_refuse_gap", test_svc_migrations_refuse_gap},
    {"test_svc_migrations_refuse_duplicate", test_svc_migrations_refuse_duplicate},
    {"test_svc_migrations_refuse_misnamed", test_svc_migrations_refuse_misnamed},
    {"test_svc_migrations_refuse_empty_and_missing",
     test_svc_migrations_refuse_empty_and_missing},
    {"test_svc_migrations_refuse_nul_byte", test_svc_migrations_refuse_nul_byte},
    {"test_svc_migrations_shipped_files_load", test_svc_migrations_shipped_files_load},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {"svc_migrate", NULL, NULL, NULL, NULL, migrate_tests},
    CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv)
{
    return dkm_test_main(argc, argv, suites);
}
