/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The audit queue (audit.c): any thread queues a record, a writer thread
 * writes them in batches on its own connection and drains the queue at
 * stop.
 */
#ifndef DKM_KS_AUDIT_H
#define DKM_KS_AUDIT_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "dkm/base/error.h"

/* Queue an audit record (written in batches by the writer thread). Thread-safe;
 * nothing is queued while the key service is off. */
void ks_audit(const char *actor, const char *action, const char *target,
              const char *outcome, const char *detail);

/* Audit records queued and not yet written. */
size_t ks_audit_pending(void);

/* Whether ks_audit queues (the keeper turns it on once started, off at stop). */
void ks_audit_enable(bool on);

/*
 * The writer thread, on a connection of its own (conninfo): it writes the
 * queue in batches until ks_audit_stop(), which returns once everything
 * queued is written (one more connection try if it was lost; what still
 * cannot be written is logged as audit.unwritten).
 */
DKM_MUSTCHECK int ks_audit_start(const char *conninfo);
void ks_audit_stop(void);

/* Wait (at most timeout_ms) until every record queued before the call is
 * written; true when it is. Audit queries call it first. */
bool ks_audit_sync(unsigned timeout_ms);

/*
 * Admin writes: between ks_audit_hold() and ks_audit_write_held(), the
 * records this thread makes are kept aside, and ks_audit_write_held()
 * writes them on conn before the keeper answers the request, so that an
 * acknowledged write has its audit record in the database even if dkmd
 * dies the moment after. Records it cannot write (the connection lost)
 * join the queue and are retried with it. Keeper thread only.
 */
void ks_audit_hold(void);
void ks_audit_write_held(PGconn *conn);

/* Free whatever is still queued (at stop, after the last flush). */
void ks_audit_discard(void);

#endif
