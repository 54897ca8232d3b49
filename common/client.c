/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The dkmd client (include/dkm/client.h): JSON calls over TLS to the
 * service URLs (with failover) or over the admin Unix socket, the pinned
 * trust chain, and the key fetch with its disk-cache fallback.
 *
 * Trust never comes from TLS: the server's certificate is not checked,
 * because every answer that matters is a signed record verified against
 * the server list the node pinned. TLS below 1.2 is refused all the same.
 * The verified chain of server lists is kept in the cache directory
 * (common/trust.c; re-verified from the pin on every load): a new process
 * checks answers against it and asks the service for its chain only when
 * an answer does not verify, and cached keys can be checked while the
 * service is unreachable.
 *
 * One mutex serializes the client's operations; the TPM has its own lock
 * and the fetch is off every hot path (the provider caches keys).
 */
#include "dkm/client.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include "dkm/cachekey.h"
#include "dkm/codec.h"
#include "dkm/diskcache.h"
#include "dkm/dup.h"
#include "dkm/log.h"
#include "dkm/node.h"
#include "dkm/secmem.h"
#include "dkm/unseal.h"
#include "dkm/uri.h"
#include "trust.h"

#define FETCH_NONCE_SIZE 32
#define CAUSES_MAX 1024

struct dkm_client {
    char *service;
    char *admin_socket;
    char *tcti;
    char *cache_dir;
    char *tls_key;
    char *tls_cert;
    char *tls_ca;
    char *propq;
    bool have_pin;
    uint8_t pin[DKM_FINGERPRINT_SIZE];
    unsigned timeout_ms;
    struct dkm_http_url urls[DKM_CLIENT_URLS_MAX];
    size_t n_urls;
    size_t preferred; /* the URL that answered last */
    OSSL_LIB_CTX *libctx;
    pthread_mutex_t lock;
    SSL_CTX *ssl;
    struct dkm_tpm *tpm;
    bool tpm_owned;
    pid_t tpm_pid; /* process that opened tpm */
    bool have_node;
    struct dkm_node_id node;
    bool have_trust;
    struct dkm_server_list trust;
    struct dkm_cachekey *cachekey;
    struct dkm_diskcache *cache;
};

/* ---- configuration ---- */

/* Set a new detail that puts prefix before the current one. */
static int rewrap(int r, const char *prefix)
{
    return dkm_error_set(r, "%s%s", prefix, dkm_error_detail());
}

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
            return rewrap(DKM_E_CONFIG, "service: ");
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
    dkm_cachekey_free(c->cachekey);
    if (c->tpm_owned)
        dkm_tpm_close(c->tpm);
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

/* ---- TLS transport ---- */

static int tls_error(int r, const char *what)
{
    unsigned long e = ERR_peek_last_error();
    char buf[256] = "";

    if (e != 0)
        ERR_error_string_n(e, buf, sizeof(buf));
    return dkm_error_set(r, "%s%s%s", what, buf[0] != '\0' ? ": " : "", buf);
}

/* With tls_ca: the certificate must name host (a DNS name or an IP address). */
static bool expect_peer_name(SSL *ssl, const char *host)
{
    X509_VERIFY_PARAM *param = SSL_get0_param(ssl);

    if (X509_VERIFY_PARAM_set1_ip_asc(param, host) == 1)
        return true;
    return SSL_set1_host(ssl, host) == 1;
}

static int ssl_ctx(struct dkm_client *c, SSL_CTX **ret)
{
    SSL_CTX *ctx = NULL;
    int r = DKM_E_CRYPTO;

    if (c->ssl != NULL) {
        *ret = c->ssl;
        return 0;
    }
    ctx = SSL_CTX_new_ex(c->libctx, c->propq, TLS_client_method());
    if (ctx == NULL) {
        r = tls_error(DKM_E_CRYPTO, "cannot create a TLS context");
        goto done;
    }
    if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION)) {
        r = tls_error(DKM_E_CRYPTO, "cannot require TLS 1.2");
        goto done;
    }
    /* Key answers are authenticated by the signed records, not by the
     * certificate; administration over TLS pins the server with tls_ca. */
    SSL_CTX_set_verify(ctx, c->tls_ca != NULL ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    if (c->tls_ca != NULL) {
        X509_VERIFY_PARAM *param = SSL_CTX_get0_param(ctx);

        if (SSL_CTX_load_verify_locations(ctx, c->tls_ca, NULL) != 1) {
            r = tls_error(DKM_E_CONFIG, "tls_ca: cannot load the certificates");
            goto done;
        }
        /* The server's own (self-signed) certificate may be the anchor. */
        X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_PARTIAL_CHAIN);
    }
    /* A close without close_notify is a truncation that Content-Length catches. */
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
    if (c->tls_cert != NULL) {
        if (SSL_CTX_use_certificate_chain_file(ctx, c->tls_cert) != 1) {
            r = tls_error(DKM_E_CONFIG, "tls_cert: cannot load the certificate");
            goto done;
        }
        if (SSL_CTX_use_PrivateKey_file(ctx, c->tls_key, SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(ctx) != 1) {
            r = tls_error(DKM_E_CONFIG, "tls_key: cannot load the key or it does not "
                                        "match tls_cert");
            goto done;
        }
    }
    c->ssl = ctx;
    ctx = NULL;
    *ret = c->ssl;
    r = 0;
done:
    SSL_CTX_free(ctx);
    return r;
}

struct tls_conn {
    SSL *ssl;
    int fd;
    int64_t deadline_ms;
};

/* Wait for what SSL asked for; returns 1 to retry, or a negative code. */
static int tls_want(struct tls_conn *t, int ret, const char *what)
{
    int e = SSL_get_error(t->ssl, ret), r;

    if (e == SSL_ERROR_WANT_READ)
        r = dkm_http_wait(t->fd, POLLIN, t->deadline_ms, what);
    else if (e == SSL_ERROR_WANT_WRITE)
        r = dkm_http_wait(t->fd, POLLOUT, t->deadline_ms, what);
    else if (e == SSL_ERROR_SYSCALL && errno != 0)
        r = dkm_error_set(-errno, "%s: %s", what, strerror(errno));
    else
        r = tls_error(-EPROTO, what);
    return r < 0 ? r : 1;
}

static int tls_read(void *ctx, void *buf, size_t len, size_t *ret_n)
{
    struct tls_conn *t = ctx;

    for (;;) {
        size_t n = 0;
        int ok = SSL_read_ex(t->ssl, buf, len, &n), r;

        if (ok == 1) {
            *ret_n = n;
            return 0;
        }
        if (SSL_get_error(t->ssl, ok) == SSL_ERROR_ZERO_RETURN) {
            *ret_n = 0;
            return 0;
        }
        errno = 0;
        r = tls_want(t, ok, "reading the answer");
        if (r < 0)
            return r;
    }
}

static int tls_write(void *ctx, const void *buf, size_t len)
{
    struct tls_conn *t = ctx;
    const uint8_t *p = buf;

    while (len > 0) {
        size_t n = 0;
        int ok = SSL_write_ex(t->ssl, p, len, &n), r;

        if (ok == 1) {
            p += n;
            len -= n;
            continue;
        }
        errno = 0;
        r = tls_want(t, ok, "sending the request");
        if (r < 0)
            return r;
    }
    return 0;
}

/* ---- one exchange ---- */

/*
 * Send one request to url (or to the admin socket when url is NULL) and
 * read the answer. Errors before a complete answer are transport errors.
 */
static int exchange(struct dkm_client *c, const struct dkm_http_url *url,
                    const char *method, const char *path, const char *body,
                    struct dkm_http_response *ret)
{
    int64_t deadline = dkm_http_deadline(c->timeout_ms);
    struct dkm_http_fd hf = {.fd = -1, .deadline_ms = deadline};
    struct tls_conn t = {.ssl = NULL, .fd = -1, .deadline_ms = deadline};
    struct dkm_http_io io;
    char host[DKM_HTTP_HOST_MAX + 16];
    SSL_CTX *ctx = NULL;
    size_t body_len = body != NULL ? strlen(body) : 0;
    int r;

    ERR_set_mark();
    if (url == NULL) {
        r = dkm_http_connect_unix(c->admin_socket, deadline, &hf.fd);
        if (r < 0)
            goto done;
        io = dkm_http_fd_io(&hf);
        snprintf(host, sizeof(host), "dkmd");
    } else {
        r = ssl_ctx(c, &ctx);
        if (r < 0)
            goto done;
        r = dkm_http_connect_tcp(url->host, url->port, deadline, &t.fd);
        if (r < 0)
            goto done;
        t.ssl = SSL_new(ctx);
        if (t.ssl == NULL || !SSL_set_fd(t.ssl, t.fd)) {
            r = tls_error(DKM_E_CRYPTO, "cannot start TLS");
            goto done;
        }
        if (strchr(url->host, ':') == NULL &&
            strspn(url->host, "0123456789.") != strlen(url->host))
            SSL_set_tlsext_host_name(t.ssl, url->host);
        if (c->tls_ca != NULL && !expect_peer_name(t.ssl, url->host)) {
            r = tls_error(DKM_E_CRYPTO, "cannot set the expected server name");
            goto done;
        }
        for (;;) {
            int ok = SSL_connect(t.ssl);

            if (ok == 1)
                break;
            errno = 0;
            r = tls_want(&t, ok, "TLS handshake");
            if (r < 0) {
                r = rewrap(DKM_E_UNAVAILABLE, "");
                goto done;
            }
        }
        io = (struct dkm_http_io){.read = tls_read, .write = tls_write, .ctx = &t};
        if (strchr(url->host, ':') != NULL)
            snprintf(host, sizeof(host), "[%s]:%u", url->host, (unsigned)url->port);
        else
            snprintf(host, sizeof(host), "%s:%u", url->host, (unsigned)url->port);
    }
    r = dkm_http_write_request(&io, method, host, path, body, body_len);
    if (r < 0)
        goto done;
    r = dkm_http_read_response(&io, NULL, ret);
done:
    if (t.ssl != NULL) {
        SSL_shutdown(t.ssl);
        SSL_free(t.ssl);
    }
    if (t.fd >= 0)
        close(t.fd);
    if (hf.fd >= 0)
        close(hf.fd);
    ERR_pop_to_mark();
    return r;
}

/* Map a non-200 answer to a code, with the server's reason as detail. */
static int status_error(const char *where, const struct dkm_http_response *res)
{
    json_t *j = json_loadb(res->body, res->body_len, JSON_REJECT_DUPLICATES, NULL);
    const char *err = NULL, *detail = NULL;
    int r;

    if (json_is_object(j)) {
        err = json_string_value(json_object_get(j, "error"));
        detail = json_string_value(json_object_get(j, "detail"));
    }
    switch (res->status) {
    case 400:
        r = -EINVAL;
        break;
    case 403:
        r = DKM_E_DENIED;
        break;
    case 404:
        r = -ENOENT;
        break;
    case 409:
        r = -EEXIST;
        break;
    case 410:
        r = DKM_E_EXPIRED;
        break;
    case 503:
        r = DKM_E_UNAVAILABLE;
        break;
    default:
        r = DKM_E_PROTOCOL;
        break;
    }
    r = dkm_error_set(r, "%s answered %d %.64s%s%.256s", where, res->status,
                      err != NULL ? err : "", detail != NULL ? ": " : "",
                      detail != NULL ? detail : "");
    json_decref(j);
    return r;
}

static void url_name(const struct dkm_http_url *u, char *out, size_t size)
{
    if (strchr(u->host, ':') != NULL)
        snprintf(out, size, "https://[%s]:%u", u->host, (unsigned)u->port);
    else
        snprintf(out, size, "https://%s:%u", u->host, (unsigned)u->port);
}

static int call_locked(struct dkm_client *c, bool admin, const char *method,
                       const char *path, json_t *body, json_t **ret)
{
    struct dkm_http_response res = {0};
    char where[DKM_HTTP_HOST_MAX + 32];
    char causes[CAUSES_MAX] = "";
    char *text = NULL;
    json_t *j = NULL;
    size_t tries, i;
    int r = DKM_E_UNAVAILABLE;

    if (admin && c->admin_socket == NULL)
        return dkm_error_set(DKM_E_CONFIG, "no admin socket configured");
    if (!admin && c->n_urls == 0)
        return dkm_error_set(DKM_E_CONFIG, "no key service configured: set `service`");
    if (body != NULL) {
        text = json_dumps(body, JSON_COMPACT);
        if (text == NULL)
            return dkm_error_set(-ENOMEM, "out of memory for a request");
    }
    tries = admin ? 1 : c->n_urls;
    for (i = 0; i < tries; i++) {
        const struct dkm_http_url *u =
            admin ? NULL : &c->urls[(c->preferred + i) % tries];
        size_t used = strlen(causes);

        if (admin)
            snprintf(where, sizeof(where), "%s", c->admin_socket);
        else
            url_name(u, where, sizeof(where));
        dkm_error_clear();
        r = exchange(c, u, method, path, text, &res);
        if (r == 0 && res.status == 503)
            r = status_error(where, &res);
        if (r == 0)
            break;
        dkm_http_response_clear(&res);
        log_debug("%s %s at %s: %s", method, path, where, dkm_error_detail());
        snprintf(causes + used, sizeof(causes) - used, "%s%s: %s", used > 0 ? "; " : "",
                 where,
                 dkm_error_detail()[0] != '\0' ? dkm_error_detail() : dkm_strerror(r));
    }
    if (r < 0) {
        r = dkm_error_set(DKM_E_UNAVAILABLE, "%s", causes);
        goto done;
    }
    if (!admin)
        c->preferred = (c->preferred + i) % tries;
    if (res.status != 200) {
        r = status_error(where, &res);
        goto done;
    }
    j = json_loadb(res.body, res.body_len, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(j)) {
        r = dkm_error_set(DKM_E_PROTOCOL,
                          "%s answered 200 to %s %s with a body that is not a "
                          "JSON object",
                          where, method, path);
        goto done;
    }
    *ret = j;
    j = NULL;
    r = 0;
done:
    json_decref(j);
    dkm_http_response_clear(&res);
    free(text);
    return r;
}

int dkm_client_call(struct dkm_client *c, bool admin, const char *method,
                    const char *path, json_t *body, json_t **ret)
{
    int r;

    pthread_mutex_lock(&c->lock);
    r = call_locked(c, admin, method, path, body, ret);
    pthread_mutex_unlock(&c->lock);
    return r;
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
 * another when needed; the cache key was in secure memory, which a child
 * does not inherit. The parent's context is deliberately not closed here.
 */
static void forked_locked(struct dkm_client *c)
{
    if (!c->tpm_owned || c->tpm_pid == getpid())
        return;
    c->tpm = NULL;
    c->tpm_owned = false;
    dkm_diskcache_free(c->cache);
    c->cache = NULL;
    dkm_cachekey_free(c->cachekey);
    c->cachekey = NULL;
}

static int node_locked(struct dkm_client *c, struct dkm_node_id *ret)
{
    struct dkm_tpm *tpm;
    enum dkm_ek_type type;
    int r;

    if (!c->have_node) {
        r = tpm_locked(c, &tpm);
        if (r < 0)
            return r;
        r = dkm_node_default_ek_type(tpm, &type);
        if (r < 0)
            return r;
        r = dkm_node_read_ek(tpm, type, NULL, &c->node);
        if (r < 0)
            return r;
        c->have_node = true;
    }
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
    struct dkm_tpm *tpm;
    int r;

    if (c->cache_dir == NULL)
        return -ENOENT;
    if (c->cache == NULL) {
        if (mkdir(c->cache_dir, 0700) < 0 && errno != EEXIST)
            return dkm_error_set(-errno, "cache_dir %s: %s", c->cache_dir,
                                 strerror(errno));
        if (c->cachekey == NULL) {
            r = tpm_locked(c, &tpm);
            if (r < 0)
                return r;
            r = dkm_cachekey_open(tpm, c->cache_dir, &c->cachekey);
            if (r < 0)
                return r;
        }
        r = dkm_diskcache_open(c->cache_dir, dkm_cachekey_bytes(c->cachekey), c->libctx,
                               &c->cache);
        if (r < 0)
            return r;
    }
    *ret = c->cache;
    return 0;
}

/* ---- trust (common/trust.c) ---- */

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
    r = call_locked(c, false, "GET", "/v1/trust", NULL, &j);
    if (r < 0)
        goto done;
    r = dkm_trust_accept_answer(j, c->pin, c->have_trust ? c->trust.list_version : 0,
                                c->cache_dir, &list);
    if (r < 0)
        goto done;
    c->trust = list;
    c->have_trust = true;
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

static int fetch_online(struct dkm_client *c, const char *group, uint32_t version,
                        struct dkm_client_key *ret)
{
    uint8_t nonce[FETCH_NONCE_SIZE], *rec = NULL;
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
    r = call_locked(c, false, "POST", "/v1/keys/fetch", req, &res);
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
        r = rewrap(r, prefix);
        goto done;
    }
    r = dkm_dup_decode(resp.blob, resp.blob_len, &blob);
    if (r < 0)
        goto done;
    r = tpm_locked(c, &tpm);
    if (r < 0)
        goto done;
    r = dkm_unseal_blob(tpm, &blob, &sealed, &secret, &secret_len);
    if (r < 0)
        goto done;
    if (cache_locked(c, &cache) == 0) {
        if (dkm_diskcache_put(cache, group, resp.version, resp.expires_at, rec, rec_len,
                              &sealed) < 0)
            log_warning("cannot cache %s/%u on disk: %s", group, resp.version,
                        dkm_error_detail());
    } else if (c->cache_dir != NULL) {
        log_warning("no disk cache in %s: %s", c->cache_dir, dkm_error_detail());
    }
    ret->key = secret;
    ret->key_len = secret_len;
    ret->version = resp.version;
    ret->expires_at = resp.expires_at;
    ret->policy = policy;
    ret->from_cache = false;
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
    size_t rec_len = 0, secret_len = 0;
    uint64_t expires = 0, now = now_s();
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
    r = dkm_diskcache_get(cache, group, version, now, &rec, &rec_len, &expires, &sealed);
    if (r == -ENOENT)
        r = dkm_error_set(r, "%s/%u is not cached", group, version);
    if (r < 0)
        goto done;
    r = check_response(c, rec, rec_len, group, version, NULL, &resp, &policy);
    if (r == 0 && (resp.version != version || resp.expires_at != expires))
        r = dkm_error_set(DKM_E_INTEGRITY, "cache entry and its response disagree");
    if (r < 0)
        goto done;
    r = tpm_locked(c, &tpm);
    if (r < 0)
        goto done;
    r = dkm_unseal(tpm, &sealed, &secret, &secret_len);
    if (r < 0)
        goto done;
    ret->key = secret;
    ret->key_len = secret_len;
    ret->version = resp.version;
    ret->expires_at = resp.expires_at;
    ret->policy = policy;
    ret->from_cache = true;
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
        r = rewrap(DKM_E_UNAVAILABLE, prefix);
    }
done:
    pthread_mutex_unlock(&c->lock);
    return r;
}

/* ---- cached groups ---- */

int dkm_client_cached_groups(struct dkm_client *c,
                             int (*fn)(void *arg, const char *group), void *arg)
{
    char seen[64][DKM_GROUP_MAX + 1];
    size_t n_seen = 0;
    struct dirent *de;
    DIR *d = NULL;
    int r = 0;

    pthread_mutex_lock(&c->lock);
    if (c->cache_dir == NULL)
        goto done;
    d = opendir(c->cache_dir);
    if (d == NULL) {
        if (errno != ENOENT)
            r = dkm_error_set(-errno, "cache_dir %s: %s", c->cache_dir, strerror(errno));
        goto done;
    }
    while ((de = readdir(d)) != NULL) {
        char group[DKM_GROUP_MAX + 1];
        uint32_t version;
        bool dup = false;

        if (dkm_diskcache_parse_name(de->d_name, group, &version) < 0)
            continue;
        for (size_t i = 0; i < n_seen && !dup; i++)
            dup = strcmp(seen[i], group) == 0;
        if (dup)
            continue;
        if (n_seen < sizeof(seen) / sizeof(seen[0]))
            memcpy(seen[n_seen++], group, strlen(group) + 1);
        r = fn(arg, group);
        if (r < 0)
            break;
    }
done:
    if (d != NULL)
        closedir(d);
    pthread_mutex_unlock(&c->lock);
    return r;
}

/* ---- the node's groups, from the service ---- */

int dkm_client_groups(struct dkm_client *c, int (*fn)(void *arg, const char *group),
                      void *arg)
{
    json_t *ans = NULL, *arr, *g;
    size_t i;
    int r;

    if (c->tls_cert == NULL || c->service == NULL)
        return dkm_client_cached_groups(c, fn, arg);
    r = dkm_client_call(c, false, "GET", "/v1/keys/groups", NULL, &ans);
    if (r == DKM_E_UNAVAILABLE) {
        log_info("listing groups from the disk cache: %s", dkm_error_detail());
        return dkm_client_cached_groups(c, fn, arg);
    }
    if (r < 0)
        return r;
    arr = json_object_get(ans, "groups");
    if (!json_is_array(arr)) {
        r = dkm_error_set(DKM_E_PROTOCOL, "GET /v1/keys/groups: no \"groups\" array");
        goto done;
    }
    json_array_foreach(arr, i, g)
    {
        const char *name = json_string_value(json_object_get(g, "name"));

        if (name == NULL || !dkm_group_valid(name, strlen(name))) {
            r = dkm_error_set(DKM_E_PROTOCOL,
                              "GET /v1/keys/groups: an invalid group name");
            goto done;
        }
        r = fn(arg, name);
        if (r < 0)
            goto done;
    }
    r = 0;
done:
    json_decref(ans);
    return r;
}
