/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target "trust": the chain of server lists a node keeps in its
 * cache directory, read by dkm_trust_load from dir/trust.lists with the
 * fixed pin (fuzz.h), as the client does at start. An input that starts
 * with '{' is instead the JSON answer of GET /v1/trust, through
 * dkm_trust_accept_answer (without keeping it), as the client reads the
 * network's copy of the same chain. An accepted chain ends in a list
 * signed by a server of the one before it, so it holds at least the
 * version pinned.
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "dkm/trust/trust.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char dir[4096], path[4096 + 16];
    const struct dkm_fuzz_keys *k = dkm_fuzz_keys();
    struct dkm_server_list list;
    int r;

    if (dir[0] == '\0') {
        snprintf(dir, sizeof(dir), "%s", dkm_fuzz_tmpdir());
        snprintf(path, sizeof(path), "%s/%s", dir, DKM_TRUST_FILE);
    }
    if (size > 0 && data[0] == '{') {
        json_t *answer =
            json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);

        r = answer != NULL ? dkm_trust_accept_answer(answer, k->trust_pin, 0, NULL, &list)
                           : -1;
        json_decref(answer);
    } else {
        FUZZ_CHECK(dkm_fuzz_write_file(path, data, size) == 0);
        r = dkm_trust_load(dir, k->trust_pin, &list);
    }
    if (r == 0) {
        FUZZ_CHECK(list.list_version >= k->trust.list_version);
        FUZZ_CHECK(list.count >= 1 && list.count <= DKM_SERVER_LIST_MAX);
        dkm_fuzz_accept();
    }
    return 0;
}
