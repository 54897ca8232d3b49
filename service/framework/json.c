/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Strict JSON for request bodies: a body is accepted only if it is exactly
 * one object whose members are all declared by the endpoint, of the
 * declared type and within bounds. Anything a client did not mean to send
 * is an error rather than ignored, so a typo in a field name never turns
 * into a silently different request. Also builds the error body that
 * every 4xx/5xx answer carries.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dkm/base/codec.h"
#include "json.h"

static int why_set(char *why, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int why_set(char *why, size_t size, const char *fmt, ...)
{
    va_list ap;

    if (size > 0) {
        va_start(ap, fmt);
        vsnprintf(why, size, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

static const struct svc_json_field *find_field(const struct svc_json_field *fields,
                                               size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(fields[i].name, name) == 0)
            return &fields[i];
    return NULL;
}

static int check_member(const struct svc_json_field *f, json_t *v, char *why,
                        size_t why_size)
{
    size_t len;

    switch (f->type) {
    case SVC_JSON_STRING:
        if (!json_is_string(v))
            return why_set(why, why_size, "field \"%s\" must be a string", f->name);
        len = json_string_length(v);
        if (len < f->min || len > f->max)
            return why_set(why, why_size, "field \"%s\" must be %llu to %llu bytes long",
                           f->name, (unsigned long long)f->min,
                           (unsigned long long)f->max);
        /* Text fields never carry NUL: it would cut the value in C. */
        if (memchr(json_string_value(v), '\0', len) != NULL)
            return why_set(why, why_size, "field \"%s\" contains a NUL character",
                           f->name);
        return 0;
    case SVC_JSON_B64URL: {
        size_t enc_len, dec_len;
        const char *s;
        if (!json_is_string(v))
            return why_set(why, why_size, "field \"%s\" must be a base64url string",
                           f->name);
        s = json_string_value(v);
        enc_len = json_string_length(v);
        if (enc_len > dkm_b64url_encoded_len(f->max))
            return why_set(why, why_size,
                           "field \"%s\" must decode to at most %llu bytes", f->name,
                           (unsigned long long)f->max);
        /* Decoded length of unpadded base64url, checked by a real decode below. */
        dec_len = enc_len / 4 * 3 + (enc_len % 4 == 0 ? 0 : enc_len % 4 - 1);
        if (enc_len % 4 == 1 || dec_len < f->min || dec_len > f->max)
            return why_set(
                why, why_size, "field \"%s\" must be base64url of %llu to %llu bytes",
                f->name, (unsigned long long)f->min, (unsigned long long)f->max);
        {
            uint8_t *buf = malloc(dec_len + 1);
            size_t got = 0;
            int r;
            if (buf == NULL)
                return -ENOMEM;
            r = dkm_b64url_decode(s, enc_len, buf, dec_len + 1, &got);
            free(buf);
            if (r < 0 || got != dec_len)
                return why_set(why, why_size, "field \"%s\" is not valid base64url",
                               f->name);
        }
        return 0;
    }
    case SVC_JSON_UINT: {
        json_int_t i;
        if (!json_is_integer(v))
            return why_set(why, why_size, "field \"%s\" must be an integer", f->name);
        i = json_integer_value(v);
        if (i < 0 || (uint64_t)i < f->min || (uint64_t)i > f->max)
            return why_set(why, why_size, "field \"%s\" must be from %llu to %llu",
                           f->name, (unsigned long long)f->min,
                           (unsigned long long)f->max);
        return 0;
    }
    case SVC_JSON_BOOL:
        if (!json_is_boolean(v))
            return why_set(why, why_size, "field \"%s\" must be true or false", f->name);
        return 0;
    }
    return why_set(why, why_size, "field \"%s\" has an unknown type", f->name);
}

int svc_json_parse(const void *text, size_t len, const struct svc_json_field *fields,
                   size_t nfields, json_t **ret, char *why, size_t why_size)
{
    json_error_t err;
    json_t *obj = NULL;
    const char *key;
    json_t *value;
    int r = -EINVAL;

    if (len == 0) {
        r = why_set(why, why_size, "the request needs a JSON object body");
        goto done;
    }
    /* Rejecting duplicates closes the "which of the two did you mean" gap. */
    obj = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
    if (obj == NULL) {
        r = why_set(why, why_size, "invalid JSON at line %d column %d: %s", err.line,
                    err.column, err.text);
        goto done;
    }
    if (!json_is_object(obj)) {
        r = why_set(why, why_size, "the body must be a JSON object");
        goto done;
    }
    if (json_object_size(obj) > SVC_JSON_MAX_FIELDS) {
        r = why_set(why, why_size, "the body has too many fields");
        goto done;
    }
    json_object_foreach(obj, key, value)
    {
        const struct svc_json_field *f = find_field(fields, nfields, key);
        if (f == NULL) {
            /* Name the field only if it is short and printable. */
            bool printable = strlen(key) <= 64;
            for (const char *p = key; printable && *p; p++)
                printable = *p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\';
            if (printable)
                r = why_set(why, why_size, "unknown field \"%s\"", key);
            else
                r = why_set(why, why_size, "unknown field");
            goto done;
        }
        r = check_member(f, value, why, why_size);
        if (r < 0)
            goto done;
    }
    for (size_t i = 0; i < nfields; i++) {
        if (fields[i].required && json_object_get(obj, fields[i].name) == NULL) {
            r = why_set(why, why_size, "missing field \"%s\"", fields[i].name);
            goto done;
        }
    }
    *ret = obj;
    obj = NULL;
    r = 0;
done:
    json_decref(obj);
    return r;
}

int svc_json_get_b64url(const json_t *obj, const char *name, void *out, size_t out_size,
                        size_t *ret_len)
{
    json_t *v = json_object_get(obj, name);

    if (!json_is_string(v))
        return -EINVAL;
    return dkm_b64url_decode(json_string_value(v), json_string_length(v), out, out_size,
                             ret_len);
}

char *svc_json_error_body(const char *error, const char *detail)
{
    json_t *o;
    char *text = NULL;

    o = json_object();
    if (o == NULL)
        return NULL;
    if (json_object_set_new(o, "error", json_string(error)) < 0)
        goto done;
    if (detail != NULL && detail[0] != '\0') {
        /* A detail that is not valid UTF-8 would make jansson refuse it. */
        json_t *d = json_string(detail);
        if (d == NULL)
            d = json_string("(detail not shown: not valid UTF-8)");
        if (json_object_set_new(o, "detail", d) < 0)
            goto done;
    }
    text = json_dumps(o, JSON_COMPACT);
done:
    json_decref(o);
    return text;
}
