/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Import blobs already built, per snapshot: the answer to a fetch of
 * version V by node N carries the key of V sealed to N's EK, which does
 * not depend on the request (the nonce and issue time live in the signed
 * response around it). Sealing is most of a fetch's cost (an ephemeral
 * ECDH and two KDFs), so the first fetch of (N, V) in a snapshot seals and
 * every later one reuses the blob; a new snapshot (any change) starts
 * empty.
 *
 * A blob is not secret: only N's TPM can import it, and it crosses the
 * network in every answer. Entries are immutable once published and live
 * as long as the snapshot, so readers take no lock: buckets are lists
 * that only ever grow at the head, by compare-and-swap. Two threads
 * sealing the same pair at once both insert; either blob is valid.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "blobcache.h"

struct blob_entry {
    struct blob_entry *next;
    const void *version; /* a struct ks_version of the owning snapshot */
    size_t node;         /* index of the node in that snapshot */
    size_t len;
    uint8_t blob[];
};

struct ks_blobcache {
    size_t nbuckets; /* a power of two */
    atomic_size_t count;
    atomic_size_t bytes;
    _Atomic(struct blob_entry *) buckets[];
};

static size_t bucket_of(const struct ks_blobcache *c, const void *version, size_t node)
{
    uint64_t h = (uint64_t)(uintptr_t)version * 0x9e3779b97f4a7c15ull ^
                 (uint64_t)node * 0xc2b2ae3d27d4eb4full;

    h ^= h >> 29;
    return (size_t)h & (c->nbuckets - 1);
}

int ks_blobcache_new(size_t expected, struct ks_blobcache **ret)
{
    struct ks_blobcache *c;
    size_t n = 64;

    while (n < expected && n < KS_BLOBCACHE_MAX)
        n <<= 1;
    c = calloc(1, sizeof(*c) + n * sizeof(c->buckets[0]));
    if (c == NULL)
        return -ENOMEM;
    c->nbuckets = n;
    for (size_t i = 0; i < n; i++)
        atomic_init(&c->buckets[i], NULL);
    atomic_init(&c->count, 0);
    atomic_init(&c->bytes, 0);
    *ret = c;
    return 0;
}

void ks_blobcache_free(struct ks_blobcache *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->nbuckets; i++) {
        struct blob_entry *e = atomic_load(&c->buckets[i]);

        while (e != NULL) {
            struct blob_entry *next = e->next;

            free(e);
            e = next;
        }
    }
    free(c);
}

const uint8_t *ks_blobcache_get(struct ks_blobcache *c, const void *version, size_t node,
                                size_t *ret_len)
{
    const struct blob_entry *e;

    if (c == NULL)
        return NULL;
    e = atomic_load_explicit(&c->buckets[bucket_of(c, version, node)],
                             memory_order_acquire);
    for (; e != NULL; e = e->next) {
        if (e->version == version && e->node == node) {
            *ret_len = e->len;
            return e->blob;
        }
    }
    return NULL;
}

void ks_blobcache_put(struct ks_blobcache *c, const void *version, size_t node,
                      const uint8_t *blob, size_t len)
{
    _Atomic(struct blob_entry *) *head;
    struct blob_entry *e;

    /* Full: answers still work, they just seal every time. */
    if (c == NULL || atomic_load(&c->count) >= KS_BLOBCACHE_MAX)
        return;
    e = malloc(sizeof(*e) + len);
    if (e == NULL)
        return;
    e->version = version;
    e->node = node;
    e->len = len;
    memcpy(e->blob, blob, len);
    head = &c->buckets[bucket_of(c, version, node)];
    e->next = atomic_load_explicit(head, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(head, &e->next, e, memory_order_release,
                                                  memory_order_relaxed))
        ;
    atomic_fetch_add(&c->count, 1);
    atomic_fetch_add(&c->bytes, len);
}

void ks_blobcache_size(const struct ks_blobcache *c, size_t *ret_count, size_t *ret_bytes)
{
    *ret_count = c != NULL ? atomic_load(&c->count) : 0;
    *ret_bytes = c != NULL ? atomic_load(&c->bytes) : 0;
}
