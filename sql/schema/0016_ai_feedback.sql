-- Thumbs up/down and free text on a run: one row per member per run (updatable).

CREATE TABLE farmops.ai_feedback (
    farm_id uuid NOT NULL REFERENCES farmops.farms (id),
    ai_run_id uuid NOT NULL,
    user_id text NOT NULL CHECK (char_length(user_id) BETWEEN 1 AND 256),
    thumbs_up boolean NOT NULL,
    comment text CHECK (char_length(comment) <= 4000),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (farm_id, ai_run_id, user_id),
    FOREIGN KEY (farm_id, ai_run_id) REFERENCES farmops.ai_runs (farm_id, id)
);
COMMENT ON TABLE farmops.ai_feedback IS 'Members'' thumbs up/down and comment per AI run, one per member per run.';
