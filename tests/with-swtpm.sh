#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Runs a test program against N fresh software TPMs, one per simulated
# machine, each manufactured with its own EKs.
#
# Usage: tests/with-swtpm.sh N PROG [ARGS...]
#
# Exports to PROG, for i in 1..N:
#   DKM_TEST_TCTI_i          TCTI string, swtpm:host=127.0.0.1,port=P
#   DKM_TEST_SWTPM_CTRL_i    the instance's control port (swtpm_ioctl --tcp)
#   DKM_TEST_SWTPM_STATE_i   the instance's state directory
# and DKM_TEST_SWTPM_COUNT=N. The TPMs live in a temporary directory under
# $TMPDIR (or /tmp) that is removed afterwards. Every swtpm is stopped by its
# PID on every way out, including a failing PROG and SIGINT/SIGTERM; if this
# script is killed with SIGKILL (a ctest timeout), a detached watchdog stops
# them within a second or two.
#
# Exit status: PROG's. If a TPM cannot be started, or cannot be stopped
# afterwards, the status is non-zero with a message: a test that cannot run
# fails, it is never skipped.
# shellcheck disable=SC2317 # cleanup runs from traps
set -uo pipefail

DKM_PROG=with-swtpm.sh
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
swtpm_sh=$here/../scripts/swtpm.sh
# shellcheck source=scripts/lib.sh
. "$here/../scripts/lib.sh"

usage() {
    sed -n '/^# Usage:/,/^# fails, it/{s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}

case "${1:-}" in
-h | --help)
    usage
    exit 0
    ;;
esac
if [ $# -lt 2 ] || ! [[ "$1" =~ ^[1-9][0-9]*$ ]]; then
    usage >&2
    exit 2
fi
count=$1
shift

tmp=
prog_pid=
started=()
cleaned=0

cleanup() {
    local status=$1 dir
    [ "$cleaned" = 1 ] && return
    cleaned=1
    if [ -n "$prog_pid" ] && dkm_pid_alive "$prog_pid"; then
        kill -TERM "$prog_pid" 2>/dev/null
        dkm_wait_gone "$prog_pid" 10 || kill -KILL "$prog_pid" 2>/dev/null
        wait "$prog_pid" 2>/dev/null
    fi
    for dir in "${started[@]}"; do
        if ! "$swtpm_sh" stop "$dir"; then
            dkm_warn "could not stop the swtpm in $dir"
            [ "$status" = 0 ] && status=1
        fi
    done
    if [ -n "$tmp" ]; then
        rm -rf "$tmp"
    fi
    dkm_watchdog_stop || true
    exit "$status"
}

trap 'cleanup $?' EXIT
trap 'cleanup 130' INT
trap 'cleanup 143' TERM

tmp=$(mktemp -d "${TMPDIR:-/tmp}/dkm-swtpm.XXXXXXXX") ||
    dkm_die "cannot create a temporary directory"
dkm_watchdog $$ "$tmp" || exit 1

for ((i = 1; i <= count; i++)); do
    dir=$tmp/tpm$i
    # Recorded before the start so that a start interrupted half-way is
    # still stopped.
    started+=("$dir")
    if ! "$swtpm_sh" start "$dir" >/dev/null; then
        dkm_warn "swtpm $i of $count could not be started; the test cannot run"
        exit 1
    fi
    export "DKM_TEST_TCTI_$i=$(dkm_env_get "$dir/env" SWTPM_TCTI)"
    export "DKM_TEST_SWTPM_CTRL_$i=$(dkm_env_get "$dir/env" SWTPM_CTRL_PORT)"
    export "DKM_TEST_SWTPM_STATE_$i=$dir"
done
export DKM_TEST_SWTPM_COUNT=$count
# Tests provoke TPM errors on purpose; the TSS library would print each on
# stderr. Keep its log off unless debugging (DKM_DEBUG) or asked for.
if [ -z "${TSS2_LOG:-}" ] && [ -z "${DKM_DEBUG:-}" ]; then
    export TSS2_LOG=all+none
fi

# PROG runs in the background so that a signal reaches our trap at once
# rather than after PROG ends; its stdin stays the caller's.
"$@" <&0 &
prog_pid=$!
wait "$prog_pid"
status=$?
prog_pid=
exit "$status"
