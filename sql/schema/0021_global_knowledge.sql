-- The global knowledge base (vaccination schedules, animal biology): readable by
-- every farm, written only by the package owner. Separate tables rather than a
-- reserved tenant: tenant tables keep "farm_id is a real farm" as an invariant,
-- the farm HNSW index is not polluted by rows every query must filter out, and on
-- Citus these become reference tables. Same dimension as farmops.embeddings.

CREATE TABLE farmops.global_documents (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    title text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 500),
    content text NOT NULL CHECK (char_length(content) >= 1),
    content_hash text NOT NULL UNIQUE CHECK (content_hash ~ '^[0-9a-f]{64}$'),
    model text NOT NULL CHECK (char_length(model) BETWEEN 1 AND 200),
    created_by text NOT NULL DEFAULT current_user,
    created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE farmops.global_documents IS
'The global knowledge base''s documents: readable by every farm, written only by farmops_owner.';
COMMENT ON COLUMN farmops.global_documents.content_hash IS
'sha256 (hex) of content as UTF-8: identical content is stored once.';

DO $create_global_embeddings$
DECLARE
    v_dim integer;
BEGIN
    SELECT a.atttypmod INTO STRICT v_dim
    FROM pg_catalog.pg_attribute AS a
    WHERE a.attrelid = 'farmops.embeddings'::regclass AND a.attname = 'embedding';
    EXECUTE format(
        $ddl$
        CREATE TABLE farmops.global_embeddings (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            document_id uuid NOT NULL REFERENCES farmops.global_documents (id) ON DELETE CASCADE,
            chunk_index integer NOT NULL CHECK (chunk_index >= 0),
            content text NOT NULL CHECK (char_length(content) >= 1),
            embedding vector(%s) NOT NULL,
            model text NOT NULL CHECK (char_length(model) BETWEEN 1 AND 200),
            created_at timestamptz NOT NULL DEFAULT now(),
            UNIQUE (document_id, chunk_index)
        )
        $ddl$,
        v_dim
    );
END
$create_global_embeddings$;

CREATE INDEX global_embeddings_embedding_hnsw_idx ON farmops.global_embeddings
USING hnsw (embedding vector_cosine_ops);

COMMENT ON TABLE farmops.global_embeddings IS
'Embedded chunks of the global knowledge base, merged into every farm''s farmops.search() by score.';
COMMENT ON COLUMN farmops.global_embeddings.embedding IS
'Same typmod (dimension) as farmops.embeddings.embedding.';
