/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HTTP/1.1 part of the service client (include/dkm/client/client.h): socket
 * connection with deadlines, request writing and a strict response
 * reader. The client sends one request per connection (Connection:
 * close), so an answer is complete when Content-Length bytes of body
 * have arrived and the server has closed; everything a well-behaved dkmd
 * never sends (chunked bodies, folded or oversized headers, a second
 * Content-Length, bytes after the body) is refused rather than
 * interpreted, so that no two readers of the same bytes can disagree
 * about where the answer ends.
 */
#include "dkm/client/client.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define READ_CHUNK 4096
#define CONTENT_LENGTH_DIGITS_MAX 19

int64_t dkm_http_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t dkm_http_deadline(unsigned timeout_ms)
{
    return dkm_http_now_ms() + (int64_t)timeout_ms;
}

int dkm_http_wait(int fd, short events, int64_t deadline_ms, const char *what)
{
    struct pollfd p = {.fd = fd, .events = events};

    for (;;) {
        int64_t left = deadline_ms - dkm_http_now_ms();
        int n;

        if (left <= 0)
            return dkm_error_set(-ETIMEDOUT, "timed out %s", what);
        n = poll(&p, 1, left > 60000 ? 60000 : (int)left);
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return dkm_error_set(-errno, "poll while %s: %s", what, strerror(errno));
    }
}

static int fd_read(void *ctx, void *buf, size_t len, size_t *ret_n)
{
    struct dkm_http_fd *f = ctx;

    for (;;) {
        ssize_t n = recv(f->fd, buf, len, MSG_DONTWAIT);
        int r;

        if (n >= 0) {
            *ret_n = (size_t)n;
            return 0;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return dkm_error_set(-errno, "reading the answer: %s", strerror(errno));
        r = dkm_http_wait(f->fd, POLLIN, f->deadline_ms, "waiting for the answer");
        if (r < 0)
            return r;
    }
}

static int fd_write(void *ctx, const void *buf, size_t len)
{
    struct dkm_http_fd *f = ctx;
    const uint8_t *p = buf;

    while (len > 0) {
        ssize_t n = send(f->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        int r;

        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return dkm_error_set(-errno, "sending the request: %s", strerror(errno));
        r = dkm_http_wait(f->fd, POLLOUT, f->deadline_ms, "sending the request");
        if (r < 0)
            return r;
    }
    return 0;
}

struct dkm_http_io dkm_http_fd_io(struct dkm_http_fd *f)
{
    struct dkm_http_io io = {.read = fd_read, .write = fd_write, .ctx = f};

    return io;
}

/* Finish a non-blocking connect by the deadline. */
static int connect_fd(int fd, const struct sockaddr *sa, socklen_t salen,
                      int64_t deadline_ms, const char *peer)
{
    int err = 0;
    socklen_t errlen = sizeof(err);
    int r;

    if (connect(fd, sa, salen) == 0)
        return 0;
    if (errno != EINPROGRESS && errno != EINTR)
        return dkm_error_set(DKM_E_UNAVAILABLE, "cannot connect to %s: %s", peer,
                             strerror(errno));
    r = dkm_http_wait(fd, POLLOUT, deadline_ms, "connecting");
    if (r < 0)
        return dkm_error_set(DKM_E_UNAVAILABLE, "cannot connect to %s: timed out", peer);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &errlen) < 0)
        err = errno;
    if (err != 0)
        return dkm_error_set(DKM_E_UNAVAILABLE, "cannot connect to %s: %s", peer,
                             strerror(err));
    return 0;
}

int dkm_http_connect_tcp(const char *host, uint16_t port, int64_t deadline_ms,
                         int *ret_fd)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL, *ai;
    char portstr[8], peer[DKM_HTTP_HOST_MAX + 16];
    int fd = -1, r = DKM_E_UNAVAILABLE, g;

    snprintf(portstr, sizeof(portstr), "%u", (unsigned)port);
    snprintf(peer, sizeof(peer), "%s:%u", host, (unsigned)port);
    g = getaddrinfo(host, portstr, &hints, &res);
    if (g != 0) {
        r = dkm_error_set(DKM_E_UNAVAILABLE, "cannot resolve %s: %s", host,
                          gai_strerror(g));
        goto done;
    }
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    ai->ai_protocol);
        if (fd < 0) {
            r = dkm_error_set(DKM_E_UNAVAILABLE, "socket for %s: %s", peer,
                              strerror(errno));
            continue;
        }
        /* A request is one write and the answer comes back before the
         * next one: nothing to coalesce, and Nagle's algorithm would only
         * wait for ACKs (the TLS Finished and the request go back to back). */
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
        r = connect_fd(fd, ai->ai_addr, ai->ai_addrlen, deadline_ms, peer);
        if (r == 0)
            break;
        close(fd);
        fd = -1;
    }
    if (fd < 0)
        goto done;
    *ret_fd = fd;
    r = 0;
done:
    if (res != NULL)
        freeaddrinfo(res);
    return r;
}

int dkm_http_connect_unix(const char *path, int64_t deadline_ms, int *ret_fd)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = -1, r;

    if (strlen(path) >= sizeof(sa.sun_path))
        return dkm_error_set(-EINVAL, "socket path too long: %.64s...", path);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return dkm_error_set(DKM_E_UNAVAILABLE, "socket: %s", strerror(errno));
    r = connect_fd(fd, (const struct sockaddr *)&sa, sizeof(sa), deadline_ms, path);
    if (r < 0) {
        close(fd);
        return r;
    }
    *ret_fd = fd;
    return 0;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* RFC 9110 tchar. */
static bool is_tchar(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

int dkm_http_url_parse(const char *s, size_t len, struct dkm_http_url *ret)
{
    struct dkm_http_url u = {.port = 443};
    const char *p = s + 8, *end = s + len, *host, *host_end;
    size_t hlen;

    if (len < 9 || strncasecmp(s, "https://", 8) != 0)
        return dkm_error_set(-EINVAL, "service URL must start with https://: \"%.*s\"",
                             (int)(len > 80 ? 80 : len), s);
    if (end[-1] == '/')
        end--;
    if (*p == '[') {
        host = ++p;
        while (p < end && *p != ']')
            p++;
        if (p == end)
            goto bad;
        host_end = p++;
    } else {
        host = p;
        while (p < end && *p != ':')
            p++;
        host_end = p;
    }
    hlen = (size_t)(host_end - host);
    if (hlen == 0 || hlen > DKM_HTTP_HOST_MAX)
        goto bad;
    for (const char *h = host; h < host_end; h++) {
        bool ok = (*h >= 'a' && *h <= 'z') || (*h >= 'A' && *h <= 'Z') || is_digit(*h) ||
                  *h == '.' || *h == '-' || *h == '_' || (*h == ':' && host[-1] == '[');

        if (!ok)
            goto bad;
    }
    if (p < end) {
        unsigned long port = 0;

        if (*p++ != ':' || p == end || end - p > 5)
            goto bad;
        for (; p < end; p++) {
            if (!is_digit(*p))
                goto bad;
            port = port * 10 + (unsigned long)(*p - '0');
        }
        if (port == 0 || port > 65535)
            goto bad;
        u.port = (uint16_t)port;
    }
    memcpy(u.host, host, hlen);
    u.host[hlen] = '\0';
    *ret = u;
    return 0;
bad:
    return dkm_error_set(-EINVAL, "not an https://HOST[:PORT] URL: \"%.*s\"",
                         (int)(len > 80 ? 80 : len), s);
}

int dkm_http_write_request(const struct dkm_http_io *io, const char *method,
                           const char *host, const char *path, const void *body,
                           size_t body_len)
{
    bool needs_length =
        body != NULL || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0;
    char *head = NULL, *req = NULL, cl[48] = "";
    int n, r = -ENOMEM;

    for (const char *m = method; *m != '\0'; m++) {
        if (!is_tchar(*m))
            return dkm_error_set(-EINVAL, "bad HTTP method");
    }
    if (method[0] == '\0' || path[0] != '/')
        return dkm_error_set(-EINVAL, "bad HTTP request target");
    for (const char *q = path; *q != '\0'; q++) {
        if ((unsigned char)*q <= 0x20 || (unsigned char)*q >= 0x7f)
            return dkm_error_set(-EINVAL, "bad character in request path");
    }
    for (const char *q = host; *q != '\0'; q++) {
        if ((unsigned char)*q <= 0x20 || (unsigned char)*q >= 0x7f)
            return dkm_error_set(-EINVAL, "bad character in host name");
    }
    if (needs_length)
        snprintf(cl, sizeof(cl), "Content-Length: %zu\r\n", body_len);
    n = asprintf(&head,
                 "%s %s HTTP/1.1\r\n"
                 "Host: %s\r\n"
                 "User-Agent: dkm/%s\r\n"
                 "Accept: application/json\r\n"
                 "Connection: close\r\n"
                 "%s%s\r\n",
                 method, path, host, DKM_VERSION,
                 body != NULL ? "Content-Type: application/json\r\n" : "", cl);
    if (n < 0)
        return dkm_error_set(-ENOMEM, "out of memory for a request");
    /* One write of the whole request: with a write per piece, the peer's
     * delayed ACK and Nagle's algorithm hold the last piece back for
     * ~40 ms on every request. */
    if (body != NULL && body_len > 0) {
        if (body_len > SIZE_MAX - (size_t)n) {
            r = dkm_error_set(-E2BIG, "request body too large");
            goto done;
        }
        req = malloc((size_t)n + body_len);
        if (req == NULL) {
            r = dkm_error_set(-ENOMEM, "out of memory for a request");
            goto done;
        }
        memcpy(req, head, (size_t)n);
        memcpy(req + n, body, body_len);
        r = io->write(io->ctx, req, (size_t)n + body_len);
    } else {
        r = io->write(io->ctx, head, (size_t)n);
    }
done:
    free(req);
    free(head);
    return r;
}

void dkm_http_response_clear(struct dkm_http_response *r)
{
    if (r == NULL)
        return;
    free(r->body);
    memset(r, 0, sizeof(*r));
}

static int proto(const char *what)
{
    return dkm_error_set(DKM_E_PROTOCOL, "malformed HTTP answer: %s", what);
}

/* The status line: HTTP/1.x SP 3DIGIT SP reason, all visible or SP/HTAB. */
static int parse_status(const char *line, size_t len, int *ret)
{
    int code;

    if (len < 13 ||
        (memcmp(line, "HTTP/1.1 ", 9) != 0 && memcmp(line, "HTTP/1.0 ", 9) != 0))
        return proto("bad status line");
    if (!is_digit(line[9]) || !is_digit(line[10]) || !is_digit(line[11]) ||
        line[12] != ' ')
        return proto("bad status code");
    for (size_t i = 13; i < len; i++) {
        unsigned char c = (unsigned char)line[i];

        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return proto("control character in the status line");
    }
    code = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
    if (code < 200 || code > 599)
        return proto("status code out of range (200..599)");
    *ret = code;
    return 0;
}

static int parse_content_length(const char *v, size_t len, size_t max, size_t *ret)
{
    uint64_t n = 0;

    if (len == 0 || len > CONTENT_LENGTH_DIGITS_MAX)
        return proto("bad Content-Length");
    for (size_t i = 0; i < len; i++) {
        if (!is_digit(v[i]))
            return proto("bad Content-Length");
        n = n * 10 + (uint64_t)(v[i] - '0');
    }
    if (n > max)
        return dkm_error_set(DKM_E_PROTOCOL,
                             "malformed HTTP answer: body of %llu bytes exceeds the "
                             "limit of %zu",
                             (unsigned long long)n, max);
    *ret = (size_t)n;
    return 0;
}

/* Parse the header block (lines ending in CRLF, up to the blank line). */
static int parse_head(const char *head, size_t len, size_t max_body,
                      struct dkm_http_response *res, size_t *ret_clen)
{
    const char *p = head, *end = head + len;
    bool have_length = false;
    size_t clen = 0;
    int lines = 0, r;

    for (const char *q = head; q < end; q++) {
        if (*q == '\n' && (q == head || q[-1] != '\r'))
            return proto("bare LF in the header");
        if (*q == '\0')
            return proto("NUL in the header");
    }
    for (;;) {
        const char *eol = memchr(p, '\r', (size_t)(end - p));
        const char *colon, *v, *vend;
        size_t n;

        if (eol == NULL || eol + 1 >= end || eol[1] != '\n')
            return proto("bare CR in the header");
        n = (size_t)(eol - p);
        if (lines == 0) {
            r = parse_status(p, n, &res->status);
            if (r < 0)
                return r;
        } else if (n == 0) {
            break; /* the blank line */
        } else {
            if (lines > DKM_HTTP_HEADERS_MAX)
                return proto("too many header lines");
            if (*p == ' ' || *p == '\t')
                return proto("folded header line");
            colon = memchr(p, ':', n);
            if (colon == NULL || colon == p)
                return proto("header line without a name");
            for (const char *q = p; q < colon; q++) {
                if (!is_tchar(*q))
                    return proto("bad character in a header name");
            }
            v = colon + 1;
            vend = eol;
            while (v < vend && (*v == ' ' || *v == '\t'))
                v++;
            while (vend > v && (vend[-1] == ' ' || vend[-1] == '\t'))
                vend--;
            for (const char *q = v; q < vend; q++) {
                unsigned char c = (unsigned char)*q;

                if ((c < 0x20 && c != '\t') || c == 0x7f)
                    return proto("control character in a header value");
            }
#define NAME_IS(s)                                                                       \
    ((size_t)(colon - p) == strlen(s) && strncasecmp(p, (s), strlen(s)) == 0)
            if (NAME_IS("Content-Length")) {
                if (have_length)
                    return proto("repeated Content-Length");
                r = parse_content_length(v, (size_t)(vend - v), max_body, &clen);
                if (r < 0)
                    return r;
                have_length = true;
            } else if (NAME_IS("Transfer-Encoding")) {
                return proto("Transfer-Encoding is not accepted");
            } else if (NAME_IS("Content-Type")) {
                size_t tl = (size_t)(vend - v);

                if (res->content_type[0] != '\0')
                    return proto("repeated Content-Type");
                if (tl >= sizeof(res->content_type))
                    return proto("Content-Type too long");
                memcpy(res->content_type, v, tl);
                res->content_type[tl] = '\0';
            }
#undef NAME_IS
        }
        lines++;
        p = eol + 2;
    }
    if (!have_length)
        return proto("no Content-Length");
    *ret_clen = clen;
    return 0;
}

static const char *find_blank_line(const char *buf, size_t len)
{
    for (size_t i = 3; i < len; i++) {
        if (buf[i] == '\n' && buf[i - 1] == '\r' && buf[i - 2] == '\n' &&
            buf[i - 3] == '\r')
            return buf + i + 1;
    }
    return NULL;
}

int dkm_http_read_response(const struct dkm_http_io *io,
                           const struct dkm_http_limits *limits,
                           struct dkm_http_response *ret)
{
    size_t max_head = DKM_HTTP_HEADER_MAX_DEFAULT, max_body = DKM_HTTP_BODY_MAX_DEFAULT;
    struct dkm_http_response res = {0};
    char *buf = NULL;
    const char *body_start = NULL;
    size_t have = 0, clen = 0, extra, got;
    int r = -ENOMEM;

    if (limits != NULL) {
        max_head = limits->max_header_bytes;
        max_body = limits->max_body_bytes;
    }
    buf = malloc(max_head + READ_CHUNK);
    if (buf == NULL) {
        r = dkm_error_set(-ENOMEM, "out of memory for an answer");
        goto done;
    }
    /* Read until the blank line, never keeping more than max_head of header. */
    while (body_start == NULL) {
        size_t n = 0, scan_from = have > 3 ? have - 3 : 0;

        if (have >= max_head) {
            r = dkm_error_set(DKM_E_PROTOCOL,
                              "malformed HTTP answer: header over %zu bytes", max_head);
            goto done;
        }
        r = io->read(io->ctx, buf + have, max_head + READ_CHUNK - have, &n);
        if (r < 0)
            goto done;
        if (n == 0) {
            r = have == 0 ? dkm_error_set(DKM_E_PROTOCOL,
                                          "the server closed the connection without "
                                          "answering")
                          : proto("connection closed inside the header");
            goto done;
        }
        have += n;
        body_start = find_blank_line(buf + scan_from, have - scan_from);
        if (body_start != NULL && (size_t)(body_start - buf) > max_head) {
            r = dkm_error_set(DKM_E_PROTOCOL,
                              "malformed HTTP answer: header over %zu bytes", max_head);
            goto done;
        }
    }
    r = parse_head(buf, (size_t)(body_start - buf), max_body, &res, &clen);
    if (r < 0)
        goto done;
    extra = have - (size_t)(body_start - buf);
    if (extra > clen) {
        r = proto("bytes after the body");
        goto done;
    }
    res.body = malloc(clen + 1);
    if (res.body == NULL) {
        r = dkm_error_set(-ENOMEM, "out of memory for an answer");
        goto done;
    }
    memcpy(res.body, body_start, extra);
    got = extra;
    /*
     * Read until the server closes (the request said Connection: close),
     * one byte beyond the body at most: a byte after Content-Length is
     * refused whether it came in the read that ended the header or in a
     * later one, so the verdict does not depend on how the transport
     * splits the answer. Reading only clen bytes here accepted bytes after
     * the body whenever they arrived after the header's read.
     */
    for (;;) {
        size_t n = 0;

        r = io->read(io->ctx, res.body + got, clen + 1 - got, &n);
        if (r < 0)
            goto done;
        if (n == 0)
            break;
        got += n;
        if (got > clen) {
            r = proto("bytes after the body");
            goto done;
        }
    }
    if (got < clen) {
        r = dkm_error_set(DKM_E_PROTOCOL,
                          "malformed HTTP answer: body truncated at %zu of %zu bytes",
                          got, clen);
        goto done;
    }
    res.body[clen] = '\0';
    res.body_len = clen;
    *ret = res;
    res.body = NULL;
    r = 0;
done:
    free(res.body);
    free(buf);
    return r;
}
