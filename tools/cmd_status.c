/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dkmctl status: whether dkmd is ready to serve, and why not. It asks
 * GET /v1/health on the admin socket (or, with --service, on the TLS port,
 * checked against --tls-ca) and prints each readiness check dkmd made:
 * the database round trip, the loaded state, the delegation and the TPM.
 * A 503 from dkmd is an answer here, not a failure to reach it: its
 * checks are printed too, and the exit status says "not ready" (5).
 */
#include "dkmctl.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "dkm/base/config.h"
#include "dkm/base/error.h"
#include "dkm/client/client.h"

static void usage(FILE *out)
{
    fprintf(out, "Usage: dkmctl status [--socket PATH] [--json]\n"
                 "       dkmctl status --service URL --tls-ca FILE [--json]\n"
                 "\n"
                 "Ask dkmd whether it is ready (GET /v1/health) and print each check:\n"
                 "database (a query answered just now), state (loaded, this server on\n"
                 "the verified server list), delegation (the response-signing key has\n"
                 "not expired), tpm (the TPM answered the last probe).\n"
                 "  --socket PATH   dkmd's admin socket (admin_socket in [dkmctl];\n"
                 "                  default " DKMCTL_DEFAULT_SOCKET ")\n"
                 "  --service URL   ask the TLS port https://HOST:PORT instead\n"
                 "  --tls-ca FILE   the service's certificate or CA (required with\n"
                 "                  --service)\n"
                 "  --json          print dkmd's JSON answer\n"
                 "\n"
                 "Exit status: 0 ready, 5 not ready or unreachable, 2 usage, 3\n"
                 "configuration.\n");
}

/* "3d4h", "5m12s", "42s". */
static void fmt_span(long long s, char *buf, size_t size)
{
    if (s >= 86400)
        snprintf(buf, size, "%lldd%lldh", s / 86400, s % 86400 / 3600);
    else if (s >= 3600)
        snprintf(buf, size, "%lldh%lldm", s / 3600, s % 3600 / 60);
    else if (s >= 60)
        snprintf(buf, size, "%lldm%llds", s / 60, s % 60);
    else
        snprintf(buf, size, "%llds", s);
}

static void print_check(const json_t *checks, const char *name)
{
    const json_t *c = json_object_get(checks, name);
    char span[32], facts[128] = "";

    if (!json_is_object(c)) {
        printf("  %-11s ?     (not reported)\n", name);
        return;
    }
    if (strcmp(name, "database") == 0 && json_object_get(c, "keeper_connected") != NULL)
        snprintf(facts, sizeof(facts), "keeper connection %s",
                 json_is_true(json_object_get(c, "keeper_connected")) ? "up" : "down");
    else if (strcmp(name, "state") == 0 && json_object_get(c, "age_s") != NULL) {
        fmt_span(dkmctl_jnum(c, "age_s"), span, sizeof(span));
        snprintf(facts, sizeof(facts), "loaded %s ago%s", span,
                 json_is_true(json_object_get(c, "reload_failing"))
                     ? ", the last reload failed"
                     : "");
    } else if (strcmp(name, "delegation") == 0 &&
               json_object_get(c, "remaining_s") != NULL) {
        fmt_span(dkmctl_jnum(c, "remaining_s"), span, sizeof(span));
        snprintf(facts, sizeof(facts), "valid for %s", span);
    } else if (strcmp(name, "tpm") == 0 && json_object_get(c, "age_s") != NULL) {
        fmt_span(dkmctl_jnum(c, "age_s"), span, sizeof(span));
        snprintf(facts, sizeof(facts), "last asked %s ago", span);
    }
    if (json_is_true(json_object_get(c, "ok")))
        printf("  %-11s ok    %s\n", name, facts);
    else
        printf("  %-11s FAIL  %s%s%s\n", name, dkmctl_jstr(c, "detail"),
               facts[0] != '\0' ? "; " : "", facts);
}

static void print_health(const json_t *h)
{
    const json_t *checks = json_object_get(h, "checks");
    char up[32];

    if (json_is_true(json_object_get(h, "ready")))
        printf("dkmd %s: ready\n", dkmctl_jstr(h, "version"));
    else
        printf("dkmd %s: not ready: %s\n", dkmctl_jstr(h, "version"),
               dkmctl_jstr(h, "detail"));
    print_check(checks, "database");
    print_check(checks, "state");
    print_check(checks, "delegation");
    print_check(checks, "tpm");
    fmt_span(dkmctl_jnum(h, "uptime_s"), up, sizeof(up));
    printf("  up %s, schema version %lld, %lld worker(s), %lld connection(s), "
           "%lld refused row(s)\n",
           up, dkmctl_jnum(h, "schema_version"), dkmctl_jnum(h, "workers"),
           dkmctl_jnum(h, "connections"), dkmctl_jnum(h, "refused_rows"));
}

int dkmctl_cmd_status(const struct dkmctl_globals *g, int argc, char **argv)
{
    static const struct option options[] = {
        DKMCTL_SVC_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    struct dkmctl_svc_opts o = {0};
    struct dkm_config *cfg = NULL;
    struct dkm_client *c = NULL;
    json_t *h = NULL;
    bool tls, ready = false;
    int ch, status = 0, r;

    while ((ch = getopt_long(argc, argv, "jh", options, NULL)) != -1) {
        if (ch == 'h') {
            usage(stdout);
            return DKMCTL_EXIT_OK;
        }
        if (!dkmctl_svc_option(ch, optarg, &o) || ch == OPT_TLS_CERT || ch == OPT_TLS_KEY)
            return dkmctl_usage_error(usage, NULL);
    }
    if (optind != argc)
        return dkmctl_usage_error(usage, "status takes no arguments");
    /* The TLS port only when asked for on the command line, and pinned. */
    tls = o.service != NULL;
    if (tls && o.tls_ca == NULL)
        return dkmctl_usage_error(usage, "--service needs --tls-ca");
    r = dkmctl_open_client(g, &o, &cfg, &c);
    if (r == 0)
        r = dkm_client_report(c, !tls, "/v1/health", &status, &h);
    if (r == 0 && o.json) {
        if (json_dumpf(h, stdout, JSON_INDENT(2) | JSON_SORT_KEYS) < 0)
            r = dkm_error_set(-EIO, "cannot write JSON");
        else
            fputc('\n', stdout);
    } else if (r == 0) {
        print_health(h);
    }
    ready = r == 0 && status == 200 && json_is_true(json_object_get(h, "ready"));
    json_decref(h);
    dkm_client_free(c);
    dkm_config_free(cfg);
    if (r < 0)
        return dkmctl_fail("status", r);
    return ready ? DKMCTL_EXIT_OK : DKMCTL_EXIT_UNAVAILABLE;
}
