-- squawk-ignore-file ban-drop-function
-- (why: the re-applied sql/functions/40_knowledge/search.sql creates them again under a
-- leading underscore in the same install transaction; clients call farmops.search().)
-- The search candidate helpers were executable by the application and validated
-- nothing (k = 2147483647, k = -1 and a 3-d vector gave raw 22003, 2201W, 22000).
-- They are private now: the grant rule (policies/090_grants.sql) keeps underscore
-- functions from farmops_app, and farmops.search() validates before calling them.
DROP FUNCTION IF EXISTS farmops.farm_search_candidates(uuid, vector, integer, text[]);
DROP FUNCTION IF EXISTS farmops.global_search_candidates(vector, integer);
