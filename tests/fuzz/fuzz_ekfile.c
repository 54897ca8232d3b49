/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target "ekfile": the EK file of a node's cache directory
 * (cache_dir/ek.pub), through dkm_node_ek_file_decode, which the client
 * runs on the file's bytes before it tells the TPM context which EK it
 * has. What is accepted must be a TCG default EK of the type it names and
 * encode back to exactly the bytes it came from.
 */
#include <string.h>

#include "dkm/tpm/node.h"
#include "dkm/tpm/tpm.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t again[DKM_NODE_EK_FILE_MAX];
    enum dkm_ek_type type, found;
    TPM2B_PUBLIC pub;
    size_t len = 0;

    if (dkm_node_ek_file_decode(data, size, &type, &pub) < 0)
        return 0;
    FUZZ_CHECK(dkm_tpm_ek_public_check(&pub, &found) == 0 && found == type);
    FUZZ_CHECK(dkm_node_ek_file_encode(type, &pub, again, sizeof(again), &len) == 0);
    FUZZ_CHECK(len == size && memcmp(again, data, size) == 0);
    dkm_fuzz_accept();
    return 0;
}
