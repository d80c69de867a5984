-- Members' thumbs up/down on a run: one row per member per run, updatable.

CREATE OR REPLACE FUNCTION farmops.give_feedback(p_run_id uuid, p_thumbs_up boolean, p_comment text DEFAULT NULL)
RETURNS farmops.ai_feedback
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_farm_id uuid := farmops.require_tenant(ARRAY['owner', 'manager', 'worker']);
    v_row farmops.ai_feedback;
BEGIN
    IF p_thumbs_up IS NULL THEN
        RAISE EXCEPTION 'thumbs_up must be true or false' USING ERRCODE = 'OF006';
    END IF;
    IF char_length(p_comment) > 4000 OR p_comment ~ '[\x01-\x08\x0b\x0c\x0e-\x1f\x7f]' THEN
        RAISE EXCEPTION 'comment must be at most 4000 characters without control characters' USING ERRCODE = 'OF006';
    END IF;
    PERFORM farmops.lock_run_for_write(v_farm_id, p_run_id, false);
    INSERT INTO farmops.ai_feedback AS f (farm_id, ai_run_id, user_id, thumbs_up, comment)
    VALUES (v_farm_id, p_run_id, farmops.current_user_id(), p_thumbs_up, nullif(btrim(p_comment), ''))
    ON CONFLICT (farm_id, ai_run_id, user_id) DO UPDATE SET
        thumbs_up = excluded.thumbs_up, comment = excluded.comment, updated_at = now()
    RETURNING f.* INTO v_row;
    RETURN v_row;
END
$fn$;
COMMENT ON FUNCTION farmops.give_feedback(uuid, boolean, text) IS
'Human members (owner, manager, worker): thumbs up/down and an optional comment on a run of this farm '
'(OF102 otherwise); a second call by the same member replaces the first.';
