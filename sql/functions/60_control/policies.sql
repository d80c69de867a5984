-- The policy engine (issue 14 §1): rules as rows, evaluated in SQL inside the
-- reservation (_control_reserve, rate_limits.sql) and propose_write
-- (_policy_write_autonomy). A rule has a subject (the action, and optionally
-- feature, model, record type, member role or capability), conditions over the
-- request's attributes, and a decision. The farm's rules come first (by rank,
-- then name), then the package-wide defaults; the first matching allow, deny or
-- require_approval decides; none matching = allow. mask rules decide nothing: every
-- matching one adds its PII kinds to keep masked. Rules are read in the statement
-- that uses them: a change counts from the next transaction, no reload, no cache.
-- The autonomy floor stays beneath: a policy can only make a write stricter.
--
-- Attributes (jsonb): feature, model, role, record_type (text: eq, in); credits,
-- tokens, hour (0-23) and weekday (ISO: 1 Monday .. 7 Sunday) in the farm's time
-- zone, and payload.<key> (numbers: eq, in, gte, lte, between).

CREATE OR REPLACE FUNCTION farmops._policy_conditions_error(p_conditions jsonb)
RETURNS text
LANGUAGE plpgsql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_item jsonb;
    v_attribute text;
    v_op text;
    v_value jsonb;
    v_text_attribute boolean;
BEGIN
    IF p_conditions IS NULL OR jsonb_typeof(p_conditions) <> 'array' THEN
        RETURN 'conditions must be a JSON array of {attribute, op, value}';
    END IF;
    IF jsonb_array_length(p_conditions) > 20 THEN
        RETURN 'at most 20 conditions per rule';
    END IF;
    FOR v_item IN SELECT e.value FROM jsonb_array_elements(p_conditions) AS e LOOP
        IF jsonb_typeof(v_item) <> 'object'
            OR EXISTS (SELECT FROM jsonb_object_keys(v_item) AS k WHERE k NOT IN ('attribute', 'op', 'value'))
            OR NOT v_item ?& ARRAY['attribute', 'op', 'value'] THEN
            RETURN 'each condition is an object with exactly attribute, op and value';
        END IF;
        v_attribute := v_item ->> 'attribute';
        v_op := v_item ->> 'op';
        v_value := v_item -> 'value';
        v_text_attribute := v_attribute IN ('feature', 'model', 'role', 'record_type');
        IF jsonb_typeof(v_item -> 'attribute') <> 'string' OR NOT (
            v_text_attribute OR v_attribute IN ('credits', 'tokens', 'hour', 'weekday')
            OR v_attribute ~ '^payload\.[a-z][a-z0-9_]{0,62}$'
        ) THEN
            RETURN format('unknown attribute %s (feature, model, role, record_type, credits, tokens, hour, weekday, '
                'payload.<key>)', left(coalesce(v_item ->> 'attribute', 'null'), 80));
        END IF;
        IF v_op IS NULL OR v_op NOT IN ('eq', 'in', 'gte', 'lte', 'between') THEN
            RETURN format('unknown op %s (eq, in, gte, lte, between)', left(coalesce(v_op, 'null'), 80));
        END IF;
        IF v_text_attribute AND v_op NOT IN ('eq', 'in') THEN
            RETURN format('%s is text: use eq or in', v_attribute);
        END IF;
        IF v_op = 'eq' AND jsonb_typeof(v_value) NOT IN ('string', 'number') THEN
            RETURN format('eq on %s takes a string or a number', v_attribute);
        ELSIF v_op = 'in' AND (
            jsonb_typeof(v_value) <> 'array' OR jsonb_array_length(v_value) NOT BETWEEN 1 AND 100
            OR EXISTS (SELECT FROM jsonb_array_elements(v_value) AS e WHERE jsonb_typeof(e.value) NOT IN ('string', 'number'))
        ) THEN
            RETURN format('in on %s takes an array of 1 to 100 strings or numbers', v_attribute);
        ELSIF v_op IN ('gte', 'lte') AND jsonb_typeof(v_value) <> 'number' THEN
            RETURN format('%s on %s takes a number', v_op, v_attribute);
        ELSIF v_op = 'between' AND (
            jsonb_typeof(v_value) <> 'array' OR jsonb_array_length(v_value) <> 2
            OR jsonb_typeof(v_value -> 0) <> 'number' OR jsonb_typeof(v_value -> 1) <> 'number'
            OR (v_value ->> 0)::numeric > (v_value ->> 1)::numeric
        ) THEN
            RETURN format('between on %s takes [low, high], two numbers, low <= high', v_attribute);
        END IF;
        IF octet_length(v_value::text) > 4000 THEN
            RETURN 'a condition''s value must be at most 4000 bytes';
        END IF;
    END LOOP;
    RETURN NULL;
END
$fn$;
COMMENT ON FUNCTION farmops._policy_conditions_error(jsonb) IS
'Private: why a rule''s conditions are malformed (a sentence), or NULL when they are valid.';

CREATE OR REPLACE FUNCTION farmops._policy_conditions_hold(p_conditions jsonb, p_attributes jsonb)
RETURNS boolean
LANGUAGE plpgsql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_item jsonb;
    v_attribute text;
    v_actual jsonb;
    v_value jsonb;
BEGIN
    -- Every condition must hold; a missing attribute (or one of the wrong type) fails it.
    FOR v_item IN SELECT e.value FROM jsonb_array_elements(p_conditions) AS e LOOP
        v_attribute := v_item ->> 'attribute';
        v_value := v_item -> 'value';
        IF v_attribute LIKE 'payload.%' THEN
            v_actual := p_attributes -> 'payload' -> substr(v_attribute, 9);
        ELSE
            v_actual := p_attributes -> v_attribute;
        END IF;
        IF v_actual IS NULL OR jsonb_typeof(v_actual) NOT IN ('string', 'number') THEN
            RETURN false;
        END IF;
        CASE v_item ->> 'op'
            WHEN 'eq' THEN
                CONTINUE WHEN v_actual = v_value;
            WHEN 'in' THEN
                CONTINUE WHEN v_value @> jsonb_build_array(v_actual);
            ELSE
                IF jsonb_typeof(v_actual) = 'number' THEN
                    CONTINUE WHEN v_item ->> 'op' = 'gte' AND v_actual::numeric >= v_value::numeric;
                    CONTINUE WHEN v_item ->> 'op' = 'lte' AND v_actual::numeric <= v_value::numeric;
                    CONTINUE WHEN v_item ->> 'op' = 'between'
                    AND v_actual::numeric BETWEEN (v_value -> 0)::numeric AND (v_value -> 1)::numeric;
                END IF;
        END CASE;
        RETURN false;
    END LOOP;
    RETURN true;
END
$fn$;
COMMENT ON FUNCTION farmops._policy_conditions_hold(jsonb, jsonb) IS
'Private: true when every condition holds for the attributes (a missing or mistyped attribute fails it).';

CREATE OR REPLACE FUNCTION farmops._policy_sentence(
    p_action text, p_feature text, p_model text, p_record_type text, p_member_role text, p_capability text,
    p_conditions jsonb, p_decision text, p_masked_kinds text[]
)
RETURNS text
LANGUAGE plpgsql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    -- PL/pgSQL, not SQL: its plan is cached (a SQL function with SET is planned per call).
    RETURN CASE p_decision
            WHEN 'require_approval' THEN 'hold for approval'
            WHEN 'mask' THEN 'keep ' || array_to_string(p_masked_kinds, ', ') || ' masked in'
            ELSE p_decision
        END
        || ' ' || p_action
        || coalesce(
            ' when ' || nullif(concat_ws(' and ',
                'feature = ' || p_feature,
                'model = ' || p_model,
                'record_type = ' || p_record_type,
                'role = ' || p_member_role,
                'the role holds ' || p_capability,
                (
                    SELECT string_agg(
                        (c.value ->> 'attribute') || ' '
                        || CASE c.value ->> 'op'
                            WHEN 'eq' THEN '= ' || (c.value ->> 'value')
                            WHEN 'in' THEN 'in ' || (c.value -> 'value')::text
                            WHEN 'gte' THEN '>= ' || (c.value ->> 'value')
                            WHEN 'lte' THEN '<= ' || (c.value ->> 'value')
                            ELSE 'between ' || (c.value -> 'value' ->> 0) || ' and ' || (c.value -> 'value' ->> 1)
                        END,
                        ' and ' ORDER BY c.ordinality
                    )
                    FROM jsonb_array_elements(p_conditions) WITH ORDINALITY AS c (value, ordinality)
                )
            ), ''),
            ' (always)'
        );
END
$fn$;
COMMENT ON FUNCTION farmops._policy_sentence(text, text, text, text, text, text, jsonb, text, text[]) IS
'Private: a rule as one English sentence (what the listing and explain_policy show).';

CREATE OR REPLACE FUNCTION farmops._matching_policies(p_farm_id uuid, p_action text, p_attributes jsonb)
RETURNS TABLE (
    source text, name text, rank integer, decision text, masked_kinds text[], feature text, model text,
    record_type text, member_role text, capability text, conditions jsonb
)
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    SELECT r.source, r.name, r.rank, r.decision, r.masked_kinds, r.feature, r.model, r.record_type,
        r.member_role, r.capability, r.conditions
    FROM (
        SELECT 1 AS tier, 'farm' AS source, p.name, p.rank, p.decision, p.masked_kinds, p.feature, p.model,
            p.record_type, p.member_role, p.capability, p.conditions
        FROM farmops.policies AS p
        WHERE p.farm_id = p_farm_id AND p.action = p_action
        UNION ALL
        SELECT 2, 'package', d.name, d.rank, d.decision, d.masked_kinds, d.feature, d.model,
            d.record_type, d.member_role, d.capability, d.conditions
        FROM farmops.default_policies AS d
        WHERE d.action = p_action
    ) AS r
    WHERE (r.feature IS NULL OR r.feature = p_attributes ->> 'feature')
        AND (r.model IS NULL OR r.model = p_attributes ->> 'model')
        AND (r.record_type IS NULL OR r.record_type = p_attributes ->> 'record_type')
        AND (r.member_role IS NULL OR r.member_role = p_attributes ->> 'role')
        AND (r.capability IS NULL OR EXISTS (
            SELECT FROM farmops.role_capabilities AS c
            WHERE c.role = p_attributes ->> 'role' AND c.capability = r.capability
        ))
        AND farmops._policy_conditions_hold(r.conditions, p_attributes)
    ORDER BY r.tier, r.rank, r.name;
END
$fn$;
COMMENT ON FUNCTION farmops._matching_policies(uuid, text, jsonb) IS
'Private: every rule of the farm, then of the package, whose subject and conditions match, in evaluation order.';

CREATE OR REPLACE FUNCTION farmops._policy_attributes(p_farm_id uuid, p_attributes jsonb, p_at timestamptz DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_local timestamp;
BEGIN
    -- The clock attributes, read in the farm's time zone (the caller's own values win:
    -- explain_policy may ask about another hour).
    SELECT coalesce(p_at, now()) AT TIME ZONE f.time_zone INTO v_local FROM farmops.farms AS f WHERE f.id = p_farm_id;
    RETURN jsonb_build_object(
        'hour', extract(HOUR FROM v_local)::integer, 'weekday', extract(ISODOW FROM v_local)::integer
    ) || coalesce(p_attributes, '{}'::jsonb);
END
$fn$;
COMMENT ON FUNCTION farmops._policy_attributes(uuid, jsonb, timestamptz) IS
'Private: the attributes with hour and weekday of p_at (default now) in the farm''s time zone added.';

CREATE OR REPLACE FUNCTION farmops._policy_decision(p_farm_id uuid, p_action text, p_attributes jsonb)
RETURNS TABLE (decision text, rule_name text, rule_source text, rule_rank integer, explanation text)
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_rule record;
BEGIN
    -- The rules whose subject matches, in order; conditions are evaluated one rule at a
    -- time and the first decisive match ends the search (this runs in every reservation).
    FOR v_rule IN
        SELECT r.source, r.name, r.rank, r.decision, r.masked_kinds, r.feature, r.model, r.record_type,
            r.member_role, r.capability, r.conditions
        FROM (
            SELECT 1 AS tier, 'farm' AS source, p.name, p.rank, p.decision, p.masked_kinds, p.feature, p.model,
                p.record_type, p.member_role, p.capability, p.conditions
            FROM farmops.policies AS p
            WHERE p.farm_id = p_farm_id AND p.action = p_action AND p.decision <> 'mask'
            UNION ALL
            SELECT 2, 'package', d.name, d.rank, d.decision, d.masked_kinds, d.feature, d.model,
                d.record_type, d.member_role, d.capability, d.conditions
            FROM farmops.default_policies AS d
            WHERE d.action = p_action AND d.decision <> 'mask'
        ) AS r
        WHERE (r.feature IS NULL OR r.feature = p_attributes ->> 'feature')
            AND (r.model IS NULL OR r.model = p_attributes ->> 'model')
            AND (r.record_type IS NULL OR r.record_type = p_attributes ->> 'record_type')
            AND (r.member_role IS NULL OR r.member_role = p_attributes ->> 'role')
            AND (r.capability IS NULL OR EXISTS (
                SELECT FROM farmops.role_capabilities AS c
                WHERE c.role = p_attributes ->> 'role' AND c.capability = r.capability
            ))
        ORDER BY r.tier, r.rank, r.name
    LOOP
        CONTINUE WHEN v_rule.conditions <> '[]'::jsonb
        AND NOT farmops._policy_conditions_hold(v_rule.conditions, p_attributes);
        decision := v_rule.decision;
        rule_name := v_rule.name;
        rule_source := v_rule.source;
        rule_rank := v_rule.rank;
        -- The sentence only for the rule that decides.
        explanation := farmops._policy_sentence(p_action, v_rule.feature, v_rule.model, v_rule.record_type,
            v_rule.member_role, v_rule.capability, v_rule.conditions, v_rule.decision, v_rule.masked_kinds);
        RETURN NEXT;
        RETURN;
    END LOOP;
    decision := 'allow';
    rule_source := 'default';
    explanation := 'no rule matches: allowed (the documented default)';
    RETURN NEXT;
END
$fn$;
COMMENT ON FUNCTION farmops._policy_decision(uuid, text, jsonb) IS
'Private: the first matching allow / deny / require_approval rule, or the default (allow) when none matches.';

CREATE OR REPLACE FUNCTION farmops._policy_masked_kinds(
    p_farm_id uuid, p_action text DEFAULT 'reserve', p_attributes jsonb DEFAULT '{}'::jsonb
)
RETURNS text[]
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    RETURN (
    SELECT coalesce(array_agg(DISTINCT k.kind ORDER BY k.kind), '{}')
    FROM farmops._matching_policies(
        p_farm_id, p_action, farmops._policy_attributes(p_farm_id, p_attributes)
    ) AS m
    CROSS JOIN LATERAL unnest(m.masked_kinds) AS k (kind)
    WHERE m.decision = 'mask'
    );
END
$fn$;
COMMENT ON FUNCTION farmops._policy_masked_kinds(uuid, text, jsonb) IS
'Private (for the PII guard): the PII kinds every matching mask rule keeps masked, sorted; {} when none. '
'p_attributes as for explain_policy (feature, model, role ...); hour and weekday are added.';

CREATE OR REPLACE FUNCTION farmops._assert_policy_allows(
    p_what text, p_decision text, p_rule_name text, p_rule_source text, p_explanation text
)
RETURNS void
LANGUAGE plpgsql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF p_decision = 'deny' THEN
        RAISE EXCEPTION '% refused by policy %', p_what, p_rule_name
            USING ERRCODE = 'OF401',
            DETAIL = format('rule=%s source=%s: %s', p_rule_name, p_rule_source, p_explanation),
            HINT = 'farmops.explain_policy() shows which rule decides a request.';
    END IF;
END
$fn$;
COMMENT ON FUNCTION farmops._assert_policy_allows(text, text, text, text, text) IS
'Private: OF401 naming the rule (DETAIL rule=<name> source=<farm|package>: <sentence>) when the decision is deny.';

CREATE OR REPLACE FUNCTION farmops._policy_write_autonomy(
    p_farm_id uuid, p_run_id uuid, p_record_type text, p_payload jsonb, p_autonomy text
)
RETURNS text
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_run record;
    v_decision record;
BEGIN
    -- propose_write's rules: deny refuses (OF401), require_approval makes an auto write a
    -- draft. Nothing here lowers the floor: suggest and draft come back unchanged.
    IF NOT EXISTS (SELECT FROM farmops.policies AS p WHERE p.farm_id = p_farm_id AND p.action = 'propose_write')
        AND NOT EXISTS (SELECT FROM farmops.default_policies AS d WHERE d.action = 'propose_write') THEN
        RETURN p_autonomy;
    END IF;
    SELECT r.feature, r.model, r.credits_reserved INTO v_run
    FROM farmops.ai_runs AS r WHERE r.farm_id = p_farm_id AND r.id = p_run_id;
    SELECT d.* INTO v_decision FROM farmops._policy_decision(p_farm_id, 'propose_write', farmops._policy_attributes(
        p_farm_id, jsonb_build_object(
            'feature', v_run.feature, 'model', v_run.model, 'credits', v_run.credits_reserved,
            'role', farmops.current_member_role(), 'record_type', p_record_type, 'payload', p_payload
        )
    )) AS d;
    PERFORM farmops._assert_policy_allows(format('writing %s', p_record_type), v_decision.decision,
        v_decision.rule_name, v_decision.rule_source, v_decision.explanation);
    IF v_decision.decision = 'require_approval' AND p_autonomy = 'auto' THEN
        RETURN 'draft';
    END IF;
    RETURN p_autonomy;
END
$fn$;
COMMENT ON FUNCTION farmops._policy_write_autonomy(uuid, uuid, text, jsonb, text) IS
'Private (propose_write): the autonomy after the farm''s propose_write rules: OF401 on deny, draft instead of '
'auto on require_approval, otherwise unchanged (never lower than the floor).';
