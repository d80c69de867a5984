-- The guard rules' keyword prefilter (issue 11 mend): check_text's one alternation of a
-- stage's rules costs ~2-3 ms per call however short the text (PostgreSQL builds the
-- regex's DFA states anew on every match, and this NFA is large). Most text matches no rule,
-- so each rule carries its KEYWORDS: literal strings of which every match of its pattern
-- contains at least one. Text that holds no keyword of any of the stage's rules cannot match
-- the alternation, and check_text answers 'allow' without running it; any other text takes
-- the unchanged path. NULL keywords (a pattern this analysis does not follow) mean "always
-- run": the prefilter only ever skips text that provably matches nothing.
--
-- farmops._guard_keywords(pattern) derives them from the pattern alone (IMMUTABLE); a
-- trigger stores them with every rule row written (migration 0155 added the columns), so
-- a rule changed in a transaction carries its new keywords in that same transaction.

-- One regex node: exact = every string it can match (when finite and at most 64; '' for
-- zero-width), need = strings of which each match holds one (NULL: unknown). The parser is
-- recursive descent over ARE syntax; anything it does not know raises 2201B, which the caller
-- turns into NULL keywords.
CREATE OR REPLACE FUNCTION farmops._guard_re_best(p_a text[], p_b text[])
RETURNS text[]
LANGUAGE sql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    -- The more selective of two necessary sets: longer shortest string (up to 4), then fewer strings.
    SELECT CASE
        WHEN p_a IS NULL OR '' = ANY (p_a) THEN CASE WHEN '' = ANY (p_b) THEN NULL ELSE p_b END
        WHEN p_b IS NULL OR '' = ANY (p_b) THEN p_a
        WHEN least((SELECT min(char_length(s)) FROM unnest(p_b) AS s), 4) * 1000 - cardinality(p_b)
            > least((SELECT min(char_length(s)) FROM unnest(p_a) AS s), 4) * 1000 - cardinality(p_a) THEN p_b
        ELSE p_a
    END
$fn$;
COMMENT ON FUNCTION farmops._guard_re_best(text[], text[]) IS
'Private (guard prefilter): the more selective of two keyword sets (NULL or one holding '''' is no set).';

CREATE OR REPLACE FUNCTION farmops._guard_re_product(p_a text[], p_b text[])
RETURNS text[]
LANGUAGE sql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    -- Every string of a followed by one of b; NULL when unknown or over 64 strings.
    SELECT CASE
        WHEN p_a IS NULL OR p_b IS NULL OR cardinality(p_a) * cardinality(p_b) > 64 THEN NULL
        ELSE ARRAY(SELECT DISTINCT a || b FROM unnest(p_a) AS a, unnest(p_b) AS b ORDER BY 1)
    END
$fn$;
COMMENT ON FUNCTION farmops._guard_re_product(text[], text[]) IS
'Private (guard prefilter): the concatenations of two finite string sets (NULL when unknown or over 64).';

CREATE OR REPLACE FUNCTION farmops._guard_re_top2(
    p_best text[], p_second text[], p_new text[], OUT best text[], OUT second text[]
)
LANGUAGE plpgsql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    -- The two most selective of several necessary sets (each must hold, so both together do).
    best := p_best;
    second := p_second;
    IF p_new IS NULL OR '' = ANY (p_new) OR p_new = best OR p_new = second THEN
        RETURN;
    ELSIF best IS NULL OR farmops._guard_re_best(best, p_new) = p_new THEN
        second := best;
        best := p_new;
    ELSIF second IS NULL OR farmops._guard_re_best(second, p_new) = p_new THEN
        second := p_new;
    END IF;
END
$fn$;
COMMENT ON FUNCTION farmops._guard_re_top2(text[], text[], text[]) IS
'Private (guard prefilter): the best two of a pair of necessary keyword sets and a new one.';

CREATE OR REPLACE FUNCTION farmops._guard_re_parse(
    p_re text, p_pos integer, p_depth integer,
    OUT exact text[], OUT need text[], OUT need2 text[], OUT pos integer
)
LANGUAGE plpgsql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_len integer := char_length(p_re);
    v_c text;
    v_next text;
    -- the current branch (a sequence of atoms)
    v_run text[];          -- exact strings of the run of exact atoms ending here
    v_seq_exact text[];    -- exact strings of the whole branch so far (NULL: not finite)
    v_seq_need text[];     -- best necessary set of the branch so far
    v_seq_need2 text[];    -- the second best (both hold: every match has one of each)
    v_top record;
    v_first boolean;
    -- the alternation of branches
    v_alt_exact text[] := '{}';
    v_alt_need text[] := '{}';
    v_alt_need2 text[] := '{}';
    -- one atom
    a_exact text[];
    a_need text[];
    a_need2 text[];
    v_sub record;
    v_min integer;
    v_max integer;
    v_bound text;
    v_set text[];
    v_neg boolean;
    v_lo text;
    v_hi text;
BEGIN
    IF p_depth > 40 THEN
        RAISE EXCEPTION 'pattern nests too deeply for the prefilter' USING ERRCODE = 'invalid_regular_expression';
    END IF;
    pos := p_pos;
    LOOP  -- one branch per iteration
        v_run := '{""}';
        v_seq_exact := '{""}';
        v_seq_need := NULL;
        v_seq_need2 := NULL;
        v_first := true;
        LOOP  -- one atom (with its quantifier) per iteration
            EXIT WHEN pos > v_len;
            v_c := substr(p_re, pos, 1);
            EXIT WHEN v_c IN ('|', ')');
            pos := pos + 1;
            a_exact := NULL;
            a_need := NULL;
            a_need2 := NULL;
            IF v_c = '(' THEN
                IF substr(p_re, pos, 1) = '?' THEN
                    v_next := substr(p_re, pos + 1, 1);
                    IF v_next = ':' THEN
                        pos := pos + 2;
                        v_sub := farmops._guard_re_parse(p_re, pos, p_depth + 1);
                        a_exact := v_sub.exact;
                        a_need := v_sub.need;
                        a_need2 := v_sub.need2;
                    ELSIF v_next IN ('=', '!') OR substr(p_re, pos + 1, 2) IN ('<=', '<!') THEN
                        pos := pos + CASE WHEN v_next = '<' THEN 3 ELSE 2 END;
                        v_sub := farmops._guard_re_parse(p_re, pos, p_depth + 1);
                        a_exact := '{""}';  -- a lookaround matches no characters
                    ELSE
                        RAISE EXCEPTION 'unknown group' USING ERRCODE = 'invalid_regular_expression';
                    END IF;
                ELSE
                    v_sub := farmops._guard_re_parse(p_re, pos, p_depth + 1);
                    a_exact := v_sub.exact;
                    a_need := v_sub.need;
                    a_need2 := v_sub.need2;
                END IF;
                pos := v_sub.pos;
                IF substr(p_re, pos, 1) <> ')' THEN
                    RAISE EXCEPTION 'unclosed group' USING ERRCODE = 'invalid_regular_expression';
                END IF;
                pos := pos + 1;
            ELSIF v_c IN ('^', '$') THEN
                a_exact := '{""}';
            ELSIF v_c = '.' THEN
                NULL;  -- any character: nothing known
            ELSIF v_c = '\' THEN
                v_next := substr(p_re, pos, 1);
                pos := pos + 1;
                IF v_next IN ('m', 'M', 'y', 'Y', 'A', 'Z') THEN
                    a_exact := '{""}';
                ELSIF v_next IN ('d', 's', 'w', 'D', 'S', 'W') THEN
                    NULL;  -- a class: one unknown character
                ELSIF v_next = 'u' AND substr(p_re, pos, 4) ~ '^[0-9A-Fa-f]{4}$' THEN
                    a_exact := ARRAY[chr(('x' || lpad(substr(p_re, pos, 4), 8, '0'))::bit(32)::integer)];
                    pos := pos + 4;
                ELSIF v_next = 'U' AND substr(p_re, pos, 8) ~ '^[0-9A-Fa-f]{8}$' THEN
                    a_exact := ARRAY[chr(('x' || substr(p_re, pos, 8))::bit(32)::integer)];
                    pos := pos + 8;
                ELSIF v_next <> '' AND v_next !~ '^[[:alnum:]_]$' THEN
                    a_exact := ARRAY[v_next];  -- an escaped punctuation character is itself
                ELSE
                    RAISE EXCEPTION 'unknown escape' USING ERRCODE = 'invalid_regular_expression';
                END IF;
            ELSIF v_c = '[' THEN
                -- A bracket expression: a short list of plain characters and ranges is an exact
                -- set; a negated, long or classy one is one unknown character. Either way it
                -- ends at the first ']' that is not its first character.
                v_neg := substr(p_re, pos, 1) = '^';
                IF v_neg THEN
                    pos := pos + 1;
                END IF;
                v_set := '{}';
                v_first := true;
                LOOP
                    IF pos > v_len THEN
                        RAISE EXCEPTION 'unclosed bracket' USING ERRCODE = 'invalid_regular_expression';
                    END IF;
                    v_lo := substr(p_re, pos, 1);
                    EXIT WHEN v_lo = ']' AND NOT v_first;
                    v_first := false;
                    pos := pos + 1;
                    IF v_lo = '[' AND substr(p_re, pos, 1) IN (':', '.', '=') THEN
                        RAISE EXCEPTION 'bracket class' USING ERRCODE = 'invalid_regular_expression';
                    ELSIF v_lo = '\' THEN
                        RAISE EXCEPTION 'bracket escape' USING ERRCODE = 'invalid_regular_expression';
                    END IF;
                    IF substr(p_re, pos, 1) = '-' AND substr(p_re, pos + 1, 1) NOT IN (']', '') THEN
                        v_hi := substr(p_re, pos + 1, 1);
                        IF v_hi IN ('[', '\') OR ascii(v_hi) < ascii(v_lo) THEN
                            RAISE EXCEPTION 'bracket range' USING ERRCODE = 'invalid_regular_expression';
                        END IF;
                        pos := pos + 2;
                        IF ascii(v_hi) - ascii(v_lo) < 64 THEN
                            v_set := v_set || ARRAY(SELECT chr(i) FROM generate_series(ascii(v_lo), ascii(v_hi)) AS i);
                        ELSE
                            v_set := v_set || ARRAY[NULL::text];  -- too wide: unknown
                        END IF;
                    ELSE
                        v_set := v_set || v_lo;
                    END IF;
                END LOOP;
                pos := pos + 1;  -- the closing ']'
                v_first := false;
                IF NOT v_neg AND cardinality(v_set) <= 8 AND array_position(v_set, NULL) IS NULL THEN
                    a_exact := ARRAY(SELECT DISTINCT s FROM unnest(v_set) AS s ORDER BY 1);
                END IF;
            ELSIF v_c IN ('*', '+', '?', '{') THEN
                RAISE EXCEPTION 'quantifier without an atom' USING ERRCODE = 'invalid_regular_expression';
            ELSE
                a_exact := ARRAY[v_c];  -- a plain character (']' and '}' too)
            END IF;
            IF a_need IS NULL AND a_exact IS NOT NULL AND NOT '' = ANY (a_exact) THEN
                a_need := a_exact;
            END IF;

            -- Its quantifier, if any: {m,n} as min and max (max NULL: unbounded).
            v_c := substr(p_re, pos, 1);
            v_min := 1;
            v_max := 1;
            IF v_c IN ('*', '+', '?') THEN
                pos := pos + 1;
                v_min := CASE WHEN v_c = '+' THEN 1 ELSE 0 END;
                v_max := CASE WHEN v_c = '?' THEN 1 END;
            ELSIF v_c = '{' THEN
                v_bound := substring(substr(p_re, pos, 24) FROM '^\{([0-9]{1,3}(,[0-9]{0,3})?)\}');
                IF v_bound IS NULL THEN
                    RAISE EXCEPTION 'unknown bound' USING ERRCODE = 'invalid_regular_expression';
                END IF;
                pos := pos + char_length(v_bound) + 2;
                v_min := split_part(v_bound, ',', 1)::integer;
                v_max := CASE
                    WHEN strpos(v_bound, ',') = 0 THEN v_min
                    ELSE nullif(split_part(v_bound, ',', 2), '')::integer
                END;
            END IF;
            IF v_c IN ('*', '+', '?', '{') AND substr(p_re, pos, 1) = '?' THEN
                pos := pos + 1;  -- non-greedy: the same strings
            END IF;
            IF v_min = 0 THEN
                a_need := NULL;
                a_need2 := NULL;
                a_exact := CASE WHEN v_max = 1 AND a_exact IS NOT NULL THEN a_exact || ''::text END;
            ELSIF NOT (v_min = 1 AND v_max = 1) THEN
                a_exact := NULL;  -- repeated: a_need still holds (the first repetition has it)
            END IF;

            -- Into the branch: extend the run of exact atoms, or close it as a candidate.
            v_seq_exact := farmops._guard_re_product(v_seq_exact, a_exact);
            IF a_exact IS NOT NULL AND farmops._guard_re_product(v_run, a_exact) IS NOT NULL THEN
                v_run := farmops._guard_re_product(v_run, a_exact);
            ELSE
                v_top := farmops._guard_re_top2(v_seq_need, v_seq_need2, v_run);
                v_seq_need := v_top.best;
                v_seq_need2 := v_top.second;
                v_run := coalesce(a_exact, '{""}');
            END IF;
            v_top := farmops._guard_re_top2(v_seq_need, v_seq_need2, a_need);
            v_top := farmops._guard_re_top2(v_top.best, v_top.second, a_need2);
            v_seq_need := v_top.best;
            v_seq_need2 := v_top.second;
        END LOOP;
        v_top := farmops._guard_re_top2(v_seq_need, v_seq_need2, v_run);
        v_seq_need := v_top.best;
        v_seq_need2 := v_top.second;
        -- Into the alternation: a branch with no necessary set leaves the whole one unknown.
        v_alt_exact := CASE
            WHEN v_alt_exact IS NULL OR v_seq_exact IS NULL THEN NULL
            WHEN cardinality(v_alt_exact) + cardinality(v_seq_exact) > 64 THEN NULL
            ELSE ARRAY(SELECT DISTINCT s FROM unnest(v_alt_exact || v_seq_exact) AS s ORDER BY 1)
        END;
        -- (A1 and A2) or (B1 and B2) implies (A1 or B1) and (A2 or B2).
        v_alt_need := CASE WHEN v_alt_need IS NULL OR v_seq_need IS NULL THEN NULL ELSE v_alt_need || v_seq_need END;
        v_alt_need2 := CASE WHEN v_alt_need2 IS NULL OR v_seq_need2 IS NULL THEN NULL ELSE v_alt_need2 || v_seq_need2 END;
        EXIT WHEN pos > v_len OR substr(p_re, pos, 1) = ')';
        pos := pos + 1;  -- the '|'
    END LOOP;
    exact := v_alt_exact;
    -- A string that contains another of the set adds nothing: keep the minimal ones.
    need := ARRAY(
        SELECT DISTINCT s FROM unnest(v_alt_need) AS s
        WHERE NOT EXISTS (SELECT FROM unnest(v_alt_need) AS t WHERE t <> s AND strpos(s, t) > 0)
        ORDER BY 1
    );
    need2 := ARRAY(
        SELECT DISTINCT s FROM unnest(v_alt_need2) AS s
        WHERE NOT EXISTS (SELECT FROM unnest(v_alt_need2) AS t WHERE t <> s AND strpos(s, t) > 0)
        ORDER BY 1
    );
    IF v_alt_need IS NULL THEN
        need := NULL;
    END IF;
    IF v_alt_need2 IS NULL OR need IS NULL OR need2 = need THEN
        need2 := NULL;
    END IF;
    IF exact IS NOT NULL AND NOT '' = ANY (exact) THEN
        v_top := farmops._guard_re_top2(need, need2, exact);
        need := v_top.best;
        need2 := v_top.second;
    END IF;
END
$fn$;
COMMENT ON FUNCTION farmops._guard_re_parse(text, integer, integer) IS
'Private (guard prefilter): parses an ARE from p_pos to the end of its alternation: the strings it matches when '
'finite (exact), strings one of which each match holds (need, NULL unknown), where it stopped. 2201B for syntax '
'the prefilter does not follow.';

CREATE OR REPLACE FUNCTION farmops._guard_keywords(p_pattern text, p_second boolean DEFAULT false)
RETURNS text[]
LANGUAGE plpgsql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v record;
BEGIN
    IF p_pattern IS NULL THEN
        RETURN NULL;
    END IF;
    v := farmops._guard_re_parse(p_pattern, 1, 0);
    IF v.pos <= char_length(p_pattern) OR v.need IS NULL OR cardinality(v.need) = 0 OR '' = ANY (v.need) THEN
        RETURN NULL;  -- an unbalanced ')' or nothing necessary: always run the rule
    END IF;
    IF p_second THEN
        RETURN CASE WHEN cardinality(v.need2) > 0 AND NOT '' = ANY (v.need2) THEN v.need2 END;
    END IF;
    RETURN v.need;
EXCEPTION WHEN invalid_regular_expression THEN
    RETURN NULL;
END
$fn$;
COMMENT ON FUNCTION farmops._guard_keywords(text, boolean) IS
'Private: the keywords of a guard pattern: strings of which every match (over normalised, lower-case text) holds '
'at least one, so text with none of them cannot match. NULL when the pattern''s syntax is beyond this analysis: '
'the rule then always runs. p_second: a second such set from another part of the pattern (every match holds one '
'of each), or NULL.';

-- Trigger: a rule row's keywords, from its pattern, on every write (never taken from the writer).
CREATE OR REPLACE FUNCTION farmops._guard_set_keywords()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF tg_op = 'UPDATE' AND new.pattern IS NOT DISTINCT FROM old.pattern
        AND new.keywords IS NOT DISTINCT FROM old.keywords AND old.keywords IS NOT NULL
        AND new.also_keywords IS NOT DISTINCT FROM old.also_keywords THEN
        RETURN new;  -- pattern and keywords unchanged: already derived
    END IF;
    new.keywords := farmops._guard_keywords(new.pattern);
    new.also_keywords := farmops._guard_keywords(new.pattern, true);
    RETURN new;
END
$fn$;
COMMENT ON FUNCTION farmops._guard_set_keywords() IS
'Trigger: sets a guard rule''s keywords (check_text''s prefilter) from its pattern whenever it is written.';

DROP TRIGGER IF EXISTS guard_rules_keywords_follow_the_pattern ON farmops.guard_rules;
CREATE TRIGGER guard_rules_keywords_follow_the_pattern BEFORE INSERT OR UPDATE ON farmops.guard_rules
FOR EACH ROW EXECUTE FUNCTION farmops._guard_set_keywords();
ALTER TABLE farmops.guard_rules ENABLE ALWAYS TRIGGER guard_rules_keywords_follow_the_pattern;
DROP TRIGGER IF EXISTS farm_guard_rules_keywords_follow_the_pattern ON farmops.farm_guard_rules;
CREATE TRIGGER farm_guard_rules_keywords_follow_the_pattern BEFORE INSERT OR UPDATE ON farmops.farm_guard_rules
FOR EACH ROW EXECUTE FUNCTION farmops._guard_set_keywords();
ALTER TABLE farmops.farm_guard_rules ENABLE ALWAYS TRIGGER farm_guard_rules_keywords_follow_the_pattern;

-- Rules stored before the keywords existed (migration 0155) get theirs now; a farm's own
-- rules keep NULL (always run) until they are next written: re-writing them here would
-- record a change in the farm's audit chain that nobody made.
UPDATE farmops.guard_rules AS g SET keywords = farmops._guard_keywords(g.pattern)
WHERE g.keywords IS NULL;
