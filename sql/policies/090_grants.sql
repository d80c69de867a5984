-- Grants, computed from one visible rule and applied last (000 revoked all):
--   functions: every farmops function whose name does not start with an
--     underscore is the API and executable by farmops_app, except the package
--     owner's functions and the maintenance jobs listed below; underscore
--     functions are private. The maintenance jobs are farmops_maintainer's.
--   tables: farmops_app may SELECT every farmops table (RLS decides which rows),
--     except private ones (leading underscore, or listed below); it writes none
--     (functions do).
--   CONNECT on the database: every login of farmops.app_logins, nobody else
--     through farmops (bootstrap revoked it from PUBLIC where it could).

DO $grant_functions$
DECLARE
    v_function regprocedure;
BEGIN
    FOR v_function IN
        SELECT p.oid::regprocedure
        FROM pg_catalog.pg_proc AS p
        WHERE p.pronamespace = 'farmops'::regnamespace
            AND p.prokind = 'f'
            AND left(p.proname, 1) <> '_'
            -- The package owner's functions: installing, registering and global writes.
            AND p.proname NOT IN (
                'migration_is_pending',     -- the installer's ledger check
                'secure_tenant_table',      -- ALTERs tables
                'register_record_type',     -- the registries are global
                'register_eval_rule',
                'set_model_rate',           -- the price list is global
                'set_model_price',
                'set_default_policy',       -- package-wide policy rules
                'drop_default_policy',
                'ingest_global_document',   -- the global knowledge base
                'delete_global_document',
                'set_identity_key',         -- verified identity: the auth service's keys
                'drop_identity_key',
                'require_verified_identity',
                'allow_login',              -- which logins are this installation's
                'disallow_login',
                'erase_farm',               -- erases a whole farm (50_trust/erasure.sql)
                -- The maintenance jobs (granted to farmops_maintainer below).
                'expire_reservations',
                'expire_drafts',
                'seal_audit'
            )
        ORDER BY 1
    LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO farmops_app', v_function);
    END LOOP;
END
$grant_functions$;

DO $grant_tables$
DECLARE
    v_table regclass;
BEGIN
    FOR v_table IN
        SELECT c.oid::regclass
        FROM pg_catalog.pg_class AS c
        -- Views too: every farmops view is security_invoker (check_tenancy), so RLS decides.
        WHERE c.relnamespace = 'farmops'::regnamespace AND c.relkind IN ('r', 'p', 'v')
            AND left(c.relname, 1) <> '_'
            -- Private tables: the installer's ledger and the secrets (the tenant
            -- context's signing key, the identity keys and their setting).
            AND c.relname NOT IN (
                'schema_migrations', 'context_signing_key', 'identity_keys', 'identity_settings', 'app_logins'
            )
        ORDER BY c.relname
    LOOP
        EXECUTE format('GRANT SELECT ON %s TO farmops_app', v_table);
    END LOOP;
END
$grant_tables$;

-- Append-only, twice over: nobody holds the privileges to change the ledger (the
-- owner gave up its own), and a trigger refuses it for every role.
REVOKE UPDATE, DELETE, TRUNCATE ON farmops.credit_ledger FROM public, farmops_app, farmops_owner;
REVOKE UPDATE, DELETE, TRUNCATE ON farmops.audit_log FROM public, farmops_app, farmops_owner;
-- Except erasure (50_trust/erasure.sql): the actor column only, to 'erased:<subject id>'
-- (its policy and the append-only trigger refuse every other change).
GRANT UPDATE (actor) ON farmops.credit_ledger TO farmops_owner;

-- The maintenance jobs: cross-farm work no tenant context scopes, so they see and
-- count every farm. The operator's role runs them (a cron job, pg_cron: README),
-- never the application. The complete list, kept in step with the exclusion above:
--   expire_reservations: refunds runs past their deadline (crashed workers);
--   expire_drafts: marks pending drafts past their approval TTL expired;
--   seal_audit: links every farm's finished audit entries into its chain (seal_audit(integer):
--   at most that many per transaction).
-- (check_invariants is not one: as the application RLS scopes it to the tenant,
-- and across farms it is the package owner's.)
GRANT EXECUTE ON FUNCTION
farmops.expire_reservations(integer),
farmops.expire_drafts(),
farmops.seal_audit(),
farmops.seal_audit(integer)
TO farmops_maintainer;

-- The sealing step deletes the rows the writers append to farmops._audit_pending, so the
-- queue's dead rows pile up between autovacuum visits (a minute apart by default), and each
-- writer's insert pays for them (ADR 0018). The seal job vacuums the queue itself: on
-- PostgreSQL 17 and later, MAINTAIN on that one private table (VACUUM, ANALYZE; nothing that
-- reads or changes a row). Earlier releases have no such privilege: autovacuum alone.
DO $grant$
BEGIN
    IF current_setting('server_version_num')::integer >= 170000 THEN
        EXECUTE 'GRANT MAINTAIN ON TABLE farmops._audit_pending TO farmops_maintainer';
    END IF;
END
$grant$;

-- CONNECT follows the allowed logins (re-applied: a login listed by hand, or a
-- grant revoked by hand, is brought back in line).
SELECT farmops._sync_login_connect();
