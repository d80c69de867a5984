-- squawk-ignore-file changing-column-type, ban-alter-identity, constraint-missing-not-valid
-- (why: ai_evals.id and ai_run_retrievals.id become uuids: nothing references them,
-- only farmops functions insert rows, the client reads them as opaque values; the
-- new CHECK on farms scans one row per farm, inside the install's one transaction.)
-- Ids a tenant sees count only its own rows. A table-wide identity showed every
-- farm the others' activity in the gaps (farm A's ledger ids jumped from 57 to 61
-- across farm B's writes). Tables whose rows have an order of their own get a
-- per-farm sequence number assigned under the lock their write already holds;
-- the others get uuid keys.

-- 1. The credit ledger: seq = 1, 2, 3 ... per farm. Every ledger row is written by
-- a statement that updates the farm row (balance), so the farm row carries the
-- counter and the same UPDATE increments it: no extra lock, no extra write.
ALTER TABLE farmops.farms ADD COLUMN ledger_seq bigint NOT NULL DEFAULT 0;
ALTER TABLE farmops.farms ADD CONSTRAINT ledger_seq_is_never_negative CHECK (ledger_seq >= 0);
COMMENT ON COLUMN farmops.farms.ledger_seq IS
'The seq of the farm''s newest credit_ledger row; incremented by the same UPDATE that moves the balance.';

-- 2. The autonomy history: seq per farm, the next one read under the farm row lock
-- that farmops.set_autonomy() takes before it writes.
--
-- Both tables are append-only, for every role: a trigger ENABLE ALWAYS, UPDATE
-- revoked from everyone (the package owner included), RLS forced with no UPDATE
-- policy. All three are set after the migrations (sql/functions, sql/policies):
-- present when upgrading, not yet on a fresh install. Existing rows get their seq
-- here, numbered in the old id order within each farm, with exactly those three
-- lifted for this one UPDATE and restored right after: the deliberate, one-time
-- re-keying of history. Then the global id is dropped, so no session can read it
-- again; (farm_id, seq) is the key.
DO $rekey$
DECLARE
    v_table text;
    v_rel regclass;
    v_trigger text;
    v_has_trigger boolean;
    v_forced boolean;
    v_lacks_update boolean;
BEGIN
    FOREACH v_table IN ARRAY ARRAY['credit_ledger', 'autonomy_changes'] LOOP
        v_rel := format('farmops.%I', v_table)::regclass;
        v_trigger := v_table || '_is_append_only';
        v_has_trigger := EXISTS (
            SELECT FROM pg_catalog.pg_trigger AS t WHERE t.tgrelid = v_rel AND t.tgname = v_trigger
        );
        v_forced := (SELECT c.relforcerowsecurity FROM pg_catalog.pg_class AS c WHERE c.oid = v_rel);
        v_lacks_update := NOT has_table_privilege(current_user, v_rel, 'UPDATE');
        EXECUTE format('ALTER TABLE %s ADD COLUMN seq bigint', v_rel);
        IF v_has_trigger THEN
            EXECUTE format('ALTER TABLE %s DISABLE TRIGGER %I', v_rel, v_trigger);
        END IF;
        IF v_forced THEN
            EXECUTE format('ALTER TABLE %s NO FORCE ROW LEVEL SECURITY', v_rel);
        END IF;
        IF v_lacks_update THEN
            EXECUTE format('GRANT UPDATE ON %s TO %I', v_rel, current_user);
        END IF;
        EXECUTE format(
            'UPDATE %1$s AS t SET seq = n.seq '
            'FROM (SELECT o.farm_id, o.id, row_number() OVER (PARTITION BY o.farm_id ORDER BY o.id) AS seq '
            'FROM %1$s AS o) AS n '
            'WHERE t.farm_id = n.farm_id AND t.id = n.id',
            v_rel
        );
        IF v_lacks_update THEN
            EXECUTE format('REVOKE UPDATE ON %s FROM %I', v_rel, current_user);
        END IF;
        IF v_forced THEN
            EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', v_rel);
        END IF;
        IF v_has_trigger THEN
            EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER %I', v_rel, v_trigger);
        END IF;
        EXECUTE format('ALTER TABLE %s ALTER COLUMN seq SET NOT NULL', v_rel);
        EXECUTE format('ALTER TABLE %s DROP COLUMN id', v_rel);  -- and the old key with it
        EXECUTE format('ALTER TABLE %s ADD PRIMARY KEY (farm_id, seq)', v_rel);
        EXECUTE format('ALTER TABLE farmops.%1$I ADD CONSTRAINT %1$s_seq_starts_at_one CHECK (seq >= 1)', v_table);
    END LOOP;
END
$rekey$;

-- The counters start where the numbering ends. farms and the ledger have RLS
-- forced when upgrading and, from an install older than 0031, no policy yet
-- (sql/policies re-creates them after the migrations): lifted for this one UPDATE.
DO $counters$
DECLARE
    v_forced regclass[] := ARRAY(
        SELECT c.oid::regclass FROM pg_catalog.pg_class AS c
        WHERE c.oid IN ('farmops.farms'::regclass, 'farmops.credit_ledger'::regclass) AND c.relforcerowsecurity
    );
    v_rel regclass;
BEGIN
    FOREACH v_rel IN ARRAY v_forced LOOP
        EXECUTE format('ALTER TABLE %s NO FORCE ROW LEVEL SECURITY', v_rel);
    END LOOP;
    UPDATE farmops.farms AS f
    SET ledger_seq = coalesce((SELECT max(l.seq) FROM farmops.credit_ledger AS l WHERE l.farm_id = f.id), 0);
    FOREACH v_rel IN ARRAY v_forced LOOP
        EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', v_rel);
    END LOOP;
END
$counters$;

COMMENT ON COLUMN farmops.credit_ledger.seq IS
'1, 2, 3 ... per farm, in the order the rows were written; balance_after chains in this order.';
COMMENT ON COLUMN farmops.credit_ledger.balance_after IS
'farms.credit_balance right after this row; the rows of one farm chain in seq order.';
COMMENT ON COLUMN farmops.autonomy_changes.seq IS '1, 2, 3 ... per farm, in the order of the changes.';

-- 3. Evaluations and lineage need no order beyond their own columns (created_at;
-- search and rank): random uuid keys.
ALTER TABLE farmops.ai_evals ALTER COLUMN id DROP IDENTITY;
ALTER TABLE farmops.ai_evals ALTER COLUMN id SET DATA TYPE uuid USING gen_random_uuid();
ALTER TABLE farmops.ai_evals ALTER COLUMN id SET DEFAULT gen_random_uuid();
ALTER TABLE farmops.ai_run_retrievals ALTER COLUMN id DROP IDENTITY;
ALTER TABLE farmops.ai_run_retrievals ALTER COLUMN id SET DATA TYPE uuid USING gen_random_uuid();
ALTER TABLE farmops.ai_run_retrievals ALTER COLUMN id SET DEFAULT gen_random_uuid();
