-- Lineage: which rows an AI run retrieved, in which order and with what score.
-- Written only by farmops.search_for_run(). Rows outlive the chunks they name:
-- deleting a document nulls the reference but keeps rank, score and source.

CREATE TABLE farmops.ai_run_retrievals (
    farm_id uuid NOT NULL REFERENCES farmops.farms (id),
    id bigint GENERATED ALWAYS AS IDENTITY,
    ai_run_id uuid NOT NULL,
    -- One id per search_for_run() call: a run may search several times.
    search_id uuid NOT NULL,
    rank integer NOT NULL CHECK (rank >= 1),
    score double precision NOT NULL,
    is_global boolean NOT NULL,
    embedding_id uuid,
    global_embedding_id uuid REFERENCES farmops.global_embeddings (id) ON DELETE SET NULL,
    source_type text NOT NULL CHECK (source_type IN ('document', 'memory', 'convo_summary')),
    source_id uuid NOT NULL,
    chunk_index integer NOT NULL CHECK (chunk_index >= 0),
    retrieved_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (farm_id, id),
    UNIQUE (farm_id, ai_run_id, search_id, rank),
    FOREIGN KEY (farm_id, ai_run_id) REFERENCES farmops.ai_runs (farm_id, id),
    FOREIGN KEY (farm_id, embedding_id) REFERENCES farmops.embeddings (farm_id, id) ON DELETE SET NULL (embedding_id),
    CHECK (NOT (is_global AND embedding_id IS NOT NULL)),
    CHECK (is_global OR global_embedding_id IS NULL)
);
CREATE INDEX ai_run_retrievals_embedding_idx ON farmops.ai_run_retrievals (farm_id, embedding_id)
WHERE embedding_id IS NOT NULL;
CREATE INDEX ai_run_retrievals_global_embedding_idx ON farmops.ai_run_retrievals (global_embedding_id)
WHERE global_embedding_id IS NOT NULL;

COMMENT ON TABLE farmops.ai_run_retrievals IS
'Lineage: the rows each AI run retrieved (rank, score, source), written by farmops.search_for_run().';
COMMENT ON COLUMN farmops.ai_run_retrievals.search_id IS 'Groups the rows of one search_for_run() call.';
COMMENT ON COLUMN farmops.ai_run_retrievals.embedding_id IS
'The farm chunk retrieved; NULL for global rows or after the chunk''s source was deleted.';
COMMENT ON COLUMN farmops.ai_run_retrievals.global_embedding_id IS
'The global knowledge chunk retrieved; NULL for farm rows or after it was deleted.';
