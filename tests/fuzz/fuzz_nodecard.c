/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target "nodecard": a node card as dkmd receives it in
 * POST /v1/nodes (binary, dkm_nodecard_decode) and as dkmctl reads a card
 * file (armored, dkm_nodecard_dearmor then dkm_nodecard_decode, as
 * dkm_nodecard_read_file does). A decoded card must name a usable EK and
 * a valid hostname, and encode back to exactly the bytes it came from:
 * the decoder is strict, so no two encodings mean the same card.
 */
#include <stdlib.h>
#include <string.h>

#include "dkm/trust/nodecard.h"
#include "fuzz.h"

/* Decode binary bytes; true when accepted. */
static bool decode(const uint8_t *buf, size_t len)
{
    struct dkm_nodecard *card = NULL;
    struct dkm_node_id id;
    uint8_t *again = NULL;
    size_t again_len = 0;

    if (dkm_nodecard_decode(buf, len, &card) < 0)
        return false;
    FUZZ_CHECK(dkm_hostname_check(card->hostname) == 0);
    FUZZ_CHECK(card->created >= 1 && card->created <= DKM_NODECARD_CREATED_MAX);
    FUZZ_CHECK(dkm_node_id_from_public(&card->ek_public, &id) == 0);
    FUZZ_CHECK(dkm_node_id_equal(&id, &card->id));
    FUZZ_CHECK((card->ek_cert == NULL) == (card->ek_cert_len == 0));
    FUZZ_CHECK(dkm_nodecard_encode(card, &again, &again_len) == 0);
    FUZZ_CHECK(again_len == len && memcmp(again, buf, len) == 0);
    free(again);
    dkm_nodecard_free(card);
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *bin = NULL;
    size_t bin_len = 0;
    bool ok;

    ok = decode(data, size);
    if (dkm_nodecard_dearmor((const char *)data, size, &bin, &bin_len) == 0) {
        FUZZ_CHECK(bin_len > 0);
        if (decode(bin, bin_len))
            ok = true;
        free(bin);
    }
    if (ok)
        dkm_fuzz_accept();
    return 0;
}
