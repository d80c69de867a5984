-- The governed run's fused calls (issue 11, goal 2): the input screen with the reservation
-- and the output screen with the settle, each ONE call (one round trip, one transaction), so a
-- text answer is three round trips: reserve_screened_run, start + retrieve, finish_run.
-- screen_input, reserve_run, screen_output, record_guardrail_intervention and settle_run stay
-- as they are; these two do the same work through the same private cores.

CREATE OR REPLACE FUNCTION farmops.reserve_screened_run(
    p_farm_id uuid,
    p_user_id text,
    p_prompt text,
    p_feature text,
    p_model text,
    p_max_input_tokens integer DEFAULT NULL,
    p_max_output_tokens integer DEFAULT NULL,
    p_request_id text DEFAULT NULL,
    p_ttl interval DEFAULT '15 minutes',
    OUT verdict text,
    OUT categories text[],
    OUT rule_names text[],
    OUT redacted text,
    OUT event_id uuid,
    OUT run farmops.ai_runs
)
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_farm uuid;
    v_user text;
    v_role text;
    v_screen record;
BEGIN
    -- The member, verified once: the transaction's verified context (it must name the same
    -- member), else begin_tenant's checks and its signed context, entered here for this
    -- transaction only (the farm's guard rules, PII policy and the event's user come from it).
    IF coalesce(current_setting('farmops.farm_id', true), '') <> '' THEN
        SELECT c.farm_id, c.user_id, c.member_role INTO v_farm, v_user, v_role FROM farmops.tenant_context() AS c;
    END IF;
    IF v_farm IS NOT NULL THEN
        IF (v_farm, v_user) IS DISTINCT FROM (p_farm_id, p_user_id) THEN
            RAISE EXCEPTION 'this transaction acts for another member or farm' USING ERRCODE = 'OF002';
        END IF;
    ELSE
        PERFORM farmops._assert_login_allowed();  -- OF004
        PERFORM farmops._assert_unverified_identity_allowed();  -- OF024
        v_role := farmops._enter_tenant(p_farm_id, p_user_id);  -- OF006 no id, OF002 not a member
    END IF;
    IF NOT farmops.role_has_capability(v_role, 'run_ai') THEN
        RAISE EXCEPTION 'role % may not do this: it lacks the capability run_ai', v_role USING ERRCODE = 'OF003';
    END IF;

    -- The input guards first (OF006 NULL or over 1 MiB): a blocked message is recorded and
    -- nothing is reserved; the transaction commits the event alone.
    SELECT s.* INTO v_screen FROM farmops._screen_input(p_farm_id, p_prompt) AS s;
    verdict := v_screen.verdict;
    categories := v_screen.categories;
    rule_names := v_screen.rule_names;
    redacted := v_screen.redacted;
    event_id := v_screen.event_id;
    IF verdict = 'block' THEN
        RETURN;
    END IF;

    -- Then exactly reserve_run's reservation (same core, same request-id space); the summary is
    -- the prompt's first 4000 characters, redacted by the run row's trigger when stored.
    run := farmops._reserve(
        p_farm_id, p_user_id, p_feature, p_model,
        farmops.estimate_credits(p_model, p_max_input_tokens, p_max_output_tokens),
        p_request_id, p_ttl, left(p_prompt, 4000),
        nullif(coalesce(p_max_input_tokens, 0)::bigint + coalesce(p_max_output_tokens, 0), 0)
    );
END
$fn$;
COMMENT ON FUNCTION farmops.reserve_screened_run(uuid, text, text, text, text, integer, integer, text, interval) IS
'The governed run''s first step in ONE call, no begin_tenant needed: checks the member like reserve_run (run_ai), '
'screens p_prompt like screen_input (verdict, categories, rule_names, redacted, event_id), and unless it is '
'blocked reserves like reserve_run with the token bounds given (run: the run row; NULL when blocked: recorded '
'as refused_input, nothing reserved). OF002, OF003, OF004, OF024, OF101, OF106, OF402, OF405, OF410, OF411, '
'OF413, OF006 (NULL prompt or over 1 MiB, bad arguments).';

CREATE OR REPLACE FUNCTION farmops.finish_run(
    p_run_id uuid,
    p_status text,
    p_answer text DEFAULT NULL,
    p_input_tokens integer DEFAULT NULL,
    p_output_tokens integer DEFAULT NULL,
    p_latency_ms integer DEFAULT NULL,
    p_error text DEFAULT NULL,
    p_cache_read_tokens integer DEFAULT NULL,
    p_cache_write_tokens integer DEFAULT NULL,
    p_guardrail_stage text DEFAULT NULL,
    p_guardrail_categories text[] DEFAULT NULL,
    OUT verdict text,
    OUT categories text[],
    OUT rule_names text[],
    OUT answer text,
    OUT guardrail_event_id uuid,
    OUT run farmops.ai_runs
)
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_farm uuid := farmops.require_capability('run_ai');
    v_run farmops.ai_runs;
    v_live boolean;
BEGIN
    PERFORM farmops._assert_given(p_run_id, 'run id');
    IF p_status IS NULL OR p_status NOT IN ('succeeded', 'failed') THEN
        RAISE EXCEPTION 'a run settles as succeeded or failed, not %', coalesce(p_status, 'NULL')
            USING ERRCODE = 'OF006';
    END IF;
    -- settle_run's lock order: the farm row, then the run row, here for update at once (the
    -- screens' locks and the settle's are then this transaction's own).
    PERFORM FROM farmops.farms AS f WHERE f.id = v_farm FOR NO KEY UPDATE;
    v_run := farmops._lock_run(v_farm, p_run_id, false, true);  -- OF102
    PERFORM farmops._assert_may_drive_run(v_run);  -- OF003
    -- A live run (also one past its deadline that the expirer has not claimed: it may still
    -- settle) records what its guards found; a settled one is only compared (the same finish
    -- again is a no-op, other values OF104), an expired one is OF105 below.
    v_live := v_run.status IN ('reserved', 'running');
    IF p_guardrail_stage IS NOT NULL OR p_guardrail_categories IS NOT NULL THEN
        IF v_live THEN
            guardrail_event_id := farmops._guardrail_event(v_farm, p_run_id, p_guardrail_stage, p_guardrail_categories);
        END IF;
    END IF;
    answer := nullif(p_answer, '');
    IF answer IS NOT NULL THEN
        -- OF006 over 1 MiB: nothing is written (the answer cannot be screened, so it is not stored).
        SELECT s.verdict, s.categories, s.rule_names, s.answer INTO verdict, categories, rule_names, answer
        FROM farmops._screen_answer(v_farm, p_run_id, p_answer, v_live) AS s;
    END IF;
    run := farmops.settle_run(
        p_run_id => p_run_id,
        p_status => p_status,
        p_input_tokens => p_input_tokens,
        p_output_tokens => p_output_tokens,
        p_latency_ms => p_latency_ms,
        p_output_summary => left(answer, 4000),
        p_error => p_error,
        p_cache_read_tokens => p_cache_read_tokens,
        p_cache_write_tokens => p_cache_write_tokens
    );
END
$fn$;
COMMENT ON FUNCTION farmops.finish_run(
    uuid, text, text, integer, integer, integer, text, integer, integer, text, text[]
) IS
'The governed run''s last step in ONE call (run_ai; the run''s driver): records a Bedrock Guardrail intervention '
'when p_guardrail_stage/categories are given (as record_guardrail_intervention), screens p_answer like '
'screen_output (verdict, categories, rule_names; answer = the refusal when blocked, else redacted) and settles '
'like settle_run with the screened answer as the output summary (its first 4000 characters): run is the settled '
'row. The same finish again is a no-op (nothing recorded twice). OF102, OF003, OF104, OF105, OF006 (bad status '
'or stage, an answer over 1 MiB, negative numbers; nothing is written).';
