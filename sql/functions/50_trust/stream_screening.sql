-- A streamed answer released in screened segments (ask_stream): the whole text streamed so far
-- is screened like screen_output screens the finished answer (the farm's guard rules and allow
-- rules, its PII keep policy), and only a prefix of its redacted form that no later text can
-- change is released. Nothing is recorded here: the answer's one guard event, and its PII
-- finding counts, are written by screen_output before the settle.

CREATE OR REPLACE FUNCTION farmops.screen_stream_text(
    p_run_id uuid,
    p_text text,
    OUT verdict text,
    OUT categories text[],
    OUT rule_names text[],
    OUT released text
)
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    -- Held back from the end of the text: longer than any PII match that may hold white space (a
    -- phone number printed as "+1 (2) (3) ..." reaches 58 characters, an IBAN in groups 44, a card
    -- 23), so a match that may still continue is never cut; a match without white space (a token,
    -- an address) cannot span a cut, which is always at white space. The same holds for guard
    -- patterns up to 80 characters long (ADR 0028).
    c_hold constant integer := 80;
    v_farm uuid := farmops.require_capability('run_ai');
    v_check record;
    v_red record;
    v_limit integer;
    v_head text;
    v_cut integer;
    v_inside integer;
    v_grown integer;
BEGIN
    -- The run is this farm's, live and the caller's to drive (OF102 / OF205 / OF403 / OF003).
    PERFORM farmops._assert_may_drive_run(farmops._lock_run(v_farm, p_run_id, true));
    -- check_text raises OF006 for NULL and over 1 MiB.
    SELECT c.verdict, c.categories, c.rule_names INTO v_check FROM farmops.check_text(p_text, 'output') AS c;
    verdict := v_check.verdict;
    categories := v_check.categories;
    rule_names := v_check.rule_names;
    IF verdict = 'block' THEN
        RETURN;  -- released NULL: nothing more of this answer may be shown
    END IF;
    -- The same kinds as the final screen (finish_run), so what is released is a prefix of its answer.
    SELECT r.redacted, r.findings INTO v_red
    FROM farmops._redact_pii(p_text, farmops._pii_keep_kinds_of_run(v_farm, p_run_id)) AS r;
    -- The cut: the last white space at least c_hold characters before the end that is not
    -- inside a finding (0-based index; the text before it is released).
    -- (String functions, not a regex: a backend caches only 32 compiled regexes, and the guards
    -- and the redaction already use most of them.)
    v_limit := char_length(p_text) - c_hold;
    LOOP
        v_head := translate(left(p_text, greatest(v_limit + 1, 0)), E'\t\n\x0B\f\r', '     ');
        v_cut := char_length(v_head) - nullif(strpos(reverse(v_head), ' '), 0);
        EXIT WHEN v_cut IS NULL;
        SELECT (f ->> 'start')::integer INTO v_inside
        FROM jsonb_array_elements(v_red.findings) AS f
        WHERE (f ->> 'start')::integer < v_cut AND (f ->> 'start')::integer + (f ->> 'length')::integer > v_cut;
        EXIT WHEN v_inside IS NULL;
        v_limit := v_inside - 1;
    END LOOP;
    IF v_cut IS NULL THEN
        released := '';
        RETURN;
    END IF;
    -- Each finding before the cut became "[KIND]": the cut's place in the redacted text.
    SELECT coalesce(sum(char_length(f ->> 'kind') + 2 - (f ->> 'length')::integer), 0)::integer INTO v_grown
    FROM jsonb_array_elements(v_red.findings) AS f
    WHERE (f ->> 'start')::integer + (f ->> 'length')::integer <= v_cut;
    released := left(v_red.redacted, v_cut + v_grown);
END
$fn$;
COMMENT ON FUNCTION farmops.screen_stream_text(uuid, text) IS
'The run''s driver (run_ai; its reserver, an owner or a manager): screens the text a live run has streamed so '
'far (the whole of it, so a pattern may span segments) with the output guards and the farm''s PII policy, '
'recording nothing. block: released NULL (show nothing more). Otherwise released = the redacted form of the '
'longest prefix no later text can change: cut at white space at least 80 characters before the end and '
'outside every finding (empty when there is none yet). Each call returns a prefix of what a later call on a '
'longer text returns, and of screen_output''s answer. OF102 not this farm''s run, OF205 not live, OF403 '
'awaiting approval, OF003 another member''s run or a role without run_ai, OF006 NULL or over 1 MiB.';
