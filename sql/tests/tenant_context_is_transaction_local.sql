-- Run by tests/test_sql_scripts.py through psql as the application role.
-- The context ends with its transaction, so a pooled connection cannot leak it.
BEGIN;
CREATE TEMPORARY TABLE context_probe ON COMMIT DROP AS
SELECT farmops.create_farm('Pool Farm', 'pooled-user') AS farm_id;
SELECT farmops.begin_tenant(p.farm_id, 'pooled-user') FROM context_probe AS p;
DO $test$
BEGIN
    ASSERT farmops.current_farm_id() IS NOT NULL, 'context set inside the transaction';
END
$test$;
COMMIT;

DO $test$
BEGIN
    ASSERT farmops.current_farm_id() IS NULL, 'context must not survive the transaction';
    ASSERT coalesce(current_setting('farmops.farm_id', true), '') = '', 'setting reset at commit';
    ASSERT (SELECT count(*) FROM farmops.farms) = 0, 'no rows after the transaction';
END
$test$;
