-- Erasure (ADR 0019): a person leaves no identifier and no personal text behind,
-- and the books and the audit chain still verify. Every person column of every
-- farmops tenant table (farmops._person_columns()) is set to 'erased:<subject id>'
-- and the person's subject row loses its user_id, so the pseudonym maps back to
-- nothing. Content hashes and the chain hash person columns as subject ids, so
-- they are unchanged by the rewrite; the append-only and forward-only guards let
-- exactly this change through (farmops._is_pseudonymisation). Personal text goes:
-- the person's runs' summaries and errors, their feedback comments, the memories
-- they stored (with their vectors). The erasure itself is an audited event.

-- The ledger is append-only for its owner too; erasure alone may rewrite its actor
-- (the column grant is in sql/policies/090_grants.sql, the trigger checks the shape), and
-- only while farmops._erase_person runs (a transaction-local flag): otherwise no ledger row is
-- reachable by an UPDATE, as before.
DROP POLICY IF EXISTS "erasure pseudonymises the ledger's actors" ON farmops.credit_ledger;
CREATE POLICY "erasure pseudonymises the ledger's actors" ON farmops.credit_ledger
FOR UPDATE TO farmops_owner
USING (current_setting('farmops.erasing', true) = 'on') WITH CHECK (actor ~ '^erased:[0-9a-f-]{36}$');

CREATE OR REPLACE FUNCTION farmops._erase_person(p_farm_id uuid, p_user_id text, p_reason text)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_subject uuid := farmops._subject_of(p_farm_id, p_user_id, true)::uuid;
    v_pseudonym text := 'erased:' || v_subject;
    v_column record;
    v_rows bigint;
    v_counts jsonb := '{}';
BEGIN
    -- Personal text first, while the rows still name the person.
    UPDATE farmops.ai_runs AS r SET input_summary = NULL, output_summary = NULL, error = NULL
    WHERE r.farm_id = p_farm_id AND r.user_id = p_user_id
        AND (r.input_summary IS NOT NULL OR r.output_summary IS NOT NULL OR r.error IS NOT NULL);
    UPDATE farmops.ai_feedback AS f SET comment = NULL
    WHERE f.farm_id = p_farm_id AND f.user_id = p_user_id AND f.comment IS NOT NULL;
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

    -- Every person column of every tenant table, and the pending audit entries.
    PERFORM set_config('farmops.erasing', 'on', true);
    FOR v_column IN
        SELECT c.oid::regclass AS tbl, a.attname AS col
        FROM pg_catalog.pg_class AS c
        JOIN pg_catalog.pg_attribute AS a ON a.attrelid = c.oid AND NOT a.attisdropped
        WHERE c.relnamespace = 'farmops'::regnamespace AND c.relkind IN ('r', 'p')
            AND a.attname = ANY (farmops._person_columns()) AND a.atttypid = 'text'::regtype
            AND c.relname <> 'subjects'
            AND EXISTS (
                SELECT FROM pg_catalog.pg_attribute AS f
                WHERE f.attrelid = c.oid AND f.attname = 'farm_id' AND NOT f.attisdropped
            )
        ORDER BY c.relname, a.attname
    LOOP
        EXECUTE format('UPDATE %s AS t SET %I = $1 WHERE t.farm_id = $2 AND t.%2$I = $3', v_column.tbl, v_column.col)
            USING v_pseudonym, p_farm_id, p_user_id;
        GET DIAGNOSTICS v_rows = ROW_COUNT;
        IF v_rows > 0 THEN
            v_counts := v_counts || jsonb_build_object(
                format('%s.%s', (v_column.tbl)::text, v_column.col), v_rows
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
'Private: pseudonymises one person in one farm: clears their personal text, deletes their memories and '
'membership, sets every person column naming them to erased:<subject id>, erases the subject; audited as '
'erasure.<p_reason>. Returns what changed.';

CREATE OR REPLACE FUNCTION farmops.erase_member_data(p_user_id text)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_farm uuid := farmops.require_capability('erase_members');
    v_user text := farmops._text_argument(p_user_id, 'user id', 256);
    v_role text;
BEGIN
    -- Serialise with membership changes and reservations of the farm (both lock its row).
    PERFORM FROM farmops.farms AS f WHERE f.id = v_farm FOR UPDATE;
    SELECT m.role INTO v_role FROM farmops.farm_members AS m WHERE m.farm_id = v_farm AND m.user_id = v_user;
    -- A former member too: their subject, or a run a reservation that raced an earlier
    -- erasure still wrote under their identifier (ADR 0019), can be erased again.
    IF NOT FOUND AND NOT EXISTS (
        SELECT FROM farmops.subjects AS s WHERE s.farm_id = v_farm AND s.user_id = v_user
    ) AND NOT EXISTS (
        SELECT FROM farmops.ai_runs AS r WHERE r.farm_id = v_farm AND r.user_id = v_user
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
'identifier (every one becomes erased:<subject id>, a pseudonym nothing maps back) or their personal text (run '
'summaries and errors, feedback comments, memories); the books and verify_audit still hold; audited. Returns '
'counts. OF002 not a member of this farm, OF005 last owner, OF310 the user has runs in progress, OF001, OF003, '
'OF006.';

CREATE OR REPLACE FUNCTION farmops.erase_farm(p_farm_id uuid)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_person text;
    v_erased integer := 0;
    v_rows bigint;
    v_counts jsonb := '{}';
BEGIN
    PERFORM farmops._assert_given(p_farm_id, 'farm id');
    PERFORM FROM farmops.farms AS f WHERE f.id = p_farm_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no farm %', p_farm_id USING ERRCODE = 'OF002';
    END IF;
    IF EXISTS (
        SELECT FROM farmops.ai_runs AS r WHERE r.farm_id = p_farm_id AND r.status IN ('reserved', 'running')
    ) THEN
        RAISE EXCEPTION 'farm % has runs in progress: erase it once those settle or expire', p_farm_id
            USING ERRCODE = 'OF310';
    END IF;
    -- Every person the farm knows: members, subjects, and the actors of its rows.
    FOR v_person IN
        SELECT m.user_id FROM farmops.farm_members AS m WHERE m.farm_id = p_farm_id
        UNION
        -- (service logins, login:<name>, are not people)
        SELECT s.user_id FROM farmops.subjects AS s WHERE s.farm_id = p_farm_id AND s.user_id !~ '^login:'
        UNION
        SELECT r.user_id FROM farmops.ai_runs AS r WHERE r.farm_id = p_farm_id AND r.user_id !~ '^erased:'
        UNION
        SELECT l.actor FROM farmops.credit_ledger AS l WHERE l.farm_id = p_farm_id AND l.actor !~ '^erased:'
        ORDER BY 1
    LOOP
        PERFORM farmops._erase_person(p_farm_id, v_person, 'farm_member');
        v_erased := v_erased + 1;
    END LOOP;
    -- The farm's own text: its knowledge and every run's summaries.
    UPDATE farmops.ai_runs AS r SET input_summary = NULL, output_summary = NULL, error = NULL
    WHERE r.farm_id = p_farm_id
        AND (r.input_summary IS NOT NULL OR r.output_summary IS NOT NULL OR r.error IS NOT NULL);
    DELETE FROM farmops.embeddings AS e WHERE e.farm_id = p_farm_id;
    DELETE FROM farmops.documents AS d WHERE d.farm_id = p_farm_id;
    GET DIAGNOSTICS v_rows = ROW_COUNT;
    v_counts := jsonb_build_object('people', v_erased, 'documents_deleted', v_rows);
    UPDATE farmops.farms AS f SET name = 'erased farm' WHERE f.id = p_farm_id;
    INSERT INTO farmops._audit_pending (farm_id, actor, action, object_table, object_id, detail)
    VALUES (p_farm_id, farmops._audit_actor(), 'erasure.farm', 'farms', p_farm_id::text, v_counts);
    RETURN v_counts;
END
$fn$;
COMMENT ON FUNCTION farmops.erase_farm(uuid) IS
'Package owner: erases every person of a farm (as erase_member_data, the last owner included), deletes its '
'documents and vectors, clears every run''s summaries and renames it ''erased farm''; the ledger, the records '
'and the audit chain stay and still verify; audited. OF002 no such farm, OF310 runs in progress, OF006.';
