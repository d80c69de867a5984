-- squawk-ignore-file ban-drop-constraint, prefer-bigint-over-int
-- (why: the two ledger checks are replaced in the same statement list by wider ones that
-- keep every old guarantee and admit the new 'extend' kind; credits are integer
-- everywhere, as credits_reserved is.)
-- Right-sized reservations (issue 16 §1): a run reserves one model call's upper bound
-- and farmops.extend_reservation (functions/20_credits/extend.sql) grows the hold of the
-- same live run before each further call. credits_reserved stays the run's whole hold
-- (what settle and expiry refund from, what grant counts as outstanding);
-- credits_extended is the part of it added after the reservation, one 'extend' ledger
-- leg per extension.
ALTER TABLE farmops.ai_runs ADD COLUMN credits_extended integer NOT NULL DEFAULT 0;
-- Existing rows hold 0 (the default), so the check holds for them; NOT VALID: no
-- validation scan in the install transaction.
ALTER TABLE farmops.ai_runs
ADD CONSTRAINT extensions_are_part_of_the_hold
CHECK (credits_extended >= 0 AND credits_extended < credits_reserved) NOT VALID;
COMMENT ON COLUMN farmops.ai_runs.credits_extended IS
'Credits added to the hold after the reservation (farmops.extend_reservation); included in credits_reserved.';
COMMENT ON COLUMN farmops.ai_runs.credits_reserved IS
'Credits the run holds: the caller''s upper bound at reserve time plus every extension (credits_extended).';

-- A new ledger kind: 'extend' moves credits from the balance into a live run's hold.
ALTER TABLE farmops.credit_ledger DROP CONSTRAINT credit_ledger_kind_check;
ALTER TABLE farmops.credit_ledger
ADD CONSTRAINT ledger_kinds_are_known
CHECK (kind IN ('grant', 'reserve', 'extend', 'settle_refund', 'settle_charge', 'expire_refund', 'adjust')) NOT VALID;
ALTER TABLE farmops.credit_ledger DROP CONSTRAINT each_ledger_kind_moves_one_way;
ALTER TABLE farmops.credit_ledger
ADD CONSTRAINT each_ledger_kind_moves_one_way
CHECK (
    (kind IN ('grant', 'settle_refund', 'expire_refund') AND delta > 0)
    OR (kind IN ('reserve', 'extend', 'settle_charge') AND delta < 0)
    OR kind = 'adjust'
) NOT VALID;

-- Still one reserve leg and one closing leg per run; extension legs are not limited.
DROP INDEX farmops.one_reserve_and_one_closing_leg_per_run;
CREATE UNIQUE INDEX one_reserve_and_one_closing_leg_per_run
ON farmops.credit_ledger (farm_id, ai_run_id, (kind = 'reserve'))
WHERE ai_run_id IS NOT NULL AND kind <> 'extend';
