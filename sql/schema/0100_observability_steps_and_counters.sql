-- Observability (issue 15): the steps of an AI run, and the counters behind
-- farmops.metrics().
--
-- ai_run_steps: one row per thing a governed run did, in order (step_no): the
-- input (redacted, with the prompt's sha256 that makes replay safe), guard
-- checks, each model call, each tool call with the database's outcome. Written
-- only by farmops.record_run_steps(), in the transactions the client already
-- opens; append-only. Retrievals stay in ai_run_retrievals and are tied to the
-- step that used them by search_id.
--
-- metric_counters: cumulative counters per farm (Prometheus counters are
-- cumulative), bumped by triggers where a run closes or a draft is decided, and
-- by farmops._count() from any function. Never on the reservation path.

CREATE TABLE farmops.ai_run_steps (
    farm_id uuid NOT NULL REFERENCES farmops.farms (id),
    ai_run_id uuid NOT NULL,
    step_no bigint NOT NULL CHECK (step_no BETWEEN 0 AND 10000),
    kind text NOT NULL CONSTRAINT run_step_kind_is_known CHECK (kind IN ('input', 'guard', 'model', 'tool')),
    -- model and tool steps: the Converse turn (0-based) that made or answered them.
    turn bigint CHECK (turn BETWEEN 0 AND 10000),
    model text CHECK (char_length(model) BETWEEN 1 AND 200),
    input_tokens bigint CHECK (input_tokens >= 0),
    output_tokens bigint CHECK (output_tokens >= 0),
    cache_read_tokens bigint CHECK (cache_read_tokens >= 0),
    cache_write_tokens bigint CHECK (cache_write_tokens >= 0),
    latency_ms bigint CHECK (latency_ms >= 0),
    stop_reason text CHECK (char_length(stop_reason) BETWEEN 1 AND 100),
    -- model: the provider guardrail's outcome (e.g. 'intervened'); guard: the verdict.
    guardrail text CHECK (char_length(guardrail) BETWEEN 1 AND 100),
    tool_name text CHECK (char_length(tool_name) BETWEEN 1 AND 200),
    tool_input jsonb CHECK (octet_length(tool_input::text) <= 65536),
    outcome text CONSTRAINT run_step_outcome_is_known
    CHECK (outcome IN ('drafted', 'written', 'refused', 'rejected', 'remembered', 'searched', 'handled')),
    reason text CHECK (char_length(reason) <= 1000),
    draft_id uuid,
    record_id uuid,
    search_id uuid,
    prompt_sha256 text CHECK (prompt_sha256 ~ '^[0-9a-f]{64}$'),
    input_summary text CHECK (char_length(input_summary) <= 4000),
    output_summary text CHECK (char_length(output_summary) <= 4000),
    provider_request_id text CHECK (char_length(provider_request_id) BETWEEN 1 AND 200),
    detail jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(detail) = 'object'),
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (farm_id, ai_run_id, step_no),
    FOREIGN KEY (farm_id, ai_run_id) REFERENCES farmops.ai_runs (farm_id, id),
    CONSTRAINT input_step_is_step_zero CHECK ((kind = 'input') = (step_no = 0)),
    CONSTRAINT only_the_input_step_has_a_prompt_hash CHECK ((kind = 'input') = (prompt_sha256 IS NOT NULL)),
    CONSTRAINT a_tool_step_names_its_tool_and_outcome
    CHECK ((kind = 'tool') = (tool_name IS NOT NULL AND outcome IS NOT NULL)),
    CONSTRAINT only_refusals_have_a_reason CHECK (outcome IN ('refused', 'rejected') OR reason IS NULL)
);
COMMENT ON TABLE farmops.ai_run_steps IS
'Lineage: what a governed run did, in order: input (redacted), guard checks, model calls, tool calls and the '
'database''s outcome of each. Written by farmops.record_run_steps(); append-only.';
COMMENT ON COLUMN farmops.ai_run_steps.outcome IS
'Tool steps: what the database did (drafted, written, refused with its reason, rejected, remembered, searched), '
'or handled by one of the service''s own tools.';
COMMENT ON COLUMN farmops.ai_run_steps.search_id IS
'The search (ai_run_retrievals.search_id) whose passages this step used: the first model call uses the '
'run''s first search; a search_knowledge tool call its own.';
COMMENT ON COLUMN farmops.ai_run_steps.prompt_sha256 IS
'Input step: sha256 of the whole prompt; a replay with the same request id and another prompt is OF106.';
COMMENT ON COLUMN farmops.ai_run_steps.input_summary IS
'Redacted by farmops.redact_pii() when stored (first 4000 characters).';
COMMENT ON COLUMN farmops.ai_run_steps.output_summary IS
'Redacted by farmops.redact_pii() when stored (first 4000 characters).';

CREATE TABLE farmops.metric_counters (
    farm_id uuid NOT NULL REFERENCES farmops.farms (id),
    name text NOT NULL CONSTRAINT metric_name_is_prometheus_safe CHECK (name ~ '^farmops_[a-z0-9_]{1,100}$'),
    labels jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(labels) = 'object'),
    value bigint NOT NULL DEFAULT 0 CHECK (value >= 0),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (farm_id, name, labels)
);
COMMENT ON TABLE farmops.metric_counters IS
'Cumulative counters per farm behind farmops.metrics() (bumped by farmops._count() where a run closes, a draft '
'is decided, a guard verdict is recorded): no metric scans history.';

-- An installation that existed before: its counters start from its history, read
-- once here (later only the triggers count, never a scan). Runs closed so far and
-- drafts in their current state (each draft counted once, as it stands now).
INSERT INTO farmops.metric_counters (farm_id, name, labels, value)
SELECT
    k.farm_id,
    k.name,
    k.labels,
    sum(k.delta)::bigint AS value
FROM (
    SELECT
        r.farm_id,
        x.name,
        jsonb_build_object('feature', r.feature, 'model', r.model) || x.extra AS labels,
        x.delta
    FROM farmops.ai_runs AS r
    CROSS JOIN
        LATERAL (
            VALUES
            ('farmops_runs_total', jsonb_build_object('status', r.status), 1::bigint),
            ('farmops_internal_credits_reserved_closed', '{}'::jsonb, r.credits_reserved::bigint),
            (
                'farmops_credits_charged_total',
                '{}'::jsonb,
                (coalesce(r.credits_actual, 0) - r.credits_shortfall)::bigint
            ),
            (
                'farmops_credits_refunded_total', '{}'::jsonb,
                greatest(r.credits_reserved - coalesce(r.credits_actual, 0), 0)::bigint
            ),
            ('farmops_credits_shortfall_total', '{}'::jsonb, r.credits_shortfall::bigint),
            ('farmops_tokens_total', '{"kind": "input"}'::jsonb, coalesce(r.input_tokens, 0)::bigint),
            ('farmops_tokens_total', '{"kind": "output"}'::jsonb, coalesce(r.output_tokens, 0)::bigint),
            ('farmops_reservations_expired_total', '{}'::jsonb, (r.status = 'expired')::integer::bigint)
        ) AS x (name, extra, delta)
    WHERE r.status IN ('succeeded', 'failed', 'expired')
    UNION ALL
    SELECT
        d.farm_id,
        'farmops_drafts_total' AS name,
        jsonb_build_object('record_type', d.record_type, 'status', d.status) AS labels,
        1 AS delta
    FROM farmops.assistant_drafts AS d
) AS k
WHERE k.delta > 0
GROUP BY k.farm_id, k.name, k.labels;
