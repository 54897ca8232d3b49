#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Functions here run through it_check:
# shellcheck disable=SC2317
#
# The example program docs/examples/protect_file.c, built by CMake, run as
# an ordinary OpenSSL application would be: it opens dkm:GROUP through
# OSSL_STORE and protects a file with EVP_PKEY_encrypt. Its blobs and the
# stock `openssl pkeyutl`'s must open each other; a tampered or other-group
# blob must fail and write nothing. Keys come from the test build of the
# provider (deterministic test key source), configured through OPENSSL_CONF.

# shellcheck source=tests/integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
it_init example_protect

BUILD=${DKM_BUILD_DIR:?}
MODDIR=$BUILD/provider/testkeys
EXAMPLE=$BUILD/docs/examples/protect_file
[ -f "$MODDIR/dkm.so" ] || it_fatal "no test provider module in $MODDIR"
[ -x "$EXAMPLE" ] || it_fatal "example not built: $EXAMPLE"
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
test_keys = g:3,h:1
test_seed = example-seed
CNF
export OPENSSL_CONF=$T/openssl.cnf
# A sanitizer build of the module needs its runtime preloaded into the
# stock openssl binary.
asan=$(ldd "$MODDIR/dkm.so" | awk '/libasan\.so/ {print $3}')
openssl() {
    if [ -n "$asan" ]; then
        LD_PRELOAD="$asan" ASAN_OPTIONS=detect_leaks=0 command openssl "$@"
    else
        command openssl "$@"
    fi
}
unset DKM_KEYSOURCE DKM_TEST_KEYS DKM_TEST_SEED DKM_TEST_TTL DKM_SERVICE DKM_TRUST

head -c 100000 /dev/urandom >"$T/plain"
it_check "the example protects a file with dkm:g" \
    "$EXAMPLE" protect dkm:g "$T/plain" "$T/plain.dkm"
it_check "the blob is dkm's protect format" \
    test "$(head -c 4 "$T/plain.dkm")" = DKMP
it_check "the blob does not contain the plaintext's start" \
    bash -c "! grep -qF \"\$(head -c 32 '$T/plain' | od -An -tx1 | tr -d ' \n')\" <(od -An -tx1 '$T/plain.dkm' | tr -d ' \n')"
it_check "openssl pkeyutl unprotects the example's blob" \
    openssl pkeyutl -decrypt -inkey dkm:g -in "$T/plain.dkm" -out "$T/back1"
it_check "to the same bytes" cmp "$T/plain" "$T/back1"

it_check "openssl pkeyutl protects with dkm:g/2" \
    openssl pkeyutl -encrypt -inkey dkm:g/2 -in "$T/plain" -out "$T/plain2.dkm"
it_check "the example unprotects it with dkm:g (version from the blob)" \
    "$EXAMPLE" unprotect dkm:g "$T/plain2.dkm" "$T/back2"
it_check "to the same bytes" cmp "$T/plain" "$T/back2"

printf '' >"$T/empty"
it_check "an empty file round-trips" \
    bash -c "'$EXAMPLE' protect dkm:h '$T/empty' '$T/empty.dkm' &&
             '$EXAMPLE' unprotect dkm:h '$T/empty.dkm' '$T/empty.back' &&
             cmp '$T/empty' '$T/empty.back'"

# Tampering: flip one byte in the middle of the ciphertext.
cp "$T/plain.dkm" "$T/bad.dkm"
printf '\xff' | dd of="$T/bad.dkm" bs=1 seek=5000 conv=notrunc status=none
it_check_fails "a tampered blob is refused" \
    "$EXAMPLE" unprotect dkm:g "$T/bad.dkm" "$T/bad.out"
it_check_fails "and nothing is written" test -e "$T/bad.out"
it_check_fails "a blob of group g is refused under dkm:h" \
    "$EXAMPLE" unprotect dkm:h "$T/plain.dkm" "$T/h.out"
it_check_fails "and nothing is written" test -e "$T/h.out"
it_check_fails "a key that does not exist is refused" \
    "$EXAMPLE" protect dkm:nosuchgroup "$T/plain" "$T/x.dkm"
it_check_fails "a bad URI is refused" \
    "$EXAMPLE" protect dkm:g/0 "$T/plain" "$T/y.dkm"

it_finish
