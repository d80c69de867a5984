-- The tenant context: transaction-local settings written only by
-- farmops.begin_tenant() and signed with a private key, so a pooled connection
-- cannot leak it and a session cannot forge it with set_config().

CREATE OR REPLACE FUNCTION farmops._context_signature(p_farm_id text, p_user_id text, p_role text)
RETURNS text
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
    -- now() is the transaction's start: a signature is valid in one transaction only.
    -- The message is a JSON array, so fields cannot run into each other (concat_ws
    -- skipped a NULL role: user 'u|viewer' with no role signed like user 'u', role
    -- 'viewer'); the epoch does not depend on TimeZone or DateStyle; and the nested
    -- hash H(k || H(k || m)) is not open to SHA-256 length extension.
    SELECT encode(
        sha256(k.signing_key || sha256(k.signing_key || convert_to(
            jsonb_build_array(p_farm_id, p_user_id, p_role, pg_backend_pid(), extract(EPOCH FROM now()))::text,
            'UTF8'
        ))),
        'hex'
    )
    FROM farmops.context_signing_key AS k
$fn$;
COMMENT ON FUNCTION farmops._context_signature(text, text, text) IS
'Private: keyed signature of a tenant context (farm, user, role), bound to this backend and transaction.';

CREATE OR REPLACE FUNCTION farmops.tenant_context(
    OUT farm_id uuid, OUT user_id text, OUT member_role text
)
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_farm text := current_setting('farmops.farm_id', true);
    v_user text := current_setting('farmops.user_id', true);
    v_role text := current_setting('farmops.member_role', true);
BEGIN
    IF coalesce(v_farm, '') = ''
        OR current_setting('farmops.context_sig', true)
        IS DISTINCT FROM farmops._context_signature(v_farm, v_user, v_role) THEN
        RETURN;  -- no (valid) context: all NULL, which RLS turns into zero rows
    END IF;
    farm_id := v_farm::uuid;
    user_id := v_user;
    member_role := v_role;
END
$fn$;
COMMENT ON FUNCTION farmops.tenant_context() IS
'The verified tenant context of this transaction (farm, user, member role), or NULLs if none.';

CREATE OR REPLACE FUNCTION farmops.current_farm_id()
RETURNS uuid
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$ SELECT (farmops.tenant_context()).farm_id $fn$;
COMMENT ON FUNCTION farmops.current_farm_id() IS
'The farm of this transaction''s tenant context, or NULL. Policies call it as (SELECT farmops.current_farm_id()).';

CREATE OR REPLACE FUNCTION farmops.current_user_id()
RETURNS text
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$ SELECT (farmops.tenant_context()).user_id $fn$;
COMMENT ON FUNCTION farmops.current_user_id() IS 'The user of this transaction''s tenant context, or NULL.';

CREATE OR REPLACE FUNCTION farmops.current_member_role()
RETURNS text
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$ SELECT (farmops.tenant_context()).member_role $fn$;
COMMENT ON FUNCTION farmops.current_member_role() IS
'The member role (owner, manager, worker, viewer, agent) of this transaction''s tenant context, or NULL.';

-- The one way into a tenant context, shared by begin_tenant() and
-- begin_tenant_verified() (sql/functions/10_tenancy/verified_identity.sql):
-- checks membership, then sets the signed, transaction-local context. Private:
-- only those SECURITY DEFINER functions call it, after their own checks.
CREATE OR REPLACE FUNCTION farmops._enter_tenant(p_farm_id uuid, p_user_id text)
RETURNS text
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_role text;
BEGIN
    PERFORM farmops._assert_given(p_farm_id, 'farm id');
    PERFORM farmops._assert_given(p_user_id, 'user id');
    -- A WITH HOLD cursor outlives its transaction together with the rows it read, so
    -- one left in this session may carry an earlier tenant's rows into this one (a
    -- connection reused without DISCARD ALL). Refuse to enter a context beside it.
    IF EXISTS (SELECT FROM pg_catalog.pg_cursors AS c WHERE c.is_holdable) THEN
        RAISE EXCEPTION 'this session holds a WITH HOLD cursor (%): close it, or DISCARD ALL, before begin_tenant',
            (SELECT string_agg(c.name, ', ' ORDER BY c.name) FROM pg_catalog.pg_cursors AS c WHERE c.is_holdable)
            USING ERRCODE = 'OF007';
    END IF;
    SELECT m.role INTO v_role
    FROM farmops.farm_members AS m
    WHERE m.farm_id = p_farm_id AND m.user_id = p_user_id;
    IF NOT FOUND THEN
        -- Same error whether or not the farm exists: no probing for other tenants.
        RAISE EXCEPTION 'user is not a member of farm %', p_farm_id USING ERRCODE = 'OF002';
    END IF;
    PERFORM set_config('farmops.farm_id', p_farm_id::text, true);
    PERFORM set_config('farmops.user_id', p_user_id, true);
    PERFORM set_config('farmops.member_role', v_role, true);
    PERFORM set_config('farmops.context_sig', farmops._context_signature(p_farm_id::text, p_user_id, v_role), true);
    RETURN v_role;
END
$fn$;
COMMENT ON FUNCTION farmops._enter_tenant(uuid, text) IS
'Private: membership check plus the signed tenant context, shared by begin_tenant and begin_tenant_verified.';

CREATE OR REPLACE FUNCTION farmops.begin_tenant(p_farm_id uuid, p_user_id text)
RETURNS text
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    -- OF004: a login of another installation in this cluster (sql/functions/10_tenancy/logins.sql).
    PERFORM farmops._assert_login_allowed();
    -- OF024 when the installation requires farmops.begin_tenant_verified() instead.
    PERFORM farmops._assert_unverified_identity_allowed();
    RETURN farmops._enter_tenant(p_farm_id, p_user_id);
END
$fn$;
COMMENT ON FUNCTION farmops.begin_tenant(uuid, text) IS
'Checks membership, then sets the transaction-local, signed tenant context; returns the role. OF002: not a member; '
'OF007: the session holds a WITH HOLD cursor; OF024: the installation requires farmops.begin_tenant_verified(); '
'OF004: the login may not act in this installation.';
