#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Functions here run from traps or through it_check:
# shellcheck disable=SC2317
#
# Smoke test of the test infrastructure itself: two software TPMs (two
# simulated machines) and one PostgreSQL started with scripts/swtpm.sh and
# scripts/pg.sh must answer, the two TPMs must have different EKs, and after
# a stop no process may be left. Also checks that tests/with-swtpm.sh passes
# the TPMs to its program, returns the program's status, and stops its TPMs
# after a normal exit, on SIGTERM, and (through its watchdog) after SIGKILL.
# Prints how long each start took, for planning test suites.

# shellcheck source=tests/integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
it_init smoke_infra

readonly EK_RSA=0x81010001
readonly EK_ECC=0x81010016

now_ms() {
    date +%s%3N
}

# The public area of a persistent key, in the TPM's own encoding.
read_public() {
    tpm2_readpublic -T "$1" -c "$2" -f tss -o "$IT_TMP/pub.$$" >/dev/null &&
        od -An -tx1 -v "$IT_TMP/pub.$$" | tr -d ' \n'
}

has_handle() {
    local handles
    handles=$(tpm2_getcap -T "$1" handles-persistent) && grep -qi -- "$2" <<<"$handles"
}

random_bytes() {
    local hex
    hex=$(tpm2_getrandom -T "$1" --hex 16) || return 1
    [[ "$hex" =~ ^[0-9a-f]{32}$ ]]
}

# --- two TPMs -----------------------------------------------------------
t0=$(now_ms)
it_swtpm_start tpm1
t1=$(now_ms)
tcti1=$SWTPM_TCTI
pid1=$SWTPM_PID
it_swtpm_start tpm2
tcti2=$SWTPM_TCTI
pid2=$SWTPM_PID
echo "# swtpm manufacture + start: $((t1 - t0)) ms"

it_check_ne "the two TPMs listen on different ports" "$tcti1" "$tcti2"
it_check "tpm1 returns random bytes" random_bytes "$tcti1"
it_check "tpm2 returns random bytes" random_bytes "$tcti2"
for h in $EK_RSA $EK_ECC; do
    it_check "tpm1 has persistent EK $h" has_handle "$tcti1" "$h"
    it_check "tpm2 has persistent EK $h" has_handle "$tcti2" "$h"
done
rsa1=$(read_public "$tcti1" $EK_RSA)
rsa2=$(read_public "$tcti2" $EK_RSA)
ecc1=$(read_public "$tcti1" $EK_ECC)
ecc2=$(read_public "$tcti2" $EK_ECC)
it_check "RSA EK public of tpm1 was read" test -n "$rsa1"
it_check "ECC EK public of tpm2 was read" test -n "$ecc2"
it_check_ne "the two machines have different RSA EKs" "$rsa1" "$rsa2"
it_check_ne "the two machines have different ECC EKs" "$ecc1" "$ecc2"

# A restart keeps the machine's identity: same state, same EK.
it_swtpm_stop tpm1
it_check_gone "tpm1's swtpm (PID $pid1) is gone after stop" "$pid1"
t0=$(now_ms)
it_swtpm_start tpm1
t1=$(now_ms)
echo "# swtpm restart of an existing state: $((t1 - t0)) ms"
it_check_eq "tpm1 keeps its RSA EK across a restart" "$rsa1" \
    "$(read_public "$SWTPM_TCTI" $EK_RSA)"
pid1=$SWTPM_PID

# --- PostgreSQL ---------------------------------------------------------
t0=$(now_ms)
it_pg_start pg
t1=$(now_ms)
echo "# PostgreSQL initdb + start: $((t1 - t0)) ms"
postmaster_pid=$PGPID
it_check_eq "psql over TCP answers select 1" 1 \
    "$(psql -X -h 127.0.0.1 -p "$PGPORT" -U postgres -d postgres -Atc 'select 1' 2>&1)"
it_check_eq "psql over the Unix socket answers" postgres \
    "$(psql -X -h "$PGSOCKDIR" -p "$PGPORT" -U postgres -d postgres -Atc \
        'select current_user' 2>&1)"
it_check_eq "the server listens on loopback only" 127.0.0.1 \
    "$(psql -X -h 127.0.0.1 -p "$PGPORT" -U postgres -d postgres -Atc \
        'show listen_addresses' 2>&1)"

# --- stop everything, then nothing may be left ---------------------------
it_swtpm_stop tpm1
it_swtpm_stop tpm2
it_pg_stop pg
it_check_gone "tpm1's swtpm (PID $pid1) is gone" "$pid1"
it_check_gone "tpm2's swtpm (PID $pid2) is gone" "$pid2"
it_check_gone "the postmaster (PID $postmaster_pid) is gone" "$postmaster_pid"
it_check_fails "psql fails once PostgreSQL is stopped" \
    psql -X -h 127.0.0.1 -p "$PGPORT" -U postgres -d postgres -Atc 'select 1'

# --- tests/with-swtpm.sh --------------------------------------------------
with_swtpm=$IT_SRC/tests/with-swtpm.sh
probe=$IT_TMP/probe.sh
cat >"$probe" <<'EOF'
#!/usr/bin/env bash
# Records what with-swtpm.sh handed over, then exits with status $1 (or,
# given "hang", becomes a long sleep that the wrapper has to end).
out=$2
for i in 1 2; do
    tcti_var=DKM_TEST_TCTI_$i
    ctrl_var=DKM_TEST_SWTPM_CTRL_$i
    state_var=DKM_TEST_SWTPM_STATE_$i
    tpm2_getrandom -T "${!tcti_var}" 4 >/dev/null || exit 90
    swtpm_ioctl --tcp "127.0.0.1:${!ctrl_var}" -g >/dev/null || exit 91
    grep '^SWTPM_PID=' "${!state_var}/env" | cut -d= -f2 >>"$out"
    dirname "${!state_var}" >"$out.dir"
done
echo $$ >"$out.pid"
[ "${3:-}" = hang ] && exec sleep 300
exit "$1"
EOF
chmod +x "$probe"

lines_are() {
    [ -f "$1" ] && [ "$(wc -l <"$1")" = "$2" ]
}

absent() {
    [ ! -e "$1" ]
}

: >"$IT_TMP/ran"
status=0
"$with_swtpm" 2 "$probe" 7 "$IT_TMP/ran" || status=$?
it_check_eq "with-swtpm.sh returns the program's status" 7 "$status"
it_check "with-swtpm.sh passed two usable TPMs" lines_are "$IT_TMP/ran" 2
while read -r p; do
    it_check_gone "with-swtpm.sh stopped its swtpm (PID $p)" "$p"
done <"$IT_TMP/ran"
it_check_fails "with-swtpm.sh removed its temporary directory" \
    test -e "$(cat "$IT_TMP/ran.dir")"

: >"$IT_TMP/sig"
"$with_swtpm" 2 "$probe" 0 "$IT_TMP/sig" hang &
wrapper=$!
dkm_wait_for 60 test -s "$IT_TMP/sig.pid" ||
    it_fail "with-swtpm.sh did not start its program"
kill -TERM "$wrapper"
status=0
wait "$wrapper" || status=$?
it_check_eq "with-swtpm.sh killed by SIGTERM exits 143" 143 "$status"
it_check "with-swtpm.sh had started two TPMs" lines_are "$IT_TMP/sig" 2
while read -r p; do
    it_check_gone "with-swtpm.sh stopped its swtpm (PID $p) on SIGTERM" "$p"
done <"$IT_TMP/sig"
it_check_gone "with-swtpm.sh ended its program on SIGTERM" "$(cat "$IT_TMP/sig.pid")"
it_check_fails "with-swtpm.sh removed its temporary directory on SIGTERM" \
    test -e "$(cat "$IT_TMP/sig.dir")"

# SIGKILL, as from a ctest timeout: no trap runs, the watchdog must clean up.
# ctest would also kill the program (a child of the wrapper); here the test
# does that itself, by the PID the program recorded.
: >"$IT_TMP/kill"
"$with_swtpm" 2 "$probe" 0 "$IT_TMP/kill" hang &
wrapper=$!
dkm_wait_for 60 test -s "$IT_TMP/kill.pid" ||
    it_fail "with-swtpm.sh did not start its program"
kill -KILL "$wrapper"
wait "$wrapper" 2>/dev/null
it_check "with-swtpm.sh had started two TPMs" lines_are "$IT_TMP/kill" 2
while read -r p; do
    it_check_gone "the watchdog stopped swtpm PID $p after SIGKILL" "$p"
done <"$IT_TMP/kill"
it_check "the watchdog removed with-swtpm.sh's temporary directory" \
    dkm_wait_for 10 absent "$(cat "$IT_TMP/kill.dir")"
dkm_kill_pid "$(cat "$IT_TMP/kill.pid")" "sleep 300"

it_finish
