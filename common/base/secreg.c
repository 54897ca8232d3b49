/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The registry of live secure allocations: a sorted array on the
 * ordinary heap (addresses and sizes only, never secret bytes) under one
 * mutex, with the fork handlers that keep it true in a child. It answers
 * dkm_secmem_contains/size/stats, which the formatter asks about every %s
 * and %p argument, and it logs nothing and sets no error detail itself:
 * the lowest piece of secure memory, below the logger and the error
 * detail, which the allocator (secmem.c) uses.
 */
#include "dkm/base/secreg.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include "secreg_internal.h"

static struct registry {
    pthread_mutex_t lock;
    struct secreg_region *regions; /* sorted by user address */
    size_t n_regions;
    size_t cap_regions;
    size_t locked_bytes;
    size_t page_size;
    bool memfd_secret;
} R = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .page_size = 4096,
};

int secreg_mlock(void *p, size_t len)
{
    return (int)syscall(SYS_mlock, p, len);
}

static void fork_prepare(void)
{
    pthread_mutex_lock(&R.lock);
}

static void fork_parent(void)
{
    pthread_mutex_unlock(&R.lock);
}

/*
 * In the child, memfd_secret data pages are simply not there
 * (MADV_DONTFORK), so free must not wipe them. Anonymous pages were wiped
 * by the kernel but are no longer locked: memory locks are not inherited.
 * Lock them again; if that fails, make them inaccessible rather than let
 * the child put secrets into swappable memory. Only system calls here:
 * the child of a threaded process may not do more.
 */
static void fork_child(void)
{
    for (size_t i = 0; i < R.n_regions; i++) {
        struct secreg_region *reg = &R.regions[i];
        void *data = (void *)(reg->map + R.page_size);

        if (reg->absent)
            continue;
        if (R.memfd_secret || secreg_mlock(data, reg->data_len) != 0) {
            if (!R.memfd_secret)
                (void)mprotect(data, reg->data_len, PROT_NONE);
            reg->absent = true;
            R.locked_bytes -= reg->data_len;
        }
    }
    pthread_mutex_unlock(&R.lock);
}

int secreg_setup(size_t page_size, bool memfd_secret)
{
    R.page_size = page_size;
    R.memfd_secret = memfd_secret;
    return pthread_atfork(fork_prepare, fork_parent, fork_child);
}

void secreg_lock(void)
{
    pthread_mutex_lock(&R.lock);
}

void secreg_unlock(void)
{
    pthread_mutex_unlock(&R.lock);
}

/* Index of the last region whose user address is <= p, or -1. Lock held. */
static ssize_t find_floor(uintptr_t p)
{
    size_t lo = 0, hi = R.n_regions;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (R.regions[mid].user <= p)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (ssize_t)lo - 1;
}

int secreg_insert(const struct secreg_region *reg)
{
    ssize_t at;

    if (R.n_regions == R.cap_regions) {
        size_t cap = R.cap_regions != 0 ? R.cap_regions * 2 : 64;
        struct secreg_region *n = realloc(R.regions, cap * sizeof(*n));

        if (n == NULL)
            return -ENOMEM;
        R.regions = n;
        R.cap_regions = cap;
    }
    at = find_floor(reg->user) + 1;
    memmove(&R.regions[at + 1], &R.regions[at],
            (R.n_regions - (size_t)at) * sizeof(*reg));
    R.regions[at] = *reg;
    R.n_regions++;
    R.locked_bytes += reg->data_len;
    return 0;
}

bool secreg_take(uintptr_t user, struct secreg_region *ret)
{
    ssize_t at = find_floor(user);

    if (at < 0 || R.regions[at].user != user)
        return false;
    *ret = R.regions[at];
    if (!R.regions[at].absent)
        R.locked_bytes -= R.regions[at].data_len;
    memmove(&R.regions[at], &R.regions[at + 1],
            (R.n_regions - (size_t)at - 1) * sizeof(R.regions[0]));
    R.n_regions--;
    if (R.n_regions == 0) {
        free(R.regions);
        R.regions = NULL;
        R.cap_regions = 0;
    }
    return true;
}

size_t secreg_locked_bytes(void)
{
    return R.locked_bytes;
}

/* The region that holds p (anywhere in the caller's bytes), or NULL. */
static const struct secreg_region *lookup(uintptr_t p)
{
    ssize_t at = find_floor(p);

    if (at < 0 || p - R.regions[at].user >= R.regions[at].size)
        return NULL;
    return &R.regions[at];
}

bool dkm_secmem_contains(const void *p)
{
    bool in;

    if (p == NULL)
        return false;
    pthread_mutex_lock(&R.lock);
    in = lookup((uintptr_t)p) != NULL;
    pthread_mutex_unlock(&R.lock);
    return in;
}

size_t dkm_secmem_size(const void *p)
{
    const struct secreg_region *reg;
    size_t size = 0;

    if (p == NULL)
        return 0;
    pthread_mutex_lock(&R.lock);
    reg = lookup((uintptr_t)p);
    if (reg != NULL && reg->user == (uintptr_t)p)
        size = reg->size;
    pthread_mutex_unlock(&R.lock);
    return size;
}

void dkm_secmem_stats(size_t *ret_allocations, size_t *ret_locked_bytes)
{
    pthread_mutex_lock(&R.lock);
    if (ret_allocations != NULL)
        *ret_allocations = R.n_regions;
    if (ret_locked_bytes != NULL)
        *ret_locked_bytes = R.locked_bytes;
    pthread_mutex_unlock(&R.lock);
}
