-- Creating farms and managing their members. Writes to farms and farm_members
-- happen only here.

CREATE OR REPLACE FUNCTION farmops.assert_valid_user_id(p_user_id text)
RETURNS void
LANGUAGE plpgsql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF p_user_id IS NULL OR char_length(p_user_id) NOT BETWEEN 1 AND 256 OR p_user_id ~ '[[:cntrl:]]' THEN
        RAISE EXCEPTION 'user id must be 1 to 256 printable characters' USING ERRCODE = 'OF006';
    END IF;
END
$fn$;
COMMENT ON FUNCTION farmops.assert_valid_user_id(text) IS
'Private: raises OF006 unless the user id is 1 to 256 characters without control characters.';

CREATE OR REPLACE FUNCTION farmops.assert_farm_owner(p_farm_id uuid)
RETURNS void
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    -- require_tenant raises OF001/OF003; a context for another farm is refused like a non-member.
    IF p_farm_id IS DISTINCT FROM farmops.require_tenant(ARRAY['owner']) THEN
        RAISE EXCEPTION 'farm % is not the farm of this tenant context', p_farm_id USING ERRCODE = 'OF002';
    END IF;
END
$fn$;
COMMENT ON FUNCTION farmops.assert_farm_owner(uuid) IS
'Private: raises unless this transaction''s tenant context is p_farm_id with the owner role.';

CREATE OR REPLACE FUNCTION farmops.create_farm(p_name text, p_owner_user_id text)
RETURNS uuid
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_farm_id uuid;
BEGIN
    IF p_name IS NULL OR char_length(btrim(p_name)) NOT BETWEEN 1 AND 200 THEN
        RAISE EXCEPTION 'farm name must be 1 to 200 characters' USING ERRCODE = 'OF006';
    END IF;
    PERFORM farmops.assert_valid_user_id(p_owner_user_id);
    INSERT INTO farmops.farms (name) VALUES (btrim(p_name)) RETURNING id INTO v_farm_id;
    INSERT INTO farmops.farm_members (farm_id, user_id, role) VALUES (v_farm_id, p_owner_user_id, 'owner');
    RETURN v_farm_id;
END
$fn$;
COMMENT ON FUNCTION farmops.create_farm(text, text) IS
'Creates a farm (zero credits, draft autonomy) with p_owner_user_id as its owner; returns the farm id.';

CREATE OR REPLACE FUNCTION farmops.add_member(p_farm_id uuid, p_user_id text, p_role text)
RETURNS text
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_old_role text;
BEGIN
    PERFORM farmops.assert_farm_owner(p_farm_id);
    PERFORM farmops.assert_valid_user_id(p_user_id);
    IF p_role IS NULL OR p_role NOT IN ('owner', 'manager', 'worker', 'viewer', 'agent') THEN
        RAISE EXCEPTION 'role must be owner, manager, worker, viewer or agent, not %', coalesce(p_role, 'NULL')
            USING ERRCODE = 'OF006';
    END IF;
    -- Serialise membership changes per farm so the last-owner rule holds under races.
    PERFORM FROM farmops.farms AS f WHERE f.id = p_farm_id FOR UPDATE;
    SELECT m.role INTO v_old_role
    FROM farmops.farm_members AS m
    WHERE m.farm_id = p_farm_id AND m.user_id = p_user_id;
    IF v_old_role = 'owner' AND p_role <> 'owner' THEN
        PERFORM farmops.assert_not_last_owner(p_farm_id);
    END IF;
    INSERT INTO farmops.farm_members AS m (farm_id, user_id, role)
    VALUES (p_farm_id, p_user_id, p_role)
    ON CONFLICT (farm_id, user_id) DO UPDATE SET role = excluded.role;
    RETURN p_role;
END
$fn$;
COMMENT ON FUNCTION farmops.add_member(uuid, text, text) IS
'Owner only: adds a member to the current farm or changes their role (the last owner cannot be demoted).';

CREATE OR REPLACE FUNCTION farmops.remove_member(p_farm_id uuid, p_user_id text)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_old_role text;
BEGIN
    PERFORM farmops.assert_farm_owner(p_farm_id);
    PERFORM FROM farmops.farms AS f WHERE f.id = p_farm_id FOR UPDATE;
    SELECT m.role INTO v_old_role
    FROM farmops.farm_members AS m
    WHERE m.farm_id = p_farm_id AND m.user_id = p_user_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'user is not a member of farm %', p_farm_id USING ERRCODE = 'OF002';
    END IF;
    IF v_old_role = 'owner' THEN
        PERFORM farmops.assert_not_last_owner(p_farm_id);
    END IF;
    DELETE FROM farmops.farm_members AS m WHERE m.farm_id = p_farm_id AND m.user_id = p_user_id;
END
$fn$;
COMMENT ON FUNCTION farmops.remove_member(uuid, text) IS
'Owner only: removes a member from the current farm; OF005 if they are its last owner.';

CREATE OR REPLACE FUNCTION farmops.assert_not_last_owner(p_farm_id uuid)
RETURNS void
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF (SELECT count(*) FROM farmops.farm_members AS m WHERE m.farm_id = p_farm_id AND m.role = 'owner') <= 1 THEN
        RAISE EXCEPTION 'farm % would be left without an owner', p_farm_id USING ERRCODE = 'OF005';
    END IF;
END
$fn$;
COMMENT ON FUNCTION farmops.assert_not_last_owner(uuid) IS
'Private: raises OF005 unless the farm has another owner; callers hold the farm row lock.';
