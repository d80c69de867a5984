-- Which logins may act in this installation. Roles are cluster-wide: a login of
-- another farmops database in this cluster is farmops_app here too, so membership
-- alone proves nothing about the installation. farmops.app_logins (schema 0058)
-- lists this installation's logins; _assert_login_allowed() is the one check every
-- entry point without a tenant context runs first (begin_tenant,
-- begin_tenant_verified, create_farm, the maintenance jobs). Everything else needs
-- a tenant context, which only begin_tenant* opens. CONNECT on the database
-- follows the list (bootstrap revoked it from PUBLIC where it could), so another
-- installation's login cannot even connect here. See docs/adr/0017.

CREATE OR REPLACE FUNCTION farmops._assert_login_allowed()
RETURNS void
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    -- session_user, not current_user: callers are SECURITY DEFINER, and SET ROLE
    -- (the CLI's farmops_app, the maintainer's job) keeps the login. Whoever may
    -- become the package owner (its members, superusers) owns the installation anyway.
    -- The listed login first and alone: that is every begin_tenant of a service.
    IF EXISTS (SELECT FROM farmops.app_logins AS l WHERE l.login = session_user) THEN
        RETURN;
    END IF;
    IF NOT pg_has_role(
            session_user,
            (SELECT n.nspowner FROM pg_catalog.pg_namespace AS n WHERE n.nspname = 'farmops'),
            'MEMBER'
        ) THEN
        RAISE EXCEPTION 'login % may not act in the farmops installation of database %',
            session_user, current_database()
            USING ERRCODE = 'OF004',
            HINT = 'Roles are cluster-wide; the package owner allows a login here with farmops.allow_login().';
    END IF;
END
$fn$;
COMMENT ON FUNCTION farmops._assert_login_allowed() IS
'Private: raises OF004 unless the session''s login is in farmops.app_logins (or may act as the package owner).';

CREATE OR REPLACE FUNCTION farmops._sync_login_connect()
RETURNS void
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_db name := current_database();
    v_role name;
BEGIN
    -- Runs as farmops_owner (the migration's policies step, allow_login, disallow_login),
    -- so every CONNECT it grants has farmops_owner as grantor and is its to revoke. Without
    -- the grant option (bootstrap never ran as the database owner) PUBLIC kept CONNECT
    -- and there is nothing to do.
    IF NOT has_database_privilege('farmops_owner', v_db, 'CONNECT WITH GRANT OPTION') THEN
        RETURN;
    END IF;
    -- One changer of the list and the grants at a time: two GRANTs on the database row
    -- at once fail ("tuple concurrently updated"); the second sees the first's grant.
    LOCK TABLE farmops.app_logins IN SHARE ROW EXCLUSIVE MODE;
    FOR v_role IN
        SELECT r.rolname
        FROM farmops.app_logins AS l
        INNER JOIN pg_catalog.pg_roles AS r ON l.login = r.rolname
        WHERE NOT has_database_privilege(r.oid, v_db, 'CONNECT')
    LOOP
        EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', v_db, v_role);
    END LOOP;
    FOR v_role IN
        SELECT r.rolname
        FROM pg_catalog.pg_database AS d
        CROSS JOIN LATERAL aclexplode(d.datacl) AS a
        INNER JOIN pg_catalog.pg_roles AS r ON a.grantee = r.oid
        WHERE d.datname = v_db
            AND a.privilege_type = 'CONNECT'
            AND a.grantor = 'farmops_owner'::regrole::oid
            AND NOT EXISTS (SELECT FROM farmops.app_logins AS l WHERE l.login = r.rolname)
    LOOP
        EXECUTE format('REVOKE CONNECT ON DATABASE %I FROM %I', v_db, v_role);
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION farmops._sync_login_connect() IS
'Private: grants CONNECT on this database to every allowed login and takes it (as farmops_owner granted it) '
'from every role no longer listed.';

CREATE OR REPLACE FUNCTION farmops._login_argument(p_login text)
RETURNS name
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    -- Compared as text before any cast: name silently truncates at 63 bytes, which
    -- would turn a long name into another role's.
    IF p_login IS NULL OR octet_length(p_login) NOT BETWEEN 1 AND 63 THEN
        RAISE EXCEPTION 'login must be the name of a role (1 to 63 bytes)' USING ERRCODE = 'OF006';
    END IF;
    RETURN p_login::name;
END
$fn$;
COMMENT ON FUNCTION farmops._login_argument(text) IS
'Private: p_login as a role name, or OF006 (NULL, empty, longer than a role name can be).';

CREATE OR REPLACE FUNCTION farmops.allow_login(p_login text)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
-- Definer, and never granted to the application: farmops_owner writes the private
-- list and is the grantor of the CONNECT it grants, whoever of its members calls.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_login name := farmops._login_argument(p_login);
    v_role record;
    v_new boolean;
BEGIN
    -- Before the INSERT: taken after it, two callers' row locks would deadlock.
    LOCK TABLE farmops.app_logins IN SHARE ROW EXCLUSIVE MODE;
    SELECT r.rolsuper, r.rolbypassrls INTO v_role FROM pg_catalog.pg_roles AS r WHERE r.rolname = v_login;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no role named % in this cluster', quote_ident(v_login) USING ERRCODE = 'OF006';
    END IF;
    IF v_role.rolsuper OR v_role.rolbypassrls THEN
        RAISE EXCEPTION 'role % is a superuser or bypasses row level security: not an application login',
            quote_ident(v_login)
            USING ERRCODE = 'OF006';
    END IF;
    INSERT INTO farmops.app_logins AS l (login) VALUES (v_login)
    ON CONFLICT ON CONSTRAINT app_logins_are_unique DO NOTHING;
    v_new := FOUND;
    PERFORM farmops._sync_login_connect();
    RETURN v_new;
END
$fn$;
COMMENT ON FUNCTION farmops.allow_login(text) IS
'Package owner only: lets the login role p_login (an application or maintainer login) act in this '
'installation and connect to its database. Returns whether it was newly listed. OF006: NULL, too long, no '
'such role, or a superuser / BYPASSRLS role.';

CREATE OR REPLACE FUNCTION farmops.disallow_login(p_login text)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_login name := farmops._login_argument(p_login);
    v_listed boolean;
BEGIN
    LOCK TABLE farmops.app_logins IN SHARE ROW EXCLUSIVE MODE;
    DELETE FROM farmops.app_logins AS l WHERE l.login = v_login;
    v_listed := FOUND;
    PERFORM farmops._sync_login_connect();
    RETURN v_listed;
END
$fn$;
COMMENT ON FUNCTION farmops.disallow_login(text) IS
'Package owner only: p_login may no longer act in this installation (OF004 from its next transaction) and '
'loses the CONNECT farmops granted it (its open sessions stay connected). Returns whether it was listed.';
