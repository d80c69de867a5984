-- Money beside credits (issue 14 §3-§5): provider prices in the one effective-dated
-- rate table, the dollar cost of every run and of every metered call outside a run,
-- money budgets per farm and period with their counters and holds, and the alerts
-- they fire. Money is integer micro-dollars (1 USD = 1 000 000), never a float.

-- 1. Prices: integer micro-dollars per 1k tokens beside the credit rates. NULL = the
-- row sets no price: a model without a price of its own and without a priced '*' row
-- fails closed at reserve (OF410). Cache prices default to the input price.
ALTER TABLE farmops.model_rates
ADD COLUMN input_micro_usd_per_1k bigint,
ADD COLUMN output_micro_usd_per_1k bigint,
ADD COLUMN cache_read_micro_usd_per_1k bigint,
ADD COLUMN cache_write_micro_usd_per_1k bigint,
ADD COLUMN price_source text,
ADD CONSTRAINT model_price_is_never_negative CHECK (
    input_micro_usd_per_1k >= 0 AND output_micro_usd_per_1k >= 0
    AND cache_read_micro_usd_per_1k >= 0 AND cache_write_micro_usd_per_1k >= 0
) NOT VALID,
ADD CONSTRAINT model_price_has_input_and_output CHECK (
    (input_micro_usd_per_1k IS NULL) = (output_micro_usd_per_1k IS NULL)
    AND (input_micro_usd_per_1k IS NOT NULL OR (
        cache_read_micro_usd_per_1k IS NULL AND cache_write_micro_usd_per_1k IS NULL
    ))
) NOT VALID,
ADD CONSTRAINT model_price_source_is_short CHECK (char_length(price_source) <= 500) NOT VALID;
COMMENT ON COLUMN farmops.model_rates.input_micro_usd_per_1k IS
'Provider price in micro-dollars (1e-6 USD) per 1k input tokens; NULL: this row sets no price.';
COMMENT ON COLUMN farmops.model_rates.output_micro_usd_per_1k IS
'Provider price in micro-dollars per 1k output tokens; NULL exactly when the input price is NULL.';
COMMENT ON COLUMN farmops.model_rates.cache_read_micro_usd_per_1k IS
'Micro-dollars per 1k prompt-cache read tokens; NULL: the input price.';
COMMENT ON COLUMN farmops.model_rates.cache_write_micro_usd_per_1k IS
'Micro-dollars per 1k prompt-cache write tokens; NULL: the input price.';
COMMENT ON COLUMN farmops.model_rates.price_source IS
'Where the price comes from (page and date), for the finance team.';

-- Shipped prices of the models farmops_client offers: Amazon Bedrock on-demand, us-east-1,
-- as listed on https://aws.amazon.com/bedrock/pricing/ (read 2026-12-02 through a
-- mirror of that page's Nova table: Nova Lite 1.0 $0.06 / $0.24 per 1M input / output
-- tokens; prompt-cache reads 75% below the input price, cache writes at the input price).
-- Titan Text Embeddings V2 at $0.02 per 1M input tokens is AWS's published price as far
-- as we know; it could not be re-read at a primary source on that date: check it. The
-- offline lexical embedder calls nobody and costs nothing. The credit rates copy the
-- default ('*') rate in force, so credits charged for these models do not change.
WITH d AS (
    SELECT
        r.input_credits_per_1k,
        r.output_credits_per_1k
    FROM farmops.model_rates AS r
    WHERE r.model = '*' AND r.effective_from <= now()
    ORDER BY r.effective_from DESC
    LIMIT 1
)

INSERT INTO farmops.model_rates (
    model, effective_from, input_credits_per_1k, output_credits_per_1k,
    input_micro_usd_per_1k, output_micro_usd_per_1k, cache_read_micro_usd_per_1k, cache_write_micro_usd_per_1k,
    price_source
)
SELECT
    p.model,
    '1970-01-01 00:00:00+00'::timestamptz,
    d.input_credits_per_1k,
    d.output_credits_per_1k,
    p.input_price,
    p.output_price,
    p.cache_read,
    p.cache_write,
    p.source
FROM (
    VALUES
    (
        'amazon.nova-lite-v1:0', 60::bigint, 240::bigint, 15::bigint, 60::bigint,
        'aws.amazon.com/bedrock/pricing (on-demand, us-east-1), 2026-12-02'
    ),
    (
        'amazon.titan-embed-text-v2:0', 20, 0, NULL, NULL,
        'aws.amazon.com/bedrock/pricing (on-demand, us-east-1), 2026-12-02, unverified'
    ),
    ('farmops-lexical-v1', 0, 0, NULL, NULL, 'offline embedder: no provider call')
) AS p (model, input_price, output_price, cache_read, cache_write, source)
CROSS JOIN d
ON CONFLICT (model, effective_from) DO NOTHING;

-- 2. The cost of a run: prompt-cache token counts and the dollars, set at settle.
ALTER TABLE farmops.ai_runs
ADD COLUMN cache_read_tokens bigint,
ADD COLUMN cache_write_tokens bigint,
ADD COLUMN cost_micro_usd bigint,
ADD CONSTRAINT run_cache_tokens_are_never_negative CHECK (cache_read_tokens >= 0 AND cache_write_tokens >= 0) NOT VALID,
ADD CONSTRAINT run_cost_is_never_negative CHECK (cost_micro_usd >= 0) NOT VALID;
COMMENT ON COLUMN farmops.ai_runs.cost_micro_usd IS
'What the run cost the provider in micro-dollars, computed at settle by the database from the reported tokens '
'at the price in force at reserved_at, plus the metered calls recorded against the run (farmops.model_usage).';

-- 3. Metered provider calls that are not a run of their own: embeddings of ingest,
-- memories and a run's prompt. Tokens and dollars only (credits are the product's
-- price of runs); a call that serves a run names it.
CREATE TABLE farmops.model_usage (
    farm_id uuid NOT NULL REFERENCES farmops.farms (id),
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    ai_run_id uuid,
    user_id text NOT NULL,
    feature text NOT NULL,
    model text NOT NULL,
    input_tokens bigint NOT NULL,
    output_tokens bigint NOT NULL DEFAULT 0,
    cost_micro_usd bigint NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT model_usage_pkey PRIMARY KEY (farm_id, id),
    CONSTRAINT model_usage_serves_a_run_of_its_farm FOREIGN KEY (farm_id, ai_run_id)
    REFERENCES farmops.ai_runs (farm_id, id),
    CONSTRAINT model_usage_user_is_named CHECK (char_length(user_id) BETWEEN 1 AND 256),
    CONSTRAINT model_usage_feature_is_named CHECK (char_length(feature) BETWEEN 1 AND 100),
    CONSTRAINT model_usage_model_is_named CHECK (char_length(model) BETWEEN 1 AND 200),
    CONSTRAINT model_usage_is_never_negative CHECK (
        input_tokens >= 0 AND output_tokens >= 0 AND cost_micro_usd >= 0
    )
);
CREATE INDEX model_usage_farm_time_idx ON farmops.model_usage (farm_id, recorded_at);
CREATE INDEX model_usage_farm_run_idx ON farmops.model_usage (farm_id, ai_run_id) WHERE ai_run_id IS NOT NULL;
COMMENT ON TABLE farmops.model_usage IS
'Metered provider calls outside a run''s own model call (embeddings): tokens and micro-dollars, append-only.';

-- The read models group runs by day; settled runs of a farm by time.
CREATE INDEX ai_runs_farm_reserved_idx ON farmops.ai_runs (farm_id, reserved_at);

-- 4. Money budgets: per farm and period (and optionally per feature), with the action
-- at the limit and the alert thresholds. Periods are computed from boundaries at read
-- time in the budget's time zone: nothing resets them.
CREATE TABLE farmops.budgets (
    farm_id uuid NOT NULL REFERENCES farmops.farms (id),
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    period text NOT NULL,
    -- '' = every feature (a key column cannot be NULL and stay unique).
    feature text NOT NULL DEFAULT '',
    limit_micro_usd bigint NOT NULL,
    action text NOT NULL DEFAULT 'deny',
    thresholds bigint[] NOT NULL DEFAULT '{80,90,100}',
    time_zone text NOT NULL DEFAULT 'UTC',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text NOT NULL,
    CONSTRAINT budgets_pkey PRIMARY KEY (farm_id, id),
    CONSTRAINT one_budget_per_farm_period_and_feature UNIQUE (farm_id, period, feature),
    CONSTRAINT budget_period_is_day_or_month CHECK (period IN ('day', 'month')),
    CONSTRAINT budget_feature_is_short CHECK (char_length(feature) <= 100),
    CONSTRAINT budget_limit_is_positive CHECK (limit_micro_usd > 0),
    CONSTRAINT budget_action_is_deny_or_require_approval CHECK (action IN ('deny', 'require_approval')),
    CONSTRAINT budget_thresholds_are_percentages CHECK (
        cardinality(thresholds) BETWEEN 1 AND 10 AND 0 < all(thresholds) AND 1000 >= all(thresholds)
    ),
    CONSTRAINT budget_time_zone_is_short CHECK (char_length(time_zone) BETWEEN 1 AND 64)
);
COMMENT ON TABLE farmops.budgets IS
'Money budgets: a limit in micro-dollars per farm and period (day, month; feature '''' = all features), enforced '
'at reserve against spent + held; alert thresholds in percent. Written by farmops.set_budget / drop_budget.';

-- What a budget's period has used: spent (settled cost) and held (the money upper
-- bound of live reservations). One row per budget and period, created by the first
-- reservation of the period; always written while the farm row is held (reserve,
-- settle, expire, record_usage, set_budget take the farm row first), so it is never
-- a hot row of its own. Past periods stay.
CREATE TABLE farmops.budget_usage (
    farm_id uuid NOT NULL,
    budget_id uuid NOT NULL,
    period_start timestamptz NOT NULL,
    spent_micro_usd bigint NOT NULL DEFAULT 0,
    held_micro_usd bigint NOT NULL DEFAULT 0,
    CONSTRAINT budget_usage_pkey PRIMARY KEY (farm_id, budget_id, period_start),
    CONSTRAINT budget_usage_of_a_budget_of_its_farm FOREIGN KEY (farm_id, budget_id)
    REFERENCES farmops.budgets (farm_id, id) ON DELETE CASCADE,
    CONSTRAINT budget_usage_is_never_negative CHECK (spent_micro_usd >= 0 AND held_micro_usd >= 0)
);
COMMENT ON TABLE farmops.budget_usage IS
'Per budget and period: spent (settled cost) and held (money bound of live reservations), in micro-dollars.';

-- Which live run holds how much of which budget period (released at settle or expiry).
CREATE TABLE farmops.budget_holds (
    farm_id uuid NOT NULL,
    ai_run_id uuid NOT NULL,
    budget_id uuid NOT NULL,
    period_start timestamptz NOT NULL,
    held_micro_usd bigint NOT NULL,
    CONSTRAINT budget_holds_pkey PRIMARY KEY (farm_id, ai_run_id, budget_id),
    CONSTRAINT budget_hold_of_a_run_of_its_farm FOREIGN KEY (farm_id, ai_run_id)
    REFERENCES farmops.ai_runs (farm_id, id),
    CONSTRAINT budget_hold_of_a_budget_period FOREIGN KEY (farm_id, budget_id, period_start)
    REFERENCES farmops.budget_usage (farm_id, budget_id, period_start) ON DELETE CASCADE,
    CONSTRAINT budget_hold_is_never_negative CHECK (held_micro_usd >= 0)
);
COMMENT ON TABLE farmops.budget_holds IS
'The money a live run holds in a budget period; deleted when the run settles or expires.';

-- Alerts: each threshold fires once per farm, budget and period (the key), with a
-- pg_notify on channel farmops_budget_alert. Rows outlive the budget (history).
CREATE TABLE farmops.budget_alerts (
    farm_id uuid NOT NULL REFERENCES farmops.farms (id),
    budget_id uuid NOT NULL,
    period_start timestamptz NOT NULL,
    threshold_percent bigint NOT NULL,
    period text NOT NULL,
    feature text NOT NULL,
    limit_micro_usd bigint NOT NULL,
    used_micro_usd bigint NOT NULL,
    ai_run_id uuid,
    fired_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT each_budget_alert_fires_once_per_period PRIMARY KEY (farm_id, budget_id, period_start, threshold_percent)
);
COMMENT ON TABLE farmops.budget_alerts IS
'Budget threshold alerts: one row per farm, budget, period and threshold, fired once (pg_notify channel '
'farmops_budget_alert, payload {farm_id, budget_id, period_start, threshold_percent}).';

-- 5. Who may change budgets: owners (a capability, README matrix).
INSERT INTO farmops.role_capabilities (role, capability) VALUES ('owner', 'manage_budgets');

-- 6. settle_run takes the prompt-cache token counts: the old signature goes (the
-- functions re-create the new one; callers use named arguments).
-- squawk-ignore ban-drop-function
DROP FUNCTION IF EXISTS farmops.settle_run(uuid, text, integer, integer, integer, integer, text, text);
