/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target "http_client": an answer of dkmd (or of anything listening
 * where dkmd should be) through the client's HTTP response reader
 * dkm_http_read_response, with the limits the client uses, over an
 * in-memory transport that delivers the bytes in reads of a size the
 * input chooses. Input: one byte R, then the bytes the server sends; each
 * read returns at most R bytes (all that is left when R is 0).
 *
 * The transport's read sizes are the network's to choose, so the verdict
 * and the answer must not depend on them: each input is also read in one
 * piece and both readings must agree.
 */
#include <stdlib.h>
#include <string.h>

#include "dkm/client/client.h"
#include "fuzz.h"

struct mem {
    const uint8_t *p;
    size_t left;
    size_t max_read; /* 0: no limit */
};

static int mem_read(void *ctx, void *buf, size_t len, size_t *ret_n)
{
    struct mem *m = ctx;
    size_t n = len < m->left ? len : m->left;

    if (m->max_read > 0 && n > m->max_read)
        n = m->max_read;
    memcpy(buf, m->p, n);
    m->p += n;
    m->left -= n;
    *ret_n = n;
    return 0;
}

static int mem_write(void *ctx, const void *buf, size_t len)
{
    (void)ctx;
    (void)buf;
    (void)len;
    FUZZ_CHECK(!"the response reader writes nothing");
    return -1;
}

static int read_answer(const uint8_t *data, size_t size, size_t max_read,
                       struct dkm_http_response *ret)
{
    struct mem m = {.p = data, .left = size, .max_read = max_read};
    struct dkm_http_io io = {.read = mem_read, .write = mem_write, .ctx = &m};

    return dkm_http_read_response(&io, NULL, ret);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dkm_http_response a = {0}, b = {0};
    int ra, rb;

    if (size < 1)
        return 0;
    ra = read_answer(data + 1, size - 1, data[0], &a);
    rb = read_answer(data + 1, size - 1, 0, &b);
    FUZZ_CHECK((ra == 0) == (rb == 0));
    if (ra == 0) {
        FUZZ_CHECK(a.status >= 200 && a.status <= 599);
        FUZZ_CHECK(a.body != NULL && a.body[a.body_len] == '\0');
        FUZZ_CHECK(a.body_len <= DKM_HTTP_BODY_MAX_DEFAULT);
        FUZZ_CHECK(a.status == b.status && a.body_len == b.body_len &&
                   memcmp(a.body, b.body, a.body_len) == 0 &&
                   strcmp(a.content_type, b.content_type) == 0);
        dkm_fuzz_accept();
    }
    dkm_http_response_clear(&a);
    dkm_http_response_clear(&b);
    return 0;
}
