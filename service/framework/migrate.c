/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Schema migrations: numbered SQL files (sql/NNN_name.sql) applied at
 * start-up over a blocking connection, before any event loop runs. Each
 * file runs in its own transaction together with its row in
 * schema_migrations, so a crash leaves either all of a migration or none.
 * An advisory lock makes concurrent starts of several dkmd on one database
 * take turns; the second finds nothing left to do. A database that is
 * ahead of this binary, or whose recorded migration differs from the file
 * of the same number, is refused: running against a schema we do not know
 * could corrupt it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "dkm/base/codec.h"
#include "dkm/base/log.h"
#include "migrate.h"

int svc_migration_parse_name(const char *file, unsigned *ret_version, char *ret_name,
                             size_t name_size)
{
    size_t len = strlen(file), name_len;
    unsigned version;

    /* "NNN_" + at least one name character + ".sql" */
    if (len < 9 || strcmp(file + len - 4, ".sql") != 0)
        return -EINVAL;
    for (int i = 0; i < 3; i++)
        if (file[i] < '0' || file[i] > '9')
            return -EINVAL;
    if (file[3] != '_')
        return -EINVAL;
    version = (unsigned)((file[0] - '0') * 100 + (file[1] - '0') * 10 + (file[2] - '0'));
    if (version == 0)
        return -EINVAL;
    name_len = len - 8;
    if (name_len >= SVC_MIGRATION_NAME_MAX || name_len >= name_size)
        return -EINVAL;
    for (size_t i = 0; i < name_len; i++) {
        char c = file[4 + i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return -EINVAL;
    }
    memcpy(ret_name, file + 4, name_len);
    ret_name[name_len] = '\0';
    *ret_version = version;
    return 0;
}

static int read_file(const char *dir, const char *file, char **ret)
{
    char path[4096];
    char *buf = NULL;
    struct stat st;
    ssize_t n;
    size_t got = 0;
    int fd = -1, r;

    snprintf(path, sizeof(path), "%s/%s", dir, file);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        r = dkm_error_set(-errno, "cannot open %s: %s", path, strerror(errno));
        goto done;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
        st.st_size > SVC_MIGRATION_SIZE_MAX) {
        r = dkm_error_set(-EINVAL, "%s: not a regular file of at most %d bytes", path,
                          SVC_MIGRATION_SIZE_MAX);
        goto done;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL) {
        r = -ENOMEM;
        goto done;
    }
    while (got < (size_t)st.st_size) {
        n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            r = dkm_error_set(-EIO, "cannot read %s", path);
            goto done;
        }
        got += (size_t)n;
    }
    buf[got] = '\0';
    if (strlen(buf) != got) {
        r = dkm_error_set(-EINVAL, "%s contains a NUL byte", path);
        goto done;
    }
    *ret = buf;
    buf = NULL;
    r = 0;
done:
    free(buf);
    if (fd >= 0)
        close(fd);
    return r;
}

static int sha256_hex(const char *text, char out[65])
{
    unsigned char md[32];
    unsigned int n = 0;

    if (!EVP_Digest(text, strlen(text), md, &n, EVP_sha256(), NULL) || n != 32)
        return DKM_E_CRYPTO;
    return dkm_hex_encode(md, 32, out, 65);
}

static int cmp_version(const void *a, const void *b)
{
    const struct svc_migration *x = a, *y = b;

    return (x->version > y->version) - (x->version < y->version);
}

void svc_migrations_clear(struct svc_migrations *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->n; i++)
        free(m->v[i].sql);
    free(m->v);
    m->v = NULL;
    m->n = 0;
}

int svc_migrations_load(const char *dir, struct svc_migrations *ret)
{
    struct svc_migrations m = {0};
    struct dirent *de;
    DIR *d;
    int r = 0;

    d = opendir(dir);
    if (d == NULL)
        return dkm_error_set(-errno, "cannot open the migrations directory %s: %s", dir,
                             strerror(errno));
    while ((de = readdir(d)) != NULL) {
        struct svc_migration *mi, *nv;
        size_t len = strlen(de->d_name);

        if (len < 4 || strcmp(de->d_name + len - 4, ".sql") != 0)
            continue;
        if (m.n >= SVC_MIGRATIONS_MAX) {
            r = dkm_error_set(-E2BIG, "%s: too many migrations", dir);
            goto done;
        }
        nv = realloc(m.v, (m.n + 1) * sizeof(*m.v));
        if (nv == NULL) {
            r = -ENOMEM;
            goto done;
        }
        m.v = nv;
        mi = &m.v[m.n];
        memset(mi, 0, sizeof(*mi));
        if (svc_migration_parse_name(de->d_name, &mi->version, mi->name,
                                     sizeof(mi->name)) < 0) {
            r = dkm_error_set(-EINVAL,
                              "%s/%s: a migration file must be named NNN_name.sql (three "
                              "digits from 001, name of a-z, 0-9 and _)",
                              dir, de->d_name);
            goto done;
        }
        r = read_file(dir, de->d_name, &mi->sql);
        if (r < 0)
            goto done;
        m.n++;
        r = sha256_hex(mi->sql, mi->checksum);
        if (r < 0)
            goto done;
    }
    if (m.n > 1)
        qsort(m.v, m.n, sizeof(*m.v), cmp_version);
    for (size_t i = 0; i < m.n; i++) {
        if (m.v[i].version != i + 1) {
            r = dkm_error_set(
                -EINVAL,
                "%s: migrations must be numbered 001, 002, ... without gaps "
                "or duplicates; found %03u where %03zu was expected",
                dir, m.v[i].version, i + 1);
            goto done;
        }
    }
    if (m.n == 0) {
        r = dkm_error_set(-ENOENT, "%s: no migrations found", dir);
        goto done;
    }
    *ret = m;
    m = (struct svc_migrations){0};
    r = 0;
done:
    closedir(d);
    svc_migrations_clear(&m);
    return r;
}

int svc_db_connect_blocking(const char *conninfo, PGconn **ret)
{
    PGconn *c = PQconnectdb(conninfo);

    if (c == NULL)
        return -ENOMEM;
    if (PQstatus(c) != CONNECTION_OK) {
        /* PQerrorMessage names host and port, never the password. */
        int r = dkm_error_set(DKM_E_UNAVAILABLE, "cannot connect to the database: %s",
                              PQerrorMessage(c));
        PQfinish(c);
        return r;
    }
    *ret = c;
    return 0;
}

/* Run one command without parameters; error detail names what. */
static int exec_ok(PGconn *c, const char *sql, const char *what)
{
    PGresult *res = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(res);
    int r = 0;

    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        r = dkm_error_set(DKM_E_DB, "%s failed: %s", what, PQerrorMessage(c));
    PQclear(res);
    return r;
}

static int apply_one(PGconn *c, const struct svc_migration *mi)
{
    char version[16];
    const char *params[3];
    PGresult *res = NULL;
    int r;

    r = exec_ok(c, "BEGIN", "BEGIN");
    if (r < 0)
        return r;
    res = PQexec(c, mi->sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK &&
        PQresultStatus(res) != PGRES_TUPLES_OK) {
        r = dkm_error_set(DKM_E_DB, "migration %03u_%s failed: %s", mi->version, mi->name,
                          PQerrorMessage(c));
        goto done;
    }
    PQclear(res);
    snprintf(version, sizeof(version), "%u", mi->version);
    params[0] = version;
    params[1] = mi->name;
    params[2] = mi->checksum;
    res = PQexecParams(c,
                       "INSERT INTO schema_migrations (version, name, checksum) "
                       "VALUES ($1, $2, $3)",
                       3, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        r = dkm_error_set(DKM_E_DB, "recording migration %03u failed: %s", mi->version,
                          PQerrorMessage(c));
        goto done;
    }
    r = exec_ok(c, "COMMIT", "COMMIT");
    if (r == 0)
        log_event(DKM_LOG_NOTICE, "db.migration_applied version=%u name=%s", mi->version,
                  mi->name);
done:
    PQclear(res);
    if (r < 0) {
        PGresult *rb = PQexec(c, "ROLLBACK");
        PQclear(rb);
    }
    return r;
}

/* Compare what the database recorded with the files; the caller holds the lock. */
static int check_applied(PGconn *c, const struct svc_migrations *m, unsigned *ret_version)
{
    PGresult *res;
    unsigned highest = 0;
    int r = 0;

    res = PQexec(
        c, "SELECT version, name, checksum FROM schema_migrations ORDER BY version");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        r = dkm_error_set(DKM_E_DB, "reading schema_migrations failed: %s",
                          PQerrorMessage(c));
        goto done;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        const char *vs = PQgetvalue(res, i, 0), *checksum = PQgetvalue(res, i, 2);
        char *end;
        long v = strtol(vs, &end, 10);

        if (*end != '\0' || v <= 0) {
            r = dkm_error_set(DKM_E_DB, "schema_migrations holds an invalid version");
            goto done;
        }
        if ((size_t)v > m->n) {
            r = dkm_error_set(DKM_E_DB,
                              "the database schema is at version %ld, newer than this "
                              "dkmd knows (%zu); upgrade dkmd or point it at the right "
                              "database",
                              v, m->n);
            goto done;
        }
        if (strcmp(m->v[v - 1].checksum, checksum) != 0) {
            r = dkm_error_set(
                DKM_E_DB,
                "migration %03ld (%s) was applied with a different content "
                "than %03ld_%s.sql has now (checksum mismatch); refusing to "
                "run on a schema that differs from the files",
                v, PQgetvalue(res, i, 1), v, m->v[v - 1].name);
            goto done;
        }
        if ((unsigned)v != highest + 1) {
            r = dkm_error_set(DKM_E_DB, "schema_migrations has a gap before version %ld",
                              v);
            goto done;
        }
        highest = (unsigned)v;
    }
    *ret_version = highest;
done:
    PQclear(res);
    return r;
}

int svc_migrate(PGconn *c, const struct svc_migrations *m, unsigned *ret_version)
{
    char lock_sql[96];
    unsigned version = 0;
    bool locked = false;
    int r;

    /* Session lock: held across the per-migration transactions below. */
    snprintf(lock_sql, sizeof(lock_sql), "SELECT pg_advisory_lock(%lld)",
             SVC_MIGRATION_LOCK_KEY);
    r = exec_ok(c, lock_sql, "taking the migration lock");
    if (r < 0)
        goto done;
    locked = true;
    r = exec_ok(c,
                "SET client_min_messages = warning;"
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY CHECK (version > 0),"
                " name text NOT NULL CHECK (length(name) BETWEEN 1 AND 63),"
                " checksum text NOT NULL CHECK (checksum ~ '^[0-9a-f]{64}$'),"
                " applied_at timestamptz NOT NULL DEFAULT now())",
                "creating schema_migrations");
    if (r < 0)
        goto done;
    r = check_applied(c, m, &version);
    if (r < 0)
        goto done;
    for (size_t i = version; i < m->n; i++) {
        r = apply_one(c, &m->v[i]);
        if (r < 0)
            goto done;
        version = m->v[i].version;
    }
    *ret_version = version;
    r = 0;
done:
    if (locked) {
        snprintf(lock_sql, sizeof(lock_sql), "SELECT pg_advisory_unlock(%lld)",
                 SVC_MIGRATION_LOCK_KEY);
        if (exec_ok(c, lock_sql, "releasing the migration lock") < 0 && r == 0)
            r = DKM_E_DB;
    }
    return r;
}
