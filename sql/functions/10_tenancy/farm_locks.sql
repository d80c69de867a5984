-- Serialising writers inside one farm with a row lock no outside session can
-- reach (schema/0053_farm_locks.sql), instead of an advisory lock on a key that
-- every session of the cluster can compute and take.

CREATE OR REPLACE FUNCTION farmops._lock_in_farm(p_farm_id uuid, p_name text)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    -- The first caller creates the row; a concurrent first caller waits on its
    -- insert, then both queue on the row lock until the holder's transaction ends.
    INSERT INTO farmops._farm_locks (farm_id, name) VALUES (p_farm_id, p_name)
    ON CONFLICT (farm_id, name) DO NOTHING;
    PERFORM FROM farmops._farm_locks AS l WHERE l.farm_id = p_farm_id AND l.name = p_name FOR UPDATE;
END
$fn$;
COMMENT ON FUNCTION farmops._lock_in_farm(uuid, text) IS
'Private: locks the farm''s row named p_name in farmops._farm_locks until the transaction ends (creating it '
'first); only the farm''s own SECURITY DEFINER functions call it.';
