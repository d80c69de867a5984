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
    -- Measured with bench/bench_search.py: below this an exact scan of the farm is
    -- about as fast as the HNSW path and has recall 1.0. A DBA may tune it with
    -- ALTER DATABASE ... SET farmops.exact_search_max_rows = N.
    SELECT greatest(coalesce(nullif(current_setting('farmops.exact_search_max_rows', true), '')::integer, 10000), 0)
$fn$;
COMMENT ON FUNCTION farmops.exact_search_max_rows() IS
'Farms (and the global knowledge base) with at most this many candidate rows are searched exactly; '
'default 10000, override with the setting farmops.exact_search_max_rows.';

CREATE OR REPLACE FUNCTION farmops.max_search_k()
RETURNS integer
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$ SELECT 1000 $fn$;
COMMENT ON FUNCTION farmops.max_search_k() IS 'The largest k farmops.search() accepts (OF006 above it).';
