-- Credits a finance team can work with (issue 14 §5): adjustments and a statement
-- for any period that reconciles to the ledger.

CREATE OR REPLACE FUNCTION farmops.adjust_credits(p_farm_id uuid, p_delta integer, p_reason text)
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_farm uuid := farmops.require_capability('grant_credits');
    v_reason text;
    v_outstanding bigint;
    v_balance integer;
BEGIN
    PERFORM farmops._assert_given(p_farm_id, 'farm id');
    v_farm := farmops._require_capability_in(p_farm_id, 'grant_credits');
    PERFORM farmops._assert_in_range(p_delta, 'credit adjustment', -2147483647, 2147483647);
    IF p_delta = 0 THEN
        RAISE EXCEPTION 'an adjustment moves credits: 0 is not one' USING ERRCODE = 'OF006';
    END IF;
    -- A correction must say why: the reason is the finance team's audit trail.
    v_reason := farmops._text_argument(p_reason, 'reason', 1000, 'text');
    -- As grant_credits: the farm row, then what live runs may still refund (the sum
    -- must stay within an integer); the balance never goes below zero.
    PERFORM FROM farmops.farms AS f WHERE f.id = v_farm FOR NO KEY UPDATE;
    SELECT coalesce(sum(r.credits_reserved), 0) INTO v_outstanding
    FROM farmops.ai_runs AS r
    WHERE r.farm_id = v_farm AND r.status IN ('reserved', 'running');
    WITH moved AS (
        UPDATE farmops.farms AS f
        SET credit_balance = f.credit_balance + p_delta,
            ledger_seq = f.ledger_seq + 1
        WHERE f.id = v_farm AND f.credit_balance::bigint + p_delta >= 0
            AND f.credit_balance::bigint + v_outstanding + p_delta <= 2147483647
        RETURNING f.id, f.credit_balance, f.ledger_seq
    ),

    leg AS (
        INSERT INTO farmops.credit_ledger (farm_id, seq, kind, delta, balance_after, reason, actor)
        SELECT m.id, m.ledger_seq, 'adjust', p_delta, m.credit_balance, v_reason, farmops.current_user_id()
        FROM moved AS m
    )

    SELECT m.credit_balance INTO v_balance FROM moved AS m;
    IF v_balance IS NULL THEN
        IF p_delta < 0 THEN
            RAISE EXCEPTION 'the adjustment of % credits would make the balance negative', p_delta
                USING ERRCODE = 'OF414';
        END IF;
        RAISE EXCEPTION 'the balance plus live reservations would exceed 2147483647 credits' USING ERRCODE = 'OF006';
    END IF;
    RETURN v_balance;
END
$fn$;
COMMENT ON FUNCTION farmops.adjust_credits(uuid, integer, text) IS
'Farm owner (grant_credits): corrects the balance by p_delta credits (positive or negative, not 0) with a ledger '
'''adjust'' row and a required reason; returns the new balance. OF414 below zero, OF003, OF002, OF006.';

CREATE OR REPLACE FUNCTION farmops.credit_statement(p_from timestamptz, p_to timestamptz DEFAULT now())
RETURNS TABLE (
    farm_id uuid,
    period_from timestamptz,
    period_to timestamptz,
    opening_balance bigint,
    grants bigint,
    charges bigint,
    refunds bigint,
    adjustments bigint,
    closing_balance bigint,
    ledger_rows bigint,
    reconciles boolean
)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_farm uuid := farmops.require_capability('read');
BEGIN
    PERFORM farmops._assert_given(p_from, 'from');
    PERFORM farmops._assert_given(p_to, 'to');
    IF p_to < p_from OR NOT isfinite(p_from) OR NOT isfinite(p_to) THEN
        RAISE EXCEPTION 'a statement period runs from a finite instant to a later one' USING ERRCODE = 'OF006';
    END IF;
    -- Rows belong to the period by created_at in [p_from, p_to). Opening and closing
    -- are ledger sums, so opening + movements = closing always; reconciles says that
    -- the closing balance also equals balance_after of the last row before p_to and
    -- (for a period ending now) the farm's balance.
    RETURN QUERY
    WITH l AS (
        SELECT c.seq, c.kind, c.delta, c.balance_after, c.created_at
        FROM farmops.credit_ledger AS c
        WHERE c.farm_id = v_farm AND c.created_at < p_to
    ),

    s AS (
        SELECT
            coalesce(sum(l.delta) FILTER (WHERE l.created_at < p_from), 0) AS opening,
            coalesce(sum(l.delta) FILTER (WHERE l.created_at >= p_from AND l.kind = 'grant'), 0) AS grants,
            coalesce(-sum(l.delta) FILTER (WHERE l.created_at >= p_from AND l.kind IN ('reserve', 'extend', 'settle_charge')), 0)
            AS charges,
            coalesce(sum(l.delta) FILTER (
                WHERE l.created_at >= p_from AND l.kind IN ('settle_refund', 'expire_refund')
            ), 0) AS refunds,
            coalesce(sum(l.delta) FILTER (WHERE l.created_at >= p_from AND l.kind = 'adjust'), 0) AS adjustments,
            coalesce(sum(l.delta), 0) AS closing,
            count(*) FILTER (WHERE l.created_at >= p_from) AS n,
            (SELECT l2.balance_after FROM l AS l2 ORDER BY l2.seq DESC LIMIT 1) AS last_after
        FROM l
    )

    SELECT v_farm, p_from, p_to, s.opening::bigint, s.grants::bigint, s.charges::bigint, s.refunds::bigint,
        s.adjustments::bigint, s.closing::bigint, s.n,
        s.opening + s.grants - s.charges + s.refunds + s.adjustments = s.closing
        AND s.closing = coalesce(s.last_after, 0)
        AND (p_to < now() OR s.closing = (SELECT f.credit_balance FROM farmops.farms AS f WHERE f.id = v_farm))
    FROM s;
END
$fn$;
COMMENT ON FUNCTION farmops.credit_statement(timestamptz, timestamptz) IS
'The current farm''s credit statement for [p_from, p_to): opening balance, grants, charges (reserves, extensions '
'and settle charges), refunds (settle and expiry), adjustments, closing balance, ledger rows, and whether it '
'reconciles to the ledger (and to the balance, for a period ending now). Any member. OF001, OF006.';
