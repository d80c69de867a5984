-- Run by tests/test_sql_scripts.py through psql as the application role.
-- A session that writes the tenant settings itself, instead of calling
-- farmops.begin_tenant(), gets no context: zero rows, never another farm.
BEGIN;

DO $test$
DECLARE
    v_farm uuid := farmops.create_farm('Forgery Farm', 'mallory');
    v_other uuid := farmops.create_farm('Victim Farm', 'victim');
BEGIN
    PERFORM set_config('farmops.farm_id', v_other::text, true);
    PERFORM set_config('farmops.user_id', 'mallory', true);
    PERFORM set_config('farmops.member_role', 'owner', true);
    PERFORM set_config('farmops.context_sig', repeat('0', 64), true);
    ASSERT farmops.current_farm_id() IS NULL, 'a forged context must not be current';
    ASSERT (SELECT count(*) FROM farmops.farms) = 0, 'a forged context must see zero farms';

    PERFORM farmops.begin_tenant(v_farm, 'mallory');
    ASSERT farmops.current_farm_id() = v_farm, 'begin_tenant sets the context';
    ASSERT (SELECT count(*) FROM farmops.farms) = 1, 'a member sees exactly their farm';

    -- Re-pointing a valid context at another farm invalidates it.
    PERFORM set_config('farmops.farm_id', v_other::text, true);
    ASSERT farmops.current_farm_id() IS NULL, 'a re-pointed context must not be current';
    ASSERT (SELECT count(*) FROM farmops.farms WHERE id = v_other) = 0, 'never the other farm';
END
$test$;

ROLLBACK;
