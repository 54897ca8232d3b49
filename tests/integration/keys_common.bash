# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
#
# Helpers shared by the key-service tests (tests/integration/keys_*.sh).
# Not a test itself (.bash). Source after lib.sh, svc_common.bash and
# it_init.
#
#   keys_setup              PostgreSQL, a swtpm for the server, dkmd.conf
#                           with its TCTI (svc_setup's variables)
#   keys_init               dkmd init; the trust fingerprint in KEYS_TRUST
#   keys_node NAME          a swtpm for node NAME and its card; sets
#                           NODE_TCTI[NAME], NODE_ID[NAME], NODE_CARD[NAME]
#                           (the card as base64url of its binary form)
#   admin METHOD PATH [JSON]  admin socket request; body on stdout, status
#                           in $IT_TMP/admin.code
#   fetch NAME GROUP VERSION  fetch for node NAME (a fresh nonce), verify
#                           and unseal on its TPM; prints dkm-test-fetch's
#                           lines, or "status N" when dkmd refused
#   key_digest NAME GROUP VERSION  only the key's SHA-256 (empty on refusal)
#   keys_provider_conf FILE TCTI CACHE_DIR  an openssl.cnf that loads the
#                           default provider and dkm's, pointed at this
#                           test's dkmd (append sections with cat >>)

KEYS_FETCH_BIN=${DKM_BUILD_DIR:-$IT_SRC/build}/tests/tools/dkm-test-fetch
KEYS_DKMCTL=${DKM_BUILD_DIR:-$IT_SRC/build}/tools/dkmctl
# shellcheck disable=SC2034 # used by the tests that source this file
declare -A NODE_TCTI NODE_ID NODE_CARD

keys_setup() {
    [ -x "$KEYS_FETCH_BIN" ] || it_fatal "dkm-test-fetch is not built at $KEYS_FETCH_BIN"
    it_swtpm_start server
    KEYS_SERVER_TCTI=$SWTPM_TCTI
    svc_setup "$@"
    sed -i "s|^\[service\]\$|[service]\ntcti = $KEYS_SERVER_TCTI|" "$SVC_CONF"
}

keys_init() {
    local out
    out=$("$SVC_BIN" init --config "$SVC_CONF" 2>"$IT_TMP/init.err") ||
        it_fatal "dkmd init failed: $(cat "$IT_TMP/init.err")"
    KEYS_TRUST=$(sed -n 's/^trust fingerprint //p' <<<"$out")
    # shellcheck disable=SC2034 # svc_common.bash's variable
    SVC_FPR=$(sed -n 's/^TLS fingerprint SHA256 //p' <<<"$out")
    [ -n "$KEYS_TRUST" ] || it_fatal "dkmd init printed no trust fingerprint: $out"
}

keys_node() {
    local name=$1 card=$IT_TMP/$1.card
    it_swtpm_start "$name"
    NODE_TCTI[$name]=$SWTPM_TCTI
    NODE_ID[$name]=$("$KEYS_DKMCTL" node init --tcti "$SWTPM_TCTI" --out "$card") ||
        it_fatal "dkmctl node init failed for $name"
    # The armor's body is the binary card in base64url, one line per 64 chars.
    # shellcheck disable=SC2034 # read by the tests
    NODE_CARD[$name]=$(grep -v -- '-----' "$card" | tr -d '\n')
}

admin() {
    local method=$1 path=$2 body=${3:-}
    local args=(-sS --max-time 30 -o "$IT_TMP/admin.out" -w '%{http_code}'
        --unix-socket "$SVC_SOCK" -X "$method")
    [ -n "$body" ] && args+=(-H 'Content-Type: application/json' --data-binary "$body")
    curl "${args[@]}" "http://localhost$path" >"$IT_TMP/admin.code" 2>/dev/null
    cat "$IT_TMP/admin.out"
}

admin_code() {
    cat "$IT_TMP/admin.code"
}

new_nonce() {
    head -c 32 /dev/urandom | base64 -w0 | tr '+/' '-_' | tr -d '='
}

fetch() {
    local name=$1 group=$2 version=$3 nonce code
    shift 3
    nonce=$(new_nonce)
    code=$(svc_curl /v1/keys/fetch -o "$IT_TMP/fetch.json" -w '%{http_code}' \
        -H 'Content-Type: application/json' --data-binary \
        "{\"group\":\"$group\",\"version\":\"$version\",\"node_id\":\"${NODE_ID[$name]}\",\"nonce\":\"$nonce\"}")
    if [ "$code" != 200 ]; then
        echo "status $code"
        return 0
    fi
    svc_curl /v1/trust -o "$IT_TMP/trust.json"
    "$KEYS_FETCH_BIN" --tcti "${NODE_TCTI[$name]}" --pin "$KEYS_TRUST" \
        --trust "$IT_TMP/trust.json" --response "$IT_TMP/fetch.json" --group "$group" \
        --version "$version" --nonce "$nonce" "$@"
}

key_digest() {
    fetch "$@" | sed -n 's/^key-sha256 //p'
}

fetch_status() {
    local out
    out=$(fetch "$@")
    if [[ $out == status* ]]; then
        echo "${out#status }"
    elif grep -q '^key-sha256 ' <<<"$out"; then
        echo 200
    else
        echo "unverified"
    fi
}

keys_provider_conf() {
    local file=$1 tcti=$2 cache=$3
    cat >"$file" <<CNF
openssl_conf = openssl_init
[openssl_init]
providers = provider_sect
[provider_sect]
default = default_sect
dkm = dkm_sect
[default_sect]
activate = 1
[dkm_sect]
module = ${DKM_BUILD_DIR:-$IT_SRC/build}/provider/dkm.so
activate = 1
service = https://127.0.0.1:$SVC_PORT
trust = $KEYS_TRUST
tcti = $tcti
cache_dir = $cache
CNF
}

# Ask dkmd to reload now (what any writer's NOTIFY does).
keys_notify() {
    svc_psql "NOTIFY dkm_changes" >/dev/null
}
