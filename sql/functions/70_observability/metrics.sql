-- Metrics: farmops.metrics() returns (name, labels, value) rows, read from the
-- security-invoker views named farmops.metrics_* (row level security decides
-- which farms a caller sees: its own in a tenant context, every farm for the
-- auditor). No view scans history: counters (farmops.metric_counters, bumped
-- where a run closes, a draft is decided, a step is recorded) and gauges over
-- bounded sets (live runs, pending drafts, farms).
--
-- Adding a metric, in one place:
--   a counter: PERFORM farmops._count(v_farm, 'farmops_x_total', jsonb_build_object(...))
--     where it happens (it is exported by metrics_counters), plus its row in metric_help();
--   a gauge: a view farmops.metrics_<what> WITH (security_invoker = true) returning
--     (name text, labels jsonb, value double precision) with a 'farm' label, plus its
--     row in metric_help(). metrics() picks every metrics_* view up.
-- Counter triggers fire ALWAYS, like every farmops trigger (replica sessions too).
-- Never count on the reservation path (a hot row under the farm lock): a run's
-- reservation is counted when it closes (reserved = closed reservations + held).

CREATE OR REPLACE FUNCTION farmops._count(p_farm_id uuid, p_name text, p_labels jsonb, p_delta bigint DEFAULT 1)
RETURNS void
LANGUAGE sql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
    INSERT INTO farmops.metric_counters AS c (farm_id, name, labels, value)
    SELECT p_farm_id, p_name, coalesce(p_labels, '{}'::jsonb), p_delta
    WHERE p_delta > 0
    ON CONFLICT (farm_id, name, labels) DO UPDATE SET value = c.value + excluded.value, updated_at = now();
$fn$;
COMMENT ON FUNCTION farmops._count(uuid, text, jsonb, bigint) IS
'Private: adds p_delta (> 0, else nothing) to one counter of a farm (farmops.metric_counters).';

-- A run closes (settled or expired): runs, tokens and credits by feature and model.
CREATE OR REPLACE FUNCTION farmops._count_closed_run()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_labels jsonb := jsonb_build_object('feature', new.feature, 'model', new.model);
    v_charged bigint := coalesce(new.credits_actual, 0) - new.credits_shortfall;
BEGIN
    -- One statement for every counter of the closing run (the settle path holds the farm row).
    INSERT INTO farmops.metric_counters AS c (farm_id, name, labels, value)
    SELECT new.farm_id, k.name, k.labels, k.delta
    FROM (VALUES
        ('farmops_runs_total', v_labels || jsonb_build_object('status', new.status), 1::bigint),
        ('farmops_internal_credits_reserved_closed', v_labels, new.credits_reserved::bigint),
        ('farmops_credits_charged_total', v_labels, v_charged),
        (
            'farmops_credits_refunded_total', v_labels,
            greatest(new.credits_reserved - coalesce(new.credits_actual, 0), 0)::bigint
        ),
        ('farmops_credits_shortfall_total', v_labels, new.credits_shortfall::bigint),
        ('farmops_tokens_total', v_labels || '{"kind": "input"}', coalesce(new.input_tokens, 0)::bigint),
        ('farmops_tokens_total', v_labels || '{"kind": "output"}', coalesce(new.output_tokens, 0)::bigint),
        ('farmops_reservations_expired_total', v_labels, (new.status = 'expired')::integer::bigint)
    ) AS k (name, labels, delta)
    WHERE k.delta > 0
    ON CONFLICT (farm_id, name, labels) DO UPDATE SET value = c.value + excluded.value, updated_at = now();
    RETURN NULL;
END
$fn$;
COMMENT ON FUNCTION farmops._count_closed_run() IS
'Trigger: counts a run that closes (runs, credits charged / refunded / shortfall, tokens, expiries).';

DROP TRIGGER IF EXISTS ai_runs_are_counted_when_closed ON farmops.ai_runs;
CREATE TRIGGER ai_runs_are_counted_when_closed
AFTER UPDATE OF status ON farmops.ai_runs
FOR EACH ROW
WHEN (old.status IN ('reserved', 'running') AND new.status IN ('succeeded', 'failed', 'expired'))
EXECUTE FUNCTION farmops._count_closed_run();
ALTER TABLE farmops.ai_runs ENABLE ALWAYS TRIGGER ai_runs_are_counted_when_closed;

-- A draft is made or decided.
CREATE OR REPLACE FUNCTION farmops._count_draft()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    PERFORM farmops._count(
        new.farm_id, 'farmops_drafts_total',
        jsonb_build_object('record_type', new.record_type, 'status', new.status)
    );
    RETURN NULL;
END
$fn$;
COMMENT ON FUNCTION farmops._count_draft() IS
'Trigger: counts drafts by record type and status as they are created (pending, auto_applied) and decided '
'(confirmed, discarded, expired).';

DROP TRIGGER IF EXISTS assistant_drafts_are_counted ON farmops.assistant_drafts;
DROP TRIGGER IF EXISTS assistant_drafts_are_counted_when_made ON farmops.assistant_drafts;
CREATE TRIGGER assistant_drafts_are_counted_when_made
AFTER INSERT ON farmops.assistant_drafts
FOR EACH ROW
EXECUTE FUNCTION farmops._count_draft();
ALTER TABLE farmops.assistant_drafts ENABLE ALWAYS TRIGGER assistant_drafts_are_counted_when_made;
DROP TRIGGER IF EXISTS assistant_drafts_are_counted_when_decided ON farmops.assistant_drafts;
CREATE TRIGGER assistant_drafts_are_counted_when_decided
AFTER UPDATE OF status ON farmops.assistant_drafts
FOR EACH ROW
WHEN (old.status IS DISTINCT FROM new.status)
EXECUTE FUNCTION farmops._count_draft();
ALTER TABLE farmops.assistant_drafts ENABLE ALWAYS TRIGGER assistant_drafts_are_counted_when_decided;

-- Steps recorded: model calls by stop reason, tool calls by outcome, guard verdicts
-- by stage and category. One statement per batch (a transition table).
CREATE OR REPLACE FUNCTION farmops._count_steps()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    INSERT INTO farmops.metric_counters AS c (farm_id, name, labels, value)
    SELECT k.farm_id, k.name, k.labels, count(*)
    FROM (
        SELECT
            n.farm_id, 'farmops_model_calls_total' AS name,
            jsonb_build_object('model', n.model, 'stop_reason', coalesce(n.stop_reason, 'none'),
                'guardrail', coalesce(n.guardrail, 'none')) AS labels
        FROM new_steps AS n WHERE n.kind = 'model'
        UNION ALL
        SELECT n.farm_id, 'farmops_tool_calls_total', jsonb_build_object('tool', n.tool_name, 'outcome', n.outcome)
        FROM new_steps AS n WHERE n.kind = 'tool'
        UNION ALL
        SELECT
            n.farm_id, 'farmops_guard_verdicts_total',
            jsonb_build_object('stage', coalesce(n.detail ->> 'stage', 'input'), 'verdict', n.guardrail,
                'category', cat.category)
        FROM new_steps AS n
        CROSS JOIN LATERAL (
            SELECT c.value AS category FROM jsonb_array_elements_text(
                CASE WHEN jsonb_typeof(n.detail -> 'categories') = 'array' THEN n.detail -> 'categories' END
            ) AS c
            UNION ALL
            SELECT 'none' WHERE coalesce(jsonb_array_length(
                CASE WHEN jsonb_typeof(n.detail -> 'categories') = 'array' THEN n.detail -> 'categories' END
            ), 0) = 0
        ) AS cat
        WHERE n.kind = 'guard' AND n.guardrail IS NOT NULL
    ) AS k
    GROUP BY k.farm_id, k.name, k.labels
    ON CONFLICT (farm_id, name, labels) DO UPDATE SET value = c.value + excluded.value, updated_at = now();
    -- Cache tokens are sums, not counts.
    INSERT INTO farmops.metric_counters AS c (farm_id, name, labels, value)
    SELECT n.farm_id, 'farmops_cache_tokens_total', jsonb_build_object('model', n.model, 'kind', k.kind), sum(k.tokens)
    FROM new_steps AS n
    CROSS JOIN LATERAL (VALUES ('read', n.cache_read_tokens), ('write', n.cache_write_tokens)) AS k (kind, tokens)
    WHERE n.kind = 'model' AND k.tokens > 0
    GROUP BY n.farm_id, n.model, k.kind
    ON CONFLICT (farm_id, name, labels) DO UPDATE SET value = c.value + excluded.value, updated_at = now();
    RETURN NULL;
END
$fn$;
COMMENT ON FUNCTION farmops._count_steps() IS
'Trigger (per statement): counts recorded model calls, tool calls by outcome, guard verdicts by stage and '
'category, and cache tokens.';

DROP TRIGGER IF EXISTS ai_run_steps_are_counted ON farmops.ai_run_steps;
CREATE TRIGGER ai_run_steps_are_counted
AFTER INSERT ON farmops.ai_run_steps
REFERENCING NEW TABLE AS new_steps
FOR EACH STATEMENT
EXECUTE FUNCTION farmops._count_steps();
ALTER TABLE farmops.ai_run_steps ENABLE ALWAYS TRIGGER ai_run_steps_are_counted;

-- The views. Every one WITH (security_invoker = true): the caller's row level
-- security applies to the tables below.

CREATE OR REPLACE VIEW farmops.metrics_counters WITH (security_invoker = true) AS
SELECT
    c.name,
    c.labels || jsonb_build_object('farm', c.farm_id) AS labels,
    c.value::double precision AS value
FROM farmops.metric_counters AS c
WHERE c.name NOT LIKE 'farmops\_internal\_%';
COMMENT ON VIEW farmops.metrics_counters IS
'Metrics: every public counter of farmops.metric_counters, with the farm as a label.';

-- Bounded by the live runs (the partial index ai_runs_live_expiry_idx), never by history.
CREATE OR REPLACE VIEW farmops.metrics_live_runs WITH (security_invoker = true) AS
SELECT
    'farmops_runs_live' AS name,
    jsonb_build_object('farm', r.farm_id, 'feature', r.feature, 'model', r.model, 'status', r.status) AS labels,
    count(*)::double precision AS value
FROM farmops.ai_runs AS r
WHERE r.status IN ('reserved', 'running')
GROUP BY r.farm_id, r.feature, r.model, r.status
UNION ALL
SELECT
    'farmops_credits_held' AS name,
    jsonb_build_object('farm', r.farm_id, 'feature', r.feature, 'model', r.model) AS labels,
    sum(r.credits_reserved)::double precision AS value
FROM farmops.ai_runs AS r
WHERE r.status IN ('reserved', 'running')
GROUP BY r.farm_id, r.feature, r.model;
COMMENT ON VIEW farmops.metrics_live_runs IS
'Metrics: live runs (reserved, running) and the credits they hold, by farm, feature and model.';

-- Reserved = every reservation ever made = those closed (counted when they closed) + those held now.
CREATE OR REPLACE VIEW farmops.metrics_credits WITH (security_invoker = true) AS
SELECT
    'farmops_credits_reserved_total' AS name,
    x.labels || jsonb_build_object('farm', x.farm_id) AS labels,
    sum(x.credits)::double precision AS value
FROM (
    SELECT
        c.farm_id,
        c.labels,
        c.value AS credits
    FROM farmops.metric_counters AS c
    WHERE c.name = 'farmops_internal_credits_reserved_closed'
    UNION ALL
    SELECT
        r.farm_id,
        jsonb_build_object('feature', r.feature, 'model', r.model) AS labels,
        r.credits_reserved AS credits
    FROM farmops.ai_runs AS r
    WHERE r.status IN ('reserved', 'running')
) AS x
GROUP BY x.farm_id, x.labels
UNION ALL
SELECT
    'farmops_credits_balance' AS name,
    jsonb_build_object('farm', f.id) AS labels,
    f.credit_balance::double precision AS value
FROM farmops.farms AS f
UNION ALL
SELECT
    'farmops_farm_info' AS name,
    jsonb_build_object('farm', f.id, 'name', f.name) AS labels,
    1 AS value
FROM farmops.farms AS f;
COMMENT ON VIEW farmops.metrics_credits IS
'Metrics: credits reserved (closed reservations + held), each farm''s balance, and farm names (farmops_farm_info).';

-- Bounded by the pending drafts (the partial index assistant_drafts_pending_expiry_idx).
CREATE OR REPLACE VIEW farmops.metrics_pending_drafts WITH (security_invoker = true) AS
SELECT
    'farmops_drafts_pending' AS name,
    jsonb_build_object('farm', d.farm_id, 'record_type', d.record_type) AS labels,
    count(*)::double precision AS value
FROM farmops.assistant_drafts AS d
WHERE d.status = 'pending'
GROUP BY d.farm_id, d.record_type;
COMMENT ON VIEW farmops.metrics_pending_drafts IS 'Metrics: drafts waiting for a human, by farm and record type.';

CREATE OR REPLACE FUNCTION farmops.metric_help()
RETURNS TABLE (name text, kind text, help text)
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
    VALUES
    ('farmops_runs_total', 'counter', 'AI runs closed, by farm, feature, model and status (succeeded, failed, expired).'),
    ('farmops_runs_live', 'gauge', 'AI runs reserved or running now.'),
    ('farmops_credits_reserved_total', 'counter', 'Credits ever reserved (closed reservations plus those held).'),
    ('farmops_credits_charged_total', 'counter', 'Credits charged by settled runs (actual minus shortfall).'),
    ('farmops_credits_refunded_total', 'counter', 'Credits refunded when runs settled or expired.'),
    ('farmops_credits_shortfall_total', 'counter', 'Credits runs cost beyond what the farm could pay.'),
    ('farmops_credits_held', 'gauge', 'Credits held by live reservations.'),
    ('farmops_credits_balance', 'gauge', 'Each farm''s credit balance.'),
    ('farmops_farm_info', 'gauge', 'Always 1: the farm''s name as a label.'),
    ('farmops_tokens_total', 'counter', 'Model tokens of closed runs, by kind (input, output).'),
    ('farmops_cache_tokens_total', 'counter', 'Prompt-cache tokens reported by model calls (read, write).'),
    ('farmops_reservations_expired_total', 'counter', 'Reservations refunded by expiry (crashed or lost workers).'),
    ('farmops_drafts_total', 'counter', 'Drafts by record type and status as they were made and decided.'),
    ('farmops_drafts_pending', 'gauge', 'Drafts waiting for a human now.'),
    ('farmops_model_calls_total', 'counter', 'Model calls recorded as run steps, by model, stop reason, guardrail.'),
    ('farmops_tool_calls_total', 'counter', 'Tool calls recorded as run steps, by tool and the database''s outcome.'),
    ('farmops_guard_verdicts_total', 'counter', 'Guard checks recorded as run steps, by stage, verdict, category.'),
    ('farmops_guard_events_total', 'counter', 'Guard flags and blocks the database recorded (guard_events), by stage, verdict, category.'),
    ('farmops_cost_microdollars_total', 'counter', 'What closed runs and metered embedding calls cost, in micro-dollars.'),
    ('farmops_pii_findings_total', 'counter', 'PII findings the database redacted from stored text, by kind.'),
    ('farmops_budget_alerts_total', 'counter', 'Budget threshold alerts fired (each once per budget and period).'),
    ('farmops_rate_limit_refusals_total', 'counter', 'Reservations refused by a farm or member rate limit (OF402), by limit.'),
    ('farmops_budget_spent_microdollars', 'gauge', 'Money spent in each budget''s current period.'),
    ('farmops_budget_held_microdollars', 'gauge', 'Money held by live reservations against each budget.'),
    ('farmops_budget_limit_microdollars', 'gauge', 'Each budget''s limit for its period.'),
    ('farmops_audit_head_age_seconds', 'gauge', 'Seconds since each farm''s audit chain head was sealed.')
$fn$;
COMMENT ON FUNCTION farmops.metric_help() IS
'The type (counter or gauge) and help text of every metric farmops.metrics() can return.';

CREATE OR REPLACE FUNCTION farmops.metrics()
RETURNS TABLE (name text, labels jsonb, value double precision)
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_view regclass;
BEGIN
    -- Every farmops.metrics_* view, in name order; each runs with the caller's rights.
    FOR v_view IN
        SELECT c.oid::regclass
        FROM pg_catalog.pg_class AS c
        WHERE c.relnamespace = 'farmops'::regnamespace AND c.relkind = 'v' AND c.relname LIKE 'metrics\_%'
        ORDER BY c.relname
    LOOP
        RETURN QUERY EXECUTE format('SELECT m.name::text, m.labels::jsonb, m.value::double precision FROM %s AS m',
            v_view);
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION farmops.metrics() IS
'Every metric as (name, labels, value) rows, from the farmops.metrics_* views under the caller''s row level '
'security: a member in a tenant context sees their farm, farmops_auditor every farm, no context no farm.';
