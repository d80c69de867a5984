-- The record-type registry's API: registering a type (package owner only), the
-- tool list for Bedrock, and writing a validated payload into the type's table.

CREATE OR REPLACE FUNCTION farmops._assert_valid_input_schema(p_schema jsonb)
RETURNS void
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_key text;
    v_prop jsonb;
    v_type text;
    v_kw text;
BEGIN
    IF p_schema IS NULL OR jsonb_typeof(p_schema) <> 'object' OR p_schema ->> 'type' IS DISTINCT FROM 'object'
        OR p_schema -> 'additionalProperties' IS DISTINCT FROM 'false'::jsonb
        OR jsonb_typeof(p_schema -> 'properties') IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'input_schema must be {"type":"object","properties":{...},"additionalProperties":false}'
            USING ERRCODE = 'OF006';
    END IF;
    FOR v_kw IN SELECT k FROM jsonb_object_keys(p_schema) AS k LOOP
        IF v_kw NOT IN ('type', 'properties', 'required', 'additionalProperties', 'description') THEN
            RAISE EXCEPTION 'input_schema keyword "%" is not supported', v_kw USING ERRCODE = 'OF006';
        END IF;
    END LOOP;
    IF p_schema ? 'required' AND (jsonb_typeof(p_schema -> 'required') <> 'array' OR EXISTS (
        SELECT FROM jsonb_array_elements(p_schema -> 'required') AS r (v)
        WHERE jsonb_typeof(r.v) <> 'string' OR NOT (p_schema -> 'properties') ? (r.v #>> '{}')
    )) THEN
        RAISE EXCEPTION 'input_schema.required must list property names' USING ERRCODE = 'OF006';
    END IF;
    FOR v_key, v_prop IN SELECT e.key, e.value FROM jsonb_each(p_schema -> 'properties') AS e LOOP
        IF v_key !~ '^[a-z][a-z0-9_]{0,62}$' OR v_key IN ('farm_id', 'id', 'draft_id', 'created_by', 'created_at') THEN
            RAISE EXCEPTION 'property name "%" is not allowed', v_key USING ERRCODE = 'OF006';
        END IF;
        IF jsonb_typeof(v_prop) <> 'object' THEN
            RAISE EXCEPTION 'property "%" must be an object', v_key USING ERRCODE = 'OF006';
        END IF;
        v_type := v_prop ->> 'type';
        IF v_type IS NULL OR v_type NOT IN ('string', 'integer', 'number', 'boolean') THEN
            RAISE EXCEPTION 'property "%" must have type string, integer, number or boolean', v_key
                USING ERRCODE = 'OF006';
        END IF;
        FOR v_kw IN SELECT k FROM jsonb_object_keys(v_prop) AS k LOOP
            IF v_kw NOT IN ('type', 'description', 'minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum',
                'minLength', 'maxLength', 'enum', 'format') THEN
                RAISE EXCEPTION 'property "%": keyword "%" is not supported', v_key, v_kw USING ERRCODE = 'OF006';
            END IF;
        END LOOP;
        -- Every string is bounded and every integer has a range, so no payload can overflow a column.
        IF v_type = 'string' AND v_prop ->> 'format' IS DISTINCT FROM 'date'
            AND jsonb_typeof(v_prop -> 'maxLength') IS DISTINCT FROM 'number' THEN
            RAISE EXCEPTION 'string property "%" needs maxLength', v_key USING ERRCODE = 'OF006';
        END IF;
        IF v_type IN ('integer', 'number')
            AND (jsonb_typeof(v_prop -> 'maximum') IS DISTINCT FROM 'number'
                OR coalesce(v_prop -> 'minimum', v_prop -> 'exclusiveMinimum') IS NULL) THEN
            RAISE EXCEPTION 'numeric property "%" needs minimum (or exclusiveMinimum) and maximum', v_key
                USING ERRCODE = 'OF006';
        END IF;
        IF v_prop ? 'format' AND (v_type <> 'string' OR v_prop ->> 'format' IS DISTINCT FROM 'date') THEN
            RAISE EXCEPTION 'property "%": only string "format": "date" is supported', v_key USING ERRCODE = 'OF006';
        END IF;
        IF v_prop ? 'enum' AND (jsonb_typeof(v_prop -> 'enum') <> 'array'
            OR jsonb_array_length(v_prop -> 'enum') = 0) THEN
            RAISE EXCEPTION 'property "%": enum must be a non-empty array', v_key USING ERRCODE = 'OF006';
        END IF;
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION farmops._assert_valid_input_schema(jsonb) IS
'Private: raises OF006 unless the JSON Schema uses only the subset farmops.validate_payload() enforces.';

CREATE OR REPLACE FUNCTION farmops.register_record_type(
    p_name text,
    p_class text,
    p_description text,
    p_target_schema text,
    p_target_table text,
    p_input_schema jsonb,
    p_date_past_days integer DEFAULT NULL,
    p_date_future_days integer DEFAULT NULL
)
RETURNS farmops.record_types
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_description text := farmops._text_argument(p_description, 'description', 1000, 'text');
    v_rel regclass;
    v_missing text;
    v_row farmops.record_types;
BEGIN
    IF p_name IS NULL OR p_name !~ '^[a-z][a-z0-9_]{0,47}$' THEN
        RAISE EXCEPTION 'record type name must match ^[a-z][a-z0-9_]{0,47}$' USING ERRCODE = 'OF006';
    END IF;
    IF p_class IS NULL OR p_class NOT IN ('financial', 'destructive', 'routine') THEN
        RAISE EXCEPTION 'class must be financial, destructive or routine' USING ERRCODE = 'OF006';
    END IF;
    -- NULL windows keep the stored values (or the defaults).
    PERFORM farmops._assert_in_range(coalesce(p_date_past_days, 0), 'date_past_days', 0, 36500);
    PERFORM farmops._assert_in_range(coalesce(p_date_future_days, 0), 'date_future_days', 0, 36500);
    PERFORM farmops._assert_valid_input_schema(p_input_schema);
    v_rel := to_regclass(format('%I.%I', p_target_schema, p_target_table));
    IF v_rel IS NULL THEN
        RAISE EXCEPTION 'target table %.% does not exist', p_target_schema, p_target_table USING ERRCODE = 'OF006';
    END IF;
    -- The writer needs the common columns plus one column per property.
    SELECT string_agg(c.col, ', ') INTO v_missing
    FROM (
        SELECT unnest(ARRAY['farm_id', 'id', 'draft_id', 'created_by']) AS col
        UNION ALL
        SELECT jsonb_object_keys(p_input_schema -> 'properties')
    ) AS c
    WHERE NOT EXISTS (
        SELECT FROM pg_attribute AS a
        WHERE a.attrelid = v_rel AND a.attname = c.col AND a.attnum > 0 AND NOT a.attisdropped
    );
    IF v_missing IS NOT NULL THEN
        RAISE EXCEPTION 'target table %.% lacks columns: %', p_target_schema, p_target_table, v_missing
            USING ERRCODE = 'OF006';
    END IF;
    -- The AI writes the table as the package owner and members read it: it gets the
    -- same row level security as every farmops tenant table.
    PERFORM farmops.secure_tenant_table(v_rel);
    -- Its records are audited like farmops' own (issue 13): an entry per record written, its
    -- row re-hashed by verify_audit. (50_trust/audit_1_write.sql attaches it again on install.)
    PERFORM farmops._attach_audit(
        v_rel, 'record', 'id', 'draft_id', 'created_by,@context,@login', 'INSERT', '', 'hash'
    );
    INSERT INTO farmops.record_types AS t (
        name, class, description, target_schema, target_table, input_schema, date_past_days, date_future_days
    )
    VALUES (
        p_name, p_class, v_description, p_target_schema, p_target_table, p_input_schema,
        coalesce(p_date_past_days, 730), coalesce(p_date_future_days, 1)
    )
    ON CONFLICT (name) DO UPDATE SET
        class = excluded.class, description = excluded.description, target_schema = excluded.target_schema,
        target_table = excluded.target_table, input_schema = excluded.input_schema,
        date_past_days = coalesce(p_date_past_days, t.date_past_days),
        date_future_days = coalesce(p_date_future_days, t.date_future_days)
    RETURNING t.* INTO v_row;
    RETURN v_row;
END
$fn$;
COMMENT ON FUNCTION farmops.register_record_type(text, text, text, text, text, jsonb, integer, integer) IS
'Package owner only (not granted to the app): registers or replaces a record type, secures its target '
'table with farmops.secure_tenant_table() (the product grants farmops_app SELECT on it) and audits it (an '
'audit_log entry per record written, re-hashed by verify_audit; object_table schema.table outside farmops). The '
'target table needs '
'farm_id, id, draft_id, created_by and one column per property; input_schema must use the supported subset '
'(OF006 otherwise). Date window defaults: 730 days back, 1 ahead (NULL keeps the stored values).';

CREATE OR REPLACE FUNCTION farmops.record_type_tools()
RETURNS TABLE (name text, class text, description text, input_schema jsonb)
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT t.name, t.class, t.description, t.input_schema
    FROM farmops.record_types AS t
    ORDER BY t.name
$fn$;
COMMENT ON FUNCTION farmops.record_type_tools() IS
'The registered record types as the client turns them into Bedrock tools create_<name> (inputSchema verbatim).';

CREATE OR REPLACE FUNCTION farmops._write_record(
    p_farm_id uuid, p_record_type text, p_draft_id uuid, p_record_id uuid, p_created_by text, p_payload jsonb
)
RETURNS uuid
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_type farmops.record_types;
    v_cols text;
    v_id uuid;
BEGIN
    SELECT t.* INTO v_type FROM farmops.record_types AS t WHERE t.name = p_record_type;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown record type "%"', left(p_record_type, 100) USING ERRCODE = 'OF203';
    END IF;
    -- Only keys present in the (validated) payload are written, so column defaults apply to the rest.
    SELECT string_agg(format('%I', k), ', ' ORDER BY k) INTO v_cols
    FROM jsonb_object_keys(p_payload) AS k;
    IF v_cols IS NULL THEN
        EXECUTE format(
            'INSERT INTO %I.%I (farm_id, id, draft_id, created_by) VALUES ($1, $2, $3, $4) RETURNING id',
            v_type.target_schema, v_type.target_table
        ) INTO v_id USING p_farm_id, p_record_id, p_draft_id, p_created_by;
    ELSE
        EXECUTE format(
            'INSERT INTO %1$I.%2$I (farm_id, id, draft_id, created_by, %3$s) '
            'SELECT $1, $2, $3, $4, %3$s FROM jsonb_populate_record(NULL::%1$I.%2$I, $5) RETURNING id',
            v_type.target_schema, v_type.target_table, v_cols
        ) INTO v_id USING p_farm_id, p_record_id, p_draft_id, p_created_by, p_payload;
    END IF;
    RETURN v_id;
END
$fn$;
COMMENT ON FUNCTION farmops._write_record(uuid, text, uuid, uuid, text, jsonb) IS
'Private: inserts a validated payload into the record type''s target table, linked to its draft; returns the id.';
