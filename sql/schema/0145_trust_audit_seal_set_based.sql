-- The audit seal, set-based (issue 13: the audit overhead). farmops._seal_audit_farm gains a bound
-- (p_limit) and a skip-locked mode for farmops.seal_audit(p_max_entries), which seals in bounded
-- transactions; the one-argument form it replaces goes (sql/functions/50_trust/audit_2_seal.sql).
-- It was private: only farmops' own functions call it, and the same install re-applies them.
-- No index: _audit_pending's key (farm_id, id) already finds each farm's entries, and the farms
-- themselves by one probe each (farmops._audit_pending_farms).
-- squawk-ignore ban-drop-function
DROP FUNCTION IF EXISTS farmops._seal_audit_farm(uuid);
