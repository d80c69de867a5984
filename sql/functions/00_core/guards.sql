-- Trigger functions that hold for every role, the package owner and superusers
-- included: the ledger is append-only and run states only move forward.

CREATE OR REPLACE FUNCTION farmops.refuse_ledger_change()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    RAISE EXCEPTION '% on farmops.% is not allowed: the ledger is append-only', tg_op, tg_table_name
        USING ERRCODE = 'OF107',
        HINT = 'Correct a balance with a new row (kind ''adjust''), never by changing history.';
END
$fn$;
COMMENT ON FUNCTION farmops.refuse_ledger_change() IS
'Trigger: raises OF107 on UPDATE, DELETE or TRUNCATE of an append-only table, whoever tries.';

CREATE OR REPLACE FUNCTION farmops.check_run_transition()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF (new.farm_id, new.id, new.user_id, new.feature, new.model, new.credits_reserved, new.request_id,
        new.reserved_at, new.expires_at)
        IS DISTINCT FROM
        (old.farm_id, old.id, old.user_id, old.feature, old.model, old.credits_reserved, old.request_id,
        old.reserved_at, old.expires_at) THEN
        RAISE EXCEPTION 'the identity, reservation and deadline of run % are immutable', old.id
            USING ERRCODE = 'OF103';
    END IF;
    IF old.status IN ('succeeded', 'failed', 'expired') THEN
        RAISE EXCEPTION 'run % is % (terminal) and cannot change', old.id, old.status USING ERRCODE = 'OF103';
    END IF;
    IF new.status = 'reserved' AND old.status <> 'reserved' THEN
        RAISE EXCEPTION 'run % cannot go back from % to reserved', old.id, old.status USING ERRCODE = 'OF103';
    END IF;
    RETURN new;
END
$fn$;
COMMENT ON FUNCTION farmops.check_run_transition() IS
'Trigger: run states move reserved -> running -> succeeded|failed|expired only; terminal rows are final.';
