/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tests of the node's disk cache: round trips, expiry (never returned at
 * or after it, removed when seen), every truncation refused, every
 * flipped byte refused or handed back as a different entry (which the
 * caller's checks then see: the response's signature and
 * dkm_sealed_matches_blob), entries of formats 1 and 2 refused, entries bound
 * to their group and version, "latest" for offline use of dkm:GROUP, and
 * the directory's ownership and mode checks. The sealed object is made
 * in software for a software EK: the cache never needs the TPM.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>

#include "diskcache.h"
#include "dkm/tpm/dup.h"
#include "dkm/base/file.h"
#include "fixtures.h"
#include "unit.h"

static struct dkm_sealed sealed;
static const uint8_t response[300] = {'D', 'K', 'F', 'R', 0, 1, 42};

static int suite_init(void)
{
    struct dkm_import_blob blob;
    TPM2B_PUBLIC ek;
    uint8_t secret[32] = {7};

    if (dkm_test_soft_ek(DKM_EK_ECCP256, &ek, NULL) < 0)
        return -1;
    if (dkm_dup_seal(&ek, secret, sizeof(secret), 0, NULL, &blob) < 0)
        return -1;
    /* What TPM2_Import would return: the public area and an opaque private. */
    sealed.ek_type = blob.ek_type;
    sealed.node_id = blob.node_id;
    sealed.public = blob.public;
    sealed.private.size = 120;
    memset(sealed.private.buffer, 0x5a, 120);
    /* It starts with the outer HMAC as a TPM2B, as TPM2_Import's does. */
    sealed.private.buffer[0] = 0;
    sealed.private.buffer[1] = 32;
    return 0;
}

static struct dkm_diskcache *open_cache(const char *name)
{
    struct dkm_diskcache *c = NULL;
    char dir[512];

    snprintf(dir, sizeof(dir), "%s/%s", dkm_test_tmpdir(), name);
    CU_ASSERT_EQUAL_FATAL(dkm_diskcache_open(dir, &c), 0);
    return c;
}

static void entry_file(const char *cache, const char *name, char *out, size_t size)
{
    snprintf(out, size, "%s/%s/%s", dkm_test_tmpdir(), cache, name);
}

static void test_diskcache_round_trip(void)
{
    struct dkm_diskcache *c = open_cache("rt");
    struct dkm_sealed got;
    uint8_t *resp = NULL;
    uint64_t expires = 0;
    size_t len = 0;
    struct stat st;
    char path[512];

    CU_ASSERT_EQUAL_FATAL(
        dkm_diskcache_put(c, "payments", 3, 2000, response, sizeof(response), &sealed),
        0);
    CU_ASSERT_EQUAL_FATAL(
        dkm_diskcache_get(c, "payments", 3, 1000, &resp, &len, &expires, &got), 0);
    CU_ASSERT_EQUAL(len, sizeof(response));
    CU_ASSERT_EQUAL(memcmp(resp, response, len), 0);
    CU_ASSERT_EQUAL(expires, 2000);
    CU_ASSERT_EQUAL(got.private.size, 120);
    CU_ASSERT_EQUAL(memcmp(got.private.buffer, sealed.private.buffer, 120), 0);
    CU_ASSERT_TRUE(dkm_node_id_equal(&got.node_id, &sealed.node_id));
    free(resp);
    /* Files are private to the user. */
    entry_file("rt", "payments.3.dkc", path, sizeof(path));
    CU_ASSERT_EQUAL_FATAL(stat(path, &st), 0);
    CU_ASSERT_EQUAL(st.st_mode & 0777, 0600);
    snprintf(path, sizeof(path), "%s/rt", dkm_test_tmpdir());
    CU_ASSERT_EQUAL_FATAL(stat(path, &st), 0);
    CU_ASSERT_EQUAL(st.st_mode & 0777, 0700);
    /* Missing entries. */
    CU_ASSERT_EQUAL(dkm_diskcache_get(c, "payments", 4, 1000, &resp, &len, NULL, &got),
                    -ENOENT);
    CU_ASSERT_EQUAL(dkm_diskcache_get(c, "other", 3, 1000, &resp, &len, NULL, &got),
                    -ENOENT);
    /* Invalid names never reach the file system. */
    CU_ASSERT_EQUAL(dkm_diskcache_get(c, "../x", 3, 1000, &resp, &len, NULL, &got),
                    -EINVAL);
    CU_ASSERT_EQUAL(dkm_diskcache_get(c, "payments", 0, 1000, &resp, &len, NULL, &got),
                    -EINVAL);
    CU_ASSERT_EQUAL(
        dkm_diskcache_put(c, "a/b", 1, 2000, response, sizeof(response), &sealed),
        -EINVAL);
    dkm_diskcache_free(c);
}

static void test_diskcache_expiry_is_final(void)
{
    struct dkm_diskcache *c = open_cache("exp");
    struct dkm_sealed got;
    uint8_t *resp = NULL;
    size_t len;
    char path[512];

    CU_ASSERT_EQUAL_FATAL(
        dkm_diskcache_put(c, "g", 1, 500, response, sizeof(response), &sealed), 0);
    CU_ASSERT_EQUAL(dkm_diskcache_get(c, "g", 1, 499, &resp, &len, NULL, &got), 0);
    free(resp);
    CU_ASSERT_EQUAL(dkm_diskcache_get(c, "g", 1, 500, &resp, &len, NULL, &got),
                    DKM_E_EXPIRED);
    entry_file("exp", "g.1.dkc", path, sizeof(path));
    CU_ASSERT_NOT_EQUAL(access(path, F_OK), 0);
    /* Gone for good: even an earlier clock finds nothing. */
    CU_ASSERT_EQUAL(dkm_diskcache_get(c, "g", 1, 10, &resp, &len, NULL, &got), -ENOENT);
    dkm_diskcache_free(c);
}

static void test_diskcache_every_flip_and_truncation(void)
{
    struct dkm_diskcache *c = open_cache("flip");
    struct dkm_sealed got;
    uint8_t *orig = NULL, *copy, *resp = NULL;
    uint64_t expires = 0;
    size_t len, olen;
    char path[512];

    CU_ASSERT_EQUAL_FATAL(
        dkm_diskcache_put(c, "g", 2, 9000, response, sizeof(response), &sealed), 0);
    entry_file("flip", "g.2.dkc", path, sizeof(path));
    CU_ASSERT_EQUAL_FATAL(dkm_file_read(path, 1 << 20, &orig, &olen), 0);
    copy = malloc(olen);
    for (size_t i = 0; i < olen; i++) {
        int r;

        memcpy(copy, orig, olen);
        copy[i] ^= 0x80;
        CU_ASSERT_EQUAL_FATAL(dkm_file_write(path, copy, olen, 0600, true), 0);
        r = dkm_diskcache_get(c, "g", 2, 1, &resp, &len, &expires, &got);
        if (r == 0) {
            /* What can change unseen here (the expiry, the response's
             * bytes, the sealed object) then differs from what was
             * stored, for the caller's checks to refuse. */
            CU_ASSERT(expires != 9000 || len != sizeof(response) ||
                      memcmp(resp, response, len) != 0 ||
                      memcmp(&got.private, &sealed.private, sizeof(got.private)) != 0 ||
                      memcmp(&got.public, &sealed.public, sizeof(got.public)) != 0 ||
                      !dkm_node_id_equal(&got.node_id, &sealed.node_id) ||
                      got.ek_type != sealed.ek_type || got.pcr_mask != sealed.pcr_mask);
            free(resp);
        } else {
            CU_ASSERT(r == DKM_E_FORMAT || r == DKM_E_INTEGRITY || r == -ENOENT);
        }
    }
    for (size_t cut = 0; cut < olen; cut++) {
        CU_ASSERT_EQUAL_FATAL(dkm_file_write(path, orig, cut, 0600, true), 0);
        CU_ASSERT_EQUAL(dkm_diskcache_get(c, "g", 2, 1, &resp, &len, NULL, &got),
                        DKM_E_FORMAT);
    }
    /* An entry of format 1 (it had an HMAC under a cache key): refused. */
    memcpy(copy, orig, olen);
    copy[5] = 1;
    CU_ASSERT_EQUAL_FATAL(dkm_file_write(path, copy, olen, 0600, true), 0);
    CU_ASSERT_EQUAL(dkm_diskcache_get(c, "g", 2, 1, &resp, &len, NULL, &got),
                    DKM_E_FORMAT);
    /* Back to the original: accepted again. */
    CU_ASSERT_EQUAL_FATAL(dkm_file_write(path, orig, olen, 0600, true), 0);
    CU_ASSERT_EQUAL(dkm_diskcache_get(c, "g", 2, 1, &resp, &len, NULL, &got), 0);
    free(resp);
    free(copy);
    free(orig);
    dkm_diskcache_free(c);
}

/*
 * Format 3 gave the sealed object its own magic ("DKSO"; it was "DKMS",
 * the stream header's). An entry of format 2 is refused as malformed, to
 * be replaced by the next fetch, and so is the old magic inside a format 3
 * entry.
 */
static void test_diskcache_format_2_refused(void)
{
    struct dkm_diskcache *c = open_cache("fmt2");
    struct dkm_sealed got;
    uint8_t *orig = NULL, *copy, *resp = NULL;
    size_t len, olen, at;
    char path[512];

    CU_ASSERT_EQUAL_FATAL(
        dkm_diskcache_put(c, "g", 7, 9000, response, sizeof(response), &sealed), 0);
    entry_file("fmt2", "g.7.dkc", path, sizeof(path));
    CU_ASSERT_EQUAL_FATAL(dkm_file_read(path, 1 << 20, &orig, &olen), 0);
    CU_ASSERT_FATAL(olen > 6);
    CU_ASSERT(memcmp(orig, DKM_DISKCACHE_ENTRY_MAGIC "\0\3", 6) == 0);
    /* The sealed object is the entry's last field. */
    for (at = olen - 4; at > 0 && memcmp(orig + at, "DKSO", 4) != 0; at--)
        ;
    CU_ASSERT_FATAL(at > 0);
    copy = malloc(olen);
    CU_ASSERT_PTR_NOT_NULL_FATAL(copy);

    /* Format 2, exactly as it was written. */
    memcpy(copy, orig, olen);
    copy[5] = 2;
    memcpy(copy + at, "DKMS", 4);
    CU_ASSERT_EQUAL_FATAL(dkm_file_write(path, copy, olen, 0600, true), 0);
    CU_ASSERT_EQUAL(dkm_diskcache_get(c, "g", 7, 1, &resp, &len, NULL, &got),
                    DKM_E_FORMAT);
    /* Format 3 with the old magic inside. */
    copy[5] = 3;
    CU_ASSERT_EQUAL_FATAL(dkm_file_write(path, copy, olen, 0600, true), 0);
    CU_ASSERT_EQUAL(dkm_diskcache_get(c, "g", 7, 1, &resp, &len, NULL, &got),
                    DKM_E_FORMAT);
    /* Format 2 with the new magic (never written): refused by its version. */
    memcpy(copy, orig, olen);
    copy[5] = 2;
    CU_ASSERT_EQUAL_FATAL(dkm_file_write(path, copy, olen, 0600, true), 0);
    CU_ASSERT_EQUAL(dkm_diskcache_get(c, "g", 7, 1, &resp, &len, NULL, &got),
                    DKM_E_FORMAT);
    /* What a fetch writes again is accepted. */
    CU_ASSERT_EQUAL_FATAL(
        dkm_diskcache_put(c, "g", 7, 9000, response, sizeof(response), &sealed), 0);
    CU_ASSERT_EQUAL(dkm_diskcache_get(c, "g", 7, 1, &resp, &len, NULL, &got), 0);
    free(resp);
    free(copy);
    free(orig);
    dkm_diskcache_free(c);
}

static void test_diskcache_bound_to_name(void)
{
    struct dkm_diskcache *c = open_cache("bind");
    struct dkm_sealed got;
    uint8_t *resp = NULL;
    char from[512], to[512];
    size_t len;

    CU_ASSERT_EQUAL_FATAL(
        dkm_diskcache_put(c, "g", 5, 9000, response, sizeof(response), &sealed), 0);
    /* An entry renamed to another version's file is refused. */
    entry_file("bind", "g.5.dkc", from, sizeof(from));
    entry_file("bind", "g.6.dkc", to, sizeof(to));
    CU_ASSERT_EQUAL_FATAL(rename(from, to), 0);
    CU_ASSERT_EQUAL(dkm_diskcache_get(c, "g", 6, 1, &resp, &len, NULL, &got),
                    DKM_E_INTEGRITY);
    entry_file("bind", "h.6.dkc", from, sizeof(from));
    CU_ASSERT_EQUAL_FATAL(rename(to, from), 0);
    CU_ASSERT_EQUAL(dkm_diskcache_get(c, "h", 6, 1, &resp, &len, NULL, &got),
                    DKM_E_INTEGRITY);
    dkm_diskcache_free(c);
}

static void test_diskcache_latest_and_prune(void)
{
    struct dkm_diskcache *c = open_cache("latest");
    uint32_t v = 0;
    char path[512];
    FILE *f;

    CU_ASSERT_EQUAL(dkm_diskcache_latest(c, "a", 100, &v), -ENOENT);
    CU_ASSERT_EQUAL(
        dkm_diskcache_put(c, "a", 1, 1000, response, sizeof(response), &sealed), 0);
    CU_ASSERT_EQUAL(
        dkm_diskcache_put(c, "a", 2, 1000, response, sizeof(response), &sealed), 0);
    CU_ASSERT_EQUAL(
        dkm_diskcache_put(c, "a", 10, 150, response, sizeof(response), &sealed), 0);
    /* Look-alike names of other groups do not count for "a". */
    CU_ASSERT_EQUAL(
        dkm_diskcache_put(c, "a.5", 99, 1000, response, sizeof(response), &sealed), 0);
    CU_ASSERT_EQUAL(
        dkm_diskcache_put(c, "a.b", 50, 1000, response, sizeof(response), &sealed), 0);
    CU_ASSERT_EQUAL(
        dkm_diskcache_put(c, "ab", 70, 1000, response, sizeof(response), &sealed), 0);
    /* Junk files are ignored. */
    entry_file("latest", "a.007.dkc", path, sizeof(path));
    f = fopen(path, "w");
    fclose(f);
    entry_file("latest", "a.3.dkc", path, sizeof(path));
    f = fopen(path, "w");
    fputs("garbage", f);
    fclose(f);
    CU_ASSERT_EQUAL(dkm_diskcache_latest(c, "a", 100, &v), 0);
    CU_ASSERT_EQUAL(v, 10);
    /* Once 10 expires, 2 is the newest usable version. */
    CU_ASSERT_EQUAL(dkm_diskcache_latest(c, "a", 150, &v), 0);
    CU_ASSERT_EQUAL(v, 2);
    CU_ASSERT_EQUAL(dkm_diskcache_latest(c, "a.5", 150, &v), 0);
    CU_ASSERT_EQUAL(v, 99);
    /* Prune removes what expired, keeps the rest. */
    CU_ASSERT_EQUAL(
        dkm_diskcache_put(c, "b", 1, 300, response, sizeof(response), &sealed), 0);
    CU_ASSERT_EQUAL(dkm_diskcache_prune(c, 5000), 6);
    CU_ASSERT_EQUAL(dkm_diskcache_latest(c, "a", 100, &v), -ENOENT);
    dkm_diskcache_free(c);
}

static void test_diskcache_directory_checks(void)
{
    struct dkm_diskcache *c = NULL;
    char dir[512], link_path[512], file[512];

    snprintf(dir, sizeof(dir), "%s/open", dkm_test_tmpdir());
    CU_ASSERT_EQUAL(mkdir(dir, 0777), 0);
    CU_ASSERT_EQUAL(chmod(dir, 0777), 0);
    CU_ASSERT_EQUAL(dkm_diskcache_open(dir, &c), -EPERM);
    CU_ASSERT_PTR_NOT_NULL(strstr(dkm_error_detail(), "0700"));
    CU_ASSERT_EQUAL(chmod(dir, 0750), 0);
    CU_ASSERT_EQUAL(dkm_diskcache_open(dir, &c), 0);
    dkm_diskcache_free(c);
    /* A symbolic link is not accepted as the directory. */
    snprintf(link_path, sizeof(link_path), "%s/link", dkm_test_tmpdir());
    CU_ASSERT_EQUAL(symlink(dir, link_path), 0);
    CU_ASSERT_EQUAL(dkm_diskcache_open(link_path, &c), -ENOTDIR);
    /* Nor a file, nor nothing. */
    snprintf(file, sizeof(file), "%s/file", dkm_test_tmpdir());
    CU_ASSERT_EQUAL(dkm_file_write(file, "x", 1, 0600, false), 0);
    CU_ASSERT_EQUAL(dkm_diskcache_open(file, &c), -ENOTDIR);
    CU_ASSERT_EQUAL(dkm_diskcache_open("", &c), -EINVAL);
    CU_ASSERT_EQUAL(dkm_diskcache_open(NULL, &c), -EINVAL);
    dkm_diskcache_free(NULL);
}

static void test_diskcache_parse_name(void)
{
    static const char *const bad[] = {
        "",
        ".dkc",
        "g.dkc",
        "g..dkc",
        ".1.dkc",
        "g.0.dkc",
        "g.01.dkc",
        "g.1x.dkc",
        "g.-1.dkc",
        "g.1.dkc.tmp",
        "g.1.DKC",
        "g 1.1.dkc",
        "g/h.1.dkc",
        "g.4294967296.dkc",
        "cache.key",
        "trust.lists",
        "g.1.dkc.tmp.AbC123",
    };
    char group[DKM_GROUP_MAX + 1], long_name[DKM_GROUP_MAX + 16];
    uint32_t v = 0;

    CU_ASSERT_EQUAL(dkm_diskcache_parse_name("payments.3.dkc", group, &v), 0);
    CU_ASSERT_STRING_EQUAL(group, "payments");
    CU_ASSERT_EQUAL(v, 3);
    CU_ASSERT_EQUAL(dkm_diskcache_parse_name("a.b.5.4294967295.dkc", group, &v), 0);
    CU_ASSERT_STRING_EQUAL(group, "a.b.5");
    CU_ASSERT_EQUAL(v, 4294967295u);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (dkm_diskcache_parse_name(bad[i], group, &v) != -EINVAL)
            fprintf(stderr, "accepted: \"%s\"\n", bad[i]);
        CU_ASSERT_EQUAL(dkm_diskcache_parse_name(bad[i], group, &v), -EINVAL);
    }
    /* A group of 64 characters is the longest. */
    memset(long_name, 'g', DKM_GROUP_MAX);
    strcpy(long_name + DKM_GROUP_MAX, ".1.dkc");
    CU_ASSERT_EQUAL(dkm_diskcache_parse_name(long_name, group, &v), 0);
    memset(long_name, 'g', DKM_GROUP_MAX + 1);
    strcpy(long_name + DKM_GROUP_MAX + 1, ".1.dkc");
    CU_ASSERT_EQUAL(dkm_diskcache_parse_name(long_name, group, &v), -EINVAL);
}

static CU_TestInfo diskcache_tests[] = {
    {"test_diskcache_parse_name", test_diskcache_parse_name},
    {"test_diskcache_round_trip", test_diskcache_round_trip},
    {"test_diskcache_expiry_is_final", test_diskcache_expiry_is_final},
    {"test_diskcache_every_flip_and_truncation",
     test_diskcache_every_flip_and_truncation},
    {"test_diskcache_format_2_refused", test_diskcache_format_2_refused},
    {"test_diskcache_bound_to_name", test_diskcache_bound_to_name},
    {"test_diskcache_latest_and_prune", test_diskcache_latest_and_prune},
    {"test_diskcache_directory_checks", test_diskcache_directory_checks},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {"diskcache", suite_init, NULL, NULL, NULL, diskcache_tests},
    CU_SUITE_INFO_NULL,
};

int main(int argc, char **argv)
{
    return dkm_test_main(argc, argv, suites);
}
