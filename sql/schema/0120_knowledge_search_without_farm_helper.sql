-- squawk-ignore-file ban-drop-function
-- (a private helper: no client may call it, so none can break)
-- farmops.search() scans the farm's rows in its own statements (one function layer
-- less per call: sql/functions/40_knowledge/search.sql), so its private helper for
-- that scan is gone.
DROP FUNCTION IF EXISTS farmops._farm_search_candidates(uuid, vector, integer, text[]);
