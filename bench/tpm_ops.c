/* SPDX-License-Identifier: Apache-2.0 */
/*
 * In-process cost of dkm's TPM operations, as medians over many runs,
 * each next to a baseline measured in the same process: one TPM2_GetRandom
 * round trip (what any TPM command costs at least on this transport).
 *
 * Usage: tests/with-swtpm.sh 1 build/bench/tpm_ops [RUNS]
 * (or DKM_TEST_TCTI_1=... tpm_ops [RUNS] against any TPM).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "dkm/tpm/dup.h"
#include "dkm/base/secmem.h"
#include "dkm/trust/sign.h"
#include "dkm/tpm/unseal.h"

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static double median(double *v, size_t n)
{
    qsort(v, n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void fail(const char *what, int r)
{
    fprintf(stderr, "tpm_ops: %s: %s (%s)\n", what, dkm_strerror(r), dkm_error_detail());
    exit(1);
}

int main(int argc, char **argv)
{
    size_t runs = argc > 1 ? strtoul(argv[1], NULL, 10) : 200;
    const char *tcti = getenv("DKM_TEST_TCTI_1");
    double *t_rand, *t_seal, *t_import, *t_cached, *t_sign, *t_dsign;
    struct dkm_delegated_key *dk = NULL;
    struct dkm_signkey *sk = NULL;
    struct dkm_tpm *tpm = NULL;
    struct dkm_node_id id;
    TPM2B_PUBLIC ek;
    char path[] = "/tmp/dkm-bench-XXXXXX";
    char skpath[64];
    double base;
    int r;

    if (runs < 10)
        runs = 10;
    t_rand = calloc(runs, sizeof(double));
    t_seal = calloc(runs, sizeof(double));
    t_import = calloc(runs, sizeof(double));
    t_cached = calloc(runs, sizeof(double));
    t_sign = calloc(runs, sizeof(double));
    t_dsign = calloc(runs, sizeof(double));
    if (mkdtemp(path) == NULL)
        return 1;
    snprintf(skpath, sizeof(skpath), "%s/sk", path);
    if ((r = dkm_sign_secure_heap_init()) < 0)
        fail("secure heap", r);
    if ((r = dkm_tpm_open(tcti, &tpm)) < 0)
        fail("open TPM", r);
    if ((r = dkm_node_read_ek(tpm, DKM_EK_ECCP256, &ek, &id)) < 0)
        fail("read EK", r);
    if ((r = dkm_signkey_create(tpm, skpath, false, &sk)) < 0)
        fail("create signing key", r);
    if ((r = dkm_delegation_create(sk, &id, (uint64_t)time(NULL) - 60,
                                   (uint64_t)time(NULL) + 3600, &dk)) < 0)
        fail("delegation", r);

    for (size_t i = 0; i < runs; i++) {
        TPM2B_DIGEST *rnd = NULL;
        struct dkm_import_blob blob;
        struct dkm_sealed sealed;
        uint8_t key[32], sig[DKM_SIG_SIZE];
        void *out = NULL;
        size_t len;
        double t0;

        RAND_bytes(key, sizeof(key));
        t0 = now_ms();
        dkm_tpm_lock(tpm);
        r = dkm_tpm_rc(Esys_GetRandom(dkm_tpm_esys(tpm), ESYS_TR_NONE, ESYS_TR_NONE,
                                      ESYS_TR_NONE, 16, &rnd),
                       "GetRandom");
        dkm_tpm_unlock(tpm);
        Esys_Free(rnd);
        if (r < 0)
            fail("GetRandom", r);
        t_rand[i] = now_ms() - t0;

        t0 = now_ms();
        if ((r = dkm_dup_seal(&ek, key, sizeof(key), 0, NULL, &blob)) < 0)
            fail("seal (software)", r);
        t_seal[i] = now_ms() - t0;

        t0 = now_ms();
        if ((r = dkm_unseal_blob(tpm, &blob, &sealed, &out, &len)) < 0)
            fail("import+unseal", r);
        t_import[i] = now_ms() - t0;
        dkm_secmem_free(out);

        t0 = now_ms();
        if ((r = dkm_unseal(tpm, &sealed, &out, &len)) < 0)
            fail("load+unseal", r);
        t_cached[i] = now_ms() - t0;
        dkm_secmem_free(out);

        t0 = now_ms();
        if ((r = dkm_signkey_sign(sk, "dkm bench v1", key, sizeof(key), sig)) < 0)
            fail("TPM sign", r);
        t_sign[i] = now_ms() - t0;

        t0 = now_ms();
        if ((r = dkm_delegated_sign(dk, "dkm bench v1", key, sizeof(key), sig)) < 0)
            fail("delegated sign", r);
        t_dsign[i] = now_ms() - t0;
    }

    base = median(t_rand, runs);
    printf("TPM operations, median of %zu runs (baseline: GetRandom round trip)\n", runs);
    printf("  %-36s %9.3f ms  %7.2fx\n", "GetRandom (baseline)", base, 1.0);
#define ROW(name, v)                                                                     \
    do {                                                                                 \
        double m = median((v), runs);                                                    \
        printf("  %-36s %9.3f ms  %7.2fx\n", (name), m, m / base);                       \
    } while (0)
    ROW("seal to EK in software (server)", t_seal);
    ROW("import + unseal (node, first fetch)", t_import);
    ROW("load + unseal (node, cached blob)", t_cached);
    ROW("sign with the TPM signing key", t_sign);
    ROW("sign with the delegated key", t_dsign);
#undef ROW

    dkm_delegated_key_free(dk);
    dkm_signkey_free(sk);
    dkm_tpm_close(tpm);
    remove(skpath);
    remove(path);
    free(t_rand);
    free(t_seal);
    free(t_import);
    free(t_cached);
    free(t_sign);
    free(t_dsign);
    return 0;
}
