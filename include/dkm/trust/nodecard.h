/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Node cards: what a machine hands to an administrator so that its TPM
 * can be authorized. A card carries one EK public area (the node's
 * identity, see node.h), optionally that EK's certificate from the TPM's
 * NV, the machine's hostname and the card's creation time. It is not
 * signed: an EK cannot sign, and the card only proposes an identity that
 * an administrator then authorizes (with a signature of a server key).
 *
 * Binary format (docs/formats.md, "Node card"): magic "DKNC", version 1,
 * then the fields in order; every length is bounded. Files hold it in a
 * text armor:
 *     -----BEGIN DKM NODE CARD-----
 *     base64url lines of 64 characters
 *     -----END DKM NODE CARD-----
 */
#ifndef DKM_NODECARD_H
#define DKM_NODECARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <tss2/tss2_tpm2_types.h>

#include "dkm/base/error.h"
#include "dkm/tpm/node.h"
#include "dkm/tpm/tpm.h"

#define DKM_NODECARD_MAGIC 0x444b4e43u /* "DKNC" */
#define DKM_NODECARD_VERSION 1
/* Longest hostname (RFC 1035 limit for a name in text form). */
#define DKM_HOSTNAME_MAX 253
/* Largest encoded card and largest armored card file, in bytes. */
#define DKM_NODECARD_MAX 8192u
#define DKM_NODECARD_ARMOR_MAX 16384u

#define DKM_NODECARD_BEGIN "-----BEGIN DKM NODE CARD-----"
#define DKM_NODECARD_END "-----END DKM NODE CARD-----"

struct dkm_nodecard {
    TPM2B_PUBLIC ek_public;
    enum dkm_ek_type ek_type; /* derived from ek_public */
    struct dkm_node_id id;    /* derived from ek_public */
    uint8_t *ek_cert;         /* DER, malloc'd; NULL when absent */
    size_t ek_cert_len;
    char hostname[DKM_HOSTNAME_MAX + 1];
    uint64_t created; /* seconds since the Unix epoch, UTC */
};

/*
 * Check a hostname: 1..253 characters, dot-separated labels of 1..63
 * characters from [A-Za-z0-9_-], a label neither starting nor ending
 * with '-'. -EINVAL with a detail otherwise.
 */
DKM_MUSTCHECK int dkm_hostname_check(const char *name);

/*
 * Build a card from its fields, validating each as the decoder does (the
 * EK public area must be a TCG default EK, the certificate, if any, one
 * DER X.509 certificate). cert may be NULL (cert_len then 0); it is
 * copied. created must be 1..DKM_NODECARD_CREATED_MAX. The caller frees
 * *ret with dkm_nodecard_free.
 */
DKM_MUSTCHECK int dkm_nodecard_new(const TPM2B_PUBLIC *ek, const uint8_t *cert,
                                   size_t cert_len, const char *hostname,
                                   uint64_t created, struct dkm_nodecard **ret);

/* Latest creation time accepted: 9999-12-31T23:59:59Z. */
#define DKM_NODECARD_CREATED_MAX 253402300799ull

/*
 * Build this machine's card from its TPM: the EK of the given type (see
 * dkm_node_default_ek_type), its certificate when the TPM holds one,
 * hostname (NULL: gethostname()) and created (0: now).
 */
DKM_MUSTCHECK int dkm_nodecard_from_tpm(struct dkm_tpm *tpm, enum dkm_ek_type type,
                                        const char *hostname, uint64_t created,
                                        struct dkm_nodecard **ret);

/* Free a card. NULL is accepted. */
void dkm_nodecard_free(struct dkm_nodecard *card);

/* Encode a card into a malloc'd buffer of at most DKM_NODECARD_MAX bytes. */
DKM_MUSTCHECK int dkm_nodecard_encode(const struct dkm_nodecard *card, uint8_t **ret,
                                      size_t *ret_len);

/*
 * Decode a card strictly: magic, version, each field's length against its
 * maximum and the bytes left, each field's content (see
 * dkm_nodecard_new), no trailing bytes. DKM_E_FORMAT with a detail naming
 * the field otherwise.
 */
DKM_MUSTCHECK int dkm_nodecard_decode(const uint8_t *buf, size_t len,
                                      struct dkm_nodecard **ret);

/* Armor an encoded card as text (NUL-terminated, malloc'd, ends in '\n'). */
DKM_MUSTCHECK int dkm_nodecard_armor(const uint8_t *buf, size_t len, char **ret);

/*
 * Remove the armor: the BEGIN line, base64url lines, the END line, each
 * line ended by "\n" or "\r\n"; whitespace before BEGIN and after END is
 * ignored, anything else is DKM_E_FORMAT. *ret is malloc'd.
 */
DKM_MUSTCHECK int dkm_nodecard_dearmor(const char *text, size_t len, uint8_t **ret,
                                       size_t *ret_len);

/*
 * Write a card to path in armor, mode 0644, atomically. Without
 * overwrite an existing file is -EEXIST.
 */
DKM_MUSTCHECK int dkm_nodecard_write_file(const struct dkm_nodecard *card,
                                          const char *path, bool overwrite);

/* Read and decode an armored card file. */
DKM_MUSTCHECK int dkm_nodecard_read_file(const char *path, struct dkm_nodecard **ret);

#endif
