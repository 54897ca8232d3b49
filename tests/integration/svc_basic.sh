#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# dkmd end to end over TLS: init (key mode, fingerprint, refusal to run
# twice), health and metrics checked against the pinned certificate, the
# JSON error contract (404, 405, 400 for bad JSON and unknown fields, 415,
# 413), garbage bytes with and without TLS, the admin socket's peer check
# (root accepted, nobody refused), SIGHUP reload of the TLS certificate,
# and a clean exit on SIGTERM.

# shellcheck source=tests/integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/svc_common.bash
. "$(dirname "${BASH_SOURCE[0]}")/svc_common.bash"
it_init svc_basic

svc_setup "max_body_bytes = 4096"
it_check "dkmd --help prints usage" sh -c "'$SVC_BIN' --help | grep -q 'Usage: dkmd'"
it_check_fails "an unknown config key is refused" sh -c \
    "printf '[service]\nlistne = x\n[database]\nconninfo = x\n' >'$IT_TMP/bad.conf' &&
     '$SVC_BIN' --config '$IT_TMP/bad.conf'"
it_check "the refusal names the key" sh -c \
    "'$SVC_BIN' --config '$IT_TMP/bad.conf' 2>&1 | grep -q 'listne'"

svc_init
it_check_eq "the TLS key is mode 0600" 600 "$(stat -c %a "$SVC_STATE/tls.key")"
it_check_eq "the printed fingerprint is the certificate's" \
    "$(openssl x509 -in "$SVC_STATE/tls.crt" -noout -fingerprint -sha256 | cut -d= -f2)" \
    "$SVC_FPR"
it_check "the key is ECDSA P-256" sh -c \
    "openssl pkey -in '$SVC_STATE/tls.key' -noout -text | grep -q 'prime256v1'"
key_sum=$(sha256sum "$SVC_STATE/tls.key")
it_check_fails "a second init is refused" "$SVC_BIN" init --config "$SVC_CONF"
it_check_eq "a refused init leaves the key alone" "$key_sum" "$(sha256sum "$SVC_STATE/tls.key")"

svc_start

# --- health and metrics over TLS ---------------------------------------------
served=$(openssl s_client -connect "127.0.0.1:$SVC_PORT" </dev/null 2>/dev/null |
    openssl x509 -noout -fingerprint -sha256 | cut -d= -f2)
it_check_eq "the served certificate has the pinned fingerprint" "$SVC_FPR" "$served"
# This server was initialised without a TPM: it serves, but it is not
# ready for key traffic, and its readiness says so.
health=$(svc_curl /v1/health)
it_check_eq "health: not ready without a key-service identity (503)" 503 "$(svc_code /v1/health)"
it_check_eq "health: ready false, status unavailable" "false unavailable" \
    "$(jq -r '"\(.ready) \(.status)"' <<<"$health")"
it_check_eq "health: the state check says why" \
    "this server has no key-service identity (dkmd init with a TPM)" \
    "$(jq -r .checks.state.detail <<<"$health")"
it_check_eq "health: so do delegation and tpm" "false false" \
    "$(jq -r '"\(.checks.delegation.ok) \(.checks.tpm.ok)"' <<<"$health")"
it_check_eq "health: database reachable" true "$(jq -r .database <<<"$health")"
it_check_eq "health: the database check passes" true "$(jq -r .checks.database.ok <<<"$health")"
it_check_eq "live: 200, live" "200 true" \
    "$(svc_code /v1/health/live) $(svc_curl /v1/health/live | jq -r .live)"
it_check_eq "health: schema version 2" 2 "$(jq -r .schema_version <<<"$health")"
it_check_eq "health: two workers" 2 "$(jq -r .workers <<<"$health")"
it_check_eq "health: no refused rows" 0 "$(jq -r .refused_rows <<<"$health")"
it_check "health: uptime is a number" test "$(jq -r '.uptime_s|type' <<<"$health")" = number
it_check_eq "health is JSON" "application/json" \
    "$(svc_curl /v1/health -o /dev/null -w '%{content_type}')"
metrics=$(svc_curl /metrics)
it_check "metrics count the health requests" \
    grep -q '^dkmd_http_requests_total{endpoint="health",status="503"} [1-9]' <<<"$metrics"
it_check "metrics have a latency histogram per endpoint" \
    grep -q '^dkmd_http_request_duration_seconds_bucket{endpoint="health",le="+Inf"}' <<<"$metrics"
it_check "metrics have the database query latency" \
    grep -q '^dkmd_db_query_duration_seconds_count{statement="schema_version"}' <<<"$metrics"
it_check "metrics have the connection gauge" grep -q '^dkmd_connections [0-9]' <<<"$metrics"
it_check "metrics are Prometheus text" sh -c "svc_ct=\$(curl -sS -o /dev/null \
    -w '%{content_type}' --cacert '$SVC_STATE/tls.crt' https://127.0.0.1:$SVC_PORT/metrics);
    test \"\$svc_ct\" = 'text/plain; version=0.0.4; charset=utf-8'"
it_check_fails "plain HTTP gets no answer on the TLS port" \
    curl -sS --max-time 3 "http://127.0.0.1:$SVC_PORT/v1/health"

# Regression: without TCP_NODELAY every keep-alive answer waited ~40 ms for
# the client's delayed ACK (Nagle holding back the last TLS record).
for _ in $(seq 1 100); do
    printf 'url = "https://127.0.0.1:%s/v1/health/live"\noutput = "/dev/null"\n' "$SVC_PORT"
done >"$IT_TMP/keepalive.cfg"
curl -sS --cacert "$SVC_STATE/tls.crt" -K "$IT_TMP/keepalive.cfg" \
    -w '%{time_total} %{http_code} %{num_connects}\n' >"$IT_TMP/keepalive.out"
read -r mean_ms bad conns < <(awk '{ s += $1; if ($2 != 200) b++; c += $3 }
    END { printf "%d %d %d\n", s / NR * 1000, b, c }' "$IT_TMP/keepalive.out")
echo "# 100 keep-alive requests: mean ${mean_ms} ms, $conns connection(s)"
it_check_eq "100 keep-alive requests all succeed on one connection" "0 1" "$bad $conns"
it_check "keep-alive requests are not delayed (mean $mean_ms ms < 10 ms)" \
    test "$mean_ms" -lt 10

# --- the JSON error contract --------------------------------------------------
json_error() { # PATH ARGS... -> "CODE ERROR"
    local out code
    out=$(svc_curl "$@" -w '\n%{http_code}')
    code=$(tail -n1 <<<"$out")
    echo "$code $(head -n -1 <<<"$out" | jq -r .error)"
}
it_check_eq "unknown endpoint: 404 JSON" "404 not found" "$(json_error /v1/nope)"
it_check_eq "wrong method: 405 JSON" "405 method not allowed" \
    "$(json_error /v1/health -X DELETE)"
it_check "405 says what is allowed" sh -c "curl -sS -D - -o /dev/null -X POST \
    --cacert '$SVC_STATE/tls.crt' https://127.0.0.1:$SVC_PORT/v1/health | grep -qi '^Allow: GET'"
it_check_eq "unsupported method (PATCH): 405 JSON" "405 method not allowed" \
    "$(json_error /v1/health -X PATCH)"
ping=(-H 'Content-Type: application/json')
it_check_eq "valid ping: nonce echoed" AAECAw \
    "$(svc_curl /v1/ping "${ping[@]}" -d '{"nonce":"AAECAw"}' | jq -r .nonce)"
it_check_eq "bad JSON: 400" "400 bad request" \
    "$(json_error /v1/ping "${ping[@]}" -d '{"nonce":')"
it_check_eq "unknown field: 400" "400 bad request" \
    "$(json_error /v1/ping "${ping[@]}" -d '{"nonce":"AA","extra":1}')"
it_check "unknown field: the detail names it" sh -c "curl -sS --cacert '$SVC_STATE/tls.crt' \
    -H 'Content-Type: application/json' -d '{\"nonce\":\"AA\",\"extra\":1}' \
    https://127.0.0.1:$SVC_PORT/v1/ping | jq -r .detail | grep -q 'unknown field \"extra\"'"
it_check_eq "wrong type: 400" "400 bad request" \
    "$(json_error /v1/ping "${ping[@]}" -d '{"nonce":5}')"
it_check_eq "duplicate key: 400" "400 bad request" \
    "$(json_error /v1/ping "${ping[@]}" -d '{"nonce":"AA","nonce":"AB"}')"
it_check_eq "not JSON content type: 415" "415 unsupported media type" \
    "$(json_error /v1/ping -H 'Content-Type: text/plain' -d '{"nonce":"AA"}')"
it_check_eq "a body where none is taken: 400" "400 bad request" \
    "$(json_error /v1/health -X GET "${ping[@]}" -d '{}')"
head -c 5000 /dev/zero | tr '\0' a >"$IT_TMP/big"
it_check_eq "oversized body: 413" 413 \
    "$(svc_code /v1/ping "${ping[@]}" --data-binary @"$IT_TMP/big")"
it_check_eq "oversized declared length: 413" 413 \
    "$(svc_code /v1/ping "${ping[@]}" -H 'Content-Length: 100000000' -d x)"
it_check_eq "query string where none is taken: 400" "400 bad request" \
    "$(json_error '/v1/health?verbose=1')"
it_check_eq "percent-encoded path: 404" "404 not found" "$(json_error /v1/%68ealth)"
it_check_eq "admin route on the TLS port: 403" "403 forbidden" "$(json_error /v1/admin/ping)"

# --- malformed HTTP and garbage ---------------------------------------------
printf 'GARBAGE \x01\x02\r\n\r\n' | timeout 5 openssl s_client -quiet -connect \
    "127.0.0.1:$SVC_PORT" >"$IT_TMP/garbage.out" 2>/dev/null
it_check "garbage over TLS gets 400 and a close" grep -q '^HTTP/1.1 400' "$IT_TMP/garbage.out"
head -c 4096 /dev/urandom >"$IT_TMP/random"
timeout 5 openssl s_client -quiet -connect "127.0.0.1:$SVC_PORT" <"$IT_TMP/random" \
    >/dev/null 2>&1
timeout 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$SVC_PORT; cat '$IT_TMP/random' >&3;
    cat <&3 >/dev/null" 2>/dev/null
it_check_eq "still healthy after garbage" 200 "$(svc_code /v1/health/live)"
it_check "garbage did not kill it" kill -0 "$SVC_PID"

# --- admin socket --------------------------------------------------------------
it_check_eq "admin ping as root" true \
    "$(curl -sS --unix-socket "$SVC_SOCK" http://dkmd/v1/admin/ping | jq -r .pong)"
nobody_out=$(runuser -u nobody -- curl -sS -w '\n%{http_code}' --unix-socket "$SVC_SOCK" \
    http://dkmd/v1/admin/ping)
it_check_eq "admin ping as nobody: 403" 403 "$(tail -n1 <<<"$nobody_out")"
it_check_eq "admin refusal is JSON" forbidden "$(head -n1 <<<"$nobody_out" | jq -r .error)"
it_check_eq "health over the admin socket" true \
    "$(curl -sS --unix-socket "$SVC_SOCK" http://dkmd/v1/health | jq -r .checks.database.ok)"

# --- SIGHUP reloads the TLS certificate ------------------------------------------
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=reloaded -addext subjectAltName=IP:127.0.0.1 \
    -keyout "$IT_TMP/new.key" -out "$IT_TMP/new.crt" >/dev/null 2>&1
cp "$IT_TMP/new.key" "$SVC_STATE/tls.key"
cp "$IT_TMP/new.crt" "$SVC_STATE/tls.crt"
kill -HUP "$SVC_PID"
new_fpr=$(openssl x509 -in "$IT_TMP/new.crt" -noout -fingerprint -sha256 | cut -d= -f2)
served_fpr() {
    openssl s_client -connect "127.0.0.1:$SVC_PORT" </dev/null 2>/dev/null |
        openssl x509 -noout -fingerprint -sha256 | cut -d= -f2
}
reloaded() { [ "$(served_fpr)" = "$new_fpr" ]; }
it_check "after SIGHUP the new certificate is served" dkm_wait_for 5 reloaded
it_check_eq "and requests still work" 200 "$(svc_code /v1/health/live)"

# --- SIGTERM ---------------------------------------------------------------------
status=0
it_stop_pid "$SVC_PID" || status=$?
it_check_eq "dkmd exits 0 on SIGTERM" 0 "$status"
it_check_fails "the admin socket is removed" test -e "$SVC_SOCK"
it_check "it logged a clean stop" grep -q "event=service.stopped" "$IT_TMP/dkmd.log"
it_check_fails "no sanitizer report" grep -q 'Sanitizer' "$IT_TMP/dkmd.log"

it_finish
