-- Injection and output guards as data: regex rules that farmops.check_text()
-- matches against normalised untrusted text (user input, retrieved chunks, model
-- output), plus per-farm allow patterns for false positives.
--
-- Two rule tables, not one table with a nullable farm_id: global rules are a
-- reference table like global_documents (no farm_id, shipped and maintained by
-- the package owner, on Citus replicated to every node), per-farm rules are a
-- tenant table like every other (farm_id NOT NULL, keys lead with farm_id, the
-- one standard RLS policy). A NULL farm_id would need a second policy shape
-- ("farm_id IS NULL OR ..."), NULLS NOT DISTINCT keys and a table that can be
-- neither distributed nor replicated; a sentinel farm would break "farm_id is a
-- real farm". check_text() reads both with one UNION ALL.

-- Validates a pattern by compiling it as one branch of an alternation (check_text
-- tries a category's rules as one regex first): embedded options such as (?i) and
-- back references, which would change meaning or fail there, are refused. Used by
-- CHECK constraints so that no stored rule can make check_text() raise; the
-- management functions check first and raise OF006, these are the backstop.
CREATE FUNCTION farmops._is_valid_regex(p_pattern text)
RETURNS boolean
LANGUAGE plpgsql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF p_pattern ~ '\\[1-9]' OR p_pattern ~ '^(\*\*\*|\(\?)' THEN
        RETURN false;
    END IF;
    PERFORM '' ~ ('(' || p_pattern || ')|x');
    RETURN true;
EXCEPTION WHEN invalid_regular_expression THEN
    RETURN false;
END
$fn$;
COMMENT ON FUNCTION farmops._is_valid_regex(text) IS
'Private: true when the text compiles as one branch of a PostgreSQL ARE alternation '
'(no back references, no embedded options).';

CREATE TABLE farmops.guard_rules (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name text NOT NULL,
    category text NOT NULL,
    stages text[] NOT NULL,
    pattern text NOT NULL,
    action text NOT NULL,
    enabled boolean NOT NULL DEFAULT true,
    -- 'shipped' rules are (re)written by the seed on every migrate; others are the operator's.
    created_by text NOT NULL DEFAULT current_user,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT guard_rule_names_are_unique UNIQUE (name),
    CONSTRAINT guard_rule_name_is_a_short_identifier CHECK (name ~ '^[a-z][a-z0-9_]{0,62}$'),
    CONSTRAINT guard_rule_category_is_a_short_identifier CHECK (category ~ '^[a-z][a-z0-9_]{0,62}$'),
    CONSTRAINT guard_rule_stages_are_input_retrieved_or_output CHECK (
        cardinality(stages) >= 1 AND stages <@ ARRAY['input', 'retrieved', 'output']
    ),
    CONSTRAINT guard_rule_pattern_is_a_valid_regex CHECK (
        char_length(pattern) BETWEEN 1 AND 4000 AND farmops._is_valid_regex(pattern)
    ),
    CONSTRAINT guard_rule_action_is_block_or_flag CHECK (action IN ('block', 'flag'))
);
COMMENT ON TABLE farmops.guard_rules IS
'Global injection/output guard rules (every farm, and callers without a tenant): regex over normalised text.';
COMMENT ON COLUMN farmops.guard_rules.pattern IS
'PostgreSQL ARE matched newline-sensitively against farmops.normalize_untrusted_text() output (lower case).';
COMMENT ON COLUMN farmops.guard_rules.stages IS
'Where the rule applies: input (the user''s message), retrieved (document chunks), output (the model''s answer).';
COMMENT ON COLUMN farmops.guard_rules.created_by IS
'''shipped'' for the rules farmops ships (re-seeded on every migrate); otherwise who added the rule.';

CREATE TABLE farmops.farm_guard_rules (
    farm_id uuid NOT NULL REFERENCES farmops.farms (id),
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    name text NOT NULL,
    category text NOT NULL,
    stages text[] NOT NULL,
    pattern text NOT NULL,
    action text NOT NULL,
    enabled boolean NOT NULL DEFAULT true,
    created_by text NOT NULL CHECK (char_length(created_by) BETWEEN 1 AND 256),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (farm_id, id),
    CONSTRAINT farm_guard_rule_names_are_unique_per_farm UNIQUE (farm_id, name),
    CONSTRAINT farm_guard_rule_name_is_a_short_identifier CHECK (name ~ '^[a-z][a-z0-9_]{0,62}$'),
    CONSTRAINT farm_guard_rule_category_is_a_short_identifier CHECK (category ~ '^[a-z][a-z0-9_]{0,62}$'),
    CONSTRAINT farm_guard_rule_stages_are_input_retrieved_or_output CHECK (
        cardinality(stages) >= 1 AND stages <@ ARRAY['input', 'retrieved', 'output']
    ),
    CONSTRAINT farm_guard_rule_pattern_is_a_valid_regex CHECK (
        char_length(pattern) BETWEEN 1 AND 4000 AND farmops._is_valid_regex(pattern)
    ),
    CONSTRAINT farm_guard_rule_action_is_block_or_flag CHECK (action IN ('block', 'flag'))
);
COMMENT ON TABLE farmops.farm_guard_rules IS
'A farm''s own guard rules, applied with the global ones when check_text() runs in that farm''s context.';

-- An allow rule names what it relaxes (a category, or a rule by name: global or
-- the farm's own, so no foreign key) and a pattern; check_text() blanks the
-- pattern's matches out of the text before that category's or rule's patterns
-- run. Blanking, not skipping: an allowed phrase does not shield an attack
-- elsewhere in the same text.
CREATE TABLE farmops.guard_allow_rules (
    farm_id uuid NOT NULL REFERENCES farmops.farms (id),
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    category text,
    rule_name text,
    pattern text NOT NULL,
    reason text NOT NULL,
    enabled boolean NOT NULL DEFAULT true,
    created_by text NOT NULL CHECK (char_length(created_by) BETWEEN 1 AND 256),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (farm_id, id),
    CONSTRAINT guard_allow_rule_names_a_category_or_a_rule CHECK ((category IS NULL) <> (rule_name IS NULL)),
    CONSTRAINT guard_allow_rule_pattern_is_a_valid_regex CHECK (
        char_length(pattern) BETWEEN 1 AND 4000 AND farmops._is_valid_regex(pattern)
    ),
    CONSTRAINT guard_allow_rule_has_a_reason CHECK (char_length(reason) BETWEEN 1 AND 1000)
);
COMMENT ON TABLE farmops.guard_allow_rules IS
'Per-farm allow patterns for guard false positives, scoped to one category or one rule name.';
COMMENT ON COLUMN farmops.guard_allow_rules.pattern IS
'PostgreSQL ARE over the normalised text; its matches are removed before the scoped rules run.';

-- The global tables readable without a tenant (model_rates, guard_rules) now share one
-- policy name, applied by sql/policies/010_row_level_security.sql.
DROP POLICY IF EXISTS "every application session reads the model rates" ON farmops.model_rates;
