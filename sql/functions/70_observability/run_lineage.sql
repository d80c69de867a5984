-- The lineage of one AI run as a DAG: run -> input (redacted) -> guard checks
-- -> retrievals -> model calls -> tool calls -> drafts -> records, and the
-- run's ledger legs, evals and feedback. Security invoker: row level security
-- decides (a member sees their farm's runs, farmops_auditor every farm's).
--
-- Adding a node kind, in one place: one more UNION ALL branch of "nodes" below
-- returning (id, kind, at, parents, data); edges follow from parents. (The audit
-- chain's entries of the run are such a branch.)

CREATE OR REPLACE FUNCTION farmops.run_lineage(p_run_id uuid)
RETURNS jsonb
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_run farmops.ai_runs;
    v_nodes jsonb;
BEGIN
    IF p_run_id IS NULL THEN
        RAISE EXCEPTION 'run id is required' USING ERRCODE = 'OF006';
    END IF;
    -- Only rows the caller may see: another farm's run is not found, like a missing one.
    SELECT r.* INTO v_run FROM farmops.ai_runs AS r WHERE r.id = p_run_id LIMIT 1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no AI run % in this farm', p_run_id USING ERRCODE = 'OF102';
    END IF;

    WITH steps AS MATERIALIZED (
        SELECT
            st.*,
            'step:' || st.step_no AS node,
            lag('step:' || st.step_no) OVER (ORDER BY st.step_no) AS previous
        FROM farmops.ai_run_steps AS st
        WHERE st.farm_id = v_run.farm_id AND st.ai_run_id = v_run.id
    ),

    searches AS MATERIALIZED (
        SELECT r.search_id, row_number() OVER (ORDER BY min(r.retrieved_at), min(r.rank)) AS n
        FROM farmops.ai_run_retrievals AS r
        WHERE r.farm_id = v_run.farm_id AND r.ai_run_id = v_run.id
        GROUP BY r.search_id
    ),

    withheld AS (
        SELECT DISTINCT w.value AS chunk
        FROM steps AS s CROSS JOIN LATERAL jsonb_array_elements_text(
            CASE WHEN jsonb_typeof(s.detail -> 'withheld') = 'array' THEN s.detail -> 'withheld' END
        ) AS w
        WHERE s.kind = 'guard'
    ),

    nodes AS (
        SELECT
            'run:' || v_run.id AS id, 'run' AS kind, v_run.reserved_at AS at, ARRAY[]::text [] AS parents,
            jsonb_build_object(
                'run_id', v_run.id, 'farm_id', v_run.farm_id, 'user_id', v_run.user_id,
                'feature', v_run.feature, 'model', v_run.model, 'status', v_run.status,
                'request_id', v_run.request_id, 'credits_reserved', v_run.credits_reserved,
                'credits_actual', v_run.credits_actual, 'credits_shortfall', v_run.credits_shortfall,
                'input_tokens', v_run.input_tokens, 'output_tokens', v_run.output_tokens,
                'latency_ms', v_run.latency_ms, 'error', v_run.error, 'expires_at', v_run.expires_at,
                'settled_at', v_run.settled_at
            ) AS data

        UNION ALL
        -- Steps: the input hangs from the run; a model call from the tool calls of the
        -- turn before (or the step before) and the passages it was given; a tool call
        -- from the model call that asked for it; anything else from the step before.
        SELECT
            s.node,
            CASE s.kind WHEN 'model' THEN 'model_call' WHEN 'tool' THEN 'tool_call' ELSE s.kind END,
            s.recorded_at,
            CASE
                WHEN s.kind = 'input' THEN ARRAY['run:' || v_run.id]
                WHEN s.kind = 'model' THEN coalesce(
                    (SELECT array_agg(t.node ORDER BY t.step_no) FROM steps AS t
                        WHERE t.kind = 'tool' AND t.turn = s.turn - 1 AND t.step_no < s.step_no),
                    ARRAY[coalesce(s.previous, 'run:' || v_run.id)]
                ) || coalesce(
                    (SELECT array_agg('retrieval:' || r.id ORDER BY r.rank) FROM farmops.ai_run_retrievals AS r
                        WHERE r.farm_id = v_run.farm_id AND r.ai_run_id = v_run.id AND r.search_id = s.search_id
                            AND NOT EXISTS (SELECT FROM steps AS t WHERE t.kind = 'tool' AND t.search_id = s.search_id)),
                    ARRAY[]::text []
                )
                WHEN s.kind = 'tool' THEN ARRAY[coalesce(
                    (SELECT m.node FROM steps AS m WHERE m.kind = 'model' AND m.turn = s.turn AND m.step_no < s.step_no
                        ORDER BY m.step_no DESC LIMIT 1),
                    s.previous, 'run:' || v_run.id
                )]
                ELSE ARRAY[coalesce(s.previous, 'run:' || v_run.id)]
            END,
            jsonb_strip_nulls(jsonb_build_object(
                'step_no', s.step_no, 'turn', s.turn, 'model', s.model, 'input_tokens', s.input_tokens,
                'output_tokens', s.output_tokens, 'cache_read_tokens', s.cache_read_tokens,
                'cache_write_tokens', s.cache_write_tokens, 'latency_ms', s.latency_ms,
                'stop_reason', s.stop_reason, 'guardrail', s.guardrail, 'tool', s.tool_name,
                'input', s.tool_input, 'outcome', s.outcome, 'reason', s.reason, 'draft_id', s.draft_id,
                'record_id', s.record_id, 'search_id', s.search_id, 'prompt_sha256', s.prompt_sha256,
                'input_summary', s.input_summary, 'output_summary', s.output_summary,
                'provider_request_id', s.provider_request_id,
                'detail', CASE WHEN s.detail <> '{}'::jsonb THEN s.detail END
            ))
        FROM steps AS s

        UNION ALL
        -- Retrievals: from the tool call that searched, else (the run's first search,
        -- given with the prompt) from the input.
        SELECT
            'retrieval:' || r.id, 'retrieval', r.retrieved_at,
            ARRAY[coalesce(
                (SELECT t.node FROM steps AS t WHERE t.kind = 'tool' AND t.search_id = r.search_id LIMIT 1),
                (SELECT i.node FROM steps AS i WHERE i.kind = 'input'),
                'run:' || v_run.id
            )],
            jsonb_strip_nulls(jsonb_build_object(
                'search', se.n, 'rank', r.rank, 'score', r.score, 'is_global', r.is_global,
                'source_type', r.source_type, 'source_id', r.source_id, 'chunk_index', r.chunk_index,
                'chunk_id', coalesce(r.embedding_id, r.global_embedding_id),
                'document', CASE WHEN r.source_type = 'document' THEN coalesce(
                    (SELECT d.title FROM farmops.documents AS d WHERE d.farm_id = v_run.farm_id AND d.id = r.source_id),
                    (SELECT g.title FROM farmops.global_documents AS g WHERE r.is_global AND g.id = r.source_id)
                ) END,
                'withheld', r.withheld OR EXISTS (
                    SELECT FROM withheld AS w WHERE w.chunk = coalesce(r.embedding_id, r.global_embedding_id)::text
                ),
                'guard_verdict', r.guard_verdict, 'guard_categories', r.guard_categories
            ))
        FROM farmops.ai_run_retrievals AS r
        INNER JOIN searches AS se ON r.search_id = se.search_id
        WHERE r.farm_id = v_run.farm_id AND r.ai_run_id = v_run.id

        UNION ALL
        SELECT
            'draft:' || d.id, 'draft', d.created_at,
            ARRAY[coalesce((SELECT t.node FROM steps AS t WHERE t.draft_id = d.id LIMIT 1), 'run:' || v_run.id)],
            jsonb_strip_nulls(jsonb_build_object(
                'draft_id', d.id, 'record_type', d.record_type, 'status', d.status, 'payload', d.payload,
                'edits', d.edits, 'created_by', d.created_by, 'decided_by', d.decided_by,
                'decided_at', d.decided_at, 'decision_reason', d.decision_reason, 'expires_at', d.expires_at
            ))
        FROM farmops.assistant_drafts AS d
        WHERE d.farm_id = v_run.farm_id AND d.ai_run_id = v_run.id

        UNION ALL
        SELECT
            'record:' || d.record_id, 'record', coalesce(d.decided_at, d.created_at), ARRAY['draft:' || d.id],
            jsonb_build_object('record_id', d.record_id, 'record_type', d.record_type)
        FROM farmops.assistant_drafts AS d
        WHERE d.farm_id = v_run.farm_id AND d.ai_run_id = v_run.id AND d.record_id IS NOT NULL

        UNION ALL
        SELECT
            'ledger:' || l.seq, 'ledger', l.created_at, ARRAY['run:' || v_run.id],
            jsonb_build_object(
                'seq', l.seq, 'leg', l.kind, 'delta', l.delta, 'balance_after', l.balance_after, 'actor', l.actor
            )
        FROM farmops.credit_ledger AS l
        WHERE l.farm_id = v_run.farm_id AND l.ai_run_id = v_run.id

        UNION ALL
        SELECT
            'eval:' || e.id, 'eval', e.created_at, ARRAY['run:' || v_run.id],
            jsonb_build_object(
                'rule', e.rule_name, 'passed', e.passed, 'severity', e.severity, 'details', e.details,
                'evaluated_by', e.evaluated_by
            )
        FROM farmops.ai_evals AS e
        WHERE e.farm_id = v_run.farm_id AND e.ai_run_id = v_run.id

        UNION ALL
        SELECT
            'feedback:' || f.user_id, 'feedback', f.updated_at, ARRAY['run:' || v_run.id],
            jsonb_strip_nulls(jsonb_build_object('user_id', f.user_id, 'thumbs_up', f.thumbs_up, 'comment', f.comment))
        FROM farmops.ai_feedback AS f
        WHERE f.farm_id = v_run.farm_id AND f.ai_run_id = v_run.id

        UNION ALL
        -- Guard checks the database recorded for the run (an output refused, a guardrail's intervention).
        SELECT
            'guard:' || g.id, 'guard', g.created_at, ARRAY['run:' || v_run.id],
            jsonb_build_object(
                'stage', g.stage, 'source', g.source, 'verdict', g.verdict, 'outcome', g.outcome,
                'categories', g.categories, 'rules', g.rule_names
            )
        FROM farmops.guard_events AS g
        WHERE g.farm_id = v_run.farm_id AND g.ai_run_id = v_run.id

        UNION ALL
        -- Sealed audit entries of the run, its ledger legs and its drafts (by their keys: index lookups).
        SELECT
            'audit:' || a.seq, 'audit', a.at, ARRAY['run:' || v_run.id],
            jsonb_build_object(
                'seq', a.seq, 'action', a.action, 'object_table', a.object_table, 'object_id', a.object_id,
                'hash', a.hash
            )
        FROM farmops.audit_log AS a
        WHERE a.farm_id = v_run.farm_id AND (
            (a.object_table = 'ai_runs' AND a.object_id = v_run.id::text)
            OR (a.object_table = 'credit_ledger' AND a.object_id IN (
                SELECT l.seq::text FROM farmops.credit_ledger AS l
                WHERE l.farm_id = v_run.farm_id AND l.ai_run_id = v_run.id
            ))
            OR (a.object_table = 'assistant_drafts' AND a.object_id IN (
                SELECT d.id::text FROM farmops.assistant_drafts AS d
                WHERE d.farm_id = v_run.farm_id AND d.ai_run_id = v_run.id
            ))
        )
    )

    SELECT jsonb_agg(
        n.data || jsonb_build_object('id', n.id, 'kind', n.kind, 'at', n.at, 'parents', to_jsonb(n.parents))
        ORDER BY
            n.at,
            array_position(
                ARRAY['run', 'input', 'guard', 'retrieval', 'model_call', 'tool_call', 'draft', 'record', 'ledger',
                    'eval', 'feedback', 'audit'],
                n.kind
            ) NULLS LAST,
            n.id
    ) INTO v_nodes
    FROM nodes AS n;

    RETURN jsonb_build_object(
        'run_id', v_run.id,
        'farm_id', v_run.farm_id,
        'nodes', v_nodes,
        'edges', coalesce((
            SELECT jsonb_agg(jsonb_build_object('from', p.parent, 'to', n.value ->> 'id'))
            FROM jsonb_array_elements(v_nodes) AS n
            CROSS JOIN LATERAL jsonb_array_elements_text(n.value -> 'parents') AS p (parent)
        ), '[]'::jsonb)
    );
END
$fn$;
COMMENT ON FUNCTION farmops.run_lineage(uuid) IS
'The lineage of one AI run as a DAG {run_id, farm_id, nodes [{id, kind, at, parents, ...}], edges [{from, to}]}: '
'run, input (redacted), guard checks, retrievals (document, chunk, score, withheld), model calls, tool calls, '
'drafts, records, ledger legs, evals, feedback, sealed audit entries. Under row level security: OF102 for a '
'run the caller cannot see.';
