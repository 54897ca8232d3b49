/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The dkmd client's transport: one JSON call (dkm_client_call) over TLS
 * to the service URLs, trying each in turn from the one that answered
 * last, or over the admin Unix socket, and the report call
 * (dkm_client_report) that hands back a 503's JSON too; the HTTP/1.1 framing is http.c.
 * The lowest part of the client: client.c and groups.c call it, it calls
 * neither.
 *
 * Trust never comes from TLS: the server's certificate is not checked,
 * because every answer that matters is a signed record verified against
 * the server list the node pinned (client.c). TLS below 1.2 is refused all
 * the same.
 *
 * The client's own TLS key (tls_key) may be a file or a key held in the
 * node's TPM (a TSS2 PRIVATE KEY file, tpm2-openssl): then the TLS context
 * lives in a library context of its own that has the tpm2 provider
 * (dkm/tpm/tlskey.h). Each URL's TLS session is kept and resumed, so a
 * process pays the TPM signature of a full handshake once per server.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "dkm/base/log.h"
#include "dkm/tpm/tlskey.h"
#include "internal.h"

int dkm_client_rewrap(int r, const char *prefix)
{
    return dkm_error_set(r, "%s%s", prefix, dkm_error_detail());
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

/* The client's key, from the TPM or from a PEM file, into ctx. */
static int use_key(struct dkm_client *c, SSL_CTX *ctx)
{
    EVP_PKEY *pkey = NULL;
    int r;

    if (!c->tls_in_tpm) {
        if (SSL_CTX_use_PrivateKey_file(ctx, c->tls_key, SSL_FILETYPE_PEM) != 1)
            return tls_error(DKM_E_CONFIG, "tls_key: cannot load the key");
        return 0;
    }
    r = dkm_tls_key_open(c->tcti, c->tls_key, &pkey);
    if (r < 0)
        return dkm_client_rewrap(DKM_E_CONFIG, "tls_key (held in the TPM): ");
    r = SSL_CTX_use_PrivateKey(ctx, pkey) == 1
            ? 0
            : tls_error(DKM_E_CONFIG, "tls_key: cannot use the TPM's key");
    EVP_PKEY_free(pkey);
    return r;
}

static int ssl_ctx(struct dkm_client *c, SSL_CTX **ret)
{
    SSL_CTX *ctx = NULL;
    int r = DKM_E_CRYPTO;

    /* A child after fork() must not talk over the parent's TPM connection
     * (tpm2-openssl's, held by the key): it makes its own context, and
     * leaves the parent's alone (not freed, which would close the
     * connection under it). */
    if (c->tls_in_tpm && c->ssl != NULL && c->tls_pid != getpid()) {
        c->ssl = NULL;
        for (size_t i = 0; i < DKM_CLIENT_URLS_MAX; i++)
            c->sessions[i] = NULL;
    }
    if (c->ssl != NULL) {
        *ret = c->ssl;
        return 0;
    }
    c->tls_in_tpm = c->tls_key != NULL && dkm_tls_key_in_tpm(c->tls_key);
    c->tls_pid = getpid();
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
        r = use_key(c, ctx);
        if (r < 0)
            goto done;
        if (SSL_CTX_check_private_key(ctx) != 1) {
            r = tls_error(DKM_E_CONFIG, "tls_key does not match tls_cert");
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
    size_t body_len = body != NULL ? strlen(body) : 0, slot = DKM_CLIENT_URLS_MAX;
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
        slot = (size_t)(url - c->urls);
        if (slot < DKM_CLIENT_URLS_MAX && c->sessions[slot] != NULL &&
            SSL_set_session(t.ssl, c->sessions[slot]) != 1)
            log_debug("cannot offer the kept TLS session to %s", url->host);
        for (;;) {
            int ok = SSL_connect(t.ssl);

            if (ok == 1)
                break;
            errno = 0;
            r = tls_want(&t, ok, "TLS handshake");
            if (r < 0) {
                r = dkm_client_rewrap(DKM_E_UNAVAILABLE, "");
                goto done;
            }
        }
        c->handshakes++;
        if (SSL_session_reused(t.ssl))
            c->resumed++;
        log_debug("TLS handshake with %s: %s", url->host,
                  SSL_session_reused(t.ssl) ? "resumed" : "full");
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
    /* TLS 1.3 tickets come after the handshake: the session is complete
     * once the answer has been read. */
    if (r == 0 && t.ssl != NULL && slot < DKM_CLIENT_URLS_MAX) {
        SSL_SESSION *s = SSL_get1_session(t.ssl);

        if (s != NULL && SSL_SESSION_is_resumable(s)) {
            SSL_SESSION_free(c->sessions[slot]);
            c->sessions[slot] = s;
        } else {
            SSL_SESSION_free(s);
        }
    }
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

/*
 * One call. With ret_status (a report), the first answer from any URL is
 * final whatever its status, and its JSON object is returned with it;
 * without, only a 200 is, and a 503 moves on to the next URL.
 */
static int call(struct dkm_client *c, bool admin, const char *method, const char *path,
                json_t *body, int *ret_status, json_t **ret)
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
        if (r == 0 && res.status == 503 && ret_status == NULL)
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
    if (res.status != 200 && ret_status == NULL) {
        r = status_error(where, &res);
        goto done;
    }
    j = json_loadb(res.body, res.body_len, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(j)) {
        r = ret_status != NULL && res.status != 200
                ? status_error(where, &res)
                : dkm_error_set(DKM_E_PROTOCOL,
                                "%s answered %d to %s %s with a body that is not a "
                                "JSON object",
                                where, res.status, method, path);
        goto done;
    }
    if (ret_status != NULL)
        *ret_status = res.status;
    *ret = j;
    j = NULL;
    r = 0;
done:
    json_decref(j);
    dkm_http_response_clear(&res);
    free(text);
    return r;
}

int dkm_client_call_locked(struct dkm_client *c, bool admin, const char *method,
                           const char *path, json_t *body, json_t **ret)
{
    return call(c, admin, method, path, body, NULL, ret);
}

int dkm_client_call(struct dkm_client *c, bool admin, const char *method,
                    const char *path, json_t *body, json_t **ret)
{
    int r;

    pthread_mutex_lock(&c->lock);
    r = call(c, admin, method, path, body, NULL, ret);
    pthread_mutex_unlock(&c->lock);
    return r;
}

int dkm_client_report(struct dkm_client *c, bool admin, const char *path, int *ret_status,
                      json_t **ret)
{
    int status = 0, r;

    pthread_mutex_lock(&c->lock);
    r = call(c, admin, "GET", path, NULL, &status, ret);
    pthread_mutex_unlock(&c->lock);
    if (r == 0)
        *ret_status = status;
    return r;
}

void dkm_client_tls_stats(struct dkm_client *c, unsigned long *ret_handshakes,
                          unsigned long *ret_resumed)
{
    pthread_mutex_lock(&c->lock);
    *ret_handshakes = c->handshakes;
    *ret_resumed = c->resumed;
    pthread_mutex_unlock(&c->lock);
}
