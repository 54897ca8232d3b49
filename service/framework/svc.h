/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Private interfaces of dkmd, the key service. Each block below belongs to
 * one file of service/: configuration (config.c), strict JSON (json.c),
 * the router (router.c), metrics (metrics.c), TLS (tls.c), migrations
 * (migrate.c), the non-blocking database pool (db.c), the HTTP layer
 * (http.c), worker threads and start/stop (server.c, internals shared with
 * http.c in server.h), the admin socket (admin.c) and the endpoint table
 * (routes.c). Nothing here crosses into other components.
 */
#ifndef DKM_SERVICE_DKMD_H
#define DKM_SERVICE_DKMD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>
#include <libpq-fe.h>
#include <openssl/ssl.h>

#include "dkm/base/error.h"

struct event_base;
struct evhttp_request;
struct evbuffer;

#ifndef DKM_SQL_DIR
#define DKM_SQL_DIR "/usr/local/share/dkm/sql"
#endif
#define SVC_DEFAULT_CONFIG "/etc/dkm/dkmd.conf"
/* The channel on which writers announce changes (NOTIFY dkm_changes). */
#define SVC_CHANGES_CHANNEL "dkm_changes"
/* pg_advisory_lock key that serialises migrations across dkmd processes. */
#define SVC_MIGRATION_LOCK_KEY 0x646b6d6d6967LL /* "dkmmig" */

/* ---- config.c ---------------------------------------------------------- */

struct svc_config {
    char *path;
    /* [service] */
    char *listen_host;
    uint16_t listen_port;
    unsigned workers;
    char *tls_cert;
    char *tls_key;
    char *admin_socket;
    unsigned admin_socket_mode;
    char *state_dir;
    char *tcti;
    char *sql_dir;
    int log_level;
    /* [database] */
    char *db_conninfo;
    unsigned db_pool_size;
    unsigned db_connect_timeout;  /* seconds */
    unsigned db_query_timeout;    /* seconds */
    unsigned db_reconnect_max_ms; /* backoff cap */
    unsigned db_queue_max;
    /* [limits] */
    size_t max_header_bytes;
    size_t max_body_bytes;
    unsigned request_timeout; /* seconds */
    unsigned max_connections;
    unsigned shutdown_timeout; /* seconds */
};

/*
 * Load and validate dkmd.conf. Unknown sections' keys are not checked;
 * unknown keys in [service], [database] and [limits] are errors. Errors
 * return DKM_E_CONFIG (or -ENOENT) with a detail naming file/section/key.
 */
DKM_MUSTCHECK int svc_config_load(const char *path, struct svc_config **ret);
/* Same, from text in memory (tests). */
DKM_MUSTCHECK int svc_config_load_string(const char *name, const char *text,
                                         struct svc_config **ret);
void svc_config_free(struct svc_config *cfg);

/* ---- json.c ------------------------------------------------------------ */

enum svc_json_type {
    SVC_JSON_STRING, /* UTF-8 text, length in bytes within [min, max] */
    SVC_JSON_B64URL, /* base64url text whose decoded length is within [min, max] */
    SVC_JSON_UINT,   /* integer within [min, max] */
    SVC_JSON_BOOL,
};

struct svc_json_field {
    const char *name;
    enum svc_json_type type;
    bool required;
    uint64_t min;
    uint64_t max;
};

/* Upper bound of a request body's JSON nesting and member count. */
#define SVC_JSON_MAX_FIELDS 32

/*
 * Parse a request body strictly: one JSON object (nothing after it), no
 * duplicate keys, every member named in fields (no others), each of its
 * declared type and bounds, and all required members present. On success
 * *ret is a new reference the caller must json_decref. On failure returns
 * -EINVAL and writes a reason for the client into why (never secret: the
 * reason names fields, not values).
 */
DKM_MUSTCHECK int svc_json_parse(const void *text, size_t len,
                                 const struct svc_json_field *fields, size_t nfields,
                                 json_t **ret, char *why, size_t why_size);

/*
 * The decoded bytes of a base64url member already checked by
 * svc_json_parse. Returns 0 or -EINVAL/-ENOBUFS; *ret_len set on success.
 */
DKM_MUSTCHECK int svc_json_get_b64url(const json_t *obj, const char *name, void *out,
                                      size_t out_size, size_t *ret_len);

/*
 * The error body {"error": error, "detail": detail} as compact JSON text
 * (malloc'd, NUL-terminated); detail may be NULL (then omitted).
 * Returns NULL only when out of memory.
 */
char *svc_json_error_body(const char *error, const char *detail);

/* ---- router.c ---------------------------------------------------------- */

#define SVC_ROUTE_MAX_PARAMS 4
#define SVC_ROUTE_PARAM_MAX 128
#define SVC_PATH_MAX 512

enum svc_method {
    SVC_GET = 1 << 0,
    SVC_POST = 1 << 1,
    SVC_PUT = 1 << 2,
    SVC_DELETE = 1 << 3,
};

enum svc_route_flags {
    /* The admin socket, or TLS with the client certificate of an admin node. */
    SVC_ROUTE_ADMIN = 1 << 0,
    /* Answered 503 at once while no database connection is up. */
    SVC_ROUTE_NEEDS_DB = 1 << 1,
    /* Takes a query string; elsewhere a query string is a 400. */
    SVC_ROUTE_QUERY = 1 << 2,
};

struct svc_req;
typedef void svc_handler_fn(struct svc_req *r);

/*
 * One endpoint. pattern is a path whose segments are literal or "{name}",
 * which matches one non-empty segment of [A-Za-z0-9._-] (at most
 * SVC_ROUTE_PARAM_MAX-1 bytes) captured into svc_req.params in order.
 */
struct svc_route {
    unsigned methods; /* enum svc_method bits */
    const char *pattern;
    const char *name;                  /* metrics label; stable, no spaces */
    unsigned flags;                    /* enum svc_route_flags */
    const struct svc_json_field *body; /* NULL: the request must have no body */
    size_t nbody;
    svc_handler_fn *handler;
};

struct svc_route_match {
    const struct svc_route *route;
    unsigned nparams;
    char params[SVC_ROUTE_MAX_PARAMS][SVC_ROUTE_PARAM_MAX];
    unsigned allowed; /* for -EOPNOTSUPP: methods the path accepts */
};

/*
 * Find the route for method and path (no query string). Returns 0 and
 * fills *ret, -ENOENT when no pattern matches the path (404), or
 * -EOPNOTSUPP when patterns match but none for this method (405; then
 * ret->allowed says which methods would do).
 */
DKM_MUSTCHECK int svc_router_match(const struct svc_route *routes, size_t n,
                                   unsigned method, const char *path,
                                   struct svc_route_match *ret);

/* "GET, POST" for an Allow header; buf of at least 32 bytes. */
void svc_methods_string(unsigned methods, char *buf, size_t size);

/* ---- metrics.c --------------------------------------------------------- */

struct svc_metrics;
struct svc_metric;
typedef double svc_gauge_fn(void *arg);

DKM_MUSTCHECK int svc_metrics_new(struct svc_metrics **ret);
void svc_metrics_free(struct svc_metrics *m);

/*
 * Registration API. Names follow Prometheus rules ([a-zA-Z_:][a-zA-Z0-9_:]*);
 * a counter has up to two labels, a histogram up to one (NULL for none).
 * Children per label value are created on first use. Register before the
 * worker threads start; updating is thread-safe.
 */
DKM_MUSTCHECK int svc_metrics_counter(struct svc_metrics *m, const char *name,
                                      const char *help, const char *label1,
                                      const char *label2, struct svc_metric **ret);
DKM_MUSTCHECK int svc_metrics_histogram(struct svc_metrics *m, const char *name,
                                        const char *help, const char *label,
                                        const double *bounds, size_t nbounds,
                                        struct svc_metric **ret);
/* A gauge read at scrape time by calling fn(arg) (cache sizes, connections). */
DKM_MUSTCHECK int svc_metrics_gauge(struct svc_metrics *m, const char *name,
                                    const char *help, svc_gauge_fn *fn, void *arg);

void svc_metric_inc(struct svc_metric *c, const char *v1, const char *v2, uint64_t n);
void svc_metric_observe(struct svc_metric *h, const char *v, double value);

/* Default latency buckets in seconds, 0.5 ms .. 10 s. */
extern const double svc_latency_buckets[];
extern const size_t svc_latency_nbuckets;

/* The Prometheus text exposition (malloc'd); NULL when out of memory. */
char *svc_metrics_render(struct svc_metrics *m);

/* ---- tls.c ------------------------------------------------------------- */

/* A TLS 1.2+ server context from PEM files; errors name the files. */
DKM_MUSTCHECK int svc_tls_server_ctx(const char *cert, const char *key, SSL_CTX **ret);

/*
 * dkmd init: an ECDSA P-256 key (mode 0600) and a self-signed certificate
 * for the host names and loopback addresses; refuses if either file
 * exists. Writes the SHA-256 fingerprint ("AB:CD:...") into fpr.
 */
DKM_MUSTCHECK int svc_tls_create_identity(const char *cert, const char *key, char *fpr,
                                          size_t fpr_size);

/* SHA-256 fingerprint of the certificate in a PEM file. */
DKM_MUSTCHECK int svc_tls_fingerprint(const char *cert, char *fpr, size_t fpr_size);

#define SVC_TLS_KEY_ID_SIZE 32 /* DKM_TLS_KEY_ID_SIZE of records.h */

/*
 * The key id a node entry binds (records.h): SHA-256 of the certificate's
 * DER SubjectPublicKeyInfo. From an X509, or from len bytes of PEM text
 * holding exactly one certificate (-EINVAL with a detail otherwise).
 */
DKM_MUSTCHECK int svc_tls_key_id(X509 *cert, uint8_t ret[SVC_TLS_KEY_ID_SIZE]);
DKM_MUSTCHECK int svc_tls_key_id_pem(const char *pem, size_t len,
                                     uint8_t ret[SVC_TLS_KEY_ID_SIZE]);

/* ---- migrate.c --------------------------------------------------------- */

#define SVC_MIGRATION_NAME_MAX 64
#define SVC_MIGRATIONS_MAX 999
#define SVC_MIGRATION_SIZE_MAX (1024 * 1024)

struct svc_migration {
    unsigned version;
    char name[SVC_MIGRATION_NAME_MAX];
    char checksum[65]; /* SHA-256 of the file, hex */
    char *sql;
};

struct svc_migrations {
    struct svc_migration *v;
    size_t n;
};

/*
 * Parse a migration file name "NNN_name.sql" (NNN three digits, 001..999;
 * name of [a-z0-9_], 1..SVC_MIGRATION_NAME_MAX-1). Returns 0 or -EINVAL.
 */
DKM_MUSTCHECK int svc_migration_parse_name(const char *file, unsigned *ret_version,
                                           char *ret_name, size_t name_size);

/*
 * Read every *.sql file of dir, sorted by version. Versions must run
 * 1..N without gaps or duplicates; another file ending in .sql is an
 * error (a misnamed migration must not be skipped silently).
 */
DKM_MUSTCHECK int svc_migrations_load(const char *dir, struct svc_migrations *ret);
void svc_migrations_clear(struct svc_migrations *m);

/*
 * Apply what is missing over a blocking connection (start-up only, before
 * the loops run), under an advisory lock, one transaction per migration.
 * Refuses (DKM_E_DB with a detail) a database whose schema is newer than
 * the files or whose applied migration's checksum differs. *ret_version
 * is the schema version afterwards.
 */
DKM_MUSTCHECK int svc_migrate(PGconn *conn, const struct svc_migrations *m,
                              unsigned *ret_version);

/* Open a blocking connection with a detail on failure. */
DKM_MUSTCHECK int svc_db_connect_blocking(const char *conninfo, PGconn **ret);

/* ---- db.c -------------------------------------------------------------- */

/*
 * Prepared statements, by name. Each connection prepares all of them
 * after it connects. To add one: a new enum value and a row in db.c's
 * table, in the same order.
 */
enum svc_stmt {
    SVC_STMT_SCHEMA_VERSION, /* () -> max applied migration */
    SVC_STMT_PING,           /* () -> 1 */
    SVC_STMT_AUDIT_INSERT,   /* (actor, action, target, outcome, detail) */
    SVC_STMT_NOTIFY_CHANGE,  /* (payload): NOTIFY dkm_changes, delivered on commit */
    SVC_STMT_COUNT,
};

struct svc_db;

/* At most this many statements in one transaction. */
#define SVC_DB_TX_MAX_STEPS 16

/* One statement of a transaction, with text parameters unless formats says 1. */
struct svc_db_step {
    enum svc_stmt stmt;
    int nparams;
    const char *const *values; /* NULL value = SQL NULL */
    const int *lengths;        /* binary parameters only; may be NULL */
    const int *formats;        /* NULL: all text */
};

/*
 * Called exactly once per query or transaction, on the loop thread. On
 * success r == 0 and results[i] is step i's result (PGRES_TUPLES_OK or
 * PGRES_COMMAND_OK; bytea columns come back as text, "\x..." hex), owned
 * by the pool and valid during the call; n is the number of steps. On
 * failure results is NULL, n is 0 and r is DKM_E_UNAVAILABLE (no
 * connection, connection lost, queue full, timeout, shutting down) or
 * DKM_E_DB (a statement failed; dkm_error_detail() says which and why,
 * sqlstate is its SQLSTATE such as "23505" for a unique violation).
 */
typedef void svc_db_result_fn(void *arg, PGresult *const *results, size_t n, int r,
                              const char *sqlstate);

/*
 * Invoked for each NOTIFY on the changes channel; payload NULL after a
 * (re)connect of the LISTEN connection: anything may have changed.
 */
typedef void svc_db_notify_fn(void *arg, const char *channel, const char *payload);

struct svc_db_options {
    const char *conninfo;
    unsigned pool_size;
    unsigned connect_timeout;
    unsigned query_timeout;
    unsigned reconnect_max_ms;
    unsigned queue_max;
    unsigned probe_ms;                /* keepalive query on idle connections; 0: 30 s */
    struct svc_metric *query_latency; /* may be NULL */
    svc_db_notify_fn *notify;         /* non-NULL: also keep a LISTEN connection */
    void *notify_arg;
    /* Called when a connection is back after a failure (may be NULL). */
    void (*back)(void *arg);
    void *back_arg;
};

DKM_MUSTCHECK int svc_db_new(struct event_base *base, const struct svc_db_options *opt,
                             struct svc_db **ret);
/* Fails every pending query with DKM_E_UNAVAILABLE and closes the pool. */
void svc_db_free(struct svc_db *db);
/* Whether at least one pool connection is connected and prepared. */
bool svc_db_up(const struct svc_db *db);

/*
 * Reconnect every connection that is waiting for its backoff now: the
 * database is known to be back (another pool got through), so waiting
 * further would only prolong 503s.
 */
void svc_db_retry_now(struct svc_db *db);

/*
 * Queue one prepared statement (autocommit). Returns 0 (cb will be called
 * exactly once, never from inside this call) or DKM_E_UNAVAILABLE at once
 * when no connection is up or the queue is full (cb not called), or
 * -EINVAL for a parameter count that does not match the statement.
 */
DKM_MUSTCHECK int svc_db_query(struct svc_db *db, enum svc_stmt stmt, int nparams,
                               const char *const *values, const int *lengths,
                               const int *formats, svc_db_result_fn *cb, void *arg);

/*
 * Queue a transaction: BEGIN, the steps in order on one connection,
 * COMMIT. Either all steps take effect or none: a failing step rolls the
 * transaction back, and a connection lost midway leaves nothing behind
 * (the server rolls back). Same return and callback rules as
 * svc_db_query. Every write of the service goes through here or through a
 * single statement.
 */
DKM_MUSTCHECK int svc_db_transaction(struct svc_db *db, const struct svc_db_step *steps,
                                     size_t nsteps, svc_db_result_fn *cb, void *arg);

/* ---- http.c and server.c ------------------------------------------------ */

struct svc;
struct svc_worker;
struct svc_conn;

/*
 * One request being answered. Handlers get it, may keep it across
 * asynchronous work, and must end it with exactly one svc_reply_*();
 * that frees it.
 */
struct svc_req {
    struct svc *svc;
    struct svc_worker *worker;
    struct evhttp_request *req;
    struct svc_conn *conn; /* NULL on the admin socket */
    const struct svc_route *route;
    unsigned nparams;
    char params[SVC_ROUTE_MAX_PARAMS][SVC_ROUTE_PARAM_MAX];
    json_t *body; /* the validated request body, or NULL */
    bool admin;   /* admin socket from an allowed peer, or an admin node over TLS */
    uid_t peer_uid;
    char actor[96]; /* who, for audit: "node:<id>" over TLS; "" on the socket */
    uint64_t start_ns;
};

/* Send obj (reference stolen) with status; frees r. */
void svc_reply_json(struct svc_req *r, int status, json_t *obj);
/* Send {"error": error, "detail": detail} with status (4xx/5xx); frees r. */
void svc_reply_error(struct svc_req *r, int status, const char *error, const char *fmt,
                     ...) __attribute__((format(printf, 4, 5)));
/* Send text with a content type; frees r. */
void svc_reply_text(struct svc_req *r, int status, const char *content_type,
                    const char *text, size_t len);

/* The key id of the TLS client certificate of r; -ENOENT without one. */
DKM_MUSTCHECK int svc_req_tls_key_id(const struct svc_req *r,
                                     uint8_t ret[SVC_TLS_KEY_ID_SIZE]);

/* The worker's database pool (for handlers). */
struct svc_db *svc_req_db(const struct svc_req *r);

/* Process-wide state handlers may read. */
struct svc_status {
    unsigned workers;
    unsigned schema_version;
    uint64_t uptime_s;
    uint64_t refused_rows;
    unsigned connections;
};
void svc_get_status(const struct svc *svc, struct svc_status *ret);
struct svc_metrics *svc_get_metrics(const struct svc *svc);

/*
 * Count database rows refused by validation (bad signature, bad length):
 * shown in /v1/health. Thread-safe.
 */
void svc_refused_rows_add(struct svc *svc, uint64_t n);

/*
 * A function svc_run calls once every worker thread has stopped and
 * before their event bases are freed: the place for other threads that
 * post events to workers (the key service's keeper) to stop doing so.
 */
void svc_set_workers_stopped_hook(void (*fn)(void));

/*
 * Who may use admin routes on the TLS port: fn gets the key id of the
 * client certificate (svc_tls_key_id) and answers true, with the actor
 * for audit in actor, when that key belongs to an admin. Without a hook,
 * or without a client certificate, admin routes answer 403 over TLS.
 */
typedef bool svc_tls_admin_fn(const uint8_t key_id[SVC_TLS_KEY_ID_SIZE], char *actor,
                              size_t actor_size);
void svc_set_tls_admin_hook(svc_tls_admin_fn *fn);

/*
 * Run the service until SIGTERM/SIGINT; returns 0 after a clean drain.
 * metrics is the registry /metrics renders (owned by the caller, who may
 * have registered the key service's metrics in it already); routes is the
 * endpoint table (nroutes rows, in matching order), which must outlive
 * the call.
 */
DKM_MUSTCHECK int svc_run(struct svc_config *cfg, const char *config_path,
                          unsigned schema_version, struct svc_metrics *metrics,
                          const struct svc_route *routes, size_t nroutes);

/* ---- admin.c ----------------------------------------------------------- */

/* Create the admin Unix socket (mode from config); replaces a stale one. */
DKM_MUSTCHECK int svc_admin_listen(const struct svc_config *cfg, int *ret_fd);
/*
 * Whether the peer of an admin-socket connection may use it: root or the
 * user dkmd runs as. *ret_uid is the peer's uid.
 */
DKM_MUSTCHECK int svc_admin_peer_allowed(int fd, uid_t *ret_uid);

#endif
