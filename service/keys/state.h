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

struct ks_group {
    char name[DKM_GROUP_MAX + 1];
    struct dkm_group_policy policy;
    uint8_t *policy_rec; /* the signed record, embedded in fetch responses */
    size_t policy_len;
    uint8_t policy_digest[32];   /* PolicyPCR digest when policy.pcr_mask != 0 */
    struct ks_version *versions; /* ascending */
    size_t nversions;
    uint32_t current;            /* the active version, 0 if none */
    struct dkm_node_id *members; /* sorted */
    size_t nmembers;
};

struct ks_node {
    struct dkm_node_entry entry;
    char hostname[256];
};

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
    bool listed;      /* this server is on the last verified server list */
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
const struct ks_version *ks_group_version(const struct ks_group *g, uint32_t version);

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

#endif
