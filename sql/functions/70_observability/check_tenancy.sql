-- The tenant boundary, checked in the catalog. Every rule of ADR 0003 and of
-- sql/README.md that the catalog can show is one branch below; no rows = healthy.
-- It reads only the system catalogs and farmops.record_types (no tenant rows),
-- so it is SECURITY INVOKER and any application session may run it.

CREATE OR REPLACE FUNCTION farmops.check_tenancy()
RETURNS TABLE (object_type text, object_name text, problem text, detail text)
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    WITH RECURSIVE
    -- Tenant tables: every farmops table with a farm_id, and the product's own record
    -- tables registered in farmops.record_types, wherever they live. Joined by name:
    -- to_regclass would need USAGE on the product's schema.
    tenant_tables AS (
        SELECT c.oid AS rel, a.attnum AS farm_col
        FROM pg_catalog.pg_class AS c
        JOIN pg_catalog.pg_attribute AS a ON a.attrelid = c.oid AND a.attname = 'farm_id' AND NOT a.attisdropped
        WHERE c.relkind IN ('r', 'p')
            AND (c.relnamespace = 'farmops'::regnamespace OR EXISTS (
                SELECT FROM farmops.record_types AS rt
                JOIN pg_catalog.pg_namespace AS n ON n.nspname = rt.target_schema
                WHERE n.oid = c.relnamespace AND rt.target_table = c.relname
            ))
    ),
    -- Row level security applies to the tenant tables and to farms, the tenant itself
    -- (scoped by its id).
    scoped_tables AS (
        SELECT t.rel, t.farm_col AS scope_col FROM tenant_tables AS t
        UNION ALL
        SELECT a.attrelid, a.attnum FROM pg_catalog.pg_attribute AS a
        WHERE a.attrelid = 'farmops.farms'::regclass AND a.attname = 'id'
    ),
    -- Policies that let the application see rows: permissive, for SELECT (or ALL), to
    -- farmops_app or PUBLIC. A member policy's expression depends on the scope column
    -- and on farmops.current_farm_id() (the catalog records both in pg_depend).
    app_policies AS (
        SELECT s.rel, p.polname,
            EXISTS (
                SELECT FROM pg_catalog.pg_depend AS d
                WHERE d.classid = 'pg_catalog.pg_policy'::regclass AND d.objid = p.oid
                    AND d.refclassid = 'pg_catalog.pg_proc'::regclass
                    AND d.refobjid = 'farmops.current_farm_id()'::regprocedure
            ) AND EXISTS (
                SELECT FROM pg_catalog.pg_depend AS d
                WHERE d.classid = 'pg_catalog.pg_policy'::regclass AND d.objid = p.oid
                    AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjid = s.rel
                    AND d.refobjsubid = s.scope_col
            ) AS farm_scoped
        FROM scoped_tables AS s
        JOIN pg_catalog.pg_policy AS p ON p.polrelid = s.rel
        WHERE p.polpermissive AND p.polcmd IN ('r', '*')
            AND (0::oid = ANY(p.polroles) OR 'farmops_app'::regrole::oid = ANY(p.polroles))
    ),
    -- The application role and every login that is a member of it, directly or not.
    app_members (oid) AS (
        SELECT 'farmops_app'::regrole::oid
        UNION
        SELECT m.member FROM pg_catalog.pg_auth_members AS m JOIN app_members AS am ON m.roleid = am.oid
    ),
    app_roles AS (
        SELECT r.rolname, r.rolsuper, r.rolbypassrls,
            pg_catalog.pg_has_role(r.oid, 'farmops_owner'::regrole, 'MEMBER') AS is_owner
        FROM pg_catalog.pg_roles AS r
        JOIN app_members AS am ON am.oid = r.oid
        WHERE r.rolname = 'farmops_app' OR r.rolcanlogin
    ),
    problems AS (
        SELECT 'table' AS object_type, s.rel::regclass::text AS object_name, 'rls_not_enabled' AS problem,
            'row level security is off: every role with SELECT sees every farm''s rows' AS detail
        FROM scoped_tables AS s JOIN pg_catalog.pg_class AS c ON c.oid = s.rel
        WHERE NOT c.relrowsecurity

        UNION ALL
        SELECT 'table', s.rel::regclass::text, 'rls_not_forced',
            'row level security is not forced: the table''s owner (and functions running as it) skips it'
        FROM scoped_tables AS s JOIN pg_catalog.pg_class AS c ON c.oid = s.rel
        WHERE NOT c.relforcerowsecurity

        UNION ALL
        SELECT 'table', s.rel::regclass::text, 'no_member_policy',
            'no permissive SELECT policy for farmops_app scoped by farmops.current_farm_id(): '
            'secure it with farmops.secure_tenant_table()'
        FROM scoped_tables AS s
        WHERE NOT EXISTS (SELECT FROM app_policies AS ap WHERE ap.rel = s.rel AND ap.farm_scoped)

        UNION ALL
        SELECT 'policy', format('%s.%I', ap.rel::regclass, ap.polname), 'policy_not_scoped_to_the_farm',
            'a permissive policy for the application that does not compare the farm with '
            'farmops.current_farm_id(): policies are OR-ed, so it opens the table to other farms'
        FROM app_policies AS ap
        WHERE NOT ap.farm_scoped

        UNION ALL
        SELECT 'constraint', format('%s.%I', con.conrelid::regclass, con.conname), 'foreign_key_without_farm_id',
            format('%s: between tenant tables the key must pair farm_id with farm_id, '
                'or a row may point into another farm', pg_catalog.pg_get_constraintdef(con.oid))
        FROM pg_catalog.pg_constraint AS con
        JOIN tenant_tables AS src ON src.rel = con.conrelid
        JOIN tenant_tables AS dst ON dst.rel = con.confrelid
        WHERE con.contype = 'f' AND NOT EXISTS (
            SELECT FROM pg_catalog.generate_subscripts(con.conkey, 1) AS k (i)
            WHERE con.conkey[k.i] = src.farm_col AND con.confkey[k.i] = dst.farm_col
        )

        UNION ALL
        -- Unique indexes back every primary and unique key: one branch covers all three.
        SELECT CASE WHEN con.oid IS NULL THEN 'index' ELSE 'constraint' END,
            CASE WHEN con.oid IS NULL THEN i.indexrelid::regclass::text
                ELSE format('%s.%I', i.indrelid::regclass, con.conname) END,
            'key_without_farm_id',
            format('%s: a unique key without farm_id tells one farm what another stored (a covert '
                'channel) and cannot be enforced per shard when distributed by farm_id',
                pg_catalog.pg_get_indexdef(i.indexrelid))
        FROM pg_catalog.pg_index AS i
        JOIN tenant_tables AS t ON t.rel = i.indrelid
        LEFT JOIN pg_catalog.pg_constraint AS con ON con.conindid = i.indexrelid AND con.contype IN ('p', 'u')
        WHERE i.indisunique AND NOT EXISTS (
            SELECT FROM pg_catalog.generate_series(0, i.indnkeyatts - 1) AS k (n) WHERE i.indkey[k.n] = t.farm_col
        )

        UNION ALL
        SELECT 'index', i.indexrelid::regclass::text, 'index_not_leading_with_farm_id',
            format('%s: an index that does not start with farm_id spans every farm; the planner''s '
                'estimates and timings over it leak other farms'' data', pg_catalog.pg_get_indexdef(i.indexrelid))
        FROM pg_catalog.pg_index AS i
        JOIN tenant_tables AS t ON t.rel = i.indrelid
        WHERE i.indkey[0] <> t.farm_col

        UNION ALL
        SELECT 'view', c.oid::regclass::text, 'view_without_security_invoker',
            'the view reads as its owner, so row level security is checked for the owner, not the caller: '
            'CREATE VIEW ... WITH (security_invoker)'
        FROM pg_catalog.pg_class AS c
        WHERE c.relnamespace = 'farmops'::regnamespace AND c.relkind = 'v' AND NOT EXISTS (
            SELECT FROM pg_catalog.unnest(c.reloptions) AS o
            WHERE o ~* '^security_invoker=(t|tr|tru|true|y|ye|yes|on|1)$'
        )

        UNION ALL
        SELECT 'materialized view', c.oid::regclass::text, 'materialized_view_bypasses_rls',
            'a materialized view stores rows read as its owner; the reader''s row level security never applies'
        FROM pg_catalog.pg_class AS c
        WHERE c.relnamespace = 'farmops'::regnamespace AND c.relkind = 'm'

        UNION ALL
        SELECT 'function', p.oid::regprocedure::text, 'security_definer_without_search_path',
            'runs as its owner with the caller''s search_path: the caller can shadow any unqualified name; '
            'add SET search_path = pg_catalog, pg_temp'
        FROM pg_catalog.pg_proc AS p
        WHERE p.pronamespace = 'farmops'::regnamespace AND p.prosecdef AND NOT EXISTS (
            SELECT FROM pg_catalog.unnest(p.proconfig) AS s WHERE s LIKE 'search_path=%'
        )

        UNION ALL
        SELECT 'function', p.oid::regprocedure::text, 'executable_by_public',
            'EXECUTE is granted to PUBLIC (every role of the cluster): revoke it; sql/policies/090_grants.sql '
            'grants the API to farmops_app'
        FROM pg_catalog.pg_proc AS p
        WHERE p.pronamespace = 'farmops'::regnamespace AND EXISTS (
            SELECT FROM pg_catalog.aclexplode(coalesce(p.proacl, pg_catalog.acldefault('f', p.proowner))) AS a
            WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE'
        )

        UNION ALL
        SELECT 'role', r.rolname::text, 'app_role_is_superuser',
            'a superuser bypasses row level security and every privilege'
        FROM app_roles AS r WHERE r.rolsuper

        UNION ALL
        SELECT 'role', r.rolname::text, 'app_role_bypasses_rls', 'BYPASSRLS: this login sees every farm''s rows'
        FROM app_roles AS r WHERE r.rolbypassrls AND NOT r.rolsuper

        UNION ALL
        SELECT 'role', r.rolname::text, 'app_role_is_package_owner',
            'a member of farmops_owner may SET ROLE to the owner and read or change every farm''s rows'
        FROM app_roles AS r WHERE r.is_owner AND NOT r.rolsuper

        UNION ALL
        SELECT CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' WHEN 'S' THEN 'sequence'
            ELSE 'table' END,
            c.oid::regclass::text, 'not_owned_by_package_owner',
            format('owned by %s: its owner skips privileges and (unless forced) row level security',
                pg_catalog.pg_get_userbyid(c.relowner))
        FROM pg_catalog.pg_class AS c
        WHERE c.relnamespace = 'farmops'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
            AND c.relowner <> 'farmops_owner'::regrole

        UNION ALL
        SELECT 'function', p.oid::regprocedure::text, 'not_owned_by_package_owner',
            format('owned by %s: a SECURITY DEFINER function runs as its owner', pg_catalog.pg_get_userbyid(p.proowner))
        FROM pg_catalog.pg_proc AS p
        WHERE p.pronamespace = 'farmops'::regnamespace AND p.proowner <> 'farmops_owner'::regrole
    )
    SELECT p.object_type, p.object_name, p.problem, p.detail FROM problems AS p ORDER BY 1, 2, 3
$fn$;
COMMENT ON FUNCTION farmops.check_tenancy() IS
'The tenant boundary in the catalog; one row per problem, no rows = healthy. Tenant tables (farm_id, in farmops or '
'registered as record-type targets) need RLS enabled and forced and a member policy, no app policy that is not '
'farm-scoped, foreign keys pairing farm_id with farm_id, farm_id in every unique key and first in every index; '
'farmops views need security_invoker (no materialized views); SECURITY DEFINER functions a pinned search_path; no '
'function executable by PUBLIC; farmops_app and its logins neither superuser, BYPASSRLS nor farmops_owner; every '
'farmops table and function owned by farmops_owner. Reads only the catalog: any application session may run it.';
