/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of dkmd's per-snapshot import-blob cache: a hit returns exactly
 * the bytes put for that (version, node) and nothing for any other pair,
 * sizes are counted, the cap is respected, and concurrent readers and
 * writers on shared buckets never see a wrong or torn blob.
 */
#include <pthread.h>
#include <string.h>

#include "blobcache.h"
#include "state.h"
#include "unit.h"

static void fill(uint8_t *b, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++)
        b[i] = (uint8_t)(seed * 131u + i * 7u);
}

static void test_svc_blobcache_hits_and_misses(void)
{
    struct ks_blobcache *c = NULL;
    struct ks_version v[3];
    uint8_t a[400], b[300];
    const uint8_t *got;
    size_t len = 0, count = 9, bytes = 9;

    CU_ASSERT_EQUAL_FATAL(ks_blobcache_new(4, &c), 0);
    fill(a, sizeof(a), 1);
    fill(b, sizeof(b), 2);
    CU_ASSERT_PTR_NULL(ks_blobcache_get(c, &v[0], 0, &len));
    ks_blobcache_put(c, &v[0], 0, a, sizeof(a));
    ks_blobcache_put(c, &v[0], 1, b, sizeof(b));
    got = ks_blobcache_get(c, &v[0], 0, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(got);
    CU_ASSERT_EQUAL(len, sizeof(a));
    CU_ASSERT_EQUAL(memcmp(got, a, sizeof(a)), 0);
    got = ks_blobcache_get(c, &v[0], 1, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(got);
    CU_ASSERT_EQUAL(len, sizeof(b));
    CU_ASSERT_EQUAL(memcmp(got, b, sizeof(b)), 0);
    /* Same node, other version; same version, other node. */
    CU_ASSERT_PTR_NULL(ks_blobcache_get(c, &v[1], 0, &len));
    CU_ASSERT_PTR_NULL(ks_blobcache_get(c, &v[0], 2, &len));
    CU_ASSERT_PTR_NULL(ks_blobcache_get(c, &v[2], 1, &len));
    ks_blobcache_size(c, &count, &bytes);
    CU_ASSERT_EQUAL(count, 2);
    CU_ASSERT_EQUAL(bytes, sizeof(a) + sizeof(b));
    ks_blobcache_free(c);
    /* A snapshot without a cache (NULL) misses and ignores puts. */
    CU_ASSERT_PTR_NULL(ks_blobcache_get(NULL, &v[0], 0, &len));
    ks_blobcache_put(NULL, &v[0], 0, a, sizeof(a));
    ks_blobcache_size(NULL, &count, &bytes);
    CU_ASSERT_EQUAL(count, 0);
    CU_ASSERT_EQUAL(bytes, 0);
    ks_blobcache_free(NULL);
}

static void test_svc_blobcache_cap(void)
{
    struct ks_blobcache *c = NULL;
    struct ks_version v;
    uint8_t x = 42;
    size_t len = 0, count = 0, bytes = 0;

    CU_ASSERT_EQUAL_FATAL(ks_blobcache_new(0, &c), 0);
    for (size_t i = 0; i < KS_BLOBCACHE_MAX + 10; i++)
        ks_blobcache_put(c, &v, i, &x, 1);
    ks_blobcache_size(c, &count, &bytes);
    CU_ASSERT_EQUAL(count, KS_BLOBCACHE_MAX);
    CU_ASSERT_PTR_NOT_NULL(ks_blobcache_get(c, &v, KS_BLOBCACHE_MAX - 1, &len));
    CU_ASSERT_PTR_NULL(ks_blobcache_get(c, &v, KS_BLOBCACHE_MAX, &len));
    ks_blobcache_free(c);
}

#define THREADS 4
#define NODES 2000

struct worker {
    struct ks_blobcache *c;
    struct ks_version *v;
    unsigned id;
    unsigned bad;
};

/* Every thread puts and reads every node's blob (the same bytes for a
 * node whoever puts it), so inserts race on every bucket. */
static void *worker_main(void *arg)
{
    struct worker *w = arg;
    uint8_t want[64];

    for (unsigned k = 0; k < NODES; k++) {
        unsigned node = (k + w->id * 509u) % NODES;
        const uint8_t *got;
        size_t len = 0;

        fill(want, sizeof(want), node);
        got = ks_blobcache_get(w->c, w->v, node, &len);
        if (got == NULL) {
            ks_blobcache_put(w->c, w->v, node, want, sizeof(want));
            got = ks_blobcache_get(w->c, w->v, node, &len);
        }
        if (got == NULL || len != sizeof(want) || memcmp(got, want, len) != 0)
            w->bad++;
    }
    return NULL;
}

static void test_svc_blobcache_concurrent(void)
{
    struct ks_blobcache *c = NULL;
    struct ks_version v;
    struct worker w[THREADS];
    pthread_t t[THREADS];
    size_t count = 0, bytes = 0;

    CU_ASSERT_EQUAL_FATAL(ks_blobcache_new(16, &c), 0);
    for (unsigned i = 0; i < THREADS; i++) {
        w[i] = (struct worker){.c = c, .v = &v, .id = i};
        CU_ASSERT_EQUAL_FATAL(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
    }
    for (unsigned i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        CU_ASSERT_EQUAL(w[i].bad, 0);
    }
    /* Racing puts of one pair may both land; never fewer than the pairs. */
    ks_blobcache_size(c, &count, &bytes);
    CU_ASSERT(count >= NODES && count <= (size_t)NODES * THREADS);
    CU_ASSERT_EQUAL(bytes, count * 64);
    ks_blobcache_free(c);
}

static CU_TestInfo blobcache_tests[] = {
    {"test_svc_blobcache_hits_and_misses", test_svc_blobcache_hits_and_misses},
    {"test_svc_blobcache_cap", test_svc_blobcache_cap},
    {"test_svc_blobcache_concurrent", test_svc_blobcache_concurrent},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {"svc_blobcache", NULL, NULL, NULL, NULL, blobcache_tests},
    CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv)
{
    return dkm_test_main(argc, argv, suites);
}
