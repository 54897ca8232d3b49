#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Runs a throw-away PostgreSQL 15 cluster for tests and local experiments.
# It trusts every local connection and does not fsync: never keep data in it.
#
# Usage:
#   scripts/pg.sh start DIR
#       Creates the cluster in DIR/data if there is none yet (initdb, user
#       "postgres", trust authentication), starts it listening on 127.0.0.1
#       on a free port and on a Unix socket in DIR/sock, and prints
#           PGPORT=PORT
#           PGHOST=127.0.0.1
#           PGUSER=postgres
#           PGPID=PID            (the postmaster)
#           PGSOCKDIR=DIR/sock
#           PGDATA=DIR/data
#       on stdout (for eval) and into DIR/env. The names are libpq's, so
#       `set -a; eval "$(scripts/pg.sh start DIR)"; set +a` points psql at it.
#   scripts/pg.sh stop DIR
#       Stops the cluster recorded in DIR/env (fast shutdown), checks by PID
#       that the postmaster is gone (signals it if not) and removes the env
#       file. Stopping a cluster that is not running succeeds.
#   scripts/pg.sh halt DIR fast|immediate
#       Shuts the cluster in DIR down in that mode (immediate: no checkpoint,
#       crash recovery at the next start) and keeps DIR/env, so that
#   scripts/pg.sh resume DIR
#       starts it again on the same port and socket; DIR/env gets the new
#       PGPID. Tests use the pair for database outages.
#
# Run as root, the server runs as the "postgres" user (initdb refuses root),
# so DIR's parent directories must be searchable by that user; DIR itself is
# made mode 755. Run as anyone else, the server runs as that user.
#
# Logs: DIR/initdb.log, DIR/postgres.log.
set -euo pipefail

DKM_PROG=pg.sh
# shellcheck source=scripts/lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

readonly START_ATTEMPTS=10

usage() {
    sed -n '/^# Usage:/,/^# Logs:/{s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}

find_bindir() {
    local d
    for d in "${DKM_PG_BINDIR:-}" "$(pg_config --bindir 2>/dev/null || true)" \
        /usr/lib/postgresql/15/bin; do
        if [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
            echo "$d"
            return 0
        fi
    done
    dkm_die "PostgreSQL server binaries not found (install postgresql-15," \
        "or set DKM_PG_BINDIR)"
}

# Runs a command as the user that owns the cluster, from a directory that
# user can enter (the caller's may be root's home).
as_pg() {
    if [ "$(id -u)" = 0 ]; then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

# The postmaster's command line contains this, so a stop never signals a
# recycled PID; the trailing space keeps "pg" from matching "pg2".
pid_marker() {
    printf -- '-D %s/data ' "$1"
}

prepare_dirs() {
    local dir=$1
    mkdir -p "$dir"
    chmod 755 "$dir"
    mkdir -p "$dir/data" "$dir/sock"
    touch "$dir/postgres.log"
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || dkm_die "no 'postgres' user to run the server as"
        chown postgres: "$dir/data" "$dir/sock" "$dir/postgres.log"
        as_pg test -w "$dir/data" ||
            dkm_die "user postgres cannot reach $dir; make its parent directories" \
                "searchable (chmod 755)"
    fi
    chmod 700 "$dir/data"
}

init_cluster() {
    local dir=$1 bindir=$2
    if ! as_pg "$bindir/initdb" -D "$dir/data" --no-sync --no-instructions \
        -A trust -U postgres -E UTF8 --locale=C >"$dir/initdb.log" 2>&1; then
        cat "$dir/initdb.log" >&2
        dkm_die "initdb in $dir/data failed (see above)"
    fi
}

# Starts the server on PORT. Returns 0 with the postmaster PID in
# $started_pid, 2 if the port was taken (retry elsewhere), 1 otherwise.
try_start() {
    local dir=$1 bindir=$2 port=$3 pid
    started_pid=
    : >"$dir/postgres.log"
    if ! as_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir/sock -c fsync=off" \
        start >"$dir/pg_ctl.log" 2>&1; then
        # pg_ctl also gives up on a server that is merely slow to start,
        # possibly before it wrote postmaster.pid; it must not run on.
        for pid in $(dkm_find_pids "$(pid_marker "$dir")"); do
            dkm_kill_pid "$pid" "$(pid_marker "$dir")" INT || true
        done
        if grep -qi 'address already in use' "$dir/postgres.log"; then
            return 2
        fi
        cat "$dir/pg_ctl.log" "$dir/postgres.log" >&2
        dkm_warn "PostgreSQL failed to start in $dir"
        return 1
    fi
    pid=$(head -n1 "$dir/data/postmaster.pid" 2>/dev/null || true)
    if ! dkm_pid_matches "$pid" "$(pid_marker "$dir")"; then
        dkm_warn "PostgreSQL in $dir reported a start but its postmaster is not running"
        return 1
    fi
    started_pid=$pid
    return 0
}

# write_env DIR PORT PID: the cluster's libpq variables into DIR/env (and
# on stdout, for eval).
write_env() {
    local dir=$1
    # Read by name in dkm_env_write.
    # shellcheck disable=SC2034
    local PGPORT=$2 PGHOST=127.0.0.1 PGUSER=postgres PGPID=$3 PGSOCKDIR=$1/sock \
        PGDATA=$1/data
    dkm_env_write "$dir/env" PGPORT PGHOST PGUSER PGPID PGSOCKDIR PGDATA ||
        dkm_die "cannot write $dir/env"
}

cmd_start() {
    local dir bindir port pid attempt rc
    dir=$(dkm_abspath "$1")
    case "$dir" in
    *[[:space:]]* | *\'* | *\"* | *\\*) dkm_die "DIR must not contain spaces or quotes: $dir" ;;
    esac
    bindir=$(find_bindir)
    if [ -f "$dir/env" ]; then
        pid=$(dkm_env_get "$dir/env" PGPID || true)
        if dkm_pid_matches "$pid" "$(pid_marker "$dir")"; then
            dkm_die "a PostgreSQL (PID $pid) is already running on $dir"
        fi
        rm -f "$dir/env"
    fi
    prepare_dirs "$dir"
    [ -s "$dir/data/PG_VERSION" ] || init_cluster "$dir" "$bindir"

    for ((attempt = 1; attempt <= START_ATTEMPTS; attempt++)); do
        port=$(dkm_pick_ports 1) || dkm_die "no free port for PostgreSQL"
        rc=0
        try_start "$dir" "$bindir" "$port" || rc=$?
        case $rc in
        0) break ;;
        2) continue ;;
        *) dkm_die "could not start PostgreSQL in $dir" ;;
        esac
    done
    [ "$rc" = 0 ] || dkm_die "ports kept being taken; gave up after $START_ATTEMPTS tries"
    # Until the env file names it, nobody else could stop this server.
    partial_pid=$started_pid
    partial_marker=$(pid_marker "$dir")
    trap 'dkm_kill_pid "$partial_pid" "$partial_marker" INT' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM

    write_env "$dir" "$port" "$started_pid"
    trap - EXIT INT TERM
}

cmd_stop() {
    local dir pid bindir
    dir=$(dkm_abspath "$1")
    [ -f "$dir/env" ] || return 0
    pid=$(dkm_env_get "$dir/env" PGPID) || dkm_die "no PGPID in $dir/env"
    if dkm_pid_matches "$pid" "$(pid_marker "$dir")"; then
        bindir=$(find_bindir)
        as_pg "$bindir/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop \
            >"$dir/pg_ctl.log" 2>&1 || cat "$dir/pg_ctl.log" >&2
        dkm_wait_gone "$pid" 5 || true
    fi
    # SIGINT is the postmaster's fast shutdown; SIGTERM would wait for clients.
    dkm_kill_pid "$pid" "$(pid_marker "$dir")" INT || true
    if dkm_pid_matches "$pid" "$(pid_marker "$dir")"; then
        dkm_die "PostgreSQL postmaster (PID $pid) in $dir is still running"
    fi
    rm -f "$dir/env"
}

cmd_halt() {
    local dir=$1 mode=$2 pid bindir
    case "$mode" in
    fast | immediate) ;;
    *) dkm_die "halt: the mode is fast or immediate, not '$mode'" ;;
    esac
    dir=$(dkm_abspath "$dir")
    [ -f "$dir/env" ] || dkm_die "no PostgreSQL recorded in $dir/env"
    pid=$(dkm_env_get "$dir/env" PGPID) || dkm_die "no PGPID in $dir/env"
    dkm_pid_matches "$pid" "$(pid_marker "$dir")" ||
        dkm_die "PostgreSQL in $dir (PID $pid) is not running"
    bindir=$(find_bindir)
    as_pg "$bindir/pg_ctl" -D "$dir/data" -m "$mode" -w -t 30 stop \
        >"$dir/pg_ctl.log" 2>&1 || cat "$dir/pg_ctl.log" >&2
    dkm_wait_gone "$pid" 10 || dkm_die "PostgreSQL (PID $pid) in $dir did not stop"
}

cmd_resume() {
    local dir bindir pid port rc attempt
    dir=$(dkm_abspath "$1")
    [ -f "$dir/env" ] || dkm_die "no PostgreSQL recorded in $dir/env"
    pid=$(dkm_env_get "$dir/env" PGPID) || dkm_die "no PGPID in $dir/env"
    port=$(dkm_env_get "$dir/env" PGPORT) || dkm_die "no PGPORT in $dir/env"
    if dkm_pid_matches "$pid" "$(pid_marker "$dir")"; then
        dkm_die "PostgreSQL (PID $pid) in $dir is running already"
    fi
    bindir=$(find_bindir)
    # The port was this cluster's a moment ago; a client may hold it in
    # TIME_WAIT or another process may take it: retry, then give up.
    for ((attempt = 1; attempt <= START_ATTEMPTS; attempt++)); do
        rc=0
        try_start "$dir" "$bindir" "$port" || rc=$?
        case $rc in
        0) break ;;
        2) sleep 1 ;;
        *) dkm_die "could not start PostgreSQL in $dir again" ;;
        esac
    done
    [ "$rc" = 0 ] || dkm_die "port $port stayed taken; PostgreSQL in $dir not resumed"
    write_env "$dir" "$port" "$started_pid"
}

case "${1:-}" in
halt)
    [ $# -eq 3 ] || {
        usage >&2
        exit 2
    }
    cmd_halt "$2" "$3"
    ;;
resume)
    [ $# -eq 2 ] || {
        usage >&2
        exit 2
    }
    cmd_resume "$2"
    ;;
start | stop)
    [ $# -eq 2 ] || {
        usage >&2
        exit 2
    }
    "cmd_$1" "$2"
    ;;
-h | --help | help)
    usage
    ;;
*)
    usage >&2
    exit 2
    ;;
esac
