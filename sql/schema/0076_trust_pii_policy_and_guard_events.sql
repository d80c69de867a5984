-- Trust, part 2: what a farm keeps of personal data, how much was redacted (counts,
-- never values), what the guards stopped, and which retrieved chunks were withheld.
-- The functions that write these rows live in sql/functions/50_trust/.

-- A farm's PII policy: the kinds it keeps (not redacted) in its stored text. No row =
-- keep nothing (every kind is redacted), which is the default of every farm.
CREATE TABLE farmops.farm_pii_policies (
    farm_id uuid NOT NULL REFERENCES farmops.farms (id),
    keep_kinds text[] NOT NULL,
    updated_by text NOT NULL CHECK (char_length(updated_by) BETWEEN 1 AND 256),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (farm_id),
    CONSTRAINT pii_keep_kinds_are_known_kinds CHECK (
        keep_kinds <@ ARRAY['email', 'phone', 'payment_card', 'iban', 'ip_address', 'national_id', 'secret']
        AND array_position(keep_kinds, NULL) IS NULL
    )
);
COMMENT ON TABLE farmops.farm_pii_policies IS
'Per farm: the PII kinds it keeps in stored text (set by farmops.set_pii_policy); no row = redact every kind.';

-- How many findings of each kind the database redacted, per stored text (source) and
-- run, for metrics. Append-only, one row per (write, kind): no counter row that every
-- writer of a farm would have to lock. Never the values, never their offsets.
CREATE TABLE farmops.pii_findings (
    farm_id uuid NOT NULL REFERENCES farmops.farms (id),
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    ai_run_id uuid,
    source text NOT NULL CHECK (source ~ '^[a-z][a-z0-9_.]{0,62}$'),
    kind text NOT NULL CHECK (
        kind IN ('email', 'phone', 'payment_card', 'iban', 'ip_address', 'national_id', 'secret')
    ),
    findings bigint NOT NULL CHECK (findings > 0),
    day date NOT NULL DEFAULT current_date,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (farm_id, id),
    FOREIGN KEY (farm_id, ai_run_id) REFERENCES farmops.ai_runs (farm_id, id)
);
CREATE INDEX pii_findings_run_idx ON farmops.pii_findings (farm_id, ai_run_id) WHERE ai_run_id IS NOT NULL;
CREATE INDEX pii_findings_day_idx ON farmops.pii_findings (farm_id, day);
COMMENT ON TABLE farmops.pii_findings IS
'Counts of PII findings the database redacted, per source (table.column or the run''s output) and kind; '
'no values. Read per run (farmops.run_pii_findings) or per day (farmops.pii_finding_counts).';

-- What the guards did: a blocked or flagged input (no run yet; a blocked one never reaches the model),
-- a blocked or flagged output (replaced by a refusal when blocked), and Bedrock
-- Guardrail interventions. Withheld retrieved chunks are in ai_run_retrievals (lineage).
-- Categories and rule names only, never the text.
CREATE TABLE farmops.guard_events (
    farm_id uuid NOT NULL REFERENCES farmops.farms (id),
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    ai_run_id uuid,
    user_id text NOT NULL CHECK (char_length(user_id) BETWEEN 1 AND 256),
    stage text NOT NULL CHECK (stage IN ('input', 'retrieved', 'output')),
    source text NOT NULL CHECK (source IN ('farmops', 'bedrock_guardrail')),
    verdict text NOT NULL CHECK (verdict IN ('flag', 'block')),
    outcome text NOT NULL CHECK (outcome IN ('refused_input', 'replaced_output', 'flagged', 'intervened')),
    categories text[] NOT NULL,
    rule_names text[] NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (farm_id, id),
    FOREIGN KEY (farm_id, ai_run_id) REFERENCES farmops.ai_runs (farm_id, id),
    -- Inputs are screened before the run exists; outputs and interventions belong to a run.
    CONSTRAINT an_input_has_no_run_and_an_output_has_one CHECK (
        (stage = 'input' AND source = 'farmops') = (ai_run_id IS NULL)
    )
);
CREATE INDEX guard_events_run_idx ON farmops.guard_events (farm_id, ai_run_id) WHERE ai_run_id IS NOT NULL;
CREATE INDEX guard_events_time_idx ON farmops.guard_events (farm_id, created_at);
COMMENT ON TABLE farmops.guard_events IS
'What the injection/output guards and Bedrock Guardrails did: refused inputs (no run, nothing charged), '
'replaced or flagged outputs, guardrail interventions; categories and rule names, never the text.';

-- Lineage records what the guards withheld from the model.
ALTER TABLE farmops.ai_run_retrievals
ADD COLUMN withheld boolean NOT NULL DEFAULT false,
ADD COLUMN guard_verdict text CHECK (guard_verdict IN ('allow', 'flag', 'block')),
ADD COLUMN guard_categories text[];
COMMENT ON COLUMN farmops.ai_run_retrievals.withheld IS
'True when check_text(chunk, ''retrieved'') flagged or blocked the chunk: recorded here, never given to the model.';
COMMENT ON COLUMN farmops.ai_run_retrievals.guard_verdict IS
'check_text''s verdict on the chunk at retrieval time (NULL for rows recorded before the guards).';
COMMENT ON COLUMN farmops.ai_run_retrievals.guard_categories IS
'The guard categories that matched the chunk (empty when allowed).';

-- Owners manage the farm's trust settings: PII policy, guard rules, allow rules.
INSERT INTO farmops.role_capabilities (role, capability) VALUES ('owner', 'manage_trust');
