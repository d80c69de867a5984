-- The fast path of a reservation. One private core (farmops._reserve) does every
-- reservation, for reserve_credits (inside a tenant context) and for the fused
-- farmops.reserve_run (farm and user as arguments, one call, one round trip).
--
-- Lock order, for every path that moves credits (reserve, settle, expire, grant):
--   1. the request-id slot of a NEW run (only callers racing with the same key wait),
--   2. the farm row (credit balance),
--   3. existing run rows (settle, start, propose_write and search_for_run lock them).
-- New rows (run, ledger leg, lineage) wait for nobody. reserve takes the farm row
-- LAST and holds it only for the debit, the ledger leg and the commit; settle and
-- expire take the farm row BEFORE the run row, so a transaction that reserves and
-- then settles cannot deadlock with a concurrent settle of that run.

CREATE OR REPLACE FUNCTION farmops._reserve(
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
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_run farmops.ai_runs;
    v_made record;
BEGIN
    IF p_feature IS NULL OR char_length(p_feature) NOT BETWEEN 1 AND 100 THEN
        RAISE EXCEPTION 'feature must be 1 to 100 characters' USING ERRCODE = 'OF006';
    END IF;
    IF p_model IS NULL OR char_length(p_model) NOT BETWEEN 1 AND 200 THEN
        RAISE EXCEPTION 'model must be 1 to 200 characters' USING ERRCODE = 'OF006';
    END IF;
    IF p_credits IS NULL OR p_credits <= 0 THEN
        RAISE EXCEPTION 'credits to reserve must be a positive integer' USING ERRCODE = 'OF006';
    END IF;
    IF p_request_id IS NOT NULL AND char_length(p_request_id) NOT BETWEEN 1 AND 200 THEN
        RAISE EXCEPTION 'request id must be 1 to 200 characters' USING ERRCODE = 'OF006';
    END IF;
    IF p_ttl IS NULL OR p_ttl <= interval '0' OR p_ttl > interval '1 day' THEN
        RAISE EXCEPTION 'ttl must be more than 0 and at most 1 day' USING ERRCODE = 'OF006';
    END IF;
    IF char_length(p_input_summary) > 4000 THEN
        RAISE EXCEPTION 'input summary must be at most 4000 characters' USING ERRCODE = 'OF006';
    END IF;

    -- One statement, in this order: the run row (ON CONFLICT waits for a racing caller
    -- with the same key and then does nothing: no subtransaction), then the debit,
    -- which reads the run so that it runs second, then the ledger leg with the balance
    -- after the debit. The foreign-key checks fire at the end of the statement, when
    -- this transaction already holds the farm row, so they never share-lock a farm
    -- row somebody else is updating.
    WITH run AS (
        INSERT INTO farmops.ai_runs AS r (
            farm_id, user_id, feature, model, credits_reserved, request_id, input_summary, expires_at
        )
        VALUES (p_farm_id, p_user_id, p_feature, p_model, p_credits, p_request_id, p_input_summary, now() + p_ttl)
        ON CONFLICT (farm_id, request_id) DO NOTHING
        RETURNING r.*
    ),

    debit AS (
        UPDATE farmops.farms AS f
        SET credit_balance = f.credit_balance - p_credits
        WHERE f.id = p_farm_id AND f.credit_balance >= p_credits AND EXISTS (SELECT FROM run)
        RETURNING f.credit_balance
    ),

    leg AS (
        INSERT INTO farmops.credit_ledger AS l (farm_id, ai_run_id, kind, delta, balance_after, reason, actor)
        SELECT r.farm_id, r.id, 'reserve', -r.credits_reserved, d.credit_balance, r.feature, r.user_id
        FROM run AS r CROSS JOIN debit AS d
        RETURNING l.id
    )

    SELECT r::farmops.ai_runs AS run, (SELECT l.id FROM leg AS l) AS leg INTO v_made FROM run AS r;

    IF FOUND THEN  -- a new run row: was it paid for?
        IF v_made.leg IS NULL THEN
            -- Raising undoes the run row too: nothing is written.
            RAISE EXCEPTION 'not enough credits to reserve %', p_credits USING ERRCODE = 'OF101';
        END IF;
        RETURN v_made.run;
    END IF;

    -- The key was taken (committed: ON CONFLICT waited for it): the same run back,
    -- charged once, or OF106 if it was made for another request.
    SELECT r.* INTO v_run
    FROM farmops.ai_runs AS r
    WHERE r.farm_id = p_farm_id AND r.request_id = p_request_id;
    IF (v_run.feature, v_run.model, v_run.credits_reserved) IS DISTINCT FROM (p_feature, p_model, p_credits) THEN
        RAISE EXCEPTION 'request id % was used for a different request', p_request_id
            USING ERRCODE = 'OF106',
            DETAIL = format('earlier: feature %s, model %s, %s credits', v_run.feature, v_run.model,
                v_run.credits_reserved);
    END IF;
    RETURN v_run;
END
$fn$;
COMMENT ON FUNCTION farmops._reserve(uuid, text, text, text, integer, text, interval, text) IS
'Private: the one reservation (validation, run row, conditional debit, ledger leg; idempotent per request id). '
'OF101 not enough credits (nothing written), OF106 key reused for another request, OF006 bad arguments.';

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
    IF p_farm_id IS NULL OR p_user_id IS NULL THEN
        RAISE EXCEPTION 'a farm id and a user id must be given' USING ERRCODE = 'OF006';
    END IF;
    -- Inside a verified tenant context the call must name that same member (verified
    -- once, here); without one it is a membership check like begin_tenant's, refused
    -- where the installation requires verified identity.
    IF coalesce(current_setting('farmops.farm_id', true), '') <> '' THEN
        v_ctx := farmops.tenant_context();
        IF v_ctx.farm_id IS NOT NULL THEN
            IF (v_ctx.farm_id, v_ctx.user_id) IS DISTINCT FROM (p_farm_id, p_user_id) THEN
                RAISE EXCEPTION 'this transaction acts for another member or farm' USING ERRCODE = 'OF002';
            END IF;
            RETURN v_ctx.member_role;
        END IF;
    END IF;
    PERFORM farmops._assert_unverified_identity_allowed();
    SELECT m.role INTO v_role FROM farmops.farm_members AS m WHERE m.farm_id = p_farm_id AND m.user_id = p_user_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'user is not a member of farm %', p_farm_id USING ERRCODE = 'OF002';
    END IF;
    RETURN v_role;
END
$fn$;
COMMENT ON FUNCTION farmops._member_role(uuid, text) IS
'Private: the role of a member named by a fused call (the transaction''s verified context if any, else a '
'membership check); OF002 not a member or another member than the context''s, OF024 verified identity required.';

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
    v_ctx record := farmops.tenant_context();
BEGIN
    IF v_ctx.farm_id IS NULL THEN
        PERFORM farmops.require_tenant();  -- OF001
    END IF;
    IF v_ctx.member_role NOT IN ('owner', 'manager', 'worker', 'agent') THEN
        RAISE EXCEPTION 'role % may not reserve credits', v_ctx.member_role USING ERRCODE = 'OF003';
    END IF;
    -- The context is verified once (above); the reservation itself is the fused path's.
    RETURN farmops._reserve(
        v_ctx.farm_id, v_ctx.user_id, p_feature, p_model, p_credits, p_request_id, p_ttl, p_input_summary
    );
END
$fn$;
COMMENT ON FUNCTION farmops.reserve_credits(text, text, integer, text, interval, text) IS
'Reserves p_credits for a model run of the current farm and user in one atomic statement; returns the run. '
'OF101 not enough credits (nothing written), OF003 viewer, OF106 request id reused for another request.';

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
    IF v_role NOT IN ('owner', 'manager', 'worker', 'agent') THEN
        RAISE EXCEPTION 'role % may not reserve credits', v_role USING ERRCODE = 'OF003';
    END IF;
    IF v_credits IS NULL THEN
        v_credits := farmops.estimate_credits(p_model, p_max_input_tokens, p_max_output_tokens);
    ELSIF p_max_input_tokens IS NOT NULL OR p_max_output_tokens IS NOT NULL THEN
        RAISE EXCEPTION 'give either credits or token bounds, not both' USING ERRCODE = 'OF006';
    END IF;
    RETURN farmops._reserve(
        p_farm_id, p_user_id, p_feature, p_model, v_credits, p_request_id, p_ttl, p_input_summary
    );
END
$fn$;
COMMENT ON FUNCTION farmops.reserve_run(uuid, text, text, text, integer, integer, integer, text, interval, text) IS
'Fused reservation in one call (no begin_tenant needed): checks that p_user_id is a member of p_farm_id who may '
'run AI, prices the run from its token bounds (estimate_credits) unless p_credits is given, and reserves like '
'reserve_credits (same run for the same p_request_id). OF002, OF003, OF024, OF101, OF106, OF108, OF006.';
