/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target "uri": the bytes of a dkm: URI as the provider receives
 * them, through the functions that read them: dkm_uri_parse with listing
 * allowed (OSSL_STORE, store.c) and without (an EVP_SKEY, skey.c), and
 * dkm_uri_from_key (the -K key of `openssl enc`, cipher.c). Whatever is
 * accepted must be a valid URI whose canonical text parses back to the
 * same URI, and whose cipher key, when it has one, does too.
 */
#include <string.h>

#include "dkm/base/uri.h"
#include "fuzz.h"

static bool uri_equal(const struct dkm_uri *a, const struct dkm_uri *b)
{
    return a->list == b->list && a->version == b->version &&
           strcmp(a->group, b->group) == 0;
}

/* What an accepted URI must satisfy. */
static void check_uri(const struct dkm_uri *u)
{
    char text[DKM_URI_MAX + 1];
    uint8_t key[DKM_URI_KEY_LEN];
    struct dkm_uri again;

    FUZZ_CHECK(u->list ? u->group[0] == '\0'
                       : dkm_group_valid(u->group, strnlen(u->group, DKM_GROUP_MAX + 1)));
    FUZZ_CHECK(dkm_uri_format(u, text, sizeof(text)) == 0);
    FUZZ_CHECK(dkm_uri_parse(text, strlen(text), DKM_URI_ALLOW_LIST, &again, NULL) == 0);
    FUZZ_CHECK(uri_equal(u, &again));
    if (!u->list && dkm_uri_to_key(u, key) == 0) {
        FUZZ_CHECK(dkm_uri_from_key(key, sizeof(key), &again) == 0);
        FUZZ_CHECK(uri_equal(u, &again));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    const char *reason = NULL;
    struct dkm_uri u;
    bool ok = false;

    if (dkm_uri_parse(text, size, DKM_URI_ALLOW_LIST, &u, &reason) == 0) {
        check_uri(&u);
        ok = true;
    } else {
        FUZZ_CHECK(reason != NULL && reason[0] != '\0');
    }
    if (dkm_uri_parse(text, size, 0, &u, NULL) == 0) {
        FUZZ_CHECK(!u.list);
        check_uri(&u);
        ok = true;
    }
    if (dkm_uri_from_key(data, size, &u) == 0) {
        FUZZ_CHECK(!u.list && size == DKM_URI_KEY_LEN);
        check_uri(&u);
        ok = true;
    }
    if (ok)
        dkm_fuzz_accept();
    return 0;
}
