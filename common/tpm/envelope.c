/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Readers and writers of the fields the import blob and the cached
 * sealed object share (see envelope.h).
 */
#include "envelope.h"

#include <string.h>

#include <tss2/tss2_mu.h>

#include "dkm/base/error.h"

/* Wire values of the EK type: independent of the C enum's numbering. */
#define WIRE_EK_RSA2048 1u
#define WIRE_EK_ECCP256 2u

int dkm_env_get_prefix(struct dkm_cursor *c, const char *magic, uint8_t version,
                       const char *what, enum dkm_ek_type *ret_type,
                       struct dkm_node_id *ret_id, TPM2B_PUBLIC *ret_public)
{
    uint8_t remarshal[sizeof(TPMT_PUBLIC)];
    uint8_t m[4], v, wire_type;
    TPM2B_PUBLIC pub;
    const uint8_t *ref;
    size_t n, off = 0;

    if (!dkm_get_bytes(c, m, sizeof(m)) || memcmp(m, magic, 4) != 0)
        return dkm_error_set(DKM_E_FORMAT, "%s: bad magic (not a dkm %s)", what, what);
    if (!dkm_get_u8(c, &v))
        return dkm_error_set(DKM_E_FORMAT, "%s: truncated before the version", what);
    if (v != version)
        return dkm_error_set(DKM_E_FORMAT, "%s: format version %u, expected %u", what, v,
                             version);
    if (!dkm_get_u8(c, &wire_type))
        return dkm_error_set(DKM_E_FORMAT, "%s: truncated before the EK type", what);
    if (wire_type != WIRE_EK_RSA2048 && wire_type != WIRE_EK_ECCP256)
        return dkm_error_set(DKM_E_FORMAT, "%s: unknown EK type %u", what, wire_type);
    if (!dkm_get_len16_ref(c, DKM_NODE_ID_SIZE, &ref, &n) || n != DKM_NODE_ID_SIZE)
        return dkm_error_set(DKM_E_FORMAT, "%s: node id is not %u bytes or is truncated",
                             what, DKM_NODE_ID_SIZE);
    if (ref[0] != (TPM2_ALG_SHA256 >> 8) || ref[1] != (TPM2_ALG_SHA256 & 0xff))
        return dkm_error_set(DKM_E_FORMAT, "%s: node id is not a SHA-256 name", what);
    memcpy(ret_id->bytes, ref, DKM_NODE_ID_SIZE);

    if (!dkm_get_len16_ref(c, sizeof(TPMT_PUBLIC), &ref, &n) || n == 0)
        return dkm_error_set(DKM_E_FORMAT,
                             "%s: object public area length is zero, too large, or "
                             "beyond the end",
                             what);
    memset(&pub, 0, sizeof(pub));
    if (Tss2_MU_TPMT_PUBLIC_Unmarshal(ref, n, &off, &pub.publicArea) != TSS2_RC_SUCCESS ||
        off != n)
        return dkm_error_set(DKM_E_FORMAT,
                             "%s: object public area does not parse as a TPMT_PUBLIC of "
                             "exactly %zu bytes",
                             what, n);
    /* The TPM hashes its own marshaling into the name; refuse anything
     * that does not marshal back to the same bytes. */
    off = 0;
    if (Tss2_MU_TPMT_PUBLIC_Marshal(&pub.publicArea, remarshal, sizeof(remarshal),
                                    &off) != TSS2_RC_SUCCESS ||
        off != n || memcmp(remarshal, ref, n) != 0)
        return dkm_error_set(DKM_E_FORMAT,
                             "%s: object public area is not canonically marshaled", what);
    pub.size = (UINT16)n;
    *ret_type = wire_type == WIRE_EK_RSA2048 ? DKM_EK_RSA2048 : DKM_EK_ECCP256;
    *ret_public = pub;
    return 0;
}

bool dkm_env_put_prefix(struct dkm_writer *w, const char *magic, uint8_t version,
                        enum dkm_ek_type type, const struct dkm_node_id *id,
                        const TPM2B_PUBLIC *pub)
{
    uint8_t buf[sizeof(TPMT_PUBLIC)];
    size_t len = 0;

    if (Tss2_MU_TPMT_PUBLIC_Marshal(&pub->publicArea, buf, sizeof(buf), &len) !=
        TSS2_RC_SUCCESS) {
        w->overflow = true;
        return false;
    }
    return dkm_put_bytes(w, magic, 4) && dkm_put_u8(w, version) &&
           dkm_put_u8(w, type == DKM_EK_RSA2048 ? WIRE_EK_RSA2048 : WIRE_EK_ECCP256) &&
           dkm_put_len16(w, id->bytes, DKM_NODE_ID_SIZE) && dkm_put_len16(w, buf, len);
}

int dkm_env_get_pcr_selection(struct dkm_cursor *c, const char *what, uint32_t *ret_mask)
{
    uint8_t size_select, select[DKM_ENV_PCR_SELECT_SIZE];
    uint32_t count, mask;
    uint16_t hash;

    if (!dkm_get_u32be(c, &count))
        return dkm_error_set(DKM_E_FORMAT, "%s: truncated before the PCR selection",
                             what);
    if (count > 1)
        return dkm_error_set(DKM_E_FORMAT,
                             "%s: %u PCR banks selected, at most 1 (SHA-256)", what,
                             (unsigned)count);
    if (count == 0) {
        *ret_mask = 0;
        return 0;
    }
    if (!dkm_get_u16be(c, &hash) || !dkm_get_u8(c, &size_select) ||
        !dkm_get_bytes(c, select, sizeof(select)))
        return dkm_error_set(DKM_E_FORMAT, "%s: PCR selection truncated", what);
    if (hash != TPM2_ALG_SHA256)
        return dkm_error_set(DKM_E_FORMAT, "%s: PCR bank 0x%04x is not SHA-256", what,
                             (unsigned)hash);
    if (size_select != DKM_ENV_PCR_SELECT_SIZE)
        return dkm_error_set(DKM_E_FORMAT, "%s: PCR bitmap of %u bytes, expected %u",
                             what, size_select, DKM_ENV_PCR_SELECT_SIZE);
    mask = (uint32_t)select[0] | (uint32_t)select[1] << 8 | (uint32_t)select[2] << 16;
    if (mask == 0)
        return dkm_error_set(DKM_E_FORMAT, "%s: empty PCR selection", what);
    *ret_mask = mask;
    return 0;
}

size_t dkm_env_pcr_selection_marshal(uint32_t mask,
                                     uint8_t out[DKM_ENV_PCR_SELECTION_SIZE])
{
    struct dkm_writer w = dkm_writer_init(out, DKM_ENV_PCR_SELECTION_SIZE);

    (void)dkm_put_u32be(&w, 1);
    (void)dkm_put_u16be(&w, TPM2_ALG_SHA256);
    (void)dkm_put_u8(&w, DKM_ENV_PCR_SELECT_SIZE);
    for (unsigned i = 0; i < DKM_ENV_PCR_SELECT_SIZE; i++)
        (void)dkm_put_u8(&w, (uint8_t)(mask >> (8 * i)));
    return w.len;
}

bool dkm_env_put_pcr_selection(struct dkm_writer *w, uint32_t mask)
{
    uint8_t sel[DKM_ENV_PCR_SELECTION_SIZE];

    if (mask == 0)
        return dkm_put_u32be(w, 0);
    return dkm_put_bytes(w, sel, dkm_env_pcr_selection_marshal(mask, sel));
}
