/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The key service's state (state.c): an immutable snapshot of the
 * verified lists, nodes, groups, policies and unsealed keys, loaded from
 * the database by the keeper, and the current one that every request
 * reads.
 *
 * Threads: request handlers only ever read a snapshot (ks_snapshot_get /
 * ks_snapshot_put), which is immutable once published; everything that
 * blocks (TPM commands, database reads and writes) runs on the keeper
 * thread.
 */
#ifndef DKM_KS_STATE_H
#define DKM_KS_STATE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "dkm/base/error.h"
#include "dkm/tpm/node.h"
#include "dkm/tpm/tpm.h"
#include "dkm/trust/records.h"
#include "dkm/trust/sign.h"

struct ks_blobcache;
struct ks_seen;

/* A key length: AES-256. */
#define KS_KEY_SIZE 32

enum ks_vstate {
    KS_ACTIVE,
    KS_DECRYPT_ONLY,
    KS_EXPIRED,
    KS_DESTROYED,
};

/* A key in clear, in secure memory; shared by consecutive snapshots. */
struct ks_key {
    atomic_int refs;
    void *secret;
    size_t len;
};

struct ks_version {
    uint32_t version;
    enum ks_vstate state;
    uint64_t created_at;
    uint64_t expires_at; /* from this server's signed sealed copy */
    struct ks_key *key;  /* NULL: no valid copy for this server */
};

/* One node's signed access to a group (granted or revoked). */
struct ks_grant {
    struct dkm_node_id node_id;
    uint64_t serial;
    uint64_t at;
    enum dkm_grant_state state;
    struct dkm_node_id signer;
    bool legacy; /* a row of schema version 1 (no record), upgrade only */
};

struct ks_group {
    char name[DKM_GROUP_MAX + 1];
    struct dkm_group_policy policy;
    uint8_t *policy_rec; /* the signed record, embedded in fetch responses */
    size_t policy_len;
    uint8_t policy_digest[32];   /* PolicyPCR digest when policy.pcr_mask != 0 */
    struct ks_version *versions; /* ascending */
    size_t nversions;
    uint32_t current;            /* the active version, 0 if none */
    struct dkm_node_id *members; /* granted nodes, sorted */
    size_t nmembers;
    struct ks_grant *grants; /* every accepted grant record, sorted by node id */
    size_t ngrants;
};

struct ks_node {
    struct dkm_node_entry entry;
    char hostname[256];
};

/* What a refused row was, for /v1/health and the metrics. */
enum ks_refusal {
    KS_REF_SERVER_LIST,
    KS_REF_NODE,
    KS_REF_POLICY,
    KS_REF_COPY,
    KS_REF_GRANT,
    KS_REF_HEAD,
    KS_REF_KINDS,
};
/* "server_list", "node", "policy", "sealed_copy", "grant", "state_head". */
extern const char *const ks_refusal_names[KS_REF_KINDS];

struct ks_deleg {
    atomic_int refs;
    struct dkm_delegated_key *dk;
};

struct ks_snapshot {
    atomic_int refs;
    uint8_t **lists; /* encoded server lists v1..vN */
    size_t *list_lens;
    size_t nlists;
    struct dkm_server_list list; /* the last verified one */
    struct ks_node *nodes;       /* sorted by node id */
    size_t nnodes;
    struct ks_group *groups; /* sorted by name */
    size_t ngroups;
    struct ks_deleg *deleg;
    uint64_t refused; /* rows refused while loading this snapshot */
    uint64_t refused_by[KS_REF_KINDS];
    uint64_t rollbacks; /* of those, older records put back (seen.h) */
    /* Digests of the refusals logged for this snapshot: a reload logs only
     * the ones its predecessor had not (each refusal is logged once). */
    uint64_t *refusals;
    size_t nrefusals;
    bool listed;      /* this server is on the last verified server list */
    uint64_t head;    /* the verified state head counter, 0 if none */
    int64_t head_raw; /* the state_head.counter column as read, -1: no row */
    bool legacy;      /* loaded for the upgrade (schema version 1 rows taken) */
    /* Import blobs built for this snapshot's fetches: the one part of a
     * snapshot that changes after it is published (blobcache.c). */
    struct ks_blobcache *blobs;
};

/* Everything the loader needs: the keeper's resources. */
struct ks_loader {
    PGconn *conn;
    struct dkm_tpm *tpm;
    struct dkm_node_id self;
    uint8_t pin[DKM_FINGERPRINT_SIZE];
    struct ks_deleg *deleg;
    /* What this server has seen (seen.h), kept in seen_path; updated and
     * saved by every load that sees something newer. */
    struct ks_seen *seen;
    const char *seen_path;
    /* Upgrade mode: take node entries of format 1 and grants without a
     * record (upgrade.c signs them); never set once a head exists. */
    bool legacy;
    const struct ks_snapshot *prev; /* set by ks_snapshot_load while it runs */
};

/*
 * Build a snapshot from the database (blocking queries on l->conn). Keys
 * already unsealed in prev (may be NULL) are shared; only new versions
 * are unsealed with the TPM. Rows that fail validation are logged,
 * counted in ret->refused and left out.
 */
DKM_MUSTCHECK int ks_snapshot_load(struct ks_loader *l, const struct ks_snapshot *prev,
                                   struct ks_snapshot **ret);
void ks_snapshot_unref(struct ks_snapshot *s);
void ks_deleg_unref(struct ks_deleg *d);

const struct ks_node *ks_snapshot_node(const struct ks_snapshot *s,
                                       const struct dkm_node_id *id);
const struct ks_group *ks_snapshot_group(const struct ks_snapshot *s, const char *name);
/* The node whose entry binds this TLS key id, or NULL (one key, one node). */
const struct ks_node *ks_snapshot_node_by_tls(const struct ks_snapshot *s,
                                              const uint8_t key_id[DKM_TLS_KEY_ID_SIZE]);
bool ks_group_member(const struct ks_group *g, const struct dkm_node_id *id);
/* The accepted grant record of id in g (granted or revoked), or NULL. */
const struct ks_grant *ks_group_grant(const struct ks_group *g,
                                      const struct dkm_node_id *id);
const struct ks_version *ks_group_version(const struct ks_group *g, uint32_t version);

/* Whether v may be served at now (Unix time): not expired, not destroyed,
 * not past its signed expiry. A version that may not holds no key. */
bool ks_version_servable(const struct ks_version *v, uint64_t now);

/*
 * The current snapshot: a read reference to it, or NULL (then answer
 * 503); ks_snapshot_put gives the reference back. ks_snapshot_publish
 * (keeper) makes s current (NULL: none) and drops the reference to the
 * one before.
 */
struct ks_snapshot *ks_snapshot_get(void);
static inline void ks_snapshot_put(struct ks_snapshot *s)
{
    ks_snapshot_unref(s);
}
void ks_snapshot_publish(struct ks_snapshot *s);
/* Rows refused in the current snapshot (for /v1/health). */
uint64_t ks_refused_rows(void);
/* The same by kind, and how many were rollbacks; zeros with no snapshot. */
void ks_refused_by(uint64_t ret[KS_REF_KINDS], uint64_t *ret_rollbacks);

#endif
