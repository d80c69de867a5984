-- PII on every storage path, decided by the database: a farm's keep policy, the triggers
-- that redact stored text (documents, run summaries and errors, feedback comments, eval
-- details) and refuse text about to be embedded that still holds PII the farm does not
-- keep (chunks, memories: a vector cannot be redacted afterwards), and the finding counts.

CREATE OR REPLACE FUNCTION farmops.pii_kinds()
RETURNS text[]
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT ARRAY['email', 'phone', 'payment_card', 'iban', 'ip_address', 'national_id', 'secret']
$fn$;
COMMENT ON FUNCTION farmops.pii_kinds() IS
'The kinds farmops.redact_pii finds, which a farm''s PII policy may keep.';

CREATE OR REPLACE FUNCTION farmops.set_pii_policy(p_keep_kinds text[])
RETURNS text[]
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_farm uuid := farmops.require_capability('manage_trust');
    v_kinds text[];
    v_bad text;
BEGIN
    PERFORM farmops._assert_given(p_keep_kinds, 'keep kinds');
    SELECT k.kind INTO v_bad
    FROM unnest(p_keep_kinds) AS k (kind)
    WHERE k.kind IS NULL OR NOT k.kind = ANY (farmops.pii_kinds())
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'unknown PII kind %: the kinds are %',
            coalesce(quote_literal(left(v_bad, 40)), 'NULL'), array_to_string(farmops.pii_kinds(), ', ')
            USING ERRCODE = 'OF305';
    END IF;
    v_kinds := ARRAY(SELECT DISTINCT k FROM unnest(p_keep_kinds) AS k ORDER BY k);
    INSERT INTO farmops.farm_pii_policies AS p (farm_id, keep_kinds, updated_by)
    VALUES (v_farm, v_kinds, farmops.current_user_id())
    ON CONFLICT (farm_id) DO UPDATE
    SET keep_kinds = excluded.keep_kinds, updated_by = excluded.updated_by, updated_at = now();
    RETURN v_kinds;
END
$fn$;
COMMENT ON FUNCTION farmops.set_pii_policy(text[]) IS
'Owner only (manage_trust): the PII kinds the current farm keeps in its stored text from now on ({} = redact '
'every kind, the default); returns them sorted. Text already stored is not changed. OF305 unknown kind, '
'OF006 NULL, OF003 not an owner.';

CREATE OR REPLACE FUNCTION farmops.pii_policy(
    OUT keep_kinds text[], OUT updated_by text, OUT updated_at timestamptz
)
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_farm uuid := farmops.require_capability('read');
BEGIN
    SELECT p.keep_kinds, p.updated_by, p.updated_at INTO keep_kinds, updated_by, updated_at
    FROM farmops.farm_pii_policies AS p
    WHERE p.farm_id = v_farm;
    keep_kinds := coalesce(keep_kinds, '{}');
END
$fn$;
COMMENT ON FUNCTION farmops.pii_policy() IS
'Any member: the current farm''s PII policy (keep_kinds {} and no author when never set: every kind redacted).';

CREATE OR REPLACE FUNCTION farmops.redact_pii_for_farm(p_text text, OUT redacted text, OUT findings jsonb)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_farm uuid := farmops.require_capability('read');
BEGIN
    IF p_text IS NULL THEN
        RETURN;
    END IF;
    SELECT r.redacted, r.findings INTO redacted, findings
    FROM farmops._redact_pii(p_text, farmops._pii_keep_kinds(v_farm)) AS r;
END
$fn$;
COMMENT ON FUNCTION farmops.redact_pii_for_farm(text) IS
'Any member: farmops.redact_pii honouring the current farm''s PII policy (kept kinds stay, and are not in '
'findings) and every mask policy rule of the farm and the package (the text may serve any run). What the client '
'applies before it embeds text (chunks, memories) and before it calls the model.';

-- Trigger: redacts text columns of a tenant row before it is stored, honouring the farm's
-- policy, and counts the findings per kind (pii_findings). TG_ARGV[0]: the column holding
-- the run id ('' if none); the other arguments: the text or jsonb columns to redact (a
-- jsonb column has every string value redacted).
CREATE OR REPLACE FUNCTION farmops._guard_redact_pii()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_row jsonb := to_jsonb(new);
    v_old jsonb := CASE WHEN tg_op = 'UPDATE' THEN to_jsonb(old) END;
    v_keep text[];
    v_changes jsonb := '{}';
    v_counts jsonb := '[]';
    v_column text;
    v_value jsonb;
    v_red record;
    v_run uuid := CASE WHEN tg_argv[0] <> '' THEN (v_row ->> tg_argv[0])::uuid END;
BEGIN
    FOR i IN 1 .. tg_nargs - 1 LOOP
        v_column := tg_argv[i];
        v_value := v_row -> v_column;
        -- Unchanged or empty values were redacted when they were written.
        CONTINUE WHEN v_value IS NULL OR jsonb_typeof(v_value) = 'null'
            OR (v_old IS NOT NULL AND v_old -> v_column IS NOT DISTINCT FROM v_value);
        v_keep := coalesce(v_keep, CASE
            WHEN tg_table_name = 'ai_runs' THEN farmops._pii_keep_kinds(new.farm_id, v_row)  -- the row may not exist yet
            WHEN v_run IS NOT NULL THEN farmops._pii_keep_kinds_of_run(new.farm_id, v_run)
            ELSE farmops._pii_keep_kinds(new.farm_id)
        END);
        IF jsonb_typeof(v_value) = 'string' THEN
            SELECT r.redacted, r.findings INTO v_red FROM farmops._redact_pii(v_value #>> '{}', v_keep) AS r;
            IF v_red.findings <> '[]' THEN
                v_changes := v_changes || jsonb_build_object(v_column, v_red.redacted);
                v_counts := v_counts || jsonb_build_array(jsonb_build_object('c', v_column, 'f', v_red.findings));
            END IF;
        ELSE
            -- jsonb: every string value (keys stay: they are the writer's names, not data)
            SELECT r.redacted, r.findings INTO v_red FROM farmops._redact_pii_jsonb(v_value, v_keep) AS r;
            IF v_red.findings <> '[]' THEN
                v_changes := v_changes || jsonb_build_object(v_column, v_red.redacted::jsonb);
                v_counts := v_counts || jsonb_build_array(jsonb_build_object('c', v_column, 'f', v_red.findings));
            END IF;
        END IF;
    END LOOP;
    IF v_changes = '{}' THEN
        RETURN new;
    END IF;
    -- The counts are written by the AFTER trigger (farmops._guard_count_pii), once the row is
    -- really stored: a BEFORE trigger also fires for rows that ON CONFLICT then drops, and
    -- its run may not exist yet. They wait in a transaction-local setting, keyed by the row.
    PERFORM set_config('farmops.pii_pending', (
        coalesce(nullif(current_setting('farmops.pii_pending', true), ''), '[]')::jsonb || jsonb_build_array(
            jsonb_build_object(
                'k', tg_table_name || ':' || farmops._pii_row_key(v_row),
                'r', v_run,
                'n', (
                    SELECT jsonb_agg(jsonb_build_object('s', x.source, 'kind', x.kind, 'n', x.n))
                    FROM (
                        SELECT tg_table_name || '.' || (c.value ->> 'c') AS source, f.value ->> 'kind' AS kind, count(*) AS n
                        FROM jsonb_array_elements(v_counts) AS c
                        CROSS JOIN LATERAL jsonb_array_elements(c.value -> 'f') AS f
                        GROUP BY 1, 2
                    ) AS x
                )
            )
        )
    )::text, true);
    new := jsonb_populate_record(new, v_changes);
    RETURN new;
END
$fn$;
COMMENT ON FUNCTION farmops._guard_redact_pii() IS
'Trigger: redacts the named text/jsonb columns (trigger arguments 2..n) with the farm''s PII policy and the mask '
'policy rules matching its run (farmops._pii_keep_kinds) before the row is stored and counts the findings in '
'pii_findings (argument 1: the run id column, or '''').';

CREATE OR REPLACE FUNCTION farmops._pii_row_key(p_row jsonb)
RETURNS text
LANGUAGE sql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    -- Every redacted table has an id, except ai_feedback (one row per run and member).
    SELECT coalesce(p_row ->> 'id', (p_row ->> 'ai_run_id') || '/' || (p_row ->> 'user_id'))
$fn$;
COMMENT ON FUNCTION farmops._pii_row_key(jsonb) IS
'Private: which row a pending PII count belongs to (its id, or run and member for feedback).';

-- Trigger (AFTER, the row is stored): writes the pending finding counts of this row.
CREATE OR REPLACE FUNCTION farmops._guard_count_pii()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_pending jsonb := coalesce(nullif(current_setting('farmops.pii_pending', true), ''), '[]')::jsonb;
    v_key text := tg_table_name || ':' || farmops._pii_row_key(to_jsonb(new) - 'content');
    v_rest jsonb;
BEGIN
    IF jsonb_typeof(v_pending) IS DISTINCT FROM 'array' THEN
        PERFORM set_config('farmops.pii_pending', '', true);
        RETURN NULL;
    END IF;
    INSERT INTO farmops.pii_findings (farm_id, ai_run_id, source, kind, findings)
    SELECT new.farm_id, (p.value ->> 'r')::uuid, n.value ->> 's', n.value ->> 'kind', (n.value ->> 'n')::integer
    FROM jsonb_array_elements(v_pending) AS p
    CROSS JOIN LATERAL jsonb_array_elements(p.value -> 'n') AS n
    WHERE p.value ->> 'k' = v_key AND (n.value ->> 'kind') = ANY (farmops.pii_kinds());
    SELECT coalesce(jsonb_agg(p.value), '[]') INTO v_rest
    FROM jsonb_array_elements(v_pending) AS p
    WHERE p.value ->> 'k' <> v_key;
    PERFORM set_config('farmops.pii_pending', CASE WHEN v_rest = '[]' THEN '' ELSE v_rest::text END, true);
    RETURN NULL;
END
$fn$;
COMMENT ON FUNCTION farmops._guard_count_pii() IS
'Trigger (after a redacted row is stored): records its pending PII finding counts in pii_findings.';

-- Every string value of a jsonb document redacted (keys unchanged); findings of all values.
CREATE OR REPLACE FUNCTION farmops._redact_pii_jsonb(
    p_value jsonb, p_keep_kinds text[], OUT redacted text, OUT findings jsonb
)
LANGUAGE plpgsql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_red record;
    v_path text[];
    v_text text;
    v_doc jsonb := p_value;
BEGIN
    findings := '[]';
    -- jsonb_path_query lists the strings; their paths come from jsonb_paths below.
    FOR v_path, v_text IN
        WITH RECURSIVE walk (path, value) AS (
            SELECT '{}'::text[], p_value
            UNION ALL
            SELECT w.path || e.key, e.value
            FROM walk AS w
            CROSS JOIN LATERAL (
                SELECT o.key, o.value FROM jsonb_each(w.value) AS o WHERE jsonb_typeof(w.value) = 'object'
                UNION ALL
                SELECT (a.ord - 1)::text, a.value
                FROM jsonb_array_elements(w.value) WITH ORDINALITY AS a (value, ord)
                WHERE jsonb_typeof(w.value) = 'array'
            ) AS e
        )
        SELECT w.path, w.value #>> '{}' FROM walk AS w WHERE jsonb_typeof(w.value) = 'string'
    LOOP
        SELECT r.redacted, r.findings INTO v_red FROM farmops._redact_pii(v_text, p_keep_kinds) AS r;
        IF v_red.findings <> '[]' THEN
            v_doc := jsonb_set(v_doc, v_path, to_jsonb(v_red.redacted));
            findings := findings || v_red.findings;
        END IF;
    END LOOP;
    redacted := v_doc::text;
END
$fn$;
COMMENT ON FUNCTION farmops._redact_pii_jsonb(jsonb, text[]) IS
'Private: a jsonb document (as text) with every string value redacted, and the findings of all of them.';

-- Trigger: text about to be embedded (a chunk, a memory) must not hold PII the farm does
-- not keep. Refused, not redacted: the vector was computed from the text the client had,
-- and redacting the stored text would leave the personal data encoded in the vector.
-- TG_ARGV[0]: the text column. Global knowledge (no farm) keeps nothing.
CREATE OR REPLACE FUNCTION farmops._guard_pii_free()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_row jsonb := to_jsonb(new) - 'embedding';
    v_text text := v_row ->> tg_argv[0];
    v_findings jsonb;
BEGIN
    IF v_text IS NULL THEN
        RETURN new;
    END IF;
    SELECT r.findings INTO v_findings
    FROM farmops._redact_pii(
        v_text, CASE WHEN v_row ? 'farm_id' THEN farmops._pii_keep_kinds((v_row ->> 'farm_id')::uuid) ELSE '{}' END
    ) AS r;
    IF v_findings <> '[]' THEN
        RAISE EXCEPTION 'text to be embedded in farmops.% holds personal data the farm does not keep (%): '
            'redact it before embedding', tg_table_name,
            (SELECT string_agg(DISTINCT f ->> 'kind', ', ') FROM jsonb_array_elements(v_findings) AS f)
            USING ERRCODE = 'OF304',
            HINT = 'Call farmops.redact_pii_for_farm(text) and embed the redacted text.';
    END IF;
    RETURN new;
END
$fn$;
COMMENT ON FUNCTION farmops._guard_pii_free() IS
'Trigger: raises OF304 when the text column (argument 1) of a row to be embedded holds PII the farm does not keep.';

CREATE OR REPLACE FUNCTION farmops._attach_pii_redaction(p_table regclass, p_run_column text, p_columns text[])
RETURNS void
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    -- WHEN: a row with none of the columns set (a reservation without a summary, the fast
    -- path's common case) does not even call the function.
    PERFORM farmops._attach_always(
        p_table, '_redacts_pii',
        'BEFORE INSERT OR UPDATE OF ' || (SELECT string_agg(format('%I', c), ', ') FROM unnest(p_columns) AS c),
        'ROW WHEN (' || (SELECT string_agg(format('new.%I IS NOT NULL', c), ' OR ') FROM unnest(p_columns) AS c) || ')',
        format('farmops._guard_redact_pii(%s)',
            (SELECT string_agg(quote_literal(a), ', ') FROM unnest(p_run_column || p_columns) AS a))
    );
    -- The counts, only when the BEFORE trigger left some (a cheap test on every other row).
    EXECUTE format(
        'CREATE OR REPLACE TRIGGER %I AFTER INSERT OR UPDATE ON %s FOR EACH ROW '
        'WHEN (coalesce(current_setting(''farmops.pii_pending'', true), '''') <> '''') '
        'EXECUTE FUNCTION farmops._guard_count_pii()',
        (SELECT c.relname FROM pg_catalog.pg_class AS c WHERE c.oid = p_table) || '_counts_pii', p_table
    );
    EXECUTE format(
        'ALTER TABLE %s ENABLE ALWAYS TRIGGER %I', p_table,
        (SELECT c.relname FROM pg_catalog.pg_class AS c WHERE c.oid = p_table) || '_counts_pii'
    );
END
$fn$;
COMMENT ON FUNCTION farmops._attach_pii_redaction(regclass, text, text[]) IS
'Private: redacts PII (farm policy) in the given columns of a tenant table before every insert or update.';

CREATE OR REPLACE FUNCTION farmops._attach_pii_refusal(p_table regclass, p_column text)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    PERFORM farmops._attach_always(
        p_table, '_embeds_no_pii', format('BEFORE INSERT OR UPDATE OF %I', p_column), 'ROW',
        format('farmops._guard_pii_free(%L)', p_column)
    );
END
$fn$;
COMMENT ON FUNCTION farmops._attach_pii_refusal(regclass, text) IS
'Private: refuses (OF304) rows whose column, about to be embedded, holds PII the farm does not keep.';

-- Stored text: redacted.
SELECT farmops._attach_pii_redaction('farmops.documents', '', ARRAY['title', 'content']);
SELECT farmops._attach_pii_redaction('farmops.ai_runs', 'id', ARRAY['input_summary', 'output_summary', 'error']);
SELECT farmops._attach_pii_redaction('farmops.ai_feedback', 'ai_run_id', ARRAY['comment']);
SELECT farmops._attach_pii_redaction('farmops.ai_evals', 'ai_run_id', ARRAY['details']);
-- Embedded text: refused.
SELECT farmops._attach_pii_refusal('farmops.embeddings', 'content');
SELECT farmops._attach_pii_refusal('farmops.memories', 'content');
SELECT farmops._attach_pii_refusal('farmops.global_embeddings', 'content');

SELECT farmops._attach_append_only('farmops.pii_findings');

CREATE OR REPLACE FUNCTION farmops.run_pii_findings(p_run_id uuid)
RETURNS TABLE (source text, kind text, findings bigint)
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_column
DECLARE
    v_farm uuid := farmops.require_capability('read');
BEGIN
    IF p_run_id IS NULL THEN
        RAISE EXCEPTION 'run id is required' USING ERRCODE = 'OF006';
    END IF;
    RETURN QUERY
    SELECT f.source, f.kind, sum(f.findings)::bigint
    FROM farmops.pii_findings AS f
    WHERE f.farm_id = v_farm AND f.ai_run_id = p_run_id
    GROUP BY f.source, f.kind
    ORDER BY f.source, f.kind;
END
$fn$;
COMMENT ON FUNCTION farmops.run_pii_findings(uuid) IS
'Any member: how many PII findings of each kind were redacted from a run''s stored text (input and output '
'summaries, error, feedback, eval details) and its answer; no values. No rows for another farm''s run.';

CREATE OR REPLACE FUNCTION farmops.pii_finding_counts(p_days integer DEFAULT 30)
RETURNS TABLE (day date, kind text, findings bigint)
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_column
DECLARE
    v_farm uuid := farmops.require_capability('read');
BEGIN
    -- (SECURITY INVOKER, so the shared private argument checks are out of reach: checked here.)
    IF p_days IS NULL OR p_days NOT BETWEEN 1 AND 3660 THEN
        RAISE EXCEPTION 'days must be between 1 and 3660' USING ERRCODE = 'OF006';
    END IF;
    RETURN QUERY
    SELECT f.day, f.kind, sum(f.findings)::bigint
    FROM farmops.pii_findings AS f
    WHERE f.farm_id = v_farm AND f.day > current_date - p_days
    GROUP BY f.day, f.kind
    ORDER BY f.day, f.kind;
END
$fn$;
COMMENT ON FUNCTION farmops.pii_finding_counts(integer) IS
'Any member: PII findings redacted per day and kind in the current farm over the last p_days days (metrics). '
'OF006 p_days outside 1..3660.';
