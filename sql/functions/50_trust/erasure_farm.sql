-- Erasure of a whole farm (ADR 0019): every person it names, as erase_member_data erases one
-- (farmops._erase_person, erasure.sql), and the farm's own texts and documents.

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
    IF NOT EXISTS (SELECT FROM farmops.farms AS f WHERE f.id = p_farm_id) THEN
        RAISE EXCEPTION 'no farm %', p_farm_id USING ERRCODE = 'OF002';
    END IF;
    PERFORM farmops._hold_the_seal_for_erasure(p_farm_id);  -- before the farm row, as erase_member_data
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
    PERFORM farmops._assert_erasable_product_tables();
    FOR v_person IN SELECT p.user_id FROM farmops._people_of_farm(p_farm_id) AS p (user_id) ORDER BY 1 LOOP
        PERFORM farmops._erase_person(p_farm_id, v_person, 'farm_member');
        v_erased := v_erased + 1;
    END LOOP;
    -- The farm's own text: its knowledge, every run's summaries and steps' texts, every eval's
    -- matches and failure messages.
    UPDATE farmops.ai_runs AS r SET input_summary = NULL, output_summary = NULL, error = NULL
    WHERE r.farm_id = p_farm_id
        AND (r.input_summary IS NOT NULL OR r.output_summary IS NOT NULL OR r.error IS NOT NULL);
    UPDATE farmops.ai_run_steps AS s SET input_summary = NULL, output_summary = NULL, tool_input = NULL
    WHERE s.farm_id = p_farm_id
        AND (s.input_summary IS NOT NULL OR s.output_summary IS NOT NULL OR s.tool_input IS NOT NULL);
    UPDATE farmops.ai_evals AS e SET details = farmops._eval_details_erased(e.details)
    WHERE e.farm_id = p_farm_id AND e.details IS DISTINCT FROM farmops._eval_details_erased(e.details);
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
'documents and vectors, clears every run''s summaries and steps'' texts and every eval''s matches and failure '
'messages, and renames it ''erased farm''; the ledger, the records '
'and the audit chain stay and still verify; audited. OF002 no such farm, OF310 runs in progress, OF311 a '
'product record table farmops may not rewrite (nothing erased), OF006.';
