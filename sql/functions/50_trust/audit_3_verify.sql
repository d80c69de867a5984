-- Reading and verifying the audit chain (ADR 0018): see audit_1_write.sql for the whole picture.

CREATE OR REPLACE FUNCTION farmops._audit_farm_in_scope(p_farm_id uuid)
RETURNS uuid
LANGUAGE plpgsql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_farm uuid;
BEGIN
    -- In a tenant context: the context's farm, for a member holding verify_audit (the owner).
    IF coalesce(current_setting('farmops.farm_id', true), '') <> '' OR NOT pg_has_role(
        session_user, 'farmops_owner', 'MEMBER'
    ) THEN
        v_farm := farmops.require_capability('verify_audit');
        IF p_farm_id IS NOT NULL AND p_farm_id <> v_farm THEN
            RAISE EXCEPTION 'farm % is not the farm of this tenant context', p_farm_id USING ERRCODE = 'OF002';
        END IF;
        RETURN v_farm;
    END IF;
    -- The package owner's login, without a context: any farm (NULL: every farm).
    IF p_farm_id IS NOT NULL AND NOT EXISTS (SELECT FROM farmops.farms AS f WHERE f.id = p_farm_id) THEN
        RAISE EXCEPTION 'no farm %', p_farm_id USING ERRCODE = 'OF002';
    END IF;
    RETURN p_farm_id;
END
$fn$;
COMMENT ON FUNCTION farmops._audit_farm_in_scope(uuid) IS
'Private: the farm an audit call covers: in a tenant context the current farm, for a member holding '
'verify_audit (OF001, OF002 for another farm, OF003); for the package owner''s login without one, the farm named '
'(NULL: every farm).';

CREATE OR REPLACE FUNCTION farmops.audit_head(p_farm_id uuid DEFAULT NULL)
RETURNS TABLE (seq bigint, hash text)
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_farm uuid;
BEGIN
    PERFORM farmops._assert_login_allowed();
    v_farm := farmops._audit_farm_in_scope(p_farm_id);
    PERFORM farmops._assert_given(v_farm, 'farm id');
    PERFORM farmops._seal_audit_farm(v_farm);
    RETURN QUERY
    SELECT coalesce(max(l.seq), 0)::bigint,
        coalesce((SELECT h.hash FROM farmops.audit_log AS h WHERE h.farm_id = v_farm ORDER BY h.seq DESC LIMIT 1),
            repeat('0', 64))
    FROM farmops.audit_log AS l WHERE l.farm_id = v_farm;
END
$fn$;
COMMENT ON FUNCTION farmops.audit_head(uuid) IS
'The farm''s chain head (seq, hash) after sealing what has ended, to keep outside the database and pass to '
'verify_audit later (p_trusted_seq, p_trusted_hash). Farm owner (verify_audit): the current farm; package '
'owner: any farm. OF001, OF002, OF003, OF006.';

CREATE OR REPLACE FUNCTION farmops._audit_is_immutable(p_table text, p_action text)
RETURNS boolean
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT p_action = 'run.reserved' OR coalesce(
        (SELECT a.immutable FROM farmops._audited_table(p_table) AS a WHERE p_table <> 'ai_runs' LIMIT 1), false
    )
$fn$;
COMMENT ON FUNCTION farmops._audit_is_immutable(text, text) IS
'Private: true if an entry''s content_hash covers an immutable object (a reservation, a ledger leg, a record, '
'an autonomy change), which verify_audit re-hashes from the row.';

CREATE OR REPLACE FUNCTION farmops._verify_audit_farm(p_farm_id uuid, p_trusted_seq bigint, p_trusted_hash text)
RETURNS TABLE (entries bigint, head_seq bigint, head_hash text, broken_at_seq bigint, problem text)
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_entry farmops.audit_log;
    v_seq bigint := 0;
    v_prev text := repeat('0', 64);
    v_content jsonb;
    v_missing bigint;
BEGIN
    PERFORM farmops._seal_audit_farm(p_farm_id);
    entries := 0;
    FOR v_entry IN SELECT l.* FROM farmops.audit_log AS l WHERE l.farm_id = p_farm_id ORDER BY l.seq LOOP
        entries := entries + 1;
        IF broken_at_seq IS NULL THEN
            IF v_entry.seq <> v_seq + 1 THEN
                broken_at_seq := v_seq + 1;
                problem := format('entry %s is missing (the next is %s)', v_seq + 1, v_entry.seq);
            ELSIF v_entry.prev_hash <> v_prev THEN
                broken_at_seq := v_entry.seq;
                problem := format('entry %s does not link to entry %s (prev_hash differs)', v_entry.seq, v_seq);
            ELSIF v_entry.hash <> farmops._audit_entry_hash(v_entry) THEN
                broken_at_seq := v_entry.seq;
                problem := format('entry %s was changed (its hash does not match its content)', v_entry.seq);
            ELSE
                v_content := farmops._audit_content(
                    p_farm_id, v_entry.object_table, v_entry.object_id, v_entry.action, false
                );
                IF v_content IS NOT NULL OR farmops._audit_is_immutable(v_entry.object_table, v_entry.action) THEN
                    IF v_content IS NULL THEN
                        broken_at_seq := v_entry.seq;
                        problem := format('%s %s of entry %s is gone', v_entry.object_table, v_entry.object_id,
                            v_entry.seq);
                    ELSIF farmops._audit_content_hash(v_content, v_entry.detail) <> v_entry.content_hash THEN
                        broken_at_seq := v_entry.seq;
                        problem := format('%s %s or entry %s was changed (content_hash differs)',
                            v_entry.object_table, v_entry.object_id, v_entry.seq);
                    END IF;
                ELSIF farmops._audit_content_hash(NULL, v_entry.detail) <> v_entry.content_hash THEN
                    broken_at_seq := v_entry.seq;
                    problem := format('entry %s: detail does not match its content_hash', v_entry.seq);
                END IF;
            END IF;
        END IF;
        v_seq := v_entry.seq;
        v_prev := v_entry.hash;
        IF v_entry.seq = p_trusted_seq AND v_entry.hash <> p_trusted_hash AND broken_at_seq IS NULL THEN
            broken_at_seq := v_entry.seq;
            problem := format('the chain no longer extends the trusted head %s:%s (history was rewritten)',
                p_trusted_seq, p_trusted_hash);
        END IF;
    END LOOP;
    head_seq := v_seq;
    head_hash := v_prev;
    IF broken_at_seq IS NULL AND p_trusted_seq > v_seq THEN
        broken_at_seq := v_seq + 1;
        problem := format('the trusted head %s is beyond the chain''s head %s (entries were removed)',
            p_trusted_seq, v_seq);
    END IF;
    IF broken_at_seq IS NULL THEN
        -- Every ledger leg up to the farm's mark is in the chain (or, queued before migration 0160,
        -- still pending); those past it are the next seal's. A leg slipped in below the mark (by a
        -- superuser: the seq is the farm's key) or a mark moved past unsealed legs is caught here.
        SELECT min(l.seq) INTO v_missing
        FROM farmops.credit_ledger AS l
        WHERE l.farm_id = p_farm_id
            AND l.seq <= coalesce((
                SELECT m.sealed_seq FROM farmops._audit_ledger_marks AS m WHERE m.farm_id = p_farm_id
            ), 0)
            AND NOT EXISTS (
                SELECT FROM farmops.audit_log AS a
                WHERE a.farm_id = p_farm_id AND a.object_table = 'credit_ledger' AND a.object_id = l.seq::text
            )
            AND NOT (l.kind = 'reserve' AND EXISTS (
                SELECT FROM farmops.audit_log AS a
                WHERE a.farm_id = p_farm_id AND a.object_table = 'ai_runs' AND a.object_id = l.ai_run_id::text
                    AND a.action = 'run.reserved'
            ))
            AND NOT EXISTS (
                SELECT FROM farmops._audit_pending AS p
                WHERE p.farm_id = p_farm_id
                    AND (
                        (p.object_table = 'credit_ledger' AND p.object_id = l.seq::text)
                        OR (p.object_table = 'ai_runs' AND p.object_id = l.ai_run_id::text)
                    )
            );
        IF v_missing IS NOT NULL THEN
            broken_at_seq := v_seq + 1;
            problem := format('credit_ledger %s has no audit entry', v_missing);
        END IF;
    END IF;
    RETURN NEXT;
END
$fn$;
COMMENT ON FUNCTION farmops._verify_audit_farm(uuid, bigint, text) IS
'Private: seals, then re-hashes one farm''s chain and every immutable object against its content_hash; the first '
'problem found (broken_at_seq, problem), or NULLs.';

CREATE OR REPLACE FUNCTION farmops.verify_audit(
    p_farm_id uuid DEFAULT NULL,
    p_trusted_seq bigint DEFAULT NULL,
    p_trusted_hash text DEFAULT NULL
)
RETURNS TABLE (
    farm_id uuid, entries bigint, head_seq bigint, head_hash text, broken_at_seq bigint, problem text
)
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_farm uuid;
    v_hash text := farmops._text_argument(p_trusted_hash, 'trusted hash', 64, 'line', false);
BEGIN
    PERFORM farmops._assert_login_allowed();
    v_farm := farmops._audit_farm_in_scope(p_farm_id);
    IF (p_trusted_seq IS NULL) <> (v_hash IS NULL) OR p_trusted_seq < 1 OR v_hash !~ '^[0-9a-f]{64}$' THEN
        RAISE EXCEPTION 'a trusted head is a seq of at least 1 and its 64 hex digit hash, both or neither'
            USING ERRCODE = 'OF006';
    END IF;
    IF v_farm IS NULL AND p_trusted_seq IS NOT NULL THEN
        RAISE EXCEPTION 'a trusted head belongs to one farm: name it' USING ERRCODE = 'OF006';
    END IF;
    FOR v_farm IN
        SELECT f.id FROM farmops.farms AS f WHERE v_farm IS NULL OR f.id = v_farm ORDER BY f.id
    LOOP
        farm_id := v_farm;
        SELECT v.* INTO entries, head_seq, head_hash, broken_at_seq, problem
        FROM farmops._verify_audit_farm(v_farm, p_trusted_seq, v_hash) AS v;
        RETURN NEXT;
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION farmops.verify_audit(uuid, bigint, text) IS
'Seals, then verifies the audit chain of the current farm (farm owner: verify_audit) or of p_farm_id / every '
'farm (package owner): re-hashes every entry and every ledger leg, record and autonomy change against its '
'content_hash, checks every ledger leg is in the chain, and with p_trusted_seq and p_trusted_hash (from '
'audit_head, kept outside the database) that the chain still extends that head. One row per farm; '
'broken_at_seq and problem NULL when intact. OF001, OF002, OF003, OF006.';
