-- Retrieval: documents, embeddings and lineage are tenant tables (RLS enabled
-- and forced, the app reads its own farm only); the global knowledge base is
-- readable inside any tenant context and written only by farmops_owner.

ALTER TABLE farmops.documents ENABLE ROW LEVEL SECURITY;
ALTER TABLE farmops.documents FORCE ROW LEVEL SECURITY;
ALTER TABLE farmops.embeddings ENABLE ROW LEVEL SECURITY;
ALTER TABLE farmops.embeddings FORCE ROW LEVEL SECURITY;
ALTER TABLE farmops.ai_run_retrievals ENABLE ROW LEVEL SECURITY;
ALTER TABLE farmops.ai_run_retrievals FORCE ROW LEVEL SECURITY;
ALTER TABLE farmops.global_documents ENABLE ROW LEVEL SECURITY;
ALTER TABLE farmops.global_documents FORCE ROW LEVEL SECURITY;
ALTER TABLE farmops.global_embeddings ENABLE ROW LEVEL SECURITY;
ALTER TABLE farmops.global_embeddings FORCE ROW LEVEL SECURITY;

GRANT SELECT ON
farmops.documents,
farmops.embeddings,
farmops.ai_run_retrievals,
farmops.global_documents,
farmops.global_embeddings
TO farmops_app;

GRANT EXECUTE ON FUNCTION
farmops.embedding_dimension(),
farmops.exact_search_max_rows(),
farmops.max_search_k(),
farmops.assert_valid_vector(vector, text),
farmops.farm_search_candidates(uuid, vector, integer, text[]),
farmops.global_search_candidates(vector, integer),
farmops.search(vector, integer, boolean, text[]),
farmops.search_for_run(uuid, vector, integer, boolean, text[]),
farmops.ingest_document(text, text, text[], vector[], text),
farmops.delete_document(uuid),
farmops.replace_source_embeddings(text, uuid, text[], vector[], text),
farmops.delete_source_embeddings(text, uuid)
TO farmops_app;
-- Not granted (farmops_owner only): ingest_global_document, delete_global_document,
-- assert_valid_chunks, assert_valid_document.

DROP POLICY IF EXISTS "members see their own farm's documents" ON farmops.documents;
CREATE POLICY "members see their own farm's documents" ON farmops.documents
FOR SELECT TO farmops_app
USING (farm_id = (SELECT farmops.current_farm_id()));

DROP POLICY IF EXISTS "the package owner maintains every document" ON farmops.documents;
CREATE POLICY "the package owner maintains every document" ON farmops.documents
FOR ALL TO farmops_owner
USING (true) WITH CHECK (true);

DROP POLICY IF EXISTS "members see their own farm's embeddings" ON farmops.embeddings;
CREATE POLICY "members see their own farm's embeddings" ON farmops.embeddings
FOR SELECT TO farmops_app
USING (farm_id = (SELECT farmops.current_farm_id()));

DROP POLICY IF EXISTS "the package owner maintains every embedding" ON farmops.embeddings;
CREATE POLICY "the package owner maintains every embedding" ON farmops.embeddings
FOR ALL TO farmops_owner
USING (true) WITH CHECK (true);

DROP POLICY IF EXISTS "members see their own farm's retrieval lineage" ON farmops.ai_run_retrievals;
CREATE POLICY "members see their own farm's retrieval lineage" ON farmops.ai_run_retrievals
FOR SELECT TO farmops_app
USING (farm_id = (SELECT farmops.current_farm_id()));

DROP POLICY IF EXISTS "the package owner maintains all retrieval lineage" ON farmops.ai_run_retrievals;
CREATE POLICY "the package owner maintains all retrieval lineage" ON farmops.ai_run_retrievals
FOR ALL TO farmops_owner
USING (true) WITH CHECK (true);

DROP POLICY IF EXISTS "every farm reads the global knowledge base" ON farmops.global_documents;
CREATE POLICY "every farm reads the global knowledge base" ON farmops.global_documents
FOR SELECT TO farmops_app
USING ((SELECT farmops.current_farm_id()) IS NOT NULL);

DROP POLICY IF EXISTS "the package owner maintains the global knowledge base" ON farmops.global_documents;
CREATE POLICY "the package owner maintains the global knowledge base" ON farmops.global_documents
FOR ALL TO farmops_owner
USING (true) WITH CHECK (true);

DROP POLICY IF EXISTS "every farm reads the global knowledge chunks" ON farmops.global_embeddings;
CREATE POLICY "every farm reads the global knowledge chunks" ON farmops.global_embeddings
FOR SELECT TO farmops_app
USING ((SELECT farmops.current_farm_id()) IS NOT NULL);

DROP POLICY IF EXISTS "the package owner maintains the global knowledge chunks" ON farmops.global_embeddings;
CREATE POLICY "the package owner maintains the global knowledge chunks" ON farmops.global_embeddings
FOR ALL TO farmops_owner
USING (true) WITH CHECK (true);
