-- Per-farm retrieval storage: source documents and the embedded chunks that
-- farmops.search() ranks. Chunking and embedding happen in the client (it calls
-- Bedrock Titan Text Embeddings V2 and passes chunks with their vectors), so
-- the database never needs model access and one ingest is one transaction.
--
-- THE embedding dimension is the typmod of embeddings.embedding, fixed here at
-- install time: 1024 (Titan Text Embeddings V2) unless the installing session
-- sets `farmops.embedding_dimension` first, e.g.
--     PGOPTIONS='-c farmops.embedding_dimension=1536' psql -f sql/install.sql
-- Every check reads it back through farmops.embedding_dimension(); changing it
-- later means a new migration that re-embeds (vectors of another model are not
-- comparable anyway).

CREATE TABLE farmops.documents (
    farm_id uuid NOT NULL REFERENCES farmops.farms (id),
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    title text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 500),
    content text NOT NULL CHECK (char_length(content) >= 1),
    content_hash text NOT NULL CHECK (content_hash ~ '^[0-9a-f]{64}$'),
    model text NOT NULL CHECK (char_length(model) BETWEEN 1 AND 200),
    created_by text NOT NULL CHECK (char_length(created_by) BETWEEN 1 AND 256),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (farm_id, id),
    -- Re-ingesting identical content is a no-op that returns the existing id.
    UNIQUE (farm_id, content_hash)
);
COMMENT ON TABLE farmops.documents IS
'Per-farm source documents for retrieval; their chunks live in farmops.embeddings and go with them.';
COMMENT ON COLUMN farmops.documents.content_hash IS
'sha256 (hex) of content as UTF-8: identical content is stored once per farm.';
COMMENT ON COLUMN farmops.documents.model IS 'The embedding model that produced the chunks'' vectors.';

DO $create_embeddings$
DECLARE
    v_dim integer := coalesce(nullif(current_setting('farmops.embedding_dimension', true), ''), '1024')::integer;
BEGIN
    -- pgvector's HNSW index supports up to 2000 dimensions for the vector type.
    IF v_dim NOT BETWEEN 1 AND 2000 THEN
        RAISE EXCEPTION 'farmops.embedding_dimension must be between 1 and 2000, not %', v_dim
            USING ERRCODE = 'OF006';
    END IF;
    EXECUTE format(
        $ddl$
        CREATE TABLE farmops.embeddings (
            farm_id uuid NOT NULL REFERENCES farmops.farms (id),
            id uuid NOT NULL DEFAULT gen_random_uuid(),
            source_type text NOT NULL CHECK (source_type IN ('document', 'memory', 'convo_summary')),
            source_id uuid NOT NULL,
            -- Set for source_type = 'document' only, so deleting the document deletes its chunks.
            document_id uuid,
            chunk_index integer NOT NULL CHECK (chunk_index >= 0),
            content text NOT NULL CHECK (char_length(content) >= 1),
            embedding vector(%s) NOT NULL,
            model text NOT NULL CHECK (char_length(model) BETWEEN 1 AND 200),
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (farm_id, id),
            UNIQUE (farm_id, source_type, source_id, chunk_index),
            FOREIGN KEY (farm_id, document_id) REFERENCES farmops.documents (farm_id, id) ON DELETE CASCADE,
            CHECK ((source_type = 'document') = (document_id IS NOT NULL)),
            CHECK (document_id IS NULL OR document_id = source_id)
        )
        $ddl$,
        v_dim
    );
END
$create_embeddings$;

-- Exact scans of one farm (and the bounded row count that picks the strategy) go through this btree.
CREATE INDEX embeddings_farm_source_type_idx ON farmops.embeddings (farm_id, source_type);
CREATE INDEX embeddings_farm_document_idx ON farmops.embeddings (farm_id, document_id)
WHERE document_id IS NOT NULL;
-- One HNSW graph over all farms, used (with iterative scans) for farms too big to scan exactly.
CREATE INDEX embeddings_embedding_hnsw_idx ON farmops.embeddings
USING hnsw (embedding vector_cosine_ops);

COMMENT ON TABLE farmops.embeddings IS
'Embedded chunks of a farm''s documents, memories and conversation summaries; what farmops.search() ranks.';
COMMENT ON COLUMN farmops.embeddings.source_type IS 'document | memory | convo_summary.';
COMMENT ON COLUMN farmops.embeddings.source_id IS
'The id of the source row (documents.id for documents); with chunk_index it names the chunk.';
COMMENT ON COLUMN farmops.embeddings.document_id IS
'documents.id when source_type = document: ON DELETE CASCADE removes the chunks in the same transaction.';
COMMENT ON COLUMN farmops.embeddings.content IS
'The chunk text returned to the model (PII-redacted before storage once redaction lands).';
COMMENT ON COLUMN farmops.embeddings.embedding IS
'Unit-norm-or-not, non-zero vector; its typmod is THE configured dimension (farmops.embedding_dimension()).';
