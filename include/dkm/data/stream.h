/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The DKM-AES-256-GCM stream: segmented authenticated encryption of data
 * of any length in constant memory, shaped to fit EVP's cipher output
 * contract (an update may write at most its input length plus the block
 * size, 32 bytes; a final at most 32 bytes). `openssl enc
 * -DKM-AES-256-GCM` writes and reads it.
 *
 * Header (the AAD of every GCM operation in the stream):
 *
 *     offset size field
 *     0      4    magic "DKMS"
 *     4      1    format version (1)
 *     5      1    kind: 0 = empty stream, 1 = data stream
 *     6      1    log2 of the segment size (8..20; 16 = 64 KiB)
 *     7      1    reserved, 0
 *     8      4    key version, big-endian, >= 1
 *     12     4    group id: the first 4 bytes of SHA-256("dkm-group:" || group),
 *                 so that a stream of another group is named as such
 *     16     16   salt (data streams only)
 *
 * The stream key and a 7-byte nonce prefix come from HKDF-SHA256 with the
 * group key as input key material, the salt as salt (empty for an empty
 * stream), and "dkm-stream-v1" || header[0..16] || group as info: a fresh
 * key per stream, bound to the group's full name and the header.
 *
 * Body of a data stream: segments of exactly 2^log2 plaintext bytes, the
 * last one 1..2^log2 bytes, each as ciphertext followed by its 16-byte
 * tag, GCM nonce = prefix(7) || segment index(4, big-endian) || 0x00.
 * Then the terminator: the 16-byte tag of an empty GCM message with nonce
 * prefix || number of data segments || 0x01. The terminator is what
 * marks the end: a stream cut at a segment boundary has none, a stream
 * with segments dropped or reordered has indices that do not match.
 * (Putting the final flag in the last data segment's nonce, as STREAM
 * does, would need the whole last segment held back until EVP's final,
 * which may write only 32 bytes.) An empty stream is its 16-byte header
 * and the terminator with index 0: exactly 32 bytes, the most a final
 * may write when no update came.
 *
 * Decryption writes each segment's plaintext as its ciphertext arrives
 * and checks the tag at the segment's end, so at most one segment of
 * unauthenticated plaintext is released before an error.
 */
#ifndef DKM_STREAM_H
#define DKM_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/types.h>

#include "dkm/base/error.h"

#define DKM_STREAM_MAGIC "DKMS"
#define DKM_STREAM_FORMAT 1
#define DKM_STREAM_KIND_EMPTY 0
#define DKM_STREAM_KIND_DATA 1
#define DKM_STREAM_KEY_LEN 32
#define DKM_STREAM_TAG_LEN 16
#define DKM_STREAM_SALT_LEN 16
#define DKM_STREAM_HEADER_SHORT 16
#define DKM_STREAM_HEADER_LEN (DKM_STREAM_HEADER_SHORT + DKM_STREAM_SALT_LEN)
#define DKM_STREAM_SEG_LOG2_MIN 8
#define DKM_STREAM_SEG_LOG2_MAX 20
#define DKM_STREAM_SEG_LOG2_DEFAULT 16
/* The block size the cipher reports to EVP: the output allowance. */
#define DKM_STREAM_BLOCK_SIZE 32

struct dkm_stream;

/*
 * Gives the decryptor the group key of a version read from a header:
 * copy DKM_STREAM_KEY_LEN bytes to key and return 0, or return a negative
 * code (with a detail) to fail the stream.
 */
typedef int (*dkm_stream_key_fn)(void *arg, uint32_t version, uint8_t *key);

/*
 * New encryptor for group under key version (key: DKM_STREAM_KEY_LEN
 * bytes, used only during this call). seg_log2 is the segment size
 * (DKM_STREAM_SEG_LOG2_*). libctx may be NULL. Returns 0, -EINVAL,
 * -ENOMEM or DKM_E_CRYPTO.
 */
DKM_MUSTCHECK int dkm_stream_encrypt_new(OSSL_LIB_CTX *libctx, const char *group,
                                         uint32_t version, const uint8_t *key,
                                         unsigned seg_log2, struct dkm_stream **ret);

/*
 * New decryptor for group: the key is asked from get_key once the header
 * is read. get_key and arg must outlive the stream. seg_log2 is the only
 * segment size accepted: the header is authenticated only by the first
 * segment's tag, so a reader that took the size from the header would let
 * a forger choose how much unauthenticated plaintext is released.
 */
DKM_MUSTCHECK int dkm_stream_decrypt_new(OSSL_LIB_CTX *libctx, const char *group,
                                         unsigned seg_log2, dkm_stream_key_fn get_key,
                                         void *arg, struct dkm_stream **ret);

/*
 * Feed in_len bytes; writes at most out_size bytes to out and sets
 * *ret_len. in and out must not overlap. EVP passes out_size = in_len + 32
 * and that always suffices for decryption, and for encryption when
 * each update is at most one segment (64 KiB by default; openssl enc
 * feeds 4 KiB). Output the caller has no room for is queued (up to 512
 * bytes) and written by later calls; -ENOSPC when that is exhausted, or
 * at final when the rest does not fit. Errors: DKM_E_FORMAT (bad header), DKM_E_INTEGRITY
 * (tag mismatch: tampered, reordered or wrong key), DKM_E_EXPIRED etc.
 * from get_key, -ENOSPC, DKM_E_CRYPTO. After an error the stream refuses
 * further input.
 */
DKM_MUSTCHECK int dkm_stream_update(struct dkm_stream *s, const uint8_t *in,
                                    size_t in_len, uint8_t *out, size_t out_size,
                                    size_t *ret_len);

/*
 * End the stream: writes the rest (encryption: at most 32 bytes) or checks
 * the last tag and the terminator (decryption: writes nothing).
 * DKM_E_INTEGRITY when the stream is truncated or changed, DKM_E_FORMAT
 * when it ends inside its header, -ENOSPC if out_size is too small.
 */
DKM_MUSTCHECK int dkm_stream_final(struct dkm_stream *s, uint8_t *out, size_t out_size,
                                   size_t *ret_len);

/* Key version of the stream (after the header, for decryption), else 0. */
uint32_t dkm_stream_version(const struct dkm_stream *s);

/* NULL is accepted; wipes all key state. */
void dkm_stream_free(struct dkm_stream *s);

#endif
