#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The provider's "service" key source end to end: the stock openssl binary
# loads the built dkm.so through an openssl.cnf in the test's temp dir
# that points at a real dkmd (swtpm for the server and for the node,
# PostgreSQL), the pinned trust, the node's TPM and a disk cache.
# pkeyutl -encrypt/-decrypt round trips under the current version and
# after a rotation; a node that is not granted is refused; with dkmd
# stopped, cached keys keep working and an uncached one fails with an
# error naming the service; a key past its version's expiry is never
# used from the cache. Also the same through -provider-path.

# shellcheck source=tests/integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/svc_common.bash
. "$(dirname "${BASH_SOURCE[0]}")/svc_common.bash"
# shellcheck source=tests/integration/keys_common.bash
. "$(dirname "${BASH_SOURCE[0]}")/keys_common.bash"
it_init client_provider

BUILD=${DKM_BUILD_DIR:?DKM_BUILD_DIR must name the build directory}
MODDIR=$BUILD/provider
[ -f "$MODDIR/dkm.so" ] || it_fatal "no provider module in $MODDIR"
# A sanitizer build of the module needs its runtime preloaded into the stock
# openssl binary (and only there: the TPM tools must not get it).
asan=$(ldd "$MODDIR/dkm.so" | awk '/libasan\.so/ {print $3}')
OSSL_ENV=()
[ -n "$asan" ] && OSSL_ENV=(LD_PRELOAD="$asan" ASAN_OPTIONS=detect_leaks=0)

unset DKM_KEYSOURCE DKM_SERVICE DKM_TRUST DKM_TCTI DKM_CACHE_DIR DKM_DEBUG

keys_setup
keys_init
svc_start
CTL=$KEYS_DKMCTL
cat >"$IT_TMP/dkmctl.cnf" <<CNF
[dkmctl]
admin_socket = $SVC_SOCK
CNF
ctl() {
    "$CTL" --config "$IT_TMP/dkmctl.cnf" "$@"
}

keys_node n1
keys_node n2
ctl node authorize "$IT_TMP/n1.card" >/dev/null || it_fatal "authorize n1 failed"
ctl node authorize "$IT_TMP/n2.card" >/dev/null || it_fatal "authorize n2 failed"
ctl group create pay --rotate 1h --lifetime 2h --ttl 1m >/dev/null ||
    it_fatal "group create failed"
ctl group create other >/dev/null || it_fatal "group create failed"
ctl group create brief --rotate 6s --lifetime 6s --ttl 1s >/dev/null ||
    it_fatal "group create failed"
for g in pay other brief; do
    ctl group grant $g "${NODE_ID[n1]}" >/dev/null || it_fatal "grant $g failed"
done

# One openssl.cnf per node.
node_conf() {
    local name=$1
    keys_provider_conf "$IT_TMP/$name.cnf" "${NODE_TCTI[$name]}" "$IT_TMP/cache-$name"
}
node_conf n1
node_conf n2
on() {
    local name=$1
    shift
    env OPENSSL_CONF="$IT_TMP/$name.cnf" "${OSSL_ENV[@]}" "$@"
}

head -c 1000 /dev/urandom >"$IT_TMP/msg"
it_check "n1: pkeyutl -encrypt with dkm:pay" \
    on n1 openssl pkeyutl -encrypt -inkey dkm:pay -in "$IT_TMP/msg" -out "$IT_TMP/blob1"
it_check "n1: pkeyutl -decrypt gives the message back" \
    on n1 openssl pkeyutl -decrypt -inkey dkm:pay -in "$IT_TMP/blob1" -out "$IT_TMP/out1"
it_check "round trip" cmp "$IT_TMP/msg" "$IT_TMP/out1"
it_check "the key was fetched into the disk cache" test -s "$IT_TMP/cache-n1/pay.1.dkc"
out=$(on n1 openssl storeutl -text dkm:pay 2>&1)
it_check "storeutl describes the key (version 1, dkmd policy)" \
    grep -q "policy:       dkmd policy serial 1, cache ttl 60s" <<<"$out"
it_check "storeutl names the version" grep -q "version:      1 (current: 1)" <<<"$out"

# Rotation: new data under version 2, version 1 data still opens.
ctl group rotate pay >/dev/null || it_fatal "rotate failed"
it_check "after rotate: encrypt" \
    on n1 openssl pkeyutl -encrypt -inkey dkm:pay -in "$IT_TMP/msg" -out "$IT_TMP/blob2"
it_check "after rotate: the new blob uses version 2" test -s "$IT_TMP/cache-n1/pay.2.dkc"
it_check "after rotate: version 1 data still decrypts" \
    on n1 openssl pkeyutl -decrypt -inkey dkm:pay -in "$IT_TMP/blob1" -out "$IT_TMP/out1b"
it_check "after rotate: version 2 data decrypts" \
    on n1 openssl pkeyutl -decrypt -inkey dkm:pay -in "$IT_TMP/blob2" -out "$IT_TMP/out2"
it_check "both round trips" cmp "$IT_TMP/out1b" "$IT_TMP/out2"

# The same module through -provider-path and the environment.
it_check "-provider-path and DKM_* environment" env OPENSSL_CONF=/dev/null "${OSSL_ENV[@]}" \
    DKM_SERVICE="https://127.0.0.1:$SVC_PORT" DKM_TRUST="$KEYS_TRUST" \
    DKM_TCTI="${NODE_TCTI[n1]}" DKM_CACHE_DIR="$IT_TMP/cache-n1" \
    openssl pkeyutl -decrypt -provider-path "$MODDIR" -provider dkm -provider default \
    -inkey dkm:pay -in "$IT_TMP/blob2" -out "$IT_TMP/out2b"

# A TLS client certificate, when configured, is offered; a key that does not
# match its certificate is a configuration error naming the setting.
for k in n1 other; do
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$k" \
        -keyout "$IT_TMP/$k.key" -out "$IT_TMP/$k.crt" -days 1 2>/dev/null ||
        it_fatal "cannot make a TLS certificate"
done
{ cat "$IT_TMP/n1.cnf"; echo "tls_key = $IT_TMP/n1.key"; echo "tls_cert = $IT_TMP/n1.crt"; } \
    >"$IT_TMP/n1tls.cnf"
it_check "with a TLS client certificate: a new encryption" \
    on n1tls openssl pkeyutl -encrypt -inkey dkm:pay -in "$IT_TMP/msg" -out "$IT_TMP/blobt"
it_check "with a TLS client certificate: decrypts" \
    on n1tls openssl pkeyutl -decrypt -inkey dkm:pay -in "$IT_TMP/blobt" -out "$IT_TMP/outt"
sed "s|^tls_key = .*|tls_key = $IT_TMP/other.key|; s|^cache_dir = .*|cache_dir = $IT_TMP/cache-x|" \
    "$IT_TMP/n1tls.cnf" >"$IT_TMP/n1bad.cnf"
err=$(on n1bad openssl pkeyutl -encrypt -inkey dkm:pay -in "$IT_TMP/msg" -out "$IT_TMP/b" 2>&1)
it_check "a TLS key that does not match its certificate: refused, naming tls_key" \
    grep -q "tls_key" <<<"$err"

# dkm: lists the node's groups: from the service for a node whose TLS key
# is bound (even with an empty cache), else from the disk cache.
sed "s|^cache_dir = .*|cache_dir = $IT_TMP/cache-list|" "$IT_TMP/n1tls.cnf" >"$IT_TMP/n1list.cnf"
err=$(on n1list openssl storeutl dkm: 2>&1)
it_check "dkm: with a TLS key bound to no node: refused" test $? -ne 0
it_check "the refusal says the key is not bound" grep -q "not bound" <<<"$err"
ctl node tls "${NODE_ID[n1]}" "$IT_TMP/n1.crt" >/dev/null || it_fatal "node tls failed"
out=$(on n1list openssl storeutl dkm: 2>&1)
it_check "dkm: from the service lists the three granted groups" \
    grep -q "Total found: 3" <<<"$out"
for g in pay other brief; do
    it_check "dkm: lists dkm:$g" grep -q "Name: dkm:$g\$" <<<"$out"
done
it_check_fails "nothing was cached by listing" ls "$IT_TMP/cache-list"/*.dkc
out=$(on n1 openssl storeutl dkm: 2>&1)
it_check "dkm: without a TLS key lists the disk cache (pay only)" \
    grep -q "Total found: 1" <<<"$out"

# n2 is authorized but not granted: refused, nothing cached.
err=$(on n2 openssl pkeyutl -encrypt -inkey dkm:pay -in "$IT_TMP/msg" -out "$IT_TMP/b" 2>&1)
it_check "n2 (not granted) cannot encrypt" test $? -ne 0
it_check "n2's refusal says access denied" grep -qi "denied\|forbidden" <<<"$err"
it_check_fails "n2 cannot decrypt n1's data" \
    on n2 openssl pkeyutl -decrypt -inkey dkm:pay -in "$IT_TMP/blob1" -out "$IT_TMP/b"
it_check "n2 has nothing cached" test ! -e "$IT_TMP/cache-n2/pay.1.dkc"
# A wrong pin: nothing from this service is believed.
sed -i "s/^trust = .*/trust = $(printf '%064d' 0)/" "$IT_TMP/n2.cnf"
err=$(on n2 openssl pkeyutl -encrypt -inkey dkm:other -in "$IT_TMP/msg" -out "$IT_TMP/b" 2>&1)
it_check "a wrong trust pin is refused and named" grep -q "pinned" <<<"$err"

# A running application on a node that is then revoked: it keeps the key it
# holds until the policy's cache TTL ends, then is refused.
keys_node n3
ctl node authorize "$IT_TMP/n3.card" >/dev/null || it_fatal "authorize n3 failed"
ctl group create ttl3 --rotate 1h --lifetime 2h --ttl 3s >/dev/null ||
    it_fatal "group create ttl3 failed"
ctl group grant ttl3 "${NODE_ID[n3]}" >/dev/null || it_fatal "grant ttl3 failed"
node_conf n3
HOLD=$BUILD/tests/dkm_holdkey
coproc APP { OPENSSL_CONF=$IT_TMP/n3.cnf exec "$HOLD" dkm:ttl3 2>"$IT_TMP/app.err"; }
app_pid=$APP_PID
app() {
    local line=
    echo >&"${APP[1]}"
    read -r -t 20 line <&"${APP[0]}"
    echo "$line"
}
read -r -t 20 line <&"${APP[0]}" || line=
it_check "n3's application holds dkm:ttl3" grep -q '^ready' <<<"$line"
ctl node revoke "${NODE_ID[n3]}" >/dev/null || it_fatal "revoke n3 failed"
it_check_eq "right after n3's revocation, the held key still works (TTL 3 s)" ok "$(app)"
sleep 4
answer=$(app)
echo "# the application answered: $answer"
it_check "once the TTL has ended, the revoked node is refused" grep -q '^fail' <<<"$answer"
it_check "and the error says access was denied" grep -qi "denied\|forbidden\|revoked" <<<"$answer"
exec {APP[1]}>&-
wait "$app_pid"

# A group sealed to the node's platform state (PCR 16): usable while the
# PCR holds its value, refused with a clear error once it changes.
pcr_file=$IT_TMP/pcr16.bin
tpm2_pcrread -T "${NODE_TCTI[n1]}" sha256:16 -o "$pcr_file" >/dev/null 2>&1 ||
    it_fatal "cannot read n1's PCR 16"
pcr_hex=$(od -An -tx1 -v "$pcr_file" | tr -d ' \n')
ctl group create sealed --pcr 16 --pcr-values "$pcr_hex" >/dev/null ||
    it_fatal "group create sealed failed"
ctl group grant sealed "${NODE_ID[n1]}" >/dev/null || it_fatal "grant sealed failed"
it_check "PCR-bound group: encrypt while PCR 16 matches" \
    on n1 openssl pkeyutl -encrypt -inkey dkm:sealed -in "$IT_TMP/msg" -out "$IT_TMP/blobp"
it_check "PCR-bound group: decrypt while PCR 16 matches" \
    on n1 openssl pkeyutl -decrypt -inkey dkm:sealed -in "$IT_TMP/blobp" -out "$IT_TMP/outp"
tpm2_pcrextend -T "${NODE_TCTI[n1]}" 16:sha256=$(printf '%064d' 1) >/dev/null 2>&1 ||
    it_fatal "cannot extend n1's PCR 16"
err=$(on n1 openssl pkeyutl -decrypt -inkey dkm:sealed -in "$IT_TMP/blobp" -out "$IT_TMP/outp2" 2>&1)
it_check "after PCR 16 changed: the key is refused" test $? -ne 0
it_check "and the error says the platform state does not match" \
    grep -qi "platform state" <<<"$err"
it_check_fails "and nothing was written" test -s "$IT_TMP/outp2"

# The service goes away.
on n1 openssl pkeyutl -encrypt -inkey dkm:brief -in "$IT_TMP/msg" -out "$IT_TMP/blob3" ||
    it_fail "encrypt under brief"
it_stop_pid "$SVC_PID" >/dev/null
it_check "dkmd stopped: cached pay (current = v2) still encrypts" \
    on n1 openssl pkeyutl -encrypt -inkey dkm:pay -in "$IT_TMP/msg" -out "$IT_TMP/blob4"
it_check "dkmd stopped: cached v1 data still decrypts" \
    on n1 openssl pkeyutl -decrypt -inkey dkm:pay -in "$IT_TMP/blob1" -out "$IT_TMP/out5"
it_check "dkmd stopped: cached v2 data (made offline) decrypts" \
    on n1 openssl pkeyutl -decrypt -inkey dkm:pay -in "$IT_TMP/blob4" -out "$IT_TMP/out6"
it_check "offline round trips" cmp "$IT_TMP/msg" "$IT_TMP/out6"
out=$(on n1tls openssl storeutl dkm: 2>&1)
it_check "dkmd stopped: dkm: with a TLS key falls back to the disk cache" \
    grep -q "Name: dkm:pay" <<<"$out"
grep -v '^service = ' "$IT_TMP/n1.cnf" >"$IT_TMP/n1cache.cnf"
it_check "a node configured with only a cache directory uses its cache" \
    on n1cache openssl pkeyutl -decrypt -inkey dkm:pay -in "$IT_TMP/blob1" -out "$IT_TMP/out7"
err=$(on n1 openssl pkeyutl -encrypt -inkey dkm:other -in "$IT_TMP/msg" -out "$IT_TMP/b" 2>&1)
it_check "dkmd stopped: an uncached key fails" test $? -ne 0
it_check "the error names the service URL" grep -q "https://127.0.0.1:$SVC_PORT" <<<"$err"
it_check "the error says why" grep -qi "refused\|unreachable" <<<"$err"
# brief's only version expires 6 s after creation; the cache never outlives it.
sleep 7
it_check_fails "an expired cached version is never used" \
    on n1 openssl pkeyutl -decrypt -inkey dkm:brief -in "$IT_TMP/blob3" -out "$IT_TMP/b"

# A tampered cache entry is refused, not used.
svc_start dkmd2
cp "$IT_TMP/cache-n1/pay.1.dkc" "$IT_TMP/pay.1.saved"
it_stop_pid "$SVC_PID" >/dev/null
printf '\x01' | dd of="$IT_TMP/cache-n1/pay.1.dkc" bs=1 seek=100 conv=notrunc 2>/dev/null
it_check_fails "dkmd stopped: an altered cache entry is refused" \
    on n1 openssl pkeyutl -decrypt -inkey dkm:pay -in "$IT_TMP/blob1" -out "$IT_TMP/b"

it_finish
