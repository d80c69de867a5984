-- Top-k retrieval for the current farm, merged with the global knowledge base.
--
-- Why not just `WHERE farm_id = $1 ORDER BY embedding <=> $2 LIMIT k` (seed 001)?
-- With an HNSW index PostgreSQL walks the graph for ef_search (40) candidates
-- over ALL farms and filters afterwards: a farm holding 1% of the rows gets
-- ~0.4 of its rows back instead of k. The strategy here, per candidate set
-- (the farm's rows; the global knowledge base), is planner-independent:
--
-- 1. Count the candidate rows through the (farm_id, source_type) btree, stopping
--    at exact_search_max_rows() + 1 (bounded cost).
-- 2. At most that many: EXACT scan. ORDER BY cosine_distance(...) is a
--    function call, not the indexable <=> operator, so no plan can use the
--    HNSW index: recall 1.0, every row considered.
-- 3. More: HNSW with pgvector 0.8 iterative scans (relaxed_order, bounded by
--    hnsw.max_scan_tuples), over-fetching max(2k, 40) candidates (ef_search the same) and re-ranking
--    them exactly. enable_sort is off inside that branch only, so the planner
--    cannot swap in a btree scan + sort of a huge farm.
-- 4. If the HNSW scan returned fewer than k rows (too selective a filter, scan
--    budget exhausted) fall back to the exact scan: never fewer than
--    min(k, rows visible) results.
--
-- Ties are broken by (distance, farm rows before global rows, id): deterministic.
-- The GUCs are set in the functions' SET clauses, so they (and the SET LOCALs
-- inside) are restored when the function returns.

CREATE OR REPLACE FUNCTION farmops.farm_search_candidates(
    p_farm_id uuid, p_query vector, p_k integer, p_source_types text[] DEFAULT NULL
)
RETURNS TABLE (embedding_id uuid, distance double precision)
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
SET "hnsw.iterative_scan" = relaxed_order
SET "hnsw.max_scan_tuples" = 100000
SET "hnsw.ef_search" = 40
SET enable_sort = on
AS $fn$
DECLARE
    v_exact_max integer := farmops.exact_search_max_rows();
    v_rows integer;
    v_fetch integer := least(greatest(2 * p_k, 40), 1000);
    v_ids uuid[];
    v_distances double precision[];
BEGIN
    SELECT count(*) INTO v_rows
    FROM (
        SELECT
        FROM farmops.embeddings AS e
        WHERE e.farm_id = p_farm_id AND (p_source_types IS NULL OR e.source_type = ANY (p_source_types))
        LIMIT greatest(v_exact_max, p_k) + 1
    ) AS bounded;

    IF v_rows > v_exact_max AND v_rows > p_k THEN
        PERFORM set_config('hnsw.ef_search', v_fetch::text, true);
        PERFORM set_config('enable_sort', 'off', true);
        SELECT array_agg(c.id ORDER BY c.d, c.id), array_agg(c.d ORDER BY c.d, c.id)
        INTO v_ids, v_distances
        FROM (
            SELECT e.id, e.embedding <=> p_query AS d
            FROM farmops.embeddings AS e
            WHERE e.farm_id = p_farm_id AND (p_source_types IS NULL OR e.source_type = ANY (p_source_types))
            ORDER BY e.embedding <=> p_query
            LIMIT v_fetch
        ) AS c;
        PERFORM set_config('enable_sort', 'on', true);
        IF coalesce(cardinality(v_ids), 0) >= p_k THEN
            RETURN QUERY SELECT u.id, u.d FROM unnest(v_ids, v_distances) AS u (id, d) LIMIT p_k;
            RETURN;
        END IF;
        -- The index scan came back short: fall through to the exact scan.
    END IF;

    RETURN QUERY
    SELECT e.id, cosine_distance(e.embedding, p_query) AS d
    FROM farmops.embeddings AS e
    WHERE e.farm_id = p_farm_id AND (p_source_types IS NULL OR e.source_type = ANY (p_source_types))
    ORDER BY d, e.id
    LIMIT p_k;
END
$fn$;
COMMENT ON FUNCTION farmops.farm_search_candidates(uuid, vector, integer, text[]) IS
'Private to farmops.search(): the k nearest chunks of one farm (exact scan up to exact_search_max_rows() rows, '
'iterative HNSW above, exact fallback if short). SECURITY INVOKER: RLS hides other farms from the app.';
-- Its body names pgvector's operators unqualified: keep the install's search_path (pgvector's schema).
ALTER FUNCTION farmops.farm_search_candidates(uuid, vector, integer, text[]) SET search_path FROM CURRENT;

CREATE OR REPLACE FUNCTION farmops.global_search_candidates(p_query vector, p_k integer)
RETURNS TABLE (embedding_id uuid, distance double precision)
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
SET "hnsw.iterative_scan" = relaxed_order
SET "hnsw.max_scan_tuples" = 100000
SET "hnsw.ef_search" = 40
SET enable_sort = on
AS $fn$
DECLARE
    v_exact_max integer := farmops.exact_search_max_rows();
    v_rows integer;
    v_fetch integer := least(greatest(2 * p_k, 40), 1000);
    v_ids uuid[];
    v_distances double precision[];
BEGIN
    SELECT count(*) INTO v_rows
    FROM (SELECT FROM farmops.global_embeddings AS g LIMIT greatest(v_exact_max, p_k) + 1) AS bounded;

    IF v_rows > v_exact_max AND v_rows > p_k THEN
        PERFORM set_config('hnsw.ef_search', v_fetch::text, true);
        PERFORM set_config('enable_sort', 'off', true);
        SELECT array_agg(c.id ORDER BY c.d, c.id), array_agg(c.d ORDER BY c.d, c.id)
        INTO v_ids, v_distances
        FROM (
            SELECT g.id, g.embedding <=> p_query AS d
            FROM farmops.global_embeddings AS g
            ORDER BY g.embedding <=> p_query
            LIMIT v_fetch
        ) AS c;
        PERFORM set_config('enable_sort', 'on', true);
        IF coalesce(cardinality(v_ids), 0) >= p_k THEN
            RETURN QUERY SELECT u.id, u.d FROM unnest(v_ids, v_distances) AS u (id, d) LIMIT p_k;
            RETURN;
        END IF;
    END IF;

    RETURN QUERY
    SELECT g.id, cosine_distance(g.embedding, p_query) AS d
    FROM farmops.global_embeddings AS g
    ORDER BY d, g.id
    LIMIT p_k;
END
$fn$;
COMMENT ON FUNCTION farmops.global_search_candidates(vector, integer) IS
'Private to farmops.search(): the k nearest global knowledge chunks, same strategy as farm_search_candidates().';
-- Its body names pgvector's operators unqualified: keep the install's search_path (pgvector's schema).
ALTER FUNCTION farmops.global_search_candidates(vector, integer) SET search_path FROM CURRENT;

CREATE OR REPLACE FUNCTION farmops.search(
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
SECURITY INVOKER
SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_column
DECLARE
    v_farm uuid := farmops.require_tenant();
BEGIN
    PERFORM farmops.assert_valid_vector(p_query, 'the query vector');
    IF p_k IS NULL OR p_k < 1 OR p_k > farmops.max_search_k() THEN
        RAISE EXCEPTION 'k must be between 1 and %, not %', farmops.max_search_k(), coalesce(p_k::text, 'NULL')
            USING ERRCODE = 'OF006';
    END IF;
    IF p_include_global IS NULL THEN
        RAISE EXCEPTION 'include_global must be true or false' USING ERRCODE = 'OF006';
    END IF;
    -- A query vector of another model than the index's would rank noise (NULL: not checked).
    PERFORM farmops.assert_embedding_model(p_model, p_include_global);
    IF p_source_types IS NOT NULL AND (
        cardinality(p_source_types) = 0
        OR array_ndims(p_source_types) <> 1
        OR EXISTS (
            SELECT FROM unnest(p_source_types) AS t (v)
            WHERE t.v IS NULL OR t.v NOT IN ('document', 'memory', 'convo_summary')
        )
    ) THEN
        RAISE EXCEPTION 'source types must be a non-empty list of document, memory, convo_summary'
            USING ERRCODE = 'OF006';
    END IF;

    RETURN QUERY
    WITH hits AS (
        SELECT false AS g, c.embedding_id AS hit_id, c.distance AS d
        FROM farmops.farm_search_candidates(v_farm, p_query, p_k, p_source_types) AS c
        UNION ALL
        SELECT true AS g, c.embedding_id AS hit_id, c.distance AS d
        FROM farmops.global_search_candidates(p_query, p_k) AS c
        WHERE p_include_global AND (p_source_types IS NULL OR 'document' = ANY (p_source_types))
    ),

    top_hits AS (
        SELECT h.g, h.hit_id, h.d FROM hits AS h ORDER BY h.d, h.g, h.hit_id LIMIT p_k
    )

    SELECT
        t.hit_id,
        CASE
            WHEN t.g THEN gd.title
            WHEN e.source_type = 'document' THEN d.title
            ELSE e.source_type || ':' || e.source_id::text
        END,
        coalesce(ge.content, e.content),
        1 - t.d,
        coalesce(e.source_type, 'document'),
        coalesce(ge.document_id, e.source_id),
        coalesce(ge.chunk_index, e.chunk_index),
        t.g
    FROM top_hits AS t
    LEFT JOIN farmops.embeddings AS e ON NOT t.g AND e.farm_id = v_farm AND e.id = t.hit_id
    LEFT JOIN farmops.documents AS d ON d.farm_id = v_farm AND d.id = e.document_id
    LEFT JOIN farmops.global_embeddings AS ge ON t.g AND ge.id = t.hit_id
    LEFT JOIN farmops.global_documents AS gd ON gd.id = ge.document_id
    ORDER BY t.d, t.g, t.hit_id;
END
$fn$;
COMMENT ON FUNCTION farmops.search(vector, integer, boolean, text[], text) IS
'The k chunks nearest to p_query (cosine; score = 1 - distance) of the current farm, merged by score with '
'the global knowledge base. Exact for farms up to exact_search_max_rows() rows, iterative HNSW above, never '
'fewer than min(k, visible rows). SECURITY INVOKER: RLS applies. OF001 no context, OF006 NULL/zero query, '
'k outside 1..max_search_k() or bad source types, OF301 wrong dimension, OF303 p_model (when given) is not '
'the model of the farm''s index or of the global knowledge base.';
