-- The audit chain's sealing step (ADR 0018): see audit_1_write.sql for the whole picture.

CREATE OR REPLACE FUNCTION farmops._subject_of(p_farm_id uuid, p_value text, p_create boolean DEFAULT true)
RETURNS text
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_id uuid;
BEGIN
    IF p_value IS NULL THEN
        RETURN NULL;
    END IF;
    IF p_value ~ '^erased:[0-9a-f-]{36}$' THEN
        RETURN substr(p_value, 8);
    END IF;
    SELECT s.id INTO v_id FROM farmops.subjects AS s WHERE s.farm_id = p_farm_id AND s.user_id = p_value;
    IF v_id IS NULL AND p_create THEN
        INSERT INTO farmops.subjects AS s (farm_id, user_id) VALUES (p_farm_id, p_value)
        ON CONFLICT (farm_id, user_id) DO NOTHING
        RETURNING s.id INTO v_id;
        IF v_id IS NULL THEN  -- a concurrent first use
            SELECT s.id INTO v_id FROM farmops.subjects AS s WHERE s.farm_id = p_farm_id AND s.user_id = p_value;
        END IF;
    END IF;
    -- Unknown and not created (verify): the raw value, which then hashes differently.
    RETURN coalesce(v_id::text, p_value);
END
$fn$;
COMMENT ON FUNCTION farmops._subject_of(uuid, text, boolean) IS
'Private: the subject id (text) of a person value in a farm (''erased:<id>'' is that id); creates the subject '
'when p_create.';

CREATE OR REPLACE FUNCTION farmops._audit_canonical(p_farm_id uuid, p_row jsonb, p_create boolean)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_row jsonb := p_row;
    v_column text;
BEGIN
    FOREACH v_column IN ARRAY farmops._person_columns() LOOP
        IF v_row ? v_column THEN
            v_row := jsonb_set(v_row, ARRAY[v_column],
                coalesce(to_jsonb(farmops._subject_of(p_farm_id, v_row ->> v_column, p_create)), 'null'));
        END IF;
    END LOOP;
    RETURN v_row;
END
$fn$;
COMMENT ON FUNCTION farmops._audit_canonical(uuid, jsonb, boolean) IS
'Private: a row''s canonical form for hashing: its jsonb with every person column as the subject id.';

CREATE OR REPLACE FUNCTION farmops._audit_content(
    p_farm_id uuid, p_table text, p_id text, p_action text, p_create boolean
)
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_kind record;
    v_row jsonb;
    v_leg jsonb;
BEGIN
    IF p_table = 'ai_runs' THEN
        IF p_action <> 'run.reserved' THEN
            RETURN NULL;  -- a status change: its detail is what was seen
        END IF;
        -- A reservation: the run's columns that never change, and its reserve leg.
        SELECT jsonb_build_object(
            'farm_id', r.farm_id, 'id', r.id, 'user_id', r.user_id, 'feature', r.feature, 'model', r.model,
            -- the hold at reserve time: extensions (credits_extended) grow credits_reserved later
            'credits_reserved', r.credits_reserved - r.credits_extended, 'request_id', r.request_id,
            'reserved_at', r.reserved_at,
            'expires_at', r.expires_at
        ) INTO v_row
        FROM farmops.ai_runs AS r WHERE r.farm_id = p_farm_id AND r.id = p_id::uuid;
        SELECT to_jsonb(l) INTO v_leg
        FROM farmops.credit_ledger AS l
        WHERE l.farm_id = p_farm_id AND l.ai_run_id = p_id::uuid AND l.kind = 'reserve';
        IF v_row IS NULL OR v_leg IS NULL THEN
            RETURN NULL;
        END IF;
        RETURN jsonb_build_object(
            'run', farmops._audit_canonical(p_farm_id, v_row, p_create),
            'leg', farmops._audit_canonical(p_farm_id, v_leg, p_create)
        );
    END IF;
    SELECT a.* INTO v_kind FROM farmops._audited_table(p_table) AS a LIMIT 1;
    IF NOT coalesce(v_kind.immutable, false) THEN
        RETURN NULL;
    END IF;
    -- The key compared in its own type, so that the table's key index answers (a product's
    -- record table is named schema.table).
    EXECUTE format('SELECT to_jsonb(t) FROM %s AS t WHERE t.farm_id = $1 AND t.%I = CAST($2 AS %s)',
        farmops._audit_relation(p_table), v_kind.id_column, (
            SELECT format_type(a.atttypid, a.atttypmod) FROM pg_catalog.pg_attribute AS a
            WHERE a.attrelid = farmops._audit_relation(p_table) AND a.attname = v_kind.id_column
        ))
        INTO v_row USING p_farm_id, p_id;
    RETURN farmops._audit_canonical(p_farm_id, v_row, p_create);
END
$fn$;
COMMENT ON FUNCTION farmops._audit_content(uuid, text, text, text, boolean) IS
'Private: the canonical content of an entry''s immutable object (a reservation: run and reserve leg; a ledger '
'leg, record or autonomy change: its row), person columns as subject ids; NULL for mutable objects or when the '
'object is gone.';

CREATE OR REPLACE FUNCTION farmops._audit_content_hash(p_content jsonb, p_detail jsonb)
RETURNS text
LANGUAGE sql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT encode(sha256(convert_to(CASE
        WHEN p_content IS NULL THEN p_detail
        ELSE jsonb_build_object('object', p_content, 'detail', p_detail)
    END::text, 'UTF8')), 'hex')
$fn$;
COMMENT ON FUNCTION farmops._audit_content_hash(jsonb, jsonb) IS
'Private: an entry''s content_hash: sha256 (hex) of the immutable object''s canonical content with the entry''s '
'detail, or of the detail alone (a mutable object).';

CREATE OR REPLACE FUNCTION farmops._audit_entry_hash(p_entry farmops.audit_log)
RETURNS text
LANGUAGE sql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT encode(sha256(convert_to(concat_ws(
        '|', p_entry.prev_hash, p_entry.farm_id, p_entry.seq, extract(EPOCH FROM p_entry.at), p_entry.actor,
        p_entry.action, p_entry.object_table, p_entry.object_id, p_entry.content_hash, p_entry.detail::text
    ), 'UTF8')), 'hex')
$fn$;
COMMENT ON FUNCTION farmops._audit_entry_hash(farmops.audit_log) IS
'Private: sha256 (hex) of an entry: prev_hash, farm, seq, time, actor, action, object, content_hash, detail.';

CREATE OR REPLACE FUNCTION farmops._seal_audit_farm(p_farm_id uuid)
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_xmin xid8;
    v_head farmops.audit_log;
    v_pending farmops._audit_pending [];
    v_event farmops._audit_pending;
    v_entry farmops.audit_log;
    v_entries farmops.audit_log [] := '{}';
    v_seq bigint;
    v_prev text;
    v_object text;
    v_content jsonb;
    v_person_key boolean;
    v_actor text;
    -- Actors repeat (a farm has few members): each one's subject is looked up once per call.
    v_subjects jsonb := '{}';
BEGIN
    -- One sealer per farm; writers never take this lock.
    PERFORM farmops._lock_in_farm(p_farm_id, 'audit_seal');
    -- Every transaction older than the oldest running one has ended: nothing can
    -- still be appended before the entries taken now (commit order respected).
    v_xmin := pg_snapshot_xmin(pg_current_snapshot());
    WITH moved AS (
        DELETE FROM farmops._audit_pending AS p
        WHERE p.farm_id = p_farm_id AND p.xid < v_xmin
        RETURNING p.*
    )

    SELECT array_agg(m::farmops._audit_pending ORDER BY m.id) INTO v_pending FROM moved AS m;
    IF v_pending IS NULL THEN
        RETURN 0;
    END IF;
    SELECT l.* INTO v_head FROM farmops.audit_log AS l WHERE l.farm_id = p_farm_id ORDER BY l.seq DESC LIMIT 1;
    v_seq := coalesce(v_head.seq, 0);
    v_prev := coalesce(v_head.hash, repeat('0', 64));
    FOREACH v_event IN ARRAY v_pending LOOP
        v_content := farmops._audit_content(
            p_farm_id, v_event.object_table, v_event.object_id, v_event.action, true
        );
        -- An idempotent replay fired the reservation trigger for a run row that ON CONFLICT
        -- then did not insert: no run, no event (runs are never deleted).
        CONTINUE WHEN v_content IS NULL AND v_event.action = 'run.reserved' AND NOT EXISTS (
            SELECT FROM farmops.ai_runs AS r WHERE r.farm_id = p_farm_id AND r.id = v_event.object_id::uuid
        );
        v_person_key := v_event.object_table NOT IN ('ai_runs', 'credit_ledger') AND (
            SELECT a.person_key FROM farmops._audited_table(v_event.object_table) AS a LIMIT 1
        );
        v_object := CASE WHEN v_person_key
            THEN farmops._subject_of(p_farm_id, v_event.object_id) ELSE v_event.object_id END;
        v_actor := v_subjects ->> v_event.actor;
        IF v_actor IS NULL THEN
            v_actor := farmops._subject_of(p_farm_id, v_event.actor);
            v_subjects := v_subjects || jsonb_build_object(v_event.actor, v_actor);
        END IF;
        v_entry := ROW(
            p_farm_id, v_seq + 1, v_event.at, now(), v_actor::uuid,
            v_event.action, v_event.object_table, v_object, v_event.detail,
            farmops._audit_content_hash(v_content, v_event.detail),
            v_prev, NULL
        )::farmops.audit_log;
        v_prev := farmops._audit_entry_hash(v_entry);
        v_seq := v_seq + 1;
        v_entries := v_entries || ROW(
            v_entry.farm_id, v_entry.seq, v_entry.at, v_entry.sealed_at, v_entry.actor, v_entry.action,
            v_entry.object_table, v_entry.object_id, v_entry.detail, v_entry.content_hash, v_entry.prev_hash, v_prev
        )::farmops.audit_log;
    END LOOP;
    -- One statement for the whole batch.
    INSERT INTO farmops.audit_log (
        farm_id, seq, at, sealed_at, actor, action, object_table, object_id, detail, content_hash, prev_hash, hash
    )
    SELECT e.farm_id, e.seq, e.at, e.sealed_at, e.actor, e.action, e.object_table, e.object_id, e.detail,
        e.content_hash, e.prev_hash, e.hash
    FROM unnest(v_entries) AS e;
    RETURN v_seq - coalesce(v_head.seq, 0);
END
$fn$;
COMMENT ON FUNCTION farmops._seal_audit_farm(uuid) IS
'Private: links one farm''s pending audit entries whose transactions ended into the chain (seq, content_hash, '
'prev_hash, hash) under the farm''s audit_seal lock; returns how many.';

CREATE OR REPLACE FUNCTION farmops.seal_audit()
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_farm uuid;
    v_count integer := 0;
BEGIN
    PERFORM farmops._assert_login_allowed();
    FOR v_farm IN SELECT DISTINCT p.farm_id FROM farmops._audit_pending AS p ORDER BY 1 LOOP
        v_count := v_count + farmops._seal_audit_farm(v_farm);
    END LOOP;
    RETURN v_count;
END
$fn$;
COMMENT ON FUNCTION farmops.seal_audit() IS
'Maintenance (farmops_maintainer): links every farm''s pending audit entries whose transactions have ended into '
'its chain; returns how many. Safe to run concurrently and while the farms write.';
