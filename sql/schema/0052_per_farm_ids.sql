-- squawk-ignore-file changing-column-type
-- (why: ai_evals.id and ai_run_retrievals.id become uuids; nothing references them
-- and the client reads them as opaque values.)
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
-- Both tables are append-only, for every role (a trigger ENABLE ALWAYS that
-- sql/functions attaches after the migrations: present when upgrading, not yet on
-- a fresh install). Existing rows get their seq here, numbered in the old id order
-- within each farm, with that trigger lifted for exactly this one UPDATE: the
-- deliberate, one-time re-keying of history. Then the global id is dropped, so no
-- session can read it again; (farm_id, seq) is the key.
DO $rekey$
DECLARE
    v_table text;
    v_trigger text;
    v_has_trigger boolean;
BEGIN
    FOREACH v_table IN ARRAY ARRAY['credit_ledger', 'autonomy_changes'] LOOP
        v_trigger := v_table || '_is_append_only';
        v_has_trigger := EXISTS (
            SELECT FROM pg_catalog.pg_trigger AS t
            WHERE t.tgrelid = format('farmops.%I', v_table)::regclass AND t.tgname = v_trigger
        );
        EXECUTE format('ALTER TABLE farmops.%I ADD COLUMN seq bigint', v_table);
        IF v_has_trigger THEN
            EXECUTE format('ALTER TABLE farmops.%I DISABLE TRIGGER %I', v_table, v_trigger);
        END IF;
        EXECUTE format(
            'UPDATE farmops.%1$I AS t SET seq = n.seq '
            'FROM (SELECT o.farm_id, o.id, row_number() OVER (PARTITION BY o.farm_id ORDER BY o.id) AS seq '
            'FROM farmops.%1$I AS o) AS n '
            'WHERE t.farm_id = n.farm_id AND t.id = n.id',
            v_table
        );
        IF v_has_trigger THEN
            EXECUTE format('ALTER TABLE farmops.%I ENABLE ALWAYS TRIGGER %I', v_table, v_trigger);
        END IF;
        EXECUTE format('ALTER TABLE farmops.%I ALTER COLUMN seq SET NOT NULL', v_table);
        EXECUTE format('ALTER TABLE farmops.%I DROP COLUMN id', v_table);  -- and the old key with it
        EXECUTE format('ALTER TABLE farmops.%I ADD PRIMARY KEY (farm_id, seq)', v_table);
        EXECUTE format('ALTER TABLE farmops.%1$I ADD CONSTRAINT %1$s_seq_starts_at_one CHECK (seq >= 1)', v_table);
    END LOOP;
END
$rekey$;

UPDATE farmops.farms AS f
SET ledger_seq = coalesce((SELECT max(l.seq) FROM farmops.credit_ledger AS l WHERE l.farm_id = f.id), 0);

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
