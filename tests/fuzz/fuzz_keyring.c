/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target "keyring": the payload of a key in dkm's kernel keyring,
 * which any process of the uid can write, through the decoders the client
 * uses on what keyctl_read hands it (keyring.c): a key version's payload
 * (whose key id must match its key) and a group's current version. What
 * is accepted must encode back to exactly the bytes it came from.
 */
#include <stdlib.h>
#include <string.h>

#include "dkm/base/uri.h"
#include "dkm/client/keyring.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t again[DKM_KEYRING_PAYLOAD_MAX];
    char group[DKM_GROUP_MAX + 1];
    struct dkm_keyring_entry e;
    uint32_t version = 0;
    size_t len = 0;
    bool ok = false;

    if (dkm_keyring_payload_decode(NULL, NULL, data, size, &e) == 0) {
        FUZZ_CHECK(e.version != 0 && e.key_len >= 1 && e.key_len <= DKM_KEYRING_KEY_MAX);
        FUZZ_CHECK(
            dkm_keyring_payload_encode(NULL, NULL, &e, again, sizeof(again), &len) == 0);
        FUZZ_CHECK(len == size && memcmp(again, data, size) == 0);
        ok = true;
    }
    if (dkm_keyring_current_decode(data, size, group, &version) == 0) {
        FUZZ_CHECK(version != 0 && dkm_group_valid(group, strlen(group)));
        FUZZ_CHECK(
            dkm_keyring_current_encode(group, version, again, sizeof(again), &len) == 0);
        FUZZ_CHECK(len == size && memcmp(again, data, size) == 0);
        ok = true;
    }
    if (ok)
        dkm_fuzz_accept();
    return 0;
}
