-- The installed package version: one row, rewritten by every migrate (see
-- functions/00_core/package_version.sql) and read through farmops.version().
CREATE TABLE farmops._package_version (
    one_row boolean PRIMARY KEY DEFAULT true CONSTRAINT package_version_has_one_row CHECK (one_row),
    version text NOT NULL CONSTRAINT package_version_is_a_version_string
    CHECK (version ~ '^[0-9A-Za-z][0-9A-Za-z.+!_-]{0,63}$'),
    installed_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE farmops._package_version IS
'Private: the farmops package version the last migrate installed, and when; read it with farmops.version().';
