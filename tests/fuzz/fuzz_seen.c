/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target "seen": dkmd's seen file (state_dir/seen, service/keys/
 * seen.h), through ks_seen_decode, which ks_seen_load runs on the file's
 * bytes at every start. The file is the server's memory against
 * rollbacks, so what it accepts must be exactly what ks_seen_encode
 * writes (same bytes back), sorted without repeats (each entry found by
 * ks_seen_get with its serial), and merging its own entries again must
 * change nothing, while a higher serial for one of them must.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "seen.h"

/* What the load path's merge must do with the file's own entries. */
static void check_merge(struct ks_seen *s)
{
    struct ks_seen_entry *obs = malloc((s->n + 1) * sizeof(*obs));
    size_t n = s->n;
    bool changed = true;

    FUZZ_CHECK(obs != NULL);
    memcpy(obs, s->v, n * sizeof(*obs));
    FUZZ_CHECK(ks_seen_merge(s, obs, n, &changed) == 0);
    FUZZ_CHECK(!changed && s->n == n);
    if (n > 0 && s->v[n - 1].serial < UINT64_MAX) {
        obs[0] = s->v[n - 1];
        obs[0].serial++;
        FUZZ_CHECK(ks_seen_merge(s, obs, 1, &changed) == 0);
        FUZZ_CHECK(changed && s->n == n &&
                   ks_seen_get(s, obs[0].kind, obs[0].key) == obs[0].serial);
    }
    free(obs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ks_seen s;
    uint8_t *again = NULL;
    size_t len = 0;

    if (ks_seen_decode(data, size, &s) < 0)
        return 0;
    FUZZ_CHECK(s.n <= KS_SEEN_MAX_ENTRIES);
    FUZZ_CHECK(ks_seen_encode(&s, &again, &len) == 0);
    FUZZ_CHECK(len == size && memcmp(again, data, size) == 0);
    free(again);
    for (size_t i = 0; i < s.n; i++) {
        FUZZ_CHECK(s.v[i].kind >= KS_SEEN_NODE && s.v[i].kind <= KS_SEEN_GRANT);
        FUZZ_CHECK(s.v[i].serial >= 1);
        FUZZ_CHECK(ks_seen_get(&s, s.v[i].kind, s.v[i].key) == s.v[i].serial);
    }
    check_merge(&s);
    ks_seen_clear(&s);
    dkm_fuzz_accept();
    return 0;
}
