-- The tamper-evident audit chain (ADR 0018) and the per-farm subjects that every
-- person column is hashed through, so that erasure can pseudonymise a person
-- without breaking a hash (ADR 0019).
--
-- Two tables, two speeds. Governed writes append a small row to the private
-- farmops._audit_pending from a trigger: no lock, no hash, no read. The sealing
-- step (farmops.seal_audit(), and audit_head / verify_audit for the farm asked
-- about) moves the rows whose inserting transaction is older than the oldest
-- running one into farmops.audit_log, in insert order, numbering them per farm
-- and hashing them into the chain. farmops.audit_log is append-only for every
-- role (sql/functions/50_trust/audit.sql).

CREATE TABLE farmops.subjects (
    farm_id uuid NOT NULL REFERENCES farmops.farms (id),
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    -- The person's identifier; NULL once erased: the subject is then a pseudonym nothing maps back.
    user_id text,
    created_at timestamptz NOT NULL DEFAULT now(),
    erased_at timestamptz,
    PRIMARY KEY (farm_id, id),
    CONSTRAINT one_subject_per_person_and_farm UNIQUE (farm_id, user_id),
    CONSTRAINT subject_user_id_is_short CHECK (char_length(user_id) BETWEEN 1 AND 256),
    CONSTRAINT an_erased_subject_has_no_identifier CHECK ((erased_at IS NULL) = (user_id IS NOT NULL))
);
COMMENT ON TABLE farmops.subjects IS
'Who acted, per farm: one pseudonymous id per person (or job) that the audit chain and every content hash refer '
'to. Erasure clears user_id; the id stays as a pseudonym nothing maps back.';
COMMENT ON COLUMN farmops.subjects.user_id IS 'The person''s identifier, NULL after farmops.erase_member_data().';

CREATE TABLE farmops._audit_pending (
    farm_id uuid NOT NULL,
    -- Insert order (global, never shown to a tenant: the table is private).
    id bigint GENERATED ALWAYS AS IDENTITY,
    -- The inserting transaction: sealed only once it is older than every running one.
    xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
    at timestamptz NOT NULL DEFAULT now(),
    actor text NOT NULL,
    action text NOT NULL,
    object_table text NOT NULL,
    object_id text NOT NULL,
    detail jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (farm_id, id)
);
COMMENT ON TABLE farmops._audit_pending IS
'Private: audit entries appended by the governed tables'' triggers (no lock, no hash), moved into '
'farmops.audit_log by the sealing step.';

CREATE TABLE farmops.audit_log (
    farm_id uuid NOT NULL REFERENCES farmops.farms (id),
    seq bigint NOT NULL,
    at timestamptz NOT NULL,
    sealed_at timestamptz NOT NULL DEFAULT now(),
    actor uuid NOT NULL,
    action text NOT NULL,
    object_table text NOT NULL,
    object_id text NOT NULL,
    detail jsonb NOT NULL,
    content_hash text NOT NULL,
    prev_hash text NOT NULL,
    hash text NOT NULL,
    PRIMARY KEY (farm_id, seq),
    FOREIGN KEY (farm_id, actor) REFERENCES farmops.subjects (farm_id, id),
    CONSTRAINT audit_seq_starts_at_one CHECK (seq >= 1)
);
-- The entries of one object (verify_audit: is every ledger leg in the chain?).
CREATE INDEX audit_log_object_idx ON farmops.audit_log (farm_id, object_table, object_id);
COMMENT ON TABLE farmops.audit_log IS
'Append-only, per-farm hash chain of governed events (ledger legs, run status, draft decisions, records, '
'autonomy, members, documents, memories, guard rules, erasures). Verify with farmops.verify_audit().';
COMMENT ON COLUMN farmops.audit_log.seq IS '1, 2, 3 ... per farm, in the order the sealing step linked the entries.';
COMMENT ON COLUMN farmops.audit_log.at IS 'When the event''s transaction started.';
COMMENT ON COLUMN farmops.audit_log.actor IS 'The farmops.subjects id of who acted (a person, a login or a job).';
COMMENT ON COLUMN farmops.audit_log.object_id IS
'The object''s key in object_table (a person''s key as their subject id); ids only, never personal text.';
COMMENT ON COLUMN farmops.audit_log.detail IS 'Ids, statuses, amounts and counts of the event; never personal text.';
COMMENT ON COLUMN farmops.audit_log.content_hash IS
'sha256 (hex) of the object''s canonical row for immutable objects (ledger legs, records, autonomy changes), '
'else of detail; person columns are hashed as their subject id.';
COMMENT ON COLUMN farmops.audit_log.prev_hash IS 'The hash of entry seq - 1 (64 zeros for seq 1).';
COMMENT ON COLUMN farmops.audit_log.hash IS 'sha256 (hex) over prev_hash and every column of this entry.';

-- Who may verify the chain and erase a person: the owner (a README matrix row each).
INSERT INTO farmops.role_capabilities (role, capability) VALUES
('owner', 'verify_audit'),
('owner', 'erase_members');

-- Existing data: a subject for every member, and the history written before the
-- chain existed enters it at the first seal (each ledger leg, record and autonomy
-- change in its farm's order), hashed from the rows themselves.
INSERT INTO farmops.subjects (farm_id, user_id)
SELECT DISTINCT
    m.farm_id,
    m.user_id
FROM farmops.farm_members AS m
ON CONFLICT (farm_id, user_id) DO NOTHING;

INSERT INTO farmops._audit_pending (farm_id, at, actor, action, object_table, object_id, detail)
SELECT
    l.farm_id,
    l.created_at,
    l.actor,
    'ledger.' || l.kind AS action,
    'credit_ledger' AS object_table,
    l.seq::text AS object_id,
    jsonb_build_object('run', l.ai_run_id, 'delta', l.delta, 'balance_after', l.balance_after) AS detail
FROM farmops.credit_ledger AS l
ORDER BY l.created_at, l.farm_id, l.seq;

INSERT INTO farmops._audit_pending (farm_id, at, actor, action, object_table, object_id, detail)
SELECT
    a.farm_id,
    a.changed_at,
    a.changed_by,
    'autonomy.added' AS action,
    'autonomy_changes' AS object_table,
    a.seq::text AS object_id,
    jsonb_build_object('seq', a.seq) AS detail
FROM farmops.autonomy_changes AS a
ORDER BY a.changed_at, a.farm_id, a.seq;

DO $records$
DECLARE
    v_type record;
BEGIN
    FOR v_type IN
        SELECT t.target_table FROM farmops.record_types AS t
        WHERE t.target_schema = 'farmops' ORDER BY t.target_table
    LOOP
        EXECUTE format(
            'INSERT INTO farmops._audit_pending (farm_id, at, actor, action, object_table, object_id, detail) '
            'SELECT r.farm_id, r.created_at, r.created_by, %L, %L, r.id::text, '
            'jsonb_build_object(''draft'', r.draft_id) FROM farmops.%I AS r ORDER BY r.created_at, r.id',
            'record.added', v_type.target_table, v_type.target_table
        );
    END LOOP;
END
$records$;
