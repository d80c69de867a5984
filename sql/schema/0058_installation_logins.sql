-- Installations sharing a cluster: roles are cluster-wide, so membership in
-- farmops_app says "an application login of SOME farmops installation". This
-- list says which logins may act in THIS one (database); farmops._assert_login_allowed()
-- refuses every other one at each entry point (begin_tenant, begin_tenant_verified,
-- create_farm, the maintenance jobs). Filled with farmops.allow_login().
--
-- Private, like the identity keys: revoked from the application role by
-- sql/policies/000_revoke_by_default.sql, and RLS forced with a policy for the
-- package owner only, so a stray GRANT still shows the application zero rows.

CREATE TABLE farmops.app_logins (
    login name NOT NULL,
    allowed_at timestamptz NOT NULL DEFAULT now(),
    allowed_by text NOT NULL DEFAULT session_user,
    CONSTRAINT app_logins_are_unique PRIMARY KEY (login)
);
COMMENT ON TABLE farmops.app_logins IS
'Private: the login roles (application or maintainer) that may act in this installation; a member of '
'farmops_app or farmops_maintainer not listed here is refused (OF004). Set with farmops.allow_login().';
COMMENT ON COLUMN farmops.app_logins.login IS 'The login role''s name (session_user), as pg_roles spells it.';

ALTER TABLE farmops.app_logins ENABLE ROW LEVEL SECURITY;
ALTER TABLE farmops.app_logins FORCE ROW LEVEL SECURITY;
CREATE POLICY "only the package owner reads or writes the allowed logins" ON farmops.app_logins
FOR ALL TO farmops_owner
USING (true) WITH CHECK (true);

-- An upgrade must not lock out a running service. An installation that existed
-- before this migration (its ledger has rows of earlier transactions) allows every
-- login that is a farmops_app member today and could connect to this database
-- (before this very transaction's bootstrap revoked CONNECT from PUBLIC, if it
-- did). On a cluster with several installations that also lists the others'
-- logins: review the list after upgrading (README, "Installations sharing a
-- cluster"). A fresh install lists nobody.
INSERT INTO farmops.app_logins (login, allowed_by)
SELECT
    r.rolname AS login,
    'migration 0058 (existing login at upgrade)' AS allowed_by
FROM pg_catalog.pg_roles AS r
WHERE
    EXISTS (
        SELECT FROM farmops.schema_migrations AS m
        WHERE m.applied_at < pg_catalog.now()
    )
    AND r.rolcanlogin
    AND NOT r.rolsuper
    AND pg_catalog.pg_has_role(r.oid, 'farmops_app', 'MEMBER')
    AND (
        pg_catalog.current_setting('farmops.public_connect_revoked', true) = 'on'
        OR pg_catalog.has_database_privilege(r.oid, pg_catalog.current_database(), 'CONNECT')
    );
