-- The backstop for crashed workers: runs still live past expires_at are expired
-- and their reservation refunded, exactly once, with any number of expirers.

CREATE OR REPLACE FUNCTION farmops.expire_reservations(p_max_runs integer DEFAULT 10000)
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_run record;
    v_locked_farm uuid;
    v_count integer := 0;
BEGIN
    -- A maintenance job: no tenant context needed, so it counts across farms and is
    -- executable by farmops_maintainer only (policies/090_grants.sql). It only touches runs that are live
    -- and past their deadline, and only refunds what each of them reserved.
    PERFORM farmops._assert_login_allowed();
    PERFORM farmops._assert_in_range(p_max_runs, 'max runs', 1, 2147483647);
    -- Lock order (20_credits/reserve.sql): each farm row, then its runs; farms in id
    -- order, so concurrent expirers take them in the same order. A run another
    -- transaction holds (start, propose_write, search_for_run) is skipped (SKIP LOCKED)
    -- and the next expiry takes it; the status is re-checked on the newest row version,
    -- so a run settled meanwhile is left alone.
    FOR v_run IN
        SELECT r.farm_id, r.id, r.credits_reserved, r.feature, r.reserved_at
        FROM farmops.ai_runs AS r
        WHERE r.status IN ('reserved', 'running') AND r.expires_at < now()
        ORDER BY r.farm_id, r.id
        LIMIT p_max_runs
    LOOP
        IF v_locked_farm IS DISTINCT FROM v_run.farm_id THEN
            PERFORM FROM farmops.farms AS f WHERE f.id = v_run.farm_id FOR NO KEY UPDATE;
            v_locked_farm := v_run.farm_id;
        END IF;
        PERFORM FROM farmops.ai_runs AS r
        WHERE r.farm_id = v_run.farm_id AND r.id = v_run.id
            AND r.status IN ('reserved', 'running') AND r.expires_at < now()
        FOR UPDATE SKIP LOCKED;
        CONTINUE WHEN NOT FOUND;

        WITH refund AS (
            UPDATE farmops.farms AS f
            SET credit_balance = f.credit_balance + v_run.credits_reserved,
                ledger_seq = f.ledger_seq + 1  -- per-farm ledger seq (0052)
            WHERE f.id = v_run.farm_id
            RETURNING f.id, f.credit_balance, f.ledger_seq
        ),

        closed AS (
            UPDATE farmops.ai_runs AS r
            SET status = 'expired', settled_at = now()
            WHERE r.farm_id = v_run.farm_id AND r.id = v_run.id
        )

        INSERT INTO farmops.credit_ledger (farm_id, seq, ai_run_id, kind, delta, balance_after, reason, actor)
        SELECT f.id, f.ledger_seq, v_run.id, 'expire_refund', v_run.credits_reserved, f.credit_balance,
            'reservation expired before settle', 'farmops.expire_reservations'
        FROM refund AS f;
        PERFORM farmops._spend_on_budgets(v_run.farm_id, v_run.feature, v_run.reserved_at, 0, v_run.id);
        v_count := v_count + 1;
    END LOOP;
    RETURN v_count;
END
$fn$;
COMMENT ON FUNCTION farmops.expire_reservations(integer) IS
'Maintenance job (farmops_maintainer; no tenant needed): expires up to p_max_runs live runs past expires_at '
'and refunds each reservation exactly once; safe to run from many workers at once. Returns how many it expired.';
