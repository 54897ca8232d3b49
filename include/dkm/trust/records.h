/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Signed records: the binary forms that carry trust between dkmd, its
 * database and the provider. Signatures cover these bytes, never JSON.
 *
 * Every record is
 *     magic (4) || format version (u16) || fields || signer id (34) || signature (64)
 * and the signature (sign.h: ECDSA P-256, r || s) covers every byte
 * before it, under a context string that names the record type, so a
 * signature over one kind of record never verifies for another.
 *
 *   record          magic  context                  signed by
 *   server list     DKSL   "dkm server list v1"     SK of a server on the list
 *                                                   (v1: itself; vN: list vN-1)
 *   node entry      DKNE   "dkm node entry v1"      SK of an authorized server
 *   group policy    DKGP   "dkm group policy v1"    SK of an authorized server
 *   sealed copy     DKSC   "dkm sealed copy v1"     SK of an authorized server
 *   grant           DKGA   "dkm grant v1"           SK of an authorized server
 *   state head      DKSH   "dkm state head v1"      SK of an authorized server
 *   fetch response  DKFR   "dkm response v1"        the server's delegated key
 *
 * Node entries are at format version 2 (serial and hostname added); a
 * version 1 entry still decodes (format = 1), for the upgrade that signs
 * it again, and is refused by dkmd after that.
 *
 * Decoders are strict: every length is bounded and checked against the
 * bytes left, trailing bytes are refused, and every field is validated;
 * they do not check signatures. Verifiers check signatures against a
 * decoded server list. docs/formats.md describes every byte.
 */
#ifndef DKM_RECORDS_H
#define DKM_RECORDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <tss2/tss2_tpm2_types.h>

#include "dkm/base/error.h"
#include "dkm/tpm/node.h"
#include "dkm/trust/sign.h"
#include "dkm/base/uri.h"

#define DKM_SIGCTX_SERVER_LIST "dkm server list v1"
#define DKM_SIGCTX_NODE_ENTRY "dkm node entry v1"
#define DKM_SIGCTX_GROUP_POLICY "dkm group policy v1"
#define DKM_SIGCTX_SEALED_COPY "dkm sealed copy v1"
#define DKM_SIGCTX_GRANT "dkm grant v1"
#define DKM_SIGCTX_STATE_HEAD "dkm state head v1"

/* Each record type's magic (docs/formats.md, "Signed records"). */
#define DKM_RECORD_MAGIC_SERVER_LIST "DKSL"
#define DKM_RECORD_MAGIC_NODE_ENTRY "DKNE"
#define DKM_RECORD_MAGIC_GROUP_POLICY "DKGP"
#define DKM_RECORD_MAGIC_SEALED_COPY "DKSC"
#define DKM_RECORD_MAGIC_FETCH_RESPONSE "DKFR"
#define DKM_RECORD_MAGIC_GRANT "DKGA"
#define DKM_RECORD_MAGIC_STATE_HEAD "DKSH"

#define DKM_RECORD_VERSION 1
#define DKM_NODE_ENTRY_VERSION 2 /* node entries: 1 had no serial, no hostname */
#define DKM_SERVER_LIST_MAX 16   /* servers on one list */
#define DKM_EK_PUBLIC_MAX 1024   /* marshaled TPM2B_PUBLIC of an EK */
#define DKM_NONCE_MIN 16
#define DKM_NONCE_MAX 64
#define DKM_RECORD_MAX 32768    /* no record is larger */
#define DKM_FINGERPRINT_SIZE 32 /* SHA-256 of an encoded server list */

/*
 * Who signs a record: a function that signs (context, msg) as sign.h
 * describes, and the signer's node id, which goes into the record.
 * dkm_signer_signkey() makes one from a TPM signing key.
 */
struct dkm_signer {
    int (*sign)(void *ctx, const char *context, const void *msg, size_t len,
                uint8_t ret_sig[DKM_SIG_SIZE]);
    void *ctx;
    struct dkm_node_id id;
};

/* A signer backed by a TPM signing key; sk must outlive it. */
struct dkm_signer dkm_signer_signkey(struct dkm_signkey *sk,
                                     const struct dkm_node_id *id);

/* ---- authorized server list ---- */

struct dkm_server_entry {
    struct dkm_node_id node_id; /* the server's EK name */
    TPM2B_PUBLIC ek;            /* its EK public (node_id is its name) */
    struct dkm_p256_public sk;  /* its signing key's public key */
};

struct dkm_server_list {
    uint32_t list_version; /* 1, 2, ... */
    uint64_t issued_at;    /* seconds since the epoch */
    uint8_t count;         /* 1..DKM_SERVER_LIST_MAX */
    struct dkm_server_entry entries[DKM_SERVER_LIST_MAX];
    struct dkm_node_id signer;
    uint8_t sig[DKM_SIG_SIZE];
};

/*
 * Encode and sign a server list (list_version, issued_at, count, entries
 * filled in by the caller; signer and sig are set here). *ret is
 * malloc'd; free it with free().
 */
DKM_MUSTCHECK int dkm_server_list_sign(struct dkm_server_list *list,
                                       const struct dkm_signer *signer, uint8_t **ret,
                                       size_t *ret_len);

/* Strict decode, no signature check. */
DKM_MUSTCHECK int dkm_server_list_decode(const uint8_t *buf, size_t len,
                                         struct dkm_server_list *ret);

/* SHA-256 of the encoded list: what clients pin (config "trust"). */
DKM_MUSTCHECK int dkm_server_list_fingerprint(const uint8_t *buf, size_t len,
                                              uint8_t ret[DKM_FINGERPRINT_SIZE]);

/*
 * Verify a pinned list: its fingerprint must equal pin, and it must be
 * signed by one of its own entries. DKM_E_SIGNATURE otherwise.
 */
DKM_MUSTCHECK int dkm_server_list_verify_pinned(const uint8_t *buf, size_t len,
                                                const uint8_t pin[DKM_FINGERPRINT_SIZE],
                                                struct dkm_server_list *ret);

/*
 * Verify the successor of a trusted list: version prev+1, signed by an
 * entry of prev. DKM_E_SIGNATURE otherwise.
 */
DKM_MUSTCHECK int dkm_server_list_verify_next(const struct dkm_server_list *prev,
                                              const uint8_t *buf, size_t len,
                                              struct dkm_server_list *ret);

/* The entry for a node id, or NULL. */
const struct dkm_server_entry *dkm_server_list_find(const struct dkm_server_list *list,
                                                    const struct dkm_node_id *id);

/* ---- authorized node entry ---- */

enum dkm_role {
    DKM_ROLE_CLIENT = 1,
    DKM_ROLE_SERVER = 2,
    DKM_ROLE_ADMIN = 3,
};

/* "client", "server", "admin"; NULL for anything else. */
const char *dkm_role_name(enum dkm_role role);
/* The reverse; -EINVAL for an unknown name. */
DKM_MUSTCHECK int dkm_role_parse(const char *name, enum dkm_role *ret);

#define DKM_TLS_KEY_ID_SIZE 32

#define DKM_NODE_HOSTNAME_MAX 253

struct dkm_node_entry {
    /* 1 or 2, set by decode (sign always writes DKM_NODE_ENTRY_VERSION). */
    uint16_t format;
    /* 1, 2, ...: bumped by every change of the node's entry (revocation,
     * a new TLS key); an entry with a lower serial than one seen is a
     * rollback. 0 only in format 1. */
    uint64_t serial;
    /* The node's hostname from its card (or the server card), signed so
     * that the database cannot change what listings show; "" for none. */
    char hostname[DKM_NODE_HOSTNAME_MAX + 1];
    struct dkm_node_id node_id; /* must be the name of ek */
    TPM2B_PUBLIC ek;
    enum dkm_role role;
    uint64_t authorized_at;
    uint64_t revoked_at; /* 0: not revoked */
    /* SHA-256 of the DER SubjectPublicKeyInfo of the node's TLS client key,
     * which authenticates it on dkmd's TLS port (admin role); optional. */
    bool has_tls_key;
    uint8_t tls_key[DKM_TLS_KEY_ID_SIZE];
    struct dkm_node_id signer;
    uint8_t sig[DKM_SIG_SIZE];
};

DKM_MUSTCHECK int dkm_node_entry_sign(struct dkm_node_entry *e,
                                      const struct dkm_signer *signer, uint8_t **ret,
                                      size_t *ret_len);
DKM_MUSTCHECK int dkm_node_entry_decode(const uint8_t *buf, size_t len,
                                        struct dkm_node_entry *ret);

/* ---- grant: one node's access to one group ---- */

enum dkm_grant_state {
    DKM_GRANT_GRANTED = 1,
    DKM_GRANT_REVOKED = 2,
};

/*
 * The signed access of a node to a group's keys. A revocation is a
 * record too (state revoked, the next serial), kept in place of the
 * grant, so that the grant cannot be put back without a higher serial,
 * which only a server's signature can make.
 */
struct dkm_grant {
    char group[DKM_GROUP_MAX + 1];
    struct dkm_node_id node_id;
    enum dkm_grant_state state;
    uint64_t serial; /* 1, 2, ...: bumped by every change of this node's access */
    uint64_t at;     /* when the change was made */
    struct dkm_node_id signer;
    uint8_t sig[DKM_SIG_SIZE];
};

DKM_MUSTCHECK int dkm_grant_sign(struct dkm_grant *g, const struct dkm_signer *signer,
                                 uint8_t **ret, size_t *ret_len);
DKM_MUSTCHECK int dkm_grant_decode(const uint8_t *buf, size_t len, struct dkm_grant *ret);

/* ---- state head: the counter of every access-deciding write ---- */

/*
 * Every write of an access-deciding record (node entry, grant, group
 * policy, server list) also writes the next state head, in the same
 * transaction. Each server keeps the highest counter it has seen in its
 * state directory and refuses a database whose head is below it.
 */
struct dkm_state_head {
    uint64_t counter; /* >= 1 */
    uint64_t issued_at;
    struct dkm_node_id signer;
    uint8_t sig[DKM_SIG_SIZE];
};

DKM_MUSTCHECK int dkm_state_head_sign(struct dkm_state_head *h,
                                      const struct dkm_signer *signer, uint8_t **ret,
                                      size_t *ret_len);
DKM_MUSTCHECK int dkm_state_head_decode(const uint8_t *buf, size_t len,
                                        struct dkm_state_head *ret);

/* ---- group policy ---- */

#define DKM_ALG_AES_256_GCM 1

struct dkm_group_policy {
    char group[DKM_GROUP_MAX + 1];
    uint32_t serial;            /* 1, 2, ...: bumped by every policy update */
    uint16_t algorithm;         /* DKM_ALG_AES_256_GCM */
    uint64_t rotation_period;   /* seconds; a new version when the current is older */
    uint64_t version_lifetime;  /* seconds from a version's creation to its expiry */
    uint32_t cache_ttl;         /* seconds a node keeps a key in memory */
    uint32_t pcr_mask;          /* SHA-256 PCRs the key is sealed to; 0: none */
    uint8_t pcr_values[24][32]; /* values of the selected PCRs, ascending */
    uint64_t created_at;
    struct dkm_node_id signer;
    uint8_t sig[DKM_SIG_SIZE];
};

/*
 * Check a policy's fields: valid group name, known algorithm, non-zero
 * rotation period and TTL, lifetime >= rotation period, TTL <= lifetime,
 * PCR mask within 0..23. -EINVAL with a detail naming the field.
 */
DKM_MUSTCHECK int dkm_group_policy_check(const struct dkm_group_policy *p);
DKM_MUSTCHECK int dkm_group_policy_sign(struct dkm_group_policy *p,
                                        const struct dkm_signer *signer, uint8_t **ret,
                                        size_t *ret_len);
DKM_MUSTCHECK int dkm_group_policy_decode(const uint8_t *buf, size_t len,
                                          struct dkm_group_policy *ret);

/* ---- sealed copy of a key version (at rest, per server) ---- */

struct dkm_sealed_copy {
    char group[DKM_GROUP_MAX + 1];
    uint32_t version;
    uint64_t created_at;
    uint64_t expires_at;       /* end of the version's lifetime */
    struct dkm_node_id holder; /* the server whose EK it is sealed to */
    const uint8_t *blob;       /* dkm import envelope (dup.h); points into the buffer */
    size_t blob_len;
    struct dkm_node_id signer;
    uint8_t sig[DKM_SIG_SIZE];
};

DKM_MUSTCHECK int dkm_sealed_copy_sign(struct dkm_sealed_copy *c,
                                       const struct dkm_signer *signer, uint8_t **ret,
                                       size_t *ret_len);
/* ret->blob points into buf, which must outlive it. */
DKM_MUSTCHECK int dkm_sealed_copy_decode(const uint8_t *buf, size_t len,
                                         struct dkm_sealed_copy *ret);

/*
 * Verify a record signed by a server's SK (node entry, group policy,
 * sealed copy): the signer must be on list and its SK must have made
 * sig over buf's signed part. Decode first; pass the decoded signer.
 */
DKM_MUSTCHECK int dkm_record_verify(const struct dkm_server_list *list,
                                    const char *context, const uint8_t *buf, size_t len);

/* ---- fetch response ---- */

struct dkm_fetch_response {
    char group[DKM_GROUP_MAX + 1];
    uint32_t version;
    struct dkm_node_id node_id; /* the node it was made for */
    uint8_t nonce[DKM_NONCE_MAX];
    size_t nonce_len;
    uint64_t issued_at;
    uint64_t expires_at;   /* the version's expiry: never used beyond */
    const uint8_t *policy; /* signed group policy record */
    size_t policy_len;
    const uint8_t *blob; /* dkm import envelope for node_id's EK */
    size_t blob_len;
    uint8_t delegation[DKM_DELEGATION_SIZE];
    struct dkm_node_id signer; /* the server that answered */
    uint8_t sig[DKM_SIG_SIZE]; /* by the delegated key */
};

/*
 * Encode and sign a response with a delegated key (signer id = the
 * delegation's server id; the delegation record is copied in).
 */
DKM_MUSTCHECK int dkm_fetch_response_sign(struct dkm_fetch_response *r,
                                          struct dkm_delegated_key *dk, uint8_t **ret,
                                          size_t *ret_len);
/* Pointers in ret point into buf, which must outlive it. */
DKM_MUSTCHECK int dkm_fetch_response_decode(const uint8_t *buf, size_t len,
                                            struct dkm_fetch_response *ret);

/*
 * Verify a decoded response's whole chain against a trusted server list:
 * the answering server is on the list; its SK signed the delegation,
 * which was valid at issued_at; the delegated key signed the response;
 * the embedded group policy is signed by a server on the list and names
 * the same group. The caller then checks nonce, node id, group, version
 * and freshness (dkm_fetch_response_check). ret_policy may be NULL.
 */
DKM_MUSTCHECK int dkm_fetch_response_verify(const struct dkm_server_list *list,
                                            const uint8_t *buf, size_t len,
                                            struct dkm_fetch_response *ret,
                                            struct dkm_group_policy *ret_policy);

/*
 * The caller's checks of a verified response: made for node, for group
 * and (unless DKM_VERSION_CURRENT) version, with this nonce (skipped when
 * nonce is NULL, e.g. for a disk-cache entry), issued no later than
 * now + max_skew, and not expired at now. DKM_E_PROTOCOL for a mismatch,
 * DKM_E_EXPIRED for an expired version.
 */
DKM_MUSTCHECK int dkm_fetch_response_check(const struct dkm_fetch_response *r,
                                           const struct dkm_node_id *node,
                                           const char *group, uint32_t version,
                                           const uint8_t *nonce, size_t nonce_len,
                                           uint64_t now, uint64_t max_skew);

#endif
