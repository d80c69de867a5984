-- Injection and output guards: untrusted text (the user's input, retrieved
-- chunks, the model's output; never the system prompt) is normalised so that
-- look-alike spellings become one spelling, then matched against the guard rules
-- (farmops.guard_rules, plus the farm's own rules and allow rules in a tenant context).

CREATE OR REPLACE FUNCTION farmops.normalize_untrusted_text(p_text text)
RETURNS text
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    -- Cyrillic and Greek letters that look like Latin ones, and their Latin twins.
    c_lookalike constant text := 'АВЕКМНОРСТХаеорсухіјѕԁҮүІЈЅԛԝһҺӏӀΑΒΕΖΗΙΚΜΝΟΡΤΥΧοανικρυχϲıɡ';
    c_latin constant text := 'ABEKMHOPCTXaeopcyxijsdYyIJSqwhHlIABEZHIKMNOPTYXoavikpuxcig';
    -- At most this many non-ASCII decoded runs are tried (each try is a subtransaction).
    c_max_utf8_tries constant integer := 16;
    v text;
    v_decoded text := '';
    v_signals text := '';
    v_run text;
    v_bytes bytea;
    v_piece text;
    v_tries integer := 0;
    v_ascii boolean;
BEGIN
    IF p_text IS NULL THEN
        RETURN NULL;
    END IF;
    -- Pure ASCII is already NFKC (and has no look-alikes): skip the costly steps for it.
    v_ascii := p_text !~ '[^\x01-\x7F]';
    v := CASE WHEN v_ascii THEN p_text ELSE normalize(p_text, NFKC) END;
    IF NOT v_ascii THEN
        -- Private-use characters carry the signal markers below, so input cannot contain them.
        v := regexp_replace(v, '[\uE000-\uF8FF]', '', 'g');

        -- Unicode tag characters spell invisible ASCII ("ASCII smuggling"): scan what they spell.
        -- Flag emoji use up to 6 of them, so only a longer run counts as hidden text.
        IF v ~ '[\U000E0000-\U000E007F]' THEN
            v_decoded := v_decoded || E'\n' || translate(
                regexp_replace(v, '[^\U000E0020-\U000E007E]+', ' ', 'g'),
                (SELECT string_agg(chr(917536 + i), '' ORDER BY i) FROM generate_series(0, 94) AS i),
                (SELECT string_agg(chr(32 + i), '' ORDER BY i) FROM generate_series(0, 94) AS i)
            );
            IF v ~ '[\U000E0020-\U000E007E]{8}' THEN
                v_signals := v_signals || E'\n\uE000signal:hidden_tag_text\uE000';
            END IF;
        END IF;
        -- Invisible characters or look-alike letters inside a Latin word: no honest text does that.
        IF v ~ '[A-Za-z][\u200B-\u200D\u2060\uFEFF]+[A-Za-z]' THEN
            v_signals := v_signals || E'\n\uE000signal:zero_width_in_word\uE000';
        END IF;
        IF v ~ ('[A-Za-z][' || c_lookalike || ']|[' || c_lookalike || '][A-Za-z]') THEN
            v_signals := v_signals || E'\n\uE000signal:mixed_script_word\uE000';
        END IF;
        -- Zero-width, bidi controls, soft hyphen, variation selectors and tags are dropped.
        v := regexp_replace(
            v,
            '[\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F'
            '\u3164\uFE00-\uFE0F\uFEFF\uFFA0\U000E0000-\U000E007F\U000E0100-\U000E01EF]',
            '',
            'g'
        );
    END IF;

    -- Base64 (standard or URL-safe, mixed case) and hex runs of 16+ characters that decode
    -- to text are scanned too. Pure printable ASCII needs no check; anything else is tried
    -- with convert_from in a sub-block (a few times at most), so garbage never raises.
    IF v ~ '[A-Za-z0-9+/_-]{16}' THEN
        FOR v_run IN
            SELECT m[1] FROM regexp_matches(v, '([A-Za-z0-9+/_-]{16,})', 'g') AS m LIMIT 256
        LOOP
            IF v_run ~ '^[0-9A-Fa-f]+$' AND char_length(v_run) % 2 = 0 THEN
                v_bytes := decode(v_run, 'hex');
            ELSIF v_run ~ '[A-Z]' AND v_run ~ '[a-z]' THEN
                v_run := translate(v_run, '-_', '+/');
                v_run := CASE char_length(v_run) % 4
                    WHEN 0 THEN v_run
                    WHEN 1 THEN left(v_run, -1)
                    WHEN 2 THEN v_run || '=='
                    ELSE v_run || '='
                END;
                v_bytes := decode(v_run, 'base64');
            ELSE
                CONTINUE;
            END IF;
            v_piece := NULL;
            IF encode(v_bytes, 'hex') ~ '^(0[9ad]|[2-6][0-9a-f]|7[0-9a-e])*$' THEN
                v_piece := convert_from(v_bytes, 'UTF8');
            ELSIF v_tries < c_max_utf8_tries THEN
                v_tries := v_tries + 1;
                BEGIN
                    v_piece := convert_from(v_bytes, 'UTF8');
                EXCEPTION WHEN character_not_in_repertoire OR untranslatable_character THEN
                    v_piece := NULL;
                END;
            END IF;
            -- Text, not binary that happened to be valid: no control characters, some words.
            IF v_piece ~ '[[:alpha:]]{3}' AND v_piece !~ '[\x01-\x08\x0B\x0C\x0E-\x1F\x7F]' THEN
                v_decoded := v_decoded || E'\n' || regexp_replace(normalize(v_piece, NFKC), '[\n\r]+', ' ', 'g');
                IF v_piece ~ '[[:alpha:]]{2,}([[:space:]]+[[:alpha:]]+){3}' THEN
                    v_signals := v_signals || E'\n\uE000signal:encoded_text\uE000';
                END IF;
            END IF;
        END LOOP;
    END IF;

    -- Line breaks of the text itself are white space; each decoded segment is one line.
    v := regexp_replace(v, '[\n\r\v\f\u0085\u2028\u2029]+', ' ', 'g') || v_decoded;
    -- Typographic apostrophes become ASCII ones (rules spell "what's", "you're" with ').
    IF NOT v_ascii THEN
        v := translate(v, E'\u2019\u2018\u02BC', E'\'\'\'');
    END IF;
    -- Homoglyphs to Latin, then ASCII lower case (collation C: the same everywhere).
    IF v ~ '[\u0370-\u03FF\u0400-\u052F\u0131\u0261]' THEN
        v := translate(v, c_lookalike, c_latin);
    END IF;
    v := lower(v COLLATE "C");
    -- Light leetspeak, only where a digit or symbol touches a letter (so "pen 10" stays).
    -- No lookbehind anywhere here: PostgreSQL evaluates it from the start of the string,
    -- which made long inputs quadratic.
    -- (An e-mail's "@" alone does not count: the "@" rule below skips it, and the nine regexes of
    -- this step would push a call that also redacts PII out of PostgreSQL's 32-regex cache.)
    IF v ~ '[a-z][013$]|[013$][a-z]|(^|[^a-z0-9._%+-])@[a-z]' THEN
        v := regexp_replace(regexp_replace(v, '([a-z])0', '\1o', 'g'), '0([a-z])', 'o\1', 'g');
        v := regexp_replace(regexp_replace(v, '([a-z])1', '\1i', 'g'), '1([a-z])', 'i\1', 'g');
        v := regexp_replace(regexp_replace(v, '([a-z])3', '\1e', 'g'), '3([a-z])', 'e\1', 'g');
        v := regexp_replace(regexp_replace(v, '([a-z])\$', '\1s', 'g'), '\$([a-z])', 's\1', 'g');
        v := regexp_replace(v, '(^|[^a-z0-9._%+-])@([a-z])', '\1a\2', 'g');  -- not inside an address
    END IF;
    -- Spaced-out letters ("i g n o r e", "i.g.n.o.r.e") join up; a wider gap stays a word
    -- break. First mark each single letter followed by a separator and another single
    -- letter (U+E001, which input cannot contain), then drop the separator after each mark.
    IF v ~ '[a-z][ ._*-][a-z][ ._*-][a-z]' THEN
        v := regexp_replace(v, '(^|[^a-z])([a-z])(?=[ ._*-][a-z]([^a-z]|$))', E'\\1\uE001\\2', 'g');
        v := regexp_replace(v, '\uE001([a-z])[ ._*-]', '\1', 'g');
    END IF;
    -- White space (each segment stays on its own line) collapses to one space.
    -- (Only runs that are not already one space are replaced: each replacement has a cost.)
    v := regexp_replace(v, ' [ \t]+|\t[ \t]*', ' ', 'g');
    v := regexp_replace(v, ' ?\n[\n ]*', E'\n', 'g');
    RETURN btrim(v, E' \n') || v_signals;
END
$fn$;
COMMENT ON FUNCTION farmops.normalize_untrusted_text(text) IS
'What the guard rules see: NFKC, invisible characters removed, homoglyphs folded, light leetspeak, '
'spaced letters joined, white space collapsed, lower case; decoded base64/hex/tag text and signal '
'markers (U+E000 signal:NAME U+E000) on their own lines.';

CREATE OR REPLACE FUNCTION farmops.check_text(
    p_text text,
    p_stage text,
    OUT verdict text,
    OUT categories text[],
    OUT rule_names text[]
)
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    -- 1 MiB of characters: far more than a message, chunk or answer; bounds the cost of a call.
    c_max_chars constant integer := 1048576;
    v_farm uuid := farmops.current_farm_id();
    v_scan text;
    v_subject text;
    v_allow text;
    v_block boolean := false;
    grp record;
BEGIN
    IF p_stage IS NULL OR p_stage NOT IN ('input', 'retrieved', 'output') THEN
        RAISE EXCEPTION 'stage must be input, retrieved or output, not %', coalesce(p_stage, 'NULL')
            USING ERRCODE = 'OF006';
    END IF;
    IF p_text IS NULL OR char_length(p_text) > c_max_chars THEN
        RAISE EXCEPTION 'text must be given and at most % characters', c_max_chars USING ERRCODE = 'OF006';
    END IF;
    categories := '{}';
    rule_names := '{}';
    v_scan := farmops.normalize_untrusted_text(p_text);
    -- The keyword prefilter (guard_prefilter.sql): every match of a rule holds one of its
    -- keywords (and one of its also_keywords, when it has them), so text that holds them for
    -- none of the stage's rules matches none of them and is allowed here without a regex. A
    -- rule without keywords (NULL) always runs. Setting farmops.guard_prefilter to 'off'
    -- skips this step (the reference path the tests compare).
    IF coalesce(current_setting('farmops.guard_prefilter', true), '') <> 'off' AND NOT EXISTS (
        SELECT
        FROM (
            SELECT g.keywords, g.also_keywords
            FROM farmops.guard_rules AS g
            WHERE g.enabled AND p_stage = ANY (g.stages)
            UNION ALL
            SELECT f.keywords, f.also_keywords
            FROM farmops.farm_guard_rules AS f
            WHERE f.farm_id = v_farm AND f.enabled AND p_stage = ANY (f.stages)
        ) AS r
        WHERE
            r.keywords IS NULL
            OR EXISTS (SELECT FROM unnest(r.keywords) AS k WHERE strpos(v_scan, k) > 0)
            AND (r.also_keywords IS NULL OR EXISTS (SELECT FROM unnest(r.also_keywords) AS k WHERE strpos(v_scan, k) > 0))
    ) THEN
        verdict := 'allow';
        RETURN;
    END IF;
    -- First ALL the stage's rules as one alternation: most text matches none, and then this is
    -- the only guard regex the call runs (the per-category ones below run on a match only).
    -- PostgreSQL keeps 32 compiled regexes per backend: one alternation per stage and category
    -- (21 for the three stages), the normaliser's and the PII kinds' patterns did not fit, and a
    -- backend that screens a run's input, chunks and output recompiled them all on every call.
    SELECT '(' || string_agg(r.pattern, ')|(' ORDER BY r.scope, r.name) || ')' INTO v_subject
    FROM (
        SELECT 1 AS scope, g.name, g.pattern
        FROM farmops.guard_rules AS g
        WHERE g.enabled AND p_stage = ANY (g.stages)
        UNION ALL
        SELECT 2 AS scope, f.name, f.pattern
        FROM farmops.farm_guard_rules AS f
        WHERE f.farm_id = v_farm AND f.enabled AND p_stage = ANY (f.stages)
    ) AS r;
    IF v_subject IS NULL OR NOT regexp_like(v_scan, v_subject, 'n') THEN
        verdict := 'allow';
        RETURN;
    END IF;
    -- Rules are tried one category at a time as one alternation first: PostgreSQL keeps
    -- only 32 compiled regexes per backend, so one regex per rule would recompile every
    -- rule on every call. Only a category that matches is tried rule by rule (to name the
    -- rules and apply allow rules). Global rules always; in a tenant context the farm's
    -- own rules and allow rules too (RLS applies as well: SECURITY INVOKER).
    FOR grp IN
        SELECT
            rules.category,
            '(' || string_agg(rules.pattern, ')|(' ORDER BY rules.scope, rules.name) || ')' AS any_pattern,
            array_agg(rules.name ORDER BY rules.scope, rules.name) AS names,
            array_agg(rules.pattern ORDER BY rules.scope, rules.name) AS patterns,
            array_agg(rules.action ORDER BY rules.scope, rules.name) AS actions
        FROM (
            SELECT 1 AS scope, g.name, g.category, g.pattern, g.action
            FROM farmops.guard_rules AS g
            WHERE g.enabled AND p_stage = ANY (g.stages)
            UNION ALL
            SELECT 2 AS scope, f.name, f.category, f.pattern, f.action
            FROM farmops.farm_guard_rules AS f
            WHERE f.farm_id = v_farm AND f.enabled AND p_stage = ANY (f.stages)
        ) AS rules
        GROUP BY rules.category
        ORDER BY rules.category
    LOOP
        CONTINUE WHEN NOT regexp_like(v_scan, grp.any_pattern, 'n');
        FOR i IN 1 .. cardinality(grp.names) LOOP
            -- An allow rule blanks its matches out of the text before the rule runs.
            v_subject := v_scan;
            FOR v_allow IN
                SELECT a.pattern FROM farmops.guard_allow_rules AS a
                WHERE
                    a.farm_id = v_farm AND a.enabled
                    AND (a.category = grp.category OR a.rule_name = grp.names[i])
                ORDER BY a.created_at, a.id
            LOOP
                v_subject := regexp_replace(v_subject, v_allow, ' ', 'gn');
            END LOOP;
            IF regexp_like(v_subject, grp.patterns[i], 'n') THEN
                v_block := v_block OR grp.actions[i] = 'block';
                categories := categories || grp.category;
                IF NOT grp.names[i] = ANY (rule_names) THEN
                    rule_names := rule_names || grp.names[i];
                END IF;
            END IF;
        END LOOP;
    END LOOP;
    verdict := CASE WHEN v_block THEN 'block' WHEN cardinality(rule_names) > 0 THEN 'flag' ELSE 'allow' END;
    categories := ARRAY(SELECT DISTINCT c FROM unnest(categories) AS c ORDER BY c);
    rule_names := ARRAY(SELECT n FROM unnest(rule_names) AS n ORDER BY n);
END
$fn$;
COMMENT ON FUNCTION farmops.check_text(text, text) IS
'Guards untrusted text at a stage (input, retrieved, output): verdict allow | flag | block (block wins), '
'the categories and rule names that matched. Global rules always; the farm''s rules and allow rules in '
'its tenant context. OF006: bad stage, NULL or over 1 MiB (1,048,576 characters) of text.';
