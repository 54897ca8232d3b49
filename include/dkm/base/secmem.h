/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Secure memory for key material.
 *
 * Every allocation lives in its own run of pages inside the secure arena:
 * a PROT_NONE guard page before and after it, the pages locked in RAM,
 * excluded from core dumps, and not visible to a forked child. The buffer
 * is placed so that it ends (rounded up to 16 bytes) at the guard page
 * that follows it, so a linear overrun faults at once. Memory comes from
 * memfd_secret(2) where the kernel has it (pages removed from the
 * kernel's direct map), else from anonymous mmap with MADV_DONTDUMP and
 * MADV_WIPEONFORK. Freed memory is zeroised before it is unmapped.
 *
 * Locking can fail when RLIMIT_MEMLOCK is exhausted: the allocation then
 * fails with DKM_E_MEMLOCK and a detail naming the limit, never a crash
 * and never a silent fallback to unlocked memory.
 */
#ifndef DKM_SECMEM_H
#define DKM_SECMEM_H

#include <stdbool.h>
#include <stddef.h>

#include "dkm/base/error.h"
#include "dkm/base/secreg.h" /* contains, size, stats */

enum dkm_secmem_backend {
    DKM_SECMEM_MEMFD_SECRET, /* memfd_secret(2), MADV_DONTFORK: a child has no mapping */
    DKM_SECMEM_ANON,         /* mmap anonymous, MADV_WIPEONFORK: a child sees zeros */
};

/* Largest single allocation, in bytes. */
#define DKM_SECMEM_MAX_ALLOC (1024u * 1024u)

/*
 * Allocate size bytes (1..DKM_SECMEM_MAX_ALLOC) of zeroed secure memory,
 * aligned to 16 bytes. On success sets *ret and returns 0; on failure
 * returns -EINVAL (bad size), -ENOMEM, or DKM_E_MEMLOCK, with a detail
 * (dkm_error_detail()). Thread-safe.
 */
DKM_MUSTCHECK int dkm_secmem_alloc(size_t size, void **ret);

/*
 * Zeroise and release an allocation. p must be the pointer that
 * dkm_secmem_alloc returned; NULL is accepted and ignored. Anything else (a
 * stray, interior or already-freed pointer) is a bug: it is logged and the
 * process aborts, as glibc does for its heap.
 */
void dkm_secmem_free(void *p);

/*
 * Which backend the arena uses; decided once, on first use. Setting the
 * environment variable DKM_SECMEM_BACKEND=anon before first use forces
 * the anonymous backend (for tests and for kernels where memfd_secret is
 * present but unwanted).
 */
enum dkm_secmem_backend dkm_secmem_backend(void);

/* Zeroise a buffer in a way the compiler cannot elide. */
void dkm_memzero(void *p, size_t n);

#endif
