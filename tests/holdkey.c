/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test tool: an OpenSSL application that uses a dkm key and then keeps
 * holding it. It opens the URI given as argv[1] through OSSL_STORE (the
 * provider from OPENSSL_CONF), protects a message with it so the key is
 * resolved and cached, prints "ready" and waits until its standard input
 * closes. tests/integration/core_dump.sh dumps its memory meanwhile. Each
 * line read meanwhile makes it protect the message again and answer "ok",
 * or "fail" and the first error's text: how a long-running application
 * sees revocations and cache expiry (tests/integration/client_provider.sh).
 */
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/store.h>

int main(int argc, char **argv)
{
    static const unsigned char msg[] = "a message protected with a dkm key";
    unsigned char out[512];
    size_t out_len = sizeof(out);
    OSSL_STORE_CTX *store;
    OSSL_STORE_INFO *info;
    EVP_PKEY *pkey = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    int c, status = 1;

    if (argc != 2) {
        fprintf(stderr, "usage: %s dkm:GROUP[/VERSION]\n", argv[0]);
        return 2;
    }
    store = OSSL_STORE_open(argv[1], NULL, NULL, NULL, NULL);
    if (store == NULL)
        goto done;
    info = OSSL_STORE_load(store);
    if (info != NULL && OSSL_STORE_INFO_get_type(info) == OSSL_STORE_INFO_PKEY)
        pkey = OSSL_STORE_INFO_get1_PKEY(info);
    OSSL_STORE_INFO_free(info);
    OSSL_STORE_close(store);
    if (pkey == NULL)
        goto done;
    ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    if (ctx == NULL || EVP_PKEY_encrypt_init(ctx) != 1 ||
        EVP_PKEY_encrypt(ctx, out, &out_len, msg, sizeof(msg)) != 1)
        goto done;
    printf("ready %zu\n", out_len);
    fflush(stdout);
    while ((c = getchar()) != EOF) {
        unsigned long e;

        if (c != '\n')
            continue;
        out_len = sizeof(out);
        ERR_clear_error();
        if (EVP_PKEY_encrypt(ctx, out, &out_len, msg, sizeof(msg)) == 1) {
            printf("ok\n");
        } else {
            const char *data = NULL, *reason;
            int flags = 0;

            e = ERR_peek_error_data(&data, &flags);
            reason = e != 0 ? ERR_reason_error_string(e) : NULL;
            printf("fail %s: %s\n", reason != NULL ? reason : "unknown",
                   data != NULL && (flags & ERR_TXT_STRING) ? data : "");
            ERR_print_errors_fp(stderr);
        }
        fflush(stdout);
    }
    status = 0;
done:
    if (status != 0)
        ERR_print_errors_fp(stderr);
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(pkey);
    return status;
}
