/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Readers of the fields node cards and server cards share
 * (common/trust/card.h), so both formats refuse the same bad input the
 * same way.
 */
#include "card.h"

#include <string.h>

#include <tss2/tss2_mu.h>

int dkm_card_get_header(struct dkm_cursor *c, uint32_t magic, uint16_t version,
                        const char *what)
{
    uint32_t m;
    uint16_t v;

    if (!dkm_get_u32be(c, &m) || m != magic)
        return dkm_error_set(DKM_E_FORMAT, "not a %s (bad magic)", what);
    if (!dkm_get_u16be(c, &v))
        return dkm_error_set(DKM_E_FORMAT, "%s: truncated before the version", what);
    if (v != version)
        return dkm_error_set(DKM_E_FORMAT, "%s: unknown version %u", what, (unsigned)v);
    return 0;
}

int dkm_card_get_ek(struct dkm_cursor *c, const char *what, TPM2B_PUBLIC *ret)
{
    const uint8_t *pub_ref;
    uint8_t again[sizeof(TPMT_PUBLIC)];
    size_t pub_len = 0, off = 0, again_len = 0;
    TPM2B_PUBLIC ek;

    if (!dkm_get_len16_ref(c, DKM_CARD_EK_MAX, &pub_ref, &pub_len) || pub_len == 0)
        return dkm_error_set(
            DKM_E_FORMAT,
            "%s: EK public area length is wrong (empty, over %u, or past "
            "the end)",
            what, DKM_CARD_EK_MAX);
    memset(&ek, 0, sizeof(ek));
    if (Tss2_MU_TPMT_PUBLIC_Unmarshal(pub_ref, pub_len, &off, &ek.publicArea) !=
            TSS2_RC_SUCCESS ||
        off != pub_len)
        return dkm_error_set(DKM_E_FORMAT, "%s: EK public area does not parse", what);
    if (Tss2_MU_TPMT_PUBLIC_Marshal(&ek.publicArea, again, sizeof(again), &again_len) !=
            TSS2_RC_SUCCESS ||
        again_len != pub_len || memcmp(again, pub_ref, pub_len) != 0)
        return dkm_error_set(DKM_E_FORMAT,
                             "%s: EK public area is not canonically encoded", what);
    ek.size = (UINT16)pub_len;
    *ret = ek;
    return 0;
}

int dkm_card_get_hostname(struct dkm_cursor *c, const char *what,
                          char ret[DKM_HOSTNAME_MAX + 1])
{
    const uint8_t *host_ref;
    uint8_t host_len;

    if (!dkm_get_u8(c, &host_len))
        return dkm_error_set(DKM_E_FORMAT, "%s: truncated before the hostname", what);
    if (host_len == 0 || host_len > DKM_HOSTNAME_MAX ||
        !dkm_get_ref(c, host_len, &host_ref))
        return dkm_error_set(DKM_E_FORMAT,
                             "%s: hostname length %u is zero, over %d, or past the end",
                             what, (unsigned)host_len, DKM_HOSTNAME_MAX);
    if (memchr(host_ref, '\0', host_len) != NULL)
        return dkm_error_set(DKM_E_FORMAT, "%s: hostname contains a NUL byte", what);
    memcpy(ret, host_ref, host_len);
    ret[host_len] = '\0';
    return 0;
}
