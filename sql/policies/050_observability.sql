-- Observability's readers (re-applied on every migrate, after row level
-- security and before the general grants):
--   the metrics views (farmops.metrics_*, security invoker) are readable by the
--     application (row level security shows it its farm) and the auditor;
--   farmops_auditor reads every farm's rows of the tables below through its own
--     policy, and executes the read-only observability functions. It holds no
--     write privilege, owns nothing, and is not a member of any other farmops role.

DO $metrics_views$
DECLARE
    v_view regclass;
BEGIN
    FOR v_view IN
        SELECT c.oid::regclass
        FROM pg_catalog.pg_class AS c
        WHERE c.relnamespace = 'farmops'::regnamespace AND c.relkind = 'v' AND c.relname LIKE 'metrics\_%'
        ORDER BY c.relname
    LOOP
        EXECUTE format('GRANT SELECT ON %s TO farmops_app, farmops_auditor', v_view);
    END LOOP;
END
$metrics_views$;

-- What an auditor reads: metrics, runs and their lineage, the ledger, decisions.
-- Not documents, memories, embeddings or the farms' own records (content, not
-- governance), nor anything private. A branch adding audit tables lists them here.
DO $auditor$
DECLARE
    v_table regclass;
BEGIN
    FOR v_table IN
        SELECT t.tbl::regclass
        FROM (VALUES
            ('farmops.farms'), ('farmops.farm_members'), ('farmops.credit_ledger'), ('farmops.ai_runs'),
            ('farmops.ai_run_steps'), ('farmops.ai_run_retrievals'), ('farmops.assistant_drafts'),
            ('farmops.ai_recommendations'), ('farmops.ai_evals'), ('farmops.ai_feedback'),
            ('farmops.autonomy_changes'), ('farmops.metric_counters'), ('farmops.documents'),
            ('farmops.global_documents'), ('farmops.audit_log'), ('farmops.budgets'), ('farmops.budget_usage'),
            ('farmops.budget_alerts'), ('farmops.model_usage'), ('farmops.guard_events'), ('farmops.pii_findings')
        ) AS t (tbl)
    LOOP
        EXECUTE format('GRANT SELECT ON %s TO farmops_auditor', v_table);
        EXECUTE format('DROP POLICY IF EXISTS "the auditor reads every farm''s rows" ON %s', v_table);
        EXECUTE format(
            'CREATE POLICY "the auditor reads every farm''s rows" ON %s FOR SELECT TO farmops_auditor USING (true)',
            v_table
        );
    END LOOP;
END
$auditor$;
-- documents and global_documents: only their titles, for lineage (which document
-- a retrieval came from). Column privileges keep the content out of reach.
REVOKE SELECT ON farmops.documents, farmops.global_documents FROM farmops_auditor;
-- The budget gauges read this security-invoker view (the auditor's policies above apply).
GRANT SELECT ON farmops.budget_status TO farmops_auditor;
GRANT SELECT (farm_id, id, title, created_at) ON farmops.documents TO farmops_auditor;
GRANT SELECT (id, title, created_at) ON farmops.global_documents TO farmops_auditor;

GRANT EXECUTE ON FUNCTION
farmops.metrics(),
farmops.metric_help(),
farmops.rate_limit_refusals(),
farmops.run_lineage(uuid),
farmops.redact_pii(text),
farmops.error_codes()
TO farmops_auditor;
