/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shared test runner for the CUnit suites. Each tests/test_<module>.c (and
 * tpm_<module>.c) ends with its CU_TestInfo tables and a main() that calls
 * dkm_test_main(), which registers the suites, runs them, and exits
 * non-zero when any assertion failed (CU_basic_run_tests alone returns
 * success even then).
 */
#ifndef DKM_TESTS_UNIT_H
#define DKM_TESTS_UNIT_H

#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>
#include <stddef.h>

int dkm_test_main(int argc, char **argv, CU_SuiteInfo *suites);

/* Path of a file under tests/data (from DKM_TEST_DATA); static buffer. */
const char *dkm_test_data(const char *name);

/*
 * The TCTI string of the i-th swtpm started by tests/with-swtpm.sh
 * (DKM_TEST_TCTI_<i>, 1-based); aborts with a message when it is not set,
 * since a TPM test that cannot reach its TPM must fail, not skip.
 */
const char *dkm_test_tcti(int i);

/* A fresh private temp dir for this test process, removed at exit. */
const char *dkm_test_tmpdir(void);

#endif
