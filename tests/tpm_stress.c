/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A thousand consecutive TPM operations of every kind dkm runs, mixed as
 * a server and a node run them on one TPM: import + unseal of a fresh
 * import blob, load + unseal of the cached object, and a signature by the
 * server signing key. Afterwards the TPM must still have all its
 * transient object slots free (swtpm has three and no resource manager:
 * one leaked handle breaks the next command), every secret must have come
 * back intact, and under ASan nothing may leak.
 */
#include <string.h>

#include <openssl/rand.h>

#include "dkm/tpm/dup.h"
#include "dkm/base/secmem.h"
#include "dkm/trust/sign.h"
#include "dkm/tpm/unseal.h"
#include "unit.h"

#define ROUNDS 1000

static void assert_slots_free(struct dkm_tpm *tpm)
{
    uint32_t avail = 0;

    CU_ASSERT_EQUAL_FATAL(dkm_tpm_transient_avail(tpm, &avail), 0);
    CU_ASSERT_EQUAL_FATAL(avail, 3);
}

static void test_stress_import_unseal_sign_no_leak(void)
{
    struct dkm_tpm *tpm = NULL;
    struct dkm_signkey *sk = NULL;
    struct dkm_p256_public pub;
    struct dkm_node_id id;
    TPM2B_PUBLIC ek;
    char path[512];
    unsigned good = 0;

    CU_ASSERT_EQUAL_FATAL(dkm_tpm_open(dkm_test_tcti(1), &tpm), 0);
    CU_ASSERT_EQUAL_FATAL(dkm_node_read_ek(tpm, DKM_EK_ECCP256, &ek, &id), 0);
    snprintf(path, sizeof(path), "%s/sk", dkm_test_tmpdir());
    CU_ASSERT_EQUAL_FATAL(dkm_signkey_create(tpm, path, false, &sk), 0);
    dkm_signkey_public(sk, &pub);
    assert_slots_free(tpm);

    for (unsigned i = 0; i < ROUNDS; i++) {
        struct dkm_import_blob blob;
        struct dkm_sealed sealed;
        uint8_t key[32], sig[DKM_SIG_SIZE];
        void *out = NULL, *again = NULL;
        size_t out_len = 0, again_len = 0;
        bool ok;

        CU_ASSERT_FATAL(RAND_bytes(key, sizeof(key)) == 1);
        CU_ASSERT_EQUAL_FATAL(dkm_dup_seal(&ek, key, sizeof(key), 0, NULL, &blob), 0);
        CU_ASSERT_EQUAL_FATAL(dkm_unseal_blob(tpm, &blob, &sealed, &out, &out_len), 0);
        CU_ASSERT_EQUAL_FATAL(dkm_unseal(tpm, &sealed, &again, &again_len), 0);
        CU_ASSERT_EQUAL_FATAL(dkm_signkey_sign(sk, "dkm test v1", key, sizeof(key), sig),
                              0);
        ok = out_len == sizeof(key) && again_len == sizeof(key) &&
             memcmp(out, key, sizeof(key)) == 0 && memcmp(again, key, sizeof(key)) == 0 &&
             dkm_sig_verify(&pub, "dkm test v1", key, sizeof(key), sig) == 0;
        good += ok;
        dkm_secmem_free(out);
        dkm_secmem_free(again);
        if (i % 250 == 249)
            assert_slots_free(tpm);
    }
    CU_ASSERT_EQUAL(good, ROUNDS);
    assert_slots_free(tpm);
    dkm_signkey_free(sk);
    dkm_tpm_close(tpm);
}

static CU_TestInfo stress_tests[] = {
    {"test_stress_import_unseal_sign_no_leak", test_stress_import_unseal_sign_no_leak},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {"stress", NULL, NULL, NULL, NULL, stress_tests},
    CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv)
{
    return dkm_test_main(argc, argv, suites);
}
