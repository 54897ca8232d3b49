#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# dkmd's limits against misbehaving clients: a client that trickles its
# request headers is cut off after request_timeout although it never
# stays silent for long, while another client is served meanwhile;
# connections beyond max_connections get a 503 JSON answer and the
# service recovers when they go; over-long headers are refused; a body
# one byte over its route's cap is refused with 413 and a JSON reason
# before it is parsed, while a body of exactly the cap is not, and
# max_body_bytes still bounds every route.

# shellcheck source=tests/integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/svc_common.bash
. "$(dirname "${BASH_SOURCE[0]}")/svc_common.bash"
it_init svc_limits

svc_setup "request_timeout = 2" "max_connections = 4" "max_header_bytes = 2048" \
    "max_body_bytes = 40960"
svc_init
svc_start

# --- slow client --------------------------------------------------------------------
# Sends one header byte every 300 ms (never idle long enough for an idle
# timeout) and prints how many seconds passed until the server closed.
cat >"$IT_TMP/slow.py" <<'PY'
import socket, ssl, sys, time
port, cap = int(sys.argv[1]), float(sys.argv[2])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
t = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)))
start = time.monotonic()
t.sendall(b"GET /v1/health/live HTTP/1.1\r\nHost: dkmd\r\nX-Slow: ")
t.settimeout(0.3)
closed = False
while time.monotonic() - start < cap:
    try:
        if t.recv(1024) == b"":
            closed = True
            break
    except socket.timeout:
        pass
    except (ConnectionError, ssl.SSLError, OSError):
        closed = True
        break
    try:
        t.sendall(b"a")
    except (ConnectionError, ssl.SSLError, OSError):
        closed = True
        break
print("%.2f %s" % (time.monotonic() - start, "closed" if closed else "open"))
PY
python3 "$IT_TMP/slow.py" "$SVC_PORT" 10 >"$IT_TMP/slow.out" 2>&1 &
slow=$!
sleep 0.8
t0=$(now_ms)
code=$(svc_code /v1/health/live)
t1=$(now_ms)
it_check_eq "another client is served while the slow one trickles" 200 "$code"
it_check "and served quickly (under 1 s: $((t1 - t0)) ms)" test $((t1 - t0)) -lt 1000
wait "$slow"
read -r secs state <"$IT_TMP/slow.out"
echo "# slow client cut after ${secs} s"
it_check_eq "the slow client was cut off" closed "$state"
it_check "after about request_timeout (2 s; took ${secs} s)" \
    python3 -c "import sys; sys.exit(not 1.8 <= $secs <= 4.0)"
it_check "the cut is counted" sh -c "curl -sS --cacert '$SVC_STATE/tls.crt' \
    https://127.0.0.1:$SVC_PORT/metrics | grep -q 'dkmd_connections_closed_total{reason=\"request_timeout\"} [1-9]'"

# --- too many connections -----------------------------------------------------------
# Holds four TLS connections open (max_connections = 4), sends a request on
# a fifth, then frees one and tries again.
cat >"$IT_TMP/many.py" <<'PY'
import json, socket, ssl, sys, time
port = int(sys.argv[1])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
def conn():
    return ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)))
def get(t):
    t.sendall(b"GET /v1/health/live HTTP/1.1\r\nHost: dkmd\r\nConnection: close\r\n\r\n")
    data = b""
    t.settimeout(5)
    while True:
        chunk = t.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body
held = [conn() for _ in range(4)]
time.sleep(0.2)
code, body = get(conn())
print(code, json.loads(body).get("detail", ""))
held.pop().close()
time.sleep(0.3)
code, body = get(conn())
print(code, json.loads(body).get("status", ""))
PY
python3 "$IT_TMP/many.py" "$SVC_PORT" >"$IT_TMP/many.out" 2>&1
it_check "the fifth connection gets 503 'too many connections'" \
    grep -q '^503 too many connections' "$IT_TMP/many.out"
it_check "once one closes, a new one is served" sh -c "sed -n 2p '$IT_TMP/many.out' |
    grep -q '^200 ok'"
it_check_eq "and after the held ones are gone, all is normal" 200 "$(svc_code /v1/health/live)"

# --- header size ------------------------------------------------------------------------
long=$(head -c 4000 /dev/zero | tr '\0' a)
code=$(svc_code /v1/health/live -H "X-Long: $long")
it_check "headers over max_header_bytes are refused (got $code)" test "${code:0:1}" = 4
it_check_eq "a normal request still works" 200 "$(svc_code /v1/health/live)"
it_check "dkmd survived all of it" kill -0 "$SVC_PID"

# --- per-route body caps ---------------------------------------------------------------
# The caps of service/keys/routes.c (docs/protocol.md lists them).
PING_CAP=512 FETCH_CAP=1024 NODES_TLS_CAP=33280 NODES_AUTHORIZE_CAP=44032

# body FILE SIZE JSON: JSON (compact, ending in '}') padded with spaces
# before its closing brace to exactly SIZE bytes, still valid JSON.
body() {
    python3 - "$@" <<'PY'
import sys
path, size, text = sys.argv[1], int(sys.argv[2]), sys.argv[3]
pad = size - len(text.encode())
assert pad >= 0, "the JSON is longer than the size"
open(path, "wb").write(text[:-1].encode() + b" " * pad + b"}")
PY
}

# send PATH METHOD FILE [tls|admin]: prints the status; the answer is left
# in $IT_TMP/answer.
send() {
    local args=(-sS --max-time 20 -o "$IT_TMP/answer" -w '%{http_code}' -X "$2"
        -H 'Content-Type: application/json' -H 'Expect:' --data-binary "@$3")
    if [ "${4:-tls}" = admin ]; then
        curl "${args[@]}" --unix-socket "$SVC_SOCK" "http://dkmd$1"
    else
        curl "${args[@]}" --cacert "$SVC_STATE/tls.crt" "https://127.0.0.1:$SVC_PORT$1"
    fi
}

# The answer is {"error": "payload too large", "detail": "... N bytes ..."}.
too_large_reason() {
    python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
sys.exit(not (d["error"] == "payload too large" and
              ("at most %s bytes" % sys.argv[2]) in d["detail"]))' "$IT_TMP/answer" "$1"
}

ping='{"nonce":"AAECAw"}'
body "$IT_TMP/ping.max" "$PING_CAP" "$ping"
body "$IT_TMP/ping.over" $((PING_CAP + 1)) "$ping"
it_check_eq "ping: a body of exactly its cap is answered" 200 \
    "$(send /v1/ping POST "$IT_TMP/ping.max")"
it_check_eq "ping: one byte over its cap is 413" 413 \
    "$(send /v1/ping POST "$IT_TMP/ping.over")"
it_check "with a JSON reason naming the cap" too_large_reason "$PING_CAP"

id=000b$(head -c 32 /dev/zero | od -An -v -tx1 | tr -d ' \n')
nonce=$(head -c 64 /dev/zero | base64 -w0 | tr '+/' '-_' | tr -d =)
fetch='{"group":"'$(printf 'g%.0s' $(seq 64))'","version":"4294967295","node_id":"'$id'","nonce":"'$nonce'"}'
body "$IT_TMP/fetch.max" "$FETCH_CAP" "$fetch"
code=$(send /v1/keys/fetch POST "$IT_TMP/fetch.max")
it_check "fetch: a valid body of exactly its cap is not refused for its size (got $code)" \
    test "$code" != 413 -a "$code" != 400 -a "$code" != 000
head -c $((FETCH_CAP + 1)) /dev/zero | tr '\0' x >"$IT_TMP/fetch.over"
it_check_eq "fetch: one byte over its cap is 413, not JSON: not parsed" 413 \
    "$(send /v1/keys/fetch POST "$IT_TMP/fetch.over")"
it_check "with a JSON reason naming the cap" too_large_reason "$FETCH_CAP"

# An admin route on the admin socket: the largest certificate field, each
# byte an escaped line break.
cert='{"tls_cert":"'$(printf '\\n%.0s' $(seq 16384))'"}'
body "$IT_TMP/tls.max" "$NODES_TLS_CAP" "$cert"
body "$IT_TMP/tls.over" $((NODES_TLS_CAP + 1)) "$cert"
code=$(send "/v1/nodes/$id/tls" PUT "$IT_TMP/tls.max" admin)
it_check "nodes_tls: a maximal body padded to its cap is not refused for its size (got $code)" \
    test "$code" != 413 -a "$code" != 400 -a "$code" != 000
it_check_eq "nodes_tls: one byte over its cap is 413" 413 \
    "$(send "/v1/nodes/$id/tls" PUT "$IT_TMP/tls.over" admin)"
it_check "with a JSON reason naming the cap" too_large_reason "$NODES_TLS_CAP"

# max_body_bytes (40960 here) stays the outer bound: a route whose cap is
# larger gets libevent's 413 (not JSON) above it.
head -c 40961 /dev/zero | tr '\0' x >"$IT_TMP/outer.over"
it_check_eq "nodes_authorize (cap $NODES_AUTHORIZE_CAP): over max_body_bytes is 413" 413 \
    "$(send /v1/nodes POST "$IT_TMP/outer.over" admin)"
it_check_fails "from the HTTP parser, not the route" too_large_reason "$NODES_AUTHORIZE_CAP"
it_check "dkmd survived the large bodies" kill -0 "$SVC_PID"

# --- SIGTERM with idle TLS connections open -----------------------------------------------
# They are closed at once (nothing is in flight on them); under the
# sanitizer build this also shows that tearing down TLS connections leaks
# nothing.
cat >"$IT_TMP/idle.py" <<'PY'
import socket, ssl, sys, time
port = int(sys.argv[1])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
held = [ctx.wrap_socket(socket.create_connection(("127.0.0.1", port))) for _ in range(2)]
# A keep-alive connection that has already been answered once.
held[0].sendall(b"GET /v1/health/live HTTP/1.1\r\nHost: dkmd\r\n\r\n")
held[0].recv(65536)
print("ready", flush=True)
for t in held:
    t.settimeout(8)
    try:
        while t.recv(65536):
            pass
    except Exception:
        pass
print("closed", flush=True)
PY
python3 "$IT_TMP/idle.py" "$SVC_PORT" >"$IT_TMP/idle.out" 2>&1 &
idle=$!
dkm_wait_for 5 grep -q ready "$IT_TMP/idle.out" || it_fail "idle connections not set up"
t0=$(now_ms)
status=0
it_stop_pid "$SVC_PID" || status=$?
t1=$(now_ms)
wait "$idle"
it_check_eq "dkmd exits 0 on SIGTERM with idle connections open" 0 "$status"
it_check "promptly ($((t1 - t0)) ms)" test $((t1 - t0)) -lt 2000
it_check "the idle connections were closed" grep -q closed "$IT_TMP/idle.out"
it_check_fails "no sanitizer report" grep -q 'Sanitizer' "$IT_TMP/dkmd.log"
it_finish
