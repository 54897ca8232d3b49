/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Helpers every admin job uses: failing a job with a reason for the
 * client, and naming the actor of its request for the audit log.
 */
#include "job.h"

#include <stdarg.h>
#include <stdio.h>

#include "http.h"

void ks_job_fail(struct ks_job *job, int status, const char *error, const char *fmt, ...)
{
    va_list ap;

    job->status = status;
    snprintf(job->error, sizeof(job->error), "%s", error);
    va_start(ap, fmt);
    vsnprintf(job->detail, sizeof(job->detail), fmt, ap);
    va_end(ap);
    json_decref(job->reply);
    job->reply = NULL;
}

void ks_actor(const struct svc_req *r, char *buf, size_t size)
{
    if (r->actor[0] != '\0')
        snprintf(buf, size, "%s", r->actor);
    else
        snprintf(buf, size, "admin:uid=%u", (unsigned)r->peer_uid);
}
