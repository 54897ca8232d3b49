/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests that every dkm format has a magic of its own. The table below
 * takes each magic from the header that defines it; the tests check that
 * no two are the same 4 bytes, that every *_MAGIC* definition in the
 * product's sources is in the table (or is one of the provider's
 * in-memory tags, which are never written), and that docs/formats.md
 * lists each in its table of magics. A new format whose magic clashes
 * with another, or that is left out of the table or the document, fails
 * here.
 */
#include <ftw.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diskcache.h"
#include "seen.h"
#include "dkm/client/keyring.h"
#include "dkm/data/protect.h"
#include "dkm/data/stream.h"
#include "dkm/tpm/dup.h"
#include "dkm/tpm/node.h"
#include "dkm/tpm/unseal.h"
#include "dkm/trust/nodecard.h"
#include "dkm/trust/records.h"
#include "dkm/trust/servercard.h"
#include "dkm/trust/sign.h"
#include "dkm/trust/trust.h"
#include "unit.h"

/* A magic is either 4 ASCII characters or a big-endian u32 of them. */
struct magic {
    const char *name; /* the macro, or NULL for a retired magic */
    const char *text; /* set for text magics */
    uint32_t value;   /* else this */
    const char *format;
};

#define TEXT(m, what)                                                                    \
    {                                                                                    \
#m, m, 0, what                                                                   \
    }
#define U32(m, what)                                                                     \
    {                                                                                    \
#m, NULL, m, what                                                                \
    }

static const struct magic magics[] = {
    U32(DKM_NODECARD_MAGIC, "node card"),
    U32(DKM_SERVERCARD_MAGIC, "server card"),
    U32(DKM_SIGNKEY_MAGIC, "server signing key file"),
    U32(DKM_DELEGATION_MAGIC, "delegation"),
    TEXT(DKM_RECORD_MAGIC_SERVER_LIST, "authorized server list"),
    TEXT(DKM_RECORD_MAGIC_NODE_ENTRY, "authorized node entry"),
    TEXT(DKM_RECORD_MAGIC_GROUP_POLICY, "group policy"),
    TEXT(DKM_RECORD_MAGIC_SEALED_COPY, "sealed copy"),
    TEXT(DKM_RECORD_MAGIC_FETCH_RESPONSE, "fetch response"),
    TEXT(DKM_RECORD_MAGIC_GRANT, "grant"),
    TEXT(DKM_RECORD_MAGIC_STATE_HEAD, "state head"),
    TEXT(KS_SEEN_MAGIC, "seen file"),
    TEXT(DKM_DUP_MAGIC, "import blob"),
    TEXT(DKM_SEALED_MAGIC, "cached sealed object"),
    TEXT(DKM_DISKCACHE_ENTRY_MAGIC, "disk cache entry"),
    U32(DKM_NODE_EK_FILE_MAGIC, "EK file"),
    TEXT(DKM_TRUST_FILE_MAGIC, "trust.lists"),
    U32(DKM_KEYRING_MAGIC, "keyring payload: key version"),
    U32(DKM_KEYRING_CURRENT_MAGIC, "keyring payload: current version"),
    TEXT(DKM_PROTECT_MAGIC, "pkeyutl blob"),
    TEXT(DKM_STREAM_MAGIC, "enc stream"),
    /* Format 1 of the disk cache kept a cache key file; never reuse it. */
    {NULL, "DKCK", 0, "cache key file (retired)"},
};
#define NMAGICS (sizeof(magics) / sizeof(magics[0]))

/* Magic macros of the sources that are not formats: the provider's tags
 * of its own objects in memory, which are never written or read. */
static const char *const not_formats[] = {"DKM_KEYOBJ_MAGIC", "DKM_SKEY_MAGIC"};

static void magic_bytes(const struct magic *m, uint8_t out[4])
{
    if (m->text != NULL) {
        memcpy(out, m->text, 4);
        return;
    }
    out[0] = (uint8_t)(m->value >> 24);
    out[1] = (uint8_t)(m->value >> 16);
    out[2] = (uint8_t)(m->value >> 8);
    out[3] = (uint8_t)m->value;
}

static void test_formats_magics_are_distinct(void)
{
    for (size_t i = 0; i < NMAGICS; i++) {
        uint8_t a[4];

        /* A text magic is exactly 4 characters: no more are compared. */
        if (magics[i].text != NULL)
            CU_ASSERT_EQUAL(strlen(magics[i].text), 4);
        magic_bytes(&magics[i], a);
        for (size_t k = 0; k < 4; k++)
            CU_ASSERT(a[k] >= 'A' && a[k] <= 'Z');
        for (size_t j = i + 1; j < NMAGICS; j++) {
            uint8_t b[4];

            magic_bytes(&magics[j], b);
            if (memcmp(a, b, 4) == 0)
                fprintf(stderr, "%s and %s share the magic \"%.4s\"\n", magics[i].format,
                        magics[j].format, (const char *)a);
            CU_ASSERT(memcmp(a, b, 4) != 0);
        }
    }
}

static bool listed(const char *name)
{
    for (size_t i = 0; i < NMAGICS; i++)
        if (magics[i].name != NULL && strcmp(magics[i].name, name) == 0)
            return true;
    for (size_t i = 0; i < sizeof(not_formats) / sizeof(not_formats[0]); i++)
        if (strcmp(not_formats[i], name) == 0)
            return true;
    return false;
}

static unsigned defines_seen, defines_unlisted;

/* Each "#define X" whose name contains MAGIC must be in the table. */
static int scan_file(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    size_t n = strlen(path);
    char line[1024];
    FILE *f;

    (void)st;
    (void)ftw;
    if (type != FTW_F || n < 2 ||
        (strcmp(path + n - 2, ".c") != 0 && strcmp(path + n - 2, ".h") != 0))
        return 0;
    f = fopen(path, "r");
    if (f == NULL)
        return 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        char name[128];

        if (sscanf(line, " # define %127[A-Za-z0-9_]", name) != 1 ||
            strstr(name, "MAGIC") == NULL)
            continue;
        defines_seen++;
        if (!listed(name)) {
            fprintf(stderr, "%s: %s is not in test_formats.c's table\n", path, name);
            defines_unlisted++;
        }
    }
    fclose(f);
    return 0;
}

static void test_formats_every_magic_is_listed(void)
{
    static const char *const dirs[] = {"include", "common", "provider", "service",
                                       "tools"};
    const char *src = getenv("DKM_SOURCE_DIR");
    char path[4096];

    CU_ASSERT_PTR_NOT_NULL_FATAL(src);
    defines_seen = defines_unlisted = 0;
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", src, dirs[i]);
        CU_ASSERT_EQUAL(nftw(path, scan_file, 16, FTW_PHYS), 0);
    }
    /* Every named magic of the table, and the two tags, were seen. */
    CU_ASSERT(defines_seen >= NMAGICS - 1 + 2);
    CU_ASSERT_EQUAL(defines_unlisted, 0);
}

static void test_formats_documented(void)
{
    const char *src = getenv("DKM_SOURCE_DIR");
    char path[4096], *doc;
    size_t len;
    FILE *f;

    CU_ASSERT_PTR_NOT_NULL_FATAL(src);
    snprintf(path, sizeof(path), "%s/docs/formats.md", src);
    f = fopen(path, "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    doc = calloc(1, 1 << 20);
    CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
    len = fread(doc, 1, (1 << 20) - 1, f);
    fclose(f);
    CU_ASSERT(len > 0);
    for (size_t i = 0; i < NMAGICS; i++) {
        uint8_t b[4];
        char row[16];

        /* A row of the table of magics starts with the magic. */
        magic_bytes(&magics[i], b);
        snprintf(row, sizeof(row), "\n| `%.4s` |", (const char *)b);
        if (strstr(doc, row) == NULL)
            fprintf(stderr, "docs/formats.md has no row for %s (\"%.4s\")\n",
                    magics[i].format, (const char *)b);
        CU_ASSERT_PTR_NOT_NULL(strstr(doc, row));
    }
    free(doc);
}

static CU_TestInfo formats_tests[] = {
    {"test_formats_magics_are_distinct", test_formats_magics_are_distinct},
    {"test_formats_every_magic_is_listed", test_formats_every_magic_is_listed},
    {"test_formats_documented", test_formats_documented},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {"formats", NULL, NULL, NULL, NULL, formats_tests},
    CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv)
{
    return dkm_test_main(argc, argv, suites);
}
