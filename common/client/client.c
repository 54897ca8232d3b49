/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The dkmd client (include/dkm/client/client.h): its construction from the
 * configuration, the node's TPM and id, the pinned trust chain, and the
 * key fetch with its disk-cache fallback. The transport (TLS, the admin
 * socket, URL failover) is transport.c; the group listings are
 * groups.c.
 *
 * Every answer that matters is a signed record verified against the
 * server list the node pinned, never trusted because of TLS. The verified
 * chain of server lists is kept in the cache directory
 * (common/trust/trust.c; re-verified from the pin on every load): a new process
 * checks answers against it and asks the service for its chain only when
 * an answer does not verify, and cached keys can be checked while the
 * service is unreachable.
 *
 * One mutex serializes the client's operations; the TPM has its own lock
 * and the fetch is off every hot path (the provider caches keys).
 */
#include "dkm/client/client.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>
#include <openssl/ssl.h>

#include "dkm/base/codec.h"
#include "dkm/base/file.h"
#include "diskcache.h"
#include "dkm/tpm/dup.h"
#include "dkm/base/log.h"
#include "dkm/tpm/node.h"
#include "dkm/base/secmem.h"
#include "dkm/tpm/unseal.h"
#include "dkm/base/uri.h"
#include "dkm/client/keyring.h"
#include "internal.h"
#include "dkm/trust/trust.h"

#define FETCH_NONCE_SIZE 32

/* ---- configuration ---- */

static int dup_opt(const char *s, char **ret)
{
    *ret = NULL;
    if (s == NULL)
        return 0;
    *ret = strdup(s);
    return *ret == NULL ? dkm_error_set(-ENOMEM, "out of memory") : 0;
}

static int parse_pin(const char *s, uint8_t out[DKM_FINGERPRINT_SIZE])
{
    size_t n = 0;

    if (strncmp(s, "sha256:", 7) == 0)
        s += 7;
    if (strlen(s) != 2 * DKM_FINGERPRINT_SIZE ||
        dkm_hex_decode(s, strlen(s), out, DKM_FINGERPRINT_SIZE, &n) < 0 ||
        n != DKM_FINGERPRINT_SIZE)
        return dkm_error_set(DKM_E_CONFIG, "trust: expected a SHA-256 fingerprint (64 "
                                           "hex digits, optionally after \"sha256:\")");
    return 0;
}

static int parse_urls(struct dkm_client *c)
{
    const char *p = c->service;

    /* Every segment must be a URL: an empty one (",,", a trailing comma) is
     * a mistake, not something to skip. */
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        int r;

        while (len > 0 && (*p == ' ' || *p == '\t')) {
            p++;
            len--;
        }
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if (c->n_urls == DKM_CLIENT_URLS_MAX)
            return dkm_error_set(DKM_E_CONFIG, "service: more than %d URLs",
                                 DKM_CLIENT_URLS_MAX);
        r = dkm_http_url_parse(p, len, &c->urls[c->n_urls]);
        if (r < 0)
            return dkm_client_rewrap(DKM_E_CONFIG, "service: ");
        c->n_urls++;
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    return 0;
}

int dkm_client_new(const struct dkm_client_config *cfg, OSSL_LIB_CTX *libctx,
                   struct dkm_tpm *tpm, struct dkm_client **ret)
{
    struct dkm_client *c = NULL;
    int r = -ENOMEM;

    c = calloc(1, sizeof(*c));
    if (c == NULL)
        return dkm_error_set(-ENOMEM, "out of memory for the service client");
    if (pthread_mutex_init(&c->lock, NULL) != 0) {
        free(c);
        return dkm_error_set(-ENOMEM, "cannot create the client lock");
    }
    c->libctx = libctx;
    c->tpm = tpm;
    c->timeout_ms =
        cfg->timeout_ms != 0 ? cfg->timeout_ms : DKM_CLIENT_TIMEOUT_DEFAULT_MS;
    if ((r = dup_opt(cfg->service, &c->service)) < 0 ||
        (r = dup_opt(cfg->admin_socket, &c->admin_socket)) < 0 ||
        (r = dup_opt(cfg->tcti, &c->tcti)) < 0 ||
        (r = dup_opt(cfg->cache_dir, &c->cache_dir)) < 0 ||
        (r = dup_opt(cfg->tls_key, &c->tls_key)) < 0 ||
        (r = dup_opt(cfg->tls_cert, &c->tls_cert)) < 0 ||
        (r = dup_opt(cfg->tls_ca, &c->tls_ca)) < 0 ||
        (r = dup_opt(cfg->propq, &c->propq)) < 0)
        goto done;
    if (c->service != NULL && (r = parse_urls(c)) < 0)
        goto done;
    if (cfg->trust != NULL) {
        r = parse_pin(cfg->trust, c->pin);
        if (r < 0)
            goto done;
        c->have_pin = true;
    }
    if ((c->tls_key == NULL) != (c->tls_cert == NULL)) {
        r = dkm_error_set(DKM_E_CONFIG, "tls_key and tls_cert go together");
        goto done;
    }
    if (cfg->key_cache == NULL || strcmp(cfg->key_cache, "keyring") == 0) {
        c->keyring_wanted = true;
    } else if (strcmp(cfg->key_cache, "process") != 0) {
        r = dkm_error_set(DKM_E_CONFIG,
                          "key_cache: expected keyring or process, got "
                          "\"%.32s\"",
                          cfg->key_cache);
        goto done;
    }
    *ret = c;
    c = NULL;
    r = 0;
done:
    dkm_client_free(c);
    return r;
}

void dkm_client_free(struct dkm_client *c)
{
    if (c == NULL)
        return;
    dkm_diskcache_free(c->cache);
    dkm_keyring_close(c->keyring);
    if (c->tpm_owned)
        dkm_tpm_close(c->tpm);
    for (size_t i = 0; i < DKM_CLIENT_URLS_MAX; i++)
        SSL_SESSION_free(c->sessions[i]);
    SSL_CTX_free(c->ssl);
    free(c->service);
    free(c->admin_socket);
    free(c->tcti);
    free(c->cache_dir);
    free(c->tls_key);
    free(c->tls_cert);
    free(c->tls_ca);
    free(c->propq);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

/* ---- TPM, node id, disk cache ---- */

static int tpm_locked(struct dkm_client *c, struct dkm_tpm **ret)
{
    int r;

    if (c->tpm == NULL) {
        r = dkm_tpm_open(c->tcti, &c->tpm);
        if (r < 0)
            return r;
        c->tpm_owned = true;
        c->tpm_pid = getpid();
    }
    *ret = c->tpm;
    return 0;
}

/*
 * In a child after fork(), leave the parent's TPM connection to the parent
 * (two processes talking over one TCTI connection garble both) and open
 * another when needed. The parent's context is deliberately not closed
 * here.
 */
static void forked_locked(struct dkm_client *c)
{
    if (!c->tpm_owned || c->tpm_pid == getpid())
        return;
    c->tpm = NULL;
    c->tpm_owned = false;
}

static int ek_file_path(const struct dkm_client *c, char *buf, size_t size)
{
    if (c->cache_dir == NULL ||
        (size_t)snprintf(buf, size, "%s/%s", c->cache_dir, DKM_NODE_EK_FILE) >= size)
        return -ENOENT;
    return 0;
}

/* The EK an earlier process kept in the cache directory: known to the
 * TPM context with no TPM command. */
static int node_from_file(struct dkm_client *c, struct dkm_tpm *tpm)
{
    char path[4096];
    uint8_t *buf = NULL;
    size_t len = 0;
    enum dkm_ek_type type;
    TPM2B_PUBLIC pub;
    int r;

    r = ek_file_path(c, path, sizeof(path));
    if (r == 0)
        r = dkm_file_read(path, DKM_NODE_EK_FILE_MAX, &buf, &len);
    if (r == 0)
        r = dkm_node_ek_file_decode(buf, len, &type, &pub);
    free(buf);
    if (r == 0)
        r = dkm_tpm_ek_known(tpm, type, &pub);
    if (r == 0)
        r = dkm_node_id_from_public(&pub, &c->node);
    if (r < 0 && r != -ENOENT)
        log_debug("not using %s: %s", path, dkm_error_detail());
    return r;
}

/* Keep a persistent EK's public area for later processes (best effort). */
static void node_to_file(struct dkm_client *c, enum dkm_ek_type type,
                         const TPM2B_PUBLIC *pub)
{
    uint8_t buf[DKM_NODE_EK_FILE_MAX];
    char path[4096];
    size_t len = 0;

    if (ek_file_path(c, path, sizeof(path)) < 0 ||
        (mkdir(c->cache_dir, 0700) < 0 && errno != EEXIST) ||
        dkm_node_ek_file_encode(type, pub, buf, sizeof(buf), &len) < 0 ||
        dkm_file_write(path, buf, len, 0600, /* overwrite= */ true) < 0) {
        log_debug("cannot keep the EK in the cache directory: %s", dkm_error_detail());
        dkm_error_clear();
    }
}

/*
 * After a TPM refused what the kept EK file said (another TPM, a cleared
 * one): forget it, so that the next process reads the EK from the TPM.
 */
static void ek_file_suspect(struct dkm_client *c, int r)
{
    char path[4096];

    if (!c->ek_from_file ||
        (r != DKM_E_TPM && r != DKM_E_TPM_NOT_MINE && r != DKM_E_INTEGRITY) ||
        ek_file_path(c, path, sizeof(path)) < 0)
        return;
    if (unlink(path) == 0)
        log_info("removed %s: the TPM refused the EK it names; the next start reads the "
                 "EK from the TPM",
                 path);
    c->ek_from_file = false;
}

static int node_locked(struct dkm_client *c, struct dkm_node_id *ret)
{
    struct dkm_tpm *tpm;
    enum dkm_ek_type type;
    TPM2B_PUBLIC pub;
    ESYS_TR ek = ESYS_TR_NONE;
    bool transient = true;
    int r;

    if (!c->have_node) {
        r = tpm_locked(c, &tpm);
        if (r < 0)
            return r;
        if (node_from_file(c, tpm) == 0) {
            c->ek_from_file = true;
            c->have_node = true;
            goto done;
        }
        dkm_error_clear();
        r = dkm_node_default_ek_type(tpm, &type);
        if (r < 0)
            return r;
        r = dkm_tpm_ek_load(tpm, type, &ek, &transient, &pub);
        if (r < 0)
            return r;
        dkm_tpm_flush(tpm, &ek);
        r = dkm_node_id_from_public(&pub, &c->node);
        if (r < 0)
            return r;
        /* A transient EK is created again by every process: nothing to keep. */
        if (!transient)
            node_to_file(c, type, &pub);
        c->have_node = true;
    }
done:
    *ret = c->node;
    return 0;
}

int dkm_client_node_id(struct dkm_client *c, struct dkm_node_id *ret)
{
    int r;

    pthread_mutex_lock(&c->lock);
    forked_locked(c);
    r = node_locked(c, ret);
    pthread_mutex_unlock(&c->lock);
    return r;
}

/* Open the disk cache; -ENOENT when none is configured. */
static int cache_locked(struct dkm_client *c, struct dkm_diskcache **ret)
{
    int r;

    if (c->cache_dir == NULL)
        return -ENOENT;
    if (c->cache == NULL) {
        r = dkm_diskcache_open(c->cache_dir, &c->cache);
        if (r < 0)
            return r;
    }
    *ret = c->cache;
    return 0;
}

/* ---- trust (common/trust/trust.c) ---- */

/* The chain kept in cache_dir by this or an earlier process, verified
 * from the pin; -ENOENT when there is none to read. */
static int load_trust_locked(struct dkm_client *c)
{
    struct dkm_server_list list;
    int r;

    if (!c->have_pin)
        return dkm_error_set(-ENOENT, "no server lists kept: no trust anchor");
    r = dkm_trust_load(c->cache_dir, c->pin, &list);
    if (r < 0)
        return r;
    c->trust = list;
    c->have_trust = true;
    {
        struct stat st;
        char *path = NULL;

        /* Written at every refresh: its age is the chain's. */
        if (asprintf(&path, "%s/%s", c->cache_dir, DKM_TRUST_FILE) < 0)
            path = NULL;
        c->trust_stale = path == NULL || stat(path, &st) < 0 ||
                         st.st_mtime + DKM_CLIENT_TRUST_REFRESH_S < time(NULL);
        free(path);
    }
    log_debug("kept server list version %u (%u servers)", list.list_version, list.count);
    return 0;
}

/* Ask the service for its chain; never accept an older list than the
 * one already trusted. */
static int fetch_trust_locked(struct dkm_client *c)
{
    struct dkm_server_list list;
    json_t *j = NULL;
    int r;

    if (!c->have_pin)
        return dkm_error_set(DKM_E_CONFIG, "no trust anchor configured: set `trust` to "
                                           "the fingerprint dkmd init printed");
    r = dkm_client_call_locked(c, false, "GET", "/v1/trust", NULL, &j);
    if (r < 0)
        goto done;
    r = dkm_trust_accept_answer(j, c->pin, c->have_trust ? c->trust.list_version : 0,
                                c->cache_dir, &list);
    if (r < 0)
        goto done;
    c->trust = list;
    c->have_trust = true;
    c->trust_stale = false;
    log_debug("trusted server list version %u (%u servers)", list.list_version,
              list.count);
done:
    json_decref(j);
    return r;
}

int dkm_client_trust(struct dkm_client *c, struct dkm_server_list *ret_list)
{
    int r = 0;

    pthread_mutex_lock(&c->lock);
    if (!c->have_trust)
        r = fetch_trust_locked(c);
    if (r == 0 && ret_list != NULL)
        *ret_list = c->trust;
    pthread_mutex_unlock(&c->lock);
    return r;
}

/* ---- the kernel keyring (keyring.c) ---- */

/* The keyring of this client's context, or NULL: not wanted, or refused
 * by the kernel (then, once, a debug line and the process cache only). */
static struct dkm_keyring *keyring_locked(struct dkm_client *c)
{
    char context[DKM_KEYRING_CONTEXT_HEX + 1];
    const char *tcti = c->tcti != NULL ? c->tcti : getenv("DKM_TCTI");
    int r;

    if (!c->keyring_wanted || c->keyring_off || c->keyring != NULL)
        return c->keyring;
    r = dkm_keyring_context(c->libctx, c->propq, c->have_pin ? c->pin : NULL,
                            c->have_pin ? sizeof(c->pin) : 0, tcti, c->cache_dir,
                            context);
    if (r == 0)
        r = dkm_keyring_open(DKM_KEYRING_PARENT_USER, context, c->libctx, c->propq,
                             &c->keyring);
    if (r < 0) {
        log_debug("keys stay in this process, not in the kernel keyring: %s",
                  dkm_error_detail());
        dkm_error_clear();
        c->keyring_off = true;
        return NULL;
    }
    return c->keyring;
}

/* Until when a fetched key may be kept: the policy's TTL from now, never
 * past the version's expiry. */
static uint64_t cache_until(const struct dkm_group_policy *p, uint64_t expires_at)
{
    uint64_t until = (uint64_t)time(NULL) + p->cache_ttl;

    return expires_at != 0 && expires_at < until ? expires_at : until;
}

/* group/version (DKM_VERSION_CURRENT: the remembered current one) from the
 * keyring into ret; -ENOENT when it is not there or no longer usable. */
static int keyring_take(struct dkm_client *c, struct dkm_keyring *kr, const char *group,
                        uint32_t version, struct dkm_client_key *ret)
{
    struct dkm_keyring_entry e;
    uint64_t now = (uint64_t)time(NULL);
    void *secret = NULL;
    int r;

    if (kr == NULL)
        return -ENOENT;
    if (version == DKM_VERSION_CURRENT &&
        dkm_keyring_get_current(kr, group, &version) < 0)
        return -ENOENT;
    r = dkm_keyring_get(kr, group, version, &secret, &e);
    if (r < 0) {
        if (r != -ENOENT)
            log_debug("keyring lookup of %s/%u: %s", group, version, dkm_error_detail());
        dkm_error_clear();
        return -ENOENT;
    }
    if (now >= e.cached_until || (e.expires_at != 0 && now >= e.expires_at)) {
        dkm_secmem_free(secret);
        return -ENOENT;
    }
    (void)c;
    memset(ret, 0, sizeof(*ret));
    ret->key = secret;
    ret->key_len = e.key_len;
    ret->version = e.version;
    ret->expires_at = e.expires_at;
    ret->cached_until = e.cached_until;
    snprintf(ret->policy.group, sizeof(ret->policy.group), "%s", group);
    ret->policy.serial = e.policy_serial;
    ret->policy.algorithm = e.algorithm;
    ret->policy.cache_ttl = e.cache_ttl;
    ret->policy.pcr_mask = e.pcr_mask;
    ret->from_keyring = true;
    log_debug("%s/%u from the kernel keyring", group, e.version);
    return 0;
}

/* Keep a key just unsealed for other processes of this uid, and, for an
 * answer of the service about "current", which version that is. */
static void keyring_keep(struct dkm_keyring *kr, const char *group, uint32_t asked,
                         const struct dkm_client_key *k)
{
    uint64_t now = (uint64_t)time(NULL), left;
    struct dkm_keyring_entry e;

    if (kr == NULL || k->cached_until <= now)
        return;
    left = k->cached_until - now;
    if (!k->from_keyring) {
        memset(&e, 0, sizeof(e));
        snprintf(e.group, sizeof(e.group), "%s", group);
        e.version = k->version;
        e.policy_serial = k->policy.serial;
        e.algorithm = k->policy.algorithm;
        e.cache_ttl = k->policy.cache_ttl;
        e.pcr_mask = k->policy.pcr_mask;
        e.expires_at = k->expires_at;
        e.cached_until = k->cached_until;
        e.key = k->key;
        e.key_len = k->key_len;
        if (dkm_keyring_put(kr, &e, now) < 0) {
            log_debug("cannot keep %s/%u in the kernel keyring: %s", group, k->version,
                      dkm_error_detail());
            dkm_error_clear();
            return;
        }
    }
    if (asked == DKM_VERSION_CURRENT && !k->from_cache &&
        dkm_keyring_put_current(kr, group, k->version,
                                left < DKM_KEYRING_CURRENT_TTL
                                    ? (unsigned)left
                                    : DKM_KEYRING_CURRENT_TTL) < 0) {
        log_debug("cannot remember the current version of %s: %s", group,
                  dkm_error_detail());
        dkm_error_clear();
    }
}

int dkm_client_keyring_list(struct dkm_client *c,
                            int (*fn)(void *arg, const struct dkm_keyring_entry *e),
                            void *arg)
{
    struct dkm_keyring *kr;
    int r;

    pthread_mutex_lock(&c->lock);
    kr = keyring_locked(c);
    r = kr != NULL
            ? dkm_keyring_list(kr, fn, arg)
            : dkm_error_set(-EOPNOTSUPP, "no kernel keyring: key_cache is process, "
                                         "or the kernel refused it (DKM_DEBUG=1 says "
                                         "why)");
    pthread_mutex_unlock(&c->lock);
    return r;
}

int dkm_client_keyring_flush(struct dkm_client *c, const char *group, size_t *ret_count)
{
    struct dkm_keyring *kr;
    int r;

    pthread_mutex_lock(&c->lock);
    kr = keyring_locked(c);
    r = kr != NULL
            ? dkm_keyring_flush(kr, group, ret_count)
            : dkm_error_set(-EOPNOTSUPP, "no kernel keyring: key_cache is process, "
                                         "or the kernel refused it (DKM_DEBUG=1 says "
                                         "why)");
    pthread_mutex_unlock(&c->lock);
    return r;
}

/* ---- fetch ---- */

void dkm_client_key_clear(struct dkm_client_key *k)
{
    if (k == NULL)
        return;
    dkm_secmem_free(k->key);
    memset(k, 0, sizeof(*k));
}

static uint64_t now_s(void)
{
    return (uint64_t)time(NULL);
}

/* Verify a response record against the trusted list and check it. */
static int check_response(struct dkm_client *c, const uint8_t *buf, size_t len,
                          const char *group, uint32_t version, const uint8_t *nonce,
                          struct dkm_fetch_response *ret, struct dkm_group_policy *policy)
{
    int r;

    r = dkm_fetch_response_verify(&c->trust, buf, len, ret, policy);
    if (r < 0)
        return r;
    return dkm_fetch_response_check(ret, &c->node, group, version, nonce,
                                    nonce != NULL ? FETCH_NONCE_SIZE : 0, now_s(),
                                    DKM_CLIENT_MAX_SKEW);
}

/*
 * The disk cache's entry for group/version, checked: its response
 * verifies against the trusted lists, names this node, group and version
 * and its expiry, and the sealed object is the one its import blob makes.
 * *ret_rec (malloc'd) holds the record ret_resp points into.
 */
static int disk_entry_locked(struct dkm_client *c, struct dkm_diskcache *cache,
                             const char *group, uint32_t version, uint8_t **ret_rec,
                             struct dkm_fetch_response *ret_resp,
                             struct dkm_group_policy *ret_policy,
                             struct dkm_sealed *ret_sealed)
{
    struct dkm_import_blob blob;
    uint8_t *rec = NULL;
    size_t rec_len = 0;
    uint64_t expires = 0;
    int r;

    r = dkm_diskcache_get(cache, group, version, now_s(), &rec, &rec_len, &expires,
                          ret_sealed);
    if (r == -ENOENT)
        r = dkm_error_set(r, "%s/%u is not cached", group, version);
    if (r == 0)
        r = check_response(c, rec, rec_len, group, version, NULL, ret_resp, ret_policy);
    if (r == 0 && (ret_resp->version != version || ret_resp->expires_at != expires))
        r = dkm_error_set(DKM_E_INTEGRITY, "cache entry and its response disagree");
    if (r == 0)
        r = dkm_dup_decode(ret_resp->blob, ret_resp->blob_len, &blob);
    if (r == 0 && !dkm_sealed_matches_blob(ret_sealed, &blob))
        r = dkm_error_set(DKM_E_INTEGRITY,
                          "disk cache: the sealed object of %s/%u is not the key of its "
                          "response",
                          group, version);
    if (r < 0) {
        free(rec);
        return r;
    }
    *ret_rec = rec;
    return 0;
}

static int fetch_online(struct dkm_client *c, const char *group, uint32_t version,
                        struct dkm_client_key *ret)
{
    uint8_t nonce[FETCH_NONCE_SIZE], *rec = NULL, *cached = NULL;
    char nonce_b64[64], node_hex[DKM_NODE_ID_HEX_SIZE], vtext[16];
    struct dkm_fetch_response resp;
    struct dkm_group_policy policy;
    struct dkm_import_blob blob;
    struct dkm_sealed sealed;
    struct dkm_diskcache *cache = NULL;
    struct dkm_tpm *tpm = NULL;
    json_t *req = NULL, *res = NULL;
    const char *s;
    void *secret = NULL;
    size_t rec_len = 0, secret_len = 0;
    bool fresh_trust = false;
    int r;

    /* The chain kept on disk verifies most answers: ask for the service's
     * chain only when there is none, or when an answer does not verify
     * against it (below). */
    if (!c->have_trust && load_trust_locked(c) < 0) {
        log_debug("no usable kept server lists (%s); asking the service",
                  dkm_error_detail());
        r = fetch_trust_locked(c);
        if (r < 0)
            goto done;
        fresh_trust = true;
    } else if (c->trust_stale) {
        /* A later list (a server removed) must reach the node even when
         * every answer still verifies; a service that cannot say, or that
         * offers an older chain, leaves the kept one in force. */
        if (fetch_trust_locked(c) == 0)
            fresh_trust = true;
        else
            log_debug("kept server lists not refreshed: %s", dkm_error_detail());
        c->trust_stale = false;
        dkm_error_clear();
    }
    if (RAND_bytes_ex(c->libctx, nonce, sizeof(nonce), 0) != 1) {
        r = dkm_error_set(DKM_E_CRYPTO, "no random bytes for the fetch nonce");
        goto done;
    }
    r = dkm_b64url_encode(nonce, sizeof(nonce), nonce_b64, sizeof(nonce_b64));
    if (r < 0)
        goto done;
    dkm_node_id_hex(&c->node, node_hex);
    if (version == DKM_VERSION_CURRENT)
        snprintf(vtext, sizeof(vtext), "current");
    else
        snprintf(vtext, sizeof(vtext), "%u", version);
    req = json_pack("{s:s, s:s, s:s, s:s}", "group", group, "version", vtext, "node_id",
                    node_hex, "nonce", nonce_b64);
    if (req == NULL) {
        r = dkm_error_set(-ENOMEM, "out of memory for a request");
        goto done;
    }
    r = dkm_client_call_locked(c, false, "POST", "/v1/keys/fetch", req, &res);
    if (r < 0)
        goto done;
    s = json_string_value(json_object_get(res, "response"));
    rec = malloc(DKM_RECORD_MAX);
    if (rec == NULL) {
        r = dkm_error_set(-ENOMEM, "out of memory");
        goto done;
    }
    if (s == NULL || json_object_size(res) != 1 ||
        dkm_b64url_decode(s, strlen(s), rec, DKM_RECORD_MAX, &rec_len) < 0) {
        r = dkm_error_set(DKM_E_PROTOCOL, "fetch answer without a base64url "
                                          "\"response\"");
        goto done;
    }
    r = check_response(c, rec, rec_len, group, version, nonce, &resp, &policy);
    if (r == DKM_E_SIGNATURE && !fresh_trust) {
        /* Perhaps signed by a server on a newer list: follow it once. */
        log_debug("fetch answer does not verify (%s); refreshing the server list",
                  dkm_error_detail());
        r = fetch_trust_locked(c);
        if (r == 0)
            r = check_response(c, rec, rec_len, group, version, nonce, &resp, &policy);
    }
    if (r < 0) {
        char prefix[128];

        snprintf(prefix, sizeof(prefix),
                 "the key service's answer for %s/%s was refused: ", group, vtext);
        r = dkm_client_rewrap(r, prefix);
        goto done;
    }
    /* The version the service named may be unsealed already (an answer
     * about "current" whose version another process kept). */
    if (keyring_take(c, keyring_locked(c), group, resp.version, ret) == 0) {
        r = 0;
        goto done;
    }
    r = tpm_locked(c, &tpm);
    if (r < 0)
        goto done;
    /* Imported by this node before: load it from the disk cache, which
     * spares the Import (the answer just verified says the node may). */
    if (cache_locked(c, &cache) == 0) {
        struct dkm_fetch_response kept;
        struct dkm_group_policy kept_policy;

        r = disk_entry_locked(c, cache, group, resp.version, &cached, &kept, &kept_policy,
                              &sealed);
        if (r == 0) {
            r = dkm_unseal(tpm, &sealed, &secret, &secret_len);
            if (r < 0)
                ek_file_suspect(c, r);
        }
        free(cached);
        cached = NULL;
        if (r == 0)
            goto unsealed;
        log_debug("the disk cache's %s/%u was not used (%s); importing the answer", group,
                  resp.version, dkm_error_detail());
    }
    dkm_error_clear();
    r = dkm_dup_decode(resp.blob, resp.blob_len, &blob);
    if (r < 0)
        goto done;
    r = dkm_unseal_blob(tpm, &blob, &sealed, &secret, &secret_len);
    if (r < 0) {
        ek_file_suspect(c, r);
        goto done;
    }
    if (cache_locked(c, &cache) == 0) {
        if (dkm_diskcache_put(cache, group, resp.version, resp.expires_at, rec, rec_len,
                              &sealed) < 0)
            log_warning("cannot cache %s/%u on disk: %s", group, resp.version,
                        dkm_error_detail());
    } else if (c->cache_dir != NULL) {
        log_warning("no disk cache in %s: %s", c->cache_dir, dkm_error_detail());
    }
unsealed:
    ret->key = secret;
    ret->key_len = secret_len;
    ret->version = resp.version;
    ret->expires_at = resp.expires_at;
    ret->policy = policy;
    ret->cached_until = cache_until(&policy, resp.expires_at);
    ret->from_cache = false;
    ret->from_keyring = false;
    secret = NULL;
    r = 0;
done:
    dkm_secmem_free(secret);
    free(rec);
    json_decref(req);
    json_decref(res);
    return r;
}

static int fetch_cached(struct dkm_client *c, const char *group, uint32_t version,
                        struct dkm_client_key *ret)
{
    struct dkm_fetch_response resp;
    struct dkm_group_policy policy;
    struct dkm_diskcache *cache = NULL;
    struct dkm_sealed sealed;
    struct dkm_tpm *tpm = NULL;
    uint8_t *rec = NULL;
    size_t secret_len = 0;
    uint64_t now = now_s();
    void *secret = NULL;
    int r;

    r = cache_locked(c, &cache);
    if (r == -ENOENT) {
        r = dkm_error_set(-ENOENT, "no cache_dir configured");
        goto done;
    }
    if (r < 0)
        goto done;
    if (!c->have_trust) {
        r = load_trust_locked(c);
        if (r < 0)
            goto done;
    }
    if (version == DKM_VERSION_CURRENT) {
        r = dkm_diskcache_latest(cache, group, now, &version);
        if (r < 0) {
            r = dkm_error_set(r, "no cached version of %s", group);
            goto done;
        }
    }
    r = disk_entry_locked(c, cache, group, version, &rec, &resp, &policy, &sealed);
    if (r < 0)
        goto done;
    r = tpm_locked(c, &tpm);
    if (r < 0)
        goto done;
    r = dkm_unseal(tpm, &sealed, &secret, &secret_len);
    if (r < 0) {
        ek_file_suspect(c, r);
        goto done;
    }
    ret->key = secret;
    ret->key_len = secret_len;
    ret->version = resp.version;
    ret->expires_at = resp.expires_at;
    ret->policy = policy;
    ret->cached_until = cache_until(&policy, resp.expires_at);
    ret->from_cache = true;
    ret->from_keyring = false;
    secret = NULL;
    r = 0;
done:
    dkm_secmem_free(secret);
    free(rec);
    return r;
}

int dkm_client_fetch(struct dkm_client *c, const char *group, uint32_t version,
                     struct dkm_client_key *ret)
{
    char why[CAUSES_MAX + 64];
    int r;

    if (group == NULL || !dkm_group_valid(group, strlen(group)))
        return dkm_error_set(-EINVAL, "invalid group name");
    pthread_mutex_lock(&c->lock);
    forked_locked(c);
    /* Kept by a process of this uid: nothing to ask, nothing to keep. */
    if (keyring_take(c, keyring_locked(c), group, version, ret) == 0) {
        pthread_mutex_unlock(&c->lock);
        return 0;
    }
    r = node_locked(c, &c->node);
    if (r < 0)
        goto done;
    /* A node with only a cache directory works from its cache. */
    if (c->n_urls == 0)
        r = dkm_error_set(DKM_E_UNAVAILABLE, "no key service configured");
    else
        r = fetch_online(c, group, version, ret);
    if (r != DKM_E_UNAVAILABLE)
        goto done;
    snprintf(why, sizeof(why), "%s", dkm_error_detail());
    r = fetch_cached(c, group, version, ret);
    if (r == 0) {
        log_info("key service unreachable (%s); using cached %s/%u until %llu", why,
                 group, ret->version, (unsigned long long)ret->expires_at);
        goto done;
    }
    {
        char prefix[CAUSES_MAX + 160], vtext[16] = "";

        if (version != DKM_VERSION_CURRENT)
            snprintf(vtext, sizeof(vtext), "/%u", version);
        snprintf(prefix, sizeof(prefix),
                 "no key service reachable for %s%s (%s) and no usable cached key: ",
                 group, vtext, why);
        r = dkm_client_rewrap(DKM_E_UNAVAILABLE, prefix);
    }
done:
    if (r == 0)
        keyring_keep(keyring_locked(c), group, version, ret);
    pthread_mutex_unlock(&c->lock);
    return r;
}
