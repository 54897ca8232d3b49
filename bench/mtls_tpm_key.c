/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What a TLS client key held in the TPM costs a handshake, next to a key
 * in a file, in one run: a server (ECDSA P-256 file key, asking for a
 * client certificate) and a client in this process, over a socket pair,
 * TLS 1.3. Three cases, each ROUNDS handshakes:
 *
 *   file-key     the client's key in memory (the baseline)
 *   tpm-key      the client's key in the TPM (dkm_tls_key_open: one
 *                TPM2_Sign per full handshake, through tpm2-openssl)
 *   tpm-resumed  the TPM-held key, resuming the previous session (what
 *                the dkm client does for every request after the first:
 *                no certificate, no signature)
 *
 * and prints per case the mean and median milliseconds of a handshake
 * (from the client's first byte to the first byte of data it reads), and
 * the ratios to the baseline.
 *
 * Usage: mtls_tpm_key TCTI KEY CERT [ROUNDS]   (KEY and CERT from
 * `dkmctl node init --tls`; bench/mtls_tpm_key.sh does all of it)
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "dkm/tpm/tlskey.h"

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void die(const char *what)
{
    fprintf(stderr, "mtls_tpm_key: %s\n", what);
    ERR_print_errors_fp(stderr);
    exit(1);
}

/* A P-256 key and a self-signed certificate for it, in memory. */
static void make_identity(const char *cn, EVP_PKEY **ret_key, X509 **ret_cert)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    X509_NAME *n = X509_NAME_new();

    if (k == NULL || x == NULL || n == NULL ||
        !X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1,
                                    -1, 0) ||
        !X509_set_subject_name(x, n) || !X509_set_issuer_name(x, n) ||
        !ASN1_INTEGER_set(X509_get_serialNumber(x), 1) ||
        !X509_gmtime_adj(X509_getm_notBefore(x), 0) ||
        !X509_gmtime_adj(X509_getm_notAfter(x), 86400) || !X509_set_pubkey(x, k) ||
        !X509_sign(x, k, EVP_sha256()))
        die("cannot make an identity");
    X509_NAME_free(n);
    *ret_key = k;
    *ret_cert = x;
}

static int accept_any(int ok, X509_STORE_CTX *x)
{
    (void)ok;
    (void)x;
    return 1;
}

struct server {
    SSL_CTX *ctx;
    int fd;
};

/* One connection: handshake, one byte of data (the tickets come before it). */
static void *serve_one(void *arg)
{
    struct server *s = arg;
    SSL *ssl = SSL_new(s->ctx);
    char c = 'x';

    SSL_set_fd(ssl, s->fd);
    if (SSL_accept(ssl) == 1 && SSL_write(ssl, &c, 1) == 1)
        SSL_shutdown(ssl);
    SSL_free(ssl);
    close(s->fd);
    return NULL;
}

/* One handshake of the client; the time until its first byte of data. */
static double handshake(SSL_CTX *server, SSL_CTX *client, SSL_SESSION **session,
                        int *ret_reused)
{
    int sv[2];
    struct server s = {.ctx = server};
    pthread_t t;
    SSL *ssl;
    char c;
    double start, ms;

    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
        die("socketpair");
    s.fd = sv[1];
    if (pthread_create(&t, NULL, serve_one, &s) != 0)
        die("pthread_create");
    ssl = SSL_new(client);
    SSL_set_fd(ssl, sv[0]);
    if (session != NULL && *session != NULL)
        SSL_set_session(ssl, *session);
    start = now_ms();
    if (SSL_connect(ssl) != 1 || SSL_read(ssl, &c, 1) != 1)
        die("handshake failed");
    ms = now_ms() - start;
    *ret_reused = SSL_session_reused(ssl);
    if (session != NULL) {
        SSL_SESSION_free(*session);
        *session = SSL_get1_session(ssl);
    }
    SSL_shutdown(ssl);
    SSL_free(ssl);
    close(sv[0]);
    pthread_join(t, NULL);
    return ms;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

struct result {
    double mean, median;
    int reused;
};

struct series {
    const char *name;
    SSL_CTX *client;
    int resume;
    SSL_SESSION *session;
    double *t;
    int reused;
};

static struct result summarize(struct series *c, int rounds)
{
    struct result r = {.reused = c->reused};
    double sum = 0;

    for (int i = 0; i < rounds; i++)
        sum += c->t[i];
    qsort(c->t, (size_t)rounds, sizeof(*c->t), cmp_double);
    r.mean = sum / rounds;
    r.median = c->t[rounds / 2];
    printf("handshake %-12s %d rounds (%d resumed): mean %.3f ms, median %.3f ms\n",
           c->name, rounds, r.reused, r.mean, r.median);
    return r;
}

/*
 * The cases take turns, one handshake each per round, so that a change
 * of load on the machine (which other work shares) hits all of them alike.
 */
static void run(SSL_CTX *server, struct series *cases, size_t ncases, int rounds)
{
    int reused;

    for (size_t c = 0; c < ncases; c++) {
        cases[c].t = calloc((size_t)rounds, sizeof(double));
        if (cases[c].t == NULL)
            die("out of memory");
        if (cases[c].resume) /* the session to resume */
            handshake(server, cases[c].client, &cases[c].session, &reused);
    }
    for (int i = 0; i < rounds; i++) {
        for (size_t c = 0; c < ncases; c++) {
            cases[c].t[i] =
                handshake(server, cases[c].client,
                          cases[c].resume ? &cases[c].session : NULL, &reused);
            cases[c].reused += reused;
        }
    }
}

static SSL_CTX *client_ctx(EVP_PKEY *key, X509 *cert)
{
    SSL_CTX *c = SSL_CTX_new(TLS_client_method());

    if (c == NULL || !SSL_CTX_set_min_proto_version(c, TLS1_3_VERSION) ||
        SSL_CTX_use_certificate(c, cert) != 1 || SSL_CTX_use_PrivateKey(c, key) != 1 ||
        SSL_CTX_check_private_key(c) != 1)
        die("cannot make a client context");
    SSL_CTX_set_verify(c, SSL_VERIFY_NONE, NULL);
    return c;
}

int main(int argc, char **argv)
{
    EVP_PKEY *skey, *fkey, *tkey = NULL;
    X509 *scert, *fcert, *tcert;
    SSL_CTX *server, *file_client, *tpm_client;
    struct result f, t, tr;
    int rounds = argc > 4 ? atoi(argv[4]) : 50;
    FILE *fp;

    signal(SIGPIPE, SIG_IGN);
    if (argc < 4 || rounds < 1) {
        fprintf(stderr, "usage: mtls_tpm_key TCTI KEY CERT [ROUNDS]\n");
        return 2;
    }
    make_identity("server", &skey, &scert);
    make_identity("file-client", &fkey, &fcert);
    if (dkm_tls_key_open(argv[1], argv[2], &tkey) < 0) {
        fprintf(stderr, "mtls_tpm_key: %s\n", dkm_error_detail());
        return 1;
    }
    fp = fopen(argv[3], "r");
    tcert = fp != NULL ? PEM_read_X509(fp, NULL, NULL, NULL) : NULL;
    if (fp != NULL)
        fclose(fp);
    if (tcert == NULL)
        die("cannot read the TPM key's certificate");
    server = SSL_CTX_new(TLS_server_method());
    if (server == NULL || SSL_CTX_use_certificate(server, scert) != 1 ||
        SSL_CTX_use_PrivateKey(server, skey) != 1)
        die("cannot make the server context");
    /* As dkmd: ask for a client certificate, accept any, stateless tickets. */
    SSL_CTX_set_verify(server, SSL_VERIFY_PEER | SSL_VERIFY_CLIENT_ONCE, accept_any);
    SSL_CTX_set_session_id_context(server, (const unsigned char *)"bench", 5);
    file_client = client_ctx(fkey, fcert);
    tpm_client = client_ctx(tkey, tcert);

    {
        struct series cases[3] = {
            {.name = "file-key", .client = file_client},
            {.name = "tpm-key", .client = tpm_client},
            {.name = "tpm-resumed", .client = tpm_client, .resume = 1},
        };

        run(server, cases, 3, rounds);
        f = summarize(&cases[0], rounds);
        t = summarize(&cases[1], rounds);
        tr = summarize(&cases[2], rounds);
        for (int i = 0; i < 3; i++) {
            SSL_SESSION_free(cases[i].session);
            free(cases[i].t);
        }
    }
    printf("ratio tpm-key/file-key median %.2f (mean %.2f)\n", t.median / f.median,
           t.mean / f.mean);
    printf("ratio tpm-resumed/file-key median %.2f (mean %.2f)\n", tr.median / f.median,
           tr.mean / f.mean);
    printf("tpm signature per full handshake %.3f ms (difference of the medians)\n",
           t.median - f.median);
    SSL_CTX_free(tpm_client);
    SSL_CTX_free(file_client);
    SSL_CTX_free(server);
    EVP_PKEY_free(tkey);
    EVP_PKEY_free(fkey);
    EVP_PKEY_free(skey);
    X509_free(tcert);
    X509_free(fcert);
    X509_free(scert);
    return tr.reused == rounds ? 0 : 1;
}
