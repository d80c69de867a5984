-- Durable per-farm facts ("vaccinates on Mondays"), deduplicated per farm on
-- normalized text (lower case, collapsed white space) through its sha256.

CREATE TABLE farmops.memories (
    farm_id uuid NOT NULL REFERENCES farmops.farms (id),
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    content text NOT NULL CHECK (char_length(content) BETWEEN 1 AND 2000),
    -- hex sha256 of the normalized content, set by farmops.remember(); the dedup key.
    content_key text NOT NULL CHECK (content_key ~ '^[0-9a-f]{64}$'),
    source_run_id uuid,
    created_by text NOT NULL CHECK (char_length(created_by) BETWEEN 1 AND 256),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (farm_id, id),
    UNIQUE (farm_id, content_key),
    FOREIGN KEY (farm_id, source_run_id) REFERENCES farmops.ai_runs (farm_id, id)
);
COMMENT ON TABLE farmops.memories IS
'Durable per-farm facts distilled from chat; unique per farm on normalized text; deletable by owner/manager.';
COMMENT ON COLUMN farmops.memories.content_key IS 'sha256 (hex) of lower-cased, white-space-collapsed content.';
