-- Reserving credits before a model call: one conditional statement takes the
-- credits, records the run and its 'reserve' ledger leg, or does nothing at all.

CREATE OR REPLACE FUNCTION farmops._reserve_credits_step(
    p_farm_id uuid,
    p_user_id text,
    p_feature text,
    p_model text,
    p_credits integer,
    p_request_id text,
    p_ttl interval,
    p_input_summary text
)
RETURNS farmops.ai_runs
LANGUAGE sql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
    -- The UPDATE takes the farm row lock and re-checks the balance after waiting for
    -- it, so concurrent callers can never both spend the same credit. If it matches
    -- no row, the two INSERTs read nothing from it and insert nothing.
    WITH debit AS (
        UPDATE farmops.farms AS f
        SET credit_balance = f.credit_balance - p_credits,
            ledger_seq = f.ledger_seq + 1  -- per-farm ledger seq (0052)
        WHERE f.id = p_farm_id AND f.credit_balance >= p_credits
        RETURNING f.id, f.credit_balance, f.ledger_seq
    ),

    run AS (
        INSERT INTO farmops.ai_runs AS r (
            farm_id, user_id, feature, model, credits_reserved, request_id, input_summary, expires_at
        )
        SELECT d.id, p_user_id, p_feature, p_model, p_credits, p_request_id, p_input_summary, now() + p_ttl
        FROM debit AS d
        RETURNING r.*
    ),

    leg AS (
        INSERT INTO farmops.credit_ledger (farm_id, seq, ai_run_id, kind, delta, balance_after, reason, actor)
        SELECT r.farm_id, d.ledger_seq, r.id, 'reserve', -r.credits_reserved, d.credit_balance, r.feature, r.user_id
        FROM run AS r CROSS JOIN debit AS d
    )

    SELECT r.* FROM run AS r
$fn$;
COMMENT ON FUNCTION farmops._reserve_credits_step(uuid, text, text, text, integer, text, interval, text) IS
'Private: the one atomic reserve statement (debit if enough, run row, ledger leg); NULL row if not enough.';

CREATE OR REPLACE FUNCTION farmops._replayed_run(
    p_farm_id uuid, p_request_id text, p_feature text, p_model text, p_credits integer
)
RETURNS farmops.ai_runs
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_run farmops.ai_runs;
BEGIN
    SELECT r.* INTO v_run
    FROM farmops.ai_runs AS r
    WHERE r.farm_id = p_farm_id AND r.request_id = p_request_id;
    IF FOUND AND (v_run.feature, v_run.model, v_run.credits_reserved)
        IS DISTINCT FROM (p_feature, p_model, p_credits) THEN
        RAISE EXCEPTION 'request id % was used for a different request', p_request_id
            USING ERRCODE = 'OF106',
            DETAIL = format('earlier: feature %s, model %s, %s credits', v_run.feature, v_run.model,
                v_run.credits_reserved);
    END IF;
    RETURN v_run;
END
$fn$;
COMMENT ON FUNCTION farmops._replayed_run(uuid, text, text, text, integer) IS
'Private: the run an idempotency key already made (NULL row if none); OF106 if the request differs.';

CREATE OR REPLACE FUNCTION farmops.reserve_credits(
    p_feature text,
    p_model text,
    p_credits integer,
    p_request_id text DEFAULT NULL,
    p_ttl interval DEFAULT '15 minutes',
    p_input_summary text DEFAULT NULL
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
    v_feature text := farmops._text_argument(p_feature, 'feature', 100);
    v_model text := farmops._text_argument(p_model, 'model', 200);
    -- An idempotency key, when given, is a single-line name like the others.
    v_request_id text := farmops._text_argument(p_request_id, 'request id', 200, 'line', false);
    v_summary text := farmops._text_argument(p_input_summary, 'input summary', 4000, 'verbatim', false);
    v_run farmops.ai_runs;
    v_constraint text;
BEGIN
    PERFORM farmops._assert_in_range(p_credits, 'credits to reserve', 1, 2147483647);
    IF p_ttl IS NULL OR p_ttl <= interval '0' OR p_ttl > interval '1 day' THEN
        RAISE EXCEPTION 'ttl must be more than 0 and at most 1 day' USING ERRCODE = 'OF006';
    END IF;
    IF p_request_id IS NOT NULL AND v_request_id IS NULL THEN
        RAISE EXCEPTION 'request id must not be blank' USING ERRCODE = 'OF006';
    END IF;

    IF v_request_id IS NULL THEN
        v_run := farmops._reserve_credits_step(
            v_farm, v_user, v_feature, v_model, p_credits, NULL, p_ttl, v_summary
        );
    ELSE
        v_run := farmops._replayed_run(v_farm, v_request_id, v_feature, v_model, p_credits);
        IF v_run.id IS NOT NULL THEN
            RETURN v_run;  -- the same run back; nothing charged twice
        END IF;
        BEGIN
            v_run := farmops._reserve_credits_step(
                v_farm, v_user, v_feature, v_model, p_credits, v_request_id, p_ttl, v_summary
            );
        EXCEPTION WHEN unique_violation THEN
            -- A concurrent call with the same key committed first; its statement is
            -- undone here (subtransaction), so only one debit stands.
            GET STACKED DIAGNOSTICS v_constraint = CONSTRAINT_NAME;
            IF v_constraint IS DISTINCT FROM 'one_run_per_request_id' THEN
                RAISE;
            END IF;
            RETURN farmops._replayed_run(v_farm, v_request_id, v_feature, v_model, p_credits);
        END;
    END IF;

    IF v_run.id IS NULL THEN
        RAISE EXCEPTION 'not enough credits to reserve %', p_credits USING ERRCODE = 'OF101';
    END IF;
    RETURN v_run;
END
$fn$;
COMMENT ON FUNCTION farmops.reserve_credits(text, text, integer, text, interval, text) IS
'Reserves p_credits for a model run of the current farm and user in one atomic statement; returns the run. '
'OF101 not enough credits (nothing written), OF003 without run_ai (viewer), OF106 request id reused for another '
'request, OF006 bad arguments (names and ids trimmed, no control characters).';
