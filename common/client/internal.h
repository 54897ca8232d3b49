/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the parts of the dkmd client share: the client object itself and
 * the calls of the transport. client.c builds and frees the client and
 * fetches keys, transport.c carries one JSON call over TLS or the admin
 * socket, groups.c lists the node's groups; both of those call
 * transport.c, which calls neither. Private to common/client/; the public
 * API is include/dkm/client/client.h.
 */
#ifndef DKM_COMMON_CLIENT_INTERNAL_H
#define DKM_COMMON_CLIENT_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>
#include <openssl/ssl.h>
#include <openssl/types.h>

#include "dkm/client/client.h"
#include "diskcache.h"
#include "dkm/tpm/node.h"
#include "dkm/trust/records.h"
#include "dkm/tpm/tpm.h"

/* Room for the reasons of every URL tried, in one detail. */
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
    /* A TLS key held in the TPM (tpm2-openssl, dkm/tpm/tlskey.h), in the
     * SSL_CTX made by the process tls_pid; the sessions to resume per URL,
     * so that a process signs with the TPM once per server, not per call. */
    bool tls_in_tpm;
    pid_t tls_pid;
    SSL_SESSION *sessions[DKM_CLIENT_URLS_MAX];
    unsigned long handshakes, resumed; /* counted for dkm_client_tls_stats */
    struct dkm_tpm *tpm;
    bool tpm_owned;
    pid_t tpm_pid; /* process that opened tpm */
    bool have_node;
    bool ek_from_file; /* node and EK from the cache directory's EK file */
    struct dkm_node_id node;
    bool have_trust;
    bool trust_stale; /* the kept chain is old: ask the service before a fetch */
    struct dkm_server_list trust;
    struct dkm_diskcache *cache;
    bool keyring_wanted;         /* key_cache "keyring" */
    bool keyring_off;            /* the kernel refused it: process cache only */
    struct dkm_keyring *keyring; /* opened on first use */
};

/* Set a new detail that puts prefix before the current one (transport.c). */
int dkm_client_rewrap(int r, const char *prefix);

/*
 * dkm_client_call() with c->lock already held: one request to the admin
 * socket (admin) or to the service URLs, the preferred one first.
 */
DKM_MUSTCHECK int dkm_client_call_locked(struct dkm_client *c, bool admin,
                                         const char *method, const char *path,
                                         json_t *body, json_t **ret);

#endif
