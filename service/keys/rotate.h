/* SPDX-License-Identifier: Apache-2.0 */
/*
 * New key versions (rotate.c): sealing a fresh key to every server on
 * the list, the statements that store it, rotation now or by the timer,
 * and expiry.
 */
#ifndef DKM_KS_ROTATE_H
#define DKM_KS_ROTATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dkm/base/error.h"
#include "dkm/tpm/node.h"
#include "dkm/trust/records.h"
#include "job.h"
#include "write.h"

/* Rotate one group now (also used by the timer). */
DKM_MUSTCHECK int ks_rotate_group(struct ks_ctx *ctx, const char *group,
                                  uint32_t *ret_version);
/*
 * Seal a fresh random key as version `version` of group to every server
 * on the current list and add the statements that store it (key_versions
 * row with `state`, one key_copies row per server) to stmts. The records
 * are malloc'd into recs (free each with free()); *n counts statements.
 */
#define KS_MAX_STMTS (DKM_SERVER_LIST_MAX + 8) /* with a state head (write.h) */
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

#endif
