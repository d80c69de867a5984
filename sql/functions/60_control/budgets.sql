-- Money budgets with periods and alerts (issue 14 §4).
--
-- A budget is a limit in micro-dollars per farm and period ('day' or 'month', in the
-- budget's time zone; optionally one feature). Its period is computed from the
-- instant at read time (date_trunc in the budget's zone): no reset job, and every past
-- period's row in farmops.budget_usage stays.
--
-- Enforcement (ADR 0023): farmops._reserve calls _hold_budget AFTER its one statement
-- has debited the farm row, so this transaction already holds the farm row lock: the
-- budget_usage rows of the farm are only ever written under that lock (reserve,
-- settle, expire, record_usage and set_budget all take the farm row first), so check
-- and hold are one atomic step and no interleaving crosses the limit. A reservation
-- holds its money upper bound (the most its credits can buy at the model's price);
-- settle replaces the hold by the cost, expiry releases it. Without a budget the
-- reservation pays one price lookup (unknown models fail closed, OF410) and one
-- index probe of farmops.budgets.

CREATE OR REPLACE FUNCTION farmops._period_start(p_period text, p_time_zone text, p_at timestamptz)
RETURNS timestamptz
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT date_trunc(p_period, p_at, p_time_zone)
$fn$;
COMMENT ON FUNCTION farmops._period_start(text, text, timestamptz) IS
'Private: the start of the day or month containing p_at, in the time zone p_time_zone.';

CREATE OR REPLACE FUNCTION farmops._period_end(p_period text, p_time_zone text, p_start timestamptz)
RETURNS timestamptz
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT ((p_start AT TIME ZONE p_time_zone) + ('1 ' || p_period)::interval) AT TIME ZONE p_time_zone
$fn$;
COMMENT ON FUNCTION farmops._period_end(text, text, timestamptz) IS
'Private: the end (exclusive) of the day or month starting at p_start, in the time zone p_time_zone.';

CREATE OR REPLACE FUNCTION farmops._fire_budget_alerts(
    p_budget farmops.budgets,
    p_period_start timestamptz,
    p_before bigint,
    p_after bigint,
    p_run_id uuid
)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_threshold bigint;
BEGIN
    -- Each threshold crossed upward by this change fires once per farm, budget and period:
    -- the key refuses a second row (callers hold the farm row, and ON CONFLICT covers the
    -- rest), and pg_notify is sent at commit only with the row that made it.
    FOREACH v_threshold IN ARRAY p_budget.thresholds LOOP
        CONTINUE WHEN NOT (
            p_before * 100 < v_threshold::bigint * p_budget.limit_micro_usd
            AND p_after * 100 >= v_threshold::bigint * p_budget.limit_micro_usd
        );
        INSERT INTO farmops.budget_alerts (
            farm_id, budget_id, period_start, threshold_percent, period, feature, limit_micro_usd, used_micro_usd,
            ai_run_id
        )
        VALUES (
            p_budget.farm_id, p_budget.id, p_period_start, v_threshold, p_budget.period, p_budget.feature,
            p_budget.limit_micro_usd, p_after, p_run_id
        )
        ON CONFLICT ON CONSTRAINT each_budget_alert_fires_once_per_period DO NOTHING;
        IF FOUND THEN
            PERFORM pg_notify('farmops_budget_alert', json_build_object(
                'farm_id', p_budget.farm_id, 'budget_id', p_budget.id, 'period_start', p_period_start,
                'threshold_percent', v_threshold
            )::text);
        END IF;
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION farmops._fire_budget_alerts(farmops.budgets, timestamptz, bigint, bigint, uuid) IS
'Private: records (once per farm, budget, period, threshold) and notifies on channel farmops_budget_alert every '
'threshold that usage crossed going from p_before to p_after micro-dollars.';

CREATE OR REPLACE FUNCTION farmops._hold_budget(p_run farmops.ai_runs, p_held_credits integer DEFAULT 0)
RETURNS farmops.ai_runs
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_budget farmops.budgets;
    v_bound bigint;
    v_start timestamptz;
    v_usage farmops.budget_usage;
    v_pending text;
BEGIN
    -- Called by farmops._reserve (p_held_credits 0) and farmops.extend_reservation (the
    -- credits the run held before it grew) with the farm row locked (see the head of this
    -- file): holds the money bound of what the run holds now, less what it held already.
    -- Unknown models fail closed whether or not a budget applies.
    PERFORM farmops.model_price_at(p_run.model, p_run.reserved_at);
    FOR v_budget IN
        SELECT b.* FROM farmops.budgets AS b
        WHERE b.farm_id = p_run.farm_id AND b.feature IN ('', p_run.feature)
        ORDER BY b.id
    LOOP
        IF v_bound IS NULL THEN
            v_bound := farmops._money_bound(p_run.model, p_run.reserved_at, p_run.credits_reserved)
                - CASE WHEN p_held_credits > 0
                    THEN farmops._money_bound(p_run.model, p_run.reserved_at, p_held_credits) ELSE 0 END;
            IF v_bound IS NULL THEN
                RAISE EXCEPTION 'a reservation of model % cannot be bounded in money: a priced token kind costs no '
                    'credits', p_run.model USING ERRCODE = 'OF413';
            END IF;
        END IF;
        v_start := farmops._period_start(v_budget.period, v_budget.time_zone, p_run.reserved_at);
        INSERT INTO farmops.budget_usage AS u (farm_id, budget_id, period_start, held_micro_usd)
        VALUES (p_run.farm_id, v_budget.id, v_start, v_bound)
        ON CONFLICT (farm_id, budget_id, period_start) DO UPDATE
        SET held_micro_usd = u.held_micro_usd + excluded.held_micro_usd
        RETURNING u.* INTO v_usage;
        IF v_usage.spent_micro_usd + v_usage.held_micro_usd > v_budget.limit_micro_usd THEN
            IF v_budget.action = 'require_approval' AND p_held_credits = 0 THEN
                -- A new run over a require_approval budget is held for approval (the policy
                -- engine's state, 60_control/approvals.sql): it keeps its hold, may not start
                -- (OF403) until an owner or manager approves it; rejection or expiry releases it.
                v_pending := format('budget %s%s', v_budget.period,
                    CASE WHEN v_budget.feature = '' THEN '' ELSE ' of feature ' || v_budget.feature END);
            ELSE
                -- Raising undoes the run, the debit and the hold: nothing is written.
                RAISE EXCEPTION 'the % budget% would be exceeded', v_budget.period,
                    CASE WHEN v_budget.feature = '' THEN '' ELSE ' of feature ' || v_budget.feature END
                    USING ERRCODE = 'OF411',
                    DETAIL = format('budget %s, period from %s: limit %s, spent %s, held %s, this run up to %s '
                        'micro-USD', v_budget.id, v_start, v_budget.limit_micro_usd, v_usage.spent_micro_usd,
                        v_usage.held_micro_usd - v_bound, v_bound);
            END IF;
        END IF;
        INSERT INTO farmops.budget_holds AS h (farm_id, ai_run_id, budget_id, period_start, held_micro_usd)
        VALUES (p_run.farm_id, p_run.id, v_budget.id, v_start, v_bound)
        ON CONFLICT (farm_id, ai_run_id, budget_id) DO UPDATE
        SET held_micro_usd = h.held_micro_usd + excluded.held_micro_usd;
        PERFORM farmops._fire_budget_alerts(
            v_budget, v_start, v_usage.spent_micro_usd + v_usage.held_micro_usd - v_bound,
            v_usage.spent_micro_usd + v_usage.held_micro_usd, p_run.id
        );
    END LOOP;
    IF v_pending IS NOT NULL AND p_run.approval IS NULL THEN
        UPDATE farmops.ai_runs AS r SET approval = 'pending', approval_rule = v_pending
        WHERE r.farm_id = p_run.farm_id AND r.id = p_run.id
        RETURNING r.* INTO p_run;
    END IF;
    RETURN p_run;
END
$fn$;
COMMENT ON FUNCTION farmops._hold_budget(farmops.ai_runs, integer) IS
'Private, called by farmops._reserve and extend_reservation with the farm row locked: OF410 for an unpriced model; '
'holds the run''s money upper bound (beyond what p_held_credits already held) in every budget of its farm and '
'feature; if spent + held would exceed one: OF411 (deny; an extension always), or the new run is returned held '
'for approval (require_approval); OF413 if the bound is infinite; fires threshold alerts.';

CREATE OR REPLACE FUNCTION farmops._spend_on_budgets(
    p_farm_id uuid, p_feature text, p_at timestamptz, p_cost bigint, p_run_id uuid
)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_item record;
    v_usage farmops.budget_usage;
    v_locked boolean := false;
BEGIN
    -- Settle (p_cost = the run's cost), expiry (0) and record_usage (no run): the run's
    -- holds are released and the cost is spent, in the period of the hold (else of p_at).
    FOR v_item IN
        SELECT b AS budget, coalesce(h.period_start, farmops._period_start(b.period, b.time_zone, p_at)) AS start,
            coalesce(h.held_micro_usd, 0) AS held
        FROM farmops.budgets AS b
        LEFT JOIN farmops.budget_holds AS h
            ON h.farm_id = b.farm_id AND h.budget_id = b.id AND h.ai_run_id = p_run_id
        WHERE b.farm_id = p_farm_id AND b.feature IN ('', p_feature)
        ORDER BY b.id
    LOOP
        IF NOT v_locked THEN
            -- The farm row first, as everywhere (settle and expiry hold it already).
            PERFORM FROM farmops.farms AS f WHERE f.id = p_farm_id FOR NO KEY UPDATE;
            v_locked := true;
        END IF;
        INSERT INTO farmops.budget_usage AS u (farm_id, budget_id, period_start, spent_micro_usd)
        VALUES (p_farm_id, (v_item.budget).id, v_item.start, p_cost)
        ON CONFLICT (farm_id, budget_id, period_start) DO UPDATE
        SET spent_micro_usd = u.spent_micro_usd + excluded.spent_micro_usd,
            held_micro_usd = greatest(0, u.held_micro_usd - v_item.held)
        RETURNING u.* INTO v_usage;
        IF p_cost > v_item.held THEN
            PERFORM farmops._fire_budget_alerts(
                v_item.budget, v_item.start, v_usage.spent_micro_usd + v_usage.held_micro_usd - p_cost + v_item.held,
                v_usage.spent_micro_usd + v_usage.held_micro_usd, p_run_id
            );
        END IF;
    END LOOP;
    IF p_run_id IS NOT NULL THEN
        DELETE FROM farmops.budget_holds AS h WHERE h.farm_id = p_farm_id AND h.ai_run_id = p_run_id;
    END IF;
END
$fn$;
COMMENT ON FUNCTION farmops._spend_on_budgets(uuid, text, timestamptz, bigint, uuid) IS
'Private: releases a run''s budget holds and counts p_cost micro-dollars as spent in every budget of the farm and '
'feature (the hold''s period, else the period of p_at); fires alerts the spend crosses.';

CREATE OR REPLACE FUNCTION farmops.set_budget(
    p_period text,
    p_limit_micro_usd bigint,
    p_action text DEFAULT 'deny',
    p_feature text DEFAULT NULL,
    p_thresholds integer[] DEFAULT '{80,90,100}',
    p_time_zone text DEFAULT 'UTC'
)
RETURNS farmops.budgets
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_farm uuid := farmops.require_capability('manage_budgets');
    v_feature text := coalesce(farmops._text_argument(p_feature, 'feature', 100, 'line', false), '');
    v_zone text := farmops._text_argument(p_time_zone, 'time zone', 64);
    v_budget farmops.budgets;
    v_start timestamptz;
BEGIN
    IF p_period IS NULL OR p_period NOT IN ('day', 'month') THEN
        RAISE EXCEPTION 'a budget period is day or month, not %', coalesce(p_period, 'NULL') USING ERRCODE = 'OF006';
    END IF;
    PERFORM farmops._assert_in_range(p_limit_micro_usd, 'budget limit (micro-USD)', 1, 1000000000000000);
    IF p_action IS NULL OR p_action NOT IN ('deny', 'require_approval') THEN
        RAISE EXCEPTION 'the action at a budget''s limit is deny or require_approval, not %', coalesce(p_action, 'NULL')
            USING ERRCODE = 'OF006';
    END IF;
    IF p_thresholds IS NULL OR cardinality(p_thresholds) NOT BETWEEN 1 AND 10 OR array_ndims(p_thresholds) <> 1
        OR EXISTS (SELECT FROM unnest(p_thresholds) AS t (v) WHERE t.v IS NULL OR t.v NOT BETWEEN 1 AND 1000) THEN
        RAISE EXCEPTION 'thresholds are 1 to 10 percentages from 1 to 1000' USING ERRCODE = 'OF006';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_timezone_names AS z WHERE z.name = v_zone) THEN
        RAISE EXCEPTION 'unknown time zone %', v_zone USING ERRCODE = 'OF006';
    END IF;

    -- The farm row first (as reserve, settle and expiry): usage rows change under it only.
    PERFORM FROM farmops.farms AS f WHERE f.id = v_farm FOR NO KEY UPDATE;
    INSERT INTO farmops.budgets AS b (
        farm_id, period, feature, limit_micro_usd, action, thresholds, time_zone, updated_by
    )
    VALUES (
        v_farm, p_period, v_feature, p_limit_micro_usd, p_action,
        (SELECT array_agg(DISTINCT t.v ORDER BY t.v) FROM unnest(p_thresholds) AS t (v)), v_zone,
        farmops.current_user_id()
    )
    ON CONFLICT ON CONSTRAINT one_budget_per_farm_period_and_feature DO UPDATE
    SET limit_micro_usd = excluded.limit_micro_usd,
        action = excluded.action,
        thresholds = excluded.thresholds,
        time_zone = excluded.time_zone,
        updated_at = now(),
        updated_by = excluded.updated_by
    RETURNING b.* INTO v_budget;

    -- A budget set mid-period starts from what the period has already spent (settled
    -- runs and metered calls); runs live now count when they settle.
    v_start := farmops._period_start(v_budget.period, v_budget.time_zone, now());
    INSERT INTO farmops.budget_usage (farm_id, budget_id, period_start, spent_micro_usd)
    SELECT v_farm, v_budget.id, v_start, coalesce((
        SELECT sum(r.cost_micro_usd) FROM farmops.ai_runs AS r
        WHERE r.farm_id = v_farm AND r.reserved_at >= v_start AND r.cost_micro_usd IS NOT NULL
            AND v_budget.feature IN ('', r.feature)
    ), 0) + coalesce((
        SELECT sum(u.cost_micro_usd) FROM farmops.model_usage AS u
        WHERE u.farm_id = v_farm AND u.recorded_at >= v_start AND v_budget.feature IN ('', u.feature)
    ), 0)
    ON CONFLICT (farm_id, budget_id, period_start) DO NOTHING;
    RETURN v_budget;
END
$fn$;
COMMENT ON FUNCTION farmops.set_budget(text, bigint, text, text, integer[], text) IS
'Owner (manage_budgets): sets the farm''s money budget for a period (day, month) and optionally one feature: '
'limit in micro-dollars, action at the limit (deny, require_approval), alert thresholds in percent, time zone '
'of the period boundaries. A new budget starts from what the current period already spent. OF003, OF006.';

CREATE OR REPLACE FUNCTION farmops.drop_budget(p_period text, p_feature text DEFAULT NULL)
RETURNS farmops.budgets
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_farm uuid := farmops.require_capability('manage_budgets');
    v_feature text := coalesce(farmops._text_argument(p_feature, 'feature', 100, 'line', false), '');
    v_budget farmops.budgets;
BEGIN
    PERFORM farmops._assert_given(p_period, 'period');
    PERFORM FROM farmops.farms AS f WHERE f.id = v_farm FOR NO KEY UPDATE;
    -- Its usage rows and live holds go with it (cascade); its alerts stay as history.
    DELETE FROM farmops.budgets AS b
    WHERE b.farm_id = v_farm AND b.period = p_period AND b.feature = v_feature
    RETURNING b.* INTO v_budget;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no % budget% in this farm', p_period,
            CASE WHEN v_feature = '' THEN '' ELSE ' for feature ' || v_feature END USING ERRCODE = 'OF415';
    END IF;
    RETURN v_budget;
END
$fn$;
COMMENT ON FUNCTION farmops.drop_budget(text, text) IS
'Owner (manage_budgets): removes the farm''s budget of a period (and feature) with its usage rows; alerts stay. '
'OF415 if there is none, OF003, OF006.';

-- Every budget change is an audited event (the chain holds ids, periods and amounts).
SELECT farmops._attach_audit(
    'farmops.budgets', 'budget', 'id', 'period,feature,limit_micro_usd,action,thresholds', '@context,updated_by,@login'
);
