#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Helpers run through it_check and take no arguments:
# shellcheck disable=SC2317,SC2119
#
# TLS client keys held in the node's TPM: `dkmctl node init --tls` makes
# an ECDSA key in the TPM (a TSS2 key file under the SRK, through
# tpm2-openssl) and a self-signed certificate; `node authorize
# --node-tls-cert` binds it. Then mTLS with it works from dkmctl (admin
# over TLS, key fetch) and from the provider's client in the stock
# openssl (a dkm: listing, which needs the bound key, and pkeyutl); the
# stock openssl signs with the key through tpm2-openssl; a process resumes
# its TLS session instead of signing with the TPM again; the key file
# copied to another TPM does not work; and a binding replaced by another
# key, or a revoked node, is refused. A key fetch makes one TPM2_Sign in
# all (counted by the counting TCTI) for its two requests. The node's TPM
# sits behind tpm_mux.py, as a real one behind /dev/tpmrm0: dkm's ESAPI
# context and tpm2-openssl's use it at once.

# shellcheck source=tests/integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/svc_common.bash
. "$(dirname "${BASH_SOURCE[0]}")/svc_common.bash"
# shellcheck source=tests/integration/keys_common.bash
. "$(dirname "${BASH_SOURCE[0]}")/keys_common.bash"
it_init keys_tls_tpm

BUILD=${DKM_BUILD_DIR:-$IT_SRC/build}
MODDIR=$BUILD/provider
[ -f "$MODDIR/dkm.so" ] || it_fatal "no provider module in $MODDIR"
asan=$(ldd "$MODDIR/dkm.so" | awk '/libasan\.so/ {print $3}')
OSSL_ENV=()
[ -n "$asan" ] && OSSL_ENV=(LD_PRELOAD="$asan" ASAN_OPTIONS=detect_leaks=0)
unset DKM_KEYSOURCE DKM_SERVICE DKM_TRUST DKM_TCTI DKM_CACHE_DIR DKM_DEBUG TPM2OPENSSL_TCTI
# tpm2-openssl's properties for a TLS handshake (DESIGN.md): TPM signatures only.
PROPQ='?provider=tpm2,tpm2.digest!=yes,tpm2.cipher!=yes,tpm2.rand!=yes'

keys_setup
keys_init
svc_start
it_swtpm_start adm
it_tpm_mux adm
ADM_TCTI=$MUX_TCTI
it_swtpm_start stranger
STRANGER_TCTI=$SWTPM_TCTI

K=$IT_TMP/adm-tls.key C=$IT_TMP/adm-tls.crt
out=$("$KEYS_DKMCTL" node init --tcti "$ADM_TCTI" --out "$IT_TMP/adm.card" --tls \
    --tls-key "$K" --tls-cert "$C" --json) || it_fatal "node init --tls failed: $out"
ADM_ID=$(jq -r .node_id <<<"$out")
it_check "node init --tls writes a TSS2 key file" grep -qx -- '-----BEGIN TSS2 PRIVATE KEY-----' "$K"
it_check_eq "... readable by its owner only" 600 "$(stat -c %a "$K")"
it_check "... and a self-signed certificate for it" openssl verify -CAfile "$C" "$C"
key_id=$(openssl x509 -in "$C" -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum |
    cut -d' ' -f1)
it_check_eq "... whose key id it prints" "$key_id" "$(jq -r .tls.key_id <<<"$out")"
it_check "the TPM signs with it (stock openssl, tpm2 provider)" bash -c \
    "echo hello >'$IT_TMP/m' && TPM2OPENSSL_TCTI='$ADM_TCTI' openssl dgst -provider tpm2 \
     -provider default -propquery '$PROPQ' -sha256 -sign '$K' -out '$IT_TMP/m.sig' '$IT_TMP/m' &&
     openssl dgst -sha256 -verify <(openssl x509 -in '$C' -pubkey -noout) \
     -signature '$IT_TMP/m.sig' '$IT_TMP/m'"
it_check_fails "node init --tls does not replace the key" "$KEYS_DKMCTL" node init \
    --tcti "$ADM_TCTI" --out "$IT_TMP/adm2.card" --tls --tls-key "$K" --tls-cert "$C"
"$KEYS_DKMCTL" node authorize "$IT_TMP/adm.card" --role admin --node-tls-cert "$C" \
    --socket "$SVC_SOCK" >"$IT_TMP/auth.out" 2>&1
it_check_eq "node authorize --node-tls-cert binds the TPM-held key" 0 "$?"
it_check_eq "... the node list shows the binding" "$key_id" \
    "$(admin GET /v1/nodes | jq -r --arg n "$ADM_ID" '.nodes[] | select(.node_id == $n) | .tls_key')"
admin POST /v1/groups '{"name":"pay","rotation_period":3600,"version_lifetime":7200,"cache_ttl":60}' \
    >/dev/null
admin POST /v1/groups/pay/grant "{\"node_id\":\"$ADM_ID\"}" >/dev/null
it_check_eq "grant pay to the node" 200 "$(admin_code)"

# --- dkmctl over TLS with the key in the TPM ------------------------------------------
tls_ctl() {
    local tcti=$1
    shift
    DKM_TCTI=$tcti "$KEYS_DKMCTL" "$@" --tls-cert "$C" --tls-key "$K" \
        --tls-ca "$SVC_STATE/tls.crt" --service "https://127.0.0.1:$SVC_PORT"
}
it_check_eq "dkmctl group list over mTLS with the TPM-held key" pay \
    "$(tls_ctl "$ADM_TCTI" group list --json | jq -r '.groups[0].name')"
tls_ctl "$ADM_TCTI" group rotate pay >/dev/null 2>&1
it_check_eq "dkmctl group rotate over mTLS with the TPM-held key" 0 "$?"
it_check "... audited as the admin node" sh -c "curl -sS --unix-socket '$SVC_SOCK' \
    'http://localhost/v1/audit?limit=1000' | jq -e '[.records[] | select(.actor ==
    \"node:$ADM_ID\" and .action == \"group.rotate\")] | length == 1' >/dev/null"
# Not tested: the stock openssl s_client with the key through tpm2-openssl
# 1.1.1. With "?tpm2.signature" it also verifies dkmd's signature in the
# TPM, which the multiplexer here (no resource manager swapping objects)
# answers with 0x902, out of object slots; with "?provider=default" the
# default provider gets only the public key ("missing private key"). dkm's
# client avoids both with its one-signature bridge (common/tpm/tlskey.c).
err=$(tls_ctl "$STRANGER_TCTI" group list 2>&1)
it_check_ne "the key file copied to another machine's TPM does not work" 0 "$?"
it_check "... the TPM refuses to load it" grep -q "does not load the TLS key" <<<"$err"

# --- the provider's client: dkm: lists the node's groups over mTLS --------------------
keys_provider_conf "$IT_TMP/adm.cnf" "$ADM_TCTI" "$IT_TMP/cache-adm"
cat >>"$IT_TMP/adm.cnf" <<CNF
tls_key = $K
tls_cert = $C
CNF
out=$(env OPENSSL_CONF="$IT_TMP/adm.cnf" "${OSSL_ENV[@]}" openssl storeutl dkm: 2>&1)
it_check "the provider lists dkm:pay with the TPM-held key (GET /v1/keys/groups)" \
    grep -q "Name: dkm:pay\$" <<<"$out"
head -c 300 /dev/urandom >"$IT_TMP/msg"
it_check "... and encrypts with dkm:pay (fetch over mTLS, unseal with the same TPM)" \
    env OPENSSL_CONF="$IT_TMP/adm.cnf" "${OSSL_ENV[@]}" openssl pkeyutl -encrypt \
    -inkey dkm:pay -in "$IT_TMP/msg" -out "$IT_TMP/blob"
it_check "... and decrypts" env OPENSSL_CONF="$IT_TMP/adm.cnf" "${OSSL_ENV[@]}" \
    openssl pkeyutl -decrypt -inkey dkm:pay -in "$IT_TMP/blob" -out "$IT_TMP/back"
it_check "round trip" cmp "$IT_TMP/msg" "$IT_TMP/back"

# --- session resumption: one TPM signature per process and server ----------------------
# The node's TPM behind the counting TCTI, for dkm's ESAPI context and
# tpm2-openssl's alike: every TPM command of the process is counted.
COUNT_TCTI=$BUILD/tcti/libtss2-tcti-dkmcount.so
[ -f "$COUNT_TCTI" ] || it_fatal "no counting TCTI at $COUNT_TCTI"
CT="$COUNT_TCTI:$ADM_TCTI"
rm -rf "$IT_TMP/cache-r"
: >"$IT_TMP/fetch.count"
DKM_TCTI_COUNT_FILE=$IT_TMP/fetch.count DKM_DEBUG=1 DKM_TCTI=$CT "$KEYS_DKMCTL" key fetch \
    --tcti "$CT" --trust "$KEYS_TRUST" --cache-dir "$IT_TMP/cache-r" \
    --service "https://127.0.0.1:$SVC_PORT" --tls-cert "$C" --tls-key "$K" pay \
    >"$IT_TMP/fetch.out" 2>"$IT_TMP/fetch.err"
it_check_eq "dkmctl key fetch with the TPM-held key (trust, then fetch)" 0 "$?"
it_check_eq "... one full handshake" 1 \
    "$(grep -c 'TLS handshake with 127.0.0.1: full' "$IT_TMP/fetch.err")"
it_check "... the next request of the process resumes the session" \
    grep -q 'TLS handshake with 127.0.0.1: resumed' "$IT_TMP/fetch.err"
it_check_eq "... and the process made one TPM2_Sign in all" 1 \
    "$(grep -c '^Sign ' "$IT_TMP/fetch.count")"
echo "# TPM commands of a first key fetch with the TPM-held TLS key:" \
    "$(cut -d' ' -f1 "$IT_TMP/fetch.count" | sort | uniq -c | awk '{print $2 " " $1}' |
        paste -sd, - | sed 's/,/, /g'); $(wc -l <"$IT_TMP/fetch.count") in all"

# --- a replaced binding, a revoked node ---------------------------------------------------
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=new \
    -keyout "$IT_TMP/new.key" -out "$IT_TMP/new.crt" 2>/dev/null
"$KEYS_DKMCTL" node tls "$ADM_ID" "$IT_TMP/new.crt" --socket "$SVC_SOCK" >/dev/null 2>&1
it_check_eq "bind another key to the node" 0 "$?"
tls_ctl "$ADM_TCTI" group list >/dev/null 2>&1
it_check_eq "the TPM-held key, no longer bound: refused (exit 6)" 6 "$?"
"$KEYS_DKMCTL" node tls "$ADM_ID" "$C" --socket "$SVC_SOCK" >/dev/null 2>&1
it_check_eq "bind the TPM-held key again" 0 "$(tls_ctl "$ADM_TCTI" group list >/dev/null 2>&1; echo $?)"
admin POST "/v1/nodes/$ADM_ID/revoke" >/dev/null
it_check_eq "revoke the node" 200 "$(admin_code)"
tls_ctl "$ADM_TCTI" group list >/dev/null 2>&1
it_check_eq "a revoked node's TPM-held key: refused (exit 6)" 6 "$?"

it_finish
