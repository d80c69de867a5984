-- Revoke by default: the application role gets nothing it is not granted by
-- 090_grants.sql. Re-applied on every migrate, so a privilege
-- granted by hand is taken away again.

REVOKE ALL ON SCHEMA farmops FROM public;
GRANT USAGE ON SCHEMA farmops TO farmops_app, farmops_maintainer, farmops_auditor;

REVOKE ALL ON ALL TABLES IN SCHEMA farmops FROM public, farmops_app, farmops_maintainer, farmops_auditor;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA farmops FROM public, farmops_app, farmops_maintainer, farmops_auditor;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA farmops FROM public, farmops_app, farmops_maintainer, farmops_auditor;

-- Functions farmops_owner creates later (a hotfix between migrations) are not
-- executable by PUBLIC either. Without IN SCHEMA: per-schema default privileges
-- only ADD to the global ones, so "IN SCHEMA farmops REVOKE ... FROM public" was
-- a no-op and every new function was executable by every role.
ALTER DEFAULT PRIVILEGES FOR ROLE farmops_owner
REVOKE EXECUTE ON FUNCTIONS FROM public;
