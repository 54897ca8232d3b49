/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target "stream": DKM-AES-256-GCM stream decryption as `openssl enc
 * -d -DKM-AES-256-GCM` drives it through the provider (cipher.c): a
 * decryptor for the group (dkm_stream_decrypt_new), updates with EVP's
 * output allowance (input length + 32), a final, and the group key of
 * the version the header names (here a fixed key, fuzz.h).
 *
 * Input: a control byte C, then K = C & 15 chunk lengths of one byte each,
 * then the stream. The stream is fed in updates of those lengths in turn
 * (0 is an empty update; a stream left over after a round starts the next
 * round, and with K = 0 it goes in one update), so the fuzzer chooses the
 * split points. Bit 4 of C selects the smallest segment size (2^8, so
 * short inputs hold many segments) instead of the provider's 2^16.
 *
 * A stream that decrypts must have produced exactly the plaintext its
 * length allows (header, segments with their tags, terminator), and no
 * update may run out of the room EVP gives it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dkm/data/stream.h"
#include "fuzz.h"

static int get_key(void *arg, uint32_t version, uint8_t *key)
{
    (void)arg;
    dkm_fuzz_group_key(DKM_FUZZ_GROUP, version, key);
    return 0;
}

/* Length of a stream of plaintext_len bytes in segments of seg bytes. */
static size_t stream_len(size_t plaintext_len, size_t seg, bool empty)
{
    size_t segments = (plaintext_len + seg - 1) / seg;

    if (empty)
        return DKM_STREAM_HEADER_SHORT + DKM_STREAM_TAG_LEN;
    return DKM_STREAM_HEADER_LEN + plaintext_len + DKM_STREAM_TAG_LEN * (segments + 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dkm_stream *s = NULL;
    const uint8_t *chunks, *in;
    size_t nchunks, left, total_out = 0, i = 0;
    unsigned seg_log2;
    uint8_t *out = NULL, fin[DKM_STREAM_BLOCK_SIZE];
    size_t n = 0, body;
    bool failed = false;
    int r;

    if (size < 1 || (size_t)(data[0] & 15) + 1 > size)
        return 0;
    nchunks = data[0] & 15;
    seg_log2 = (data[0] & 16) ? DKM_STREAM_SEG_LOG2_MIN : DKM_STREAM_SEG_LOG2_DEFAULT;
    chunks = data + 1;
    in = data + 1 + nchunks;
    left = size - 1 - nchunks;
    body = left;

    FUZZ_CHECK(
        dkm_stream_decrypt_new(NULL, DKM_FUZZ_GROUP, seg_log2, get_key, NULL, &s) == 0);
    /* Room for any one update: its input plus EVP's 32 bytes. */
    out = malloc(left + DKM_STREAM_BLOCK_SIZE);
    FUZZ_CHECK(out != NULL);
    while (!failed) {
        size_t take = nchunks > 0 ? chunks[i++ % nchunks] : left;
        bool all_empty = true;

        for (size_t j = 0; j < nchunks; j++)
            all_empty = all_empty && chunks[j] == 0;
        if (all_empty)
            take = left; /* a round of empty updates would never end */
        if (take > left)
            take = left;
        r = dkm_stream_update(s, in, take, out, take + DKM_STREAM_BLOCK_SIZE, &n);
        FUZZ_CHECK(r != -ENOSPC);
        if (r < 0) {
            failed = true;
            break;
        }
        FUZZ_CHECK(n <= take + DKM_STREAM_BLOCK_SIZE);
        total_out += n;
        in += take;
        left -= take;
        if (left == 0 && (nchunks == 0 || i % nchunks == 0))
            break;
    }
    if (!failed && dkm_stream_final(s, fin, sizeof(fin), &n) == 0) {
        FUZZ_CHECK(n == 0);
        FUZZ_CHECK(dkm_stream_version(s) >= 1);
        FUZZ_CHECK(body == stream_len(total_out, (size_t)1 << seg_log2, false) ||
                   (total_out == 0 && body == stream_len(0, 1, true)));
        dkm_fuzz_accept();
    }
    free(out);
    dkm_stream_free(s);
    return 0;
}
