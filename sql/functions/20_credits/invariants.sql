-- The checkable financial invariants. No rows = healthy.

CREATE OR REPLACE FUNCTION farmops.check_invariants(p_farm_id uuid DEFAULT NULL)
RETURNS TABLE (farm_id uuid, invariant text, detail text)
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_farm uuid := farmops.current_farm_id();
BEGIN
    -- SECURITY INVOKER: RLS limits an application session to its own farm; the package
    -- owner sees every farm. An application session must be in a tenant context, so
    -- that "no rows" can never mean "saw nothing".
    IF v_farm IS NULL AND NOT pg_has_role(current_user, 'farmops_owner', 'MEMBER') THEN
        PERFORM farmops.require_tenant();
    END IF;
    IF v_farm IS NOT NULL AND p_farm_id IS DISTINCT FROM v_farm AND p_farm_id IS NOT NULL THEN
        RAISE EXCEPTION 'invariants are checked inside the farm''s own tenant context' USING ERRCODE = 'OF002';
    END IF;

    RETURN QUERY
    -- 1. The balance is the sum of the ledger.
    SELECT f.id, 'balance_equals_ledger_sum'::text,
        format('balance %s, ledger sum %s', f.credit_balance, coalesce(l.total, 0))
    FROM farmops.farms AS f
    LEFT JOIN (
        SELECT cl.farm_id, sum(cl.delta) AS total FROM farmops.credit_ledger AS cl GROUP BY cl.farm_id
    ) AS l ON l.farm_id = f.id
    WHERE (p_farm_id IS NULL OR f.id = p_farm_id)
        AND f.credit_balance IS DISTINCT FROM coalesce(l.total, 0)

    UNION ALL
    -- 2. Each ledger row's balance_after is the running sum of its farm's rows in seq order.
    SELECT c.farm_id, 'balance_after_chains',
        format('ledger row %s: balance_after %s, running sum %s', c.seq, c.balance_after, c.running)
    FROM (
        SELECT cl.farm_id, cl.seq, cl.balance_after,
            sum(cl.delta) OVER (PARTITION BY cl.farm_id ORDER BY cl.seq) AS running
        FROM farmops.credit_ledger AS cl
        WHERE p_farm_id IS NULL OR cl.farm_id = p_farm_id
    ) AS c
    WHERE c.balance_after <> c.running

    UNION ALL
    -- 3. Each run's legs: one reserve of -(credits_reserved - credits_extended), extend legs
    --    summing to -credits_extended; then nothing more while live, the settle legs netting
    --    to what it cost (minus the shortfall), or a full expire refund.
    SELECT r.farm_id, 'run_has_its_legs',
        format('run %s (%s): reserve legs %s (%s), extended %s, closing legs %s, net %s, expected net %s',
            r.id, r.status, coalesce(g.reserves, 0), coalesce(g.reserved, 0), coalesce(g.extended, 0),
            coalesce(g.closings, 0), coalesce(g.net, 0), r.expected_net)
    FROM (
        SELECT ar.farm_id, ar.id, ar.status, ar.credits_reserved, ar.credits_extended,
            CASE
                WHEN ar.status IN ('reserved', 'running') THEN -ar.credits_reserved
                WHEN ar.status = 'expired' THEN 0
                ELSE -(ar.credits_actual - ar.credits_shortfall)
            END AS expected_net,
            CASE
                WHEN ar.status IN ('reserved', 'running', 'expired') THEN ar.status <> 'expired'
                ELSE ar.credits_actual - ar.credits_shortfall = ar.credits_reserved
            END AS closing_leg_optional
        FROM farmops.ai_runs AS ar
        WHERE p_farm_id IS NULL OR ar.farm_id = p_farm_id
    ) AS r
    LEFT JOIN (
        SELECT cl.farm_id, cl.ai_run_id,
            count(*) FILTER (WHERE cl.kind = 'reserve') AS reserves,
            sum(cl.delta) FILTER (WHERE cl.kind = 'reserve') AS reserved,
            sum(cl.delta) FILTER (WHERE cl.kind = 'extend') AS extended,
            count(*) FILTER (WHERE cl.kind NOT IN ('reserve', 'extend')) AS closings,
            sum(cl.delta) AS net
        FROM farmops.credit_ledger AS cl
        WHERE cl.ai_run_id IS NOT NULL AND (p_farm_id IS NULL OR cl.farm_id = p_farm_id)
        GROUP BY cl.farm_id, cl.ai_run_id
    ) AS g ON g.farm_id = r.farm_id AND g.ai_run_id = r.id
    WHERE coalesce(g.reserves, 0) <> 1
        OR g.reserved IS DISTINCT FROM -(r.credits_reserved - r.credits_extended)
        OR coalesce(g.extended, 0) <> -r.credits_extended
        OR coalesce(g.net, 0) <> r.expected_net
        OR (r.status IN ('reserved', 'running') AND coalesce(g.closings, 0) <> 0)
        OR (NOT r.closing_leg_optional AND coalesce(g.closings, 0) <> 1);
END
$fn$;
COMMENT ON FUNCTION farmops.check_invariants(uuid) IS
'Financial invariants (balance = ledger sum, balance_after chains, every run has its legs); no rows = healthy. '
'As the application: the current farm only (OF001 without a context); as the package owner: any or all farms.';
