/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test tool: many uses of one dkm key at once, through the provider of
 * OPENSSL_CONF. It loads the URI given as argv[1] through OSSL_STORE, then
 * THREADS threads each protect and unprotect a message OPS/THREADS times
 * and check every round trip; meanwhile a forked child does the same
 * (the child's copy of the key is gone: it resolves it again, from the
 * kernel keyring when one is used). Prints "ok N" with the number of
 * round trips, or "fail" with a reason, and exits non-zero on any
 * failure. tests/integration/keys_keyring.sh runs it.
 *
 * Usage: dkm-keyring-stress URI THREADS OPS
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/store.h>

static const char *uri;
static long per_thread;
static atomic_long done_ops, failures;

static EVP_PKEY *load(void)
{
    OSSL_STORE_CTX *store = OSSL_STORE_open(uri, NULL, NULL, NULL, NULL);
    OSSL_STORE_INFO *info;
    EVP_PKEY *pkey = NULL;

    if (store == NULL)
        return NULL;
    info = OSSL_STORE_load(store);
    if (info != NULL && OSSL_STORE_INFO_get_type(info) == OSSL_STORE_INFO_PKEY)
        pkey = OSSL_STORE_INFO_get1_PKEY(info);
    OSSL_STORE_INFO_free(info);
    OSSL_STORE_close(store);
    return pkey;
}

/* One protect and unprotect of a message that names the round. */
static int round_trip(long n)
{
    unsigned char msg[64], blob[512], back[512];
    size_t blob_len = sizeof(blob), back_len = sizeof(back);
    EVP_PKEY *pkey = load();
    EVP_PKEY_CTX *ctx =
        pkey != NULL ? EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL) : NULL;
    int ok;

    snprintf((char *)msg, sizeof(msg), "round %ld of the keyring stress", n);
    ok = ctx != NULL && EVP_PKEY_encrypt_init(ctx) == 1 &&
         EVP_PKEY_encrypt(ctx, blob, &blob_len, msg, strlen((char *)msg)) == 1 &&
         EVP_PKEY_decrypt_init(ctx) == 1 &&
         EVP_PKEY_decrypt(ctx, back, &back_len, blob, blob_len) == 1 &&
         back_len == strlen((char *)msg) && memcmp(back, msg, back_len) == 0;
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(pkey);
    return ok ? 0 : -1;
}

static void *worker(void *arg)
{
    long base = (long)(intptr_t)arg * per_thread;

    for (long i = 0; i < per_thread; i++) {
        if (round_trip(base + i) == 0)
            atomic_fetch_add(&done_ops, 1);
        else
            atomic_fetch_add(&failures, 1);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    pthread_t threads[64];
    long nthreads, ops;
    int status = 0, child_status = 0;
    pid_t child;

    if (argc != 4 || (nthreads = strtol(argv[2], NULL, 10)) < 1 || nthreads > 64 ||
        (ops = strtol(argv[3], NULL, 10)) < nthreads) {
        fprintf(stderr, "usage: %s URI THREADS(1..64) OPS\n", argv[0]);
        return 2;
    }
    uri = argv[1];
    per_thread = ops / nthreads;
    /* Resolve once, so that the child forks from a process holding it. */
    if (round_trip(-1) != 0) {
        printf("fail: the first use of %s failed\n", uri);
        ERR_print_errors_fp(stdout);
        return 1;
    }
    child = fork();
    if (child == 0) {
        for (long i = 0; i < 100; i++)
            if (round_trip(1000000 + i) != 0) {
                ERR_print_errors_fp(stdout);
                _exit(1);
            }
        _exit(0);
    }
    for (long t = 0; t < nthreads; t++)
        if (pthread_create(&threads[t], NULL, worker, (void *)(intptr_t)t) != 0)
            return 1;
    for (long t = 0; t < nthreads; t++)
        pthread_join(threads[t], NULL);
    if (child < 0 || waitpid(child, &child_status, 0) != child ||
        !WIFEXITED(child_status) || WEXITSTATUS(child_status) != 0) {
        printf("fail: the forked child's uses failed\n");
        status = 1;
    }
    if (atomic_load(&failures) != 0) {
        printf("fail: %ld of %ld round trips failed\n", atomic_load(&failures),
               nthreads * per_thread);
        status = 1;
    }
    if (status == 0)
        printf("ok %ld\n", atomic_load(&done_ops) + 100);
    return status;
}
