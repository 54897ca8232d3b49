/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dkmctl: the admin and node command line. This file parses the global
 * options and dispatches to the command families in cmd_*.c.
 */
#include "dkmctl.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dkm/base/error.h"
#include "dkm/base/log.h"

static void usage(FILE *out)
{
    fprintf(
        out,
        "Usage: dkmctl [--config FILE] [--json] COMMAND [ARGS...]\n"
        "\n"
        "Administer dkm, the TPM-rooted key service, and this node's identity.\n"
        "\n"
        "Node commands (this machine's TPM):\n"
        "  node init [--tcti T] [--out FILE] [--ek rsa|ecc]\n"
        "                          read the TPM's EK, write a node card, print the "
        "node id\n"
        "  node show [--in FILE]   print the node card's contents\n"
        "\n"
        "Key names:\n"
        "  uri-hex URI             print the -K value that names URI for\n"
        "                          openssl enc -DKM-AES-256-GCM\n"
        "\n"
        "Service administration (through dkmd's admin socket, or over TLS as an\n"
        "admin node with --tls-cert, --tls-key, --tls-ca and --service):\n"
        "  group create|list|show|rotate|policy|grant|revoke ...\n"
        "  node authorize|tls|revoke|list ...\n"
        "  server add CARD | server remove SERVER | server list\n"
        "                          add a server that ran dkmd init --join, take one\n"
        "                          off, show the authorized server list\n"
        "  audit [--limit N] [--after ID]\n"
        "  status                  is dkmd ready? each readiness check (/v1/health)\n"
        "\n"
        "Node keys:\n"
        "  key fetch GROUP[/VERSION]  fetch, verify and unseal a key as the provider\n"
        "                          does; prints its version and key id, never the key\n"
        "  key list                the key versions kept in the kernel keyring\n"
        "  key flush [GROUP]       remove them from the kernel keyring\n"
        "\n"
        "Global options:\n"
        "  -c, --config FILE       configuration file\n"
        "  -j, --json              machine-readable output\n"
        "  -h, --help              show this help (COMMAND --help for a command's)\n"
        "  -V, --version           show the version\n"
        "\n"
        "Exit status: 0 success, 1 failure, 2 usage, 3 configuration, 4 TPM,\n"
        "5 service unavailable, 6 not authorized, 7 not found.\n");
}

int dkmctl_exit_code(int r)
{
    switch (r) {
    case 0:
        return DKMCTL_EXIT_OK;
    case -EINVAL:
    case DKM_E_URI:
        return DKMCTL_EXIT_USAGE;
    case DKM_E_CONFIG:
        return DKMCTL_EXIT_CONFIG;
    case DKM_E_TPM:
    case DKM_E_TPM_POLICY:
    case DKM_E_TPM_NOT_MINE:
        return DKMCTL_EXIT_TPM;
    case DKM_E_UNAVAILABLE:
    case -ECONNREFUSED:
        return DKMCTL_EXIT_UNAVAILABLE;
    case DKM_E_DENIED:
    case -EACCES:
    case -EPERM:
        return DKMCTL_EXIT_DENIED;
    case -ENOENT:
        return DKMCTL_EXIT_NOT_FOUND;
    default:
        return DKMCTL_EXIT_FAILURE;
    }
}

void dkmctl_report(const char *what, int r)
{
    const char *detail = dkm_error_detail();

    if (detail[0] != '\0')
        fprintf(stderr, "dkmctl: %s: %s (%s)\n", what, detail, dkm_strerror(r));
    else
        fprintf(stderr, "dkmctl: %s: %s\n", what, dkm_strerror(r));
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    struct dkmctl_globals g = {.config_path = getenv("DKM_CONFIG"), .json = false};
    const char *cmd;
    int c;

    dkm_log_setup("dkmctl", DKM_LOG_STDERR, DKM_LOG_WARNING);
    /* dkmctl reports TPM errors itself; the TSS library's own log lines
     * on stderr would only repeat them, less clearly. */
    if (getenv("DKM_DEBUG") == NULL)
        setenv("TSS2_LOG", "all+none", /* overwrite= */ 0);
    /* '+': stop at the first non-option, which is the command. */
    while ((c = getopt_long(argc, argv, "+c:jhV", options, NULL)) != -1) {
        switch (c) {
        case 'c':
            g.config_path = optarg;
            break;
        case 'j':
            g.json = true;
            break;
        case 'h':
            usage(stdout);
            return DKMCTL_EXIT_OK;
        case 'V':
            printf("dkmctl %s\n", DKM_VERSION);
            return DKMCTL_EXIT_OK;
        default:
            usage(stderr);
            return DKMCTL_EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return DKMCTL_EXIT_USAGE;
    }
    cmd = argv[optind];
    argc -= optind;
    argv += optind;
    /* Each family parses its own options, from its argv[0]. */
    optind = 0;
    if (strcmp(cmd, "node") == 0 && argc > 1 &&
        (strcmp(argv[1], "authorize") == 0 || strcmp(argv[1], "revoke") == 0 ||
         strcmp(argv[1], "list") == 0 || strcmp(argv[1], "tls") == 0))
        return dkmctl_cmd_node_service(&g, argc, argv);
    if (strcmp(cmd, "node") == 0)
        return dkmctl_cmd_node(&g, argc, argv);
    if (strcmp(cmd, "uri-hex") == 0)
        return dkmctl_cmd_uri_hex(&g, argc, argv);
    if (strcmp(cmd, "group") == 0)
        return dkmctl_cmd_group(&g, argc, argv);
    if (strcmp(cmd, "server") == 0)
        return dkmctl_cmd_server(&g, argc, argv);
    if (strcmp(cmd, "audit") == 0)
        return dkmctl_cmd_audit(&g, argc, argv);
    if (strcmp(cmd, "key") == 0)
        return dkmctl_cmd_key(&g, argc, argv);
    if (strcmp(cmd, "status") == 0)
        return dkmctl_cmd_status(&g, argc, argv);
    if (strcmp(cmd, "help") == 0) {
        usage(stdout);
        return DKMCTL_EXIT_OK;
    }
    fprintf(stderr, "dkmctl: unknown command \"%s\" (see dkmctl --help)\n", cmd);
    return DKMCTL_EXIT_USAGE;
}
