-- The ledger's legs enter the audit chain straight from farmops.credit_ledger (issue 13: the audit
-- overhead; ADR 0018). A farm's legs are numbered under its farm row lock (ledger_seq, 0052), so they
-- become visible in seq order with no gap: the seal reads the legs past the farm's mark below, links
-- them, and moves the mark. The reservation path (and every other leg) then writes nothing for the
-- audit: no trigger, no queue row to insert, delete and vacuum.
--
-- The cut-over, in the install's one transaction: no run or leg can be written meanwhile, every leg
-- written so far already has its queue row in farmops._audit_pending (the triggers dropped here wrote
-- it, or migration 0080 did), so each farm's mark starts at its last leg; the seal links those queue
-- rows as before. Every leg is written after its farm row is updated (ledger_seq), and a reservation
-- inserts its run (queueing run.reserved) before that: locking ai_runs, then farms (reserve_run's
-- order) holds every writer off. (Not credit_ledger itself: the owner may not UPDATE, DELETE or
-- TRUNCATE it, which PostgreSQL 16 requires for this lock.)
LOCK TABLE farmops.ai_runs, farmops.farms IN EXCLUSIVE MODE;

-- No foreign key to farms: its check would share-lock the hot farm row until the seal commits (the
-- rule of migration 0135). Only the seal writes a mark, for a farm whose legs it has just read.
CREATE TABLE farmops._audit_ledger_marks (
    farm_id uuid PRIMARY KEY,
    -- Every leg of the farm up to this seq is in the chain (or, before the cut-over, queued for it).
    sealed_seq bigint NOT NULL,
    CONSTRAINT ledger_mark_is_a_seq CHECK (sealed_seq >= 0)
);
COMMENT ON TABLE farmops._audit_ledger_marks IS
'Private: per farm, the last credit_ledger seq linked into the audit chain; the seal takes the legs past it '
'(a farm without a row: none yet).';

INSERT INTO farmops._audit_ledger_marks (farm_id, sealed_seq)
SELECT
    l.farm_id,
    max(l.seq) AS sealed_seq
FROM farmops.credit_ledger AS l
GROUP BY l.farm_id;

DROP TRIGGER IF EXISTS ai_runs_reservations_are_audited ON farmops.ai_runs;
DROP TRIGGER IF EXISTS credit_ledger_legs_are_audited ON farmops.credit_ledger;
-- squawk-ignore ban-drop-function
DROP FUNCTION IF EXISTS farmops._audit_reservation();
-- squawk-ignore ban-drop-function
DROP FUNCTION IF EXISTS farmops._audit_ledger_leg();
-- It returns when each farm's oldest entry was written now (a queue row's or a leg's), not a queue id.
-- squawk-ignore ban-drop-function
DROP FUNCTION IF EXISTS farmops._audit_pending_farms();
