/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private interfaces of dkmd's key service: the server identity
 * (identity.c), the in-memory state snapshot loaded from the database
 * (state.c), the keeper thread that owns the TPM, the signing key and a
 * database connection of its own (keeper.c), the fetch and trust
 * endpoints (keys.c) and the admin endpoints (groups.c, nodes.c).
 *
 * Threads: request handlers run on the HTTP workers and only ever read a
 * snapshot (ks_snapshot_get / ks_snapshot_put), which is immutable once
 * published. Everything that blocks (TPM commands, database writes,
 * reloads) runs on the keeper thread; handlers hand it a job and get the
 * answer back on their own loop.
 */
#ifndef DKM_SERVICE_KEYS_H
#define DKM_SERVICE_KEYS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "dkm/tpm/node.h"
#include "dkm/trust/records.h"
#include "dkm/trust/sign.h"
#include "svc.h"

/* File names in the state directory. */
#define KS_SIGNKEY_FILE "signkey"
#define KS_TRUST_FILE "trust" /* hex fingerprint of server list v1 */

/* Delegation window: starts this far back (clients' clock skew) ... */
#define KS_DELEGATION_BACK (5 * 60)
/* ... lasts this long, and is renewed this long before it ends. */
#define KS_DELEGATION_LIFE (24 * 3600)
#define KS_DELEGATION_RENEW (3600)

/* A key length: AES-256. */
#define KS_KEY_SIZE 32

/* ---- identity.c -------------------------------------------------------- */

/*
 * dkmd init, TPM part: open the TPM (cfg->tcti), read the ECC EK, create
 * the signing key in the state directory (refused when one exists), write
 * server list v1 (this server alone, self-signed) and this server's node
 * entry into the database in one transaction, and store the trust
 * fingerprint in the state directory. ret_fpr gets its hex form. -ENODEV
 * (nothing done) when the configured TPM cannot be opened.
 */
DKM_MUSTCHECK int ks_identity_init(const struct svc_config *cfg,
                                   char ret_fpr[2 * DKM_FINGERPRINT_SIZE + 1]);

/* The 98 bytes at the end of every signed record: signer id and signature. */
#define KS_RECORD_TAIL (DKM_NODE_ID_SIZE + DKM_SIG_SIZE)

/*
 * Run a write transaction on a blocking connection: BEGIN, each statement
 * (binary parameters where lengths[i] > 0, text otherwise), NOTIFY
 * dkm_changes, COMMIT. On any failure the transaction is rolled back and
 * DKM_E_DB (or -EEXIST for a unique violation) is returned with a detail.
 */
struct ks_stmt {
    const char *sql;
    int n;
    const char *values[8];
    int lengths[8]; /* > 0: binary parameter of that length */
};
DKM_MUSTCHECK int ks_db_write(PGconn *conn, const struct ks_stmt *stmts, size_t n);

/* ---- state.c ----------------------------------------------------------- */

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

/* ---- blobcache.c ------------------------------------------------------- */

/* At most this many blobs per snapshot (a blob is ~0.5 KiB); beyond it a
 * fetch seals every time. */
#define KS_BLOBCACHE_MAX 65536u

struct ks_blobcache;
/* An empty cache sized for about `expected` entries. */
DKM_MUSTCHECK int ks_blobcache_new(size_t expected, struct ks_blobcache **ret);
void ks_blobcache_free(struct ks_blobcache *c);
/*
 * The blob for (version, node), or NULL. version is the address of a
 * struct ks_version and node an index into the nodes of the snapshot that
 * owns the cache; the result lives as long as that snapshot. Lock-free.
 */
const uint8_t *ks_blobcache_get(struct ks_blobcache *c, const void *version, size_t node,
                                size_t *ret_len);
/* Keep a copy (silently nothing when full or out of memory). Thread-safe. */
void ks_blobcache_put(struct ks_blobcache *c, const void *version, size_t node,
                      const uint8_t *blob, size_t len);
void ks_blobcache_size(const struct ks_blobcache *c, size_t *ret_count,
                       size_t *ret_bytes);

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

/* ---- keeper.c ---------------------------------------------------------- */

/*
 * Start the key service: load the identity from the state directory, make
 * a delegation, load the first snapshot, start the keeper thread. When
 * this server has no identity (initialised without a TPM) the key
 * endpoints stay off (503) and 0 is returned.
 */
DKM_MUSTCHECK int ks_start(const struct svc_config *cfg, struct svc_metrics *metrics);
/*
 * Stop the keeper thread (it finishes the job at hand, drains the audit
 * queue, and posts nothing afterwards). Idempotent; ks_stop calls it.
 * dkmd calls it as soon as the workers have stopped, before their event
 * bases are freed (svc_set_workers_stopped_hook).
 */
void ks_quiesce(void);
/* Quiesce, then free everything (the queue was flushed by the keeper). */
void ks_stop(void);

/* A read reference to the current snapshot, or NULL (then answer 503). */
struct ks_snapshot *ks_snapshot_get(void);
static inline void ks_snapshot_put(struct ks_snapshot *s)
{
    ks_snapshot_unref(s);
}
/* Rows refused in the current snapshot (for /v1/health). */
uint64_t ks_refused_rows(void);

/* Audit records queued and not yet written. */
size_t ks_audit_pending(void);

/* ---- ks_metrics.c ------------------------------------------------------ */

/* Register the key service's histogram and gauges (ks_start does). */
DKM_MUSTCHECK int ks_metrics_register(struct svc_metrics *m);
/* Record a TPM operation that started at start (CLOCK_MONOTONIC). */
struct timespec;
void ks_tpm_observe(const char *operation, const struct timespec *start);

/* Queue an audit record (written in batches by the keeper). Thread-safe. */
void ks_audit(const char *actor, const char *action, const char *target,
              const char *outcome, const char *detail);

/*
 * Admin work: fn runs on the keeper thread with its resources, fills
 * status and reply (a JSON object, or error/detail), and the request is
 * answered on its own worker's loop afterwards.
 */
struct ks_ctx {
    PGconn *conn;
    struct dkm_tpm *tpm;
    struct dkm_signkey *sk;
    struct dkm_signer signer;
    struct ks_snapshot *snap; /* current snapshot (reloaded after each write) */
};
struct ks_job;
typedef void ks_job_fn(struct ks_ctx *ctx, struct ks_job *job);
struct ks_job {
    struct svc_req *req;
    ks_job_fn *fn;
    int status;
    json_t *reply;
    char error[64];
    char detail[256];
    bool wrote; /* reload the snapshot before answering */
};
/* Run job->fn on the keeper; 503 at once when the key service is off. */
void ks_submit(struct svc_req *r, ks_job_fn *fn);
/* Helpers for jobs. */
void ks_job_fail(struct ks_job *job, int status, const char *error, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The actor of an admin request, for audit: "admin:uid=N" on the admin
 * socket, "node:<node id>" for an admin node over TLS. */
#define KS_ACTOR_MAX 96
void ks_actor(const struct svc_req *r, char *buf, size_t size);

/* Rotate one group now (also used by the timer). */
DKM_MUSTCHECK int ks_rotate_group(struct ks_ctx *ctx, const char *group,
                                  uint32_t *ret_version);
/*
 * Seal a fresh random key as version `version` of group to every server
 * on the current list and add the statements that store it (key_versions
 * row with `state`, one key_copies row per server) to stmts. The records
 * are malloc'd into recs (free each with free()); *n counts statements.
 */
#define KS_MAX_STMTS (DKM_SERVER_LIST_MAX + 4)
struct ks_version_write {
    struct ks_stmt stmts[KS_MAX_STMTS];
    size_t n;
    uint8_t *recs[DKM_SERVER_LIST_MAX];
    size_t nrecs;
    char texts[4][32];
};
DKM_MUSTCHECK int ks_new_version(struct ks_ctx *ctx, const struct dkm_group_policy *p,
                                 uint32_t version, struct ks_version_write *w);
void ks_version_write_clear(struct ks_version_write *w);

/* The rotation and expiry pass of the timer; true when it wrote anything. */
bool ks_timer_pass(struct ks_ctx *ctx);

/* ---- keys.c, groups.c, nodes.c: handlers ------------------------------ */

void ks_trust_handler(struct svc_req *r);
void ks_fetch_handler(struct svc_req *r);
void ks_my_groups_handler(struct svc_req *r);
extern const struct svc_json_field ks_fetch_body[];
extern const size_t ks_fetch_nbody;

void ks_nodes_list_handler(struct svc_req *r);
void ks_nodes_authorize_handler(struct svc_req *r);
void ks_nodes_revoke_handler(struct svc_req *r);
void ks_nodes_tls_handler(struct svc_req *r);
extern const struct svc_json_field ks_nodes_tls_body[];
extern const size_t ks_nodes_tls_nbody;
/* A PEM certificate in a request body. */
#define KS_TLS_CERT_MAX 16384
extern const struct svc_json_field ks_nodes_authorize_body[];
extern const size_t ks_nodes_authorize_nbody;

void ks_groups_list_handler(struct svc_req *r);
void ks_groups_show_handler(struct svc_req *r);
void ks_groups_create_handler(struct svc_req *r);
void ks_groups_rotate_handler(struct svc_req *r);
void ks_groups_policy_handler(struct svc_req *r);
void ks_groups_grant_handler(struct svc_req *r);
void ks_groups_revoke_handler(struct svc_req *r);
void ks_audit_handler(struct svc_req *r);
extern const struct svc_json_field ks_groups_create_body[];
extern const size_t ks_groups_create_nbody;
extern const struct svc_json_field ks_groups_policy_body[];
extern const size_t ks_groups_policy_nbody;
extern const struct svc_json_field ks_node_id_body[];
extern const size_t ks_node_id_nbody;

/* ---- routes.c ---------------------------------------------------------- */

/* The endpoint table, in matching order (svc_run serves it). */
extern const struct svc_route ks_routes[];
extern const size_t ks_nroutes;

/* ---- servers.c, identity.c, rotate.c: several servers on one database -- */

#define KS_PATH_MAX 4096

/*
 * ks_db_write with a check run right after BEGIN (may be NULL): when it
 * returns < 0 the transaction is rolled back and that code is returned.
 */
DKM_MUSTCHECK int ks_db_write_checked(PGconn *conn, int (*check)(PGconn *conn, void *arg),
                                      void *arg, const struct ks_stmt *stmts, size_t n);

/*
 * dkmd init --join: check that trust (64 hex) is the fingerprint of the
 * database's server list v1 (read only, nothing written to the database),
 * open the TPM, create the signing key in the state directory (refused
 * when an identity exists), write the signed server card
 * (DKM_SERVERCARD_FILE) and the trust file. ret_card gets the card's path,
 * ret_id this server's node id.
 */
DKM_MUSTCHECK int ks_identity_join(const struct svc_config *cfg, const char *trust,
                                   char ret_card[KS_PATH_MAX],
                                   char ret_id[DKM_NODE_ID_HEX_SIZE]);

/*
 * Every write that seals keys to the servers of the snapshot's list, or
 * changes the list, runs these first (in its own transaction): the lock
 * orders it against the others, the check ($1: the snapshot's list
 * version) fails it when the list changed since the snapshot was loaded.
 */
#define KS_LIST_LOCK_KEY "7235997538693903476" /* "dkmlistt" */
#define KS_LIST_LOCK_SQL "SELECT pg_advisory_xact_lock(" KS_LIST_LOCK_KEY ")"
#define KS_LIST_CHECK_SQL                                                                \
    "SELECT CASE WHEN max(version) = $1::integer THEN 0 ELSE ('the authorized server "   \
    "list changed (v' || max(version) || ' in the database, v' || $1 || ' loaded); "     \
    "retry after the reload')::integer END FROM server_lists"

/*
 * Seal key (key_len bytes) as version `version` of group to holder's EK
 * and sign the sealed copy record (DKSC) with ctx's signing key. *ret is
 * malloc'd (free()).
 */
DKM_MUSTCHECK int ks_seal_copy(struct ks_ctx *ctx, const char *group, uint32_t version,
                               uint64_t created_at, uint64_t expires_at, const void *key,
                               size_t key_len, const struct dkm_server_entry *holder,
                               uint8_t **ret, size_t *ret_len);
/* The INSERT of a sealed copy record; every pointer must outlive the write. */
struct ks_stmt ks_copy_stmt(const char *group, const char *version_text,
                            const struct dkm_node_id *holder, const uint8_t *rec,
                            size_t len, const char *created_text);

void ks_servers_list_handler(struct svc_req *r);
void ks_servers_add_handler(struct svc_req *r);
extern const struct svc_json_field ks_servers_add_body[];
extern const size_t ks_servers_add_nbody;

#endif
