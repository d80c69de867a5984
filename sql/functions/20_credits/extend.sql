-- Right-sized reservations: a run reserves one model call's upper bound, and before
-- each further call the client grows the same run's hold (issue 16 §1). The hold is
-- ai_runs.credits_reserved (reservation plus extensions, credits_extended of them), so
-- settle refunds the unused part and expiry refunds it all, as for any run.
--
-- Lock order (see 20_credits/reserve.sql): the run row, then the farm row LAST, held
-- only for the conditional debit, the ledger leg and the commit, as a reservation holds
-- it. The run row is this member's own live run: only a concurrent settle of the same
-- run (farm, then run) could wait on it the other way round, and the expiry job skips
-- runs it cannot lock (SKIP LOCKED).

CREATE OR REPLACE FUNCTION farmops._guard_hold_only_grows()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF new.credits_reserved IS DISTINCT FROM old.credits_reserved
        OR new.credits_extended IS DISTINCT FROM old.credits_extended THEN
        IF old.status NOT IN ('reserved', 'running')
            OR new.credits_reserved < old.credits_reserved
            OR new.credits_extended - old.credits_extended <> new.credits_reserved - old.credits_reserved THEN
            RAISE EXCEPTION 'the hold of ai run % only grows, by extensions, while the run is live', old.id
                USING ERRCODE = 'OF103';
        END IF;
    END IF;
    RETURN new;
END
$fn$;
COMMENT ON FUNCTION farmops._guard_hold_only_grows() IS
'Trigger: a run''s hold (credits_reserved) changes only by growing while the run is live, and each credit '
'added is counted in credits_extended (OF103 otherwise), whoever writes.';

SELECT farmops._attach_always(
    'farmops.ai_runs', '_hold_only_grows', 'BEFORE UPDATE', 'ROW', 'farmops._guard_hold_only_grows()'
);

CREATE OR REPLACE FUNCTION farmops.extend_reservation(
    p_run_id uuid,
    p_credits integer DEFAULT NULL,
    p_cover_input_tokens integer DEFAULT NULL,
    p_cover_output_tokens integer DEFAULT NULL
)
RETURNS farmops.ai_runs
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_farm uuid := farmops.require_capability('run_ai');
    v_run farmops.ai_runs;
    v_add bigint;
    v_made farmops.ai_runs;
BEGIN
    PERFORM farmops._assert_given(p_run_id, 'run id');
    IF p_credits IS NOT NULL THEN
        PERFORM farmops._assert_in_range(p_credits, 'credits to add', 1, 2147483647);
        IF p_cover_input_tokens IS NOT NULL OR p_cover_output_tokens IS NOT NULL THEN
            RAISE EXCEPTION 'give either credits or token bounds to cover, not both' USING ERRCODE = 'OF006';
        END IF;
    ELSIF p_cover_input_tokens IS NULL AND p_cover_output_tokens IS NULL THEN
        RAISE EXCEPTION 'give credits to add or token bounds to cover' USING ERRCODE = 'OF006';
    ELSE
        -- One of the two may be left out (NULL counts as 0, as in credits_for_tokens).
        PERFORM farmops._assert_in_range(coalesce(p_cover_input_tokens, 0), 'input tokens to cover', 0, 2147483647);
        PERFORM farmops._assert_in_range(coalesce(p_cover_output_tokens, 0), 'output tokens to cover', 0, 2147483647);
    END IF;

    v_run := farmops._lock_run(v_farm, p_run_id, false, true);  -- OF102; one extension at a time
    PERFORM farmops._assert_may_drive_run(v_run);
    IF v_run.status = 'expired' OR (v_run.status IN ('reserved', 'running') AND v_run.expires_at <= now()) THEN
        RAISE EXCEPTION 'run % has expired', p_run_id USING ERRCODE = 'OF105';
    END IF;
    IF v_run.status NOT IN ('reserved', 'running') THEN
        RAISE EXCEPTION 'run % is % and its hold cannot grow', p_run_id, v_run.status USING ERRCODE = 'OF103';
    END IF;

    IF p_credits IS NOT NULL THEN
        v_add := p_credits;
    ELSE
        -- Token bounds for the whole run so far, priced as settle will price the run's
        -- tokens (the rate in force when it was reserved): the hold grows to cover them.
        -- Idempotent: a retried call finds them covered and adds nothing.
        v_add := greatest(0, farmops.credits_for_tokens(
            v_run.model, v_run.reserved_at, coalesce(p_cover_input_tokens, 0), coalesce(p_cover_output_tokens, 0)
        ) - v_run.credits_reserved);
        IF v_add = 0 THEN
            RETURN v_run;
        END IF;
    END IF;
    IF v_run.credits_reserved + v_add > 2147483647 THEN
        RAISE EXCEPTION 'a run cannot hold more than 2147483647 credits' USING ERRCODE = 'OF006';
    END IF;

    PERFORM farmops._count_extension_tokens(v_farm, v_run.user_id, v_run.model, v_add);  -- 60_control: token limits
    -- The same conditional debit as a reservation, the farm row last: the hold grows only
    -- if the balance pays for it, with its ledger leg, in one statement.
    WITH debit AS (
        UPDATE farmops.farms AS f
        SET credit_balance = f.credit_balance - v_add::integer,
            ledger_seq = f.ledger_seq + 1  -- per-farm ledger seq (0052)
        WHERE f.id = v_farm AND f.credit_balance >= v_add
        RETURNING f.credit_balance, f.ledger_seq
    ),

    grown AS (
        UPDATE farmops.ai_runs AS r
        SET credits_reserved = r.credits_reserved + v_add::integer,
            credits_extended = r.credits_extended + v_add::integer
        WHERE r.farm_id = v_farm AND r.id = p_run_id AND EXISTS (SELECT FROM debit)
        RETURNING r.*
    ),

    leg AS (
        INSERT INTO farmops.credit_ledger AS l (farm_id, seq, ai_run_id, kind, delta, balance_after, reason, actor)
        SELECT g.farm_id, d.ledger_seq, g.id, 'extend', -v_add::integer, d.credit_balance, 'reservation extended',
            farmops.current_user_id()
        FROM grown AS g CROSS JOIN debit AS d
    )

    SELECT g.* INTO v_made FROM grown AS g;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'not enough credits to extend run % by %', p_run_id, v_add USING ERRCODE = 'OF101',
            HINT = 'Settle the run with what it did so far; its hold is unchanged.';
    END IF;
    PERFORM farmops._hold_budget(v_made, v_run.credits_reserved);  -- money budgets grow with the hold (OF411)
    RETURN v_made;
END
$fn$;
COMMENT ON FUNCTION farmops.extend_reservation(uuid, integer, integer, integer) IS
'Grows the hold of a live run of the current farm (its own member, or drive_others_runs), with the same '
'conditional debit as a reservation and an ''extend'' ledger leg: by p_credits, or up to the price of the token '
'bounds p_cover_input_tokens/p_cover_output_tokens for the whole run at its reservation''s rate (a no-op when '
'covered, so a retry adds nothing). OF101 not enough credits (nothing written), OF102, OF103 settled, OF105 '
'expired, OF003, OF006.';
