/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fields that node cards (nodecard.h) and server cards (servercard.h)
 * share, read from a cursor with the same rules and the same messages,
 * each prefixed by what is being read ("node card", "server card").
 */
#ifndef DKM_CARD_H
#define DKM_CARD_H

#include <stdint.h>

#include <tss2/tss2_tpm2_types.h>

#include "dkm/base/codec.h"
#include "dkm/base/error.h"
#include "dkm/trust/nodecard.h"

/* Largest marshaled EK public area in a card. */
#define DKM_CARD_EK_MAX 512u

/* Magic and version; DKM_E_FORMAT naming what otherwise. */
DKM_MUSTCHECK int dkm_card_get_header(struct dkm_cursor *c, uint32_t magic,
                                      uint16_t version, const char *what);

/*
 * A 16-bit length and a TPMT_PUBLIC of 1..DKM_CARD_EK_MAX bytes that
 * parses and is canonically encoded (marshaling it again gives the same
 * bytes); *ret gets it with its size. DKM_E_FORMAT naming what otherwise.
 */
DKM_MUSTCHECK int dkm_card_get_ek(struct dkm_cursor *c, const char *what,
                                  TPM2B_PUBLIC *ret);

/*
 * An 8-bit length and 1..DKM_HOSTNAME_MAX bytes without NUL; ret gets
 * them NUL-terminated. (The name's syntax is checked by the caller, with
 * dkm_hostname_check.) DKM_E_FORMAT naming what otherwise.
 */
DKM_MUSTCHECK int dkm_card_get_hostname(struct dkm_cursor *c, const char *what,
                                        char ret[DKM_HOSTNAME_MAX + 1]);

#endif
