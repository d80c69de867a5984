-- Upgrade of 0002_runs_and_ledger.sql from its first released content (commit
-- 7c3a900) to the current one (4a13d92), for databases installed in between.
-- The runner applies it in 0002's place (before every later migration) only when
-- the ledger holds that first checksum (schema/CHECKSUMS), then records 0002's
-- current checksum. Every step is idempotent.

-- The first content had two unnamed table CHECKs, which PostgreSQL named
-- ai_runs_check and ai_runs_check1 (the expiry one); the current content has four,
-- numbered in order, so the expiry check is ai_runs_check3 and the two new ones
-- take 1 and 2. Later migrations may rename them by these names.
DO $ai_runs_checks$
BEGIN
    IF NOT EXISTS (
        SELECT FROM pg_catalog.pg_constraint
        WHERE conrelid = 'farmops.ai_runs'::pg_catalog.regclass AND conname = 'ai_runs_check3'
    ) THEN
        ALTER TABLE farmops.ai_runs RENAME CONSTRAINT ai_runs_check1 TO ai_runs_check3;
        ALTER TABLE farmops.ai_runs
        ADD CONSTRAINT ai_runs_check1 CHECK ((status IN ('succeeded', 'failed')) = (credits_actual IS NOT NULL)),
        ADD CONSTRAINT ai_runs_check2 CHECK (credits_shortfall <= coalesce(credits_actual, 0));
    END IF;
END
$ai_runs_checks$;

CREATE INDEX IF NOT EXISTS ai_runs_live_farm_idx ON farmops.ai_runs (farm_id)
WHERE status IN ('reserved', 'running');
COMMENT ON COLUMN farmops.ai_runs.credits_reserved IS
'Credits taken from the balance at reserve time (the caller''s upper bound).';
COMMENT ON COLUMN farmops.ai_runs.credits_actual IS
'What the run cost, set at settle (given, or computed from tokens at the rate in force at reserved_at).';
COMMENT ON COLUMN farmops.ai_runs.credits_shortfall IS
'Part of credits_actual the farm could not pay at settle time (the balance never goes negative).';
COMMENT ON COLUMN farmops.ai_runs.request_id IS
'Caller''s idempotency key, unique per farm: the same key returns the same run, never charges twice.';
COMMENT ON COLUMN farmops.ai_runs.expires_at IS
'A run still live after this is expired by farmops.expire_reservations() and its reservation refunded.';

-- The first content indexed ledger legs without making them unique.
DROP INDEX IF EXISTS farmops.credit_ledger_run_idx;
CREATE UNIQUE INDEX IF NOT EXISTS credit_ledger_one_leg_per_run_idx
ON farmops.credit_ledger (farm_id, ai_run_id, (kind = 'reserve'))
WHERE ai_run_id IS NOT NULL;
COMMENT ON COLUMN farmops.credit_ledger.delta IS
'Signed credit movement: grant and refunds positive, reserve and settle_charge negative.';
COMMENT ON COLUMN farmops.credit_ledger.balance_after IS
'farms.credit_balance right after this row; the rows of one farm chain in id order.';
COMMENT ON COLUMN farmops.credit_ledger.actor IS
'Who moved the credits: the tenant user, or the maintenance job that expired a run.';
