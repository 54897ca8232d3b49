/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target "protect": a DKMP blob handed to `openssl pkeyutl -decrypt`,
 * through what the provider's decrypt does (asym.c): parse the header,
 * take the key of the group and version it names (here a fixed key per
 * group and version, fuzz.h), and unprotect. Input: one byte A, then A
 * bytes of caller AAD (the dkm-aad parameter; none when A is 0), then the
 * blob. A blob that opens must have the plaintext length its header
 * announced, and protecting that plaintext again with the same key,
 * nonce and AAD must give back exactly the blob.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "dkm/data/protect.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static EVP_CIPHER *gcm;
    struct dkm_protect_header hdr;
    const uint8_t *aad, *blob;
    uint8_t key[DKM_PROTECT_KEY_LEN], *out = NULL, *again = NULL;
    size_t aad_len, blob_len, out_len = 0, again_len = 0;

    if (size < 1 || (size_t)data[0] + 1 > size)
        return 0;
    aad_len = data[0];
    aad = aad_len > 0 ? data + 1 : NULL;
    blob = data + 1 + aad_len;
    blob_len = size - 1 - aad_len;
    /* The provider fetches AES-256-GCM once (dkm_prov_gcm). */
    if (gcm == NULL)
        gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
    FUZZ_CHECK(gcm != NULL);

    if (dkm_protect_parse_header(blob, blob_len, &hdr) < 0)
        return 0;
    FUZZ_CHECK(hdr.header_len + hdr.plaintext_len + DKM_PROTECT_TAG_LEN == blob_len);
    FUZZ_CHECK(dkm_group_valid(hdr.group, strlen(hdr.group)) && hdr.version >= 1);
    dkm_fuzz_group_key(hdr.group, hdr.version, key);
    out = malloc(hdr.plaintext_len + 1);
    FUZZ_CHECK(out != NULL);
    if (dkm_protect_open(NULL, gcm, key, &hdr, blob, blob_len, aad, aad_len, out,
                         hdr.plaintext_len, &out_len) == 0) {
        FUZZ_CHECK(out_len == hdr.plaintext_len);
        again = malloc(blob_len);
        FUZZ_CHECK(again != NULL);
        FUZZ_CHECK(dkm_protect_seal(NULL, gcm, key, hdr.group, hdr.version, aad, aad_len,
                                    hdr.nonce, out, out_len, again, blob_len,
                                    &again_len) == 0);
        FUZZ_CHECK(again_len == blob_len && memcmp(again, blob, blob_len) == 0);
        free(again);
        dkm_fuzz_accept();
    }
    free(out);
    return 0;
}
