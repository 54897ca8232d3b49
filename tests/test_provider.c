/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of the dkm provider as applications see it: the test build of
 * dkm.so (provider/testkeys, with the deterministic test key source) is
 * loaded into a fresh OSSL_LIB_CTX next to the default provider, and used
 * through OSSL_STORE, EVP_PKEY_encrypt/decrypt and EVP_Cipher*. Errors
 * are checked by the provider's reason strings. The installed build of
 * the module is checked to refuse key operations without a key source.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/provider.h>
#include <openssl/rand.h>
#include <openssl/store.h>

#include "dkm/data/protect.h"
#include "dkm/data/stream.h"
#include "dkm/base/uri.h"
#include "unit.h"

#define TEST_KEYS "g:3:1,h:2,z:1"
#define TEST_SEED "provider-test-seed"

static OSSL_LIB_CTX *libctx;
static OSSL_PROVIDER *prov_dkm, *prov_default;

static char *module_dir(const char *sub)
{
    static char path[4096];
    const char *build = getenv("DKM_BUILD_DIR");

    snprintf(path, sizeof(path), "%s/provider%s", build != NULL ? build : ".", sub);
    return path;
}

/* Load dkm (from dir) and default into a new library context. */
static OSSL_LIB_CTX *new_ctx(const char *dir, OSSL_PROVIDER **ret_dkm,
                             OSSL_PROVIDER **ret_default)
{
    OSSL_LIB_CTX *ctx = OSSL_LIB_CTX_new();

    if (ctx == NULL)
        return NULL;
    if (!OSSL_PROVIDER_set_default_search_path(ctx, dir)) {
        OSSL_LIB_CTX_free(ctx);
        return NULL;
    }
    *ret_dkm = OSSL_PROVIDER_load(ctx, "dkm");
    *ret_default = OSSL_PROVIDER_load(ctx, "default");
    return ctx;
}

static int suite_init(void)
{
    setenv("DKM_KEYSOURCE", "test", 1);
    setenv("DKM_TEST_KEYS", TEST_KEYS, 1);
    setenv("DKM_TEST_SEED", TEST_SEED, 1);
    libctx = new_ctx(module_dir("/testkeys"), &prov_dkm, &prov_default);
    if (libctx == NULL || prov_dkm == NULL || prov_default == NULL) {
        ERR_print_errors_fp(stderr);
        return 1;
    }
    return 0;
}

static int suite_cleanup(void)
{
    OSSL_PROVIDER_unload(prov_dkm);
    OSSL_PROVIDER_unload(prov_default);
    OSSL_LIB_CTX_free(libctx);
    return 0;
}

/*
 * Whether the error queue holds an error with this reason string (NULL:
 * any; errors raised while the provider initialises have no string yet)
 * and, 
 * if detail is not NULL, a detail containing it). Empties the queue.
 */
static bool error_has(const char *reason, const char *detail)
{
    const char *data = NULL;
    bool found = false;
    unsigned long e;
    int flags = 0;

    while ((e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0) {
        const char *rs = ERR_reason_error_string(e);

        if ((reason == NULL || (rs != NULL && strcmp(rs, reason) == 0)) &&
            (detail == NULL ||
             ((flags & ERR_TXT_STRING) && data != NULL && strstr(data, detail) != NULL)))
            found = true;
    }
    if (!found)
        fprintf(stderr, "expected error \"%s\" (%s) not raised\n",
                reason != NULL ? reason : "-", detail != NULL ? detail : "-");
    return found;
}

static EVP_PKEY *load_key(OSSL_LIB_CTX *ctx, const char *uri)
{
    OSSL_STORE_CTX *s = OSSL_STORE_open_ex(uri, ctx, NULL, NULL, NULL, NULL, NULL, NULL);
    OSSL_STORE_INFO *info;
    EVP_PKEY *pk = NULL;

    if (s == NULL)
        return NULL;
    while (!OSSL_STORE_eof(s)) {
        info = OSSL_STORE_load(s);
        if (info == NULL)
            break;
        if (OSSL_STORE_INFO_get_type(info) == OSSL_STORE_INFO_PKEY && pk == NULL)
            pk = OSSL_STORE_INFO_get1_PKEY(info);
        OSSL_STORE_INFO_free(info);
    }
    OSSL_STORE_close(s);
    return pk;
}

static void expect_key(const char *uri, const char *group, unsigned version)
{
    EVP_PKEY *pk = load_key(libctx, uri);
    char g[80] = "";
    unsigned v = 0;
    OSSL_PARAM params[] = {
        OSSL_PARAM_utf8_string("dkm-group", g, sizeof(g)),
        OSSL_PARAM_uint("dkm-version", &v),
        OSSL_PARAM_END,
    };

    CU_ASSERT_PTR_NOT_NULL_FATAL(pk);
    CU_ASSERT(EVP_PKEY_is_a(pk, "DKM"));
    CU_ASSERT(EVP_PKEY_get_params(pk, params) == 1);
    CU_ASSERT_STRING_EQUAL(g, group);
    CU_ASSERT_EQUAL(v, version);
    CU_ASSERT_EQUAL(EVP_PKEY_get_bits(pk), 256);
    CU_ASSERT_EQUAL(EVP_PKEY_get_security_bits(pk), 256);
    CU_ASSERT_EQUAL(EVP_PKEY_get_size(pk), (int)DKM_PROTECT_MAX_BLOB);
    EVP_PKEY_free(pk);
}

static void test_provider_store_uri_forms(void)
{
    expect_key("dkm:g", "g", 3);
    expect_key("dkm:g/2", "g", 2);
    expect_key("dkm:g/current", "g", 3);
    expect_key("dkm://g", "g", 3);
    expect_key("dkm://g/3", "g", 3);
    expect_key("dkm://h/current", "h", 2);
    expect_key("DKM:h/1", "h", 1);
    ERR_clear_error();
}

static void test_provider_store_listing(void)
{
    OSSL_STORE_CTX *s =
        OSSL_STORE_open_ex("dkm:", libctx, NULL, NULL, NULL, NULL, NULL, NULL);
    const char *want[] = {"dkm:g", "dkm:h", "dkm:z"};
    size_t n = 0;

    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    while (!OSSL_STORE_eof(s)) {
        OSSL_STORE_INFO *info = OSSL_STORE_load(s);

        if (info == NULL)
            break;
        CU_ASSERT_EQUAL(OSSL_STORE_INFO_get_type(info), OSSL_STORE_INFO_NAME);
        if (n < 3) {
            CU_ASSERT_STRING_EQUAL(OSSL_STORE_INFO_get0_NAME(info), want[n]);
        }
        n++;
        OSSL_STORE_INFO_free(info);
    }
    CU_ASSERT_EQUAL(n, 3);
    OSSL_STORE_close(s);
}

static void expect_open_fails(const char *uri, const char *reason, const char *detail)
{
    OSSL_STORE_CTX *s;

    ERR_clear_error();
    s = OSSL_STORE_open_ex(uri, libctx, NULL, NULL, NULL, NULL, NULL, NULL);
    CU_ASSERT_PTR_NULL(s);
    OSSL_STORE_close(s);
    CU_ASSERT(error_has(reason, detail));
}

static void test_provider_store_invalid(void)
{
    char longuri[120];

    expect_open_fails("dkm:g/0", "invalid dkm URI", "dkm:g/0");
    expect_open_fails("dkm:g/01", "invalid dkm URI", NULL);
    expect_open_fails("dkm:g/x", "invalid dkm URI", "version");
    expect_open_fails("dkm:g/3/4", "invalid dkm URI", NULL);
    expect_open_fails("dkm:a b", "invalid dkm URI", NULL);
    expect_open_fails("dkm://", "invalid dkm URI", NULL);
    expect_open_fails("dkm:/g", "invalid dkm URI", NULL);
    expect_open_fails("dkm:g/4294967296", "invalid dkm URI", NULL);
    memset(longuri, 'a', sizeof(longuri));
    memcpy(longuri, "dkm:", 4);
    longuri[4 + 65] = '\0';
    expect_open_fails(longuri, "invalid dkm URI", NULL);
    expect_open_fails("dkm:nosuch", "no such dkm group or key version", "nosuch");
    expect_open_fails("dkm:g/9", "no such dkm group or key version", "no version 9");
    expect_open_fails("dkm:g/1", "dkm key version has expired", "g/1");
}

/* Protect with EVP_PKEY_encrypt; returns the blob or NULL. */
static uint8_t *protect(EVP_PKEY *pk, const uint8_t *aad, size_t aad_len,
                        const uint8_t *in, size_t n, size_t *ret_len)
{
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(libctx, pk, NULL);
    OSSL_PARAM params[2] = {OSSL_PARAM_END, OSSL_PARAM_END};
    uint8_t *out = NULL;
    size_t len = 0;

    if (aad_len > 0)
        params[0] = OSSL_PARAM_construct_octet_string("dkm-aad", (void *)aad, aad_len);
    if (c == NULL || EVP_PKEY_encrypt_init_ex(c, params) != 1 ||
        EVP_PKEY_encrypt(c, NULL, &len, in, n) != 1)
        goto done;
    out = OPENSSL_malloc(len);
    if (out == NULL || EVP_PKEY_encrypt(c, out, &len, in, n) != 1) {
        OPENSSL_free(out);
        out = NULL;
        goto done;
    }
    *ret_len = len;
done:
    EVP_PKEY_CTX_free(c);
    return out;
}

/* Unprotect into out (out_size bytes); returns the EVP result. */
static int unprotect(EVP_PKEY *pk, const uint8_t *aad, size_t aad_len,
                     const uint8_t *blob, size_t n, uint8_t *out, size_t out_size,
                     size_t *ret_len)
{
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(libctx, pk, NULL);
    OSSL_PARAM params[2] = {OSSL_PARAM_END, OSSL_PARAM_END};
    int ok = 0;

    *ret_len = out_size;
    if (aad_len > 0)
        params[0] = OSSL_PARAM_construct_octet_string("dkm-aad", (void *)aad, aad_len);
    if (c != NULL && EVP_PKEY_decrypt_init_ex(c, params) == 1)
        ok = EVP_PKEY_decrypt(c, out, ret_len, blob, n);
    EVP_PKEY_CTX_free(c);
    return ok;
}

static void test_provider_protect_round_trip_sizes(void)
{
    static const size_t sizes[] = {0, 1, 16, 1000, 65536, 65537, 1024 * 1024};
    EVP_PKEY *pk = load_key(libctx, "dkm:g");
    uint8_t *data = OPENSSL_malloc(1024 * 1024), *out = OPENSSL_malloc(1024 * 1024);

    CU_ASSERT_FATAL(pk != NULL && data != NULL && out != NULL);
    CU_ASSERT_FATAL(RAND_bytes(data, 1024 * 1024) == 1);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        size_t len = 0, n = 0;
        uint8_t *blob = protect(pk, NULL, 0, data, sizes[i], &len);
        struct dkm_protect_header h;

        CU_ASSERT_PTR_NOT_NULL_FATAL(blob);
        CU_ASSERT_EQUAL(dkm_protect_parse_header(blob, len, &h), 0);
        CU_ASSERT_STRING_EQUAL(h.group, "g");
        CU_ASSERT_EQUAL(h.version, 3);
        CU_ASSERT_EQUAL(unprotect(pk, NULL, 0, blob, len, out, 1024 * 1024, &n), 1);
        CU_ASSERT_EQUAL(n, sizes[i]);
        CU_ASSERT(memcmp(out, data, sizes[i]) == 0);
        OPENSSL_free(blob);
    }
    OPENSSL_free(data);
    OPENSSL_free(out);
    EVP_PKEY_free(pk);
}

static void test_provider_protect_refusals_write_nothing(void)
{
    EVP_PKEY *g = load_key(libctx, "dkm:g"), *g2 = load_key(libctx, "dkm:g/2");
    EVP_PKEY *h = load_key(libctx, "dkm:h");
    static const uint8_t msg[] = "the message";
    uint8_t out[64], canary[64];
    size_t len, n;
    uint8_t *blob, *blob2;

    CU_ASSERT_FATAL(g != NULL && g2 != NULL && h != NULL);
    memset(canary, 0xa5, sizeof(canary));
    blob = protect(g, (const uint8_t *)"ctx", 3, msg, sizeof(msg), &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(blob);
    /* AAD must match. */
    memcpy(out, canary, sizeof(out));
    CU_ASSERT_EQUAL(unprotect(g, (const uint8_t *)"ctX", 3, blob, len, out, 64, &n), 0);
    CU_ASSERT(error_has("dkm data failed authentication", NULL));
    CU_ASSERT_EQUAL(unprotect(g, NULL, 0, blob, len, out, 64, &n), 0);
    CU_ASSERT(error_has("dkm data failed authentication", "AAD"));
    CU_ASSERT(memcmp(out, canary, sizeof(out)) == 0);
    CU_ASSERT_EQUAL(unprotect(g, (const uint8_t *)"ctx", 3, blob, len, out, 64, &n), 1);
    CU_ASSERT(memcmp(out, msg, sizeof(msg)) == 0);
    /* Another group's key. */
    memcpy(out, canary, sizeof(out));
    CU_ASSERT_EQUAL(unprotect(h, (const uint8_t *)"ctx", 3, blob, len, out, 64, &n), 0);
    CU_ASSERT(error_has("data belongs to another dkm group", "\"g\""));
    CU_ASSERT(memcmp(out, canary, sizeof(out)) == 0);
    /* A key pinned to another version. */
    CU_ASSERT_EQUAL(unprotect(g2, (const uint8_t *)"ctx", 3, blob, len, out, 64, &n), 0);
    CU_ASSERT(error_has("data was made with another key version", NULL));
    CU_ASSERT(memcmp(out, canary, sizeof(out)) == 0);
    /* Every changed byte. */
    for (size_t i = 0; i < len; i++) {
        blob[i] ^= 0x10;
        CU_ASSERT_EQUAL(unprotect(g, (const uint8_t *)"ctx", 3, blob, len, out, 64, &n),
                        0);
        CU_ASSERT(memcmp(out, canary, sizeof(out)) == 0);
        blob[i] ^= 0x10;
    }
    ERR_clear_error();
    /* Too small an output buffer. */
    CU_ASSERT_EQUAL(unprotect(g, (const uint8_t *)"ctx", 3, blob, len, out, 4, &n), 0);
    CU_ASSERT(error_has("output buffer too small", NULL));
    CU_ASSERT(memcmp(out, canary, sizeof(out)) == 0);
    /* dkm:g (current 3) opens a blob of version 2: the version comes from the blob. */
    blob2 = protect(g2, NULL, 0, msg, sizeof(msg), &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(blob2);
    CU_ASSERT_EQUAL(unprotect(g, NULL, 0, blob2, len, out, 64, &n), 1);
    CU_ASSERT_EQUAL(n, sizeof(msg));
    OPENSSL_free(blob);
    OPENSSL_free(blob2);
    EVP_PKEY_free(g);
    EVP_PKEY_free(g2);
    EVP_PKEY_free(h);
}

/* The test key source's key, recomputed here (see provider/keysource_test.c). */
static void test_key(const char *group, uint32_t version, uint8_t key[32])
{
    uint8_t data[128], mac[64];
    size_t n = 0, len = 0;

    memcpy(data, "dkm-test-key", 13);
    n = 13;
    memcpy(data + n, group, strlen(group) + 1);
    n += strlen(group) + 1;
    data[n++] = (uint8_t)(version >> 24);
    data[n++] = (uint8_t)(version >> 16);
    data[n++] = (uint8_t)(version >> 8);
    data[n++] = (uint8_t)version;
    CU_ASSERT_FATAL(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, TEST_SEED,
                              strlen(TEST_SEED), data, n, mac, sizeof(mac),
                              &len) != NULL);
    memcpy(key, mac, 32);
}

static void test_provider_protect_interop_and_expiry(void)
{
    EVP_PKEY *g = load_key(libctx, "dkm:g");
    static const uint8_t msg[] = "made by the C API";
    uint8_t key[32], blob[128], out[64];
    struct dkm_protect_header hdr;
    size_t len = 0, n = 0;
    uint8_t *pblob;

    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    /* A blob made with the library opens with the provider ... */
    test_key("g", 2, key);
    CU_ASSERT_EQUAL_FATAL(dkm_protect_seal(NULL, NULL, key, "g", 2, NULL, 0, NULL, msg,
                                           sizeof(msg), blob, sizeof(blob), &len),
                          0);
    CU_ASSERT_EQUAL(unprotect(g, NULL, 0, blob, len, out, sizeof(out), &n), 1);
    CU_ASSERT(n == sizeof(msg) && memcmp(out, msg, n) == 0);
    /* ... and the provider's blob opens with the library. */
    pblob = protect(g, NULL, 0, msg, sizeof(msg), &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(pblob);
    test_key("g", 3, key);
    CU_ASSERT_EQUAL(dkm_protect_parse_header(pblob, len, &hdr), 0);
    CU_ASSERT_EQUAL(dkm_protect_open(NULL, NULL, key, &hdr, pblob, len, NULL, 0, out,
                                     sizeof(out), &n),
                    0);
    CU_ASSERT(n == sizeof(msg) && memcmp(out, msg, n) == 0);
    OPENSSL_free(pblob);
    /* A blob of the expired version 1 is refused. */
    test_key("g", 1, key);
    CU_ASSERT_EQUAL_FATAL(dkm_protect_seal(NULL, NULL, key, "g", 1, NULL, 0, NULL, msg,
                                           sizeof(msg), blob, sizeof(blob), &len),
                          0);
    CU_ASSERT_EQUAL(unprotect(g, NULL, 0, blob, len, out, sizeof(out), &n), 0);
    CU_ASSERT(error_has("dkm key version has expired", "g/1"));
    EVP_PKEY_free(g);
}

static void test_provider_key_not_exported(void)
{
    EVP_PKEY *g = load_key(libctx, "dkm:g");
    OSSL_PARAM *params = NULL;

    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    CU_ASSERT_EQUAL(EVP_PKEY_todata(g, EVP_PKEY_KEYPAIR, &params), 0);
    CU_ASSERT_PTR_NULL(params);
    CU_ASSERT(error_has("dkm keys cannot be exported", NULL));
    EVP_PKEY_free(g);
}

/* ---- the stream cipher ---- */

#define ALLOWANCE 32
#define CANARY 0x3c

struct buf {
    uint8_t *p;
    size_t len, cap;
    bool overrun;
};

static uint8_t *room(struct buf *b, size_t n)
{
    if (b->len + n + 64 > b->cap) {
        b->cap = (b->len + n + 64) * 2;
        b->p = realloc(b->p, b->cap);
        CU_ASSERT_PTR_NOT_NULL_FATAL(b->p);
    }
    memset(b->p + b->len, CANARY, n + 64);
    return b->p + b->len;
}

static void commit(struct buf *b, size_t allowed, int written)
{
    for (size_t i = allowed; i < allowed + 64; i++) {
        if (b->p[b->len + i] != CANARY)
            b->overrun = true;
    }
    if (written < 0 || (size_t)written > allowed)
        b->overrun = true;
    b->len += (size_t)written;
}

static const char *last_reason;

/* Run in through DKM-AES-256-GCM with update sizes from pattern (cycled). */
static int run_cipher(const char *uri, bool enc, const uint8_t *in, size_t n,
                      const size_t *pattern, size_t np, struct buf *out)
{
    EVP_CIPHER *c = EVP_CIPHER_fetch(libctx, "DKM-AES-256-GCM", NULL);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    uint8_t key[DKM_URI_KEY_LEN];
    struct dkm_uri u;
    size_t pos = 0, k = 0;
    int ok = 0, outl;
    unsigned long e;

    CU_ASSERT_FATAL(c != NULL && ctx != NULL);
    CU_ASSERT_EQUAL(EVP_CIPHER_get_block_size(c), 32);
    CU_ASSERT_EQUAL(EVP_CIPHER_get_key_length(c), 64);
    CU_ASSERT_EQUAL(EVP_CIPHER_get_iv_length(c), 0);
    memset(key, 0, sizeof(key));
    if (dkm_uri_parse(uri, strlen(uri), 0, &u, NULL) == 0) {
        CU_ASSERT_EQUAL_FATAL(dkm_uri_to_key(&u, key), 0);
    } else {
        memcpy(key, uri, strlen(uri)); /* deliberately not a URI */
    }
    if (EVP_CipherInit_ex2(ctx, c, key, NULL, enc ? 1 : 0, NULL) != 1)
        goto done;
    while (pos < n) {
        size_t take = pattern[k++ % np];

        if (take > n - pos)
            take = n - pos;
        if (EVP_CipherUpdate(ctx, room(out, take + ALLOWANCE), &outl, in + pos,
                             (int)take) != 1)
            goto done;
        commit(out, take + ALLOWANCE, outl);
        pos += take;
    }
    if (EVP_CipherFinal_ex(ctx, room(out, ALLOWANCE), &outl) != 1)
        goto done;
    commit(out, ALLOWANCE, outl);
    ok = 1;
done:
    last_reason = NULL;
    if (!ok && (e = ERR_peek_last_error()) != 0)
        last_reason = ERR_reason_error_string(e);
    EVP_CIPHER_CTX_free(ctx);
    EVP_CIPHER_free(c);
    return ok;
}

static void test_provider_stream_split_patterns(void)
{
    static const size_t sizes[] = {0, 1, 100, 4096, 65535, 65536, 65537, 200000};
    static const size_t p1[] = {1}, p2[] = {3, 1000, 17}, p3[] = {4096}, p4[] = {16384},
                        p5[] = {65536}, p6[] = {0, 5};
    static const struct {
        const size_t *p;
        size_t n;
    } pats[] = {{p1, 1}, {p2, 3}, {p3, 1}, {p4, 1}, {p5, 1}, {p6, 2}};
    uint8_t *data = malloc(200000);

    CU_ASSERT_PTR_NOT_NULL_FATAL(data);
    CU_ASSERT_FATAL(RAND_bytes(data, 200000) == 1);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        for (size_t p = 0; p < sizeof(pats) / sizeof(pats[0]); p++) {
            struct buf ct = {0}, pt = {0};
            size_t pd = (p + i) % (sizeof(pats) / sizeof(pats[0]));

            /* 1-byte updates of 200 kB are slow under ASan; 64 kB show the same. */
            if (pats[p].p[0] == 1 && sizes[i] > 70000)
                continue;
            CU_ASSERT_EQUAL(
                run_cipher("dkm:g", true, data, sizes[i], pats[p].p, pats[p].n, &ct), 1);
            CU_ASSERT_FALSE(ct.overrun);
            CU_ASSERT_EQUAL(
                run_cipher("dkm:g", false, ct.p, ct.len, pats[pd].p, pats[pd].n, &pt), 1);
            CU_ASSERT_FALSE(pt.overrun);
            CU_ASSERT_EQUAL(pt.len, sizes[i]);
            CU_ASSERT(sizes[i] == 0 || memcmp(pt.p, data, sizes[i]) == 0);
            free(ct.p);
            free(pt.p);
        }
    }
    free(data);
}

static void expect_stream_refused(const char *uri, const uint8_t *ct, size_t n,
                                  const uint8_t *orig, size_t orig_len,
                                  const char *reason)
{
    static const size_t p[] = {4096};
    struct buf pt = {0};
    size_t good = 0;

    ERR_clear_error();
    CU_ASSERT_EQUAL(run_cipher(uri, false, ct, n, p, 1, &pt), 0);
    CU_ASSERT_FALSE(pt.overrun);
    while (good < pt.len && good < orig_len && pt.p[good] == orig[good])
        good++;
    /* Right up to a segment boundary, then at most one segment more. */
    CU_ASSERT(pt.len <= (good / 65536) * 65536 + 65536);
    if (reason != NULL) {
        CU_ASSERT_PTR_NOT_NULL(last_reason);
        if (last_reason != NULL) {
            CU_ASSERT_STRING_EQUAL(last_reason, reason);
        }
    }
    ERR_clear_error();
    free(pt.p);
}

static void test_provider_stream_refusals(void)
{
    static const size_t p[] = {4096};
    size_t n = 3 * 65536 + 1000, seg = 65536 + 16, body = 32;
    uint8_t *data = calloc(1, n), *bad;
    struct buf ct = {0};

    CU_ASSERT_PTR_NOT_NULL_FATAL(data);
    CU_ASSERT_FATAL(RAND_bytes(data, (int)n) == 1);
    CU_ASSERT_EQUAL_FATAL(run_cipher("dkm:g", true, data, n, p, 1, &ct), 1);
    bad = malloc(ct.len + 16);
    CU_ASSERT_PTR_NOT_NULL_FATAL(bad);
    /* Another group, a pinned other version, a key that is no URI. */
    expect_stream_refused("dkm:h", ct.p, ct.len, data, n,
                          "data belongs to another dkm group");
    expect_stream_refused("dkm:g/2", ct.p, ct.len, data, n,
                          "data was made with another key version");
    expect_stream_refused("notauri", ct.p, ct.len, data, n,
                          "cipher key is not a dkm URI");
    /* Changed bytes in the header, each segment, each tag, the terminator. */
    {
        const size_t at[] = {0,
                             5,
                             9,
                             20,
                             body,
                             body + 65535,
                             body + 65536,
                             body + seg + 7,
                             body + 3 * seg + 999,
                             ct.len - 17,
                             ct.len - 1};

        for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
            memcpy(bad, ct.p, ct.len);
            bad[at[i]] ^= 0x01;
            expect_stream_refused("dkm:g", bad, ct.len, data, n, NULL);
        }
    }
    /* Truncated at a segment boundary, inside a tag, before the terminator. */
    expect_stream_refused("dkm:g", ct.p, body + seg, data, n,
                          "dkm data failed authentication");
    expect_stream_refused("dkm:g", ct.p, body + seg - 3, data, n, NULL);
    expect_stream_refused("dkm:g", ct.p, ct.len - 16, data, n,
                          "dkm data failed authentication");
    expect_stream_refused("dkm:g", ct.p, 10, data, n, "malformed dkm stream");
    /* Segments 0 and 1 swapped. */
    memcpy(bad, ct.p, ct.len);
    memcpy(bad + body, ct.p + body + seg, seg);
    memcpy(bad + body + seg, ct.p + body, seg);
    expect_stream_refused("dkm:g", bad, ct.len, data, n,
                          "dkm data failed authentication");
    /* Extended by a copy of the terminator. */
    memcpy(bad, ct.p, ct.len);
    memcpy(bad + ct.len, ct.p + ct.len - 16, 16);
    expect_stream_refused("dkm:g", bad, ct.len + 16, data, n, NULL);
    free(bad);
    free(ct.p);
    free(data);
}

static void test_provider_stream_version_from_header(void)
{
    static const size_t p[] = {1000};
    static const uint8_t msg[] = "rotated";
    struct buf ct = {0}, pt = {0};

    /* Made under g/2, read with dkm:g whose current version is 3. */
    CU_ASSERT_EQUAL_FATAL(run_cipher("dkm:g/2", true, msg, sizeof(msg), p, 1, &ct), 1);
    CU_ASSERT_EQUAL(ct.p[11], 2);
    CU_ASSERT_EQUAL(run_cipher("dkm:g", false, ct.p, ct.len, p, 1, &pt), 1);
    CU_ASSERT(pt.len == sizeof(msg) && memcmp(pt.p, msg, sizeof(msg)) == 0);
    free(ct.p);
    free(pt.p);
}

static void test_provider_stream_expired_version(void)
{
    static const size_t p[] = {100};
    uint8_t key[32], out[256];
    struct dkm_stream *st = NULL;
    struct buf pt = {0};
    size_t n1 = 0, n2 = 0;

    /* A stream made under g/1 before it expired, read now. */
    test_key("g", 1, key);
    CU_ASSERT_EQUAL_FATAL(
        dkm_stream_encrypt_new(NULL, "g", 1, key, DKM_STREAM_SEG_LOG2_DEFAULT, &st), 0);
    CU_ASSERT_EQUAL(dkm_stream_update(st, (const uint8_t *)"old", 3, out, 35, &n1), 0);
    CU_ASSERT_EQUAL(dkm_stream_final(st, out + n1, 32, &n2), 0);
    dkm_stream_free(st);
    ERR_clear_error();
    CU_ASSERT_EQUAL(run_cipher("dkm:g", false, out, n1 + n2, p, 1, &pt), 0);
    CU_ASSERT_EQUAL(pt.len, 0);
    CU_ASSERT_PTR_NOT_NULL(last_reason);
    if (last_reason != NULL) {
        CU_ASSERT_STRING_EQUAL(last_reason, "dkm key version has expired");
    }
    ERR_clear_error();
    free(pt.p);
}

static uint64_t cache_until(OSSL_LIB_CTX *ctx, const char *uri)
{
    EVP_PKEY *pk = load_key(ctx, uri);
    uint64_t t = 0;
    OSSL_PARAM params[] = {OSSL_PARAM_uint64("dkm-cache-until", &t), OSSL_PARAM_END};

    CU_ASSERT_PTR_NOT_NULL_FATAL(pk);
    CU_ASSERT(EVP_PKEY_get_params(pk, params) == 1);
    EVP_PKEY_free(pk);
    return t;
}

static void test_provider_cache_honours_ttl(void)
{
    OSSL_PROVIDER *d = NULL, *def = NULL;
    OSSL_LIB_CTX *ctx;
    uint64_t first, again, later;

    setenv("DKM_TEST_TTL", "1", 1);
    ctx = new_ctx(module_dir("/testkeys"), &d, &def);
    unsetenv("DKM_TEST_TTL");
    CU_ASSERT_FATAL(ctx != NULL && d != NULL);
    first = cache_until(ctx, "dkm:h/1");
    again = cache_until(ctx, "dkm:h/1");
    CU_ASSERT(first > 0);
    /* Within the TTL the cached entry answers ... */
    CU_ASSERT(again == first || again == first + 1);
    sleep(2);
    /* ... after it, the key is resolved again and cached anew. */
    later = cache_until(ctx, "dkm:h/1");
    CU_ASSERT(later >= first + 2);
    OSSL_PROVIDER_unload(d);
    OSSL_PROVIDER_unload(def);
    OSSL_LIB_CTX_free(ctx);
}

static void test_provider_fork_child_keys(void)
{
    EVP_PKEY *pk = load_key(libctx, "dkm:g");
    static const uint8_t msg[] = "from the child";
    uint8_t out[64], blob[256];
    size_t len = 0, n = 0;
    ssize_t got;
    uint8_t *b;
    int fds[2], status = 0;
    pid_t pid;

    CU_ASSERT_PTR_NOT_NULL_FATAL(pk);
    /* Fill the cache in the parent. */
    b = protect(pk, NULL, 0, msg, sizeof(msg), &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    OPENSSL_free(b);
    CU_ASSERT_EQUAL_FATAL(pipe(fds), 0);
    pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        /* The child's copy of the cache must not be used: its keys are wiped. */
        close(fds[0]);
        b = protect(pk, NULL, 0, msg, sizeof(msg), &len);
        if (b == NULL || write(fds[1], b, len) != (ssize_t)len)
            _exit(1);
        _exit(0);
    }
    close(fds[1]);
    got = read(fds[0], blob, sizeof(blob));
    close(fds[0]);
    CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
    CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CU_ASSERT_FATAL(got > 0);
    CU_ASSERT_EQUAL(unprotect(pk, NULL, 0, blob, (size_t)got, out, sizeof(out), &n), 1);
    CU_ASSERT(n == sizeof(msg) && memcmp(out, msg, n) == 0);
    EVP_PKEY_free(pk);
}

/* ---- threads ---- */

struct worker {
    EVP_PKEY *pk;
    int failures;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    uint8_t msg[300], out[300];

    for (int i = 0; i < 200; i++) {
        size_t len = 0, n = 0;
        uint8_t *blob;

        memset(msg, i, sizeof(msg));
        blob = protect(w->pk, NULL, 0, msg, (size_t)i, &len);
        if (blob == NULL ||
            unprotect(w->pk, NULL, 0, blob, len, out, sizeof(out), &n) != 1 ||
            n != (size_t)i || memcmp(out, msg, n) != 0)
            w->failures++;
        OPENSSL_free(blob);
    }
    return NULL;
}

static void test_provider_threads_share_keys(void)
{
    EVP_PKEY *pk = load_key(libctx, "dkm:g");
    pthread_t t[4];
    struct worker w[4];

    CU_ASSERT_PTR_NOT_NULL_FATAL(pk);
    for (int i = 0; i < 4; i++) {
        w[i] = (struct worker){.pk = pk};
        CU_ASSERT_EQUAL_FATAL(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        CU_ASSERT_EQUAL(w[i].failures, 0);
    }
    EVP_PKEY_free(pk);
}

/* ---- configuration and the installed module ---- */

static void expect_load_fails(const char *var, const char *value, const char *detail)
{
    OSSL_PROVIDER *d = NULL, *def = NULL;
    OSSL_LIB_CTX *ctx;
    char *saved = getenv(var) != NULL ? strdup(getenv(var)) : NULL;

    ERR_clear_error();
    setenv(var, value, 1);
    ctx = new_ctx(module_dir("/testkeys"), &d, &def);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    CU_ASSERT_PTR_NULL(d);
    CU_ASSERT(error_has(NULL, detail));
    OSSL_PROVIDER_unload(d);
    OSSL_PROVIDER_unload(def);
    OSSL_LIB_CTX_free(ctx);
    if (saved != NULL)
        setenv(var, saved, 1);
    else
        unsetenv(var);
    free(saved);
}

static void test_provider_config_errors_name_setting(void)
{
    expect_load_fails("DKM_TRUST", "abc", "dkm provider configuration: trust:");
    expect_load_fails("DKM_SERVICE", "http://x", "configuration: service:");
    expect_load_fails("DKM_CACHE_DIR", "relative/dir", "configuration: cache_dir:");
    expect_load_fails("DKM_DEBUG", "maybe", "configuration: DKM_DEBUG:");
    expect_load_fails("DKM_KEYSOURCE", "nope", "configuration: keysource:");
    expect_load_fails("DKM_TEST_KEYS", "g:x", "test_keys:");
}

static void test_provider_installed_module_has_no_keysource(void)
{
    OSSL_PROVIDER *d = NULL, *def = NULL;
    OSSL_LIB_CTX *ctx;
    OSSL_STORE_CTX *s;

    unsetenv("DKM_KEYSOURCE");
    ctx = new_ctx(module_dir(""), &d, &def);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    CU_ASSERT_PTR_NOT_NULL(d);
    ERR_clear_error();
    s = OSSL_STORE_open_ex("dkm:g", ctx, NULL, NULL, NULL, NULL, NULL, NULL);
    CU_ASSERT_PTR_NULL(s);
    OSSL_STORE_close(s);
    CU_ASSERT(error_has("no dkm key source configured", "service"));
    OSSL_PROVIDER_unload(d);
    OSSL_PROVIDER_unload(def);
    OSSL_LIB_CTX_free(ctx);
    /* The test key source is not in the installed module. */
    setenv("DKM_KEYSOURCE", "test", 1);
    ERR_clear_error();
    ctx = new_ctx(module_dir(""), &d, &def);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
    CU_ASSERT_PTR_NULL(d);
    CU_ASSERT(error_has(NULL, "dkm provider configuration: keysource"));
    OSSL_PROVIDER_unload(def);
    OSSL_LIB_CTX_free(ctx);
}

static CU_TestInfo provider_tests[] = {
    {"test_provider_store_uri_forms", test_provider_store_uri_forms},
    {"test_provider_store_listing", test_provider_store_listing},
    {"test_provider_store_invalid", test_provider_store_invalid},
    {"test_provider_protect_round_trip_sizes", test_provider_protect_round_trip_sizes},
    {"test_provider_protect_refusals_write_nothing",
     test_provider_protect_refusals_write_nothing},
    {"test_provider_protect_interop_and_expiry",
     test_provider_protect_interop_and_expiry},
    {"test_provider_key_not_exported", test_provider_key_not_exported},
    {"test_provider_stream_split_patterns", test_provider_stream_split_patterns},
    {"test_provider_stream_refusals", test_provider_stream_refusals},
    {"test_provider_stream_version_from_header",
     test_provider_stream_version_from_header},
    {"test_provider_stream_expired_version", test_provider_stream_expired_version},
    {"test_provider_cache_honours_ttl", test_provider_cache_honours_ttl},
    {"test_provider_threads_share_keys", test_provider_threads_share_keys},
    {"test_provider_fork_child_keys", test_provider_fork_child_keys},
    {"test_provider_config_errors_name_setting",
     test_provider_config_errors_name_setting},
    {"test_provider_installed_module_has_no_keysource",
     test_provider_installed_module_has_no_keysource},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {"provider", suite_init, suite_cleanup, NULL, NULL, provider_tests},
    CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv)
{
    return dkm_test_main(argc, argv, suites);
}
