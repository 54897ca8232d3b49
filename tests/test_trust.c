/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of the service client's trust chain (common/trust/trust.c): the
 * answer of GET /v1/trust accepted from the pin through signed successors
 * and kept on disk, the kept chain verified again when read, and a chain
 * that goes back to an older list than the one trusted refused. Software
 * servers (tests/fixtures.h) sign the lists; no TPM, no network.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "dkm/trust/trust.h"
#include "dkm/base/codec.h"
#include "dkm/base/file.h"
#include "fixtures.h"
#include "unit.h"

static struct dkm_test_server a, b;
static char *v1, *v2, *v3; /* base64url: v1 {a} by a, v2 {a,b} by a, v3 {b} by b */
static uint8_t pin[DKM_FINGERPRINT_SIZE];

/* A server list of version v with the given servers, signed by by; base64url. */
static char *make_list(uint32_t v, struct dkm_test_server **servers, size_t n,
                       struct dkm_test_server *by, uint8_t fpr[DKM_FINGERPRINT_SIZE])
{
    struct dkm_server_list l = {.list_version = v, .issued_at = 1700000000u + v};
    struct dkm_signer s = dkm_test_server_signer(by);
    uint8_t *buf = NULL;
    size_t len = 0;
    char *b64 = NULL;

    for (size_t i = 0; i < n; i++) {
        l.entries[i].node_id = servers[i]->id;
        l.entries[i].ek = servers[i]->ek;
        l.entries[i].sk = servers[i]->pub;
    }
    l.count = (uint8_t)n;
    if (dkm_server_list_sign(&l, &s, &buf, &len) < 0)
        return NULL;
    if (fpr != NULL && dkm_server_list_fingerprint(buf, len, fpr) < 0)
        goto done;
    b64 = malloc(dkm_b64url_encoded_len(len) + 1);
    if (b64 != NULL &&
        dkm_b64url_encode(buf, len, b64, dkm_b64url_encoded_len(len) + 1) < 0) {
        free(b64);
        b64 = NULL;
    }
done:
    free(buf);
    return b64;
}

static int suite_init(void)
{
    struct dkm_test_server *only_a[] = {&a}, *both[] = {&a, &b}, *only_b[] = {&b};

    if (dkm_test_server_make(&a) < 0 || dkm_test_server_make(&b) < 0)
        return -1;
    v1 = make_list(1, only_a, 1, &a, pin);
    v2 = make_list(2, both, 2, &a, NULL);
    v3 = make_list(3, only_b, 1, &b, NULL);
    return v1 != NULL && v2 != NULL && v3 != NULL ? 0 : -1;
}

static int suite_clean(void)
{
    free(v1);
    free(v2);
    free(v3);
    dkm_test_server_free(&a);
    dkm_test_server_free(&b);
    return 0;
}

/* {"lists": [...]} of the given base64url lists. */
static json_t *answer_of(const char *const *lists, size_t n)
{
    json_t *arr = json_array(), *j;

    CU_ASSERT_FATAL(arr != NULL);
    for (size_t i = 0; i < n; i++)
        CU_ASSERT_FATAL(json_array_append_new(arr, json_string(lists[i])) == 0);
    j = json_pack("{s:o}", "lists", arr);
    CU_ASSERT_FATAL(j != NULL);
    return j;
}

/* A fresh directory under the test's temp dir. */
static void make_dir(const char *name, char *out, size_t size)
{
    snprintf(out, size, "%s/%s", dkm_test_tmpdir(), name);
    CU_ASSERT_FATAL(mkdir(out, 0700) == 0 || errno == EEXIST);
}

static void test_trust_chain_kept_and_reloaded(void)
{
    const char *chain[] = {v1, v2, v3};
    struct dkm_server_list list;
    char dir[512], file[600];
    uint8_t *saved = NULL;
    size_t saved_len = 0;
    json_t *j = answer_of(chain, 3);

    make_dir("kept", dir, sizeof(dir));
    CU_ASSERT_EQUAL(dkm_trust_load(dir, pin, &list), -ENOENT);
    CU_ASSERT_EQUAL(dkm_trust_accept_answer(j, pin, 0, dir, &list), 0);
    CU_ASSERT_EQUAL(list.list_version, 3);
    CU_ASSERT_EQUAL(list.count, 1);
    CU_ASSERT(dkm_node_id_equal(&list.entries[0].node_id, &b.id));
    snprintf(file, sizeof(file), "%s/%s", dir, DKM_TRUST_FILE);
    CU_ASSERT_EQUAL(dkm_file_read(file, 1u << 20, &saved, &saved_len), 0);
    CU_ASSERT(saved_len > 8 && memcmp(saved, "DKTL\0\1\0\3", 8) == 0);
    free(saved);

    memset(&list, 0, sizeof(list));
    CU_ASSERT_EQUAL(dkm_trust_load(dir, pin, &list), 0);
    CU_ASSERT_EQUAL(list.list_version, 3);
    CU_ASSERT(dkm_node_id_equal(&list.entries[0].node_id, &b.id));
    /* No directory: nothing kept, nothing to load. */
    CU_ASSERT_EQUAL(dkm_trust_accept_answer(j, pin, 0, NULL, &list), 0);
    CU_ASSERT_EQUAL(dkm_trust_load(NULL, pin, &list), -ENOENT);
    json_decref(j);
}

static void test_trust_answer_refusals(void)
{
    const char *no_pin[] = {v2, v3}, *gap[] = {v1, v3}, *only_v1[] = {v1};
    struct dkm_server_list list = {.list_version = 77};
    json_t *j;

    j = answer_of(no_pin, 2);
    CU_ASSERT_EQUAL(dkm_trust_accept_answer(j, pin, 0, NULL, &list), DKM_E_SIGNATURE);
    CU_ASSERT_PTR_NOT_NULL(strstr(dkm_error_detail(), "pinned"));
    json_decref(j);
    j = answer_of(gap, 2);
    CU_ASSERT_EQUAL(dkm_trust_accept_answer(j, pin, 0, NULL, &list), DKM_E_SIGNATURE);
    CU_ASSERT_PTR_NOT_NULL(strstr(dkm_error_detail(), "after the pinned one"));
    json_decref(j);
    j = json_pack("{s:[s]}", "lists", "not*base64");
    CU_ASSERT_EQUAL(dkm_trust_accept_answer(j, pin, 0, NULL, &list), DKM_E_PROTOCOL);
    json_decref(j);
    j = json_pack("{s:[]}", "lists");
    CU_ASSERT_EQUAL(dkm_trust_accept_answer(j, pin, 0, NULL, &list), DKM_E_PROTOCOL);
    json_decref(j);
    j = json_pack("{s:s}", "lists", v1);
    CU_ASSERT_EQUAL(dkm_trust_accept_answer(j, pin, 0, NULL, &list), DKM_E_PROTOCOL);
    json_decref(j);
    /* Refused answers leave the result alone. */
    CU_ASSERT_EQUAL(list.list_version, 77);
    /* The pinned list alone is a valid chain, unless a newer one is trusted. */
    j = answer_of(only_v1, 1);
    CU_ASSERT_EQUAL(dkm_trust_accept_answer(j, pin, 1, NULL, &list), 0);
    CU_ASSERT_EQUAL(list.list_version, 1);
    json_decref(j);
}

/* A service that answers with an older chain than the one trusted (one
 * that still has a removed server on it) is refused, and the kept chain
 * stays as it was. */
static void test_trust_rollback_refused(void)
{
    const char *chain[] = {v1, v2, v3}, *old[] = {v1, v2};
    struct dkm_server_list list;
    char dir[512];
    json_t *j = answer_of(chain, 3), *k = answer_of(old, 2);

    make_dir("rollback", dir, sizeof(dir));
    CU_ASSERT_EQUAL(dkm_trust_accept_answer(j, pin, 0, dir, &list), 0);
    CU_ASSERT_EQUAL(dkm_trust_accept_answer(k, pin, 3, dir, &list), DKM_E_SIGNATURE);
    CU_ASSERT_PTR_NOT_NULL(strstr(dkm_error_detail(), "older"));
    CU_ASSERT_EQUAL(dkm_trust_load(dir, pin, &list), 0);
    CU_ASSERT_EQUAL(list.list_version, 3);
    json_decref(j);
    json_decref(k);
}

static void test_trust_kept_file_checked(void)
{
    const char *chain[] = {v1, v2, v3};
    uint8_t other_pin[DKM_FINGERPRINT_SIZE];
    struct dkm_server_list list;
    char dir[512], file[600];
    uint8_t *buf = NULL;
    size_t len = 0;
    json_t *j = answer_of(chain, 3);

    make_dir("checked", dir, sizeof(dir));
    snprintf(file, sizeof(file), "%s/%s", dir, DKM_TRUST_FILE);
    CU_ASSERT_EQUAL(dkm_trust_accept_answer(j, pin, 0, dir, &list), 0);
    json_decref(j);
    /* Another pin: the kept chain is not believed because it is on disk. */
    memcpy(other_pin, pin, sizeof(pin));
    other_pin[0] ^= 1;
    CU_ASSERT_EQUAL(dkm_trust_load(dir, other_pin, &list), DKM_E_SIGNATURE);

    CU_ASSERT_FATAL(dkm_file_read(file, 1u << 20, &buf, &len) == 0);
    /* Every truncation is refused. */
    for (size_t cut = 0; cut < len; cut++) {
        CU_ASSERT_FATAL(dkm_file_write(file, buf, cut, 0600, true) == 0);
        CU_ASSERT(dkm_trust_load(dir, pin, &list) < 0);
    }
    /* A flipped byte in the last list's signature breaks the chain. */
    buf[len - 1] ^= 0x01;
    CU_ASSERT_FATAL(dkm_file_write(file, buf, len, 0600, true) == 0);
    CU_ASSERT_EQUAL(dkm_trust_load(dir, pin, &list), DKM_E_SIGNATURE);
    buf[len - 1] ^= 0x01;
    /* Trailing bytes, another magic. */
    {
        uint8_t *longer = malloc(len + 1);

        CU_ASSERT_FATAL(longer != NULL);
        memcpy(longer, buf, len);
        longer[len] = 0;
        CU_ASSERT_FATAL(dkm_file_write(file, longer, len + 1, 0600, true) == 0);
        CU_ASSERT_EQUAL(dkm_trust_load(dir, pin, &list), DKM_E_FORMAT);
        free(longer);
    }
    buf[0] = 'X';
    CU_ASSERT_FATAL(dkm_file_write(file, buf, len, 0600, true) == 0);
    CU_ASSERT_EQUAL(dkm_trust_load(dir, pin, &list), DKM_E_FORMAT);
    buf[0] = 'D';
    CU_ASSERT_FATAL(dkm_file_write(file, buf, len, 0600, true) == 0);
    CU_ASSERT_EQUAL(dkm_trust_load(dir, pin, &list), 0);
    CU_ASSERT_EQUAL(list.list_version, 3);
    free(buf);
}

static CU_TestInfo trust_tests[] = {
    {"test_trust_chain_kept_and_reloaded", test_trust_chain_kept_and_reloaded},
    {"test_trust_answer_refusals", test_trust_answer_refusals},
    {"test_trust_rollback_refused", test_trust_rollback_refused},
    {"test_trust_kept_file_checked", test_trust_kept_file_checked},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {"trust", suite_init, suite_clean, NULL, NULL, trust_tests},
    CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv)
{
    return dkm_test_main(argc, argv, suites);
}
