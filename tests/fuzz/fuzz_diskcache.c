/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target "diskcache": an entry file of the node's disk cache, read
 * as the client reads it (client.c, disk_entry_locked): dkm_diskcache_get
 * of the fixed group and version, then the response it holds verified
 * against the fixed trust and checked for the fixed node, the entry's
 * version and expiry compared with the response's, and the sealed object
 * matched to the object of the response's import blob. An entry needs no
 * key of the node's own (format 3), so every byte is the attacker's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diskcache.h"
#include "dkm/tpm/dup.h"
#include "dkm/tpm/unseal.h"
#include "dkm/trust/records.h"
#include "fuzz.h"

static struct dkm_diskcache *cache;
static char entry_path[4096];

static void open_cache(void)
{
    char dir[2048];

    if (cache != NULL)
        return;
    snprintf(dir, sizeof(dir), "%s/cache", dkm_fuzz_tmpdir());
    FUZZ_CHECK(dkm_diskcache_open(dir, &cache) == 0);
    snprintf(entry_path, sizeof(entry_path), "%s/%s.%u.dkc", dir, DKM_FUZZ_GROUP,
             DKM_FUZZ_VERSION);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const struct dkm_fuzz_keys *k = dkm_fuzz_keys();
    struct dkm_fetch_response resp;
    struct dkm_group_policy policy;
    struct dkm_import_blob blob;
    struct dkm_sealed sealed;
    uint8_t *rec = NULL;
    size_t rec_len = 0;
    uint64_t expires = 0;

    open_cache();
    FUZZ_CHECK(dkm_fuzz_write_file(entry_path, data, size) == 0);
    if (dkm_diskcache_get(cache, DKM_FUZZ_GROUP, DKM_FUZZ_VERSION, DKM_FUZZ_NOW, &rec,
                          &rec_len, &expires, &sealed) < 0)
        return 0;
    FUZZ_CHECK(expires > DKM_FUZZ_NOW);
    FUZZ_CHECK(rec_len > 0 && rec_len <= DKM_RECORD_MAX);
    if (dkm_fetch_response_verify(&k->trust, rec, rec_len, &resp, &policy) == 0 &&
        dkm_fetch_response_check(&resp, &k->node_id, DKM_FUZZ_GROUP, DKM_FUZZ_VERSION,
                                 NULL, 0, DKM_FUZZ_NOW, 300) == 0 &&
        resp.version == DKM_FUZZ_VERSION && resp.expires_at == expires &&
        dkm_dup_decode(resp.blob, resp.blob_len, &blob) == 0 &&
        dkm_sealed_matches_blob(&sealed, &blob))
        dkm_fuzz_accept();
    free(rec);
    return 0;
}
