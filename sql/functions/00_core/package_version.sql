-- farmops.version(): which package version built this schema. `farmops migrate` and
-- install.sql set farmops.package_version (pyproject's version) for the install
-- transaction; this file, re-applied on every migrate, records it.

CREATE OR REPLACE FUNCTION farmops.version()
RETURNS text
LANGUAGE sql
STABLE
SECURITY DEFINER  -- the application role reads the version, not the private table
SET search_path = pg_catalog, pg_temp
AS $fn$ SELECT v.version FROM farmops._package_version AS v $fn$;
COMMENT ON FUNCTION farmops.version() IS
'The farmops package version installed by the last migrate (pyproject''s version), e.g. 0.1.0; NULL before.';

-- Files applied by hand, without the setting, leave the recorded version alone.
INSERT INTO farmops._package_version AS v (version)
SELECT s.version
FROM (SELECT nullif(current_setting('farmops.package_version', true), '') AS version) AS s
WHERE s.version IS NOT NULL
ON CONFLICT (one_row) DO UPDATE
    SET version = excluded.version, installed_at = now()
    WHERE v.version IS DISTINCT FROM excluded.version;
