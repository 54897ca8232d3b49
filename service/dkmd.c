/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dkmd, the key service: command line, configuration and start-up. The
 * HTTP server, database access and key handling live in their own files
 * beside this one.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dkm/log.h"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: dkmd [--config FILE]\n"
            "       dkmd init --config FILE\n"
            "\n"
            "The dkm key service: keeps groups of TPM-sealed keys in PostgreSQL and\n"
            "answers fetches with keys sealed to the requesting node's TPM.\n"
            "\n"
            "Commands:\n"
            "  init            first-server bootstrap: node identity, TPM signing key,\n"
            "                  server list v1, TLS key, schema; prints the trust\n"
            "                  fingerprint that clients pin\n"
            "  (none)          run the service\n"
            "\n"
            "Options:\n"
            "  -c, --config FILE  configuration file (default /etc/dkm/dkmd.conf)\n"
            "  -h, --help         show this help\n"
            "  -V, --version      show the version\n");
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    int c;

    dkm_log_setup("dkmd", DKM_LOG_STDERR, DKM_LOG_INFO);
    while ((c = getopt_long(argc, argv, "+c:hV", options, NULL)) != -1) {
        switch (c) {
        case 'c':
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("dkmd %s\n", DKM_VERSION);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    log_error("the key service is not built yet in this version");
    return 1;
}
