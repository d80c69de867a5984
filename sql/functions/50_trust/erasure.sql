-- Erasure (ADR 0019): a person leaves no identifier and no personal text behind,
-- and the books and the audit chain still verify. Every person column (by name,
-- farmops._person_columns()) of every farmops tenant table AND of every product record
-- table registered through register_record_type (any schema) is set to
-- 'erased:<subject id>', and the person's subject row loses its user_id, so the
-- pseudonym maps back to nothing. Content hashes and the chain hash person columns as
-- subject ids by the same rule, so they are unchanged by the rewrite; the append-only
-- and forward-only guards let exactly this change through (farmops._is_pseudonymisation).
-- Personal text goes: the person's runs' summaries, errors and steps' summaries and
-- tool inputs, what their runs' evals quoted of the output (matches, payload failure
-- messages: farmops._eval_details_erased), their feedback comments, the reasons they gave for decisions, the
-- memories they stored (with their vectors). The erasure itself is an audited event.

-- The ledger is append-only for its owner too; erasure alone may rewrite its actor
-- (the column grant is in sql/policies/090_grants.sql, the trigger checks the shape), and
-- only while farmops._erase_person runs (a transaction-local flag): otherwise no ledger row is
-- reachable by an UPDATE, as before.
DROP POLICY IF EXISTS "erasure pseudonymises the ledger's actors" ON farmops.credit_ledger;
CREATE POLICY "erasure pseudonymises the ledger's actors" ON farmops.credit_ledger
FOR UPDATE TO farmops_owner
USING (current_setting('farmops.erasing', true) = 'on') WITH CHECK (actor ~ '^erased:[0-9a-f-]{36}$');

-- Every column erasure rewrites: the person columns of every farmops tenant table (text),
-- and of every product record table outside farmops that a record type names (any type:
-- one that cannot hold the pseudonym is refused before anything changes). Found in the
-- catalog by name, never through to_regclass, so an unreadable schema is reported, not raised.
CREATE OR REPLACE FUNCTION farmops._erasure_columns()
RETURNS TABLE (rel regclass, col text, is_text boolean, product boolean)
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT c.oid::regclass, a.attname::text, t.typcategory = 'S', c.relnamespace <> 'farmops'::regnamespace
    FROM pg_catalog.pg_class AS c
    JOIN pg_catalog.pg_attribute AS a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    JOIN pg_catalog.pg_type AS t ON t.oid = a.atttypid
    WHERE c.relkind IN ('r', 'p')
        AND a.attname = ANY (farmops._person_columns())
        AND EXISTS (
            SELECT FROM pg_catalog.pg_attribute AS f
            WHERE f.attrelid = c.oid AND f.attname = 'farm_id' AND NOT f.attisdropped
        )
        AND (
            (c.relnamespace = 'farmops'::regnamespace AND c.relname <> 'subjects' AND a.atttypid = 'text'::regtype)
            OR (c.relnamespace <> 'farmops'::regnamespace AND EXISTS (
                SELECT FROM farmops.record_types AS r
                JOIN pg_catalog.pg_namespace AS n ON n.nspname = r.target_schema
                WHERE n.oid = c.relnamespace AND r.target_table = c.relname
            ))
        )
    ORDER BY c.relnamespace <> 'farmops'::regnamespace, c.oid::regclass::text, a.attname
$fn$;
COMMENT ON FUNCTION farmops._erasure_columns() IS
'Private: the (table, column) pairs erasure pseudonymises: person columns (farmops._person_columns()) of every '
'farmops tenant table and of every product record table registered through register_record_type.';

-- A product's own table is the product's: farmops may only rewrite it if the product
-- granted the package owner what that takes. Checked before anything changes.
CREATE OR REPLACE FUNCTION farmops._assert_erasable_product_tables()
RETURNS void
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_column record;
BEGIN
    FOR v_column IN SELECT e.* FROM farmops._erasure_columns() AS e WHERE e.product LOOP
        IF NOT has_schema_privilege(
            (SELECT c.relnamespace FROM pg_catalog.pg_class AS c WHERE c.oid = v_column.rel), 'USAGE'
        ) OR NOT has_column_privilege(v_column.rel, 'farm_id', 'SELECT')
            OR NOT has_column_privilege(v_column.rel, v_column.col, 'SELECT')
            OR NOT has_column_privilege(v_column.rel, v_column.col, 'UPDATE') THEN
            RAISE EXCEPTION 'erasure cannot pseudonymise %.%: % may not read and update it', v_column.rel,
                v_column.col, current_user
                USING ERRCODE = 'OF311',
                DETAIL = 'Nothing was erased.',
                HINT = format(
                    'The product grants: GRANT USAGE ON SCHEMA %s TO farmops_owner; GRANT SELECT (farm_id, %I), '
                    'UPDATE (%I) ON %s TO farmops_owner',
                    (SELECT quote_ident(n.nspname) FROM pg_catalog.pg_class AS c
                        JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace WHERE c.oid = v_column.rel),
                    v_column.col, v_column.col, v_column.rel
                );
        END IF;
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION farmops._assert_erasable_product_tables() IS
'Private: raises OF311 unless the package owner may read and update every person column of every registered '
'product record table (the product''s grants, README "Erasure").';

-- One person column of a product's record table: the person's rows get the pseudonym. The
-- product's own triggers, constraints or column type may refuse it: then OF311 (the error
-- ends the transaction, so nothing of the erasure stays). The original message may quote
-- the person's values, so only its SQLSTATE and constraint name are passed on.
CREATE OR REPLACE FUNCTION farmops._pseudonymise_product_column(
    p_table regclass, p_column text, p_is_text boolean, p_farm_id uuid, p_user_id text, p_pseudonym text
)
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_rows bigint;
    v_state text;
    v_constraint text;
BEGIN
    IF NOT p_is_text THEN
        -- (a column of another type cannot hold the pseudonym: refused only if it names the person)
        EXECUTE format('SELECT count(*) FROM %s AS t WHERE t.farm_id = $1 AND t.%I::text = $2', p_table, p_column)
            INTO v_rows USING p_farm_id, p_user_id;
        IF v_rows > 0 THEN
            RAISE EXCEPTION 'erasure cannot pseudonymise %.%: its type % cannot hold erased:<subject id>', p_table,
                p_column, (SELECT format_type(a.atttypid, a.atttypmod) FROM pg_catalog.pg_attribute AS a
                    WHERE a.attrelid = p_table AND a.attname = p_column)
                USING ERRCODE = 'OF311', DETAIL = 'Nothing was erased.',
                HINT = 'A person column (README "Erasure") of a product record table must be text.';
        END IF;
        RETURN 0;
    END IF;
    BEGIN
        EXECUTE format('UPDATE %s AS t SET %I = $1 WHERE t.farm_id = $2 AND t.%2$I = $3', p_table, p_column)
            USING p_pseudonym, p_farm_id, p_user_id;
        GET DIAGNOSTICS v_rows = ROW_COUNT;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_constraint = CONSTRAINT_NAME;
        IF v_state LIKE '40%' OR v_state IN ('55P03', '57014', '53200', '53100') THEN
            RAISE;  -- a conflict, timeout or resource error is not the product's refusal
        END IF;
        RAISE EXCEPTION 'erasure cannot pseudonymise %.%: the table refused the change (SQLSTATE %)%',
            p_table, p_column, v_state, coalesce(', constraint ' || nullif(v_constraint, ''), '')
            USING ERRCODE = 'OF311', DETAIL = 'Nothing was erased.',
            HINT = 'The column must take text of 43 characters (erased:<uuid>), and the table''s own triggers '
            'and row level security must let farmops_owner make this change (README "Erasure").';
    END;
    RETURN v_rows;
END
$fn$;
COMMENT ON FUNCTION farmops._pseudonymise_product_column(regclass, text, boolean, uuid, text, text) IS
'Private: sets one person column of a product record table to the pseudonym in the person''s rows of a farm; '
'OF311 when the product''s table refuses (its type, triggers, constraints or policies). Returns the rows changed.';

-- Everyone a farm's rows name: members, subjects, and the values of every person column
-- (farmops' tables and the product's record tables), but pseudonyms and service logins
-- (login:<name>), which are not people. The product's grants are checked first. One value per
-- subject key (farmops._subject_key): a value longer than 256 characters rather than the digest
-- its subject holds, so that erase_farm erases it, and its subject, once.
CREATE OR REPLACE FUNCTION farmops._people_of_farm(p_farm_id uuid)
RETURNS SETOF text
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_columns text;
BEGIN
    SELECT string_agg(format('SELECT t.%I::text FROM %s AS t WHERE t.farm_id = $1', e.col, e.rel), ' UNION ')
    INTO v_columns
    FROM farmops._erasure_columns() AS e;
    RETURN QUERY EXECUTE format(
        'SELECT DISTINCT ON (farmops._subject_key(p.v)) p.v '
        'FROM (SELECT m.user_id FROM farmops.farm_members AS m WHERE m.farm_id = $1 UNION '
        'SELECT s.user_id FROM farmops.subjects AS s WHERE s.farm_id = $1 UNION %s) AS p (v) '
        'WHERE p.v IS NOT NULL AND p.v !~ ''^erased:[0-9a-f-]{36}$'' AND p.v !~ ''^login:'' '
        'ORDER BY farmops._subject_key(p.v), p.v = farmops._subject_key(p.v)',
        v_columns
    ) USING p_farm_id;
END
$fn$;
COMMENT ON FUNCTION farmops._people_of_farm(uuid) IS
'Private: every person identifier a farm''s rows hold (members, subjects, every person column of farmops'' '
'tables, pending audit entries included, and of registered product record tables), pseudonyms and service '
'logins excluded; one per subject key (a long value, not its digest).';

-- An erasure rewrites the person's ledger legs, and the seal reads a farm's new legs from the ledger
-- with its own statement's snapshot (ADR 0018): a seal running beside the erasure would read the
-- identifier and give it a subject again. So an erasure takes the farm's audit_seal lock, the one every
-- seal of the farm holds: a seal in progress finishes first, a later one waits and then reads the
-- pseudonyms. Taken before the farm row (the seal may share-lock that row, never the other way round).
CREATE OR REPLACE FUNCTION farmops._hold_the_seal_for_erasure(p_farm_id uuid)
RETURNS void
LANGUAGE sql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT farmops._lock_in_farm(p_farm_id, 'audit_seal')
$fn$;
COMMENT ON FUNCTION farmops._hold_the_seal_for_erasure(uuid) IS
'Private: an erasure''s first lock: the farm''s audit_seal lock until the transaction ends, so that no seal of '
'the farm reads the person''s rows while the erasure rewrites them.';

CREATE OR REPLACE FUNCTION farmops._erase_person(p_farm_id uuid, p_user_id text, p_reason text)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_subject uuid;
    v_pseudonym text;
    v_column record;
    v_rows bigint;
    v_counts jsonb := '{}';
BEGIN
    -- A product table farmops may not rewrite refuses the whole erasure before it starts.
    PERFORM farmops._assert_erasable_product_tables();
    v_subject := farmops._subject_of(p_farm_id, p_user_id, true)::uuid;
    v_pseudonym := 'erased:' || v_subject;
    -- Personal text first, while the rows still name the person.
    UPDATE farmops.ai_runs AS r SET input_summary = NULL, output_summary = NULL, error = NULL
    WHERE r.farm_id = p_farm_id AND r.user_id = p_user_id
        AND (r.input_summary IS NOT NULL OR r.output_summary IS NOT NULL OR r.error IS NOT NULL);
    -- A run they rejected at approval keeps their reason (and, if rejected by an older release, their name)
    -- in its error.
    UPDATE farmops.ai_runs AS r SET error = NULL
    WHERE r.farm_id = p_farm_id AND r.approval_decided_by = p_user_id AND r.approval = 'rejected'
        AND r.error IS NOT NULL;
    -- The lineage of their runs: the prompt and answer summaries, what the model passed to tools.
    UPDATE farmops.ai_run_steps AS s SET input_summary = NULL, output_summary = NULL, tool_input = NULL
    FROM farmops.ai_runs AS r
    WHERE s.farm_id = p_farm_id AND r.farm_id = p_farm_id AND r.id = s.ai_run_id AND r.user_id = p_user_id
        AND (s.input_summary IS NOT NULL OR s.output_summary IS NOT NULL OR s.tool_input IS NOT NULL);
    -- The evals of their runs: what a rule matched in the output, a payload failure's message.
    UPDATE farmops.ai_evals AS e SET details = farmops._eval_details_erased(e.details)
    FROM farmops.ai_runs AS r
    WHERE e.farm_id = p_farm_id AND r.farm_id = p_farm_id AND r.id = e.ai_run_id AND r.user_id = p_user_id
        AND e.details IS DISTINCT FROM farmops._eval_details_erased(e.details);
    UPDATE farmops.ai_feedback AS f SET comment = NULL
    WHERE f.farm_id = p_farm_id AND f.user_id = p_user_id AND f.comment IS NOT NULL;
    -- The reasons they gave when deciding drafts and recommendations.
    UPDATE farmops.assistant_drafts AS d SET decision_reason = NULL
    WHERE d.farm_id = p_farm_id AND d.decided_by = p_user_id AND d.decision_reason IS NOT NULL;
    UPDATE farmops.ai_recommendations AS c SET decision_reason = NULL
    WHERE c.farm_id = p_farm_id AND c.decided_by = p_user_id AND c.decision_reason IS NOT NULL;
    DELETE FROM farmops.embeddings AS e
    WHERE e.farm_id = p_farm_id AND e.source_type = 'memory'
        AND e.source_id IN (
            SELECT m.id FROM farmops.memories AS m WHERE m.farm_id = p_farm_id AND m.created_by = p_user_id
        );
    DELETE FROM farmops.memories AS m WHERE m.farm_id = p_farm_id AND m.created_by = p_user_id;
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    v_counts := v_counts || jsonb_build_object('memories_deleted', v_rows);
    DELETE FROM farmops.farm_members AS m WHERE m.farm_id = p_farm_id AND m.user_id = p_user_id;

    -- The event, before the rewrite below pseudonymises its actor too.
    INSERT INTO farmops._audit_pending (farm_id, actor, action, object_table, object_id, detail)
    VALUES (p_farm_id, farmops._audit_actor(), 'erasure.' || p_reason, 'subjects', v_subject::text, '{}');

    -- Every person column of every tenant table and product record table, and the pending audit entries.
    PERFORM set_config('farmops.erasing', 'on', true);
    FOR v_column IN SELECT e.* FROM farmops._erasure_columns() AS e LOOP
        IF v_column.product THEN
            v_rows := farmops._pseudonymise_product_column(
                v_column.rel, v_column.col, v_column.is_text, p_farm_id, p_user_id, v_pseudonym
            );
        ELSE
            EXECUTE format('UPDATE %s AS t SET %I = $1 WHERE t.farm_id = $2 AND t.%2$I = $3', v_column.rel, v_column.col)
                USING v_pseudonym, p_farm_id, p_user_id;
            GET DIAGNOSTICS v_rows = ROW_COUNT;
        END IF;
        IF v_rows > 0 THEN
            v_counts := v_counts || jsonb_build_object(
                format('%s.%s', (v_column.rel)::text, v_column.col), v_rows
            );
        END IF;
    END LOOP;
    PERFORM set_config('farmops.erasing', '', true);
    UPDATE farmops._audit_pending AS p SET object_id = v_pseudonym
    WHERE p.farm_id = p_farm_id AND p.object_table = 'farm_members' AND p.object_id = p_user_id;

    UPDATE farmops.subjects AS s SET user_id = NULL, erased_at = now()
    WHERE s.farm_id = p_farm_id AND s.id = v_subject;
    RETURN v_counts || jsonb_build_object('subject', v_subject);
END
$fn$;
COMMENT ON FUNCTION farmops._erase_person(uuid, text, text) IS
'Private: pseudonymises one person in one farm: clears their personal text (run summaries, errors, run steps'' '
'summaries and tool inputs, their runs'' eval details'' matches and failure messages, feedback comments, decision '
'reasons), deletes their memories and membership, sets '
'every person column naming them, in farmops'' tables and registered product record tables, to '
'erased:<subject id>, erases the subject; audited as erasure.<p_reason>. OF311 (nothing erased) when a product '
'table cannot be rewritten. Returns what changed.';

CREATE OR REPLACE FUNCTION farmops.erase_member_data(p_user_id text)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_farm uuid := farmops.require_capability('erase_members');
    v_user text;
    v_role text;
BEGIN
    BEGIN
        v_user := farmops._text_argument(p_user_id, 'user id', 256);
    EXCEPTION WHEN SQLSTATE 'OF006' THEN
        -- Not a user id as add_member takes it, but a product record's person column may hold any text
        -- (ADR 0019): a value this farm's rows name as it is, longer than 256 characters say, is erased.
        IF p_user_id IS NULL OR p_user_id ~ '^erased:[0-9a-f-]{36}$' OR p_user_id ~ '^login:' THEN
            RAISE;
        END IF;
        PERFORM farmops._assert_erasable_product_tables();
        IF NOT EXISTS (SELECT FROM farmops._people_of_farm(v_farm) AS p (user_id) WHERE p.user_id = p_user_id) THEN
            RAISE;
        END IF;
        v_user := p_user_id;
    END;
    -- Serialise with the farm's seal first (farmops._hold_the_seal_for_erasure), then with membership
    -- changes and reservations (both lock its row).
    PERFORM farmops._hold_the_seal_for_erasure(v_farm);
    PERFORM FROM farmops.farms AS f WHERE f.id = v_farm FOR UPDATE;
    PERFORM farmops._assert_erasable_product_tables();
    SELECT m.role INTO v_role FROM farmops.farm_members AS m WHERE m.farm_id = v_farm AND m.user_id = v_user;
    -- A former member too: anyone this farm's rows still name (a reservation that raced an
    -- earlier erasure can still write under their identifier, ADR 0019) can be erased again.
    IF NOT FOUND AND NOT EXISTS (
        SELECT FROM farmops._people_of_farm(v_farm) AS p (user_id) WHERE p.user_id = v_user
    ) THEN
        RAISE EXCEPTION 'user is not a member of farm %', v_farm USING ERRCODE = 'OF002';
    END IF;
    IF farmops._role_manages_members(v_role) THEN
        PERFORM farmops._assert_not_last_manager(v_farm);
    END IF;
    IF EXISTS (
        SELECT FROM farmops.ai_runs AS r
        WHERE r.farm_id = v_farm AND r.user_id = v_user AND r.status IN ('reserved', 'running')
    ) THEN
        RAISE EXCEPTION 'user % has runs in progress: erase them once those settle or expire', v_user
            USING ERRCODE = 'OF310';
    END IF;
    RETURN farmops._erase_person(v_farm, v_user, 'member');
END
$fn$;
COMMENT ON FUNCTION farmops.erase_member_data(text) IS
'Farm owner (erase_members): erases a member (or former member) of the current farm: no row keeps their '
'identifier (every one, in farmops'' tables and registered product record tables, becomes erased:<subject id>, a '
'pseudonym nothing maps back) or their personal text (run summaries, errors and steps'' texts, what their runs'' '
'evals matched or quoted, feedback comments, decision reasons, memories); the books and verify_audit still hold; '
'audited. p_user_id as add_member takes it, or any value this farm''s rows name verbatim (a product record''s '
'person column may hold longer text). Returns counts. OF002 not a member of this farm, OF005 last owner, OF310 the '
'user has runs in progress, OF311 a product record table farmops may not rewrite (nothing erased), OF001, OF003, '
'OF006.';
