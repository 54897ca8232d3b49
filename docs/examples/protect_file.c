/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Example: protect and unprotect a file with a dkm group key from any
 * OpenSSL 3 application, without ever holding the key.
 *
 *     protect_file protect   dkm:payments  plain.txt  plain.txt.dkm
 *     protect_file unprotect dkm:payments  plain.txt.dkm  plain.txt
 *
 * The dkm provider is loaded through the OpenSSL configuration
 * (OPENSSL_CONF, see docs/provider.md). The key is opened by name through
 * OSSL_STORE and used with EVP_PKEY_encrypt / EVP_PKEY_decrypt, exactly as
 * an RSA key would be: the result is dkm's self-describing protect blob,
 * and unprotect finds the key version in the blob, so dkm:GROUP opens
 * data made under any still-valid version. Unprotect is all-or-nothing:
 * nothing is written unless the whole blob authenticates.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/store.h>

#define INPUT_MAX_BYTES (64u * 1024 * 1024)

/* Open a key by URI: the first key the store yields. */
static EVP_PKEY *open_key(const char *uri)
{
    OSSL_STORE_CTX *store = OSSL_STORE_open(uri, NULL, NULL, NULL, NULL);
    EVP_PKEY *pkey = NULL;

    if (store == NULL)
        return NULL;
    while (pkey == NULL && !OSSL_STORE_eof(store)) {
        OSSL_STORE_INFO *info = OSSL_STORE_load(store);

        if (info == NULL)
            break;
        if (OSSL_STORE_INFO_get_type(info) == OSSL_STORE_INFO_PKEY)
            pkey = OSSL_STORE_INFO_get1_PKEY(info);
        OSSL_STORE_INFO_free(info);
    }
    OSSL_STORE_close(store);
    return pkey;
}

static unsigned char *read_file(const char *path, size_t *ret_len)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf = NULL;
    size_t len = 0;

    if (f == NULL)
        return NULL;
    buf = malloc(INPUT_MAX_BYTES + 1);
    if (buf != NULL)
        len = fread(buf, 1, INPUT_MAX_BYTES + 1, f);
    if (buf == NULL || ferror(f) || len > INPUT_MAX_BYTES) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *ret_len = len;
    return buf;
}

static int write_file(const char *path, const unsigned char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    int ok;

    if (f == NULL)
        return 0;
    ok = fwrite(data, 1, len, f) == len;
    return fclose(f) == 0 && ok;
}

int main(int argc, char **argv)
{
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *pkey = NULL;
    unsigned char *in = NULL, *out = NULL;
    size_t in_len = 0, out_len = 0;
    int protect, status = 1;

    if (argc != 5 ||
        (strcmp(argv[1], "protect") != 0 && strcmp(argv[1], "unprotect") != 0)) {
        fprintf(stderr, "usage: %s protect|unprotect dkm:GROUP[/VERSION] IN OUT\n",
                argv[0]);
        return 2;
    }
    protect = strcmp(argv[1], "protect") == 0;
    in = read_file(argv[3], &in_len);
    if (in == NULL) {
        fprintf(stderr, "%s: cannot read %s\n", argv[0], argv[3]);
        goto done;
    }
    pkey = open_key(argv[2]);
    if (pkey == NULL) {
        fprintf(stderr, "%s: cannot open the key %s\n", argv[0], argv[2]);
        goto done;
    }
    ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    if (ctx == NULL ||
        (protect ? EVP_PKEY_encrypt_init(ctx) : EVP_PKEY_decrypt_init(ctx)) != 1)
        goto done;
    /* First ask for the output size, then produce the output. */
    if ((protect ? EVP_PKEY_encrypt(ctx, NULL, &out_len, in, in_len)
                 : EVP_PKEY_decrypt(ctx, NULL, &out_len, in, in_len)) != 1)
        goto done;
    out = malloc(out_len > 0 ? out_len : 1);
    if (out == NULL ||
        (protect ? EVP_PKEY_encrypt(ctx, out, &out_len, in, in_len)
                 : EVP_PKEY_decrypt(ctx, out, &out_len, in, in_len)) != 1) {
        fprintf(stderr, "%s: %s failed\n", argv[0], argv[1]);
        goto done;
    }
    if (!write_file(argv[4], out, out_len)) {
        fprintf(stderr, "%s: cannot write %s\n", argv[0], argv[4]);
        goto done;
    }
    status = 0;
done:
    if (status != 0)
        ERR_print_errors_fp(stderr);
    if (out != NULL)
        OPENSSL_clear_free(out, out_len);
    OPENSSL_clear_free(in, in_len);
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(pkey);
    return status;
}
