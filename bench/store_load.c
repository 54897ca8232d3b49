/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Cost of naming a key through OSSL_STORE: open + load + close of a dkm
 * key that is already in the provider's cache (what every use after the
 * first costs), next to the same for a P-256 PEM key file through
 * OpenSSL's file loader, measured alternately in the same process. The
 * dkm key comes from the test key source (built into the test module);
 * a cache hit runs the same code whatever the key source.
 *
 * Usage: build/bench/store_load [ROUNDS]
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <openssl/store.h>

static OSSL_LIB_CTX *libctx;

static double now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* Open, load the first key, close; 0 on success. */
static int load_once(const char *uri)
{
    OSSL_STORE_CTX *s =
        OSSL_STORE_open_ex(uri, libctx, NULL, NULL, NULL, NULL, NULL, NULL);
    OSSL_STORE_INFO *info;
    int r = -1;

    if (s == NULL)
        return -1;
    info = OSSL_STORE_load(s);
    if (info != NULL && OSSL_STORE_INFO_get_type(info) == OSSL_STORE_INFO_PKEY) {
        EVP_PKEY *k = OSSL_STORE_INFO_get1_PKEY(info);

        r = k != NULL ? 0 : -1;
        EVP_PKEY_free(k);
    }
    OSSL_STORE_INFO_free(info);
    OSSL_STORE_close(s);
    return r;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    size_t rounds = argc > 1 ? strtoul(argv[1], NULL, 10) : 2000;
    char pem_path[] = "/tmp/dkm-bench-key-XXXXXX";
    double *t_dkm, *t_pem, m_dkm, m_pem;
    OSSL_PROVIDER *dkm, *def;
    EVP_PKEY *k;
    FILE *f;
    int fd;

    if (rounds < 10)
        rounds = 10;
    setenv("DKM_KEYSOURCE", "test", 1);
    setenv("DKM_TEST_KEYS", "bench:1", 1);
    libctx = OSSL_LIB_CTX_new();
    if (libctx == NULL ||
        !OSSL_PROVIDER_set_default_search_path(libctx, DKM_BENCH_MODULE_DIR))
        return 1;
    dkm = OSSL_PROVIDER_load(libctx, "dkm");
    def = OSSL_PROVIDER_load(libctx, "default");
    if (dkm == NULL || def == NULL) {
        fprintf(stderr, "store_load: cannot load the providers\n");
        return 1;
    }
    /* The baseline: a software key in a PEM file. */
    fd = mkstemp(pem_path);
    k = EVP_PKEY_Q_keygen(libctx, NULL, "EC", "P-256");
    f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (k == NULL || f == NULL || !PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL))
        return 1;
    fclose(f);
    EVP_PKEY_free(k);

    t_dkm = calloc(rounds, sizeof(double));
    t_pem = calloc(rounds, sizeof(double));
    /* Warm up: the first dkm load resolves the key into the cache. */
    if (load_once("dkm://bench/1") < 0 || load_once(pem_path) < 0) {
        fprintf(stderr, "store_load: cannot load the keys\n");
        return 1;
    }
    for (size_t i = 0; i < rounds; i++) {
        double t0 = now_us();

        if (load_once("dkm://bench/1") < 0)
            return 1;
        t_dkm[i] = now_us() - t0;
        t0 = now_us();
        if (load_once(pem_path) < 0)
            return 1;
        t_pem[i] = now_us() - t0;
    }
    qsort(t_dkm, rounds, sizeof(double), cmp_double);
    qsort(t_pem, rounds, sizeof(double), cmp_double);
    m_dkm = t_dkm[rounds / 2];
    m_pem = t_pem[rounds / 2];
    printf("OSSL_STORE open+load+close, median of %zu rounds each, alternating\n",
           rounds);
    printf("  %-40s %8.1f us  1.00x\n", "PEM P-256 key via the file loader", m_pem);
    printf("  %-40s %8.1f us  %.2fx\n", "dkm key, cache hit (dkm://bench/1)", m_dkm,
           m_dkm / m_pem);
    remove(pem_path);
    free(t_dkm);
    free(t_pem);
    OSSL_PROVIDER_unload(dkm);
    OSSL_PROVIDER_unload(def);
    OSSL_LIB_CTX_free(libctx);
    return 0;
}
