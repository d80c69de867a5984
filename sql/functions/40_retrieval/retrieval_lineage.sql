-- Retrieval with lineage: search on behalf of an AI run and record what it got.

CREATE OR REPLACE FUNCTION farmops.search_for_run(
    p_run_id uuid,
    p_query vector,
    p_k integer DEFAULT 4,
    p_include_global boolean DEFAULT true,
    p_source_types text[] DEFAULT NULL
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
    -- Writes lineage, so not for viewers (read-only): the roles that may run a model.
    v_farm uuid := farmops.require_tenant(ARRAY['owner', 'manager', 'worker', 'agent']);
    v_status text;
    v_search_id uuid := gen_random_uuid();
BEGIN
    IF p_run_id IS NULL THEN
        RAISE EXCEPTION 'run id is required' USING ERRCODE = 'OF006';
    END IF;
    SELECT r.status INTO v_status FROM farmops.ai_runs AS r WHERE r.farm_id = v_farm AND r.id = p_run_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no AI run % in this farm', p_run_id USING ERRCODE = 'OF102';
    END IF;
    IF v_status NOT IN ('reserved', 'running') THEN
        RAISE EXCEPTION 'AI run % is %: it can no longer retrieve', p_run_id, v_status USING ERRCODE = 'OF205';
    END IF;

    RETURN QUERY
    WITH hits AS MATERIALIZED (
        SELECT s.*
        FROM farmops.search(p_query, p_k, p_include_global, p_source_types) WITH ORDINALITY AS s
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
COMMENT ON FUNCTION farmops.search_for_run(uuid, vector, integer, boolean, text[]) IS
'farmops.search() on behalf of a live (reserved or running) AI run of the current farm, recording each result '
'(rank, score, chunk) in ai_run_retrievals. Any member but viewer (OF003): viewers use farmops.search(). '
'OF102 if the run is not in this farm, OF205 if it is settled.';
