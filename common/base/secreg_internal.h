/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The registry of live secure allocations (secreg.c) as the allocator
 * (secmem.c) drives it; what everything else may ask it is in
 * dkm/base/secreg.h. Private to common/base/. It logs nothing and sets
 * no error detail, so the logger and the error detail may ask it while
 * the allocator may log.
 */
#ifndef DKM_BASE_SECREG_INTERNAL_H
#define DKM_BASE_SECREG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct secreg_region {
    uintptr_t user;  /* what dkm_secmem_alloc returned */
    size_t size;     /* what the caller asked for */
    uintptr_t map;   /* start of the whole mapping (leading guard page) */
    size_t map_len;  /* both guards included */
    size_t data_len; /* locked data pages */
    bool absent;     /* data pages not mapped here (memfd_secret, after fork) */
};

/*
 * Once, before the first allocation: the page size, whether data pages
 * are memfd_secret (else anonymous), and the fork handlers that keep the
 * registry true in a child. Returns 0, or the error of pthread_atfork
 * (then a fork is not handled; the allocator says so).
 */
int secreg_setup(size_t page_size, bool memfd_secret);

/*
 * The registry mutex, also held by the fork handlers: the allocator holds
 * it across the system calls of an allocation. Nothing that logs or sets
 * an error detail may run while it is held (both ask the registry).
 */
void secreg_lock(void);
void secreg_unlock(void);

/* Lock held: add a region (-ENOMEM when the registry cannot grow). */
int secreg_insert(const struct secreg_region *reg);
/* Lock held: remove the region whose buffer starts at user into *ret. */
bool secreg_take(uintptr_t user, struct secreg_region *ret);
/* Lock held: bytes of data pages locked by live regions. */
size_t secreg_locked_bytes(void);

/*
 * mlock(2) by system call: sanitizer runtimes replace the libc wrapper
 * with a no-op that reports success, and the arena must never believe
 * pages are locked when they are not.
 */
int secreg_mlock(void *p, size_t len);

#endif
