/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The text armor of dkm's card files (node cards, server cards): a BEGIN
 * line naming what the file holds, the bytes in base64url lines of 64
 * characters, an END line. Strict on reading: one armor per file, no
 * padding, no other characters (docs/formats.md).
 */
#ifndef DKM_ARMOR_H
#define DKM_ARMOR_H

#include <stddef.h>
#include <stdint.h>

#include "dkm/base/error.h"

/*
 * Armor bytes as "-----BEGIN LABEL-----\n", base64url lines of 64
 * characters, "-----END LABEL-----\n". label is 1..32 characters of
 * [A-Z ]. *ret is NUL-terminated and malloc'd. len must be 1..max_len.
 */
DKM_MUSTCHECK int dkm_armor_encode(const char *label, const uint8_t *buf, size_t len,
                                   size_t max_len, char **ret);

/*
 * Remove an armor with this label: the BEGIN line, base64url lines of 1..64
 * characters, the END line, each line ended by "\n" or "\r\n"; whitespace
 * before BEGIN and after END is ignored. Text over max_text bytes, other
 * characters, padding, an empty body or text after END are DKM_E_FORMAT.
 * *ret is malloc'd.
 */
DKM_MUSTCHECK int dkm_armor_decode(const char *label, const char *text, size_t len,
                                   size_t max_text, uint8_t **ret, size_t *ret_len);

#endif
