/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Known-answer tests of KDFa and KDFe against tests/data/kdf/kdfa.txt and
 * kdfe.txt, which gen_vectors.py computed with an independent Python
 * implementation (and which include the TCG reference implementation's
 * KDF self-test vector), plus argument checks.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "dkm/base/codec.h"
#include "kdf.h"
#include "unit.h"

#define FIELD_MAX 8192
#define MAX_FIELDS 8

struct field {
    char name[32];
    char value[2 * FIELD_MAX + 1];
};

struct record {
    struct field f[MAX_FIELDS];
    int n;
};

static const char *rec_get(const struct record *rec, const char *name)
{
    for (int i = 0; i < rec->n; i++)
        if (strcmp(rec->f[i].name, name) == 0)
            return rec->f[i].value;
    return NULL;
}

static size_t rec_hex(const struct record *rec, const char *name, uint8_t *out,
                      size_t cap)
{
    const char *v = rec_get(rec, name);
    size_t len = 0;

    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    CU_ASSERT_EQUAL_FATAL(dkm_hex_decode(v, strlen(v), out, cap, &len), 0);
    return len;
}

static const EVP_MD *rec_md(const struct record *rec)
{
    const char *h = rec_get(rec, "hash");

    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    if (strcmp(h, "sha1") == 0)
        return EVP_sha1();
    if (strcmp(h, "sha256") == 0)
        return EVP_sha256();
    if (strcmp(h, "sha384") == 0)
        return EVP_sha384();
    if (strcmp(h, "sha512") == 0)
        return EVP_sha512();
    CU_FAIL_FATAL("unknown hash in vector file");
    return NULL;
}

/* The label's hex holds its characters only; make a C string of it. */
static void rec_label(const struct record *rec, const char *name, char *out, size_t cap)
{
    size_t n = rec_hex(rec, name, (uint8_t *)out, cap - 1);

    out[n] = '\0';
    CU_ASSERT_EQUAL_FATAL(strlen(out), n);
}

/* Read the next record; false at end of file. */
static bool read_record(FILE *f, struct record *rec)
{
    static char line[2 * FIELD_MAX + 64];

    rec->n = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        char *eq, *name, *value, *end;

        line[strcspn(line, "\n")] = '\0';
        if (line[0] == '#')
            continue;
        if (line[0] == '\0') {
            if (rec->n > 0)
                return true;
            continue;
        }
        eq = strstr(line, " = ");
        if (eq == NULL) {
            eq = strstr(line, " =");
            CU_ASSERT_PTR_NOT_NULL_FATAL(eq);
            value = eq + 2;
        } else {
            value = eq + 3;
        }
        *eq = '\0';
        name = line;
        end = value + strlen(value);
        CU_ASSERT_FATAL(rec->n < MAX_FIELDS);
        CU_ASSERT_FATAL(strlen(name) < sizeof(rec->f[0].name));
        CU_ASSERT_FATAL((size_t)(end - value) < sizeof(rec->f[0].value));
        strcpy(rec->f[rec->n].name, name);
        strcpy(rec->f[rec->n].value, value);
        rec->n++;
    }
    return rec->n > 0;
}

static void test_kdf_kdfa_vectors(void)
{
    static struct record rec;
    static uint8_t key[FIELD_MAX], u[FIELD_MAX], v[FIELD_MAX], want[FIELD_MAX],
        got[FIELD_MAX];
    char label[256];
    FILE *f = fopen(dkm_test_data("kdf/kdfa.txt"), "r");
    int count = 0;

    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    while (read_record(f, &rec)) {
        size_t klen = rec_hex(&rec, "key", key, sizeof(key));
        size_t ulen = rec_hex(&rec, "context_u", u, sizeof(u));
        size_t vlen = rec_hex(&rec, "context_v", v, sizeof(v));
        size_t wlen = rec_hex(&rec, "output", want, sizeof(want));
        unsigned long bits = strtoul(rec_get(&rec, "bits"), NULL, 10);

        rec_label(&rec, "label", label, sizeof(label));
        CU_ASSERT_EQUAL_FATAL(wlen, (bits + 7) / 8);
        memset(got, 0xee, sizeof(got));
        CU_ASSERT_EQUAL(dkm_kdfa(rec_md(&rec), key, klen, label, ulen ? u : NULL, ulen,
                                 vlen ? v : NULL, vlen, (uint32_t)bits, got, wlen),
                        0);
        CU_ASSERT(memcmp(got, want, wlen) == 0);
        /* nothing written past the output */
        CU_ASSERT_EQUAL(got[wlen], 0xee);
        count++;
    }
    fclose(f);
    /* the file must not silently shrink */
    CU_ASSERT(count >= 20);
}

static void test_kdf_kdfe_vectors(void)
{
    static struct record rec;
    static uint8_t z[FIELD_MAX], u[FIELD_MAX], v[FIELD_MAX], want[FIELD_MAX],
        got[FIELD_MAX];
    char use[256];
    FILE *f = fopen(dkm_test_data("kdf/kdfe.txt"), "r");
    int count = 0;

    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    while (read_record(f, &rec)) {
        size_t zlen = rec_hex(&rec, "z", z, sizeof(z));
        size_t ulen = rec_hex(&rec, "party_u", u, sizeof(u));
        size_t vlen = rec_hex(&rec, "party_v", v, sizeof(v));
        size_t wlen = rec_hex(&rec, "output", want, sizeof(want));
        unsigned long bits = strtoul(rec_get(&rec, "bits"), NULL, 10);

        rec_label(&rec, "use", use, sizeof(use));
        CU_ASSERT_EQUAL_FATAL(wlen, (bits + 7) / 8);
        memset(got, 0xee, sizeof(got));
        CU_ASSERT_EQUAL(dkm_kdfe(rec_md(&rec), z, zlen, use, ulen ? u : NULL, ulen,
                                 vlen ? v : NULL, vlen, (uint32_t)bits, got, wlen),
                        0);
        CU_ASSERT(memcmp(got, want, wlen) == 0);
        CU_ASSERT_EQUAL(got[wlen], 0xee);
        count++;
    }
    fclose(f);
    CU_ASSERT(count >= 10);
}

/* NULL label and "" are the same: both hash a lone zero octet. */
static void test_kdf_empty_label_forms(void)
{
    uint8_t key[32] = {1, 2, 3}, a[32], b[32];

    CU_ASSERT_EQUAL(dkm_kdfa(EVP_sha256(), key, sizeof(key), NULL, NULL, 0, NULL, 0, 256,
                             a, sizeof(a)),
                    0);
    CU_ASSERT_EQUAL(
        dkm_kdfa(EVP_sha256(), key, sizeof(key), "", NULL, 0, NULL, 0, 256, b, sizeof(b)),
        0);
    CU_ASSERT(memcmp(a, b, sizeof(a)) == 0);
    CU_ASSERT_EQUAL(dkm_kdfe(EVP_sha256(), key, sizeof(key), NULL, NULL, 0, NULL, 0, 256,
                             a, sizeof(a)),
                    0);
    CU_ASSERT_EQUAL(
        dkm_kdfe(EVP_sha256(), key, sizeof(key), "", NULL, 0, NULL, 0, 256, b, sizeof(b)),
        0);
    CU_ASSERT(memcmp(a, b, sizeof(a)) == 0);
}

/* The output of a shorter request is not a prefix: bits is hashed in. */
static void test_kdf_bits_bound_into_output(void)
{
    uint8_t key[32] = {9}, a[32], b[16];

    CU_ASSERT_EQUAL(dkm_kdfa(EVP_sha256(), key, sizeof(key), "STORAGE", NULL, 0, NULL, 0,
                             256, a, sizeof(a)),
                    0);
    CU_ASSERT_EQUAL(dkm_kdfa(EVP_sha256(), key, sizeof(key), "STORAGE", NULL, 0, NULL, 0,
                             128, b, sizeof(b)),
                    0);
    CU_ASSERT(memcmp(a, b, sizeof(b)) != 0);
}

static void test_kdf_rejects_bad_arguments(void)
{
    uint8_t key[32] = {0}, out[64];

    memset(out, 0x5a, sizeof(out));
    CU_ASSERT_EQUAL(dkm_kdfa(EVP_sha256(), key, 32, "X", NULL, 0, NULL, 0, 0, out, 0),
                    -EINVAL);
    CU_ASSERT_EQUAL(dkm_kdfa(EVP_sha256(), key, 32, "X", NULL, 0, NULL, 0, 256, out, 31),
                    -EINVAL);
    CU_ASSERT_EQUAL(dkm_kdfa(EVP_sha256(), key, 32, "X", NULL, 0, NULL, 0, 255, out, 33),
                    -EINVAL);
    CU_ASSERT_EQUAL(dkm_kdfa(NULL, key, 32, "X", NULL, 0, NULL, 0, 256, out, 32),
                    -EINVAL);
    CU_ASSERT_EQUAL(dkm_kdfa(EVP_sha256(), NULL, 32, "X", NULL, 0, NULL, 0, 256, out, 32),
                    -EINVAL);
    CU_ASSERT_EQUAL(dkm_kdfa(EVP_sha256(), key, 32, "X", NULL, 4, NULL, 0, 256, out, 32),
                    -EINVAL);
    CU_ASSERT_EQUAL(dkm_kdfa(EVP_sha256(), key, 32, "X", NULL, 0, NULL, 0,
                             DKM_KDF_MAX_BITS + 8, out, DKM_KDF_MAX_BITS / 8 + 1),
                    -EINVAL);
    CU_ASSERT_EQUAL(dkm_kdfe(EVP_sha256(), NULL, 0, "X", NULL, 0, NULL, 0, 256, out, 32),
                    -EINVAL);
    CU_ASSERT_EQUAL(dkm_kdfe(EVP_sha256(), key, 32, "X", NULL, 0, NULL, 3, 256, out, 32),
                    -EINVAL);
    CU_ASSERT_EQUAL(dkm_kdfe(EVP_sha256(), key, 32, "X", NULL, 0, NULL, 0, 8, out, 2),
                    -EINVAL);
    CU_ASSERT_NOT_EQUAL(dkm_error_detail()[0], '\0');
    /* a rejected call writes nothing */
    CU_ASSERT_EQUAL(out[0], 0x5a);
}

/* An empty HMAC key is allowed (KDFa with a zero-length seed). */
static void test_kdf_empty_key(void)
{
    uint8_t a[32], b[32];

    CU_ASSERT_EQUAL(dkm_kdfa(EVP_sha256(), NULL, 0, "A", NULL, 0, NULL, 0, 256, a, 32),
                    0);
    CU_ASSERT_EQUAL(dkm_kdfa(EVP_sha256(), "", 0, "A", NULL, 0, NULL, 0, 256, b, 32), 0);
    CU_ASSERT(memcmp(a, b, 32) == 0);
}

static CU_TestInfo kdf_tests[] = {
    {"test_kdf_kdfa_vectors", test_kdf_kdfa_vectors},
    {"test_kdf_kdfe_vectors", test_kdf_kdfe_vectors},
    {"test_kdf_empty_label_forms", test_kdf_empty_label_forms},
    {"test_kdf_bits_bound_into_output", test_kdf_bits_bound_into_output},
    {"test_kdf_rejects_bad_arguments", test_kdf_rejects_bad_arguments},
    {"test_kdf_empty_key", test_kdf_empty_key},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {"kdf", NULL, NULL, NULL, NULL, kdf_tests},
    CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv)
{
    return dkm_test_main(argc, argv, suites);
}
