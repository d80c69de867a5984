-- Row level security for every table, by rule. Every farmops table with a
-- farm_id is a tenant table secured by farmops.secure_tenant_table(): RLS
-- enabled and forced, "members see their own farm's rows", "the package owner
-- maintains every row". The tables whose policies differ are listed below.

DO $tenant_tables$
DECLARE
    v_table regclass;
BEGIN
    FOR v_table IN
        SELECT c.oid::regclass
        FROM pg_catalog.pg_class AS c
        WHERE c.relnamespace = 'farmops'::regnamespace AND c.relkind IN ('r', 'p')
            AND EXISTS (
                SELECT FROM pg_catalog.pg_attribute AS a
                WHERE a.attrelid = c.oid AND a.attname = 'farm_id' AND NOT a.attisdropped
            )
        ORDER BY c.relname
    LOOP
        -- The ledger only grows: its owner may read and append, never update or delete.
        PERFORM farmops.secure_tenant_table(v_table, p_append_only => v_table = 'farmops.credit_ledger'::regclass);
    END LOOP;
END
$tenant_tables$;

-- Exception: farms is the tenant itself (its key is id, not farm_id).
ALTER TABLE farmops.farms ENABLE ROW LEVEL SECURITY;
ALTER TABLE farmops.farms FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS "members see their own farm" ON farmops.farms;
CREATE POLICY "members see their own farm" ON farmops.farms
FOR SELECT TO farmops_app
USING (id = (SELECT farmops.current_farm_id()));
DROP POLICY IF EXISTS "the package owner maintains every row" ON farmops.farms;
CREATE POLICY "the package owner maintains every row" ON farmops.farms
FOR ALL TO farmops_owner
USING (true) WITH CHECK (true);

-- Exception: global tables (no farm_id) are read by every farm and written only
-- by the package owner. The price list and the global guard rules are readable
-- without a tenant context (an operator estimates costs; farmops.check_text runs
-- with or without one); the global knowledge base only inside one.
-- record_types, ai_eval_rules and role_capabilities carry no RLS: nothing in
-- them is secret, and the application holds only SELECT on them.
DO $global_tables$
DECLARE
    v_global record;
BEGIN
    FOR v_global IN
        SELECT t.tbl::regclass AS tbl, t.policy, t.readable_when
        FROM (VALUES
            ('farmops.model_rates', 'every application session reads the global rows', 'true'),
            ('farmops.guard_rules', 'every application session reads the global rows', 'true'),
            ('farmops.global_documents', 'every farm reads the global knowledge base',
                '(SELECT farmops.current_farm_id()) IS NOT NULL'),
            ('farmops.global_embeddings', 'every farm reads the global knowledge base',
                '(SELECT farmops.current_farm_id()) IS NOT NULL')
        ) AS t (tbl, policy, readable_when)
    LOOP
        EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', v_global.tbl);
        EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', v_global.tbl);
        EXECUTE format('DROP POLICY IF EXISTS %I ON %s', v_global.policy, v_global.tbl);
        EXECUTE format(
            'CREATE POLICY %I ON %s FOR SELECT TO farmops_app USING (%s)',
            v_global.policy, v_global.tbl, v_global.readable_when
        );
        EXECUTE format('DROP POLICY IF EXISTS "the package owner maintains every row" ON %s', v_global.tbl);
        EXECUTE format(
            'CREATE POLICY "the package owner maintains every row" ON %s FOR ALL TO farmops_owner '
            'USING (true) WITH CHECK (true)',
            v_global.tbl
        );
    END LOOP;
END
$global_tables$;
