-- Creating farms and managing their members. Writes to farms and farm_members
-- happen only here. The valid roles are the roles of farmops.role_capabilities.

-- A member's user id as it is stored: a printable line of 1 to 256 characters that does not spell an
-- erased person's pseudonym ('erased:<subject id>', written by erase_member_data): a member named so
-- would be taken for that pseudonym by the audit chain and could never be erased.
CREATE OR REPLACE FUNCTION farmops._member_id_argument(p_user_id text)
RETURNS text
LANGUAGE plpgsql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_user text := farmops._text_argument(p_user_id, 'user id', 256);
BEGIN
    IF v_user ILIKE 'erased:%' THEN
        RAISE EXCEPTION 'user id must not start with ''erased:'' (an erased person''s pseudonym)'
            USING ERRCODE = 'OF006';
    END IF;
    RETURN v_user;
END
$fn$;
COMMENT ON FUNCTION farmops._member_id_argument(text) IS
'Private: a member''s user id to store (farmops._text_argument, at most 256 characters), or OF006 when it '
'starts with ''erased:'', the prefix of an erased person''s pseudonym.';

CREATE OR REPLACE FUNCTION farmops.create_farm(p_name text, p_owner_user_id text)
RETURNS uuid
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_name text;
    v_owner text;
    v_farm_id uuid;
BEGIN
    -- OF004 before anything else: a login of another installation creates nothing here.
    PERFORM farmops._assert_login_allowed();
    v_name := farmops._text_argument(p_name, 'farm name', 200);
    v_owner := farmops._member_id_argument(p_owner_user_id);
    INSERT INTO farmops.farms (name) VALUES (v_name) RETURNING id INTO v_farm_id;
    -- The creator is the first owner (the one role every farm starts with).
    INSERT INTO farmops.farm_members (farm_id, user_id, role) VALUES (v_farm_id, v_owner, 'owner');
    RETURN v_farm_id;
END
$fn$;
COMMENT ON FUNCTION farmops.create_farm(text, text) IS
'Creates a farm (zero credits, draft autonomy) with p_owner_user_id as its owner; returns the farm id. '
'OF004: the login may not act in this installation.';

CREATE OR REPLACE FUNCTION farmops._assert_not_last_manager(p_farm_id uuid)
RETURNS void
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF (
        SELECT count(*) FROM farmops.farm_members AS m
        JOIN farmops.role_capabilities AS c ON c.role = m.role AND c.capability = 'manage_members'
        WHERE m.farm_id = p_farm_id
    ) <= 1 THEN
        RAISE EXCEPTION 'farm % would be left without an owner', p_farm_id USING ERRCODE = 'OF005';
    END IF;
END
$fn$;
COMMENT ON FUNCTION farmops._assert_not_last_manager(uuid) IS
'Private: raises OF005 unless another member may manage members (an owner); callers hold the farm row lock.';

CREATE OR REPLACE FUNCTION farmops._role_manages_members(p_role text)
RETURNS boolean
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT farmops.role_has_capability(p_role, 'manage_members')
$fn$;
COMMENT ON FUNCTION farmops._role_manages_members(text) IS
'Private: true if the role holds manage_members (the owner), the role the last-owner rule protects.';

CREATE OR REPLACE FUNCTION farmops.add_member(p_farm_id uuid, p_user_id text, p_role text)
RETURNS text
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_farm uuid := farmops._require_capability_in(p_farm_id, 'manage_members');
    v_user text := farmops._member_id_argument(p_user_id);
    v_old_role text;
BEGIN
    IF p_role IS NULL OR NOT EXISTS (SELECT FROM farmops.role_capabilities AS c WHERE c.role = p_role) THEN
        RAISE EXCEPTION 'role must be one of %, not %',
            (SELECT string_agg(DISTINCT c.role, ', ' ORDER BY c.role) FROM farmops.role_capabilities AS c),
            coalesce(p_role, 'NULL')
            USING ERRCODE = 'OF006';
    END IF;
    -- Serialise membership changes per farm so the last-owner rule holds under races.
    PERFORM FROM farmops.farms AS f WHERE f.id = v_farm FOR UPDATE;
    SELECT m.role INTO v_old_role
    FROM farmops.farm_members AS m
    WHERE m.farm_id = v_farm AND m.user_id = v_user;
    IF farmops._role_manages_members(v_old_role) AND NOT farmops._role_manages_members(p_role) THEN
        PERFORM farmops._assert_not_last_manager(v_farm);
    END IF;
    INSERT INTO farmops.farm_members AS m (farm_id, user_id, role)
    VALUES (v_farm, v_user, p_role)
    ON CONFLICT (farm_id, user_id) DO UPDATE SET role = excluded.role;
    RETURN p_role;
END
$fn$;
COMMENT ON FUNCTION farmops.add_member(uuid, text, text) IS
'Owner only (manage_members): adds a member to the current farm or changes their role (the last owner cannot '
'be demoted).';

CREATE OR REPLACE FUNCTION farmops.remove_member(p_farm_id uuid, p_user_id text)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_farm uuid := farmops._require_capability_in(p_farm_id, 'manage_members');
    v_old_role text;
BEGIN
    PERFORM FROM farmops.farms AS f WHERE f.id = v_farm FOR UPDATE;
    SELECT m.role INTO v_old_role
    FROM farmops.farm_members AS m
    WHERE m.farm_id = v_farm AND m.user_id = p_user_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'user is not a member of farm %', v_farm USING ERRCODE = 'OF002';
    END IF;
    IF farmops._role_manages_members(v_old_role) THEN
        PERFORM farmops._assert_not_last_manager(v_farm);
    END IF;
    DELETE FROM farmops.farm_members AS m WHERE m.farm_id = v_farm AND m.user_id = p_user_id;
END
$fn$;
COMMENT ON FUNCTION farmops.remove_member(uuid, text) IS
'Owner only (manage_members): removes a member from the current farm; OF005 if they are its last owner.';
