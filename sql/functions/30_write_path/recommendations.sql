-- Non-mutating AI suggestions and a human's decision on them.

CREATE OR REPLACE FUNCTION farmops.recommend(p_run_id uuid, p_title text, p_body text)
RETURNS uuid
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_farm_id uuid := farmops.require_tenant(ARRAY['owner', 'manager', 'worker', 'agent']);
    v_id uuid;
BEGIN
    PERFORM farmops.lock_run_for_write(v_farm_id, p_run_id, true);
    IF p_title IS NULL OR char_length(btrim(p_title)) NOT BETWEEN 1 AND 200 OR p_title ~ '[[:cntrl:]]' THEN
        RAISE EXCEPTION 'title must be 1 to 200 printable characters' USING ERRCODE = 'OF006';
    END IF;
    IF p_body IS NULL OR char_length(btrim(p_body)) NOT BETWEEN 1 AND 8000
        OR p_body ~ '[\x01-\x08\x0b\x0c\x0e-\x1f\x7f]' THEN
        RAISE EXCEPTION 'body must be 1 to 8000 characters without control characters' USING ERRCODE = 'OF006';
    END IF;
    INSERT INTO farmops.ai_recommendations (farm_id, ai_run_id, title, body, created_by)
    VALUES (v_farm_id, p_run_id, btrim(p_title), btrim(p_body), farmops.current_user_id())
    RETURNING id INTO v_id;
    RETURN v_id;
END
$fn$;
COMMENT ON FUNCTION farmops.recommend(uuid, text, text) IS
'Any member but viewer (normally the agent), on a live run of this farm (OF102 / OF205): stores a pending '
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
    v_farm_id uuid := farmops.require_tenant(ARRAY['owner', 'manager', 'worker']);
    v_rec farmops.ai_recommendations;
BEGIN
    IF p_recommendation_id IS NULL OR p_approve IS NULL THEN
        RAISE EXCEPTION 'recommendation id and decision are required' USING ERRCODE = 'OF006';
    END IF;
    IF char_length(p_reason) > 1000 THEN
        RAISE EXCEPTION 'reason must be at most 1000 characters' USING ERRCODE = 'OF006';
    END IF;
    SELECT r.* INTO v_rec FROM farmops.ai_recommendations AS r
    WHERE r.farm_id = v_farm_id AND r.id = p_recommendation_id
    FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no recommendation % in this farm', p_recommendation_id USING ERRCODE = 'OF204';
    END IF;
    IF v_rec.status <> 'pending' THEN
        RAISE EXCEPTION 'recommendation % is already %', p_recommendation_id, v_rec.status USING ERRCODE = 'OF103';
    END IF;
    UPDATE farmops.ai_recommendations AS r SET
        status = CASE WHEN p_approve THEN 'approved' ELSE 'rejected' END,
        decided_by = farmops.current_user_id(), decided_at = now(), decision_reason = nullif(btrim(p_reason), '')
    WHERE r.farm_id = v_farm_id AND r.id = p_recommendation_id
    RETURNING r.* INTO v_rec;
    RETURN v_rec;
END
$fn$;
COMMENT ON FUNCTION farmops.decide_recommendation(uuid, boolean, text) IS
'Human members only (owner, manager, worker; OF003 for agent/viewer): approves or rejects a pending '
'recommendation. OF204 not in this farm; OF103 if already decided.';
