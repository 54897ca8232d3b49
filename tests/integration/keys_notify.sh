#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Helpers run through it_check and take no arguments:
# shellcheck disable=SC2317,SC2119
#
# dkmd under a service manager: with NOTIFY_SOCKET pointing at a datagram
# listener (notify_listen.py) and WATCHDOG_USEC=1 s, dkmd sends READY=1
# only when it is ready (the listener asks /v1/health the moment READY
# arrives), WATCHDOG=1 about every half second while its loops turn, no
# ping while the keeper thread is stuck (in a state reload that waits on a
# table lock), pings again once it moves, and STOPPING=1 at SIGTERM.
# Without NOTIFY_SOCKET (every other test) nothing of this is sent.

# shellcheck source=tests/integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/svc_common.bash
. "$(dirname "${BASH_SOURCE[0]}")/svc_common.bash"
# shellcheck source=tests/integration/keys_common.bash
. "$(dirname "${BASH_SOURCE[0]}")/keys_common.bash"
it_init keys_notify

keys_setup
keys_init
NOTES=$IT_TMP/notify.log
it_daemon listener python3 "$IT_SRC/tests/integration/notify_listen.py" \
    "$IT_TMP/notify.sock" "$NOTES" "$SVC_PORT" "$SVC_STATE/tls.crt"
LISTENER_PID=$IT_PID
dkm_wait_for 10 grep -q listening "$NOTES" 2>/dev/null || it_fatal "the listener did not start"

NOTIFY_SOCKET=$IT_TMP/notify.sock WATCHDOG_USEC=1000000 svc_start
it_check "dkmd sent READY=1" dkm_wait_for 5 grep -q ' READY=1$' "$NOTES"
it_check_eq "at READY=1, /v1/health already answered 200 and ready" "200 True" \
    "$(sed -n 's/^[0-9.]* health-\(at-ready\|detail\) //p' "$NOTES")"
it_check "with a STATUS= line" grep -q ' STATUS=serving on 127.0.0.1:' "$NOTES"
it_check "the log names the watchdog period" grep -q 'event=watchdog.on interval_ms=500' \
    "$IT_TMP/dkmd.log"

pings() { grep -c ' WATCHDOG=1$' "$NOTES"; }
pings_at_least() { [ "$(pings)" -ge "$1" ]; }
readies_at_least() { [ "$(grep -c ' READY=1$' "$NOTES")" -ge "$1" ]; }
# gaps FROM: the longest time between two pings after monotonic time FROM.
gaps() {
    awk -v from="$1" '$2 == "WATCHDOG=1" && $1 >= from {
        if (last != "") { g = $1 - last; if (g > max) max = g } last = $1 }
        END { printf "%.0f\n", max * 1000 }' "$NOTES"
}
sleep 2.6
it_check "WATCHDOG=1 about every 500 ms (at least 4 in 2.6 s, got $(pings))" \
    test "$(pings)" -ge 4
it_check "no gap over 900 ms between pings" test "$(gaps 0)" -le 900

# Stall the keeper: its reload reads server_lists, which another session
# holds locked for 5 s. Fetches and health go on meanwhile; once the
# watchdog has noticed (it logs so), no ping comes.
svc_psql "BEGIN; LOCK TABLE server_lists IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(5); COMMIT" \
    >/dev/null &
lock_pid=$!
sleep 0.3
keys_notify
withheld() { grep -q 'event=watchdog.withheld reason="the keeper thread has not turned for' "$IT_TMP/dkmd.log"; }
it_check "the watchdog notices the stuck keeper and logs why" dkm_wait_for 4 withheld
before=$(pings)
sleep 1.5
during=$(pings)
it_check_eq "no ping while the keeper is stuck" "$before" "$during"
it_check_eq "the workers still answer meanwhile" 200 "$(svc_code /v1/health/live)"
wait "$lock_pid"
it_check "after the lock is gone, pings come again" dkm_wait_for 5 \
    pings_at_least $((during + 2))
it_check "and the log says so" grep -q 'event=watchdog.resumed' "$IT_TMP/dkmd.log"

# SIGHUP: RELOADING=1, then READY=1 again.
kill -HUP "$SVC_PID"
it_check "SIGHUP: RELOADING=1" dkm_wait_for 5 grep -q ' RELOADING=1$' "$NOTES"
it_check "then READY=1 again" dkm_wait_for 5 readies_at_least 2

it_stop_pid "$SVC_PID"
it_check_eq "dkmd stopped cleanly" 0 "$?"
it_check "STOPPING=1 at SIGTERM" grep -q ' STOPPING=1$' "$NOTES"
it_stop_pid "$LISTENER_PID" || true
it_finish
