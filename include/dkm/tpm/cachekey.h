/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The local cache key: 32 random bytes sealed to this machine's TPM,
 * which the provider uses to protect its disk cache entries. A cache
 * entry written on one machine is then useless on another, and a copy of
 * the cache directory decrypts nothing without this TPM.
 *
 * The key is a keyed-hash sealed-data object under the storage root key,
 * stored as a TPM object file (docs/formats.md, "Cache key file") named
 * DKM_CACHEKEY_FILE in the cache directory. It is created on first use
 * and unsealed once per process, through a salted session with parameter
 * encryption, into secure memory (secmem.h).
 */
#ifndef DKM_CACHEKEY_H
#define DKM_CACHEKEY_H

#include <stddef.h>
#include <stdint.h>

#include "dkm/base/error.h"
#include "dkm/tpm/tpm.h"

#define DKM_CACHEKEY_SIZE 32
#define DKM_CACHEKEY_MAGIC 0x444b434bu /* "DKCK" */
#define DKM_CACHEKEY_FILE "cache.key"

struct dkm_cachekey;

/*
 * Load the cache key of directory dir (which must exist), creating it
 * when dir has no DKM_CACHEKEY_FILE yet. Two processes racing to create
 * it end up with the same key: the file is published atomically and the
 * loser loads the winner's. DKM_E_TPM_NOT_MINE when the file was sealed
 * by another TPM (or before the TPM was cleared), DKM_E_FORMAT when it is
 * malformed, DKM_E_INTEGRITY when the TPM refuses its private blob; the
 * file is never replaced in those cases. Free *ret with
 * dkm_cachekey_free.
 */
DKM_MUSTCHECK int dkm_cachekey_open(struct dkm_tpm *tpm, const char *dir,
                                    struct dkm_cachekey **ret);

/* Zeroise and free. NULL is accepted. */
void dkm_cachekey_free(struct dkm_cachekey *ck);

/* The DKM_CACHEKEY_SIZE key bytes, in secure memory owned by ck. */
const uint8_t *dkm_cachekey_bytes(const struct dkm_cachekey *ck);

#endif
