-- New drafts are announced with NOTIFY so a reviewer's screen (or `farmops drafts watch`) need not
-- poll. One channel per farm, named by farmops.draft_channel(); the payload is the new draft's id
-- only: a listener reads the draft itself through its tenant context (row level security).

CREATE OR REPLACE FUNCTION farmops._draft_channel(p_farm_id uuid)
RETURNS text
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT 'farmops_drafts_' || p_farm_id::text
$fn$;
COMMENT ON FUNCTION farmops._draft_channel(uuid) IS
'Private: the NOTIFY channel of a farm''s new drafts (farmops_drafts_<farm id>, 51 bytes).';

CREATE OR REPLACE FUNCTION farmops.draft_channel()
RETURNS text
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    -- The name farmops._draft_channel() gives (the app may not execute private functions).
    RETURN 'farmops_drafts_' || farmops.require_capability('read')::text;
END
$fn$;
COMMENT ON FUNCTION farmops.draft_channel() IS
'Any member (read): the channel to LISTEN on (quoted: it contains hyphens) for the current farm''s new '
'pending drafts; each notification''s payload is the new draft''s id. LISTEN outlives transactions: use a '
'connection of its own, not one behind PgBouncer in transaction mode.';

CREATE OR REPLACE FUNCTION farmops._notify_new_draft()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    -- Delivered at commit, once per draft; a rolled-back proposal announces nothing, nor does an
    -- auto-applied write (created terminal: nobody needs to decide it).
    IF NEW.status = 'pending' THEN
        PERFORM pg_notify(farmops._draft_channel(NEW.farm_id), NEW.id::text);
    END IF;
    RETURN NULL;
END
$fn$;
COMMENT ON FUNCTION farmops._notify_new_draft() IS
'Private trigger function: NOTIFY farmops._draft_channel(farm) with the id of a new pending draft.';

SELECT farmops._attach_always(
    'farmops.assistant_drafts', '_announce_new_pending_ones', 'AFTER INSERT', 'ROW',
    'farmops._notify_new_draft()'
);
