#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Runs one software TPM 2.0 (swtpm) for tests and local experiments: one
# instance is one simulated machine, with its own manufactured EKs.
#
# Usage:
#   scripts/swtpm.sh start STATE_DIR
#       If STATE_DIR holds no TPM state yet, manufactures one there
#       (swtpm_setup: RSA-2048 EK at 0x81010001, SRK at 0x81000001, and an
#       ECC EK at 0x81010016 that swtpm 0.7.1 makes NIST P-384, not the
#       P-256 TCG default; on the first start it is replaced there by the
#       P-256 EK of the TCG template, as tpm2_createek provisions a
#       machine, so that dkm finds a persistent EK it can use). Then starts
#       swtpm on free loopback ports, checks
#       that it answers and that both EKs are present, and prints
#           SWTPM_PORT=P
#           SWTPM_CTRL_PORT=P+1
#           SWTPM_PID=PID
#           SWTPM_TCTI=swtpm:host=127.0.0.1,port=P
#           SWTPM_STATE_DIR=STATE_DIR
#       on stdout (for eval) and into STATE_DIR/env. An existing state is
#       reused as it is, so a stop and a start is a reboot of the same machine.
#       With DKM_SWTPM_PORT=P set, it listens on P and P+1 (one try) instead
#       of free ports it picks: a restart where its users look for it.
#   scripts/swtpm.sh stop STATE_DIR
#       Stops the instance recorded in STATE_DIR/env by its PID (control
#       channel shutdown first, signals only if that fails) and removes the
#       env file. Stopping an instance that is not running succeeds.
#
# Never copy one STATE_DIR to make another machine: the copy would have the
# same EKs, i.e. the same node identity.
#
# Logs: STATE_DIR/setup.log (manufacturing), STATE_DIR/swtpm.log (server).
set -euo pipefail

DKM_PROG=swtpm.sh
# shellcheck source=scripts/lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

readonly EK_RSA=0x81010001
readonly EK_ECC=0x81010016
readonly START_ATTEMPTS=10

usage() {
    sed -n '/^# Usage:/,/^# Logs:/{s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}

need_tools() {
    local t
    for t in swtpm swtpm_setup swtpm_ioctl tpm2_getcap; do
        command -v "$t" >/dev/null ||
            dkm_die "$t not found (install swtpm, swtpm-tools, tpm2-tools)"
    done
}

# The command line of our swtpm contains this, so a stop never signals a
# recycled PID; the trailing space keeps "tpm1" from matching "tpm10".
pid_marker() {
    printf -- '--tpmstate dir=%s ' "$1"
}

manufacture() {
    local dir=$1
    if ! swtpm_setup --tpm2 --tpmstate "$dir" --createek --create-spk --ecc \
        --overwrite --config /dev/null >"$dir/setup.log" 2>&1; then
        cat "$dir/setup.log" >&2
        dkm_die "manufacturing a TPM in $dir failed (see above)"
    fi
    [ -s "$dir/tpm2-00.permall" ] ||
        dkm_die "swtpm_setup left no TPM state in $dir (see $dir/setup.log)"
}

# Checks that the instance answers on both channels and holds both EKs.
check_instance() {
    local tcti=$1 ctrl=$2 handles
    swtpm_ioctl --tcp "127.0.0.1:$ctrl" -g >/dev/null 2>&1 || {
        dkm_warn "control channel on port $ctrl does not answer"
        return 1
    }
    handles=$(tpm2_getcap handles-persistent -T "$tcti" 2>&1) || {
        dkm_warn "TPM at $tcti does not answer: $handles"
        return 1
    }
    if ! grep -qi -- "$EK_RSA" <<<"$handles" || ! grep -qi -- "$EK_ECC" <<<"$handles"; then
        dkm_warn "TPM at $tcti lacks an EK ($EK_RSA and $EK_ECC expected), has:" \
            "$(tr '\n' ' ' <<<"$handles")"
        return 1
    fi
    return 0
}

# Starts swtpm on PORT and PORT+1. Returns 0 with the PID in $started_pid,
# 2 if a port was taken (retry elsewhere), 1 on any other failure.
try_start() {
    local dir=$1 port=$2 ctrl=$(($2 + 1)) pid
    started_pid=
    rm -f "$dir/swtpm.pid"
    if ! swtpm socket --tpm2 --tpmstate "dir=$dir" \
        --server "type=tcp,port=$port,bindaddr=127.0.0.1" \
        --ctrl "type=tcp,port=$ctrl,bindaddr=127.0.0.1" \
        --flags not-need-init,startup-clear \
        --log "file=$dir/swtpm.log,truncate" \
        --pid "file=$dir/swtpm.pid" --daemon 2>"$dir/swtpm.err"; then
        if grep -qi 'address already in use' "$dir/swtpm.err" "$dir/swtpm.log" \
            2>/dev/null; then
            return 2
        fi
        cat "$dir/swtpm.err" "$dir/swtpm.log" >&2 2>/dev/null || true
        dkm_warn "swtpm failed to start in $dir"
        return 1
    fi
    # The detached child writes the PID file after the parent has returned.
    if ! dkm_wait_for 10 grep -qE '^[0-9]+$' "$dir/swtpm.pid"; then
        dkm_warn "swtpm wrote no PID file in $dir"
        return 1
    fi
    pid=$(cat "$dir/swtpm.pid")
    if ! dkm_pid_matches "$pid" "$(pid_marker "$dir")"; then
        cat "$dir/swtpm.log" >&2 2>/dev/null || true
        dkm_warn "swtpm (PID $pid) exited right after start"
        return 1
    fi
    started_pid=$pid
    return 0
}

cmd_start() {
    local dir port pid attempt rc
    dir=$(dkm_abspath "$1")
    case "$dir" in
    *,* | *[[:space:]]*) dkm_die "STATE_DIR must not contain commas or spaces: $dir" ;;
    esac
    need_tools
    mkdir -p "$dir"
    if [ -f "$dir/env" ]; then
        pid=$(dkm_env_get "$dir/env" SWTPM_PID || true)
        if dkm_pid_matches "$pid" "$(pid_marker "$dir")"; then
            dkm_die "a swtpm (PID $pid) is already running on $dir"
        fi
        rm -f "$dir/env"
    fi
    local fresh=0
    [ -s "$dir/tpm2-00.permall" ] || { manufacture "$dir" && fresh=1; }

    for ((attempt = 1; attempt <= START_ATTEMPTS; attempt++)); do
        if [ -n "${DKM_SWTPM_PORT:-}" ]; then
            # A restart on the port it had: a TPM that comes back where its
            # users look for it. One try; a taken port is an error.
            port=$DKM_SWTPM_PORT
            attempt=$START_ATTEMPTS
        else
            port=$(dkm_pick_ports 2) || dkm_die "no free ports for swtpm"
        fi
        rc=0
        try_start "$dir" "$port" || rc=$?
        case $rc in
        0) break ;;
        2) continue ;;
        *) dkm_die "could not start swtpm on $dir" ;;
        esac
    done
    [ "$rc" = 0 ] || dkm_die "ports kept being taken; gave up after $START_ATTEMPTS tries"
    # Until the env file names it, nobody else could stop this swtpm.
    partial_pid=$started_pid
    partial_marker=$(pid_marker "$dir")
    trap 'dkm_kill_pid "$partial_pid" "$partial_marker"' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM

    # Read by name in dkm_env_write.
    # shellcheck disable=SC2034
    SWTPM_PORT=$port SWTPM_CTRL_PORT=$((port + 1)) SWTPM_PID=$started_pid \
        SWTPM_TCTI="swtpm:host=127.0.0.1,port=$port" SWTPM_STATE_DIR=$dir
    if [ "$fresh" = 1 ]; then
        { tpm2_evictcontrol -T "$SWTPM_TCTI" -C o -c "$EK_ECC" &&
            tpm2_createek -T "$SWTPM_TCTI" -G ecc -c "$EK_ECC" -u "$dir/ek-ecc.pub"; } \
            >>"$dir/setup.log" 2>&1 ||
            dkm_die "could not provision the P-256 EK at $EK_ECC (see $dir/setup.log)"
    fi
    check_instance "$SWTPM_TCTI" "$SWTPM_CTRL_PORT" ||
        dkm_die "swtpm on $dir started but is not usable"
    dkm_env_write "$dir/env" SWTPM_PORT SWTPM_CTRL_PORT SWTPM_PID SWTPM_TCTI \
        SWTPM_STATE_DIR || dkm_die "cannot write $dir/env"
    trap - EXIT INT TERM
}

cmd_stop() {
    local dir pid ctrl marker
    dir=$(dkm_abspath "$1")
    [ -f "$dir/env" ] || return 0
    pid=$(dkm_env_get "$dir/env" SWTPM_PID) || dkm_die "no SWTPM_PID in $dir/env"
    ctrl=$(dkm_env_get "$dir/env" SWTPM_CTRL_PORT) || ctrl=
    marker=$(pid_marker "$dir")
    if dkm_pid_matches "$pid" "$marker" && [ -n "$ctrl" ]; then
        timeout 5 swtpm_ioctl --tcp "127.0.0.1:$ctrl" -s >/dev/null 2>&1 || true
        dkm_wait_gone "$pid" 5 || true
    fi
    dkm_kill_pid "$pid" "$marker" || true
    if dkm_pid_matches "$pid" "$marker"; then
        dkm_die "swtpm (PID $pid) on $dir is still running"
    fi
    rm -f "$dir/env"
}

case "${1:-}" in
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
