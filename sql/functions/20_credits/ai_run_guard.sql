-- The write path's check that a run belongs to the current farm (and, for
-- proposals, is still live), taking a share lock so that settling or expiring
-- the run waits until the proposal is committed or rolled back.

CREATE OR REPLACE FUNCTION farmops.lock_run_for_write(p_farm_id uuid, p_run_id uuid, p_must_be_live boolean)
RETURNS farmops.ai_runs
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_run farmops.ai_runs;
BEGIN
    IF p_run_id IS NULL THEN
        RAISE EXCEPTION 'run id is required' USING ERRCODE = 'OF006';
    END IF;
    SELECT r.* INTO v_run FROM farmops.ai_runs AS r
    WHERE r.farm_id = p_farm_id AND r.id = p_run_id
    FOR SHARE;
    IF NOT FOUND THEN
        -- Same answer whether the run is another farm's or does not exist.
        RAISE EXCEPTION 'no AI run % in this farm', p_run_id USING ERRCODE = 'OF102';
    END IF;
    IF p_must_be_live AND (v_run.status NOT IN ('reserved', 'running') OR v_run.expires_at <= now()) THEN
        RAISE EXCEPTION 'AI run % is not live (status %, expires %)', p_run_id, v_run.status, v_run.expires_at
            USING ERRCODE = 'OF205';
    END IF;
    RETURN v_run;
END
$fn$;
COMMENT ON FUNCTION farmops.lock_run_for_write(uuid, uuid, boolean) IS
'Private: the run of this farm, share-locked; OF102 if not in the farm, OF205 if p_must_be_live and it is '
'settled, expired or past expires_at.';
