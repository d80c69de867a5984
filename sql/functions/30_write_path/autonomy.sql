-- Autonomy resolution and the owner's settings. The rules, in order:
--   1. financial and destructive types -> 'draft', always (the hard floor: no
--      tier, allow-list or override changes it);
--   2. farm tier 'suggest' -> 'suggest' (the farm-wide brake);
--   3. a per-type override in ai_record_autonomy ('suggest' | 'draft' | 'auto')
--      replaces the tier for that type, but 'auto' still needs the type in
--      ai_auto_categories (otherwise 'draft');
--   4. tier 'auto' and the type in ai_auto_categories -> 'auto'; else 'draft'.

CREATE OR REPLACE FUNCTION farmops.resolve_autonomy_for(
    p_class text, p_record_type text, p_tier text, p_auto_categories jsonb, p_record_autonomy jsonb
)
RETURNS text
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT CASE
        WHEN p_class IS DISTINCT FROM 'routine' THEN 'draft'
        WHEN p_tier IS DISTINCT FROM 'draft' AND p_tier IS DISTINCT FROM 'auto' THEN 'suggest'
        WHEN p_record_autonomy ->> p_record_type IN ('suggest', 'draft') THEN p_record_autonomy ->> p_record_type
        WHEN (p_record_autonomy ->> p_record_type = 'auto' OR (p_tier = 'auto' AND NOT coalesce(p_record_autonomy ? p_record_type, false)))
            AND coalesce(p_auto_categories, '[]'::jsonb) @> jsonb_build_array(p_record_type) THEN 'auto'
        ELSE 'draft'
    END
$fn$;
COMMENT ON FUNCTION farmops.resolve_autonomy_for(text, text, text, jsonb, jsonb) IS
'Private, pure: the autonomy rules (see 30_write_path/autonomy.sql) for one type class and one farm''s settings. '
'Unknown classes and tiers fall to the safe side.';

CREATE OR REPLACE FUNCTION farmops.resolve_autonomy(p_record_type text)
RETURNS text
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_farm_id uuid := farmops.require_tenant();
    v_class text;
    v_farm farmops.farms;
BEGIN
    SELECT t.class INTO v_class FROM farmops.record_types AS t WHERE t.name = p_record_type;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown record type "%"', left(p_record_type, 100) USING ERRCODE = 'OF203';
    END IF;
    SELECT f.* INTO v_farm FROM farmops.farms AS f WHERE f.id = v_farm_id;
    RETURN farmops.resolve_autonomy_for(
        v_class, p_record_type, v_farm.ai_autonomy, v_farm.ai_auto_categories, v_farm.ai_record_autonomy
    );
END
$fn$;
COMMENT ON FUNCTION farmops.resolve_autonomy(text) IS
'For the current farm: suggest | draft | auto for this record type. Financial/destructive are always draft; '
'tier suggest -> suggest; per-type override within the floor; auto only for types in ai_auto_categories.';

CREATE OR REPLACE FUNCTION farmops.set_autonomy(
    p_tier text DEFAULT NULL, p_auto_categories jsonb DEFAULT NULL, p_record_autonomy jsonb DEFAULT NULL
)
RETURNS farmops.farms
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_farm_id uuid := farmops.require_capability('set_autonomy');
    v_old farmops.farms;
    v_new farmops.farms;
    v_bad text;
BEGIN
    IF p_tier IS NOT NULL AND p_tier NOT IN ('suggest', 'draft', 'auto') THEN
        RAISE EXCEPTION 'tier must be suggest, draft or auto' USING ERRCODE = 'OF006';
    END IF;
    IF p_auto_categories IS NOT NULL THEN
        IF jsonb_typeof(p_auto_categories) <> 'array' OR EXISTS (
            SELECT FROM jsonb_array_elements(p_auto_categories) AS e (v) WHERE jsonb_typeof(e.v) <> 'string'
        ) THEN
            RAISE EXCEPTION 'auto categories must be a JSON array of record type names' USING ERRCODE = 'OF006';
        END IF;
        SELECT e.v INTO v_bad FROM jsonb_array_elements_text(p_auto_categories) AS e (v)
        WHERE NOT EXISTS (SELECT FROM farmops.record_types AS t WHERE t.name = e.v) LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'unknown record type "%"', left(v_bad, 100) USING ERRCODE = 'OF203';
        END IF;
    END IF;
    IF p_record_autonomy IS NOT NULL THEN
        IF jsonb_typeof(p_record_autonomy) <> 'object' OR EXISTS (
            SELECT FROM jsonb_each(p_record_autonomy) AS e
            WHERE jsonb_typeof(e.value) <> 'string' OR e.value #>> '{}' NOT IN ('suggest', 'draft', 'auto')
        ) THEN
            RAISE EXCEPTION 'record autonomy must be a JSON object of record type -> suggest | draft | auto'
                USING ERRCODE = 'OF006';
        END IF;
        SELECT k INTO v_bad FROM jsonb_object_keys(p_record_autonomy) AS k
        WHERE NOT EXISTS (SELECT FROM farmops.record_types AS t WHERE t.name = k) LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'unknown record type "%"', left(v_bad, 100) USING ERRCODE = 'OF203';
        END IF;
    END IF;
    SELECT f.* INTO v_old FROM farmops.farms AS f WHERE f.id = v_farm_id FOR UPDATE;
    UPDATE farmops.farms AS f SET
        ai_autonomy = coalesce(p_tier, f.ai_autonomy),
        ai_auto_categories = coalesce(p_auto_categories, f.ai_auto_categories),
        ai_record_autonomy = coalesce(p_record_autonomy, f.ai_record_autonomy)
    WHERE f.id = v_farm_id
    RETURNING f.* INTO v_new;
    IF (v_old.ai_autonomy, v_old.ai_auto_categories, v_old.ai_record_autonomy)
        IS DISTINCT FROM (v_new.ai_autonomy, v_new.ai_auto_categories, v_new.ai_record_autonomy) THEN
        -- The next per-farm seq: read under the farm row lock taken above, so no
        -- concurrent change of this farm can take the same number.
        INSERT INTO farmops.autonomy_changes (farm_id, seq, changed_by, old_settings, new_settings)
        VALUES (
            v_farm_id,
            (SELECT coalesce(max(c.seq), 0) + 1 FROM farmops.autonomy_changes AS c WHERE c.farm_id = v_farm_id),
            farmops.current_user_id(),
            jsonb_build_object('ai_autonomy', v_old.ai_autonomy, 'ai_auto_categories', v_old.ai_auto_categories,
                'ai_record_autonomy', v_old.ai_record_autonomy),
            jsonb_build_object('ai_autonomy', v_new.ai_autonomy, 'ai_auto_categories', v_new.ai_auto_categories,
                'ai_record_autonomy', v_new.ai_record_autonomy)
        );
    END IF;
    RETURN v_new;
END
$fn$;
COMMENT ON FUNCTION farmops.set_autonomy(text, jsonb, jsonb) IS
'Farm owner only (set_autonomy; OF003 otherwise): sets the tier, the auto allow-list and/or per-type '
'overrides (NULL = unchanged); '
'every effective change is appended to autonomy_changes. Storing a financial type in the allow-list is '
'allowed but has no effect: resolution keeps the floor.';

-- Every change of the settings is kept: the history only grows.
SELECT farmops._attach_append_only('farmops.autonomy_changes');
