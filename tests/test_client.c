/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of the service client's HTTP/1.1 layer (common/client/http.c): a
 * well-formed answer is read exactly, and every malformed one (status
 * line, header syntax, Content-Length missing, repeated, non-decimal or
 * too large, chunked bodies, truncated bodies, oversized headers, bytes
 * after the body) is refused with DKM_E_PROTOCOL; a silent server runs
 * into the deadline. The server side is a thread writing canned bytes
 * into one end of a socketpair. Also: the request bytes written, and the
 * service URL parser.
 *
 * The dkmd client (common/client/client.c) without a TPM: its configuration
 * checks, the admin call against an in-test server on a Unix socket (each
 * status mapped to its code with the server's reason, non-JSON answers
 * refused, the request as sent), the listing of cached groups, and the
 * trust chain over TLS from an in-test server (the pinned list found, its
 * successors followed, a gap or a missing pin refused, URL failover).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <netinet/in.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "dkm/base/codec.h"
#include "dkm/base/file.h"
#include "dkm/trust/records.h"
#include "fixtures.h"

#include "dkm/client/client.h"
#include "unit.h"

struct feeder {
    int fd;
    const char *data;
    size_t len;
    bool hold; /* keep the connection open after writing */
};

static void *feed(void *arg)
{
    struct feeder *f = arg;
    size_t off = 0;

    while (off < f->len) {
        ssize_t n = send(f->fd, f->data + off, f->len - off, MSG_NOSIGNAL);

        if (n <= 0)
            break;
        off += (size_t)n;
    }
    if (!f->hold)
        shutdown(f->fd, SHUT_WR);
    return NULL;
}

/* Serve data (len bytes) and parse the answer with limits. */
static int parse_len(const char *data, size_t len, const struct dkm_http_limits *limits,
                     unsigned timeout_ms, bool hold, struct dkm_http_response *ret)
{
    int sv[2];
    pthread_t t;
    struct feeder f;
    struct dkm_http_fd hf;
    struct dkm_http_io io;
    int r;

    CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    f = (struct feeder){.fd = sv[1], .data = data, .len = len, .hold = hold};
    CU_ASSERT_FATAL(pthread_create(&t, NULL, feed, &f) == 0);
    hf = (struct dkm_http_fd){.fd = sv[0], .deadline_ms = dkm_http_deadline(timeout_ms)};
    io = dkm_http_fd_io(&hf);
    r = dkm_http_read_response(&io, limits, ret);
    close(sv[0]);
    pthread_join(t, NULL);
    close(sv[1]);
    return r;
}

static int parse(const char *data, struct dkm_http_response *ret)
{
    return parse_len(data, strlen(data), NULL, 5000, false, ret);
}

static void test_client_http_ok(void)
{
    struct dkm_http_response res = {0};

    CU_ASSERT_EQUAL(parse("HTTP/1.1 200 OK\r\n"
                          "Content-Type: application/json\r\n"
                          "content-length:  13 \r\n"
                          "Cache-Control: no-store\r\n"
                          "\r\n"
                          "{\"a\": \"b c\"}\n",
                          &res),
                    0);
    CU_ASSERT_EQUAL(res.status, 200);
    CU_ASSERT_STRING_EQUAL(res.content_type, "application/json");
    CU_ASSERT_EQUAL(res.body_len, 13);
    CU_ASSERT_STRING_EQUAL(res.body, "{\"a\": \"b c\"}\n");
    dkm_http_response_clear(&res);
    CU_ASSERT_PTR_NULL(res.body);

    /* Error statuses, an empty reason and an empty body are answers too. */
    CU_ASSERT_EQUAL(parse("HTTP/1.0 403 \r\nContent-Length: 0\r\n\r\n", &res), 0);
    CU_ASSERT_EQUAL(res.status, 403);
    CU_ASSERT_EQUAL(res.body_len, 0);
    CU_ASSERT_STRING_EQUAL(res.body, "");
    CU_ASSERT_STRING_EQUAL(res.content_type, "");
    dkm_http_response_clear(&res);
    dkm_http_response_clear(NULL);
}

static void test_client_http_large_body_in_pieces(void)
{
    const size_t n = 300000;
    struct dkm_http_limits lim = {.max_header_bytes = 1024, .max_body_bytes = n};
    struct dkm_http_response res = {0};
    char head[64];
    char *data;
    int hl;

    hl =
        snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", n);
    data = malloc((size_t)hl + n);
    CU_ASSERT_FATAL(data != NULL);
    memcpy(data, head, (size_t)hl);
    for (size_t i = 0; i < n; i++)
        data[hl + i] = (char)('a' + i % 26);
    CU_ASSERT_EQUAL(parse_len(data, (size_t)hl + n, &lim, 5000, false, &res), 0);
    CU_ASSERT_EQUAL(res.body_len, n);
    CU_ASSERT(res.body != NULL && memcmp(res.body, data + hl, n) == 0);
    dkm_http_response_clear(&res);
    /* One byte over the limit is refused before the body is read. */
    lim.max_body_bytes = n - 1;
    CU_ASSERT_EQUAL(parse_len(data, (size_t)hl + n, &lim, 5000, false, &res),
                    DKM_E_PROTOCOL);
    CU_ASSERT_PTR_NULL(res.body);
    free(data);
}

static void test_client_http_bad_status_line(void)
{
    static const char *const bad[] = {
        "HTTP/2 200 OK\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.2 200 OK\r\nContent-Length: 0\r\n\r\n",
        "http/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200OK\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1  200 OK\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 100 Continue\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 199 x\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 600 x\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 O\x01K\r\nContent-Length: 0\r\n\r\n",
        " HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        "\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct dkm_http_response res = {0};
        int r = parse(bad[i], &res);

        if (r != DKM_E_PROTOCOL)
            fprintf(stderr, "accepted status line %zu (%d)\n", i, r);
        CU_ASSERT_EQUAL(r, DKM_E_PROTOCOL);
        CU_ASSERT_PTR_NULL(res.body);
    }
}

static void test_client_http_bad_headers(void)
{
    static const char *const bad[] = {
        /* Bare LF, bare CR, folding, no name, bad name, control character. */
        "HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 0\n\r\n",
        "HTTP/1.1 200 OK\r\nX-A: b\rc\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX-A: b\r\n c\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\n: b\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX A: b\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX-A b\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX-A: b\x7f\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Type: a\r\nContent-Type: b\r\n"
        "Content-Length: 0\r\n\r\n",
        /* Content-Length: missing, repeated (even equal), not decimal, signed,
         * two values, empty, too many digits. */
        "HTTP/1.1 200 OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX-A: b\r\n\r\n{}",
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}",
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\ncontent-length: 3\r\n\r\n{}",
        "HTTP/1.1 200 OK\r\nContent-Length: 0x2\r\n\r\n{}",
        "HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\n{}",
        "HTTP/1.1 200 OK\r\nContent-Length: -2\r\n\r\n{}",
        "HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\n{}",
        "HTTP/1.1 200 OK\r\nContent-Length: 2 2\r\n\r\n{}",
        "HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n{}",
        "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n{}",
        "HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551618\r\n\r\n{}",
        /* Larger than the default body limit. */
        "HTTP/1.1 200 OK\r\nContent-Length: 1048577\r\n\r\n{}",
        /* Chunked, with or without a length. */
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: identity\r\n\r\n{}",
        /* Body shorter than announced, bytes after it, nothing at all, no
         * end of header. */
        "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n{}",
        "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n{}",
        "",
        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct dkm_http_response res = {0};
        int r = parse(bad[i], &res);

        if (r != DKM_E_PROTOCOL)
            fprintf(stderr, "accepted header case %zu (%d)\n", i, r);
        CU_ASSERT_EQUAL(r, DKM_E_PROTOCOL);
        CU_ASSERT_PTR_NULL(res.body);
    }
}

/* An in-memory transport that hands out at most max_read bytes per read. */
struct pieces {
    const char *p;
    size_t left, max_read;
};

static int pieces_read(void *ctx, void *buf, size_t len, size_t *ret_n)
{
    struct pieces *m = ctx;
    size_t n = len < m->left ? len : m->left;

    if (n > m->max_read)
        n = m->max_read;
    memcpy(buf, m->p, n);
    m->p += n;
    m->left -= n;
    *ret_n = n;
    return 0;
}

static int parse_pieces(const char *data, size_t max_read, struct dkm_http_response *ret)
{
    struct pieces m = {.p = data, .left = strlen(data), .max_read = max_read};
    struct dkm_http_io io = {.read = pieces_read, .ctx = &m};

    return dkm_http_read_response(&io, NULL, ret);
}

/*
 * Regression (found by tests/fuzz/fuzz_http_client.c, kept as
 * corpus/http_client/bad-bytes-after-body): bytes after the body were
 * refused only when they came in the read that ended the header; in a
 * later read they were never looked at and the answer was accepted.
 */
static void test_client_http_bytes_after_body_any_split(void)
{
    static const char good[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
    static const char bad[] = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n{}";
    static const size_t splits[] = {1, 2, 7, sizeof(good) - 3, sizeof(good) - 2, 4096};

    for (size_t i = 0; i < sizeof(splits) / sizeof(splits[0]); i++) {
        struct dkm_http_response res = {0};

        CU_ASSERT_EQUAL(parse_pieces(good, splits[i], &res), 0);
        CU_ASSERT_EQUAL(res.body_len, 2);
        dkm_http_response_clear(&res);
        CU_ASSERT_EQUAL(parse_pieces(bad, splits[i], &res), DKM_E_PROTOCOL);
        CU_ASSERT_PTR_NULL(res.body);
    }
}

static void test_client_http_oversized_header(void)
{
    struct dkm_http_limits lim = {.max_header_bytes = 256, .max_body_bytes = 1024};
    struct dkm_http_response res = {0};
    char data[2048];
    int n;

    /* Exactly at the limit is fine... */
    n = snprintf(data, sizeof(data), "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-P: ");
    while (n < 256 - 4)
        data[n++] = 'p';
    memcpy(data + n, "\r\n\r\n{}", 7);
    CU_ASSERT_EQUAL(parse_len(data, strlen(data), &lim, 5000, false, &res), 0);
    CU_ASSERT_STRING_EQUAL(res.body, "{}");
    dkm_http_response_clear(&res);
    /* ...one byte more is not, nor a header that never ends. */
    memmove(data + 30, data + 29, strlen(data + 29) + 1);
    CU_ASSERT_EQUAL(parse_len(data, strlen(data), &lim, 5000, false, &res),
                    DKM_E_PROTOCOL);
    memset(data, 'x', sizeof(data));
    memcpy(data, "HTTP/1.1 200 OK\r\nX-P: ", 22);
    CU_ASSERT_EQUAL(parse_len(data, sizeof(data), &lim, 5000, false, &res),
                    DKM_E_PROTOCOL);
    /* Too many header lines, each small. */
    n = snprintf(data, sizeof(data), "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n");
    for (int i = 0; i <= DKM_HTTP_HEADERS_MAX; i++)
        n += snprintf(data + n, sizeof(data) - (size_t)n, "A: b\r\n");
    snprintf(data + n, sizeof(data) - (size_t)n, "\r\n");
    CU_ASSERT_EQUAL(parse(data, &res), DKM_E_PROTOCOL);
    CU_ASSERT_PTR_NULL(res.body);
}

static void test_client_http_deadline(void)
{
    struct dkm_http_response res = {0};
    int64_t t0 = dkm_http_now_ms();

    /* The server says part of the answer and then nothing. */
    CU_ASSERT_EQUAL(parse_len("HTTP/1.1 200 OK\r\n", 17, NULL, 300, true, &res),
                    -ETIMEDOUT);
    CU_ASSERT(dkm_http_now_ms() - t0 >= 290);
    CU_ASSERT(dkm_http_now_ms() - t0 < 3000);
    CU_ASSERT_PTR_NULL(res.body);
}

static int sink_write(void *ctx, const void *buf, size_t len)
{
    char *out = ctx;
    size_t have = strlen(out);

    if (have + len >= 1024)
        return -ENOBUFS;
    memcpy(out + have, buf, len);
    out[have + len] = '\0';
    return 0;
}

static void test_client_http_request_bytes(void)
{
    char out[1024] = "";
    struct dkm_http_io io = {.write = sink_write, .ctx = out};
    char expect[512];

    CU_ASSERT_EQUAL(
        dkm_http_write_request(&io, "POST", "h.example:8443", "/v1/keys/fetch", "{}", 2),
        0);
    snprintf(expect, sizeof(expect),
             "POST /v1/keys/fetch HTTP/1.1\r\nHost: h.example:8443\r\n"
             "User-Agent: dkm/%s\r\nAccept: application/json\r\nConnection: close\r\n"
             "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
             DKM_VERSION);
    CU_ASSERT_STRING_EQUAL(out, expect);

    /* A POST without a body still says its length; a GET does not. */
    out[0] = '\0';
    CU_ASSERT_EQUAL(dkm_http_write_request(&io, "POST", "h", "/v1/x/revoke", NULL, 0), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\r\nContent-Length: 0\r\n\r\n"));
    CU_ASSERT_PTR_NULL(strstr(out, "Content-Type"));
    out[0] = '\0';
    CU_ASSERT_EQUAL(dkm_http_write_request(&io, "GET", "h", "/v1/trust", NULL, 0), 0);
    CU_ASSERT_PTR_NULL(strstr(out, "Content-Length"));

    /* Nothing that would split the request line or a header is written. */
    out[0] = '\0';
    CU_ASSERT_EQUAL(dkm_http_write_request(&io, "GET", "h", "/a b", NULL, 0), -EINVAL);
    CU_ASSERT_EQUAL(dkm_http_write_request(&io, "GET", "h", "/a\r\nX: y", NULL, 0),
                    -EINVAL);
    CU_ASSERT_EQUAL(dkm_http_write_request(&io, "GET", "h", "v1", NULL, 0), -EINVAL);
    CU_ASSERT_EQUAL(dkm_http_write_request(&io, "G T", "h", "/", NULL, 0), -EINVAL);
    CU_ASSERT_EQUAL(dkm_http_write_request(&io, "GET", "h\r\nX: y", "/", NULL, 0),
                    -EINVAL);
    CU_ASSERT_STRING_EQUAL(out, "");
}

static void test_client_url_parse(void)
{
    struct dkm_http_url u;
    static const char *const bad[] = {
        "http://h:1",  "https://",        "https://:1",   "https://h:",
        "https://h:0", "https://h:65536", "https://h:1x", "https://h/path",
        "https://u@h", "https://h:1:2",   "https://[::1", "https://[]:1",
        "https://h h", "ftp://h",         "https://h?x",
    };

    CU_ASSERT_EQUAL(dkm_http_url_parse("https://dkm.example", 19, &u), 0);
    CU_ASSERT_STRING_EQUAL(u.host, "dkm.example");
    CU_ASSERT_EQUAL(u.port, 443);
    CU_ASSERT_EQUAL(dkm_http_url_parse("https://127.0.0.1:8443/", 23, &u), 0);
    CU_ASSERT_STRING_EQUAL(u.host, "127.0.0.1");
    CU_ASSERT_EQUAL(u.port, 8443);
    CU_ASSERT_EQUAL(dkm_http_url_parse("HTTPS://[::1]:65535", 19, &u), 0);
    CU_ASSERT_STRING_EQUAL(u.host, "::1");
    CU_ASSERT_EQUAL(u.port, 65535);
    /* Only len bytes count: the first URL of a list. */
    CU_ASSERT_EQUAL(dkm_http_url_parse("https://a:1,https://b:2", 11, &u), 0);
    CU_ASSERT_STRING_EQUAL(u.host, "a");
    CU_ASSERT_EQUAL(u.port, 1);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int r = dkm_http_url_parse(bad[i], strlen(bad[i]), &u);

        if (r != -EINVAL)
            fprintf(stderr, "accepted URL %s\n", bad[i]);
        CU_ASSERT_EQUAL(r, -EINVAL);
    }
}

static void test_client_connect_refused(void)
{
    int fd = -1;
    char path[512];

    /* A Unix socket path where nothing listens: unavailable, named. */
    snprintf(path, sizeof(path), "%s/nothing.sock", dkm_test_tmpdir());
    CU_ASSERT_EQUAL(dkm_http_connect_unix(path, dkm_http_deadline(1000), &fd),
                    DKM_E_UNAVAILABLE);
    CU_ASSERT_PTR_NOT_NULL(strstr(dkm_error_detail(), "nothing.sock"));
    CU_ASSERT_EQUAL(fd, -1);
}

/* ---- the dkmd client ---- */

static void test_client_config_checks(void)
{
    static const char *const bad_services[] = {
        "http://a:1",
        "https://a:1,",
        "https://a:1,,https://b:2",
        "https://a:1,http://b:2",
        "https://a:1,https://b:2,https://c:3,https://d:4,https://e:5,https://f:6,"
        "https://g:7,https://h:8,https://i:9",
    };
    /* No kernel keyring: unit tests never touch the user's (test_keyring has its own). */
    struct dkm_client_config cfg = {.key_cache = "process"};
    struct dkm_client *c = NULL;

    cfg.service = "https://a.example:8443, https://b.example";
    cfg.trust = "sha256:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    CU_ASSERT_EQUAL(dkm_client_new(&cfg, NULL, NULL, &c), 0);
    dkm_client_free(c);
    c = NULL;
    dkm_client_free(NULL);
    for (size_t i = 0; i < sizeof(bad_services) / sizeof(bad_services[0]); i++) {
        cfg.service = bad_services[i];
        CU_ASSERT_EQUAL(dkm_client_new(&cfg, NULL, NULL, &c), DKM_E_CONFIG);
        CU_ASSERT_PTR_NULL(c);
    }
    cfg.service = "https://a:1";
    cfg.trust = "0011";
    CU_ASSERT_EQUAL(dkm_client_new(&cfg, NULL, NULL, &c), DKM_E_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(dkm_error_detail(), "trust"));
    cfg.trust = NULL;
    cfg.tls_key = "key.pem";
    CU_ASSERT_EQUAL(dkm_client_new(&cfg, NULL, NULL, &c), DKM_E_CONFIG);
    CU_ASSERT_PTR_NULL(c);
}

/* A one-answer-per-connection server on a Unix socket. */
struct fake_dkmd {
    int fd;
    const char *const *answers;
    size_t n;
    char request[4096]; /* the last request, headers and body */
    pthread_t thread;
};

static void *fake_dkmd_run(void *arg)
{
    struct fake_dkmd *d = arg;

    for (size_t i = 0; i < d->n; i++) {
        int cfd = accept(d->fd, NULL, NULL);
        size_t have = 0;

        if (cfd < 0)
            break;
        /* Read the head, then as many body bytes as Content-Length says. */
        for (;;) {
            const char *end, *cl;
            ssize_t n = recv(cfd, d->request + have, sizeof(d->request) - 1 - have, 0);

            if (n <= 0)
                break;
            have += (size_t)n;
            d->request[have] = '\0';
            end = strstr(d->request, "\r\n\r\n");
            if (end == NULL)
                continue;
            cl = strstr(d->request, "Content-Length: ");
            if (cl == NULL ||
                have >= (size_t)(end + 4 - d->request) + strtoul(cl + 16, NULL, 10))
                break;
        }
        (void)!send(cfd, d->answers[i], strlen(d->answers[i]), MSG_NOSIGNAL);
        close(cfd);
    }
    return NULL;
}

static void fake_dkmd_start(struct fake_dkmd *d, const char *path,
                            const char *const *answers, size_t n)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};

    memset(d, 0, sizeof(*d));
    d->answers = answers;
    d->n = n;
    unlink(path);
    CU_ASSERT_FATAL(strlen(path) < sizeof(sa.sun_path));
    memcpy(sa.sun_path, path, strlen(path) + 1);
    d->fd = socket(AF_UNIX, SOCK_STREAM, 0);
    CU_ASSERT_FATAL(d->fd >= 0);
    CU_ASSERT_FATAL(bind(d->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    CU_ASSERT_FATAL(listen(d->fd, 4) == 0);
    CU_ASSERT_FATAL(pthread_create(&d->thread, NULL, fake_dkmd_run, d) == 0);
}

static void fake_dkmd_stop(struct fake_dkmd *d)
{
    pthread_join(d->thread, NULL);
    close(d->fd);
}

static char *answer(const char *status, const char *body)
{
    char *s = NULL;

    CU_ASSERT_FATAL(asprintf(&s,
                             "HTTP/1.1 %s\r\nContent-Type: application/json\r\n"
                             "Content-Length: %zu\r\n\r\n%s",
                             status, strlen(body), body) > 0);
    return s;
}

static void test_client_admin_call_statuses(void)
{
    static const struct {
        const char *status;
        const char *body;
        int code;
        const char *reason; /* what the error detail must quote */
    } cases[] = {
        {"200 OK", "{\"version\": 2}", 0, NULL},
        {"400 Bad Request", "{\"error\":\"bad request\",\"detail\":\"ttl: too big\"}",
         -EINVAL, "bad request: ttl: too big"},
        {"403 Forbidden", "{\"error\":\"forbidden\",\"detail\":\"not granted\"}",
         DKM_E_DENIED, "forbidden: not granted"},
        {"404 Not Found", "{\"error\":\"not found\",\"detail\":\"no group g\"}", -ENOENT,
         "no group g"},
        {"409 Conflict", "{\"error\":\"conflict\",\"detail\":\"exists\"}", -EEXIST,
         "exists"},
        {"410 Gone", "{\"error\":\"expired\",\"detail\":\"version 1\"}", DKM_E_EXPIRED,
         "version 1"},
        {"500 Internal Server Error", "{\"error\":\"internal error\"}", DKM_E_PROTOCOL,
         "internal error"},
        {"503 Service Unavailable", "{\"error\":\"service unavailable\"}",
         DKM_E_UNAVAILABLE, NULL},
        {"413 Payload Too Large", "<html>too large</html>", DKM_E_PROTOCOL, NULL},
        {"200 OK", "not json", DKM_E_PROTOCOL, "not a JSON object"},
        {"200 OK", "[1, 2]", DKM_E_PROTOCOL, "not a JSON object"},
        {"200 OK", "{\"a\": 1, \"a\": 2}", DKM_E_PROTOCOL, "not a JSON object"},
    };
    enum { N = sizeof(cases) / sizeof(cases[0]) };
    char *answers[N];
    char path[512];
    /* No kernel keyring: unit tests never touch the user's (test_keyring has its own). */
    struct dkm_client_config cfg = {.key_cache = "process"};
    struct dkm_client *c = NULL;
    struct fake_dkmd d;

    for (size_t i = 0; i < N; i++)
        answers[i] = answer(cases[i].status, cases[i].body);
    snprintf(path, sizeof(path), "%s/admin.sock", dkm_test_tmpdir());
    fake_dkmd_start(&d, path, (const char *const *)answers, N);
    cfg.admin_socket = path;
    cfg.timeout_ms = 5000;
    CU_ASSERT_FATAL(dkm_client_new(&cfg, NULL, NULL, &c) == 0);
    for (size_t i = 0; i < N; i++) {
        json_t *body = json_pack("{s:s}", "node_id", "n"), *ret = NULL;
        int r = dkm_client_call(c, true, "POST", "/v1/groups/g/rotate",
                                i == 0 ? body : NULL, &ret);

        if (r != cases[i].code)
            fprintf(stderr, "case %zu: %d (%s)\n", i, r, dkm_error_detail());
        CU_ASSERT_EQUAL(r, cases[i].code);
        if (r == 0) {
            CU_ASSERT_EQUAL(json_integer_value(json_object_get(ret, "version")), 2);
            /* The request as the server saw it. */
            CU_ASSERT(strncmp(d.request, "POST /v1/groups/g/rotate HTTP/1.1\r\n", 35) ==
                      0);
            CU_ASSERT_PTR_NOT_NULL(
                strstr(d.request, "Content-Type: application/json\r\n"));
            CU_ASSERT_PTR_NOT_NULL(strstr(d.request, "\r\n\r\n{\"node_id\":\"n\"}"));
        } else {
            CU_ASSERT_PTR_NULL(ret);
            /* The server's reason reaches the user. */
            char said[32];

            snprintf(said, sizeof(said), "answered %.3s", cases[i].status);
            CU_ASSERT_PTR_NOT_NULL(strstr(dkm_error_detail(), said));
            if (cases[i].reason != NULL)
                CU_ASSERT_PTR_NOT_NULL(strstr(dkm_error_detail(), cases[i].reason));
            CU_ASSERT_PTR_NOT_NULL(strstr(dkm_error_detail(), path));
        }
        json_decref(ret);
        json_decref(body);
    }
    fake_dkmd_stop(&d);
    dkm_client_free(c);
    for (size_t i = 0; i < N; i++)
        free(answers[i]);
}

static void test_client_admin_unavailable(void)
{
    /* No kernel keyring: unit tests never touch the user's (test_keyring has its own). */
    struct dkm_client_config cfg = {.key_cache = "process"};
    struct dkm_client *c = NULL;
    json_t *ret = NULL;
    char path[512];

    /* No admin socket configured: a configuration error, nothing sent. */
    cfg.service = "https://127.0.0.1:1";
    CU_ASSERT_FATAL(dkm_client_new(&cfg, NULL, NULL, &c) == 0);
    CU_ASSERT_EQUAL(dkm_client_call(c, true, "GET", "/v1/nodes", NULL, &ret),
                    DKM_E_CONFIG);
    dkm_client_free(c);
    c = NULL;
    /* Nothing listening: unavailable, naming the socket. */
    snprintf(path, sizeof(path), "%s/none.sock", dkm_test_tmpdir());
    cfg.service = NULL;
    cfg.admin_socket = path;
    CU_ASSERT_FATAL(dkm_client_new(&cfg, NULL, NULL, &c) == 0);
    CU_ASSERT_EQUAL(dkm_client_call(c, true, "GET", "/v1/nodes", NULL, &ret),
                    DKM_E_UNAVAILABLE);
    CU_ASSERT_PTR_NOT_NULL(strstr(dkm_error_detail(), "none.sock"));
    CU_ASSERT_PTR_NULL(ret);
    /* And no service configured for a TLS call. */
    CU_ASSERT_EQUAL(dkm_client_call(c, false, "GET", "/v1/trust", NULL, &ret),
                    DKM_E_CONFIG);
    dkm_client_free(c);
}

static int collect(void *arg, const char *group)
{
    char *out = arg;

    strcat(out, group);
    strcat(out, ";");
    return 0;
}

static int stop_at_first(void *arg, const char *group)
{
    (void)group;
    (*(int *)arg)++;
    return -ECANCELED;
}

static void test_client_cached_groups(void)
{
    static const char *const files[] = {
        "g.1.dkc",     "g.2.dkc", "a.b.3.dkc", "x.dkc",       "bad!.1.dkc",
        "h.1.dkc.tmp", "h..dkc",  "cache.key", "trust.lists",
    };
    /* No kernel keyring: unit tests never touch the user's (test_keyring has its own). */
    struct dkm_client_config cfg = {.key_cache = "process"};
    struct dkm_client *c = NULL;
    char dir[512], path[600], out[256] = "";
    int calls = 0;

    snprintf(dir, sizeof(dir), "%s/cache", dkm_test_tmpdir());
    CU_ASSERT_FATAL(mkdir(dir, 0700) == 0);
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
        CU_ASSERT_FATAL(dkm_file_write(path, "x", 1, 0600, false) == 0);
    }
    cfg.cache_dir = dir;
    CU_ASSERT_FATAL(dkm_client_new(&cfg, NULL, NULL, &c) == 0);
    CU_ASSERT_EQUAL(dkm_client_cached_groups(c, collect, out), 0);
    /* Each valid group once, whatever the directory order. */
    CU_ASSERT(strcmp(out, "g;a.b;") == 0 || strcmp(out, "a.b;g;") == 0);
    CU_ASSERT_EQUAL(dkm_client_cached_groups(c, stop_at_first, &calls), -ECANCELED);
    CU_ASSERT_EQUAL(calls, 1);
    dkm_client_free(c);
    /* No cache directory: nothing to list, no error. */
    cfg.cache_dir = NULL;
    CU_ASSERT_FATAL(dkm_client_new(&cfg, NULL, NULL, &c) == 0);
    CU_ASSERT_EQUAL(dkm_client_cached_groups(c, collect, out), 0);
    dkm_client_free(c);
}

/* ---- trust over TLS ---- */

/* A server list of version v with the given servers, signed by by; base64url. */
static char *make_list(uint32_t v, struct dkm_test_server **servers, size_t n,
                       struct dkm_test_server *by, uint8_t fpr[DKM_FINGERPRINT_SIZE])
{
    struct dkm_server_list l = {.list_version = v, .issued_at = 1700000000u + v};
    struct dkm_signer s = dkm_test_server_signer(by);
    uint8_t *buf = NULL;
    size_t len = 0;
    char *b64;

    for (size_t i = 0; i < n; i++) {
        l.entries[i].node_id = servers[i]->id;
        l.entries[i].ek = servers[i]->ek;
        l.entries[i].sk = servers[i]->pub;
    }
    l.count = (uint8_t)n;
    CU_ASSERT_FATAL(dkm_server_list_sign(&l, &s, &buf, &len) == 0);
    if (fpr != NULL)
        CU_ASSERT_FATAL(dkm_server_list_fingerprint(buf, len, fpr) == 0);
    b64 = malloc(dkm_b64url_encoded_len(len) + 1);
    CU_ASSERT_FATAL(b64 != NULL);
    CU_ASSERT_FATAL(dkm_b64url_encode(buf, len, b64, dkm_b64url_encoded_len(len) + 1) ==
                    0);
    free(buf);
    return b64;
}

struct tls_server {
    SSL_CTX *ctx;
    int fd;
    uint16_t port;
    const char *const *answers;
    size_t n;
    pthread_t thread;
};

static void *tls_server_run(void *arg)
{
    struct tls_server *t = arg;

    for (size_t i = 0; i < t->n; i++) {
        int cfd = accept(t->fd, NULL, NULL);
        SSL *ssl;
        char req[4096];
        size_t have = 0;

        if (cfd < 0)
            break;
        ssl = SSL_new(t->ctx);
        if (ssl != NULL && SSL_set_fd(ssl, cfd) == 1 && SSL_accept(ssl) == 1) {
            for (;;) {
                size_t n = 0;

                if (SSL_read_ex(ssl, req + have, sizeof(req) - 1 - have, &n) != 1)
                    break;
                have += n;
                req[have] = '\0';
                if (strstr(req, "\r\n\r\n") != NULL)
                    break;
            }
            (void)SSL_write(ssl, t->answers[i], (int)strlen(t->answers[i]));
            SSL_shutdown(ssl);
        }
        SSL_free(ssl);
        close(cfd);
    }
    return NULL;
}

static void tls_server_start(struct tls_server *t, const char *const *answers, size_t n)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t salen = sizeof(sa);
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    X509 *cert = X509_new();

    memset(t, 0, sizeof(*t));
    t->answers = answers;
    t->n = n;
    CU_ASSERT_FATAL(key != NULL && cert != NULL);
    CU_ASSERT_FATAL(ASN1_INTEGER_set(X509_get_serialNumber(cert), 1) == 1);
    CU_ASSERT_FATAL(X509_gmtime_adj(X509_getm_notBefore(cert), 0) != NULL);
    CU_ASSERT_FATAL(X509_gmtime_adj(X509_getm_notAfter(cert), 3600) != NULL);
    CU_ASSERT_FATAL(X509_set_pubkey(cert, key) == 1);
    CU_ASSERT_FATAL(X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN",
                                               MBSTRING_ASC, (const uint8_t *)"t", -1, -1,
                                               0) == 1);
    CU_ASSERT_FATAL(X509_set_issuer_name(cert, X509_get_subject_name(cert)) == 1);
    CU_ASSERT_FATAL(X509_sign(cert, key, EVP_sha256()) > 0);
    t->ctx = SSL_CTX_new(TLS_server_method());
    CU_ASSERT_FATAL(t->ctx != NULL && SSL_CTX_use_certificate(t->ctx, cert) == 1 &&
                    SSL_CTX_use_PrivateKey(t->ctx, key) == 1);
    X509_free(cert);
    EVP_PKEY_free(key);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    t->fd = socket(AF_INET, SOCK_STREAM, 0);
    CU_ASSERT_FATAL(t->fd >= 0);
    CU_ASSERT_FATAL(bind(t->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    CU_ASSERT_FATAL(listen(t->fd, 4) == 0);
    CU_ASSERT_FATAL(getsockname(t->fd, (struct sockaddr *)&sa, &salen) == 0);
    t->port = ntohs(sa.sin_port);
    CU_ASSERT_FATAL(pthread_create(&t->thread, NULL, tls_server_run, t) == 0);
}

static void tls_server_stop(struct tls_server *t)
{
    pthread_join(t->thread, NULL);
    close(t->fd);
    SSL_CTX_free(t->ctx);
}

/* A port where nothing listens (bound, then closed). */
static uint16_t dead_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t salen = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CU_ASSERT_FATAL(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
                    getsockname(fd, (struct sockaddr *)&sa, &salen) == 0);
    close(fd);
    return ntohs(sa.sin_port);
}

static void test_client_trust_chain(void)
{
    struct dkm_test_server a, b;
    struct dkm_test_server *only_a[] = {&a}, *both[] = {&a, &b}, *only_b[] = {&b};
    uint8_t pin[DKM_FINGERPRINT_SIZE];
    char *v1, *v2, *v3, *answers[3], *body, service[128], trust[80], dir[512], file[600];
    /* No kernel keyring: unit tests never touch the user's (test_keyring has its own). */
    struct dkm_client_config cfg = {.key_cache = "process"};
    struct dkm_server_list list;
    struct dkm_client *c = NULL;
    struct tls_server t;
    uint8_t *saved = NULL;
    size_t saved_len = 0;

    CU_ASSERT_FATAL(dkm_test_server_make(&a) == 0 && dkm_test_server_make(&b) == 0);
    v1 = make_list(1, only_a, 1, &a, pin);
    v2 = make_list(2, both, 2, &a, NULL);
    v3 = make_list(3, only_b, 1, &b, NULL);
    /* 1: the whole chain; 2: the pinned list missing; 3: a gap (v2 left out). */
    CU_ASSERT_FATAL(asprintf(&body, "{\"lists\":[\"%s\",\"%s\",\"%s\"]}", v1, v2, v3) >
                    0);
    answers[0] = answer("200 OK", body);
    free(body);
    CU_ASSERT_FATAL(asprintf(&body, "{\"lists\":[\"%s\",\"%s\"]}", v2, v3) > 0);
    answers[1] = answer("200 OK", body);
    free(body);
    CU_ASSERT_FATAL(asprintf(&body, "{\"lists\":[\"%s\",\"%s\"]}", v1, v3) > 0);
    answers[2] = answer("200 OK", body);
    free(body);
    tls_server_start(&t, (const char *const *)answers, 3);
    CU_ASSERT_FATAL(dkm_hex_encode(pin, sizeof(pin), trust, sizeof(trust)) == 0);
    /* The first URL is dead: the client goes on to the live one. */
    snprintf(service, sizeof(service), "https://127.0.0.1:%u,https://127.0.0.1:%u",
             (unsigned)dead_port(), (unsigned)t.port);
    snprintf(dir, sizeof(dir), "%s/trustcache", dkm_test_tmpdir());
    cfg.service = service;
    cfg.trust = trust;
    cfg.cache_dir = dir;
    cfg.timeout_ms = 5000;

    CU_ASSERT_FATAL(dkm_client_new(&cfg, NULL, NULL, &c) == 0);
    CU_ASSERT_EQUAL(dkm_client_trust(c, &list), 0);
    CU_ASSERT_EQUAL(list.list_version, 3);
    CU_ASSERT_EQUAL(list.count, 1);
    CU_ASSERT(dkm_node_id_equal(&list.entries[0].node_id, &b.id));
    /* The chain is kept from the pinned list on, for offline checks. */
    snprintf(file, sizeof(file), "%s/trust.lists", dir);
    CU_ASSERT_EQUAL(dkm_file_read(file, 1u << 20, &saved, &saved_len), 0);
    CU_ASSERT(saved_len > 8 && memcmp(saved, "DKTL\0\1\0\3", 8) == 0);
    free(saved);
    dkm_client_free(c);
    c = NULL;

    cfg.cache_dir = NULL;
    CU_ASSERT_FATAL(dkm_client_new(&cfg, NULL, NULL, &c) == 0);
    CU_ASSERT_EQUAL(dkm_client_trust(c, &list), DKM_E_SIGNATURE);
    CU_ASSERT_PTR_NOT_NULL(strstr(dkm_error_detail(), "pinned"));
    dkm_client_free(c);
    c = NULL;
    CU_ASSERT_FATAL(dkm_client_new(&cfg, NULL, NULL, &c) == 0);
    CU_ASSERT_EQUAL(dkm_client_trust(c, &list), DKM_E_SIGNATURE);
    dkm_client_free(c);

    tls_server_stop(&t);
    for (size_t i = 0; i < 3; i++)
        free(answers[i]);
    free(v1);
    free(v2);
    free(v3);
    dkm_test_server_free(&a);
    dkm_test_server_free(&b);
}

static CU_TestInfo http_tests[] = {
    {"test_client_http_ok", test_client_http_ok},
    {"test_client_http_large_body_in_pieces", test_client_http_large_body_in_pieces},
    {"test_client_http_bad_status_line", test_client_http_bad_status_line},
    {"test_client_http_bad_headers", test_client_http_bad_headers},
    {"test_client_http_bytes_after_body_any_split",
     test_client_http_bytes_after_body_any_split},
    {"test_client_http_oversized_header", test_client_http_oversized_header},
    {"test_client_http_deadline", test_client_http_deadline},
    {"test_client_http_request_bytes", test_client_http_request_bytes},
    {"test_client_url_parse", test_client_url_parse},
    {"test_client_connect_refused", test_client_connect_refused},
    CU_TEST_INFO_NULL,
};

static CU_TestInfo client_tests[] = {
    {"test_client_config_checks", test_client_config_checks},
    {"test_client_admin_call_statuses", test_client_admin_call_statuses},
    {"test_client_admin_unavailable", test_client_admin_unavailable},
    {"test_client_cached_groups", test_client_cached_groups},
    {"test_client_trust_chain", test_client_trust_chain},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {"client_http", NULL, NULL, NULL, NULL, http_tests},
    {"client", NULL, NULL, NULL, NULL, client_tests},
    CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv)
{
    return dkm_test_main(argc, argv, suites);
}
