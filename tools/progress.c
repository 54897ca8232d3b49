/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What dkmctl shows while dkmd works on a long admin request: a thread
 * that asks GET /v1/progress once a second, on a client of its own,
 * while the request waits for its answer on the main thread, and prints
 * how far the operation is to stderr (one line rewritten in place on a
 * terminal, a line per change otherwise), so stdout keeps only the
 * answer. The request and its answer are unchanged: dkmd answers it when
 * it is done, as before, and a dkmd without /v1/progress only means no
 * progress is shown.
 */
#include "dkmctl.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "dkm/base/error.h"
#include "dkm/client/client.h"

#define POLL_MS 1000

struct dkmctl_watch {
    struct dkm_client *client;
    bool admin;
    struct dkmctl_watch_spec spec;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop;
    bool tty;
    bool shown; /* something was printed */
    char last[160];
};

/* Wait POLL_MS or until stopped; true when stopped. */
static bool wait_or_stop(struct dkmctl_watch *w)
{
    struct timespec until;
    bool stop;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += POLL_MS / 1000;
    until.tv_nsec += (long)(POLL_MS % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&w->lock);
    while (!w->stop && pthread_cond_timedwait(&w->cond, &w->lock, &until) != ETIMEDOUT)
        ;
    stop = w->stop;
    pthread_mutex_unlock(&w->lock);
    return stop;
}

/* The operation we wait for, as /v1/progress reports it: a line, or "" if none. */
static void describe(const struct dkmctl_watch *w, const json_t *p, char *buf,
                     size_t size)
{
    const char *op = json_string_value(json_object_get(p, "operation"));
    const char *target = json_string_value(json_object_get(p, "target"));
    long long done = dkmctl_jnum(p, "done"), total = dkmctl_jnum(p, "total");
    long long secs = dkmctl_jnum(p, "elapsed_ms") / 1000;

    buf[0] = '\0';
    if (!json_is_true(json_object_get(p, "running")) || op == NULL ||
        strcmp(op, w->spec.operation) != 0 ||
        (w->spec.target != NULL &&
         (target == NULL || strcmp(target, w->spec.target) != 0)))
        return;
    if (total > 0)
        snprintf(buf, size, "dkmctl: %s: %s %lld/%lld (%lld%%), %lld s", w->spec.what,
                 dkmctl_jstr(p, "phase"), done, total, done * 100 / total, secs);
    else
        snprintf(buf, size, "dkmctl: %s: %s, %lld s", w->spec.what,
                 dkmctl_jstr(p, "phase"), secs);
}

static void *watch_main(void *arg)
{
    struct dkmctl_watch *w = arg;
    char line[sizeof(w->last)];

    while (!wait_or_stop(w)) {
        json_t *ans = NULL;
        int r = dkm_client_call(w->client, w->admin, "GET", "/v1/progress", NULL, &ans);

        if (r == -ENOENT || r == DKM_E_PROTOCOL || r == DKM_E_DENIED) {
            /* A dkmd without progress reports: nothing to show. */
            json_decref(ans);
            break;
        }
        if (r < 0)
            continue; /* a busy or restarting dkmd; the request says what happened */
        describe(w, ans, line, sizeof(line));
        json_decref(ans);
        if (line[0] == '\0' || strcmp(line, w->last) == 0)
            continue;
        if (w->tty)
            fprintf(stderr, "\r%s\033[K", line);
        else
            fprintf(stderr, "%s\n", line);
        fflush(stderr);
        snprintf(w->last, sizeof(w->last), "%s", line);
        w->shown = true;
    }
    return NULL;
}

int dkmctl_watch_start(struct dkm_client *c, bool admin,
                       const struct dkmctl_watch_spec *spec, struct dkmctl_watch **ret)
{
    struct dkmctl_watch *w = calloc(1, sizeof(*w));

    if (w == NULL)
        return -ENOMEM;
    w->client = c;
    w->admin = admin;
    w->spec = *spec;
    w->tty = isatty(STDERR_FILENO) == 1;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    if (pthread_create(&w->thread, NULL, watch_main, w) != 0) {
        pthread_cond_destroy(&w->cond);
        pthread_mutex_destroy(&w->lock);
        free(w);
        return -EAGAIN;
    }
    *ret = w;
    return 0;
}

void dkmctl_watch_stop(struct dkmctl_watch *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->lock);
    w->stop = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    if (w->tty && w->shown)
        fputc('\n', stderr);
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->lock);
    free(w);
}
