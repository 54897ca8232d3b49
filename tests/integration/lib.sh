# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
#
# Helpers for the integration tests in tests/integration/*.sh. A test sources
# this file, calls it_init, starts what it needs with the it_* starters,
# checks behaviour with it_check*, and ends with it_finish. Whatever happens
# in between (a failed check, a fatal error, an unexpected exit, SIGINT or
# SIGTERM), everything the test started is stopped by its PID, the temporary
# directory is removed, and the last line printed is
#     NAME: P passed, F failed
# with a non-zero exit status unless every check passed. If the test is
# killed with SIGKILL (a ctest timeout), a detached watchdog stops the swtpm
# and PostgreSQL instances it started and removes its temporary directory.
#
#   it_init NAME              temp dir in $IT_TMP (under $TMPDIR or /tmp)
#   it_swtpm_start NAME       new TPM in $IT_TMP/NAME; sets SWTPM_PORT,
#                             SWTPM_CTRL_PORT, SWTPM_PID, SWTPM_TCTI
#   it_swtpm_stop NAME        stop it (state kept: a later start is a reboot)
#   it_pg_start NAME          PostgreSQL in $IT_TMP/NAME; sets PGPORT, PGHOST,
#                             PGUSER, PGPID, PGSOCKDIR, PGDATA (not exported)
#   it_pg_stop NAME
#   it_tpm_mux NAME           after it_swtpm_start NAME: a multiplexer in
#                             front of it (tpm_mux.py), so that several TCTI
#                             connections share it; sets MUX_TCTI
#   it_daemon NAME CMD...     runs CMD in the background, output in
#                             $IT_TMP/NAME.log; sets IT_PID
#   it_stop_pid PID           SIGTERM (SIGKILL after 10 s) a process started
#                             with it_daemon; returns its exit status
#   it_check DESC CMD...      passes if CMD succeeds (its output is shown
#                             only on failure)
#   it_check_fails DESC CMD...  passes if CMD fails
#   it_check_eq DESC WANT GOT / it_check_ne DESC A B
#   it_check_gone DESC PID    passes once kill -0 PID fails (waits up to
#                             $IT_GONE_TIMEOUT s, default 10: an exited daemon
#                             may stay a zombie until init reaps it)
#   it_fatal MESSAGE          counts a failure and ends the test
#   it_finish                 prints the summary and exits
#
# it_init also turns on `set -u -o pipefail` (not -e: a failed check must not
# end the test). Set DKM_KEEP_TMP=1 to keep the temporary directory.
#
# Run directly (`bash tests/integration/lib.sh`, registered as it_lib), this
# file tests itself: that failures are counted and reported, that a crashing
# or interrupted test fails, and that its cleanup stops what it started.

IT_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=scripts/lib.sh
. "$IT_SRC/scripts/lib.sh"

IT_NAME=
IT_TMP=
IT_PASSED=0
IT_FAILED=0
IT_PID=
IT_SWTPMS=()
IT_PGS=()
IT_DAEMONS=()
_it_done=0

_it_note() {
    echo "$IT_NAME: $*" >&2
}

it_pass() {
    IT_PASSED=$((IT_PASSED + 1))
    echo "ok - $1"
}

# it_fail DESC [DETAIL]: counts a failed check and shows why.
it_fail() {
    local line
    IT_FAILED=$((IT_FAILED + 1))
    echo "FAIL - $1"
    if [ -n "${2:-}" ]; then
        while IFS= read -r line; do
            echo "    $line"
        done <<<"$2"
    fi
}

it_fatal() {
    it_fail "$*"
    exit 1
}

it_check() {
    local desc=$1 out
    shift
    if out=$("$@" 2>&1); then
        it_pass "$desc"
    else
        it_fail "$desc" "command failed (status $?): $*"$'\n'"$out"
    fi
}

it_check_fails() {
    local desc=$1 out
    shift
    if out=$("$@" 2>&1); then
        it_fail "$desc" "command succeeded but should have failed: $*"$'\n'"$out"
    else
        it_pass "$desc"
    fi
}

it_check_eq() {
    if [ "$2" = "$3" ]; then
        it_pass "$1"
    else
        it_fail "$1" "want: $2"$'\n'"got:  $3"
    fi
}

it_check_ne() {
    if [ "$2" != "$3" ]; then
        it_pass "$1"
    else
        it_fail "$1" "both are: $2"
    fi
}

it_check_gone() {
    local desc=$1 pid=$2 ticks=$((${IT_GONE_TIMEOUT:-10} * 20))
    if [ -z "$pid" ]; then
        it_fail "$desc" "no PID given"
        return
    fi
    while kill -0 "$pid" 2>/dev/null; do
        if [ "$ticks" -le 0 ]; then
            it_fail "$desc" "PID $pid is still there: $(ps -o stat=,args= -p "$pid")"
            return
        fi
        ticks=$((ticks - 1))
        sleep 0.05
    done
    it_pass "$desc"
}

_it_remove() {
    local -n arr=$1
    local kept=() x
    for x in "${arr[@]}"; do
        [ "$x" = "$2" ] || kept+=("$x")
    done
    arr=("${kept[@]}")
}

it_swtpm_start() {
    local dir=$IT_TMP/$1 out
    # Recorded first so that a start interrupted half-way is still stopped.
    IT_SWTPMS+=("$dir")
    out=$("$IT_SRC/scripts/swtpm.sh" start "$dir") ||
        it_fatal "swtpm '$1' could not be started"
    eval "$out"
}

it_swtpm_stop() {
    local dir=$IT_TMP/$1
    "$IT_SRC/scripts/swtpm.sh" stop "$dir" || it_fatal "swtpm '$1' could not be stopped"
    _it_remove IT_SWTPMS "$dir"
}

it_pg_start() {
    local dir=$IT_TMP/$1 out
    IT_PGS+=("$dir")
    out=$("$IT_SRC/scripts/pg.sh" start "$dir") ||
        it_fatal "PostgreSQL '$1' could not be started"
    eval "$out"
}

it_pg_stop() {
    local dir=$IT_TMP/$1
    "$IT_SRC/scripts/pg.sh" stop "$dir" || it_fatal "PostgreSQL '$1' could not be stopped"
    _it_remove IT_PGS "$dir"
}

it_daemon() {
    local name=$1
    shift
    "$@" >"$IT_TMP/$name.log" 2>&1 </dev/null &
    IT_PID=$!
    IT_DAEMONS+=("$IT_PID")
}

it_tpm_mux() {
    local port
    port=$(dkm_pick_ports 2) || it_fatal "no free ports for the TPM multiplexer"
    it_daemon "mux-$1" python3 "$IT_SRC/tests/integration/tpm_mux.py" "$port" "$SWTPM_PORT"
    dkm_wait_for 10 grep -q ready "$IT_TMP/mux-$1.log" ||
        it_fatal "the TPM multiplexer for $1 did not start"
    MUX_TCTI="swtpm:host=127.0.0.1,port=$port"
}

# it_keyring_ns: a user namespace of this test's own (uids and gids
# 0..65535 mapped to themselves), held by a process that the cleanup
# stops. Processes run in it with it_ns get their own user keyrings
# there, so dkm's kernel keyring cache never touches the machine's.
it_keyring_ns() {
    local ticks=100
    it_daemon keyring-ns unshare --user sleep infinity
    IT_NS_PID=$IT_PID
    while [ "$(readlink "/proc/$IT_NS_PID/ns/user" 2>/dev/null)" = "$(readlink /proc/self/ns/user)" ] ||
        [ -z "$(readlink "/proc/$IT_NS_PID/ns/user" 2>/dev/null)" ]; do
        ticks=$((ticks - 1))
        [ "$ticks" -gt 0 ] || it_fatal "the user namespace did not start"
        sleep 0.02
    done
    echo '0 0 65536' >"/proc/$IT_NS_PID/uid_map" &&
        echo '0 0 65536' >"/proc/$IT_NS_PID/gid_map" ||
        it_fatal "cannot map the ids of the test's user namespace"
}

# it_ns CMD...: CMD in the test's user namespace (it_keyring_ns), as root
# there, with this shell's environment and directory.
it_ns() {
    nsenter -t "$IT_NS_PID" -U -- "$@"
}

# A child of this shell keeps its PID until it is waited for, so signalling
# it by PID cannot hit an unrelated process.
it_stop_pid() {
    local pid=$1 status=0
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null
        if ! dkm_wait_gone "$pid" 10; then
            _it_note "PID $pid ignored SIGTERM; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null
        fi
    fi
    wait "$pid" 2>/dev/null || status=$?
    _it_remove IT_DAEMONS "$pid"
    return "$status"
}

_it_cleanup() {
    local status=$1 i
    [ "$_it_done" = 1 ] && return
    _it_done=1
    for ((i = ${#IT_DAEMONS[@]} - 1; i >= 0; i--)); do
        it_stop_pid "${IT_DAEMONS[i]}" || true
    done
    for ((i = ${#IT_PGS[@]} - 1; i >= 0; i--)); do
        "$IT_SRC/scripts/pg.sh" stop "${IT_PGS[i]}" ||
            it_fail "cleanup: stop PostgreSQL in ${IT_PGS[i]}"
    done
    for ((i = ${#IT_SWTPMS[@]} - 1; i >= 0; i--)); do
        "$IT_SRC/scripts/swtpm.sh" stop "${IT_SWTPMS[i]}" ||
            it_fail "cleanup: stop swtpm in ${IT_SWTPMS[i]}"
    done
    if [ -n "$IT_TMP" ]; then
        if [ "${DKM_KEEP_TMP:-0}" = 1 ]; then
            _it_note "kept $IT_TMP"
        else
            rm -rf "$IT_TMP"
        fi
    fi
    dkm_watchdog_stop || it_fail "cleanup: stop the watchdog"
    # An exit that no check accounts for (a crash in the test itself) must
    # still show up as a failure.
    if [ "$status" != 0 ] && [ "$IT_FAILED" = 0 ]; then
        it_fail "test ended early with status $status"
    fi
    echo "$IT_NAME: $IT_PASSED passed, $IT_FAILED failed"
    if [ "$IT_FAILED" != 0 ]; then
        exit 1
    fi
    if [ "$IT_PASSED" = 0 ]; then
        # A test that checked nothing has not shown anything.
        exit 1
    fi
    exit 0
}

it_init() {
    IT_NAME=$1
    set -u -o pipefail
    trap '_it_cleanup $?' EXIT
    trap 'it_fail "interrupted by SIGINT"; exit 130' INT
    trap 'it_fail "interrupted by SIGTERM"; exit 143' TERM
    IT_TMP=$(mktemp -d "${TMPDIR:-/tmp}/dkm-it-$IT_NAME.XXXXXXXX") ||
        it_fatal "cannot create a temporary directory"
    # PostgreSQL runs as another user when the test runs as root.
    chmod 755 "$IT_TMP"
    # dkm keeps unsealed keys in the user's kernel keyring by default; a
    # test uses it only in a user namespace of its own (it_keyring_ns).
    export DKM_KEY_CACHE=process
    dkm_watchdog $$ "$IT_TMP" || it_fatal "cannot start the cleanup watchdog"
}

it_finish() {
    exit 0
}

# --- self-test ----------------------------------------------------------

# _it_scenario NAME BODY: writes a test script that sources this library
# and runs BODY, runs it, and leaves its status in $sc_status and its last
# output line in $sc_last.
_it_scenario() {
    local script=$IT_TMP/sc_$1.sh
    {
        echo ". '$IT_SRC/tests/integration/lib.sh'"
        echo "it_init sc_$1"
        echo "echo \"\$IT_TMP\" >'$IT_TMP/sc_$1.tmp'"
        printf '%s\n' "$2"
    } >"$script"
    sc_status=0
    sc_out=$(bash "$script" 2>&1) || sc_status=$?
    sc_last=$(tail -n 1 <<<"$sc_out")
}

_it_absent() {
    [ ! -e "$1" ]
}

_it_selftest() {
    local pids p
    it_init lib

    _it_scenario pass 'it_check "t" true; it_check_eq "e" 1 1; it_finish'
    it_check_eq "all checks pass: exit 0" 0 "$sc_status"
    it_check_eq "all checks pass: summary" "sc_pass: 2 passed, 0 failed" "$sc_last"
    it_check_fails "the scenario's temp dir is removed" test -e "$(cat "$IT_TMP/sc_pass.tmp")"

    _it_scenario fail 'it_check "a" true; it_check "b" false
        it_check_eq "c" 1 2; it_check_ne "d" 1 1; it_check_fails "e" true
        IT_GONE_TIMEOUT=1 it_check_gone "f" $$; it_finish'
    it_check_eq "failed checks: exit 1" 1 "$sc_status"
    it_check_eq "failed checks: all counted" "sc_fail: 1 passed, 5 failed" "$sc_last"

    _it_scenario crash 'it_check "a" true; exit 3'
    it_check_eq "a test that exits early fails" 1 "$sc_status"
    it_check_eq "an early exit is counted" "sc_crash: 1 passed, 1 failed" "$sc_last"

    _it_scenario empty 'it_finish'
    it_check_eq "a test that checks nothing fails" 1 "$sc_status"

    _it_scenario fatal "it_daemon sleeper sleep 300
        echo \$IT_PID >'$IT_TMP/fatal.pids'
        it_swtpm_start tpm
        echo \$SWTPM_PID >>'$IT_TMP/fatal.pids'
        it_pg_start pg
        echo \$PGPID >>'$IT_TMP/fatal.pids'
        it_fatal 'boom'"
    it_check_eq "it_fatal fails the test" 1 "$sc_status"
    it_check_eq "it_fatal is counted" "sc_fatal: 0 passed, 1 failed" "$sc_last"
    pids=$(cat "$IT_TMP/fatal.pids" 2>/dev/null)
    it_check_eq "the failing test had started three processes" 3 "$(wc -w <<<"$pids")"
    for p in $pids; do
        it_check_gone "cleanup after a failure stopped PID $p" "$p"
    done
    it_check_fails "cleanup after a failure removed the temp dir" \
        test -e "$(cat "$IT_TMP/sc_fatal.tmp")"

    # An interrupted test: started in the background, then sent SIGTERM.
    {
        echo ". '$IT_SRC/tests/integration/lib.sh'"
        echo "it_init sc_term"
        echo "it_check 'a' true"
        echo "it_daemon sleeper sleep 300"
        echo "echo \$IT_PID >'$IT_TMP/term.pid'"
        echo "while :; do sleep 0.05; done"
    } >"$IT_TMP/sc_term.sh"
    bash "$IT_TMP/sc_term.sh" >"$IT_TMP/sc_term.out" 2>&1 &
    p=$!
    dkm_wait_for 30 test -s "$IT_TMP/term.pid" || it_fail "the SIGTERM scenario did not start"
    kill -TERM "$p"
    sc_status=0
    wait "$p" || sc_status=$?
    it_check_ne "an interrupted test fails" 0 "$sc_status"
    it_check_eq "an interruption is counted" "sc_term: 1 passed, 1 failed" \
        "$(tail -n 1 "$IT_TMP/sc_term.out")"
    it_check_gone "cleanup after SIGTERM stopped the daemon" "$(cat "$IT_TMP/term.pid")"

    # A test killed with SIGKILL runs no trap: the watchdog has to clean up.
    {
        echo ". '$IT_SRC/tests/integration/lib.sh'"
        echo "it_init sc_kill"
        echo "echo \"\$IT_TMP\" >'$IT_TMP/sc_kill.tmp'"
        echo "it_swtpm_start tpm"
        echo "echo \$SWTPM_PID >'$IT_TMP/kill.pids'"
        echo "it_pg_start pg"
        echo "echo \$PGPID >>'$IT_TMP/kill.pids'"
        echo "echo ready >'$IT_TMP/kill.ready'"
        echo "while :; do sleep 0.05; done"
    } >"$IT_TMP/sc_kill.sh"
    bash "$IT_TMP/sc_kill.sh" >"$IT_TMP/sc_kill.out" 2>&1 &
    p=$!
    dkm_wait_for 60 test -s "$IT_TMP/kill.ready" ||
        it_fail "the SIGKILL scenario did not start" "$(cat "$IT_TMP/sc_kill.out")"
    kill -KILL "$p"
    wait "$p" 2>/dev/null
    pids=$(cat "$IT_TMP/kill.pids" 2>/dev/null)
    it_check_eq "the killed test had started two services" 2 "$(wc -w <<<"$pids")"
    for p in $pids; do
        it_check_gone "the watchdog stopped PID $p after SIGKILL" "$p"
    done
    it_check "the watchdog removed the killed test's temp dir" \
        dkm_wait_for 10 _it_absent "$(cat "$IT_TMP/sc_kill.tmp")"

    it_finish
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    _it_selftest
fi
