-- Securing a tenant table is one call: row level security enabled AND forced
-- (the owning role is not silently exempt) and the two policies every tenant
-- table has, named as the sentences they enforce. sql/policies applies it to
-- every farmops table with a farm_id; register_record_type to a product's own.

CREATE OR REPLACE FUNCTION farmops.secure_tenant_table(p_table regclass, p_append_only boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF NOT EXISTS (
        SELECT FROM pg_catalog.pg_attribute AS a
        WHERE a.attrelid = p_table AND a.attname = 'farm_id' AND NOT a.attisdropped
    ) THEN
        RAISE EXCEPTION 'table % has no farm_id column: it is not a tenant table', p_table USING ERRCODE = 'OF006';
    END IF;
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', p_table);
    EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', p_table);
    EXECUTE format('DROP POLICY IF EXISTS "members see their own farm''s rows" ON %s', p_table);
    -- (SELECT ...) runs once per query, not once per row.
    EXECUTE format(
        'CREATE POLICY "members see their own farm''s rows" ON %s FOR SELECT TO farmops_app '
        'USING (farm_id = (SELECT farmops.current_farm_id()))',
        p_table
    );
    EXECUTE format('DROP POLICY IF EXISTS "the package owner maintains every row" ON %s', p_table);
    EXECUTE format('DROP POLICY IF EXISTS "the package owner reads every row" ON %s', p_table);
    EXECUTE format('DROP POLICY IF EXISTS "the package owner appends rows" ON %s', p_table);
    IF p_append_only THEN
        -- No UPDATE or DELETE policy for anyone: the table only grows.
        EXECUTE format(
            'CREATE POLICY "the package owner reads every row" ON %s FOR SELECT TO farmops_owner USING (true)',
            p_table
        );
        EXECUTE format(
            'CREATE POLICY "the package owner appends rows" ON %s FOR INSERT TO farmops_owner WITH CHECK (true)',
            p_table
        );
    ELSE
        EXECUTE format(
            'CREATE POLICY "the package owner maintains every row" ON %s FOR ALL TO farmops_owner '
            'USING (true) WITH CHECK (true)',
            p_table
        );
    END IF;
END
$fn$;
COMMENT ON FUNCTION farmops.secure_tenant_table(regclass, boolean) IS
'Package owner only: enables and forces RLS on a tenant table (it must have farm_id) with the policies '
'"members see their own farm''s rows" (SELECT, farmops_app) and "the package owner maintains every row" '
'(ALL, farmops_owner), or with p_append_only the owner may only read and append. Idempotent.';
