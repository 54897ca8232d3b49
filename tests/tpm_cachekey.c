/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Local cache key tests against two swtpm instances (two machines): the
 * key is created once and is the same after the process reopens the TPM,
 * it differs on another machine, another machine's TPM refuses the file,
 * an altered file is refused and never replaced, the key sits in secure
 * memory, and it works under a storage root key created on the fly.
 * Keys are compared through an HMAC of a fixed message, never printed.
 */
/* swtpm: 2 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/evp.h>

#include "dkm/tpm/cachekey.h"
#include "dkm/base/secmem.h"
#include "dkm/tpm/tpm.h"
#include "unit.h"

static struct dkm_tpm *tpm1, *tpm2;

static int suite_init(void)
{
    return dkm_tpm_open(dkm_test_tcti(1), &tpm1) < 0 ||
           dkm_tpm_open(dkm_test_tcti(2), &tpm2) < 0;
}

static int suite_cleanup(void)
{
    dkm_tpm_close(tpm1);
    dkm_tpm_close(tpm2);
    return 0;
}

static void no_leak(void)
{
    uint32_t a1 = 0, a2 = 0;

    CU_ASSERT_EQUAL(dkm_tpm_transient_avail(tpm1, &a1), 0);
    CU_ASSERT_EQUAL(dkm_tpm_transient_avail(tpm2, &a2), 0);
    CU_ASSERT_EQUAL(a1, 3);
    CU_ASSERT_EQUAL(a2, 3);
}

/* A fresh directory under the test's temp dir. */
static const char *dir(const char *name)
{
    static char path[4][512];
    static int next;
    char *p = path[next++ % 4];

    snprintf(p, sizeof(path[0]), "%s/%s", dkm_test_tmpdir(), name);
    if (mkdir(p, 0700) < 0 && errno != EEXIST)
        abort();
    return p;
}

/* HMAC-SHA256 of a fixed message under the cache key of dir. */
static int key_mac(struct dkm_tpm *tpm, const char *d, uint8_t mac[32])
{
    struct dkm_cachekey *ck = NULL;
    size_t n = 0;
    int r = dkm_cachekey_open(tpm, d, &ck);

    if (r < 0)
        return r;
    CU_ASSERT(dkm_secmem_contains(dkm_cachekey_bytes(ck)));
    CU_ASSERT(dkm_secmem_contains(dkm_cachekey_bytes(ck) + DKM_CACHEKEY_SIZE - 1));
    CU_ASSERT_FATAL(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, dkm_cachekey_bytes(ck),
                              DKM_CACHEKEY_SIZE, (const unsigned char *)"dkm cache test",
                              14, mac, 32, &n) != NULL &&
                    n == 32);
    dkm_cachekey_free(ck);
    return 0;
}

static char *file_in(const char *d)
{
    static char path[600];

    snprintf(path, sizeof(path), "%s/%s", d, DKM_CACHEKEY_FILE);
    return path;
}

static void test_cachekey_same_after_reopen(void)
{
    const char *d = dir("one");
    uint8_t a[32], b[32], c[32];
    struct dkm_tpm *fresh = NULL;
    struct stat st;

    CU_ASSERT_FATAL(key_mac(tpm1, d, a) == 0); /* creates */
    CU_ASSERT_FATAL(stat(file_in(d), &st) == 0);
    CU_ASSERT_EQUAL(st.st_mode & 0777, 0600);
    CU_ASSERT_FATAL(key_mac(tpm1, d, b) == 0); /* loads */
    CU_ASSERT(memcmp(a, b, 32) == 0);
    /* A new process: a new ESAPI context. */
    CU_ASSERT_FATAL(dkm_tpm_open(dkm_test_tcti(1), &fresh) == 0);
    CU_ASSERT_FATAL(key_mac(fresh, d, c) == 0);
    dkm_tpm_close(fresh);
    CU_ASSERT(memcmp(a, c, 32) == 0);
    no_leak();
}

static void test_cachekey_differs_per_machine_and_dir(void)
{
    uint8_t a[32], b[32], c[32];

    CU_ASSERT_FATAL(key_mac(tpm1, dir("one"), a) == 0);
    CU_ASSERT_FATAL(key_mac(tpm2, dir("two"), b) == 0);
    CU_ASSERT_FATAL(key_mac(tpm1, dir("three"), c) == 0);
    CU_ASSERT(memcmp(a, b, 32) != 0);
    CU_ASSERT(memcmp(a, c, 32) != 0);
    no_leak();
}

static void test_cachekey_other_tpm_refuses(void)
{
    const char *d = dir("one");
    uint8_t mac[32], before[32], *f1 = NULL, *f2 = NULL;
    size_t l1 = 0, l2 = 0;

    CU_ASSERT_FATAL(key_mac(tpm1, d, before) == 0);
    CU_ASSERT_FATAL(dkm_file_read(file_in(d), 4096, &f1, &l1) == 0);
    CU_ASSERT_EQUAL(key_mac(tpm2, d, mac), DKM_E_TPM_NOT_MINE);
    CU_ASSERT_FATAL(dkm_file_read(file_in(d), 4096, &f2, &l2) == 0);
    CU_ASSERT(l1 == l2 && memcmp(f1, f2, l1) == 0); /* not replaced */
    CU_ASSERT_FATAL(key_mac(tpm1, d, mac) == 0);
    CU_ASSERT(memcmp(mac, before, 32) == 0);
    free(f1);
    free(f2);
    no_leak();
}

/* Copy dir one's key file into a new dir with one byte changed (or cut). */
static const char *altered(const char *name, size_t at, uint8_t flip, size_t cut)
{
    const char *d = dir(name);
    uint8_t *buf = NULL;
    size_t len = 0;

    CU_ASSERT_FATAL(dkm_file_read(file_in(dir("one")), 4096, &buf, &len) == 0);
    CU_ASSERT_FATAL(at < len && cut < len);
    buf[at] ^= flip;
    CU_ASSERT_FATAL(dkm_file_write(file_in(d), buf, len - cut, 0600, true) == 0);
    free(buf);
    return d;
}

static void test_cachekey_altered_file_refused(void)
{
    uint8_t mac[32], *buf = NULL, *after = NULL;
    size_t len = 0, after_len = 0;
    const char *d;

    /* The last byte belongs to the private blob: the TPM's HMAC fails. */
    CU_ASSERT_FATAL(dkm_file_read(file_in(dir("one")), 4096, &buf, &len) == 0);
    d = altered("priv", len - 1, 0x01, 0);
    CU_ASSERT_EQUAL(key_mac(tpm1, d, mac), DKM_E_INTEGRITY);
    CU_ASSERT_FATAL(dkm_file_read(file_in(d), 4096, &after, &after_len) == 0);
    CU_ASSERT_EQUAL(after_len, len); /* left as it was, not replaced */
    CU_ASSERT_EQUAL(after[len - 1], buf[len - 1] ^ 0x01);
    free(after);
    free(buf);
    /* Magic, version, truncation. */
    CU_ASSERT_EQUAL(key_mac(tpm1, altered("magic", 0, 0x20, 0), mac), DKM_E_FORMAT);
    CU_ASSERT_EQUAL(key_mac(tpm1, altered("version", 5, 0x01, 0), mac), DKM_E_FORMAT);
    CU_ASSERT_EQUAL(key_mac(tpm1, altered("short", 0, 0, 1), mac), DKM_E_FORMAT);
    /* The parent name: another SRK. */
    CU_ASSERT_EQUAL(key_mac(tpm1, altered("parent", 10, 0x01, 0), mac),
                    DKM_E_TPM_NOT_MINE);
    no_leak();
}

/*
 * Without a persistent SRK, the SRK is created from the template each
 * time and is the same each time, so the key still loads. This test
 * evicts machine 2's SRK, so it runs last.
 */
static void test_cachekey_transient_srk(void)
{
    ESYS_TR srk = ESYS_TR_NONE, gone = ESYS_TR_NONE;
    bool transient = false;
    uint8_t a[32], b[32];
    struct dkm_tpm *fresh = NULL;

    dkm_tpm_lock(tpm2);
    CU_ASSERT_FATAL(dkm_tpm_srk_load(tpm2, &srk, &transient, NULL) == 0);
    CU_ASSERT_FATAL(!transient);
    CU_ASSERT_EQUAL_FATAL(Esys_EvictControl(dkm_tpm_esys(tpm2), ESYS_TR_RH_OWNER, srk,
                                            ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                                            DKM_SRK_HANDLE, &gone),
                          TSS2_RC_SUCCESS);
    srk = ESYS_TR_NONE;
    CU_ASSERT_FATAL(dkm_tpm_srk_load(tpm2, &srk, &transient, NULL) == 0);
    CU_ASSERT(transient);
    dkm_tpm_flush(tpm2, &srk);
    dkm_tpm_unlock(tpm2);

    CU_ASSERT_FATAL(key_mac(tpm2, dir("transient-srk"), a) == 0);
    CU_ASSERT_FATAL(dkm_tpm_open(dkm_test_tcti(2), &fresh) == 0);
    CU_ASSERT_FATAL(key_mac(fresh, dir("transient-srk"), b) == 0);
    dkm_tpm_close(fresh);
    CU_ASSERT(memcmp(a, b, 32) == 0);
    /* The key made under the vanished persistent SRK is now foreign. */
    CU_ASSERT_EQUAL(key_mac(tpm2, dir("two"), a), DKM_E_TPM_NOT_MINE);
    no_leak();
}

static CU_TestInfo cachekey_tests[] = {
    {"test_cachekey_same_after_reopen", test_cachekey_same_after_reopen},
    {"test_cachekey_differs_per_machine_and_dir",
     test_cachekey_differs_per_machine_and_dir},
    {"test_cachekey_other_tpm_refuses", test_cachekey_other_tpm_refuses},
    {"test_cachekey_altered_file_refused", test_cachekey_altered_file_refused},
    {"test_cachekey_transient_srk", test_cachekey_transient_srk},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {"cachekey", suite_init, suite_cleanup, NULL, NULL, cachekey_tests},
    CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv)
{
    return dkm_test_main(argc, argv, suites);
}
