-- Durable per-farm facts: remembered once per normalized text, forgotten by
-- a member holding forget_memories (owner, manager).

CREATE OR REPLACE FUNCTION farmops._memory_key(p_content text)
RETURNS text
LANGUAGE sql
STABLE
PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
    -- lower case, white space collapsed, trailing full stops and exclamation marks dropped
    SELECT encode(sha256(convert_to(
        rtrim(lower(regexp_replace(btrim(p_content), '[[:space:]]+', ' ', 'g')), '.! '), 'UTF8'
    )), 'hex')
$fn$;
COMMENT ON FUNCTION farmops._memory_key(text) IS
'Private: the dedup key of a memory: sha256 (hex) of its normalized text.';

CREATE OR REPLACE FUNCTION farmops.remember(p_content text, p_run_id uuid DEFAULT NULL)
RETURNS uuid
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_farm_id uuid := farmops.require_capability('remember');
    v_content text := farmops._text_argument(p_content, 'memory', 2000, 'text');
    v_id uuid;
BEGIN
    IF p_run_id IS NOT NULL THEN
        PERFORM farmops._lock_run(v_farm_id, p_run_id, false);
    END IF;
    INSERT INTO farmops.memories AS m (farm_id, content, content_key, source_run_id, created_by)
    VALUES (v_farm_id, v_content, farmops._memory_key(v_content), p_run_id, farmops.current_user_id())
    ON CONFLICT (farm_id, content_key) DO UPDATE SET updated_at = now()
    RETURNING m.id INTO v_id;
    RETURN v_id;
END
$fn$;
COMMENT ON FUNCTION farmops.remember(text, uuid) IS
'Any member but viewer (remember): stores a durable fact for this farm, or returns the id of the same fact (normalized '
'text) already stored. OF006 for empty/oversized/control characters; OF102 if p_run_id is not this farm''s.';

CREATE OR REPLACE FUNCTION farmops.forget(p_memory_id uuid)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_farm_id uuid := farmops.require_capability('forget_memories');
BEGIN
    DELETE FROM farmops.memories AS m WHERE m.farm_id = v_farm_id AND m.id = p_memory_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no memory % in this farm', p_memory_id USING ERRCODE = 'OF206';
    END IF;
    -- A forgotten fact must not be retrievable afterwards, not even for a moment.
    DELETE FROM farmops.embeddings AS e
    WHERE e.farm_id = v_farm_id AND e.source_type = 'memory' AND e.source_id = p_memory_id;
END
$fn$;
COMMENT ON FUNCTION farmops.forget(uuid) IS
'Owner or manager only (forget_memories; OF003 otherwise): deletes a memory of this farm and its vectors; '
'OF206 if there is none.';

CREATE OR REPLACE FUNCTION farmops.embed_memory(p_memory_id uuid, p_embedding vector, p_model text)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    -- The same members that may remember a fact may index it (the agent included).
    v_farm_id uuid := farmops.require_capability('remember');
    v_model text := farmops._text_argument(p_model, 'model', 200);
    v_content text;
BEGIN
    PERFORM farmops.assert_valid_vector(p_embedding, 'memory embedding');
    PERFORM farmops._assert_embedding_model_for_write(v_farm_id, v_model);
    -- The indexed text is the stored fact itself, never caller-supplied text.
    SELECT m.content INTO v_content
    FROM farmops.memories AS m
    WHERE m.farm_id = v_farm_id AND m.id = p_memory_id
    FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no memory % in this farm', p_memory_id USING ERRCODE = 'OF206';
    END IF;
    DELETE FROM farmops.embeddings AS e
    WHERE e.farm_id = v_farm_id AND e.source_type = 'memory' AND e.source_id = p_memory_id;
    INSERT INTO farmops.embeddings (farm_id, source_type, source_id, chunk_index, content, embedding, model)
    VALUES (v_farm_id, 'memory', p_memory_id, 0, v_content, p_embedding, v_model);
END
$fn$;
COMMENT ON FUNCTION farmops.embed_memory(uuid, vector, text) IS
'Any member but viewer: makes a memory of this farm retrievable by farmops.search (source type memory), '
'replacing its previous vector. OF206 unknown memory, OF301 wrong dimension, OF303 another embedding model '
'than the farm''s index, OF006 bad arguments.';
