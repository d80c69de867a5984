-- farmops bootstrap: the one privileged, idempotent step.
--
-- Run inside the install transaction (install.sql and `farmops migrate` both do).
-- It needs, once per database, a role that may CREATE EXTENSION vector and
-- CREATE ROLE (a superuser, or rds_superuser on RDS/Aurora). Later runs only
-- need membership in farmops_owner: every object below is created as that role.

-- Built-ins first, temporary objects never: no object of another schema can
-- shadow a name this install uses (pgvector's schema joins the path below).
SET LOCAL search_path = pg_catalog, pg_temp;

DO $bootstrap$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_available_extensions WHERE name = 'vector') THEN
        RAISE EXCEPTION 'farmops needs the pgvector extension ("vector"), which is not installed on this server'
            USING ERRCODE = 'OF900',
            HINT = 'Install pgvector 0.8 or newer on the server; on RDS/Aurora it is built in.';
    END IF;
END
$bootstrap$;

-- Created only if missing, then used wherever it lives: a DBA (or Supabase, which
-- keeps it in schema extensions) may have installed pgvector in another schema.
CREATE EXTENSION IF NOT EXISTS vector WITH SCHEMA public;

-- The rest of the install transaction resolves pgvector's names (vector,
-- vector_cosine_ops, <=>) through this search_path, so no file assumes public.
-- pg_catalog comes first and pg_temp last, so neither pgvector's schema nor a
-- temporary object can shadow a built-in. A function whose body uses pgvector
-- keeps this path: ALTER FUNCTION ... SET search_path FROM CURRENT after it.
-- (EXECUTE, not set_config(): pgspot then checks everything after this file as
-- pinned to pg_catalog, pg_temp; this schema only adds pgvector's own names.)
DO $vector_schema$
DECLARE
    v_schema name := (
        SELECT n.nspname
        FROM pg_catalog.pg_extension AS e
        INNER JOIN pg_catalog.pg_namespace AS n ON e.extnamespace = n.oid
        WHERE e.extname = 'vector'
    );
BEGIN
    EXECUTE pg_catalog.format('SET LOCAL search_path = pg_catalog, %I, pg_temp', v_schema);
END
$vector_schema$;

-- Load pgvector's library in this session: until it is loaded its settings
-- (hnsw.iterative_scan, ...) are unknown placeholders, and the SET clauses of
-- farmops functions that use them are refused for a non-superuser owner.
DO $load$ BEGIN PERFORM '[1]'::vector; END $load$;

-- Four cluster-wide roles. The owner owns every farmops object; the application
-- role is what a service's login role is granted; the maintainer runs the
-- cross-farm maintenance jobs (expiry); the auditor only reads, every farm. None logs in, and neither the application
-- nor the maintainer bypasses row level security. Being cluster-wide, they do not
-- say which installation a login belongs to: farmops.app_logins does (below, and
-- sql/functions/10_tenancy/logins.sql).
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'farmops_owner') THEN
        CREATE ROLE farmops_owner NOLOGIN NOBYPASSRLS;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'farmops_app') THEN
        CREATE ROLE farmops_app NOLOGIN NOBYPASSRLS;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'farmops_maintainer') THEN
        CREATE ROLE farmops_maintainer NOLOGIN NOBYPASSRLS;
    END IF;
    -- The auditor reads every farm's metrics, runs, lineage and ledger; it owns and
    -- writes nothing (sql/policies/050_auditor.sql).
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'farmops_auditor') THEN
        CREATE ROLE farmops_auditor NOLOGIN NOBYPASSRLS;
    END IF;
EXCEPTION WHEN duplicate_object THEN
    -- Another database of this cluster created it at the same moment.
    NULL;
END
$roles$;

-- Both roles must be able to name pgvector's type. Schema public allows that to
-- everyone; another schema (Supabase's extensions) may not, so the first,
-- privileged install grants USAGE on it. Later runs find it granted.
DO $vector_usage$
DECLARE
    v_schema name := (
        SELECT n.nspname
        FROM pg_catalog.pg_extension AS e
        INNER JOIN pg_catalog.pg_namespace AS n ON e.extnamespace = n.oid
        WHERE e.extname = 'vector'
    );
BEGIN
    IF NOT pg_catalog.has_schema_privilege('farmops_owner', v_schema, 'USAGE')
        OR NOT pg_catalog.has_schema_privilege('farmops_app', v_schema, 'USAGE') THEN
        EXECUTE pg_catalog.format('GRANT USAGE ON SCHEMA %I TO farmops_owner, farmops_app', v_schema);
    END IF;
END
$vector_usage$;

-- Only the first install creates the schema: CREATE SCHEMA IF NOT EXISTS would
-- still demand CREATE on the database from every later migrator.
DO $schema$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_namespace WHERE nspname = 'farmops') THEN
        CREATE SCHEMA farmops AUTHORIZATION farmops_owner;
    END IF;
END
$schema$;

-- Never install into a schema someone else created first (they could then
-- replace our functions): refuse unless we own it.
DO $owner_check$
BEGIN
    IF (SELECT n.nspowner FROM pg_catalog.pg_namespace AS n WHERE n.nspname = 'farmops')
        IS DISTINCT FROM 'farmops_owner'::pg_catalog.regrole THEN
        RAISE EXCEPTION 'schema farmops exists but is not owned by farmops_owner; refusing to install into it'
            USING ERRCODE = 'OF902',
            HINT = 'Inspect the schema; if it is farmops, ALTER SCHEMA farmops OWNER TO farmops_owner.';
    END IF;
END
$owner_check$;
COMMENT ON SCHEMA farmops IS
'farmops: AI governance as a database primitive (tenancy, credits, runs, drafts, retrieval).';

-- CONNECT to this database: PUBLIC has it by default, so a login of another
-- installation in this cluster could connect here. When the migrator may (the
-- database owner or a superuser), PUBLIC loses it and farmops_owner gets it with
-- the grant option, so that the package owner grants it to each allowed login
-- (farmops.allow_login, re-applied by policies/090_grants.sql). A role that has a
-- session in this database right now and is no farmops_app member (another
-- service of a shared database) keeps it explicitly: an upgrade locks out no
-- running service. farmops_app members are allowed by the list instead (0058
-- lists the existing ones on upgrade, told by the setting below). An unprivileged
-- migrator changes nothing here.
DO $connect$
DECLARE
    v_db name := pg_catalog.current_database();
    v_role name;
BEGIN
    IF NOT pg_catalog.pg_has_role(
        current_user, (SELECT d.datdba FROM pg_catalog.pg_database AS d WHERE d.datname = v_db), 'MEMBER'
    ) THEN
        RETURN;
    END IF;
    EXECUTE pg_catalog.format('GRANT CONNECT ON DATABASE %I TO farmops_owner WITH GRANT OPTION', v_db);
    IF pg_catalog.has_database_privilege('public', v_db, 'CONNECT') THEN
        FOR v_role IN
            SELECT DISTINCT r.rolname
            FROM pg_catalog.pg_stat_activity AS a
            INNER JOIN pg_catalog.pg_roles AS r ON a.usesysid = r.oid
            WHERE a.datname = v_db AND NOT r.rolsuper AND NOT pg_catalog.pg_has_role(r.oid, 'farmops_app', 'MEMBER')
        LOOP
            EXECUTE pg_catalog.format('GRANT CONNECT ON DATABASE %I TO %I', v_db, v_role);
        END LOOP;
        EXECUTE pg_catalog.format('REVOKE CONNECT ON DATABASE %I FROM PUBLIC', v_db);
        PERFORM pg_catalog.set_config('farmops.public_connect_revoked', 'on', true);
    END IF;
END
$connect$;

-- Everything after this line is created by, and owned by, farmops_owner.
SET LOCAL ROLE farmops_owner;

CREATE TABLE IF NOT EXISTS farmops.schema_migrations (
    filename text PRIMARY KEY CHECK (filename ~ '^[0-9]{4}_[a-z0-9_]+\.sql$'),
    sha256 text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    applied_at timestamptz NOT NULL DEFAULT now(),
    applied_by text NOT NULL DEFAULT session_user
);
COMMENT ON TABLE farmops.schema_migrations IS
'Ledger of applied sql/schema migrations with the sha256 of each file as applied.';

CREATE OR REPLACE FUNCTION farmops.migration_is_pending(p_filename text, p_sha256 text)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_applied_sha text;
BEGIN
    SELECT m.sha256 INTO v_applied_sha
    FROM farmops.schema_migrations AS m
    WHERE m.filename = p_filename;
    IF NOT FOUND THEN
        RETURN true;
    END IF;
    IF v_applied_sha <> p_sha256 THEN
        RAISE EXCEPTION 'migration % was changed after it was applied (applied sha256 %, file now %)',
            p_filename, v_applied_sha, p_sha256
            USING ERRCODE = 'OF901',
            HINT = 'Applied migrations are immutable: restore the file and add a new migration instead.';
    END IF;
    RETURN false;
END
$fn$;
COMMENT ON FUNCTION farmops.migration_is_pending(text, text) IS
'True if the schema migration has not been applied; raises OF901 if it was applied with other content.';
