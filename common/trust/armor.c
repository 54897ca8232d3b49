/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Text armor for card files (include/dkm/trust/armor.h), shared by node cards
 * and server cards, each with its own label.
 */
#include "dkm/trust/armor.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dkm/base/codec.h"

#define ARMOR_LINE 64
#define ARMOR_LABEL_MAX 32

static bool label_ok(const char *label)
{
    size_t n = label != NULL ? strnlen(label, ARMOR_LABEL_MAX + 1) : 0;

    if (n == 0 || n > ARMOR_LABEL_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(label[i] == ' ' || (label[i] >= 'A' && label[i] <= 'Z')))
            return false;
    return true;
}

int dkm_armor_encode(const char *label, const uint8_t *buf, size_t len, size_t max_len,
                     char **ret)
{
    char begin[ARMOR_LABEL_MAX + 24], end[ARMOR_LABEL_MAX + 24];
    size_t b64_len, lines, cap, o;
    char *b64 = NULL, *out = NULL;
    int r;

    if (!label_ok(label) || buf == NULL || ret == NULL || len == 0 || len > max_len)
        return dkm_error_set(-EINVAL, "dkm_armor_encode: bad argument");
    snprintf(begin, sizeof(begin), "-----BEGIN %s-----\n", label);
    snprintf(end, sizeof(end), "-----END %s-----\n", label);
    b64_len = dkm_b64url_encoded_len(len);
    lines = (b64_len + ARMOR_LINE - 1) / ARMOR_LINE;
    cap = strlen(begin) + b64_len + lines + strlen(end) + 1;
    b64 = malloc(b64_len + 1);
    out = malloc(cap);
    if (b64 == NULL || out == NULL) {
        r = dkm_error_set(-ENOMEM, "out of memory armoring %s", label);
        goto done;
    }
    r = dkm_b64url_encode(buf, len, b64, b64_len + 1);
    if (r < 0)
        goto done;
    o = strlen(begin);
    memcpy(out, begin, o);
    for (size_t i = 0; i < b64_len; i += ARMOR_LINE) {
        size_t n = b64_len - i < ARMOR_LINE ? b64_len - i : ARMOR_LINE;

        memcpy(out + o, b64 + i, n);
        o += n;
        out[o++] = '\n';
    }
    memcpy(out + o, end, strlen(end) + 1);
    *ret = out;
    out = NULL;
    r = 0;
done:
    free(b64);
    free(out);
    return r;
}

/* Next line without its "\n" or "\r\n"; false at the end. */
static bool next_line(const char **p, const char *end, const char **ret, size_t *ret_len)
{
    const char *s = *p, *nl;

    if (s >= end)
        return false;
    nl = memchr(s, '\n', (size_t)(end - s));
    *ret = s;
    *ret_len = nl != NULL ? (size_t)(nl - s) : (size_t)(end - s);
    *p = nl != NULL ? nl + 1 : end;
    if (*ret_len > 0 && (*ret)[*ret_len - 1] == '\r')
        (*ret_len)--;
    return true;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int dkm_armor_decode(const char *label, const char *text, size_t len, size_t max_text,
                     uint8_t **ret, size_t *ret_len)
{
    char begin[ARMOR_LABEL_MAX + 24], end_line[ARMOR_LABEL_MAX + 24];
    const char *p, *end, *line;
    size_t line_len, b64_len = 0, n = 0;
    char *b64 = NULL;
    uint8_t *out = NULL;
    bool ended = false;
    int r = DKM_E_FORMAT;

    if (!label_ok(label) || text == NULL || ret == NULL || ret_len == NULL)
        return dkm_error_set(-EINVAL, "dkm_armor_decode: bad argument");
    if (len > max_text)
        return dkm_error_set(DKM_E_FORMAT, "%s text is more than %zu bytes", label,
                             max_text);
    snprintf(begin, sizeof(begin), "-----BEGIN %s-----", label);
    snprintf(end_line, sizeof(end_line), "-----END %s-----", label);
    p = text;
    end = text + len;
    while (p < end && is_space(*p))
        p++;
    while (end > p && is_space(end[-1]))
        end--;
    if (!next_line(&p, end, &line, &line_len) || line_len != strlen(begin) ||
        memcmp(line, begin, line_len) != 0)
        return dkm_error_set(DKM_E_FORMAT, "%s text does not start with %s", label,
                             begin);
    b64 = malloc(len + 1);
    if (b64 == NULL)
        return dkm_error_set(-ENOMEM, "out of memory reading %s", label);
    while (next_line(&p, end, &line, &line_len)) {
        if (line_len == strlen(end_line) && memcmp(line, end_line, line_len) == 0) {
            ended = true;
            break;
        }
        if (line_len == 0 || line_len > ARMOR_LINE) {
            r = dkm_error_set(DKM_E_FORMAT,
                              "%s text: a line of %zu characters inside the armor", label,
                              line_len);
            goto done;
        }
        memcpy(b64 + b64_len, line, line_len);
        b64_len += line_len;
    }
    if (!ended || p != end) {
        r = dkm_error_set(DKM_E_FORMAT,
                          ended ? "%s text: text after %s" : "%s text: no %s line", label,
                          end_line);
        goto done;
    }
    if (b64_len == 0) {
        r = dkm_error_set(DKM_E_FORMAT, "%s text: the armor is empty", label);
        goto done;
    }
    out = malloc(b64_len);
    if (out == NULL) {
        r = dkm_error_set(-ENOMEM, "out of memory reading %s", label);
        goto done;
    }
    r = dkm_b64url_decode(b64, b64_len, out, b64_len, &n);
    if (r < 0) {
        r = dkm_error_set(DKM_E_FORMAT, "%s: %s", label, dkm_error_detail());
        goto done;
    }
    *ret = out;
    *ret_len = n;
    out = NULL;
    r = 0;
done:
    free(out);
    free(b64);
    return r;
}
