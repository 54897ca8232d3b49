/* SPDX-License-Identifier: Apache-2.0 */
/*
 * KDFa and KDFe of TPM 2.0 Part 1, section 11.4.10, over OpenSSL 3's
 * EVP_MAC (HMAC) and EVP_Digest. These produce the symmetric keys and the
 * seed of TPM duplication blobs, so they must match a TPM bit for bit;
 * tests/test_kdf.c checks them against vectors computed independently
 * (tests/data/kdf) and against the TCG reference implementation's own
 * self-test vector.
 */
#include "kdf.h"

#include <errno.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>

static void put_u32be(uint8_t out[4], uint32_t v)
{
    out[0] = (uint8_t)(v >> 24);
    out[1] = (uint8_t)(v >> 16);
    out[2] = (uint8_t)(v >> 8);
    out[3] = (uint8_t)v;
}

static int check_args(const EVP_MD *md, uint32_t bits, const void *out, size_t out_len,
                      const void *a, size_t a_len, const void *b, size_t b_len,
                      const char *what)
{
    if (md == NULL || out == NULL)
        return dkm_error_set(-EINVAL, "%s: no hash or no output buffer", what);
    if (bits == 0 || bits > DKM_KDF_MAX_BITS)
        return dkm_error_set(-EINVAL, "%s: %u bits requested, allowed 1..%u", what,
                             (unsigned)bits, DKM_KDF_MAX_BITS);
    if (out_len != ((size_t)bits + 7) / 8)
        return dkm_error_set(-EINVAL, "%s: output buffer of %zu bytes for %u bits", what,
                             out_len, (unsigned)bits);
    if ((a == NULL && a_len != 0) || (b == NULL && b_len != 0))
        return dkm_error_set(-EINVAL, "%s: NULL context with non-zero length", what);
    if (EVP_MD_get_size(md) <= 0 || EVP_MD_get_size(md) > EVP_MAX_MD_SIZE)
        return dkm_error_set(-EINVAL, "%s: unusable hash", what);
    return 0;
}

/* The spec leaves the high-order bits of a partial first octet zero. */
static void mask_first_octet(uint8_t *out, uint32_t bits)
{
    if (bits % 8 != 0)
        out[0] &= (uint8_t)((1u << (bits % 8)) - 1);
}

int dkm_kdfa(const EVP_MD *md, const void *key, size_t key_len, const char *label,
             const void *context_u, size_t u_len, const void *context_v, size_t v_len,
             uint32_t bits, void *out, size_t out_len)
{
    static const uint8_t empty_key[1] = {0};
    EVP_MAC *mac = NULL;
    EVP_MAC_CTX *ctx = NULL;
    uint8_t block[EVP_MAX_MD_SIZE];
    uint8_t counter[4], lbits[4];
    OSSL_PARAM params[2];
    size_t hlen, done = 0, got;
    uint32_t i = 0;
    int r;

    r = check_args(md, bits, out, out_len, context_u, u_len, context_v, v_len, "KDFa");
    if (r < 0)
        return r;
    if (key == NULL && key_len != 0)
        return dkm_error_set(-EINVAL, "KDFa: NULL key with non-zero length");
    r = DKM_E_CRYPTO;
    hlen = (size_t)EVP_MD_get_size(md);
    if (label == NULL)
        label = "";
    /* OpenSSL refuses a NULL key pointer even for an empty key. */
    if (key_len == 0)
        key = empty_key;

    mac = EVP_MAC_fetch(NULL, OSSL_MAC_NAME_HMAC, NULL);
    if (mac == NULL) {
        r = dkm_error_set(r, "KDFa: HMAC is not available");
        goto done;
    }
    ctx = EVP_MAC_CTX_new(mac);
    if (ctx == NULL) {
        r = dkm_error_set(-ENOMEM, "KDFa: out of memory");
        goto done;
    }
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                                 (char *)EVP_MD_get0_name(md), 0);
    params[1] = OSSL_PARAM_construct_end();
    put_u32be(lbits, bits);

    while (done < out_len) {
        size_t take;

        put_u32be(counter, ++i);
        if (!EVP_MAC_init(ctx, key, key_len, params) ||
            !EVP_MAC_update(ctx, counter, sizeof(counter)) ||
            /* strlen + 1: the terminating zero octet is part of the label */
            !EVP_MAC_update(ctx, (const uint8_t *)label, strlen(label) + 1) ||
            (u_len > 0 && !EVP_MAC_update(ctx, context_u, u_len)) ||
            (v_len > 0 && !EVP_MAC_update(ctx, context_v, v_len)) ||
            !EVP_MAC_update(ctx, lbits, sizeof(lbits)) ||
            !EVP_MAC_final(ctx, block, &got, sizeof(block)) || got != hlen) {
            r = dkm_error_set(r, "KDFa: HMAC computation failed");
            goto done;
        }
        take = out_len - done < hlen ? out_len - done : hlen;
        memcpy((uint8_t *)out + done, block, take);
        done += take;
    }
    mask_first_octet(out, bits);
    r = 0;
done:
    OPENSSL_cleanse(block, sizeof(block));
    if (r < 0)
        OPENSSL_cleanse(out, out_len);
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    return r;
}

int dkm_kdfe(const EVP_MD *md, const void *z, size_t z_len, const char *use,
             const void *party_u, size_t u_len, const void *party_v, size_t v_len,
             uint32_t bits, void *out, size_t out_len)
{
    EVP_MD_CTX *ctx = NULL;
    uint8_t block[EVP_MAX_MD_SIZE];
    uint8_t counter[4];
    size_t hlen, done = 0;
    unsigned int got;
    uint32_t i = 0;
    int r;

    r = check_args(md, bits, out, out_len, party_u, u_len, party_v, v_len, "KDFe");
    if (r < 0)
        return r;
    if (z == NULL || z_len == 0)
        return dkm_error_set(-EINVAL, "KDFe: empty shared secret Z");
    r = DKM_E_CRYPTO;
    hlen = (size_t)EVP_MD_get_size(md);
    if (use == NULL)
        use = "";

    ctx = EVP_MD_CTX_new();
    if (ctx == NULL) {
        r = dkm_error_set(-ENOMEM, "KDFe: out of memory");
        goto done;
    }
    while (done < out_len) {
        size_t take;

        put_u32be(counter, ++i);
        if (!EVP_DigestInit_ex(ctx, md, NULL) ||
            !EVP_DigestUpdate(ctx, counter, sizeof(counter)) ||
            !EVP_DigestUpdate(ctx, z, z_len) ||
            /* strlen + 1: the terminating zero octet is part of the label */
            !EVP_DigestUpdate(ctx, use, strlen(use) + 1) ||
            (u_len > 0 && !EVP_DigestUpdate(ctx, party_u, u_len)) ||
            (v_len > 0 && !EVP_DigestUpdate(ctx, party_v, v_len)) ||
            !EVP_DigestFinal_ex(ctx, block, &got) || got != hlen) {
            r = dkm_error_set(r, "KDFe: hash computation failed");
            goto done;
        }
        take = out_len - done < hlen ? out_len - done : hlen;
        memcpy((uint8_t *)out + done, block, take);
        done += take;
    }
    mask_first_octet(out, bits);
    r = 0;
done:
    OPENSSL_cleanse(block, sizeof(block));
    if (r < 0)
        OPENSSL_cleanse(out, out_len);
    EVP_MD_CTX_free(ctx);
    return r;
}
