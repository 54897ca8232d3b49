/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target "tpmobject": the file that holds a TPM object's blobs,
 * dkmd's signing key file (in its state directory), through
 * dkm_tpm_object_decode, which dkm_tpm_object_read calls on the file's
 * bytes, with the file's magic.
 * The decoder is strict, so an object it accepts must encode back to
 * exactly the bytes it came from.
 */
#include <stdlib.h>
#include <string.h>

#include "dkm/tpm/tpm.h"
#include "dkm/trust/sign.h"
#include "fuzz.h"

static bool decode(uint32_t magic, const char *what, const uint8_t *data, size_t size)
{
    struct dkm_tpm_object obj;
    uint8_t *again = NULL;
    size_t again_len = 0;

    if (dkm_tpm_object_decode(magic, what, data, size, &obj) < 0)
        return false;
    FUZZ_CHECK(dkm_tpm_object_encode(magic, &obj, &again, &again_len) == 0);
    FUZZ_CHECK(again_len == size && memcmp(again, data, size) == 0);
    free(again);
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bool ok = false;

    ok |= decode(DKM_SIGNKEY_MAGIC, "signing key file", data, size);
    if (ok)
        dkm_fuzz_accept();
    return 0;
}
