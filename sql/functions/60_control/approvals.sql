-- Runs held by a require_approval rule at reserve: the credits are reserved (status
-- reserved, approval pending) but the run cannot start, retrieve or propose until an
-- owner or manager approves it. Rejecting refunds it (failed, cost 0); a run nobody
-- decides expires like any other and expire_reservations refunds it.

CREATE OR REPLACE FUNCTION farmops._guard_run_approval()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF (OLD.approval, OLD.approval_rule) IS DISTINCT FROM (NEW.approval, NEW.approval_rule)
        AND (OLD.approval = 'pending' AND NEW.approval IN ('approved', 'rejected')
            AND OLD.approval_rule IS NOT DISTINCT FROM NEW.approval_rule) IS NOT TRUE
        -- a money budget (60_control/budgets.sql) holds a run it just reserved
        AND (OLD.approval IS NULL AND NEW.approval = 'pending' AND NEW.approval_rule LIKE 'budget %'
            AND OLD.status = 'reserved' AND NEW.status = 'reserved') IS NOT TRUE THEN
        RAISE EXCEPTION 'run % approval cannot move from % to %', OLD.id, coalesce(OLD.approval, 'none'),
            coalesce(NEW.approval, 'none') USING ERRCODE = 'OF103';
    END IF;
    IF NEW.approval = 'pending' AND NEW.status NOT IN ('reserved', 'failed', 'expired') THEN
        RAISE EXCEPTION 'run % awaits approval (policy %): an owner or manager must approve it first', OLD.id,
            OLD.approval_rule USING ERRCODE = 'OF403';
    END IF;
    IF NEW.approval = 'rejected' AND NEW.status <> 'failed' THEN
        RAISE EXCEPTION 'run % was rejected', OLD.id USING ERRCODE = 'OF103';
    END IF;
    RETURN NEW;
END
$fn$;
COMMENT ON FUNCTION farmops._guard_run_approval() IS
'Trigger: a held run (approval pending) only stays reserved, fails (rejected or cancelled) or expires (OF403 on '
'start or a succeeded settle); approval moves pending -> approved | rejected only (OF103).';

-- Only runs that ever needed approval pay for the trigger (WHEN).
SELECT farmops._attach_always(
    'farmops.ai_runs', '_approval_holds', 'BEFORE UPDATE',
    'ROW WHEN (OLD.approval IS NOT NULL OR NEW.approval IS NOT NULL)', 'farmops._guard_run_approval()'
);

CREATE OR REPLACE FUNCTION farmops._lock_held_run(p_farm_id uuid, p_run_id uuid)
RETURNS farmops.ai_runs
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_run farmops.ai_runs;
BEGIN
    PERFORM farmops._assert_given(p_run_id, 'run id');
    SELECT r.* INTO v_run FROM farmops.ai_runs AS r WHERE r.farm_id = p_farm_id AND r.id = p_run_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no AI run % in this farm', p_run_id USING ERRCODE = 'OF102';
    END IF;
    IF v_run.status = 'expired' OR (v_run.status = 'reserved' AND v_run.expires_at <= now()) THEN
        RAISE EXCEPTION 'run % has expired', p_run_id USING ERRCODE = 'OF105';
    END IF;
    IF v_run.approval IS DISTINCT FROM 'pending' OR v_run.status <> 'reserved' THEN
        RAISE EXCEPTION 'run % is not awaiting approval (status %, approval %)', p_run_id, v_run.status,
            coalesce(v_run.approval, 'none') USING ERRCODE = 'OF103';
    END IF;
    RETURN v_run;
END
$fn$;
COMMENT ON FUNCTION farmops._lock_held_run(uuid, uuid) IS
'Private: the farm''s run awaiting approval, locked for update; OF102 not in the farm, OF105 expired, OF103 '
'not awaiting approval.';

CREATE OR REPLACE FUNCTION farmops.approve_run(p_run_id uuid)
RETURNS farmops.ai_runs
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_farm uuid := farmops.require_capability('approve_runs');
    v_user text := farmops.current_user_id();
    v_run farmops.ai_runs := farmops._lock_held_run(v_farm, p_run_id);
BEGIN
    -- A hold the requester could lift is no hold: somebody else approves.
    IF v_run.user_id = v_user THEN
        RAISE EXCEPTION 'run % was reserved by you: another owner or manager approves it', p_run_id
            USING ERRCODE = 'OF003';
    END IF;
    UPDATE farmops.ai_runs AS r
    SET approval = 'approved', approval_decided_by = v_user, approval_decided_at = now()
    WHERE r.farm_id = v_farm AND r.id = p_run_id
    RETURNING r.* INTO v_run;
    RETURN v_run;
END
$fn$;
COMMENT ON FUNCTION farmops.approve_run(uuid) IS
'Owner or manager (approve_runs), not the member who reserved it: lets a run held by a require_approval policy '
'start (within its original deadline). OF102, OF103 not awaiting approval, OF105 expired, OF003.';

CREATE OR REPLACE FUNCTION farmops.reject_run(p_run_id uuid, p_reason text DEFAULT NULL)
RETURNS farmops.ai_runs
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_farm uuid := farmops.require_capability('approve_runs');
    v_user text := farmops.current_user_id();
    v_reason text := farmops._text_argument(p_reason, 'reason', 1000, 'text', false);
    v_run farmops.ai_runs;
BEGIN
    -- Lock order (20_credits/reserve.sql): the farm row, then the run.
    PERFORM FROM farmops.farms AS f WHERE f.id = v_farm FOR NO KEY UPDATE;
    v_run := farmops._lock_held_run(v_farm, p_run_id);
    WITH refund AS (
        UPDATE farmops.farms AS f
        SET credit_balance = f.credit_balance + v_run.credits_reserved,
            ledger_seq = f.ledger_seq + 1
        WHERE f.id = v_farm
        RETURNING f.id, f.credit_balance, f.ledger_seq
    )

    INSERT INTO farmops.credit_ledger (farm_id, seq, ai_run_id, kind, delta, balance_after, reason, actor)
    SELECT f.id, f.ledger_seq, v_run.id, 'settle_refund', v_run.credits_reserved, f.credit_balance,
        'rejected at approval', v_user
    FROM refund AS f;
    PERFORM farmops._spend_on_budgets(v_farm, v_run.feature, v_run.reserved_at, 0, v_run.id);  -- budget holds go
    UPDATE farmops.ai_runs AS r
    SET status = 'failed', credits_actual = 0, settled_at = now(),
        -- who rejected is approval_decided_by (a person column erasure pseudonymises), never this text
        error = left('rejected at approval' || coalesce(': ' || v_reason, ''), 4000),
        approval = 'rejected', approval_decided_by = v_user, approval_decided_at = now()
    WHERE r.farm_id = v_farm AND r.id = p_run_id
    RETURNING r.* INTO v_run;
    RETURN v_run;
END
$fn$;
COMMENT ON FUNCTION farmops.reject_run(uuid, text) IS
'Owner or manager (approve_runs): refuses a run held for approval; it fails with cost 0 and its reservation is '
'refunded (settle_refund leg). OF102, OF103 not awaiting approval, OF105 expired, OF006.';
