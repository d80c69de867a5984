-- PII redaction: farmops.redact_pii(text) finds personal data and secrets in free text and
-- replaces each finding by [KIND]. A pure function of its input (no tables, no tenant), so
-- every storage path and the client can call it, and it behaves the same everywhere.
--
-- How it works: each kind is one PostgreSQL regex (candidates), then a check the regex cannot
-- express (Luhn, ISO 13616 mod-97, IPv6 grammar, digit counts, context words); overlapping
-- findings are resolved longest first. Offsets come from regexp_split_to_table and
-- regexp_matches run with the same pattern (the pieces between matches and the matches, in
-- order), so one pass per kind is linear in the text; redaction cuts the UTF-8 bytes at
-- byte offsets for the same reason (substr on text walks from the start on every call).
-- Every regex runs with COLLATE "C": character classes and case folding then do not depend
-- on the database's locale, which is what makes the functions honestly IMMUTABLE.
-- PostgreSQL regex has no \b (it is backspace): boundaries are lookarounds or \m \M.

-- Luhn (ISO/IEC 7812) check of a digit string: the check every payment card number passes.
-- A plain loop: about 7x faster than a set-based sum, and it runs once per card-like candidate.
CREATE OR REPLACE FUNCTION farmops._luhn_valid(p_digits text)
RETURNS boolean
LANGUAGE plpgsql
IMMUTABLE
STRICT
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_n integer := length(p_digits);
    v_sum integer := 0;
    v_d integer;
BEGIN
    IF p_digits COLLATE "C" !~ '^[0-9]{2,19}$' THEN
        RETURN false;
    END IF;
    FOR i IN 0 .. v_n - 1 LOOP
        v_d := ascii(substr(p_digits, v_n - i, 1)) - 48;
        IF i % 2 = 1 THEN
            v_d := v_d * 2;
            IF v_d > 9 THEN
                v_d := v_d - 9;
            END IF;
        END IF;
        v_sum := v_sum + v_d;
    END LOOP;
    RETURN v_sum % 10 = 0;
END
$fn$;
COMMENT ON FUNCTION farmops._luhn_valid(text) IS
'Private: true when a string of 2-19 digits passes the Luhn check (payment card numbers do).';

-- ISO 13616 IBAN check: country letters, two check digits, 11-30 alphanumerics, and the
-- number formed by moving the first four characters to the end (letters A=10..Z=35) mod 97 = 1.
CREATE OR REPLACE FUNCTION farmops._iban_valid(p_iban text)
RETURNS boolean
LANGUAGE sql
IMMUTABLE
STRICT
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT CASE WHEN p_iban COLLATE "C" ~ '^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$' THEN (
        SELECT string_agg(
            CASE WHEN c.ch COLLATE "C" ~ '[0-9]' THEN c.ch ELSE (ascii(c.ch) - 55)::text END, '' ORDER BY c.i
        )::numeric % 97 = 1
        FROM unnest(string_to_array(substr(p_iban, 5) || left(p_iban, 4), NULL)) WITH ORDINALITY AS c (ch, i)
    ) ELSE false END
$fn$;
COMMENT ON FUNCTION farmops._iban_valid(text) IS
'Private: true when a compact IBAN (no spaces) has a valid ISO 13616 mod-97 check.';

-- RFC 4291 text forms: eight groups, or one "::" for a run of zero groups, optionally ending in a
-- dotted IPv4 address. At least one hex digit, so a bare "::" in prose is not an address.
CREATE OR REPLACE FUNCTION farmops._ipv6_valid(p_text text)
RETURNS boolean
LANGUAGE sql
IMMUTABLE
STRICT
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT p_text COLLATE "C" ~ replace(replace(
        '^(?:(?:H:){7}H|(?:H:){1,7}:|(?:H:){1,6}:H|(?:H:){1,5}(?::H){1,2}|(?:H:){1,4}(?::H){1,3}'
        '|(?:H:){1,3}(?::H){1,4}|(?:H:){1,2}(?::H){1,5}|H:(?::H){1,6}|:(?::H){1,7}'
        '|(?:H:){6}V|(?:(?:H:){1,5}|:):(?:H:){0,4}V)$',
        'V', '(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])[.]){3}(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])'),
        'H', '[0-9A-Fa-f]{1,4}')
$fn$;
COMMENT ON FUNCTION farmops._ipv6_valid(text) IS
'Private: true when the text is one IPv6 address in RFC 4291 text form (compressed and IPv4-suffixed forms too).';

-- Every match of p_pattern in p_text with its 0-based character and UTF-8 byte offset.
-- regexp_matches yields the matches and regexp_split_to_table the pieces before each of them,
-- in the same order (both stop at the same places), so a running sum gives the offsets in one
-- pass each; most texts have no match of most kinds, so the split runs only when there are.
-- Patterns must not contain capturing groups (regexp_matches would return the groups).
CREATE OR REPLACE FUNCTION farmops._pii_matches(p_text text, p_pattern text, p_flags text)
RETURNS TABLE (start integer, byte_start integer, hit text)
LANGUAGE plpgsql
IMMUTABLE
STRICT
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_column
DECLARE
    v_hits text[];
BEGIN
    SELECT array_agg(r.x[1] ORDER BY r.ord) INTO v_hits
    FROM regexp_matches(p_text COLLATE "C", p_pattern, 'g' || p_flags) WITH ORDINALITY AS r (x, ord);
    IF v_hits IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY SELECT
        (sum(char_length(s.piece) + char_length(m.hit)) OVER w - char_length(m.hit))::integer,
        (sum(octet_length(convert_to(s.piece, 'UTF8')) + octet_length(convert_to(m.hit, 'UTF8'))) OVER w
            - octet_length(convert_to(m.hit, 'UTF8')))::integer,
        m.hit
    FROM unnest(v_hits) WITH ORDINALITY AS m (hit, ord)
    INNER JOIN
        regexp_split_to_table(p_text COLLATE "C", p_pattern, p_flags) WITH ORDINALITY AS s (piece, ord)
        ON s.ord = m.ord
    WINDOW w AS (ORDER BY m.ord);
END
$fn$;
COMMENT ON FUNCTION farmops._pii_matches(text, text, text) IS
'Private: each match of a (capture-free) regex with its 0-based character and UTF-8 byte offset, in one pass.';

-- Every validated candidate finding of every kind, possibly overlapping. rank breaks ties
-- between equally long overlapping findings (lower wins): the more specific kind first.
CREATE OR REPLACE FUNCTION farmops._pii_candidates(p_text text)
RETURNS TABLE (kind text, start integer, length integer, byte_start integer, byte_length integer, rank integer)
LANGUAGE plpgsql
IMMUTABLE
STRICT
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
-- The query below is one plan for every text: a custom plan per call (the plan cache's choice,
-- as the generic one looks no cheaper to it) re-planned its ten branches every time, ~1 ms.
SET plan_cache_mode = force_generic_plan
AS $fn$
#variable_conflict use_column
DECLARE
    -- Which passes can find anything (each pass below needs one of these in the text): a
    -- digit (every number-based kind, bearer and key=value values), ':' (IPv6), '@' (email)
    -- or a secret's literal prefix. Text without any of them has no candidate, and a pass
    -- gated off by a false one is not run at all (a one-time filter in its plan).
    v_digit boolean := p_text COLLATE "C" ~ '[0-9]';
    v_colon boolean := strpos(p_text, ':') > 0;
    v_prefix boolean := p_text COLLATE "C"
        ~ '(AKIA|ASIA|ABIA|ACCA)[A-Z0-9]|eyJ|k_(live|test)_|gh[pousr]_|github_pat_|xox|AIza|FLWSECK|-----BEGIN';
BEGIN
    RETURN QUERY
    -- secret (1): AWS access key ids, JWTs, well-known vendor token formats, private-key PEM
    -- blocks. The PEM body cannot hold five dashes in a row, so a block ends at its own END
    -- line; a block cut off before its END line (a chunk boundary) runs while base64 lines do.
    SELECT 'secret', m.start, char_length(m.hit), m.byte_start, octet_length(convert_to(m.hit, 'UTF8')), 1
    FROM farmops._pii_matches(p_text,
        '(?<![A-Za-z0-9_-])(?:(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}'
        '|eyJ[A-Za-z0-9_-]{8,}[.]eyJ[A-Za-z0-9_-]{8,}[.][A-Za-z0-9_-]*'
        '|(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}|gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,}'
        '|xox[abposr]-[A-Za-z0-9-]{10,}|AIza[A-Za-z0-9_-]{35}|FLWSECK(?:_TEST)?-[A-Za-z0-9]{32}-X)(?![A-Za-z0-9_-])'
        '|-----BEGIN [A-Z0-9 ]{0,20}PRIVATE KEY-----(?:[^-]*(?:-{1,4}[^-]+)*-----END [A-Z0-9 ]{0,20}PRIVATE KEY-----'
        '|(?:[[:space:]]+[A-Za-z0-9+/=]{16,})+)', '') AS m
    WHERE v_prefix
    UNION ALL
    -- secret (1): the token after "Bearer" (the word stays readable).
    SELECT 'secret', m.start + char_length(p.prefix), char_length(m.hit) - char_length(p.prefix),
        m.byte_start + octet_length(p.prefix), octet_length(m.hit) - octet_length(p.prefix), 1
    FROM farmops._pii_matches(p_text,
        '\m[Bb][Ee][Aa][Rr][Ee][Rr][ \t]+[A-Za-z0-9._~+/-]{11,}[A-Za-z0-9_~+/-]=*', '') AS m
    CROSS JOIN LATERAL (SELECT substring(m.hit COLLATE "C" FROM '^[A-Za-z]+[ \t]+') AS prefix) AS p
    WHERE v_digit AND (strpos(p_text, 'earer') > 0 OR strpos(p_text, 'EARER') > 0) -- skip the regex pass (cheap test)
        AND m.hit COLLATE "C" ~ '[0-9]'
    UNION ALL
    -- secret (1): the value of "api_key=...", "password: ...", "client_secret": "..." and the like.
    -- The value must hold a letter and a digit (so "token: pending" is prose); "&name=" ends it.
    SELECT 'secret', m.start + char_length(p.prefix), char_length(m.hit) - char_length(p.prefix),
        m.byte_start + octet_length(convert_to(p.prefix, 'UTF8')),
        octet_length(convert_to(m.hit, 'UTF8')) - octet_length(convert_to(p.prefix, 'UTF8')), 1
    FROM farmops._pii_matches(p_text,
        '\m(?:[a-z0-9]+[_-]){0,3}(?:api[_-]?key|api[_-]?secret|apikey|secret[_-]?key|client[_-]?secret'
        '|access[_-]?token|auth[_-]?token|refresh[_-]?token|token|password|passwd|pwd|secret|private[_-]?key'
        '|aws_secret_access_key)\M["'']?[ \t]*[:=][ \t]*["'']?'
        '(?:[^[:space:]"''`,;&]|&(?![a-z_]+=)){7,}[^[:space:]"''`,;&.)]', 'i') AS m
    CROSS JOIN LATERAL (
        SELECT substring(m.hit COLLATE "C" FROM '^[^:=]*[:=][ \t]*["'']?') AS prefix
    ) AS p
    WHERE v_digit AND substr(m.hit, char_length(p.prefix) + 1) COLLATE "C" ~ '[0-9]'
        AND substr(m.hit, char_length(p.prefix) + 1) COLLATE "C" ~ '[A-Za-z]'
    UNION ALL
    -- national_id (2): Nigerian NIN / BVN (11 digits) only after a context word; US SSN in its
    -- dashed form, without the never-issued areas 000, 666, 900-999, group 00 or serial 0000.
    SELECT 'national_id', m.start + char_length(m.hit) - 11, 11,
        m.byte_start + octet_length(convert_to(m.hit, 'UTF8')) - 11, 11, 2
    FROM farmops._pii_matches(p_text,
        '\m(?:nin|bvn|nimc|national identi(?:fication|ty)|bank verification number)\M'
        '[^0-9\n]{0,25}[0-9]{11}(?![0-9])', 'i') AS m
    WHERE v_digit
    UNION ALL
    SELECT 'national_id', m.start, 11, m.byte_start, 11, 2
    FROM farmops._pii_matches(p_text,
        '(?<![0-9A-Za-z-])(?!000|666|9[0-9][0-9])[0-9]{3}-(?!00)[0-9]{2}-(?!0000)[0-9]{4}(?![0-9]|-[0-9])', '') AS m
    WHERE v_digit
    UNION ALL
    -- iban (3): compact or printed in groups of four; a following capitalised word may have been
    -- taken as a last group, so up to two trailing groups are dropped until the check passes.
    SELECT 'iban', m.start, char_length(v.iban), m.byte_start, char_length(v.iban), 3
    FROM farmops._pii_matches(p_text,
        '(?<![A-Za-z0-9])[A-Z]{2}[0-9]{2}(?:[A-Z0-9]{11,30}|(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,4})?)(?![A-Za-z0-9])',
        '') AS m
    CROSS JOIN LATERAL (
        SELECT array_to_string(g.parts[1:n.n], ' ') AS iban
        FROM (SELECT string_to_array(m.hit, ' ') AS parts) AS g
        CROSS JOIN LATERAL generate_series(cardinality(g.parts), greatest(cardinality(g.parts) - 2, 1), -1) AS n (n)
        WHERE farmops._iban_valid(array_to_string(g.parts[1:n.n], ''))
        ORDER BY n.n DESC
        LIMIT 1
    ) AS v
    WHERE v_digit
    UNION ALL
    -- phone (4): Nigerian mobile numbers (0 + 70x/80x/81x/90x/91x + 7 digits, or after 234 / +234),
    -- and E.164 (+country code, 8-15 digits) with spaces, dots, dashes or a parenthesised group.
    SELECT 'phone', m.start, char_length(m.hit), m.byte_start, char_length(m.hit), 4
    FROM farmops._pii_matches(p_text,
        '(?<![0-9A-Za-z+_/.-])(?:0[789][01][0-9](?:[ -]?[0-9]){7}'
        '|[+]?234[ -]?(?:[(]0[)][ -]?)?[789][01][0-9](?:[ -]?[0-9]){7}'
        '|[+](?!234)[1-9](?:[ .-]?(?:[(][0-9]{1,4}[)]|[0-9])){7,14})(?![0-9]|[-.][0-9])', '') AS m
    WHERE v_digit AND char_length(regexp_replace(m.hit, '[^0-9]', '', 'g')) BETWEEN 8 AND 15
    UNION ALL
    -- payment_card (5): 13-19 digits from an issuer range (2-6: Mastercard, Amex, Diners, JCB,
    -- Visa, Verve, Discover, UnionPay), contiguous or in the printed groupings 4-4-4-4(-3),
    -- 4-6-5 and 4-6-4, passing Luhn; a 19-digit grouping may fall back to its first 16.
    SELECT 'payment_card', m.start, char_length(v.card), m.byte_start, char_length(v.card), 5
    FROM farmops._pii_matches(p_text,
        '(?<![0-9A-Za-z])(?:[2-6][0-9]{12,18}|[2-6][0-9]{3}[ -][0-9]{4}[ -][0-9]{4}[ -][0-9]{4}(?:[ -][0-9]{3})?'
        '|[2-6][0-9]{3}[ -][0-9]{6}[ -][0-9]{4,5})(?![0-9])', '') AS m
    CROSS JOIN LATERAL (
        SELECT c.card
        FROM (VALUES (1, m.hit), (2, left(m.hit, 19))) AS c (pref, card)
        WHERE farmops._luhn_valid(regexp_replace(c.card, '[ -]', '', 'g'))
            AND (c.pref = 1 OR char_length(m.hit) = 23)
        ORDER BY c.pref
        LIMIT 1
    ) AS v
    WHERE v_digit
    UNION ALL
    -- email (6): local@domain.tld; letters with accents allowed, a dot-less host is not an address.
    SELECT 'email', m.start, char_length(m.hit), m.byte_start, octet_length(convert_to(m.hit, 'UTF8')), 6
    FROM farmops._pii_matches(p_text,
        '(?<![A-Za-z0-9._%+\u00C0-\u024F-])[A-Za-z0-9_%+\u00C0-\u024F-][A-Za-z0-9._%+\u00C0-\u024F-]{0,63}@'
        '(?:[A-Za-z0-9\u00C0-\u024F](?:[A-Za-z0-9\u00C0-\u024F-]{0,61}[A-Za-z0-9\u00C0-\u024F])?[.])+[A-Za-z]{2,24}'
        '(?![A-Za-z0-9\u00C0-\u024F-]|[.][A-Za-z0-9])', '') AS m
    WHERE strpos(p_text, '@') > 0 -- no "@", no address: skip the regex pass
    UNION ALL
    -- ip_address (7): dotted-quad IPv4 with octets 0-255 (not inside a longer dotted run such as
    -- a version "1.2.3.4.5" or "v1.2.3.4"), and IPv6 checked against the RFC 4291 grammar.
    SELECT 'ip_address', m.start, char_length(m.hit), m.byte_start, char_length(m.hit), 7
    FROM farmops._pii_matches(p_text,
        '(?<![0-9A-Za-z.:_-])(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])[.]){3}'
        '(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(?![0-9A-Za-z_]|[.][0-9])', '') AS m
    WHERE v_digit
    UNION ALL
    SELECT 'ip_address', m.start, char_length(v.ip), m.byte_start, char_length(v.ip), 7
    FROM farmops._pii_matches(p_text,
        '(?<![0-9A-Za-z:._-])(?:[0-9A-Fa-f]{0,4}:){2,8}'
        '(?:(?:[0-9]{1,3}[.]){3}[0-9]{1,3}|[0-9A-Fa-f]{1,4})?(?![0-9A-Za-z_:-])', '') AS m
    CROSS JOIN LATERAL (
        SELECT c.ip
        FROM (VALUES (1, m.hit), (2, left(m.hit, -1))) AS c (pref, ip)
        WHERE farmops._ipv6_valid(c.ip) AND (c.pref = 1 OR m.hit COLLATE "C" ~ '[^:]:$')
        ORDER BY c.pref
        LIMIT 1
    ) AS v
    WHERE v_colon;
END
$fn$;
COMMENT ON FUNCTION farmops._pii_candidates(text) IS
'Private: every validated PII candidate (kind, character and byte span, tie rank), possibly overlapping.';

-- The redaction itself, leaving the kinds in p_keep_kinds as they are (a farm's PII policy).
-- Kept kinds are dropped before overlaps are resolved, so a kept finding never shields a
-- shorter finding of a kind that is not kept.
CREATE OR REPLACE FUNCTION farmops._redact_pii(
    p_text text, p_keep_kinds text[], OUT redacted text, OUT findings jsonb
)
LANGUAGE plpgsql
IMMUTABLE
STRICT
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_bytes bytea := convert_to(p_text, 'UTF8');
    c record;
    v_cur record;
    v_have boolean := false;
    v_kinds text[] := '{}';
    v_starts integer[] := '{}';
    v_lengths integer[] := '{}';
    v_parts text[] := '{}';
    v_byte_end integer := 0;
BEGIN
    -- Sweep by start: an overlapping candidate replaces the current one only when it is longer
    -- (or as long and of a more specific kind), so findings come out sorted and disjoint.
    FOR c IN
        SELECT x.kind, x.start, x.length, x.byte_start, x.byte_length, x.rank
        FROM farmops._pii_candidates(p_text) AS x
        WHERE NOT x.kind = ANY (p_keep_kinds)
        ORDER BY x.start, x.length DESC, x.rank
    LOOP
        IF NOT v_have THEN
            v_cur := c;
            v_have := true;
        ELSIF c.start >= v_cur.start + v_cur.length THEN
            v_kinds := v_kinds || v_cur.kind;
            v_starts := v_starts || v_cur.start;
            v_lengths := v_lengths || v_cur.length;
            v_parts := v_parts || convert_from(substring(v_bytes FROM v_byte_end + 1
                FOR v_cur.byte_start - v_byte_end), 'UTF8') || ('[' || upper(v_cur.kind) || ']');
            v_byte_end := v_cur.byte_start + v_cur.byte_length;
            v_cur := c;
        ELSIF c.length > v_cur.length OR (c.length = v_cur.length AND c.rank < v_cur.rank) THEN
            v_cur := c;
        END IF;
    END LOOP;
    IF v_have THEN
        v_kinds := v_kinds || v_cur.kind;
        v_starts := v_starts || v_cur.start;
        v_lengths := v_lengths || v_cur.length;
        v_parts := v_parts || convert_from(substring(v_bytes FROM v_byte_end + 1
            FOR v_cur.byte_start - v_byte_end), 'UTF8') || ('[' || upper(v_cur.kind) || ']');
        v_byte_end := v_cur.byte_start + v_cur.byte_length;
    END IF;
    IF NOT v_have THEN
        redacted := p_text;
    ELSE
        redacted := array_to_string(v_parts, '') || convert_from(substring(v_bytes FROM v_byte_end + 1), 'UTF8');
    END IF;
    SELECT coalesce(jsonb_agg(jsonb_build_object('kind', f.kind, 'start', f.start, 'length', f.length)
        ORDER BY f.start), '[]'::jsonb)
    INTO findings
    FROM unnest(v_kinds, v_starts, v_lengths) AS f (kind, start, length);
END
$fn$;
COMMENT ON FUNCTION farmops._redact_pii(text, text[]) IS
'Private: farmops.redact_pii leaving the kinds of p_keep_kinds in place (not redacted, not in findings).';

-- SECURITY DEFINER only to lend EXECUTE on the private helpers above (the application role
-- cannot call them directly); nothing here reads or writes a table.
CREATE OR REPLACE FUNCTION farmops.redact_pii(p_text text, OUT redacted text, OUT findings jsonb)
LANGUAGE sql
IMMUTABLE
STRICT
PARALLEL SAFE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT r.redacted, r.findings FROM farmops._redact_pii(p_text, '{}') AS r
$fn$;
COMMENT ON FUNCTION farmops.redact_pii(text) IS
'Finds personal data and secrets in p_text: redacted = the text with each finding replaced by [KIND]; '
'findings = jsonb array of {"kind","start","length"} (0-based character offsets into p_text, sorted, '
'disjoint; the longest overlapping candidate wins). Kinds: email, phone (Nigerian mobile, E.164), '
'payment_card (issuer range + Luhn), iban (mod-97), ip_address (v4, v6), national_id (NIN/BVN after a '
'context word, US SSN), secret (AWS key ids, PEM private keys, JWTs, bearer tokens, vendor tokens, '
'api_key=/password= values). Pure: no tenant needed; NULL in gives NULL out.';
