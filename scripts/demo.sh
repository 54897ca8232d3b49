#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The main job end to end, on a fresh machine: installs what is missing,
# builds, then runs the whole story with real parts and prints each step:
# a throw-away PostgreSQL, a software TPM for the key server and dkmd on
# it, a software TPM for a node; the node is authorized, a group created
# and granted; the stock `openssl` binary protects and recovers a file
# with the group's key through the dkm provider (pkeyutl and enc); the
# group is rotated; old data still opens and new data uses the new
# version. Everything it starts is stopped by PID when it ends, whether it
# succeeds or not; its files live in one temp dir that is removed at the
# end (kept with DKM_DEMO_KEEP=1).
#
# Usage: scripts/demo.sh
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"

step() { printf '\n==> %s\n' "$*"; }
run() {
    printf '$ %s\n' "$*" >&2
    "$@"
}

step "installing missing packages"
scripts/deps.sh

step "building"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc 2>/dev/null || echo 2)" >/dev/null
dkmctl=$root/build/tools/dkmctl
dkmd=$root/build/service/dkmd

work=$(mktemp -d "${TMPDIR:-/tmp}/dkm-demo.XXXXXX")
chmod 755 "$work"
dkmd_pid=
ns_pid=
cleanup() {
    local rc=$?
    set +e
    step "stopping everything"
    if [ -n "$ns_pid" ]; then
        kill -TERM "$ns_pid" 2>/dev/null && wait "$ns_pid" 2>/dev/null
        echo "the node's user namespace (pid $ns_pid) ended"
    fi
    if [ -n "$dkmd_pid" ]; then
        kill -TERM "$dkmd_pid" 2>/dev/null && wait "$dkmd_pid"
        echo "dkmd (pid $dkmd_pid) stopped"
    fi
    for t in server-tpm node-tpm; do
        [ -f "$work/$t/env" ] && scripts/swtpm.sh stop "$work/$t" && echo "$t stopped"
    done
    [ -f "$work/pg/env" ] && scripts/pg.sh stop "$work/pg" && echo "PostgreSQL stopped"
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

step "starting a throw-away PostgreSQL 15"
mkdir -p "$work/pg"
eval "$(scripts/pg.sh start "$work/pg")"
echo "PostgreSQL: 127.0.0.1:$PGPORT (pid $PGPID)"

step "starting the key server's software TPM (EKs manufactured)"
mkdir -p "$work/server-tpm"
eval "$(scripts/swtpm.sh start "$work/server-tpm")"
server_tcti=$SWTPM_TCTI
echo "server TPM: $server_tcti (pid $SWTPM_PID)"

step "dkmd init: server identity in its TPM, signed server list, TLS key, schema"
port=$(dkm_pick_ports 1)
cat >"$work/dkmd.conf" <<CONF
[service]
listen = 127.0.0.1:$port
state_dir = $work/state
admin_socket = $work/admin.sock
tcti = $server_tcti
sql_dir = $root/sql
[database]
conninfo = host=127.0.0.1 port=$PGPORT user=postgres dbname=postgres
CONF
init_out=$("$dkmd" init --config "$work/dkmd.conf")
echo "$init_out"
trust=$(sed -n 's/^trust fingerprint //p' <<<"$init_out")
[ -n "$trust" ] || dkm_die "dkmd init printed no trust fingerprint"

step "starting dkmd on https://127.0.0.1:$port"
"$dkmd" --config "$work/dkmd.conf" 2>"$work/dkmd.log" &
dkmd_pid=$!
healthy() {
    curl -sf --max-time 2 --cacert "$work/state/tls.crt" \
        "https://127.0.0.1:$port/v1/health" >/dev/null
}
dkm_wait_for 30 healthy || {
    cat "$work/dkmd.log" >&2
    dkm_die "dkmd did not come up"
}
echo "dkmd is up (pid $dkmd_pid)"
cat >"$work/dkmctl.conf" <<CONF
[dkmctl]
admin_socket = $work/admin.sock
CONF
ctl() { run "$dkmctl" --config "$work/dkmctl.conf" "$@"; }

step "a node: its own software TPM, and its node card"
mkdir -p "$work/node-tpm"
eval "$(scripts/swtpm.sh start "$work/node-tpm")"
node_tcti=$SWTPM_TCTI
echo "node TPM: $node_tcti (pid $SWTPM_PID)"
node_id=$(run "$dkmctl" node init --tcti "$node_tcti" --out "$work/node.card")
echo "node id: $node_id"

step "administration: authorize the node, create a group, grant it"
ctl node authorize "$work/node.card" --role client
ctl group create payments --rotate 30d --lifetime 90d --ttl 5m
ctl group grant payments "$node_id"
ctl group show payments

step "the node's OpenSSL configuration: the dkm provider, the service, the pinned trust"
cat >"$work/node-openssl.cnf" <<CONF
openssl_conf = openssl_init
[openssl_init]
providers = provider_sect
[provider_sect]
default = default_sect
dkm = dkm_sect
[default_sect]
activate = 1
[dkm_sect]
module = $root/build/provider/dkm.so
activate = 1
service = https://127.0.0.1:$port
trust = $trust
tcti = $node_tcti
cache_dir = $work/node-cache
CONF
cat "$work/node-openssl.cnf"
export OPENSSL_CONF=$work/node-openssl.cnf
cat >>"$work/dkmctl.conf" <<CONF
trust = $trust
tcti = $node_tcti
cache_dir = $work/node-cache
CONF

# The node's processes run in a user namespace of the demo's own (uids
# mapped to themselves), so the kernel keyring where they share unsealed
# keys is the demo's, not this machine's; it ends with the demo.
unshare --user sleep infinity &
ns_pid=$!
ns_ready() { [ "$(readlink "/proc/$ns_pid/ns/user")" != "$(readlink /proc/self/ns/user)" ]; }
dkm_wait_for 5 ns_ready || dkm_die "the node's user namespace did not start"
echo '0 0 65536' >"/proc/$ns_pid/uid_map"
echo '0 0 65536' >"/proc/$ns_pid/gid_map"
node() {
    printf '$ %s\n' "$*" >&2
    nsenter -t "$ns_pid" -U -- "$@"
}
nctl() { node "$dkmctl" --config "$work/dkmctl.conf" "$@"; }

head -c 200000 /dev/urandom >"$work/report.bin"
echo "a file to protect: report.bin, $(stat -c %s "$work/report.bin") bytes"

step "openssl storeutl: the key by name (its bytes never leave the provider)"
node openssl storeutl -noout -text dkm:payments

step "openssl pkeyutl: protect and recover the file with dkm:payments"
node openssl pkeyutl -encrypt -inkey dkm:payments -in "$work/report.bin" -out "$work/report.v1.dkm"
node openssl pkeyutl -decrypt -inkey dkm:payments -in "$work/report.v1.dkm" -out "$work/back1"
run cmp "$work/report.bin" "$work/back1" && echo "recovered: identical"

step "openssl enc: stream the file with DKM-AES-256-GCM, -K naming the key"
k=$("$dkmctl" uri-hex dkm:payments)
echo "-K $k  (the URI dkm:payments, not a key)"
node openssl enc -DKM-AES-256-GCM -K "$k" -in "$work/report.bin" -out "$work/report.v1.enc"
node openssl enc -d -DKM-AES-256-GCM -K "$k" -in "$work/report.v1.enc" -out "$work/back2"
run cmp "$work/report.bin" "$work/back2" && echo "recovered: identical"

step "the node's kernel keyring: what its processes share (never the bytes)"
nctl key list

step "rotate the group: version 2 becomes current"
ctl group rotate payments
# Processes remember the current version for 10 s; a flush makes the node
# ask at once.
nctl key flush payments
node openssl storeutl -noout -text dkm:payments

step "new data uses version 2; data made under version 1 still opens"
node openssl pkeyutl -encrypt -inkey dkm:payments -in "$work/report.bin" -out "$work/report.v2.dkm"
node openssl enc -DKM-AES-256-GCM -K "$k" -in "$work/report.bin" -out "$work/report.v2.enc"
ls "$work/node-cache"
nctl key list
# A protect blob's header: "DKMP", format, flags, group length, group,
# then the key version (u32, big-endian); see docs/provider.md.
key_version() {
    local glen
    glen=$(od -An -tu1 -j6 -N1 "$1" | tr -d ' ')
    od -An -tu1 -j$((7 + glen)) -N4 "$1" | awk '{print $1 * 16777216 + $2 * 65536 + $3 * 256 + $4}'
}
echo "report.v1.dkm was made with key version $(key_version "$work/report.v1.dkm")"
echo "report.v2.dkm was made with key version $(key_version "$work/report.v2.dkm")"
for f in report.v1.dkm report.v2.dkm; do
    node openssl pkeyutl -decrypt -inkey dkm:payments -in "$work/$f" -out "$work/back.$f"
    cmp "$work/report.bin" "$work/back.$f" && echo "$f: recovered"
done
for f in report.v1.enc report.v2.enc; do
    node openssl enc -d -DKM-AES-256-GCM -K "$k" -in "$work/$f" -out "$work/back.$f"
    cmp "$work/report.bin" "$work/back.$f" && echo "$f: recovered"
done

step "the audit log"
ctl audit --limit 10
