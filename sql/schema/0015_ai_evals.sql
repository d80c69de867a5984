-- Rule-based evaluation of assistant outputs. Rules are data (global, added by
-- the package owner with farmops.register_eval_rule); results are per run.

CREATE TABLE farmops.ai_eval_rules (
    name text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_]{0,62}$'),
    -- payload_schema: the run's drafts still match their record types;
    -- regex_absent: fails when the output matches pattern; regex_present: fails unless it matches.
    kind text NOT NULL CHECK (kind IN ('payload_schema', 'regex_absent', 'regex_present')),
    description text NOT NULL CHECK (char_length(description) BETWEEN 1 AND 1000),
    pattern text CHECK (char_length(pattern) BETWEEN 1 AND 4000),
    severity text NOT NULL DEFAULT 'warn' CHECK (severity IN ('info', 'warn', 'block')),
    enabled boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'payload_schema') = (pattern IS NULL))
);
COMMENT ON TABLE farmops.ai_eval_rules IS
'Eval rules as data: payload_schema (drafts conform to their record type) or a case-insensitive regex on the output.';
COMMENT ON COLUMN farmops.ai_eval_rules.pattern IS
'PostgreSQL ARE, matched case-insensitively (~*) against the output.';

CREATE TABLE farmops.ai_evals (
    farm_id uuid NOT NULL REFERENCES farmops.farms (id),
    id bigint GENERATED ALWAYS AS IDENTITY,
    ai_run_id uuid NOT NULL,
    rule_name text NOT NULL REFERENCES farmops.ai_eval_rules (name),
    passed boolean NOT NULL,
    severity text NOT NULL CHECK (severity IN ('info', 'warn', 'block')),
    details jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(details) = 'object'),
    evaluated_by text NOT NULL CHECK (char_length(evaluated_by) BETWEEN 1 AND 256),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (farm_id, id),
    FOREIGN KEY (farm_id, ai_run_id) REFERENCES farmops.ai_runs (farm_id, id)
);
CREATE INDEX ai_evals_run_idx ON farmops.ai_evals (farm_id, ai_run_id);
COMMENT ON TABLE farmops.ai_evals IS 'One row per (evaluation, rule): did the run''s output pass, and why not.';

INSERT INTO farmops.ai_eval_rules (name, kind, description, pattern, severity) VALUES
(
    'schema_conformance', 'payload_schema',
    'Every payload the run proposed (its drafts) still validates against its record type.', NULL, 'block'
),
(
    'clinical_safety', 'regex_absent',
    'Flags livestock-medicine dosing or withdrawal-period advice: it must come from a veterinarian, not the AI.',
    '(withdrawal|withholding)[[:space:]-]+(period|time|interval)'
    || '|[[:<:]](dose|dosage|dosing|overdose)[[:>:]]'
    || '|[0-9]+([.,][0-9]+)?[[:space:]]*(mg|mcg|µg|ml|cc|iu|g)[[:space:]]*(/|per)[[:space:]]*'
    || '(kg|l|litre|liter|bird|animal|head|gallon)[[:>:]]',
    'warn'
);
