/* SPDX-License-Identifier: Apache-2.0 */
/*
 * dkmd, the key service: command line, configuration and start-up. Start
 * applies the schema migrations over a blocking connection (no event loop
 * runs yet), then hands over to the HTTP server (http.c). `dkmd init`
 * bootstraps a first server; `dkmd init --join` a further one on the same
 * database.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dkm/base/log.h"
#include "dkm/trust/servercard.h"
#include "config.h"
#include "identity.h"
#include "keeper.h"
#include "metrics.h"
#include "migrate.h"
#include "routes.h"
#include "server.h"
#include "tls.h"

static void usage(FILE *out)
{
    fprintf(
        out,
        "Usage: dkmd [--config FILE]\n"
        "       dkmd init --config FILE\n"
        "       dkmd init --join --trust FPR --config FILE\n"
        "\n"
        "The dkm key service: keeps groups of TPM-sealed keys in PostgreSQL and\n"
        "answers fetches with keys sealed to the requesting node's TPM.\n"
        "\n"
        "Commands:\n"
        "  init            first-server bootstrap: node identity, TPM signing key,\n"
        "                  server list v1, TLS key, schema; prints the trust\n"
        "                  fingerprint that clients pin\n"
        "  init --join     a further server on the same database: its TPM signing\n"
        "                  key, TLS key and the pin of the existing server list\n"
        "                  (--trust, checked against the database, which is only\n"
        "                  read); writes STATE_DIR/server.card and prints its path\n"
        "                  and the node id. An administrator then runs `dkmctl\n"
        "                  server add CARD` on a server already on the list, and\n"
        "                  this server can start.\n"
        "  (none)          run the service\n"
        "\n"
        "Options:\n"
        "  -c, --config FILE  configuration file (default " SVC_DEFAULT_CONFIG ")\n"
        "  --join             with init: join an existing deployment\n"
        "  --trust FPR        with init --join: the deployment's trust fingerprint\n"
        "                     (64 hex digits, what init printed on the first server)\n"
        "  -h, --help         show this help\n"
        "  -V, --version      show the version\n"
        "\n"
        "Signals: SIGTERM or SIGINT finish requests in flight and stop; SIGHUP\n"
        "reloads the TLS certificate and key and the log level.\n");
}

/*
 * Why a run failed, last thing before exit: a sentence for the human who
 * ran init, an event for the service's log.
 */
static void log_failure(bool init, bool config, int r)
{
    const char *why = dkm_error_detail()[0] ? dkm_error_detail() : dkm_strerror(r);

    if (init)
        log_error("%s", why);
    else if (config)
        log_event(DKM_LOG_ERR, "config.invalid reason=%s", why);
    else
        log_event(DKM_LOG_ERR, "dkmd.failed reason=%s", why);
}

/* Apply the migrations found in the configured directory. */
static int migrate(const struct svc_config *cfg, unsigned *ret_version)
{
    struct svc_migrations m = {0};
    PGconn *conn = NULL;
    int r;

    r = svc_migrations_load(cfg->sql_dir, &m);
    if (r < 0)
        goto done;
    r = svc_db_connect_blocking(cfg->db_conninfo, &conn);
    if (r < 0)
        goto done;
    r = svc_migrate(conn, &m, ret_version);
done:
    PQfinish(conn);
    svc_migrations_clear(&m);
    return r;
}

/* The state directory exists (created 0700) and holds no TLS identity yet. */
static int state_dir_fresh(const struct svc_config *cfg)
{
    if (mkdir(cfg->state_dir, 0700) < 0 && errno != EEXIST)
        return dkm_error_set(-errno, "cannot create the state directory %s: %s",
                             cfg->state_dir, strerror(errno));
    if (access(cfg->tls_key, F_OK) == 0 || access(cfg->tls_cert, F_OK) == 0)
        return dkm_error_set(
            -EEXIST, "%s or %s already exists: this server is initialised already",
            cfg->tls_key, cfg->tls_cert);
    return 0;
}

static int cmd_init(const struct svc_config *cfg)
{
    char fpr[128], trust[2 * DKM_FINGERPRINT_SIZE + 1];
    unsigned version = 0;
    int r;

    /* Refuse before touching the database if this host was initialised already. */
    r = state_dir_fresh(cfg);
    if (r < 0)
        goto done;
    r = migrate(cfg, &version);
    if (r < 0)
        goto done;
    /* The TPM identity first: without it (no TPM) only TLS is set up. */
    r = ks_identity_init(cfg, trust);
    if (r == -ENODEV) {
        log_event(DKM_LOG_WARNING, "init.no_tpm reason=%s key_endpoints=off",
                  dkm_error_detail());
        trust[0] = '\0';
    } else if (r < 0) {
        goto done;
    }
    r = svc_tls_create_identity(cfg->tls_cert, cfg->tls_key, fpr, sizeof(fpr));
    if (r < 0)
        goto done;
    printf("schema version %u\n", version);
    printf("TLS certificate %s\n", cfg->tls_cert);
    printf("TLS fingerprint SHA256 %s\n", fpr);
    if (trust[0] != '\0')
        printf("trust fingerprint %s\n", trust);
done:
    return r;
}

/* dkmd init --join: a further server's identity; the database is only read. */
static int cmd_join(const struct svc_config *cfg, const char *trust)
{
    char fpr[128], card[KS_PATH_MAX], id[DKM_NODE_ID_HEX_SIZE];
    int r;

    r = state_dir_fresh(cfg);
    if (r < 0)
        goto done;
    r = ks_identity_join(cfg, trust, card, id);
    if (r < 0)
        goto done;
    r = svc_tls_create_identity(cfg->tls_cert, cfg->tls_key, fpr, sizeof(fpr));
    if (r < 0)
        goto done;
    printf("TLS certificate %s\n", cfg->tls_cert);
    printf("TLS fingerprint SHA256 %s\n", fpr);
    printf("trust fingerprint %s\n", trust);
    printf("node id %s\n", id);
    printf("server card %s\n", card);
    fprintf(stderr,
            "next: on a server already on the list, run `dkmctl server add %s`\n"
            "(compare the node id it prints with the one above), then start dkmd here\n",
            card);
done:
    return r;
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'}, {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},      {"join", no_argument, NULL, 'J'},
        {"trust", required_argument, NULL, 'T'},  {NULL, 0, NULL, 0},
    };
    const char *config_path = SVC_DEFAULT_CONFIG, *trust = NULL;
    bool join = false;
    struct svc_config *cfg = NULL;
    struct svc_metrics *metrics = NULL;
    bool init = false;
    unsigned version = 0;
    int c, r;

    /* No core dumps and no ptrace by other users: this process will hold keys. */
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) {
        fprintf(stderr, "dkmd: cannot set PR_SET_DUMPABLE: %s\n", strerror(errno));
        return 1;
    }
    dkm_log_setup("dkmd", DKM_LOG_STDERR, DKM_LOG_INFO);
    while ((c = getopt_long(argc, argv, "c:hV", options, NULL)) != -1) {
        switch (c) {
        case 'c':
            config_path = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("dkmd %s\n", DKM_VERSION);
            return 0;
        case 'J':
            join = true;
            break;
        case 'T':
            trust = optarg;
            break;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        if (strcmp(argv[optind], "init") != 0 || optind + 1 != argc) {
            usage(stderr);
            return 2;
        }
        init = true;
    }
    if ((join || trust != NULL) && (!init || !join || trust == NULL)) {
        fprintf(stderr, "dkmd: --join and --trust FPR go together, with init\n");
        usage(stderr);
        return 2;
    }
    /*
     * The service logs one structured line per event; init and init
     * --join are run by a human and keep plain lines. Until the file is
     * read the service's lines are text, the default.
     */
    dkm_log_set_format(init ? DKM_LOG_PLAIN : DKM_LOG_TEXT);
    r = svc_config_load(config_path, &cfg);
    if (r < 0) {
        log_failure(init, true, r);
        return 1;
    }
    if (getenv("DKM_DEBUG") == NULL || strcmp(getenv("DKM_DEBUG"), "0") == 0)
        dkm_log_set_level(cfg->log_level);
    if (!init)
        dkm_log_set_format(cfg->log_format);
    if (init && join) {
        r = cmd_join(cfg, trust);
    } else if (init) {
        r = cmd_init(cfg);
    } else {
        r = svc_metrics_new(&metrics);
        if (r == 0)
            r = migrate(cfg, &version);
        if (r == 0) {
            r = ks_start(cfg, metrics);
            if (r == DKM_E_DENIED)
                r = dkm_error_set(
                    r,
                    "%s: a server that joined with `dkmd init --join` is "
                    "added by running `dkmctl server add %s/%s` on a server "
                    "already on the list",
                    dkm_error_detail(), cfg->state_dir, DKM_SERVERCARD_FILE);
        }
        if (r == 0) {
            svc_set_workers_stopped_hook(ks_quiesce);
            r = svc_run(cfg, config_path, version, metrics, ks_routes, ks_nroutes);
        }
        ks_stop();
        svc_metrics_free(metrics);
    }
    if (r < 0)
        log_failure(init, false, r);
    svc_config_free(cfg);
    return r < 0 ? 1 : 0;
}
