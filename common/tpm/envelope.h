/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fields shared by the two formats that carry a sealed-data object for a
 * node's EK: the import blob ("DKMI", dup.c) and the cached imported
 * object ("DKSO", unseal.c). Both start with
 *     magic (4) || version (u8) || EK type (u8) || node id (len16) ||
 *     object public (len16, canonical TPMT_PUBLIC)
 * and end with a TPML_PCR_SELECTION of zero or one SHA-256 bank. Private
 * to common/; docs/import-blob.md describes the bytes.
 */
#ifndef DKM_COMMON_ENVELOPE_H
#define DKM_COMMON_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <tss2/tss2_tpm2_types.h>

#include "dkm/base/codec.h"
#include "dkm/tpm/node.h"
#include "dkm/tpm/tpm.h"

/* PCR selections carry 3 octets of bitmap (PCRs 0..23), the PC Client
 * minimum: the node's PolicyPCR must marshal the same selection that was
 * hashed into the policy by the server. */
#define DKM_ENV_PCR_SELECT_SIZE 3u
/* A marshaled TPML_PCR_SELECTION with one bank. */
#define DKM_ENV_PCR_SELECTION_SIZE 10u

/*
 * Read the common prefix. what ("import blob", "sealed key") starts every
 * detail. DKM_E_FORMAT with a detail naming the field on any error.
 */
int dkm_env_get_prefix(struct dkm_cursor *c, const char *magic, uint8_t version,
                       const char *what, enum dkm_ek_type *ret_type,
                       struct dkm_node_id *ret_id, TPM2B_PUBLIC *ret_public);

/* Write the common prefix; false when the public area does not marshal
 * or the writer overflows (the writer is then marked overflowed). */
bool dkm_env_put_prefix(struct dkm_writer *w, const char *magic, uint8_t version,
                        enum dkm_ek_type type, const struct dkm_node_id *id,
                        const TPM2B_PUBLIC *pub);

/* Read the trailing PCR selection: mask 0 when no bank is selected. */
int dkm_env_get_pcr_selection(struct dkm_cursor *c, const char *what, uint32_t *ret_mask);

/* Write it (mask 0: no bank). */
bool dkm_env_put_pcr_selection(struct dkm_writer *w, uint32_t mask);

/* TPML_PCR_SELECTION of one SHA-256 bank, as the TPM marshals it; returns
 * DKM_ENV_PCR_SELECTION_SIZE. */
size_t dkm_env_pcr_selection_marshal(uint32_t mask,
                                     uint8_t out[DKM_ENV_PCR_SELECTION_SIZE]);

#endif
