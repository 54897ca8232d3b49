#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Functions here run through it_check:
# shellcheck disable=SC2317
#
# The kernel keyring cache, end to end: dkmd, PostgreSQL, a swtpm for the
# node, the stock openssl with the dkm provider, every TPM command
# counted (the counting TCTI). The node's processes run in a user
# namespace of the test's own (it_keyring_ns), so the keyrings are the
# test's, never the machine's.
#
#  - a second process finds the key in the keyring: no TPM command, and
#    it works with the node's TPM and dkmd both stopped;
#  - after the policy's cache TTL the key is gone and the next use unseals;
#  - another uid (nobody) neither finds nor reads it, and does its own
#    fetch;
#  - key list shows versions and times but no bytes; key flush empties it;
#  - 8 threads and a forked child, 10,000 round trips, from the keyring;
#  - keyctl refused by seccomp, or DKM_KEY_CACHE=process: keys stay in the
#    process, everything works;
#  - a payload of the wrong size or format is refused, replaced, unused;
#  - a core dump of a process that took its key from the keyring does not
#    hold the key;
#  - an older version after a rotation comes from the disk cache (5 TPM
#    commands, no Import).

# shellcheck source=tests/integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/svc_common.bash
. "$IT_SRC/tests/integration/svc_common.bash"
# shellcheck source=tests/integration/keys_common.bash
. "$IT_SRC/tests/integration/keys_common.bash"
it_init keys_keyring

BUILD=${DKM_BUILD_DIR:?}
COUNT_TCTI=$BUILD/tcti/libtss2-tcti-dkmcount.so
STRESS=$BUILD/tests/tools/dkm-keyring-stress
NOKEYCTL=$BUILD/tests/tools/dkm-nokeyctl
HOLD=$BUILD/tests/dkm_holdkey
for f in "$COUNT_TCTI" "$STRESS" "$NOKEYCTL" "$HOLD"; do
    [ -e "$f" ] || it_fatal "not built: $f"
done
command -v keyctl >/dev/null || it_fatal "keyctl (keyutils) is not installed"

keys_setup
sed -i 's/^log_level = debug$/log_level = notice/' "$SVC_CONF"
keys_init
svc_start
keys_node n1
admin POST /v1/nodes "{\"card\":\"${NODE_CARD[n1]}\"}" >/dev/null
for g in long:600 short:4; do
    admin POST /v1/groups "{\"name\":\"${g%%:*}\",\"rotation_period\":3600,\"version_lifetime\":7200,\"cache_ttl\":${g##*:}}" >/dev/null
    admin POST "/v1/groups/${g%%:*}/grant" "{\"node_id\":\"${NODE_ID[n1]}\"}" >/dev/null
done
it_check_eq "the groups are granted" 200 "$(cat "$IT_TMP/admin.code")"

# A node configuration as the provider and dkmctl read it; CACHE the
# cache directory (one per uid: it must be owned by its user).
node_conf() {
    local file=$1 cache=$2
    keys_provider_conf "$file" "$COUNT_TCTI:${NODE_TCTI[n1]}" "$cache"
    cat >>"$file" <<CNF
[dkmctl]
service = https://127.0.0.1:$SVC_PORT
trust = $KEYS_TRUST
tcti = $COUNT_TCTI:${NODE_TCTI[n1]}
cache_dir = $cache
CNF
    chmod 644 "$file"
}
node_conf "$IT_TMP/node.cnf" "$IT_TMP/cache"
export OPENSSL_CONF=$IT_TMP/node.cnf
export DKM_TCTI_COUNT_FILE=$IT_TMP/tpm.count
unset DKM_SERVICE DKM_TRUST DKM_TCTI DKM_CACHE_DIR
it_keyring_ns
head -c 100 /dev/urandom >"$IT_TMP/msg"
chmod 644 "$IT_TMP/msg"

# run_counted CMD...: CMD in the namespace with DKM_KEY_CACHE=keyring;
# tpm_count then says how many TPM commands it sent (it_check runs its
# command in a subshell, so the count goes through the file).
run_counted() {
    : >"$DKM_TCTI_COUNT_FILE"
    chmod 666 "$DKM_TCTI_COUNT_FILE"
    DKM_KEY_CACHE=keyring it_ns "$@" >"$IT_TMP/run.out" 2>"$IT_TMP/run.err"
}
tpm_count() { wc -l <"$DKM_TCTI_COUNT_FILE"; }
process_ns() { DKM_KEY_CACHE=process it_ns "$@"; }
protect() { # protect GROUP OUT
    run_counted openssl pkeyutl -encrypt -inkey "dkm:$1" -in "$IT_TMP/msg" -out "$2"
}
unprotect() { # unprotect GROUP IN
    run_counted openssl pkeyutl -decrypt -inkey "dkm:$1" -in "$2" -out "$IT_TMP/back" &&
        cmp -s "$IT_TMP/msg" "$IT_TMP/back"
}
dkmctl_ns() {
    DKM_KEY_CACHE=keyring it_ns "$KEYS_DKMCTL" -c "$IT_TMP/node.cnf" "$@"
}

# --- a second process: no TPM command ------------------------------------
it_check "the first use fetches and unseals" protect long "$IT_TMP/a.blob"
first=$(tpm_count)
it_check "the first use sent TPM commands ($first)" test "$first" -gt 0
it_check "a second process protects" protect long "$IT_TMP/b.blob"
it_check_eq "... with no TPM command (keyring)" 0 "$(tpm_count)"
it_check "and unprotects the first one's blob" unprotect long "$IT_TMP/a.blob"
it_check_eq "... with no TPM command" 0 "$(tpm_count)"
dkmctl_ns key list >"$IT_TMP/list.out" 2>&1
it_check "key list names long/1" grep -qE '^long +1 ' "$IT_TMP/list.out"
key_hex=$(DKM_KEY_CACHE=keyring it_ns "$KEYS_DKMCTL" -c "$IT_TMP/node.cnf" key fetch long \
    --json | jq -r .key_id)
it_check "key list shows the key id, not the key" grep -q "$key_hex" "$IT_TMP/list.out"

# The kernel's view: a user key of dkm's keyring, possessor and user only.
it_ns keyctl show @u >"$IT_TMP/show.out" 2>&1
it_check "dkm's keyring hangs off the user keyring" grep -q 'keyring: dkm$' "$IT_TMP/show.out"
serial=$(awk '/user: dkm:.*:long\/1$/ {print $1; exit}' "$IT_TMP/show.out")
it_check "the key is described dkm:<context>:long/1" test -n "$serial"
perm=$(it_ns keyctl rdescribe "$serial" | cut -d';' -f4)
it_check_eq "its permissions: possessor and user only" 3f3f0000 "$perm"
it_check "the current version is remembered too" grep -q 'user: dkm:.*:long/current$' \
    "$IT_TMP/show.out"

# --- the core dump of a keyring user holds no key ------------------------
payload_key() { # the key bytes of a payload: its last 32 bytes
    it_ns keyctl pipe "$1" | tail -c 32
}
payload_key "$serial" >"$IT_TMP/key.bin"
it_check_eq "the payload ends in the 32-byte key" 32 "$(stat -c %s "$IT_TMP/key.bin")"
contains() {
    python3 - "$1" "$2" <<'PY'
import mmap, sys
with open(sys.argv[2], "rb") as f:
    needle = f.read()
with open(sys.argv[1], "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
    sys.exit(0 if m.find(needle) >= 0 else 1)
PY
}
: >"$DKM_TCTI_COUNT_FILE"
coproc HOLDER { DKM_KEY_CACHE=keyring it_ns "$HOLD" dkm:long/1 2>"$IT_TMP/hold.err"; }
# bash unsets HOLDER_PID once the coprocess is reaped, which may come first.
holder_pid=$HOLDER_PID
read -r -t 30 ready <&"${HOLDER[0]}" || ready=
it_check "a holder process uses long/1" grep -q '^ready' <<<"$ready"
it_check_eq "... taken from the keyring (no TPM command)" 0 "$(wc -l <"$DKM_TCTI_COUNT_FILE")"
hold_pid=$(pgrep -n -f "dkm_holdkey dkm:long/1")
if [ -n "$hold_pid" ] && (ulimit -c 1048576 && gcore -o "$IT_TMP/core" "$hold_pid") \
    >/dev/null 2>&1; then
    core=$(ls "$IT_TMP"/core.* 2>/dev/null | head -n 1)
    it_check "a core dump was written" test -s "$core"
    it_check_fails "the dump does not contain the key" contains "$core" "$IT_TMP/key.bin"
    head -c 16 "$IT_TMP/key.bin" >"$IT_TMP/key.lo"
    it_check_fails "nor its first half" contains "$core" "$IT_TMP/key.lo"
    printf 'dkm:long/1' >"$IT_TMP/uri"
    it_check "but it holds ordinary memory (the URI)" contains "$core" "$IT_TMP/uri"
    rm -f "$core"
else
    it_fail "cannot dump the holder process"
fi
exec {HOLDER[1]}>&-
wait "$holder_pid" 2>/dev/null

# --- with the node's TPM and dkmd stopped -------------------------------
it_check "protect, just before the stop" protect long "$IT_TMP/c.blob"
it_stop_pid "$SVC_PID" >/dev/null
it_swtpm_stop n1
it_check "with the TPM and dkmd stopped, a new process protects" protect long \
    "$IT_TMP/d.blob"
it_check_eq "... with no TPM command" 0 "$(tpm_count)"
it_check "and unprotects" unprotect long "$IT_TMP/c.blob"
it_check "8 threads and a forked child: 10,000 round trips" \
    run_counted "$STRESS" dkm:long/1 8 10000
it_check "... all of them checked" grep -q '^ok 10100$' "$IT_TMP/run.out"
it_check_eq "... with no TPM command" 0 "$(tpm_count)"
it_check_fails "without the keyring (DKM_KEY_CACHE=process) the key is out of reach" \
    process_ns openssl pkeyutl -decrypt -inkey dkm:long \
    -in "$IT_TMP/c.blob" -out "$IT_TMP/back"

# --- back up: TTL, another uid, flush, refusals --------------------------
it_swtpm_start n1
NODE_TCTI[n1]=$SWTPM_TCTI
node_conf "$IT_TMP/node.cnf" "$IT_TMP/cache"
svc_start
# The TCTI is part of the keyring context: a new port is a new context.
it_check "a new context fetches again" protect long "$IT_TMP/e.blob"
it_check "... with TPM commands" test "$(tpm_count)" -gt 0

it_check "short (cache TTL 4 s): first use" protect short "$IT_TMP/s1.blob"
it_check "short: a second process" protect short "$IT_TMP/s2.blob"
it_check_eq "... from the keyring" 0 "$(tpm_count)"
sleep 5
dkmctl_ns key list >"$IT_TMP/list.out" 2>&1
it_check_fails "after the TTL, key list no longer has short" grep -qE '^short ' \
    "$IT_TMP/list.out"
it_check "the next use unseals again" protect short "$IT_TMP/s3.blob"
it_check "... with TPM commands" test "$(tpm_count)" -gt 0

# Another uid: its own user keyring; no access to this one's keys.
mkdir -p "$IT_TMP/nobody"
node_conf "$IT_TMP/nobody.cnf" "$IT_TMP/nobody/cache"
chown -R 65534:65534 "$IT_TMP/nobody"
it_ns keyctl show @u >"$IT_TMP/show.out" 2>&1
serial=$(awk '/user: dkm:.*:long\/1$/ {print $1; exit}' "$IT_TMP/show.out")
as_nobody() {
    it_ns setpriv --reuid=65534 --regid=65534 --clear-groups env DKM_KEY_CACHE=keyring \
        OPENSSL_CONF="$IT_TMP/nobody.cnf" "$@"
}
it_check_fails "nobody cannot read root's key by its serial" as_nobody keyctl print "$serial"
as_nobody keyctl show @u >"$IT_TMP/nobody.show" 2>&1
it_check_fails "nobody's keyring has no dkm key" grep -q 'user: dkm:' "$IT_TMP/nobody.show"
: >"$DKM_TCTI_COUNT_FILE"
chmod 666 "$DKM_TCTI_COUNT_FILE"
it_check "nobody protects with long" as_nobody openssl pkeyutl -encrypt -inkey dkm:long \
    -in "$IT_TMP/msg" -out "$IT_TMP/nobody/n.blob"
it_check "... after a fetch of its own (TPM commands)" test "$(wc -l <"$DKM_TCTI_COUNT_FILE")" -gt 0
as_nobody keyctl show @u >"$IT_TMP/nobody.show" 2>&1
it_check "... kept in nobody's own keyring" grep -q 'user: dkm:.*:long/1$' "$IT_TMP/nobody.show"
it_check "root unprotects what nobody made" unprotect long "$IT_TMP/nobody/n.blob"

# key flush
dkmctl_ns key flush long >"$IT_TMP/flush.out" 2>&1
it_check "key flush long removes its versions" grep -q 'removed [1-9]' "$IT_TMP/flush.out"
dkmctl_ns key list >"$IT_TMP/list.out" 2>&1
it_check_fails "key list no longer has long" grep -qE '^long ' "$IT_TMP/list.out"
it_check "after the flush a use unseals again" protect long "$IT_TMP/f.blob"
it_check "... with TPM commands" test "$(tpm_count)" -gt 0
dkmctl_ns key flush >"$IT_TMP/flush.out" 2>&1
dkmctl_ns key list >"$IT_TMP/list.out" 2>&1
it_check_eq "key flush (all) leaves nothing" 1 "$(wc -l <"$IT_TMP/list.out")"

# Planted payloads: refused, replaced, never used. (The keys of the
# context before the restart go first, so that one long/1 is left.)
ring=$(awk '/keyring: dkm$/ {print $1; exit}' "$IT_TMP/show.out")
it_ns keyctl clear "$ring"
it_check "long is kept again" protect long "$IT_TMP/g.blob"
it_ns keyctl show @u >"$IT_TMP/show.out" 2>&1
desc=$(awk '/user: dkm:.*:long\/1$/ {print $NF; exit}' "$IT_TMP/show.out")
for bad in "short payload" "$(head -c 300 /dev/zero | tr '\0' 'A')"; do
    it_ns keyctl add user "$desc" "$bad" "$ring" >/dev/null
    it_check "a use with a planted payload (${#bad} bytes) works" unprotect long \
        "$IT_TMP/g.blob"
    it_check "... and unseals instead of using it" test "$(tpm_count)" -gt 0
    serial=$(it_ns keyctl search "$ring" user "$desc")
    it_check_eq "... and the payload is replaced by a valid one" DKKY \
        "$(it_ns keyctl pipe "$serial" | head -c 4)"
done
# A valid payload of another key under this description: its key id does
# not match, or it names another version.
it_ns keyctl pipe "$serial" >"$IT_TMP/good.payload"
python3 - "$IT_TMP/good.payload" "$IT_TMP/bad.payload" <<'PY'
import sys
p = bytearray(open(sys.argv[1], "rb").read())
p[-1] ^= 1  # one key byte: the key id no longer matches
open(sys.argv[2], "wb").write(p)
PY
it_ns keyctl padd user "$desc" "$ring" <"$IT_TMP/bad.payload" >/dev/null
it_check "a payload whose key id does not match is not used" unprotect long "$IT_TMP/g.blob"
it_check "... (unsealed instead)" test "$(tpm_count)" -gt 0

# keyctl refused: keys stay in the process, everything works.
it_check "under a seccomp filter refusing keyctl, protect works" \
    run_counted "$NOKEYCTL" openssl pkeyutl -encrypt -inkey dkm:long -in "$IT_TMP/msg" \
    -out "$IT_TMP/h.blob"
it_check "... with its own unseal" test "$(tpm_count)" -gt 0
it_check "... and without an error" test ! -s "$IT_TMP/run.err"
DKM_DEBUG=1 DKM_KEY_CACHE=keyring it_ns "$NOKEYCTL" openssl pkeyutl -encrypt -inkey dkm:long \
    -in "$IT_TMP/msg" -out "$IT_TMP/h.blob" 2>"$IT_TMP/debug.err"
it_check_eq "one debug line says why" 1 \
    "$(grep -c 'not in the kernel keyring' "$IT_TMP/debug.err")"
it_check "DKM_KEY_CACHE=process works" process_ns openssl pkeyutl \
    -decrypt -inkey dkm:long -in "$IT_TMP/h.blob" -out "$IT_TMP/back"
dkmctl_ns key flush >/dev/null 2>&1
: >"$DKM_TCTI_COUNT_FILE"
DKM_KEY_CACHE=process it_ns openssl pkeyutl -encrypt -inkey dkm:long -in "$IT_TMP/msg" \
    -out "$IT_TMP/i.blob"
it_ns keyctl show @u >"$IT_TMP/show.out" 2>&1
it_check_fails "... and keeps nothing in the keyring" grep -q 'user: dkm:.*:long/1$' \
    "$IT_TMP/show.out"

# After a rotation (dkmd seals new import blobs), an older version this
# node imported before comes from the disk cache: its entry is checked
# against its own response, not against the new answer's blob.
admin POST /v1/groups "{\"name\":\"rot\",\"rotation_period\":3600,\"version_lifetime\":7200,\"cache_ttl\":600}" >/dev/null
admin POST /v1/groups/rot/grant "{\"node_id\":\"${NODE_ID[n1]}\"}" >/dev/null
it_check "rot: version 1 protects" protect rot "$IT_TMP/r1.blob"
admin POST /v1/groups/rot/rotate >/dev/null
dkmctl_ns key flush rot >/dev/null 2>&1
it_check "rot: version 2 protects" protect rot "$IT_TMP/r2.blob"
dkmctl_ns key flush rot >/dev/null 2>&1
it_check "rot: version 1 unprotects after the rotation" unprotect rot/1 "$IT_TMP/r1.blob"
it_check_eq "... from the disk cache: 5 TPM commands" 5 "$(tpm_count)"
it_check_fails "... with no Import" grep -q Import "$DKM_TCTI_COUNT_FILE"
it_check "... and the EK file is kept" test -s "$IT_TMP/cache/ek.pub"
it_finish
