/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of the signed records (server list, node entry, group policy,
 * sealed copy, grant, state head): round trips, every truncation, every flipped byte, and
 * each field's own validation; for every record type, including the fetch
 * response, that more than DKM_RECORD_MAX bytes are refused before
 * parsing. Signatures come from a software P-256 key that signs exactly
 * as a server's SK does; EK publics are made in software from the TCG
 * templates. Signing and verifying a fetch response, which needs a
 * TPM-signed delegation, is tested in tpm_records.c; its decoder, which
 * checks no signature, is tested here on bytes built by hand.
 */
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>

#include "dkm/base/codec.h"
#include "dkm/tpm/dup.h"
#include "dkm/trust/records.h"
#include "dkm/tpm/tpm.h"
#include "fixtures.h"
#include "unit.h"

static struct dkm_test_server server_a, server_b, node_c;

static int suite_init(void)
{
    return dkm_test_server_make(&server_a) == 0 && dkm_test_server_make(&server_b) == 0 &&
                   dkm_test_server_make(&node_c) == 0
               ? 0
               : -1;
}

static int suite_cleanup(void)
{
    dkm_test_server_free(&server_a);
    dkm_test_server_free(&server_b);
    dkm_test_server_free(&node_c);
    return 0;
}

static void add_entry(struct dkm_server_list *l, const struct dkm_test_server *k)
{
    struct dkm_server_entry *e = &l->entries[l->count++];

    e->node_id = k->id;
    e->ek = k->ek;
    e->sk = k->pub;
}

/* List v1 with servers A and B, signed by A. */
static uint8_t *make_list_v1(size_t *len, struct dkm_server_list *out)
{
    struct dkm_server_list l = {.list_version = 1, .issued_at = 1700000000};
    struct dkm_signer s = dkm_test_server_signer(&server_a);
    uint8_t *buf = NULL;

    add_entry(&l, &server_a);
    add_entry(&l, &server_b);
    CU_ASSERT_EQUAL_FATAL(dkm_server_list_sign(&l, &s, &buf, len), 0);
    if (out != NULL)
        *out = l;
    return buf;
}

typedef int (*decode_fn)(const uint8_t *buf, size_t len, void *out);

/*
 * Every prefix of a record fails to decode, and every single flipped bit
 * of it either fails to decode or fails verification.
 */
static void check_truncation_and_flips(const uint8_t *buf, size_t len, decode_fn decode,
                                       size_t out_size,
                                       int (*verify)(const uint8_t *, size_t))
{
    uint8_t *copy = malloc(len);
    void *out = malloc(out_size);
    unsigned decoded_after_flip = 0;

    CU_ASSERT_PTR_NOT_NULL_FATAL(copy);
    for (size_t cut = 0; cut < len; cut++) {
        memcpy(copy, buf, cut);
        CU_ASSERT_NOT_EQUAL(decode(copy, cut, out), 0);
    }
    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit += 7) {
            int r;

            memcpy(copy, buf, len);
            copy[i] ^= (uint8_t)(1u << bit);
            r = decode(copy, len, out);
            if (r == 0) {
                decoded_after_flip++;
                r = verify(copy, len);
                if (r == 0)
                    fprintf(stderr, "flip of byte %zu bit %d accepted\n", i, bit);
                CU_ASSERT_NOT_EQUAL(r, 0);
            }
        }
    }
    /* Most flips land in signed data that still parses: verify saw them. */
    CU_ASSERT(decoded_after_flip > 0);
    /* Trailing garbage is refused. */
    {
        uint8_t *longer = malloc(len + 1);

        memcpy(longer, buf, len);
        longer[len] = 0;
        CU_ASSERT_NOT_EQUAL(decode(longer, len + 1, out), 0);
        free(longer);
    }
    free(out);
    free(copy);
}

/*
 * A record followed by zeros up to DKM_RECORD_MAX + 1 bytes is refused as
 * too large, before any field is read (else it would be refused for its
 * trailing bytes); at DKM_RECORD_MAX bytes it gets as far as the end.
 */
static void check_too_large(const uint8_t *buf, size_t len, decode_fn decode,
                            size_t out_size)
{
    uint8_t *big = calloc(1, DKM_RECORD_MAX + 1);
    void *out = malloc(out_size);

    CU_ASSERT_PTR_NOT_NULL_FATAL(big);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    CU_ASSERT_FATAL(len < DKM_RECORD_MAX);
    memcpy(big, buf, len);
    CU_ASSERT_EQUAL(decode(big, DKM_RECORD_MAX + 1, out), DKM_E_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(dkm_error_detail(), "too large"));
    CU_ASSERT_EQUAL(decode(big, DKM_RECORD_MAX, out), DKM_E_FORMAT);
    CU_ASSERT_PTR_NULL(strstr(dkm_error_detail(), "too large"));
    /* Not even the magic is looked at. */
    memset(big, 0, 4);
    CU_ASSERT_EQUAL(decode(big, DKM_RECORD_MAX + 1, out), DKM_E_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(dkm_error_detail(), "too large"));
    free(out);
    free(big);
}

/* ---- server list ---- */

static struct dkm_server_list trusted_v1;

static int decode_list(const uint8_t *b, size_t n, void *out)
{
    return dkm_server_list_decode(b, n, out);
}

static uint8_t pinned[DKM_FINGERPRINT_SIZE];

static int verify_list_pinned(const uint8_t *b, size_t n)
{
    /* A flipped list also changes the fingerprint; check the signature
     * alone by pinning the flipped bytes' own fingerprint. */
    uint8_t fp[DKM_FINGERPRINT_SIZE];
    struct dkm_server_list l;

    if (dkm_server_list_fingerprint(b, n, fp) < 0)
        return -1;
    return dkm_server_list_verify_pinned(b, n, fp, &l);
}

static void test_server_list_round_trip(void)
{
    struct dkm_server_list made, got;
    size_t len;
    uint8_t *buf = make_list_v1(&len, &made);

    CU_ASSERT_EQUAL_FATAL(dkm_server_list_fingerprint(buf, len, pinned), 0);
    CU_ASSERT_EQUAL_FATAL(dkm_server_list_verify_pinned(buf, len, pinned, &got), 0);
    CU_ASSERT_EQUAL(got.list_version, 1);
    CU_ASSERT_EQUAL(got.count, 2);
    CU_ASSERT_TRUE(dkm_node_id_equal(&got.signer, &server_a.id));
    CU_ASSERT_PTR_NOT_NULL(dkm_server_list_find(&got, &server_b.id));
    CU_ASSERT_PTR_NULL(dkm_server_list_find(&got, &node_c.id));
    CU_ASSERT_EQUAL(memcmp(got.entries[1].sk.point, server_b.pub.point, 65), 0);
    trusted_v1 = got;
    free(buf);
}

static void test_server_list_pin_mismatch(void)
{
    struct dkm_server_list got;
    size_t len;
    uint8_t *buf = make_list_v1(&len, NULL);
    uint8_t wrong[DKM_FINGERPRINT_SIZE];

    /* Another list with the same servers has another fingerprint (time). */
    memset(wrong, 0x11, sizeof(wrong));
    CU_ASSERT_EQUAL(dkm_server_list_verify_pinned(buf, len, wrong, &got),
                    DKM_E_SIGNATURE);
    CU_ASSERT_PTR_NOT_NULL(strstr(dkm_error_detail(), "pinned"));
    free(buf);
}

static void test_server_list_self_signed_by_outsider(void)
{
    struct dkm_server_list l = {.list_version = 1, .issued_at = 1};
    struct dkm_signer s = dkm_test_server_signer(&node_c);
    struct dkm_server_list got;
    uint8_t fp[DKM_FINGERPRINT_SIZE];
    uint8_t *buf;
    size_t len;

    add_entry(&l, &server_a);
    CU_ASSERT_EQUAL_FATAL(dkm_server_list_sign(&l, &s, &buf, &len), 0);
    CU_ASSERT_EQUAL(dkm_server_list_fingerprint(buf, len, fp), 0);
    CU_ASSERT_EQUAL(dkm_server_list_verify_pinned(buf, len, fp, &got), DKM_E_SIGNATURE);
    free(buf);
}

static void test_server_list_next_version(void)
{
    struct dkm_server_list v2 = {.list_version = 2, .issued_at = 1700000100};
    struct dkm_server_list got;
    struct dkm_signer by_b = dkm_test_server_signer(&server_b),
                      by_c = dkm_test_server_signer(&node_c);
    uint8_t *buf;
    size_t len;

    /* v2 drops A, adds C, signed by B (on v1): accepted. */
    add_entry(&v2, &server_b);
    add_entry(&v2, &node_c);
    CU_ASSERT_EQUAL_FATAL(dkm_server_list_sign(&v2, &by_b, &buf, &len), 0);
    CU_ASSERT_EQUAL(dkm_server_list_verify_next(&trusted_v1, buf, len, &got), 0);
    CU_ASSERT_EQUAL(got.list_version, 2);
    free(buf);
    /* The same signed by C, who is only on v2: refused. */
    CU_ASSERT_EQUAL_FATAL(dkm_server_list_sign(&v2, &by_c, &buf, &len), 0);
    CU_ASSERT_EQUAL(dkm_server_list_verify_next(&trusted_v1, buf, len, &got),
                    DKM_E_SIGNATURE);
    free(buf);
    /* A version that skips one: refused. */
    v2.list_version = 3;
    CU_ASSERT_EQUAL_FATAL(dkm_server_list_sign(&v2, &by_b, &buf, &len), 0);
    CU_ASSERT_EQUAL(dkm_server_list_verify_next(&trusted_v1, buf, len, &got),
                    DKM_E_SIGNATURE);
    CU_ASSERT_PTR_NOT_NULL(strstr(dkm_error_detail(), "does not follow"));
    free(buf);
}

static void test_server_list_invalid_fields(void)
{
    struct dkm_server_list l = {.list_version = 1, .issued_at = 1};
    struct dkm_signer s = dkm_test_server_signer(&server_a);
    struct dkm_server_list got;
    uint8_t *buf;
    size_t len;

    /* Sign refuses an empty list and version 0. */
    CU_ASSERT_EQUAL(dkm_server_list_sign(&l, &s, &buf, &len), -EINVAL);
    add_entry(&l, &server_a);
    l.list_version = 0;
    CU_ASSERT_EQUAL(dkm_server_list_sign(&l, &s, &buf, &len), -EINVAL);
    /* A repeated entry is refused by decode. */
    l.list_version = 1;
    add_entry(&l, &server_a);
    CU_ASSERT_EQUAL_FATAL(dkm_server_list_sign(&l, &s, &buf, &len), 0);
    CU_ASSERT_EQUAL(dkm_server_list_decode(buf, len, &got), DKM_E_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(dkm_error_detail(), "repeats"));
    free(buf);
    /* An entry whose node id is not its EK's name. */
    l.count = 1;
    l.entries[0].node_id = server_b.id;
    CU_ASSERT_EQUAL_FATAL(dkm_server_list_sign(&l, &s, &buf, &len), 0);
    CU_ASSERT_EQUAL(dkm_server_list_decode(buf, len, &got), DKM_E_FORMAT);
    free(buf);
    /* A signing key that is not on the curve. */
    l.entries[0] = (struct dkm_server_entry){.node_id = server_a.id, .ek = server_a.ek};
    memset(l.entries[0].sk.point, 0x04, 65);
    CU_ASSERT_EQUAL_FATAL(dkm_server_list_sign(&l, &s, &buf, &len), 0);
    CU_ASSERT_EQUAL(dkm_server_list_decode(buf, len, &got), DKM_E_FORMAT);
    free(buf);
    /* Bad magic and bad format version. */
    buf = make_list_v1(&len, NULL);
    buf[0] = 'X';
    CU_ASSERT_EQUAL(dkm_server_list_decode(buf, len, &got), DKM_E_FORMAT);
    buf[0] = 'D';
    buf[5] = 2;
    CU_ASSERT_EQUAL(dkm_server_list_decode(buf, len, &got), DKM_E_FORMAT);
    /* count byte (after magic, version, list version, issued_at) = 0 and 17. */
    buf[5] = 1;
    buf[18] = 0;
    CU_ASSERT_EQUAL(dkm_server_list_decode(buf, len, &got), DKM_E_FORMAT);
    buf[18] = DKM_SERVER_LIST_MAX + 1;
    CU_ASSERT_EQUAL(dkm_server_list_decode(buf, len, &got), DKM_E_FORMAT);
    free(buf);
}

static void test_server_list_truncation_and_flips(void)
{
    size_t len;
    uint8_t *buf = make_list_v1(&len, NULL);

    check_truncation_and_flips(buf, len, decode_list, sizeof(struct dkm_server_list),
                               verify_list_pinned);
    free(buf);
}

static void test_server_list_too_large(void)
{
    size_t len;
    uint8_t *buf = make_list_v1(&len, NULL);

    check_too_large(buf, len, decode_list, sizeof(struct dkm_server_list));
    free(buf);
}

/* ---- node entry ---- */

static int decode_entry(const uint8_t *b, size_t n, void *out)
{
    return dkm_node_entry_decode(b, n, out);
}

static int verify_on_v1(const char *context, const uint8_t *b, size_t n)
{
    return dkm_record_verify(&trusted_v1, context, b, n);
}

static int verify_entry(const uint8_t *b, size_t n)
{
    return verify_on_v1(DKM_SIGCTX_NODE_ENTRY, b, n);
}

static uint8_t *make_entry(size_t *len, struct dkm_test_server *by)
{
    struct dkm_node_entry e = {.node_id = node_c.id,
                               .ek = node_c.ek,
                               .role = DKM_ROLE_CLIENT,
                               .authorized_at = 1700000000,
                               .serial = 1,
                               .hostname = "n1.example"};
    struct dkm_signer s = dkm_test_server_signer(by);
    uint8_t *buf = NULL;

    CU_ASSERT_EQUAL_FATAL(dkm_node_entry_sign(&e, &s, &buf, len), 0);
    return buf;
}

static void test_node_entry_round_trip(void)
{
    struct dkm_node_entry got;
    size_t len;
    uint8_t *buf = make_entry(&len, &server_b);

    CU_ASSERT_EQUAL_FATAL(dkm_node_entry_decode(buf, len, &got), 0);
    CU_ASSERT_TRUE(dkm_node_id_equal(&got.node_id, &node_c.id));
    CU_ASSERT_EQUAL(got.role, DKM_ROLE_CLIENT);
    CU_ASSERT_EQUAL(got.revoked_at, 0);
    CU_ASSERT_EQUAL(got.format, DKM_NODE_ENTRY_VERSION);
    CU_ASSERT_EQUAL(got.serial, 1);
    CU_ASSERT_STRING_EQUAL(got.hostname, "n1.example");
    CU_ASSERT_TRUE(dkm_node_id_equal(&got.signer, &server_b.id));
    CU_ASSERT_EQUAL(verify_entry(buf, len), 0);
    /* The same bytes under another record type's context do not verify. */
    CU_ASSERT_EQUAL(verify_on_v1(DKM_SIGCTX_GROUP_POLICY, buf, len), DKM_E_SIGNATURE);
    free(buf);
    /* Signed by a node that is not a server on the list. */
    buf = make_entry(&len, &node_c);
    CU_ASSERT_EQUAL(dkm_node_entry_decode(buf, len, &got), 0);
    CU_ASSERT_EQUAL(verify_entry(buf, len), DKM_E_SIGNATURE);
    free(buf);
}

static void test_node_entry_invalid_fields(void)
{
    struct dkm_node_entry e = {.node_id = node_c.id,
                               .ek = node_c.ek,
                               .role = DKM_ROLE_ADMIN,
                               .authorized_at = 100,
                               .revoked_at = 50,
                               .serial = 1};
    struct dkm_signer s = dkm_test_server_signer(&server_a);
    struct dkm_node_entry got;
    enum dkm_role role;
    uint8_t *buf;
    size_t len;

    /* Revoked before authorized. */
    CU_ASSERT_EQUAL_FATAL(dkm_node_entry_sign(&e, &s, &buf, &len), 0);
    CU_ASSERT_EQUAL(dkm_node_entry_decode(buf, len, &got), DKM_E_FORMAT);
    /* Unknown role byte (before the two times, the TLS key id length and the tail). */
    buf[len - 98 - 1 - 16 - 1] = 9;
    CU_ASSERT_EQUAL(dkm_node_entry_decode(buf, len, &got), DKM_E_FORMAT);
    free(buf);
    /* Sign refuses an unknown role and a node id that is not the EK's. */
    e.revoked_at = 0;
    e.role = 0;
    CU_ASSERT_EQUAL(dkm_node_entry_sign(&e, &s, &buf, &len), -EINVAL);
    e.role = DKM_ROLE_SERVER;
    e.node_id = server_a.id;
    CU_ASSERT_EQUAL(dkm_node_entry_sign(&e, &s, &buf, &len), -EINVAL);
    /* Role names. */
    CU_ASSERT_EQUAL(dkm_role_parse("admin", &role), 0);
    CU_ASSERT_EQUAL(role, DKM_ROLE_ADMIN);
    CU_ASSERT_EQUAL(dkm_role_parse("root", &role), -EINVAL);
    CU_ASSERT_EQUAL(dkm_role_parse("", &role), -EINVAL);
    CU_ASSERT_PTR_NULL(dkm_role_name(7));
}

static void test_node_entry_tls_key(void)
{
    struct dkm_node_entry e = {.node_id = node_c.id,
                               .ek = node_c.ek,
                               .role = DKM_ROLE_ADMIN,
                               .authorized_at = 100,
                               .serial = 7,
                               .has_tls_key = true};
    struct dkm_signer s = dkm_test_server_signer(&server_a);
    struct dkm_node_entry got;
    uint8_t *buf = NULL, *longer;
    size_t len;

    for (size_t i = 0; i < sizeof(e.tls_key); i++)
        e.tls_key[i] = (uint8_t)(0xa0 + i);
    CU_ASSERT_EQUAL_FATAL(dkm_node_entry_sign(&e, &s, &buf, &len), 0);
    CU_ASSERT_EQUAL_FATAL(dkm_node_entry_decode(buf, len, &got), 0);
    CU_ASSERT_TRUE(got.has_tls_key);
    CU_ASSERT_EQUAL(memcmp(got.tls_key, e.tls_key, sizeof(e.tls_key)), 0);
    CU_ASSERT_EQUAL(verify_entry(buf, len), 0);
    /* The length byte sits before the 32-byte id and the 98-byte tail:
     * anything but 0 or 32 is refused, 0 leaves 32 stray bytes. */
    for (unsigned bad = 1; bad < 256; bad++) {
        if (bad == DKM_TLS_KEY_ID_SIZE)
            continue;
        buf[len - 98 - 32 - 1] = (uint8_t)bad;
        CU_ASSERT_EQUAL(dkm_node_entry_decode(buf, len, &got), DKM_E_FORMAT);
    }
    buf[len - 98 - 32 - 1] = 0;
    CU_ASSERT_EQUAL(dkm_node_entry_decode(buf, len, &got), DKM_E_FORMAT);
    buf[len - 98 - 32 - 1] = DKM_TLS_KEY_ID_SIZE;
    /* The id is signed: a changed id fails verification. */
    buf[len - 98 - 1] ^= 1;
    CU_ASSERT_EQUAL(dkm_node_entry_decode(buf, len, &got), 0);
    CU_ASSERT_EQUAL(verify_entry(buf, len), DKM_E_SIGNATURE);
    buf[len - 98 - 1] ^= 1;
    /* Without a key id: length 0, nothing else. */
    free(buf);
    e.has_tls_key = false;
    CU_ASSERT_EQUAL_FATAL(dkm_node_entry_sign(&e, &s, &buf, &len), 0);
    CU_ASSERT_EQUAL_FATAL(dkm_node_entry_decode(buf, len, &got), 0);
    CU_ASSERT_FALSE(got.has_tls_key);
    CU_ASSERT_EQUAL(buf[len - 98 - 1], 0);
    /* Length 32 with the id missing: truncated. */
    longer = malloc(len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(longer);
    memcpy(longer, buf, len);
    longer[len - 98 - 1] = DKM_TLS_KEY_ID_SIZE;
    CU_ASSERT_EQUAL(dkm_node_entry_decode(longer, len, &got), DKM_E_FORMAT);
    free(longer);
    free(buf);
}

static void test_node_entry_truncation_and_flips(void)
{
    size_t len;
    uint8_t *buf = make_entry(&len, &server_a);

    check_truncation_and_flips(buf, len, decode_entry, sizeof(struct dkm_node_entry),
                               verify_entry);
    free(buf);
}

static void test_node_entry_too_large(void)
{
    size_t len;
    uint8_t *buf = make_entry(&len, &server_a);

    check_too_large(buf, len, decode_entry, sizeof(struct dkm_node_entry));
    free(buf);
}

/*
 * Format 2's fields (serial, hostname), which sit right after the
 * header: each refused when invalid, at signing and at decoding; and a
 * format 1 entry (no serial, no hostname) still decodes, as format 1.
 */
static void test_node_entry_serial_and_hostname(void)
{
    struct dkm_node_entry e = {.node_id = node_c.id,
                               .ek = node_c.ek,
                               .role = DKM_ROLE_CLIENT,
                               .authorized_at = 100,
                               .serial = 0x0102030405060708ull,
                               .hostname = "a.b-c"};
    struct dkm_signer s = dkm_test_server_signer(&server_a);
    struct dkm_node_entry got;
    uint8_t *buf = NULL, *v1;
    size_t len, hlen = strlen(e.hostname);

    CU_ASSERT_EQUAL_FATAL(dkm_node_entry_sign(&e, &s, &buf, &len), 0);
    CU_ASSERT_EQUAL_FATAL(dkm_node_entry_decode(buf, len, &got), 0);
    CU_ASSERT_EQUAL(got.serial, e.serial);
    CU_ASSERT_STRING_EQUAL(got.hostname, "a.b-c");
    /* Version 2 at bytes 4..5, serial at 6..13, hostname length at 14. */
    CU_ASSERT_EQUAL(buf[5], 2);
    CU_ASSERT_EQUAL(buf[6], 1);
    CU_ASSERT_EQUAL(buf[14], hlen);
    /* Serial 0. */
    memset(buf + 6, 0, 8);
    CU_ASSERT_EQUAL(dkm_node_entry_decode(buf, len, &got), DKM_E_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(dkm_error_detail(), "serial"));
    buf[13] = 1;
    CU_ASSERT_EQUAL(dkm_node_entry_decode(buf, len, &got), 0);
    /* A character outside the hostname alphabet, a NUL, a label ending in '-'. */
    buf[15] = '/';
    CU_ASSERT_EQUAL(dkm_node_entry_decode(buf, len, &got), DKM_E_FORMAT);
    buf[15] = '\0';
    CU_ASSERT_EQUAL(dkm_node_entry_decode(buf, len, &got), DKM_E_FORMAT);
    buf[15] = 'a';
    buf[15 + hlen - 1] = '-';
    CU_ASSERT_EQUAL(dkm_node_entry_decode(buf, len, &got), DKM_E_FORMAT);
    buf[15 + hlen - 1] = 'c';
    /* A hostname length beyond the bytes left, and one over 253. */
    buf[14] = 255;
    CU_ASSERT_EQUAL(dkm_node_entry_decode(buf, 15 + 100, &got), DKM_E_FORMAT);
    CU_ASSERT_EQUAL(dkm_node_entry_decode(buf, len, &got), DKM_E_FORMAT);
    buf[14] = (uint8_t)hlen;
    /* An unknown format version. */
    buf[5] = 3;
    CU_ASSERT_EQUAL(dkm_node_entry_decode(buf, len, &got), DKM_E_FORMAT);
    buf[5] = 0;
    CU_ASSERT_EQUAL(dkm_node_entry_decode(buf, len, &got), DKM_E_FORMAT);
    buf[5] = 2;
    /* Format 1: the same entry without bytes 6..(14 + hlen). */
    v1 = malloc(len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(v1);
    memcpy(v1, buf, 6);
    v1[5] = 1;
    memcpy(v1 + 6, buf + 15 + hlen, len - 15 - hlen);
    CU_ASSERT_EQUAL(dkm_node_entry_decode(v1, len - 9 - hlen, &got), 0);
    CU_ASSERT_EQUAL(got.format, 1);
    CU_ASSERT_EQUAL(got.serial, 0);
    CU_ASSERT_STRING_EQUAL(got.hostname, "");
    free(v1);
    free(buf);
    /* Signing refuses serial 0 and an invalid hostname; "" is none. */
    e.serial = 0;
    CU_ASSERT_EQUAL(dkm_node_entry_sign(&e, &s, &buf, &len), -EINVAL);
    e.serial = 1;
    strcpy(e.hostname, "bad host");
    CU_ASSERT_EQUAL(dkm_node_entry_sign(&e, &s, &buf, &len), -EINVAL);
    e.hostname[0] = '\0';
    CU_ASSERT_EQUAL_FATAL(dkm_node_entry_sign(&e, &s, &buf, &len), 0);
    CU_ASSERT_EQUAL(buf[14], 0);
    CU_ASSERT_EQUAL_FATAL(dkm_node_entry_decode(buf, len, &got), 0);
    CU_ASSERT_STRING_EQUAL(got.hostname, "");
    free(buf);
}

/* ---- grant ---- */

static int decode_grant(const uint8_t *b, size_t n, void *out)
{
    return dkm_grant_decode(b, n, out);
}

static int verify_grant(const uint8_t *b, size_t n)
{
    return verify_on_v1(DKM_SIGCTX_GRANT, b, n);
}

/* Grant of "payments" to node C by server A (serial 3). */
static uint8_t *make_grant(size_t *len, enum dkm_grant_state state)
{
    struct dkm_grant g = {.group = "payments",
                          .node_id = node_c.id,
                          .state = state,
                          .serial = 3,
                          .at = 1700000000};
    struct dkm_signer s = dkm_test_server_signer(&server_a);
    uint8_t *buf = NULL;

    CU_ASSERT_EQUAL_FATAL(dkm_grant_sign(&g, &s, &buf, len), 0);
    return buf;
}

static void test_grant_round_trip(void)
{
    struct dkm_grant got;
    size_t len;
    uint8_t *buf = make_grant(&len, DKM_GRANT_REVOKED);

    CU_ASSERT_EQUAL_FATAL(dkm_grant_decode(buf, len, &got), 0);
    CU_ASSERT_STRING_EQUAL(got.group, "payments");
    CU_ASSERT_TRUE(dkm_node_id_equal(&got.node_id, &node_c.id));
    CU_ASSERT_EQUAL(got.state, DKM_GRANT_REVOKED);
    CU_ASSERT_EQUAL(got.serial, 3);
    CU_ASSERT_EQUAL(got.at, 1700000000);
    CU_ASSERT_TRUE(dkm_node_id_equal(&got.signer, &server_a.id));
    CU_ASSERT_EQUAL(verify_grant(buf, len), 0);
    /* Another record type's context, and a signer that is no server. */
    CU_ASSERT_EQUAL(verify_on_v1(DKM_SIGCTX_NODE_ENTRY, buf, len), DKM_E_SIGNATURE);
    free(buf);
    {
        struct dkm_grant g = {.group = "payments",
                              .node_id = node_c.id,
                              .state = DKM_GRANT_GRANTED,
                              .serial = 1};
        struct dkm_signer s = dkm_test_server_signer(&node_c);

        CU_ASSERT_EQUAL_FATAL(dkm_grant_sign(&g, &s, &buf, &len), 0);
        CU_ASSERT_EQUAL(dkm_grant_decode(buf, len, &got), 0);
        CU_ASSERT_EQUAL(verify_grant(buf, len), DKM_E_SIGNATURE);
        free(buf);
    }
}

/*
 * Each field: the group (1+n at 6), the node id (34), the state (1), the
 * serial (8), the time (8), then the tail.
 */
static void test_grant_invalid_fields(void)
{
    struct dkm_grant g = {.group = "payments", .node_id = node_c.id, .serial = 1};
    struct dkm_signer s = dkm_test_server_signer(&server_a);
    struct dkm_grant got;
    size_t len, state_at = 6 + 1 + 8 + DKM_NODE_ID_SIZE, serial_at = state_at + 1;
    uint8_t *buf = make_grant(&len, DKM_GRANT_GRANTED), *p;

    CU_ASSERT_EQUAL_FATAL(len, serial_at + 8 + 8 + 98);
    /* Group: a character outside the alphabet, length 0, over the bytes left. */
    buf[7] = '/';
    CU_ASSERT_EQUAL(dkm_grant_decode(buf, len, &got), DKM_E_FORMAT);
    buf[7] = 'p';
    buf[6] = 0;
    CU_ASSERT_EQUAL(dkm_grant_decode(buf, len, &got), DKM_E_FORMAT);
    buf[6] = 200;
    CU_ASSERT_EQUAL(dkm_grant_decode(buf, 6 + 1 + 100, &got), DKM_E_FORMAT);
    buf[6] = 8;
    /* Node id that is not a SHA-256 TPM name. */
    buf[6 + 1 + 8 + 1] = 0x0c;
    CU_ASSERT_EQUAL(dkm_grant_decode(buf, len, &got), DKM_E_FORMAT);
    buf[6 + 1 + 8 + 1] = 0x0b;
    /* State: 0, 3 and 255 are unknown; 1 and 2 decode. */
    for (unsigned v = 0; v < 256; v++) {
        buf[state_at] = (uint8_t)v;
        CU_ASSERT_EQUAL(dkm_grant_decode(buf, len, &got),
                        v == 1 || v == 2 ? 0 : DKM_E_FORMAT);
    }
    buf[state_at] = 1;
    /* Serial 0. */
    memset(buf + serial_at, 0, 8);
    CU_ASSERT_EQUAL(dkm_grant_decode(buf, len, &got), DKM_E_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(dkm_error_detail(), "serial"));
    buf[serial_at + 7] = 3;
    CU_ASSERT_EQUAL(dkm_grant_decode(buf, len, &got), 0);
    /* Wrong magic and version. */
    p = buf;
    p[3] = 'X';
    CU_ASSERT_EQUAL(dkm_grant_decode(buf, len, &got), DKM_E_FORMAT);
    p[3] = 'A';
    p[5] = 2;
    CU_ASSERT_EQUAL(dkm_grant_decode(buf, len, &got), DKM_E_FORMAT);
    p[5] = 1;
    CU_ASSERT_EQUAL(dkm_grant_decode(buf, len, &got), 0);
    free(buf);
    /* Signing refuses each invalid field. */
    g.state = 0;
    CU_ASSERT_EQUAL(dkm_grant_sign(&g, &s, &buf, &len), -EINVAL);
    g.state = 3;
    CU_ASSERT_EQUAL(dkm_grant_sign(&g, &s, &buf, &len), -EINVAL);
    g.state = DKM_GRANT_GRANTED;
    g.serial = 0;
    CU_ASSERT_EQUAL(dkm_grant_sign(&g, &s, &buf, &len), -EINVAL);
    g.serial = 1;
    strcpy(g.group, "bad group");
    CU_ASSERT_EQUAL(dkm_grant_sign(&g, &s, &buf, &len), -EINVAL);
    strcpy(g.group, "g");
    g.node_id.bytes[1] = 0x0c;
    CU_ASSERT_EQUAL(dkm_grant_sign(&g, &s, &buf, &len), -EINVAL);
}

static void test_grant_truncation_and_flips(void)
{
    size_t len;
    uint8_t *buf = make_grant(&len, DKM_GRANT_GRANTED);

    check_truncation_and_flips(buf, len, decode_grant, sizeof(struct dkm_grant),
                               verify_grant);
    free(buf);
}

static void test_grant_too_large(void)
{
    size_t len;
    uint8_t *buf = make_grant(&len, DKM_GRANT_GRANTED);

    check_too_large(buf, len, decode_grant, sizeof(struct dkm_grant));
    free(buf);
}

/* ---- state head ---- */

static int decode_head(const uint8_t *b, size_t n, void *out)
{
    return dkm_state_head_decode(b, n, out);
}

static int verify_head(const uint8_t *b, size_t n)
{
    return verify_on_v1(DKM_SIGCTX_STATE_HEAD, b, n);
}

static uint8_t *make_head(size_t *len, uint64_t counter)
{
    struct dkm_state_head h = {.counter = counter, .issued_at = 1700000000};
    struct dkm_signer s = dkm_test_server_signer(&server_b);
    uint8_t *buf = NULL;

    CU_ASSERT_EQUAL_FATAL(dkm_state_head_sign(&h, &s, &buf, len), 0);
    return buf;
}

static void test_state_head_fields(void)
{
    struct dkm_state_head h = {0}, got;
    struct dkm_signer s = dkm_test_server_signer(&server_a);
    size_t len;
    uint8_t *buf = make_head(&len, 42);

    CU_ASSERT_EQUAL_FATAL(len, 6 + 8 + 8 + 98);
    CU_ASSERT_EQUAL_FATAL(dkm_state_head_decode(buf, len, &got), 0);
    CU_ASSERT_EQUAL(got.counter, 42);
    CU_ASSERT_EQUAL(got.issued_at, 1700000000);
    CU_ASSERT_TRUE(dkm_node_id_equal(&got.signer, &server_b.id));
    CU_ASSERT_EQUAL(verify_head(buf, len), 0);
    CU_ASSERT_EQUAL(verify_on_v1(DKM_SIGCTX_GRANT, buf, len), DKM_E_SIGNATURE);
    /* Counter 0 (bytes 6..13). */
    memset(buf + 6, 0, 8);
    CU_ASSERT_EQUAL(dkm_state_head_decode(buf, len, &got), DKM_E_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(dkm_error_detail(), "counter"));
    buf[13] = 42;
    /* Magic, version. */
    buf[2] = 'X';
    CU_ASSERT_EQUAL(dkm_state_head_decode(buf, len, &got), DKM_E_FORMAT);
    buf[2] = 'S';
    buf[5] = 2;
    CU_ASSERT_EQUAL(dkm_state_head_decode(buf, len, &got), DKM_E_FORMAT);
    buf[5] = 1;
    CU_ASSERT_EQUAL(dkm_state_head_decode(buf, len, &got), 0);
    check_truncation_and_flips(buf, len, decode_head, sizeof(struct dkm_state_head),
                               verify_head);
    check_too_large(buf, len, decode_head, sizeof(struct dkm_state_head));
    free(buf);
    CU_ASSERT_EQUAL(dkm_state_head_sign(&h, &s, &buf, &len), -EINVAL);
}

/* ---- group policy ---- */

static struct dkm_group_policy base_policy(void)
{
    struct dkm_group_policy p = {
        .group = "payments",
        .serial = 1,
        .algorithm = DKM_ALG_AES_256_GCM,
        .rotation_period = 86400,
        .version_lifetime = 7 * 86400,
        .cache_ttl = 300,
        .created_at = 1700000000,
    };

    return p;
}

static int decode_policy(const uint8_t *b, size_t n, void *out)
{
    return dkm_group_policy_decode(b, n, out);
}

static int verify_policy(const uint8_t *b, size_t n)
{
    return verify_on_v1(DKM_SIGCTX_GROUP_POLICY, b, n);
}

static void test_group_policy_round_trip_with_pcrs(void)
{
    struct dkm_group_policy p = base_policy(), got;
    struct dkm_signer s = dkm_test_server_signer(&server_a);
    uint8_t *buf;
    size_t len;

    p.pcr_mask = (1u << 7) | (1u << 16);
    memset(p.pcr_values[0], 0xaa, 32);
    memset(p.pcr_values[1], 0xbb, 32);
    CU_ASSERT_EQUAL_FATAL(dkm_group_policy_sign(&p, &s, &buf, &len), 0);
    CU_ASSERT_EQUAL_FATAL(dkm_group_policy_decode(buf, len, &got), 0);
    CU_ASSERT_STRING_EQUAL(got.group, "payments");
    CU_ASSERT_EQUAL(got.pcr_mask, p.pcr_mask);
    CU_ASSERT_EQUAL(got.pcr_values[1][31], 0xbb);
    CU_ASSERT_EQUAL(got.cache_ttl, 300);
    CU_ASSERT_EQUAL(verify_policy(buf, len), 0);
    check_truncation_and_flips(buf, len, decode_policy, sizeof(struct dkm_group_policy),
                               verify_policy);
    free(buf);
}

static void test_group_policy_invalid_fields(void)
{
    struct dkm_signer s = dkm_test_server_signer(&server_a);
    struct dkm_group_policy p;
    uint8_t *buf;
    size_t len;
#define EXPECT_BAD(stmt, part)                                                           \
    do {                                                                                 \
        p = base_policy();                                                               \
        stmt;                                                                            \
        CU_ASSERT_EQUAL(dkm_group_policy_check(&p), -EINVAL);                            \
        CU_ASSERT_PTR_NOT_NULL(strstr(dkm_error_detail(), part));                        \
        CU_ASSERT_EQUAL(dkm_group_policy_sign(&p, &s, &buf, &len), -EINVAL);             \
    } while (0)

    EXPECT_BAD(p.group[0] = '\0', "group");
    EXPECT_BAD(strcpy(p.group, "a/b"), "group");
    EXPECT_BAD(p.serial = 0, "serial");
    EXPECT_BAD(p.algorithm = 2, "algorithm");
    EXPECT_BAD(p.rotation_period = 0, "rotation");
    EXPECT_BAD(p.version_lifetime = p.rotation_period - 1, "lifetime");
    EXPECT_BAD(p.cache_ttl = 0, "TTL");
    EXPECT_BAD(p.cache_ttl = (uint32_t)p.version_lifetime + 1, "TTL");
    EXPECT_BAD(p.pcr_mask = 1u << 24, "PCR");
#undef EXPECT_BAD
}

static void test_group_policy_too_large(void)
{
    struct dkm_group_policy p = base_policy();
    struct dkm_signer s = dkm_test_server_signer(&server_a);
    uint8_t *buf;
    size_t len;

    CU_ASSERT_EQUAL_FATAL(dkm_group_policy_sign(&p, &s, &buf, &len), 0);
    check_too_large(buf, len, decode_policy, sizeof(struct dkm_group_policy));
    free(buf);
}

/* ---- sealed copy ---- */

static int decode_copy(const uint8_t *b, size_t n, void *out)
{
    return dkm_sealed_copy_decode(b, n, out);
}

static int verify_copy(const uint8_t *b, size_t n)
{
    return verify_on_v1(DKM_SIGCTX_SEALED_COPY, b, n);
}

static void test_sealed_copy_round_trip(void)
{
    static const uint8_t blob[100] = {1, 2, 3};
    struct dkm_sealed_copy c = {.group = "g.1",
                                .version = 4,
                                .created_at = 10,
                                .expires_at = 20,
                                .holder = server_b.id,
                                .blob = blob,
                                .blob_len = sizeof(blob)},
                           got;
    struct dkm_signer s = dkm_test_server_signer(&server_a);
    uint8_t *buf;
    size_t len;

    CU_ASSERT_EQUAL_FATAL(dkm_sealed_copy_sign(&c, &s, &buf, &len), 0);
    CU_ASSERT_EQUAL_FATAL(dkm_sealed_copy_decode(buf, len, &got), 0);
    CU_ASSERT_STRING_EQUAL(got.group, "g.1");
    CU_ASSERT_EQUAL(got.version, 4);
    CU_ASSERT_EQUAL(got.blob_len, sizeof(blob));
    CU_ASSERT_EQUAL(memcmp(got.blob, blob, sizeof(blob)), 0);
    CU_ASSERT_TRUE(dkm_node_id_equal(&got.holder, &server_b.id));
    CU_ASSERT_EQUAL(verify_copy(buf, len), 0);
    check_truncation_and_flips(buf, len, decode_copy, sizeof(struct dkm_sealed_copy),
                               verify_copy);
    free(buf);
    /* Invalid fields refused at signing. */
    c.version = 0;
    CU_ASSERT_EQUAL(dkm_sealed_copy_sign(&c, &s, &buf, &len), -EINVAL);
    c.version = 1;
    c.expires_at = c.created_at;
    CU_ASSERT_EQUAL(dkm_sealed_copy_sign(&c, &s, &buf, &len), -EINVAL);
    c.expires_at = 30;
    c.blob_len = 0;
    CU_ASSERT_EQUAL(dkm_sealed_copy_sign(&c, &s, &buf, &len), -EINVAL);
    c.blob_len = DKM_DUP_ENCODED_MAX + 1;
    CU_ASSERT_EQUAL(dkm_sealed_copy_sign(&c, &s, &buf, &len), -EINVAL);
}

static void test_sealed_copy_too_large(void)
{
    static const uint8_t blob[100] = {1, 2, 3};
    struct dkm_sealed_copy c = {.group = "g",
                                .version = 1,
                                .created_at = 10,
                                .expires_at = 20,
                                .holder = server_b.id,
                                .blob = blob,
                                .blob_len = sizeof(blob)};
    struct dkm_signer s = dkm_test_server_signer(&server_a);
    uint8_t *buf;
    size_t len;

    CU_ASSERT_EQUAL_FATAL(dkm_sealed_copy_sign(&c, &s, &buf, &len), 0);
    check_too_large(buf, len, decode_copy, sizeof(struct dkm_sealed_copy));
    free(buf);
}

/* ---- fetch response (decoding only) ---- */

static int decode_response(const uint8_t *b, size_t n, void *out)
{
    return dkm_fetch_response_decode(b, n, out);
}

/*
 * The bytes of a fetch response as dkm_fetch_response_sign lays them out.
 * The decoder checks no signature and does not parse the embedded policy,
 * blob or delegation, so placeholders do for those. Free the result.
 */
static uint8_t *make_response(uint64_t issued_at, uint64_t expires_at, size_t *ret_len)
{
    static const uint8_t policy[40] = {'D', 'K', 'G', 'P'};
    static const uint8_t blob[60] = {'D', 'K', 'M', 'I'};
    static const uint8_t delegation[DKM_DELEGATION_SIZE] = {'D', 'K', 'D', 'G'};
    static const uint8_t sig[DKM_SIG_SIZE] = {1};
    uint8_t nonce[DKM_NONCE_MIN];
    uint8_t *buf = malloc(DKM_RECORD_MAX);
    struct dkm_writer w;

    CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
    memset(nonce, 0x6e, sizeof(nonce));
    w = dkm_writer_init(buf, DKM_RECORD_MAX);
    dkm_put_bytes(&w, DKM_RECORD_MAGIC_FETCH_RESPONSE, 4);
    dkm_put_u16be(&w, DKM_RECORD_VERSION);
    dkm_put_u8(&w, 8);
    dkm_put_bytes(&w, "payments", 8);
    dkm_put_u32be(&w, 3);
    dkm_put_bytes(&w, node_c.id.bytes, DKM_NODE_ID_SIZE);
    dkm_put_u8(&w, sizeof(nonce));
    dkm_put_bytes(&w, nonce, sizeof(nonce));
    dkm_put_u64be(&w, issued_at);
    dkm_put_u64be(&w, expires_at);
    dkm_put_len16(&w, policy, sizeof(policy));
    dkm_put_len16(&w, blob, sizeof(blob));
    dkm_put_bytes(&w, delegation, sizeof(delegation));
    dkm_put_bytes(&w, server_a.id.bytes, DKM_NODE_ID_SIZE);
    dkm_put_bytes(&w, sig, sizeof(sig));
    CU_ASSERT_FATAL(dkm_writer_ok(&w));
    *ret_len = w.len;
    return buf;
}

/* Like a sealed copy's, a response's expiry must come after its issue. */
static void test_fetch_response_expires_after_issue(void)
{
    struct dkm_fetch_response f;
    uint8_t *buf;
    size_t len;

    buf = make_response(1700000000, 1700000001, &len);
    CU_ASSERT_EQUAL_FATAL(dkm_fetch_response_decode(buf, len, &f), 0);
    CU_ASSERT_STRING_EQUAL(f.group, "payments");
    CU_ASSERT_EQUAL(f.issued_at, 1700000000);
    CU_ASSERT_EQUAL(f.expires_at, 1700000001);
    CU_ASSERT_TRUE(dkm_node_id_equal(&f.signer, &server_a.id));
    free(buf);
    buf = make_response(1700000000, 1700000000, &len);
    CU_ASSERT_EQUAL(dkm_fetch_response_decode(buf, len, &f), DKM_E_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(dkm_error_detail(), "expires"));
    free(buf);
    buf = make_response(1700000000, 1699999999, &len);
    CU_ASSERT_EQUAL(dkm_fetch_response_decode(buf, len, &f), DKM_E_FORMAT);
    free(buf);
    buf = make_response(1700000000, 0, &len);
    CU_ASSERT_EQUAL(dkm_fetch_response_decode(buf, len, &f), DKM_E_FORMAT);
    free(buf);
}

static void test_fetch_response_too_large(void)
{
    size_t len;
    uint8_t *buf = make_response(1700000000, 1700086400, &len);

    check_too_large(buf, len, decode_response, sizeof(struct dkm_fetch_response));
    free(buf);
}

static void test_record_verify_too_short(void)
{
    static const uint8_t tiny[10];

    CU_ASSERT_EQUAL(
        dkm_record_verify(&trusted_v1, DKM_SIGCTX_NODE_ENTRY, tiny, sizeof(tiny)),
        DKM_E_FORMAT);
}

static CU_TestInfo list_tests[] = {
    {"test_server_list_round_trip", test_server_list_round_trip},
    {"test_server_list_pin_mismatch", test_server_list_pin_mismatch},
    {"test_server_list_self_signed_by_outsider",
     test_server_list_self_signed_by_outsider},
    {"test_server_list_next_version", test_server_list_next_version},
    {"test_server_list_invalid_fields", test_server_list_invalid_fields},
    {"test_server_list_truncation_and_flips", test_server_list_truncation_and_flips},
    {"test_server_list_too_large", test_server_list_too_large},
    {"test_node_entry_round_trip", test_node_entry_round_trip},
    {"test_node_entry_invalid_fields", test_node_entry_invalid_fields},
    {"test_node_entry_tls_key", test_node_entry_tls_key},
    {"test_node_entry_truncation_and_flips", test_node_entry_truncation_and_flips},
    {"test_node_entry_too_large", test_node_entry_too_large},
    {"test_node_entry_serial_and_hostname", test_node_entry_serial_and_hostname},
    {"test_grant_round_trip", test_grant_round_trip},
    {"test_grant_invalid_fields", test_grant_invalid_fields},
    {"test_grant_truncation_and_flips", test_grant_truncation_and_flips},
    {"test_grant_too_large", test_grant_too_large},
    {"test_state_head_fields", test_state_head_fields},
    {"test_group_policy_round_trip_with_pcrs", test_group_policy_round_trip_with_pcrs},
    {"test_group_policy_invalid_fields", test_group_policy_invalid_fields},
    {"test_group_policy_too_large", test_group_policy_too_large},
    {"test_sealed_copy_round_trip", test_sealed_copy_round_trip},
    {"test_sealed_copy_too_large", test_sealed_copy_too_large},
    {"test_fetch_response_expires_after_issue", test_fetch_response_expires_after_issue},
    {"test_fetch_response_too_large", test_fetch_response_too_large},
    {"test_record_verify_too_short", test_record_verify_too_short},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {"records", suite_init, suite_cleanup, NULL, NULL, list_tests},
    CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv)
{
    return dkm_test_main(argc, argv, suites);
}
