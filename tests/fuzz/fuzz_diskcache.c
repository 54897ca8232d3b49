/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target "diskcache": an entry file of the node's disk cache, read
 * as the client reads it when the key service is unreachable
 * (client.c): dkm_diskcache_get of the fixed group and version from a
 * cache opened with the fixed cache key, then the response it holds
 * verified against the fixed trust and checked for the fixed node, and
 * the entry's version and expiry compared with the response's.
 *
 * Each input is read twice: as the file is, and with its last 32 bytes
 * replaced by the right HMAC (the target knows the cache key), so that
 * the parser behind the HMAC is fuzzed too. Only the first counts for
 * the verdict: a file an attacker can write is one without the key.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "diskcache.h"
#include "dkm/trust/records.h"
#include "fuzz.h"

#define MAC_SIZE 32
/* docs/formats.md, "Disk cache entry": the HMAC's input starts with it. */
#define MAC_CONTEXT "dkm cache entry v1"

static struct dkm_diskcache *cache;
static char entry_path[4096];

static void open_cache(void)
{
    char dir[2048];

    if (cache != NULL)
        return;
    snprintf(dir, sizeof(dir), "%s/cache", dkm_fuzz_tmpdir());
    FUZZ_CHECK(dkm_diskcache_open(dir, dkm_fuzz_keys()->cache_key, NULL, &cache) == 0);
    snprintf(entry_path, sizeof(entry_path), "%s/%s.%u.dkc", dir, DKM_FUZZ_GROUP,
             DKM_FUZZ_VERSION);
}

static void mac(const uint8_t *data, size_t len, uint8_t out[MAC_SIZE])
{
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_END,
    };
    EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = m != NULL ? EVP_MAC_CTX_new(m) : NULL;
    size_t n = 0;

    FUZZ_CHECK(
        ctx != NULL && EVP_MAC_init(ctx, dkm_fuzz_keys()->cache_key, 32, params) == 1 &&
        EVP_MAC_update(ctx, (const uint8_t *)MAC_CONTEXT, sizeof(MAC_CONTEXT)) == 1 &&
        EVP_MAC_update(ctx, data, len) == 1 &&
        EVP_MAC_final(ctx, out, &n, MAC_SIZE) == 1 && n == MAC_SIZE);
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(m);
}

/* Write the entry file and read it back as the client does. */
static bool read_entry(const uint8_t *data, size_t size)
{
    const struct dkm_fuzz_keys *k = dkm_fuzz_keys();
    struct dkm_fetch_response resp;
    struct dkm_group_policy policy;
    struct dkm_sealed sealed;
    uint8_t *rec = NULL;
    size_t rec_len = 0;
    uint64_t expires = 0;
    bool ok = false;

    FUZZ_CHECK(dkm_fuzz_write_file(entry_path, data, size) == 0);
    if (dkm_diskcache_get(cache, DKM_FUZZ_GROUP, DKM_FUZZ_VERSION, DKM_FUZZ_NOW, &rec,
                          &rec_len, &expires, &sealed) < 0)
        return false;
    FUZZ_CHECK(expires > DKM_FUZZ_NOW);
    FUZZ_CHECK(rec_len > 0 && rec_len <= DKM_RECORD_MAX);
    if (dkm_fetch_response_verify(&k->trust, rec, rec_len, &resp, &policy) == 0 &&
        dkm_fetch_response_check(&resp, &k->node_id, DKM_FUZZ_GROUP, DKM_FUZZ_VERSION,
                                 NULL, 0, DKM_FUZZ_NOW, 300) == 0 &&
        resp.version == DKM_FUZZ_VERSION && resp.expires_at == expires)
        ok = true;
    free(rec);
    return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *remac;

    open_cache();
    if (read_entry(data, size))
        dkm_fuzz_accept();
    if (size >= MAC_SIZE) {
        remac = malloc(size);
        FUZZ_CHECK(remac != NULL);
        memcpy(remac, data, size - MAC_SIZE);
        mac(remac, size - MAC_SIZE, remac + size - MAC_SIZE);
        (void)read_entry(remac, size);
        free(remac);
    }
    return 0;
}
