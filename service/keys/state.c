/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The key service's state in memory: one immutable snapshot of the server
 * lists, node entries, group policies, key versions, ACLs and this
 * server's unsealed keys, built from the database by the keeper thread
 * and read by the request handlers without any database round trip. (Its
 * cache of import blobs, blobcache.c, is filled by the handlers.)
 *
 * Every signed row is verified when loaded: the server list chain from
 * the pinned v1, then the state head, node entries, policies, grants and
 * sealed copies against the last list. A row that fails is logged (once:
 * a reload does not log again what its predecessor refused), counted
 * (/v1/health's refused_rows, by kind) and left out, so it is never
 * served. Unsigned copies of signed fields (a node's hostname column) are
 * never used; one that disagrees with its record is reported the same way.
 *
 * Rollback: what this server has seen (seen.h) is compared with every
 * load. A node entry, policy or grant with a lower serial than the one
 * seen for its key is an older record put back and is refused; a state
 * head or a server list chain below the highest seen fails the whole load
 * (the database went back). Keys already unsealed for the previous
 * snapshot are shared with the new one; only new versions cost a TPM
 * unseal, and a load that unseals reports its progress (progress.h): at
 * start, that is every version in use.
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
#include "dkm/trust/nodecard.h"
#include "seen.h"
#include "state.h"
#include "tpm_metrics.h"

const char *const ks_refusal_names[KS_REF_KINDS] = {
    [KS_REF_SERVER_LIST] = "server_list",
    [KS_REF_NODE] = "node",
    [KS_REF_POLICY] = "policy",
    [KS_REF_COPY] = "sealed_copy",
    [KS_REF_GRANT] = "grant",
    [KS_REF_HEAD] = "state_head",
};

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
    free(g->grants);
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
    free(s->refusals);
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

static int grant_cmp(const void *a, const void *b)
{
    return memcmp(&((const struct ks_grant *)a)->node_id,
                  &((const struct ks_grant *)b)->node_id, DKM_NODE_ID_SIZE);
}

const struct ks_grant *ks_group_grant(const struct ks_group *g,
                                      const struct dkm_node_id *id)
{
    struct ks_grant key = {.node_id = *id};

    if (g->ngrants == 0)
        return NULL;
    return bsearch(&key, g->grants, g->ngrants, sizeof(*g->grants), grant_cmp);
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

/* FNV-1a over the parts of a refusal: the same refusal has the same digest. */
static uint64_t refusal_digest(const char *what, const char *which, const char *why)
{
    const char *parts[3] = {what, which, why};
    uint64_t h = 0xcbf29ce484222325ull;

    for (int i = 0; i < 3; i++) {
        for (const char *p = parts[i]; *p; p++)
            h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
        h = (h ^ 0xff) * 0x100000001b3ull;
    }
    return h;
}

static bool refusal_known(const struct ks_snapshot *s, uint64_t d)
{
    for (size_t i = 0; s != NULL && i < s->nrefusals; i++)
        if (s->refusals[i] == d)
            return true;
    return false;
}

/*
 * Count a refused row of a kind and log it, unless the snapshot this
 * load replaces refused the same row for the same reason: every refusal
 * is logged once, not on every reload.
 */
static void refuse_kind(struct ks_loader *l, struct ks_snapshot *s, enum ks_refusal kind,
                        const char *what, const char *which)
{
    const char *why = dkm_error_detail();
    uint64_t d = refusal_digest(what, which, why);
    uint64_t *v;

    s->refused++;
    s->refused_by[kind]++;
    if (strstr(why, "rollback") != NULL)
        s->rollbacks++;
    if (refusal_known(s, d))
        return;
    v = realloc(s->refusals, (s->nrefusals + 1) * sizeof(*v));
    if (v != NULL) {
        s->refusals = v;
        s->refusals[s->nrefusals++] = d;
    }
    if (!refusal_known(l->prev, d))
        log_event(DKM_LOG_ERR, "state.refused kind=%s which=%s reason=%s", what, which,
                  why);
}

/* Remember a record's serial: merged into l->seen when the load succeeds. */
struct observations {
    struct ks_seen_entry *v;
    size_t n, cap;
};

static int observe(struct observations *o, uint8_t kind,
                   const uint8_t key[KS_SEEN_KEY_SIZE], uint64_t serial)
{
    if (o->n == o->cap) {
        size_t cap = o->cap ? 2 * o->cap : 64;
        struct ks_seen_entry *v = realloc(o->v, cap * sizeof(*v));

        if (v == NULL)
            return -ENOMEM;
        o->v = v;
        o->cap = cap;
    }
    o->v[o->n].kind = kind;
    memcpy(o->v[o->n].key, key, KS_SEEN_KEY_SIZE);
    o->v[o->n++].serial = serial;
    return 0;
}

/*
 * Whether a record of key with this serial is older than one seen: then
 * DKM_E_INTEGRITY with a detail naming the rollback, else 0.
 */
static int check_serial(const struct ks_loader *l, uint8_t kind,
                        const uint8_t key[KS_SEEN_KEY_SIZE], uint64_t serial)
{
    uint64_t seen = ks_seen_get(l->seen, kind, key);

    if (serial < seen)
        return dkm_error_set(DKM_E_INTEGRITY,
                             "rollback: serial %llu is older than serial %llu already "
                             "seen (an older signed record was put back)",
                             (unsigned long long)serial, (unsigned long long)seen);
    return 0;
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
            refuse_kind(l, s, KS_REF_SERVER_LIST, "server_list", which);
            break;
        }
        if (s->nlists == 0)
            r = dkm_server_list_verify_pinned(rec, len, l->pin, &next);
        else
            r = dkm_server_list_verify_next(&s->list, rec, len, &next);
        if (r < 0) {
            free(rec);
            /* The chain stops at the first bad link: later lists cannot be trusted. */
            refuse_kind(l, s, KS_REF_SERVER_LIST, "server_list", which);
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
    /* A server removed by a later list must not come back with it. */
    if (r == 0 && l->seen != NULL && s->list.list_version < l->seen->list_version)
        r = dkm_error_set(DKM_E_INTEGRITY,
                          "rollback: the verified server lists end at v%u, but this "
                          "server has seen v%u (a list was removed from the database, "
                          "or it was restored from an older backup); see "
                          "docs/operations.md on restoring",
                          s->list.list_version, l->seen->list_version);
done:
    PQclear(res);
    return r;
}

/*
 * A node's entry: signed by a server on the list, of format 2 (format 1
 * only for the upgrade), not older than the one seen. Its hostname is
 * the signed one; a hostname column that says otherwise is reported.
 */
static int load_nodes(struct ks_loader *l, struct ks_snapshot *s, struct observations *o)
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
        uint8_t *rec = join_record(res, i, 1, 2, &len), key[KS_SEEN_KEY_SIZE];
        char which[DKM_NODE_ID_HEX_SIZE] = "?", column[256] = "";
        bool has_column = !PQgetisnull(res, i, 3);

        if (PQgetlength(res, i, 0) == DKM_NODE_ID_SIZE)
            dkm_node_id_hex((const struct dkm_node_id *)PQgetvalue(res, i, 0), which);
        if (has_column)
            snprintf(column, sizeof(column), "%.*s", PQgetlength(res, i, 3),
                     PQgetvalue(res, i, 3));
        if (rec == NULL) {
            dkm_error_set(DKM_E_FORMAT, "missing or malformed signed entry");
            refuse_kind(l, s, KS_REF_NODE, "node", which);
            continue;
        }
        if (dkm_node_entry_decode(rec, len, &node->entry) < 0 ||
            dkm_record_verify(&s->list, DKM_SIGCTX_NODE_ENTRY, rec, len) < 0) {
            free(rec);
            memset(node, 0, sizeof(*node));
            refuse_kind(l, s, KS_REF_NODE, "node", which);
            continue;
        }
        free(rec);
        if (PQgetlength(res, i, 0) != DKM_NODE_ID_SIZE ||
            memcmp(PQgetvalue(res, i, 0), node->entry.node_id.bytes, DKM_NODE_ID_SIZE)) {
            memset(node, 0, sizeof(*node));
            dkm_error_set(DKM_E_INTEGRITY, "the entry names another node");
            refuse_kind(l, s, KS_REF_NODE, "node", which);
            continue;
        }
        if (node->entry.format < DKM_NODE_ENTRY_VERSION && !l->legacy) {
            memset(node, 0, sizeof(*node));
            dkm_error_set(
                DKM_E_INTEGRITY,
                "an entry of format 1 (no serial, no signed hostname) after the "
                "upgrade to schema version 2: not one this deployment signs");
            refuse_kind(l, s, KS_REF_NODE, "node", which);
            continue;
        }
        ks_seen_key(node->entry.node_id.bytes, DKM_NODE_ID_SIZE, NULL, 0, key);
        if (check_serial(l, KS_SEEN_NODE, key, node->entry.serial) < 0) {
            memset(node, 0, sizeof(*node));
            refuse_kind(l, s, KS_REF_NODE, "node", which);
            continue;
        }
        /* A revocation in the row counts even if the entry was put back. */
        if (PQgetvalue(res, i, 4)[0] && node->entry.revoked_at == 0)
            node->entry.revoked_at = 1;
        if (node->entry.format < DKM_NODE_ENTRY_VERSION) {
            /* Upgrade only: format 1 signed no hostname; the column is
             * what the upgrade will sign, if it is a valid name. */
            if (has_column && dkm_hostname_check(column) == 0)
                snprintf(node->hostname, sizeof(node->hostname), "%s", column);
        } else {
            snprintf(node->hostname, sizeof(node->hostname), "%s", node->entry.hostname);
            if (has_column ? strcmp(column, node->entry.hostname) != 0
                           : node->entry.hostname[0] != '\0') {
                /* The node stays (its entry is genuine); the column is not used. */
                dkm_error_set(DKM_E_INTEGRITY,
                              "the hostname column (\"%.64s\") is not the signed "
                              "hostname (\"%.64s\"); the signed one is used",
                              column, node->entry.hostname);
                refuse_kind(l, s, KS_REF_NODE, "node_hostname", which);
            }
        }
        if (node->entry.serial != 0 &&
            observe(o, KS_SEEN_NODE, key, node->entry.serial) < 0) {
            r = -ENOMEM;
            goto done;
        }
        s->nnodes++;
    }
    if (s->nnodes > 1)
        qsort(s->nodes, s->nnodes, sizeof(*s->nodes), node_cmp);
    r = 0;
done:
    PQclear(res);
    return r;
}

static int load_groups(struct ks_loader *l, struct ks_snapshot *s, struct observations *o)
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
        uint8_t *rec = join_record(res, i, 1, 2, &len), key[KS_SEEN_KEY_SIZE];

        if (rec == NULL) {
            dkm_error_set(DKM_E_FORMAT, "malformed policy columns");
            refuse_kind(l, s, KS_REF_POLICY, "group_policy", name);
            continue;
        }
        if (dkm_group_policy_decode(rec, len, &g->policy) < 0 ||
            dkm_record_verify(&s->list, DKM_SIGCTX_GROUP_POLICY, rec, len) < 0) {
            free(rec);
            memset(g, 0, sizeof(*g));
            refuse_kind(l, s, KS_REF_POLICY, "group_policy", name);
            continue;
        }
        if (strcmp(g->policy.group, name) != 0) {
            free(rec);
            memset(g, 0, sizeof(*g));
            dkm_error_set(DKM_E_INTEGRITY, "the policy names another group");
            refuse_kind(l, s, KS_REF_POLICY, "group_policy", name);
            continue;
        }
        /* An older policy put back (a longer TTL, no PCR binding): refused,
         * and the group is not served until a current one is stored. */
        ks_seen_key(g->policy.group, strlen(g->policy.group), NULL, 0, key);
        if (check_serial(l, KS_SEEN_POLICY, key, g->policy.serial) < 0) {
            free(rec);
            memset(g, 0, sizeof(*g));
            refuse_kind(l, s, KS_REF_POLICY, "group_policy", name);
            continue;
        }
        for (unsigned b = 0; b < 24; b++)
            nvalues += (g->policy.pcr_mask >> b) & 1u;
        if (g->policy.pcr_mask != 0 &&
            dkm_dup_policy_pcr(g->policy.pcr_mask, &g->policy.pcr_values[0][0],
                               32 * nvalues, g->policy_digest) < 0) {
            free(rec);
            memset(g, 0, sizeof(*g));
            refuse_kind(l, s, KS_REF_POLICY, "group_policy", name);
            continue;
        }
        if (observe(o, KS_SEEN_POLICY, key, g->policy.serial) < 0) {
            free(rec);
            memset(g, 0, sizeof(*g));
            r = -ENOMEM;
            goto done;
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
/* The version of group/version in prev whose key is unsealed, or NULL. */
static const struct ks_version *held_version(const struct ks_snapshot *prev,
                                             const char *group, uint32_t version)
{
    const struct ks_group *g;
    const struct ks_version *v;

    if (prev == NULL || (g = ks_snapshot_group(prev, group)) == NULL ||
        (v = ks_group_version(g, version)) == NULL || v->key == NULL)
        return NULL;
    return v;
}

/* prev's key of group/version with a reference taken, or NULL. */
static struct ks_key *prev_key(const struct ks_snapshot *prev, const char *group,
                               uint32_t version)
{
    const struct ks_version *v = held_version(prev, group, version);

    if (v == NULL)
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

bool ks_version_servable(const struct ks_version *v, uint64_t now)
{
    return v->state != KS_EXPIRED && v->state != KS_DESTROYED &&
           (v->expires_at == 0 || now < v->expires_at);
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
        const struct ks_version *v =
            g != NULL ? ks_group_version(g, get_u32(res, i, 1)) : NULL;

        if (v != NULL && ks_version_servable(v, (uint64_t)time(NULL)) &&
            held_version(prev, g->name, v->version) == NULL)
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
            refuse_kind(l, s, KS_REF_COPY, "sealed_copy", which);
            continue;
        }
        if (dkm_sealed_copy_decode(rec, len, &c) < 0 ||
            dkm_record_verify(&s->list, DKM_SIGCTX_SEALED_COPY, rec, len) < 0) {
            free(rec);
            refuse_kind(l, s, KS_REF_COPY, "sealed_copy", which);
            continue;
        }
        if (strcmp(c.group, name) != 0 || c.version != version ||
            !dkm_node_id_equal(&c.holder, &l->self)) {
            free(rec);
            dkm_error_set(DKM_E_INTEGRITY, "the copy is for another key or server");
            refuse_kind(l, s, KS_REF_COPY, "sealed_copy", which);
            continue;
        }
        v->created_at = c.created_at;
        v->expires_at = c.expires_at;
        if (!ks_version_servable(v, (uint64_t)time(NULL))) {
            /* An expired version is never served: its key is not held. */
            free(rec);
            continue;
        }
        v->key = prev_key(prev, name, version);
        if (v->key == NULL) {
            r = unseal_copy(l, &c, &v->key);
            if (unseal > 0)
                ks_progress_step(&prog);
            if (r < 0) {
                free(rec);
                refuse_kind(l, s, KS_REF_COPY, "sealed_copy", which);
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

/*
 * Grants: a node is a member of a group only through a signed grant
 * record of state granted, for this group and node (the row's key
 * columns must be the record's), not older than the one seen. Rows of
 * schema version 1 (no record) are taken only for the upgrade.
 */
static int load_grants(struct ks_loader *l, struct ks_snapshot *s, struct observations *o)
{
    PGresult *res = NULL;
    int r, n;

    r = query(l->conn, "SELECT group_name, node_id, record, signature FROM group_access",
              NULL, &res);
    if (r < 0)
        return r;
    n = PQntuples(res);
    for (int i = 0; i < n; i++) {
        const char *name = PQgetvalue(res, i, 0);
        struct ks_group *g = (struct ks_group *)ks_snapshot_group(s, name);
        struct ks_grant gr = {0};
        struct dkm_grant rec;
        struct ks_grant *v;
        uint8_t *buf = NULL, key[KS_SEEN_KEY_SIZE];
        size_t len = 0;
        char which[DKM_GROUP_MAX + DKM_NODE_ID_HEX_SIZE + 8], hex[DKM_NODE_ID_HEX_SIZE];

        if (PQgetlength(res, i, 1) != DKM_NODE_ID_SIZE) {
            snprintf(which, sizeof(which), "%s/?", name);
            dkm_error_set(DKM_E_FORMAT, "malformed node id column");
            refuse_kind(l, s, KS_REF_GRANT, "grant", which);
            continue;
        }
        memcpy(gr.node_id.bytes, PQgetvalue(res, i, 1), DKM_NODE_ID_SIZE);
        dkm_node_id_hex(&gr.node_id, hex);
        snprintf(which, sizeof(which), "%s/%s", name, hex);
        if (PQgetisnull(res, i, 2) && l->legacy) {
            gr.state = DKM_GRANT_GRANTED;
            gr.legacy = true;
        } else {
            buf = join_record(res, i, 2, 3, &len);
            if (buf == NULL) {
                dkm_error_set(DKM_E_INTEGRITY, "%s",
                              PQgetisnull(res, i, 2)
                                  ? "no signed grant record: written without a server"
                                  : "malformed grant columns");
                refuse_kind(l, s, KS_REF_GRANT, "grant", which);
                continue;
            }
            r = dkm_grant_decode(buf, len, &rec);
            if (r == 0)
                r = dkm_record_verify(&s->list, DKM_SIGCTX_GRANT, buf, len);
            free(buf);
            if (r == 0 && (strcmp(rec.group, name) != 0 ||
                           !dkm_node_id_equal(&rec.node_id, &gr.node_id)))
                r = dkm_error_set(DKM_E_INTEGRITY,
                                  "the grant record is for another group or node");
            if (r == 0) {
                ks_seen_key(rec.group, strlen(rec.group), rec.node_id.bytes,
                            DKM_NODE_ID_SIZE, key);
                r = check_serial(l, KS_SEEN_GRANT, key, rec.serial);
            }
            if (r < 0) {
                refuse_kind(l, s, KS_REF_GRANT, "grant", which);
                continue;
            }
            gr.serial = rec.serial;
            gr.state = rec.state;
            gr.at = rec.at;
            gr.signer = rec.signer;
            if (observe(o, KS_SEEN_GRANT, key, rec.serial) < 0) {
                r = -ENOMEM;
                goto done;
            }
        }
        if (g == NULL)
            continue; /* its policy was refused: nothing of it is served */
        v = realloc(g->grants, (g->ngrants + 1) * sizeof(*v));
        if (v == NULL) {
            r = -ENOMEM;
            goto done;
        }
        g->grants = v;
        g->grants[g->ngrants++] = gr;
        if (gr.state == DKM_GRANT_GRANTED) {
            struct dkm_node_id *m = realloc(g->members, (g->nmembers + 1) * sizeof(*m));

            if (m == NULL) {
                r = -ENOMEM;
                goto done;
            }
            g->members = m;
            g->members[g->nmembers++] = gr.node_id;
        }
    }
    for (size_t i = 0; i < s->ngroups; i++) {
        struct ks_group *g = &s->groups[i];

        if (g->nmembers > 1)
            qsort(g->members, g->nmembers, DKM_NODE_ID_SIZE, id_cmp);
        if (g->ngrants > 1)
            qsort(g->grants, g->ngrants, sizeof(*g->grants), grant_cmp);
    }
    r = 0;
done:
    PQclear(res);
    return r;
}

/*
 * The state head: signed by a server on the list, not below the highest
 * counter seen (below it, the whole load fails: the database went back).
 * A missing or refused head is counted and the load goes on: each record
 * is still checked against its own serial, and the next write stores a
 * new head.
 */
static int load_head(struct ks_loader *l, struct ks_snapshot *s)
{
    struct dkm_state_head h;
    PGresult *res = NULL;
    uint64_t seen = l->seen != NULL ? l->seen->head : 0;
    size_t len = 0;
    uint8_t *rec;
    int r;

    s->head_raw = -1;
    r = query(l->conn, "SELECT counter, body, signature FROM state_head", NULL, &res);
    if (r < 0)
        return r;
    if (PQntuples(res) != 1) {
        if (!l->legacy && seen > 0) {
            dkm_error_set(DKM_E_INTEGRITY,
                          "there is no state head (this server has seen "
                          "head %llu)",
                          (unsigned long long)seen);
            refuse_kind(l, s, KS_REF_HEAD, "state_head", "-");
        }
        goto done;
    }
    s->head_raw = (int64_t)get_u64(res, 0, 0);
    rec = join_record(res, 0, 1, 2, &len);
    r = rec != NULL ? 0 : dkm_error_set(DKM_E_FORMAT, "malformed state head columns");
    if (r == 0)
        r = dkm_state_head_decode(rec, len, &h);
    if (r == 0)
        r = dkm_record_verify(&s->list, DKM_SIGCTX_STATE_HEAD, rec, len);
    if (r == 0 && (int64_t)h.counter != s->head_raw)
        r = dkm_error_set(DKM_E_INTEGRITY,
                          "the counter column is not the signed counter");
    free(rec);
    if (r < 0) {
        refuse_kind(l, s, KS_REF_HEAD, "state_head", "-");
        r = 0;
        goto done;
    }
    if (h.counter < seen) {
        r = dkm_error_set(DKM_E_INTEGRITY,
                          "rollback: the database's state head is %llu, but this server "
                          "has seen %llu: the database was restored from an older "
                          "backup or rolled back; refusing it (docs/operations.md, "
                          "\"Restore\")",
                          (unsigned long long)h.counter, (unsigned long long)seen);
        goto done;
    }
    s->head = h.counter;
    r = 0;
done:
    PQclear(res);
    return r;
}

/* Keep what this load saw (after it succeeded): the seen file only rises. */
static int remember(struct ks_loader *l, const struct ks_snapshot *s,
                    struct observations *o)
{
    bool changed = false;
    int r;

    if (l->seen == NULL)
        return 0;
    r = ks_seen_merge(l->seen, o->v, o->n, &changed);
    if (r < 0)
        return r;
    if (s->head > l->seen->head) {
        l->seen->head = s->head;
        changed = true;
    }
    if (s->list.list_version > l->seen->list_version) {
        l->seen->list_version = s->list.list_version;
        changed = true;
    }
    if (!changed || l->seen_path == NULL)
        return 0;
    r = ks_seen_save(l->seen_path, l->seen);
    if (r < 0)
        return dkm_error_set(r, "cannot keep what was seen in %s: %s", l->seen_path,
                             dkm_error_detail());
    return 0;
}

int ks_snapshot_load(struct ks_loader *l, const struct ks_snapshot *prev,
                     struct ks_snapshot **ret)
{
    struct observations obs = {0};
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
    l->prev = prev;
    s->legacy = l->legacy;
    r = load_lists(l, s);
    if (r == 0)
        r = load_head(l, s);
    if (r == 0)
        r = load_nodes(l, s, &obs);
    if (r == 0)
        r = load_groups(l, s, &obs);
    if (r == 0)
        r = load_versions(l, s);
    if (r == 0)
        r = load_copies(l, prev, s);
    if (r == 0)
        r = load_grants(l, s, &obs);
    PQclear(PQexec(l->conn, "COMMIT"));
    l->prev = NULL;
    /* The upgrade's snapshot is not remembered: it took unsigned rows. */
    if (r == 0 && !l->legacy)
        r = remember(l, s, &obs);
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
    free(obs.v);
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

void ks_refused_by(uint64_t ret[KS_REF_KINDS], uint64_t *ret_rollbacks)
{
    struct ks_snapshot *s = ks_snapshot_get();

    for (int i = 0; i < KS_REF_KINDS; i++)
        ret[i] = s != NULL ? s->refused_by[i] : 0;
    *ret_rollbacks = s != NULL ? s->rollbacks : 0;
    ks_snapshot_put(s);
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
