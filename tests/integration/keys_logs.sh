#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Helpers run through it_check and take no arguments:
# shellcheck disable=SC2317,SC2119
#
# dkmd's logs and progress, against the real thing. Server A runs with
# log_format = json and holds many key versions; server B joins, and
# `dkmctl server add` on A seals every version for B, with A's TPM slowed
# down (the counting TCTI's delay) so that it takes seconds as on a
# hardware TPM: A logs progress lines (done/total at least once a second,
# a last line per phase and an end line), GET /v1/progress reports the
# operation while A is busy with it, dkmctl shows it on stderr, and the
# answer counts the copies. B starts with
# the default text format and logs the progress of unsealing its copies.
# Every line of A's log is one JSON object whose first members are ts,
# level and event; every line of B's log reads back as key=value fields
# in that order; a SIGHUP switches A to text. Neither log holds any form
# of a key, and nothing was withheld.

# shellcheck source=tests/integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/svc_common.bash
. "$(dirname "${BASH_SOURCE[0]}")/svc_common.bash"
# shellcheck source=tests/integration/keys_common.bash
. "$(dirname "${BASH_SOURCE[0]}")/keys_common.bash"
it_init keys_logs

# Key versions A holds when B is added: at least KS_PROGRESS_ANNOUNCE (100),
# so the operations announce themselves whatever their speed.
GROUPS_N=4
ROTATIONS=29 # per group: 4 x (1 + 29) = 120 versions
VERSIONS=$((GROUPS_N * (1 + ROTATIONS)))

# check_log FORMAT FILE: every line parses in FORMAT (json or text) with
# ts, level and event first, well-formed; prints what does not.
check_log() {
    python3 - "$1" "$2" <<'PY'
import json, re, sys
fmt, path = sys.argv[1], sys.argv[2]
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
LEVELS = {"error", "warning", "notice", "info", "debug"}
NAME = re.compile(r"^[A-Za-z0-9_.-]+$")

def text_fields(line):
    """key=value pairs, values bare or quoted with JSON escapes; None if malformed."""
    out, i = [], 0
    while i < len(line):
        m = NAME.match(line[i:].split("=", 1)[0]) if "=" in line[i:] else None
        if not m:
            return None
        key = m.group(0)
        i += len(key) + 1
        if i < len(line) and line[i] == '"':
            j = i + 1
            while j < len(line) and line[j] != '"':
                j += 2 if line[j] == "\\" else 1
            if j >= len(line):
                return None
            try:
                val = json.loads(line[i:j + 1])
            except ValueError:
                return None
            i = j + 1
        else:
            j = line.find(" ", i)
            j = len(line) if j < 0 else j
            val = line[i:j]
            if val == "" or any(c in val for c in '"=\\') or any(ord(c) < 0x21 for c in val):
                return None
            i = j
        out.append((key, val))
        if i < len(line):
            if line[i] != " ":
                return None
            i += 1
    return out

bad = 0
with open(path, "rb") as f:
    raw = f.read()
lines = raw.split(b"\n")
if lines and lines[-1] == b"":
    lines.pop()
for n, b in enumerate(lines, 1):
    why = None
    try:
        line = b.decode("utf-8")
    except UnicodeDecodeError:
        line, why = None, "not UTF-8"
    if line is not None:
        if any(ord(c) < 0x20 or ord(c) == 0x7f for c in line):
            why = "a control character"
        elif fmt == "json":
            try:
                obj = json.loads(line, object_pairs_hook=lambda p: p)
            except ValueError as e:
                obj, why = None, "not JSON (%s)" % e
            if obj is not None:
                keys = [k for k, _ in obj]
                d = dict(obj)
                if len(set(keys)) != len(keys):
                    why = "duplicate keys"
                elif keys[:3] != ["ts", "level", "event"]:
                    why = "first keys %s" % keys[:3]
                elif not TS.match(str(d["ts"])) or d["level"] not in LEVELS or \
                        not NAME.match(str(d["event"])):
                    why = "bad ts, level or event"
        else:
            f = text_fields(line)
            if f is None:
                why = "not key=value"
            elif [k for k, _ in f][:3] != ["ts", "level", "event"]:
                why = "first keys %s" % [k for k, _ in f][:3]
            elif not TS.match(f[0][1]) or f[1][1] not in LEVELS or not NAME.match(f[2][1]):
                why = "bad ts, level or event"
    if why:
        bad += 1
        print("line %d: %s: %r" % (n, why, b[:300]))
if not lines:
    print("no lines")
    bad = 1
sys.exit(1 if bad else 0)
PY
}

# events FORMAT FILE EVENT: the lines of EVENT as compact JSON objects.
events() {
    python3 - "$1" "$2" "$3" <<'PY'
import json, re, sys
fmt, path, event = sys.argv[1:4]
tok = re.compile(r'([A-Za-z0-9_.-]+)=("(?:[^"\\]|\\.)*"|[^ ]*)')
for line in open(path, encoding="utf-8"):
    line = line.rstrip("\n")
    if fmt == "json":
        try:
            d = json.loads(line)
        except ValueError:
            continue
    else:
        d = {}
        for k, v in tok.findall(line):
            d[k] = json.loads(v) if v.startswith('"') else v
    if d.get("event") == event:
        print(json.dumps(d))
PY
}

COUNT_TCTI=${DKM_BUILD_DIR:-$IT_SRC/build}/tcti/libtss2-tcti-dkmcount.so
[ -e "$COUNT_TCTI" ] || it_fatal "not built: $COUNT_TCTI"
# Microseconds each of A's TPM commands waits (the counting TCTI reads it).
export DKM_TCTI_DELAY_FILE=$IT_TMP/tpm-delay
echo 0 >"$DKM_TCTI_DELAY_FILE"
SLOW_TPM_US=10000

# --- server A, JSON logs, many versions ------------------------------------------
# A request_timeout shorter than the addition: a request in flight is not cut.
keys_setup "request_timeout = 2"
sed -i -e 's|^\[service\]$|[service]\nlog_format = json|' \
    -e "s|^tcti = |tcti = $COUNT_TCTI:|" "$SVC_CONF"
keys_init
A_PORT=$SVC_PORT A_STATE=$SVC_STATE A_SOCK=$SVC_SOCK A_CONF=$SVC_CONF
svc_start dkmdA
A_PID=$SVC_PID
A_LOG=$IT_TMP/dkmdA.log

it_check_eq "nothing in progress: running false" false "$(admin GET /v1/progress | jq -r .running)"
svc_code /v1/progress >"$IT_TMP/tls.code"
it_check_eq "progress is an admin endpoint (403 on the TLS port)" 403 "$(cat "$IT_TMP/tls.code")"

keys_node n1
admin POST /v1/nodes "{\"card\":\"${NODE_CARD[n1]}\"}" >/dev/null
it_check_eq "authorize n1" 200 "$(admin_code)"
made=0
for g in $(seq 1 "$GROUPS_N"); do
    admin POST /v1/groups "{\"name\":\"g$g\",\"rotation_period\":86400,\"version_lifetime\":604800,\"cache_ttl\":60}" \
        >/dev/null
    [ "$(admin_code)" = 200 ] && made=$((made + 1))
    for _ in $(seq 1 "$ROTATIONS"); do
        admin POST "/v1/groups/g$g/rotate" >/dev/null
        [ "$(admin_code)" = 200 ] && made=$((made + 1))
    done
done
it_check_eq "A holds $VERSIONS live versions" "$VERSIONS" "$made"
admin POST /v1/groups/g1/grant "{\"node_id\":\"${NODE_ID[n1]}\"}" >/dev/null
it_check_eq "grant g1 to n1" 200 "$(admin_code)"
it_check "A serves g1's current version" \
    grep -Eqx '[0-9a-f]{64}' <<<"$(key_digest n1 g1 current)"

# --- server B joins; A adds it -------------------------------------------------------
it_swtpm_start serverB
B_PORT=$(dkm_pick_ports 1) || it_fatal "no free port"
B_STATE=$IT_TMP/stateB B_SOCK=$IT_TMP/adminB.sock B_CONF=$IT_TMP/dkmdB.conf
# B keeps the default format: text.
sed -e "s|^listen = .*|listen = 127.0.0.1:$B_PORT|" -e "s|^state_dir = .*|state_dir = $B_STATE|" \
    -e "s|^admin_socket = .*|admin_socket = $B_SOCK|" -e "s|^tcti = .*|tcti = $SWTPM_TCTI|" \
    -e '/^log_format = /d' "$A_CONF" >"$B_CONF"
out=$("$SVC_BIN" init --join --trust "$KEYS_TRUST" --config "$B_CONF" 2>"$IT_TMP/join.err") ||
    it_fatal "dkmd init --join failed: $(cat "$IT_TMP/join.err")"
B_ID=$(sed -n 's/^node id //p' <<<"$out")

# While A seals, ask it what it is doing, as dkmctl does.
: >"$IT_TMP/polls"
(
    while [ ! -e "$IT_TMP/added" ]; do
        a=$(curl -sS --max-time 5 --unix-socket "$A_SOCK" http://localhost/v1/progress \
            2>/dev/null) && echo "$a" >>"$IT_TMP/polls"
        sleep 0.1
    done
) &
poller=$!
echo "$SLOW_TPM_US" >"$DKM_TCTI_DELAY_FILE"
t0=$(now_ms)
"$KEYS_DKMCTL" server add "$B_STATE/server.card" --socket "$A_SOCK" \
    >"$IT_TMP/add.out" 2>"$IT_TMP/add.err"
status=$?
t1=$(now_ms)
echo 0 >"$DKM_TCTI_DELAY_FILE"
touch "$IT_TMP/added"
wait "$poller"
it_check "with the slow TPM the addition took seconds ($((t1 - t0)) ms)" \
    test $((t1 - t0)) -ge 2500
it_check_eq "dkmctl server add: exit 0" 0 "$status"
it_check "... answers with every version sealed" \
    grep -q "server $B_ID .* added: server list v2, $VERSIONS sealed copies" "$IT_TMP/add.out"
it_check_eq "... and its stdout holds only the answer" 1 "$(wc -l <"$IT_TMP/add.out")"

running() {
    jq -e --arg id "$B_ID" --argjson n "$VERSIONS" -s \
        'map(select(.running and .operation == "server.add" and .target == $id and
             ((.phase == "seal" and .total == $n) or .phase == "store" or .phase == "check")))
         | length > 0' "$IT_TMP/polls"
}
it_check "GET /v1/progress reported the addition while A was busy with it" running
it_check_eq "... and nothing once it was done" false "$(admin GET /v1/progress | jq -r .running)"

events json "$A_LOG" progress >"$IT_TMP/progress.json"
prog() { jq -c "select(.op == \"server.add\" and .target == \"$B_ID\") | $1" "$IT_TMP/progress.json"; }
it_check "A announced the sealing: done 0 of $VERSIONS" \
    grep -qx "\\[\"seal\",0,$VERSIONS\\]" <<<"$(prog '[.phase, .done, .total]')"
it_check "... logged the sealing's last count: $VERSIONS of $VERSIONS" \
    grep -qx "\\[\"seal\",$VERSIONS,$VERSIONS\\]" <<<"$(prog '[.phase, .done, .total]')"
it_check "... and the store phase" grep -qx '\["store",0,1\]' <<<"$(prog '[.phase, .done, .total]')"
monotonic() {
    prog 'select(.phase == "seal") | .done' | awk 'NR > 1 && $1 < last { exit 1 } { last = $1 }'
}
it_check "the seal counts only grow" monotonic
# A line a second while it sealed (the announcement and the last count aside).
elapsed=$(events json "$A_LOG" server.added | jq -r .elapsed_ms)
periodic=$(prog 'select(.phase == "seal" and .done > 0 and .done < .total)' | wc -l)
it_check "a progress line per second of sealing ($periodic in $elapsed ms)" \
    test "$periodic" -ge $((${elapsed:-0} / 1000 - 1)) -a "$periodic" -ge 1
it_check "dkmctl showed the progress on stderr" \
    grep -Eq "^dkmctl: server add: seal [0-9]+/$VERSIONS \([0-9]+%\), [0-9]+ s$" "$IT_TMP/add.err"
it_check_fails "... and nothing else" grep -Ev '^dkmctl: server add: ' "$IT_TMP/add.err"
end=$(events json "$A_LOG" progress.end | jq -c "select(.op == \"server.add\")")
it_check_eq "an end line for the addition" '["store",1,1]' "$(jq -c '[.phase, .done, .total]' <<<"$end")"
added=$(events json "$A_LOG" server.added)
it_check_eq "the summary event: node, copies, skipped" "\"$B_ID\" $VERSIONS 0 2" \
    "$(jq -r '"\"\(.node)\" \(.copies) \(.skipped) \(.list_version)"' <<<"$added")"
it_check "... with numbers as JSON numbers" jq -e '(.copies|type) == "number" and (.elapsed_ms|type) == "number"' <<<"$added"

# --- B starts: text logs, the unseal of its copies ---------------------------------------
SVC_PORT=$B_PORT SVC_STATE=$B_STATE SVC_SOCK=$B_SOCK SVC_CONF=$B_CONF
svc_start dkmdB
B_PID=$SVC_PID
B_LOG=$IT_TMP/dkmdB.log
it_check "B announced unsealing its $VERSIONS copies at start" grep -qx "0/$VERSIONS" \
    <<<"$(events text "$B_LOG" progress |
        jq -r 'select(.op == "state.load" and .phase == "unseal") | "\(.done)/\(.total)"')"
it_check_eq "... and ended with all of them" "$VERSIONS/$VERSIONS" \
    "$(events text "$B_LOG" progress.end | jq -r 'select(.op == "state.load") | "\(.done)/\(.total)"')"
elapsed=$(events text "$B_LOG" progress.end | jq -r 'select(.op == "state.load") | .elapsed_ms')
if [ "${elapsed:-0}" -ge 2500 ]; then
    periodic=$(events text "$B_LOG" progress |
        jq -c 'select(.op == "state.load" and .done != "0")' | wc -l)
    # At most one a second; at least one every 3 s (a step, one TPM
    # unseal, can itself take over a second on a loaded machine).
    it_check "... a line a second at most ($periodic in $elapsed ms)" \
        test "$periodic" -le $((elapsed / 1000 + 1))
    it_check "... and it keeps reporting" test "$periodic" -ge $((elapsed / 3000))
fi
it_check_eq "B holds every key" "$VERSIONS" \
    "$(svc_curl /metrics | sed -n 's/^dkmd_keys_held //p')"

# --- A switches to text on SIGHUP -------------------------------------------------------------
SVC_PORT=$A_PORT SVC_STATE=$A_STATE SVC_SOCK=$A_SOCK SVC_CONF=$A_CONF
cp "$A_LOG" "$IT_TMP/a-json.log"
sed -i 's|^log_format = json$|log_format = text|' "$A_CONF"
kill -HUP "$A_PID"
reloaded() { grep -q '^ts=.* event=config.reloaded ' "$A_LOG"; }
it_check "A reloads and logs in text" dkm_wait_for 10 reloaded
admin POST /v1/groups/g2/rotate >/dev/null
it_check_eq "a rotation after the switch" 200 "$(admin_code)"
# Odd characters in a logged value: a change notification's payload
# (logged at debug level) with quotes, spaces, '=', a newline and UTF-8.
svc_psql "SELECT pg_notify('dkm_changes', E'odd \"payload\" = x\\nnext ' || convert_from('\\xc3a9'::bytea, 'UTF8'))" \
    >/dev/null
noted() { grep -q 'event=db.notify channel=dkm_changes payload="odd' "$A_LOG"; }
it_check "the odd payload is logged" dkm_wait_for 10 noted
it_check_eq "... quoted and escaped, on one line" \
    'payload="odd \"payload\" = x\nnext é"' \
    "$(grep -o 'payload="odd.*"' "$A_LOG" | head -n1)"
for v in 1 "$((ROTATIONS + 1))"; do
    for f in "$A_LOG" "$B_LOG"; do
        it_check_eq "$(basename "$f"): no form of g1/$v's key" "key-in-file no" \
            "$(fetch n1 g1 "$v" --search "$f" | grep '^key-in-file')"
    done
done
it_stop_pid "$A_PID"
it_stop_pid "$B_PID"

n=$(wc -l <"$IT_TMP/a-json.log")
head -n "$n" "$A_LOG" >"$IT_TMP/a-json-part.log"
tail -n +"$((n + 1))" "$A_LOG" >"$IT_TMP/a-text-part.log"
it_check "every line A logged before the switch is a JSON object: ts, level, event first" \
    check_log json "$IT_TMP/a-json-part.log"
it_check "every line A logged after it is key=value, ts, level, event first" \
    check_log text "$IT_TMP/a-text-part.log"
it_check "every line of B's log is key=value, ts, level, event first" check_log text "$B_LOG"
it_check "A's JSON log has lines of several levels" test \
    "$(jq -r .level "$IT_TMP/a-json-part.log" | sort -u | wc -l)" -ge 3
it_check_fails "nothing was withheld" grep -q withheld "$A_LOG" "$B_LOG"
it_check "the logs end with a clean stop" sh -c \
    "grep -q 'event=service.stopped' '$A_LOG' && grep -q 'event=service.stopped' '$B_LOG'"

it_finish
