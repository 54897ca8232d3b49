/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The "service" key source: keys from dkmd through the service client
 * (include/dkm/client/client.h): the server lists from the pinned trust, a
 * signed fetch answer made for this node's TPM, import and unseal with
 * that TPM into secure memory, and the node's disk cache, which also
 * serves keys (never past their expiry) while no service URL answers.
 *
 * One client per provider context, so one TPM context with its lock:
 * fetches are serialized, which costs nothing on the hot path because the
 * key cache in front (keycache.c) keeps each key for its policy's TTL.
 * Groups are listed by the service for a node with a bound TLS client
 * key (GET /v1/keys/groups), else, or while no URL answers, from the disk
 * cache.
 */
#include "keysource.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "dkm/client/client.h"
#include "dkm/base/log.h"
#include "dkm/trust/records.h"

/* Groups whose current version the key source remembers. */
#define CURRENT_MAX 64

struct current_seen {
    char group[DKM_GROUP_MAX + 1];
    uint32_t version;
};

struct service_state {
    const struct dkm_prov_config *cfg; /* outlives the key source */
    struct dkm_client *client;
    /* The last answer about each group's "current", so that a lookup of a
     * given version can say which one is current (0: not known yet). */
    pthread_mutex_t lock;
    struct current_seen current[CURRENT_MAX];
    size_t n_current;
};

static uint32_t current_get(struct service_state *st, const char *group)
{
    uint32_t v = 0;

    pthread_mutex_lock(&st->lock);
    for (size_t i = 0; i < st->n_current; i++) {
        if (strcmp(st->current[i].group, group) == 0)
            v = st->current[i].version;
    }
    pthread_mutex_unlock(&st->lock);
    return v;
}

static void current_set(struct service_state *st, const char *group, uint32_t version)
{
    size_t i;

    pthread_mutex_lock(&st->lock);
    for (i = 0; i < st->n_current; i++) {
        if (strcmp(st->current[i].group, group) == 0)
            break;
    }
    if (i == st->n_current && st->n_current < CURRENT_MAX)
        st->n_current++;
    if (i < st->n_current) {
        snprintf(st->current[i].group, sizeof(st->current[i].group), "%s", group);
        st->current[i].version = version;
    }
    pthread_mutex_unlock(&st->lock);
}

static int service_open(const struct dkm_prov_config *cfg, OSSL_LIB_CTX *libctx,
                        void **ret_state)
{
    struct dkm_client_config cc = {
        .service = cfg->service,
        .trust = cfg->trust,
        .tcti = cfg->tcti,
        .cache_dir = cfg->cache_dir,
        .tls_key = cfg->tls_key,
        .tls_cert = cfg->tls_cert,
        .propq = DKM_PRIVATE_PROPQ,
        .key_cache = cfg->key_cache,
    };
    struct service_state *st;
    int r;

    st = OPENSSL_zalloc(sizeof(*st));
    if (st == NULL)
        return dkm_error_set(-ENOMEM, "out of memory for the key source");
    st->cfg = cfg;
    if (pthread_mutex_init(&st->lock, NULL) != 0) {
        OPENSSL_free(st);
        return dkm_error_set(-ENOMEM, "cannot create the key source lock");
    }
    /* Nothing is contacted here: the module loads (and describes itself)
     * with the service down or not configured. */
    r = dkm_client_new(&cc, libctx, /* tpm= */ NULL, &st->client);
    if (r < 0) {
        pthread_mutex_destroy(&st->lock);
        OPENSSL_free(st);
        return r;
    }
    *ret_state = st;
    return 0;
}

static void service_close(void *state)
{
    struct service_state *st = state;

    if (st == NULL)
        return;
    dkm_client_free(st->client);
    pthread_mutex_destroy(&st->lock);
    OPENSSL_free(st);
}

static int service_resolve(void *state, const char *group, uint32_t version, uint8_t *key,
                           struct dkm_key_info *ret_info)
{
    struct service_state *st = state;
    struct dkm_client_key k = {0};
    struct dkm_key_info info = {0};
    int r;

    if (st->cfg->service == NULL && st->cfg->cache_dir == NULL)
        return dkm_error_set(-ENOSYS, "no key service configured: set `service` in the "
                                      "provider's section or DKM_SERVICE");
    r = dkm_client_fetch(st->client, group, version, &k);
    if (r < 0)
        goto done;
    if (k.key_len != DKM_KEY_LEN || k.policy.algorithm != DKM_ALG_AES_256_GCM) {
        r = dkm_error_set(DKM_E_PROTOCOL,
                          "key %s/%u is not an AES-256-GCM key (%zu bytes, algorithm %u)",
                          group, k.version, k.key_len, k.policy.algorithm);
        goto done;
    }
    memcpy(key, k.key, DKM_KEY_LEN);
    info.version = k.version;
    /* Only an answer about "current" says which version is current. */
    if (version == DKM_VERSION_CURRENT && !k.from_cache)
        current_set(st, group, k.version);
    info.current_version =
        version == DKM_VERSION_CURRENT ? k.version : current_get(st, group);
    info.not_after = k.expires_at;
    /* What is left of the cache time (all of it, unless the key came from
     * the kernel keyring, where it was kept earlier). */
    info.ttl = k.cached_until > dkm_now() ? k.cached_until - dkm_now() : 0;
    snprintf(info.policy, sizeof(info.policy), "dkmd policy serial %u, cache ttl %us%s%s",
             k.policy.serial, k.policy.cache_ttl,
             k.policy.pcr_mask != 0 ? ", sealed to PCRs" : "",
             k.from_cache     ? ", from the disk cache"
             : k.from_keyring ? ", from the kernel keyring"
                              : "");
    *ret_info = info;
    r = 0;
done:
    dkm_client_key_clear(&k);
    return r;
}

static int service_list(void *state, int (*fn)(void *arg, const char *group), void *arg)
{
    struct service_state *st = state;

    return dkm_client_groups(st->client, fn, arg);
}

const struct dkm_keysource_ops dkm_keysource_service = {
    .name = DKM_KEYSOURCE_SERVICE,
    .open = service_open,
    .close = service_close,
    .resolve = service_resolve,
    .list_groups = service_list,
};
