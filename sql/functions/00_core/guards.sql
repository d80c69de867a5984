-- The two shared trigger rules, attached per table by one helper each, every
-- trigger ENABLE ALWAYS so that no role (the package owner, a superuser, a
-- replica session) can rewrite history or move a row backwards. A domain
-- attaches them beside its own functions (e.g. 20_credits/ledger.sql).

-- The columns, in any table, that hold a person's (or a job's) identifier.
CREATE OR REPLACE FUNCTION farmops._person_columns()
RETURNS text[]
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT ARRAY[
        'actor', 'user_id', 'created_by', 'decided_by', 'changed_by', 'evaluated_by', 'updated_by',
        'approval_decided_by'
    ]::text []
$fn$;
COMMENT ON FUNCTION farmops._person_columns() IS
'Private: the column names that hold a person''s identifier in any farmops table or product record table '
'(hashed as subject ids, pseudonymised by erasure).';

-- An eval's details (farmops.evaluate_run) with the person's text gone: each regex match
-- (a substring of the run's output, a whole sentence under a wide pattern) and each payload
-- failure's message (it may quote payload values) becomes '[erased]'; the number of
-- matches, the drafts checked, the failing drafts' ids and SQLSTATEs stay. Any other shape
-- (not an object, matches not an array, a failure not an object) is left as it is.
CREATE OR REPLACE FUNCTION farmops._eval_details_erased(p_details jsonb)
RETURNS jsonb
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT CASE
        WHEN jsonb_typeof(p_details) IS DISTINCT FROM 'object' THEN p_details
        ELSE p_details
            || CASE WHEN jsonb_typeof(p_details -> 'matches') = 'array' THEN jsonb_build_object(
                'matches', (
                    SELECT coalesce(jsonb_agg(to_jsonb('[erased]'::text)), '[]'::jsonb)
                    FROM jsonb_array_elements(p_details -> 'matches')
                )
            ) ELSE '{}'::jsonb END
            || CASE WHEN jsonb_typeof(p_details -> 'failures') = 'array' THEN jsonb_build_object(
                'failures', (
                    SELECT coalesce(jsonb_agg(
                        CASE WHEN jsonb_typeof(f.v) = 'object' AND f.v ? 'message'
                            THEN f.v || jsonb_build_object('message', '[erased]') ELSE f.v END
                        ORDER BY f.n
                    ), '[]'::jsonb)
                    FROM jsonb_array_elements(p_details -> 'failures') WITH ORDINALITY AS f (v, n)
                )
            ) ELSE '{}'::jsonb END
    END
$fn$;
COMMENT ON FUNCTION farmops._eval_details_erased(jsonb) IS
'Private: an ai_evals.details object with its personal text erased: every element of matches and every '
'failures[].message becomes ''[erased]'' (array lengths, drafts_checked, draft ids and SQLSTATEs stay); other '
'shapes are returned unchanged. Erasure writes it; farmops._is_pseudonymisation accepts exactly it.';

-- The columns of a row of farmops.ai_evals, the one table whose details erasure may scrub
-- (a product record table may have a details column of its own: it is hashed into the chain).
CREATE OR REPLACE FUNCTION farmops._is_eval_row(p_row jsonb)
RETURNS boolean
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT coalesce(jsonb_typeof(p_row) = 'object'
        AND p_row ?& ARRAY[
            'farm_id', 'id', 'ai_run_id', 'rule_name', 'passed', 'severity', 'details', 'evaluated_by', 'created_at'
        ]::text []
        AND (SELECT count(*) FROM jsonb_object_keys(p_row)) = 9, false)
$fn$;
COMMENT ON FUNCTION farmops._is_eval_row(jsonb) IS
'Private: true if a row (jsonb) has exactly the columns of farmops.ai_evals, the only rows whose details '
'farmops._is_pseudonymisation lets erasure scrub.';

-- Erasure (sql/functions/50_trust/erasure.sql) is the one change history allows: a
-- person's identifier replaced by a pseudonym ('erased:<subject id>') and personal
-- text cleared (an eval's details scrubbed, farmops._eval_details_erased), every other
-- column untouched. Both guards let exactly that through.
CREATE OR REPLACE FUNCTION farmops._is_pseudonymisation(p_old jsonb, p_new jsonb)
RETURNS boolean
LANGUAGE sql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT p_old IS DISTINCT FROM p_new AND NOT EXISTS (
        SELECT FROM jsonb_each(p_new) AS n (k, v)
        WHERE n.v IS DISTINCT FROM p_old -> n.k
            AND NOT (
                n.k = ANY (farmops._person_columns())
                AND n.v #>> '{}' ~ '^erased:[0-9a-f-]{36}$'
            )
            AND NOT (
                n.k IN ('input_summary', 'output_summary', 'error', 'comment', 'tool_input', 'decision_reason')
                AND n.v = 'null'::jsonb
            )
            AND NOT (
                n.k = 'details'
                AND n.v = farmops._eval_details_erased(p_old -> 'details')
                AND farmops._is_eval_row(p_old)
                AND farmops._is_eval_row(p_new)
            )
    )
$fn$;
COMMENT ON FUNCTION farmops._is_pseudonymisation(jsonb, jsonb) IS
'Private: true if a row change only replaces person identifiers with ''erased:<subject id>'' and clears personal '
'text (what erasure does: summaries, errors, comments, tool inputs and decision reasons set to NULL, and an '
'ai_evals row''s details scrubbed to exactly farmops._eval_details_erased of the old ones); the append-only and '
'forward-only guards let only that through.';

CREATE OR REPLACE FUNCTION farmops._guard_append_only()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF tg_op = 'UPDATE' AND farmops._is_pseudonymisation(to_jsonb(old), to_jsonb(new)) THEN
        RETURN new;
    END IF;
    RAISE EXCEPTION '% on farmops.% is not allowed: the table is append-only', tg_op, tg_table_name
        USING ERRCODE = 'OF107',
        HINT = 'Correct history with a new row (for the ledger, kind ''adjust''), never by changing it.';
END
$fn$;
COMMENT ON FUNCTION farmops._guard_append_only() IS
'Trigger: raises OF107 on UPDATE, DELETE or TRUNCATE of an append-only table, whoever tries.';

CREATE OR REPLACE FUNCTION farmops._guard_forward_only()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    -- TG_ARGV[0]: the allowed moves of the status column, 'from>to' separated by spaces;
    --   '>to' names a status a row may be created with (none listed: any).
    -- TG_ARGV[1]: the columns that never change once written, comma-separated.
    v_moves text[] := string_to_array(tg_argv[0], ' ');
    v_immutable text[] := string_to_array(tg_argv[1], ',');
    v_what text := replace(tg_table_name, '_', ' ');
    v_old jsonb;
    v_new jsonb;
BEGIN
    IF tg_op = 'DELETE' THEN
        RAISE EXCEPTION 'rows of farmops.% are the audit trail and are never deleted', tg_table_name
            USING ERRCODE = 'OF107';
    END IF;
    IF tg_op = 'INSERT' THEN
        IF EXISTS (SELECT FROM unnest(v_moves) AS m (v) WHERE m.v LIKE '>%')
            AND NOT ('>' || new.status) = ANY (v_moves) THEN
            RAISE EXCEPTION 'a row of farmops.% cannot be created %', tg_table_name, new.status
                USING ERRCODE = 'OF103';
        END IF;
        RETURN new;
    END IF;
    v_old := to_jsonb(old);
    v_new := to_jsonb(new);
    IF farmops._is_pseudonymisation(v_old, v_new) THEN
        RETURN new;
    END IF;
    IF EXISTS (SELECT FROM unnest(v_immutable) AS c (col) WHERE v_new -> c.col IS DISTINCT FROM v_old -> c.col) THEN
        RAISE EXCEPTION '% % : only its state and decision columns may change', v_what, old.id
            USING ERRCODE = 'OF103';
    END IF;
    IF NOT (old.status || '>' || new.status) = ANY (v_moves) THEN
        IF NOT EXISTS (SELECT FROM unnest(v_moves) AS m (v) WHERE m.v LIKE old.status || '>%') THEN
            RAISE EXCEPTION '% % is % (terminal): no further change', v_what, old.id, old.status
                USING ERRCODE = 'OF103';
        END IF;
        RAISE EXCEPTION '% % cannot go from % to %', v_what, old.id, old.status, new.status
            USING ERRCODE = 'OF103';
    END IF;
    RETURN new;
END
$fn$;
COMMENT ON FUNCTION farmops._guard_forward_only() IS
'Trigger: a row''s status moves only along the allowed moves (trigger argument 1), terminal states are final, '
'the immutable columns (argument 2) never change, rows are never deleted (OF103 / OF107).';

CREATE OR REPLACE FUNCTION farmops._attach_always(
    p_table regclass, p_suffix text, p_when text, p_level text, p_function text
)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_name text := (SELECT c.relname FROM pg_catalog.pg_class AS c WHERE c.oid = p_table) || p_suffix;
BEGIN
    -- p_when, p_level and p_function come from the _attach_* helpers below, never from a caller's data.
    -- p_level is ROW or STATEMENT, for ROW optionally followed by a WHEN (condition) clause.
    EXECUTE format(
        'CREATE OR REPLACE TRIGGER %I %s ON %s FOR EACH %s EXECUTE FUNCTION %s', v_name, p_when, p_table, p_level,
        p_function
    );
    EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER %I', p_table, v_name);
END
$fn$;
COMMENT ON FUNCTION farmops._attach_always(regclass, text, text, text, text) IS
'Private: creates (or replaces) the trigger <table><suffix> and enables it ALWAYS (replica sessions too).';

CREATE OR REPLACE FUNCTION farmops._attach_append_only(p_table regclass)
RETURNS void
LANGUAGE sql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT farmops._attach_always(
        p_table, '_is_append_only', 'BEFORE UPDATE OR DELETE', 'ROW', 'farmops._guard_append_only()'
    );
    SELECT farmops._attach_always(
        p_table, '_is_never_truncated', 'BEFORE TRUNCATE', 'STATEMENT', 'farmops._guard_append_only()'
    );
$fn$;
COMMENT ON FUNCTION farmops._attach_append_only(regclass) IS
'Private: makes a table append-only for every role (UPDATE, DELETE and TRUNCATE raise OF107).';

CREATE OR REPLACE FUNCTION farmops._attach_forward_only(p_table regclass, p_moves text, p_immutable text)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_moves text[] := string_to_array(p_moves, ' ');
    v_created text[] := array(SELECT substr(m.v, 2) FROM unnest(v_moves) AS m (v) WHERE m.v LIKE '>%');
    v_steps text[] := array(SELECT m.v FROM unnest(v_moves) AS m (v) WHERE m.v NOT LIKE '>%');
    v_columns text[] := string_to_array(p_immutable, ',');
    v_guard text := format('farmops._guard_forward_only(%L, %L)', p_moves, p_immutable);
BEGIN
    -- The rule is written as each trigger's WHEN condition, which the executor
    -- evaluates without calling a function: the guard function runs only for a row
    -- that breaks the rule, to raise the precise error; the rule and its errors are
    -- unchanged. Measured per run lifecycle (insert, start, settle; bench/bench_fixed.py):
    -- the PL/pgSQL trigger on every row cost ~80 us over no trigger, the WHEN conditions
    -- ~40 us, and a reservation's INSERT into ai_runs fires no trigger at all. WHEN cannot
    -- name OLD in an INSERT trigger nor NEW in a DELETE trigger, hence three triggers.
    PERFORM farmops._attach_always(
        p_table, '_move_forward_only', 'BEFORE UPDATE',
        format(
            'ROW WHEN ((old.status || ''>'' || new.status) <> ALL (%L::text[]) OR (%s) IS DISTINCT FROM (%s))',
            v_steps,
            (SELECT string_agg(format('old.%I', c.col), ', ') FROM unnest(v_columns) AS c (col)),
            (SELECT string_agg(format('new.%I', c.col), ', ') FROM unnest(v_columns) AS c (col))
        ),
        v_guard
    );
    PERFORM farmops._attach_always(p_table, '_is_never_deleted', 'BEFORE DELETE', 'ROW', v_guard);
    IF cardinality(v_created) > 0 THEN
        PERFORM farmops._attach_always(
            p_table, '_starts_in_a_first_state', 'BEFORE INSERT',
            format('ROW WHEN (new.status <> ALL (%L::text[]))', v_created), v_guard
        );
    ELSE
        EXECUTE format(
            'DROP TRIGGER IF EXISTS %I ON %s',
            (SELECT c.relname FROM pg_catalog.pg_class AS c WHERE c.oid = p_table) || '_starts_in_a_first_state',
            p_table
        );
    END IF;
    PERFORM farmops._attach_always(
        p_table, '_is_never_truncated', 'BEFORE TRUNCATE', 'STATEMENT', 'farmops._guard_append_only()'
    );
END
$fn$;
COMMENT ON FUNCTION farmops._attach_forward_only(regclass, text, text) IS
'Private: attaches the forward-only state guard (allowed status moves, immutable columns, no DELETE or '
'TRUNCATE) to a table with a status column; the rule is in the triggers'' WHEN conditions, so the guard '
'function runs only for a row that breaks it.';
