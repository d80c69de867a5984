-- Row locks for writers of one farm that have no row of their own to lock (a
-- conversation summary's chunks, the first vectors of an empty index). They used
-- advisory locks keyed by concat_ws('|', farm, 'convo_summary', id): any session
-- of the cluster can take the same key and stall that farm. A row of this table
-- is reachable only through farmops._lock_in_farm(), which the farm's own
-- SECURITY DEFINER functions call: the application role holds no privilege on it,
-- and RLS (applied by sql/policies like on every tenant table) hides it anyway.

CREATE TABLE farmops._farm_locks (
    farm_id uuid NOT NULL REFERENCES farmops.farms (id),
    name text NOT NULL,
    CONSTRAINT one_lock_row_per_farm_and_name PRIMARY KEY (farm_id, name),
    CONSTRAINT farm_lock_name_is_short CHECK (char_length(name) BETWEEN 1 AND 200)
);
COMMENT ON TABLE farmops._farm_locks IS
'Private: one row per (farm, lock name), locked FOR UPDATE by farmops._lock_in_farm() to serialise a farm''s '
'writers; no other session can reach it.';
