/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the fuzz targets (tests/fuzz/fuzz_<name>.c), their replay runner
 * (replay_main.c) and the seed generator (gen_corpus.c) share: the
 * libFuzzer entry point, the verdict a target reports for an input (the
 * product accepted it, or not), a check that turns a broken promise of
 * the code under test into a crash the fuzzer records, and fixed test
 * keys. The keys are derived from fixed labels, and signatures with them
 * are deterministic, so the seeds the generator writes and the trust the
 * targets hold agree without any file passed between them. None of this
 * is product code: the deterministic ECDSA here is for test fixtures only.
 */
#ifndef DKM_TESTS_FUZZ_H
#define DKM_TESTS_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <tss2/tss2_tpm2_types.h>

#include "dkm/tpm/node.h"
#include "dkm/trust/records.h"
#include "dkm/trust/sign.h"

/* The one function every target defines (libFuzzer's interface). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * The clock of the targets, 2026-01-01T00:00:00Z: expiry and freshness
 * are checked against it, never against the real time, so a seed stays
 * valid and a verdict never depends on the day.
 */
#define DKM_FUZZ_NOW 1767225600ull
/* Group and version of the disk-cache entry and of the stream. */
#define DKM_FUZZ_GROUP "fuzz"
#define DKM_FUZZ_VERSION 7u

/* A target calls this when the product accepted the input as a whole. */
void dkm_fuzz_accept(void);
/* The replay runner: forget the last verdict, and read it. */
void dkm_fuzz_reset(void);
bool dkm_fuzz_accepted(void);

/* Report a broken promise of the code under test and abort. */
__attribute__((noreturn)) void dkm_fuzz_fail(const char *file, int line,
                                             const char *what);

/* Abort (a crash the fuzzer keeps) when cond is false; also with NDEBUG. */
#define FUZZ_CHECK(cond)                                                                 \
    do {                                                                                 \
        if (!(cond))                                                                     \
            dkm_fuzz_fail(__FILE__, __LINE__, #cond);                                    \
    } while (0)

/* The fixed keys and identities, made once on first use. */
struct dkm_fuzz_keys {
    /* the one server: its EK (so its node id) and its signing key (SK) */
    TPM2B_PUBLIC server_ek;
    struct dkm_node_id server_id;
    EVP_PKEY *server_sk;
    struct dkm_p256_public server_sk_pub;
    /* the software key the SK delegates responses to */
    EVP_PKEY *delegated;
    struct dkm_p256_public delegated_pub;
    /* the node the fetch responses and sealed objects are made for */
    TPM2B_PUBLIC node_ek;
    struct dkm_node_id node_id;
    /* server list version 1 with the one server, signed by it, its
     * encoding and the fingerprint a node pins */
    struct dkm_server_list trust;
    uint8_t trust_encoded[4096];
    size_t trust_encoded_len;
    uint8_t trust_pin[DKM_FINGERPRINT_SIZE];
};

/* The keys; aborts if they cannot be made. */
const struct dkm_fuzz_keys *dkm_fuzz_keys(void);

/*
 * Sign (context, msg) as sign.h says, deterministically, with one of the
 * fixed keys (server_sk or delegated). 0 or -1.
 */
int dkm_fuzz_sign(EVP_PKEY *key, const char *context, const void *msg, size_t len,
                  uint8_t ret_sig[DKM_SIG_SIZE]);

/* A records.h signer: the fixed server's SK and node id. */
struct dkm_signer dkm_fuzz_server_signer(void);

/* The group key of group/version the protect and stream targets use. */
void dkm_fuzz_group_key(const char *group, uint32_t version, uint8_t ret[32]);

/*
 * A directory private to this process (mode 0700, removed at exit), for
 * the targets whose product function reads a file.
 */
const char *dkm_fuzz_tmpdir(void);

/* Write size bytes to path (replacing it). 0 or -1. */
int dkm_fuzz_write_file(const char *path, const uint8_t *data, size_t size);

#endif
