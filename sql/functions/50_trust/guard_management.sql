-- Owners manage their farm's guard rules and allow rules (capability manage_trust).
-- Global rules are the package owner's (farmops_owner writes farmops.guard_rules); a farm
-- relaxes one of them with an allow rule, never by editing it.

CREATE OR REPLACE FUNCTION farmops._assert_guard_pattern(p_pattern text, p_what text)
RETURNS text
LANGUAGE plpgsql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_pattern text := farmops._text_argument(p_pattern, p_what, 4000, 'verbatim');
BEGIN
    IF char_length(v_pattern) = 0 OR NOT farmops._is_valid_regex(v_pattern) THEN
        RAISE EXCEPTION '% is not a usable PostgreSQL regular expression (no back references, no embedded '
            'options such as (?i))', p_what
            USING ERRCODE = 'OF306';
    END IF;
    RETURN v_pattern;
END
$fn$;
COMMENT ON FUNCTION farmops._assert_guard_pattern(text, text) IS
'Private: the pattern, or OF306 when it does not compile as one branch of an ARE alternation (OF006 NULL, '
'over 4000 characters).';

CREATE OR REPLACE FUNCTION farmops._guard_identifier(p_value text, p_what text)
RETURNS text
LANGUAGE plpgsql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_value text := farmops._text_argument(p_value, p_what, 63);
BEGIN
    IF v_value !~ '^[a-z][a-z0-9_]{0,62}$' THEN
        RAISE EXCEPTION '% must be a lower-case identifier ([a-z][a-z0-9_]*)', p_what USING ERRCODE = 'OF006';
    END IF;
    RETURN v_value;
END
$fn$;
COMMENT ON FUNCTION farmops._guard_identifier(text, text) IS
'Private: a rule name or category (lower-case identifier, 1-63 characters) or OF006.';

CREATE OR REPLACE FUNCTION farmops.set_guard_rule(
    p_name text,
    p_category text,
    p_stages text[],
    p_pattern text,
    p_action text DEFAULT 'block',
    p_enabled boolean DEFAULT true
)
RETURNS uuid
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_farm uuid := farmops.require_capability('manage_trust');
    v_name text := farmops._guard_identifier(p_name, 'rule name');
    v_category text := farmops._guard_identifier(p_category, 'category');
    v_pattern text := farmops._assert_guard_pattern(p_pattern, 'pattern');
    v_stages text[];
    v_id uuid;
BEGIN
    PERFORM farmops._assert_given(p_stages, 'stages');
    PERFORM farmops._assert_given(p_enabled, 'enabled');
    IF cardinality(p_stages) = 0 OR NOT p_stages <@ ARRAY['input', 'retrieved', 'output']
        OR array_position(p_stages, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'stages must be one or more of input, retrieved, output' USING ERRCODE = 'OF006';
    END IF;
    IF p_action IS NULL OR p_action NOT IN ('block', 'flag') THEN
        RAISE EXCEPTION 'action must be block or flag' USING ERRCODE = 'OF006';
    END IF;
    -- An allow rule names a rule by name: one name, one rule.
    IF EXISTS (SELECT FROM farmops.guard_rules AS g WHERE g.name = v_name) THEN
        RAISE EXCEPTION 'a global guard rule is named %: choose another name', v_name USING ERRCODE = 'OF006';
    END IF;
    v_stages := ARRAY(SELECT DISTINCT s FROM unnest(p_stages) AS s ORDER BY s);
    INSERT INTO farmops.farm_guard_rules AS r (farm_id, name, category, stages, pattern, action, enabled, created_by)
    VALUES (v_farm, v_name, v_category, v_stages, v_pattern, p_action, p_enabled, farmops.current_user_id())
    ON CONFLICT (farm_id, name) DO UPDATE
    SET category = excluded.category, stages = excluded.stages, pattern = excluded.pattern,
        action = excluded.action, enabled = excluded.enabled
    RETURNING r.id INTO v_id;
    RETURN v_id;
END
$fn$;
COMMENT ON FUNCTION farmops.set_guard_rule(text, text, text[], text, text, boolean) IS
'Owner only (manage_trust): adds or replaces (by name) a guard rule of the current farm, applied by check_text '
'with the global rules in this farm''s context; returns its id. OF306 pattern not a usable regex, OF006 bad '
'name, category, stages, action or a name a global rule has, OF003 not an owner.';

CREATE OR REPLACE FUNCTION farmops.enable_guard_rule(p_name text, p_enabled boolean)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_farm uuid := farmops.require_capability('manage_trust');
    v_name text := farmops._text_argument(p_name, 'rule name', 63);
BEGIN
    PERFORM farmops._assert_given(p_enabled, 'enabled');
    UPDATE farmops.farm_guard_rules AS r SET enabled = p_enabled WHERE r.farm_id = v_farm AND r.name = v_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no guard rule % in this farm', v_name USING ERRCODE = 'OF307';
    END IF;
END
$fn$;
COMMENT ON FUNCTION farmops.enable_guard_rule(text, boolean) IS
'Owner only (manage_trust): switches one of the current farm''s guard rules on or off. OF307 no such rule.';

CREATE OR REPLACE FUNCTION farmops.drop_guard_rule(p_name text)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_farm uuid := farmops.require_capability('manage_trust');
    v_name text := farmops._text_argument(p_name, 'rule name', 63);
BEGIN
    DELETE FROM farmops.farm_guard_rules AS r WHERE r.farm_id = v_farm AND r.name = v_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no guard rule % in this farm', v_name USING ERRCODE = 'OF307';
    END IF;
END
$fn$;
COMMENT ON FUNCTION farmops.drop_guard_rule(text) IS
'Owner only (manage_trust): deletes one of the current farm''s guard rules (its allow rules stay, inert). '
'OF307 no such rule.';

CREATE OR REPLACE FUNCTION farmops.allow_guard_match(
    p_pattern text, p_reason text, p_category text DEFAULT NULL, p_rule_name text DEFAULT NULL
)
RETURNS uuid
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_farm uuid := farmops.require_capability('manage_trust');
    v_pattern text := farmops._assert_guard_pattern(p_pattern, 'pattern');
    v_reason text := farmops._text_argument(p_reason, 'reason', 1000, 'text');
    v_category text := farmops._text_argument(p_category, 'category', 63, 'line', false);
    v_rule text := farmops._text_argument(p_rule_name, 'rule name', 63, 'line', false);
    v_id uuid;
BEGIN
    IF (v_category IS NULL) = (v_rule IS NULL) THEN
        RAISE EXCEPTION 'name exactly one of a category or a rule name' USING ERRCODE = 'OF006';
    END IF;
    IF v_rule IS NOT NULL AND NOT EXISTS (
        SELECT FROM farmops.guard_rules AS g WHERE g.name = v_rule
        UNION ALL
        SELECT FROM farmops.farm_guard_rules AS f WHERE f.farm_id = v_farm AND f.name = v_rule
    ) THEN
        RAISE EXCEPTION 'no guard rule % (global or this farm''s)', v_rule USING ERRCODE = 'OF307';
    END IF;
    IF v_category IS NOT NULL AND NOT EXISTS (
        SELECT FROM farmops.guard_rules AS g WHERE g.category = v_category
        UNION ALL
        SELECT FROM farmops.farm_guard_rules AS f WHERE f.farm_id = v_farm AND f.category = v_category
    ) THEN
        RAISE EXCEPTION 'no guard rule has the category %', v_category USING ERRCODE = 'OF307';
    END IF;
    INSERT INTO farmops.guard_allow_rules AS a (farm_id, category, rule_name, pattern, reason, created_by)
    VALUES (v_farm, v_category, v_rule, v_pattern, v_reason, farmops.current_user_id())
    RETURNING a.id INTO v_id;
    RETURN v_id;
END
$fn$;
COMMENT ON FUNCTION farmops.allow_guard_match(text, text, text, text) IS
'Owner only (manage_trust): an allow rule for a false positive of the current farm: matches of p_pattern are '
'blanked out before the named category''s (or rule''s) patterns run. Returns its id. OF306 pattern not a usable '
'regex, OF307 no such rule or category, OF006 neither or both named, no reason, OF003 not an owner.';

CREATE OR REPLACE FUNCTION farmops.drop_guard_allow(p_allow_id uuid)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_farm uuid := farmops.require_capability('manage_trust');
BEGIN
    PERFORM farmops._assert_given(p_allow_id, 'allow rule id');
    DELETE FROM farmops.guard_allow_rules AS a WHERE a.farm_id = v_farm AND a.id = p_allow_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no allow rule % in this farm', p_allow_id USING ERRCODE = 'OF307';
    END IF;
END
$fn$;
COMMENT ON FUNCTION farmops.drop_guard_allow(uuid) IS
'Owner only (manage_trust): deletes one of the current farm''s allow rules. OF307 no such allow rule.';
