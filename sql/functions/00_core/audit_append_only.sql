-- The guard trigger of the write path's append-only history tables.

CREATE OR REPLACE FUNCTION farmops.refuse_history_rewrite()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP USING ERRCODE = 'OF107';
END
$fn$;
COMMENT ON FUNCTION farmops.refuse_history_rewrite() IS
'Trigger: raises OF107 on UPDATE, DELETE or TRUNCATE of an append-only write-path table (autonomy_changes, ai_evals).';
