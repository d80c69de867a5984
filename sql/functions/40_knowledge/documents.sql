-- Writing a farm's retrieval rows: documents (with their chunks) and the chunks
-- of other sources (memories, conversation summaries). Chunking and embedding
-- happen in the client, which passes chunks and their vectors side by side.
-- SECURITY DEFINER because the application role cannot write these tables;
-- every statement is scoped to the farm returned by require_capability().
-- Who may write: capability ingest (owner, manager, worker). Viewers read; the
-- agent (the AI) proposes writes through the draft path, not here. Every
-- writer refuses vectors of another embedding model than the index's (OF303).

CREATE OR REPLACE FUNCTION farmops.ingest_document(
    p_title text, p_content text, p_chunks text[], p_embeddings vector[], p_model text
)
RETURNS uuid
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_farm uuid := farmops.require_capability('ingest');
    v_title text := farmops._text_argument(p_title, 'title', 500);
    v_model text := farmops._text_argument(p_model, 'model', 200);
    v_hash text;
    v_id uuid;
BEGIN
    PERFORM farmops._assert_valid_content(p_content);
    PERFORM farmops._assert_valid_chunks(p_chunks, p_embeddings);
    PERFORM farmops._assert_embedding_model_for_write(v_farm, v_model);
    v_hash := encode(sha256(convert_to(p_content, 'UTF8')), 'hex');
    -- A concurrent ingest of the same content waits on the unique key, then finds its row.
    FOR v_attempt IN 1 .. 3 LOOP
        INSERT INTO farmops.documents AS d (farm_id, title, content, content_hash, model, created_by)
        VALUES (v_farm, v_title, p_content, v_hash, v_model, farmops.current_user_id())
        ON CONFLICT (farm_id, content_hash) DO NOTHING
        RETURNING d.id INTO v_id;
        IF v_id IS NOT NULL THEN
            INSERT INTO farmops.embeddings (
                farm_id, source_type, source_id, document_id, chunk_index, content, embedding, model
            )
            SELECT v_farm, 'document', v_id, v_id, (c.ord - 1)::integer, c.chunk, c.emb, v_model
            FROM unnest(p_chunks, p_embeddings) WITH ORDINALITY AS c (chunk, emb, ord);
            RETURN v_id;
        END IF;
        SELECT d.id INTO v_id
        FROM farmops.documents AS d
        WHERE d.farm_id = v_farm AND d.content_hash = v_hash;
        IF v_id IS NOT NULL THEN
            RETURN v_id;  -- identical content: a no-op
        END IF;
        -- The conflicting document was deleted meanwhile: try again.
    END LOOP;
    RAISE EXCEPTION 'could not ingest the document: it was deleted concurrently three times'
        USING ERRCODE = '40001';
END
$fn$;
COMMENT ON FUNCTION farmops.ingest_document(text, text, text[], vector[], text) IS
'Owner, manager or worker: stores a document of the current farm with its client-made chunks and vectors '
'(chunk i has embedding i); identical content (sha256) is a no-op returning the existing id. '
'OF006 bad arguments, OF301 wrong dimension, OF303 another embedding model than the index''s.';

CREATE OR REPLACE FUNCTION farmops._assert_valid_content(p_content text)
RETURNS void
LANGUAGE plpgsql
IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    -- Stored exactly as given (its sha256 is the dedup key); only blank and size are refused.
    IF p_content IS NULL OR char_length(btrim(p_content)) = 0 OR octet_length(p_content) > 10485760 THEN
        RAISE EXCEPTION 'content must be non-blank and at most 10 MiB' USING ERRCODE = 'OF006';
    END IF;
END
$fn$;
COMMENT ON FUNCTION farmops._assert_valid_content(text) IS
'Private: raises OF006 unless a document''s content is non-blank and at most 10 MiB.';

CREATE OR REPLACE FUNCTION farmops.delete_document(p_document_id uuid)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_farm uuid := farmops.require_capability('ingest');
BEGIN
    PERFORM farmops._assert_given(p_document_id, 'document id');
    -- ON DELETE CASCADE removes the chunks in this statement: gone from search at once.
    DELETE FROM farmops.documents AS d WHERE d.farm_id = v_farm AND d.id = p_document_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no document % in this farm', p_document_id USING ERRCODE = 'OF302';
    END IF;
END
$fn$;
COMMENT ON FUNCTION farmops.delete_document(uuid) IS
'Owner, manager or worker: deletes a document of the current farm and its chunks (gone from search in the '
'same transaction). OF302 if the farm has no such document.';

CREATE OR REPLACE FUNCTION farmops.replace_source_embeddings(
    p_source_type text, p_source_id uuid, p_chunks text[], p_embeddings vector[], p_model text
)
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_farm uuid := farmops.require_capability('ingest');
    v_model text;
    v_count integer;
BEGIN
    -- Memories are indexed by farmops.embed_memory, which checks the memory exists in this farm.
    IF p_source_type IS DISTINCT FROM 'convo_summary' THEN
        RAISE EXCEPTION 'source type must be convo_summary (documents: ingest_document, memories: embed_memory)'
            USING ERRCODE = 'OF006';
    END IF;
    PERFORM farmops._assert_given(p_source_id, 'source id');
    v_model := farmops._text_argument(p_model, 'model', 200);
    PERFORM farmops._assert_valid_chunks(p_chunks, p_embeddings);
    PERFORM farmops._assert_embedding_model_for_write(v_farm, v_model);
    -- Serialise replacements of one source so two writers cannot interleave chunks: a
    -- row lock only this farm's functions reach (no outside session can stall it).
    PERFORM farmops._lock_in_farm(v_farm, p_source_type || ':' || p_source_id);
    DELETE FROM farmops.embeddings AS e
    WHERE e.farm_id = v_farm AND e.source_type = p_source_type AND e.source_id = p_source_id;
    INSERT INTO farmops.embeddings (farm_id, source_type, source_id, chunk_index, content, embedding, model)
    SELECT v_farm, p_source_type, p_source_id, (c.ord - 1)::integer, c.chunk, c.emb, v_model
    FROM unnest(p_chunks, p_embeddings) WITH ORDINALITY AS c (chunk, emb, ord);
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END
$fn$;
COMMENT ON FUNCTION farmops.replace_source_embeddings(text, uuid, text[], vector[], text) IS
'Owner, manager or worker: replaces the chunks of a conversation summary of the current farm; '
'returns how many were stored. OF006 bad arguments, OF301 wrong dimension, OF303 another embedding model.';

CREATE OR REPLACE FUNCTION farmops.delete_source_embeddings(p_source_type text, p_source_id uuid)
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_farm uuid := farmops.require_capability('ingest');
    v_count integer;
BEGIN
    IF p_source_type IS DISTINCT FROM 'convo_summary' OR p_source_id IS NULL THEN
        RAISE EXCEPTION 'source type convo_summary and a source id are required (memories: farmops.forget)'
            USING ERRCODE = 'OF006';
    END IF;
    DELETE FROM farmops.embeddings AS e
    WHERE e.farm_id = v_farm AND e.source_type = p_source_type AND e.source_id = p_source_id;
    GET DIAGNOSTICS v_count = ROW_COUNT;
    RETURN v_count;
END
$fn$;
COMMENT ON FUNCTION farmops.delete_source_embeddings(text, uuid) IS
'Owner, manager or worker: deletes the chunks of a conversation summary of the current farm '
'(call it in the transaction that deletes the source); returns how many were deleted.';
