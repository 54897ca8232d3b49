/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What this server has seen of the database (seen.c), kept in its state
 * directory (file "seen", docs/formats.md "Seen file"): the highest state
 * head counter, the highest server list version, and for each node
 * entry, group policy and grant the highest serial loaded. A record with
 * a lower serial than the one seen is an older record put back (a
 * rollback) and is refused, after a reload as after a restart.
 */
#ifndef DKM_KS_SEEN_H
#define DKM_KS_SEEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dkm/base/error.h"

#define KS_SEEN_FILE "seen"
#define KS_SEEN_MAGIC "DKSN"
#define KS_SEEN_VERSION 1
#define KS_SEEN_MAX_ENTRIES 4194304u
#define KS_SEEN_KEY_SIZE 32
#define KS_SEEN_HEADER 22                        /* magic, version, head, list, count */
#define KS_SEEN_ENTRY (1 + KS_SEEN_KEY_SIZE + 8) /* kind, key, serial */

enum ks_seen_kind {
    KS_SEEN_NODE = 1,
    KS_SEEN_POLICY = 2,
    KS_SEEN_GRANT = 3,
};

struct ks_seen_entry {
    uint8_t kind;
    uint8_t key[KS_SEEN_KEY_SIZE];
    uint64_t serial;
};

struct ks_seen {
    uint64_t head;           /* highest state head counter; 0: none */
    uint32_t list_version;   /* highest verified server list version; 0: none */
    struct ks_seen_entry *v; /* sorted by (kind, key), no repeats */
    size_t n;
};

/* The key of a record: SHA-256 of a, then (when b != NULL) 0x00 and b. */
void ks_seen_key(const void *a, size_t alen, const void *b, size_t blen,
                 uint8_t ret[KS_SEEN_KEY_SIZE]);

/* The serial seen for (kind, key), 0 when none. */
uint64_t ks_seen_get(const struct ks_seen *s, uint8_t kind,
                     const uint8_t key[KS_SEEN_KEY_SIZE]);

/*
 * Merge observations (any order, repeats allowed) into s, keeping the
 * highest serial of each key; *ret_changed tells whether anything rose.
 * obs is sorted in place.
 */
DKM_MUSTCHECK int ks_seen_merge(struct ks_seen *s, struct ks_seen_entry *obs, size_t n,
                                bool *ret_changed);

/* Strict decode of the file's bytes (every rule of formats.md). */
DKM_MUSTCHECK int ks_seen_decode(const uint8_t *buf, size_t len, struct ks_seen *ret);
/* The file's bytes; *ret is malloc'd. */
DKM_MUSTCHECK int ks_seen_encode(const struct ks_seen *s, uint8_t **ret, size_t *ret_len);

/* Read path; -ENOENT (and an empty *ret) when there is no such file. */
DKM_MUSTCHECK int ks_seen_load(const char *path, struct ks_seen *ret);
/* Write path atomically (mode 0600). */
DKM_MUSTCHECK int ks_seen_save(const char *path, const struct ks_seen *s);

void ks_seen_clear(struct ks_seen *s);

#endif
