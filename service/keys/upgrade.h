/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one-time signing of schema version 1 rows at the upgrade to
 * version 2 (upgrade.c).
 */
#ifndef DKM_KS_UPGRADE_H
#define DKM_KS_UPGRADE_H

#include <stdbool.h>

#include "dkm/base/error.h"
#include "job.h"
#include "state.h"

/*
 * When the database has no state head and this server has never loaded
 * one (have_seen false): load the state taking version 1 rows, sign each
 * node entry of format 1 again (format 2, serial 1, its hostname column
 * if valid) and each grant row without a record (granted, serial 1) of a
 * verified node and group, and store state head 1, in one transaction
 * under the list lock that also checks that no head exists. Otherwise
 * nothing. *ret_snap (may be NULL on return) is the version 1 snapshot,
 * whose unsealed keys the next load can share; the caller unrefs it.
 */
DKM_MUSTCHECK int ks_upgrade(struct ks_ctx *ctx, struct ks_loader *l, bool have_seen,
                             struct ks_snapshot **ret_snap);

#endif
