-- Who may do what: farmops.role_capabilities (sql/schema/0030) maps each member
-- role to its capabilities, and every function asks require_capability() for
-- the one it needs. No function body names a role; a policy engine can later
-- replace role_has_capability(), the one rule every check below applies, without
-- touching the functions that call them.

CREATE OR REPLACE FUNCTION farmops.role_has_capability(p_role text, p_capability text)
RETURNS boolean
LANGUAGE sql
STABLE
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT EXISTS (
        SELECT FROM farmops.role_capabilities AS c WHERE c.role = p_role AND c.capability = p_capability
    )
$fn$;
COMMENT ON FUNCTION farmops.role_has_capability(text, text) IS
'True if the member role holds the capability (farmops.role_capabilities): the one rule that '
'has_capability(), require_capability(), reserve_run() and the policy engine apply. False for a NULL role.';

CREATE OR REPLACE FUNCTION farmops.has_capability(p_capability text)
RETURNS boolean
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    RETURN farmops.role_has_capability(farmops.current_member_role(), p_capability);
END
$fn$;
COMMENT ON FUNCTION farmops.has_capability(text) IS
'True if the member of this transaction''s tenant context holds the capability (false without a context).';

CREATE OR REPLACE FUNCTION farmops.require_capability(p_capability text)
RETURNS uuid
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_ctx record := farmops.tenant_context();
BEGIN
    IF v_ctx.farm_id IS NULL THEN
        RAISE EXCEPTION 'no tenant context: call farmops.begin_tenant(farm_id, user_id) in this transaction'
            USING ERRCODE = 'OF001';
    END IF;
    -- A context without a role (NULL) holds no capability: fail closed. The role of the
    -- context verified above (has_capability() would verify its signature a second time).
    IF NOT farmops.role_has_capability(v_ctx.member_role, p_capability) THEN
        IF NOT EXISTS (SELECT FROM farmops.role_capabilities AS c WHERE c.capability = p_capability) THEN
            RAISE EXCEPTION 'unknown capability "%"', left(p_capability, 100) USING ERRCODE = 'OF006';
        END IF;
        RAISE EXCEPTION 'role % may not do this: it lacks the capability %', v_ctx.member_role, p_capability
            USING ERRCODE = 'OF003';
    END IF;
    RETURN v_ctx.farm_id;
END
$fn$;
COMMENT ON FUNCTION farmops.require_capability(text) IS
'Returns the current farm id if the member holds the capability; OF001 without a tenant context, OF003 if '
'the member''s role lacks it. The matrix is the table farmops.role_capabilities.';

CREATE OR REPLACE FUNCTION farmops.require_tenant()
RETURNS uuid
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$ BEGIN RETURN farmops.require_capability('read'); END $fn$;
COMMENT ON FUNCTION farmops.require_tenant() IS
'Returns the current farm id for any member (capability read); raises OF001 without a tenant context.';

CREATE OR REPLACE FUNCTION farmops._require_capability_in(p_farm_id uuid, p_capability text)
RETURNS uuid
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_farm uuid := farmops.require_capability(p_capability);
BEGIN
    -- A farm id passed explicitly must be the context's farm: another farm is refused
    -- like a non-member, so the answer tells nothing about that farm.
    IF p_farm_id IS DISTINCT FROM v_farm THEN
        RAISE EXCEPTION 'farm % is not the farm of this tenant context', p_farm_id USING ERRCODE = 'OF002';
    END IF;
    RETURN v_farm;
END
$fn$;
COMMENT ON FUNCTION farmops._require_capability_in(uuid, text) IS
'Private: require_capability() for a function that names its farm; OF002 if p_farm_id is not the context''s.';
