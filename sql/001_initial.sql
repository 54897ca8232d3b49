-- SPDX-License-Identifier: Apache-2.0
--
-- The initial schema of the key service. dkmd applies it inside one
-- transaction and records it in schema_migrations. The constraints are
-- meant to make invalid states unrepresentable: a row that breaks a rule
-- of the design cannot be written, whatever the writer's bug. Signatures
-- are stored as bytes and checked by dkmd when it loads rows (a row that
-- fails is counted as refused, never used); the database needs no
-- confidentiality, since every key in it is sealed to a server's TPM.
--
-- Signed records (docs/formats.md) are stored split: the record without
-- its 64-byte signature in one column (body, policy, sealed, entry), the
-- signature in another; the signer's id is inside the former and repeated
-- in a signer column where there is one. body || signature is the record.
--
-- Sizes: node ids are the TPM name of an EK (2-byte hash algorithm +
-- SHA-256 digest = 34 bytes; up to 66 for SHA-512); EK publics are TPM2B
-- public areas (under 1 KiB); signatures are DER ECDSA P-256 (<= 72 bytes)
-- or TPMT_SIGNATURE (<= 1 KiB).

-- The authorized server list: the root of trust. Each version is a signed
-- canonical body; version N+1 must be signed by a key listed in version N
-- (checked by dkmd; the database keeps the chain gap-free and immutable).
CREATE TABLE server_lists (
    version     integer PRIMARY KEY CHECK (version > 0),
    body        bytea NOT NULL CHECK (octet_length(body) BETWEEN 1 AND 1048576),
    signature   bytea NOT NULL CHECK (octet_length(signature) BETWEEN 8 AND 1024),
    signer      bytea NOT NULL CHECK (octet_length(signer) BETWEEN 2 AND 66),
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- version N > 1 needs version N-1: the chain has no holes.
    previous    integer GENERATED ALWAYS AS (CASE WHEN version > 1 THEN version - 1 END) STORED
                REFERENCES server_lists (version)
);

-- Authorized nodes: EKs that may receive keys, each entry signed by an
-- authorized server's signing key. A revoked node stays for the audit
-- trail; it is never deleted.
CREATE TABLE nodes (
    node_id       bytea PRIMARY KEY CHECK (octet_length(node_id) BETWEEN 2 AND 66),
    ek_public     bytea NOT NULL UNIQUE CHECK (octet_length(ek_public) BETWEEN 16 AND 4096),
    role          text NOT NULL CHECK (role IN ('client', 'server', 'admin')),
    authorized_by bytea NOT NULL CHECK (octet_length(authorized_by) BETWEEN 2 AND 66),
    signature     bytea NOT NULL CHECK (octet_length(signature) BETWEEN 8 AND 1024),
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz CHECK (revoked_at IS NULL OR revoked_at >= created_at),
    -- The signed node entry without its signature (which is the column
    -- above): entry || signature is the whole record dkmd verifies.
    entry         bytea CHECK (entry IS NULL OR octet_length(entry) BETWEEN 16 AND 32768),
    hostname      text CHECK (hostname IS NULL OR length(hostname) BETWEEN 1 AND 253)
);
CREATE INDEX nodes_active ON nodes (node_id) WHERE revoked_at IS NULL;

-- Groups and their signed policies. The name is the GROUP of a dkm: URI.
CREATE TABLE groups (
    name        text PRIMARY KEY
                CHECK (name ~ '^[A-Za-z0-9._-]{1,64}$'),
    policy      bytea NOT NULL CHECK (octet_length(policy) BETWEEN 1 AND 65536),
    signature   bytea NOT NULL CHECK (octet_length(signature) BETWEEN 8 AND 1024),
    signer      bytea NOT NULL CHECK (octet_length(signer) BETWEEN 2 AND 66),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now() CHECK (updated_at >= created_at)
);

-- Key versions of a group. Only the lifecycle is here; the key itself
-- exists only as sealed copies (key_copies). States move forward:
-- active -> decrypt-only -> expired -> destroyed, and the timestamps say
-- when (each one set exactly when its state has been reached).
CREATE TABLE key_versions (
    group_name       text NOT NULL REFERENCES groups (name) ON DELETE RESTRICT,
    version          integer NOT NULL CHECK (version > 0),
    state            text NOT NULL
                     CHECK (state IN ('active', 'decrypt-only', 'expired', 'destroyed')),
    created_at       timestamptz NOT NULL DEFAULT now(),
    activated_at     timestamptz,
    decrypt_only_at  timestamptz,
    expires_at       timestamptz,
    PRIMARY KEY (group_name, version),
    CHECK (state = 'active' OR decrypt_only_at IS NOT NULL),
    CHECK (state NOT IN ('expired', 'destroyed') OR expires_at IS NOT NULL),
    CHECK (activated_at IS NULL OR activated_at >= created_at),
    CHECK (decrypt_only_at IS NULL OR activated_at IS NULL
           OR decrypt_only_at >= activated_at),
    CHECK (expires_at IS NULL OR expires_at >= created_at)
);
-- At most one active version per group: the one protect uses.
CREATE UNIQUE INDEX key_versions_one_active ON key_versions (group_name)
    WHERE state = 'active';

-- One sealed copy of each key version per authorized server, sealed to
-- that server's EK and signed by the creating server's signing key.
CREATE TABLE key_copies (
    group_name   text NOT NULL,
    version      integer NOT NULL,
    server_id    bytea NOT NULL REFERENCES nodes (node_id) ON DELETE RESTRICT,
    sealed       bytea NOT NULL CHECK (octet_length(sealed) BETWEEN 16 AND 65536),
    signature    bytea NOT NULL CHECK (octet_length(signature) BETWEEN 8 AND 1024),
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_name, version, server_id),
    FOREIGN KEY (group_name, version) REFERENCES key_versions (group_name, version)
        ON DELETE CASCADE
);

-- Which authorized nodes may receive which group's keys.
CREATE TABLE group_access (
    group_name  text NOT NULL REFERENCES groups (name) ON DELETE CASCADE,
    node_id     bytea NOT NULL REFERENCES nodes (node_id) ON DELETE RESTRICT,
    granted_by  bytea NOT NULL CHECK (octet_length(granted_by) BETWEEN 2 AND 66),
    granted_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_name, node_id)
);
CREATE INDEX group_access_node ON group_access (node_id);

-- The audit log: append-only. Rows are written in batches by dkmd; the
-- trigger below refuses every UPDATE and DELETE (TRUNCATE too), so the
-- log cannot be rewritten through SQL by the service's own role.
CREATE TABLE audit_log (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at       timestamptz NOT NULL DEFAULT now(),
    actor    text NOT NULL CHECK (length(actor) BETWEEN 1 AND 200),
    action   text NOT NULL CHECK (action ~ '^[a-z][a-z0-9_.-]{0,63}$'),
    target   text CHECK (length(target) <= 200),
    outcome  text NOT NULL CHECK (outcome IN ('ok', 'denied', 'error')),
    detail   text CHECK (length(detail) <= 2000)
);
CREATE INDEX audit_log_at ON audit_log (at);

CREATE FUNCTION refuse_rewrite() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_log_no_update_delete
    BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION refuse_rewrite();
CREATE TRIGGER audit_log_no_truncate
    BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_rewrite();

-- The same for the signed server list: versions are never rewritten.
CREATE TRIGGER server_lists_no_update_delete
    BEFORE UPDATE OR DELETE ON server_lists
    FOR EACH ROW EXECUTE FUNCTION refuse_rewrite();
