/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of the kernel keyring cache (keyring.h): the payload formats
 * (round trips, every truncation, every field out of range, a key id that
 * does not match), and the keyctl side against the real kernel, in a
 * keyring under this process's own process keyring, so that nothing
 * outside the test process is touched: keep and find, permissions,
 * timeouts, a planted payload refused and invalidated, listing without
 * bytes, flush by group, and contexts kept apart.
 */
#include <errno.h>
#include <keyutils.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dkm/base/codec.h"
#include "dkm/base/secmem.h"
#include "dkm/client/keyring.h"
#include "unit.h"

static const uint8_t key32[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11,
                                  12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
                                  23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

static struct dkm_keyring_entry sample(const char *group, uint32_t version)
{
    struct dkm_keyring_entry e;

    memset(&e, 0, sizeof(e));
    snprintf(e.group, sizeof(e.group), "%s", group);
    e.version = version;
    e.policy_serial = 3;
    e.algorithm = 1;
    e.cache_ttl = 600;
    e.pcr_mask = 0;
    e.expires_at = (uint64_t)time(NULL) + 7200;
    e.cached_until = (uint64_t)time(NULL) + 600;
    e.key = key32;
    e.key_len = sizeof(key32);
    return e;
}

static size_t encode(const struct dkm_keyring_entry *e, uint8_t *buf, size_t cap)
{
    size_t len = 0;

    CU_ASSERT_EQUAL_FATAL(dkm_keyring_payload_encode(NULL, NULL, e, buf, cap, &len), 0);
    return len;
}

static void test_payload_round_trip(void)
{
    struct dkm_keyring_entry e = sample("payments", 7), d;
    uint8_t buf[DKM_KEYRING_PAYLOAD_MAX], id[DKM_KEYRING_KEY_ID_SIZE];
    size_t len = encode(&e, buf, sizeof(buf));

    CU_ASSERT_EQUAL_FATAL(dkm_keyring_payload_decode(NULL, NULL, buf, len, &d), 0);
    CU_ASSERT_STRING_EQUAL(d.group, "payments");
    CU_ASSERT_EQUAL(d.version, 7);
    CU_ASSERT_EQUAL(d.policy_serial, 3);
    CU_ASSERT_EQUAL(d.algorithm, 1);
    CU_ASSERT_EQUAL(d.cache_ttl, 600);
    CU_ASSERT_EQUAL(d.expires_at, e.expires_at);
    CU_ASSERT_EQUAL(d.cached_until, e.cached_until);
    CU_ASSERT_EQUAL_FATAL(d.key_len, 32);
    CU_ASSERT_EQUAL(memcmp(d.key, key32, 32), 0);
    CU_ASSERT_PTR_EQUAL(d.key, buf + len - 32); /* points into the payload */
    CU_ASSERT_EQUAL_FATAL(dkm_keyring_key_id(NULL, NULL, key32, 32, id), 0);
    CU_ASSERT_EQUAL(memcmp(d.key_id, id, sizeof(id)), 0);
}

/* Known answer: the id is HMAC-SHA256(key, "dkm-key-id"), first 8 bytes
 * (the same id the provider and dkmctl print). */
static void test_key_id_known_answer(void)
{
    uint8_t zero[32] = {0}, id[DKM_KEYRING_KEY_ID_SIZE];
    char hex[17];

    CU_ASSERT_EQUAL_FATAL(dkm_keyring_key_id(NULL, NULL, zero, sizeof(zero), id), 0);
    CU_ASSERT_EQUAL_FATAL(dkm_hex_encode(id, sizeof(id), hex, sizeof(hex)), 0);
    /* openssl mac -digest SHA256 -macopt hexkey:00..00 HMAC <<<"dkm-key-id" (no newline) */
    CU_ASSERT_STRING_EQUAL(hex, "bc97d972c0e6abf2");
}

static void test_payload_every_truncation(void)
{
    struct dkm_keyring_entry e = sample("g", 1), d;
    uint8_t buf[DKM_KEYRING_PAYLOAD_MAX];
    size_t len = encode(&e, buf, sizeof(buf));

    for (size_t n = 0; n < len; n++)
        CU_ASSERT_EQUAL(dkm_keyring_payload_decode(NULL, NULL, buf, n, &d), DKM_E_FORMAT);
}

static void test_payload_trailing_and_oversize(void)
{
    struct dkm_keyring_entry e = sample("g", 1), d;
    uint8_t buf[DKM_KEYRING_PAYLOAD_MAX + 8] = {0};
    size_t len = encode(&e, buf, sizeof(buf));

    CU_ASSERT_EQUAL(dkm_keyring_payload_decode(NULL, NULL, buf, len + 1, &d),
                    DKM_E_FORMAT);
    CU_ASSERT_EQUAL(
        dkm_keyring_payload_decode(NULL, NULL, buf, DKM_KEYRING_PAYLOAD_MAX + 1, &d),
        DKM_E_FORMAT);
}

/* Offsets: magic 0, version 4, group length 6, group 7.., then (for the
 * one-letter group "g") version 8, serial 12, algorithm 16, ttl 18, pcr
 * 22, expires 26, cached_until 34, key id 42, key length 50, key 51. */
static void test_payload_every_field(void)
{
    static const struct {
        size_t off;
        uint8_t value;
        int want;
        const char *what;
    } cases[] = {
        {0, 'X', DKM_E_FORMAT, "magic"},
        {5, 2, DKM_E_FORMAT, "format version 2"},
        {5, 0, DKM_E_FORMAT, "format version 0"},
        {6, 0, DKM_E_FORMAT, "empty group"},
        {6, 65, DKM_E_FORMAT, "group longer than 64"},
        {7, '/', DKM_E_FORMAT, "group with a slash"},
        {11, 0, DKM_E_FORMAT, "version 0"},
        {41, 0, DKM_E_FORMAT, "cached_until 0"},
        {42, 0xff, DKM_E_INTEGRITY, "key id"},
        {50, 0, DKM_E_FORMAT, "key length 0"},
        {50, 33, DKM_E_FORMAT, "key length beyond the end"},
        {51, 0x55, DKM_E_INTEGRITY, "key byte (id no longer matches)"},
    };
    struct dkm_keyring_entry e = sample("g", 1), d;
    uint8_t buf[DKM_KEYRING_PAYLOAD_MAX], bad[DKM_KEYRING_PAYLOAD_MAX];
    size_t len;

    e.cached_until = 0x01; /* byte 41 is its last */
    e.version = 1;         /* byte 11 is its last */
    len = encode(&e, buf, sizeof(buf));
    CU_ASSERT_EQUAL_FATAL(len, 51 + 32);
    CU_ASSERT_EQUAL_FATAL(dkm_keyring_payload_decode(NULL, NULL, buf, len, &d), 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memcpy(bad, buf, len);
        bad[cases[i].off] = cases[i].value;
        if (dkm_keyring_payload_decode(NULL, NULL, bad, len, &d) != cases[i].want)
            fprintf(stderr, "payload field not refused: %s\n", cases[i].what);
        CU_ASSERT_EQUAL(dkm_keyring_payload_decode(NULL, NULL, bad, len, &d),
                        cases[i].want);
    }
}

static void test_payload_encode_refuses(void)
{
    struct dkm_keyring_entry e;
    uint8_t buf[DKM_KEYRING_PAYLOAD_MAX];
    size_t len;

    e = sample("no/slash", 1);
    CU_ASSERT_EQUAL(dkm_keyring_payload_encode(NULL, NULL, &e, buf, sizeof(buf), &len),
                    -EINVAL);
    e = sample("g", 0);
    CU_ASSERT_EQUAL(dkm_keyring_payload_encode(NULL, NULL, &e, buf, sizeof(buf), &len),
                    -EINVAL);
    e = sample("g", 1);
    e.key_len = DKM_KEYRING_KEY_MAX + 1;
    CU_ASSERT_EQUAL(dkm_keyring_payload_encode(NULL, NULL, &e, buf, sizeof(buf), &len),
                    -EINVAL);
    e = sample("g", 1);
    CU_ASSERT_EQUAL(dkm_keyring_payload_encode(NULL, NULL, &e, buf, 20, &len), -ENOBUFS);
}

static void test_current_payload(void)
{
    uint8_t buf[128], bad[128];
    char group[DKM_GROUP_MAX + 1];
    uint32_t v = 0;
    size_t len = 0;

    CU_ASSERT_EQUAL_FATAL(dkm_keyring_current_encode("web", 12, buf, sizeof(buf), &len),
                          0);
    CU_ASSERT_EQUAL_FATAL(dkm_keyring_current_decode(buf, len, group, &v), 0);
    CU_ASSERT_STRING_EQUAL(group, "web");
    CU_ASSERT_EQUAL(v, 12);
    for (size_t n = 0; n < len; n++)
        CU_ASSERT_EQUAL(dkm_keyring_current_decode(buf, n, group, &v), DKM_E_FORMAT);
    CU_ASSERT_EQUAL(dkm_keyring_current_decode(buf, len + 1, group, &v), DKM_E_FORMAT);
    for (size_t i = 0; i < 6; i++) { /* magic and format version */
        memcpy(bad, buf, len);
        bad[i] ^= 0x01;
        CU_ASSERT_EQUAL(dkm_keyring_current_decode(bad, len, group, &v), DKM_E_FORMAT);
    }
    memcpy(bad, buf, len);
    memset(bad + len - 4, 0, 4); /* version 0 */
    CU_ASSERT_EQUAL(dkm_keyring_current_decode(bad, len, group, &v), DKM_E_FORMAT);
    CU_ASSERT_EQUAL(dkm_keyring_current_encode("g", 0, buf, sizeof(buf), &len), -EINVAL);
}

static void test_context_separates(void)
{
    uint8_t pin_a[32] = {1}, pin_b[32] = {2};
    char a[17], b[17], c[17], d[17], e[17];

    CU_ASSERT_EQUAL_FATAL(
        dkm_keyring_context(NULL, NULL, pin_a, 32, "swtpm:port=1", "/c1", a), 0);
    CU_ASSERT_EQUAL_FATAL(
        dkm_keyring_context(NULL, NULL, pin_b, 32, "swtpm:port=1", "/c1", b), 0);
    CU_ASSERT_EQUAL_FATAL(
        dkm_keyring_context(NULL, NULL, pin_a, 32, "swtpm:port=2", "/c1", c), 0);
    CU_ASSERT_EQUAL_FATAL(
        dkm_keyring_context(NULL, NULL, pin_a, 32, "swtpm:port=1", "/c2", d), 0);
    CU_ASSERT_EQUAL_FATAL(
        dkm_keyring_context(NULL, NULL, pin_a, 32, "swtpm:port=1", "/c1", e), 0);
    CU_ASSERT_EQUAL(strlen(a), DKM_KEYRING_CONTEXT_HEX);
    CU_ASSERT_STRING_NOT_EQUAL(a, b);
    CU_ASSERT_STRING_NOT_EQUAL(a, c);
    CU_ASSERT_STRING_NOT_EQUAL(a, d);
    CU_ASSERT_STRING_EQUAL(a, e);
}

/* ---- against the kernel, under this process's keyring ------------------ */

static struct dkm_keyring *open_ring(const char *context)
{
    struct dkm_keyring *kr = NULL;

    CU_ASSERT_EQUAL_FATAL(
        dkm_keyring_open(KEY_SPEC_PROCESS_KEYRING, context, NULL, NULL, &kr), 0);
    return kr;
}

static const char ctx1[] = "0123456789abcdef", ctx2[] = "fedcba9876543210";

static void test_ring_keep_and_find(void)
{
    struct dkm_keyring *kr = open_ring(ctx1);
    struct dkm_keyring_entry e = sample("web", 3), got;
    void *secret = NULL;
    char desc[200];
    key_serial_t id;
    long n;

    CU_ASSERT_EQUAL(dkm_keyring_get(kr, "web", 3, &secret, &got), -ENOENT);
    CU_ASSERT_EQUAL_FATAL(dkm_keyring_put(kr, &e, (uint64_t)time(NULL)), 0);
    CU_ASSERT_EQUAL_FATAL(dkm_keyring_get(kr, "web", 3, &secret, &got), 0);
    CU_ASSERT_EQUAL(got.key_len, 32);
    CU_ASSERT_PTR_EQUAL(got.key, secret);
    CU_ASSERT_TRUE(dkm_secmem_contains(secret));
    CU_ASSERT_EQUAL(memcmp(secret, key32, 32), 0);
    dkm_secmem_free(secret);
    CU_ASSERT_EQUAL(dkm_keyring_get(kr, "web", 4, &secret, &got), -ENOENT);

    /* The key: a user key, possessor and user only, with a timeout. */
    id = (key_serial_t)keyctl_search(KEY_SPEC_PROCESS_KEYRING, "user",
                                     "dkm:0123456789abcdef:web/3", 0);
    CU_ASSERT_FATAL(id > 0);
    n = keyctl_describe(id, desc, sizeof(desc));
    CU_ASSERT_FATAL(n > 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(desc, ";3f3f0000;dkm:0123456789abcdef:web/3"));
    dkm_keyring_close(kr);
}

static void test_ring_current(void)
{
    struct dkm_keyring *kr = open_ring(ctx1);
    uint32_t v = 0;

    CU_ASSERT_EQUAL(dkm_keyring_get_current(kr, "cur", &v), -ENOENT);
    CU_ASSERT_EQUAL_FATAL(dkm_keyring_put_current(kr, "cur", 5, 1), 0);
    CU_ASSERT_EQUAL_FATAL(dkm_keyring_get_current(kr, "cur", &v), 0);
    CU_ASSERT_EQUAL(v, 5);
    /* Its own short timeout: gone after it. */
    sleep(2);
    CU_ASSERT_EQUAL(dkm_keyring_get_current(kr, "cur", &v), -ENOENT);
    dkm_keyring_close(kr);
}

static void test_ring_timeout(void)
{
    struct dkm_keyring *kr = open_ring(ctx1);
    uint64_t now = (uint64_t)time(NULL);
    struct dkm_keyring_entry e = sample("short", 1), got;
    void *secret = NULL;

    e.cached_until = now + 1;
    CU_ASSERT_EQUAL_FATAL(dkm_keyring_put(kr, &e, now), 0);
    e.cached_until = now;
    CU_ASSERT_EQUAL(dkm_keyring_put(kr, &e, now), -EINVAL); /* already past */
    sleep(2);
    CU_ASSERT_EQUAL(dkm_keyring_get(kr, "short", 1, &secret, &got), -ENOENT);
    dkm_keyring_close(kr);
}

/* A payload of the wrong size or format in dkm's keyring is refused,
 * invalidated and never used. */
static void test_ring_planted_payload_refused(void)
{
    static const struct {
        const char *payload;
        size_t len;
    } planted[] = {
        {"not a dkm payload", 17},
        {"DKKY\0\2", 6},
    };
    struct dkm_keyring *kr = open_ring(ctx1);
    struct dkm_keyring_entry got;
    key_serial_t ring, id;
    void *secret = NULL;
    char big[DKM_KEYRING_PAYLOAD_MAX + 10];

    ring = (key_serial_t)keyctl_search(KEY_SPEC_PROCESS_KEYRING, "keyring",
                                       DKM_KEYRING_NAME, 0);
    CU_ASSERT_FATAL(ring > 0);
    for (size_t i = 0; i < sizeof(planted) / sizeof(planted[0]); i++) {
        id = add_key("user", "dkm:0123456789abcdef:planted/1", planted[i].payload,
                     planted[i].len, ring);
        CU_ASSERT_FATAL(id > 0);
        CU_ASSERT_EQUAL(dkm_keyring_get(kr, "planted", 1, &secret, &got), -ENOENT);
        CU_ASSERT_EQUAL(keyctl_search(ring, "user", "dkm:0123456789abcdef:planted/1", 0),
                        -1); /* invalidated */
    }
    memset(big, 'A', sizeof(big));
    id = add_key("user", "dkm:0123456789abcdef:planted/1", big, sizeof(big), ring);
    CU_ASSERT_FATAL(id > 0);
    CU_ASSERT_EQUAL(dkm_keyring_get(kr, "planted", 1, &secret, &got), -ENOENT);
    /* A valid payload of another version under this description. */
    {
        struct dkm_keyring_entry e = sample("planted", 2);
        uint8_t buf[DKM_KEYRING_PAYLOAD_MAX];
        size_t len = encode(&e, buf, sizeof(buf));

        id = add_key("user", "dkm:0123456789abcdef:planted/1", buf, len, ring);
        CU_ASSERT_FATAL(id > 0);
        CU_ASSERT_EQUAL(dkm_keyring_get(kr, "planted", 1, &secret, &got), -ENOENT);
    }
    id = add_key("user", "dkm:0123456789abcdef:planted/current", "junk", 4, ring);
    CU_ASSERT_FATAL(id > 0);
    {
        uint32_t v = 0;

        CU_ASSERT_EQUAL(dkm_keyring_get_current(kr, "planted", &v), -ENOENT);
    }
    dkm_keyring_close(kr);
}

struct seen {
    size_t n;
    bool saw_key;
    char groups[256];
};

static int list_fn(void *arg, const struct dkm_keyring_entry *e)
{
    struct seen *s = arg;

    s->n++;
    s->saw_key = s->saw_key || e->key != NULL || e->key_len != 0;
    strncat(s->groups, e->group, sizeof(s->groups) - strlen(s->groups) - 2);
    strcat(s->groups, " ");
    return 0;
}

static void test_ring_list_flush_and_contexts(void)
{
    struct dkm_keyring *a = open_ring(ctx1), *b = open_ring(ctx2);
    uint64_t now = (uint64_t)time(NULL);
    struct dkm_keyring_entry e;
    struct seen s = {0};
    size_t n = 0;
    void *secret = NULL;
    struct dkm_keyring_entry got;

    CU_ASSERT_EQUAL_FATAL(dkm_keyring_flush(a, NULL, NULL), 0);
    e = sample("alpha", 1);
    CU_ASSERT_EQUAL_FATAL(dkm_keyring_put(a, &e, now), 0);
    e = sample("alpha", 2);
    CU_ASSERT_EQUAL_FATAL(dkm_keyring_put(a, &e, now), 0);
    e = sample("beta", 1);
    CU_ASSERT_EQUAL_FATAL(dkm_keyring_put(a, &e, now), 0);
    CU_ASSERT_EQUAL_FATAL(dkm_keyring_put_current(a, "alpha", 2, 10), 0);
    e = sample("alpha", 1);
    CU_ASSERT_EQUAL_FATAL(dkm_keyring_put(b, &e, now), 0);

    /* Another context never sees these. */
    CU_ASSERT_EQUAL(dkm_keyring_get(b, "beta", 1, &secret, &got), -ENOENT);

    CU_ASSERT_EQUAL_FATAL(dkm_keyring_list(a, list_fn, &s), 0);
    CU_ASSERT_EQUAL(s.n, 3);
    CU_ASSERT_FALSE(s.saw_key);
    CU_ASSERT_PTR_NOT_NULL(strstr(s.groups, "beta"));

    CU_ASSERT_EQUAL_FATAL(dkm_keyring_flush(a, "alpha", &n), 0);
    CU_ASSERT_EQUAL(n, 3); /* two versions and the current one */
    memset(&s, 0, sizeof(s));
    CU_ASSERT_EQUAL_FATAL(dkm_keyring_list(a, list_fn, &s), 0);
    CU_ASSERT_EQUAL(s.n, 1);
    CU_ASSERT_STRING_EQUAL(s.groups, "beta ");
    /* ... and b's alpha/1 is untouched. */
    CU_ASSERT_EQUAL_FATAL(dkm_keyring_get(b, "alpha", 1, &secret, &got), 0);
    dkm_secmem_free(secret);
    CU_ASSERT_EQUAL_FATAL(dkm_keyring_flush(a, NULL, &n), 0);
    CU_ASSERT_EQUAL(n, 1);
    dkm_keyring_close(a);
    dkm_keyring_close(b);
}

static void test_ring_open_refuses_bad_context(void)
{
    static const char shortctx[DKM_KEYRING_CONTEXT_HEX + 1] = "short";
    struct dkm_keyring *kr = NULL;

    CU_ASSERT_EQUAL(dkm_keyring_open(KEY_SPEC_PROCESS_KEYRING, shortctx, NULL, NULL, &kr),
                    -EINVAL);
    /* A keyring id that does not exist: the kernel refuses, -EOPNOTSUPP. */
    CU_ASSERT_EQUAL(dkm_keyring_open(0x7ffffff0, ctx1, NULL, NULL, &kr), -EOPNOTSUPP);
}

static CU_TestInfo payload_tests[] = {
    {"test_payload_round_trip", test_payload_round_trip},
    {"test_key_id_known_answer", test_key_id_known_answer},
    {"test_payload_every_truncation", test_payload_every_truncation},
    {"test_payload_trailing_and_oversize", test_payload_trailing_and_oversize},
    {"test_payload_every_field", test_payload_every_field},
    {"test_payload_encode_refuses", test_payload_encode_refuses},
    {"test_current_payload", test_current_payload},
    {"test_context_separates", test_context_separates},
    CU_TEST_INFO_NULL,
};

static CU_TestInfo ring_tests[] = {
    {"test_ring_keep_and_find", test_ring_keep_and_find},
    {"test_ring_current", test_ring_current},
    {"test_ring_timeout", test_ring_timeout},
    {"test_ring_planted_payload_refused", test_ring_planted_payload_refused},
    {"test_ring_list_flush_and_contexts", test_ring_list_flush_and_contexts},
    {"test_ring_open_refuses_bad_context", test_ring_open_refuses_bad_context},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {"payload", NULL, NULL, NULL, NULL, payload_tests},
    {"ring", NULL, NULL, NULL, NULL, ring_tests},
    CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv)
{
    return dkm_test_main(argc, argv, suites);
}
