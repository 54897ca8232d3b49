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

#endif
