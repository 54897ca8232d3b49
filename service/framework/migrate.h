/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Schema migrations (migrate.c): the numbered files of sql/, applied in
 * order at start over a blocking connection, each recorded with its
 * checksum.
 */
#ifndef DKM_SVC_MIGRATE_H
#define DKM_SVC_MIGRATE_H

#include <stddef.h>

#include <libpq-fe.h>

#include "dkm/base/error.h"

/* pg_advisory_lock key that serialises migrations across dkmd processes. */
#define SVC_MIGRATION_LOCK_KEY 0x646b6d6d6967LL /* "dkmmig" */

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

#endif
