/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Admin work as the keeper runs it: the resources a job gets (the
 * keeper's connection, TPM, signing key, current snapshot), the job, and
 * the helpers jobs share (job.c). Handlers submit jobs with ks_submit
 * (keeper.h).
 */
#ifndef DKM_KS_JOB_H
#define DKM_KS_JOB_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "dkm/tpm/tpm.h"
#include "dkm/trust/records.h"
#include "dkm/trust/sign.h"

struct ks_seen;
struct ks_snapshot;
struct svc_req;

/*
 * Admin work: fn runs on the keeper thread with its resources, fills
 * status and reply (a JSON object, or error/detail), and the request is
 * answered on its own worker's loop afterwards.
 */
struct ks_ctx {
    PGconn *conn;
    struct dkm_tpm *tpm;
    struct dkm_signkey *sk;
    struct dkm_signer signer;
    struct ks_snapshot *snap;   /* current snapshot (reloaded after each write) */
    const struct ks_seen *seen; /* what this server has seen (serials only rise) */
    bool reload_failed;         /* the last reload failed: snap is behind */
};
struct ks_job;
typedef void ks_job_fn(struct ks_ctx *ctx, struct ks_job *job);
struct ks_job {
    struct svc_req *req;
    ks_job_fn *fn;
    int status;
    json_t *reply;
    char error[64];
    char detail[256];
    bool wrote; /* reload the snapshot before answering */
};

/* Fail a job: status, a short error and a detail for the client. */
void ks_job_fail(struct ks_job *job, int status, const char *error, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The actor of an admin request, for audit: "admin:uid=N" on the admin
 * socket, "node:<node id>" for an admin node over TLS. */
#define KS_ACTOR_MAX 96
void ks_actor(const struct svc_req *r, char *buf, size_t size);

#endif
