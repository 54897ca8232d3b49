/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The provider's key cache: a short list of resolved key versions in
 * secure memory, shared by all threads under one mutex. The key source is
 * called without the lock held, so a slow fetch (network, TPM) blocks
 * only the threads that need that key; if two threads resolve the same
 * key at once, both answers are valid and the later one simply joins the
 * list. Stale entries (past the policy TTL or the version's expiry) are
 * dropped on the next lookup; their bytes are wiped when the last
 * operation using them lets go.
 */
#include "keysource.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "dkm/base/codec.h"
#include "dkm/base/log.h"
#include "dkm/base/secmem.h"
#include "dkm/client/keyring.h"

struct entry {
    struct entry *next;
    struct dkm_key *key;
};

struct dkm_keycache {
    const struct dkm_keysource_ops *ops;
    void *state;
    OSSL_LIB_CTX *libctx;
    pthread_mutex_t lock;
    struct entry *head;
    pid_t pid; /* process the entries belong to */
};

uint64_t dkm_now(void)
{
    return (uint64_t)time(NULL);
}

struct dkm_key *dkm_key_ref(struct dkm_key *k)
{
    if (k != NULL)
        __atomic_fetch_add(&k->refs, 1, __ATOMIC_RELAXED);
    return k;
}

void dkm_key_unref(struct dkm_key *k)
{
    if (k == NULL || __atomic_sub_fetch(&k->refs, 1, __ATOMIC_ACQ_REL) != 0)
        return;
    dkm_secmem_free(k->bytes);
    OPENSSL_clear_free(k, sizeof(*k));
}

bool dkm_key_fresh(const struct dkm_key *k)
{
    uint64_t now = dkm_now();

    return now < k->cache_until && (k->info.not_after == 0 || now < k->info.not_after);
}

int dkm_keycache_new(const struct dkm_keysource_ops *ops, void *state,
                     OSSL_LIB_CTX *libctx, struct dkm_keycache **ret)
{
    struct dkm_keycache *c;

    c = OPENSSL_zalloc(sizeof(*c));
    if (c == NULL)
        return dkm_error_set(-ENOMEM, "out of memory for the key cache");
    if (pthread_mutex_init(&c->lock, NULL) != 0) {
        OPENSSL_free(c);
        return dkm_error_set(-ENOMEM, "cannot create the key cache lock");
    }
    c->ops = ops;
    c->state = state;
    c->libctx = libctx;
    c->pid = getpid();
    *ret = c;
    return 0;
}

void dkm_keycache_free(struct dkm_keycache *c)
{
    struct entry *e, *next;

    if (c == NULL)
        return;
    for (e = c->head; e != NULL; e = next) {
        next = e->next;
        dkm_key_unref(e->key);
        OPENSSL_free(e);
    }
    if (c->ops != NULL && c->ops->close != NULL)
        c->ops->close(c->state);
    pthread_mutex_destroy(&c->lock);
    OPENSSL_free(c);
}

/* Drop stale entries; caller holds the lock. */
static void sweep_locked(struct dkm_keycache *c)
{
    struct entry **pp = &c->head, *e;

    while ((e = *pp) != NULL) {
        if (dkm_key_fresh(e->key)) {
            pp = &e->next;
            continue;
        }
        *pp = e->next;
        log_debug("key cache: dropping %s/%u", e->key->group, e->key->info.version);
        dkm_key_unref(e->key);
        OPENSSL_free(e);
    }
}

static struct dkm_key *lookup_locked(struct dkm_keycache *c, const char *group,
                                     uint32_t version)
{
    for (struct entry *e = c->head; e != NULL; e = e->next) {
        struct dkm_key *k = e->key;

        if (strcmp(k->group, group) != 0)
            continue;
        if (version == DKM_VERSION_CURRENT ? k->current : k->info.version == version)
            return k;
    }
    return NULL;
}

/* The key id dkmctl and the keyring show: hex of 8 bytes of
 * HMAC-SHA256(key, "dkm-key-id"). */
static int key_id(OSSL_LIB_CTX *libctx, const uint8_t *key, char out[17])
{
    uint8_t id[DKM_KEYRING_KEY_ID_SIZE];
    int r;

    r = dkm_keyring_key_id(libctx, DKM_PRIVATE_PROPQ, key, DKM_KEY_LEN, id);
    if (r < 0)
        return r;
    return dkm_hex_encode(id, sizeof(id), out, 17);
}

/* Resolve through the key source into a new entry with one reference. */
static int resolve(struct dkm_keycache *c, const char *group, uint32_t version,
                   struct dkm_key **ret)
{
    struct dkm_key *k = NULL;
    uint64_t now = dkm_now();
    void *bytes = NULL;
    int r;

    k = OPENSSL_zalloc(sizeof(*k));
    if (k == NULL) {
        r = dkm_error_set(-ENOMEM, "out of memory for a key cache entry");
        goto done;
    }
    k->refs = 1;
    r = dkm_secmem_alloc(DKM_KEY_LEN, &bytes);
    if (r < 0)
        goto done;
    k->bytes = bytes;
    strcpy(k->group, group);
    r = c->ops->resolve(c->state, group, version, k->bytes, &k->info);
    if (r < 0)
        goto done;
    if (k->info.version == 0 ||
        (version != DKM_VERSION_CURRENT && k->info.version != version)) {
        r = dkm_error_set(DKM_E_PROTOCOL, "key source answered %s/%u with version %u",
                          group, version, k->info.version);
        goto done;
    }
    if (k->info.not_after != 0 && now >= k->info.not_after) {
        r = dkm_error_set(DKM_E_EXPIRED, "key version %s/%u has expired", group,
                          k->info.version);
        goto done;
    }
    r = key_id(c->libctx, k->bytes, k->key_id);
    if (r < 0)
        goto done;
    k->cache_until = now + k->info.ttl;
    if (k->info.not_after != 0 && k->info.not_after < k->cache_until)
        k->cache_until = k->info.not_after;
    k->current = version == DKM_VERSION_CURRENT;
    *ret = k;
    k = NULL;
    r = 0;
done:
    dkm_key_unref(k);
    return r;
}

int dkm_keycache_get(struct dkm_keycache *c, const char *group, uint32_t version,
                     struct dkm_key **ret)
{
    struct dkm_key *k = NULL;
    struct entry *e = NULL;
    int r;

    if (c == NULL || group == NULL || !dkm_group_valid(group, strlen(group)))
        return dkm_error_set(-EINVAL, "invalid key lookup");
    pthread_mutex_lock(&c->lock);
    if (c->pid != getpid()) {
        /*
         * A forked child: secure memory is wiped (or unmapped) in a child,
         * so the cached keys are gone. Drop them all and resolve afresh
         * rather than encrypt under zeros.
         */
        struct entry *e2, *next;

        for (e2 = c->head; e2 != NULL; e2 = next) {
            next = e2->next;
            dkm_key_unref(e2->key);
            OPENSSL_free(e2);
        }
        c->head = NULL;
        c->pid = getpid();
    }
    sweep_locked(c);
    k = dkm_key_ref(lookup_locked(c, group, version));
    pthread_mutex_unlock(&c->lock);
    if (k != NULL)
        goto found;

    r = resolve(c, group, version, &k);
    if (r < 0)
        return r;
    if (!dkm_key_fresh(k))
        goto found; /* TTL 0: used by this operation only, never cached */
    e = OPENSSL_zalloc(sizeof(*e));
    if (e == NULL) {
        dkm_key_unref(k);
        return dkm_error_set(-ENOMEM, "out of memory for a key cache entry");
    }
    e->key = dkm_key_ref(k);
    pthread_mutex_lock(&c->lock);
    if (k->current) {
        /* A newer answer about "current" replaces older ones. */
        for (struct entry *o = c->head; o != NULL; o = o->next) {
            if (strcmp(o->key->group, group) == 0)
                o->key->current = false;
        }
    }
    e->next = c->head;
    c->head = e;
    pthread_mutex_unlock(&c->lock);
found:
    *ret = k;
    return 0;
}

int dkm_keycache_list(struct dkm_keycache *c, int (*fn)(void *arg, const char *group),
                      void *arg)
{
    if (c == NULL || fn == NULL)
        return dkm_error_set(-EINVAL, "invalid group listing");
    return c->ops->list_groups(c->state, fn, arg);
}
