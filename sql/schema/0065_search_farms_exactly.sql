-- Farms are searched exactly (see sql/functions/40_retrieval/retrieval_search.sql),
-- so the one HNSW graph over every farm's rows is dropped. Measured with
-- bench/bench_search.py it gave a farm above 10k rows recall@10 0.32-0.89 (the
-- graph walk wanders through other farms' rows, which RLS then filters out); it
-- made every insert of every farm pay a graph insertion; and it was the one index
-- of a tenant table that did not lead with farm_id, so a filtered index scan
-- touched (and counted in EXPLAIN ANALYZE) other tenants' rows. The global
-- knowledge base keeps its HNSW index: it has no tenant filter.
DROP INDEX IF EXISTS farmops.embeddings_embedding_hnsw_idx;
