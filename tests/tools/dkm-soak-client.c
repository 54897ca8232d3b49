/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test tool: a long-running OpenSSL application using a dkm key, for
 * bench/soak.sh. It protects and unprotects a message with the URI given
 * as argv[1] (the provider of OPENSSL_CONF) in a loop for SECONDS,
 * loading the key through OSSL_STORE each round as an application that
 * names its key per use does, and checks every round trip. Every 1000
 * rounds, and at the end (SECONDS, or SIGTERM), it prints
 * "rounds N errors E".
 *
 * Usage: dkm-soak-client URI SECONDS
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/store.h>

static int round_trip(const char *uri, long n)
{
    unsigned char msg[64], blob[512], back[512];
    size_t blob_len = sizeof(blob), back_len = sizeof(back);
    OSSL_STORE_CTX *store = OSSL_STORE_open(uri, NULL, NULL, NULL, NULL);
    OSSL_STORE_INFO *info = store != NULL ? OSSL_STORE_load(store) : NULL;
    EVP_PKEY *pkey =
        info != NULL && OSSL_STORE_INFO_get_type(info) == OSSL_STORE_INFO_PKEY
            ? OSSL_STORE_INFO_get1_PKEY(info)
            : NULL;
    EVP_PKEY_CTX *ctx =
        pkey != NULL ? EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL) : NULL;
    int ok;

    snprintf((char *)msg, sizeof(msg), "soak round %ld", n);
    ok = ctx != NULL && EVP_PKEY_encrypt_init(ctx) == 1 &&
         EVP_PKEY_encrypt(ctx, blob, &blob_len, msg, strlen((char *)msg)) == 1 &&
         EVP_PKEY_decrypt_init(ctx) == 1 &&
         EVP_PKEY_decrypt(ctx, back, &back_len, blob, blob_len) == 1 &&
         back_len == strlen((char *)msg) && memcmp(back, msg, back_len) == 0;
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(pkey);
    OSSL_STORE_INFO_free(info);
    OSSL_STORE_close(store);
    if (!ok)
        ERR_print_errors_fp(stderr);
    ERR_clear_error();
    return ok ? 0 : -1;
}

static volatile sig_atomic_t stop_now;

static void on_stop(int sig)
{
    (void)sig;
    stop_now = 1;
}

int main(int argc, char **argv)
{
    long rounds = 0, errors = 0;
    time_t end;

    if (argc != 3 || atol(argv[2]) < 1) {
        fprintf(stderr, "usage: %s URI SECONDS\n", argv[0]);
        return 2;
    }
    signal(SIGTERM, on_stop);
    end = time(NULL) + atol(argv[2]);
    while (!stop_now && time(NULL) < end) {
        if (round_trip(argv[1], rounds) != 0)
            errors++;
        rounds++;
        if (rounds % 1000 == 0) {
            printf("rounds %ld errors %ld\n", rounds, errors);
            fflush(stdout);
        }
    }
    printf("rounds %ld errors %ld\n", rounds, errors);
    return errors == 0 ? 0 : 1;
}
