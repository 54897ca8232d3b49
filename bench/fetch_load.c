/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Load generator for dkmd's key fetch: N client threads, each with one
 * keep-alive TLS connection, send POST /v1/keys/fetch back to back (a new
 * random nonce each time) for a fixed time, and the program prints the
 * fetches per second and the latency percentiles. Every answer must be
 * 200 (or the status in $FETCH_LOAD_EXPECT: 403 for a node that must
 * never get the key); anything else is counted and makes the exit status
 * non-zero.
 *
 * With FETCH_LOAD_RECONNECT=1 (fault tests that kill the server) a client
 * whose connection fails connects again until the time is up; broken
 * connections and 503 answers (a server still loading its state) are
 * counted apart, on a second line "broken B, unavailable U", and are not
 * errors: only a wrong answer is.
 *
 * Usage: fetch_load HOST PORT CACERT NODE_ID GROUP [CLIENTS] [SECONDS]
 * (bench/fetch_bench.sh sets up a server and runs it next to pgbench).
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>
#include <openssl/ssl.h>

#define MAX_SAMPLES 2000000

struct client {
    pthread_t thread;
    double *lat;    /* seconds */
    size_t n, cap;  /* latency samples kept, room for them */
    size_t fetches; /* answered as expected (more than n on a long run) */
    unsigned long errors, broken, unavailable;
};

static const char *host, *port, *node_id, *group;
static SSL_CTX *ctx;
static double deadline;
/* SIGTERM/SIGINT end the run early; the results are printed as usual. */
static volatile sig_atomic_t stop_now;
static int expect = 200;
static bool reconnect;

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int connect_tcp(void)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    int fd = -1, one = 1;

    if (getaddrinfo(host, port, &hints, &ai) != 0)
        return -1;
    fd = socket(ai->ai_family, ai->ai_socktype, 0);
    if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        close(fd);
        fd = -1;
    }
    if (fd >= 0)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    freeaddrinfo(ai);
    return fd;
}

/* Read one HTTP response; returns its status or -1. */
static int read_response(SSL *ssl, char *buf, size_t cap)
{
    size_t have = 0;
    char *end = NULL;
    long clen = -1;
    int status;

    for (;;) {
        int n = SSL_read(ssl, buf + have, (int)(cap - have - 1));

        if (n <= 0)
            return -1;
        have += (size_t)n;
        buf[have] = '\0';
        if (end == NULL && (end = strstr(buf, "\r\n\r\n")) != NULL) {
            char *cl = strcasestr(buf, "\r\nContent-Length:");

            if (cl == NULL || cl > end)
                return -1;
            clen = strtol(cl + 17, NULL, 10);
        }
        if (end != NULL && have >= (size_t)(end + 4 - buf) + (size_t)clen)
            break;
        if (have + 1 >= cap)
            return -1;
    }
    if (sscanf(buf, "HTTP/1.1 %d", &status) != 1)
        return -1;
    return status;
}

static void b64url(const unsigned char *in, size_t n, char *out)
{
    static const char a[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0, i;

    for (i = 0; i + 2 < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];

        out[o++] = a[v >> 18];
        out[o++] = a[(v >> 12) & 63];
        out[o++] = a[(v >> 6) & 63];
        out[o++] = a[v & 63];
    }
    if (n - i == 1) {
        out[o++] = a[in[i] >> 2];
        out[o++] = a[(in[i] & 3) << 4];
    }
    out[o] = '\0';
}

/* Connect and complete the TLS handshake; NULL on failure. */
static SSL *open_conn(int *fd)
{
    SSL *ssl = NULL;

    *fd = connect_tcp();
    if (*fd >= 0 && (ssl = SSL_new(ctx)) != NULL && SSL_set_fd(ssl, *fd) == 1 &&
        SSL_set_tlsext_host_name(ssl, host) == 1 && SSL_connect(ssl) == 1)
        return ssl;
    SSL_free(ssl);
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
    return NULL;
}

static void close_conn(SSL *ssl, int fd)
{
    if (ssl != NULL) {
        SSL_shutdown(ssl);
        SSL_free(ssl);
    }
    if (fd >= 0)
        close(fd);
}

static void *client_main(void *arg)
{
    struct client *c = arg;
    char body[512], req[1024], buf[16384], nonce_text[64];
    unsigned char nonce[30];
    SSL *ssl = NULL;
    int fd = -1;

    while (!stop_now && now_s() < deadline) {
        double t;
        int len, status;

        if (ssl == NULL && (ssl = open_conn(&fd)) == NULL) {
            if (!reconnect) {
                fprintf(stderr, "fetch_load: cannot connect\n");
                c->errors++;
                break;
            }
            c->broken++;
            usleep(20000);
            continue;
        }
        RAND_bytes(nonce, sizeof(nonce));
        b64url(nonce, sizeof(nonce), nonce_text);
        len = snprintf(body, sizeof(body),
                       "{\"group\":\"%s\",\"version\":\"current\",\"node_id\":\"%s\","
                       "\"nonce\":\"%s\"}",
                       group, node_id, nonce_text);
        len = snprintf(req, sizeof(req),
                       "POST /v1/keys/fetch HTTP/1.1\r\nHost: %s\r\nContent-Type: "
                       "application/json\r\nContent-Length: %d\r\n\r\n%s",
                       host, len, body);
        t = now_s();
        status =
            SSL_write(ssl, req, len) == len ? read_response(ssl, buf, sizeof(buf)) : -1;
        if (status < 0 || (reconnect && status == 503)) {
            if (!reconnect) {
                c->errors++;
                break;
            }
            if (status < 0) {
                c->broken++;
                close_conn(ssl, fd);
                ssl = NULL;
                fd = -1;
            } else {
                c->unavailable++;
                usleep(20000);
            }
            continue;
        }
        if (status != expect) {
            c->errors++;
            continue;
        }
        c->fetches++;
        /* A long run keeps its first samples for the percentiles. */
        if (c->n < c->cap)
            c->lat[c->n++] = now_s() - t;
    }
    close_conn(ssl, fd);
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static void on_stop(int sig)
{
    (void)sig;
    stop_now = 1;
}

int main(int argc, char **argv)
{
    unsigned nclients = 16, seconds = 5;
    struct client *cl;
    double *all, start, elapsed;
    size_t total = 0, samples = 0;
    unsigned long errors = 0, broken = 0, unavailable = 0;

    if (argc < 6) {
        fprintf(stderr,
                "usage: fetch_load HOST PORT CACERT NODE_ID GROUP [CLIENTS] [SECONDS]\n");
        return 2;
    }
    host = argv[1];
    port = argv[2];
    node_id = argv[4];
    group = argv[5];
    if (argc > 6)
        nclients = (unsigned)strtoul(argv[6], NULL, 10);
    if (argc > 7)
        seconds = (unsigned)strtoul(argv[7], NULL, 10);
    if (nclients == 0 || nclients > 1024 || seconds == 0)
        return 2;
    ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL || SSL_CTX_load_verify_locations(ctx, argv[3], NULL) != 1) {
        fprintf(stderr, "fetch_load: cannot load %s\n", argv[3]);
        return 1;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    cl = calloc(nclients, sizeof(*cl));
    if (cl == NULL)
        return 1;
    start = now_s();
    if (getenv("FETCH_LOAD_EXPECT") != NULL)
        expect = atoi(getenv("FETCH_LOAD_EXPECT"));
    reconnect = getenv("FETCH_LOAD_RECONNECT") != NULL &&
                strcmp(getenv("FETCH_LOAD_RECONNECT"), "1") == 0;
    signal(SIGPIPE, SIG_IGN); /* a server killed mid-request */
    signal(SIGTERM, on_stop);
    signal(SIGINT, on_stop);
    deadline = start + seconds;
    for (unsigned i = 0; i < nclients; i++) {
        cl[i].cap = MAX_SAMPLES / nclients;
        cl[i].lat = malloc(cl[i].cap * sizeof(double) + sizeof(double));
        if (cl[i].lat == NULL ||
            pthread_create(&cl[i].thread, NULL, client_main, &cl[i]) != 0) {
            fprintf(stderr, "fetch_load: cannot start client %u\n", i);
            return 1;
        }
    }
    for (unsigned i = 0; i < nclients; i++) {
        pthread_join(cl[i].thread, NULL);
        total += cl[i].fetches;
        samples += cl[i].n;
        errors += cl[i].errors;
        broken += cl[i].broken;
        unavailable += cl[i].unavailable;
    }
    elapsed = now_s() - start;
    all = malloc((samples + 1) * sizeof(double));
    if (all == NULL)
        return 1;
    for (size_t i = 0, k = 0; i < nclients; i++)
        for (size_t j = 0; j < cl[i].n; j++)
            all[k++] = cl[i].lat[j];
    qsort(all, samples, sizeof(double), cmp_double);
    printf("clients %u, %.1f s: %zu fetches, %.0f fetches/s, errors %lu\n", nclients,
           elapsed, total, (double)total / elapsed, errors);
    if (reconnect)
        printf("broken %lu, unavailable %lu\n", broken, unavailable);
    if (samples > 0)
        printf("latency ms: p50 %.2f  p90 %.2f  p99 %.2f  max %.2f\n",
               all[samples / 2] * 1e3, all[samples * 9 / 10] * 1e3,
               all[samples * 99 / 100] * 1e3, all[samples - 1] * 1e3);
    for (unsigned i = 0; i < nclients; i++)
        free(cl[i].lat);
    free(cl);
    free(all);
    SSL_CTX_free(ctx);
    return errors == 0 && total > 0 ? 0 : 1;
}
