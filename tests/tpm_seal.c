/* SPDX-License-Identifier: Apache-2.0 */
/* swtpm: 2 */
/*
 * Keys in transit against real software TPMs: node A (DKM_TEST_TCTI_1)
 * and node B (DKM_TEST_TCTI_2). A key sealed in software to A's RSA or
 * ECC EK imports and unseals on A to the same bytes; B cannot use it; a
 * blob re-labelled for A but encrypted to B is refused by A's TPM; every
 * tampered field is refused; a PCR-bound key unseals until the PCR
 * changes; a cached private area unseals after reopening the TPM; a
 * thousand import+unseal runs leak no TPM handle. Prints the median
 * in-process time of import+unseal.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "dkm/tpm/dup.h"
#include "dkm/tpm/node.h"
#include "dkm/base/secmem.h"
#include "dkm/tpm/tpm.h"
#include "dkm/tpm/unseal.h"
#include "unit.h"

#define PCR_TEST 16u

static struct dkm_tpm *tpm_a, *tpm_b;
static TPM2B_PUBLIC ek_a[2], ek_b[2]; /* indexed by enum dkm_ek_type */

static int open_tpm(int n, struct dkm_tpm **ret, TPM2B_PUBLIC ek[2])
{
    if (dkm_tpm_open(dkm_test_tcti(n), ret) != 0) {
        fprintf(stderr, "cannot open TPM %d: %s\n", n, dkm_error_detail());
        return -1;
    }
    for (int t = 0; t < 2; t++) {
        if (dkm_node_read_ek(*ret, (enum dkm_ek_type)t, &ek[t], NULL) != 0) {
            fprintf(stderr, "cannot read EK %d of TPM %d: %s\n", t, n,
                    dkm_error_detail());
            return -1;
        }
    }
    return 0;
}

static int suite_init(void)
{
    if (open_tpm(1, &tpm_a, ek_a) != 0 || open_tpm(2, &tpm_b, ek_b) != 0)
        return -1;
    return 0;
}

static int suite_clean(void)
{
    dkm_tpm_close(tpm_a);
    dkm_tpm_close(tpm_b);
    tpm_a = tpm_b = NULL;
    return 0;
}

static uint32_t avail(struct dkm_tpm *tpm)
{
    uint32_t n = 0;

    CU_ASSERT_EQUAL_FATAL(dkm_tpm_transient_avail(tpm, &n), 0);
    return n;
}

/* Seal in software and pass through the envelope, as the service and the
 * node would. */
static void seal_for(const TPM2B_PUBLIC *ek, const uint8_t *secret, size_t len,
                     uint32_t pcr_mask, const uint8_t *policy,
                     struct dkm_import_blob *ret)
{
    struct dkm_import_blob blob;
    uint8_t buf[DKM_DUP_ENCODED_MAX];
    size_t n = 0;

    CU_ASSERT_EQUAL_FATAL(dkm_dup_seal(ek, secret, len, pcr_mask, policy, &blob), 0);
    CU_ASSERT_EQUAL_FATAL(dkm_dup_encode(&blob, buf, sizeof(buf), &n), 0);
    CU_ASSERT_EQUAL_FATAL(dkm_dup_decode(buf, n, ret), 0);
}

/* Unseal and compare; returns the dkm code. */
static int unseal_check(struct dkm_tpm *tpm, const struct dkm_import_blob *blob,
                        const uint8_t *want, size_t want_len,
                        struct dkm_sealed *ret_sealed)
{
    void *secret = NULL;
    size_t len = 0;
    int r = dkm_unseal_blob(tpm, blob, ret_sealed, &secret, &len);

    if (r == 0) {
        CU_ASSERT_EQUAL(len, want_len);
        CU_ASSERT(len == want_len && memcmp(secret, want, len) == 0);
        CU_ASSERT(dkm_secmem_contains(secret));
        dkm_secmem_free(secret);
    } else {
        CU_ASSERT_PTR_NULL(secret);
    }
    return r;
}

static void roundtrip(enum dkm_ek_type type)
{
    struct dkm_import_blob blob;
    uint8_t key[32];
    uint32_t before = avail(tpm_a);

    CU_ASSERT_EQUAL_FATAL(RAND_bytes(key, sizeof(key)), 1);
    seal_for(&ek_a[type], key, sizeof(key), 0, NULL, &blob);
    CU_ASSERT_EQUAL(blob.ek_type, type);
    if (unseal_check(tpm_a, &blob, key, sizeof(key), NULL) != 0) {
        fprintf(stderr, "\n  %s\n", dkm_error_detail());
        CU_FAIL("import and unseal failed");
    }
    CU_ASSERT_EQUAL(avail(tpm_a), before);
}

static void test_seal_rsa_roundtrip(void)
{
    roundtrip(DKM_EK_RSA2048);
}

static void test_seal_ecc_roundtrip(void)
{
    roundtrip(DKM_EK_ECCP256);
}

/* Sizes at both ends of what a sealed object may hold. */
static void test_seal_secret_sizes(void)
{
    static const size_t sizes[] = {1, 16, 64, DKM_DUP_SECRET_MAX};
    uint8_t secret[DKM_DUP_SECRET_MAX];

    CU_ASSERT_EQUAL_FATAL(RAND_bytes(secret, sizeof(secret)), 1);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        for (int t = 0; t < 2; t++) {
            struct dkm_import_blob blob;

            seal_for(&ek_a[t], secret, sizes[i], 0, NULL, &blob);
            CU_ASSERT_EQUAL(unseal_check(tpm_a, &blob, secret, sizes[i], NULL), 0);
        }
    }
}

static void test_seal_other_node_refused(void)
{
    uint8_t key[32] = "key for node A, not for node B!";
    uint32_t before_a = avail(tpm_a), before_b = avail(tpm_b);

    for (int t = 0; t < 2; t++) {
        struct dkm_import_blob blob;
        struct dkm_sealed sealed;
        struct dkm_node_id id_a;

        /* B is asked to import A's blob: refused before any TPM work. */
        seal_for(&ek_a[t], key, sizeof(key), 0, NULL, &blob);
        CU_ASSERT_EQUAL(unseal_check(tpm_b, &blob, key, sizeof(key), NULL),
                        DKM_E_TPM_NOT_MINE);
        CU_ASSERT_PTR_NOT_NULL(strstr(dkm_error_detail(), "another machine"));
        CU_ASSERT_EQUAL(dkm_unseal_import(tpm_b, &blob, &sealed), DKM_E_TPM_NOT_MINE);

        /* A blob encrypted to B's EK but labelled with A's node id: A's
         * TPM itself must refuse it, cleanly. */
        seal_for(&ek_b[t], key, sizeof(key), 0, NULL, &blob);
        CU_ASSERT_EQUAL_FATAL(dkm_node_id_from_public(&ek_a[t], &id_a), 0);
        blob.node_id = id_a;
        CU_ASSERT_EQUAL(unseal_check(tpm_a, &blob, key, sizeof(key), NULL),
                        DKM_E_INTEGRITY);
        CU_ASSERT_PTR_NOT_NULL(strstr(dkm_error_detail(), "another TPM"));
        /* and still works on B */
        CU_ASSERT_EQUAL(dkm_node_id_from_public(&ek_b[t], &blob.node_id), 0);
        CU_ASSERT_EQUAL(unseal_check(tpm_b, &blob, key, sizeof(key), NULL), 0);
    }
    CU_ASSERT_EQUAL(avail(tpm_a), before_a);
    CU_ASSERT_EQUAL(avail(tpm_b), before_b);
}

/* Each tampering is applied to a decoded blob, bypassing the envelope's
 * checks, so that the TPM's own checks are what is tested. */
enum tamper {
    T_SEED_FIRST,
    T_SEED_MIDDLE,
    T_SEED_LAST,
    T_HMAC_FIRST,
    T_HMAC_LAST,
    T_ENC_FIRST,
    T_ENC_MIDDLE,
    T_ENC_LAST,
    T_PUB_UNIQUE,
    T_PUB_ATTRS,
    T_PUB_POLICY,
    T_PUB_FIXEDTPM,
    T_HMAC_LEN,
    T_DUP_LEN_SHORT,
    T_DUP_LEN_LONG,
    T_SEED_LEN_SHORT,
    T_SEED_LEN_LONG,
    T_PUB_UNIQUE_LEN,
    T_COUNT,
};

static const char *const tamper_names[T_COUNT] = {
    "seed first byte",
    "seed middle byte",
    "seed last byte",
    "outer HMAC first",
    "outer HMAC last",
    "encrypted sensitive first",
    "encrypted sensitive middle",
    "encrypted sensitive last",
    "public unique",
    "public attributes",
    "public authPolicy",
    "public fixedTPM",
    "outer HMAC length",
    "duplicate length short",
    "duplicate length long",
    "seed length short",
    "seed length long",
    "public unique length",
};

static bool tamper_shape(int t)
{
    switch (t) {
    case T_PUB_ATTRS:
    case T_PUB_POLICY:
    case T_PUB_FIXEDTPM:
    case T_HMAC_LEN:
    case T_SEED_LEN_SHORT:
    case T_SEED_LEN_LONG:
    case T_PUB_UNIQUE_LEN:
        return true;
    default:
        return false;
    }
}

static void apply_tamper(struct dkm_import_blob *b, enum tamper t)
{
    TPMT_PUBLIC *p = &b->public.publicArea;
    uint8_t *dup = b->duplicate.buffer;
    size_t dn = b->duplicate.size;

    switch (t) {
    case T_SEED_FIRST:
        b->seed.secret[b->ek_type == DKM_EK_RSA2048 ? 0 : 2] ^= 0x01;
        break;
    case T_SEED_MIDDLE:
        /* ECC: a byte of y (x is 2..33, y's length at 34..35) */
        b->seed.secret[b->ek_type == DKM_EK_RSA2048 ? 128 : 40] ^= 0x80;
        break;
    case T_SEED_LAST:
        b->seed.secret[b->seed.size - 1] ^= 0x01;
        break;
    case T_HMAC_FIRST:
        dup[2] ^= 0x01;
        break;
    case T_HMAC_LAST:
        dup[33] ^= 0x80;
        break;
    case T_ENC_FIRST:
        dup[34] ^= 0x01;
        break;
    case T_ENC_MIDDLE:
        dup[34 + (dn - 34) / 2] ^= 0x10;
        break;
    case T_ENC_LAST:
        dup[dn - 1] ^= 0x01;
        break;
    case T_PUB_UNIQUE:
        p->unique.keyedHash.buffer[0] ^= 0x01;
        break;
    case T_PUB_ATTRS:
        p->objectAttributes &= ~TPMA_OBJECT_NODA;
        break;
    case T_PUB_POLICY:
        p->authPolicy.size = 32;
        memset(p->authPolicy.buffer, 0, 32);
        break;
    case T_PUB_FIXEDTPM:
        p->objectAttributes |= TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT;
        break;
    case T_HMAC_LEN:
        dup[1] = 31;
        break;
    case T_DUP_LEN_SHORT:
        b->duplicate.size--;
        break;
    case T_DUP_LEN_LONG:
        dup[dn] = 0;
        b->duplicate.size++;
        break;
    case T_SEED_LEN_SHORT:
        b->seed.size--;
        break;
    case T_SEED_LEN_LONG:
        b->seed.secret[b->seed.size] = 0;
        b->seed.size++;
        break;
    case T_PUB_UNIQUE_LEN:
        p->unique.keyedHash.size = 31;
        break;
    case T_COUNT:
        break;
    }
}

static void test_seal_tampered_refused(void)
{
    uint8_t key[32];
    uint32_t before = avail(tpm_a);

    CU_ASSERT_EQUAL_FATAL(RAND_bytes(key, sizeof(key)), 1);
    for (int type = 0; type < 2; type++) {
        struct dkm_import_blob good;

        seal_for(&ek_a[type], key, sizeof(key), 0, NULL, &good);
        for (int t = 0; t < T_COUNT; t++) {
            struct dkm_import_blob bad = good;
            uint8_t buf[DKM_DUP_ENCODED_MAX];
            size_t len;
            int r;

            apply_tamper(&bad, (enum tamper)t);
            /* Changes of shape never get into an envelope; changed bytes
             * of the cryptographic content only the TPM can detect. */
            CU_ASSERT_EQUAL(dkm_dup_encode(&bad, buf, sizeof(buf), &len),
                            tamper_shape(t) ? -EINVAL : 0);
            r = unseal_check(tpm_a, &bad, key, sizeof(key), NULL);
            if (type == DKM_EK_ECCP256 && t == T_SEED_LEN_LONG) {
                /* The TPM reads the ephemeral point and ignores bytes
                 * after it; only the envelope decoder refuses them. */
                CU_ASSERT_EQUAL(r, 0);
                continue;
            }
            if (r != DKM_E_INTEGRITY)
                fprintf(stderr, "\n  %s EK, tampered %s: %d %s\n",
                        dkm_ek_type_name((enum dkm_ek_type)type), tamper_names[t], r,
                        dkm_error_detail());
            CU_ASSERT_EQUAL(r, DKM_E_INTEGRITY);
        }
        /* the untouched blob still works after all that */
        CU_ASSERT_EQUAL(unseal_check(tpm_a, &good, key, sizeof(key), NULL), 0);
    }
    CU_ASSERT_EQUAL(avail(tpm_a), before);
}

static void read_pcr(struct dkm_tpm *tpm, unsigned pcr, uint8_t out[32])
{
    TPML_PCR_SELECTION sel;
    TPML_PCR_SELECTION *sel_out = NULL;
    TPML_DIGEST *values = NULL;
    UINT32 counter = 0;
    TSS2_RC rc;

    memset(&sel, 0, sizeof(sel));
    sel.count = 1;
    sel.pcrSelections[0].hash = TPM2_ALG_SHA256;
    sel.pcrSelections[0].sizeofSelect = 3;
    sel.pcrSelections[0].pcrSelect[pcr / 8] = (uint8_t)(1u << (pcr % 8));
    dkm_tpm_lock(tpm);
    rc = Esys_PCR_Read(dkm_tpm_esys(tpm), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &sel,
                       &counter, &sel_out, &values);
    dkm_tpm_unlock(tpm);
    CU_ASSERT_EQUAL_FATAL(rc, TSS2_RC_SUCCESS);
    CU_ASSERT_EQUAL_FATAL(values->count, 1);
    CU_ASSERT_EQUAL_FATAL(values->digests[0].size, 32);
    memcpy(out, values->digests[0].buffer, 32);
    Esys_Free(sel_out);
    Esys_Free(values);
}

/* The TPM's own PolicyPCR digest for the current PCR values (trial). */
static void tpm_policy_pcr(struct dkm_tpm *tpm, uint32_t mask, uint8_t out[32])
{
    ESYS_CONTEXT *esys = dkm_tpm_esys(tpm);
    TPMT_SYM_DEF none = {.algorithm = TPM2_ALG_NULL};
    TPML_PCR_SELECTION sel;
    TPM2B_DIGEST empty, *digest = NULL;
    ESYS_TR trial = ESYS_TR_NONE;
    TSS2_RC rc;

    memset(&sel, 0, sizeof(sel));
    memset(&empty, 0, sizeof(empty));
    sel.count = 1;
    sel.pcrSelections[0].hash = TPM2_ALG_SHA256;
    sel.pcrSelections[0].sizeofSelect = 3;
    for (int i = 0; i < 3; i++)
        sel.pcrSelections[0].pcrSelect[i] = (uint8_t)(mask >> (8 * i));
    dkm_tpm_lock(tpm);
    rc = Esys_StartAuthSession(esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                               ESYS_TR_NONE, ESYS_TR_NONE, NULL, TPM2_SE_TRIAL, &none,
                               TPM2_ALG_SHA256, &trial);
    CU_ASSERT_EQUAL(rc, TSS2_RC_SUCCESS);
    rc = Esys_PolicyPCR(esys, trial, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &empty,
                        &sel);
    CU_ASSERT_EQUAL(rc, TSS2_RC_SUCCESS);
    rc = Esys_PolicyGetDigest(esys, trial, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                              &digest);
    CU_ASSERT_EQUAL(rc, TSS2_RC_SUCCESS);
    if (rc == TSS2_RC_SUCCESS && digest->size == 32)
        memcpy(out, digest->buffer, 32);
    Esys_Free(digest);
    dkm_tpm_flush(tpm, &trial);
    dkm_tpm_unlock(tpm);
}

static void extend_pcr(struct dkm_tpm *tpm, unsigned pcr)
{
    TPML_DIGEST_VALUES v;
    ESYS_TR handle = ESYS_TR_PCR0 + pcr;
    TSS2_RC rc;

    memset(&v, 0, sizeof(v));
    v.count = 1;
    v.digests[0].hashAlg = TPM2_ALG_SHA256;
    memset(v.digests[0].digest.sha256, 0x42, 32);
    dkm_tpm_lock(tpm);
    rc = Esys_PCR_Extend(dkm_tpm_esys(tpm), handle, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                         ESYS_TR_NONE, &v);
    dkm_tpm_unlock(tpm);
    CU_ASSERT_EQUAL_FATAL(rc, TSS2_RC_SUCCESS);
}

static void reset_pcr(struct dkm_tpm *tpm, unsigned pcr)
{
    TSS2_RC rc;

    dkm_tpm_lock(tpm);
    rc = Esys_PCR_Reset(dkm_tpm_esys(tpm), ESYS_TR_PCR0 + pcr, ESYS_TR_PASSWORD,
                        ESYS_TR_NONE, ESYS_TR_NONE);
    dkm_tpm_unlock(tpm);
    CU_ASSERT_EQUAL(rc, TSS2_RC_SUCCESS);
}

static void test_seal_pcr_policy(void)
{
    uint8_t key[32], pcr[32], policy[32], tpm_policy[32];
    uint32_t before = avail(tpm_a);

    CU_ASSERT_EQUAL_FATAL(RAND_bytes(key, sizeof(key)), 1);
    /* Start from a PCR 16 value that is not the reset value. */
    reset_pcr(tpm_a, PCR_TEST);
    extend_pcr(tpm_a, PCR_TEST);
    read_pcr(tpm_a, PCR_TEST, pcr);
    CU_ASSERT_EQUAL_FATAL(dkm_dup_policy_pcr(1u << PCR_TEST, pcr, 32, policy), 0);
    /* the software digest is the TPM's own */
    memset(tpm_policy, 0, sizeof(tpm_policy));
    tpm_policy_pcr(tpm_a, 1u << PCR_TEST, tpm_policy);
    CU_ASSERT(memcmp(policy, tpm_policy, 32) == 0);

    for (int t = 0; t < 2; t++) {
        struct dkm_import_blob blob;
        struct dkm_sealed sealed;
        void *secret = NULL;
        size_t len = 0;
        int r;

        read_pcr(tpm_a, PCR_TEST, pcr);
        CU_ASSERT_EQUAL_FATAL(dkm_dup_policy_pcr(1u << PCR_TEST, pcr, 32, policy), 0);
        seal_for(&ek_a[t], key, sizeof(key), 1u << PCR_TEST, policy, &blob);
        CU_ASSERT_EQUAL(blob.pcr_mask, 1u << PCR_TEST);
        CU_ASSERT_EQUAL(unseal_check(tpm_a, &blob, key, sizeof(key), &sealed), 0);
        CU_ASSERT_EQUAL(sealed.pcr_mask, 1u << PCR_TEST);

        extend_pcr(tpm_a, PCR_TEST);
        /* fresh import and the cached object both refuse */
        r = unseal_check(tpm_a, &blob, key, sizeof(key), NULL);
        CU_ASSERT_EQUAL(r, DKM_E_TPM_POLICY);
        CU_ASSERT_PTR_NOT_NULL(strstr(dkm_error_detail(), "platform state (PCR values)"));
        r = dkm_unseal(tpm_a, &sealed, &secret, &len);
        CU_ASSERT_EQUAL(r, DKM_E_TPM_POLICY);
        CU_ASSERT_PTR_NULL(secret);
        CU_ASSERT_PTR_NOT_NULL(strstr(dkm_error_detail(), "16"));

        /* the policy is the only way in: an object that claims no
         * policy is a different object (its name changes) */
        {
            struct dkm_import_blob nopol = blob;

            nopol.pcr_mask = 0;
            CU_ASSERT_NOT_EQUAL(unseal_check(tpm_a, &nopol, key, sizeof(key), NULL), 0);
        }
    }
    reset_pcr(tpm_a, PCR_TEST);
    CU_ASSERT_EQUAL(avail(tpm_a), before);
}

static void test_seal_cached_after_reopen(void)
{
    uint8_t key[32];

    CU_ASSERT_EQUAL_FATAL(RAND_bytes(key, sizeof(key)), 1);
    for (int t = 0; t < 2; t++) {
        struct dkm_import_blob blob;
        struct dkm_sealed sealed, only_imported, bad;
        void *secret = NULL;
        size_t len = 0;

        seal_for(&ek_a[t], key, sizeof(key), 0, NULL, &blob);
        CU_ASSERT_EQUAL_FATAL(unseal_check(tpm_a, &blob, key, sizeof(key), &sealed), 0);
        CU_ASSERT_EQUAL(sealed.ek_type, t);
        CU_ASSERT(sealed.private.size > 0);
        CU_ASSERT_EQUAL_FATAL(dkm_unseal_import(tpm_a, &blob, &only_imported), 0);

        /* through the cache format and a file */
        {
            uint8_t buf[DKM_SEALED_ENCODED_MAX];
            char path[512];
            size_t n = 0;
            FILE *f;

            snprintf(path, sizeof(path), "%s/sealed-%d", dkm_test_tmpdir(), t);
            CU_ASSERT_EQUAL_FATAL(dkm_sealed_encode(&sealed, buf, sizeof(buf), &n), 0);
            f = fopen(path, "wb");
            CU_ASSERT_PTR_NOT_NULL_FATAL(f);
            CU_ASSERT_EQUAL(fwrite(buf, 1, n, f), n);
            fclose(f);
            memset(&sealed, 0, sizeof(sealed));
            memset(buf, 0, sizeof(buf));

            /* a new TPM context: no state but the cached file */
            dkm_tpm_close(tpm_a);
            tpm_a = NULL;
            CU_ASSERT_EQUAL_FATAL(dkm_tpm_open(dkm_test_tcti(1), &tpm_a), 0);
            f = fopen(path, "rb");
            CU_ASSERT_PTR_NOT_NULL_FATAL(f);
            n = fread(buf, 1, sizeof(buf), f);
            fclose(f);
            CU_ASSERT_EQUAL_FATAL(dkm_sealed_decode(buf, n, &sealed), 0);
        }
        CU_ASSERT_EQUAL(dkm_unseal(tpm_a, &sealed, &secret, &len), 0);
        CU_ASSERT(len == sizeof(key) && secret != NULL && memcmp(secret, key, len) == 0);
        dkm_secmem_free(secret);
        secret = NULL;
        CU_ASSERT_EQUAL(dkm_unseal(tpm_a, &only_imported, &secret, &len), 0);
        CU_ASSERT(len == sizeof(key) && secret != NULL && memcmp(secret, key, len) == 0);
        dkm_secmem_free(secret);
        secret = NULL;

        /* the cache is of no use on B */
        CU_ASSERT_EQUAL(dkm_unseal(tpm_b, &sealed, &secret, &len), DKM_E_TPM_NOT_MINE);
        /* nor once altered */
        bad = sealed;
        bad.private.buffer[bad.private.size - 1] ^= 1;
        CU_ASSERT_EQUAL(dkm_unseal(tpm_a, &bad, &secret, &len), DKM_E_INTEGRITY);
        bad = sealed;
        bad.public.publicArea.unique.keyedHash.buffer[3] ^= 1;
        CU_ASSERT_EQUAL(dkm_unseal(tpm_a, &bad, &secret, &len), DKM_E_INTEGRITY);
        CU_ASSERT_PTR_NULL(secret);
    }
}

static bool file_contains(const char *path, const void *needle, size_t n)
{
    static uint8_t buf[4 << 20];
    FILE *f = fopen(path, "rb");
    size_t len;

    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    len = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    CU_ASSERT_FATAL(len > 0 && len < sizeof(buf));
    return memmem(buf, len, needle, n) != NULL;
}

/* Record the TPM traffic with the pcap TCTI: the blob goes over the bus
 * (the capture works), the unsealed key never does in clear (response
 * parameter encryption), with and without a PCR policy. */
static void test_seal_secret_not_on_bus(void)
{
    char path[512], conf[512];
    struct dkm_tpm *traced = NULL;
    struct dkm_import_blob plain, bound;
    uint8_t key[32], pcr[32], policy[32];

    CU_ASSERT_EQUAL_FATAL(RAND_bytes(key, sizeof(key)), 1);
    snprintf(path, sizeof(path), "%s/tpm.pcap", dkm_test_tmpdir());
    snprintf(conf, sizeof(conf), "pcap:%s", dkm_test_tcti(1));
    CU_ASSERT_EQUAL_FATAL(setenv("TCTI_PCAP_FILE", path, 1), 0);
    CU_ASSERT_EQUAL_FATAL(dkm_tpm_open(conf, &traced), 0);

    read_pcr(traced, PCR_TEST, pcr);
    CU_ASSERT_EQUAL_FATAL(dkm_dup_policy_pcr(1u << PCR_TEST, pcr, 32, policy), 0);
    seal_for(&ek_a[DKM_EK_RSA2048], key, sizeof(key), 0, NULL, &plain);
    seal_for(&ek_a[DKM_EK_ECCP256], key, sizeof(key), 1u << PCR_TEST, policy, &bound);
    CU_ASSERT_EQUAL(unseal_check(traced, &plain, key, sizeof(key), NULL), 0);
    CU_ASSERT_EQUAL(unseal_check(traced, &bound, key, sizeof(key), NULL), 0);
    dkm_tpm_close(traced);
    unsetenv("TCTI_PCAP_FILE");

    CU_ASSERT_TRUE(file_contains(path, plain.duplicate.buffer, plain.duplicate.size));
    CU_ASSERT_TRUE(file_contains(path, bound.seed.secret, bound.seed.size));
    CU_ASSERT_FALSE(file_contains(path, key, sizeof(key)));
    CU_ASSERT_FALSE(file_contains(path, key, 8));
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static double median(double *v, size_t n)
{
    qsort(v, n, sizeof(v[0]), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

#define RUNS 1000

static void test_seal_thousand_no_leak(void)
{
    static double t_import[2][RUNS / 2], t_cached[2][RUNS / 2], t_seal[2][RUNS / 2];
    struct dkm_import_blob blob[2];
    struct dkm_sealed sealed[2];
    size_t allocs0, allocs1, locked;
    uint8_t key[32];
    uint32_t start = avail(tpm_a);
    int failures = 0;

    CU_ASSERT_EQUAL_FATAL(RAND_bytes(key, sizeof(key)), 1);
    dkm_secmem_stats(&allocs0, &locked);
    for (int t = 0; t < 2; t++)
        seal_for(&ek_a[t], key, sizeof(key), 0, NULL, &blob[t]);
    for (int i = 0; i < RUNS; i++) {
        int t = i % 2;
        struct dkm_import_blob fresh;
        void *secret = NULL;
        size_t len = 0;
        double t0 = now_ms();

        CU_ASSERT_EQUAL(dkm_dup_seal(&ek_a[t], key, sizeof(key), 0, NULL, &fresh), 0);
        t_seal[t][i / 2] = now_ms() - t0;

        t0 = now_ms();
        if (dkm_unseal_blob(tpm_a, &blob[t], &sealed[t], &secret, &len) != 0 ||
            len != sizeof(key) || memcmp(secret, key, len) != 0) {
            if (failures++ < 3)
                fprintf(stderr, "\n  run %d: %s\n", i, dkm_error_detail());
        }
        t_import[t][i / 2] = now_ms() - t0;
        dkm_secmem_free(secret);
        secret = NULL;

        t0 = now_ms();
        if (dkm_unseal(tpm_a, &sealed[t], &secret, &len) != 0 || len != sizeof(key) ||
            memcmp(secret, key, len) != 0) {
            if (failures++ < 3)
                fprintf(stderr, "\n  run %d (cached): %s\n", i, dkm_error_detail());
        }
        t_cached[t][i / 2] = now_ms() - t0;
        dkm_secmem_free(secret);
        if (i % 100 == 99)
            CU_ASSERT_EQUAL_FATAL(avail(tpm_a), start);
    }
    CU_ASSERT_EQUAL(failures, 0);
    CU_ASSERT_EQUAL(avail(tpm_a), start);
    dkm_secmem_stats(&allocs1, &locked);
    CU_ASSERT_EQUAL(allocs1, allocs0);
    for (int t = 0; t < 2; t++)
        printf("\n  %s EK, %d runs: median import+unseal %.2f ms, cached load+unseal "
               "%.2f ms, software seal %.3f ms",
               dkm_ek_type_name((enum dkm_ek_type)t), RUNS / 2,
               median(t_import[t], RUNS / 2), median(t_cached[t], RUNS / 2),
               median(t_seal[t], RUNS / 2));
    printf("\n");
}

static CU_TestInfo seal_tests[] = {
    {"test_seal_rsa_roundtrip", test_seal_rsa_roundtrip},
    {"test_seal_ecc_roundtrip", test_seal_ecc_roundtrip},
    {"test_seal_secret_sizes", test_seal_secret_sizes},
    {"test_seal_other_node_refused", test_seal_other_node_refused},
    {"test_seal_tampered_refused", test_seal_tampered_refused},
    {"test_seal_pcr_policy", test_seal_pcr_policy},
    {"test_seal_cached_after_reopen", test_seal_cached_after_reopen},
    {"test_seal_secret_not_on_bus", test_seal_secret_not_on_bus},
    {"test_seal_thousand_no_leak", test_seal_thousand_no_leak},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {"seal", suite_init, suite_clean, NULL, NULL, seal_tests},
    CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv)
{
    return dkm_test_main(argc, argv, suites);
}
