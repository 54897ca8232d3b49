/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Software-only tests of import-blob creation and of the dkm envelope:
 * the PolicyPCR digest against known answers, a seal to software-made
 * RSA and ECC "EKs" unwrapped again here the way a TPM would (so the
 * wrapping is checked step by step without a TPM), the envelope round
 * trip, and a negative test for every field: truncation at every byte,
 * every length too large and too small, bad magic, version, EK type,
 * node id, object shape, seed shape, PCR selection, trailing bytes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <tss2/tss2_mu.h>

#include "dkm/base/codec.h"
#include "dkm/tpm/dup.h"
#include "kdf.h"
#include "dkm/tpm/node.h"
#include "dkm/tpm/tpm.h"
#include "dkm/tpm/unseal.h"
#include "fixtures.h"
#include "unit.h"

/* A software key pair dressed as a TCG default EK, so that seal accepts
 * its public area and the test can play the TPM with the private key. */
struct fake_ek {
    EVP_PKEY *pkey;
    TPM2B_PUBLIC pub;
};

static void fake_ek_make(enum dkm_ek_type type, struct fake_ek *ek)
{
    CU_ASSERT_EQUAL_FATAL(dkm_test_soft_ek(type, &ek->pub, &ek->pkey), 0);
}

static void fake_ek_free(struct fake_ek *ek)
{
    EVP_PKEY_free(ek->pkey);
    ek->pkey = NULL;
}

/* Recover the seed as the TPM's TPM2_Import does (CryptSecretDecrypt). */
static bool play_tpm_seed(const struct fake_ek *ek, const struct dkm_import_blob *b,
                          uint8_t seed[32])
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, ek->pkey, NULL);
    bool ok = false;

    if (ctx == NULL)
        return false;
    if (b->ek_type == DKM_EK_RSA2048) {
        unsigned char *label = OPENSSL_memdup("DUPLICATE", 10);
        uint8_t plain[256];
        size_t len = sizeof(plain);

        ok = EVP_PKEY_decrypt_init(ctx) > 0 &&
             EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) > 0 &&
             EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256()) > 0 &&
             EVP_PKEY_CTX_set0_rsa_oaep_label(ctx, label, 10) > 0 &&
             EVP_PKEY_decrypt(ctx, plain, &len, b->seed.secret, b->seed.size) > 0 &&
             len == 32;
        if (ok)
            memcpy(seed, plain, 32);
    } else {
        TPMS_ECC_POINT q;
        size_t off = 0, zlen = 32;
        uint8_t enc[65], z[32];
        EVP_PKEY *peer = NULL;
        EVP_PKEY_CTX *pctx = NULL;
        OSSL_PARAM params[3];

        if (Tss2_MU_TPMS_ECC_POINT_Unmarshal(b->seed.secret, b->seed.size, &off, &q) !=
                TSS2_RC_SUCCESS ||
            off != b->seed.size)
            goto ecc_done;
        enc[0] = 0x04;
        memcpy(enc + 1, q.x.buffer, 32);
        memcpy(enc + 33, q.y.buffer, 32);
        params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
                                                     (char *)"P-256", 0);
        params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, enc, 65);
        params[2] = OSSL_PARAM_construct_end();
        pctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
        if (pctx == NULL || EVP_PKEY_fromdata_init(pctx) <= 0 ||
            EVP_PKEY_fromdata(pctx, &peer, EVP_PKEY_PUBLIC_KEY, params) <= 0)
            goto ecc_done;
        if (EVP_PKEY_derive_init(ctx) <= 0 || EVP_PKEY_derive_set_peer(ctx, peer) <= 0 ||
            EVP_PKEY_derive(ctx, z, &zlen) <= 0 || zlen != 32)
            goto ecc_done;
        ok = dkm_kdfe(EVP_sha256(), z, 32, "DUPLICATE", q.x.buffer, 32,
                      ek->pub.publicArea.unique.ecc.x.buffer, 32, 256, seed, 32) == 0;
    ecc_done:
        EVP_PKEY_free(peer);
        EVP_PKEY_CTX_free(pctx);
    }
    EVP_PKEY_CTX_free(ctx);
    return ok;
}

/* The rest of TPM2_Import and Unseal: check the outer HMAC, decrypt,
 * parse TPM2B_SENSITIVE, check unique, return the data. */
static bool play_tpm_unwrap(const struct fake_ek *ek, const struct dkm_import_blob *b,
                            uint8_t *out, size_t *out_len)
{
    uint8_t seed[32], sym[16], hkey[32], mac[32], plain[512], iv[16] = {0};
    uint8_t unique[32];
    TPM2B_NAME name;
    struct dkm_cursor c;
    const uint8_t *outer, *enc, *p;
    size_t n, enc_len, got = 0;
    uint16_t u16;
    EVP_CIPHER_CTX *cctx = NULL;
    int n1 = 0, n2 = 0;
    bool ok = false;

    if (!play_tpm_seed(ek, b, seed) || dkm_tpm_public_name(&b->public, &name) != 0)
        return false;
    c = dkm_cursor_init(b->duplicate.buffer, b->duplicate.size);
    if (!dkm_get_len16_ref(&c, 32, &outer, &n) || n != 32)
        return false;
    enc = c.p;
    enc_len = c.left;
    if (dkm_kdfa(EVP_sha256(), seed, 32, "STORAGE", name.name, name.size, NULL, 0, 128,
                 sym, 16) != 0 ||
        dkm_kdfa(EVP_sha256(), seed, 32, "INTEGRITY", NULL, 0, NULL, 0, 256, hkey, 32) !=
            0)
        return false;
    {
        uint8_t msg[600];

        memcpy(msg, enc, enc_len);
        memcpy(msg + enc_len, name.name, name.size);
        if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, hkey, 32, msg,
                      enc_len + name.size, mac, 32, &got) == NULL ||
            got != 32 || memcmp(mac, outer, 32) != 0)
            return false;
    }
    cctx = EVP_CIPHER_CTX_new();
    if (cctx == NULL || !EVP_DecryptInit_ex(cctx, EVP_aes_128_cfb128(), NULL, sym, iv) ||
        !EVP_DecryptUpdate(cctx, plain, &n1, enc, (int)enc_len) ||
        !EVP_DecryptFinal_ex(cctx, plain + n1, &n2))
        goto done;
    c = dkm_cursor_init(plain, enc_len);
    /* TPM2B_SENSITIVE: size, type, authValue, seedValue, bits */
    if (!dkm_get_u16be(&c, &u16) || u16 != enc_len - 2 || !dkm_get_u16be(&c, &u16) ||
        u16 != TPM2_ALG_KEYEDHASH || !dkm_get_len16_ref(&c, 64, &p, &n) || n != 0)
        goto done;
    if (!dkm_get_len16_ref(&c, 64, &p, &n) || n != 32)
        goto done;
    {
        const uint8_t *obf = p, *data;
        size_t data_len;

        if (!dkm_get_len16_ref(&c, 128, &data, &data_len) || !dkm_cursor_empty(&c))
            goto done;
        {
            EVP_MD_CTX *md = EVP_MD_CTX_new();

            EVP_DigestInit_ex(md, EVP_sha256(), NULL);
            EVP_DigestUpdate(md, obf, 32);
            EVP_DigestUpdate(md, data, data_len);
            EVP_DigestFinal_ex(md, unique, NULL);
            EVP_MD_CTX_free(md);
        }
        if (b->public.publicArea.unique.keyedHash.size != 32 ||
            memcmp(unique, b->public.publicArea.unique.keyedHash.buffer, 32) != 0)
            goto done;
        memcpy(out, data, data_len);
        *out_len = data_len;
    }
    ok = true;
done:
    EVP_CIPHER_CTX_free(cctx);
    return ok;
}

static void seal_and_unwrap(enum dkm_ek_type type, size_t secret_len, bool with_policy)
{
    struct fake_ek ek;
    struct dkm_import_blob blob;
    struct dkm_node_id id;
    uint8_t secret[DKM_DUP_SECRET_MAX], out[256], policy[32], values[32] = {0};
    size_t out_len = 0;

    for (size_t i = 0; i < sizeof(secret); i++)
        secret[i] = (uint8_t)(i * 7 + 3);
    fake_ek_make(type, &ek);
    if (with_policy)
        CU_ASSERT_EQUAL_FATAL(dkm_dup_policy_pcr(1u << 16, values, 32, policy), 0);
    CU_ASSERT_EQUAL_FATAL(dkm_dup_seal(&ek.pub, secret, secret_len,
                                       with_policy ? 1u << 16 : 0,
                                       with_policy ? policy : NULL, &blob),
                          0);
    CU_ASSERT_EQUAL(blob.ek_type, type);
    CU_ASSERT_EQUAL_FATAL(dkm_node_id_from_public(&ek.pub, &id), 0);
    CU_ASSERT(dkm_node_id_equal(&id, &blob.node_id));
    CU_ASSERT_EQUAL(blob.seed.size, type == DKM_EK_RSA2048 ? 256 : 68);
    CU_ASSERT_EQUAL(blob.public.size, with_policy ? 78 : 46);
    /* Import refuses fixedTPM / fixedParent */
    CU_ASSERT_EQUAL(blob.public.publicArea.objectAttributes &
                        (TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT),
                    0);
    if (with_policy) {
        CU_ASSERT_EQUAL(blob.pcr_mask, 1u << 16);
        CU_ASSERT_EQUAL(blob.public.publicArea.authPolicy.size, 32);
        CU_ASSERT(memcmp(blob.public.publicArea.authPolicy.buffer, policy, 32) == 0);
        CU_ASSERT_EQUAL(
            blob.public.publicArea.objectAttributes & TPMA_OBJECT_USERWITHAUTH, 0);
    } else {
        CU_ASSERT_EQUAL(blob.public.publicArea.authPolicy.size, 0);
        CU_ASSERT_NOT_EQUAL(
            blob.public.publicArea.objectAttributes & TPMA_OBJECT_USERWITHAUTH, 0);
    }
    /* the secret is not in the blob in clear */
    if (secret_len >= 16)
        CU_ASSERT_PTR_NULL(memmem(&blob, sizeof(blob), secret, secret_len));
    CU_ASSERT_FATAL(play_tpm_unwrap(&ek, &blob, out, &out_len));
    CU_ASSERT_EQUAL(out_len, secret_len);
    CU_ASSERT(memcmp(out, secret, secret_len) == 0);
    fake_ek_free(&ek);
}

static void test_dup_seal_rsa_unwraps(void)
{
    seal_and_unwrap(DKM_EK_RSA2048, 32, false);
    seal_and_unwrap(DKM_EK_RSA2048, 1, true);
    seal_and_unwrap(DKM_EK_RSA2048, DKM_DUP_SECRET_MAX, false);
}

static void test_dup_seal_ecc_unwraps(void)
{
    seal_and_unwrap(DKM_EK_ECCP256, 32, false);
    seal_and_unwrap(DKM_EK_ECCP256, 1, false);
    seal_and_unwrap(DKM_EK_ECCP256, DKM_DUP_SECRET_MAX, true);
}

/* A blob for one EK does not unwrap with another key of the same type. */
static void test_dup_seal_other_key_fails(void)
{
    struct fake_ek a, b;
    struct dkm_import_blob blob;
    uint8_t out[256];
    size_t out_len;

    for (int t = 0; t < 2; t++) {
        enum dkm_ek_type type = t == 0 ? DKM_EK_RSA2048 : DKM_EK_ECCP256;

        fake_ek_make(type, &a);
        fake_ek_make(type, &b);
        CU_ASSERT_EQUAL_FATAL(
            dkm_dup_seal(&a.pub, "0123456789abcdef", 16, 0, NULL, &blob), 0);
        CU_ASSERT_FALSE(play_tpm_unwrap(&b, &blob, out, &out_len));
        CU_ASSERT_TRUE(play_tpm_unwrap(&a, &blob, out, &out_len));
        fake_ek_free(&a);
        fake_ek_free(&b);
    }
}

/* Two seals of the same secret share nothing but the shape. */
static void test_dup_seal_is_randomized(void)
{
    struct fake_ek ek;
    struct dkm_import_blob x, y;

    fake_ek_make(DKM_EK_ECCP256, &ek);
    CU_ASSERT_EQUAL_FATAL(dkm_dup_seal(&ek.pub, "same secret", 11, 0, NULL, &x), 0);
    CU_ASSERT_EQUAL_FATAL(dkm_dup_seal(&ek.pub, "same secret", 11, 0, NULL, &y), 0);
    CU_ASSERT(memcmp(x.seed.secret, y.seed.secret, x.seed.size) != 0);
    CU_ASSERT(memcmp(x.duplicate.buffer, y.duplicate.buffer, x.duplicate.size) != 0);
    /* unique = H(random obfuscation || secret): no dictionary check */
    CU_ASSERT(memcmp(x.public.publicArea.unique.keyedHash.buffer,
                     y.public.publicArea.unique.keyedHash.buffer, 32) != 0);
    fake_ek_free(&ek);
}

/* A kept sealed object is tied to the answer whose blob made it. */
static void test_dup_sealed_matches_blob(void)
{
    struct fake_ek ek;
    struct dkm_import_blob x, y;
    struct dkm_sealed s;

    fake_ek_make(DKM_EK_ECCP256, &ek);
    CU_ASSERT_EQUAL_FATAL(dkm_dup_seal(&ek.pub, "same secret", 11, 0, NULL, &x), 0);
    CU_ASSERT_EQUAL_FATAL(dkm_dup_seal(&ek.pub, "same secret", 11, 0, NULL, &y), 0);
    memset(&s, 0, sizeof(s));
    s.ek_type = x.ek_type;
    s.node_id = x.node_id;
    s.public = x.public;
    s.pcr_mask = x.pcr_mask;
    CU_ASSERT_TRUE(dkm_sealed_matches_blob(&s, &x));
    /* Another seal of the same secret is another object. */
    CU_ASSERT_FALSE(dkm_sealed_matches_blob(&s, &y));
    s.public.publicArea.unique.keyedHash.buffer[0] ^= 1;
    CU_ASSERT_FALSE(dkm_sealed_matches_blob(&s, &x));
    s.public = x.public;
    s.pcr_mask = 1;
    CU_ASSERT_FALSE(dkm_sealed_matches_blob(&s, &x));
    s.pcr_mask = x.pcr_mask;
    s.node_id.bytes[5] ^= 1;
    CU_ASSERT_FALSE(dkm_sealed_matches_blob(&s, &x));
    s.node_id = x.node_id;
    s.ek_type = DKM_EK_RSA2048;
    CU_ASSERT_FALSE(dkm_sealed_matches_blob(&s, &x));
    CU_ASSERT_FALSE(dkm_sealed_matches_blob(NULL, &x));
    fake_ek_free(&ek);
}

static void test_dup_seal_rejects_bad_arguments(void)
{
    struct fake_ek ek;
    struct dkm_import_blob blob;
    uint8_t secret[DKM_DUP_SECRET_MAX + 1] = {1}, policy[32] = {0};
    TPM2B_PUBLIC bad;

    fake_ek_make(DKM_EK_RSA2048, &ek);
    CU_ASSERT_EQUAL(dkm_dup_seal(&ek.pub, secret, 0, 0, NULL, &blob), -EINVAL);
    CU_ASSERT_EQUAL(dkm_dup_seal(&ek.pub, secret, sizeof(secret), 0, NULL, &blob),
                    -EINVAL);
    CU_ASSERT_EQUAL(dkm_dup_seal(&ek.pub, secret, 32, 1u << 16, NULL, &blob), -EINVAL);
    CU_ASSERT_EQUAL(dkm_dup_seal(&ek.pub, secret, 32, 0, policy, &blob), -EINVAL);
    CU_ASSERT_EQUAL(dkm_dup_seal(&ek.pub, secret, 32, 1u << 24, policy, &blob), -EINVAL);
    CU_ASSERT_EQUAL(dkm_dup_seal(NULL, secret, 32, 0, NULL, &blob), -EINVAL);
    bad = ek.pub;
    bad.publicArea.objectAttributes |= TPMA_OBJECT_USERWITHAUTH;
    CU_ASSERT_EQUAL(dkm_dup_seal(&bad, secret, 32, 0, NULL, &blob), DKM_E_FORMAT);
    bad = ek.pub;
    bad.publicArea.nameAlg = TPM2_ALG_SHA1;
    CU_ASSERT_EQUAL(dkm_dup_seal(&bad, secret, 32, 0, NULL, &blob), DKM_E_FORMAT);
    fake_ek_free(&ek);

    /* an ECC "EK" whose point is not on the curve */
    fake_ek_make(DKM_EK_ECCP256, &ek);
    bad = ek.pub;
    bad.publicArea.unique.ecc.y.buffer[31] ^= 1;
    CU_ASSERT_NOT_EQUAL(dkm_dup_seal(&bad, secret, 32, 0, NULL, &blob), 0);
    fake_ek_free(&ek);
}

/* Known answers computed independently (Python hashlib) from the
 * formula of TPM2_PolicyPCR, Part 3. */
static void test_dup_policy_pcr_known_answers(void)
{
    static const char *want16 =
        "bff2d58e9813f97cefc14f72ad8133bc7092d652b7c877959254af140c841f36";
    static const char *want0_7_23 =
        "40cd9432656e05e95c7b92d4056c2ebab1c7eb81b73d36471f2c4aefff152cc4";
    uint8_t values[96], digest[32];
    char hex[65];

    memset(values, 0, sizeof(values));
    CU_ASSERT_EQUAL_FATAL(dkm_dup_policy_pcr(1u << 16, values, 32, digest), 0);
    CU_ASSERT_EQUAL_FATAL(dkm_hex_encode(digest, 32, hex, sizeof(hex)), 0);
    CU_ASSERT_STRING_EQUAL(hex, want16);

    memset(values, 0, 32);
    memset(values + 32, 7, 32);
    memset(values + 64, 23, 32);
    CU_ASSERT_EQUAL_FATAL(dkm_dup_policy_pcr(1u | 1u << 7 | 1u << 23, values, 96, digest),
                          0);
    CU_ASSERT_EQUAL_FATAL(dkm_hex_encode(digest, 32, hex, sizeof(hex)), 0);
    CU_ASSERT_STRING_EQUAL(hex, want0_7_23);

    CU_ASSERT_EQUAL(dkm_dup_policy_pcr(0, values, 0, digest), -EINVAL);
    CU_ASSERT_EQUAL(dkm_dup_policy_pcr(1u << 24, values, 32, digest), -EINVAL);
    CU_ASSERT_EQUAL(dkm_dup_policy_pcr(3, values, 32, digest), -EINVAL);
    CU_ASSERT_EQUAL(dkm_dup_policy_pcr(1, values, 64, digest), -EINVAL);
}

/* ---- envelope ---- */

static uint8_t enc_buf[DKM_DUP_ENCODED_MAX];
static size_t enc_len;
static struct dkm_import_blob enc_blob;

/* Offsets of the length fields in enc_buf, found by walking it. */
struct layout {
    size_t node_len, pub_len, dup_len, seed_len, pcr_count, end;
};

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static struct layout walk(const uint8_t *b)
{
    struct layout l;

    l.node_len = 6;
    l.pub_len = l.node_len + 2 + get16(b + l.node_len);
    l.dup_len = l.pub_len + 2 + get16(b + l.pub_len);
    l.seed_len = l.dup_len + 2 + get16(b + l.dup_len);
    l.pcr_count = l.seed_len + 2 + get16(b + l.seed_len);
    l.end = l.pcr_count + 4 + (b[l.pcr_count + 3] ? 6 : 0);
    return l;
}

static void make_envelope(enum dkm_ek_type type, bool with_policy)
{
    struct fake_ek ek;
    uint8_t policy[32], values[32] = {0};

    fake_ek_make(type, &ek);
    CU_ASSERT_EQUAL_FATAL(dkm_dup_policy_pcr(1u << 16, values, 32, policy), 0);
    CU_ASSERT_EQUAL_FATAL(dkm_dup_seal(&ek.pub, "a 32-byte key for the envelope!!", 32,
                                       with_policy ? 1u << 16 : 0,
                                       with_policy ? policy : NULL, &enc_blob),
                          0);
    CU_ASSERT_EQUAL_FATAL(dkm_dup_encode(&enc_blob, enc_buf, sizeof(enc_buf), &enc_len),
                          0);
    CU_ASSERT_EQUAL_FATAL(walk(enc_buf).end, enc_len);
    fake_ek_free(&ek);
}

static bool decodes(const uint8_t *b, size_t n)
{
    struct dkm_import_blob out;
    int r = dkm_dup_decode(b, n, &out);

    if (r != 0) {
        /* every refusal is a format error with a detail */
        CU_ASSERT_EQUAL(r, DKM_E_FORMAT);
        CU_ASSERT_NOT_EQUAL(dkm_error_detail()[0], '\0');
    }
    return r == 0;
}

static void test_dup_envelope_round_trip(void)
{
    for (int t = 0; t < 4; t++) {
        struct dkm_import_blob out;

        make_envelope(t < 2 ? DKM_EK_RSA2048 : DKM_EK_ECCP256, t % 2 == 1);
        CU_ASSERT(memcmp(enc_buf, "DKMI\x01", 5) == 0);
        CU_ASSERT_EQUAL(enc_buf[5], t < 2 ? 1 : 2);
        CU_ASSERT_EQUAL_FATAL(dkm_dup_decode(enc_buf, enc_len, &out), 0);
        CU_ASSERT_EQUAL(out.ek_type, enc_blob.ek_type);
        CU_ASSERT(dkm_node_id_equal(&out.node_id, &enc_blob.node_id));
        CU_ASSERT_EQUAL(out.pcr_mask, enc_blob.pcr_mask);
        CU_ASSERT_EQUAL(out.public.size,
                        walk(enc_buf).dup_len - walk(enc_buf).pub_len - 2);
        CU_ASSERT(memcmp(&out.public.publicArea, &enc_blob.public.publicArea,
                         sizeof(TPMT_PUBLIC)) == 0);
        CU_ASSERT_EQUAL(out.duplicate.size, enc_blob.duplicate.size);
        CU_ASSERT(memcmp(out.duplicate.buffer, enc_blob.duplicate.buffer,
                         out.duplicate.size) == 0);
        CU_ASSERT_EQUAL(out.seed.size, enc_blob.seed.size);
        CU_ASSERT(memcmp(out.seed.secret, enc_blob.seed.secret, out.seed.size) == 0);
        CU_ASSERT(enc_len < 700);
    }
}

static void test_dup_envelope_truncated_everywhere(void)
{
    for (int t = 0; t < 4; t++) {
        make_envelope(t < 2 ? DKM_EK_RSA2048 : DKM_EK_ECCP256, t % 2 == 1);
        CU_ASSERT_TRUE(decodes(enc_buf, enc_len));
        for (size_t n = 0; n < enc_len; n++)
            CU_ASSERT_FALSE(decodes(enc_buf, n));
    }
}

static void test_dup_envelope_trailing_bytes(void)
{
    make_envelope(DKM_EK_ECCP256, false);
    enc_buf[enc_len] = 0;
    CU_ASSERT_FALSE(decodes(enc_buf, enc_len + 1));
    CU_ASSERT_FALSE(decodes(enc_buf, enc_len + 100));
}

/* Every 16-bit length: one more than the bytes there, one less, zero and
 * 0xffff are all refused. */
static void test_dup_envelope_each_length_wrong(void)
{
    static uint8_t b[DKM_DUP_ENCODED_MAX + 8];

    for (int t = 0; t < 4; t++) {
        struct layout l;
        size_t fields[4];

        make_envelope(t < 2 ? DKM_EK_RSA2048 : DKM_EK_ECCP256, t % 2 == 1);
        l = walk(enc_buf);
        fields[0] = l.node_len;
        fields[1] = l.pub_len;
        fields[2] = l.dup_len;
        fields[3] = l.seed_len;
        for (int f = 0; f < 4; f++) {
            uint16_t v = get16(enc_buf + fields[f]);
            uint16_t tries[4] = {(uint16_t)(v + 1), (uint16_t)(v - 1), 0, 0xffff};

            for (int k = 0; k < 4; k++) {
                memcpy(b, enc_buf, enc_len);
                put16(b + fields[f], tries[k]);
                CU_ASSERT_FALSE(decodes(b, enc_len));
                /* also with enough bytes after it that the length fits */
                memset(b + enc_len, 0, 8);
                CU_ASSERT_FALSE(decodes(b, enc_len + 8));
            }
        }
        /* the PCR bank count */
        for (uint32_t count = 0; count < 4; count++) {
            if ((count == 1) == (enc_blob.pcr_mask != 0))
                continue;
            memcpy(b, enc_buf, enc_len);
            b[l.pcr_count + 3] = (uint8_t)count;
            CU_ASSERT_FALSE(decodes(b, enc_len));
        }
        memcpy(b, enc_buf, enc_len);
        b[l.pcr_count] = 0x80;
        CU_ASSERT_FALSE(decodes(b, enc_len));
    }
}

static void expect_refused_with(size_t off, uint8_t value)
{
    static uint8_t b[DKM_DUP_ENCODED_MAX];

    memcpy(b, enc_buf, enc_len);
    b[off] = value;
    CU_ASSERT_FALSE(decodes(b, enc_len));
}

static void test_dup_envelope_bad_header(void)
{
    struct layout l;

    make_envelope(DKM_EK_RSA2048, false);
    l = walk(enc_buf);
    for (size_t i = 0; i < 4; i++)
        expect_refused_with(i, enc_buf[i] ^ 0x20);
    expect_refused_with(4, 0);
    expect_refused_with(4, 2);
    expect_refused_with(5, 0);
    expect_refused_with(5, 3);
    expect_refused_with(5, 0xff);
    /* the EK type must match the seed: RSA blob claiming ECC */
    expect_refused_with(5, 2);
    /* node id must be a SHA-256 name */
    expect_refused_with(l.node_len + 2, 0x00 ^ 0x01);
    expect_refused_with(l.node_len + 3, 0x04);

    make_envelope(DKM_EK_ECCP256, false);
    /* ECC blob claiming RSA: the 68-byte seed is not 256 */
    expect_refused_with(5, 1);
}

/* Re-encode a blob changed by fn and check that decode refuses it;
 * encode itself must refuse too, since it never emits what decode
 * would refuse. */
static void refuse_changed_public(void (*fn)(struct dkm_import_blob *))
{
    struct dkm_import_blob b = enc_blob;
    uint8_t buf[DKM_DUP_ENCODED_MAX];
    size_t len;

    fn(&b);
    CU_ASSERT_EQUAL(dkm_dup_encode(&b, buf, sizeof(buf), &len), -EINVAL);
}

static void set_fixed_tpm(struct dkm_import_blob *b)
{
    b->public.publicArea.objectAttributes |=
        TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT;
}

static void set_sign(struct dkm_import_blob *b)
{
    b->public.publicArea.objectAttributes |= TPMA_OBJECT_SIGN_ENCRYPT;
}

static void set_sha1(struct dkm_import_blob *b)
{
    b->public.publicArea.nameAlg = TPM2_ALG_SHA1;
}

static void set_type_symcipher(struct dkm_import_blob *b)
{
    b->public.publicArea.type = TPM2_ALG_SYMCIPHER;
    b->public.publicArea.parameters.symDetail.sym.algorithm = TPM2_ALG_NULL;
}

static void set_hmac_scheme(struct dkm_import_blob *b)
{
    b->public.publicArea.parameters.keyedHashDetail.scheme.scheme = TPM2_ALG_HMAC;
    b->public.publicArea.parameters.keyedHashDetail.scheme.details.hmac.hashAlg =
        TPM2_ALG_SHA256;
}

static void drop_pcrs(struct dkm_import_blob *b)
{
    b->pcr_mask = 0;
}

static void add_pcrs(struct dkm_import_blob *b)
{
    b->pcr_mask = 1u << 16;
}

static void short_unique(struct dkm_import_blob *b)
{
    b->public.publicArea.unique.keyedHash.size = 20;
}

static void short_dup_hmac(struct dkm_import_blob *b)
{
    b->duplicate.buffer[1] = 20;
}

static void short_dup(struct dkm_import_blob *b)
{
    b->duplicate.size = 34 + 10;
}

static void short_ecc_x(struct dkm_import_blob *b)
{
    b->seed.secret[1] = 31;
}

static void test_dup_envelope_bad_object(void)
{
    make_envelope(DKM_EK_RSA2048, false);
    refuse_changed_public(set_fixed_tpm);
    refuse_changed_public(set_sign);
    refuse_changed_public(set_sha1);
    refuse_changed_public(set_type_symcipher);
    refuse_changed_public(set_hmac_scheme);
    refuse_changed_public(add_pcrs);
    refuse_changed_public(short_unique);
    refuse_changed_public(short_dup_hmac);
    refuse_changed_public(short_dup);
    make_envelope(DKM_EK_ECCP256, true);
    refuse_changed_public(drop_pcrs);
    refuse_changed_public(set_fixed_tpm);
    refuse_changed_public(short_ecc_x);
}

static void test_dup_envelope_bad_pcr_selection(void)
{
    struct layout l;

    make_envelope(DKM_EK_ECCP256, true);
    l = walk(enc_buf);
    /* bank hash, bitmap size, empty bitmap */
    expect_refused_with(l.pcr_count + 4, 0x01);
    expect_refused_with(l.pcr_count + 5, 0x04);
    expect_refused_with(l.pcr_count + 6, 2);
    expect_refused_with(l.pcr_count + 6, 4);
    {
        static uint8_t b[DKM_DUP_ENCODED_MAX];

        memcpy(b, enc_buf, enc_len);
        b[l.pcr_count + 7] = b[l.pcr_count + 8] = b[l.pcr_count + 9] = 0;
        CU_ASSERT_FALSE(decodes(b, enc_len));
    }
}

/* A public area with a length that covers one extra byte the TPMT_PUBLIC
 * does not use is refused (the name would not match what was hashed). */
static void test_dup_envelope_public_slack(void)
{
    static uint8_t b[DKM_DUP_ENCODED_MAX + 1];
    struct layout l;
    size_t pub_end;

    make_envelope(DKM_EK_RSA2048, false);
    l = walk(enc_buf);
    pub_end = l.dup_len;
    memcpy(b, enc_buf, pub_end);
    b[pub_end] = 0;
    memcpy(b + pub_end + 1, enc_buf + pub_end, enc_len - pub_end);
    put16(b + l.pub_len, (uint16_t)(get16(enc_buf + l.pub_len) + 1));
    CU_ASSERT_FALSE(decodes(b, enc_len + 1));
}

static void test_dup_envelope_encode_small_buffer(void)
{
    uint8_t small[64];
    size_t len = 12345;

    make_envelope(DKM_EK_ECCP256, false);
    CU_ASSERT_EQUAL(dkm_dup_encode(&enc_blob, small, sizeof(small), &len), -ENOBUFS);
    CU_ASSERT_EQUAL(len, 12345);
    CU_ASSERT_EQUAL(dkm_dup_encode(&enc_blob, enc_buf, enc_len, &len), 0);
    CU_ASSERT_EQUAL(len, enc_len);
    CU_ASSERT_EQUAL(dkm_dup_encode(&enc_blob, enc_buf, enc_len - 1, &len), -ENOBUFS);
}

/* ---- the node's cache format of an imported object ---- */

static uint8_t sealed_buf[DKM_SEALED_ENCODED_MAX];
static size_t sealed_len;
static struct dkm_sealed sealed_obj;

/* A cached object as the node would have it after TPM2_Import; the
 * private area's bytes are made up (only the TPM can check them). */
static void make_sealed(bool with_policy)
{
    make_envelope(DKM_EK_ECCP256, with_policy);
    memset(&sealed_obj, 0, sizeof(sealed_obj));
    sealed_obj.ek_type = enc_blob.ek_type;
    sealed_obj.node_id = enc_blob.node_id;
    sealed_obj.public = enc_blob.public;
    sealed_obj.pcr_mask = enc_blob.pcr_mask;
    sealed_obj.private.size = 2 + 32 + 2 + 16 + 108;
    for (size_t i = 0; i < sealed_obj.private.size; i++)
        sealed_obj.private.buffer[i] = (uint8_t)(i * 13 + 1);
    sealed_obj.private.buffer[0] = 0;
    sealed_obj.private.buffer[1] = 32;
    CU_ASSERT_EQUAL_FATAL(
        dkm_sealed_encode(&sealed_obj, sealed_buf, sizeof(sealed_buf), &sealed_len), 0);
}

static bool sealed_decodes(const uint8_t *b, size_t n)
{
    struct dkm_sealed out;
    int r = dkm_sealed_decode(b, n, &out);

    if (r != 0) {
        CU_ASSERT_EQUAL(r, DKM_E_FORMAT);
        CU_ASSERT_NOT_EQUAL(dkm_error_detail()[0], '\0');
    }
    return r == 0;
}

static void test_dup_sealed_round_trip(void)
{
    for (int p = 0; p < 2; p++) {
        struct dkm_sealed out;

        make_sealed(p == 1);
        CU_ASSERT(memcmp(sealed_buf, "DKSO\x01\x02", 6) == 0);
        CU_ASSERT_EQUAL_FATAL(dkm_sealed_decode(sealed_buf, sealed_len, &out), 0);
        /* The magic it had before, which is the stream header's, is refused. */
        memcpy(sealed_buf, "DKMS", 4);
        CU_ASSERT_FALSE(sealed_decodes(sealed_buf, sealed_len));
        memcpy(sealed_buf, "DKSO", 4);
        CU_ASSERT_EQUAL(out.ek_type, sealed_obj.ek_type);
        CU_ASSERT(dkm_node_id_equal(&out.node_id, &sealed_obj.node_id));
        CU_ASSERT_EQUAL(out.pcr_mask, sealed_obj.pcr_mask);
        CU_ASSERT(memcmp(&out.public.publicArea, &sealed_obj.public.publicArea,
                         sizeof(TPMT_PUBLIC)) == 0);
        CU_ASSERT_EQUAL(out.private.size, sealed_obj.private.size);
        CU_ASSERT(
            memcmp(out.private.buffer, sealed_obj.private.buffer, out.private.size) == 0);
    }
}

static void test_dup_sealed_truncated_and_trailing(void)
{
    for (int p = 0; p < 2; p++) {
        make_sealed(p == 1);
        CU_ASSERT_TRUE(sealed_decodes(sealed_buf, sealed_len));
        for (size_t n = 0; n < sealed_len; n++)
            CU_ASSERT_FALSE(sealed_decodes(sealed_buf, n));
        sealed_buf[sealed_len] = 0;
        CU_ASSERT_FALSE(sealed_decodes(sealed_buf, sealed_len + 1));
    }
}

static void test_dup_sealed_bad_fields(void)
{
    static uint8_t b[DKM_SEALED_ENCODED_MAX + 8];

    for (int p = 0; p < 2; p++) {
        size_t node = 6, pub, priv, pcr;

        make_sealed(p == 1);
        pub = node + 2 + get16(sealed_buf + node);
        priv = pub + 2 + get16(sealed_buf + pub);
        pcr = priv + 2 + get16(sealed_buf + priv);
        /* every length: +1, -1, 0, 0xffff, with and without room after */
        for (int f = 0; f < 3; f++) {
            size_t at = f == 0 ? node : f == 1 ? pub : priv;
            uint16_t v = get16(sealed_buf + at);
            uint16_t tries[4] = {(uint16_t)(v + 1), (uint16_t)(v - 1), 0, 0xffff};

            for (int k = 0; k < 4; k++) {
                memcpy(b, sealed_buf, sealed_len);
                put16(b + at, tries[k]);
                memset(b + sealed_len, 0, 8);
                CU_ASSERT_FALSE(sealed_decodes(b, sealed_len));
                CU_ASSERT_FALSE(sealed_decodes(b, sealed_len + 8));
            }
        }
        /* header, node id prefix, private HMAC size, PCR part */
        {
            const size_t offs[] = {0,        3,        4,        4,
                                   5,        5,        node + 2, node + 3,
                                   priv + 2, priv + 3, pcr + 3,  pcr + 3};
            const uint8_t vals[] = {'X', 'X', 0, 2, 0, 3, 1, 0x0c, 1, 31, 2, 0};
            const size_t nchecks = p == 1 ? sizeof(vals) : sizeof(vals) - 1;

            for (size_t i = 0; i < nchecks; i++) {
                memcpy(b, sealed_buf, sealed_len);
                b[offs[i]] = vals[i];
                CU_ASSERT_FALSE(sealed_decodes(b, sealed_len));
            }
        }
        if (p == 1) {
            const size_t offs[] = {pcr + 4, pcr + 5, pcr + 6};
            const uint8_t vals[] = {1, 4, 2};

            for (size_t i = 0; i < 3; i++) {
                memcpy(b, sealed_buf, sealed_len);
                b[offs[i]] = vals[i];
                CU_ASSERT_FALSE(sealed_decodes(b, sealed_len));
            }
            memcpy(b, sealed_buf, sealed_len);
            b[pcr + 7] = b[pcr + 8] = b[pcr + 9] = 0;
            CU_ASSERT_FALSE(sealed_decodes(b, sealed_len));
        }
    }
    /* encode refuses an object of another shape */
    make_sealed(false);
    sealed_obj.public.publicArea.objectAttributes |= TPMA_OBJECT_FIXEDTPM;
    CU_ASSERT_EQUAL(dkm_sealed_encode(&sealed_obj, b, sizeof(b), &sealed_len), -EINVAL);
    make_sealed(false);
    sealed_obj.pcr_mask = 1;
    CU_ASSERT_EQUAL(dkm_sealed_encode(&sealed_obj, b, sizeof(b), &sealed_len), -EINVAL);
}

static CU_TestInfo sealed_tests[] = {
    {"test_dup_sealed_round_trip", test_dup_sealed_round_trip},
    {"test_dup_sealed_truncated_and_trailing", test_dup_sealed_truncated_and_trailing},
    {"test_dup_sealed_bad_fields", test_dup_sealed_bad_fields},
    CU_TEST_INFO_NULL,
};

static CU_TestInfo dup_tests[] = {
    {"test_dup_seal_rsa_unwraps", test_dup_seal_rsa_unwraps},
    {"test_dup_seal_ecc_unwraps", test_dup_seal_ecc_unwraps},
    {"test_dup_seal_other_key_fails", test_dup_seal_other_key_fails},
    {"test_dup_seal_is_randomized", test_dup_seal_is_randomized},
    {"test_dup_sealed_matches_blob", test_dup_sealed_matches_blob},
    {"test_dup_seal_rejects_bad_arguments", test_dup_seal_rejects_bad_arguments},
    {"test_dup_policy_pcr_known_answers", test_dup_policy_pcr_known_answers},
    CU_TEST_INFO_NULL,
};

static CU_TestInfo envelope_tests[] = {
    {"test_dup_envelope_round_trip", test_dup_envelope_round_trip},
    {"test_dup_envelope_truncated_everywhere", test_dup_envelope_truncated_everywhere},
    {"test_dup_envelope_trailing_bytes", test_dup_envelope_trailing_bytes},
    {"test_dup_envelope_each_length_wrong", test_dup_envelope_each_length_wrong},
    {"test_dup_envelope_bad_header", test_dup_envelope_bad_header},
    {"test_dup_envelope_bad_object", test_dup_envelope_bad_object},
    {"test_dup_envelope_bad_pcr_selection", test_dup_envelope_bad_pcr_selection},
    {"test_dup_envelope_public_slack", test_dup_envelope_public_slack},
    {"test_dup_envelope_encode_small_buffer", test_dup_envelope_encode_small_buffer},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {"dup", NULL, NULL, NULL, NULL, dup_tests},
    {"envelope", NULL, NULL, NULL, NULL, envelope_tests},
    {"sealed", NULL, NULL, NULL, NULL, sealed_tests},
    CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv)
{
    return dkm_test_main(argc, argv, suites);
}
