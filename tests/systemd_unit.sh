#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# dkmd.service (dist/systemd/dkmd.service.in, as configured into
# BUILD/dist): `systemd-analyze verify` passes without a word (with
# ExecStart pointed at the built dkmd, which is not installed here), the
# unit has what dkmd relies on (Type=notify, the watchdog, user, state
# and runtime directories matching dkmd's defaults, the TPM device), and
# `systemd-analyze security --offline=yes` rates its exposure at most
# 2.0. The score is printed. The same measurement of the unit with its
# sandbox removed must exceed 2.0, so a parser that reads nothing fails.
#
# Usage: tests/systemd_unit.sh BUILD_DIR
set -uo pipefail

build=$(cd "$1" && pwd) || exit 1
unit=$build/dist/dkmd.service
max=2.0
passed=0
failed=0
tmp=$(mktemp -d "${TMPDIR:-/tmp}/dkm-unit.XXXXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

ok() {
    passed=$((passed + 1))
    echo "ok - $1"
}
fail() {
    failed=$((failed + 1))
    echo "FAIL - $1"
    [ -n "${2:-}" ] && sed 's/^/    /' <<<"$2"
}
finish() {
    echo "systemd_unit: $passed passed, $failed failed"
    [ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
    exit
}

if ! command -v systemd-analyze >/dev/null; then
    fail "systemd-analyze is installed (scripts/deps.sh installs systemd)"
    finish
fi
echo "# $(systemd-analyze --version | head -n1)"
[ -s "$unit" ] || {
    fail "the unit is configured at $unit"
    finish
}

# exposure FILE: the overall exposure systemd-analyze gives FILE.
exposure() {
    systemd-analyze security --offline=yes "$1" 2>/dev/null |
        sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p'
}

# verify: the unit as installed, but starting the built dkmd.
sed "s|^ExecStart=[^ ]*/dkmd |ExecStart=$build/service/dkmd |" "$unit" >"$tmp/dkmd.service"
out=$(cd "$tmp" && systemd-analyze verify --man=no ./dkmd.service 2>&1)
status=$?
if [ "$status" -eq 0 ] && [ -z "$out" ]; then
    ok "systemd-analyze verify passes without a message"
else
    fail "systemd-analyze verify passes without a message" "status $status: $out"
fi

for line in "Type=notify" "NotifyAccess=main" "WatchdogSec=60s" "User=dkmd" \
    "SupplementaryGroups=tss" "StateDirectory=dkm" "RuntimeDirectory=dkm" \
    "DeviceAllow=/dev/tpmrm0 rw" "NoNewPrivileges=yes" "ProtectSystem=strict" \
    "CapabilityBoundingSet=" "MemoryDenyWriteExecute=yes" "LimitMEMLOCK=64M" \
    "SystemCallFilter=@system-service memfd_secret"; do
    if grep -qxF -- "$line" "$unit"; then
        ok "the unit has $line"
    else
        fail "the unit has $line"
    fi
done
# The directories systemd makes are the ones dkmd uses by default.
literals=$(strings "$build/service/dkmd")
if grep -qxF /run/dkm/dkmd.sock <<<"$literals" && grep -qxF /var/lib/dkm <<<"$literals"; then
    ok "dkmd's default admin socket and state dir are under /run/dkm and /var/lib/dkm"
else
    fail "dkmd's default admin socket and state dir are under /run/dkm and /var/lib/dkm"
fi

score=$(exposure "$tmp/dkmd.service")
echo "# systemd-analyze security --offline=yes dkmd.service: exposure $score"
if [ -n "$score" ] && awk -v s="$score" -v m="$max" 'BEGIN { exit !(s <= m) }'; then
    ok "exposure $score is at most $max"
else
    fail "exposure ${score:-(none)} is at most $max" \
        "$(systemd-analyze security --offline=yes "$tmp/dkmd.service" 2>&1 | grep '✗')"
fi

# The control: the same unit without its [Service] sandbox.
awk '/^NoNewPrivileges=/ { skip = 1 } /^\[Install\]/ { skip = 0 } !skip' \
    "$tmp/dkmd.service" >"$tmp/bare.service"
bare=$(exposure "$tmp/bare.service")
if [ -n "$bare" ] && awk -v s="$bare" -v m="$max" 'BEGIN { exit !(s > m) }'; then
    ok "without the sandbox the exposure is above $max ($bare)"
else
    fail "without the sandbox the exposure is above $max (${bare:-none})"
fi
finish
