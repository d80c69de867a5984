-- Writing the global knowledge base. Only farmops_owner may execute these (the
-- revoke-by-default policy keeps them from farmops_app); no tenant context.

CREATE OR REPLACE FUNCTION farmops.ingest_global_document(
    p_title text, p_content text, p_chunks text[], p_embeddings vector[], p_model text
)
RETURNS uuid
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_title text := farmops._text_argument(p_title, 'title', 500);
    v_model text := farmops._text_argument(p_model, 'model', 200);
    v_hash text;
    v_id uuid;
BEGIN
    PERFORM farmops._assert_valid_content(p_content);
    PERFORM farmops._assert_valid_chunks(p_chunks, p_embeddings);
    PERFORM farmops._assert_embedding_model_for_write(NULL, v_model);
    v_hash := encode(sha256(convert_to(p_content, 'UTF8')), 'hex');
    FOR v_attempt IN 1 .. 3 LOOP
        INSERT INTO farmops.global_documents AS d (title, content, content_hash, model)
        VALUES (v_title, p_content, v_hash, v_model)
        ON CONFLICT (content_hash) DO NOTHING
        RETURNING d.id INTO v_id;
        IF v_id IS NOT NULL THEN
            INSERT INTO farmops.global_embeddings (document_id, chunk_index, content, embedding, model)
            SELECT v_id, (c.ord - 1)::integer, c.chunk, c.emb, v_model
            FROM unnest(p_chunks, p_embeddings) WITH ORDINALITY AS c (chunk, emb, ord);
            RETURN v_id;
        END IF;
        SELECT d.id INTO v_id FROM farmops.global_documents AS d WHERE d.content_hash = v_hash;
        IF v_id IS NOT NULL THEN
            RETURN v_id;
        END IF;
    END LOOP;
    RAISE EXCEPTION 'could not ingest the document: it was deleted concurrently three times'
        USING ERRCODE = '40001';
END
$fn$;
COMMENT ON FUNCTION farmops.ingest_global_document(text, text, text[], vector[], text) IS
'farmops_owner only: stores a document of the global knowledge base (read by every farm''s search); '
'identical content is a no-op returning the existing id. OF006 bad arguments, OF301 wrong dimension, '
'OF303 another embedding model than the global base''s.';

CREATE OR REPLACE FUNCTION farmops.delete_global_document(p_document_id uuid)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    PERFORM farmops._assert_given(p_document_id, 'document id');
    DELETE FROM farmops.global_documents AS d WHERE d.id = p_document_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no global document %', p_document_id USING ERRCODE = 'OF302';
    END IF;
END
$fn$;
COMMENT ON FUNCTION farmops.delete_global_document(uuid) IS
'farmops_owner only: deletes a global knowledge document and its chunks. OF302 if there is none.';
