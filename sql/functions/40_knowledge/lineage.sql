-- Search with lineage: search on behalf of an AI run and record what it got.

CREATE OR REPLACE FUNCTION farmops.search_for_run(
    p_run_id uuid,
    p_query vector,
    p_k integer DEFAULT 4,
    p_include_global boolean DEFAULT true,
    p_source_types text[] DEFAULT NULL,
    p_model text DEFAULT NULL
)
RETURNS TABLE (
    id uuid,
    source text,
    content text,
    score double precision,
    source_type text,
    source_id uuid,
    chunk_index integer,
    is_global boolean
)
LANGUAGE plpgsql
VOLATILE
-- Definer: the app cannot write ai_run_retrievals. farmops.search() scopes every
-- statement to the tenant context's farm explicitly, so it is safe to run as owner.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_column
DECLARE
    -- Writes lineage, so not for viewers (read-only): the members that may run a model.
    v_farm uuid := farmops.require_capability('run_ai');
    v_search_id uuid := gen_random_uuid();
BEGIN
    -- Share lock: the run cannot be settled or expired while its lineage is written.
    PERFORM farmops._lock_run(v_farm, p_run_id, true);

    RETURN QUERY
    WITH hits AS MATERIALIZED (
        SELECT s.*
        FROM farmops.search(p_query, p_k, p_include_global, p_source_types, p_model) WITH ORDINALITY AS s
    ),

    lineage AS (
        INSERT INTO farmops.ai_run_retrievals (
            farm_id, ai_run_id, search_id, rank, score, is_global, embedding_id, global_embedding_id,
            source_type, source_id, chunk_index
        )
        SELECT
            v_farm, p_run_id, v_search_id, h.ordinality::integer, h.score, h.is_global,
            CASE WHEN NOT h.is_global THEN h.id END,
            CASE WHEN h.is_global THEN h.id END,
            h.source_type, h.source_id, h.chunk_index
        FROM hits AS h
    )

    SELECT h.id, h.source, h.content, h.score, h.source_type, h.source_id, h.chunk_index, h.is_global
    FROM hits AS h
    ORDER BY h.ordinality;
END
$fn$;
COMMENT ON FUNCTION farmops.search_for_run(uuid, vector, integer, boolean, text[], text) IS
'farmops.search() on behalf of a live (reserved or running) AI run of the current farm, recording each result '
'(rank, score, chunk) in ai_run_retrievals. Any member but viewer (run_ai; OF003): viewers use farmops.search(). '
'OF102 if the run is not in this farm, OF205 if it is settled, expired or past expires_at; OF303 as search().';
