-- The metrics of the trust, spend and control domains, added the way metrics.sql says:
-- counters bumped where the event is written (never on the reservation's own path),
-- gauges as security-invoker metrics_* views over bounded sets (one row per budget,
-- one index probe per farm for the audit head). Their help rows: metric_help().

-- Money: what closed runs and metered embedding calls cost.
CREATE OR REPLACE FUNCTION farmops._count_cost()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF tg_table_name = 'ai_runs' THEN
        PERFORM farmops._count(
            new.farm_id, 'farmops_cost_microdollars_total',
            jsonb_build_object('feature', new.feature, 'model', new.model), coalesce(new.cost_micro_usd, 0)
        );
    ELSE
        PERFORM farmops._count(
            new.farm_id, 'farmops_cost_microdollars_total',
            jsonb_build_object('feature', new.feature, 'model', new.model), new.cost_micro_usd
        );
    END IF;
    RETURN NULL;
END
$fn$;
COMMENT ON FUNCTION farmops._count_cost() IS
'Trigger: adds a closed run''s (or a metered embedding call''s) cost in micro-dollars to its farm''s counter.';

DROP TRIGGER IF EXISTS ai_runs_cost_is_counted_when_closed ON farmops.ai_runs;
CREATE TRIGGER ai_runs_cost_is_counted_when_closed
AFTER UPDATE OF status ON farmops.ai_runs
FOR EACH ROW
WHEN (
    old.status IN ('reserved', 'running') AND new.status IN ('succeeded', 'failed', 'expired')
    AND new.cost_micro_usd > 0
)
EXECUTE FUNCTION farmops._count_cost();
ALTER TABLE farmops.ai_runs ENABLE ALWAYS TRIGGER ai_runs_cost_is_counted_when_closed;

DROP TRIGGER IF EXISTS model_usage_cost_is_counted ON farmops.model_usage;
CREATE TRIGGER model_usage_cost_is_counted
AFTER INSERT ON farmops.model_usage
FOR EACH ROW
WHEN (new.cost_micro_usd > 0 AND new.ai_run_id IS NULL)
EXECUTE FUNCTION farmops._count_cost();
ALTER TABLE farmops.model_usage ENABLE ALWAYS TRIGGER model_usage_cost_is_counted;

-- Trust: PII findings by kind, guard verdicts by stage and category, budget alerts.
CREATE OR REPLACE FUNCTION farmops._count_trust_and_alerts()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_category text;
BEGIN
    IF tg_table_name = 'pii_findings' THEN
        PERFORM farmops._count(
            new.farm_id, 'farmops_pii_findings_total', jsonb_build_object('kind', new.kind), new.findings
        );
    ELSIF tg_table_name = 'guard_events' THEN
        FOREACH v_category IN ARRAY coalesce(nullif(new.categories, '{}'), ARRAY['none']) LOOP
            PERFORM farmops._count(
                new.farm_id, 'farmops_guard_events_total',
                jsonb_build_object('stage', new.stage, 'verdict', new.verdict, 'category', v_category)
            );
        END LOOP;
    ELSE
        PERFORM farmops._count(
            new.farm_id, 'farmops_budget_alerts_total',
            jsonb_build_object('period', new.period, 'threshold', new.threshold_percent)
        );
    END IF;
    RETURN NULL;
END
$fn$;
COMMENT ON FUNCTION farmops._count_trust_and_alerts() IS
'Trigger: counts PII findings by kind, guard verdicts by stage and category, and budget alerts by threshold.';

DROP TRIGGER IF EXISTS pii_findings_are_counted ON farmops.pii_findings;
CREATE TRIGGER pii_findings_are_counted AFTER INSERT ON farmops.pii_findings
FOR EACH ROW EXECUTE FUNCTION farmops._count_trust_and_alerts();
ALTER TABLE farmops.pii_findings ENABLE ALWAYS TRIGGER pii_findings_are_counted;

DROP TRIGGER IF EXISTS guard_events_are_counted ON farmops.guard_events;
CREATE TRIGGER guard_events_are_counted AFTER INSERT ON farmops.guard_events
FOR EACH ROW EXECUTE FUNCTION farmops._count_trust_and_alerts();
ALTER TABLE farmops.guard_events ENABLE ALWAYS TRIGGER guard_events_are_counted;

DROP TRIGGER IF EXISTS budget_alerts_are_counted ON farmops.budget_alerts;
CREATE TRIGGER budget_alerts_are_counted AFTER INSERT ON farmops.budget_alerts
FOR EACH ROW EXECUTE FUNCTION farmops._count_trust_and_alerts();
ALTER TABLE farmops.budget_alerts ENABLE ALWAYS TRIGGER budget_alerts_are_counted;

-- Gauges: each budget in its current period, and how old each farm's sealed audit head is.
CREATE OR REPLACE VIEW farmops.metrics_budgets WITH (security_invoker = true) AS
SELECT
    m.name,
    jsonb_build_object('farm', s.farm_id, 'period', s.period, 'feature', s.feature) AS labels,
    m.value
FROM farmops.budget_status AS s
CROSS JOIN LATERAL (
    VALUES
    ('farmops_budget_spent_microdollars', s.spent_micro_usd::double precision),
    ('farmops_budget_held_microdollars', s.held_micro_usd::double precision),
    ('farmops_budget_limit_microdollars', s.limit_micro_usd::double precision)
) AS m (name, value);
COMMENT ON VIEW farmops.metrics_budgets IS
'Metrics: each money budget''s spent, held and limit in its current period (security invoker: RLS applies).';

CREATE OR REPLACE VIEW farmops.metrics_audit WITH (security_invoker = true) AS
SELECT
    'farmops_audit_head_age_seconds' AS name,
    jsonb_build_object('farm', f.id) AS labels,
    extract(EPOCH FROM now() - h.sealed_at)::double precision AS value
FROM farmops.farms AS f
CROSS JOIN LATERAL (
    SELECT a.sealed_at
    FROM farmops.audit_log AS a
    WHERE a.farm_id = f.id
    ORDER BY a.seq DESC
    LIMIT 1
) AS h;
COMMENT ON VIEW farmops.metrics_audit IS
'Metrics: seconds since each farm''s audit chain head was sealed (a stalled sealer shows here).';

-- Rate-limit refusals: a refusal rolls back, so it is counted in a sequence, not in
-- metric_counters (60_control/rate_limit_refusals.sql); rate_limit_refusals() applies
-- the caller's visibility.
CREATE OR REPLACE VIEW farmops.metrics_rate_limits WITH (security_invoker = true) AS
SELECT
    'farmops_rate_limit_refusals_total' AS name,
    jsonb_build_object('farm', r.farm_id, 'limit', r.scope) AS labels,
    r.refusals::double precision AS value
FROM farmops.rate_limit_refusals() AS r;
COMMENT ON VIEW farmops.metrics_rate_limits IS
'Metrics: rate-limit refusals (OF402) per farm and limit (farm, member), for farms that set a limit.';
