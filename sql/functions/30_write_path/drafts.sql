-- The AI's single write entry point and the human decisions on its drafts.
-- Every function scopes every statement to the farm of require_capability():
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
    v_farm_id uuid := farmops.require_capability('run_ai');
    v_user text := farmops.current_user_id();
    v_autonomy text;
    v_draft_id uuid := gen_random_uuid();
    v_record_id uuid;
BEGIN
    PERFORM farmops._lock_run(v_farm_id, p_run_id, true);
    PERFORM farmops.validate_payload(p_record_type, p_payload);
    v_autonomy := farmops.resolve_autonomy(p_record_type);
    v_autonomy := farmops._policy_write_autonomy(v_farm_id, p_run_id, p_record_type, p_payload, v_autonomy);  -- 60_control
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
        PERFORM farmops._write_record(v_farm_id, p_record_type, v_draft_id, v_record_id, v_user, p_payload);
        RETURN QUERY SELECT v_draft_id, 'auto_applied'::text, v_record_id;
    ELSE
        INSERT INTO farmops.assistant_drafts (farm_id, id, ai_run_id, record_type, payload, status, created_by)
        VALUES (v_farm_id, v_draft_id, p_run_id, p_record_type, p_payload, 'pending', v_user);
        RETURN QUERY SELECT v_draft_id, 'drafted'::text, NULL::uuid;
    END IF;
END
$fn$;
COMMENT ON FUNCTION farmops.propose_write(uuid, text, jsonb) IS
'The AI''s single write entry point (run_ai: any member but viewer): checks the run (OF102 / OF205), validates '
'(OF203 / OF202), resolves autonomy, then refuses (OF201 suggest), drafts (outcome drafted) or writes the '
'record and leaves an auto_applied draft (outcome auto_applied, record_id set).';

CREATE OR REPLACE FUNCTION farmops._lock_pending_draft(p_farm_id uuid, p_draft_id uuid)
RETURNS farmops.assistant_drafts
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_draft farmops.assistant_drafts;
BEGIN
    PERFORM farmops._assert_given(p_draft_id, 'draft id');
    -- The row lock serialises confirmers, discarders and expiry: the loser sees the terminal status.
    SELECT d.* INTO v_draft FROM farmops.assistant_drafts AS d
    WHERE d.farm_id = p_farm_id AND d.id = p_draft_id
    FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no draft % in this farm', p_draft_id USING ERRCODE = 'OF204';
    END IF;
    IF v_draft.status <> 'pending' THEN
        RAISE EXCEPTION 'draft % is already %', p_draft_id, v_draft.status USING ERRCODE = 'OF103';
    END IF;
    RETURN v_draft;
END
$fn$;
COMMENT ON FUNCTION farmops._lock_pending_draft(uuid, uuid) IS
'Private: the pending draft of this farm, locked for update; OF006 no id, OF204 not in this farm, OF103 if '
'it is already terminal.';

CREATE OR REPLACE FUNCTION farmops.confirm_draft(p_draft_id uuid, p_edits jsonb DEFAULT NULL)
RETURNS farmops.assistant_drafts
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_farm_id uuid := farmops.require_capability('confirm_drafts');
    v_user text := farmops.current_user_id();
    v_draft farmops.assistant_drafts := farmops._lock_pending_draft(v_farm_id, p_draft_id);
    v_payload jsonb;
    v_record_id uuid := gen_random_uuid();
BEGIN
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
    PERFORM farmops._write_record(v_farm_id, v_draft.record_type, v_draft.id, v_record_id, v_user, v_payload);
    UPDATE farmops.assistant_drafts AS d SET
        status = 'confirmed', record_id = v_record_id, decided_by = v_user, decided_at = now(),
        edits = nullif(p_edits, '{}'::jsonb)
    WHERE d.farm_id = v_farm_id AND d.id = p_draft_id
    RETURNING d.* INTO v_draft;
    RETURN v_draft;
END
$fn$;
COMMENT ON FUNCTION farmops.confirm_draft(uuid, jsonb) IS
'Human members only (confirm_drafts: owner, manager, worker; OF003 otherwise): merges edits (null removes '
'a key), re-validates '
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
    v_farm_id uuid := farmops.require_capability('confirm_drafts');
    v_reason text := farmops._text_argument(p_reason, 'reason', 1000, 'text', false);
    v_draft farmops.assistant_drafts := farmops._lock_pending_draft(v_farm_id, p_draft_id);
BEGIN
    UPDATE farmops.assistant_drafts AS d SET
        status = 'discarded', decided_by = farmops.current_user_id(), decided_at = now(),
        decision_reason = v_reason
    WHERE d.farm_id = v_farm_id AND d.id = p_draft_id
    RETURNING d.* INTO v_draft;
    RETURN v_draft;
END
$fn$;
COMMENT ON FUNCTION farmops.discard_draft(uuid, text) IS
'Human members only (confirm_drafts): marks a pending draft discarded (also after its TTL), with an '
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
    -- Cross-farm, so farmops_maintainer's only (policies/090_grants.sql); OF004 for a
    -- maintainer login of another installation.
    PERFORM farmops._assert_login_allowed();
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
'Maintenance (farmops_maintainer; no tenant context needed): marks every pending draft past expires_at '
'expired; returns how many. Idempotent and safe to run concurrently (each draft is expired once).';

-- Drafts are created pending (or auto_applied, already terminal); only a pending draft is
-- decided, once; the proposal itself never changes and no draft is ever deleted.
SELECT farmops._attach_forward_only(
    'farmops.assistant_drafts',
    '>pending >auto_applied pending>confirmed pending>discarded pending>expired',
    'farm_id,id,ai_run_id,record_type,payload,created_by,created_at,expires_at'
);
