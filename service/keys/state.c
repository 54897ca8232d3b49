/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The key service's state in memory: one immutable snapshot of the server
 * lists, node entries, group policies, key versions, ACLs and this
 * server's unsealed keys, built from the database by the keeper thread
 * and read by the request handlers without any database round trip. (Its
 * cache of import blobs, blobcache.c, is filled by the handlers.)
 *
 * Every signed row is verified when loaded: the server list chain from
 * the pinned v1, then node entries, policies and sealed copies against
 * the last list. A row that fails is logged, counted (/v1/health's
 * refused_rows) and left out, so it is never served. Keys already
 * unsealed for the previous snapshot are shared with the new one; only
 * new versions cost a TPM unseal, and a load that unseals reports its
 * progress (progress.h): at start, that is every version in use.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dkm/tpm/dup.h"
#include "dkm/base/log.h"
#include "dkm/base/secmem.h"
#include "dkm/tpm/unseal.h"
#include "blobcache.h"
#include "clock.h"
#include "progress.h"
#include "state.h"
#include "tpm_metrics.h"

static void key_unref(struct ks_key *k)
{
    if (k == NULL || atomic_fetch_sub(&k->refs, 1) != 1)
        return;
    dkm_secmem_free(k->secret);
    free(k);
}

void ks_deleg_unref(struct ks_deleg *d)
{
    if (d == NULL || atomic_fetch_sub(&d->refs, 1) != 1)
        return;
    dkm_delegated_key_free(d->dk);
    free(d);
}

static void group_clear(struct ks_group *g)
{
    free(g->policy_rec);
    for (size_t i = 0; i < g->nversions; i++)
        key_unref(g->versions[i].key);
    free(g->versions);
    free(g->members);
}

void ks_snapshot_unref(struct ks_snapshot *s)
{
    if (s == NULL || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    for (size_t i = 0; i < s->nlists; i++)
        free(s->lists[i]);
    free(s->lists);
    free(s->list_lens);
    free(s->nodes);
    for (size_t i = 0; i < s->ngroups; i++)
        group_clear(&s->groups[i]);
    free(s->groups);
    ks_deleg_unref(s->deleg);
    ks_blobcache_free(s->blobs);
    free(s);
}

static int node_cmp(const void *a, const void *b)
{
    return memcmp(&((const struct ks_node *)a)->entry.node_id,
                  &((const struct ks_node *)b)->entry.node_id, DKM_NODE_ID_SIZE);
}

static int group_cmp(const void *a, const void *b)
{
    return strcmp(((const struct ks_group *)a)->name, ((const struct ks_group *)b)->name);
}

static int id_cmp(const void *a, const void *b)
{
    return memcmp(a, b, DKM_NODE_ID_SIZE);
}

static int version_cmp(const void *a, const void *b)
{
    uint32_t x = ((const struct ks_version *)a)->version;
    uint32_t y = ((const struct ks_version *)b)->version;

    return x < y ? -1 : x > y;
}

const struct ks_node *ks_snapshot_node(const struct ks_snapshot *s,
                                       const struct dkm_node_id *id)
{
    struct ks_node key;

    key.entry.node_id = *id;
    if (s->nnodes == 0)
        return NULL;
    return bsearch(&key, s->nodes, s->nnodes, sizeof(*s->nodes), node_cmp);
}

const struct ks_group *ks_snapshot_group(const struct ks_snapshot *s, const char *name)
{
    struct ks_group key;

    if (strlen(name) > DKM_GROUP_MAX || s->ngroups == 0)
        return NULL;
    strcpy(key.name, name);
    return bsearch(&key, s->groups, s->ngroups, sizeof(*s->groups), group_cmp);
}

bool ks_group_member(const struct ks_group *g, const struct dkm_node_id *id)
{
    if (g->nmembers == 0)
        return false;
    return bsearch(id, g->members, g->nmembers, sizeof(*g->members), id_cmp) != NULL;
}

const struct ks_version *ks_group_version(const struct ks_group *g, uint32_t version)
{
    struct ks_version key = {.version = version};

    if (g->nversions == 0)
        return NULL;
    return bsearch(&key, g->versions, g->nversions, sizeof(*g->versions), version_cmp);
}

/* ---- loading ------------------------------------------------------------ */

static int query(PGconn *conn, const char *sql, const struct dkm_node_id *param,
                 PGresult **ret)
{
    const char *values[1] = {param != NULL ? (const char *)param->bytes : NULL};
    int lengths[1] = {DKM_NODE_ID_SIZE}, formats[1] = {1};
    PGresult *res;

    res = PQexecParams(conn, sql, param != NULL ? 1 : 0, NULL, values, lengths, formats,
                       /* resultFormat= */ 1);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        int r = dkm_error_set(DKM_E_DB, "loading the key state failed: %s",
                              PQresultErrorMessage(res));
        PQclear(res);
        return r;
    }
    *ret = res;
    return 0;
}

static uint32_t get_u32(PGresult *res, int row, int col)
{
    uint32_t v;

    if (PQgetlength(res, row, col) != 4)
        return 0;
    memcpy(&v, PQgetvalue(res, row, col), 4);
    return ntohl(v);
}

static uint64_t get_u64(PGresult *res, int row, int col)
{
    const uint8_t *p = (const uint8_t *)PQgetvalue(res, row, col);
    uint64_t v = 0;

    if (PQgetlength(res, row, col) != 8)
        return 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

/*
 * body || signature of a row, in a malloc'd buffer; NULL when a column is
 * NULL or the sizes are wrong (the caller refuses the row).
 */
static uint8_t *join_record(PGresult *res, int row, int body_col, int sig_col,
                            size_t *ret_len)
{
    size_t blen, slen;
    uint8_t *buf;

    if (PQgetisnull(res, row, body_col) || PQgetisnull(res, row, sig_col))
        return NULL;
    blen = (size_t)PQgetlength(res, row, body_col);
    slen = (size_t)PQgetlength(res, row, sig_col);
    if (slen != DKM_SIG_SIZE || blen < 6 + DKM_NODE_ID_SIZE || blen > DKM_RECORD_MAX)
        return NULL;
    buf = malloc(blen + slen);
    if (buf == NULL)
        return NULL;
    memcpy(buf, PQgetvalue(res, row, body_col), blen);
    memcpy(buf + blen, PQgetvalue(res, row, sig_col), slen);
    *ret_len = blen + slen;
    return buf;
}

static void refuse(struct ks_snapshot *s, const char *what, const char *which)
{
    s->refused++;
    log_event(DKM_LOG_ERR, "state.refused kind=%s which=%s reason=%s", what, which,
              dkm_error_detail());
}

static int load_lists(struct ks_loader *l, struct ks_snapshot *s)
{
    PGresult *res = NULL;
    int r, n;

    r = query(l->conn,
              "SELECT version, body, signature FROM server_lists ORDER BY version", NULL,
              &res);
    if (r < 0)
        return r;
    n = PQntuples(res);
    s->lists = calloc((size_t)n + 1, sizeof(*s->lists));
    s->list_lens = calloc((size_t)n + 1, sizeof(*s->list_lens));
    if (s->lists == NULL || s->list_lens == NULL) {
        r = -ENOMEM;
        goto done;
    }
    for (int i = 0; i < n; i++) {
        struct dkm_server_list next;
        size_t len = 0;
        uint8_t *rec = join_record(res, i, 1, 2, &len);
        char which[32];

        snprintf(which, sizeof(which), "v%u", get_u32(res, i, 0));
        if (rec == NULL) {
            dkm_error_set(DKM_E_FORMAT, "bad column sizes");
            refuse(s, "server_list", which);
            break;
        }
        if (s->nlists == 0)
            r = dkm_server_list_verify_pinned(rec, len, l->pin, &next);
        else
            r = dkm_server_list_verify_next(&s->list, rec, len, &next);
        if (r < 0) {
            free(rec);
            /* The chain stops at the first bad link: later lists cannot be trusted. */
            refuse(s, "server_list", which);
            break;
        }
        s->list = next;
        s->lists[s->nlists] = rec;
        s->list_lens[s->nlists++] = len;
    }
    r = s->nlists > 0 ? 0
                      : dkm_error_set(DKM_E_SIGNATURE,
                                      "no server list v1 with the pinned fingerprint in "
                                      "the database");
done:
    PQclear(res);
    return r;
}

static int load_nodes(struct ks_loader *l, struct ks_snapshot *s)
{
    PGresult *res = NULL;
    int r, n;

    r = query(l->conn,
              "SELECT node_id, entry, signature, hostname, revoked_at IS NOT NULL "
              "FROM nodes",
              NULL, &res);
    if (r < 0)
        return r;
    n = PQntuples(res);
    s->nodes = calloc((size_t)n + 1, sizeof(*s->nodes));
    if (s->nodes == NULL) {
        r = -ENOMEM;
        goto done;
    }
    for (int i = 0; i < n; i++) {
        struct ks_node *node = &s->nodes[s->nnodes];
        size_t len = 0;
        uint8_t *rec = join_record(res, i, 1, 2, &len);
        char which[DKM_NODE_ID_HEX_SIZE] = "?";

        if (PQgetlength(res, i, 0) == DKM_NODE_ID_SIZE)
            dkm_node_id_hex((const struct dkm_node_id *)PQgetvalue(res, i, 0), which);
        if (rec == NULL) {
            dkm_error_set(DKM_E_FORMAT, "missing or malformed signed entry");
            refuse(s, "node", which);
            continue;
        }
        if (dkm_node_entry_decode(rec, len, &node->entry) < 0 ||
            dkm_record_verify(&s->list, DKM_SIGCTX_NODE_ENTRY, rec, len) < 0) {
            free(rec);
            refuse(s, "node", which);
            continue;
        }
        free(rec);
        if (PQgetlength(res, i, 0) != DKM_NODE_ID_SIZE ||
            memcmp(PQgetvalue(res, i, 0), node->entry.node_id.bytes, DKM_NODE_ID_SIZE)) {
            dkm_error_set(DKM_E_INTEGRITY, "the entry names another node");
            refuse(s, "node", which);
            continue;
        }
        /* A revocation in the row counts even if the entry was put back. */
        if (PQgetvalue(res, i, 4)[0] && node->entry.revoked_at == 0)
            node->entry.revoked_at = 1;
        if (!PQgetisnull(res, i, 3))
            snprintf(node->hostname, sizeof(node->hostname), "%.*s",
                     PQgetlength(res, i, 3), PQgetvalue(res, i, 3));
        s->nnodes++;
    }
    if (s->nnodes > 1)
        qsort(s->nodes, s->nnodes, sizeof(*s->nodes), node_cmp);
    r = 0;
done:
    PQclear(res);
    return r;
}

static int load_groups(struct ks_loader *l, struct ks_snapshot *s)
{
    PGresult *res = NULL;
    int r, n;

    r = query(l->conn, "SELECT name, policy, signature FROM groups", NULL, &res);
    if (r < 0)
        return r;
    n = PQntuples(res);
    s->groups = calloc((size_t)n + 1, sizeof(*s->groups));
    if (s->groups == NULL) {
        r = -ENOMEM;
        goto done;
    }
    for (int i = 0; i < n; i++) {
        struct ks_group *g = &s->groups[s->ngroups];
        const char *name = PQgetvalue(res, i, 0);
        size_t len = 0, nvalues = 0;
        uint8_t *rec = join_record(res, i, 1, 2, &len);

        if (rec == NULL) {
            dkm_error_set(DKM_E_FORMAT, "malformed policy columns");
            refuse(s, "group_policy", name);
            continue;
        }
        if (dkm_group_policy_decode(rec, len, &g->policy) < 0 ||
            dkm_record_verify(&s->list, DKM_SIGCTX_GROUP_POLICY, rec, len) < 0) {
            free(rec);
            memset(g, 0, sizeof(*g));
            refuse(s, "group_policy", name);
            continue;
        }
        if (strcmp(g->policy.group, name) != 0) {
            free(rec);
            memset(g, 0, sizeof(*g));
            dkm_error_set(DKM_E_INTEGRITY, "the policy names another group");
            refuse(s, "group_policy", name);
            continue;
        }
        for (unsigned b = 0; b < 24; b++)
            nvalues += (g->policy.pcr_mask >> b) & 1u;
        if (g->policy.pcr_mask != 0 &&
            dkm_dup_policy_pcr(g->policy.pcr_mask, &g->policy.pcr_values[0][0],
                               32 * nvalues, g->policy_digest) < 0) {
            free(rec);
            memset(g, 0, sizeof(*g));
            refuse(s, "group_policy", name);
            continue;
        }
        strcpy(g->name, g->policy.group);
        g->policy_rec = rec;
        g->policy_len = len;
        s->ngroups++;
    }
    if (s->ngroups > 1)
        qsort(s->groups, s->ngroups, sizeof(*s->groups), group_cmp);
    r = 0;
done:
    PQclear(res);
    return r;
}

static enum ks_vstate parse_state(const char *v, int len)
{
    if (len == 6 && memcmp(v, "active", 6) == 0)
        return KS_ACTIVE;
    if (len == 12 && memcmp(v, "decrypt-only", 12) == 0)
        return KS_DECRYPT_ONLY;
    if (len == 7 && memcmp(v, "expired", 7) == 0)
        return KS_EXPIRED;
    return KS_DESTROYED;
}

static int load_versions(struct ks_loader *l, struct ks_snapshot *s)
{
    PGresult *res = NULL;
    int r, n;

    r = query(l->conn,
              "SELECT group_name, version, state, "
              "extract(epoch FROM created_at)::bigint FROM key_versions",
              NULL, &res);
    if (r < 0)
        return r;
    n = PQntuples(res);
    for (int i = 0; i < n; i++) {
        struct ks_group *g =
            (struct ks_group *)ks_snapshot_group(s, PQgetvalue(res, i, 0));
        struct ks_version *v;

        if (g == NULL)
            continue; /* its policy was refused: nothing of it is served */
        v = realloc(g->versions, (g->nversions + 1) * sizeof(*v));
        if (v == NULL) {
            r = -ENOMEM;
            goto done;
        }
        g->versions = v;
        v = &g->versions[g->nversions++];
        memset(v, 0, sizeof(*v));
        v->version = get_u32(res, i, 1);
        v->state = parse_state(PQgetvalue(res, i, 2), PQgetlength(res, i, 2));
        v->created_at = get_u64(res, i, 3);
    }
    for (size_t i = 0; i < s->ngroups; i++) {
        struct ks_group *g = &s->groups[i];

        if (g->nversions > 1)
            qsort(g->versions, g->nversions, sizeof(*g->versions), version_cmp);
        for (size_t j = 0; j < g->nversions; j++)
            if (g->versions[j].state == KS_ACTIVE)
                g->current = g->versions[j].version;
    }
    r = 0;
done:
    PQclear(res);
    return r;
}

/* The key of (group, version) in the previous snapshot, with a new reference. */
static struct ks_key *prev_key(const struct ks_snapshot *prev, const char *group,
                               uint32_t version)
{
    const struct ks_group *g;
    const struct ks_version *v;

    if (prev == NULL || (g = ks_snapshot_group(prev, group)) == NULL ||
        (v = ks_group_version(g, version)) == NULL || v->key == NULL)
        return NULL;
    atomic_fetch_add(&v->key->refs, 1);
    return v->key;
}

static int unseal_copy(struct ks_loader *l, const struct dkm_sealed_copy *c,
                       struct ks_key **ret)
{
    struct dkm_import_blob blob;
    struct timespec start;
    struct ks_key *k = NULL;
    void *secret = NULL;
    size_t len = 0;
    int r;

    r = dkm_dup_decode(c->blob, c->blob_len, &blob);
    if (r < 0)
        goto done;
    svc_now_mono(&start);
    r = dkm_unseal_blob(l->tpm, &blob, NULL, &secret, &len);
    ks_tpm_observe("unseal", &start);
    if (r < 0)
        goto done;
    if (len != KS_KEY_SIZE) {
        r = dkm_error_set(DKM_E_FORMAT, "the sealed key has %zu bytes", len);
        goto done;
    }
    k = calloc(1, sizeof(*k));
    if (k == NULL) {
        r = -ENOMEM;
        goto done;
    }
    atomic_init(&k->refs, 1);
    k->secret = secret;
    k->len = len;
    secret = NULL;
    *ret = k;
    r = 0;
done:
    dkm_secmem_free(secret);
    return r;
}

/* Whether prev holds the key of group/version unsealed already. */
static bool held(const struct ks_snapshot *prev, const char *group, uint32_t version)
{
    const struct ks_group *g;
    const struct ks_version *v;

    return prev != NULL && (g = ks_snapshot_group(prev, group)) != NULL &&
           (v = ks_group_version(g, version)) != NULL && v->key != NULL;
}

static int load_copies(struct ks_loader *l, const struct ks_snapshot *prev,
                       struct ks_snapshot *s)
{
    struct ks_progress prog;
    PGresult *res = NULL;
    size_t unseal = 0;
    int r, n;

    r = query(l->conn,
              "SELECT group_name, version, sealed, signature FROM key_copies "
              "WHERE server_id = $1",
              &l->self, &res);
    if (r < 0)
        return r;
    n = PQntuples(res);
    /* A TPM unseal per copy not held yet: the first load at start, mostly. */
    for (int i = 0; i < n; i++) {
        const struct ks_group *g = ks_snapshot_group(s, PQgetvalue(res, i, 0));

        if (g != NULL && ks_group_version(g, get_u32(res, i, 1)) != NULL &&
            !held(prev, g->name, get_u32(res, i, 1)))
            unseal++;
    }
    if (unseal > 0)
        ks_progress_begin(&prog, "state.load", NULL, "unseal", unseal);
    for (int i = 0; i < n; i++) {
        const char *name = PQgetvalue(res, i, 0);
        struct ks_group *g = (struct ks_group *)ks_snapshot_group(s, name);
        uint32_t version = get_u32(res, i, 1);
        struct ks_version *v =
            g != NULL ? (struct ks_version *)ks_group_version(g, version) : NULL;
        struct dkm_sealed_copy c;
        size_t len = 0;
        uint8_t *rec;
        char which[DKM_GROUP_MAX + 16];

        if (v == NULL)
            continue;
        snprintf(which, sizeof(which), "%s/%u", name, version);
        rec = join_record(res, i, 2, 3, &len);
        if (rec == NULL) {
            dkm_error_set(DKM_E_FORMAT, "malformed sealed copy columns");
            refuse(s, "sealed_copy", which);
            continue;
        }
        if (dkm_sealed_copy_decode(rec, len, &c) < 0 ||
            dkm_record_verify(&s->list, DKM_SIGCTX_SEALED_COPY, rec, len) < 0) {
            free(rec);
            refuse(s, "sealed_copy", which);
            continue;
        }
        if (strcmp(c.group, name) != 0 || c.version != version ||
            !dkm_node_id_equal(&c.holder, &l->self)) {
            free(rec);
            dkm_error_set(DKM_E_INTEGRITY, "the copy is for another key or server");
            refuse(s, "sealed_copy", which);
            continue;
        }
        v->created_at = c.created_at;
        v->expires_at = c.expires_at;
        v->key = prev_key(prev, name, version);
        if (v->key == NULL) {
            r = unseal_copy(l, &c, &v->key);
            if (unseal > 0)
                ks_progress_step(&prog);
            if (r < 0) {
                free(rec);
                refuse(s, "sealed_copy", which);
                continue;
            }
        }
        free(rec);
    }
    if (unseal > 0)
        ks_progress_end(&prog);
    r = 0;
    PQclear(res);
    return r;
}

static int load_access(struct ks_loader *l, struct ks_snapshot *s)
{
    PGresult *res = NULL;
    int r, n;

    r = query(l->conn, "SELECT group_name, node_id FROM group_access", NULL, &res);
    if (r < 0)
        return r;
    n = PQntuples(res);
    for (int i = 0; i < n; i++) {
        struct ks_group *g =
            (struct ks_group *)ks_snapshot_group(s, PQgetvalue(res, i, 0));
        struct dkm_node_id *m;

        if (g == NULL || PQgetlength(res, i, 1) != DKM_NODE_ID_SIZE)
            continue;
        m = realloc(g->members, (g->nmembers + 1) * sizeof(*m));
        if (m == NULL) {
            r = -ENOMEM;
            goto done;
        }
        g->members = m;
        memcpy(g->members[g->nmembers++].bytes, PQgetvalue(res, i, 1), DKM_NODE_ID_SIZE);
    }
    for (size_t i = 0; i < s->ngroups; i++)
        if (s->groups[i].nmembers > 1)
            qsort(s->groups[i].members, s->groups[i].nmembers, DKM_NODE_ID_SIZE, id_cmp);
    r = 0;
done:
    PQclear(res);
    return r;
}

int ks_snapshot_load(struct ks_loader *l, const struct ks_snapshot *prev,
                     struct ks_snapshot **ret)
{
    struct ks_snapshot *s;
    PGresult *res;
    int r;

    s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    atomic_init(&s->refs, 1);
    /* One consistent view of every table. */
    res = PQexec(l->conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        r = dkm_error_set(DKM_E_DB, "cannot start the state load: %s",
                          PQerrorMessage(l->conn));
        PQclear(res);
        goto done;
    }
    PQclear(res);
    r = load_lists(l, s);
    if (r == 0)
        r = load_nodes(l, s);
    if (r == 0)
        r = load_groups(l, s);
    if (r == 0)
        r = load_versions(l, s);
    if (r == 0)
        r = load_copies(l, prev, s);
    if (r == 0)
        r = load_access(l, s);
    PQclear(PQexec(l->conn, "COMMIT"));
    if (r == 0)
        r = ks_blobcache_new(s->nnodes, &s->blobs);
    if (r < 0)
        goto done;
    s->listed = dkm_server_list_find(&s->list, &l->self) != NULL;
    atomic_fetch_add(&l->deleg->refs, 1);
    s->deleg = l->deleg;
    *ret = s;
    s = NULL;
done:
    ks_snapshot_unref(s);
    return r;
}

const struct ks_node *ks_snapshot_node_by_tls(const struct ks_snapshot *s,
                                              const uint8_t key_id[DKM_TLS_KEY_ID_SIZE])
{
    /* Few lookups (admin requests, group listings): a scan will do. */
    for (size_t i = 0; i < s->nnodes; i++) {
        const struct dkm_node_entry *e = &s->nodes[i].entry;

        if (e->has_tls_key && memcmp(e->tls_key, key_id, DKM_TLS_KEY_ID_SIZE) == 0)
            return &s->nodes[i];
    }
    return NULL;
}

/* ---- the current snapshot ---------------------------------------------- */

/* Held for a few instructions: handlers take a reference, the keeper swaps. */
static pthread_mutex_t current_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ks_snapshot *current;

struct ks_snapshot *ks_snapshot_get(void)
{
    struct ks_snapshot *s;

    pthread_mutex_lock(&current_lock);
    s = current;
    if (s != NULL)
        atomic_fetch_add(&s->refs, 1);
    pthread_mutex_unlock(&current_lock);
    return s;
}

uint64_t ks_refused_rows(void)
{
    struct ks_snapshot *s = ks_snapshot_get();
    uint64_t n = s != NULL ? s->refused : 0;

    ks_snapshot_put(s);
    return n;
}

void ks_snapshot_publish(struct ks_snapshot *s)
{
    struct ks_snapshot *old;

    pthread_mutex_lock(&current_lock);
    old = current;
    current = s;
    pthread_mutex_unlock(&current_lock);
    ks_snapshot_unref(old);
}
