#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# dkmd and its database: NOTIFY on the changes channel reaches dkmd;
# when PostgreSQL stops, requests that need it fail fast with 503 and
# /v1/health says the database is down while requests that need no
# database still work; when PostgreSQL comes back on the same address,
# dkmd reconnects by itself (and its LISTEN connection resubscribes).
# Finally SIGTERM while a request is waiting on the database: the request
# completes, new connections are refused, and dkmd exits 0.

# shellcheck source=tests/integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/svc_common.bash
. "$(dirname "${BASH_SOURCE[0]}")/svc_common.bash"
it_init svc_outage

svc_setup "request_timeout = 10"
svc_init
svc_start

pg_bin=$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)
as_pg() {
    (cd / && runuser -u postgres -- "$@")
}
# Stop and start the same cluster on the same port (scripts/pg.sh start
# would pick a new port, and dkmd's conninfo names the old one).
pg_down() {
    as_pg "$pg_bin/pg_ctl" -D "$PGDATA" -m fast -w -t 30 stop >/dev/null
}
pg_up() {
    as_pg "$pg_bin/pg_ctl" -D "$PGDATA" -l "$IT_TMP/pg/postgres.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $PGPORT -k $PGSOCKDIR -c fsync=off" \
        start >/dev/null || return 1
    # Keep scripts/pg.sh's record right, so that the cleanup stops this one.
    PGPID=$(head -n1 "$PGDATA/postmaster.pid")
    dkm_env_write "$IT_TMP/pg/env" PGPORT PGHOST PGUSER PGPID PGSOCKDIR PGDATA >/dev/null
}

metric() {
    svc_curl /metrics | sed -n "s/^$1 //p"
}

# --- NOTIFY ----------------------------------------------------------------------------
before=$(metric dkmd_db_notifications)
svc_psql "NOTIFY dkm_changes, 'group:web'"
notified() { [ "$(metric dkmd_db_notifications)" != "$before" ]; }
it_check "a NOTIFY on dkm_changes reaches dkmd" dkm_wait_for 5 notified
it_check "and is logged with its payload" grep -q 'event=db.notify channel=dkm_changes payload=group:web' \
    "$IT_TMP/dkmd.log"

# --- the database goes away ---------------------------------------------------------------
pg_down || it_fatal "cannot stop PostgreSQL"
t0=$(now_ms)
out=$(svc_curl /v1/health -w '\n%{http_code}')
t1=$(now_ms)
it_check_eq "health answers 503 while the database is down" 503 "$(tail -n1 <<<"$out")"
it_check "fast: under 1 s ($((t1 - t0)) ms)" test $((t1 - t0)) -lt 1000
body=$(head -n -1 <<<"$out")
it_check_eq "health reports the database down" false "$(jq -r .database <<<"$body")"
it_check_eq "with the error shape of every error" "service unavailable" \
    "$(jq -r .error <<<"$body")"
slowest=0
for _ in 1 2 3 4 5; do
    t0=$(now_ms)
    svc_code /v1/health >/dev/null
    t1=$(now_ms)
    [ $((t1 - t0)) -gt "$slowest" ] && slowest=$((t1 - t0))
done
it_check "repeated requests stay fast (slowest $slowest ms)" test "$slowest" -lt 1000
it_check_eq "requests that need no database still work" 200 \
    "$(svc_code /v1/ping -H 'Content-Type: application/json' -d '{"nonce":"AA"}')"
it_check "the outage is logged" grep -q 'event=db.connection_down' "$IT_TMP/dkmd.log"

# --- and comes back -------------------------------------------------------------------------
resyncs=$(grep -c 'event=db.notify channel=dkm_changes resync=true' "$IT_TMP/dkmd.log")
sleep 1
pg_up || it_fatal "cannot restart PostgreSQL"
t0=$(now_ms)
# Each worker has its own pool and backoff: healthy means every worker is
# back, so ask a few times in a row.
healthy() {
    local i
    for i in 1 2 3 4 5 6; do
        [ "$(svc_curl /v1/health | jq -r .database)" = true ] || return 1
    done
}
it_check "dkmd reconnects by itself" dkm_wait_for 15 healthy
t1=$(now_ms)
echo "# reconnected $((t1 - t0)) ms after PostgreSQL was back"
it_check_eq "health reports the database up" true "$(svc_curl /v1/health | jq -r .database)"
resubscribed() {
    [ "$(grep -c 'event=db.notify channel=dkm_changes resync=true' "$IT_TMP/dkmd.log")" -gt \
        "$resyncs" ]
}
it_check "the LISTEN connection is back (resync signalled)" dkm_wait_for 10 resubscribed
before=$(metric dkmd_db_notifications)
svc_psql "NOTIFY dkm_changes, 'after-outage'"
it_check "and receives notifications again" dkm_wait_for 5 notified

# --- SIGTERM with a request in flight ---------------------------------------------------------
# Holding a lock on schema_migrations makes /v1/health wait in the database.
svc_psql "BEGIN; LOCK TABLE schema_migrations IN ACCESS EXCLUSIVE MODE;
          SELECT pg_sleep(3); COMMIT;" >/dev/null &
locker=$!
sleep 0.5
t0=$(now_ms)
svc_curl /v1/health -w '\n%{http_code}' >"$IT_TMP/inflight.out" 2>&1 &
client=$!
# In flight means dkmd's query is waiting for the lock.
waiting() {
    [ "$(svc_psql "SELECT count(*) FROM pg_stat_activity
                   WHERE application_name = 'dkmd' AND wait_event_type = 'Lock'")" -ge 1 ]
}
it_check "the request is waiting in the database" dkm_wait_for 5 waiting
kill -TERM "$SVC_PID"
sleep 0.3
it_check "dkmd is still running while the request is in flight" kill -0 "$SVC_PID"
it_check_fails "new connections are not served while draining" \
    curl -sS --max-time 2 --cacert "$SVC_STATE/tls.crt" "https://127.0.0.1:$SVC_PORT/v1/health"
wait "$client"
t1=$(now_ms)
wait "$locker"
# (503: this server has no key-service identity, so it is never ready.)
it_check_eq "the in-flight request was answered, after its query" "503 true" \
    "$(tail -n1 "$IT_TMP/inflight.out") $(head -n1 "$IT_TMP/inflight.out" | jq -r .database)"
it_check "after waiting for the database ($((t1 - t0)) ms)" test $((t1 - t0)) -ge 1500
status=0
it_stop_pid "$SVC_PID" || status=$?
it_check_eq "then dkmd exited 0" 0 "$status"
it_check "it logged the drain" grep -q 'event=service.stopping' "$IT_TMP/dkmd.log"
it_check_fails "no sanitizer report" grep -q 'Sanitizer' "$IT_TMP/dkmd.log"

# --- a request that outlives shutdown_timeout -----------------------------------------------
SVC_LIMITS=("request_timeout = 10" "shutdown_timeout = 1")
svc_write_conf
svc_start dkmd2
svc_psql "BEGIN; LOCK TABLE schema_migrations IN ACCESS EXCLUSIVE MODE;
          SELECT pg_sleep(6); COMMIT;" >/dev/null &
locker=$!
sleep 0.5
svc_curl /v1/health -w '\n%{http_code}' >"$IT_TMP/abandoned.out" 2>&1 &
client=$!
it_check "a request is waiting in the database again" dkm_wait_for 5 waiting
t0=$(now_ms)
kill -TERM "$SVC_PID"
it_check_gone "dkmd stops although the request is still waiting" "$SVC_PID"
t1=$(now_ms)
it_check "after about shutdown_timeout (1 s; took $((t1 - t0)) ms)" test $((t1 - t0)) -lt 4000
status=0
it_stop_pid "$SVC_PID" || status=$?
it_check_eq "and exits 0" 0 "$status"
wait "$client"
# Its answer, had it come, would have carried "database": true.
it_check_ne "the abandoned request got no health answer" true \
    "$(head -n1 "$IT_TMP/abandoned.out" | jq -r .database 2>/dev/null)"
it_check "the log says requests were abandoned" grep -q 'event=service.drain_timeout' \
    "$IT_TMP/dkmd2.log"
it_check_fails "no sanitizer report" grep -q 'Sanitizer' "$IT_TMP/dkmd2.log"
wait "$locker"

it_finish
