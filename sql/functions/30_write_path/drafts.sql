-- The AI's single write entry point and the human decisions on its drafts.
-- Every function scopes every statement to the farm of require_tenant():
-- they are SECURITY DEFINER (the app cannot write these tables directly).

CREATE OR REPLACE FUNCTION farmops.propose_write(p_run_id uuid, p_record_type text, p_payload jsonb)
RETURNS TABLE (draft_id uuid, outcome text, record_id uuid)
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_column
DECLARE
    v_farm_id uuid := farmops.require_tenant(ARRAY['owner', 'manager', 'worker', 'agent']);
    v_user text := farmops.current_user_id();
    v_autonomy text;
    v_draft_id uuid := gen_random_uuid();
    v_record_id uuid;
BEGIN
    PERFORM farmops.lock_run_for_write(v_farm_id, p_run_id, true);
    PERFORM farmops.validate_payload(p_record_type, p_payload);
    v_autonomy := farmops.resolve_autonomy(p_record_type);
    IF v_autonomy = 'suggest' THEN
        RAISE EXCEPTION 'autonomy for % is suggest in this farm: the AI may not write it', p_record_type
            USING ERRCODE = 'OF201', HINT = 'Tell the user what to record instead.';
    END IF;
    IF v_autonomy = 'auto' THEN
        v_record_id := gen_random_uuid();
        INSERT INTO farmops.assistant_drafts (
            farm_id, id, ai_run_id, record_type, payload, status, created_by, decided_by, decided_at, record_id
        ) VALUES (
            v_farm_id, v_draft_id, p_run_id, p_record_type, p_payload, 'auto_applied', v_user, v_user, now(),
            v_record_id
        );
        PERFORM farmops.write_record(v_farm_id, p_record_type, v_draft_id, v_record_id, v_user, p_payload);
        RETURN QUERY SELECT v_draft_id, 'auto_applied'::text, v_record_id;
    ELSE
        INSERT INTO farmops.assistant_drafts (farm_id, id, ai_run_id, record_type, payload, status, created_by)
        VALUES (v_farm_id, v_draft_id, p_run_id, p_record_type, p_payload, 'pending', v_user);
        RETURN QUERY SELECT v_draft_id, 'drafted'::text, NULL::uuid;
    END IF;
END
$fn$;
COMMENT ON FUNCTION farmops.propose_write(uuid, text, jsonb) IS
'The AI''s single write entry point (any member but viewer): checks the run (OF102 / OF205), validates '
'(OF203 / OF202), resolves autonomy, then refuses (OF201 suggest), drafts (outcome drafted) or writes the '
'record and leaves an auto_applied draft (outcome auto_applied, record_id set).';

CREATE OR REPLACE FUNCTION farmops.confirm_draft(p_draft_id uuid, p_edits jsonb DEFAULT NULL)
RETURNS farmops.assistant_drafts
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_farm_id uuid := farmops.require_tenant(ARRAY['owner', 'manager', 'worker']);
    v_user text := farmops.current_user_id();
    v_draft farmops.assistant_drafts;
    v_payload jsonb;
    v_record_id uuid := gen_random_uuid();
BEGIN
    IF p_draft_id IS NULL THEN
        RAISE EXCEPTION 'draft id is required' USING ERRCODE = 'OF006';
    END IF;
    -- The row lock serialises confirmers, discarders and expiry: the loser sees the terminal status.
    SELECT d.* INTO v_draft FROM farmops.assistant_drafts AS d
    WHERE d.farm_id = v_farm_id AND d.id = p_draft_id
    FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no draft % in this farm', p_draft_id USING ERRCODE = 'OF204';
    END IF;
    IF v_draft.status <> 'pending' THEN
        RAISE EXCEPTION 'draft % is already %', p_draft_id, v_draft.status USING ERRCODE = 'OF103';
    END IF;
    IF v_draft.expires_at <= now() THEN
        RAISE EXCEPTION 'draft % expired at %', p_draft_id, v_draft.expires_at
            USING ERRCODE = 'OF103', HINT = 'Expired drafts cannot be confirmed; ask the assistant again.';
    END IF;
    IF p_edits IS NOT NULL AND jsonb_typeof(p_edits) <> 'object' THEN
        RAISE EXCEPTION 'edits must be a JSON object of key -> new value (null removes the key)'
            USING ERRCODE = 'OF202';
    END IF;
    SELECT coalesce(jsonb_object_agg(e.key, e.value), '{}'::jsonb) INTO v_payload
    FROM jsonb_each(v_draft.payload || coalesce(p_edits, '{}'::jsonb)) AS e
    WHERE jsonb_typeof(e.value) <> 'null';
    PERFORM farmops.validate_payload(v_draft.record_type, v_payload);
    PERFORM farmops.write_record(v_farm_id, v_draft.record_type, v_draft.id, v_record_id, v_user, v_payload);
    UPDATE farmops.assistant_drafts AS d SET
        status = 'confirmed', record_id = v_record_id, decided_by = v_user, decided_at = now(),
        edits = nullif(p_edits, '{}'::jsonb)
    WHERE d.farm_id = v_farm_id AND d.id = p_draft_id
    RETURNING d.* INTO v_draft;
    RETURN v_draft;
END
$fn$;
COMMENT ON FUNCTION farmops.confirm_draft(uuid, jsonb) IS
'Human members only (owner, manager, worker; OF003 otherwise): merges edits (null removes a key), re-validates '
'(OF202), writes the record and marks the draft confirmed in one transaction. OF204 not in this farm; OF103 '
'if not pending or past expires_at (a concurrent loser gets OF103 too).';

CREATE OR REPLACE FUNCTION farmops.discard_draft(p_draft_id uuid, p_reason text DEFAULT NULL)
RETURNS farmops.assistant_drafts
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_farm_id uuid := farmops.require_tenant(ARRAY['owner', 'manager', 'worker']);
    v_draft farmops.assistant_drafts;
BEGIN
    IF p_draft_id IS NULL THEN
        RAISE EXCEPTION 'draft id is required' USING ERRCODE = 'OF006';
    END IF;
    IF char_length(p_reason) > 1000 THEN
        RAISE EXCEPTION 'reason must be at most 1000 characters' USING ERRCODE = 'OF006';
    END IF;
    SELECT d.* INTO v_draft FROM farmops.assistant_drafts AS d
    WHERE d.farm_id = v_farm_id AND d.id = p_draft_id
    FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no draft % in this farm', p_draft_id USING ERRCODE = 'OF204';
    END IF;
    IF v_draft.status <> 'pending' THEN
        RAISE EXCEPTION 'draft % is already %', p_draft_id, v_draft.status USING ERRCODE = 'OF103';
    END IF;
    UPDATE farmops.assistant_drafts AS d SET
        status = 'discarded', decided_by = farmops.current_user_id(), decided_at = now(),
        decision_reason = nullif(btrim(p_reason), '')
    WHERE d.farm_id = v_farm_id AND d.id = p_draft_id
    RETURNING d.* INTO v_draft;
    RETURN v_draft;
END
$fn$;
COMMENT ON FUNCTION farmops.discard_draft(uuid, text) IS
'Human members only (owner, manager, worker): marks a pending draft discarded (also after its TTL), with an '
'optional reason. OF204 not in this farm; OF103 if already terminal.';

CREATE OR REPLACE FUNCTION farmops.expire_drafts()
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_count integer;
BEGIN
    -- SKIP LOCKED: a draft a human is deciding right now is left to them (or to the next run).
    WITH due AS (
        SELECT d.farm_id, d.id
        FROM farmops.assistant_drafts AS d
        WHERE d.status = 'pending' AND d.expires_at <= now()
        FOR UPDATE SKIP LOCKED
    )
    UPDATE farmops.assistant_drafts AS d SET status = 'expired', decided_at = now()
    FROM due
    WHERE d.farm_id = due.farm_id AND d.id = due.id AND d.status = 'pending';
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END
$fn$;
COMMENT ON FUNCTION farmops.expire_drafts() IS
'Maintenance (no tenant context needed): marks every pending draft past expires_at expired; returns how many. '
'Idempotent and safe to run concurrently (each draft is expired once).';
