/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Server card format tests, without a TPM: the server is a software EK
 * and signing key (fixtures.h), and cards are also built byte by byte by
 * an encoder written here from docs/formats.md and signed here, so the
 * layout is checked independently of the library's encoder and every
 * field's check is reached with a valid signature. Every field has a
 * negative test; so has the signature and the armor.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tss2/tss2_mu.h>

#include "dkm/base/codec.h"
#include "dkm/trust/servercard.h"
#include "fixtures.h"
#include "unit.h"

#define HOST "dkm-2.example.org"
#define CREATED 1700000000ull

static struct dkm_test_server srv, other;
static TPM2B_PUBLIC rsa_ek;

static int suite_init(void)
{
    return dkm_test_server_make(&srv) == 0 && dkm_test_server_make(&other) == 0 &&
                   dkm_test_soft_ek(DKM_EK_RSA2048, &rsa_ek, NULL) == 0
               ? 0
               : 1;
}

static int suite_cleanup(void)
{
    dkm_test_server_free(&srv);
    dkm_test_server_free(&other);
    return 0;
}

/* The fields as they go on the wire, for the independent encoder. */
struct raw {
    uint32_t magic;
    uint16_t version;
    const TPMT_PUBLIC *pub;
    int pub_len_delta;
    uint8_t sk[DKM_P256_PUBLIC_SIZE];
    const char *host;
    size_t host_len;
    int host_len_delta;
    uint64_t created;
    struct dkm_test_server *signer; /* NULL: no signature */
    size_t trailing;
    size_t truncate;
};

static struct raw raw_default(void)
{
    struct raw r = {.magic = 0x444b5356u,
                    .version = 1,
                    .pub = &srv.ek.publicArea,
                    .host = HOST,
                    .host_len = strlen(HOST),
                    .created = CREATED,
                    .signer = &srv};

    memcpy(r.sk, srv.pub.point, sizeof(r.sk));
    return r;
}

static size_t raw_encode(const struct raw *r, uint8_t *buf, size_t cap)
{
    struct dkm_writer w = dkm_writer_init(buf, cap);
    uint8_t pub[sizeof(TPMT_PUBLIC)], sig[DKM_SIG_SIZE];
    size_t pub_len = 0;

    CU_ASSERT_FATAL(Tss2_MU_TPMT_PUBLIC_Marshal(r->pub, pub, sizeof(pub), &pub_len) ==
                    TSS2_RC_SUCCESS);
    dkm_put_u32be(&w, r->magic);
    dkm_put_u16be(&w, r->version);
    dkm_put_u16be(&w, (uint16_t)((int)pub_len + r->pub_len_delta));
    dkm_put_bytes(&w, pub, pub_len);
    dkm_put_bytes(&w, r->sk, sizeof(r->sk));
    dkm_put_u8(&w, (uint8_t)((int)r->host_len + r->host_len_delta));
    dkm_put_bytes(&w, r->host, r->host_len);
    dkm_put_u64be(&w, r->created);
    CU_ASSERT_FATAL(dkm_writer_ok(&w));
    if (r->signer != NULL) {
        struct dkm_signer s = dkm_test_server_signer(r->signer);

        CU_ASSERT_FATAL(s.sign(s.ctx, DKM_SIGCTX_SERVER_CARD, buf, w.len, sig) == 0);
        dkm_put_bytes(&w, sig, sizeof(sig));
    }
    for (size_t i = 0; i < r->trailing; i++)
        dkm_put_u8(&w, 0);
    CU_ASSERT_FATAL(dkm_writer_ok(&w));
    CU_ASSERT_FATAL(r->truncate <= w.len);
    return w.len - r->truncate;
}

static void expect(const uint8_t *buf, size_t n, int want, const char *why)
{
    struct dkm_servercard card;
    int rc = dkm_servercard_decode(buf, n, &card);

    CU_ASSERT_EQUAL(rc, want);
    if (strstr(dkm_error_detail(), why) == NULL) {
        fprintf(stderr, "\n  detail \"%s\" lacks \"%s\"\n", dkm_error_detail(), why);
        CU_FAIL("error detail does not name the field");
    }
}

static void expect_bad(const struct raw *r, const char *why)
{
    uint8_t buf[DKM_SERVERCARD_MAX + 64];

    expect(buf, raw_encode(r, buf, sizeof(buf)), DKM_E_FORMAT, why);
}

/* A card signed by the library, for the tests that start from a good one. */
static size_t good_card(uint8_t *out, size_t cap, struct dkm_servercard *ret)
{
    struct dkm_servercard card = {.ek = srv.ek, .sk = srv.pub, .created = CREATED};
    struct dkm_signer s = dkm_test_server_signer(&srv);
    uint8_t *bin = NULL;
    size_t len = 0;

    strcpy(card.hostname, HOST);
    CU_ASSERT_FATAL(dkm_servercard_sign(&card, &s, &bin, &len) == 0);
    CU_ASSERT_FATAL(len <= cap);
    memcpy(out, bin, len);
    free(bin);
    if (ret != NULL)
        *ret = card;
    return len;
}

static void test_servercard_round_trip(void)
{
    struct dkm_servercard card, back;
    uint8_t bin[DKM_SERVERCARD_MAX], raw_buf[DKM_SERVERCARD_MAX];
    size_t len = good_card(bin, sizeof(bin), &card), raw_len;
    struct raw r = raw_default();

    /* The library's encoding is the documented layout: ECDSA signatures
     * differ each time, so compare up to the signature. */
    raw_len = raw_encode(&r, raw_buf, sizeof(raw_buf));
    CU_ASSERT_EQUAL(len, raw_len);
    CU_ASSERT_EQUAL(len, 4 + 2 + 2 + 122 + 65 + 1 + strlen(HOST) + 8 + 64);
    CU_ASSERT(memcmp(bin, raw_buf, len - DKM_SIG_SIZE) == 0);
    CU_ASSERT_FATAL(dkm_servercard_decode(bin, len, &back) == 0);
    CU_ASSERT(dkm_node_id_equal(&back.id, &srv.id));
    CU_ASSERT(dkm_node_id_equal(&back.id, &card.id));
    CU_ASSERT(memcmp(back.sk.point, srv.pub.point, DKM_P256_PUBLIC_SIZE) == 0);
    CU_ASSERT_STRING_EQUAL(back.hostname, HOST);
    CU_ASSERT_EQUAL(back.created, CREATED);
    CU_ASSERT(memcmp(back.sig, card.sig, DKM_SIG_SIZE) == 0);
    /* The independently encoded and signed card decodes too. */
    CU_ASSERT_EQUAL(dkm_servercard_decode(raw_buf, raw_len, &back), 0);
}

static void test_servercard_bad_magic(void)
{
    struct raw r = raw_default();

    r.magic = 0x444b4e43u; /* a node card's */
    expect_bad(&r, "bad magic");
}

static void test_servercard_bad_version(void)
{
    struct raw r = raw_default();

    r.version = 2;
    expect_bad(&r, "unknown version 2");
    r.version = 0;
    expect_bad(&r, "unknown version 0");
}

static void test_servercard_bad_ek_length(void)
{
    struct raw r = raw_default();
    uint8_t buf[16] = {0x44, 0x4b, 0x53, 0x56, 0, 1, 0, 0};

    expect(buf, 8, DKM_E_FORMAT, "EK public area length");
    buf[6] = 0x02;
    buf[7] = 0x01; /* 513 */
    expect(buf, 8, DKM_E_FORMAT, "EK public area length");
    r.pub_len_delta = 400; /* past the end */
    expect_bad(&r, "EK public area length");
    r.pub_len_delta = -1; /* the area is cut: it does not parse */
    expect_bad(&r, "server card");
}

static void test_servercard_bad_ek_content(void)
{
    struct raw r = raw_default();
    TPMT_PUBLIC p = srv.ek.publicArea;

    r.pub = &rsa_ek.publicArea; /* a valid EK, but not the ECC one */
    expect_bad(&r, "not the ECC P-256 EK");
    p.objectAttributes ^= TPMA_OBJECT_USERWITHAUTH;
    r.pub = &p;
    expect_bad(&r, "EK public area");
    p = srv.ek.publicArea;
    p.unique.ecc.x.buffer[5] ^= 0x40; /* off the curve */
    r.pub = &p;
    expect_bad(&r, "EK public key");
}

static void test_servercard_bad_signing_key(void)
{
    struct raw r = raw_default();

    r.sk[0] = 0x02; /* compressed form */
    expect_bad(&r, "signing key");
    r = raw_default();
    r.sk[40] ^= 1; /* off the curve */
    expect_bad(&r, "signing key");
    r = raw_default();
    memset(r.sk + 1, 0, 64);
    expect_bad(&r, "signing key");
}

static void test_servercard_bad_hostname(void)
{
    static const char nul[] = "dkm\0two";
    struct raw r = raw_default();
    char longname[300];

    r.host_len = 0;
    expect_bad(&r, "hostname length 0");
    r = raw_default();
    r.host = "bad host";
    r.host_len = strlen(r.host);
    expect_bad(&r, "hostname has character 0x20");
    r.host = "-dash.example";
    r.host_len = strlen(r.host);
    expect_bad(&r, "starts with '-'");
    r.host = nul;
    r.host_len = sizeof(nul) - 1;
    expect_bad(&r, "NUL");
    memset(longname, 'a', sizeof(longname));
    r.host = longname;
    r.host_len = 254;
    expect_bad(&r, "hostname length 254");
    r = raw_default();
    r.host_len_delta = 100; /* past the end */
    expect_bad(&r, "hostname length");
}

static void test_servercard_bad_created(void)
{
    struct raw r = raw_default();

    r.created = 0;
    expect_bad(&r, "creation time 0");
    r.created = DKM_NODECARD_CREATED_MAX + 1;
    expect_bad(&r, "creation time");
    r.created = DKM_NODECARD_CREATED_MAX;
    {
        uint8_t buf[DKM_SERVERCARD_MAX];
        struct dkm_servercard c;

        CU_ASSERT_EQUAL(dkm_servercard_decode(buf, raw_encode(&r, buf, sizeof(buf)), &c),
                        0);
    }
}

static void test_servercard_bad_signature(void)
{
    uint8_t buf[DKM_SERVERCARD_MAX];
    struct raw r = raw_default();
    size_t n;

    /* Signed by another key than the one in the card. */
    r.signer = &other;
    expect(buf, raw_encode(&r, buf, sizeof(buf)), DKM_E_SIGNATURE,
           "signature does not verify");
    /* No signature. */
    r.signer = NULL;
    expect(buf, raw_encode(&r, buf, sizeof(buf)), DKM_E_FORMAT, "signature");
    /* Each byte of a good card flipped: refused, never accepted. */
    n = good_card(buf, sizeof(buf), NULL);
    for (size_t i = 0; i < n; i++) {
        struct dkm_servercard c;
        int rc;

        buf[i] ^= 0x01;
        rc = dkm_servercard_decode(buf, n, &c);
        if (rc != DKM_E_FORMAT && rc != DKM_E_SIGNATURE) {
            fprintf(stderr, "\n  byte %zu flipped: %d\n", i, rc);
            CU_FAIL("a flipped byte was not refused");
        }
        buf[i] ^= 0x01;
    }
    /* The last byte of the creation time only the signature covers. */
    buf[n - DKM_SIG_SIZE - 1] ^= 0x01;
    expect(buf, n, DKM_E_SIGNATURE, "signature does not verify");
}

static void test_servercard_trailing_and_truncated(void)
{
    uint8_t buf[DKM_SERVERCARD_MAX + 64];
    struct raw r = raw_default();
    size_t n;

    r.trailing = 1;
    expect_bad(&r, "1 trailing bytes");
    r = raw_default();
    n = raw_encode(&r, buf, sizeof(buf));
    for (size_t cut = 0; cut < n; cut++) {
        struct dkm_servercard c;

        CU_ASSERT_EQUAL(dkm_servercard_decode(buf, cut, &c), DKM_E_FORMAT);
    }
    expect(buf, DKM_SERVERCARD_MAX + 1, DKM_E_FORMAT, "more than");
}

static void test_servercard_sign_refuses(void)
{
    struct dkm_servercard card = {.ek = srv.ek, .sk = srv.pub, .created = CREATED};
    struct dkm_signer s = dkm_test_server_signer(&other);
    uint8_t *bin = NULL;
    size_t len = 0;

    strcpy(card.hostname, HOST);
    /* Signed by a server that is not the one described. */
    CU_ASSERT_EQUAL(dkm_servercard_sign(&card, &s, &bin, &len), -EINVAL);
    /* The right id, but the signing key in the card is not the signer's. */
    s.id = srv.id;
    CU_ASSERT_EQUAL(dkm_servercard_sign(&card, &s, &bin, &len), DKM_E_SIGNATURE);
    s = dkm_test_server_signer(&srv);
    strcpy(card.hostname, "no spaces");
    CU_ASSERT_EQUAL(dkm_servercard_sign(&card, &s, &bin, &len), DKM_E_FORMAT);
    strcpy(card.hostname, HOST);
    card.created = 0;
    CU_ASSERT_EQUAL(dkm_servercard_sign(&card, &s, &bin, &len), DKM_E_FORMAT);
    card.created = CREATED;
    card.ek = rsa_ek;
    CU_ASSERT_EQUAL(dkm_servercard_sign(&card, &s, &bin, &len), DKM_E_FORMAT);
    CU_ASSERT_PTR_NULL(bin);
}

static void test_servercard_armor(void)
{
    uint8_t bin[DKM_SERVERCARD_MAX], *out = NULL;
    size_t n = good_card(bin, sizeof(bin), NULL), out_len = 0;
    struct dkm_servercard back;
    char *text = NULL, *crlf, path[512];
    size_t j = 0;

    CU_ASSERT_FATAL(
        dkm_armor_encode(DKM_SERVERCARD_LABEL, bin, n, DKM_SERVERCARD_MAX, &text) == 0);
    CU_ASSERT(strncmp(text, "-----BEGIN DKM SERVER CARD-----\n", 32) == 0);
    CU_ASSERT(strstr(text, "\n-----END DKM SERVER CARD-----\n") != NULL);
    CU_ASSERT_EQUAL(dkm_servercard_from_text(text, strlen(text), &back), 0);
    CU_ASSERT(dkm_node_id_equal(&back.id, &srv.id));
    /* CRLF lines and surrounding white space are accepted. */
    crlf = calloc(1, 2 * strlen(text) + 8);
    CU_ASSERT_FATAL(crlf != NULL);
    crlf[j++] = ' ';
    for (const char *p = text; *p; p++) {
        if (*p == '\n')
            crlf[j++] = '\r';
        crlf[j++] = *p;
    }
    CU_ASSERT_EQUAL(dkm_servercard_from_text(crlf, j, &back), 0);
    free(crlf);
    /* Another label is not this armor. */
    CU_ASSERT_EQUAL(
        dkm_armor_decode("DKM NODE CARD", text, strlen(text), 4096, &out, &out_len),
        DKM_E_FORMAT);
    CU_ASSERT_PTR_NULL(out);
    snprintf(path, sizeof(path), "%s/server.card", dkm_test_tmpdir());
    CU_ASSERT_EQUAL(dkm_servercard_write_file(bin, n, path, true), 0);
    CU_ASSERT_EQUAL(dkm_servercard_write_file(bin, n, path, false), -EEXIST);
    CU_ASSERT_EQUAL(dkm_servercard_read_file(path, &back), 0);
    CU_ASSERT(dkm_node_id_equal(&back.id, &srv.id));
    free(text);
}

static void expect_armor_bad(const char *text, const char *why)
{
    uint8_t *out = NULL;
    size_t n = 0;
    int rc = dkm_armor_decode(DKM_SERVERCARD_LABEL, text, strlen(text), 4096, &out, &n);

    CU_ASSERT_EQUAL(rc, DKM_E_FORMAT);
    CU_ASSERT_PTR_NULL(out);
    if (strstr(dkm_error_detail(), why) == NULL) {
        fprintf(stderr, "\n  detail \"%s\" lacks \"%s\"\n", dkm_error_detail(), why);
        CU_FAIL("armor error detail");
    }
}

#define B "-----BEGIN DKM SERVER CARD-----\n"
#define E "-----END DKM SERVER CARD-----\n"

static void test_servercard_armor_bad(void)
{
    char big[5000];
    uint8_t one = 1;
    char *t = NULL;

    expect_armor_bad("RESU\n" E, "does not start with");
    expect_armor_bad(B E, "the armor is empty");
    expect_armor_bad(B "AAAA\n", "no -----END");
    expect_armor_bad(B "AAAA\n" E "x\n", "text after");
    expect_armor_bad(B "\nAAAA\n" E, "a line of 0 characters");
    expect_armor_bad(
        B "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n" E,
        "a line of 65 characters");
    expect_armor_bad(B "AA==\n" E, "DKM SERVER CARD");
    expect_armor_bad(B "AA+/\n" E, "DKM SERVER CARD");
    memset(big, ' ', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    expect_armor_bad(big, "more than 4096 bytes");
    /* Labels are checked: a caller cannot make a malformed armor. */
    CU_ASSERT_EQUAL(dkm_armor_encode("lower case", &one, 1, 16, &t), -EINVAL);
    CU_ASSERT_EQUAL(dkm_armor_encode(DKM_SERVERCARD_LABEL, &one, 17, 16, &t), -EINVAL);
    CU_ASSERT_PTR_NULL(t);
}

static CU_TestInfo servercard_tests[] = {
    {"test_servercard_round_trip", test_servercard_round_trip},
    {"test_servercard_bad_magic", test_servercard_bad_magic},
    {"test_servercard_bad_version", test_servercard_bad_version},
    {"test_servercard_bad_ek_length", test_servercard_bad_ek_length},
    {"test_servercard_bad_ek_content", test_servercard_bad_ek_content},
    {"test_servercard_bad_signing_key", test_servercard_bad_signing_key},
    {"test_servercard_bad_hostname", test_servercard_bad_hostname},
    {"test_servercard_bad_created", test_servercard_bad_created},
    {"test_servercard_bad_signature", test_servercard_bad_signature},
    {"test_servercard_trailing_and_truncated", test_servercard_trailing_and_truncated},
    {"test_servercard_sign_refuses", test_servercard_sign_refuses},
    {"test_servercard_armor", test_servercard_armor},
    {"test_servercard_armor_bad", test_servercard_armor_bad},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {"servercard", suite_init, suite_cleanup, NULL, NULL, servercard_tests},
    CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv)
{
    return dkm_test_main(argc, argv, suites);
}
