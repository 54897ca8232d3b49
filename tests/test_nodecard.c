/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Node card format tests, without a TPM: EK public areas are made from
 * software keys with the TCG templates, and cards are also built byte by
 * byte by an encoder written here from docs/formats.md, so the layout is
 * checked independently of the library's encoder. Every field has a
 * negative test; so has the text armor.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <tss2/tss2_mu.h>

#include "dkm/base/codec.h"
#include "dkm/trust/nodecard.h"
#include "fixtures.h"
#include "unit.h"

#define HOST "node-1.example.org"
#define CREATED 1700000000ull

static TPM2B_PUBLIC ecc_ek, rsa_ek;
static uint8_t *cert;
static int cert_len;

/* A self-signed certificate stands in for an EK certificate. */
static bool make_cert(void)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    X509 *x = X509_new();
    X509_NAME *name;
    bool ok = false;

    if (k == NULL || x == NULL)
        goto done;
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"ek", -1,
                               -1, 0);
    X509_set_issuer_name(x, name);
    X509_set_pubkey(x, k);
    if (X509_sign(x, k, EVP_sha256()) <= 0)
        goto done;
    cert_len = i2d_X509(x, &cert);
    ok = cert_len > 0;
done:
    X509_free(x);
    EVP_PKEY_free(k);
    return ok;
}

static int suite_init(void)
{
    return dkm_test_soft_ek(DKM_EK_ECCP256, &ecc_ek, NULL) == 0 &&
                   dkm_test_soft_ek(DKM_EK_RSA2048, &rsa_ek, NULL) == 0 && make_cert()
               ? 0
               : 1;
}

static int suite_cleanup(void)
{
    OPENSSL_free(cert);
    return 0;
}

/* Fields of a card as they go on the wire, for the independent encoder. */
struct raw {
    uint32_t magic;
    uint16_t version;
    const TPMT_PUBLIC *pub;
    int pub_len_delta; /* added to the EK public length field */
    const uint8_t *cert;
    size_t cert_len;
    int cert_len_delta;
    const char *host;
    size_t host_len;
    int host_len_delta;
    uint64_t created;
    size_t trailing; /* zero bytes appended */
    size_t truncate; /* bytes removed from the end */
};

static struct raw raw_default(const TPM2B_PUBLIC *ek)
{
    struct raw r = {.magic = 0x444b4e43u,
                    .version = 1,
                    .pub = &ek->publicArea,
                    .cert = NULL,
                    .cert_len = 0,
                    .host = HOST,
                    .host_len = strlen(HOST),
                    .created = CREATED};
    return r;
}

static size_t raw_encode(const struct raw *r, uint8_t *buf, size_t cap)
{
    struct dkm_writer w = dkm_writer_init(buf, cap);
    uint8_t pub[sizeof(TPMT_PUBLIC)];
    size_t pub_len = 0;

    CU_ASSERT_FATAL(Tss2_MU_TPMT_PUBLIC_Marshal(r->pub, pub, sizeof(pub), &pub_len) ==
                    TSS2_RC_SUCCESS);
    dkm_put_u32be(&w, r->magic);
    dkm_put_u16be(&w, r->version);
    dkm_put_u16be(&w, (uint16_t)((int)pub_len + r->pub_len_delta));
    dkm_put_bytes(&w, pub, pub_len);
    dkm_put_u16be(&w, (uint16_t)((int)r->cert_len + r->cert_len_delta));
    dkm_put_bytes(&w, r->cert, r->cert_len);
    dkm_put_u8(&w, (uint8_t)((int)r->host_len + r->host_len_delta));
    dkm_put_bytes(&w, r->host, r->host_len);
    dkm_put_u64be(&w, r->created);
    for (size_t i = 0; i < r->trailing; i++)
        dkm_put_u8(&w, 0);
    CU_ASSERT_FATAL(dkm_writer_ok(&w));
    CU_ASSERT_FATAL(r->truncate <= w.len);
    return w.len - r->truncate;
}

static size_t pub_size(const TPM2B_PUBLIC *ek)
{
    uint8_t pub[sizeof(TPMT_PUBLIC)];
    size_t n = 0;

    CU_ASSERT_FATAL(Tss2_MU_TPMT_PUBLIC_Marshal(&ek->publicArea, pub, sizeof(pub), &n) ==
                    TSS2_RC_SUCCESS);
    return n;
}

/* Decode must fail with DKM_E_FORMAT and a detail containing why. */
static void expect_bad(const struct raw *r, const char *why)
{
    uint8_t buf[DKM_NODECARD_MAX + 16];
    size_t n = raw_encode(r, buf, sizeof(buf));
    struct dkm_nodecard *card = NULL;
    int rc = dkm_nodecard_decode(buf, n, &card);

    CU_ASSERT_EQUAL(rc, DKM_E_FORMAT);
    CU_ASSERT_PTR_NULL(card);
    if (strstr(dkm_error_detail(), why) == NULL) {
        fprintf(stderr, "\n  detail \"%s\" lacks \"%s\"\n", dkm_error_detail(), why);
        CU_FAIL("error detail does not name the field");
    }
    dkm_nodecard_free(card);
}

static void round_trip(const TPM2B_PUBLIC *ek, const uint8_t *c, size_t clen)
{
    struct dkm_nodecard *card = NULL, *back = NULL;
    uint8_t *bin = NULL, raw_buf[DKM_NODECARD_MAX];
    size_t bin_len = 0, raw_len;
    struct raw r = raw_default(ek);
    struct dkm_node_id id;

    r.cert = c;
    r.cert_len = clen;
    CU_ASSERT_FATAL(dkm_nodecard_new(ek, c, clen, HOST, CREATED, &card) == 0);
    CU_ASSERT_FATAL(dkm_nodecard_encode(card, &bin, &bin_len) == 0);
    /* The library's encoding is the documented layout. */
    raw_len = raw_encode(&r, raw_buf, sizeof(raw_buf));
    CU_ASSERT_EQUAL(bin_len, raw_len);
    CU_ASSERT(memcmp(bin, raw_buf, raw_len) == 0);
    CU_ASSERT_FATAL(dkm_nodecard_decode(bin, bin_len, &back) == 0);
    CU_ASSERT_EQUAL(back->ek_type, ek->publicArea.type == TPM2_ALG_RSA ? DKM_EK_RSA2048
                                                                       : DKM_EK_ECCP256);
    CU_ASSERT_FATAL(dkm_node_id_from_public(ek, &id) == 0);
    CU_ASSERT(dkm_node_id_equal(&back->id, &id));
    CU_ASSERT(dkm_node_id_equal(&back->id, &card->id));
    CU_ASSERT_STRING_EQUAL(back->hostname, HOST);
    CU_ASSERT_EQUAL(back->created, CREATED);
    CU_ASSERT_EQUAL(back->ek_cert_len, clen);
    if (clen > 0) {
        CU_ASSERT(back->ek_cert != NULL && memcmp(back->ek_cert, c, clen) == 0);
    } else {
        CU_ASSERT_PTR_NULL(back->ek_cert);
    }
    dkm_nodecard_free(card);
    dkm_nodecard_free(back);
    free(bin);
}

static void test_nodecard_round_trip_ecc(void)
{
    round_trip(&ecc_ek, NULL, 0);
    round_trip(&ecc_ek, cert, (size_t)cert_len);
}

static void test_nodecard_round_trip_rsa(void)
{
    round_trip(&rsa_ek, NULL, 0);
    round_trip(&rsa_ek, cert, (size_t)cert_len);
}

static void test_nodecard_node_id_hex(void)
{
    struct dkm_node_id id, back;
    char hex[DKM_NODE_ID_HEX_SIZE], upper[DKM_NODE_ID_HEX_SIZE];

    CU_ASSERT_FATAL(dkm_node_id_from_public(&ecc_ek, &id) == 0);
    dkm_node_id_hex(&id, hex);
    CU_ASSERT_EQUAL(strlen(hex), 68);
    CU_ASSERT(strncmp(hex, "000b", 4) == 0);
    CU_ASSERT(strspn(hex, "0123456789abcdef") == 68);
    CU_ASSERT(dkm_node_id_parse(hex, &back) == 0 && dkm_node_id_equal(&id, &back));
    for (size_t i = 0; i < sizeof(hex); i++)
        upper[i] = (char)(hex[i] >= 'a' && hex[i] <= 'f' ? hex[i] - 32 : hex[i]);
    CU_ASSERT(dkm_node_id_parse(upper, &back) == 0 && dkm_node_id_equal(&id, &back));
    CU_ASSERT_EQUAL(dkm_node_id_parse("000b", &back), -EINVAL);
    hex[10] = 'g';
    CU_ASSERT_EQUAL(dkm_node_id_parse(hex, &back), -EINVAL);
    dkm_node_id_hex(&id, hex);
    hex[3] = 'c'; /* SHA-384 name algorithm */
    CU_ASSERT_EQUAL(dkm_node_id_parse(hex, &back), -EINVAL);
}

static void test_nodecard_bad_magic(void)
{
    struct raw r = raw_default(&ecc_ek);

    r.magic = 0x444b4e44u;
    expect_bad(&r, "magic");
    r.magic = 0x434e4b44u; /* byte-swapped */
    expect_bad(&r, "magic");
}

static void test_nodecard_bad_version(void)
{
    struct raw r = raw_default(&ecc_ek);

    r.version = 2;
    expect_bad(&r, "version");
    r.version = 0;
    expect_bad(&r, "version");
}

static void test_nodecard_bad_ek_length(void)
{
    struct raw r = raw_default(&ecc_ek);

    r.pub_len_delta = 1; /* claims one byte more: the cert length is eaten */
    expect_bad(&r, "EK public");
    r.pub_len_delta = -1;
    expect_bad(&r, "EK public");
    r.pub_len_delta = 5000;
    expect_bad(&r, "EK public area length");
    r.pub_len_delta = -(int)pub_size(&ecc_ek); /* a length of 0 */
    expect_bad(&r, "EK public area length");
    {
        /* Cut inside the EK public area: its length runs past the end. */
        uint8_t buf[DKM_NODECARD_MAX];
        struct dkm_nodecard *card = NULL;

        r = raw_default(&rsa_ek);
        (void)raw_encode(&r, buf, sizeof(buf));
        CU_ASSERT_EQUAL(dkm_nodecard_decode(buf, 8 + 100, &card), DKM_E_FORMAT);
        CU_ASSERT(strstr(dkm_error_detail(), "EK public area length") != NULL);
    }
}

static void test_nodecard_bad_ek_content(void)
{
    TPM2B_PUBLIC ek;
    struct raw r;

    ek = ecc_ek;
    ek.publicArea.objectAttributes |= TPMA_OBJECT_USERWITHAUTH;
    r = raw_default(&ek);
    expect_bad(&r, "attributes");

    ek = ecc_ek;
    ek.publicArea.objectAttributes &= ~TPMA_OBJECT_RESTRICTED;
    r = raw_default(&ek);
    expect_bad(&r, "attributes");

    ek = ecc_ek;
    ek.publicArea.objectAttributes =
        (ek.publicArea.objectAttributes & ~TPMA_OBJECT_DECRYPT) |
        TPMA_OBJECT_SIGN_ENCRYPT;
    r = raw_default(&ek);
    expect_bad(&r, "attributes");

    ek = ecc_ek;
    ek.publicArea.nameAlg = TPM2_ALG_SHA384;
    r = raw_default(&ek);
    expect_bad(&r, "name algorithm");

    ek = ecc_ek;
    ek.publicArea.authPolicy.buffer[0] ^= 1;
    r = raw_default(&ek);
    expect_bad(&r, "authPolicy");

    ek = ecc_ek;
    ek.publicArea.parameters.eccDetail.curveID = TPM2_ECC_NIST_P384;
    r = raw_default(&ek);
    expect_bad(&r, "curve");

    ek = ecc_ek;
    ek.publicArea.parameters.eccDetail.symmetric.keyBits.aes = 256;
    r = raw_default(&ek);
    expect_bad(&r, "symmetric");

    ek = ecc_ek;
    ek.publicArea.unique.ecc.y.buffer[31] ^= 1; /* off the curve */
    r = raw_default(&ek);
    expect_bad(&r, "not on NIST P-256");

    ek = ecc_ek;
    ek.publicArea.unique.ecc.x.size = 31;
    r = raw_default(&ek);
    expect_bad(&r, "32");

    ek = rsa_ek;
    ek.publicArea.parameters.rsaDetail.keyBits = 3072;
    r = raw_default(&ek);
    expect_bad(&r, "2048");

    ek = rsa_ek;
    ek.publicArea.parameters.rsaDetail.exponent = 3;
    r = raw_default(&ek);
    expect_bad(&r, "exponent");

    ek = rsa_ek;
    ek.publicArea.unique.rsa.buffer[255] &= 0xfe; /* even modulus */
    r = raw_default(&ek);
    expect_bad(&r, "modulus");

    ek = rsa_ek;
    ek.publicArea.type = TPM2_ALG_KEYEDHASH;
    ek.publicArea.parameters.keyedHashDetail.scheme.scheme = TPM2_ALG_NULL;
    ek.publicArea.unique.keyedHash.size = 32;
    r = raw_default(&ek);
    expect_bad(&r, "neither RSA nor ECC");
}

static void test_nodecard_bad_cert(void)
{
    struct raw r = raw_default(&ecc_ek);
    uint8_t big[DKM_EK_CERT_MAX + 1], *padded;

    r.cert = cert;
    r.cert_len = (size_t)cert_len;
    r.cert_len_delta = 1000; /* past the end */
    expect_bad(&r, "EK certificate length");

    memset(big, 0x30, sizeof(big));
    r = raw_default(&ecc_ek);
    r.cert = big;
    r.cert_len = sizeof(big);
    expect_bad(&r, "EK certificate length");

    r = raw_default(&ecc_ek);
    r.cert = (const uint8_t *)"not a certificate";
    r.cert_len = 17;
    expect_bad(&r, "X.509");

    /* A valid certificate followed by padding inside the field. */
    padded = calloc(1, (size_t)cert_len + 4);
    CU_ASSERT_FATAL(padded != NULL);
    memcpy(padded, cert, (size_t)cert_len);
    r = raw_default(&ecc_ek);
    r.cert = padded;
    r.cert_len = (size_t)cert_len + 4;
    expect_bad(&r, "after the DER");

    /* A certificate with a flipped byte in its signature still parses;
     * one with a broken structure does not. */
    memcpy(padded, cert, (size_t)cert_len);
    padded[1] ^= 0x7f;
    r.cert_len = (size_t)cert_len;
    expect_bad(&r, "EK certificate");
    free(padded);
}

static void test_nodecard_bad_hostname(void)
{
    static const char *const bad[] = {
        "a..b", ".a", "a.", "-a", "a-", "a.-b", "a b", "a/b", "héllo", "a\tb",
    };
    struct raw r = raw_default(&ecc_ek);
    char longname[300], label[70];

    r.host = "";
    r.host_len = 0;
    expect_bad(&r, "hostname length");

    r = raw_default(&ecc_ek);
    r.host_len_delta = 200; /* past the end */
    expect_bad(&r, "hostname length");

    memset(longname, 'a', sizeof(longname));
    for (size_t i = 50; i < 254; i += 50)
        longname[i] = '.';
    r = raw_default(&ecc_ek);
    r.host = longname;
    r.host_len = 254; /* the length byte can say 254 */
    expect_bad(&r, "hostname length");

    r = raw_default(&ecc_ek);
    r.host = "ab\0cd";
    r.host_len = 5;
    expect_bad(&r, "NUL");

    memset(label, 'x', sizeof(label));
    r = raw_default(&ecc_ek);
    r.host = label;
    r.host_len = 64;
    expect_bad(&r, "63");

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        r = raw_default(&ecc_ek);
        r.host = bad[i];
        r.host_len = strlen(bad[i]);
        expect_bad(&r, "hostname");
        CU_ASSERT_EQUAL(dkm_hostname_check(bad[i]), -EINVAL);
    }
    CU_ASSERT_EQUAL(dkm_hostname_check("localhost"), 0);
    CU_ASSERT_EQUAL(dkm_hostname_check("a-b_c.D9.example"), 0);
    label[63] = '\0';
    CU_ASSERT_EQUAL(dkm_hostname_check(label), 0);
}

static void test_nodecard_bad_created(void)
{
    struct raw r = raw_default(&ecc_ek);

    r.created = 0;
    expect_bad(&r, "creation time");
    r.created = DKM_NODECARD_CREATED_MAX + 1;
    expect_bad(&r, "creation time");
    r = raw_default(&ecc_ek);
    r.truncate = 1;
    expect_bad(&r, "creation time");
    r.truncate = 8;
    expect_bad(&r, "creation time");
}

static void test_nodecard_trailing_bytes(void)
{
    struct raw r = raw_default(&ecc_ek);

    r.trailing = 1;
    expect_bad(&r, "trailing");
}

static void test_nodecard_every_truncation(void)
{
    uint8_t buf[DKM_NODECARD_MAX];
    struct raw r = raw_default(&rsa_ek);
    struct dkm_nodecard *card = NULL;
    size_t n;

    r.cert = cert;
    r.cert_len = (size_t)cert_len;
    n = raw_encode(&r, buf, sizeof(buf));
    CU_ASSERT_FATAL(dkm_nodecard_decode(buf, n, &card) == 0);
    dkm_nodecard_free(card);
    for (size_t i = 0; i < n; i++) {
        card = NULL;
        CU_ASSERT_EQUAL(dkm_nodecard_decode(buf, i, &card), DKM_E_FORMAT);
        CU_ASSERT_PTR_NULL(card);
    }
}

static void test_nodecard_new_refuses(void)
{
    struct dkm_nodecard *card = NULL;
    TPM2B_PUBLIC ek = ecc_ek;

    CU_ASSERT_EQUAL(dkm_nodecard_new(&ecc_ek, NULL, 0, "bad host", CREATED, &card),
                    DKM_E_FORMAT);
    CU_ASSERT_EQUAL(dkm_nodecard_new(&ecc_ek, NULL, 0, HOST, 0, &card), DKM_E_FORMAT);
    CU_ASSERT_EQUAL(
        dkm_nodecard_new(&ecc_ek, (const uint8_t *)"xx", 2, HOST, CREATED, &card),
        DKM_E_FORMAT);
    ek.publicArea.objectAttributes ^= TPMA_OBJECT_FIXEDTPM;
    CU_ASSERT_EQUAL(dkm_nodecard_new(&ek, NULL, 0, HOST, CREATED, &card), DKM_E_FORMAT);
    CU_ASSERT_PTR_NULL(card);
}

/* Armor and de-armor an ECC card; returns the text (caller frees). */
static char *armored(void)
{
    struct dkm_nodecard *card = NULL;
    uint8_t *bin = NULL;
    size_t bin_len = 0;
    char *text = NULL;

    CU_ASSERT_FATAL(
        dkm_nodecard_new(&rsa_ek, cert, (size_t)cert_len, HOST, CREATED, &card) == 0);
    CU_ASSERT_FATAL(dkm_nodecard_encode(card, &bin, &bin_len) == 0);
    CU_ASSERT_FATAL(dkm_nodecard_armor(bin, bin_len, &text) == 0);
    dkm_nodecard_free(card);
    free(bin);
    return text;
}

static int dearmor_str(const char *text)
{
    uint8_t *bin = NULL;
    size_t n = 0;
    int r = dkm_nodecard_dearmor(text, strlen(text), &bin, &n);

    free(bin);
    return r;
}

static void test_nodecard_armor_round_trip(void)
{
    char *text = armored(), *crlf, *p;
    uint8_t *bin = NULL;
    size_t n = 0, lines = 0;
    struct dkm_nodecard *card = NULL;

    CU_ASSERT(strncmp(text, DKM_NODECARD_BEGIN "\n", strlen(DKM_NODECARD_BEGIN) + 1) ==
              0);
    CU_ASSERT(strstr(text, "\n" DKM_NODECARD_END "\n") != NULL);
    for (p = text; *p; p++)
        lines += *p == '\n';
    CU_ASSERT(lines > 3);
    CU_ASSERT_FATAL(dkm_nodecard_dearmor(text, strlen(text), &bin, &n) == 0);
    CU_ASSERT_FATAL(dkm_nodecard_decode(bin, n, &card) == 0);
    CU_ASSERT_STRING_EQUAL(card->hostname, HOST);
    dkm_nodecard_free(card);
    free(bin);

    /* Windows line ends and surrounding blank space are accepted. */
    crlf = calloc(1, 2 * strlen(text) + 8);
    CU_ASSERT_FATAL(crlf != NULL);
    strcpy(crlf, "\n  ");
    for (p = text; *p; p++) {
        if (*p == '\n')
            strcat(crlf, "\r");
        strncat(crlf, p, 1);
    }
    strcat(crlf, "\n\n");
    CU_ASSERT_EQUAL(dearmor_str(crlf), 0);
    free(crlf);
    free(text);
}

static void test_nodecard_armor_bad(void)
{
    char *text = armored(), *copy, *p;
    size_t len = strlen(text);

    copy = malloc(len + 64);
    CU_ASSERT_FATAL(copy != NULL);

    /* No BEGIN line. */
    CU_ASSERT_EQUAL(dearmor_str(text + 1), DKM_E_FORMAT);
    /* No END line. */
    strcpy(copy, text);
    copy[len - 3] = '\0';
    CU_ASSERT_EQUAL(dearmor_str(copy), DKM_E_FORMAT);
    strcpy(copy, text);
    *strstr(copy, DKM_NODECARD_END) = '\0';
    CU_ASSERT_EQUAL(dearmor_str(copy), DKM_E_FORMAT);
    /* Text after END. */
    strcpy(copy, text);
    strcat(copy, "x\n");
    CU_ASSERT_EQUAL(dearmor_str(copy), DKM_E_FORMAT);
    /* A character outside base64url (standard base64's '+'). */
    strcpy(copy, text);
    copy[strlen(DKM_NODECARD_BEGIN) + 5] = '+';
    CU_ASSERT_EQUAL(dearmor_str(copy), DKM_E_FORMAT);
    /* Padding. */
    strcpy(copy, text);
    p = strstr(copy, "\n" DKM_NODECARD_END);
    memmove(p + 1, p, strlen(p) + 1);
    *p = '=';
    CU_ASSERT_EQUAL(dearmor_str(copy), DKM_E_FORMAT);
    /* A blank line inside. */
    strcpy(copy, text);
    p = strchr(copy, '\n');
    memmove(p + 1, p, strlen(p) + 1);
    CU_ASSERT_EQUAL(dearmor_str(copy), DKM_E_FORMAT);
    /* A line longer than 64 characters (two lines joined). */
    strcpy(copy, text);
    p = strchr(strchr(copy, '\n') + 1, '\n');
    memmove(p, p + 1, strlen(p));
    CU_ASSERT_EQUAL(dearmor_str(copy), DKM_E_FORMAT);
    /* Empty armor. */
    CU_ASSERT_EQUAL(dearmor_str(DKM_NODECARD_BEGIN "\n" DKM_NODECARD_END "\n"),
                    DKM_E_FORMAT);
    /* Another armor label. */
    CU_ASSERT_EQUAL(dearmor_str("-----BEGIN CERTIFICATE-----\nAAAA\n"
                                "-----END CERTIFICATE-----\n"),
                    DKM_E_FORMAT);
    free(copy);
    free(text);
}

static void test_nodecard_file_round_trip(void)
{
    struct dkm_nodecard *card = NULL, *back = NULL;
    char path[512];

    snprintf(path, sizeof(path), "%s/card", dkm_test_tmpdir());
    CU_ASSERT_FATAL(dkm_nodecard_new(&ecc_ek, NULL, 0, HOST, CREATED, &card) == 0);
    CU_ASSERT_EQUAL(dkm_nodecard_write_file(card, path, false), 0);
    CU_ASSERT_EQUAL(dkm_nodecard_write_file(card, path, false), -EEXIST);
    CU_ASSERT_EQUAL(dkm_nodecard_write_file(card, path, true), 0);
    CU_ASSERT_FATAL(dkm_nodecard_read_file(path, &back) == 0);
    CU_ASSERT(dkm_node_id_equal(&card->id, &back->id));
    dkm_nodecard_free(back);
    back = NULL;
    snprintf(path, sizeof(path), "%s/missing", dkm_test_tmpdir());
    CU_ASSERT_EQUAL(dkm_nodecard_read_file(path, &back), -ENOENT);
    CU_ASSERT_PTR_NULL(back);
    dkm_nodecard_free(card);
}

static CU_TestInfo nodecard_tests[] = {
    {"test_nodecard_round_trip_ecc", test_nodecard_round_trip_ecc},
    {"test_nodecard_round_trip_rsa", test_nodecard_round_trip_rsa},
    {"test_nodecard_node_id_hex", test_nodecard_node_id_hex},
    {"test_nodecard_bad_magic", test_nodecard_bad_magic},
    {"test_nodecard_bad_version", test_nodecard_bad_version},
    {"test_nodecard_bad_ek_length", test_nodecard_bad_ek_length},
    {"test_nodecard_bad_ek_content", test_nodecard_bad_ek_content},
    {"test_nodecard_bad_cert", test_nodecard_bad_cert},
    {"test_nodecard_bad_hostname", test_nodecard_bad_hostname},
    {"test_nodecard_bad_created", test_nodecard_bad_created},
    {"test_nodecard_trailing_bytes", test_nodecard_trailing_bytes},
    {"test_nodecard_every_truncation", test_nodecard_every_truncation},
    {"test_nodecard_new_refuses", test_nodecard_new_refuses},
    {"test_nodecard_armor_round_trip", test_nodecard_armor_round_trip},
    {"test_nodecard_armor_bad", test_nodecard_armor_bad},
    {"test_nodecard_file_round_trip", test_nodecard_file_round_trip},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {"nodecard", suite_init, suite_cleanup, NULL, NULL, nodecard_tests},
    CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv)
{
    return dkm_test_main(argc, argv, suites);
}
