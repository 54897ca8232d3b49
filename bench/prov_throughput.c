/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Throughput of the dkm provider's two ways to encrypt, at 16 KiB chunks,
 * against the default provider's AES-256-GCM measured in the same process:
 *   - DKM-AES-256-GCM (openssl enc's stream) against one AES-256-GCM
 *     context fed the same 16 KiB updates;
 *   - DKM protect/unprotect (EVP_PKEY_encrypt/decrypt of 16 KiB messages)
 *     against a one-shot AES-256-GCM per 16 KiB message (key setup, nonce,
 *     update, tag).
 * The provider is the test build (deterministic keys), loaded into a fresh
 * library context; its key source costs nothing after the first lookup.
 * Usage: prov_throughput [seconds per measurement, default 1]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/provider.h>
#include <openssl/rand.h>
#include <openssl/store.h>

#define CHUNK (16 * 1024)
#define URI_KEY_LEN 64

static OSSL_LIB_CTX *libctx;
static double seconds = 1.0;
static unsigned char in[CHUNK], out[CHUNK + 4096], back[CHUNK + 4096], blob[CHUNK + 4096];

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
    fprintf(stderr, "prov_throughput: %s failed\n", what);
    ERR_print_errors_fp(stderr);
    exit(1);
}

/* Chunks per second of op(), run for about `seconds`. */
static double rate(int (*op)(void *), void *arg)
{
    double start = now(), t;
    long n = 0;

    do {
        for (int i = 0; i < 64; i++) {
            if (!op(arg))
                die("operation");
        }
        n += 64;
        t = now() - start;
    } while (t < seconds);
    return (double)n / t;
}

/* ---- streams: one context, 16 KiB updates ---- */

static int stream_update(void *arg)
{
    int outl;

    return EVP_CipherUpdate(arg, out, &outl, in, CHUNK);
}

static EVP_CIPHER_CTX *stream_ctx(const char *name, const unsigned char *key, int enc)
{
    EVP_CIPHER *c = EVP_CIPHER_fetch(libctx, name, NULL);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    unsigned char iv[12] = {0};

    if (c == NULL || ctx == NULL ||
        !EVP_CipherInit_ex2(ctx, c, key, EVP_CIPHER_get_iv_length(c) > 0 ? iv : NULL, enc,
                            NULL))
        die(name);
    EVP_CIPHER_free(c);
    return ctx;
}

struct pair {
    EVP_CIPHER_CTX *enc, *dec;
};

static int pair_pass(void *arg)
{
    struct pair *p = arg;
    int outl, outl2;

    return EVP_EncryptUpdate(p->enc, out, &outl, in, CHUNK) &&
           EVP_DecryptUpdate(p->dec, back, &outl2, out, outl);
}

/* ---- messages: one-shot GCM vs protect ---- */

static int gcm_message(void *arg)
{
    static const unsigned char key[32] = {1};
    EVP_CIPHER *c = arg;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    unsigned char nonce[12];
    int outl, ok;

    ok = ctx != NULL && RAND_bytes_ex(libctx, nonce, sizeof(nonce), 0) == 1 &&
         EVP_EncryptInit_ex2(ctx, c, key, nonce, NULL) &&
         EVP_EncryptUpdate(ctx, out, &outl, in, CHUNK) &&
         EVP_EncryptFinal_ex(ctx, out + outl, &outl) &&
         EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, out + CHUNK);
    EVP_CIPHER_CTX_free(ctx);
    return ok;
}

static size_t blob_len;

static int protect_message(void *arg)
{
    size_t len = sizeof(blob);

    if (EVP_PKEY_encrypt(arg, blob, &len, in, CHUNK) != 1)
        return 0;
    blob_len = len;
    return 1;
}

static int unprotect_message(void *arg)
{
    size_t len = sizeof(back);

    return EVP_PKEY_decrypt(arg, back, &len, blob, blob_len) == 1 && len == CHUNK;
}

static EVP_PKEY *load_key(const char *uri)
{
    OSSL_STORE_CTX *s =
        OSSL_STORE_open_ex(uri, libctx, NULL, NULL, NULL, NULL, NULL, NULL);
    EVP_PKEY *pk = NULL;

    while (s != NULL && !OSSL_STORE_eof(s)) {
        OSSL_STORE_INFO *info = OSSL_STORE_load(s);

        if (info == NULL)
            break;
        if (OSSL_STORE_INFO_get_type(info) == OSSL_STORE_INFO_PKEY)
            pk = OSSL_STORE_INFO_get1_PKEY(info);
        OSSL_STORE_INFO_free(info);
    }
    OSSL_STORE_close(s);
    if (pk == NULL)
        die("loading dkm:bench");
    return pk;
}

/*
 * The machine may be shared: measure candidate and baseline in
 * alternation, several rounds, and keep the best rate of each.
 */
#define ROUNDS 5

static void compare(int (*base_op)(void *), void *base_arg, int (*op)(void *), void *arg,
                    double *ret_base, double *ret)
{
    double keep = seconds, b = 0, c = 0;

    seconds = keep / ROUNDS;
    for (int i = 0; i < ROUNDS; i++) {
        double rb = rate(base_op, base_arg), rc = rate(op, arg);

        b = rb > b ? rb : b;
        c = rc > c ? rc : c;
    }
    seconds = keep;
    *ret_base = b;
    *ret = c;
}

static void report(const char *what, double r, double base)
{
    printf("%-44s %9.1f MB/s  %6.3f of baseline\n", what, r * CHUNK / 1e6, r / base);
}

int main(int argc, char **argv)
{
    static const unsigned char key32[32] = {2};
    unsigned char urikey[URI_KEY_LEN] = "dkm:bench";
    OSSL_PROVIDER *dkm, *def;
    EVP_PKEY_CTX *pctx, *dctx;
    EVP_CIPHER *gcm;
    EVP_PKEY *pk;
    double base_stream, base_msg, r;

    if (argc > 1)
        seconds = atof(argv[1]);
    if (seconds <= 0)
        seconds = 1.0;
    setenv("DKM_KEYSOURCE", "test", 1);
    setenv("DKM_TEST_KEYS", "bench:1", 1);
    libctx = OSSL_LIB_CTX_new();
    if (libctx == NULL ||
        !OSSL_PROVIDER_set_default_search_path(libctx, DKM_BENCH_MODULE_DIR))
        die("library context");
    dkm = OSSL_PROVIDER_load(libctx, "dkm");
    def = OSSL_PROVIDER_load(libctx, "default");
    if (dkm == NULL || def == NULL)
        die("loading the providers");
    if (RAND_bytes(in, sizeof(in)) != 1)
        die("RAND_bytes");

    printf("16 KiB chunks, best of %d rounds of %.2f s, alternating with the baseline\n",
           ROUNDS, seconds / ROUNDS);
    {
        EVP_CIPHER_CTX *base = stream_ctx("AES-256-GCM", key32, 1);
        EVP_CIPHER_CTX *enc = stream_ctx("DKM-AES-256-GCM", urikey, 1);
        EVP_CIPHER_CTX *dec_base = stream_ctx("AES-256-GCM", key32, 0);
        struct pair p = {stream_ctx("DKM-AES-256-GCM", urikey, 1),
                         stream_ctx("DKM-AES-256-GCM", urikey, 0)};

        compare(stream_update, base, stream_update, enc, &base_stream, &r);
        report("baseline: AES-256-GCM (default), one context", base_stream, base_stream);
        report("DKM-AES-256-GCM encrypt", r, base_stream);
        /* Encrypt then decrypt each chunk, against GCM doing the same. */
        {
            struct pair bp = {base, dec_base};

            compare(pair_pass, &bp, pair_pass, &p, &base_stream, &r);
        }
        report("baseline: AES-256-GCM encrypt+decrypt", base_stream, base_stream);
        report("DKM-AES-256-GCM encrypt+decrypt", r, base_stream);
        EVP_CIPHER_CTX_free(base);
        EVP_CIPHER_CTX_free(enc);
        EVP_CIPHER_CTX_free(dec_base);
        EVP_CIPHER_CTX_free(p.enc);
        EVP_CIPHER_CTX_free(p.dec);
    }

    gcm = EVP_CIPHER_fetch(libctx, "AES-256-GCM", NULL);
    if (gcm == NULL)
        die("AES-256-GCM");
    pk = load_key("dkm:bench");
    pctx = EVP_PKEY_CTX_new_from_pkey(libctx, pk, NULL);
    dctx = EVP_PKEY_CTX_new_from_pkey(libctx, pk, NULL);
    if (pctx == NULL || dctx == NULL || EVP_PKEY_encrypt_init(pctx) != 1 ||
        EVP_PKEY_decrypt_init(dctx) != 1 || !protect_message(pctx))
        die("protect init");
    compare(gcm_message, gcm, protect_message, pctx, &base_msg, &r);
    report("baseline: AES-256-GCM one-shot per message", base_msg, base_msg);
    report("DKM protect (EVP_PKEY_encrypt)", r, base_msg);
    compare(gcm_message, gcm, unprotect_message, dctx, &base_msg, &r);
    report("DKM unprotect (EVP_PKEY_decrypt)", r, base_msg);
    EVP_PKEY_CTX_free(pctx);
    EVP_PKEY_CTX_free(dctx);
    EVP_PKEY_free(pk);
    EVP_CIPHER_free(gcm);

    OSSL_PROVIDER_unload(dkm);
    OSSL_PROVIDER_unload(def);
    OSSL_LIB_CTX_free(libctx);
    return 0;
}
