-- The audit chain's content hashes, one entry at a time (ADR 0018): see audit_1_write.sql for the
-- whole picture. verify_audit re-hashes with these; the seal (audit_2_seal.sql) computes the same
-- hashes for a whole batch at once (tests/trust/test_audit_seal.py holds the two to each other).

-- A person value as farmops.subjects keys it (user_id: 1 to 256 characters). farmops' own person
-- columns are bounded so by their CHECKs, but a product's record table (register_record_type) may
-- hold any text in its person columns, and so may the actor a product's own row or a job's session
-- names: '' or a longer value is keyed by its digest, so that it seals like any other (before, it
-- made the seal raise, and with it farmops.seal_audit() for every farm). A value of 1 to 256
-- characters keeps the key it always had (itself), so chains sealed before still verify. (A value
-- that spells 'digest:<sha256 hex>' of another one names the same subject: a sha256 preimage.)
CREATE OR REPLACE FUNCTION farmops._subject_key(p_value text)
RETURNS text
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT CASE
        WHEN char_length(p_value) BETWEEN 1 AND 256 THEN p_value
        ELSE 'digest:' || encode(sha256(convert_to(p_value, 'UTF8')), 'hex')
    END
$fn$;
COMMENT ON FUNCTION farmops._subject_key(text) IS
'Private: the key (farmops.subjects.user_id) of a person value: the value itself when 1 to 256 characters, else '
'''digest:'' and its sha256 (hex); NULL for NULL.';

CREATE OR REPLACE FUNCTION farmops._subject_of(p_farm_id uuid, p_value text, p_create boolean DEFAULT true)
RETURNS text
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_id uuid;
    v_key text;
BEGIN
    IF p_value IS NULL THEN
        RETURN NULL;
    END IF;
    IF p_value ~ '^erased:[0-9a-f-]{36}$' THEN
        RETURN substr(p_value, 8);
    END IF;
    v_key := farmops._subject_key(p_value);
    SELECT s.id INTO v_id FROM farmops.subjects AS s WHERE s.farm_id = p_farm_id AND s.user_id = v_key;
    IF v_id IS NULL AND p_create THEN
        INSERT INTO farmops.subjects AS s (farm_id, user_id) VALUES (p_farm_id, v_key)
        ON CONFLICT (farm_id, user_id) DO NOTHING
        RETURNING s.id INTO v_id;
        IF v_id IS NULL THEN  -- a concurrent first use
            SELECT s.id INTO v_id FROM farmops.subjects AS s WHERE s.farm_id = p_farm_id AND s.user_id = v_key;
        END IF;
    END IF;
    -- Unknown and not created (verify): the raw value, which then hashes differently.
    RETURN coalesce(v_id::text, p_value);
END
$fn$;
COMMENT ON FUNCTION farmops._subject_of(uuid, text, boolean) IS
'Private: the subject id (text) of a person value in a farm, found by its key (farmops._subject_key; '
'''erased:<id>'' is that id); creates the subject when p_create.';

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
