-- The audit chain's sealing job (ADR 0018): farmops.seal_audit() seals every farm with pending
-- entries by farmops._seal_audit_farm (audit_2_seal.sql), one farm's failure isolated from the others.

-- The farms with queued entries and when the oldest was written, each farm found by one probe of
-- _audit_pending's key (farm_id, id) instead of a scan of every pending row. The probes stay probes
-- when the statistics say the table is empty (as they do after a seal) and a backlog has built up
-- since: three scans of it per farm otherwise (enable_seqscan off).
CREATE OR REPLACE FUNCTION farmops._audit_queued_farms()
RETURNS TABLE (farm_id uuid, oldest timestamptz)
LANGUAGE sql
STABLE
SET enable_seqscan = off
SET search_path = pg_catalog, pg_temp
AS $fn$
    WITH RECURSIVE farms AS (
        SELECT (SELECT p.farm_id FROM farmops._audit_pending AS p ORDER BY p.farm_id LIMIT 1) AS farm_id
        UNION ALL
        SELECT (
            SELECT p.farm_id FROM farmops._audit_pending AS p WHERE p.farm_id > f.farm_id
            ORDER BY p.farm_id LIMIT 1
        )
        FROM farms AS f
        WHERE f.farm_id IS NOT NULL
    )

    SELECT f.farm_id, (
        SELECT p.at FROM farmops._audit_pending AS p WHERE p.farm_id = f.farm_id ORDER BY p.id LIMIT 1
    )
    FROM farms AS f
    WHERE f.farm_id IS NOT NULL
$fn$;
COMMENT ON FUNCTION farmops._audit_queued_farms() IS
'Private: each farm with entries queued in _audit_pending and when the oldest was written, found by probing '
'_audit_pending''s key once per farm (a loose index scan).';

-- Every farm with entries to seal: queued ones, or ledger legs past its mark. The latter compares each
-- farm's ledger_seq with its mark: one pass over farms and the marks (a hash join where there are
-- many: about 2.5 ms per 10,000 farms), then a probe of the ledger's key for each farm found.
CREATE OR REPLACE FUNCTION farmops._audit_pending_farms()
RETURNS TABLE (farm_id uuid, oldest timestamptz)
LANGUAGE sql
STABLE
SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT w.farm_id, min(w.oldest)
    FROM (
        SELECT q.farm_id, q.oldest FROM farmops._audit_queued_farms() AS q
        UNION ALL
        SELECT f.id, (
            SELECT l.created_at FROM farmops.credit_ledger AS l
            WHERE l.farm_id = f.id AND l.seq > coalesce(m.sealed_seq, 0)
            ORDER BY l.seq LIMIT 1
        )
        FROM farmops.farms AS f
        LEFT JOIN farmops._audit_ledger_marks AS m ON m.farm_id = f.id
        WHERE f.ledger_seq > coalesce(m.sealed_seq, 0)
    ) AS w
    GROUP BY w.farm_id
$fn$;
COMMENT ON FUNCTION farmops._audit_pending_farms() IS
'Private: each farm with entries to seal (queued in _audit_pending, or ledger legs past its mark) and when its '
'oldest was written.';

-- One farm's seal inside seal_audit(): isolated, so that a farm whose seal fails (an entry it cannot
-- read: a broken row, a value no check foresaw) stops neither the other farms nor every later call,
-- all of which run in one transaction. The subtransaction undoes everything the farm's seal did (its
-- entries stay pending, none of its chain is written, its lock is released), the error becomes a
-- WARNING in the job's log, and the next call tries the farm again. An error that concerns the whole
-- transaction, not the farm (class 40: serialization failure, deadlock; 53: resources; 57: cancel,
-- shutdown; 58, XX) is raised as before. (audit_head and verify_audit, asked about one farm, raise.)
-- seal_audit() first seals every farm in ONE subtransaction, and falls back to this, farm by farm,
-- only when that fails: a subtransaction that writes keeps its xid until the transaction ends, and
-- past 64 of them (PGPROC_MAX_CACHED_SUBXIDS) every snapshot taken in the cluster while the seal
-- runs is marked overflowed and reads pg_subtrans, the writers' included.
CREATE OR REPLACE FUNCTION farmops._seal_audit_farm_or_warn(p_farm_id uuid, p_limit integer, p_skip_locked boolean)
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_state text;
    v_message text;
BEGIN
    RETURN farmops._seal_audit_farm(p_farm_id, p_limit, p_skip_locked);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT;
    IF left(v_state, 2) IN ('40', '53', '57', '58', 'XX') THEN
        RAISE;
    END IF;
    -- (the message of a data error may quote the value: cut short, as a 10k-character value would be)
    RAISE WARNING 'audit seal of farm % failed (SQLSTATE %: %): its entries stay pending', p_farm_id, v_state,
        left(v_message, 300);
    RETURN 0;
END
$fn$;
COMMENT ON FUNCTION farmops._seal_audit_farm_or_warn(uuid, integer, boolean) IS
'Private: farmops._seal_audit_farm for seal_audit(), in a subtransaction: when the farm''s seal fails, a WARNING '
'names the farm, the SQLSTATE and the message, nothing of it stays (its entries stay pending) and it returns 0; '
'errors of the whole transaction (classes 40, 53, 57, 58, XX) are raised.';

-- Both seal_audit() forms: every farm with pending entries, all in one subtransaction; if a farm's
-- seal fails, all undone and done again farm by farm, that one skipped with a WARNING
-- (_seal_audit_farm_or_warn). Unbounded (p_max_entries NULL): farms in id order, so that concurrent
-- sealers queue on each farm's seal lock in the same order. Bounded: the farm waiting longest first,
-- a farm another sealer holds skipped, not waited for, and at most p_max_entries entries.
CREATE OR REPLACE FUNCTION farmops._seal_every_farm(p_max_entries integer)
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_bounded boolean := p_max_entries IS NOT NULL;
    v_farm uuid;
    v_count integer := 0;
    v_isolated boolean := false;
BEGIN
    LOOP
        BEGIN
            FOR v_farm IN
                SELECT f.farm_id FROM farmops._audit_pending_farms() AS f
                ORDER BY CASE WHEN v_bounded THEN f.oldest END, f.farm_id
            LOOP
                EXIT WHEN v_count >= p_max_entries;
                IF v_isolated THEN
                    v_count := v_count + farmops._seal_audit_farm_or_warn(v_farm, p_max_entries - v_count, v_bounded);
                ELSE
                    v_count := v_count + farmops._seal_audit_farm(v_farm, p_max_entries - v_count, v_bounded);
                END IF;
            END LOOP;
            RETURN v_count;
        EXCEPTION WHEN OTHERS THEN
            IF v_isolated THEN
                RAISE;  -- an error of the whole transaction, which _seal_audit_farm_or_warn raised
            END IF;
        END;
        v_count := 0;
        v_isolated := true;
    END LOOP;
END
$fn$;
COMMENT ON FUNCTION farmops._seal_every_farm(integer) IS
'Private: the body of both farmops.seal_audit() forms: seals every farm with pending entries (p_max_entries NULL: '
'all, in farm id order, waiting for each farm''s seal lock; else at most that many, oldest farm first, farms '
'another sealer holds skipped), a farm whose seal fails skipped with a WARNING; returns how many entries.';

CREATE OR REPLACE FUNCTION farmops.seal_audit()
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    PERFORM farmops._assert_login_allowed();
    RETURN farmops._seal_every_farm(NULL);
END
$fn$;
COMMENT ON FUNCTION farmops.seal_audit() IS
'Maintenance (farmops_maintainer): links every farm''s pending audit entries whose transactions have ended into '
'its chain; returns how many. Safe to run concurrently and while the farms write. A farm whose seal fails is '
'skipped with a WARNING (its entries stay pending); the others are sealed.';

CREATE OR REPLACE FUNCTION farmops.seal_audit(p_max_entries integer)
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    PERFORM farmops._assert_login_allowed();
    PERFORM farmops._assert_in_range(p_max_entries, 'max entries', 1, 2147483647);
    RETURN farmops._seal_every_farm(p_max_entries);
END
$fn$;
COMMENT ON FUNCTION farmops.seal_audit(integer) IS
'Maintenance (farmops_maintainer): seal_audit() in a bounded transaction: links at most p_max_entries finished '
'audit entries, oldest farm first, skipping a farm another sealer is sealing; returns how many. Call it again '
'while it returns p_max_entries. A farm whose seal fails is skipped with a WARNING. OF006 unless p_max_entries '
'is 1 or more.';
