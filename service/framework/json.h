/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Strict JSON request bodies (json.c): declared members only, typed and
 * bounded, no duplicates; and the error body of every reply.
 */
#ifndef DKM_SVC_JSON_H
#define DKM_SVC_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "dkm/base/error.h"

enum svc_json_type {
    SVC_JSON_STRING, /* UTF-8 text, length in bytes within [min, max] */
    SVC_JSON_B64URL, /* base64url text whose decoded length is within [min, max] */
    SVC_JSON_UINT,   /* integer within [min, max] */
    SVC_JSON_BOOL,
};

struct svc_json_field {
    const char *name;
    enum svc_json_type type;
    bool required;
    uint64_t min;
    uint64_t max;
};

/* Upper bound of a request body's JSON nesting and member count. */
#define SVC_JSON_MAX_FIELDS 32

/*
 * Parse a request body strictly: one JSON object (nothing after it), no
 * duplicate keys, every member named in fields (no others), each of its
 * declared type and bounds, and all required members present. On success
 * *ret is a new reference the caller must json_decref. On failure returns
 * -EINVAL and writes a reason for the client into why (never secret: the
 * reason names fields, not values).
 */
DKM_MUSTCHECK int svc_json_parse(const void *text, size_t len,
                                 const struct svc_json_field *fields, size_t nfields,
                                 json_t **ret, char *why, size_t why_size);

/*
 * The decoded bytes of a base64url member already checked by
 * svc_json_parse. Returns 0 or -EINVAL/-ENOBUFS; *ret_len set on success.
 */
DKM_MUSTCHECK int svc_json_get_b64url(const json_t *obj, const char *name, void *out,
                                      size_t out_size, size_t *ret_len);

/*
 * The error body {"error": error, "detail": detail} as compact JSON text
 * (malloc'd, NUL-terminated); detail may be NULL (then omitted).
 * Returns NULL only when out of memory.
 */
char *svc_json_error_body(const char *error, const char *detail);

#endif
