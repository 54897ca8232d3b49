/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Server cards: what a joining dkmd (`dkmd init --join`) hands to an
 * administrator so that a server already on the authorized server list
 * can add it (`dkmctl server add`). A card carries the joining server's
 * ECC EK public area (its node id is the EK's name), the public key of its
 * new TPM signing key (SK), its hostname and the card's creation time, and
 * is signed by that SK: the signature proves that whoever wrote the card
 * holds the SK, and makes any altered byte fail the card as a whole. The
 * card proposes an identity only; the administrator compares the node id
 * with the one the joining server printed before adding it.
 *
 * Binary format (docs/formats.md, "Server card"): magic "DKSV", version 1,
 * the fields, the SK's signature; every length bounded. Files hold it in
 * the same text armor as node cards, with its own label:
 *     -----BEGIN DKM SERVER CARD-----
 *     base64url lines of 64 characters
 *     -----END DKM SERVER CARD-----
 * The armor helpers (dkm_armor_*) take the label, so any dkm text file
 * can use them.
 */
#ifndef DKM_SERVERCARD_H
#define DKM_SERVERCARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <tss2/tss2_tpm2_types.h>

#include "dkm/trust/armor.h"
#include "dkm/base/error.h"
#include "dkm/tpm/node.h"
#include "dkm/trust/nodecard.h"
#include "dkm/trust/records.h"
#include "dkm/trust/sign.h"

#define DKM_SERVERCARD_MAGIC 0x444b5356u /* "DKSV" */
#define DKM_SERVERCARD_VERSION 1
/* Largest encoded card and largest armored card text, in bytes. */
#define DKM_SERVERCARD_MAX 1024u
#define DKM_SERVERCARD_ARMOR_MAX 4096u
#define DKM_SERVERCARD_LABEL "DKM SERVER CARD"
#define DKM_SIGCTX_SERVER_CARD "dkm server card v1"
/* The file `dkmd init --join` writes in the state directory. */
#define DKM_SERVERCARD_FILE "server.card"

struct dkm_servercard {
    TPM2B_PUBLIC ek;           /* a TCG default ECC P-256 EK */
    struct dkm_node_id id;     /* derived from ek */
    struct dkm_p256_public sk; /* the server's signing key */
    char hostname[DKM_HOSTNAME_MAX + 1];
    uint64_t created; /* seconds since the Unix epoch, 1..DKM_NODECARD_CREATED_MAX */
    uint8_t sig[DKM_SIG_SIZE]; /* by sk, over every byte before it */
};

/*
 * Check the fields (ek, sk, hostname, created) of card as the decoder
 * does, set card->id, have signer sign the encoding and set card->sig.
 * signer->id must be the EK's name (the card's node id): a card is signed
 * by the server it describes. *ret (malloc'd, at most DKM_SERVERCARD_MAX
 * bytes) is the encoded card; free it with free(). DKM_E_FORMAT with a
 * detail naming the field for a bad field.
 */
DKM_MUSTCHECK int dkm_servercard_sign(struct dkm_servercard *card,
                                      const struct dkm_signer *signer, uint8_t **ret,
                                      size_t *ret_len);

/*
 * Decode a card strictly (magic, version, each length against its maximum
 * and the bytes left, each field, no trailing bytes) and verify its
 * signature with the SK it carries. DKM_E_FORMAT with a detail naming the
 * field, or DKM_E_SIGNATURE when the signature does not verify.
 */
DKM_MUSTCHECK int dkm_servercard_decode(const uint8_t *buf, size_t len,
                                        struct dkm_servercard *ret);

/*
 * Remove the armor of an armored server card and decode it
 * (dkm_armor_decode + dkm_servercard_decode).
 */
DKM_MUSTCHECK int dkm_servercard_from_text(const char *text, size_t len,
                                           struct dkm_servercard *ret);

/* Read and decode an armored card file. */
DKM_MUSTCHECK int dkm_servercard_read_file(const char *path, struct dkm_servercard *ret);

/*
 * Write an encoded card to path in armor, mode 0644, atomically. Without
 * overwrite an existing file is -EEXIST.
 */
DKM_MUSTCHECK int dkm_servercard_write_file(const uint8_t *buf, size_t len,
                                            const char *path, bool overwrite);

#endif
