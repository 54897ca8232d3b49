/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the two files of the seed generator share: gen_corpus.c (main,
 * and the seeds of the unsigned formats: URIs, cards, protect blobs,
 * streams, request bodies, HTTP answers, configurations) and
 * gen_signed.c (the seeds that carry signatures or TPM-shaped objects:
 * records, envelopes, the disk-cache entry, the trust chain, TPM object
 * files). Test code.
 */
#ifndef DKM_TESTS_FUZZ_GEN_CORPUS_H
#define DKM_TESTS_FUZZ_GEN_CORPUS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "dkm/base/error.h"
#include "fuzz.h"

#define NOW DKM_FUZZ_NOW
#define YEAR (366ull * 24 * 3600)

/* A generator that cannot make a seed stops: a seed must never be skipped. */
#define CHECK(cond, what)                                                                \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "gen_corpus: %s failed (%s)\n", (what), dkm_error_detail()); \
            exit(1);                                                                     \
        }                                                                                \
    } while (0)

/* Write OUTDIR/target/name: prefix (plen bytes, may be 0) then data. */
void gen_put2(const char *target, const char *name, const void *prefix, size_t plen,
              const void *data, size_t len);
void gen_put(const char *target, const char *name, const void *data, size_t len);
void gen_put_text(const char *target, const char *name, const char *text);

/* gen_signed.c. gen_records hands out server list version 2 (malloc'd)
 * for the trust seeds. */
void gen_records(uint8_t **ret_v2, size_t *ret_v2_len);
void gen_envelope(void);
void gen_diskcache(void);
void gen_trust(uint8_t *v2, size_t v2_len);
void gen_tpmobject(void);

#endif
