#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# dkmd's schema migrations against a real PostgreSQL: the first start
# applies them, a restart is a no-op, two dkmd starting at once migrate
# once, a database newer than the binary and a migration whose file
# changed after it was applied are both refused. Then the schema's own
# rules: invalid rows are refused by constraints (group names, roles,
# states, one active version per group, byte lengths) and the audit log
# refuses UPDATE and DELETE.

# shellcheck source=tests/integration/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=tests/integration/svc_common.bash
. "$(dirname "${BASH_SOURCE[0]}")/svc_common.bash"
it_init svc_migrations

svc_setup
# Two dkmd starting at once on an empty database: the advisory lock makes
# one migrate and the other find nothing to do.
"$SVC_BIN" init --config "$SVC_CONF" >"$IT_TMP/init1.out" 2>&1 &
p1=$!
SVC_STATE2=$IT_TMP/state2
sed "s|^state_dir = .*|state_dir = $SVC_STATE2|;s|^admin_socket = .*|admin_socket = $IT_TMP/a2.sock|" \
    "$SVC_CONF" >"$IT_TMP/dkmd2.conf"
"$SVC_BIN" init --config "$IT_TMP/dkmd2.conf" >"$IT_TMP/init2.out" 2>&1 &
p2=$!
s1=0 s2=0
wait "$p1" || s1=$?
wait "$p2" || s2=$?
it_check_eq "first of two concurrent inits succeeds" 0 "$s1"
it_check_eq "second of two concurrent inits succeeds" 0 "$s2"
it_check_eq "each migration was recorded once" 2 \
    "$(svc_psql 'SELECT count(*) FROM schema_migrations')"
it_check_eq "exactly one of them applied it" 1 \
    "$(cat "$IT_TMP/init1.out" "$IT_TMP/init2.out" | grep -c 'db.migration_applied version=1 name=initial')"
it_check_eq "the recorded checksum is the file's" \
    "$(sha256sum "$IT_SRC/sql/001_initial.sql" | cut -d' ' -f1)" \
    "$(svc_psql 'SELECT checksum FROM schema_migrations WHERE version = 1')"

applied=$(svc_psql 'SELECT applied_at FROM schema_migrations')
svc_start
it_check_eq "a restart applies nothing" "$applied" \
    "$(svc_psql 'SELECT applied_at FROM schema_migrations')"
it_check_fails "and logs no migration" grep -q 'event=db.migration_applied' "$IT_TMP/dkmd.log"
it_stop_pid "$SVC_PID"

# --- a newer database is refused -------------------------------------------------
svc_psql "INSERT INTO schema_migrations (version, name, checksum)
          VALUES (3, 'from_the_future', repeat('a', 64))"
status=0
"$SVC_BIN" --config "$SVC_CONF" >"$IT_TMP/newer.log" 2>&1 || status=$?
it_check_eq "dkmd refuses a newer schema (exit 1)" 1 "$status"
it_check "the refusal says why" grep -q 'schema is at version 3, newer than this dkmd knows' \
    "$IT_TMP/newer.log"
svc_psql "DELETE FROM schema_migrations WHERE version = 3"

# --- a changed migration file is refused --------------------------------------------
mkdir "$IT_TMP/sql"
sed 's/^-- SPDX/--  SPDX/' "$IT_SRC/sql/001_initial.sql" >"$IT_TMP/sql/001_initial.sql"
cp "$IT_SRC/sql/002_signed_access.sql" "$IT_TMP/sql/"
SVC_SQL_DIR=$IT_TMP/sql svc_write_conf
status=0
"$SVC_BIN" --config "$SVC_CONF" >"$IT_TMP/changed.log" 2>&1 || status=$?
it_check_eq "dkmd refuses a changed migration (exit 1)" 1 "$status"
it_check "the refusal names the checksum" grep -q 'checksum mismatch' "$IT_TMP/changed.log"
svc_write_conf
svc_start dkmd2
it_check_eq "with the right files it runs again" true "$(svc_curl /v1/health | jq -r .database)"
it_stop_pid "$SVC_PID"

# --- the schema refuses invalid states -------------------------------------------------
# Refused by a rule of the schema, not by a typo in the test's SQL.
_refused_by_rule() {
    local out
    if out=$(svc_psql "$1" 2>&1); then
        echo "accepted: $out"
        return 1
    fi
    grep -Eq 'violates|append-only' <<<"$out" || {
        echo "failed for another reason: $out"
        return 1
    }
}
refused() { # DESC SQL
    it_check "refused: $1" _refused_by_rule "$2"
}
id="'\\x000b$(printf '%064d' 1)'::bytea"
id2="'\\x000b$(printf '%064d' 2)'::bytea"
sig="'\\x3045$(printf '%0140d' 0)'::bytea"
it_check "a valid node" svc_psql "INSERT INTO nodes (node_id, ek_public, role, authorized_by,
    signature) VALUES ($id, decode(repeat('ab', 300), 'hex'), 'client', $id, $sig)"
refused "node role outside client|server|admin" "INSERT INTO nodes (node_id, ek_public, role,
    authorized_by, signature) VALUES ($id2, decode(repeat('cd', 300), 'hex'), 'root', $id, $sig)"
refused "node id of 1 byte" "INSERT INTO nodes (node_id, ek_public, role, authorized_by,
    signature) VALUES ('\\x00', decode(repeat('cd', 300), 'hex'), 'client', $id, $sig)"
refused "revoked before created" "UPDATE nodes SET revoked_at = created_at - interval '1 day'"
it_check "a valid group" svc_psql "INSERT INTO groups (name, policy, signature, signer)
    VALUES ('web-1.prod_x', '\\x01', $sig, $id)"
refused "group name with a slash" "INSERT INTO groups (name, policy, signature, signer)
    VALUES ('a/b', '\\x01', $sig, $id)"
refused "group name of 65 characters" "INSERT INTO groups (name, policy, signature, signer)
    VALUES (repeat('a', 65), '\\x01', $sig, $id)"
refused "empty group name" "INSERT INTO groups (name, policy, signature, signer)
    VALUES ('', '\\x01', $sig, $id)"
refused "empty policy" "INSERT INTO groups (name, policy, signature, signer)
    VALUES ('g2', '', $sig, $id)"
it_check "version 1 active" svc_psql "INSERT INTO key_versions (group_name, version, state,
    activated_at) VALUES ('web-1.prod_x', 1, 'active', now())"
refused "a second active version" "INSERT INTO key_versions (group_name, version, state)
    VALUES ('web-1.prod_x', 2, 'active')"
refused "version 0" "INSERT INTO key_versions (group_name, version, state, decrypt_only_at)
    VALUES ('web-1.prod_x', 0, 'decrypt-only', now())"
refused "unknown state" "INSERT INTO key_versions (group_name, version, state, decrypt_only_at)
    VALUES ('web-1.prod_x', 3, 'lost', now())"
refused "expired without expires_at" "INSERT INTO key_versions (group_name, version, state,
    decrypt_only_at) VALUES ('web-1.prod_x', 3, 'expired', now())"
refused "a version of a group that does not exist" "INSERT INTO key_versions (group_name,
    version, state, activated_at) VALUES ('nope', 1, 'active', now())"
refused "duplicate (group, version)" "INSERT INTO key_versions (group_name, version, state,
    decrypt_only_at) VALUES ('web-1.prod_x', 1, 'decrypt-only', now())"
it_check "a sealed copy" svc_psql "INSERT INTO key_copies (group_name, version, server_id,
    sealed, signature) VALUES ('web-1.prod_x', 1, $id, decode(repeat('ee', 100), 'hex'), $sig)"
refused "a second copy for the same server" "INSERT INTO key_copies (group_name, version,
    server_id, sealed, signature) VALUES ('web-1.prod_x', 1, $id,
    decode(repeat('ee', 100), 'hex'), $sig)"
refused "a copy for an unknown server" "INSERT INTO key_copies (group_name, version,
    server_id, sealed, signature) VALUES ('web-1.prod_x', 1, $id2,
    decode(repeat('ee', 100), 'hex'), $sig)"
refused "a copy of a version that does not exist" "INSERT INTO key_copies (group_name,
    version, server_id, sealed, signature) VALUES ('web-1.prod_x', 9, $id,
    decode(repeat('ee', 100), 'hex'), $sig)"
refused "a 1-byte sealed blob" "INSERT INTO key_copies (group_name, version, server_id,
    sealed, signature) VALUES ('web-1.prod_x', 1, $id, '\\x00', $sig)"
it_check "a grant" svc_psql "INSERT INTO group_access (group_name, node_id, granted_by)
    VALUES ('web-1.prod_x', $id, $id)"
refused "a grant to an unknown node" "INSERT INTO group_access (group_name, node_id,
    granted_by) VALUES ('web-1.prod_x', $id2, $id)"
it_check "server list v1" svc_psql "INSERT INTO server_lists (version, body, signature, signer)
    VALUES (1, '\\x01', $sig, $id)"
refused "server list v3 without v2" "INSERT INTO server_lists (version, body, signature,
    signer) VALUES (3, '\\x01', $sig, $id)"
refused "rewriting server list v1" "UPDATE server_lists SET body = '\\x02'"
it_check "an audit record" svc_psql "INSERT INTO audit_log (actor, action, target, outcome)
    VALUES ('admin', 'group.create', 'web-1.prod_x', 'ok')"
refused "audit UPDATE" "UPDATE audit_log SET outcome = 'denied'"
refused "audit DELETE" "DELETE FROM audit_log"
refused "audit TRUNCATE" "TRUNCATE audit_log"
refused "audit outcome outside ok|denied|error" "INSERT INTO audit_log (actor, action,
    outcome) VALUES ('a', 'x', 'maybe')"
it_check_eq "the audit record is still there" 1 "$(svc_psql 'SELECT count(*) FROM audit_log')"

it_finish
