-- Reserving credits before a model call. One private core (farmops._reserve) makes
-- every reservation: for reserve_credits (inside a tenant context) and for the fused
-- farmops.reserve_run (farm and user as arguments: one call, one round trip).
--
-- Lock order, for every path (reserve, settle, expire, grant, start, propose_write,
-- search_for_run):
--   1. the request-id slot of a NEW run (only callers racing with the same key wait),
--   2. the farm row (the credit balance),
--   3. existing run rows.
-- New rows (the run, its ledger leg, lineage) wait for nobody. A reservation takes the
-- farm row LAST and holds it only for the debit, the ledger leg and the commit; settle,
-- expire and grant take the farm row BEFORE any run row; start, propose_write and
-- search_for_run lock only the run. So a transaction that reserves and then settles
-- cannot deadlock with a concurrent settle or expiry of that run.

CREATE OR REPLACE FUNCTION farmops._reserve(
    p_farm_id uuid,
    p_user_id text,
    p_feature text,
    p_model text,
    p_credits integer,
    p_request_id text,
    p_ttl interval,
    p_input_summary text,
    p_tokens bigint DEFAULT NULL
)
RETURNS farmops.ai_runs
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_control record;
    v_feature text := farmops._text_argument(p_feature, 'feature', 100);
    v_model text := farmops._text_argument(p_model, 'model', 200);
    -- An idempotency key, when given, is a single-line name like the others.
    v_request_id text := farmops._text_argument(p_request_id, 'request id', 200, 'line', false);
    v_summary text := farmops._text_argument(p_input_summary, 'input summary', 4000, 'verbatim', false);
    v_run farmops.ai_runs;
    v_made record;
BEGIN
    PERFORM farmops._assert_in_range(p_credits, 'credits to reserve', 1, 2147483647);
    IF p_ttl IS NULL OR p_ttl <= interval '0' OR p_ttl > interval '1 day' THEN
        RAISE EXCEPTION 'ttl must be more than 0 and at most 1 day' USING ERRCODE = 'OF006';
    END IF;
    IF p_request_id IS NOT NULL AND v_request_id IS NULL THEN
        RAISE EXCEPTION 'request id must not be blank' USING ERRCODE = 'OF006';
    END IF;
    -- Spend control (60_control/rate_limits.sql): policies (OF401, a hold for approval), the limits' steps.
    SELECT c.* INTO v_control FROM farmops._control_reserve(p_farm_id, p_user_id, v_feature, v_model, p_credits, p_tokens) AS c;

    -- One statement, in this order: the run row (ON CONFLICT waits for a racing caller
    -- with the same key, then does nothing: no subtransaction), then the debit, which
    -- reads the run so that it runs second, then the ledger leg with the balance after
    -- the debit. The foreign-key checks fire at the end of the statement, when this
    -- transaction already holds the farm row, so they never share-lock a farm row that
    -- somebody else is updating.
    WITH run AS (
        INSERT INTO farmops.ai_runs AS r (
            farm_id, user_id, feature, model, credits_reserved, request_id, input_summary, expires_at,
            approval, approval_rule
        )
        VALUES (p_farm_id, p_user_id, v_feature, v_model, p_credits, v_request_id, v_summary, now() + p_ttl,
            CASE WHEN v_control.hold_rule IS NOT NULL THEN 'pending' END, v_control.hold_rule)
        ON CONFLICT (farm_id, request_id) DO NOTHING
        RETURNING r.*
    ),

    -- The member's rate limits (GCRA, 60_control/rate_limits.sql), only when one applies. The
    -- clock, not now(): a transaction that started earlier but got the row later must not
    -- count as arriving earlier (the check runs again on the row it waited for).
    member AS (
        UPDATE farmops.farm_members AS m
        SET requests_tat = greatest(m.requests_tat, clock_timestamp()) + v_control.member_requests_step,
            tokens_tat = greatest(m.tokens_tat, clock_timestamp()) + v_control.member_tokens_step
        WHERE v_control.member_limited AND m.farm_id = p_farm_id AND m.user_id = p_user_id AND EXISTS (SELECT FROM run)
            AND (v_control.member_requests_step IS NULL
                OR greatest(m.requests_tat, clock_timestamp()) - clock_timestamp() <= v_control.member_requests_room)
            AND (v_control.member_tokens_step IS NULL
                OR greatest(m.tokens_tat, clock_timestamp()) - clock_timestamp() <= v_control.member_tokens_room)
        RETURNING 1
    ),

    debit AS (
        UPDATE farmops.farms AS f
        SET credit_balance = f.credit_balance - p_credits,
            ledger_seq = f.ledger_seq + 1,  -- per-farm ledger seq (0052)
            -- the farm's rate limits (GCRA) move with the debit: no extra lock
            requests_tat = greatest(f.requests_tat, clock_timestamp()) + v_control.farm_requests_step,
            tokens_tat = greatest(f.tokens_tat, clock_timestamp()) + v_control.farm_tokens_step
        WHERE f.id = p_farm_id AND f.credit_balance >= p_credits AND EXISTS (SELECT FROM run)
            AND (NOT v_control.member_limited OR EXISTS (SELECT FROM member))
            AND (v_control.farm_requests_step IS NULL
                OR greatest(f.requests_tat, clock_timestamp()) - clock_timestamp() <= v_control.farm_requests_room)
            AND (v_control.farm_tokens_step IS NULL
                OR greatest(f.tokens_tat, clock_timestamp()) - clock_timestamp() <= v_control.farm_tokens_room)
        RETURNING f.credit_balance, f.ledger_seq
    ),

    leg AS (
        INSERT INTO farmops.credit_ledger AS l (farm_id, seq, ai_run_id, kind, delta, balance_after, reason, actor)
        SELECT r.farm_id, d.ledger_seq, r.id, 'reserve', -r.credits_reserved, d.credit_balance, r.feature, r.user_id
        FROM run AS r CROSS JOIN debit AS d
        RETURNING l.seq
    )

    SELECT r::farmops.ai_runs AS run, (SELECT l.seq FROM leg AS l) AS leg INTO v_made FROM run AS r;

    IF FOUND THEN  -- a new run row: was it paid for?
        IF v_made.leg IS NULL THEN
            -- Raising undoes the run row too: nothing is written.
            PERFORM farmops._assert_within_rate_limits(p_farm_id, p_user_id, v_control.tokens);  -- OF402
            RAISE EXCEPTION 'not enough credits to reserve %', p_credits USING ERRCODE = 'OF101';
        END IF;
        RETURN farmops._hold_budget(v_made.run);  -- price (OF410), money budgets (OF411 or held), farm row held
    END IF;

    -- The key was taken (and committed: ON CONFLICT waited for it): the same run back,
    -- charged once, or OF106 if it was made for another request.
    SELECT r.* INTO v_run
    FROM farmops.ai_runs AS r
    WHERE r.farm_id = p_farm_id AND r.request_id = v_request_id;
    -- (the reservation itself: the hold minus any extension since)
    IF (v_run.feature, v_run.model, v_run.credits_reserved - v_run.credits_extended)
        IS DISTINCT FROM (v_feature, v_model, p_credits) THEN
        RAISE EXCEPTION 'request id % was used for a different request', v_request_id
            USING ERRCODE = 'OF106',
            DETAIL = format('earlier: feature %s, model %s, %s credits', v_run.feature, v_run.model,
                v_run.credits_reserved - v_run.credits_extended);
    END IF;
    RETURN v_run;
END
$fn$;
COMMENT ON FUNCTION farmops._reserve(uuid, text, text, text, integer, text, interval, text, bigint) IS
'Private: the one reservation (arguments, policies, run row, rate limits, conditional debit, ledger leg; '
'idempotent per request id, no subtransaction). OF101 not enough credits (nothing written), OF106 key reused '
'for another request, OF401 denied by a policy, OF402 rate limited, OF405 larger than a token limit, OF006.';

CREATE OR REPLACE FUNCTION farmops._member_role(p_farm_id uuid, p_user_id text)
RETURNS text
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_ctx record;
    v_role text;
BEGIN
    PERFORM farmops._assert_given(p_farm_id, 'farm id');
    PERFORM farmops._assert_given(p_user_id, 'user id');
    -- Inside a verified tenant context the call must name that same member (verified
    -- once, here); without one it is begin_tenant's membership check, refused where the
    -- installation requires verified identity. A forged context verifies as none.
    IF coalesce(current_setting('farmops.farm_id', true), '') <> '' THEN
        v_ctx := farmops.tenant_context();
        IF v_ctx.farm_id IS NOT NULL THEN
            IF (v_ctx.farm_id, v_ctx.user_id) IS DISTINCT FROM (p_farm_id, p_user_id) THEN
                RAISE EXCEPTION 'this transaction acts for another member or farm' USING ERRCODE = 'OF002';
            END IF;
            RETURN v_ctx.member_role;
        END IF;
    END IF;
    -- The same entry checks as begin_tenant: a login of this installation, unverified allowed.
    PERFORM farmops._assert_login_allowed();
    PERFORM farmops._assert_unverified_identity_allowed();
    SELECT m.role INTO v_role FROM farmops.farm_members AS m WHERE m.farm_id = p_farm_id AND m.user_id = p_user_id;
    IF NOT FOUND THEN
        -- Same error whether or not the farm exists: no probing for other tenants.
        RAISE EXCEPTION 'user is not a member of farm %', p_farm_id USING ERRCODE = 'OF002';
    END IF;
    RETURN v_role;
END
$fn$;
COMMENT ON FUNCTION farmops._member_role(uuid, text) IS
'Private: the role of the member a fused call names (the transaction''s verified context if any, else a '
'membership check). OF002 not a member, or another member than the context''s; OF024 verified identity required.';

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
BEGIN
    RETURN farmops._reserve(
        farmops.require_capability('run_ai'), farmops.current_user_id(),
        p_feature, p_model, p_credits, p_request_id, p_ttl, p_input_summary
    );
END
$fn$;
COMMENT ON FUNCTION farmops.reserve_credits(text, text, integer, text, interval, text) IS
'Reserves p_credits for a model run of the current farm and user in one atomic statement; returns the run. '
'OF101 not enough credits (nothing written), OF003 without run_ai (viewer), OF106 request id reused for another '
'request, OF006 bad arguments (names and ids trimmed, no control characters).';

CREATE OR REPLACE FUNCTION farmops.reserve_run(
    p_farm_id uuid,
    p_user_id text,
    p_feature text,
    p_model text,
    p_max_input_tokens integer DEFAULT NULL,
    p_max_output_tokens integer DEFAULT NULL,
    p_credits integer DEFAULT NULL,
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
    v_role text := farmops._member_role(p_farm_id, p_user_id);
    v_credits integer := p_credits;
BEGIN
    IF NOT farmops.role_has_capability(v_role, 'run_ai') THEN
        RAISE EXCEPTION 'role % may not do this: it lacks the capability run_ai', v_role USING ERRCODE = 'OF003';
    END IF;
    IF v_credits IS NULL THEN
        v_credits := farmops.estimate_credits(p_model, p_max_input_tokens, p_max_output_tokens);
    ELSIF p_max_input_tokens IS NOT NULL OR p_max_output_tokens IS NOT NULL THEN
        RAISE EXCEPTION 'give either credits or token bounds, not both' USING ERRCODE = 'OF006';
    END IF;
    RETURN farmops._reserve(p_farm_id, p_user_id, p_feature, p_model, v_credits, p_request_id, p_ttl, p_input_summary,
        nullif(coalesce(p_max_input_tokens, 0)::bigint + coalesce(p_max_output_tokens, 0), 0));
END
$fn$;
COMMENT ON FUNCTION farmops.reserve_run(uuid, text, text, text, integer, integer, integer, text, interval, text) IS
'Fused reservation in ONE call, no begin_tenant needed: checks that p_user_id is a member of p_farm_id holding '
'run_ai, prices the token bounds like estimate_credits unless p_credits is given (not both), and reserves exactly '
'like reserve_credits (same core, same request-id space). OF002, OF003, OF024, OF101, OF106, OF108, OF006.';
