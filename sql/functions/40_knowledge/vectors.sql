-- The vector checks every knowledge function shares: dimension and direction,
-- chunk arrays, and the embedding-model rule (vectors of two models are not
-- comparable, so a farm's index and the global base hold one model's vectors).

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
-- Its body names pgvector's operators unqualified: keep the install's search_path (pgvector's schema).
ALTER FUNCTION farmops.assert_valid_vector(vector, text) SET search_path FROM CURRENT;

CREATE OR REPLACE FUNCTION farmops._assert_valid_chunks(p_chunks text[], p_embeddings vector[])
RETURNS void
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_n integer := cardinality(p_chunks);
    v_i integer;
BEGIN
    PERFORM farmops._assert_given(p_chunks, 'chunks');
    PERFORM farmops._assert_given(p_embeddings, 'embeddings');
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
COMMENT ON FUNCTION farmops._assert_valid_chunks(text[], vector[]) IS
'Private: raises OF006 unless chunks and embeddings are equally long (1..10000), without NULL or blank elements, '
'and OF301 if an embedding has the wrong dimension.';

CREATE OR REPLACE FUNCTION farmops.assert_embedding_model(p_model text, p_include_global boolean DEFAULT true)
RETURNS void
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_farm uuid := farmops.current_farm_id();
    v_other text;
BEGIN
    IF p_model IS NULL THEN
        RETURN;  -- the caller did not say which model made its vectors: nothing to compare
    END IF;
    -- Every row of an index has the same model (this check is how), so one row tells.
    IF v_farm IS NOT NULL THEN
        SELECT e.model INTO v_other FROM farmops.embeddings AS e WHERE e.farm_id = v_farm LIMIT 1;
        IF v_other <> p_model THEN
            RAISE EXCEPTION 'embedding model % differs from %, the model of this farm''s index',
                left(p_model, 200), v_other
                USING ERRCODE = 'OF303',
                HINT = 'Use the model the index was built with, or re-embed the farm''s sources.';
        END IF;
    END IF;
    IF coalesce(p_include_global, true) THEN
        SELECT g.model INTO v_other FROM farmops.global_embeddings AS g LIMIT 1;
        IF v_other <> p_model THEN
            RAISE EXCEPTION 'embedding model % differs from %, the model of the global knowledge base',
                left(p_model, 200), v_other
                USING ERRCODE = 'OF303',
                HINT = 'Use the model the global knowledge base was built with.';
        END IF;
    END IF;
END
$fn$;
COMMENT ON FUNCTION farmops.assert_embedding_model(text, boolean) IS
'Raises OF303 if p_model is not the model of the vectors already in the current farm''s index (or, with '
'p_include_global, the global knowledge base). NULL p_model: no check.';

CREATE OR REPLACE FUNCTION farmops._assert_embedding_model_for_write(p_farm_id uuid, p_model text)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    -- Two first ingests of an empty index with different models must not both pass:
    -- while there is no row to compare with, writers of this index take turns, on a
    -- lock no outside session can take (a farm's lock row; for the global base a
    -- table lock mode that needs write privilege on it, which only the owner has).
    IF NOT EXISTS (
        SELECT FROM farmops.embeddings AS e WHERE p_farm_id IS NOT NULL AND e.farm_id = p_farm_id
        UNION ALL
        SELECT FROM farmops.global_embeddings AS g WHERE p_farm_id IS NULL
    ) THEN
        IF p_farm_id IS NULL THEN
            LOCK TABLE farmops.global_embeddings IN SHARE ROW EXCLUSIVE MODE;
        ELSE
            PERFORM farmops._lock_in_farm(p_farm_id, 'embedding_model');
        END IF;
    END IF;
    PERFORM farmops.assert_embedding_model(p_model, true);
END
$fn$;
COMMENT ON FUNCTION farmops._assert_embedding_model_for_write(uuid, text) IS
'Private: farmops.assert_embedding_model() for a writer of the farm''s index (NULL: the global base), '
'serialising first writes of an empty index.';
