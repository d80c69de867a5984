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

    -- A chunk found by the search may be deleted by a concurrent transaction
    -- (delete_document, forget, embed_memory, replace_source_embeddings,
    -- delete_global_document) before its lineage row is written; its foreign key
    -- would then fail (raw 23503). So each chunk is key-share locked in the
    -- statement that records it, and a chunk already gone, or being deleted right
    -- now (SKIP LOCKED: never wait on a deleter, which may be waiting on this
    -- transaction's lineage rows), is neither recorded nor returned. The caller gets
    -- exactly the rows recorded, ranked 1..n.
    RETURN QUERY
    WITH hits AS MATERIALIZED (
        SELECT s.*
        FROM farmops.search(p_query, p_k, p_include_global, p_source_types, p_model) WITH ORDINALITY AS s
    ),

    farm_chunks AS MATERIALIZED (
        SELECT e.id
        FROM farmops.embeddings AS e
        WHERE e.farm_id = v_farm AND e.id IN (SELECT h.id FROM hits AS h WHERE NOT h.is_global)
        FOR KEY SHARE SKIP LOCKED
    ),

    global_chunks AS MATERIALIZED (
        SELECT g.id
        FROM farmops.global_embeddings AS g
        WHERE g.id IN (SELECT h.id FROM hits AS h WHERE h.is_global)
        FOR KEY SHARE SKIP LOCKED
    ),

    kept AS MATERIALIZED (
        SELECT h.*, row_number() OVER (ORDER BY h.ordinality)::integer AS rank
        FROM hits AS h
        WHERE h.id IN (SELECT f.id FROM farm_chunks AS f WHERE NOT h.is_global)
            OR h.id IN (SELECT g.id FROM global_chunks AS g WHERE h.is_global)
    ),

    -- The injection guards (50_trust) screen every chunk: a flagged or blocked one is
    -- recorded as withheld and never returned, so it never reaches the model.
    guarded AS MATERIALIZED (
        SELECT k.*, c.verdict AS guard_verdict, c.categories AS guard_categories
        FROM kept AS k
        CROSS JOIN LATERAL farmops.check_text(k.content, 'retrieved') AS c
    ),

    lineage AS (
        INSERT INTO farmops.ai_run_retrievals AS r (
            farm_id, ai_run_id, search_id, rank, score, is_global, embedding_id, global_embedding_id,
            source_type, source_id, chunk_index, withheld, guard_verdict, guard_categories
        )
        SELECT
            v_farm, p_run_id, v_search_id, k.rank, k.score, k.is_global,
            CASE WHEN NOT k.is_global THEN k.id END,
            CASE WHEN k.is_global THEN k.id END,
            k.source_type, k.source_id, k.chunk_index, k.guard_verdict <> 'allow', k.guard_verdict, k.guard_categories
        FROM guarded AS k
        RETURNING r.rank, r.withheld
    )

    SELECT k.id, k.source, k.content, k.score, k.source_type, k.source_id, k.chunk_index, k.is_global
    FROM kept AS k
    JOIN lineage AS l ON l.rank = k.rank AND NOT l.withheld
    ORDER BY k.rank;
END
$fn$;
COMMENT ON FUNCTION farmops.search_for_run(uuid, vector, integer, boolean, text[], text) IS
'farmops.search() on behalf of a live (reserved or running) AI run of the current farm, recording each result '
'(rank, score, chunk) in ai_run_retrievals. Any member but viewer (run_ai; OF003): viewers use farmops.search(). '
'OF102 if the run is not in this farm, OF205 if it is settled, expired or past expires_at; OF303 as search(). '
'A chunk deleted while the search runs is left out (not returned, not recorded). Every chunk is screened by '
'check_text(content, ''retrieved''): a flagged or blocked one is recorded withheld (with verdict and categories) '
'and not returned. The rows returned are the recorded rows not withheld, in rank order.';
