/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dkmctl server: the authorized server list, through dkmd's admin socket.
 * `server add CARD` adds a server that ran `dkmd init --join` (its signed
 * server card) to the list, which makes the server dkmd runs on sign list
 * v(N+1) and seal every live key to the new server's TPM; `server remove
 * SERVER` takes one off (list v(N+1) without it, its sealed copies
 * deleted); `server list` shows the current list. Exit codes follow
 * dkmctl.h.
 *
 * Sealing many versions takes a while (a TPM signature each), so `server
 * add` waits up to an hour for the answer and shows on stderr how far
 * dkmd is, from GET /v1/progress (progress.c).
 */
#include "dkmctl.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "dkm/base/error.h"
#include "dkm/base/file.h"
#include "dkm/tpm/node.h"
#include "dkm/trust/servercard.h"

static void usage(FILE *out)
{
    fprintf(
        out,
        "Usage: dkmctl server add CARD [--socket PATH] [--json]\n"
        "       dkmctl server remove SERVER [--socket PATH] [--json]\n"
        "       dkmctl server list [--socket PATH] [--json]\n"
        "\n"
        "add   Add a server to the authorized server list from the card that\n"
        "      `dkmd init --join` wrote on it (STATE_DIR/server.card). Run it on\n"
        "      a server already on the list: that server signs the next list\n"
        "      version and seals every key version still in use to the new\n"
        "      server's TPM, in one transaction. Check that the node id printed\n"
        "      is the one the joining server printed. Then start dkmd there.\n"
        "list  Print the current list: its version, and each server's node id\n"
        "      and hostname (* marks the server answering).\n"
        "\n"
        "  --socket PATH   admin socket (default: admin_socket in [dkmctl] of\n"
        "                  --config, else $DKM_ADMIN_SOCKET, else " DKMCTL_DEFAULT_SOCKET
        ")\n"
        "  --json          print the server's JSON answer\n"
        "\n"
        "Exit status: 0 added, removed or listed, 1 failure (e.g. the server is on\n"
        "the list already, or is the last one: 409), 2 usage or a card the server\n"
        "refused (400), 5 service unavailable, 6 not authorized, 7 no such server\n"
        "on the list.\n");
}

static void print_added(const json_t *a, const void *arg)
{
    const json_t *s;
    size_t i;

    (void)arg;
    printf("server %s (%s) added: server list v%lld, %lld sealed copies\n",
           dkmctl_jstr(a, "node_id"), dkmctl_jstr(a, "hostname"),
           dkmctl_jnum(a, "list_version"), dkmctl_jnum(a, "copies"));
    json_array_foreach(json_object_get(a, "skipped"), i, s)
    {
        printf("warning: no copy of %s for the new server (this server holds none)\n",
               json_string_value(s) != NULL ? json_string_value(s) : "?");
    }
}

static void print_list(const json_t *a, const void *arg)
{
    const json_t *s;
    char b[48];
    size_t i;

    (void)arg;
    printf("server list v%lld, issued %s, signed by %s\n", dkmctl_jnum(a, "list_version"),
           dkmctl_fmt_time(json_object_get(a, "issued_at"), b, sizeof(b)),
           dkmctl_jstr(a, "signer"));
    printf("  %-68s %s\n", "NODE", "HOSTNAME");
    json_array_foreach(json_object_get(a, "servers"), i, s)
    {
        printf("%c %-68s %s\n", json_is_true(json_object_get(s, "self")) ? '*' : ' ',
               dkmctl_jstr(s, "node_id"), dkmctl_jstr(s, "hostname"));
    }
}

static void print_removed(const json_t *a, const void *arg)
{
    (void)arg;
    printf("server %s removed: server list v%lld, %lld sealed copies deleted, %lld "
           "records it had signed signed again\n",
           dkmctl_jstr(a, "node_id"), dkmctl_jnum(a, "list_version"),
           dkmctl_jnum(a, "copies_deleted"), dkmctl_jnum(a, "resigned"));
}

static int server_remove(const struct dkmctl_globals *g, int argc, char **argv)
{
    struct dkmctl_svc_opts o = {0};
    struct dkm_node_id id;
    char path[32 + DKM_NODE_ID_HEX_SIZE];
    int e;

    if ((e = dkmctl_simple_options(argc, argv, &o, usage, 1)) >= 0)
        return e;
    if (dkm_node_id_parse(argv[optind], &id) < 0)
        return dkmctl_usage_error(usage, "server remove: SERVER is a node id (68 hex "
                                         "digits, as `dkmctl server list` prints)");
    snprintf(path, sizeof(path), "/v1/servers/%s", argv[optind]);
    return dkmctl_admin_call(g, &o, "server remove", "DELETE", path, NULL, print_removed,
                             NULL);
}

static int server_add(const struct dkmctl_globals *g, int argc, char **argv)
{
    struct dkmctl_svc_opts o = {0};
    struct dkm_servercard card;
    struct dkmctl_watch_spec watch = {.operation = "server.add", .what = "server add"};
    char hex[DKM_NODE_ID_HEX_SIZE];
    uint8_t *text = NULL;
    size_t len = 0;
    json_t *body = NULL;
    int e, r;

    if ((e = dkmctl_simple_options(argc, argv, &o, usage, 1)) >= 0)
        return e;
    r = dkm_file_read(argv[optind], DKM_SERVERCARD_ARMOR_MAX, &text, &len);
    if (r < 0)
        goto done;
    /* Checked here too, so that a wrong or damaged file gets a local error. */
    r = dkm_servercard_from_text((const char *)text, len, &card);
    if (r < 0) {
        r = dkm_error_set(-EINVAL, "%s: %s", argv[optind], dkm_error_detail());
        goto done;
    }
    body = json_pack("{s:s%}", "card", (const char *)text, len);
    if (body == NULL) {
        r = dkm_error_set(-ENOMEM, "out of memory");
        goto done;
    }
    free(text);
    dkm_node_id_hex(&card.id, hex);
    watch.target = hex;
    return dkmctl_admin_call_long(g, &o, "server add", "POST", "/v1/servers", body,
                                  print_added, NULL, &watch);
done:
    free(text);
    return dkmctl_fail("server add", r);
}

int dkmctl_cmd_server(const struct dkmctl_globals *g, int argc, char **argv)
{
    struct dkmctl_svc_opts o = {0};
    const char *sub = argc > 1 ? argv[1] : NULL;
    int e;

    if (sub == NULL)
        return dkmctl_usage_error(usage, "server: expected add, remove or list");
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0 ||
        strcmp(sub, "help") == 0) {
        usage(stdout);
        return DKMCTL_EXIT_OK;
    }
    argc--;
    argv++;
    optind = 0;
    if (strcmp(sub, "add") == 0)
        return server_add(g, argc, argv);
    if (strcmp(sub, "remove") == 0)
        return server_remove(g, argc, argv);
    if (strcmp(sub, "list") == 0) {
        if ((e = dkmctl_simple_options(argc, argv, &o, usage, 0)) >= 0)
            return e;
        return dkmctl_admin_call(g, &o, "server list", "GET", "/v1/servers", NULL,
                                 print_list, NULL);
    }
    return dkmctl_usage_error(usage, "unknown server subcommand");
}
