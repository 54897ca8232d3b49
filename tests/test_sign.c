/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Signature and delegation tests without a TPM. The server signing key is
 * stood in for by a software P-256 key, and delegation records are built
 * here byte by byte from docs/formats.md and signed here with OpenSSL, so
 * the format and the digest construction are checked independently of
 * sign.c. Every field of a delegation has a negative test, and every
 * link of the chain SK -> delegation -> response is broken once.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>

#include "dkm/base/codec.h"
#include "dkm/trust/sign.h"
#include "unit.h"

#define NOW 1700000000ull

struct swkey {
    EVP_PKEY *pkey;
    struct dkm_p256_public pub;
};

static struct swkey sk_a, sk_b, resp_a, resp_b;
static struct dkm_node_id server_a, server_b;

static bool swkey_new(struct swkey *k)
{
    size_t n = 0;

    k->pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    return k->pkey != NULL &&
           EVP_PKEY_get_octet_string_param(k->pkey, OSSL_PKEY_PARAM_PUB_KEY, k->pub.point,
                                           sizeof(k->pub.point), &n) == 1 &&
           n == 65;
}

/* SHA-256(context || 0x00 || msg), written out independently. */
static void digest_of(const char *ctx, const void *msg, size_t len, uint8_t out[32])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned int n = 0;

    CU_ASSERT_FATAL(md != NULL);
    EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    EVP_DigestUpdate(md, ctx, strlen(ctx) + 1); /* with its NUL */
    EVP_DigestUpdate(md, msg, len);
    EVP_DigestFinal_ex(md, out, &n);
    EVP_MD_CTX_free(md);
}

/* ECDSA over the digest, as raw r || s. */
static void sw_sign(const struct swkey *k, const char *ctx, const void *msg, size_t len,
                    uint8_t sig[64])
{
    uint8_t d[32], der[80];
    size_t der_len = sizeof(der);
    const unsigned char *p = der;
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, k->pkey, NULL);
    ECDSA_SIG *es;
    const BIGNUM *r, *s;

    digest_of(ctx, msg, len, d);
    CU_ASSERT_FATAL(c != NULL && EVP_PKEY_sign_init(c) == 1 &&
                    EVP_PKEY_CTX_set_signature_md(c, EVP_sha256()) == 1 &&
                    EVP_PKEY_sign(c, der, &der_len, d, 32) == 1);
    es = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
    CU_ASSERT_FATAL(es != NULL);
    ECDSA_SIG_get0(es, &r, &s);
    BN_bn2binpad(r, sig, 32);
    BN_bn2binpad(s, sig + 32, 32);
    ECDSA_SIG_free(es);
    EVP_PKEY_CTX_free(c);
}

struct deleg {
    uint32_t magic;
    uint16_t version;
    struct dkm_p256_public key;
    uint64_t not_before, not_after;
    struct dkm_node_id server;
    const struct swkey *signer;
};

static struct deleg deleg_default(void)
{
    struct deleg d = {.magic = 0x444b4447u,
                      .version = 1,
                      .key = resp_a.pub,
                      .not_before = NOW - 300,
                      .not_after = NOW + 3600,
                      .server = server_a,
                      .signer = &sk_a};
    return d;
}

/* Encode and sign a delegation record per docs/formats.md. */
static void deleg_encode(const struct deleg *d, uint8_t out[DKM_DELEGATION_SIZE])
{
    struct dkm_writer w = dkm_writer_init(out, DKM_DELEGATION_SIZE);

    dkm_put_u32be(&w, d->magic);
    dkm_put_u16be(&w, d->version);
    dkm_put_bytes(&w, d->key.point, 65);
    dkm_put_u64be(&w, d->not_before);
    dkm_put_u64be(&w, d->not_after);
    dkm_put_bytes(&w, d->server.bytes, 34);
    CU_ASSERT_FATAL(dkm_writer_ok(&w) && w.len == 121);
    sw_sign(d->signer, "dkm delegation v1", out, 121, out + 121);
}

static int suite_init(void)
{
    if (!swkey_new(&sk_a) || !swkey_new(&sk_b) || !swkey_new(&resp_a) ||
        !swkey_new(&resp_b))
        return 1;
    memset(server_a.bytes, 0x11, sizeof(server_a.bytes));
    memset(server_b.bytes, 0x22, sizeof(server_b.bytes));
    server_a.bytes[0] = server_b.bytes[0] = 0x00;
    server_a.bytes[1] = server_b.bytes[1] = 0x0b;
    return 0;
}

static int suite_cleanup(void)
{
    EVP_PKEY_free(sk_a.pkey);
    EVP_PKEY_free(sk_b.pkey);
    EVP_PKEY_free(resp_a.pkey);
    EVP_PKEY_free(resp_b.pkey);
    return 0;
}

static void test_sign_digest_known_construction(void)
{
    uint8_t a[32], b[32];

    CU_ASSERT_EQUAL(dkm_sig_digest("dkm response v1", "msg", 3, a), 0);
    digest_of("dkm response v1", "msg", 3, b);
    CU_ASSERT(memcmp(a, b, 32) == 0);
    /* The NUL separates context from message: no shifting of bytes. */
    CU_ASSERT_EQUAL(dkm_sig_digest("ab", "c", 1, a), 0);
    CU_ASSERT_EQUAL(dkm_sig_digest("a", "bc", 2, b), 0);
    CU_ASSERT(memcmp(a, b, 32) != 0);
    CU_ASSERT_EQUAL(dkm_sig_digest("a", NULL, 0, a), 0);
}

static void test_sign_context_validated(void)
{
    uint8_t d[32];
    char longctx[DKM_SIGCTX_MAX + 2];

    memset(longctx, 'c', sizeof(longctx));
    longctx[DKM_SIGCTX_MAX + 1] = '\0';
    CU_ASSERT_EQUAL(dkm_sig_digest(NULL, "m", 1, d), -EINVAL);
    CU_ASSERT_EQUAL(dkm_sig_digest("", "m", 1, d), -EINVAL);
    CU_ASSERT_EQUAL(dkm_sig_digest(longctx, "m", 1, d), -EINVAL);
    longctx[DKM_SIGCTX_MAX] = '\0';
    CU_ASSERT_EQUAL(dkm_sig_digest(longctx, "m", 1, d), 0);
    CU_ASSERT_EQUAL(dkm_sig_digest("bad\x01", "m", 1, d), -EINVAL);
    CU_ASSERT_EQUAL(dkm_sig_digest("caf\xc3\xa9", "m", 1, d), -EINVAL);
}

static void test_sign_verify_and_every_bit_flip(void)
{
    static const char msg[] = "the answer";
    uint8_t sig[64], bad[64];
    char m2[sizeof(msg)];

    sw_sign(&sk_a, "dkm test v1", msg, sizeof(msg), sig);
    CU_ASSERT_EQUAL(dkm_sig_verify(&sk_a.pub, "dkm test v1", msg, sizeof(msg), sig), 0);
    for (size_t bit = 0; bit < 512; bit++) {
        memcpy(bad, sig, 64);
        bad[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        CU_ASSERT_EQUAL(dkm_sig_verify(&sk_a.pub, "dkm test v1", msg, sizeof(msg), bad),
                        DKM_E_SIGNATURE);
    }
    for (size_t bit = 0; bit < 8 * sizeof(msg); bit++) {
        memcpy(m2, msg, sizeof(msg));
        m2[bit / 8] ^= (char)(1u << (bit % 8));
        CU_ASSERT_EQUAL(dkm_sig_verify(&sk_a.pub, "dkm test v1", m2, sizeof(m2), sig),
                        DKM_E_SIGNATURE);
    }
    CU_ASSERT_EQUAL(dkm_sig_verify(&sk_a.pub, "dkm test v1", msg, sizeof(msg) - 1, sig),
                    DKM_E_SIGNATURE);
    CU_ASSERT_EQUAL(dkm_sig_verify(&sk_a.pub, "dkm test v2", msg, sizeof(msg), sig),
                    DKM_E_SIGNATURE);
    CU_ASSERT_EQUAL(dkm_sig_verify(&sk_b.pub, "dkm test v1", msg, sizeof(msg), sig),
                    DKM_E_SIGNATURE);
}

static void test_sign_verify_out_of_range(void)
{
    /* The order n of P-256. */
    static const uint8_t n[32] = {
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17,
        0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
    };
    uint8_t sig[64], bad[64];

    sw_sign(&sk_a, "dkm test v1", "m", 1, sig);
    memcpy(bad, sig, 64);
    memset(bad, 0, 32); /* r = 0 */
    CU_ASSERT_EQUAL(dkm_sig_verify(&sk_a.pub, "dkm test v1", "m", 1, bad),
                    DKM_E_SIGNATURE);
    memcpy(bad, sig, 64);
    memset(bad + 32, 0, 32); /* s = 0 */
    CU_ASSERT_EQUAL(dkm_sig_verify(&sk_a.pub, "dkm test v1", "m", 1, bad),
                    DKM_E_SIGNATURE);
    memcpy(bad, sig, 64);
    memcpy(bad, n, 32); /* r = n */
    CU_ASSERT_EQUAL(dkm_sig_verify(&sk_a.pub, "dkm test v1", "m", 1, bad),
                    DKM_E_SIGNATURE);
    memcpy(bad, sig, 64);
    memcpy(bad + 32, n, 32); /* s = n */
    CU_ASSERT_EQUAL(dkm_sig_verify(&sk_a.pub, "dkm test v1", "m", 1, bad),
                    DKM_E_SIGNATURE);
    memset(bad, 0xff, 64);
    CU_ASSERT_EQUAL(dkm_sig_verify(&sk_a.pub, "dkm test v1", "m", 1, bad),
                    DKM_E_SIGNATURE);
}

static void test_sign_public_key_checked(void)
{
    struct dkm_p256_public p = sk_a.pub;
    uint8_t sig[64];

    sw_sign(&sk_a, "dkm test v1", "m", 1, sig);
    CU_ASSERT_EQUAL(dkm_p256_public_check(&p), 0);
    p.point[0] = 0x02;
    CU_ASSERT_EQUAL(dkm_p256_public_check(&p), DKM_E_FORMAT);
    CU_ASSERT_EQUAL(dkm_sig_verify(&p, "dkm test v1", "m", 1, sig), DKM_E_FORMAT);
    p = sk_a.pub;
    p.point[64] ^= 1; /* off the curve */
    CU_ASSERT_EQUAL(dkm_p256_public_check(&p), DKM_E_FORMAT);
    memset(&p, 0, sizeof(p));
    p.point[0] = 0x04;
    CU_ASSERT_EQUAL(dkm_p256_public_check(&p), DKM_E_FORMAT);
}

static void test_delegation_verify_good(void)
{
    struct deleg d = deleg_default();
    uint8_t rec[DKM_DELEGATION_SIZE], sig[64];
    struct dkm_delegation out;

    deleg_encode(&d, rec);
    CU_ASSERT_EQUAL(
        dkm_delegation_verify(&sk_a.pub, &server_a, rec, sizeof(rec), NOW, &out), 0);
    CU_ASSERT(memcmp(out.key.point, resp_a.pub.point, 65) == 0);
    CU_ASSERT_EQUAL(out.not_before, NOW - 300);
    CU_ASSERT_EQUAL(out.not_after, NOW + 3600);
    CU_ASSERT(dkm_node_id_equal(&out.server_id, &server_a));
    sw_sign(&resp_a, DKM_SIGCTX_RESPONSE, "resp", 4, sig);
    CU_ASSERT_EQUAL(dkm_response_verify(&sk_a.pub, &server_a, rec, sizeof(rec), NOW,
                                        DKM_SIGCTX_RESPONSE, "resp", 4, sig),
                    0);
}

static void test_delegation_time_window(void)
{
    struct deleg d = deleg_default();
    uint8_t rec[DKM_DELEGATION_SIZE];

    deleg_encode(&d, rec);
    CU_ASSERT_EQUAL(dkm_delegation_verify(&sk_a.pub, &server_a, rec, sizeof(rec),
                                          d.not_before - 1, NULL),
                    DKM_E_EXPIRED);
    CU_ASSERT(strstr(dkm_error_detail(), "not valid yet") != NULL);
    CU_ASSERT_EQUAL(
        dkm_delegation_verify(&sk_a.pub, &server_a, rec, sizeof(rec), d.not_before, NULL),
        0);
    CU_ASSERT_EQUAL(dkm_delegation_verify(&sk_a.pub, &server_a, rec, sizeof(rec),
                                          d.not_after - 1, NULL),
                    0);
    CU_ASSERT_EQUAL(
        dkm_delegation_verify(&sk_a.pub, &server_a, rec, sizeof(rec), d.not_after, NULL),
        DKM_E_EXPIRED);
    CU_ASSERT(strstr(dkm_error_detail(), "expired") != NULL);
}

static void test_delegation_wrong_signer_or_server(void)
{
    struct deleg d = deleg_default();
    uint8_t rec[DKM_DELEGATION_SIZE];

    d.signer = &sk_b; /* another server's SK */
    deleg_encode(&d, rec);
    CU_ASSERT_EQUAL(
        dkm_delegation_verify(&sk_a.pub, &server_a, rec, sizeof(rec), NOW, NULL),
        DKM_E_SIGNATURE);
    CU_ASSERT_EQUAL(
        dkm_delegation_verify(&sk_b.pub, &server_a, rec, sizeof(rec), NOW, NULL), 0);
    /* Properly signed, but for another server id. */
    CU_ASSERT_EQUAL(
        dkm_delegation_verify(&sk_b.pub, &server_b, rec, sizeof(rec), NOW, NULL),
        DKM_E_SIGNATURE);
    CU_ASSERT(strstr(dkm_error_detail(), "names server") != NULL);
    /* A signature made with the right key for another purpose. */
    d = deleg_default();
    deleg_encode(&d, rec);
    sw_sign(&sk_a, DKM_SIGCTX_RESPONSE, rec, 121, rec + 121);
    CU_ASSERT_EQUAL(
        dkm_delegation_verify(&sk_a.pub, &server_a, rec, sizeof(rec), NOW, NULL),
        DKM_E_SIGNATURE);
}

static void test_delegation_every_byte_signed(void)
{
    struct deleg d = deleg_default();
    uint8_t rec[DKM_DELEGATION_SIZE], bad[DKM_DELEGATION_SIZE];

    deleg_encode(&d, rec);
    for (size_t i = 0; i < sizeof(rec); i++) {
        int r;

        memcpy(bad, rec, sizeof(rec));
        bad[i] ^= 0x01;
        r = dkm_delegation_verify(&sk_a.pub, &server_a, bad, sizeof(bad), NOW, NULL);
        /* A flip either breaks the format or the signature; never
         * anything that verifies. */
        CU_ASSERT(r == DKM_E_FORMAT || r == DKM_E_SIGNATURE);
    }
}

static void expect_bad_delegation(const struct deleg *d, const char *why)
{
    uint8_t rec[DKM_DELEGATION_SIZE];
    struct dkm_delegation out;

    deleg_encode(d, rec);
    CU_ASSERT_EQUAL(dkm_delegation_decode(rec, sizeof(rec), &out), DKM_E_FORMAT);
    CU_ASSERT_EQUAL(
        dkm_delegation_verify(&sk_a.pub, &server_a, rec, sizeof(rec), NOW, NULL),
        DKM_E_FORMAT);
    if (strstr(dkm_error_detail(), why) == NULL) {
        fprintf(stderr, "\n  detail \"%s\" lacks \"%s\"\n", dkm_error_detail(), why);
        CU_FAIL("error detail does not name the field");
    }
}

static void test_delegation_bad_fields(void)
{
    struct deleg d;
    uint8_t rec[DKM_DELEGATION_SIZE + 1];
    struct dkm_delegation out;

    d = deleg_default();
    d.magic = 0x444b4e43u;
    expect_bad_delegation(&d, "magic");
    d = deleg_default();
    d.version = 2;
    expect_bad_delegation(&d, "version");
    d = deleg_default();
    d.key.point[0] = 0x03;
    expect_bad_delegation(&d, "delegated key");
    d = deleg_default();
    d.key.point[40] ^= 0x10;
    expect_bad_delegation(&d, "delegated key");
    d = deleg_default();
    d.not_after = d.not_before;
    expect_bad_delegation(&d, "window is empty");
    d = deleg_default();
    d.not_after = d.not_before - 1;
    expect_bad_delegation(&d, "window is empty");
    d = deleg_default();
    d.not_after = d.not_before + DKM_DELEGATION_MAX_LIFETIME + 1;
    expect_bad_delegation(&d, "longer");
    d.not_after = d.not_before + DKM_DELEGATION_MAX_LIFETIME;
    deleg_encode(&d, rec);
    CU_ASSERT_EQUAL(dkm_delegation_decode(rec, DKM_DELEGATION_SIZE, &out), 0);
    d = deleg_default();
    d.server.bytes[1] = 0x0c;
    expect_bad_delegation(&d, "server id");

    /* Wrong sizes: one byte short, one byte more. */
    d = deleg_default();
    deleg_encode(&d, rec);
    rec[DKM_DELEGATION_SIZE] = 0;
    CU_ASSERT_EQUAL(dkm_delegation_decode(rec, DKM_DELEGATION_SIZE - 1, &out),
                    DKM_E_FORMAT);
    CU_ASSERT_EQUAL(dkm_delegation_decode(rec, DKM_DELEGATION_SIZE + 1, &out),
                    DKM_E_FORMAT);
    CU_ASSERT_EQUAL(dkm_delegation_decode(rec, 0, &out), DKM_E_FORMAT);
    CU_ASSERT_EQUAL(dkm_delegation_verify(&sk_a.pub, &server_a, rec,
                                          DKM_DELEGATION_SIZE + 1, NOW, NULL),
                    DKM_E_FORMAT);
}

static void test_response_chain_broken(void)
{
    struct deleg d = deleg_default();
    uint8_t rec[DKM_DELEGATION_SIZE], sig[64];

    deleg_encode(&d, rec);
    /* Signed by a key that is not the delegated one. */
    sw_sign(&resp_b, DKM_SIGCTX_RESPONSE, "resp", 4, sig);
    CU_ASSERT_EQUAL(dkm_response_verify(&sk_a.pub, &server_a, rec, sizeof(rec), NOW,
                                        DKM_SIGCTX_RESPONSE, "resp", 4, sig),
                    DKM_E_SIGNATURE);
    /* Signed by the SK itself, bypassing the delegation. */
    sw_sign(&sk_a, DKM_SIGCTX_RESPONSE, "resp", 4, sig);
    CU_ASSERT_EQUAL(dkm_response_verify(&sk_a.pub, &server_a, rec, sizeof(rec), NOW,
                                        DKM_SIGCTX_RESPONSE, "resp", 4, sig),
                    DKM_E_SIGNATURE);
    /* The right key, another message or context. */
    sw_sign(&resp_a, DKM_SIGCTX_RESPONSE, "resp", 4, sig);
    CU_ASSERT_EQUAL(dkm_response_verify(&sk_a.pub, &server_a, rec, sizeof(rec), NOW,
                                        DKM_SIGCTX_RESPONSE, "resq", 4, sig),
                    DKM_E_SIGNATURE);
    CU_ASSERT_EQUAL(dkm_response_verify(&sk_a.pub, &server_a, rec, sizeof(rec), NOW,
                                        "dkm other v1", "resp", 4, sig),
                    DKM_E_SIGNATURE);
    /* A good response under an expired delegation. */
    CU_ASSERT_EQUAL(dkm_response_verify(&sk_a.pub, &server_a, rec, sizeof(rec),
                                        d.not_after, DKM_SIGCTX_RESPONSE, "resp", 4, sig),
                    DKM_E_EXPIRED);
    /* A good response, the delegation checked against another server. */
    CU_ASSERT_EQUAL(dkm_response_verify(&sk_b.pub, &server_a, rec, sizeof(rec), NOW,
                                        DKM_SIGCTX_RESPONSE, "resp", 4, sig),
                    DKM_E_SIGNATURE);
    /* The delegation context cannot be used for responses. */
    sw_sign(&resp_a, DKM_SIGCTX_DELEGATION, "resp", 4, sig);
    CU_ASSERT_EQUAL(dkm_response_verify(&sk_a.pub, &server_a, rec, sizeof(rec), NOW,
                                        DKM_SIGCTX_DELEGATION, "resp", 4, sig),
                    -EINVAL);
}

static CU_TestInfo sign_tests[] = {
    {"test_sign_digest_known_construction", test_sign_digest_known_construction},
    {"test_sign_context_validated", test_sign_context_validated},
    {"test_sign_verify_and_every_bit_flip", test_sign_verify_and_every_bit_flip},
    {"test_sign_verify_out_of_range", test_sign_verify_out_of_range},
    {"test_sign_public_key_checked", test_sign_public_key_checked},
    {"test_delegation_verify_good", test_delegation_verify_good},
    {"test_delegation_time_window", test_delegation_time_window},
    {"test_delegation_wrong_signer_or_server", test_delegation_wrong_signer_or_server},
    {"test_delegation_every_byte_signed", test_delegation_every_byte_signed},
    {"test_delegation_bad_fields", test_delegation_bad_fields},
    {"test_response_chain_broken", test_response_chain_broken},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {"sign", suite_init, suite_cleanup, NULL, NULL, sign_tests},
    CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv)
{
    return dkm_test_main(argc, argv, suites);
}
