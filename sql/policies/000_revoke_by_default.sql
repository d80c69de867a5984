-- Revoke by default: the application role gets nothing it is not granted in a
-- later file of this directory. Re-applied on every migrate, so a privilege
-- granted by hand is taken away again.

REVOKE ALL ON SCHEMA farmops FROM public;
GRANT USAGE ON SCHEMA farmops TO farmops_app;

REVOKE ALL ON ALL TABLES IN SCHEMA farmops FROM public, farmops_app;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA farmops FROM public, farmops_app;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA farmops FROM public, farmops_app;

-- Functions farmops_owner creates later (a hotfix between migrations) are not
-- executable by PUBLIC either. Without IN SCHEMA: per-schema default privileges
-- only ADD to the global ones, so "IN SCHEMA farmops REVOKE ... FROM public" was
-- a no-op and every new function was executable by every role.
ALTER DEFAULT PRIVILEGES FOR ROLE farmops_owner
REVOKE EXECUTE ON FUNCTIONS FROM public;

-- Functions every application session may call: the tenant context and the code table.
-- (begin_tenant_verified listed by hand until grants are computed from a rule.)
GRANT EXECUTE ON FUNCTION
farmops.error_codes(),
farmops.version(),
farmops.begin_tenant(uuid, text),
farmops.begin_tenant_verified(text),
farmops.tenant_context(),
farmops.current_farm_id(),
farmops.current_user_id(),
farmops.current_member_role(),
farmops.require_tenant(text[])
TO farmops_app;

-- PII redaction is a pure function of its text: any session may call it, tenant or not.
GRANT EXECUTE ON FUNCTION farmops.redact_pii(text) TO farmops_app;
