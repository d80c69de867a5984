-- The governed run's screens: the user's input before anything is reserved, the model's
-- answer before it is stored and returned. Each is one call: check_text, the farm's PII
-- redaction, and the guard event recorded in the same statement. (Retrieved chunks are
-- screened inside farmops.search_for_run, which withholds them and records why.)

CREATE OR REPLACE FUNCTION farmops._record_guard_event(
    p_farm uuid, p_run_id uuid, p_stage text, p_source text, p_verdict text, p_outcome text,
    p_categories text[], p_rule_names text[]
)
RETURNS uuid
LANGUAGE sql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
    INSERT INTO farmops.guard_events (
        farm_id, ai_run_id, user_id, stage, source, verdict, outcome, categories, rule_names
    )
    VALUES (
        p_farm, p_run_id, farmops.current_user_id(), p_stage, p_source, p_verdict, p_outcome,
        p_categories, p_rule_names
    )
    RETURNING id
$fn$;
COMMENT ON FUNCTION farmops._record_guard_event(uuid, uuid, text, text, text, text, text[], text[]) IS
'Private: appends one guard event (categories and rule names, never text).';

CREATE OR REPLACE FUNCTION farmops._screen_input(
    p_farm uuid,
    p_text text,
    OUT verdict text,
    OUT categories text[],
    OUT rule_names text[],
    OUT redacted text,
    OUT event_id uuid
)
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_check record;
BEGIN
    -- check_text raises OF006 for NULL and over 1 MiB.
    SELECT c.verdict, c.categories, c.rule_names INTO v_check FROM farmops.check_text(p_text, 'input') AS c;
    verdict := v_check.verdict;
    categories := v_check.categories;
    rule_names := v_check.rule_names;
    IF verdict = 'block' THEN
        -- Refused before any reservation: nothing reaches the model, nothing is charged.
        event_id := farmops._record_guard_event(
            p_farm, NULL, 'input', 'farmops', 'block', 'refused_input', categories, rule_names
        );
        RETURN;
    END IF;
    IF verdict = 'flag' THEN
        event_id := farmops._record_guard_event(
            p_farm, NULL, 'input', 'farmops', 'flag', 'flagged', categories, rule_names
        );
    END IF;
    redacted := (farmops._redact_pii(p_text, farmops._pii_keep_kinds(p_farm))).redacted;
END
$fn$;
COMMENT ON FUNCTION farmops._screen_input(uuid, text) IS
'Private: screen_input''s work for the farm of the tenant context (check_text, the guard event, the redaction).';

CREATE OR REPLACE FUNCTION farmops.screen_input(
    p_text text,
    OUT verdict text,
    OUT categories text[],
    OUT rule_names text[],
    OUT redacted text,
    OUT event_id uuid
)
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_farm uuid := farmops.require_capability('run_ai');
BEGIN
    SELECT s.verdict, s.categories, s.rule_names, s.redacted, s.event_id
    INTO verdict, categories, rule_names, redacted, event_id
    FROM farmops._screen_input(v_farm, p_text) AS s;
END
$fn$;
COMMENT ON FUNCTION farmops.screen_input(text) IS
'Owner, manager, worker, agent (run_ai): guards a user''s message before a run. block: recorded in guard_events '
'(refused_input, no run, nothing charged), redacted NULL: do not call the model. Otherwise redacted = the '
'message with the PII the farm does not keep redacted: what the model may see (flag: recorded as flagged, '
'event_id set). OF006 NULL or over 1 MiB.';

CREATE OR REPLACE FUNCTION farmops._screen_answer(
    p_farm uuid,
    p_run_id uuid,
    p_text text,
    p_record boolean,
    OUT verdict text,
    OUT categories text[],
    OUT rule_names text[],
    OUT answer text
)
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    c_refusal constant text :=
        'The answer was withheld: it did not pass this farm''s output guards. Please rephrase the question.';
    v_check record;
    v_red record;
BEGIN
    -- The caller has locked the run. p_record false: the verdict and the answer only (a retried
    -- finish_run of a settled run compares them), no event, no findings.
    SELECT c.verdict, c.categories, c.rule_names INTO v_check FROM farmops.check_text(p_text, 'output') AS c;
    verdict := v_check.verdict;
    categories := v_check.categories;
    rule_names := v_check.rule_names;
    IF verdict = 'block' THEN
        IF p_record THEN
            PERFORM farmops._record_guard_event(
                p_farm, p_run_id, 'output', 'farmops', 'block', 'replaced_output', categories, rule_names
            );
        END IF;
        answer := c_refusal;
        RETURN;
    END IF;
    IF verdict = 'flag' AND p_record THEN
        PERFORM farmops._record_guard_event(
            p_farm, p_run_id, 'output', 'farmops', 'flag', 'flagged', categories, rule_names
        );
    END IF;
    SELECT r.redacted, r.findings INTO v_red
    FROM farmops._redact_pii(p_text, farmops._pii_keep_kinds_of_run(p_farm, p_run_id)) AS r;
    answer := v_red.redacted;
    IF p_record THEN
        INSERT INTO farmops.pii_findings (farm_id, ai_run_id, source, kind, findings)
        SELECT p_farm, p_run_id, 'answer', f ->> 'kind', count(*)
        FROM jsonb_array_elements(v_red.findings) AS f
        GROUP BY f ->> 'kind';
    END IF;
END
$fn$;
COMMENT ON FUNCTION farmops._screen_answer(uuid, uuid, text, boolean) IS
'Private: screen_output''s work on a run the caller locked (check_text, the refusal, the redaction; with '
'p_record the guard event and the PII findings).';

CREATE OR REPLACE FUNCTION farmops.screen_output(
    p_run_id uuid,
    p_text text,
    OUT verdict text,
    OUT categories text[],
    OUT rule_names text[],
    OUT answer text
)
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_farm uuid := farmops.require_capability('run_ai');
BEGIN
    -- The run is this farm's and live (OF102 / OF205), share-locked until the settle.
    PERFORM farmops._assert_may_drive_run(farmops._lock_run(v_farm, p_run_id, true));
    SELECT s.verdict, s.categories, s.rule_names, s.answer INTO verdict, categories, rule_names, answer
    FROM farmops._screen_answer(v_farm, p_run_id, p_text, true) AS s;
END
$fn$;
COMMENT ON FUNCTION farmops.screen_output(uuid, text) IS
'The run''s driver (run_ai; its reserver, an owner or a manager): guards the model''s answer of a live run '
'before it is stored and returned. block: answer = a refusal, recorded (replaced_output); flag: recorded; '
'otherwise (and for flag) answer = the text with the PII the farm does not keep redacted, findings counted for '
'the run (source answer). OF102 not this farm''s run, OF205 not live, OF003 another member''s run, OF006 NULL '
'or over 1 MiB.';

CREATE OR REPLACE FUNCTION farmops._guardrail_event(
    p_farm uuid, p_run_id uuid, p_stage text, p_categories text[]
)
RETURNS uuid
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_categories text[];
BEGIN
    IF p_stage IS NULL OR p_stage NOT IN ('input', 'output') THEN
        RAISE EXCEPTION 'stage must be input or output' USING ERRCODE = 'OF006';
    END IF;
    PERFORM farmops._assert_given(p_categories, 'categories');
    IF cardinality(p_categories) > 64 THEN
        RAISE EXCEPTION 'at most 64 categories' USING ERRCODE = 'OF006';
    END IF;
    v_categories := ARRAY(
        SELECT DISTINCT farmops._text_argument(c, 'category', 100) FROM unnest(p_categories) AS c ORDER BY 1
    );
    RETURN farmops._record_guard_event(
        p_farm, p_run_id, p_stage, 'bedrock_guardrail', 'block', 'intervened', v_categories, '{}'
    );
END
$fn$;
COMMENT ON FUNCTION farmops._guardrail_event(uuid, uuid, text, text[]) IS
'Private: record_guardrail_intervention''s checks and event on a run the caller locked.';

CREATE OR REPLACE FUNCTION farmops.record_guardrail_intervention(
    p_run_id uuid, p_stage text, p_categories text[]
)
RETURNS uuid
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_farm uuid := farmops.require_capability('run_ai');
BEGIN
    PERFORM farmops._assert_may_drive_run(farmops._lock_run(v_farm, p_run_id, true));
    RETURN farmops._guardrail_event(v_farm, p_run_id, p_stage, p_categories);
END
$fn$;
COMMENT ON FUNCTION farmops.record_guardrail_intervention(uuid, text, text[]) IS
'The run''s driver (run_ai): records that a Bedrock Guardrail intervened on a live run''s input or output, with '
'the categories its trace named (policy types, topics, filter types). Returns the event id. OF102, OF205, '
'OF003 as screen_output; OF006 bad stage, NULL or more than 64 categories, a category over 100 characters.';

SELECT farmops._attach_append_only('farmops.guard_events');
