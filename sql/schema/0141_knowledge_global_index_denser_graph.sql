-- The global knowledge base's HNSW graph, rebuilt denser: m 32, ef_construction 128
-- (pgvector's defaults were m 16, ef_construction 64). Every farm's search may merge in the
-- global base's top k, so its recall is every farm's recall. Measured (bench/bench_search.py
-- data, 100,000 global rows x 384-d in 64 shared topics, queries drawn from the topics,
-- recall@10 against an exact scan, ef_search 200): 0.967 with the old graph, 0.998 with this
-- one, at the same latency (p50 ~16 ms; the exact scan ~120-150 ms). The old graph needed
-- ef_search 1000 for 0.990, at twice the latency. The build costs ~4x: ~4 minutes for those
-- 100,000 rows on 2 shared cores. An upgrade rebuilds the index here, inside the install's
-- transaction (searches of the global base wait for it); give the session enough
-- maintenance_work_mem (~2 KiB per row at 384-d) or the build spills and slows.
DROP INDEX IF EXISTS farmops.global_embeddings_embedding_hnsw_idx;
CREATE INDEX global_embeddings_embedding_hnsw_idx ON farmops.global_embeddings
USING hnsw (embedding vector_cosine_ops) WITH (m = 32, ef_construction = 128);
COMMENT ON INDEX farmops.global_embeddings_embedding_hnsw_idx IS
'The global knowledge base''s HNSW graph (m 32, ef_construction 128: recall@10 ~0.998 at ef_search 200 on '
'topic-mixture data, where m 16 / 64 gave 0.967); farmops._global_search_candidates uses it above '
'exact_search_max_rows() rows.';
