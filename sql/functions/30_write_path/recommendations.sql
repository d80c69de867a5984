-- Non-mutating AI suggestions and a human's decision on them.

CREATE OR REPLACE FUNCTION farmops.recommend(p_run_id uuid, p_title text, p_body text)
RETURNS uuid
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_farm_id uuid := farmops.require_capability('run_ai');
    v_title text;
    v_body text;
    v_id uuid;
BEGIN
    PERFORM farmops._lock_run(v_farm_id, p_run_id, true);
    v_title := farmops._text_argument(p_title, 'title', 200);
    v_body := farmops._text_argument(p_body, 'body', 8000, 'text');
    INSERT INTO farmops.ai_recommendations (farm_id, ai_run_id, title, body, created_by)
    VALUES (v_farm_id, p_run_id, v_title, v_body, farmops.current_user_id())
    RETURNING id INTO v_id;
    RETURN v_id;
END
$fn$;
COMMENT ON FUNCTION farmops.recommend(uuid, text, text) IS
'Any member but viewer (run_ai; normally the agent), on a live run of this farm (OF102 / OF205): stores a pending '
'recommendation; returns its id. OF006 for an empty or oversized title/body.';

CREATE OR REPLACE FUNCTION farmops.decide_recommendation(
    p_recommendation_id uuid, p_approve boolean, p_reason text DEFAULT NULL
)
RETURNS farmops.ai_recommendations
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_farm_id uuid := farmops.require_capability('decide_recommendations');
    v_reason text := farmops._text_argument(p_reason, 'reason', 1000, 'text', false);
    v_rec farmops.ai_recommendations;
BEGIN
    PERFORM farmops._assert_given(p_recommendation_id, 'recommendation id');
    PERFORM farmops._assert_given(p_approve, 'decision');
    SELECT r.* INTO v_rec FROM farmops.ai_recommendations AS r
    WHERE r.farm_id = v_farm_id AND r.id = p_recommendation_id
    FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no recommendation % in this farm', p_recommendation_id USING ERRCODE = 'OF207';
    END IF;
    IF v_rec.status <> 'pending' THEN
        RAISE EXCEPTION 'recommendation % is already %', p_recommendation_id, v_rec.status USING ERRCODE = 'OF103';
    END IF;
    UPDATE farmops.ai_recommendations AS r SET
        status = CASE WHEN p_approve THEN 'approved' ELSE 'rejected' END,
        decided_by = farmops.current_user_id(), decided_at = now(), decision_reason = v_reason
    WHERE r.farm_id = v_farm_id AND r.id = p_recommendation_id
    RETURNING r.* INTO v_rec;
    RETURN v_rec;
END
$fn$;
COMMENT ON FUNCTION farmops.decide_recommendation(uuid, boolean, text) IS
'Human members only (decide_recommendations: owner, manager, worker; OF003 for agent/viewer): approves or '
'rejects a pending '
'recommendation. OF207 not in this farm; OF103 if already decided.';

-- Recommendations are created pending and decided once; what the AI said never changes
-- and no recommendation is ever deleted.
SELECT farmops._attach_forward_only(
    'farmops.ai_recommendations',
    '>pending pending>approved pending>rejected',
    'farm_id,id,ai_run_id,title,body,created_by,created_at'
);
