-- squawk-ignore-file ban-drop-index
-- (why: each dropped index is replaced in this file by one leading with farm_id.)
-- Every index of a tenant table leads with farm_id. RLS filters rows after an
-- index has found them, so an index that does not start with farm_id lets any
-- application session reach other farms' rows through it: with the planner
-- pushed onto it (enable_seqscan = off ...), "Rows Removed by Filter" in EXPLAIN
-- ANALYZE and pg_stat_xact_user_tables.idx_tup_fetch count rows it cannot see
-- (member ids by prefix, live runs and their deadlines, how often other farms
-- retrieved a global chunk). With farm_id first, the policy's
-- farm_id = current_farm_id() is the index condition and the scan never leaves
-- the caller's farm. tests/security/test_covert_channels.py checks the catalog.

-- Membership is looked up by (farm_id, user_id), the primary key; nothing needs
-- the user_id-only index.
DROP INDEX farmops.farm_members_user_id_idx;

-- The expirers (every farm, no tenant) read the live runs and pending drafts in
-- full: these partial indexes hold only live rows, so that stays small. The live
-- runs index also serves one farm's outstanding-reservation sum (farm_id prefix),
-- which the old ai_runs_live_farm_idx did.
DROP INDEX farmops.ai_runs_live_expiry_idx;
DROP INDEX farmops.ai_runs_live_farm_idx;
CREATE INDEX ai_runs_live_expiry_idx ON farmops.ai_runs (farm_id, expires_at)
WHERE status IN ('reserved', 'running');

DROP INDEX farmops.assistant_drafts_pending_expiry_idx;
CREATE INDEX assistant_drafts_pending_expiry_idx ON farmops.assistant_drafts (farm_id, expires_at)
WHERE status = 'pending';

-- Lineage rows naming a global chunk, by farm (a farm's own lineage queries; the
-- ON DELETE SET NULL of a global chunk's deletion, owner-only and rare, reads it
-- by skip scan on PostgreSQL 18, by a scan of the index below on 16 and 17).
DROP INDEX farmops.ai_run_retrievals_global_embedding_idx;
CREATE INDEX ai_run_retrievals_global_embedding_idx ON farmops.ai_run_retrievals (farm_id, global_embedding_id)
WHERE global_embedding_id IS NOT NULL;
