/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The key service client, used by the provider and by dkmctl.
 *
 * Two layers:
 *   - HTTP/1.1 (common/client/http.c): one request per connection, written over
 *     a byte transport (a plain socket or TLS), and a strict reader of
 *     the answer: bounded status line and headers, exactly one
 *     Content-Length, a bounded body read in full, and an absolute
 *     deadline on every wait. Anything else is DKM_E_PROTOCOL.
 *   - The dkmd client (common/client/client.c): service URLs with failover, TLS
 *     1.2+ from a caller-chosen OSSL_LIB_CTX, the admin Unix socket, JSON
 *     through jansson, and the key fetch: pinned trust -> signed fetch
 *     response -> TPM import and unseal -> disk cache, with the disk cache
 *     as fallback while every service URL is unreachable.
 *
 * TLS protects the transport only. What a node trusts comes from the
 * signed records (records.h) checked against the pinned server list, so
 * the client does not verify the server's certificate chain.
 */
#ifndef DKM_CLIENT_H
#define DKM_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/types.h>

#include "dkm/base/error.h"
#include "dkm/client/keyring.h"
#include "dkm/trust/records.h"
#include "dkm/tpm/tpm.h"

/* ---- HTTP/1.1 layer (http.c) ---- */

#define DKM_HTTP_HEADER_MAX_DEFAULT 16384u
#define DKM_HTTP_BODY_MAX_DEFAULT (1024u * 1024u)
#define DKM_HTTP_HEADERS_MAX 64 /* header lines in one answer */
#define DKM_HTTP_HOST_MAX 255

/*
 * A byte transport. read stores up to len bytes and sets *ret_n (0 means
 * the peer closed); write sends all len bytes. Both return 0 or a
 * negative code with a detail (-ETIMEDOUT when the deadline passed).
 */
struct dkm_http_io {
    int (*read)(void *ctx, void *buf, size_t len, size_t *ret_n);
    int (*write)(void *ctx, const void *buf, size_t len);
    void *ctx;
};

/* A connected socket and the monotonic time (ms) by which I/O must end. */
struct dkm_http_fd {
    int fd;
    int64_t deadline_ms;
};

/* Monotonic milliseconds now, and now + timeout_ms. */
int64_t dkm_http_now_ms(void);
int64_t dkm_http_deadline(unsigned timeout_ms);

/*
 * Transport over a socket (non-blocking or not): every wait is a poll
 * bounded by f->deadline_ms. f is borrowed and must outlive the io.
 */
struct dkm_http_io dkm_http_fd_io(struct dkm_http_fd *f);

/*
 * Wait until fd is ready for events (POLLIN/POLLOUT) or the deadline
 * passes (-ETIMEDOUT, with a detail naming what).
 */
DKM_MUSTCHECK int dkm_http_wait(int fd, short events, int64_t deadline_ms,
                                const char *what);

/*
 * Connect a non-blocking TCP socket to host:port (name resolved with
 * getaddrinfo; every address tried in turn) or to a Unix socket path,
 * by the deadline. *ret_fd is non-blocking and close-on-exec.
 * DKM_E_UNAVAILABLE with a detail naming the peer and the cause.
 */
DKM_MUSTCHECK int dkm_http_connect_tcp(const char *host, uint16_t port,
                                       int64_t deadline_ms, int *ret_fd);
DKM_MUSTCHECK int dkm_http_connect_unix(const char *path, int64_t deadline_ms,
                                        int *ret_fd);

/* An https://HOST[:PORT] service URL (no path, query or user info). */
struct dkm_http_url {
    char host[DKM_HTTP_HOST_MAX + 1]; /* without the brackets of an IPv6 literal */
    uint16_t port;                    /* 443 when not given */
};

/*
 * Parse len bytes of s as https://HOST[:PORT] with an optional trailing
 * "/". -EINVAL with a detail otherwise.
 */
DKM_MUSTCHECK int dkm_http_url_parse(const char *s, size_t len, struct dkm_http_url *ret);

/*
 * Write one request: METHOD PATH HTTP/1.1 with Host, Accept,
 * Connection: close and, when body is not NULL or the method is POST or
 * PUT, Content-Length (and Content-Type: application/json for a body).
 * method is a token, path starts with "/" and has no spaces or controls.
 */
DKM_MUSTCHECK int dkm_http_write_request(const struct dkm_http_io *io, const char *method,
                                         const char *host, const char *path,
                                         const void *body, size_t body_len);

struct dkm_http_limits {
    size_t max_header_bytes; /* status line + headers + blank line */
    size_t max_body_bytes;
};

struct dkm_http_response {
    int status;             /* 200..599 */
    char content_type[128]; /* "" when absent */
    char *body;             /* body_len bytes and a NUL; malloc'd */
    size_t body_len;
};

/*
 * Read and strictly parse one response. limits NULL means the defaults
 * above. Refused (DKM_E_PROTOCOL with a detail): a status line that is
 * not HTTP/1.0 or HTTP/1.1, a three-digit code in 200..599 and a space;
 * a header line that is not NAME: VALUE of tokens and visible characters
 * ending in CRLF (no bare LF, no folding, no controls); more than
 * DKM_HTTP_HEADERS_MAX headers or max_header_bytes; a missing, repeated,
 * non-decimal or oversized Content-Length; any Transfer-Encoding; a body
 * shorter than announced, or bytes after it before the peer closes
 * (the answer is read to the end of the connection, so the verdict is
 * the same however the reads split it). -ETIMEDOUT and transport errors
 * pass through. On success fills *ret (free with dkm_http_response_clear).
 */
DKM_MUSTCHECK int dkm_http_read_response(const struct dkm_http_io *io,
                                         const struct dkm_http_limits *limits,
                                         struct dkm_http_response *ret);

/* Free the body and reset. NULL is accepted. */
void dkm_http_response_clear(struct dkm_http_response *r);

/* ---- the dkmd client (client.c) ---- */

#define DKM_CLIENT_URLS_MAX 8
#define DKM_CLIENT_TIMEOUT_DEFAULT_MS 10000u
/* A fetch response may be issued up to this far in the client's future. */
#define DKM_CLIENT_MAX_SKEW 300u
/*
 * A kept chain of server lists older than this is refreshed from the
 * service before the next fetch (best effort), so that a node learns of a
 * server's removal within this time even if every answer it gets still
 * verifies.
 */
#define DKM_CLIENT_TRUST_REFRESH_S 300

struct dkm_client_config {
    const char *service;      /* "https://h:p[,https://h2:p2...]", or NULL */
    const char *admin_socket; /* Unix socket path of dkmd's admin API, or NULL */
    const char *trust;        /* pinned fingerprint: 64 hex, optional "sha256:" */
    const char *tcti;         /* this node's TPM; NULL: $DKM_TCTI */
    const char *cache_dir;    /* disk cache directory; NULL: no disk cache */
    const char *tls_key;      /* optional TLS client key and certificate (PEM) */
    const char *tls_cert;
    /* Optional CA or server certificate (PEM): when set, the service's TLS
     * certificate must chain to it and name the URL's host. The provider
     * leaves it unset (its answers are verified through signed records);
     * dkmctl sets it for administration over TLS. */
    const char *tls_ca;
    unsigned timeout_ms; /* per request and URL; 0: DKM_CLIENT_TIMEOUT_DEFAULT_MS */
    const char *propq;   /* property query for TLS algorithms, or NULL */
    /* Where unsealed keys are kept for other processes: "keyring" (the
     * kernel keyring, keyring.h; also when NULL) or "process" (nowhere:
     * each process unseals its own). */
    const char *key_cache;
};

struct dkm_client;

/*
 * A client for cfg (strings copied). libctx is where TLS, hashes and
 * HMAC come from (NULL: the default context; the provider passes its
 * private one so nothing recurses into dkm). tpm, if not NULL, is
 * borrowed (it must outlive the client, and all its use goes through its
 * lock); otherwise the client opens cfg->tcti when it first needs the
 * TPM. Only the settings an operation needs are checked, when it runs
 * (DKM_E_CONFIG naming the setting).
 */
DKM_MUSTCHECK int dkm_client_new(const struct dkm_client_config *cfg,
                                 OSSL_LIB_CTX *libctx, struct dkm_tpm *tpm,
                                 struct dkm_client **ret);

/* NULL is accepted. */
void dkm_client_free(struct dkm_client *c);

/*
 * One JSON request to the admin socket (admin true) or to the service
 * URLs over TLS, in order, the next URL tried only when one is
 * unreachable or answers 503. body may be NULL. On a 200 answer, *ret
 * is its JSON object (json_decref). Other statuses map to codes with the
 * server's "error: detail" as detail: 400 -EINVAL, 403 DKM_E_DENIED,
 * 404 -ENOENT, 409 -EEXIST, 410 DKM_E_EXPIRED, 503 DKM_E_UNAVAILABLE,
 * others DKM_E_PROTOCOL. DKM_E_UNAVAILABLE when nothing answered.
 */
DKM_MUSTCHECK int dkm_client_call(struct dkm_client *c, bool admin, const char *method,
                                  const char *path, json_t *body, json_t **ret);

/*
 * GET path as a report (e.g. /v1/health): the first answer from the admin
 * socket or from a service URL is final whatever its status, so that a
 * 503 with details is shown, not skipped. On any answer whose body is a
 * JSON object, *ret_status is its HTTP status and *ret the object
 * (json_decref); DKM_E_UNAVAILABLE when nothing answered, the status's
 * code (as dkm_client_call) when the body is not a JSON object.
 */
DKM_MUSTCHECK int dkm_client_report(struct dkm_client *c, bool admin, const char *path,
                                    int *ret_status, json_t **ret);

/*
 * Make sure the client holds a trusted server list: fetch GET /v1/trust,
 * find the pinned list and follow its signed successors, and keep the
 * chain in the cache directory (when configured) so that cached keys
 * can be checked while the service is down. ret_list may be NULL.
 */
DKM_MUSTCHECK int dkm_client_trust(struct dkm_client *c,
                                   struct dkm_server_list *ret_list);

/* A key as the fetch hands it over. */
struct dkm_client_key {
    void *key;                      /* key_len bytes of secure memory */
    size_t key_len;                 /* DKM_DUP_SECRET_MAX at most; 32 for AES-256 */
    uint32_t version;               /* the resolved version */
    uint64_t expires_at;            /* the version's expiry (unix seconds) */
    struct dkm_group_policy policy; /* the group's signed policy (from the keyring:
                                       group, serial, algorithm, cache_ttl, pcr_mask) */
    uint64_t cached_until;          /* a cache may keep the key until then */
    bool from_cache;                /* served from the disk cache, service unreachable */
    bool from_keyring;              /* served from the kernel keyring, no TPM command */
};

/*
 * Fetch group's key at version (DKM_VERSION_CURRENT for the current one)
 * for this node. First the kernel keyring (key_cache "keyring"): a key
 * kept there by a process of this uid within its cache time is used with
 * no TPM command and no round trip (ret->from_keyring), and so is a
 * remembered current version. Otherwise: trust, POST /v1/keys/fetch with
 * a fresh nonce, verify
 * the response's chain and its node, group, version, nonce and expiry,
 * import and unseal it with this node's TPM, and store it in the disk
 * cache. When every service URL is unreachable, a cached, unexpired,
 * re-verified entry is used instead (ret->from_cache); otherwise
 * DKM_E_UNAVAILABLE names the URLs and causes. Answers of the service are
 * final: -ENOENT, DKM_E_DENIED, DKM_E_EXPIRED never fall back to the
 * cache. On success *ret owns the key (dkm_client_key_clear).
 */
DKM_MUSTCHECK int dkm_client_fetch(struct dkm_client *c, const char *group,
                                   uint32_t version, struct dkm_client_key *ret);

/* Wipe and free the key and reset. NULL is accepted. */
void dkm_client_key_clear(struct dkm_client_key *k);

/*
 * This node's id (the default EK's name, as `dkmctl node init` prints
 * it), read from the TPM once.
 */
DKM_MUSTCHECK int dkm_client_node_id(struct dkm_client *c, struct dkm_node_id *ret);

/*
 * Call fn for each group with an entry in the disk cache (expired ones
 * included until the cache prunes them), each once; stops at fn's first
 * error. 0 without calling fn when no cache
 * directory is configured.
 */
DKM_MUSTCHECK int dkm_client_cached_groups(struct dkm_client *c,
                                           int (*fn)(void *arg, const char *group),
                                           void *arg);

/*
 * Call fn for each group this node may use. With a TLS client certificate
 * (tls_cert) and service URLs, the service tells (GET /v1/keys/groups,
 * for the node whose entry binds that key); when no URL answers, and
 * without a certificate, the disk cache does (dkm_client_cached_groups).
 * A refusal (DKM_E_DENIED) is returned, not hidden by the cache. The list
 * is not signed: a name in it is only a name, whose keys still come
 * through verified fetches.
 */
DKM_MUSTCHECK int dkm_client_groups(struct dkm_client *c,
                                    int (*fn)(void *arg, const char *group), void *arg);

/*
 * The key versions this client's context keeps in the kernel keyring
 * (fn gets each, never its bytes), and their removal: all, or those of
 * group. -EOPNOTSUPP with a detail when key_cache is "process" or the
 * kernel refuses the keyring.
 */
DKM_MUSTCHECK int dkm_client_keyring_list(struct dkm_client *c,
                                          int (*fn)(void *arg,
                                                    const struct dkm_keyring_entry *e),
                                          void *arg);
DKM_MUSTCHECK int dkm_client_keyring_flush(struct dkm_client *c, const char *group,
                                           size_t *ret_count);

/*
 * How many TLS handshakes this client made, and how many of them resumed
 * a kept session (no certificate, no signature with the client's key).
 */
void dkm_client_tls_stats(struct dkm_client *c, unsigned long *ret_handshakes,
                          unsigned long *ret_resumed);

#endif
