-- The steps of a governed run (input, guard checks, model calls, tool calls),
-- recorded in the transactions the client already opens, and the replay of a
-- finished run asked again with the same request id.

CREATE OR REPLACE FUNCTION farmops._assert_input_step_free(p_farm_id uuid, p_run farmops.ai_runs, p_sha256 text)
RETURNS void
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_sha text;
BEGIN
    SELECT st.prompt_sha256 INTO v_sha
    FROM farmops.ai_run_steps AS st
    WHERE st.farm_id = p_farm_id AND st.ai_run_id = p_run.id AND st.step_no = 0;
    IF FOUND THEN
        IF v_sha IS DISTINCT FROM p_sha256 THEN
            RAISE EXCEPTION 'request id % was used for a different prompt', p_run.request_id USING ERRCODE = 'OF106';
        END IF;
        RAISE EXCEPTION 'run % is already being driven for this request', p_run.id
            USING ERRCODE = 'OF501', HINT = 'Ask again with the same request id once it has settled.';
    END IF;
END
$fn$;
COMMENT ON FUNCTION farmops._assert_input_step_free(uuid, farmops.ai_runs, text) IS
'Private: raises OF106 when the run''s input step holds another prompt, OF501 when it holds this one.';

CREATE OR REPLACE FUNCTION farmops.record_run_steps(p_run_id uuid, p_steps jsonb)
RETURNS integer
LANGUAGE plpgsql
VOLATILE
-- Definer: the application cannot write ai_run_steps. Every row is this farm's
-- (the context's) and this run's, checked below.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_farm uuid := farmops.require_capability('run_ai');
    v_run farmops.ai_runs;
    v_input jsonb;
    v_count integer;
    v_claimed boolean;
BEGIN
    PERFORM farmops._assert_given(p_steps, 'steps');
    IF jsonb_typeof(p_steps) <> 'array' OR jsonb_array_length(p_steps) > 200 THEN
        RAISE EXCEPTION 'steps must be a JSON array of at most 200 objects' USING ERRCODE = 'OF006';
    END IF;
    IF EXISTS (SELECT FROM jsonb_array_elements(p_steps) AS s (v) WHERE jsonb_typeof(s.v) <> 'object') THEN
        RAISE EXCEPTION 'every step must be a JSON object' USING ERRCODE = 'OF006';
    END IF;
    v_run := farmops._lock_run(v_farm, p_run_id, false);
    PERFORM farmops._assert_may_drive_run(v_run);

    -- The input step claims the run for one prompt: the same request id asked again
    -- with another prompt is an idempotency conflict, with the same prompt a replay
    -- of a run somebody is still driving.
    -- (Checked again after the insert: a racer's step 0 is seen once ON CONFLICT waited for it.)
    SELECT s.v INTO v_input FROM jsonb_array_elements(p_steps) AS s (v) WHERE s.v ->> 'kind' = 'input' LIMIT 1;
    IF v_input IS NOT NULL THEN
        PERFORM farmops._assert_input_step_free(v_farm, v_run, v_input ->> 'prompt_sha256');
    END IF;

    -- Live, or settled by this very transaction (the client sends its steps right
    -- after settle_run, in the same transaction): never appended to a closed run later.
    IF NOT ((v_run.status IN ('reserved', 'running') AND v_run.expires_at > now()) OR v_run.settled_at = now()) THEN
        RAISE EXCEPTION 'AI run % is not live (status %)', p_run_id, v_run.status USING ERRCODE = 'OF205';
    END IF;

    BEGIN
        WITH given AS (
            SELECT s.*, s.search AS search_no
            FROM jsonb_to_recordset(p_steps) AS s (
                step_no integer, kind text, turn integer, model text, input_tokens integer,
                output_tokens integer, cache_read_tokens integer, cache_write_tokens integer,
                latency_ms integer, stop_reason text, guardrail text, tool_name text, tool_input jsonb,
                outcome text, reason text, draft_id uuid, record_id uuid, search integer,
                prompt_sha256 text, input_summary text, output_summary text, provider_request_id text,
                detail jsonb
            )
        ),

        -- The run's searches in the order they ran: a step names the n-th (1-based).
        searches AS (
            SELECT r.search_id, row_number() OVER (ORDER BY min(r.retrieved_at), min(r.rank)) AS n
            FROM farmops.ai_run_retrievals AS r
            WHERE r.farm_id = v_farm AND r.ai_run_id = p_run_id
            GROUP BY r.search_id
        ),

        ins AS (
            INSERT INTO farmops.ai_run_steps AS st (
            farm_id, ai_run_id, step_no, kind, turn, model, input_tokens, output_tokens,
            cache_read_tokens, cache_write_tokens, latency_ms, stop_reason, guardrail, tool_name,
            tool_input, outcome, reason, draft_id, record_id, search_id, prompt_sha256,
            input_summary, output_summary, provider_request_id, detail
        )
        SELECT
            v_farm, p_run_id, g.step_no, g.kind, g.turn, g.model, g.input_tokens, g.output_tokens,
            g.cache_read_tokens, g.cache_write_tokens, g.latency_ms, g.stop_reason, g.guardrail, g.tool_name,
            g.tool_input, g.outcome, left(g.reason, 1000), g.draft_id, g.record_id,
            (SELECT se.search_id FROM searches AS se WHERE se.n = g.search_no),
            g.prompt_sha256,
            -- Stored redacted, whatever the caller sent.
            left((farmops.redact_pii(left(g.input_summary, 8000))).redacted, 4000),
            left((farmops.redact_pii(left(g.output_summary, 8000))).redacted, 4000),
            g.provider_request_id, coalesce(g.detail, '{}'::jsonb)
        FROM given AS g
            ON CONFLICT (farm_id, ai_run_id, step_no) DO NOTHING
            RETURNING st.step_no
        )

        SELECT count(*), coalesce(bool_or(i.step_no = 0), false) INTO v_count, v_claimed FROM ins AS i;
    EXCEPTION
        WHEN not_null_violation OR check_violation OR data_exception OR invalid_text_representation THEN
            RAISE EXCEPTION 'a step is malformed: %', sqlerrm USING ERRCODE = 'OF006';
    END;

    IF v_input IS NOT NULL AND NOT v_claimed THEN
        -- A racer with the same request id wrote step 0 first (ON CONFLICT waited for it).
        PERFORM farmops._assert_input_step_free(v_farm, v_run, v_input ->> 'prompt_sha256');
    END IF;

    -- What a step points at must be this run's: its drafts, their records, the farm's memories.
    IF EXISTS (
        SELECT FROM farmops.ai_run_steps AS st
        WHERE st.farm_id = v_farm AND st.ai_run_id = p_run_id AND st.recorded_at = now()
            AND (
                (st.draft_id IS NOT NULL AND NOT EXISTS (
                    SELECT FROM farmops.assistant_drafts AS d
                    WHERE d.farm_id = v_farm AND d.ai_run_id = p_run_id AND d.id = st.draft_id
                ))
                OR (st.record_id IS NOT NULL AND NOT EXISTS (
                    SELECT FROM farmops.assistant_drafts AS d
                    WHERE d.farm_id = v_farm AND d.ai_run_id = p_run_id AND d.record_id = st.record_id
                ) AND NOT EXISTS (
                    SELECT FROM farmops.memories AS m WHERE m.farm_id = v_farm AND m.id = st.record_id
                ))
            )
    ) THEN
        RAISE EXCEPTION 'a step names a draft or record that is not this run''s' USING ERRCODE = 'OF006';
    END IF;
    RETURN v_count;
END
$fn$;
COMMENT ON FUNCTION farmops.record_run_steps(uuid, jsonb) IS
'Appends steps (a JSON array of objects: step_no, kind input|guard|model|tool, turn, model, tokens, latency_ms, '
'stop_reason, guardrail, tool_name, tool_input, outcome, reason, draft_id, record_id, search (the n-th search of '
'the run), prompt_sha256, input_summary, output_summary (both stored redacted), provider_request_id, detail) to a '
'live run, or to one settled in this transaction; a step_no already stored is kept. The input step (step 0) '
'claims the run: OF106 when it exists for another prompt, OF501 when it exists (a replay of a live run). '
'OF102, OF003, OF205, OF006.';

CREATE OR REPLACE FUNCTION farmops.replay_run(p_run_id uuid, p_prompt_sha256 text, p_input_summary text DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_farm uuid := farmops.require_capability('run_ai');
    v_run farmops.ai_runs;
    v_sha text;
    v_last farmops.ai_run_steps;
BEGIN
    IF p_run_id IS NULL OR p_prompt_sha256 IS NULL THEN
        RAISE EXCEPTION 'run id and prompt sha256 are required' USING ERRCODE = 'OF006';
    END IF;
    SELECT r.* INTO v_run FROM farmops.ai_runs AS r WHERE r.farm_id = v_farm AND r.id = p_run_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no AI run % in this farm', p_run_id USING ERRCODE = 'OF102';
    END IF;
    SELECT st.prompt_sha256 INTO v_sha
    FROM farmops.ai_run_steps AS st
    WHERE st.farm_id = v_farm AND st.ai_run_id = p_run_id AND st.step_no = 0;
    IF (FOUND AND v_sha IS DISTINCT FROM p_prompt_sha256)
        OR (NOT FOUND AND v_run.input_summary IS DISTINCT FROM p_input_summary) THEN
        RAISE EXCEPTION 'request id % was used for a different prompt', v_run.request_id USING ERRCODE = 'OF106';
    END IF;
    IF v_run.status IN ('reserved', 'running') THEN
        RAISE EXCEPTION 'run % is still running', p_run_id
            USING ERRCODE = 'OF501', HINT = 'Ask again with the same request id once it has settled.';
    END IF;
    SELECT st.* INTO v_last
    FROM farmops.ai_run_steps AS st
    WHERE st.farm_id = v_farm AND st.ai_run_id = p_run_id AND st.kind = 'model'
    ORDER BY st.step_no DESC LIMIT 1;
    RETURN jsonb_build_object(
        'run_id', v_run.id,
        'status', v_run.status,
        'text', coalesce(v_run.output_summary, ''),
        'stop_reason', v_last.stop_reason,
        'error', v_run.error,
        'input_tokens', coalesce(v_run.input_tokens, 0),
        'output_tokens', coalesce(v_run.output_tokens, 0),
        'latency_ms', coalesce(v_run.latency_ms, 0),
        'credits_reserved', v_run.credits_reserved,
        'credits_actual', v_run.credits_actual,
        'credits_shortfall', v_run.credits_shortfall,
        'drafts', coalesce((
            SELECT jsonb_agg(d.id ORDER BY d.created_at, d.id)
            FROM farmops.assistant_drafts AS d
            WHERE d.farm_id = v_farm AND d.ai_run_id = p_run_id AND d.status <> 'auto_applied'
        ), '[]'::jsonb),
        'records', coalesce((
            SELECT jsonb_agg(d.record_id ORDER BY d.created_at, d.id)
            FROM farmops.assistant_drafts AS d
            WHERE d.farm_id = v_farm AND d.ai_run_id = p_run_id AND d.status = 'auto_applied'
        ), '[]'::jsonb),
        'tool_calls', coalesce((
            SELECT jsonb_agg(jsonb_build_object(
                'name', st.tool_name, 'input', st.tool_input, 'outcome', st.outcome, 'reason', st.reason,
                'draft_id', st.draft_id, 'record_id', st.record_id
            ) ORDER BY st.step_no)
            FROM farmops.ai_run_steps AS st
            WHERE st.farm_id = v_farm AND st.ai_run_id = p_run_id AND st.kind = 'tool'
        ), '[]'::jsonb)
    );
END
$fn$;
COMMENT ON FUNCTION farmops.replay_run(uuid, text, text) IS
'The stored result of a finished run asked again with its request id (no model call, no charge): status, text '
'(the stored output summary), tokens, credits, drafts, records, tool calls. OF106 when the run was made for '
'another prompt (its input step''s sha256, or without one its input summary), OF501 while it is still live, '
'OF102, OF003, OF006.';

-- Steps are history: never updated or deleted.
SELECT farmops._attach_append_only('farmops.ai_run_steps');
