-- Validates an AI payload against its record type's input_schema, in SQL, so
-- a model that was talked into anything still cannot store a malformed row.
-- Every refusal is OF202 and names the offending key.

CREATE OR REPLACE FUNCTION farmops.validate_payload(p_record_type text, p_payload jsonb)
RETURNS farmops.record_types
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_type farmops.record_types;
    v_props jsonb;
    v_key text;
    v_value jsonb;
    v_prop jsonb;
    v_kind text;
    v_text text;
    v_num numeric;
    v_date date;
BEGIN
    SELECT t.* INTO v_type FROM farmops.record_types AS t WHERE t.name = p_record_type;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown record type "%"', left(p_record_type, 100) USING ERRCODE = 'OF203';
    END IF;
    IF p_payload IS NULL OR jsonb_typeof(p_payload) <> 'object' THEN
        RAISE EXCEPTION 'payload for % must be a JSON object', p_record_type USING ERRCODE = 'OF202';
    END IF;
    v_props := v_type.input_schema -> 'properties';
    -- Unknown keys first: additionalProperties is false for every type.
    SELECT k INTO v_key FROM jsonb_object_keys(p_payload) AS k WHERE NOT v_props ? k ORDER BY k LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'payload for %: unknown key "%"', p_record_type, left(v_key, 100)
            USING ERRCODE = 'OF202', DETAIL = 'additionalProperties is false';
    END IF;
    SELECT r.v #>> '{}' INTO v_key
    FROM jsonb_array_elements(coalesce(v_type.input_schema -> 'required', '[]')) AS r (v)
    WHERE NOT p_payload ? (r.v #>> '{}')
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'payload for %: missing required key "%"', p_record_type, v_key USING ERRCODE = 'OF202';
    END IF;
    FOR v_key, v_value IN SELECT e.key, e.value FROM jsonb_each(p_payload) AS e ORDER BY e.key LOOP
        v_prop := v_props -> v_key;
        v_kind := v_prop ->> 'type';
        IF v_kind = 'string' THEN
            IF jsonb_typeof(v_value) <> 'string' THEN
                RAISE EXCEPTION 'payload for %: key "%" must be a string', p_record_type, v_key USING ERRCODE = 'OF202';
            END IF;
            v_text := v_value #>> '{}';
            IF char_length(v_text) > (v_prop ->> 'maxLength')::integer THEN
                RAISE EXCEPTION 'payload for %: key "%" is longer than % characters',
                    p_record_type, v_key, v_prop ->> 'maxLength' USING ERRCODE = 'OF202';
            END IF;
            IF char_length(btrim(v_text)) < coalesce((v_prop ->> 'minLength')::integer, 0) THEN
                RAISE EXCEPTION 'payload for %: key "%" is shorter than % characters',
                    p_record_type, v_key, v_prop ->> 'minLength' USING ERRCODE = 'OF202';
            END IF;
            -- Control characters other than tab, line feed and carriage return have no place in a farm record.
            IF v_text ~ '[\x01-\x08\x0b\x0c\x0e-\x1f\x7f]' THEN
                RAISE EXCEPTION 'payload for %: key "%" contains control characters', p_record_type, v_key
                    USING ERRCODE = 'OF202';
            END IF;
            IF v_prop ->> 'format' = 'date' THEN
                IF v_text !~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' THEN
                    RAISE EXCEPTION 'payload for %: key "%" must be a date YYYY-MM-DD', p_record_type, v_key
                        USING ERRCODE = 'OF202';
                END IF;
                BEGIN
                    v_date := v_text::date;
                EXCEPTION WHEN datetime_field_overflow OR invalid_datetime_format THEN
                    RAISE EXCEPTION 'payload for %: key "%" is not a real date', p_record_type, v_key
                        USING ERRCODE = 'OF202';
                END;
                IF v_date < current_date - v_type.date_past_days OR v_date > current_date + v_type.date_future_days THEN
                    RAISE EXCEPTION 'payload for %: key "%" must be between % and %', p_record_type, v_key,
                        current_date - v_type.date_past_days, current_date + v_type.date_future_days
                        USING ERRCODE = 'OF202';
                END IF;
            END IF;
        ELSIF v_kind IN ('integer', 'number') THEN
            IF jsonb_typeof(v_value) <> 'number' THEN
                RAISE EXCEPTION 'payload for %: key "%" must be a%', p_record_type, v_key,
                    CASE v_kind WHEN 'integer' THEN 'n integer' ELSE ' number' END USING ERRCODE = 'OF202';
            END IF;
            -- Integers are written as plain digits (no fraction, no exponent): 2, not 2.0 or 2e0.
            IF v_kind = 'integer' AND v_value::text !~ '^-?[0-9]{1,19}$' THEN
                RAISE EXCEPTION 'payload for %: key "%" must be an integer', p_record_type, v_key
                    USING ERRCODE = 'OF202';
            END IF;
            v_num := v_value::numeric;
            IF (v_prop ? 'minimum' AND v_num < (v_prop ->> 'minimum')::numeric)
                OR (v_prop ? 'exclusiveMinimum' AND v_num <= (v_prop ->> 'exclusiveMinimum')::numeric) THEN
                RAISE EXCEPTION 'payload for %: key "%" is below its minimum %', p_record_type, v_key,
                    coalesce(v_prop ->> 'minimum', '> ' || (v_prop ->> 'exclusiveMinimum')) USING ERRCODE = 'OF202';
            END IF;
            IF (v_prop ? 'maximum' AND v_num > (v_prop ->> 'maximum')::numeric)
                OR (v_prop ? 'exclusiveMaximum' AND v_num >= (v_prop ->> 'exclusiveMaximum')::numeric) THEN
                RAISE EXCEPTION 'payload for %: key "%" is above its maximum %', p_record_type, v_key,
                    coalesce(v_prop ->> 'maximum', '< ' || (v_prop ->> 'exclusiveMaximum')) USING ERRCODE = 'OF202';
            END IF;
            -- Beyond the column's scale would be silently rounded: refuse more than 3 decimals.
            IF v_kind = 'number' AND scale(v_num) > 3 THEN
                RAISE EXCEPTION 'payload for %: key "%" has more than 3 decimals', p_record_type, v_key
                    USING ERRCODE = 'OF202';
            END IF;
        ELSIF v_kind = 'boolean' THEN
            IF jsonb_typeof(v_value) <> 'boolean' THEN
                RAISE EXCEPTION 'payload for %: key "%" must be a boolean', p_record_type, v_key USING ERRCODE = 'OF202';
            END IF;
        END IF;
        IF v_prop ? 'enum' AND NOT (v_prop -> 'enum') @> jsonb_build_array(v_value) THEN
            RAISE EXCEPTION 'payload for %: key "%" must be one of %', p_record_type, v_key, v_prop -> 'enum'
                USING ERRCODE = 'OF202';
        END IF;
    END LOOP;
    RETURN v_type;
END
$fn$;
COMMENT ON FUNCTION farmops.validate_payload(text, jsonb) IS
'Checks a payload against its record type (unknown/missing keys, JSON types, integer digits, ranges, lengths, '
'enums, date window, control characters); returns the type or raises OF203 / OF202 naming the key.';
