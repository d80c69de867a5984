-- Members' thumbs up/down on a run: one row per member per run, updatable.

CREATE OR REPLACE FUNCTION farmops.give_feedback(p_run_id uuid, p_thumbs_up boolean, p_comment text DEFAULT NULL)
RETURNS farmops.ai_feedback
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_farm_id uuid := farmops.require_capability('give_feedback');
    v_comment text := farmops._text_argument(p_comment, 'comment', 4000, 'text', false);
    v_row farmops.ai_feedback;
BEGIN
    PERFORM farmops._assert_given(p_thumbs_up, 'thumbs_up');
    PERFORM farmops._lock_run(v_farm_id, p_run_id, false);
    INSERT INTO farmops.ai_feedback AS f (farm_id, ai_run_id, user_id, thumbs_up, comment)
    VALUES (v_farm_id, p_run_id, farmops.current_user_id(), p_thumbs_up, v_comment)
    ON CONFLICT (farm_id, ai_run_id, user_id) DO UPDATE SET
        thumbs_up = excluded.thumbs_up, comment = excluded.comment, updated_at = now()
    RETURNING f.* INTO v_row;
    RETURN v_row;
END
$fn$;
COMMENT ON FUNCTION farmops.give_feedback(uuid, boolean, text) IS
'Human members (give_feedback: owner, manager, worker): thumbs up/down and an optional comment on a run of this farm '
'(OF102 otherwise); a second call by the same member replaces the first.';
