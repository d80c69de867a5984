-- squawk-ignore-file ban-drop-function
-- (a private helper: no client may call it, so none can break)
-- The kinds a farm keeps now also subtract what a matching mask policy rule keeps masked, for
-- a run's text by that run's attributes: farmops._pii_keep_kinds(uuid) became
-- farmops._pii_keep_kinds(uuid, jsonb) (sql/functions/50_trust/pii_policy.sql). The old
-- one-argument form would make every one-argument call ambiguous.
DROP FUNCTION IF EXISTS farmops._pii_keep_kinds(uuid);
