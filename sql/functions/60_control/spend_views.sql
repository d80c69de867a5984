-- Read models of money (issue 14 §3-§4): views over the runs, the metered calls and
-- the budgets. security_invoker: the caller's row level security applies, so a tenant
-- context sees its own farm and nothing else (no context: no rows). Days and months
-- are UTC here; a budget's own periods follow its time zone (farmops.budget_status).

CREATE OR REPLACE VIEW farmops.spend_daily WITH (security_invoker = true) AS
SELECT
    x.farm_id,
    x.day,
    x.feature,
    x.model,
    x.user_id,
    count(*) AS calls,
    coalesce(sum(x.input_tokens), 0)::bigint AS input_tokens,
    coalesce(sum(x.output_tokens), 0)::bigint AS output_tokens,
    coalesce(sum(x.cache_read_tokens), 0)::bigint AS cache_read_tokens,
    coalesce(sum(x.cache_write_tokens), 0)::bigint AS cache_write_tokens,
    coalesce(sum(x.cost_micro_usd), 0)::bigint AS cost_micro_usd,
    coalesce(sum(x.credits), 0)::bigint AS credits
FROM (
    SELECT
        r.farm_id,
        (r.reserved_at AT TIME ZONE 'UTC')::date AS day,
        r.feature,
        r.model,
        r.user_id,
        r.input_tokens,
        r.output_tokens,
        r.cache_read_tokens,
        r.cache_write_tokens,
        r.cost_micro_usd,
        r.credits_actual AS credits
    FROM farmops.ai_runs AS r
    WHERE r.status IN ('succeeded', 'failed')
    UNION ALL
    SELECT
        u.farm_id,
        (u.recorded_at AT TIME ZONE 'UTC')::date AS day,
        u.feature,
        u.model,
        u.user_id,
        u.input_tokens,
        u.output_tokens,
        0 AS cache_read_tokens,
        0 AS cache_write_tokens,
        u.cost_micro_usd,
        0 AS credits
    FROM farmops.model_usage AS u
) AS x
GROUP BY x.farm_id, x.day, x.feature, x.model, x.user_id;
COMMENT ON VIEW farmops.spend_daily IS
'Per farm, UTC day, feature, model and member: settled runs and metered calls, tokens, micro-dollars, credits.';

CREATE OR REPLACE VIEW farmops.spend_month_to_date WITH (security_invoker = true) AS
WITH m AS (
    SELECT
        date_trunc('month', now(), 'UTC') AS month_start,
        ((date_trunc('month', now(), 'UTC') AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC'
            AS month_end
),

spent AS (
    SELECT
        x.farm_id,
        sum(x.cost_micro_usd) AS spent
    FROM (
        SELECT
            r.farm_id,
            r.cost_micro_usd
        FROM farmops.ai_runs AS r CROSS JOIN m
        WHERE r.reserved_at >= m.month_start AND r.status IN ('succeeded', 'failed')
        UNION ALL
        SELECT
            u.farm_id,
            u.cost_micro_usd
        FROM farmops.model_usage AS u CROSS JOIN m
        WHERE u.recorded_at >= m.month_start
    ) AS x
    GROUP BY x.farm_id
),

monthly AS (
    SELECT
        b.farm_id,
        b.id,
        b.limit_micro_usd
    FROM farmops.budgets AS b
    WHERE b.period = 'month' AND b.feature = ''
),

held AS (
    SELECT
        bh.farm_id,
        sum(bh.held_micro_usd) AS held
    FROM farmops.budget_holds AS bh
    INNER JOIN monthly AS b ON bh.farm_id = b.farm_id AND bh.budget_id = b.id
    GROUP BY bh.farm_id
)

SELECT
    f.id AS farm_id,
    m.month_start,
    m.month_end,
    coalesce(s.spent, 0)::bigint AS spent_micro_usd,
    coalesce(h.held, 0)::bigint AS held_micro_usd,
    -- Linear: what the month spent so far, at the same rate to its end.
    ceil(
        coalesce(s.spent, 0) * extract(EPOCH FROM m.month_end - m.month_start)
        / greatest(extract(EPOCH FROM now() - m.month_start), 1)
    )::bigint AS projected_micro_usd,
    b.limit_micro_usd AS budget_micro_usd
FROM farmops.farms AS f
CROSS JOIN m
LEFT JOIN spent AS s ON f.id = s.farm_id
LEFT JOIN held AS h ON f.id = h.farm_id
LEFT JOIN monthly AS b ON f.id = b.farm_id;
COMMENT ON VIEW farmops.spend_month_to_date IS
'Per farm, this UTC month: spent micro-dollars, held by live runs (under the farm-wide monthly budget), the linear '
'end-of-month projection and the farm-wide monthly budget.';

CREATE OR REPLACE VIEW farmops.budget_status WITH (security_invoker = true) AS
WITH p AS (
    SELECT
        b.farm_id,
        b.id,
        date_trunc(b.period, now(), b.time_zone) AS period_start
    FROM farmops.budgets AS b
)

SELECT
    b.farm_id,
    b.id AS budget_id,
    b.period,
    b.feature,
    b.limit_micro_usd,
    b.action,
    b.thresholds,
    b.time_zone,
    p.period_start,
    ((p.period_start AT TIME ZONE b.time_zone) + ('1 ' || b.period)::interval) AT TIME ZONE b.time_zone AS period_end,
    coalesce(u.spent_micro_usd, 0) AS spent_micro_usd,
    coalesce(u.held_micro_usd, 0) AS held_micro_usd,
    round(100.0 * (coalesce(u.spent_micro_usd, 0) + coalesce(u.held_micro_usd, 0)) / b.limit_micro_usd, 1)
        AS used_percent
FROM farmops.budgets AS b
INNER JOIN p ON b.farm_id = p.farm_id AND b.id = p.id
LEFT JOIN farmops.budget_usage AS u
    ON b.farm_id = u.farm_id AND b.id = u.budget_id AND p.period_start = u.period_start;
COMMENT ON VIEW farmops.budget_status IS
'Each budget of the farm in its current period (computed now, in its time zone): limit, spent, held, percent used. '
'Past periods: farmops.budget_usage.';
