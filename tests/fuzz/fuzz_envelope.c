/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target "envelope": the two formats that carry a sealed-data object
 * for a node's EK (docs/import-blob.md): the import blob of a fetch
 * answer and a sealed copy (dkm_dup_decode, client.c and state.c), and the
 * imported object a node keeps in its disk cache (dkm_sealed_decode,
 * diskcache.c). Both decoders are strict, so whatever they accept must
 * encode back to exactly the same bytes.
 */
#include <string.h>

#include "dkm/tpm/dup.h"
#include "dkm/tpm/unseal.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dkm_import_blob blob;
    struct dkm_sealed sealed;
    uint8_t again[DKM_DUP_ENCODED_MAX > DKM_SEALED_ENCODED_MAX ? DKM_DUP_ENCODED_MAX
                                                               : DKM_SEALED_ENCODED_MAX];
    size_t again_len = 0;
    bool ok = false;

    if (dkm_dup_decode(data, size, &blob) == 0) {
        FUZZ_CHECK(dkm_dup_check_public(&blob.public.publicArea, blob.pcr_mask) == 0);
        FUZZ_CHECK((blob.pcr_mask & ~DKM_DUP_PCR_MASK_ALL) == 0);
        FUZZ_CHECK(dkm_dup_encode(&blob, again, sizeof(again), &again_len) == 0);
        FUZZ_CHECK(again_len == size && memcmp(again, data, size) == 0);
        ok = true;
    }
    if (dkm_sealed_decode(data, size, &sealed) == 0) {
        FUZZ_CHECK(dkm_dup_check_public(&sealed.public.publicArea, sealed.pcr_mask) == 0);
        FUZZ_CHECK(dkm_sealed_encode(&sealed, again, sizeof(again), &again_len) == 0);
        FUZZ_CHECK(again_len == size && memcmp(again, data, size) == 0);
        ok = true;
    }
    if (ok)
        dkm_fuzz_accept();
    return 0;
}
