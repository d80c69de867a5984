-- Knowledge settings: the embedding dimension and the search strategy's bounds.

CREATE OR REPLACE FUNCTION farmops.embedding_dimension()
RETURNS integer
LANGUAGE sql
STABLE
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
    -- The typmod of the column IS the setting (chosen at install time, see
    -- sql/schema/0020_documents_and_embeddings.sql), so the two cannot disagree.
    SELECT a.atttypmod
    FROM pg_catalog.pg_attribute AS a
    WHERE a.attrelid = 'farmops.embeddings'::regclass AND a.attname = 'embedding'
$fn$;
COMMENT ON FUNCTION farmops.embedding_dimension() IS
'THE embedding dimension (1024 = Titan Text Embeddings V2 by default): the typmod of embeddings.embedding, '
'chosen at install time with the setting farmops.embedding_dimension.';

CREATE OR REPLACE FUNCTION farmops.exact_search_max_rows()
RETURNS integer
LANGUAGE sql
STABLE
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
    -- Measured with bench/bench_search.py: below this an exact scan of the global
    -- knowledge base is about as fast as its HNSW index and has recall 1.0. A DBA
    -- may tune it with ALTER DATABASE ... SET farmops.exact_search_max_rows = N
    -- (0 to 1000000). Any session may SET it too, so a value that is not such an
    -- integer ('abc', '-1', '1e9') means the default: a setting must never make
    -- search unusable.
    SELECT CASE
        WHEN s.v ~ '^[[:space:]]*[0-9]{1,7}[[:space:]]*$' AND s.v::integer <= 1000000 THEN s.v::integer
        ELSE 10000
    END
    FROM (SELECT current_setting('farmops.exact_search_max_rows', true) AS v) AS s
$fn$;
COMMENT ON FUNCTION farmops.exact_search_max_rows() IS
'The global knowledge base is searched exactly up to this many rows (estimated), with its HNSW index above '
'(farms are always searched exactly); default 10000, override with the setting farmops.exact_search_max_rows '
'(an integer 0..1000000; any other value, or none, means the default).';

CREATE OR REPLACE FUNCTION farmops.max_search_k()
RETURNS integer
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$ SELECT 1000 $fn$;
COMMENT ON FUNCTION farmops.max_search_k() IS 'The largest k farmops.search() accepts (OF006 above it).';
