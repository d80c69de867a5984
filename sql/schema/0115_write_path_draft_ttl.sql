-- squawk-ignore-file constraint-missing-not-valid, ban-drop-default
-- (farms has one row per tenant: the CHECK's scan is short; expires_at's default moves to a trigger, and
-- only farmops' own functions insert drafts.)
-- A farm's approval TTL for the assistant's drafts (was a fixed 24 hours for every farm).
-- expires_at loses its column default: the trigger of functions/30_write_path/draft_ttl.sql fills
-- it from the farm's draft_ttl when an insert leaves it out (NOT NULL is checked after that trigger).

ALTER TABLE farmops.farms ADD COLUMN draft_ttl interval NOT NULL DEFAULT interval '24 hours';
ALTER TABLE farmops.farms ADD CONSTRAINT draft_ttl_is_between_5_minutes_and_30_days
CHECK (draft_ttl >= interval '5 minutes' AND draft_ttl <= interval '30 days');
COMMENT ON COLUMN farmops.farms.draft_ttl IS
'How long the assistant''s drafts of this farm wait for a human (default 24 hours, 5 minutes to 30 days; '
'farmops.set_draft_ttl). Applies to drafts created after a change.';

ALTER TABLE farmops.assistant_drafts ALTER COLUMN expires_at DROP DEFAULT;
COMMENT ON COLUMN farmops.assistant_drafts.expires_at IS
'Approval TTL: created_at + the farm''s draft_ttl unless the insert says otherwise; after it the draft '
'can no longer be confirmed and expire_drafts() marks it.';
