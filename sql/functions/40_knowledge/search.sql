-- Top-k retrieval for the current farm, merged with the global knowledge base.
--
-- THE FARM'S ROWS: ALWAYS AN EXACT SCAN. ORDER BY cosine_distance(...) is a
-- function call, not the indexable <=> operator, so no plan can use an ANN index:
-- recall 1.0 for every farm and every query, found through the (farm_id,
-- source_type) btree, so a farm's search reads only its own rows and costs in
-- proportion to its own size (rows x dimension), never to other farms'.
-- Measured with bench/bench_search.py (topic-mixture data, farms sharing topics,
-- 256-d, 2 shared cores), approximate indexes cannot hold recall@10 >= 0.99:
--   * one HNSW graph over all farms, filtered (iterative scans, ef_search 40), for
--     farms above 10k rows: 0.87-0.89 near the farm's rows, 0.32-0.48 off-topic;
--   * a per-farm partial HNSW index (m 32, ef_construction 128) on a 38k-row farm:
--     1.000 near but 0.63 / 0.73 off-topic at ef_search 200 / 400. An off-topic
--     query's nearest rows are all about equally far (the distances are noise), and
--     a greedy graph walk cannot tell them apart; an exact scan can.
-- The exact scan of that 38k-row farm takes 60-80 ms here (p50). A farm too big for
-- that (hundreds of thousands of 1024-d rows) is the case for a per-farm index with
-- an exact fallback for low-contrast queries; not built until a farm needs it.
--
-- THE GLOBAL KNOWLEDGE BASE: every farm searches it, so it must not cost in
-- proportion to its size on every search. Up to exact_search_max_rows() rows
-- (estimated from the planner's statistics, not counted) it is scanned exactly;
-- above, its HNSW index answers with ef_search = max(200, 2k): it has no tenant
-- filter, so the walk is not wasted on rows it must drop. Its graph is built with
-- m 32, ef_construction 128 (schema 0141): on 100k rows x 384-d of topic-mixture
-- data, queries from the topics, recall@10 0.998 at ~16 ms against ~150 ms exact
-- (the default m 16 / 64 graph: 0.967). Relaxed iterative scanning and an exact
-- fallback keep it from ever answering short. A LOW-CONTRAST query (from a topic the
-- base lacks, or a vector off the data's manifold) has no near rows and every row
-- is about equally far: HNSW found 0.42-0.53 of its top 10. A cheap walk (ef_search
-- 40) first: when its k-th row is farther than 0.6x the median distance to a fixed
-- ~200-row page sample of the base (measured: such queries 0.60-0.85x at the true
-- k-th, queries from the topics 0.34-0.48x), the search is answered exactly (recall
-- 1.0, about the exact scan's cost); else the full walk (ef_search 200).
-- Queries between two topics stay on the graph: recall 0.92 at 100k x 384-d.
--
-- plan_cache_mode = force_generic_plan on both: the statements are the same for
-- every farm (the btree picks the farm's rows; a custom plan for a big farm picked
-- a slower seq scan of the whole table), and re-planning the merge with its joins
-- on every call cost more than searching a small farm (a 40-row farm's search
-- 0.4-0.6 ms instead of 0.8-1.5 ms). ROWS 10 on the global candidate function (it
-- returns k rows, k is small) keeps the generic plan of the merge a nested loop of
-- key lookups; with the default estimate (1000) it hash-joined the farm's whole
-- table: 56 ms instead of 18 ms for a 38k-row farm.
--
-- THE FIXED COST OF A CALL, which is what a small farm's search pays (its scan takes
-- tens of microseconds): the tenant context is verified ONCE (require_capability;
-- assert_embedding_model, which verifies it again, runs only when a model is given);
-- the farm's exact scan is written into search()'s own statements, not a helper
-- function (a PL/pgSQL layer with its own SET clauses, whose result went through a
-- tuplestore); a farm-only search (p_include_global false, or source types without
-- 'document') runs one statement without the global branch and its joins. Measured
-- inside the server, calls interleaved (bench/bench_fixed.py, `make bench` part 4),
-- farms of 10, 100 and 1,000 rows: the cost over the bare exact scan went from 50-110
-- us per call to 0-45 us (the exact scan itself: 40-170 us).
--
-- Ties are broken by (distance, farm rows before global rows, id): deterministic
-- (on the global base's HNSW path, among the rows the index returned).
-- The GUCs are set in the functions' SET clauses, so they (and the SET LOCALs
-- inside) are restored when the function returns.

-- A query between two topics has its k nearest split over two clusters, and a graph
-- walk that entered one of them stays there (ADR 0030). A second walk from the query
-- mirrored away from what the first found (2q - the mean direction of its rows) enters
-- the other side: if it meets a row nearer to the query than the first walk's k-th, the
-- first answer depended on where the walk entered.
CREATE OR REPLACE FUNCTION farmops._global_walk_missed(
    p_query vector, p_centre vector, p_ids uuid[], p_kth double precision
)
RETURNS boolean
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan
AS $fn$
DECLARE
    v_mirror farmops.global_embeddings.embedding%TYPE := l2_normalize(p_query) + (l2_normalize(p_query) - p_centre);
BEGIN
    IF v_mirror IS NULL OR cardinality(p_ids) IS NULL THEN
        RETURN false;
    END IF;
    RETURN EXISTS (
        SELECT FROM (
            SELECT g.id, g.embedding <=> p_query AS d
            FROM farmops.global_embeddings AS g
            ORDER BY g.embedding <=> v_mirror
            LIMIT cardinality(p_ids)
        ) AS m
        WHERE m.d < p_kth AND m.id <> ALL (p_ids)
    );
END
$fn$;
COMMENT ON FUNCTION farmops._global_walk_missed(vector, vector, uuid[], double precision) IS
'Private to _global_search_candidates(): true if a walk from the query mirrored away from p_centre (the mean '
'direction of a first walk''s rows p_ids) finds a row not among them nearer to the query than p_kth (that '
'walk''s k-th distance).';
ALTER FUNCTION farmops._global_walk_missed(vector, vector, uuid[], double precision) SET search_path FROM CURRENT;

CREATE OR REPLACE FUNCTION farmops._global_search_candidates(p_query vector, p_k integer)
RETURNS TABLE (embedding_id uuid, distance double precision)
LANGUAGE plpgsql
VOLATILE
ROWS 10
SET search_path = pg_catalog, pg_temp
SET "hnsw.iterative_scan" = relaxed_order
SET "hnsw.max_scan_tuples" = 100000
SET "hnsw.ef_search" = 200
SET enable_sort = on
SET plan_cache_mode = force_generic_plan
AS $fn$
DECLARE
    v_exact_max integer := farmops.exact_search_max_rows();
    v_rows double precision;
    v_ids uuid[];
    v_distances double precision[];
    v_low_contrast boolean;
    v_centre farmops.global_embeddings.embedding%TYPE;
BEGIN
    -- The planner's estimate, scaled to the table's current size as the planner does:
    -- no per-search count. Never analyzed: a count bounded by the threshold.
    SELECT CASE
        WHEN c.relpages > 0 AND c.reltuples >= 0
            THEN c.reltuples / c.relpages * (pg_relation_size(c.oid) / current_setting('block_size')::integer)
    END
    INTO v_rows
    FROM pg_class AS c
    WHERE c.oid = 'farmops.global_embeddings'::regclass;
    IF v_rows IS NULL THEN
        SELECT count(*) INTO v_rows
        FROM (SELECT FROM farmops.global_embeddings AS g LIMIT greatest(v_exact_max, p_k) + 1) AS bounded;
    END IF;

    IF v_rows > v_exact_max AND v_rows > p_k THEN
        PERFORM set_config('enable_sort', 'off', true);
        -- Low contrast: a cheap walk (ef_search 40) finds k rows; is its k-th nearly as far
        -- as a typical row, i.e. farther than 0.6x the median distance to a fixed ~200-row
        -- page sample (REPEATABLE: the same pages every call)? Then nothing in the base is
        -- near the query (a topic the base lacks, a vector off the data's manifold), every
        -- row is about equally far, and a graph walk cannot rank them: answer exactly
        -- below. The cheap walk's k-th row is never nearer than the true k-th, so a query
        -- with near rows is never sent down the exact path by this, only the reverse.
        PERFORM set_config('hnsw.ef_search', greatest(40, p_k)::text, true);
        SELECT max(c.d) > 0.6 * (
            SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY s.embedding <=> p_query)
            FROM farmops.global_embeddings AS s TABLESAMPLE SYSTEM (least(100, 20000 / v_rows)) REPEATABLE (0)
        )
        INTO v_low_contrast
        FROM (
            SELECT g.embedding <=> p_query AS d
            FROM farmops.global_embeddings AS g
            ORDER BY g.embedding <=> p_query
            LIMIT p_k
        ) AS c;
        IF NOT coalesce(v_low_contrast, false) THEN
            PERFORM set_config('hnsw.ef_search', least(greatest(200, 2 * p_k), 1000)::text, true);
            SELECT
                array_agg(c.id ORDER BY c.d, c.id), array_agg(c.d ORDER BY c.d, c.id), avg(l2_normalize(c.embedding))
            INTO v_ids, v_distances, v_centre
            FROM (
                SELECT g.id, g.embedding <=> p_query AS d, g.embedding
                FROM farmops.global_embeddings AS g
                ORDER BY g.embedding <=> p_query
                LIMIT p_k
            ) AS c;
            IF
                cardinality(v_ids) >= p_k
                AND farmops._global_walk_missed(p_query, v_centre, v_ids, v_distances[p_k])
            THEN
                v_ids := NULL;  -- the answer depends on where the walk entered: exact below
            END IF;
        END IF;
        PERFORM set_config('enable_sort', 'on', true);
        IF coalesce(cardinality(v_ids), 0) >= p_k THEN
            RETURN QUERY SELECT u.id, u.d FROM unnest(v_ids, v_distances) AS u (id, d);
            RETURN;
        END IF;
        -- Low contrast, or the index scan came back short (rows deleted since the
        -- estimate): scan exactly.
    END IF;

    RETURN QUERY
    SELECT g.id, cosine_distance(g.embedding, p_query) AS d
    FROM farmops.global_embeddings AS g
    ORDER BY d, g.id
    LIMIT p_k;
END
$fn$;
COMMENT ON FUNCTION farmops._global_search_candidates(vector, integer) IS
'Private to farmops.search(): the k nearest global knowledge chunks: an exact scan up to exact_search_max_rows() '
'rows (estimated), HNSW with ef_search max(200, 2k) above, exact again if the index answers short or the '
'query has low contrast (the k-th row of a cheap walk farther than 0.6x the median distance to a fixed ~200-row '
'sample) or if the walk missed rows (_global_walk_missed).';
-- Its body names pgvector's operators unqualified: keep the install's search_path (pgvector's schema).
ALTER FUNCTION farmops._global_search_candidates(vector, integer) SET search_path FROM CURRENT;

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
-- Definer: the global candidate helper is private (not executable by the app,
-- which could call it with any k or vector). Every statement below reads farm rows
-- of the tenant context's farm only, named explicitly (the owner's policies pass
-- every row).
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET plan_cache_mode = force_generic_plan
AS $fn$
#variable_conflict use_column
DECLARE
    -- One verification of the tenant context for the whole call.
    v_farm uuid := farmops.require_capability('read');
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
    IF p_model IS NOT NULL THEN
        PERFORM farmops.assert_embedding_model(p_model, p_include_global);
    END IF;
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

    IF NOT p_include_global OR NOT (p_source_types IS NULL OR 'document' = ANY (p_source_types)) THEN
        -- The farm's rows only: the exact scan, then the k winners' content and titles, each
        -- looked up by key. (A plain join let the generic plan guess 10% of the farm for
        -- LIMIT p_k and hash-join a second scan of the farm's rows: 1.6x the exact scan on
        -- a 1,000-row farm. LIMIT 1 keeps the lookup a lateral subquery, i.e. a key lookup.)
        RETURN QUERY
        SELECT
            t.hit_id,
            CASE
                WHEN e.source_type = 'document'
                    THEN (SELECT d.title FROM farmops.documents AS d WHERE d.farm_id = v_farm AND d.id = e.document_id)
                ELSE e.source_type || ':' || e.source_id::text
            END,
            e.content,
            1 - t.d,
            e.source_type,
            e.source_id,
            e.chunk_index,
            false
        FROM (
            SELECT x.id AS hit_id, cosine_distance(x.embedding, p_query) AS d
            FROM farmops.embeddings AS x
            WHERE x.farm_id = v_farm AND (p_source_types IS NULL OR x.source_type = ANY (p_source_types))
            ORDER BY d, x.id
            LIMIT p_k
        ) AS t
        CROSS JOIN LATERAL (
            SELECT y.source_type, y.source_id, y.document_id, y.content, y.chunk_index
            FROM farmops.embeddings AS y
            WHERE y.farm_id = v_farm AND y.id = t.hit_id
            LIMIT 1
        ) AS e
        ORDER BY t.d, t.hit_id;
        RETURN;
    END IF;

    RETURN QUERY
    WITH farm_hits AS (
        SELECT x.id AS hit_id, cosine_distance(x.embedding, p_query) AS d
        FROM farmops.embeddings AS x
        WHERE x.farm_id = v_farm AND (p_source_types IS NULL OR x.source_type = ANY (p_source_types))
        ORDER BY d, x.id
        LIMIT p_k
    ),

    hits AS (
        SELECT false AS g, f.hit_id, f.d FROM farm_hits AS f
        UNION ALL
        SELECT true AS g, c.embedding_id AS hit_id, c.distance AS d
        FROM farmops._global_search_candidates(p_query, p_k) AS c
    ),

    top_hits AS (
        SELECT h.g, h.hit_id, h.d FROM hits AS h ORDER BY h.d, h.g, h.hit_id LIMIT p_k
    )

    -- Each winner's content and title by key (lateral lookups, as above), only in its own table.
    SELECT
        t.hit_id,
        CASE
            WHEN t.g THEN ge.title
            WHEN e.source_type = 'document'
                THEN (SELECT d.title FROM farmops.documents AS d WHERE d.farm_id = v_farm AND d.id = e.document_id)
            ELSE e.source_type || ':' || e.source_id::text
        END,
        coalesce(ge.content, e.content),
        1 - t.d,
        coalesce(e.source_type, 'document'),
        coalesce(ge.document_id, e.source_id),
        coalesce(ge.chunk_index, e.chunk_index),
        t.g
    FROM top_hits AS t
    LEFT JOIN LATERAL (
        SELECT y.source_type, y.source_id, y.document_id, y.content, y.chunk_index
        FROM farmops.embeddings AS y
        WHERE NOT t.g AND y.farm_id = v_farm AND y.id = t.hit_id
        LIMIT 1
    ) AS e ON true
    LEFT JOIN LATERAL (
        SELECT
            z.content,
            z.document_id,
            z.chunk_index,
            (SELECT gd.title FROM farmops.global_documents AS gd WHERE gd.id = z.document_id) AS title
        FROM farmops.global_embeddings AS z
        WHERE t.g AND z.id = t.hit_id
        LIMIT 1
    ) AS ge ON true
    ORDER BY t.d, t.g, t.hit_id;
END
$fn$;
COMMENT ON FUNCTION farmops.search(vector, integer, boolean, text[], text) IS
'The k chunks nearest to p_query (cosine; score = 1 - distance) of the current farm, merged by score with '
'the global knowledge base. The farm''s rows exactly (recall 1.0 at any size); the global base exactly up to '
'exact_search_max_rows() rows, HNSW above; never fewer than min(k, visible rows); rows of the tenant context''s '
'farm only. OF001 no context, OF006 NULL/zero query, k outside 1..max_search_k() or bad source types, OF301 wrong '
'dimension, OF303 p_model (when given) is not the model of the farm''s index or of the global knowledge base.';
-- Its body names pgvector's functions unqualified: keep the install's search_path (pgvector's schema).
ALTER FUNCTION farmops.search(vector, integer, boolean, text[], text) SET search_path FROM CURRENT;
