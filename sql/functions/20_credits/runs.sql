-- The run row's rules shared by every function that uses a run: find it in
-- this farm and lock it, check it is live, check who may drive it; and the
-- state guard that holds for every role.

CREATE OR REPLACE FUNCTION farmops._lock_run(
    p_farm_id uuid, p_run_id uuid, p_must_be_live boolean, p_for_update boolean DEFAULT false
)
RETURNS farmops.ai_runs
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_run farmops.ai_runs;
BEGIN
    PERFORM farmops._assert_given(p_run_id, 'run id');
    -- FOR SHARE (a proposal, a search): settling or expiring the run waits until this
    -- transaction ends. FOR UPDATE (start, settle): one driver at a time.
    IF p_for_update THEN
        SELECT r.* INTO v_run FROM farmops.ai_runs AS r WHERE r.farm_id = p_farm_id AND r.id = p_run_id FOR UPDATE;
    ELSE
        SELECT r.* INTO v_run FROM farmops.ai_runs AS r WHERE r.farm_id = p_farm_id AND r.id = p_run_id FOR SHARE;
    END IF;
    IF NOT FOUND THEN
        -- Same answer whether the run is another farm's or does not exist.
        RAISE EXCEPTION 'no AI run % in this farm', p_run_id USING ERRCODE = 'OF102';
    END IF;
    IF p_must_be_live AND (v_run.status NOT IN ('reserved', 'running') OR v_run.expires_at <= now()) THEN
        RAISE EXCEPTION 'AI run % is not live (status %, expires %)', p_run_id, v_run.status, v_run.expires_at
            USING ERRCODE = 'OF205';
    END IF;
    IF p_must_be_live AND v_run.approval = 'pending' THEN  -- held by a policy (60_control/approvals.sql)
        RAISE EXCEPTION 'AI run % awaits approval (policy %)', p_run_id, v_run.approval_rule USING ERRCODE = 'OF403';
    END IF;
    RETURN v_run;
END
$fn$;
COMMENT ON FUNCTION farmops._lock_run(uuid, uuid, boolean, boolean) IS
'Private: the run of this farm, share-locked (or locked for update); OF006 no id, OF102 if not in the farm, '
'OF205 if p_must_be_live and it is settled, expired or past expires_at.';

CREATE OR REPLACE FUNCTION farmops._assert_may_drive_run(p_run farmops.ai_runs)
RETURNS void
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    -- The settler declares what the run cost, so only the member who reserved it (or a
    -- member who may drive others' runs, cleaning up) may start or settle it: no worker
    -- or agent can under-bill somebody else's run.
    IF p_run.user_id IS DISTINCT FROM farmops.current_user_id() AND NOT farmops.has_capability('drive_others_runs') THEN
        RAISE EXCEPTION 'run % belongs to another member; only they, an owner or a manager may drive it', p_run.id
            USING ERRCODE = 'OF003';
    END IF;
END
$fn$;
COMMENT ON FUNCTION farmops._assert_may_drive_run(farmops.ai_runs) IS
'Private: raises OF003 unless the current member reserved the run or holds drive_others_runs.';

-- reserved -> running -> succeeded | failed | expired, whoever writes; the identity
-- and deadline of a run never change, its hold only grows (20_credits/extend.sql).
SELECT farmops._attach_forward_only(
    'farmops.ai_runs',
    'reserved>reserved reserved>running reserved>succeeded reserved>failed reserved>expired '
    'running>running running>succeeded running>failed running>expired',
    'farm_id,id,user_id,feature,model,request_id,reserved_at,expires_at'
);
