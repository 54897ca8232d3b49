/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Monotonic time for deadlines and latencies, shared by the framework and
 * the key service.
 */
#ifndef DKM_SVC_CLOCK_H
#define DKM_SVC_CLOCK_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

static inline void svc_now_mono(struct timespec *ts)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
}

static inline uint64_t svc_mono_ns(void)
{
    struct timespec ts;

    svc_now_mono(&ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint64_t svc_mono_ms(void)
{
    return svc_mono_ns() / 1000000u;
}

static inline bool svc_after(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec > b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec > b->tv_nsec);
}

static inline void svc_deadline_in(struct timespec *ts, unsigned seconds)
{
    svc_now_mono(ts);
    ts->tv_sec += seconds;
}

#endif
