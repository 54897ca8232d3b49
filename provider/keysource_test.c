/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The "test" key source: deterministic keys for tests, compiled only into
 * the test build of the module (DKM_TEST_KEYSOURCE), never installed.
 *
 * Setting test_keys (or DKM_TEST_KEYS) lists the groups:
 *     GROUP:MAXVERSION[:EXPIRED[+EXPIRED...]][,GROUP:...]
 * e.g. "g:3:1,h:1": group g has versions 1..3 (3 is current, 1 expired),
 * group h has version 1. The key of GROUP/V is
 *     HMAC-SHA256(seed, "dkm-test-key" || 0 || GROUP || 0 || V as u32 big-endian)
 * with the seed from test_seed (DKM_TEST_SEED, default "dkm-test-seed"),
 * and the policy TTL from test_ttl (DKM_TEST_TTL, seconds, default 300).
 */
#include "keysource.h"

#ifdef DKM_TEST_KEYSOURCE

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "dkm/base/secmem.h"

#define TEST_GROUPS_MAX 64
#define TEST_EXPIRED_MAX 16
#define TEST_SEED_DEFAULT "dkm-test-seed"
#define TEST_LABEL "dkm-test-key"

struct test_group {
    char name[DKM_GROUP_MAX + 1];
    uint32_t max_version;
    uint32_t expired[TEST_EXPIRED_MAX];
    size_t n_expired;
};

struct test_state {
    OSSL_LIB_CTX *libctx;
    char *seed;
    uint64_t ttl;
    struct test_group groups[TEST_GROUPS_MAX];
    size_t n_groups;
};

static int parse_u32(const char *s, size_t len, uint32_t *ret)
{
    uint64_t v = 0;

    if (len == 0 || len > 10)
        return -EINVAL;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -EINVAL;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v == 0 || v > UINT32_MAX)
        return -EINVAL;
    *ret = (uint32_t)v;
    return 0;
}

/* One "GROUP:MAX[:E+E...]" item of len bytes. */
static int parse_item(const char *s, size_t len, struct test_group *g)
{
    const char *colon = memchr(s, ':', len), *colon2, *end = s + len, *p;

    if (colon == NULL || !dkm_group_valid(s, (size_t)(colon - s)))
        return -EINVAL;
    memcpy(g->name, s, (size_t)(colon - s));
    g->name[colon - s] = '\0';
    colon2 = memchr(colon + 1, ':', (size_t)(end - colon - 1));
    if (parse_u32(colon + 1, (size_t)((colon2 != NULL ? colon2 : end) - colon - 1),
                  &g->max_version) < 0)
        return -EINVAL;
    for (p = colon2 != NULL ? colon2 + 1 : end; p < end;) {
        const char *plus = memchr(p, '+', (size_t)(end - p));
        const char *q = plus != NULL ? plus : end;

        if (g->n_expired == TEST_EXPIRED_MAX ||
            parse_u32(p, (size_t)(q - p), &g->expired[g->n_expired]) < 0)
            return -EINVAL;
        g->n_expired++;
        p = plus != NULL ? plus + 1 : end;
    }
    return 0;
}

static int parse_groups(const char *spec, struct test_state *st)
{
    const char *p = spec;

    while (*p != '\0') {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);

        if (st->n_groups == TEST_GROUPS_MAX ||
            parse_item(p, len, &st->groups[st->n_groups]) < 0)
            return dkm_error_set(DKM_E_CONFIG,
                                 "test_keys: expected GROUP:MAXVERSION[:EXPIRED+...] "
                                 "items separated by commas, got \"%.*s\"",
                                 (int)len, p);
        st->n_groups++;
        p = comma != NULL ? comma + 1 : p + len;
    }
    return 0;
}

static void test_close(void *state)
{
    struct test_state *st = state;

    if (st == NULL)
        return;
    OPENSSL_clear_free(st->seed, st->seed != NULL ? strlen(st->seed) : 0);
    OPENSSL_free(st);
}

static int test_open(const struct dkm_prov_config *cfg, OSSL_LIB_CTX *libctx,
                     void **ret_state)
{
    struct test_state *st;
    int r;

    st = OPENSSL_zalloc(sizeof(*st));
    if (st == NULL)
        return dkm_error_set(-ENOMEM, "out of memory for the test key source");
    st->libctx = libctx;
    st->ttl = cfg->test_ttl;
    st->seed =
        OPENSSL_strdup(cfg->test_seed != NULL ? cfg->test_seed : TEST_SEED_DEFAULT);
    if (st->seed == NULL) {
        r = dkm_error_set(-ENOMEM, "out of memory for the test key source");
        goto fail;
    }
    r = parse_groups(cfg->test_keys != NULL ? cfg->test_keys : "", st);
    if (r < 0)
        goto fail;
    *ret_state = st;
    return 0;
fail:
    test_close(st);
    return r;
}

static const struct test_group *find_group(const struct test_state *st, const char *group)
{
    for (size_t i = 0; i < st->n_groups; i++) {
        if (strcmp(st->groups[i].name, group) == 0)
            return &st->groups[i];
    }
    return NULL;
}

static int test_resolve(void *state, const char *group, uint32_t version, uint8_t *key,
                        struct dkm_key_info *ret_info)
{
    const struct test_state *st = state;
    const struct test_group *g = find_group(st, group);
    uint8_t data[sizeof(TEST_LABEL) + DKM_GROUP_MAX + 1 + 4];
    uint8_t mac[EVP_MAX_MD_SIZE];
    struct dkm_key_info info = {0};
    size_t glen, n = 0, len = 0;

    if (g == NULL)
        return dkm_error_set(-ENOENT, "group \"%s\" is not available to this node",
                             group);
    if (version == DKM_VERSION_CURRENT)
        version = g->max_version;
    if (version > g->max_version)
        return dkm_error_set(-ENOENT, "group \"%s\" has no version %u (current is %u)",
                             group, version, g->max_version);
    for (size_t i = 0; i < g->n_expired; i++) {
        if (g->expired[i] == version)
            return dkm_error_set(DKM_E_EXPIRED, "key version %s/%u has expired", group,
                                 version);
    }
    glen = strlen(group);
    memcpy(data, TEST_LABEL, sizeof(TEST_LABEL)); /* with its NUL */
    n = sizeof(TEST_LABEL);
    memcpy(data + n, group, glen + 1);
    n += glen + 1;
    data[n++] = (uint8_t)(version >> 24);
    data[n++] = (uint8_t)(version >> 16);
    data[n++] = (uint8_t)(version >> 8);
    data[n++] = (uint8_t)version;
    if (EVP_Q_mac(st->libctx, "HMAC", DKM_PRIVATE_PROPQ, "SHA256", NULL, st->seed,
                  strlen(st->seed), data, n, mac, sizeof(mac), &len) == NULL ||
        len < DKM_KEY_LEN)
        return dkm_error_set(DKM_E_CRYPTO, "HMAC-SHA256 is not available");
    memcpy(key, mac, DKM_KEY_LEN);
    dkm_memzero(mac, sizeof(mac));
    info.version = version;
    info.current_version = g->max_version;
    info.not_after = 0;
    info.ttl = st->ttl;
    snprintf(info.policy, sizeof(info.policy), "test key source, cache ttl %llus",
             (unsigned long long)st->ttl);
    *ret_info = info;
    return 0;
}

static int test_list(void *state, int (*fn)(void *arg, const char *group), void *arg)
{
    const struct test_state *st = state;
    int r;

    for (size_t i = 0; i < st->n_groups; i++) {
        r = fn(arg, st->groups[i].name);
        if (r < 0)
            return r;
    }
    return 0;
}

const struct dkm_keysource_ops dkm_keysource_test = {
    .name = DKM_KEYSOURCE_TEST,
    .open = test_open,
    .close = test_close,
    .resolve = test_resolve,
    .list_groups = test_list,
};

#endif
