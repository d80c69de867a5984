-- The approval TTL of drafts, per farm: farms.draft_ttl (schema/0115), set by the owner, applied
-- by a trigger to every draft inserted without an expires_at (propose_write leaves it out).

CREATE OR REPLACE FUNCTION farmops.set_draft_ttl(p_ttl interval)
RETURNS interval
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_farm_id uuid := farmops.require_capability('set_autonomy');
    v_old interval;
BEGIN
    PERFORM farmops._assert_given(p_ttl, 'draft TTL');
    IF p_ttl < interval '5 minutes' OR p_ttl > interval '30 days' THEN
        RAISE EXCEPTION 'draft TTL must be between 5 minutes and 30 days, not %', p_ttl
            USING ERRCODE = 'OF006';
    END IF;
    SELECT f.draft_ttl INTO v_old FROM farmops.farms AS f WHERE f.id = v_farm_id FOR UPDATE;
    IF v_old IS DISTINCT FROM p_ttl THEN
        UPDATE farmops.farms AS f SET draft_ttl = p_ttl WHERE f.id = v_farm_id;
        -- The history of the farm's AI settings (autonomy_changes) keeps this change too; the
        -- next per-farm seq is read under the farm row lock taken above.
        INSERT INTO farmops.autonomy_changes (farm_id, seq, changed_by, old_settings, new_settings)
        VALUES (
            v_farm_id,
            (SELECT coalesce(max(c.seq), 0) + 1 FROM farmops.autonomy_changes AS c WHERE c.farm_id = v_farm_id),
            farmops.current_user_id(),
            jsonb_build_object('draft_ttl', v_old::text),
            jsonb_build_object('draft_ttl', p_ttl::text)
        );
    END IF;
    RETURN p_ttl;
END
$fn$;
COMMENT ON FUNCTION farmops.set_draft_ttl(interval) IS
'Farm owner only (set_autonomy; OF003 otherwise): how long the farm''s new drafts wait for a human, 5 minutes '
'to 30 days (OF006 otherwise or NULL); a change is appended to autonomy_changes. Returns the TTL.';

CREATE OR REPLACE FUNCTION farmops._fill_draft_expiry()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF NEW.expires_at IS NULL THEN
        NEW.expires_at := NEW.created_at + coalesce(
            (SELECT f.draft_ttl FROM farmops.farms AS f WHERE f.id = NEW.farm_id), interval '24 hours'
        );
    END IF;
    RETURN NEW;
END
$fn$;
COMMENT ON FUNCTION farmops._fill_draft_expiry() IS
'Private trigger function: a draft inserted without expires_at expires after its farm''s draft_ttl.';

-- ENABLE ALWAYS, like every farmops trigger (a replica session's insert gets its expiry too).
SELECT farmops._attach_always(
    'farmops.assistant_drafts', '_expire_after_their_farms_ttl', 'BEFORE INSERT', 'ROW',
    'farmops._fill_draft_expiry()'
);
