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
 * of up to 200 records; stops early when the queue is empty or the
 * connection is lost. Keeper thread only.
 */
void ks_audit_flush(PGconn *conn, int rounds);

/* Free whatever is still queued (at stop, after the last flush). */
void ks_audit_discard(void);

#endif
