-- squawk-ignore-file ban-drop-function
-- (why: the dropped functions are replaced in the same install transaction by the
-- re-applied sql/functions; clients call the public API, whose names stay.)
-- One shape for every rule (sql/README.md): the guard triggers, policies and
-- private helpers of 0001-0022's era are replaced by shared ones that the
-- re-applied files create under new names. Applied migrations are immutable,
-- so what the new files no longer create is removed here.

-- Triggers: sql/functions re-attaches them through farmops._attach_append_only()
-- and farmops._attach_forward_only(), every one ENABLE ALWAYS.
DROP TRIGGER IF EXISTS credit_ledger_is_append_only ON farmops.credit_ledger;
DROP TRIGGER IF EXISTS credit_ledger_is_never_truncated ON farmops.credit_ledger;
DROP TRIGGER IF EXISTS ai_runs_move_forward_only ON farmops.ai_runs;
DROP TRIGGER IF EXISTS autonomy_changes_append_only ON farmops.autonomy_changes;
DROP TRIGGER IF EXISTS autonomy_changes_no_truncate ON farmops.autonomy_changes;
DROP TRIGGER IF EXISTS assistant_drafts_state_machine ON farmops.assistant_drafts;
DROP TRIGGER IF EXISTS assistant_drafts_no_truncate ON farmops.assistant_drafts;
DROP TRIGGER IF EXISTS ai_recommendations_state_machine ON farmops.ai_recommendations;
DROP TRIGGER IF EXISTS ai_recommendations_no_truncate ON farmops.ai_recommendations;
DROP TRIGGER IF EXISTS ai_evals_append_only ON farmops.ai_evals;
DROP TRIGGER IF EXISTS ai_evals_no_truncate ON farmops.ai_evals;

-- Policies: sql/policies re-creates them by one loop over the catalog, named as
-- the same two sentences on every tenant table.
DO $drop_policies$
DECLARE
    v_policy record;
BEGIN
    FOR v_policy IN
        SELECT p.polname, c.oid::regclass AS rel
        FROM pg_catalog.pg_policy AS p
        JOIN pg_catalog.pg_class AS c ON c.oid = p.polrelid
        WHERE c.relnamespace = 'farmops'::regnamespace
    LOOP
        EXECUTE format('DROP POLICY %I ON %s', v_policy.polname, v_policy.rel);
    END LOOP;
END
$drop_policies$;

-- Functions renamed (private ones now start with an underscore), merged into a
-- shared helper, or replaced by a new signature.
DROP FUNCTION IF EXISTS farmops.refuse_history_rewrite();
DROP FUNCTION IF EXISTS farmops.refuse_ledger_change();
DROP FUNCTION IF EXISTS farmops.check_run_transition();
DROP FUNCTION IF EXISTS farmops.guard_draft_transition();
DROP FUNCTION IF EXISTS farmops.guard_recommendation_transition();
DROP FUNCTION IF EXISTS farmops.assert_valid_user_id(text);
DROP FUNCTION IF EXISTS farmops.assert_farm_owner(uuid);
DROP FUNCTION IF EXISTS farmops.assert_not_last_owner(uuid);
DROP FUNCTION IF EXISTS farmops.context_signature(text, text, text);
DROP FUNCTION IF EXISTS farmops.require_tenant(text[]);
DROP FUNCTION IF EXISTS farmops.reserve_credits_step(uuid, text, text, text, integer, text, interval, text);
DROP FUNCTION IF EXISTS farmops.replayed_run(uuid, text, text, text, integer);
DROP FUNCTION IF EXISTS farmops.assert_may_drive_run(farmops.ai_runs);
DROP FUNCTION IF EXISTS farmops.lock_run_for_write(uuid, uuid, boolean);
DROP FUNCTION IF EXISTS farmops.check_input_schema(jsonb);
DROP FUNCTION IF EXISTS farmops.write_record(uuid, text, uuid, uuid, text, jsonb);
DROP FUNCTION IF EXISTS farmops.memory_key(text);
DROP FUNCTION IF EXISTS farmops.assert_valid_document(text, text, text);
DROP FUNCTION IF EXISTS farmops.assert_valid_chunks(text[], vector[]);
-- search and search_for_run gained a trailing p_model (the embedding-model check).
DROP FUNCTION IF EXISTS farmops.search(vector, integer, boolean, text[]);
DROP FUNCTION IF EXISTS farmops.search_for_run(uuid, vector, integer, boolean, text[]);
