#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Functions here run through it_check:
# shellcheck disable=SC2317
#
# dkmctl's node commands and uri-hex against real software TPMs, as a user
# runs them: node init prints the node id read from the EK, writes a card
# that node show reads back, refuses to overwrite it, gives another id on
# another machine and the same id again on the same one; errors are clear
# and exit codes are the documented ones.

# shellcheck source=tests/integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
it_init node_cli

dkmctl=${DKM_BUILD_DIR:?}/tools/dkmctl

it_swtpm_start m1
tcti1=$SWTPM_TCTI
it_swtpm_start m2
tcti2=$SWTPM_TCTI

card1=$IT_TMP/m1.card
id1=$("$dkmctl" node init --tcti "$tcti1" --out "$card1")
it_check "node init prints a 68-hex-digit node id" \
    grep -Eqx '000b[0-9a-f]{64}' <<<"$id1"
it_check "node init writes an armored card" \
    grep -q -- '-----BEGIN DKM NODE CARD-----' "$card1"

show=$("$dkmctl" node show --in "$card1")
it_check "node show prints the same node id" grep -q -- "$id1" <<<"$show"

json=$("$dkmctl" --json node show --in "$card1")
it_check_eq "node show --json gives the node id" "$id1" \
    "$(python3 -c 'import json,sys; print(json.load(sys.stdin)["node_id"])' <<<"$json")"

id1_again=$("$dkmctl" node init --tcti "$tcti1" --out "$IT_TMP/again.card")
it_check_eq "the same TPM gives the same node id" "$id1" "$id1_again"

id2=$("$dkmctl" node init --tcti "$tcti2" --out "$IT_TMP/m2.card")
it_check_ne "another TPM gives another node id" "$id1" "$id2"

before=$(sha256sum "$card1")
it_check_fails "node init refuses to overwrite a card" \
    "$dkmctl" node init --tcti "$tcti1" --out "$card1"
it_check_eq "the refused card is unchanged" "$before" "$(sha256sum "$card1")"
it_check "node init --force replaces it" \
    "$dkmctl" node init --tcti "$tcti2" --out "$card1" --force
it_check "the replaced card has the other node id" \
    grep -q -- "$id2" <<<"$("$dkmctl" node show --in "$card1")"

rsa=$("$dkmctl" node init --tcti "$tcti1" --ek rsa --out "$IT_TMP/rsa.card")
it_check_ne "the RSA EK gives another node id than the ECC EK" "$id1" "$rsa"

# A TPM that is not there: TPM exit code, a message naming the problem.
"$dkmctl" node init --tcti "swtpm:host=127.0.0.1,port=1" --out "$IT_TMP/x.card" \
    >"$IT_TMP/out" 2>"$IT_TMP/err"
it_check_eq "an unreachable TPM exits with the TPM code" 4 "$?"
it_check "and says so on stderr" grep -qi 'tpm' "$IT_TMP/err"
it_check_fails "and writes no card" test -e "$IT_TMP/x.card"

env -u DKM_TCTI "$dkmctl" node init --out "$IT_TMP/y.card" >/dev/null 2>"$IT_TMP/err"
it_check_eq "no TCTI anywhere is a configuration error" 3 "$?"

printf 'not a card\n' >"$IT_TMP/bad.card"
it_check_fails "node show refuses a file that is not a card" \
    "$dkmctl" node show --in "$IT_TMP/bad.card"
head -c 100 "$card1" >"$IT_TMP/cut.card"
it_check_fails "node show refuses a truncated card" \
    "$dkmctl" node show --in "$IT_TMP/cut.card"

# uri-hex: the -K value is the canonical URI, NUL-padded to 64 bytes.
hex=$("$dkmctl" uri-hex dkm://payments/7)
it_check_eq "uri-hex is 128 hex digits" 128 "${#hex}"
it_check_eq "uri-hex encodes the canonical URI" "dkm:payments/7" \
    "$(python3 -c 'import sys; print(bytes.fromhex(sys.argv[1]).rstrip(b"\0").decode())' "$hex")"
"$dkmctl" uri-hex "dkm:$(printf 'g%.0s' {1..61})" >/dev/null 2>"$IT_TMP/err"
it_check_eq "a URI that does not fit is a usage error" 2 "$?"
it_check "and the message says why" grep -q 'at most 64' "$IT_TMP/err"
"$dkmctl" uri-hex "dkm:bad/0" >/dev/null 2>"$IT_TMP/err"
it_check_eq "an invalid URI is a usage error" 2 "$?"
it_check "with the parser's reason" grep -q 'version 0' "$IT_TMP/err"
it_check_fails "unknown commands fail" "$dkmctl" frobnicate

it_finish
