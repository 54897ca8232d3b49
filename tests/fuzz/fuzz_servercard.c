/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target "servercard": a server card as `dkmctl server add` hands it
 * to dkmd (armored text, dkm_servercard_from_text, in servers.c) and in
 * its binary form (dkm_servercard_decode, which the text form ends in).
 * A card that decodes carries a P-256 EK whose name is its node id, a
 * valid hostname and a signature by its own signing key.
 */
#include <string.h>

#include "dkm/trust/servercard.h"
#include "fuzz.h"

static void check_card(const struct dkm_servercard *card)
{
    struct dkm_node_id id;

    FUZZ_CHECK(dkm_hostname_check(card->hostname) == 0);
    FUZZ_CHECK(card->created >= 1 && card->created <= DKM_NODECARD_CREATED_MAX);
    FUZZ_CHECK(dkm_node_id_from_public(&card->ek, &id) == 0);
    FUZZ_CHECK(dkm_node_id_equal(&id, &card->id));
    FUZZ_CHECK(dkm_p256_public_check(&card->sk) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dkm_servercard card;
    bool ok = false;

    if (dkm_servercard_decode(data, size, &card) == 0) {
        check_card(&card);
        /* The signature covers every byte before it. */
        FUZZ_CHECK(size > DKM_SIG_SIZE &&
                   memcmp(card.sig, data + size - DKM_SIG_SIZE, DKM_SIG_SIZE) == 0);
        ok = true;
    }
    if (dkm_servercard_from_text((const char *)data, size, &card) == 0) {
        check_card(&card);
        ok = true;
    }
    if (ok)
        dkm_fuzz_accept();
    return 0;
}
