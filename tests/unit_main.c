/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one main() behind every CUnit test program: registers the suites it
 * is given, runs them with the basic runner, and turns any failed
 * assertion into a non-zero exit status. An optional argument names a
 * single suite to run.
 */
#include "unit.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[PATH_MAX];

static void remove_tmpdir(void)
{
    char cmd[PATH_MAX + 16];

    if (tmpdir[0] == '\0')
        return;
    /* tmpdir came from mkdtemp with a fixed template: no quoting needed. */
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "warning: could not remove %s\n", tmpdir);
}

const char *dkm_test_tmpdir(void)
{
    const char *base;

    if (tmpdir[0] != '\0')
        return tmpdir;
    base = getenv("TMPDIR");
    if (base == NULL || base[0] == '\0')
        base = "/tmp";
    snprintf(tmpdir, sizeof(tmpdir), "%s/dkm-test-XXXXXX", base);
    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        abort();
    }
    atexit(remove_tmpdir);
    return tmpdir;
}

const char *dkm_test_data(const char *name)
{
    static char path[PATH_MAX];
    const char *dir = getenv("DKM_TEST_DATA");

    if (dir == NULL)
        dir = "tests/data";
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return path;
}

const char *dkm_test_tcti(int i)
{
    char name[32];
    const char *v;

    snprintf(name, sizeof(name), "DKM_TEST_TCTI_%d", i);
    v = getenv(name);
    if (v == NULL || v[0] == '\0') {
        fprintf(stderr, "%s is not set: run this test under tests/with-swtpm.sh\n", name);
        abort();
    }
    return v;
}

int dkm_test_main(int argc, char **argv, CU_SuiteInfo *suites)
{
    unsigned failures;
    const char *only = argc > 1 ? argv[1] : NULL;

    if (CU_initialize_registry() != CUE_SUCCESS)
        return 2;
    if (only != NULL) {
        CU_SuiteInfo *s;
        int found = 0;

        for (s = suites; s->pName != NULL; s++) {
            if (strcmp(s->pName, only) == 0) {
                CU_SuiteInfo one[2] = {*s, CU_SUITE_INFO_NULL};

                found = 1;
                if (CU_register_suites(one) != CUE_SUCCESS)
                    return 2;
            }
        }
        if (!found) {
            fprintf(stderr, "no suite named %s\n", only);
            CU_cleanup_registry();
            return 2;
        }
    } else if (CU_register_suites(suites) != CUE_SUCCESS) {
        fprintf(stderr, "CU_register_suites: %s\n", CU_get_error_msg());
        CU_cleanup_registry();
        return 2;
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    failures = CU_get_number_of_failures() + CU_get_number_of_tests_failed() +
               CU_get_number_of_suites_failed();
    CU_cleanup_registry();
    return failures != 0 ? 1 : 0;
}
