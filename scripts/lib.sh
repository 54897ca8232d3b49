# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
#
# Shared bash helpers for the scripts that run throw-away test services
# (scripts/swtpm.sh, scripts/pg.sh) and for the test wrappers. Source it;
# it defines functions only and changes no shell options.
#
# Ports are picked at random below the kernel's ephemeral range, so that a
# service port never competes with an outgoing connection's local port, and
# are checked against /proc/net/tcp{,6}. Picking is still racy against other
# processes (a parallel test run may take the same port between the check and
# the bind), so callers retry the start on "address in use".
#
# Processes are only ever stopped by PID, and only after checking that the
# PID still belongs to the process we started (its command line contains a
# marker such as its state directory), so a recycled PID is never signalled.

# Prints "PROG: MESSAGE" on stderr and exits 1.
dkm_die() {
    echo "${DKM_PROG:-${0##*/}}: $*" >&2
    exit 1
}

# Prints "PROG: MESSAGE" on stderr.
dkm_warn() {
    echo "${DKM_PROG:-${0##*/}}: $*" >&2
}

# dkm_abspath PATH: prints PATH made absolute (it need not exist yet).
# Absolute paths matter because daemons chdir to / when they detach.
dkm_abspath() {
    case "$1" in
    /*) printf '%s\n' "$1" ;;
    *) printf '%s/%s\n' "$PWD" "${1#./}" ;;
    esac
}

# dkm_port_in_use PORT: succeeds if any TCP socket (IPv4 or IPv6, any state,
# including TIME_WAIT) has PORT as its local port.
dkm_port_in_use() {
    local hex
    hex=$(printf ':%04X' "$1")
    awk -v want="$hex" '
        FNR > 1 && substr($2, length($2) - 4) == want { found = 1; exit }
        END { exit !found }' /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# dkm_random: prints a non-negative random integer of at least 30 bits.
dkm_random() {
    if [ -n "${SRANDOM:-}" ]; then
        echo "$SRANDOM"
    else
        echo $(((RANDOM << 15) | RANDOM))
    fi
}

# dkm_pick_ports COUNT: prints the first of COUNT consecutive free TCP ports.
# The range is DKM_PORT_MIN..DKM_PORT_MAX (default 20000..32000, below the
# Linux default ephemeral range 32768..60999).
dkm_pick_ports() {
    local count=${1:-1} min=${DKM_PORT_MIN:-20000} max=${DKM_PORT_MAX:-32000}
    local tries base i busy
    for ((tries = 0; tries < 200; tries++)); do
        base=$((min + $(dkm_random) % (max - min - count + 2)))
        busy=0
        for ((i = 0; i < count; i++)); do
            if dkm_port_in_use $((base + i)); then
                busy=1
                break
            fi
        done
        if [ "$busy" = 0 ]; then
            echo "$base"
            return 0
        fi
    done
    dkm_warn "no free run of $count TCP ports in $min..$max"
    return 1
}

# dkm_pid_alive PID: succeeds if PID names a live (not zombie) process.
dkm_pid_alive() {
    local state
    [ -n "$1" ] || return 1
    kill -0 "$1" 2>/dev/null || return 1
    # A zombie answers kill -0 but is already gone for our purposes.
    state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
    [ "$state" != Z ]
}

# dkm_pid_matches PID MARKER: succeeds if PID is alive and its command line
# contains MARKER (a fixed string, e.g. the service's state directory).
dkm_pid_matches() {
    local cmdline
    dkm_pid_alive "$1" || return 1
    cmdline=$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null) || return 1
    [[ "$cmdline" == *"$2"* ]]
}

# dkm_find_pids MARKER: prints the PIDs of live processes whose command line
# contains MARKER; for finding a daemon that failed to report its PID.
dkm_find_pids() {
    local d pid
    for d in /proc/[0-9]*; do
        pid=${d#/proc/}
        if dkm_pid_matches "$pid" "$1"; then
            echo "$pid"
        fi
    done
}

# dkm_wait_gone PID SECONDS: waits until PID is gone; fails on timeout.
dkm_wait_gone() {
    local pid=$1 ticks=$(($2 * 20))
    while dkm_pid_alive "$pid"; do
        if [ "$ticks" -le 0 ]; then
            return 1
        fi
        ticks=$((ticks - 1))
        sleep 0.05
    done
    return 0
}

# dkm_wait_for SECONDS COMMAND...: runs COMMAND every 50 ms until it
# succeeds; fails if it has not succeeded within SECONDS.
dkm_wait_for() {
    local ticks=$(($1 * 20))
    shift
    until "$@"; do
        if [ "$ticks" -le 0 ]; then
            return 1
        fi
        ticks=$((ticks - 1))
        sleep 0.05
    done
    return 0
}

# dkm_kill_pid PID MARKER [SIGNAL]: ends PID with SIGNAL (default TERM), then
# SIGKILL if it is still there after 5 s, but only while its command line
# contains MARKER. Succeeds when the process is gone (or was never ours).
dkm_kill_pid() {
    local pid=$1 marker=$2 sig=${3:-TERM}
    dkm_pid_matches "$pid" "$marker" || return 0
    kill -"$sig" "$pid" 2>/dev/null
    dkm_wait_gone "$pid" 5 && return 0
    dkm_pid_matches "$pid" "$marker" || return 0
    dkm_warn "PID $pid ignored SIG$sig; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null
    dkm_wait_gone "$pid" 5
}

# dkm_env_write FILE NAME...: writes NAME=VALUE lines for the named variables
# to FILE atomically and prints them on stdout too. Values are shell-quoted
# only when they need it, so the common ones (ports, TCTI strings, plain
# paths) stay readable and greppable.
dkm_env_write() {
    local file=$1 name tmp value
    shift
    tmp="$file.tmp.$$"
    : >"$tmp" || return 1
    for name in "$@"; do
        value=${!name}
        if [[ "$value" =~ ^[A-Za-z0-9_./:,=@+-]+$ ]]; then
            printf '%s=%s\n' "$name" "$value" >>"$tmp"
        else
            printf '%s=%q\n' "$name" "$value" >>"$tmp"
        fi
    done
    mv -f "$tmp" "$file" && cat "$file"
}

# dkm_env_get FILE NAME: prints the value of NAME from an env file written by
# dkm_env_write, without evaluating anything else in the file.
dkm_env_get() {
    local line
    line=$(grep -m1 "^$2=" "$1" 2>/dev/null) || return 1
    eval "printf '%s\n' ${line#*=}"
}

# Where swtpm.sh and pg.sh live, for the helpers below.
DKM_SCRIPTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# dkm_cleanup_dir DIR: stops every swtpm and PostgreSQL that swtpm.sh or
# pg.sh started in a direct subdirectory of DIR (found by their env files),
# then removes DIR. Fails if something could not be stopped.
dkm_cleanup_dir() {
    local dir=$1 env r=0
    for env in "$dir"/*/env; do
        [ -f "$env" ] || continue
        if grep -q '^SWTPM_PID=' "$env"; then
            "$DKM_SCRIPTS/swtpm.sh" stop "${env%/env}" || r=1
        elif grep -q '^PGPID=' "$env"; then
            "$DKM_SCRIPTS/pg.sh" stop "${env%/env}" || r=1
        fi
    done
    rm -rf "$dir"
    return "$r"
}

# dkm_watchdog OWNER_PID DIR: starts a detached process that, once OWNER_PID
# has ended, runs dkm_cleanup_dir DIR. It covers the one way out that no
# trap can: SIGKILL, e.g. from ctest when a test times out, after which the
# daemons (reparented to init, so outside the killed process tree) would run
# on. Sets DKM_WATCHDOG_PID; end it with dkm_watchdog_stop after a normal
# cleanup.
dkm_watchdog() {
    local owner=$1 dir=$2 pidfile=$2/.watchdog.pid
    DKM_WATCHDOG_PID=
    DKM_WATCHDOG_MARKER="dkm-watchdog $owner $dir "
    # setsid and the extra subshell put the watchdog in its own session,
    # outside the owner's process tree. It polls with a read timeout on a
    # FIFO that never delivers data, so it has no child to leave behind.
    # shellcheck disable=SC2016 # expanded by the watchdog's own shell
    (
        setsid bash -c '
            echo $$ >"$3"
            if mkfifo "$3.fifo" && command exec 3<>"$3.fifo"; then
                tick() { read -r -t 1 -u 3 || true; }
            else
                tick() { sleep 1; }
            fi
            rm -f "$3.fifo"
            while kill -0 "$1" 2>/dev/null; do
                tick
            done
            . "$4/lib.sh"
            dkm_cleanup_dir "$2"' dkm-watchdog "$owner" "$dir" "$pidfile" "$DKM_SCRIPTS" \
            </dev/null >/dev/null 2>&1 &
    )
    dkm_wait_for 5 test -s "$pidfile" || {
        dkm_warn "the cleanup watchdog for $dir did not start"
        return 1
    }
    DKM_WATCHDOG_PID=$(cat "$pidfile")
}

# dkm_watchdog_stop: ends the watchdog that dkm_watchdog started, by its PID.
dkm_watchdog_stop() {
    [ -n "${DKM_WATCHDOG_PID:-}" ] || return 0
    dkm_kill_pid "$DKM_WATCHDOG_PID" "$DKM_WATCHDOG_MARKER" || return 1
    DKM_WATCHDOG_PID=
}
