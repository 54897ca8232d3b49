#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Functions here run through it_check:
# shellcheck disable=SC2317
#
# Faults on the node's side, with dkmd, PostgreSQL, the node's swtpm and
# the stock openssl (TPM commands counted by the counting TCTI):
#  - the node's TPM gone: a process holding a key keeps using it; a new
#    process fails with an error that names the TCTI;
#  - the cache directory read-only, and full (a small tmpfs, in a mount
#    namespace of the test's own): fetches still work, and one warning
#    names the directory;
#  - a corrupted trust.lists and a corrupted cache entry are refused and
#    fetched (imported) again, and rewritten.

# shellcheck source=tests/integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/svc_common.bash
. "$IT_SRC/tests/integration/svc_common.bash"
# shellcheck source=tests/integration/keys_common.bash
. "$IT_SRC/tests/integration/keys_common.bash"
it_init node_faults

BUILD=${DKM_BUILD_DIR:?}
COUNT_TCTI=$BUILD/tcti/libtss2-tcti-dkmcount.so
HOLD=$BUILD/tests/dkm_holdkey
[ -e "$COUNT_TCTI" ] && [ -e "$HOLD" ] || it_fatal "test tools are not built in $BUILD"

keys_setup
sed -i 's/^log_level = debug$/log_level = notice/' "$SVC_CONF"
keys_init
svc_start
keys_node n1
admin POST /v1/nodes "{\"card\":\"${NODE_CARD[n1]}\"}" >/dev/null
admin POST /v1/groups '{"name":"g","rotation_period":3600,"version_lifetime":7200,"cache_ttl":600}' >/dev/null
admin POST /v1/groups/g/grant "{\"node_id\":\"${NODE_ID[n1]}\"}" >/dev/null
it_check_eq "the group is granted" 200 "$(cat "$IT_TMP/admin.code")"

CACHE=$IT_TMP/cache
write_conf() {
    keys_provider_conf "$IT_TMP/openssl.cnf" "$COUNT_TCTI:${NODE_TCTI[n1]}" "$CACHE"
}
write_conf
export OPENSSL_CONF=$IT_TMP/openssl.cnf
export DKM_TCTI_COUNT_FILE=$IT_TMP/tpm.count
unset DKM_SERVICE DKM_TRUST DKM_TCTI DKM_CACHE_DIR
head -c 100 /dev/urandom >"$IT_TMP/msg"

protect() { # protect OUT: a new process, its stderr in $IT_TMP/err
    : >"$DKM_TCTI_COUNT_FILE"
    openssl pkeyutl -encrypt -inkey dkm:g -in "$IT_TMP/msg" -out "$1" 2>"$IT_TMP/err"
}
tpm_count() { wc -l <"$DKM_TCTI_COUNT_FILE"; }

it_check "a first protect fills the disk cache" protect "$IT_TMP/a.blob"
it_check "... the entry is there" test -s "$CACHE/g.1.dkc"

# --- the node's TPM gone ---------------------------------------------------
coproc HOLDER { exec "$HOLD" dkm:g 2>"$IT_TMP/hold.err"; }
hold_pid=$HOLDER_PID
read -r -t 30 line <&"${HOLDER[0]}" || line=
it_check "a holder process uses the key" grep -q '^ready' <<<"$line"
it_swtpm_stop n1
echo >&"${HOLDER[1]}"
read -r -t 30 line <&"${HOLDER[0]}" || line=
it_check_eq "with the node's TPM gone, the holder still protects" ok "$line"
it_check_fails "a new process cannot unseal" protect "$IT_TMP/b.blob"
it_check "... and its error names the TCTI" grep -q "${NODE_TCTI[n1]}" "$IT_TMP/err"
exec {HOLDER[1]}>&-
wait "$hold_pid" 2>/dev/null
it_swtpm_start n1
NODE_TCTI[n1]=$SWTPM_TCTI
write_conf
it_check "with the TPM back, a new process protects" protect "$IT_TMP/c.blob"

# --- a read-only and a full cache directory (own mount namespace) ---------
# in_mount_ns SCRIPT: bash SCRIPT in a new mount namespace; mounts made there
# vanish with it.
cat >"$IT_TMP/ro.sh" <<'SH'
set -e
mount -t tmpfs -o size=1m tmpfs "$CACHE"
cp -a "$SAVED"/. "$CACHE"/
rm -f "$CACHE"/*.dkc
mount -o remount,ro "$CACHE"
openssl pkeyutl -encrypt -inkey dkm:g -in "$MSG" -out "$OUT" 2>"$ERR"
SH
cat >"$IT_TMP/full.sh" <<'SH'
set -e
mount -t tmpfs -o size=64k tmpfs "$CACHE"
cp -a "$SAVED"/trust.lists "$CACHE"/
rm -f "$CACHE"/*.dkc
dd if=/dev/zero of="$CACHE/filler" bs=4k 2>/dev/null || true
openssl pkeyutl -encrypt -inkey dkm:g -in "$MSG" -out "$OUT" 2>"$ERR"
SH
cp -a "$CACHE" "$IT_TMP/saved"
for kind in ro full; do
    : >"$IT_TMP/err"
    it_check "cache directory $kind: protect works" env CACHE="$CACHE" SAVED="$IT_TMP/saved" \
        MSG="$IT_TMP/msg" OUT="$IT_TMP/$kind.blob" ERR="$IT_TMP/err" \
        unshare --mount --propagation private bash "$IT_TMP/$kind.sh"
    it_check_eq "cache directory $kind: one warning" 1 "$(grep -c 'warning' "$IT_TMP/err")"
    it_check "... naming the directory" grep -q "$CACHE" "$IT_TMP/err"
done
it_check "back on the real directory, protect works" protect "$IT_TMP/d.blob"

# --- corrupted trust.lists and cache entry --------------------------------
flip() { # flip FILE OFFSET
    python3 - "$1" "$2" <<'PY'
import sys
p, off = sys.argv[1], int(sys.argv[2])
b = bytearray(open(p, "rb").read())
b[off % len(b)] ^= 0x40
open(p, "wb").write(b)
PY
}
cp "$CACHE/trust.lists" "$IT_TMP/trust.before"
flip "$CACHE/trust.lists" 200
it_check "a corrupted trust.lists: protect works" protect "$IT_TMP/e.blob"
it_check "... and trust.lists is rewritten as it was" cmp -s "$CACHE/trust.lists" \
    "$IT_TMP/trust.before"
it_check "a valid entry is loaded from the disk cache (no Import)" protect "$IT_TMP/f.blob"
it_check_fails "... no Import" grep -q Import "$DKM_TCTI_COUNT_FILE"
size=$(stat -c %s "$CACHE/g.1.dkc")
flip "$CACHE/g.1.dkc" $((size - 40))
it_check "a corrupted cache entry: protect works" protect "$IT_TMP/g.blob"
it_check "... by importing the answer again" grep -q Import "$DKM_TCTI_COUNT_FILE"
it_check "... and the entry is rewritten: the next protect needs no Import" \
    protect "$IT_TMP/h.blob"
it_check_fails "... (no Import)" grep -q Import "$DKM_TCTI_COUNT_FILE"
for f in a c d e f g h; do
    it_check "blob $f unprotects" openssl pkeyutl -decrypt -inkey dkm:g -in "$IT_TMP/$f.blob" \
        -out "$IT_TMP/back"
done
it_finish
