/* SPDX-License-Identifier: Apache-2.0 */
/* swtpm: 2 */
/*
 * The whole trust chain of a key fetch on real TPMs: TPM 1 is a server
 * (signing key, self-signed server list, delegation, group policy), TPM 2
 * a node. The server seals a key to the node's EK in software and signs
 * the response with its delegated key; the node verifies the chain from
 * the pinned list and unseals with its own TPM.
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "dkm/tpm/dup.h"
#include "dkm/trust/records.h"
#include "dkm/base/secmem.h"
#include "dkm/tpm/unseal.h"
#include "unit.h"

static struct dkm_tpm *server_tpm, *node_tpm;
static struct dkm_signkey *sk;
static struct dkm_delegated_key *dk;
static struct dkm_node_id server_id, node_id;
static TPM2B_PUBLIC server_ek, node_ek;
static struct dkm_server_list trust;
static uint8_t *policy_rec;
static size_t policy_len;
static uint64_t now;

static int suite_init(void)
{
    struct dkm_server_list l = {.list_version = 1};
    struct dkm_group_policy p = {.group = "payments",
                                 .serial = 1,
                                 .algorithm = DKM_ALG_AES_256_GCM,
                                 .rotation_period = 3600,
                                 .version_lifetime = 86400,
                                 .cache_ttl = 60};
    struct dkm_signer signer;
    uint8_t pin[DKM_FINGERPRINT_SIZE];
    char path[512];
    uint8_t *buf = NULL;
    size_t len;
    int r;

    now = (uint64_t)time(NULL);
    if (dkm_sign_secure_heap_init() < 0)
        return 1;
    snprintf(path, sizeof(path), "%s/sk", dkm_test_tmpdir());
    if (dkm_tpm_open(dkm_test_tcti(1), &server_tpm) < 0 ||
        dkm_tpm_open(dkm_test_tcti(2), &node_tpm) < 0 ||
        dkm_node_read_ek(server_tpm, DKM_EK_ECCP256, &server_ek, &server_id) < 0 ||
        dkm_node_read_ek(node_tpm, DKM_EK_ECCP256, &node_ek, &node_id) < 0 ||
        dkm_signkey_create(server_tpm, path, false, &sk) < 0 ||
        dkm_delegation_create(sk, &server_id, now - 60, now + 3600, &dk) < 0)
        return 1;
    signer = dkm_signer_signkey(sk, &server_id);
    l.issued_at = now;
    l.count = 1;
    l.entries[0].node_id = server_id;
    l.entries[0].ek = server_ek;
    dkm_signkey_public(sk, &l.entries[0].sk);
    if (dkm_server_list_sign(&l, &signer, &buf, &len) < 0 ||
        dkm_server_list_fingerprint(buf, len, pin) < 0)
        return 1;
    /* What a node does with its pinned fingerprint. */
    r = dkm_server_list_verify_pinned(buf, len, pin, &trust);
    free(buf);
    if (r < 0)
        return 1;
    p.created_at = now;
    return dkm_group_policy_sign(&p, &signer, &policy_rec, &policy_len) < 0 ? 1 : 0;
}

static int suite_cleanup(void)
{
    free(policy_rec);
    dkm_delegated_key_free(dk);
    dkm_signkey_free(sk);
    dkm_tpm_close(server_tpm);
    dkm_tpm_close(node_tpm);
    return 0;
}

/* Server side: seal key to the node's EK and sign a response. */
static uint8_t *serve(const uint8_t key[32], const uint8_t *nonce, uint64_t issued,
                      uint64_t expires, const uint8_t *policy, size_t plen,
                      size_t *ret_len)
{
    struct dkm_fetch_response f = {.group = "payments",
                                   .version = 3,
                                   .node_id = node_id,
                                   .nonce_len = 32,
                                   .issued_at = issued,
                                   .expires_at = expires,
                                   .policy = policy,
                                   .policy_len = plen};
    struct dkm_import_blob blob;
    uint8_t env[DKM_DUP_ENCODED_MAX];
    uint8_t *out = NULL;

    memcpy(f.nonce, nonce, 32);
    CU_ASSERT_EQUAL_FATAL(dkm_dup_seal(&node_ek, key, 32, 0, NULL, &blob), 0);
    CU_ASSERT_EQUAL_FATAL(dkm_dup_encode(&blob, env, sizeof(env), &f.blob_len), 0);
    f.blob = env;
    CU_ASSERT_EQUAL_FATAL(dkm_fetch_response_sign(&f, dk, &out, ret_len), 0);
    return out;
}

static void test_fetch_chain_end_to_end(void)
{
    uint8_t key[32], nonce[32];
    struct dkm_fetch_response f;
    struct dkm_group_policy p;
    struct dkm_import_blob blob;
    void *secret = NULL;
    size_t len, slen = 0;
    uint8_t *resp;

    CU_ASSERT_FATAL(RAND_bytes(key, sizeof(key)) == 1 && RAND_bytes(nonce, 32) == 1);
    resp = serve(key, nonce, now, now + 86400, policy_rec, policy_len, &len);
    /* Node side. */
    CU_ASSERT_EQUAL_FATAL(dkm_fetch_response_verify(&trust, resp, len, &f, &p), 0);
    CU_ASSERT_EQUAL(dkm_fetch_response_check(&f, &node_id, "payments",
                                             DKM_VERSION_CURRENT, nonce, 32, now, 300),
                    0);
    CU_ASSERT_EQUAL(
        dkm_fetch_response_check(&f, &node_id, "payments", 3, nonce, 32, now, 300), 0);
    CU_ASSERT_EQUAL(p.cache_ttl, 60);
    CU_ASSERT_EQUAL_FATAL(dkm_dup_decode(f.blob, f.blob_len, &blob), 0);
    CU_ASSERT_EQUAL_FATAL(dkm_unseal_blob(node_tpm, &blob, NULL, &secret, &slen), 0);
    CU_ASSERT_EQUAL(slen, 32);
    CU_ASSERT_EQUAL(memcmp(secret, key, 32), 0);
    CU_ASSERT_TRUE(dkm_secmem_contains(secret));
    dkm_secmem_free(secret);
    free(resp);
}

static void test_fetch_checks_refuse_mismatch(void)
{
    uint8_t key[32] = {1}, nonce[32] = {2}, other[32] = {3};
    struct dkm_fetch_response f;
    size_t len;
    uint8_t *resp = serve(key, nonce, now, now + 100, policy_rec, policy_len, &len);

    CU_ASSERT_EQUAL_FATAL(dkm_fetch_response_verify(&trust, resp, len, &f, NULL), 0);
    /* Another request's nonce: a replayed answer. */
    CU_ASSERT_EQUAL(
        dkm_fetch_response_check(&f, &node_id, "payments", 3, other, 32, now, 300),
        DKM_E_PROTOCOL);
    CU_ASSERT_EQUAL(
        dkm_fetch_response_check(&f, &node_id, "payments", 3, nonce, 16, now, 300),
        DKM_E_PROTOCOL);
    /* Made for another node (here: the server's own id). */
    CU_ASSERT_EQUAL(
        dkm_fetch_response_check(&f, &server_id, "payments", 3, nonce, 32, now, 300),
        DKM_E_PROTOCOL);
    CU_ASSERT_EQUAL(
        dkm_fetch_response_check(&f, &node_id, "payroll", 3, nonce, 32, now, 300),
        DKM_E_PROTOCOL);
    CU_ASSERT_EQUAL(
        dkm_fetch_response_check(&f, &node_id, "payments", 4, nonce, 32, now, 300),
        DKM_E_PROTOCOL);
    /* Expired at its expiry, valid just before; a cache entry (no nonce). */
    CU_ASSERT_EQUAL(
        dkm_fetch_response_check(&f, &node_id, "payments", 3, NULL, 0, now + 99, 0), 0);
    CU_ASSERT_EQUAL(
        dkm_fetch_response_check(&f, &node_id, "payments", 3, NULL, 0, now + 100, 0),
        DKM_E_EXPIRED);
    /* Issued in the future beyond the allowed skew. */
    CU_ASSERT_EQUAL(
        dkm_fetch_response_check(&f, &node_id, "payments", 3, nonce, 32, now - 400, 300),
        DKM_E_PROTOCOL);
    free(resp);
}

static void test_fetch_cached_after_delegation_ends(void)
{
    uint8_t key[32] = {4}, nonce[32] = {5};
    struct dkm_fetch_response f;
    size_t len;
    uint8_t *resp =
        serve(key, nonce, now, now + 30 * 86400, policy_rec, policy_len, &len);

    /* The delegation ends in an hour; the response stays verifiable since
     * it was made while the delegation was valid... */
    CU_ASSERT_EQUAL(dkm_fetch_response_verify(&trust, resp, len, &f, NULL), 0);
    CU_ASSERT_EQUAL(dkm_fetch_response_check(&f, &node_id, "payments", 3, NULL, 0,
                                             now + 10 * 86400, 0),
                    0);
    free(resp);
    /* ...but a response claiming a time outside the delegation is refused. */
    resp = serve(key, nonce, now + 7200, now + 86400, policy_rec, policy_len, &len);
    CU_ASSERT_EQUAL(dkm_fetch_response_verify(&trust, resp, len, &f, NULL),
                    DKM_E_EXPIRED);
    free(resp);
}

static void test_fetch_policy_not_from_list(void)
{
    struct dkm_group_policy p = {.group = "payments",
                                 .serial = 2,
                                 .algorithm = DKM_ALG_AES_256_GCM,
                                 .rotation_period = 1,
                                 .version_lifetime = 1,
                                 .cache_ttl = 1};
    uint8_t key[32] = {6}, nonce[32] = {7};
    struct dkm_fetch_response f;
    struct dkm_signer outsider;
    uint8_t *prec = NULL, *resp;
    size_t plen, len;

    /* A policy signed by the server's key but claiming the node's id:
     * its signer is not on the list. */
    outsider = dkm_signer_signkey(sk, &node_id);
    CU_ASSERT_EQUAL_FATAL(dkm_group_policy_sign(&p, &outsider, &prec, &plen), 0);
    resp = serve(key, nonce, now, now + 100, prec, plen, &len);
    CU_ASSERT_EQUAL(dkm_fetch_response_verify(&trust, resp, len, &f, NULL),
                    DKM_E_SIGNATURE);
    free(resp);
    free(prec);
    /* Another group's policy inside a payments response. */
    strcpy(p.group, "payroll");
    outsider = dkm_signer_signkey(sk, &server_id);
    CU_ASSERT_EQUAL_FATAL(dkm_group_policy_sign(&p, &outsider, &prec, &plen), 0);
    resp = serve(key, nonce, now, now + 100, prec, plen, &len);
    CU_ASSERT_EQUAL(dkm_fetch_response_verify(&trust, resp, len, &f, NULL),
                    DKM_E_SIGNATURE);
    free(resp);
    free(prec);
}

static void test_fetch_every_flip_and_truncation(void)
{
    uint8_t key[32] = {8}, nonce[32] = {9};
    struct dkm_fetch_response f;
    size_t len;
    uint8_t *resp = serve(key, nonce, now, now + 100, policy_rec, policy_len, &len);
    uint8_t *copy = malloc(len + 1);

    for (size_t cut = 0; cut < len; cut++) {
        memcpy(copy, resp, cut);
        CU_ASSERT_NOT_EQUAL(dkm_fetch_response_decode(copy, cut, &f), 0);
    }
    memcpy(copy, resp, len);
    copy[len] = 0;
    CU_ASSERT_NOT_EQUAL(dkm_fetch_response_decode(copy, len + 1, &f), 0);
    for (size_t i = 0; i < len; i++) {
        memcpy(copy, resp, len);
        copy[i] ^= 0x01;
        CU_ASSERT_NOT_EQUAL(dkm_fetch_response_verify(&trust, copy, len, &f, NULL), 0);
    }
    free(copy);
    free(resp);
}

/* What the decoder would refuse is never signed: a response that expires
 * at or before it is issued. */
static void test_fetch_sign_refuses_expiry_not_after_issue(void)
{
    static const uint8_t blob[60] = {'D', 'K', 'M', 'I'};
    struct dkm_fetch_response f = {.group = "payments",
                                   .version = 3,
                                   .node_id = node_id,
                                   .nonce_len = 32,
                                   .issued_at = now,
                                   .expires_at = now,
                                   .policy = policy_rec,
                                   .policy_len = policy_len,
                                   .blob = blob,
                                   .blob_len = sizeof(blob)};
    uint8_t *out = NULL;
    size_t len = 0;

    CU_ASSERT_EQUAL(dkm_fetch_response_sign(&f, dk, &out, &len), -EINVAL);
    f.expires_at = now - 1;
    CU_ASSERT_EQUAL(dkm_fetch_response_sign(&f, dk, &out, &len), -EINVAL);
    CU_ASSERT_PTR_NULL(out);
    f.expires_at = now + 1;
    CU_ASSERT_EQUAL(dkm_fetch_response_sign(&f, dk, &out, &len), 0);
    free(out);
}

static CU_TestInfo fetch_tests[] = {
    {"test_fetch_chain_end_to_end", test_fetch_chain_end_to_end},
    {"test_fetch_checks_refuse_mismatch", test_fetch_checks_refuse_mismatch},
    {"test_fetch_cached_after_delegation_ends", test_fetch_cached_after_delegation_ends},
    {"test_fetch_policy_not_from_list", test_fetch_policy_not_from_list},
    {"test_fetch_every_flip_and_truncation", test_fetch_every_flip_and_truncation},
    {"test_fetch_sign_refuses_expiry_not_after_issue",
     test_fetch_sign_refuses_expiry_not_after_issue},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {"fetch", suite_init, suite_cleanup, NULL, NULL, fetch_tests},
    CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv)
{
    return dkm_test_main(argc, argv, suites);
}
