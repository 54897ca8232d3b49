/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The audit queue (audit.c): any thread queues a record, the keeper
 * writes them in batches on its connection and drains the queue at stop.
 */
#ifndef DKM_KS_AUDIT_H
#define DKM_KS_AUDIT_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

/* Queue an audit record (written in batches by the keeper). Thread-safe;
 * nothing is queued while the key service is off. */
void ks_audit(const char *actor, const char *action, const char *target,
              const char *outcome, const char *detail);

/* Audit records queued and not yet written. */
size_t ks_audit_pending(void);

/* Whether ks_audit queues (the keeper turns it on once started, off at stop). */
void ks_audit_enable(bool on);

/*
 * Write queued records on conn (the keeper's), at most `rounds` batches
 * of up to 5000 records; stops early when the queue is empty or the
 * connection is lost. Keeper thread only.
 */
void ks_audit_flush(PGconn *conn, int rounds);

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
