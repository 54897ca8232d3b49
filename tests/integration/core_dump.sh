#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Functions here run through it_check:
# shellcheck disable=SC2317
#
# A core dump of a process that holds a dkm key does not contain the key.
# dkm_holdkey uses dkm:g/2 through the provider (test key source, so the
# test can compute the key independently) and waits; gcore dumps it; the
# dump is searched for the key's 32 bytes and for each half of them. As a
# control, the same search must find a value the process holds in
# ordinary memory (the key's URI), so a dump that lost everything cannot
# pass, and, with the anonymous backend, a dump of every mapping
# (gcore -a) must contain the key, so the search itself works. Both secure-memory backends are checked (memfd_secret, and the
# anonymous mapping with MADV_DONTDUMP).

# shellcheck source=tests/integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
it_init core_dump

BUILD=${DKM_BUILD_DIR:?}
MODDIR=$BUILD/provider/testkeys
HOLD=$BUILD/tests/dkm_holdkey
[ -f "$MODDIR/dkm.so" ] || it_fatal "no test provider module in $MODDIR"
command -v gcore >/dev/null || it_fatal "gcore (gdb) is not installed"
# An ASan process maps terabytes of shadow memory: its dump would fill the
# disk and says nothing about dkm. tests/CMakeLists.txt does not register
# this test in sanitizer builds; refuse one here too.
libs=$(ldd "$HOLD" "$MODDIR/dkm.so" 2>&1)
if grep -q 'libasan' <<<"$libs"; then
    it_fatal "$HOLD or its module is built with AddressSanitizer; run this test from a normal build"
fi
# No dump of this small process needs more than 1 GiB; never fill the disk.
DUMP_LIMIT_KB=1048576
T=$IT_TMP
SEED=core-dump-seed

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
test_keys = g:3
test_seed = $SEED
CNF
export OPENSSL_CONF=$T/openssl.cnf
unset DKM_KEYSOURCE DKM_TEST_KEYS DKM_TEST_SEED DKM_TEST_TTL DKM_SERVICE DKM_TRUST

# The test key source's key for (g, 2), computed here independently.
python3 - "$SEED" g 2 >"$T/key.bin" <<'PY'
import hashlib, hmac, struct, sys
seed, group, version = sys.argv[1], sys.argv[2], int(sys.argv[3])
msg = b"dkm-test-key\0" + group.encode() + b"\0" + struct.pack(">I", version)
sys.stdout.buffer.write(hmac.new(seed.encode(), msg, hashlib.sha256).digest())
PY
it_check_eq "the key is 32 bytes" 32 "$(stat -c %s "$T/key.bin")"

# contains FILE NEEDLE_FILE: whether FILE contains the bytes of NEEDLE_FILE.
contains() {
    python3 - "$1" "$2" <<'PY'
import mmap, sys
with open(sys.argv[2], "rb") as f:
    needle = f.read()
with open(sys.argv[1], "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
    sys.exit(0 if m.find(needle) >= 0 else 1)
PY
}
head -c 16 "$T/key.bin" >"$T/key.lo"
tail -c 16 "$T/key.bin" >"$T/key.hi"
printf 'dkm:g/2' >"$T/uri"

for backend in memfd_secret anon; do
    coproc HOLDER { DKM_SECMEM_BACKEND=$backend exec "$HOLD" dkm:g/2 2>"$T/hold.err"; }
    pid=$HOLDER_PID
    read -r -t 20 line <&"${HOLDER[0]}" || line=
    it_check "[$backend] the holder resolved and used the key" grep -q '^ready' <<<"$line"
    rm -f "$T/core"*
    (ulimit -f "$DUMP_LIMIT_KB" && gcore -o "$T/core" "$pid") >"$T/gcore.log" 2>&1
    core=$(ls "$T/core".* 2>/dev/null | head -n 1)
    it_check "[$backend] gcore wrote a dump" test -s "$core"
    it_check "[$backend] control: the dump holds ordinary memory (the URI)" \
        contains "$core" "$T/uri"
    it_check_fails "[$backend] the dump does not contain the key" contains "$core" "$T/key.bin"
    it_check_fails "[$backend] nor its first half" contains "$core" "$T/key.lo"
    it_check_fails "[$backend] nor its second half" contains "$core" "$T/key.hi"
    if [ "$backend" = anon ]; then
        # Control: told to dump even do-not-dump mappings, gcore does get
        # the key, so the search works and MADV_DONTDUMP is what keeps it
        # out. (memfd_secret pages cannot be read through ptrace at all.)
        rm -f "$T/core"*
        (ulimit -f "$DUMP_LIMIT_KB" && gcore -a -o "$T/core" "$pid") >"$T/gcore.log" 2>&1
        core=$(ls "$T/core".* 2>/dev/null | head -n 1)
        it_check "[$backend] control: a dump of every mapping does contain the key" \
            contains "$core" "$T/key.bin"
    fi
    exec {HOLDER[1]}>&-
    wait "$pid"
    it_check_eq "[$backend] the holder exits cleanly" 0 "$?"
done

it_finish
