/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dkmctl's internal interface: each command family (cmd_node.c,
 * cmd_uri.c, ...) provides one dispatch function, which dkmctl.c calls
 * with the arguments after the family name.
 *
 * Exit codes (stable, for scripts): see enum dkmctl_exit.
 */
#ifndef DKM_TOOLS_DKMCTL_H
#define DKM_TOOLS_DKMCTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

enum dkmctl_exit {
    DKMCTL_EXIT_OK = 0,
    DKMCTL_EXIT_FAILURE = 1,     /* the operation failed */
    DKMCTL_EXIT_USAGE = 2,       /* bad command line */
    DKMCTL_EXIT_CONFIG = 3,      /* configuration missing or invalid */
    DKMCTL_EXIT_TPM = 4,         /* TPM unreachable or refused */
    DKMCTL_EXIT_UNAVAILABLE = 5, /* service unreachable */
    DKMCTL_EXIT_DENIED = 6,      /* not authorized */
    DKMCTL_EXIT_NOT_FOUND = 7,   /* no such group, node or version */
};

struct dkmctl_globals {
    const char *config_path; /* --config, or NULL */
    bool json;               /* --json */
};

/* Map a dkm return code to the exit code documented above. */
int dkmctl_exit_code(int r);

/* Print "dkmctl: what: strerror (detail)" to stderr. */
void dkmctl_report(const char *what, int r);

int dkmctl_cmd_node(const struct dkmctl_globals *g, int argc, char **argv);
int dkmctl_cmd_uri_hex(const struct dkmctl_globals *g, int argc, char **argv);

/* Service commands (cmd_admin.c): argv[0] is the family name. */
int dkmctl_cmd_group(const struct dkmctl_globals *g, int argc, char **argv);
/* node authorize|revoke|list; argv[1] is the subcommand. */
int dkmctl_cmd_node_service(const struct dkmctl_globals *g, int argc, char **argv);
int dkmctl_cmd_audit(const struct dkmctl_globals *g, int argc, char **argv);
int dkmctl_cmd_key(const struct dkmctl_globals *g, int argc, char **argv);
/* server add|list (cmd_server.c); argv[0] is the family name. */
int dkmctl_cmd_server(const struct dkmctl_globals *g, int argc, char **argv);
/* status (cmd_status.c): dkmd's readiness, /v1/health. */
int dkmctl_cmd_status(const struct dkmctl_globals *g, int argc, char **argv);

/* ---- shared by the service commands (cmd_admin.c, cmd_group.c) ---- */

#define DKMCTL_DEFAULT_SOCKET "/run/dkm/dkmd.sock"

/* Settings of the service commands: option, else [dkmctl] of --config,
 * else the environment. */
struct dkmctl_svc_opts {
    const char *socket;
    const char *service;
    const char *trust;
    const char *tcti;
    const char *cache_dir;
    /* Administration over TLS (as an admin node): a client certificate
     * selects the TLS port instead of the admin socket. */
    const char *tls_cert;
    const char *tls_key;
    const char *tls_ca;
    const char *key_cache; /* key_cache in [dkmctl], else $DKM_KEY_CACHE */
    bool json;
    unsigned timeout_ms; /* per request; 0: the client's default (10 s) */
};

/* getopt_long values of the long-only options. */
enum dkmctl_opt {
    OPT_SOCKET = 0x100,
    OPT_SERVICE,
    OPT_TRUST,
    OPT_TCTI,
    OPT_CACHE_DIR,
    OPT_ROTATE,
    OPT_LIFETIME,
    OPT_TTL,
    OPT_PCR,
    OPT_PCR_VALUES,
    OPT_ROLE,
    OPT_LIMIT,
    OPT_AFTER,
    OPT_TLS_CERT,
    OPT_TLS_KEY,
    OPT_TLS_CA,
    OPT_NODE_TLS_CERT,
};

/*
 * The options every admin command takes: --socket, the TLS settings
 * (--service, --tls-cert, --tls-key, --tls-ca), --json, --help.
 */
#define DKMCTL_SVC_OPTIONS                                                               \
    {"socket", required_argument, NULL, OPT_SOCKET},                                     \
        {"service", required_argument, NULL, OPT_SERVICE},                               \
        {"tls-cert", required_argument, NULL, OPT_TLS_CERT},                             \
        {"tls-key", required_argument, NULL, OPT_TLS_KEY},                               \
        {"tls-ca", required_argument, NULL, OPT_TLS_CA},                                 \
        {"json", no_argument, NULL, 'j'},                                                \
    {                                                                                    \
        "help", no_argument, NULL, 'h'                                                   \
    }

/* Take option c (with arg) into o if it is one of DKMCTL_SVC_OPTIONS but
 * --help; false otherwise. */
bool dkmctl_svc_option(int c, const char *arg, struct dkmctl_svc_opts *o);

/* The help text of those options, for the commands' usage. */
#define DKMCTL_SVC_OPTIONS_HELP                                                          \
    "  --socket PATH   dkmd's admin socket (admin_socket in [dkmctl];\n"                 \
    "                  default " DKMCTL_DEFAULT_SOCKET ")\n"                             \
    "  --tls-cert FILE --tls-key FILE\n"                                                 \
    "                  administer over TLS as an admin node (tls_cert, tls_key)\n"       \
    "  --tls-ca FILE   the service's certificate or CA, required over TLS (tls_ca)\n"    \
    "  --service URLS  https://HOST:PORT[,...] for TLS (service, $DKM_SERVICE)\n"        \
    "  --json          print the server's JSON answer\n"

struct dkm_client;
struct dkm_config;

/*
 * Fill o's unset settings from [dkmctl] of --config, then the
 * environment, and open a client with them. *ret_cfg (dkm_config_free)
 * holds the strings o now points to; free it after the client.
 */
int dkmctl_open_client(const struct dkmctl_globals *g, struct dkmctl_svc_opts *o,
                       struct dkm_config **ret_cfg, struct dkm_client **ret);

/*
 * One admin call: open the client from the settings, send method/path
 * with body (whose reference is taken), and print the answer with
 * printer(answer, arg), or as JSON with --json. Returns the exit code.
 */
int dkmctl_admin_call(const struct dkmctl_globals *g, struct dkmctl_svc_opts *o,
                      const char *what, const char *method, const char *path,
                      json_t *body, void (*printer)(const json_t *ans, const void *arg),
                      const void *arg);

/*
 * A long admin call: how dkmd names the operation in GET /v1/progress
 * (operation, and target when not NULL), and how dkmctl names it on
 * stderr (what).
 */
struct dkmctl_watch_spec {
    const char *operation;
    const char *target;
    const char *what;
};

/* How long dkmctl waits for the answer to a long admin call. */
#define DKMCTL_LONG_TIMEOUT_MS (3600u * 1000u)

/*
 * dkmctl_admin_call for an operation that may take minutes: the answer
 * is awaited up to DKMCTL_LONG_TIMEOUT_MS, and meanwhile the progress
 * dkmd reports for it is shown on stderr (progress.c).
 */
int dkmctl_admin_call_long(const struct dkmctl_globals *g, struct dkmctl_svc_opts *o,
                           const char *what, const char *method, const char *path,
                           json_t *body,
                           void (*printer)(const json_t *ans, const void *arg),
                           const void *arg, const struct dkmctl_watch_spec *watch);

/* progress.c: poll GET /v1/progress on c (a client of the watcher's own,
 * which must outlive it) and show spec's operation until stopped. */
struct dkmctl_watch;
int dkmctl_watch_start(struct dkm_client *c, bool admin,
                       const struct dkmctl_watch_spec *spec, struct dkmctl_watch **ret);
/* Stop (after the poll in flight, if any) and free; NULL is fine. */
void dkmctl_watch_stop(struct dkmctl_watch *w);

/*
 * Parse --socket, --json and --help, then expect nargs arguments at
 * optind. Returns -1 to go on, else the exit code to return.
 */
int dkmctl_simple_options(int argc, char **argv, struct dkmctl_svc_opts *o,
                          void (*usage)(FILE *), int nargs);

/* Print obj as indented JSON on stdout. */
int dkmctl_print_json(json_t *obj);

/* Report r (dkmctl_report) and return its exit code. */
int dkmctl_fail(const char *what, int r);
/* Print msg (if any) and the usage to stderr; returns DKMCTL_EXIT_USAGE. */
int dkmctl_usage_error(void (*usage)(FILE *), const char *msg);
/* A printer that prints arg, a string. */
void dkmctl_print_done(const json_t *a, const void *arg);

/* Unix seconds as "YYYY-MM-DD HH:MM:SSZ" and seconds as "30d", "5m"... in
 * buf; "-" when v is not an integer. */
const char *dkmctl_fmt_time(const json_t *v, char *buf, size_t size);
const char *dkmctl_fmt_duration(const json_t *v, char *buf, size_t size);
/* A member of o as a string ("-" when absent) or an integer (0). */
const char *dkmctl_jstr(const json_t *o, const char *k);
long long dkmctl_jnum(const json_t *o, const char *k);

#endif
