-- Managing and reading the policy rules (the engine: policies.sql).

-- Managing rules: owners (manage_policies) for their farm; the package owner for the defaults.

CREATE OR REPLACE FUNCTION farmops._policy_arguments_error(
    p_action text, p_decision text, p_record_type text, p_capability text, p_conditions jsonb,
    p_masked_kinds text[]
)
RETURNS text
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF p_action IS NULL OR p_action NOT IN ('reserve', 'propose_write') THEN
        RETURN 'action must be reserve or propose_write';
    ELSIF p_decision IS NULL OR p_decision NOT IN ('allow', 'deny', 'require_approval', 'mask') THEN
        RETURN 'decision must be allow, deny, require_approval or mask';
    ELSIF p_record_type IS NOT NULL AND p_action <> 'propose_write' THEN
        RETURN 'a record type applies to propose_write rules only';
    ELSIF p_capability IS NOT NULL AND NOT EXISTS (
        SELECT FROM farmops.role_capabilities AS c WHERE c.capability = p_capability
    ) THEN
        RETURN format('unknown capability %s', left(p_capability, 80));
    ELSIF (p_decision = 'mask') <> (coalesce(cardinality(p_masked_kinds), 0) > 0) THEN
        RETURN 'a mask rule names 1 or more PII kinds to keep masked, and only a mask rule does';
    ELSIF cardinality(p_masked_kinds) > 20 OR EXISTS (
        SELECT FROM unnest(p_masked_kinds) AS k (kind) WHERE k.kind IS NULL OR k.kind !~ '^[a-z][a-z0-9_]{0,62}$'
    ) THEN
        RETURN 'masked kinds are 1 to 20 lower-case names such as email or phone';
    END IF;
    RETURN farmops._policy_conditions_error(p_conditions);
END
$fn$;
COMMENT ON FUNCTION farmops._policy_arguments_error(text, text, text, text, jsonb, text[]) IS
'Private: why a rule''s arguments are invalid (a sentence), or NULL.';

CREATE OR REPLACE FUNCTION farmops.set_policy(
    p_name text,
    p_action text,
    p_decision text,
    p_rank integer DEFAULT 100,
    p_feature text DEFAULT NULL,
    p_model text DEFAULT NULL,
    p_record_type text DEFAULT NULL,
    p_member_role text DEFAULT NULL,
    p_capability text DEFAULT NULL,
    p_conditions jsonb DEFAULT '[]'::jsonb,
    p_masked_kinds text[] DEFAULT NULL,
    p_description text DEFAULT NULL
)
RETURNS farmops.policies
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_farm uuid := farmops.require_capability('manage_policies');
    v_name text := lower(farmops._text_argument(p_name, 'policy name', 63));
    v_feature text := farmops._text_argument(p_feature, 'feature', 100, 'line', false);
    v_model text := farmops._text_argument(p_model, 'model', 200, 'line', false);
    v_record_type text := farmops._text_argument(p_record_type, 'record type', 100, 'line', false);
    v_role text := farmops._text_argument(p_member_role, 'member role', 20, 'line', false);
    v_capability text := farmops._text_argument(p_capability, 'capability', 63, 'line', false);
    v_description text := farmops._text_argument(p_description, 'description', 1000, 'text', false);
    v_conditions jsonb := coalesce(p_conditions, '[]'::jsonb);
    v_error text;
    v_policy farmops.policies;
BEGIN
    PERFORM farmops._assert_in_range(p_rank, 'rank', 1, 10000);
    IF v_name !~ '^[a-z0-9][a-z0-9_.-]{0,62}$' THEN
        RAISE EXCEPTION 'policy name must be 1 to 63 of a-z 0-9 _ . - (starting with a letter or digit)'
            USING ERRCODE = 'OF006';
    END IF;
    IF v_role IS NOT NULL AND NOT EXISTS (SELECT FROM farmops.role_capabilities AS c WHERE c.role = v_role) THEN
        RAISE EXCEPTION 'unknown member role %', v_role USING ERRCODE = 'OF006';
    END IF;
    v_error := farmops._policy_arguments_error(p_action, p_decision, v_record_type, v_capability, v_conditions,
        p_masked_kinds);
    IF v_error IS NOT NULL THEN
        RAISE EXCEPTION '%', v_error USING ERRCODE = 'OF006';
    END IF;
    -- Every reservation reads the farm's rules: a bounded list.
    IF (SELECT count(*) FROM farmops.policies AS p WHERE p.farm_id = v_farm AND p.name <> v_name) >= 100 THEN
        RAISE EXCEPTION 'a farm has at most 100 policy rules' USING ERRCODE = 'OF006';
    END IF;
    INSERT INTO farmops.policies AS p (
        farm_id, name, rank, action, feature, model, record_type, member_role, capability, conditions,
        decision, masked_kinds, description, updated_by, updated_at
    ) VALUES (
        v_farm, v_name, p_rank, p_action, v_feature, v_model, v_record_type, v_role, v_capability,
        v_conditions, p_decision, p_masked_kinds, v_description, farmops.current_user_id(), now()
    )
    ON CONFLICT (farm_id, name) DO UPDATE SET
        rank = excluded.rank, action = excluded.action, feature = excluded.feature,
        model = excluded.model, record_type = excluded.record_type, member_role = excluded.member_role,
        capability = excluded.capability, conditions = excluded.conditions, decision = excluded.decision,
        masked_kinds = excluded.masked_kinds, description = excluded.description,
        updated_by = excluded.updated_by, updated_at = excluded.updated_at
    RETURNING p.* INTO v_policy;
    RETURN v_policy;
END
$fn$;
COMMENT ON FUNCTION farmops.set_policy(
    text, text, text, integer, text, text, text, text, text, jsonb, text[], text
) IS
'Owner (manage_policies): creates or replaces the current farm''s rule p_name. Subject: p_action (reserve | '
'propose_write) and optional feature, model, record type, member role, capability; p_conditions a JSON array '
'of {attribute, op, value}; p_decision allow | deny | require_approval | mask (mask with p_masked_kinds). '
'Counts from the next transaction. OF003 for other roles, OF006 bad rule.';

CREATE OR REPLACE FUNCTION farmops.drop_policy(p_name text)
RETURNS farmops.policies
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_farm uuid := farmops.require_capability('manage_policies');
    v_name text := lower(farmops._text_argument(p_name, 'policy name', 63));
    v_policy farmops.policies;
BEGIN
    DELETE FROM farmops.policies AS p WHERE p.farm_id = v_farm AND p.name = v_name RETURNING p.* INTO v_policy;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no policy % in this farm', v_name USING ERRCODE = 'OF404';
    END IF;
    RETURN v_policy;
END
$fn$;
COMMENT ON FUNCTION farmops.drop_policy(text) IS
'Owner (manage_policies): removes the current farm''s rule p_name and returns it; OF404 if there is none.';

CREATE OR REPLACE FUNCTION farmops.set_default_policy(
    p_name text,
    p_action text,
    p_decision text,
    p_rank integer DEFAULT 100,
    p_feature text DEFAULT NULL,
    p_model text DEFAULT NULL,
    p_record_type text DEFAULT NULL,
    p_member_role text DEFAULT NULL,
    p_capability text DEFAULT NULL,
    p_conditions jsonb DEFAULT '[]'::jsonb,
    p_masked_kinds text[] DEFAULT NULL,
    p_description text DEFAULT NULL
)
RETURNS farmops.default_policies
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_name text := lower(farmops._text_argument(p_name, 'policy name', 63));
    v_conditions jsonb := coalesce(p_conditions, '[]'::jsonb);
    v_error text;
    v_policy farmops.default_policies;
BEGIN
    PERFORM farmops._assert_in_range(p_rank, 'rank', 1, 10000);
    IF v_name !~ '^[a-z0-9][a-z0-9_.-]{0,62}$' THEN
        RAISE EXCEPTION 'policy name must be 1 to 63 of a-z 0-9 _ . - (starting with a letter or digit)'
            USING ERRCODE = 'OF006';
    END IF;
    IF p_member_role IS NOT NULL AND NOT EXISTS (
        SELECT FROM farmops.role_capabilities AS c WHERE c.role = p_member_role
    ) THEN
        RAISE EXCEPTION 'unknown member role %', left(p_member_role, 80) USING ERRCODE = 'OF006';
    END IF;
    v_error := farmops._policy_arguments_error(p_action, p_decision, p_record_type, p_capability, v_conditions,
        p_masked_kinds);
    IF v_error IS NOT NULL THEN
        RAISE EXCEPTION '%', v_error USING ERRCODE = 'OF006';
    END IF;
    INSERT INTO farmops.default_policies AS p (
        name, rank, action, feature, model, record_type, member_role, capability, conditions,
        decision, masked_kinds, description, updated_by, updated_at
    ) VALUES (
        v_name, p_rank, p_action,
        farmops._text_argument(p_feature, 'feature', 100, 'line', false),
        farmops._text_argument(p_model, 'model', 200, 'line', false),
        farmops._text_argument(p_record_type, 'record type', 100, 'line', false),
        p_member_role,
        farmops._text_argument(p_capability, 'capability', 63, 'line', false),
        v_conditions, p_decision, p_masked_kinds,
        farmops._text_argument(p_description, 'description', 1000, 'text', false), current_user, now()
    )
    ON CONFLICT (name) DO UPDATE SET
        rank = excluded.rank, action = excluded.action, feature = excluded.feature,
        model = excluded.model, record_type = excluded.record_type, member_role = excluded.member_role,
        capability = excluded.capability, conditions = excluded.conditions, decision = excluded.decision,
        masked_kinds = excluded.masked_kinds, description = excluded.description,
        updated_by = excluded.updated_by, updated_at = excluded.updated_at
    RETURNING p.* INTO v_policy;
    RETURN v_policy;
END
$fn$;
COMMENT ON FUNCTION farmops.set_default_policy(
    text, text, text, integer, text, text, text, text, text, jsonb, text[], text
) IS
'Package owner only: creates or replaces a package-wide rule (evaluated after every farm''s own rules); '
'arguments as set_policy. OF006 bad rule; 42501 for the application.';

CREATE OR REPLACE FUNCTION farmops.drop_default_policy(p_name text)
RETURNS farmops.default_policies
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_policy farmops.default_policies;
BEGIN
    DELETE FROM farmops.default_policies AS p WHERE p.name = lower(btrim(p_name)) RETURNING p.* INTO v_policy;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no package-wide policy %', left(coalesce(p_name, 'NULL'), 80) USING ERRCODE = 'OF404';
    END IF;
    RETURN v_policy;
END
$fn$;
COMMENT ON FUNCTION farmops.drop_default_policy(text) IS
'Package owner only: removes a package-wide rule and returns it; OF404 if there is none.';

CREATE OR REPLACE FUNCTION farmops.policies()
RETURNS TABLE (
    source text, rank integer, name text, action text, decision text, feature text, model text,
    record_type text, member_role text, capability text, conditions jsonb, masked_kinds text[],
    description text, explanation text, updated_by text, updated_at timestamptz
)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_column
DECLARE
    v_farm uuid := farmops.require_capability('read');
BEGIN
    RETURN QUERY
    SELECT r.source, r.rank, r.name, r.action, r.decision, r.feature, r.model, r.record_type,
        r.member_role, r.capability, r.conditions, r.masked_kinds, r.description,
        farmops._policy_sentence(r.action, r.feature, r.model, r.record_type, r.member_role, r.capability,
            r.conditions, r.decision, r.masked_kinds),
        r.updated_by, r.updated_at
    FROM (
        SELECT 1 AS tier, 'farm'::text AS source, p.name, p.rank, p.action, p.feature, p.model,
            p.record_type, p.member_role, p.capability, p.conditions, p.decision, p.masked_kinds,
            p.description, p.updated_by, p.updated_at
        FROM farmops.policies AS p
        WHERE p.farm_id = v_farm
        UNION ALL
        SELECT 2, 'package', d.name, d.rank, d.action, d.feature, d.model, d.record_type, d.member_role,
            d.capability, d.conditions, d.decision, d.masked_kinds, d.description, d.updated_by, d.updated_at
        FROM farmops.default_policies AS d
    ) AS r
    ORDER BY r.action, r.tier, r.rank, r.name;
END
$fn$;
COMMENT ON FUNCTION farmops.policies() IS
'Any member (read): the rules that apply to the current farm, in evaluation order per action (the farm''s, '
'then the package''s), each with an English explanation. OF001 without a tenant context.';

CREATE OR REPLACE FUNCTION farmops.explain_policy(p_action text, p_attributes jsonb DEFAULT '{}'::jsonb)
RETURNS TABLE (
    decision text, rule_name text, rule_source text, rule_rank integer, explanation text,
    masked_kinds text[], attributes jsonb
)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_farm uuid := farmops.require_capability('read');
    v_at timestamptz;
    v_attributes jsonb;
BEGIN
    IF p_action IS NULL OR p_action NOT IN ('reserve', 'propose_write') THEN
        RAISE EXCEPTION 'action must be reserve or propose_write' USING ERRCODE = 'OF006';
    END IF;
    IF p_attributes IS NOT NULL AND jsonb_typeof(p_attributes) <> 'object' THEN
        RAISE EXCEPTION 'attributes must be a JSON object' USING ERRCODE = 'OF006';
    END IF;
    IF octet_length(p_attributes::text) > 100000 THEN
        RAISE EXCEPTION 'attributes must be at most 100000 bytes' USING ERRCODE = 'OF006';
    END IF;
    -- "at": the instant to explain (hour and weekday in the farm's time zone), default now.
    BEGIN
        v_at := (p_attributes ->> 'at')::timestamptz;
    EXCEPTION WHEN data_exception THEN
        RAISE EXCEPTION 'at must be a timestamp with time zone' USING ERRCODE = 'OF006';
    END;
    v_attributes := farmops._policy_attributes(v_farm,
        jsonb_build_object('role', farmops.current_member_role()) || (coalesce(p_attributes, '{}'::jsonb) - 'at'),
        v_at);
    RETURN QUERY
    SELECT d.decision, d.rule_name, d.rule_source, d.rule_rank, d.explanation,
        farmops._policy_masked_kinds(v_farm, p_action, v_attributes), v_attributes
    FROM farmops._policy_decision(v_farm, p_action, v_attributes) AS d;
END
$fn$;
COMMENT ON FUNCTION farmops.explain_policy(text, jsonb) IS
'Any member (read): the decision the current farm''s rules give for p_action with p_attributes (feature, model, '
'role (default: yours), credits, tokens, record_type, payload, at), the rule that made it and the kinds kept '
'masked: "why was this refused", before or after the fact. OF006 bad action or attributes.';
