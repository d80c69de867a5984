-- Rule-based evaluation of an assistant output. Rules are rows of
-- ai_eval_rules; farmops.register_eval_rule() is the API to add more.

CREATE OR REPLACE FUNCTION farmops.register_eval_rule(
    p_name text,
    p_kind text,
    p_description text,
    p_pattern text DEFAULT NULL,
    p_severity text DEFAULT 'warn',
    p_enabled boolean DEFAULT true
)
RETURNS farmops.ai_eval_rules
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_description text;
    v_row farmops.ai_eval_rules;
BEGIN
    IF p_name IS NULL OR p_name !~ '^[a-z][a-z0-9_]{0,62}$' THEN
        RAISE EXCEPTION 'rule name must match ^[a-z][a-z0-9_]{0,62}$' USING ERRCODE = 'OF006';
    END IF;
    v_description := farmops._text_argument(p_description, 'description', 1000, 'text');
    IF p_kind IS NULL OR p_kind NOT IN ('payload_schema', 'regex_absent', 'regex_present') THEN
        RAISE EXCEPTION 'kind must be payload_schema, regex_absent or regex_present' USING ERRCODE = 'OF006';
    END IF;
    IF (p_kind = 'payload_schema') <> (p_pattern IS NULL) THEN
        RAISE EXCEPTION 'regex rules need a pattern; payload_schema rules take none' USING ERRCODE = 'OF006';
    END IF;
    IF p_pattern IS NOT NULL THEN
        BEGIN
            PERFORM '' ~* p_pattern;
        EXCEPTION WHEN invalid_regular_expression THEN
            RAISE EXCEPTION 'pattern is not a valid regular expression: %', SQLERRM USING ERRCODE = 'OF006';
        END;
    END IF;
    INSERT INTO farmops.ai_eval_rules AS r (name, kind, description, pattern, severity, enabled)
    VALUES (p_name, p_kind, v_description, p_pattern, coalesce(p_severity, 'warn'), coalesce(p_enabled, true))
    ON CONFLICT (name) DO UPDATE SET
        kind = excluded.kind, description = excluded.description, pattern = excluded.pattern,
        severity = excluded.severity, enabled = excluded.enabled
    RETURNING r.* INTO v_row;
    RETURN v_row;
END
$fn$;
COMMENT ON FUNCTION farmops.register_eval_rule(text, text, text, text, text, boolean) IS
'Package owner only (not granted to the app): adds or replaces an eval rule (payload_schema, regex_absent or '
'regex_present with a case-insensitive ARE pattern). OF006 for a bad name, kind or pattern.';

CREATE OR REPLACE FUNCTION farmops.evaluate_run(p_run_id uuid, p_output_text text)
RETURNS SETOF farmops.ai_evals
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_farm_id uuid := farmops.require_capability('run_ai');
    v_user text := farmops.current_user_id();
    v_rule farmops.ai_eval_rules;
    v_draft record;
    v_passed boolean;
    v_details jsonb;
    v_failures jsonb;
    v_checked integer;
    v_matches jsonb;
BEGIN
    PERFORM farmops._text_argument(p_output_text, 'output text', 1000000, 'verbatim');
    PERFORM farmops._lock_run(v_farm_id, p_run_id, false);
    FOR v_rule IN SELECT r.* FROM farmops.ai_eval_rules AS r WHERE r.enabled ORDER BY r.name LOOP
        IF v_rule.kind = 'payload_schema' THEN
            v_failures := '[]'::jsonb;
            v_checked := 0;
            FOR v_draft IN
                SELECT d.id, d.record_type, d.payload FROM farmops.assistant_drafts AS d
                WHERE d.farm_id = v_farm_id AND d.ai_run_id = p_run_id ORDER BY d.created_at, d.id
            LOOP
                v_checked := v_checked + 1;
                BEGIN
                    PERFORM farmops.validate_payload(v_draft.record_type, v_draft.payload);
                EXCEPTION WHEN SQLSTATE 'OF202' OR SQLSTATE 'OF203' THEN
                    v_failures := v_failures || jsonb_build_array(jsonb_build_object(
                        'draft_id', v_draft.id, 'sqlstate', SQLSTATE, 'message', SQLERRM
                    ));
                END;
            END LOOP;
            v_passed := jsonb_array_length(v_failures) = 0;
            v_details := jsonb_build_object('drafts_checked', v_checked, 'failures', v_failures);
        ELSE
            SELECT coalesce(jsonb_agg(left(m.hit[1], 200)), '[]'::jsonb) INTO v_matches
            FROM (
                SELECT regexp_matches(p_output_text, '(' || v_rule.pattern || ')', 'gi') AS hit LIMIT 5
            ) AS m;
            v_passed := CASE v_rule.kind
                WHEN 'regex_absent' THEN jsonb_array_length(v_matches) = 0
                ELSE jsonb_array_length(v_matches) > 0
            END;
            v_details := jsonb_build_object('matches', v_matches);
        END IF;
        RETURN QUERY
        INSERT INTO farmops.ai_evals AS e (farm_id, ai_run_id, rule_name, passed, severity, details, evaluated_by)
        VALUES (v_farm_id, p_run_id, v_rule.name, v_passed, v_rule.severity, v_details, v_user)
        RETURNING e.*;
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION farmops.evaluate_run(uuid, text) IS
'Any member but viewer: runs every enabled eval rule on a run of this farm (OF102 otherwise; settled runs are '
'fine) and its output text (OF006 if NULL or over 1,000,000 characters); stores and returns one ai_evals row per rule.';

-- Eval results are evidence: they only accumulate.
SELECT farmops._attach_append_only('farmops.ai_evals');
