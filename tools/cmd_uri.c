/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dkmctl uri-hex: the -K value that names a dkm key for
 * `openssl enc -DKM-AES-256-GCM`, whose "key" is the URI itself.
 */
#include "dkmctl.h"

#include <stdio.h>
#include <string.h>

#include "dkm/base/codec.h"
#include "dkm/base/uri.h"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: dkmctl uri-hex URI\n"
            "\n"
            "Print the 128 hex digits that stand for URI where openssl enc wants a key:\n"
            "  openssl enc -provider dkm -provider default -DKM-AES-256-GCM \\\n"
            "      -K $(dkmctl uri-hex dkm:GROUP) -in FILE -out FILE.dkm\n"
            "The value is the URI's canonical text (dkm:GROUP or dkm:GROUP/VERSION),\n"
            "NUL-padded to 64 bytes; it is a name, not a secret. URIs longer than\n"
            "64 bytes in canonical form do not fit and are refused.\n");
}

int dkmctl_cmd_uri_hex(const struct dkmctl_globals *g, int argc, char **argv)
{
    uint8_t key[DKM_URI_KEY_LEN];
    char hex[2 * DKM_URI_KEY_LEN + 1];
    struct dkm_uri uri;
    int r;

    (void)g;
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return DKMCTL_EXIT_OK;
    }
    if (argc != 2) {
        usage(stderr);
        return DKMCTL_EXIT_USAGE;
    }
    r = dkm_uri_parse(argv[1], strlen(argv[1]), 0, &uri, NULL);
    if (r == 0)
        r = dkm_uri_to_key(&uri, key);
    if (r == 0)
        r = dkm_hex_encode(key, sizeof(key), hex, sizeof(hex));
    if (r < 0) {
        dkmctl_report(argv[1], r);
        return dkmctl_exit_code(r);
    }
    printf("%s\n", hex);
    return DKMCTL_EXIT_OK;
}
