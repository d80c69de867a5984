-- A run after its reservation: start it, then settle it with what it really cost.
-- Who may: the member who reserved it, or one holding drive_others_runs (20_credits/runs.sql).
-- Lock order (see 20_credits/reserve.sql): the farm row, then the run row.

CREATE OR REPLACE FUNCTION farmops.start_run(p_run_id uuid)
RETURNS farmops.ai_runs
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_farm uuid := farmops.require_capability('run_ai');
    v_run farmops.ai_runs := farmops._lock_run(v_farm, p_run_id, false, true);
BEGIN
    PERFORM farmops._assert_may_drive_run(v_run);
    IF v_run.status = 'expired' OR (v_run.status = 'reserved' AND v_run.expires_at <= now()) THEN
        RAISE EXCEPTION 'run % has expired', p_run_id USING ERRCODE = 'OF105';
    END IF;
    IF v_run.status = 'running' THEN
        RETURN v_run;  -- started already: a retried start is a no-op
    END IF;
    IF v_run.status <> 'reserved' THEN
        RAISE EXCEPTION 'run % is % and cannot start', p_run_id, v_run.status USING ERRCODE = 'OF103';
    END IF;
    UPDATE farmops.ai_runs AS r SET status = 'running'
    WHERE r.farm_id = v_farm AND r.id = p_run_id
    RETURNING r.* INTO v_run;
    RETURN v_run;
END
$fn$;
COMMENT ON FUNCTION farmops.start_run(uuid) IS
'reserved -> running for a run of the current farm (no-op if running). OF102 unknown, OF105 expired, '
'OF103 settled, OF003 another member''s run (owners and managers excepted).';

CREATE OR REPLACE FUNCTION farmops.settle_run(
    p_run_id uuid,
    p_status text,
    p_credits_actual integer DEFAULT NULL,
    p_input_tokens integer DEFAULT NULL,
    p_output_tokens integer DEFAULT NULL,
    p_latency_ms integer DEFAULT NULL,
    p_output_summary text DEFAULT NULL,
    p_error text DEFAULT NULL,
    p_cache_read_tokens integer DEFAULT NULL,
    p_cache_write_tokens integer DEFAULT NULL
)
RETURNS farmops.ai_runs
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_farm uuid := farmops.require_capability('run_ai');
    v_user text := farmops.current_user_id();
    v_output_summary text := farmops._text_argument(p_output_summary, 'output summary', 4000, 'verbatim', false);
    v_error text := farmops._text_argument(p_error, 'error', 4000, 'verbatim', false);
    v_run farmops.ai_runs;
    v_actual integer;
    v_old_balance integer;
    v_charged integer := 0;
    v_balance integer;
    v_seq bigint;  -- per-farm ledger seq (0052)
    v_price farmops.model_rates;
    v_cost bigint;
BEGIN
    PERFORM farmops._assert_given(p_run_id, 'run id');
    IF p_status IS NULL OR p_status NOT IN ('succeeded', 'failed') THEN
        RAISE EXCEPTION 'a run settles as succeeded or failed, not %', coalesce(p_status, 'NULL')
            USING ERRCODE = 'OF006';
    END IF;
    IF p_credits_actual < 0 OR p_input_tokens < 0 OR p_output_tokens < 0 OR p_latency_ms < 0
        OR p_cache_read_tokens < 0 OR p_cache_write_tokens < 0 THEN
        RAISE EXCEPTION 'credits, tokens and latency cannot be negative' USING ERRCODE = 'OF006';
    END IF;

    -- The farm row first, then the run row, as reserve, expire and grant take them: so a
    -- transaction that reserved (and holds the farm row) can settle a run that another
    -- settle is after, instead of deadlocking with it.
    PERFORM FROM farmops.farms AS f WHERE f.id = v_farm FOR NO KEY UPDATE;
    v_run := farmops._lock_run(v_farm, p_run_id, false, true);
    PERFORM farmops._assert_may_drive_run(v_run);
    IF v_run.status = 'expired' THEN
        RAISE EXCEPTION 'run % expired and its reservation was refunded', p_run_id USING ERRCODE = 'OF105';
    END IF;

    -- What the run cost: as given; else from the tokens at the rate in force when it was
    -- reserved (rounded up); a failed run that reports nothing costs nothing.
    IF p_credits_actual IS NOT NULL THEN
        v_actual := p_credits_actual;
    ELSIF num_nonnulls(p_input_tokens, p_output_tokens, p_cache_read_tokens, p_cache_write_tokens) > 0 THEN
        -- Prompt-cache tokens cost credits as input tokens (issue 14 §3).
        v_actual := farmops.credits_for_tokens(v_run.model, v_run.reserved_at,
            (coalesce(p_input_tokens, 0)::bigint + coalesce(p_cache_read_tokens, 0)
            + coalesce(p_cache_write_tokens, 0))::integer, p_output_tokens);
    ELSIF p_status = 'failed' THEN
        v_actual := 0;
    ELSE
        RAISE EXCEPTION 'a succeeded run must report credits_actual or its tokens' USING ERRCODE = 'OF006';
    END IF;

    IF v_run.status IN ('succeeded', 'failed') THEN
        IF (v_run.status, v_run.credits_actual, v_run.input_tokens, v_run.output_tokens, v_run.latency_ms,
            v_run.output_summary, v_run.error, v_run.cache_read_tokens, v_run.cache_write_tokens)
            IS NOT DISTINCT FROM
            (p_status, v_actual, p_input_tokens, p_output_tokens, p_latency_ms, v_output_summary, v_error,
            p_cache_read_tokens, p_cache_write_tokens) THEN
            RETURN v_run;  -- the same settle again: nothing to do
        END IF;
        RAISE EXCEPTION 'run % was already settled with different values', p_run_id USING ERRCODE = 'OF104';
    END IF;

    -- A live run past expires_at that the expirer has not claimed yet may still settle:
    -- we hold its farm and its row, so the expirer cannot refund it as well.
    IF v_actual < v_run.credits_reserved THEN
        WITH refund AS (
            UPDATE farmops.farms AS f
            SET credit_balance = f.credit_balance + (v_run.credits_reserved - v_actual),
                ledger_seq = f.ledger_seq + 1  -- per-farm ledger seq (0052)
            WHERE f.id = v_farm
            RETURNING f.id, f.credit_balance, f.ledger_seq
        )

        INSERT INTO farmops.credit_ledger (farm_id, seq, ai_run_id, kind, delta, balance_after, reason, actor)
        SELECT f.id, f.ledger_seq, p_run_id, 'settle_refund', v_run.credits_reserved - v_actual, f.credit_balance,
            'unused reservation', v_user
        FROM refund AS f;
    ELSIF v_actual > v_run.credits_reserved THEN
        -- Charge what remains available; the rest is recorded as the run's shortfall.
        SELECT f.credit_balance INTO v_old_balance FROM farmops.farms AS f WHERE f.id = v_farm;  -- held above
        v_charged := least(v_old_balance, v_actual - v_run.credits_reserved);
        IF v_charged > 0 THEN
            UPDATE farmops.farms AS f SET credit_balance = f.credit_balance - v_charged,
                ledger_seq = f.ledger_seq + 1  -- per-farm ledger seq (0052)
            WHERE f.id = v_farm
            RETURNING f.credit_balance, f.ledger_seq INTO v_balance, v_seq;
            INSERT INTO farmops.credit_ledger (farm_id, seq, ai_run_id, kind, delta, balance_after, reason, actor)
            VALUES (v_farm, v_seq, p_run_id, 'settle_charge', -v_charged, v_balance, 'cost above the reservation', v_user);
        END IF;
    END IF;

    -- The dollars (60_control/cost.sql): from the tokens at the price in force at
    -- reserved_at; without tokens, the most the charged credits can buy; a failed run
    -- that reports nothing costs nothing; NULL only for a run reserved before prices.
    v_price := farmops._model_price(v_run.model, v_run.reserved_at);
    IF v_price.model IS NOT NULL THEN
        IF num_nonnulls(p_input_tokens, p_output_tokens, p_cache_read_tokens, p_cache_write_tokens) > 0 THEN
            v_cost := farmops._cost_of(v_price, p_input_tokens, p_output_tokens, p_cache_read_tokens,
                p_cache_write_tokens);
        ELSIF v_actual = 0 THEN
            v_cost := 0;
        ELSE
            v_cost := farmops._money_bound(v_run.model, v_run.reserved_at, v_actual);
        END IF;
    END IF;
    -- Budgets: the run's holds give way to its cost (the farm row is held).
    PERFORM farmops._spend_on_budgets(v_farm, v_run.feature, v_run.reserved_at, coalesce(v_cost, 0), p_run_id);

    UPDATE farmops.ai_runs AS r
    SET status = p_status,
        credits_actual = v_actual,
        credits_shortfall = greatest(0, v_actual - v_run.credits_reserved - v_charged),
        input_tokens = p_input_tokens,
        output_tokens = p_output_tokens,
        cache_read_tokens = p_cache_read_tokens,
        cache_write_tokens = p_cache_write_tokens,
        cost_micro_usd = v_cost,
        latency_ms = p_latency_ms,
        output_summary = v_output_summary,
        error = v_error,
        settled_at = now()
    WHERE r.farm_id = v_farm AND r.id = p_run_id
    RETURNING r.* INTO v_run;
    RETURN v_run;
END
$fn$;
COMMENT ON FUNCTION farmops.settle_run(uuid, text, integer, integer, integer, integer, text, text, integer, integer) IS
'Settles a live run of the current farm as succeeded|failed: refunds the unused part, or charges the excess '
'up to the balance and records the shortfall; stores the dollar cost computed from the tokens (cache tokens '
'count as input credits) and releases its budget holds. Same values again: no-op; other values: OF104; expired: OF105; '
'another member''s run: OF003 (owners and managers excepted).';
