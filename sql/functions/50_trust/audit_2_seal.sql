-- The audit chain's sealing step (ADR 0018): see audit_1_write.sql for the whole picture.

-- The seal, set-based (issue 13: the audit overhead). Per batch, not per entry: reservations are read
-- and hashed in one join, every other immutable table's objects in one query each, the people the batch
-- names get their subjects in one INSERT, and only the link prev_hash -> hash, sequential by nature,
-- is a loop (a tight one: about 2 us an entry). The formulas are those of the per-entry helpers in
-- audit_2_content.sql (_audit_content, _audit_canonical, _subject_of, _audit_content_hash,
-- _audit_entry_hash), which verify_audit still uses: tests/trust/test_audit_seal.py checks that both
-- give the same hashes, and that a chain sealed half by the per-entry seal and half by this one verifies.
-- Its statements are planned once per session (force_generic_plan), not on every call: a seal runs
-- every few seconds, mostly on small batches. A long-lived sealer keeps the plans it made while the
-- tables were small (autovacuum analyzes _audit_pending when a seal has just emptied it), so every read
-- here is a key probe whatever the statistics say (enable_seqscan off; a backlog test in
-- tests/trust/test_audit_seal.py counts the rows read).
-- Every person value is looked up and created as a subject by its key (farmops._subject_key, as
-- _subject_of does): a product's person column may hold '' or more than 256 characters. Each distinct
-- value of the batch is keyed once, and its subject found once: the entries and objects join that
-- (value, subject) list, not farmops.subjects row by row.
CREATE OR REPLACE FUNCTION farmops._seal_audit_farm(
    p_farm_id uuid, p_limit integer DEFAULT NULL, p_skip_locked boolean DEFAULT false
)
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_xmin xid8;
    -- The batch's queue ids and ledger seqs (a prefix of each), and the last of each it takes.
    v_queued bigint [];
    v_legs bigint [];
    v_take_legs integer;
    v_mark bigint;
    v_last bigint;
    v_last_seq bigint;
    v_pending farmops._audit_pending [];
    v_head_seq bigint;
    v_prev text;
    v_table record;
    -- Reservations without a run: replays whose row ON CONFLICT did not insert (dropped).
    v_replays bigint [];
    -- People named by the batch's objects; the objects' content hashes (pending id, hash).
    v_people text [] := '{}';
    v_found_people text [];
    v_content_ids bigint [];
    v_content_hashes text [];
    v_found_ids bigint [];
    v_found_hashes text [];
    -- Per immutable table of the batch: the query computing its objects' content hashes.
    v_content_sql text [] := '{}';
    v_content_tables text [] := '{}';
    v_values text;
    v_joins text;
    v_pairs text;
    v_from text;
    v_person_keyed text [] := '{}';
    v_person_columns text [] := farmops._person_columns();
    -- Every distinct person value the batch names: its key, whether it acts, its subject.
    v_named text [];
    v_named_keys text [];
    v_named_actors boolean [];
    v_named_ids uuid [];
    v_entries farmops.audit_log [];
    v_tails text [];
    v_hashes text [] := '{}';
    v_prevs text [] := '{}';
    v_i integer;
    v_timeout text;
BEGIN
    -- One sealer per farm; writers never take this lock. A bounded seal (seal_audit(p_max_entries))
    -- skips a farm another sealer holds rather than queue behind it (no lock-order deadlock).
    IF p_skip_locked THEN
        PERFORM FROM farmops._farm_locks AS l WHERE l.farm_id = p_farm_id AND l.name = 'audit_seal'
        FOR UPDATE SKIP LOCKED;
        IF NOT FOUND THEN
            IF EXISTS (SELECT FROM farmops._farm_locks AS l WHERE l.farm_id = p_farm_id AND l.name = 'audit_seal') THEN
                RETURN 0;  -- another sealer holds it
            END IF;
            -- The farm's first seal: create its lock row, but do not queue behind another
            -- first sealer's uncommitted one (the timeout is undone with the block).
            BEGIN
                v_timeout := current_setting('lock_timeout');
                PERFORM set_config('lock_timeout', '10ms', true);
                INSERT INTO farmops._farm_locks (farm_id, name) VALUES (p_farm_id, 'audit_seal')
                ON CONFLICT (farm_id, name) DO NOTHING;
                PERFORM set_config('lock_timeout', v_timeout, true);
            EXCEPTION WHEN lock_not_available THEN
                RETURN 0;
            END;
            PERFORM FROM farmops._farm_locks AS l WHERE l.farm_id = p_farm_id AND l.name = 'audit_seal'
            FOR UPDATE SKIP LOCKED;
            IF NOT FOUND THEN
                RETURN 0;
            END IF;
        END IF;
    ELSE
        PERFORM farmops._lock_in_farm(p_farm_id, 'audit_seal');
    END IF;
    -- Every transaction older than the oldest running one has ended: nothing can
    -- still be appended before the entries taken now (commit order respected).
    v_xmin := pg_snapshot_xmin(pg_current_snapshot());
    -- The queue's candidates: the oldest p_limit finished entries. Two range scans of the key, not
    -- `id IN (... LIMIT)`: planned on statistics taken while the table was nearly empty (as it is after
    -- every seal), that semi-join rescanned the pending rows once per pending row, quadratic in a
    -- backlog (4.3 s for 5,000 entries).
    SELECT coalesce(array_agg(q.id ORDER BY q.id), '{}') INTO v_queued FROM (
        SELECT b.id FROM farmops._audit_pending AS b
        WHERE b.farm_id = p_farm_id AND b.xid < v_xmin
        ORDER BY b.id
        LIMIT p_limit
    ) AS q;
    -- The ledger's: its legs past the mark. Visible ones only, but no leg can appear below one that
    -- is: a farm's legs are numbered under its farm row lock, so they commit in seq order.
    v_mark := coalesce((SELECT m.sealed_seq FROM farmops._audit_ledger_marks AS m WHERE m.farm_id = p_farm_id), 0);
    SELECT coalesce(array_agg(q.seq ORDER BY q.seq), '{}') INTO v_legs FROM (
        SELECT l.seq FROM farmops.credit_ledger AS l
        WHERE l.farm_id = p_farm_id AND l.seq > v_mark
        ORDER BY l.seq
        LIMIT p_limit
    ) AS q;
    -- A bounded batch shares p_limit: each source takes at least half (what the other leaves, more),
    -- so that neither starves the other. A prefix of each, in its own order.
    v_take_legs := cardinality(v_legs);
    IF p_limit IS NOT NULL AND cardinality(v_queued) + v_take_legs > p_limit THEN
        v_take_legs := least(v_take_legs, greatest(p_limit - cardinality(v_queued), (p_limit + 1) / 2));
        v_queued := v_queued[1:p_limit - v_take_legs];
    END IF;
    v_last := v_queued[cardinality(v_queued)];
    v_last_seq := coalesce(v_legs[v_take_legs], v_mark);
    WITH moved AS (
        DELETE FROM farmops._audit_pending AS p
        WHERE p.farm_id = p_farm_id AND p.id <= v_last AND p.xid < v_xmin
        RETURNING p.*
    ),

    -- Each leg as the entry its trigger used to queue (ADR 0018): a reservation is run.reserved of its
    -- run (hashed with its leg below), any other leg ledger.<kind>. Keyed -seq: apart from queue ids.
    legs AS (
        SELECT ROW(
            l.farm_id, -l.seq, NULL, l.created_at, l.actor,
            CASE WHEN l.kind = 'reserve' THEN 'run.reserved' ELSE 'ledger.' || l.kind END,
            CASE WHEN l.kind = 'reserve' THEN 'ai_runs' ELSE 'credit_ledger' END,
            CASE WHEN l.kind = 'reserve' THEN l.ai_run_id::text ELSE l.seq::text END,
            CASE WHEN l.kind = 'reserve' THEN jsonb_build_object('credits_reserved', -l.delta)
                ELSE jsonb_build_object('run', l.ai_run_id, 'delta', l.delta, 'balance_after', l.balance_after)
            END
        )::farmops._audit_pending AS e
        FROM farmops.credit_ledger AS l
        WHERE l.farm_id = p_farm_id AND l.seq > v_mark AND l.seq <= v_last_seq
    ),

    batch AS (
        SELECT m::farmops._audit_pending AS e FROM moved AS m
        UNION ALL
        SELECT g.e FROM legs AS g
    )

    -- The chain's order within the batch: by when each event's transaction started, a leg before
    -- a queued entry of the same transaction, each source in its own order.
    SELECT array_agg(b.e ORDER BY (b.e).at, (b.e).id > 0, abs((b.e).id)) INTO v_pending FROM batch AS b;
    IF v_last_seq > v_mark THEN
        INSERT INTO farmops._audit_ledger_marks AS m (farm_id, sealed_seq) VALUES (p_farm_id, v_last_seq)
        ON CONFLICT (farm_id) DO UPDATE SET sealed_seq = excluded.sealed_seq;
    END IF;
    IF v_pending IS NULL THEN
        RETURN 0;
    END IF;

    -- Reservations, one join for the batch: replays (no run: dropped), and the content_hash
    -- (farmops._audit_content_hash of _audit_content) of each run's columns that never change with its
    -- reserve leg, person columns as subject ids (credit_ledger's one person column is actor; the
    -- run's, user_id). No leg: hashed by the detail alone, as _audit_content gives NULL.
    -- Both are joined to their subjects as they are: their CHECKs hold them to 1..256 characters, so
    -- each is its own key (farmops._subject_key; tests/trust/test_audit_seal_odd_values.py checks them).
    FOR v_i IN 1 .. 2 LOOP
        SELECT coalesce(array_agg(e.id) FILTER (WHERE r.id IS NULL), '{}'),
            coalesce(array_agg(e.id) FILTER (WHERE l.seq IS NOT NULL), '{}'),
            -- jsonb_build_object('object', jsonb_build_object('leg', ..., 'run', ...), 'detail', ...)::text,
            -- spelled as its text: jsonb prints keys shortest first, then bytewise ("detail" < "object",
            -- "leg" < "run"), and a nested value as it prints alone.
            coalesce(array_agg(encode(sha256(convert_to(
                '{"detail": ' || e.detail::text || ', "object": {"leg": ' || (to_jsonb(l) || jsonb_build_object(
                    'actor', to_jsonb(CASE WHEN l.actor ~ '^erased:[0-9a-f-]{36}$' THEN substr(l.actor, 8)
                        ELSE coalesce(sa.id::text, l.actor) END)
                ))::text || ', "run": ' || jsonb_build_object(
                    'farm_id', r.farm_id, 'id', r.id,
                    'user_id', to_jsonb(CASE WHEN r.user_id ~ '^erased:[0-9a-f-]{36}$' THEN substr(r.user_id, 8)
                        ELSE coalesce(su.id::text, r.user_id) END),
                    'feature', r.feature, 'model', r.model,
                    'credits_reserved', r.credits_reserved - r.credits_extended, 'request_id', r.request_id,
                    'reserved_at', r.reserved_at,
                    'expires_at', r.expires_at
                )::text || '}}', 'UTF8'
            )), 'hex')) FILTER (WHERE l.seq IS NOT NULL), '{}'),
            coalesce(array_agg(r.user_id) FILTER (
                WHERE l.seq IS NOT NULL AND su.id IS NULL AND r.user_id !~ '^erased:[0-9a-f-]{36}$'
            ), '{}') || coalesce(array_agg(l.actor) FILTER (
                WHERE l.seq IS NOT NULL AND sa.id IS NULL AND l.actor !~ '^erased:[0-9a-f-]{36}$'
            ), '{}')
        INTO v_replays, v_content_ids, v_content_hashes, v_found_people
        FROM unnest(v_pending) AS e
        -- Each a probe of its unique key per entry (LATERAL ... LIMIT 1 is never flattened into a
        -- join the planner may reorder): planned on statistics from when the farm had few legs, a plain
        -- join scanned every reserve leg of the farm per run, quadratic in the batch and the farm.
        LEFT JOIN LATERAL (
            SELECT r.* FROM farmops.ai_runs AS r WHERE r.farm_id = p_farm_id AND r.id = e.object_id::uuid LIMIT 1
        ) AS r ON true
        LEFT JOIN LATERAL (
            SELECT l.* FROM farmops.credit_ledger AS l
            WHERE l.farm_id = p_farm_id AND l.ai_run_id = r.id AND l.kind = 'reserve'
            LIMIT 1
        ) AS l ON true
        LEFT JOIN LATERAL (
            SELECT su.id FROM farmops.subjects AS su WHERE su.farm_id = p_farm_id AND su.user_id = r.user_id LIMIT 1
        ) AS su ON true
        LEFT JOIN LATERAL (
            SELECT sa.id FROM farmops.subjects AS sa WHERE sa.farm_id = p_farm_id AND sa.user_id = l.actor LIMIT 1
        ) AS sa ON true
        WHERE e.object_table = 'ai_runs' AND e.action = 'run.reserved';
        -- A person the reservations name without a subject yet (their first): created, then hashed again.
        EXIT WHEN v_i = 2 OR cardinality(v_found_people) = 0;
        INSERT INTO farmops.subjects AS s (farm_id, user_id)
        SELECT DISTINCT p_farm_id, v.value FROM unnest(v_found_people) AS v (value)
        ON CONFLICT (farm_id, user_id) DO NOTHING;
    END LOOP;

    -- Every other audited table of the batch: the queries that read all its objects at once (the key
    -- compared in its own type, so that the table's key index answers), their person columns joined
    -- to their subjects.
    FOR v_table IN
        SELECT t.object_table, a.id_column, a.immutable, a.person_key, farmops._audit_relation(t.object_table) AS rel
        FROM (
            SELECT DISTINCT e.object_table FROM unnest(v_pending) AS e WHERE e.object_table <> 'ai_runs'
        ) AS t
        CROSS JOIN LATERAL (SELECT k.* FROM farmops._audited_table(t.object_table) AS k LIMIT 1) AS a
        ORDER BY t.object_table
    LOOP
        IF v_table.person_key AND v_table.object_table <> 'credit_ledger' THEN
            v_person_keyed := v_person_keyed || v_table.object_table;
        END IF;
        CONTINUE WHEN NOT coalesce(v_table.immutable, false);
        -- The person columns: a value as `row ->> column` reads it; its subject as _subject_of gives it.
        SELECT coalesce(string_agg(format('(%s)', x.val), ', ' ORDER BY x.attnum), ''),
            coalesce(string_agg(format(
                ' LEFT JOIN unnest($4, $5) AS s%s (value, id) ON s%1$s.value = %s', x.attnum, x.val
            ), '' ORDER BY x.attnum), ''),
            coalesce(string_agg(format(
                '%L, to_jsonb(CASE WHEN %s ~ ''^erased:[0-9a-f-]{36}$'' THEN substr(%2$s, 8) '
                'ELSE coalesce(s%s.id::text, %2$s) END)', x.attname, x.val, x.attnum
            ), ', ' ORDER BY x.attnum), '')
        INTO v_values, v_joins, v_pairs
        FROM (
            SELECT a.attnum, a.attname, CASE WHEN a.atttypid = 'text'::regtype
                THEN format('t.%I', a.attname) ELSE format('(to_jsonb(t.%I) #>> ''{}'')', a.attname) END AS val
            FROM pg_catalog.pg_attribute AS a
            WHERE a.attrelid = v_table.rel AND a.attnum > 0 AND NOT a.attisdropped
                AND a.attname = ANY (v_person_columns)
        ) AS x;
        v_from := format(
            -- one key probe per entry, as for the reservations above
            ' FROM unnest($2) AS e CROSS JOIN LATERAL ('
            'SELECT t.* FROM %s AS t WHERE t.farm_id = $1 AND t.%I = CAST(e.object_id AS %s) LIMIT 1) AS t',
            v_table.rel, v_table.id_column, (
                SELECT format_type(a.atttypid, a.atttypmod) FROM pg_catalog.pg_attribute AS a
                WHERE a.attrelid = v_table.rel AND a.attname = v_table.id_column
            )
        );
        IF v_values <> '' THEN
            EXECUTE 'SELECT coalesce(array_agg(v.value) FILTER (WHERE v.value IS NOT NULL), ''{}'')' || v_from
                || ' CROSS JOIN LATERAL (VALUES ' || v_values || ') AS v (value) WHERE e.object_table = $3'
            INTO v_found_people USING p_farm_id, v_pending, v_table.object_table;
            v_people := v_people || v_found_people;
        END IF;
        v_content_sql := v_content_sql || (
            'SELECT coalesce(array_agg(e.id), ''{}''), coalesce(array_agg(encode(sha256(convert_to('
            || '''{"detail": '' || e.detail::text || '', "object": '' || (to_jsonb(t)'
            || CASE WHEN v_pairs <> '' THEN ' || jsonb_build_object(' || v_pairs || ')' ELSE '' END
            || ')::text || ''}'', ''UTF8'')), ''hex'')), ''{}'')'
            || v_from || v_joins || ' WHERE e.object_table = $3'
        );
        v_content_tables := v_content_tables || v_table.object_table;
    END LOOP;

    -- The people the batch names (actors, person keys, person columns of its objects), each value
    -- once, with its key.
    SELECT coalesce(array_agg(v.value), '{}'), coalesce(array_agg(farmops._subject_key(v.value)), '{}'),
        coalesce(array_agg(v.actor), '{}')
    INTO v_named, v_named_keys, v_named_actors
    FROM (
        SELECT u.value, bool_or(u.actor) AS actor
        FROM (
            SELECT e.actor AS value, true AS actor FROM unnest(v_pending) AS e
            WHERE NOT (e.object_table = 'ai_runs' AND e.action = 'run.reserved' AND e.id = ANY (v_replays))
            UNION ALL
            SELECT e.object_id, false FROM unnest(v_pending) AS e WHERE e.object_table = ANY (v_person_keyed)
            UNION ALL
            SELECT p.value, false FROM unnest(v_people) AS p (value)
        ) AS u
        WHERE u.value IS NOT NULL
        GROUP BY u.value
    ) AS v;
    -- They get their subjects, the missing ones in one statement ('erased:<id>' already names one). An
    -- actor spelled like a pseudonym that is no subject of this farm (a product's own row, a member's
    -- id: both may hold any text) is a value like any other: an entry's actor must be a subject.
    INSERT INTO farmops.subjects AS s (farm_id, user_id)
    SELECT DISTINCT p_farm_id, v.key
    FROM unnest(v_named, v_named_keys, v_named_actors) AS v (value, key, actor)
    LEFT JOIN LATERAL (
        SELECT x.id FROM farmops.subjects AS x WHERE x.farm_id = p_farm_id AND x.user_id = v.key LIMIT 1
    ) AS x ON true
    WHERE x.id IS NULL AND (v.value !~ '^erased:[0-9a-f-]{36}$' OR v.actor AND NOT EXISTS (
        SELECT FROM farmops.subjects AS y
        WHERE y.farm_id = p_farm_id AND y.id = CASE
            WHEN v.value ~ '^erased:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                THEN substr(v.value, 8)::uuid
        END
    ))
    ON CONFLICT (farm_id, user_id) DO NOTHING;
    -- Each value's subject, found once (a probe per value: a farm may have many people).
    SELECT coalesce(array_agg(v.value), '{}'), coalesce(array_agg(s.id), '{}') INTO v_named, v_named_ids
    FROM unnest(v_named, v_named_keys) AS v (value, key)
    CROSS JOIN LATERAL (
        SELECT s.id FROM farmops.subjects AS s WHERE s.farm_id = p_farm_id AND s.user_id = v.key LIMIT 1
    ) AS s;

    -- Every other immutable object's content_hash, by its table's query above.
    FOR v_i IN 1 .. cardinality(v_content_sql) LOOP
        EXECUTE v_content_sql[v_i] INTO v_found_ids, v_found_hashes
        USING p_farm_id, v_pending, v_content_tables[v_i], v_named, v_named_ids;
        v_content_ids := v_content_ids || v_found_ids;
        v_content_hashes := v_content_hashes || v_found_hashes;
    END LOOP;

    SELECT l.seq, l.hash INTO v_head_seq, v_prev
    FROM farmops.audit_log AS l WHERE l.farm_id = p_farm_id ORDER BY l.seq DESC LIMIT 1;
    v_head_seq := coalesce(v_head_seq, 0);
    v_prev := coalesce(v_prev, repeat('0', 64));

    -- Every entry of the batch in insert order, with the part of its hash after prev_hash
    -- (farmops._audit_entry_hash). A mutable object, or an immutable one that is gone, is hashed by
    -- its detail alone.
    WITH kept AS (
        SELECT e.*, v_head_seq + row_number() OVER (ORDER BY e.ordinality) AS seq_
        FROM unnest(v_pending) WITH ORDINALITY AS e
        WHERE NOT (e.object_table = 'ai_runs' AND e.action = 'run.reserved' AND e.id = ANY (v_replays))
    ),

    entries AS (
        SELECT k.seq_, k.at, k.action, k.object_table, k.detail,
            -- 'erased:<id>' of one of the farm's subjects is that subject, any other value its subject
            coalesce(se.id, sa.id) AS actor_,
            CASE WHEN k.object_table <> ALL (v_person_keyed) THEN k.object_id
                WHEN k.object_id ~ '^erased:[0-9a-f-]{36}$' THEN substr(k.object_id, 8)
                ELSE coalesce(so.id::text, k.object_id)
            END AS object_,
            coalesce(h.hash, encode(sha256(convert_to(k.detail::text, 'UTF8')), 'hex')) AS content_hash_
        FROM kept AS k
        LEFT JOIN LATERAL (
            SELECT se.id FROM farmops.subjects AS se
            WHERE se.farm_id = p_farm_id AND se.id = CASE
                WHEN k.actor ~ '^erased:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                    THEN substr(k.actor, 8)::uuid
            END
            LIMIT 1
        ) AS se ON true
        LEFT JOIN unnest(v_named, v_named_ids) AS sa (value, id) ON sa.value = k.actor
        LEFT JOIN unnest(v_named, v_named_ids) AS so (value, id)
            ON k.object_table = ANY (v_person_keyed) AND so.value = k.object_id
        LEFT JOIN unnest(v_content_ids, v_content_hashes) AS h (id, hash) ON h.id = k.id
    )

    SELECT
        array_agg(ROW(
            p_farm_id, e.seq_, e.at, now(), e.actor_, e.action, e.object_table, e.object_, e.detail,
            e.content_hash_, NULL, NULL
        )::farmops.audit_log ORDER BY e.seq_),
        array_agg(concat_ws(
            '|', p_farm_id, e.seq_, extract(EPOCH FROM e.at), e.actor_, e.action, e.object_table, e.object_,
            e.content_hash_, e.detail::text
        ) ORDER BY e.seq_)
    INTO v_entries, v_tails
    FROM entries AS e;
    IF v_entries IS NULL THEN
        RETURN 0;  -- only dropped replays
    END IF;

    -- The chain: each hash covers the one before it (farmops._audit_entry_hash).
    FOR v_i IN 1 .. cardinality(v_tails) LOOP
        v_prevs[v_i] := v_prev;
        v_prev := encode(sha256(convert_to(v_prev || '|' || v_tails[v_i], 'UTF8')), 'hex');
        v_hashes[v_i] := v_prev;
    END LOOP;

    -- One statement for the whole batch.
    INSERT INTO farmops.audit_log (
        farm_id, seq, at, sealed_at, actor, action, object_table, object_id, detail, content_hash, prev_hash, hash
    )
    SELECT e.farm_id, e.seq, e.at, e.sealed_at, e.actor, e.action, e.object_table, e.object_id, e.detail,
        e.content_hash, e.prev_, e.hash_
    FROM ROWS FROM (unnest(v_entries), unnest(v_prevs), unnest(v_hashes)) AS e (
        farm_id, seq, at, sealed_at, actor, action, object_table, object_id, detail, content_hash, prev_hash, hash,
        prev_, hash_
    );
    RETURN cardinality(v_entries);
END
$fn$;
COMMENT ON FUNCTION farmops._seal_audit_farm(uuid, integer, boolean) IS
'Private: links one farm''s pending audit entries whose transactions ended (the oldest p_limit of them; NULL: '
'all) into the chain (seq, content_hash, prev_hash, hash) under the farm''s audit_seal lock, set-based; with '
'p_skip_locked, a farm another sealer holds is skipped (0). Returns how many entries it linked.';
