#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Functions here run through it_check:
# shellcheck disable=SC2317
#
# The dkm provider with the stock openssl binary: the test build of dkm.so
# (deterministic test key source) loaded through an openssl.cnf made in the
# test's temp dir, and through -provider-path. Checks storeutl (keys, the
# group listing, -text, refusals with the provider's reasons), pkey -text,
# pkeyutl protect/unprotect (with and without AAD, other group refused),
# and enc with DKM-AES-256-GCM: round trips of 0 bytes, small files with
# -bufsize 1, 10 MiB, base64 (-a), pipes; truncated and other-group
# streams refused; 2 GiB through pipes in constant memory. A protect blob
# made by pkeyutl is opened by an independent implementation of the format
# (Python's cryptography), one made by that implementation is opened by
# pkeyutl, and streams made by enc are read by an independent
# implementation of the stream format as docs/provider.md describes it.

# shellcheck source=tests/integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
it_init prov_cli

BUILD=${DKM_BUILD_DIR:?DKM_BUILD_DIR must name the build directory}
MODDIR=$BUILD/provider/testkeys
[ -f "$MODDIR/dkm.so" ] || it_fatal "no test provider module in $MODDIR"
# A sanitizer build of the module needs its runtime loaded first into the
# stock openssl binary; leaks are the unit tests' business (openssl exits
# without freeing everything).
asan=$(ldd "$MODDIR/dkm.so" | awk '/libasan\.so/ {print $3}')
if [ -n "$asan" ]; then
    export LD_PRELOAD=$asan
    export ASAN_OPTIONS=detect_leaks=0
fi
SEED=cli-test-seed
T=$IT_TMP

cat >"$T/openssl.cnf" <<CNF
openssl_conf = openssl_init
[openssl_init]
providers = provider_sect
[provider_sect]
default = default_sect
dkm = dkm_sect
[default_sect]
activate = 1
[dkm_sect]
module = $MODDIR/dkm.so
activate = 1
keysource = test
test_keys = g:3:1,h:2
test_seed = $SEED
CNF
export OPENSSL_CONF=$T/openssl.cnf
# No leftovers from the caller's environment may override the file.
unset DKM_KEYSOURCE DKM_TEST_KEYS DKM_TEST_SEED DKM_TEST_TTL DKM_SERVICE DKM_TRUST

# -K value: the URI's bytes NUL-padded to 64 bytes, in hex.
urihex() {
    local hex
    hex=$(printf '%s' "$1" | od -An -tx1 -v | tr -d ' \n')
    while [ ${#hex} -lt 128 ]; do hex="${hex}00"; done
    printf '%s' "$hex"
}
if [ -x "$BUILD/tools/dkmctl" ]; then
    it_check_eq "dkmctl uri-hex gives the -K value" "$(urihex dkm:g)" \
        "$("$BUILD/tools/dkmctl" uri-hex dkm:g | tr -d '\n')"
fi
KG=$(urihex dkm:g)
KH=$(urihex dkm:h)
ENC=(openssl enc -DKM-AES-256-GCM)

# ---- storeutl and pkey ----
out=$(openssl storeutl dkm:g 2>&1)
it_check "storeutl dkm:g finds one key" grep -q "Total found: 1" <<<"$out"
it_check "storeutl dkm:g finds a Pkey" grep -q "0: Pkey" <<<"$out"
out=$(openssl storeutl -noout -text dkm://g/2 2>&1)
it_check "storeutl -text names the version" grep -q "version:      2 (current: 3)" <<<"$out"
it_check "storeutl -text names the key id" grep -Eq "key id: +[0-9a-f]{16}" <<<"$out"
out=$(openssl storeutl dkm: 2>&1)
it_check "storeutl dkm: lists group g" grep -q "Name: dkm:g" <<<"$out"
it_check "storeutl dkm: lists group h" grep -q "Name: dkm:h" <<<"$out"
it_check "storeutl dkm: lists two groups" grep -q "Total found: 2" <<<"$out"
out=$(openssl storeutl dkm:g/1 2>&1)
it_check_ne "storeutl of an expired version fails" 0 "$(openssl storeutl dkm:g/1 >/dev/null 2>&1; echo $?)"
it_check "expired version is named" grep -q "dkm key version has expired" <<<"$out"
out=$(openssl storeutl dkm:g/x 2>&1)
it_check "bad URI is refused with the provider's reason" grep -q "invalid dkm URI" <<<"$out"
out=$(openssl storeutl dkm:nosuch 2>&1)
it_check "unknown group is refused" grep -q "no such dkm group or key version" <<<"$out"
out=$(openssl pkey -in dkm:g -text -noout 2>&1)
it_check "pkey -text describes the key" grep -q "URI:          dkm:g/3 (loaded as current)" <<<"$out"

# The same through -provider-path and the environment, without the file.
out=$(OPENSSL_CONF=/dev/null DKM_KEYSOURCE=test DKM_TEST_KEYS=g:3 DKM_TEST_SEED=$SEED \
    openssl storeutl -provider-path "$MODDIR" -provider dkm -provider default -text \
    -noout dkm:g 2>&1)
it_check "-provider-path and environment work too" grep -q "version:      3" <<<"$out"

# Debugging on: errors are logged with where they were raised.
out=$(DKM_DEBUG=1 openssl storeutl dkm:g/x 2>&1)
it_check "DKM_DEBUG logs the raising file and function" \
    grep -q "provider/store.c:[0-9]* dkm_store_open" <<<"$out"

# The installed build of the module has no key source yet: it loads, and
# refuses key operations with a clear reason.
out=$(OPENSSL_CONF=/dev/null openssl storeutl -provider-path "$BUILD/provider" \
    -provider dkm -provider default dkm:g 2>&1)
it_check "installed module refuses without a key source" \
    grep -q "no dkm key source configured" <<<"$out"
out=$(OPENSSL_CONF=/dev/null DKM_KEYSOURCE=test openssl storeutl -provider-path \
    "$BUILD/provider" -provider dkm -provider default dkm:g 2>&1)
it_check "installed module has no test key source" \
    grep -q "dkm provider configuration: keysource" <<<"$out"

# ---- pkeyutl ----
head -c 1000 /dev/urandom >"$T/msg"
it_check "pkeyutl -encrypt" openssl pkeyutl -encrypt -inkey dkm:g -in "$T/msg" -out "$T/blob"
it_check "pkeyutl -decrypt" openssl pkeyutl -decrypt -inkey dkm:g -in "$T/blob" -out "$T/msg.out"
it_check "pkeyutl round trip" cmp "$T/msg" "$T/msg.out"
it_check_fails "pkeyutl -decrypt with another group" \
    openssl pkeyutl -decrypt -inkey dkm:h -in "$T/blob" -out "$T/x"
it_check "pkeyutl with AAD" openssl pkeyutl -encrypt -inkey dkm:g -pkeyopt dkm-aad:ctx1 \
    -in "$T/msg" -out "$T/blob.aad"
it_check "pkeyutl AAD round trip" openssl pkeyutl -decrypt -inkey dkm:g \
    -pkeyopt dkm-aad:ctx1 -in "$T/blob.aad" -out "$T/msg.aad"
it_check "pkeyutl AAD plaintext" cmp "$T/msg" "$T/msg.aad"
it_check_fails "pkeyutl wrong AAD" openssl pkeyutl -decrypt -inkey dkm:g \
    -pkeyopt dkm-aad:ctx2 -in "$T/blob.aad" -out "$T/x"
: >"$T/empty"
it_check "pkeyutl protects 0 bytes" openssl pkeyutl -encrypt -inkey dkm:g -in "$T/empty" \
    -out "$T/blob0"
it_check_eq "a 0-byte blob is header + tag" 40 "$(stat -c %s "$T/blob0")"

# ---- an independent implementation of the protect format ----
cat >"$T/protect.py" <<'PY'
import hashlib, hmac, os, struct, sys
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

def key(seed, group, version):
    data = b"dkm-test-key\0" + group.encode() + b"\0" + struct.pack(">I", version)
    return hmac.new(seed.encode(), data, hashlib.sha256).digest()

mode, seed, path = sys.argv[1], sys.argv[2], sys.argv[3]
if mode == "open":
    blob = open(path, "rb").read()
    assert blob[:5] == b"DKMP\x01" and blob[5] == 0
    glen = blob[6]
    group = blob[7:7 + glen].decode()
    (version,) = struct.unpack(">I", blob[7 + glen:11 + glen])
    nonce = blob[11 + glen:23 + glen]
    header = blob[:23 + glen]
    sys.stdout.buffer.write(AESGCM(key(seed, group, version)).decrypt(nonce, blob[23 + glen:], header))
else:
    group, version = sys.argv[4], int(sys.argv[5])
    nonce = os.urandom(12)
    header = b"DKMP\x01\x00" + bytes([len(group)]) + group.encode() + struct.pack(">I", version) + nonce
    pt = open(path, "rb").read()
    sys.stdout.buffer.write(header + AESGCM(key(seed, group, version)).encrypt(nonce, pt, header))
PY
it_check "pkeyutl blob opens independently" \
    bash -c "python3 '$T/protect.py' open $SEED '$T/blob' >'$T/msg.py' && cmp '$T/msg' '$T/msg.py'"
it_check "independent blob (version 2) made" \
    bash -c "python3 '$T/protect.py' seal $SEED '$T/msg' g 2 >'$T/blob.py'"
it_check "pkeyutl opens the independent blob with dkm:g" \
    openssl pkeyutl -decrypt -inkey dkm:g -in "$T/blob.py" -out "$T/msg.py2"
it_check "independent blob plaintext" cmp "$T/msg" "$T/msg.py2"
it_check "expired-version blob made" \
    bash -c "python3 '$T/protect.py' seal $SEED '$T/msg' g 1 >'$T/blob.v1'"
out=$(openssl pkeyutl -decrypt -inkey dkm:g -in "$T/blob.v1" -out "$T/x" 2>&1)
it_check "blob of an expired version is refused" grep -q "dkm key version has expired" <<<"$out"

# ---- enc with DKM-AES-256-GCM ----
head -c $((10 * 1024 * 1024)) /dev/urandom >"$T/big"
head -c 3000 /dev/urandom >"$T/small"
it_check "enc 10 MiB" "${ENC[@]}" -K "$KG" -in "$T/big" -out "$T/big.dkm"
it_check "enc -d 10 MiB" "${ENC[@]}" -d -K "$KG" -in "$T/big.dkm" -out "$T/big.out"
it_check "enc 10 MiB round trip" cmp "$T/big" "$T/big.out"
it_check_eq "10 MiB stream overhead" $((10 * 1024 * 1024 + 32 + 160 * 16 + 16)) \
    "$(stat -c %s "$T/big.dkm")"
it_check "enc 0 bytes" "${ENC[@]}" -K "$KG" -in "$T/empty" -out "$T/empty.dkm"
it_check_eq "empty stream is 32 bytes" 32 "$(stat -c %s "$T/empty.dkm")"
it_check "enc -d 0 bytes" "${ENC[@]}" -d -K "$KG" -in "$T/empty.dkm" -out "$T/empty.out"
it_check_eq "empty stream decrypts to nothing" 0 "$(stat -c %s "$T/empty.out")"
it_check "enc -bufsize 1" "${ENC[@]}" -bufsize 1 -K "$KG" -in "$T/small" -out "$T/small.dkm"
it_check "enc -d -bufsize 1" "${ENC[@]}" -d -bufsize 1 -K "$KG" -in "$T/small.dkm" \
    -out "$T/small.out"
it_check "-bufsize 1 round trip" cmp "$T/small" "$T/small.out"
it_check "enc -a" "${ENC[@]}" -a -K "$KG" -in "$T/small" -out "$T/small.b64"
it_check "enc -a output is base64" grep -Eq '^[A-Za-z0-9+/=]+$' "$T/small.b64"
it_check "enc -d -a" "${ENC[@]}" -d -a -K "$KG" -in "$T/small.b64" -out "$T/small.out2"
it_check "-a round trip" cmp "$T/small" "$T/small.out2"
it_check "enc through pipes" bash -c "cat '$T/big' | ${ENC[*]} -K $KG | ${ENC[*]} -d -K $KG \
    | cmp - '$T/big'"
it_check "enc -a through pipes, 0 bytes" bash -c ": | ${ENC[*]} -a -K $KG | ${ENC[*]} -d -a \
    -K $KG | cmp - '$T/empty'"
# 2 GiB through pipes: correct, and in constant memory on both sides.
it_check "2 GiB round trip through pipes" bash -c "head -c 2G /dev/zero \
    | /usr/bin/time -f %M -o '$T/rss.enc' ${ENC[*]} -K $KG \
    | /usr/bin/time -f %M -o '$T/rss.dec' ${ENC[*]} -d -K $KG \
    | cmp - <(head -c 2G /dev/zero)"
for side in enc dec; do
    rss=$(tail -n 1 "$T/rss.$side")
    it_check "2 GiB $side stays under 64 MiB resident (${rss} KiB)" test "$rss" -lt 65536
done
# The stream format as docs/provider.md describes it, read independently.
cat >"$T/stream.py" <<'PY'
import hashlib, hmac, struct, sys
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

seed, group, path = sys.argv[1], sys.argv[2], sys.argv[3]
data = open(path, "rb").read()
assert data[:5] == b"DKMS\x01" and data[6] == 16 and data[7] == 0
kind = data[5]
(version, gid) = struct.unpack(">II", data[8:16])
assert gid == struct.unpack(">I", hashlib.sha256(b"dkm-group:" + group.encode()).digest()[:4])[0]
gkey = hmac.new(seed.encode(), b"dkm-test-key\0" + group.encode() + b"\0" +
                struct.pack(">I", version), hashlib.sha256).digest()
hlen = 32 if kind == 1 else 16
header = data[:hlen]
okm = HKDF(algorithm=hashes.SHA256(), length=39, salt=data[16:32] if kind == 1 else None,
           info=b"dkm-stream-v1" + data[:16] + group.encode()).derive(gkey)
aead, prefix = AESGCM(okm[:32]), okm[32:]
nonce = lambda i, last: prefix + struct.pack(">IB", i, last)
body, out, i = data[hlen:-16], b"", 0
while body:
    seg, body = body[:65536 + 16], body[65536 + 16:]
    out += aead.decrypt(nonce(i, 0), seg, header)
    i += 1
aead.decrypt(nonce(i, 1), data[-16:], header)  # the terminator
sys.stdout.buffer.write(out)
PY
head -c 200000 /dev/urandom >"$T/mid"
it_check "enc 200 kB" "${ENC[@]}" -K "$KG" -in "$T/mid" -out "$T/mid.dkm"
for f in mid small empty; do
    it_check "stream of $f read by an independent implementation" \
        bash -c "python3 '$T/stream.py' $SEED g '$T/$f.dkm' | cmp - '$T/$f'"
done
out=$("${ENC[@]}" -d -K "$KH" -in "$T/small.dkm" -out "$T/x" 2>&1)
it_check "another group's stream is refused" grep -q "data belongs to another dkm group" <<<"$out"
head -c $(($(stat -c %s "$T/big.dkm") - 16)) "$T/big.dkm" >"$T/trunc.dkm"
out=$("${ENC[@]}" -d -K "$KG" -in "$T/trunc.dkm" -out "$T/x" 2>&1)
it_check_ne "a truncated stream fails" 0 "$("${ENC[@]}" -d -K "$KG" -in "$T/trunc.dkm" \
    -out "$T/x" >/dev/null 2>&1; echo $?)"
it_check "truncation is reported" grep -q "dkm data failed authentication" <<<"$out"
out=$("${ENC[@]}" -K "$(urihex notauri)" -in "$T/small" -out "$T/x" 2>&1)
it_check "a key that is no URI is refused" grep -q "cipher key is not a dkm URI" <<<"$out"

it_finish
