#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The main job end to end, on a fresh machine: installs what is missing,
# builds, starts a software TPM and a throw-away PostgreSQL, and walks
# through dkm, printing each step. Everything it starts is stopped by PID
# when it ends, whether it succeeds or not; its files live in one temp dir
# that is removed at the end (kept with DKM_DEMO_KEEP=1).
#
# Usage: scripts/demo.sh
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

step() { printf '\n==> %s\n' "$*"; }

step "installing missing packages"
scripts/deps.sh

step "building"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc 2>/dev/null || echo 2)" >/dev/null
dkmctl=$root/build/tools/dkmctl

work=$(mktemp -d "${TMPDIR:-/tmp}/dkm-demo.XXXXXX")
chmod 755 "$work"
cleanup() {
    local rc=$?
    set +e
    step "stopping everything"
    [ -f "$work/node-tpm/env" ] && scripts/swtpm.sh stop "$work/node-tpm"
    [ -f "$work/pg/env" ] && scripts/pg.sh stop "$work/pg"
    if [ "${DKM_DEMO_KEEP:-0}" = 1 ]; then
        echo "kept $work"
    else
        rm -rf "$work"
    fi
    [ "$rc" -eq 0 ] && echo "demo: done" || echo "demo: FAILED (exit $rc)"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step "starting a software TPM for the node (swtpm, EKs manufactured)"
mkdir -p "$work/node-tpm"
eval "$(scripts/swtpm.sh start "$work/node-tpm")"
echo "node TPM: $SWTPM_TCTI (pid $SWTPM_PID)"

step "starting a throw-away PostgreSQL 15"
mkdir -p "$work/pg"
eval "$(scripts/pg.sh start "$work/pg")"
echo "PostgreSQL: 127.0.0.1:$PGPORT (pid $PGPID)"

step "dkmctl node init: reading the node's EK and writing its node card"
node_id=$("$dkmctl" node init --tcti "$SWTPM_TCTI" --out "$work/node.card")
echo "node id: $node_id"

step "dkmctl node show: the card as others will see it"
"$dkmctl" node show --in "$work/node.card"
