-- SPDX-License-Identifier: Apache-2.0
--
-- Schema version 2: every row that decides who may receive a key is a
-- signed record, and every server can tell an older record put back from
-- the current one.
--
-- * group_access rows carry a signed grant record (DKGA: group, node,
--   granted or revoked, serial, signer) split as elsewhere: the record
--   without its signature in "record", the 64-byte signature beside it.
--   A revocation keeps the row with a revoked record of the next serial.
-- * state_head holds the signed state head (DKSH): a counter that every
--   write of an access-deciding record moves on in the same transaction.
--   Each server keeps the highest counter it has seen in its state
--   directory and refuses a database whose head is lower.
--
-- Rows written before this migration (grants without a record, node
-- entries of format 1 without a serial or a signed hostname) are signed
-- once by the first dkmd of the new version that starts with a TPM: in
-- one transaction it signs every such row that verifies (a node entry
-- signed by a server on the list, a grant of a node and a group that
-- verify) and writes state head 1. It does so only while the database has
-- no state head and its own state directory has no "seen" file, so it
-- never signs a row that was put in afterwards (docs/operations.md,
-- "Upgrading to schema version 2").
ALTER TABLE group_access
    ADD COLUMN record    bytea CHECK (record IS NULL OR octet_length(record) BETWEEN 16 AND 32768),
    ADD COLUMN signature bytea CHECK (signature IS NULL OR octet_length(signature) = 64),
    ADD CONSTRAINT group_access_signed_whole CHECK ((record IS NULL) = (signature IS NULL));

-- One row: the current head.
CREATE TABLE state_head (
    id          boolean PRIMARY KEY DEFAULT true CHECK (id),
    counter     bigint NOT NULL CHECK (counter > 0),
    body        bytea NOT NULL CHECK (octet_length(body) BETWEEN 16 AND 32768),
    signature   bytea NOT NULL CHECK (octet_length(signature) = 64),
    signer      bytea NOT NULL CHECK (octet_length(signer) BETWEEN 2 AND 66),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- A check inside a write transaction: when ok is not true it raises
-- serialization_failure (40001) with msg, which dkmd answers as "changed
-- meanwhile: try again" (after reloading the state it wrote from). The
-- writes of access-deciding records check this way, under the advisory
-- lock that orders them, that the state head is still the one their
-- snapshot held.
CREATE FUNCTION dkm_expect(ok boolean, msg text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF ok IS NOT TRUE THEN
        RAISE EXCEPTION '%', msg USING ERRCODE = 'serialization_failure';
    END IF;
END;
$$;
