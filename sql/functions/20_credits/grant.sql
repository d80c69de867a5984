-- Granting credits to a farm: the only way credits enter the system.

CREATE OR REPLACE FUNCTION farmops.grant_credits(p_farm_id uuid, p_credits integer, p_reason text)
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
    PERFORM farmops._assert_in_range(p_credits, 'credits to grant', 1, 2147483647);
    v_reason := farmops._text_argument(p_reason, 'reason', 1000, 'text');
    -- Hold the farm row (reserve and settle take it too), then count what live runs may
    -- still refund: balance + outstanding reservations must stay within an integer, so
    -- no later refund can overflow.
    PERFORM FROM farmops.farms AS f WHERE f.id = v_farm FOR NO KEY UPDATE;
    SELECT coalesce(sum(r.credits_reserved), 0) INTO v_outstanding
    FROM farmops.ai_runs AS r
    WHERE r.farm_id = v_farm AND r.status IN ('reserved', 'running');
    WITH credit AS (
        UPDATE farmops.farms AS f
        SET credit_balance = f.credit_balance + p_credits,
            ledger_seq = f.ledger_seq + 1  -- per-farm ledger seq (0052)
        WHERE f.id = v_farm AND f.credit_balance::bigint + v_outstanding + p_credits <= 2147483647
        RETURNING f.id, f.credit_balance, f.ledger_seq
    ),

    leg AS (
        INSERT INTO farmops.credit_ledger (farm_id, seq, kind, delta, balance_after, reason, actor)
        SELECT c.id, c.ledger_seq, 'grant', p_credits, c.credit_balance, v_reason, farmops.current_user_id()
        FROM credit AS c
    )

    SELECT c.credit_balance INTO v_balance FROM credit AS c;
    IF v_balance IS NULL THEN
        RAISE EXCEPTION 'the balance plus live reservations would exceed 2147483647 credits'
            USING ERRCODE = 'OF006';
    END IF;
    RETURN v_balance;
END
$fn$;
COMMENT ON FUNCTION farmops.grant_credits(uuid, integer, text) IS
'Farm owner only (grant_credits): adds p_credits (> 0) to the current farm with a ledger ''grant'' row; '
'returns the new balance.';
