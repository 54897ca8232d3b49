/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Questions about the secure arena (secreg.c) that need no allocator:
 * whether an address holds a secret, an allocation's size, the arena's
 * totals. The formatter behind logs and error details asks them, so this
 * header and its module depend on nothing else of dkm; secmem.h, the
 * allocator's header, includes it.
 */
#ifndef DKM_SECREG_H
#define DKM_SECREG_H

#include <stdbool.h>
#include <stddef.h>

/* Whether p points into a live secure allocation (any byte of it). */
bool dkm_secmem_contains(const void *p);

/* The size asked for at allocation, when p is the pointer dkm_secmem_alloc
 * returned; 0 for any other pointer, interior ones included. */
size_t dkm_secmem_size(const void *p);

/* Number of live allocations and locked bytes, for metrics and tests. */
void dkm_secmem_stats(size_t *ret_allocations, size_t *ret_locked_bytes);

#endif
