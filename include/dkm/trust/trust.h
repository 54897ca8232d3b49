/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The pinned trust chain of the service client: the authorized server
 * lists from the one the node pinned (config `trust`) through its signed
 * successors, as dkmd hands them out (GET /v1/trust) and as the client
 * keeps them in its cache directory ("trust.lists") for new processes and
 * for offline use. Every chain is verified from the pin whenever it is
 * read, from the network or from disk. Private to common/; the file
 * format is described in docs/provider.md.
 */
#ifndef DKM_COMMON_TRUST_H
#define DKM_COMMON_TRUST_H

#include <stdint.h>

#include <jansson.h>

#include "dkm/base/error.h"
#include "dkm/trust/records.h"

#define DKM_TRUST_FILE "trust.lists"
/* The file's magic (docs/provider.md), then a u16 version. */
#define DKM_TRUST_FILE_MAGIC "DKTL"
#define DKM_TRUST_FILE_VERSION 1
/* Lists in one chain, on disk or in an answer. */
#define DKM_TRUST_LISTS_MAX 256

/*
 * Load dir/trust.lists and verify it from pin: the pinned list must be in
 * it and each later one signed by a key of the one before. On success
 * *ret is the newest list of the chain. -ENOENT when dir is NULL or the
 * file does not exist; DKM_E_FORMAT when it is not such a file;
 * DKM_E_SIGNATURE when the chain does not verify. Each with a detail.
 */
DKM_MUSTCHECK int dkm_trust_load(const char *dir, const uint8_t pin[DKM_FINGERPRINT_SIZE],
                                 struct dkm_server_list *ret);

/*
 * Accept the JSON answer of GET /v1/trust ({"lists": [base64url, ...]}):
 * decode, find the pinned list, verify its successors, refuse a chain
 * whose newest list is older than min_version (the caller already trusts
 * that version: going back would bring back removed servers; 0 accepts
 * any), and keep the verified chain in dir/trust.lists when dir is not
 * NULL (best effort: a failure to write is only logged). *ret is the
 * newest list. DKM_E_PROTOCOL for a malformed answer, DKM_E_SIGNATURE
 * when the chain does not verify or goes back.
 */
DKM_MUSTCHECK int dkm_trust_accept_answer(const json_t *answer,
                                          const uint8_t pin[DKM_FINGERPRINT_SIZE],
                                          uint32_t min_version, const char *dir,
                                          struct dkm_server_list *ret);

#endif
