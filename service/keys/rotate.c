/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Key versions: making one (a random key, sealed to every authorized
 * server's EK and signed, stored in the same transaction as its
 * key_versions row, never in clear), rotating a group (the new version
 * becomes active, the old one decrypt-only) and the timer pass that
 * rotates groups whose active version is older than the policy's rotation
 * period and marks versions past their lifetime expired. All of it runs
 * on the keeper thread.
 *
 * Sealing one version's key to one server (ks_seal_copy) is shared with
 * adding a server (servers.c), which seals every live key to the new
 * server's EK the same way. A timer pass that rotates several groups (after
 * a downtime longer than their rotation period, say) reports its progress
 * (progress.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "dkm/tpm/dup.h"
#include "dkm/base/log.h"
#include "dkm/base/secmem.h"
#include "audit.h"
#include "progress.h"
#include "rotate.h"
#include "state.h"
#include "write.h"

void ks_version_write_clear(struct ks_version_write *w)
{
    for (size_t i = 0; i < w->nrecs; i++)
        free(w->recs[i]);
    w->nrecs = 0;
    w->n = 0;
}

int ks_seal_copy(struct ks_ctx *ctx, const char *group, uint32_t version,
                 uint64_t created_at, uint64_t expires_at, const void *key,
                 size_t key_len, const struct dkm_server_entry *holder, uint8_t **ret,
                 size_t *ret_len)
{
    struct dkm_sealed_copy c = {.version = version,
                                .created_at = created_at,
                                .expires_at = expires_at,
                                .holder = holder->node_id};
    struct dkm_import_blob blob;
    uint8_t env[DKM_DUP_ENCODED_MAX];
    int r;

    if (strlen(group) > DKM_GROUP_MAX)
        return dkm_error_set(-EINVAL, "group name too long");
    r = dkm_dup_seal(&holder->ek, key, key_len, 0, NULL, &blob);
    if (r < 0)
        goto done;
    r = dkm_dup_encode(&blob, env, sizeof(env), &c.blob_len);
    if (r < 0)
        goto done;
    c.blob = env;
    strcpy(c.group, group);
    r = dkm_sealed_copy_sign(&c, &ctx->signer, ret, ret_len);
done:
    /* The blob is sealed, not secret; the key stays with the caller. */
    return r;
}

struct ks_stmt ks_copy_stmt(const char *group, const char *version_text,
                            const struct dkm_node_id *holder, const uint8_t *rec,
                            size_t len, const char *created_text)
{
    return (struct ks_stmt){
        .sql = "INSERT INTO key_copies (group_name, version, server_id, sealed, "
               "signature, created_at) VALUES ($1, $2::integer, $3, $4, $5, "
               "to_timestamp($6::bigint))",
        .n = 6,
        .values = {group, version_text, (const char *)holder->bytes, (const char *)rec,
                   (const char *)rec + len - DKM_SIG_SIZE, created_text},
        .lengths = {0, 0, DKM_NODE_ID_SIZE, (int)(len - DKM_SIG_SIZE), DKM_SIG_SIZE, 0},
    };
}

int ks_new_version(struct ks_ctx *ctx, const struct dkm_group_policy *p, uint32_t version,
                   struct ks_version_write *w)
{
    const struct dkm_server_list *list = &ctx->snap->list;
    uint64_t now = (uint64_t)time(NULL);
    void *key = NULL;
    int r;

    if (w->n + 3 + list->count > KS_MAX_STMTS)
        return dkm_error_set(-E2BIG, "too many statements for one key version");
    r = dkm_secmem_alloc(KS_KEY_SIZE, &key);
    if (r < 0)
        goto done;
    if (RAND_priv_bytes(key, KS_KEY_SIZE) != 1) {
        r = dkm_error_set(DKM_E_CRYPTO, "RAND_priv_bytes failed");
        goto done;
    }
    snprintf(w->texts[0], sizeof(w->texts[0]), "%u", version);
    snprintf(w->texts[1], sizeof(w->texts[1]), "%llu", (unsigned long long)now);
    snprintf(w->texts[2], sizeof(w->texts[2]), "%llu",
             (unsigned long long)(now + p->version_lifetime));
    snprintf(w->texts[3], sizeof(w->texts[3]), "%u", list->list_version);
    /*
     * The copies go to the servers of the list this snapshot holds. A
     * server added meanwhile (by this or another dkmd) would get none, so
     * the transaction waits for any server addition in flight and fails if
     * the list is no longer the one sealed to; the write is retried after
     * the reload that the addition's NOTIFY causes.
     */
    w->stmts[w->n++] = (struct ks_stmt){.sql = KS_LIST_LOCK_SQL};
    w->stmts[w->n++] = (struct ks_stmt){
        .sql = KS_LIST_CHECK_SQL,
        .n = 1,
        .values = {w->texts[3]},
    };
    w->stmts[w->n++] = (struct ks_stmt){
        .sql = "INSERT INTO key_versions (group_name, version, state, created_at, "
               "activated_at, expires_at) VALUES ($1, $2::integer, 'active', "
               "to_timestamp($3::bigint), to_timestamp($3::bigint), "
               "to_timestamp($4::bigint))",
        .n = 4,
        .values = {p->group, w->texts[0], w->texts[1], w->texts[2]},
    };
    for (unsigned i = 0; i < list->count; i++) {
        const struct dkm_server_entry *e = &list->entries[i];
        uint8_t *rec = NULL;
        size_t len = 0;

        r = ks_seal_copy(ctx, p->group, version, now, now + p->version_lifetime, key,
                         KS_KEY_SIZE, e, &rec, &len);
        if (r < 0)
            goto done;
        w->recs[w->nrecs++] = rec;
        w->stmts[w->n++] =
            ks_copy_stmt(p->group, w->texts[0], &e->node_id, rec, len, w->texts[1]);
    }
    r = 0;
done:
    dkm_secmem_free(key);
    return r;
}

int ks_rotate_group(struct ks_ctx *ctx, const char *group, uint32_t *ret_version)
{
    const struct ks_group *g = ks_snapshot_group(ctx->snap, group);
    struct ks_version_write w = {0};
    uint32_t next;
    int r;

    if (g == NULL)
        return dkm_error_set(-ENOENT, "no group %s", group);
    next = g->nversions > 0 ? g->versions[g->nversions - 1].version + 1 : 1;
    w.stmts[w.n++] = (struct ks_stmt){
        .sql = "UPDATE key_versions SET state = 'decrypt-only', decrypt_only_at = now() "
               "WHERE group_name = $1 AND state = 'active'",
        .n = 1,
        .values = {g->name},
    };
    r = ks_new_version(ctx, &g->policy, next, &w);
    if (r == 0)
        r = ks_db_write(ctx->conn, w.stmts, w.n);
    ks_version_write_clear(&w);
    if (r < 0)
        return r;
    *ret_version = next;
    return 0;
}

/* After a failed timer rotation, the timer leaves rotation alone this
 * long: a failure that lasts (a database refusing writes, a server list
 * that changed under a refused row) would otherwise be logged and audited
 * every second. Expiry is not held back. */
#define TIMER_ROTATE_BACKOFF 60

/*
 * When the current version must be replaced: after the rotation period,
 * and in any case a little before it expires, so that "current" is never
 * an expired version while its successor waits for the next timer pass
 * (a lifetime equal to the rotation period would leave that gap).
 */
#define ROTATE_BEFORE_EXPIRY 2

static uint64_t rotation_due(const struct ks_group *g, const struct ks_version *cur)
{
    uint64_t due = cur->created_at + g->policy.rotation_period;

    if (cur->expires_at != 0 && cur->expires_at < due + ROTATE_BEFORE_EXPIRY)
        due = cur->expires_at > ROTATE_BEFORE_EXPIRY
                  ? cur->expires_at - ROTATE_BEFORE_EXPIRY
                  : 0;
    return due;
}

/* Whether the timer rotates g in this pass. */
static bool due(const struct ks_group *g, uint64_t now, uint64_t rotate_after)
{
    const struct ks_version *cur = ks_group_version(g, g->current);

    return cur != NULL && rotation_due(g, cur) <= now && now >= rotate_after;
}

bool ks_timer_pass(struct ks_ctx *ctx)
{
    static uint64_t rotate_after;
    uint64_t now = (uint64_t)time(NULL), after = rotate_after;
    struct ks_progress prog;
    size_t ndue = 0;
    bool wrote = false;

    for (size_t i = 0; i < ctx->snap->ngroups; i++)
        ndue += due(&ctx->snap->groups[i], now, after);
    if (ndue > 0)
        ks_progress_begin(&prog, "timer.rotate", NULL, "rotate", ndue);
    for (size_t i = 0; i < ctx->snap->ngroups; i++) {
        const struct ks_group *g = &ctx->snap->groups[i];
        char target[DKM_GROUP_MAX + 16];

        if (due(g, now, after) && now >= rotate_after) {
            uint32_t v = 0;

            snprintf(target, sizeof(target), "group:%s", g->name);
            if (ks_rotate_group(ctx, g->name, &v) == 0) {
                char detail[32];

                snprintf(detail, sizeof(detail), "version %u", v);
                ks_audit("timer", "group.rotate", target, "ok", detail);
                log_event(DKM_LOG_INFO, "group.rotated group=%s version=%u actor=timer",
                          g->name, v);
                wrote = true;
            } else {
                log_event(
                    DKM_LOG_ERR,
                    "group.rotate_failed group=%s actor=timer reason=%s retry_in_s=%u",
                    g->name, dkm_error_detail(), TIMER_ROTATE_BACKOFF);
                ks_audit("timer", "group.rotate", target, "error", dkm_error_detail());
                rotate_after = now + TIMER_ROTATE_BACKOFF;
            }
            ks_progress_step(&prog);
        }
        for (size_t j = 0; j < g->nversions; j++) {
            const struct ks_version *v = &g->versions[j];
            char ver[16], exp[32];

            if (v->expires_at == 0 || v->expires_at > now || v->state == KS_EXPIRED ||
                v->state == KS_DESTROYED)
                continue;
            snprintf(ver, sizeof(ver), "%u", v->version);
            snprintf(exp, sizeof(exp), "%llu", (unsigned long long)v->expires_at);
            {
                struct ks_stmt st = {
                    .sql =
                        "UPDATE key_versions SET state = 'expired', decrypt_only_at = "
                        "coalesce(decrypt_only_at, now()), expires_at = "
                        "to_timestamp($3::bigint) WHERE group_name = $1 AND "
                        "version = $2::integer AND state IN ('active', 'decrypt-only')",
                    .n = 3,
                    .values = {g->name, ver, exp},
                };

                snprintf(target, sizeof(target), "%s/%u", g->name, v->version);
                if (ks_db_write(ctx->conn, &st, 1) == 0) {
                    ks_audit("timer", "version.expire", target, "ok", NULL);
                    log_event(DKM_LOG_INFO, "version.expired group=%s version=%u",
                              g->name, v->version);
                    wrote = true;
                } else {
                    log_event(DKM_LOG_ERR,
                              "version.expire_failed group=%s version=%u reason=%s",
                              g->name, v->version, dkm_error_detail());
                }
            }
        }
    }
    if (ndue > 0)
        ks_progress_end(&prog);
    return wrote;
}
