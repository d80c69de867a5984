-- Non-mutating AI suggestions a human approves or rejects. Approving is on the
-- financial floor: only human members decide (enforced in the functions).

CREATE TABLE farmops.ai_recommendations (
    farm_id uuid NOT NULL REFERENCES farmops.farms (id),
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    ai_run_id uuid NOT NULL,
    title text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
    body text NOT NULL CHECK (char_length(body) BETWEEN 1 AND 8000),
    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'rejected')),
    created_by text NOT NULL CHECK (char_length(created_by) BETWEEN 1 AND 256),
    created_at timestamptz NOT NULL DEFAULT now(),
    decided_by text CHECK (char_length(decided_by) BETWEEN 1 AND 256),
    decided_at timestamptz,
    decision_reason text CHECK (char_length(decision_reason) <= 1000),
    PRIMARY KEY (farm_id, id),
    FOREIGN KEY (farm_id, ai_run_id) REFERENCES farmops.ai_runs (farm_id, id),
    CHECK ((status = 'pending') = (decided_at IS NULL)),
    CHECK ((status = 'pending') = (decided_by IS NULL))
);
CREATE INDEX ai_recommendations_run_idx ON farmops.ai_recommendations (farm_id, ai_run_id);
COMMENT ON TABLE farmops.ai_recommendations IS
'Non-mutating AI suggestions: pending -> approved | rejected by a human member; terminal states are final.';
