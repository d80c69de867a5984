-- The one rule for which PII kinds stay in a farm's text: the kinds its PII policy keeps,
-- minus every kind a matching `mask` policy rule keeps masked (60_control/policies.sql).
-- Text of one run (its summaries and error, its answer, feedback and evals on it) is
-- matched with that run's attributes (feature, model, credits, its member's role, the
-- hour and weekday now) against the reserve and propose_write rules; text not tied to one
-- run (documents, chunks, memories, the user's message before its run exists, and
-- redact_pii_for_farm) may serve any run, so every mask rule of the farm and the package
-- applies. A mask only ever masks more: it can never keep a kind the policy does not.
CREATE OR REPLACE FUNCTION farmops._pii_keep_kinds(p_farm_id uuid, p_run jsonb DEFAULT NULL)
RETURNS text[]
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_keep text[] := coalesce(
        (SELECT p.keep_kinds FROM farmops.farm_pii_policies AS p WHERE p.farm_id = p_farm_id), '{}'::text[]
    );
    v_masked text[];
    v_attributes jsonb;
BEGIN
    IF v_keep = '{}' OR (
        NOT EXISTS (SELECT FROM farmops.policies AS p WHERE p.farm_id = p_farm_id AND p.decision = 'mask')
        AND NOT EXISTS (SELECT FROM farmops.default_policies AS d WHERE d.decision = 'mask')
    ) THEN
        RETURN v_keep;  -- nothing kept, or no mask rule anywhere: the policy alone
    END IF;
    IF p_run IS NULL THEN
        SELECT coalesce(array_agg(DISTINCT k.kind), '{}') INTO v_masked
        FROM (
            SELECT p.masked_kinds FROM farmops.policies AS p WHERE p.farm_id = p_farm_id AND p.decision = 'mask'
            UNION ALL
            SELECT d.masked_kinds FROM farmops.default_policies AS d WHERE d.decision = 'mask'
        ) AS m
        CROSS JOIN LATERAL unnest(m.masked_kinds) AS k (kind);
    ELSE
        v_attributes := jsonb_strip_nulls(jsonb_build_object(
            'feature', p_run ->> 'feature', 'model', p_run ->> 'model',
            'credits', (p_run ->> 'credits_reserved')::bigint,
            'role', (
                SELECT m.role FROM farmops.farm_members AS m
                WHERE m.farm_id = p_farm_id AND m.user_id = p_run ->> 'user_id'
            )
        ));
        v_masked := farmops._policy_masked_kinds(p_farm_id, 'reserve', v_attributes)
            || farmops._policy_masked_kinds(p_farm_id, 'propose_write', v_attributes);
    END IF;
    RETURN ARRAY(SELECT k FROM unnest(v_keep) AS k WHERE NOT k = ANY (v_masked) ORDER BY k);
END
$fn$;
COMMENT ON FUNCTION farmops._pii_keep_kinds(uuid, jsonb) IS
'Private: the PII kinds a farm keeps in a text (empty: redact every kind): its PII policy''s kinds minus those a '
'matching mask policy rule keeps masked; p_run (the run row as jsonb) for a run''s text, NULL for text not tied '
'to one run (then every mask rule of the farm and the package applies).';

CREATE OR REPLACE FUNCTION farmops._pii_keep_kinds_of_run(p_farm_id uuid, p_run_id uuid)
RETURNS text[]
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT farmops._pii_keep_kinds(p_farm_id, (
        SELECT to_jsonb(r) FROM farmops.ai_runs AS r WHERE r.farm_id = p_farm_id AND r.id = p_run_id
    ))
$fn$;
COMMENT ON FUNCTION farmops._pii_keep_kinds_of_run(uuid, uuid) IS
'Private: _pii_keep_kinds for the text of one stored run (its answer, streamed or final; text tied to it).';
