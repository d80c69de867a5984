-- The audit chain (ADR 0018). Three steps, each off the others' path:
--   1. write: a trigger on each governed table appends one small row per event to
--      farmops._audit_pending (ids, status, amounts; no lock, no hash, no read); the
--      ledger's legs need none: the seal reads them from the ledger itself;
--   2. seal: farmops._seal_audit_farm() moves a farm's pending rows whose inserting
--      transaction is older than the oldest running one, and its legs past its mark,
--      into farmops.audit_log, numbered per farm and hashed into the chain, under the
--      farm's 'audit_seal' lock (never the farm row: reservations do not wait for it);
--   3. verify: farmops.verify_audit() re-hashes the chain and every immutable object
--      (ledger legs, records, autonomy changes) against the content_hash sealed with it.
-- Every person column is hashed as its farmops.subjects id, so erasure can replace a
-- person's identifier with a pseudonym and every hash still holds (ADR 0019).

-- An audited table as the chain names it (object_table): a farmops table by its bare name,
-- a product's own record table (register_record_type) as schema.table.
CREATE OR REPLACE FUNCTION farmops._audit_relation(p_table text)
RETURNS regclass
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT CASE
        WHEN strpos(p_table, '.') = 0 THEN to_regclass(format('farmops.%I', p_table))
        ELSE to_regclass(format('%I.%I', split_part(p_table, '.', 1), substr(p_table, strpos(p_table, '.') + 1)))
    END
$fn$;
COMMENT ON FUNCTION farmops._audit_relation(text) IS
'Private: the table an audit entry''s object_table names (a farmops table''s bare name, or schema.table of a '
'product''s record table); NULL when there is none.';

-- The registry of audited tables: how each one's objects are keyed and hashed.
CREATE OR REPLACE FUNCTION farmops._audited_table(p_table text)
RETURNS TABLE (id_column text, immutable boolean, person_key boolean)
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT split_part(t.tgargs_text, E'\\000', 3),
        split_part(t.tgargs_text, E'\\000', 6) LIKE '%hash%',
        split_part(t.tgargs_text, E'\\000', 6) LIKE '%person_key%'
    FROM (
        SELECT encode(tg.tgargs, 'escape') AS tgargs_text
        FROM pg_catalog.pg_trigger AS tg
        JOIN pg_catalog.pg_class AS c ON c.oid = tg.tgrelid
        WHERE c.oid = farmops._audit_relation(p_table) AND tg.tgname = c.relname || '_is_audited'
    ) AS t
    UNION ALL
    -- The ledger is sealed from itself and the runs have their own trigger: legs are keyed by seq and immutable,
    -- runs by id (their reservation is hashed with its leg, farmops._audit_content).
    SELECT 'seq', true, false WHERE p_table = 'credit_ledger'
    UNION ALL
    SELECT 'id', false, false WHERE p_table = 'ai_runs'
$fn$;
COMMENT ON FUNCTION farmops._audited_table(text) IS
'Private: how objects of an audited table (object_table: a farmops table, or schema.table of a product''s record '
'table) are keyed (id column) and whether their rows are immutable (hashed from the row) or keyed by a person; '
'read from the table''s audit trigger.';

-- The actor of an event that names none: the tenant context's user, else the login.
CREATE OR REPLACE FUNCTION farmops._audit_actor()
RETURNS text
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT coalesce(nullif(current_setting('farmops.user_id', true), ''), 'login:' || session_user)
$fn$;
COMMENT ON FUNCTION farmops._audit_actor() IS
'Private: who acts in this transaction for the audit log: the tenant context''s user, else login:<session user>.';

-- 1. Write. Nothing on this path reads a row, takes a lock or hashes.
-- The ledger's legs, the reservation's included, need no trigger at all: the seal reads them
-- straight from farmops.credit_ledger, past the farm's mark in farmops._audit_ledger_marks (a
-- farm's legs are numbered under its farm row lock, so they become visible in seq order with no
-- gap; migration 0160). A reservation is ONE event, its run row and its reserve leg
-- (run.reserved); every other leg one (ledger.<kind>).

-- Runs: a status change is an event.
CREATE OR REPLACE FUNCTION farmops._audit_run_status()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    INSERT INTO farmops._audit_pending (farm_id, actor, action, object_table, object_id, detail)
    VALUES (
        new.farm_id, farmops._audit_actor(), 'run.' || new.status, 'ai_runs', new.id::text,
        jsonb_strip_nulls(jsonb_build_object(
            'from', old.status, 'credits_reserved', new.credits_reserved, 'credits_actual', new.credits_actual,
            'credits_shortfall', nullif(new.credits_shortfall, 0), 'input_tokens', new.input_tokens,
            'output_tokens', new.output_tokens
        ))
    );
    RETURN NULL;
END
$fn$;
COMMENT ON FUNCTION farmops._audit_run_status() IS
'Trigger (row, ai_runs, status changed): a pending audit entry run.<status> with credits and tokens.';

-- Any other governed table: one row trigger built from its arguments (see _attach_audit).
CREATE OR REPLACE FUNCTION farmops._audit_row()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    -- tg_argv: 0 action prefix, 1 status column ('' = none), 2 id column,
    --          3 detail columns (comma-separated), 4 actor (columns and @context, @login), 5 options.
    v_row jsonb := CASE WHEN tg_op = 'DELETE' THEN to_jsonb(old) ELSE to_jsonb(new) END;
    v_old jsonb := CASE WHEN tg_op = 'UPDATE' THEN to_jsonb(old) END;
    v_detail jsonb := '{}';
    v_column text;
    v_actor text;
    v_action text;
BEGIN
    FOREACH v_column IN ARRAY string_to_array(nullif(tg_argv[3], ''), ',') LOOP
        v_detail := v_detail || jsonb_build_object(v_column, v_row -> v_column);
    END LOOP;
    IF tg_op = 'UPDATE' THEN
        -- Only a change of what the entry shows is an event (not updated_at alone).
        IF NOT EXISTS (
            SELECT FROM jsonb_each(v_detail) AS d (k, v) WHERE v_old -> d.k IS DISTINCT FROM d.v
        ) THEN
            RETURN NULL;
        END IF;
    END IF;
    FOREACH v_column IN ARRAY string_to_array(tg_argv[4], ',') LOOP
        v_actor := CASE v_column
            WHEN '@context' THEN nullif(current_setting('farmops.user_id', true), '')
            WHEN '@login' THEN 'login:' || session_user
            ELSE v_row ->> v_column
        END;
        EXIT WHEN v_actor IS NOT NULL;
    END LOOP;
    v_action := tg_argv[0] || '.' || CASE
        WHEN tg_op = 'DELETE' THEN 'removed'
        WHEN tg_argv[1] <> '' THEN v_row ->> tg_argv[1]
        WHEN tg_op = 'INSERT' THEN 'added'
        ELSE 'changed'
    END;
    INSERT INTO farmops._audit_pending (farm_id, actor, action, object_table, object_id, detail)
    VALUES (
        (v_row ->> 'farm_id')::uuid, coalesce(v_actor, farmops._audit_actor()), v_action,
        -- a product's own record table (outside farmops) as schema.table
        CASE WHEN tg_table_schema = 'farmops' THEN tg_table_name ELSE tg_table_schema || '.' || tg_table_name END,
        v_row ->> tg_argv[2], jsonb_strip_nulls(v_detail)
    );
    RETURN NULL;
END
$fn$;
COMMENT ON FUNCTION farmops._audit_row() IS
'Trigger (row): one pending audit entry per governed change, shaped by the trigger''s arguments '
'(farmops._attach_audit).';

CREATE OR REPLACE FUNCTION farmops._attach_audit(
    p_table regclass,
    p_action text,
    p_id_column text DEFAULT 'id',
    p_detail_columns text DEFAULT '',
    p_actor text DEFAULT '@context,@login',
    p_events text DEFAULT 'INSERT OR UPDATE OR DELETE',
    p_status_column text DEFAULT '',
    p_options text DEFAULT ''
)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_name text := (SELECT c.relname FROM pg_catalog.pg_class AS c WHERE c.oid = p_table) || '_is_audited';
BEGIN
    IF p_options ~ 'hash' AND p_events <> 'INSERT' THEN
        RAISE EXCEPTION 'an immutable (hashed) table is audited on INSERT only' USING ERRCODE = 'OF006';
    END IF;
    IF p_events !~ '^(INSERT|UPDATE|DELETE)( OR (INSERT|UPDATE|DELETE))*$' THEN
        RAISE EXCEPTION 'events must be INSERT, UPDATE and/or DELETE joined by OR' USING ERRCODE = 'OF006';
    END IF;
    EXECUTE format(
        'CREATE OR REPLACE TRIGGER %I AFTER %s ON %s FOR EACH ROW '
        'EXECUTE FUNCTION farmops._audit_row(%L, %L, %L, %L, %L, %L)',
        v_name, p_events, p_table, p_action, p_status_column, p_id_column, p_detail_columns, p_actor, p_options
    );
    EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER %I', p_table, v_name);
END
$fn$;
COMMENT ON FUNCTION farmops._attach_audit(regclass, text, text, text, text, text, text, text) IS
'Private: audits a tenant table in one call: an AFTER row trigger <table>_is_audited writing '
'<p_action>.<status|added|changed|removed> with the object''s p_id_column and p_detail_columns (ids, statuses, '
'amounts: never personal text). p_actor: columns and @context / @login, first non-NULL wins. p_options: '
'''hash'' = immutable rows hashed from the row at seal (INSERT only), ''person_key'' = the id is a person''s.';

-- Attachments. The chain itself only grows; only the sealing step appends to it.
SELECT farmops._attach_append_only('farmops.audit_log');

DROP TRIGGER IF EXISTS ai_runs_status_is_audited ON farmops.ai_runs;
CREATE TRIGGER ai_runs_status_is_audited AFTER UPDATE OF status ON farmops.ai_runs
FOR EACH ROW WHEN (old.status IS DISTINCT FROM new.status)
EXECUTE FUNCTION farmops._audit_run_status();
ALTER TABLE farmops.ai_runs ENABLE ALWAYS TRIGGER ai_runs_status_is_audited;

SELECT farmops._attach_audit(
    'farmops.assistant_drafts', 'draft', 'id', 'ai_run_id,record_type,status,record_id',
    'decided_by,@context,@login', 'INSERT OR UPDATE', 'status'
);
SELECT farmops._attach_audit(
    'farmops.ai_recommendations', 'recommendation', 'id', 'ai_run_id,status', 'decided_by,@context,@login',
    'INSERT OR UPDATE', 'status'
);
SELECT farmops._attach_audit(
    'farmops.autonomy_changes', 'autonomy', 'seq', 'seq', 'changed_by', 'INSERT', '', 'hash'
);
SELECT farmops._attach_audit(
    'farmops.farm_members', 'member', 'user_id', 'role', '@context,@login', 'INSERT OR UPDATE OR DELETE', '',
    'person_key'
);
SELECT farmops._attach_audit(
    'farmops.documents', 'document', 'id', 'model', '@context,created_by,@login', 'INSERT OR DELETE'
);
SELECT farmops._attach_audit(
    'farmops.memories', 'memory', 'id', 'source_run_id', '@context,created_by,@login',
    'INSERT OR UPDATE OR DELETE'
);
SELECT farmops._attach_audit(
    'farmops.farm_guard_rules', 'guard_rule', 'id', 'name,category,action,enabled', '@context,created_by,@login'
);
SELECT farmops._attach_audit(
    'farmops.guard_allow_rules', 'guard_allow_rule', 'id', 'rule_name,category,enabled',
    '@context,created_by,@login'
);
SELECT farmops._attach_audit(
    'farmops.farm_pii_policies', 'pii_policy', 'farm_id', 'keep_kinds', '@context,updated_by,@login'
);
SELECT farmops._attach_audit(
    'farmops.guard_events', 'guard', 'id', 'ai_run_id,stage,source,verdict,outcome,categories,rule_names',
    'user_id,@context,@login', 'INSERT'
);
-- Every record table of the registry, a product's own (outside farmops) too:
-- register_record_type attaches it when the type is registered; a re-install attaches it
-- again (a table dropped since is skipped).
SELECT farmops._attach_audit(r.rel, 'record', 'id', 'draft_id', 'created_by,@context,@login', 'INSERT', '', 'hash')
FROM (
    SELECT farmops._audit_relation(t.target_schema || '.' || t.target_table) AS rel
    FROM farmops.record_types AS t
) AS r
WHERE r.rel IS NOT NULL
ORDER BY r.rel::text;
