-- Retrieval settings and the one vector validator every retrieval function uses.

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

CREATE OR REPLACE FUNCTION farmops.assert_valid_vector(p_vector vector, p_what text)
RETURNS void
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_dim integer := farmops.embedding_dimension();
BEGIN
    IF p_vector IS NULL THEN
        RAISE EXCEPTION '% is NULL', p_what USING ERRCODE = 'OF006';
    END IF;
    IF vector_dims(p_vector) <> v_dim THEN
        RAISE EXCEPTION '% has % dimensions; this installation uses %', p_what, vector_dims(p_vector), v_dim
            USING ERRCODE = 'OF301';
    END IF;
    -- Cosine distance to a zero vector is NaN, which would sort unpredictably.
    IF vector_norm(p_vector) = 0 THEN
        RAISE EXCEPTION '% is the zero vector, which has no direction', p_what USING ERRCODE = 'OF006';
    END IF;
END
$fn$;
COMMENT ON FUNCTION farmops.assert_valid_vector(vector, text) IS
'Raises OF006 for a NULL or zero vector and OF301 if its dimension is not farmops.embedding_dimension().';
-- Its body uses pgvector's names: keep the install's search_path (pg_catalog,
-- pgvector's schema, pg_temp: see bootstrap.sql), wherever pgvector lives.
ALTER FUNCTION farmops.assert_valid_vector(vector, text) SET search_path FROM CURRENT;

CREATE OR REPLACE FUNCTION farmops.assert_valid_chunks(p_chunks text[], p_embeddings vector[])
RETURNS void
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_n integer := cardinality(p_chunks);
    v_i integer;
BEGIN
    IF p_chunks IS NULL OR p_embeddings IS NULL THEN
        RAISE EXCEPTION 'chunks and embeddings are required' USING ERRCODE = 'OF006';
    END IF;
    IF v_n NOT BETWEEN 1 AND 10000 OR array_ndims(p_chunks) <> 1 OR array_ndims(p_embeddings) <> 1 THEN
        RAISE EXCEPTION 'chunks must be a one-dimensional array of 1 to 10000 elements' USING ERRCODE = 'OF006';
    END IF;
    IF cardinality(p_embeddings) <> v_n THEN
        RAISE EXCEPTION '% chunks but % embeddings', v_n, cardinality(p_embeddings) USING ERRCODE = 'OF006';
    END IF;
    FOR v_i IN 1 .. v_n LOOP
        IF p_chunks[array_lower(p_chunks, 1) + v_i - 1] IS NULL
            OR char_length(btrim(p_chunks[array_lower(p_chunks, 1) + v_i - 1])) = 0 THEN
            RAISE EXCEPTION 'chunk % is NULL or blank', v_i USING ERRCODE = 'OF006';
        END IF;
        PERFORM farmops.assert_valid_vector(
            p_embeddings[array_lower(p_embeddings, 1) + v_i - 1], format('embedding %s', v_i)
        );
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION farmops.assert_valid_chunks(text[], vector[]) IS
'Raises OF006 unless chunks and embeddings are equally long (1..10000), without NULL or blank elements, '
'and OF301 if an embedding has the wrong dimension.';
