-- The argument checks every function shares, so that one rule (length, control
-- characters, NULL) is written once and the value checked is the value stored.

CREATE OR REPLACE FUNCTION farmops._text_argument(
    p_value text,
    p_what text,
    p_max_length integer,
    p_kind text DEFAULT 'line',
    p_required boolean DEFAULT true
)
RETURNS text
LANGUAGE plpgsql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_value text := p_value;
BEGIN
    -- p_kind: 'line' a single-line name (model, feature, title, user id): trimmed, no
    -- control characters at all; 'text' content: trimmed, tab, line feed and carriage
    -- return allowed, other control characters refused; 'verbatim' telemetry kept as
    -- the caller sent it (run summaries, error text): only its length is checked.
    IF v_value IS NULL THEN
        IF p_required THEN
            RAISE EXCEPTION '% is required', p_what USING ERRCODE = 'OF006';
        END IF;
        RETURN NULL;
    END IF;
    IF p_kind = 'verbatim' THEN
        IF char_length(v_value) > p_max_length THEN
            RAISE EXCEPTION '% must be at most % characters', p_what, p_max_length USING ERRCODE = 'OF006';
        END IF;
        RETURN v_value;
    END IF;
    v_value := btrim(v_value);
    IF (p_kind = 'line' AND v_value ~ '[[:cntrl:]]')
        OR (p_kind = 'text' AND v_value ~ '[\x01-\x08\x0b\x0c\x0e-\x1f\x7f]') THEN
        RAISE EXCEPTION '% must not contain control characters', p_what USING ERRCODE = 'OF006';
    END IF;
    IF v_value = '' THEN
        IF p_required THEN
            RAISE EXCEPTION '% must not be blank', p_what USING ERRCODE = 'OF006';
        END IF;
        RETURN NULL;  -- an optional blank text is no text
    END IF;
    IF char_length(v_value) > p_max_length THEN
        RAISE EXCEPTION '% must be 1 to % characters', p_what, p_max_length USING ERRCODE = 'OF006';
    END IF;
    RETURN v_value;
END
$fn$;
COMMENT ON FUNCTION farmops._text_argument(text, text, integer, text, boolean) IS
'Private: the normalized text argument to store, or OF006 (NULL when required, blank, too long, control '
'characters). Kinds: line (trimmed, printable), text (trimmed, newlines allowed), verbatim (length only). '
'An optional NULL or blank argument returns NULL.';

CREATE OR REPLACE FUNCTION farmops._assert_in_range(p_value numeric, p_what text, p_min numeric, p_max numeric)
RETURNS void
LANGUAGE plpgsql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF p_value IS NULL OR p_value < p_min OR p_value > p_max THEN
        RAISE EXCEPTION '% must be between % and %, not %', p_what, p_min, p_max, coalesce(p_value::text, 'NULL')
            USING ERRCODE = 'OF006';
    END IF;
END
$fn$;
COMMENT ON FUNCTION farmops._assert_in_range(numeric, text, numeric, numeric) IS
'Private: raises OF006 unless p_value is given and within p_min..p_max.';

CREATE OR REPLACE FUNCTION farmops._assert_given(p_value anyelement, p_what text)
RETURNS void
LANGUAGE plpgsql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF p_value IS NULL THEN
        RAISE EXCEPTION '% is required', p_what USING ERRCODE = 'OF006';
    END IF;
END
$fn$;
COMMENT ON FUNCTION farmops._assert_given(anyelement, text) IS
'Private: raises OF006 if a required argument (an id, a flag) is NULL.';
