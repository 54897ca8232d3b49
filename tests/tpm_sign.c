/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Server signing key tests against two swtpm instances (two servers):
 * TPM signatures verify in software and nowhere else, the key file
 * reloads in a new context and is refused by another TPM or when
 * altered, delegations made by the TPM key form a chain that breaks at
 * every wrong link, and the latency of signing is measured.
 */
/* swtpm: 2 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/crypto.h>
#include <tss2/tss2_mu.h>

#include "dkm/tpm/node.h"
#include "dkm/trust/sign.h"
#include "dkm/tpm/tpm.h"
#include "unit.h"

static struct dkm_tpm *tpm1, *tpm2;
static struct dkm_node_id id1, id2;
static char sk1_path[512], sk2_path[512];

static int suite_init(void)
{
    struct dkm_signkey *sk = NULL;

    if (dkm_tpm_open(dkm_test_tcti(1), &tpm1) < 0 ||
        dkm_tpm_open(dkm_test_tcti(2), &tpm2) < 0)
        return 1;
    if (dkm_node_read_ek(tpm1, DKM_EK_ECCP256, NULL, &id1) < 0 ||
        dkm_node_read_ek(tpm2, DKM_EK_ECCP256, NULL, &id2) < 0)
        return 1;
    snprintf(sk1_path, sizeof(sk1_path), "%s/sk1", dkm_test_tmpdir());
    snprintf(sk2_path, sizeof(sk2_path), "%s/sk2", dkm_test_tmpdir());
    if (dkm_signkey_create(tpm1, sk1_path, false, &sk) < 0)
        return 1;
    dkm_signkey_free(sk);
    sk = NULL;
    if (dkm_signkey_create(tpm2, sk2_path, false, &sk) < 0)
        return 1;
    dkm_signkey_free(sk);
    return 0;
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

static struct dkm_signkey *load(struct dkm_tpm *tpm, const char *path)
{
    struct dkm_signkey *sk = NULL;

    CU_ASSERT_FATAL(dkm_signkey_load(tpm, path, &sk) == 0);
    return sk;
}

static void test_signkey_sign_verify(void)
{
    static const char msg[] = "authorized node list entry";
    struct dkm_signkey *sk = load(tpm1, sk1_path), *other = load(tpm2, sk2_path);
    struct dkm_p256_public pub, pub2;
    const TPM2B_PUBLIC *tp = dkm_signkey_tpm_public(sk);
    uint8_t sig[DKM_SIG_SIZE], sig2[DKM_SIG_SIZE];
    char m2[sizeof(msg)];

    dkm_signkey_public(sk, &pub);
    dkm_signkey_public(other, &pub2);
    CU_ASSERT(memcmp(pub.point + 1, tp->publicArea.unique.ecc.x.buffer, 32) == 0);
    CU_ASSERT(tp->publicArea.objectAttributes & TPMA_OBJECT_FIXEDTPM);
    CU_ASSERT_FATAL(dkm_signkey_sign(sk, "dkm test v1", msg, sizeof(msg), sig) == 0);
    CU_ASSERT_EQUAL(dkm_sig_verify(&pub, "dkm test v1", msg, sizeof(msg), sig), 0);
    /* ECDSA is randomized: a second signature differs and verifies. */
    CU_ASSERT_FATAL(dkm_signkey_sign(sk, "dkm test v1", msg, sizeof(msg), sig2) == 0);
    CU_ASSERT(memcmp(sig, sig2, sizeof(sig)) != 0);
    CU_ASSERT_EQUAL(dkm_sig_verify(&pub, "dkm test v1", msg, sizeof(msg), sig2), 0);

    memcpy(m2, msg, sizeof(msg));
    m2[3] ^= 0x20;
    CU_ASSERT_EQUAL(dkm_sig_verify(&pub, "dkm test v1", m2, sizeof(m2), sig),
                    DKM_E_SIGNATURE);
    sig[17] ^= 0x01;
    CU_ASSERT_EQUAL(dkm_sig_verify(&pub, "dkm test v1", msg, sizeof(msg), sig),
                    DKM_E_SIGNATURE);
    sig[17] ^= 0x01;
    sig[63] ^= 0x80;
    CU_ASSERT_EQUAL(dkm_sig_verify(&pub, "dkm test v1", msg, sizeof(msg), sig),
                    DKM_E_SIGNATURE);
    sig[63] ^= 0x80;
    CU_ASSERT_EQUAL(dkm_sig_verify(&pub, "dkm test v2", msg, sizeof(msg), sig),
                    DKM_E_SIGNATURE);
    CU_ASSERT_EQUAL(dkm_sig_verify(&pub2, "dkm test v1", msg, sizeof(msg), sig),
                    DKM_E_SIGNATURE);
    CU_ASSERT_EQUAL(dkm_signkey_sign(sk, DKM_SIGCTX_DELEGATION, msg, sizeof(msg), sig),
                    -EINVAL);
    CU_ASSERT_EQUAL(dkm_signkey_sign(sk, "", msg, sizeof(msg), sig), -EINVAL);
    dkm_signkey_free(sk);
    dkm_signkey_free(other);
    no_leak();
}

static void test_signkey_reload_in_new_context(void)
{
    struct dkm_signkey *sk = load(tpm1, sk1_path), *again;
    struct dkm_p256_public pub, pub_again;
    struct dkm_tpm *fresh = NULL;
    uint8_t sig[DKM_SIG_SIZE];

    dkm_signkey_public(sk, &pub);
    dkm_signkey_free(sk);
    /* A new ESAPI context, as after a restart of the server. */
    dkm_tpm_close(tpm1);
    tpm1 = NULL;
    CU_ASSERT_FATAL(dkm_tpm_open(dkm_test_tcti(1), &fresh) == 0);
    tpm1 = fresh;
    again = load(tpm1, sk1_path);
    dkm_signkey_public(again, &pub_again);
    CU_ASSERT(memcmp(pub.point, pub_again.point, sizeof(pub.point)) == 0);
    CU_ASSERT_FATAL(dkm_signkey_sign(again, "dkm test v1", "x", 1, sig) == 0);
    CU_ASSERT_EQUAL(dkm_sig_verify(&pub, "dkm test v1", "x", 1, sig), 0);
    dkm_signkey_free(again);
    no_leak();
}

static void test_signkey_not_replaced(void)
{
    struct dkm_signkey *sk = load(tpm1, sk1_path), *created = NULL, *again;
    struct dkm_p256_public pub, pub_again;

    dkm_signkey_public(sk, &pub);
    CU_ASSERT_EQUAL(dkm_signkey_create(tpm1, sk1_path, false, &created), -EEXIST);
    CU_ASSERT_PTR_NULL(created);
    again = load(tpm1, sk1_path);
    dkm_signkey_public(again, &pub_again);
    CU_ASSERT(memcmp(pub.point, pub_again.point, sizeof(pub.point)) == 0);
    dkm_signkey_free(sk);
    dkm_signkey_free(again);
    no_leak();
}

static void test_signkey_file_mode(void)
{
    struct stat st;

    CU_ASSERT_FATAL(stat(sk1_path, &st) == 0);
    CU_ASSERT_EQUAL(st.st_mode & 0777, 0600);
}

static void test_signkey_other_tpm_refuses(void)
{
    struct dkm_signkey *sk = load(tpm2, sk1_path); /* server 1's key on server 2 */
    uint8_t sig[DKM_SIG_SIZE];

    CU_ASSERT_EQUAL(dkm_signkey_sign(sk, "dkm test v1", "x", 1, sig), DKM_E_TPM_NOT_MINE);
    dkm_signkey_free(sk);
    no_leak();
}

/* Rewrite sk1 into path with one change made by fix(). */
static void write_variant(const char *path, void (*fix)(struct dkm_tpm_object *))
{
    struct dkm_tpm_object obj;

    CU_ASSERT_FATAL(dkm_tpm_object_read(sk1_path, DKM_SIGNKEY_MAGIC, "sk", &obj) == 0);
    fix(&obj);
    CU_ASSERT_FATAL(dkm_tpm_object_write(path, DKM_SIGNKEY_MAGIC, &obj, true) == 0);
}

static void fix_decrypt(struct dkm_tpm_object *o)
{
    o->pub.publicArea.objectAttributes |= TPMA_OBJECT_DECRYPT;
}

static void fix_curve(struct dkm_tpm_object *o)
{
    o->pub.publicArea.parameters.eccDetail.curveID = TPM2_ECC_NIST_P384;
}

static void fix_point(struct dkm_tpm_object *o)
{
    o->pub.publicArea.unique.ecc.x.buffer[5] ^= 1;
}

static void fix_private(struct dkm_tpm_object *o)
{
    o->priv.buffer[o->priv.size / 2] ^= 0x01;
}

static void test_signkey_file_altered(void)
{
    char path[600];
    struct dkm_signkey *sk = NULL;
    uint8_t *buf = NULL, sig[DKM_SIG_SIZE];
    size_t len = 0;

    snprintf(path, sizeof(path), "%s/sk-variant", dkm_test_tmpdir());
    write_variant(path, fix_decrypt);
    CU_ASSERT_EQUAL(dkm_signkey_load(tpm1, path, &sk), DKM_E_FORMAT);
    write_variant(path, fix_curve);
    CU_ASSERT_EQUAL(dkm_signkey_load(tpm1, path, &sk), DKM_E_FORMAT);
    write_variant(path, fix_point);
    CU_ASSERT_EQUAL(dkm_signkey_load(tpm1, path, &sk), DKM_E_FORMAT);
    CU_ASSERT_PTR_NULL(sk);

    /* A private blob with a flipped bit fails the TPM's integrity check. */
    write_variant(path, fix_private);
    CU_ASSERT_FATAL(dkm_signkey_load(tpm1, path, &sk) == 0);
    CU_ASSERT_EQUAL(dkm_signkey_sign(sk, "dkm test v1", "x", 1, sig), DKM_E_INTEGRITY);
    dkm_signkey_free(sk);
    sk = NULL;

    /* Truncated, extended, wrong magic. */
    CU_ASSERT_FATAL(dkm_file_read(sk1_path, 4096, &buf, &len) == 0);
    CU_ASSERT_FATAL(dkm_file_write(path, buf, len - 1, 0600, true) == 0);
    CU_ASSERT_EQUAL(dkm_signkey_load(tpm1, path, &sk), DKM_E_FORMAT);
    buf[len] = 0;
    CU_ASSERT_FATAL(dkm_file_write(path, buf, len + 1, 0600, true) == 0);
    CU_ASSERT_EQUAL(dkm_signkey_load(tpm1, path, &sk), DKM_E_FORMAT);
    CU_ASSERT(strstr(dkm_error_detail(), "trailing") != NULL);
    buf[3] ^= 1;
    CU_ASSERT_FATAL(dkm_file_write(path, buf, len, 0600, true) == 0);
    CU_ASSERT_EQUAL(dkm_signkey_load(tpm1, path, &sk), DKM_E_FORMAT);
    buf[3] ^= 1;
    buf[5] = 2; /* version */
    CU_ASSERT_FATAL(dkm_file_write(path, buf, len, 0600, true) == 0);
    CU_ASSERT_EQUAL(dkm_signkey_load(tpm1, path, &sk), DKM_E_FORMAT);
    CU_ASSERT_PTR_NULL(sk);
    free(buf);
    snprintf(path, sizeof(path), "%s/no-such-key", dkm_test_tmpdir());
    CU_ASSERT_EQUAL(dkm_signkey_load(tpm1, path, &sk), -ENOENT);
    no_leak();
}

static void test_delegation_chain_from_tpm(void)
{
    struct dkm_signkey *sk1 = load(tpm1, sk1_path), *sk2 = load(tpm2, sk2_path);
    struct dkm_delegated_key *dk = NULL, *dk_other = NULL, *dk_foreign = NULL;
    struct dkm_p256_public pub1, pub2;
    const struct dkm_delegation *info;
    uint64_t now = (uint64_t)time(NULL);
    uint8_t sig[DKM_SIG_SIZE], rec[DKM_DELEGATION_SIZE];
    static const char resp[] = "{blob, group, version, policy, nonce, expiry}";

    dkm_signkey_public(sk1, &pub1);
    dkm_signkey_public(sk2, &pub2);
    CU_ASSERT_FATAL(dkm_delegation_create(sk1, &id1, now - 300, now + 3600, &dk) == 0);
    info = dkm_delegated_key_info(dk);
    CU_ASSERT(dkm_node_id_equal(&info->server_id, &id1));
    memcpy(rec, dkm_delegated_key_record(dk), sizeof(rec));
    CU_ASSERT_EQUAL(dkm_delegation_verify(&pub1, &id1, rec, sizeof(rec), now, NULL), 0);

    CU_ASSERT_FATAL(
        dkm_delegated_sign(dk, DKM_SIGCTX_RESPONSE, resp, sizeof(resp), sig) == 0);
    CU_ASSERT_EQUAL(dkm_response_verify(&pub1, &id1, rec, sizeof(rec), now,
                                        DKM_SIGCTX_RESPONSE, resp, sizeof(resp), sig),
                    0);
    /* Expired and not yet valid. */
    CU_ASSERT_EQUAL(dkm_response_verify(&pub1, &id1, rec, sizeof(rec), now + 3600,
                                        DKM_SIGCTX_RESPONSE, resp, sizeof(resp), sig),
                    DKM_E_EXPIRED);
    CU_ASSERT_EQUAL(dkm_response_verify(&pub1, &id1, rec, sizeof(rec), now - 301,
                                        DKM_SIGCTX_RESPONSE, resp, sizeof(resp), sig),
                    DKM_E_EXPIRED);
    /* The pinned SK is server 1's, the delegation is server 2's (signed
     * by server 2's TPM), even though it names server 1. */
    CU_ASSERT_FATAL(
        dkm_delegation_create(sk2, &id1, now - 300, now + 3600, &dk_foreign) == 0);
    CU_ASSERT_EQUAL(dkm_delegation_verify(&pub1, &id1,
                                          dkm_delegated_key_record(dk_foreign),
                                          DKM_DELEGATION_SIZE, now, NULL),
                    DKM_E_SIGNATURE);
    CU_ASSERT_EQUAL(dkm_delegation_verify(&pub2, &id1,
                                          dkm_delegated_key_record(dk_foreign),
                                          DKM_DELEGATION_SIZE, now, NULL),
                    0);
    /* Server 1's delegation checked as server 2's. */
    CU_ASSERT_EQUAL(dkm_delegation_verify(&pub1, &id2, rec, sizeof(rec), now, NULL),
                    DKM_E_SIGNATURE);
    /* A response signed by a key that is not the delegated one: another
     * delegated key of the same SK. */
    CU_ASSERT_FATAL(dkm_delegation_create(sk1, &id1, now - 300, now + 3600, &dk_other) ==
                    0);
    CU_ASSERT_FATAL(
        dkm_delegated_sign(dk_other, DKM_SIGCTX_RESPONSE, resp, sizeof(resp), sig) == 0);
    CU_ASSERT_EQUAL(dkm_response_verify(&pub1, &id1, rec, sizeof(rec), now,
                                        DKM_SIGCTX_RESPONSE, resp, sizeof(resp), sig),
                    DKM_E_SIGNATURE);
    /* A response signed by the SK directly. */
    CU_ASSERT_FATAL(dkm_signkey_sign(sk1, DKM_SIGCTX_RESPONSE, resp, sizeof(resp), sig) ==
                    0);
    CU_ASSERT_EQUAL(dkm_response_verify(&pub1, &id1, rec, sizeof(rec), now,
                                        DKM_SIGCTX_RESPONSE, resp, sizeof(resp), sig),
                    DKM_E_SIGNATURE);
    /* The delegated key cannot delegate. */
    CU_ASSERT_EQUAL(dkm_delegated_sign(dk, DKM_SIGCTX_DELEGATION, rec, 121, sig),
                    -EINVAL);
    /* Window rules are enforced when creating too. */
    dkm_delegated_key_free(dk_other);
    dk_other = NULL;
    CU_ASSERT_EQUAL(dkm_delegation_create(sk1, &id1, now, now, &dk_other), -EINVAL);
    CU_ASSERT_EQUAL(dkm_delegation_create(
                        sk1, &id1, now, now + DKM_DELEGATION_MAX_LIFETIME + 1, &dk_other),
                    -EINVAL);
    CU_ASSERT_PTR_NULL(dk_other);
    dkm_delegated_key_free(dk);
    dkm_delegated_key_free(dk_foreign);
    dkm_signkey_free(sk1);
    dkm_signkey_free(sk2);
    no_leak();
}

static void test_delegated_key_in_secure_heap(void)
{
    struct dkm_signkey *sk = load(tpm1, sk1_path);
    struct dkm_delegated_key *dk = NULL;
    uint64_t now = (uint64_t)time(NULL);
    size_t before;

    CU_ASSERT_FATAL(dkm_sign_secure_heap_init() == 0);
    CU_ASSERT_EQUAL(dkm_sign_secure_heap_init(), 0); /* idempotent */
    before = CRYPTO_secure_used();
    CU_ASSERT_FATAL(dkm_delegation_create(sk, &id1, now, now + 60, &dk) == 0);
    CU_ASSERT(dkm_delegated_key_secure(dk));
    CU_ASSERT(CRYPTO_secure_used() > before);
    dkm_delegated_key_free(dk);
    CU_ASSERT_EQUAL(CRYPTO_secure_used(), before);
    dkm_signkey_free(sk);
    no_leak();
}

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

#define ROUNDS 200

static double median(double *v)
{
    qsort(v, ROUNDS, sizeof(double), cmp_double);
    return (v[ROUNDS / 2 - 1] + v[ROUNDS / 2]) / 2;
}

/* Median latencies: the full SK sign (Load + Sign + Flush), the TPM's
 * Sign alone on a loaded key, and the delegated software key. */
static void test_sign_latency(void)
{
    static double t[ROUNDS];
    struct dkm_signkey *sk = load(tpm1, sk1_path);
    struct dkm_delegated_key *dk = NULL;
    struct dkm_tpm_object obj;
    struct dkm_p256_public pub;
    ESYS_TR key = ESYS_TR_NONE;
    uint8_t sig[DKM_SIG_SIZE];
    uint64_t now = (uint64_t)time(NULL);
    TPM2B_DIGEST d = {.size = 32};
    TPMT_SIG_SCHEME scheme = {.scheme = TPM2_ALG_ECDSA,
                              .details = {.ecdsa = {.hashAlg = TPM2_ALG_SHA256}}};
    TPMT_TK_HASHCHECK check = {.tag = TPM2_ST_HASHCHECK, .hierarchy = TPM2_RH_NULL};
    double full, sign_only, soft, verify;
    int failures = 0;

    dkm_signkey_public(sk, &pub);
    for (int i = 0; i < ROUNDS; i++) {
        double t0 = now_ms();

        failures += dkm_signkey_sign(sk, DKM_SIGCTX_RESPONSE, &i, sizeof(i), sig) != 0;
        t[i] = now_ms() - t0;
    }
    full = median(t);

    CU_ASSERT_FATAL(dkm_tpm_object_read(sk1_path, DKM_SIGNKEY_MAGIC, "sk", &obj) == 0);
    CU_ASSERT_FATAL(dkm_tpm_object_load(tpm1, &obj, &key) == 0);
    dkm_tpm_lock(tpm1);
    for (int i = 0; i < ROUNDS; i++) {
        TPMT_SIGNATURE *s = NULL;
        double t0 = now_ms();

        failures += Esys_Sign(dkm_tpm_esys(tpm1), key, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                              ESYS_TR_NONE, &d, &scheme, &check, &s) != TSS2_RC_SUCCESS;
        t[i] = now_ms() - t0;
        Esys_Free(s);
    }
    dkm_tpm_flush(tpm1, &key);
    dkm_tpm_unlock(tpm1);
    sign_only = median(t);

    CU_ASSERT_FATAL(dkm_delegation_create(sk, &id1, now - 60, now + 3600, &dk) == 0);
    for (int i = 0; i < ROUNDS; i++) {
        double t0 = now_ms();

        failures += dkm_delegated_sign(dk, DKM_SIGCTX_RESPONSE, &i, sizeof(i), sig) != 0;
        t[i] = now_ms() - t0;
    }
    soft = median(t);
    for (int i = 0; i < ROUNDS; i++) {
        double t0 = now_ms();

        failures += dkm_response_verify(&pub, &id1, dkm_delegated_key_record(dk),
                                        DKM_DELEGATION_SIZE, now, DKM_SIGCTX_RESPONSE,
                                        &(int){ROUNDS - 1}, sizeof(int), sig) != 0;
        t[i] = now_ms() - t0;
    }
    verify = median(t);
    CU_ASSERT_EQUAL(failures, 0);
    printf(
        "\n  median over %d: SK sign (load+sign+flush) %.3f ms, TPM Sign alone %.3f ms,"
        " delegated software sign %.3f ms, chain verify %.3f ms",
        ROUNDS, full, sign_only, soft, verify);
    dkm_delegated_key_free(dk);
    dkm_signkey_free(sk);
    no_leak();
}

static CU_TestInfo sign_tests[] = {
    {"test_signkey_sign_verify", test_signkey_sign_verify},
    {"test_signkey_reload_in_new_context", test_signkey_reload_in_new_context},
    {"test_signkey_not_replaced", test_signkey_not_replaced},
    {"test_signkey_file_mode", test_signkey_file_mode},
    {"test_signkey_other_tpm_refuses", test_signkey_other_tpm_refuses},
    {"test_signkey_file_altered", test_signkey_file_altered},
    {"test_delegation_chain_from_tpm", test_delegation_chain_from_tpm},
    {"test_delegated_key_in_secure_heap", test_delegated_key_in_secure_heap},
    {"test_sign_latency", test_sign_latency},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {"sign", suite_init, suite_cleanup, NULL, NULL, sign_tests},
    CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv)
{
    return dkm_test_main(argc, argv, suites);
}
