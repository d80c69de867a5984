"""Catalog pins of the security boundary: what the application role may do, RLS on every
tenant table, and function hygiene. A new grant, table or function must change these
lists deliberately (review the diff), never silently."""

from __future__ import annotations

import psycopg
import pytest
from support import APP_LOGIN
from support.tenancy import unexpected

#: Every farmops function the application role may EXECUTE: by the rule of sql/policies/090_grants.sql,
#: every function without a leading underscore except the package owner's (registries, global writes)
#: and the maintenance jobs (farmops_maintainer's: tests/security/test_installations.py).
APP_FUNCTIONS = {
    "farmops.add_member(uuid,text,text)",
    "farmops.adjust_credits(uuid,integer,text)",
    # observability (issue 15): steps, replay, lineage, metrics
    "farmops.record_run_steps(uuid,jsonb)",
    "farmops.replay_run(uuid,text,text)",
    "farmops.run_lineage(uuid)",
    "farmops.metrics()",
    "farmops.metric_help()",
    "farmops.approve_run(uuid)",
    "farmops.drop_policy(text)",
    "farmops.explain_policy(text,jsonb)",
    "farmops.policies()",
    "farmops.rate_limits()",
    "farmops.rate_limit_refusals()",
    "farmops.reject_run(uuid,text)",
    "farmops.set_farm_time_zone(text)",
    "farmops.set_policy(text,text,text,integer,text,text,text,text,text,jsonb,text[],text)",
    "farmops.set_rate_limits(integer,integer,text,text)",
    "farmops.assert_embedding_model(text,boolean)",
    "farmops.assert_valid_vector(public.vector,text)",
    "farmops.begin_tenant(uuid,text)",
    "farmops.begin_tenant_verified(text)",
    "farmops.audit_head(uuid)",
    "farmops.check_invariants(uuid)",
    "farmops.check_tenancy()",
    "farmops.check_text(text,text)",
    "farmops.confirm_draft(uuid,jsonb)",
    "farmops.cost_for_tokens(text,timestamp with time zone,integer,integer,integer,integer)",
    "farmops.create_farm(text,text)",
    "farmops.credit_statement(timestamp with time zone,timestamp with time zone)",
    "farmops.credits_for_tokens(text,timestamp with time zone,integer,integer)",
    "farmops.current_farm_id()",
    "farmops.current_member_role()",
    "farmops.current_user_id()",
    "farmops.decide_recommendation(uuid,boolean,text)",
    "farmops.delete_document(uuid)",
    "farmops.delete_source_embeddings(text,uuid)",
    "farmops.discard_draft(uuid,text)",
    "farmops.drop_budget(text,text)",
    "farmops.embed_memory(uuid,public.vector,text)",
    "farmops.draft_channel()",
    "farmops.embedding_dimension()",
    "farmops.erase_member_data(text)",
    "farmops.error_codes()",
    "farmops.estimate_credits(text,integer,integer)",
    "farmops.evaluate_run(uuid,text)",
    "farmops.exact_search_max_rows()",
    "farmops.forget(uuid)",
    "farmops.give_feedback(uuid,boolean,text)",
    "farmops.grant_credits(uuid,integer,text)",
    "farmops.has_capability(text)",
    "farmops.role_has_capability(text,text)",
    "farmops.ingest_document(text,text,text[],public.vector[],text)",
    "farmops.max_search_k()",
    "farmops.model_price_at(text,timestamp with time zone)",
    "farmops.model_rate_at(text,timestamp with time zone)",
    "farmops.normalize_untrusted_text(text)",
    "farmops.propose_write(uuid,text,jsonb)",
    "farmops.recommend(uuid,text,text)",
    "farmops.record_type_tools()",
    "farmops.record_usage(text,integer,integer,text,uuid)",
    "farmops.redact_pii(text)",
    "farmops.remember(text,uuid)",
    "farmops.remove_member(uuid,text)",
    "farmops.replace_source_embeddings(text,uuid,text[],public.vector[],text)",
    "farmops.require_capability(text)",
    "farmops.require_tenant()",
    "farmops.reserve_credits(text,text,integer,text,interval,text)",
    "farmops.reserve_run(uuid,text,text,text,integer,integer,integer,text,interval,text)",
    "farmops.extend_reservation(uuid,integer,integer,integer)",
    "farmops.try_extend_reservation(uuid,integer,integer)",
    "farmops.resolve_autonomy(text)",
    "farmops.resolve_autonomy_for(text,text,text,jsonb,jsonb)",
    "farmops.search(public.vector,integer,boolean,text[],text)",
    "farmops.search_for_run(uuid,public.vector,integer,boolean,text[],text)",
    "farmops.set_autonomy(text,jsonb,jsonb)",
    "farmops.set_budget(text,bigint,text,text,integer[],text)",
    "farmops.settle_run(uuid,text,integer,integer,integer,integer,text,text,integer,integer)",
    "farmops.set_draft_ttl(interval)",
    "farmops.start_run(uuid)",
    "farmops.tenant_context()",
    "farmops.validate_payload(text,jsonb)",
    "farmops.verify_audit(uuid,bigint,text)",
    "farmops.version()",
    "farmops.allow_guard_match(text,text,text,text)",
    "farmops.drop_guard_allow(uuid)",
    "farmops.drop_guard_rule(text)",
    "farmops.enable_guard_rule(text,boolean)",
    "farmops.pii_finding_counts(integer)",
    "farmops.pii_kinds()",
    "farmops.pii_policy()",
    "farmops.record_guardrail_intervention(uuid,text,text[])",
    "farmops.redact_pii_for_farm(text)",
    "farmops.run_pii_findings(uuid)",
    "farmops.screen_input(text)",
    "farmops.screen_output(uuid,text)",
    "farmops.reserve_screened_run(uuid,text,text,text,text,integer,integer,text,interval)",
    "farmops.finish_run(uuid,text,text,integer,integer,integer,text,integer,integer,text,text[])",
    "farmops.screen_stream_text(uuid,text)",
    "farmops.set_guard_rule(text,text,text[],text,text,boolean)",
    "farmops.set_pii_policy(text[])",
}

#: The functions that run as farmops_owner. Each one must scope every statement to the farm of
#: farmops.require_capability() (or be a deliberate, documented global maintenance job).
SECURITY_DEFINER = {
    "farmops.add_member(uuid,text,text)",
    "farmops.record_run_steps(uuid,jsonb)",  # the app cannot write ai_run_steps
    "farmops.approve_run(uuid)",
    "farmops.drop_policy(text)",
    "farmops.explain_policy(text,jsonb)",
    "farmops.policies()",
    "farmops.rate_limits()",
    "farmops._refuse_over_rate_limit(uuid,text,text,integer)",
    "farmops.rate_limit_refusals()",
    "farmops.reject_run(uuid,text)",
    "farmops.set_farm_time_zone(text)",
    "farmops.set_policy(text,text,text,integer,text,text,text,text,text,jsonb,text[],text)",
    "farmops.set_rate_limits(integer,integer,text,text)",
    "farmops.allow_login(text)",
    "farmops.audit_head(uuid)",
    "farmops.disallow_login(text)",
    "farmops.begin_tenant(uuid,text)",
    "farmops.begin_tenant_verified(text)",
    "farmops.confirm_draft(uuid,jsonb)",
    "farmops._context_signature(text,text,text)",
    "farmops.create_farm(text,text)",
    "farmops.decide_recommendation(uuid,boolean,text)",
    "farmops.delete_document(uuid)",
    "farmops.delete_source_embeddings(text,uuid)",
    "farmops.discard_draft(uuid,text)",
    "farmops.erase_farm(uuid)",
    "farmops.erase_member_data(text)",
    "farmops.estimate_credits(text,integer,integer)",
    "farmops.evaluate_run(uuid,text)",
    "farmops.expire_drafts()",
    "farmops.expire_reservations(integer)",
    "farmops.embed_memory(uuid,public.vector,text)",
    "farmops.forget(uuid)",
    "farmops.give_feedback(uuid,boolean,text)",
    "farmops.grant_credits(uuid,integer,text)",
    "farmops.ingest_document(text,text,text[],public.vector[],text)",
    "farmops.propose_write(uuid,text,jsonb)",
    "farmops.recommend(uuid,text,text)",
    "farmops.redact_pii(text)",
    "farmops.remember(text,uuid)",
    "farmops.remove_member(uuid,text)",
    "farmops.replace_source_embeddings(text,uuid,text[],public.vector[],text)",
    "farmops.reserve_credits(text,text,integer,text,interval,text)",
    "farmops.reserve_run(uuid,text,text,text,integer,integer,integer,text,interval,text)",
    "farmops.extend_reservation(uuid,integer,integer,integer)",
    "farmops.try_extend_reservation(uuid,integer,integer)",
    "farmops.search(public.vector,integer,boolean,text[],text)",
    "farmops.search_for_run(uuid,public.vector,integer,boolean,text[],text)",
    "farmops.seal_audit()",
    "farmops.seal_audit(integer)",
    "farmops.set_autonomy(text,jsonb,jsonb)",
    "farmops.settle_run(uuid,text,integer,integer,integer,integer,text,text,integer,integer)",
    "farmops.set_draft_ttl(interval)",
    "farmops.start_run(uuid)",
    "farmops.tenant_context()",
    "farmops.verify_audit(uuid,bigint,text)",
    "farmops.version()",
    "farmops._guard_count_pii()",
    "farmops._guard_pii_free()",
    "farmops._guard_redact_pii()",
    "farmops.allow_guard_match(text,text,text,text)",
    "farmops.drop_guard_allow(uuid)",
    "farmops.drop_guard_rule(text)",
    "farmops.enable_guard_rule(text,boolean)",
    "farmops.record_guardrail_intervention(uuid,text,text[])",
    "farmops.redact_pii_for_farm(text)",
    "farmops.screen_input(text)",
    "farmops.screen_output(uuid,text)",
    "farmops.reserve_screened_run(uuid,text,text,text,text,integer,integer,text,interval)",
    "farmops.finish_run(uuid,text,text,integer,integer,integer,text,integer,integer,text,text[])",
    "farmops.screen_stream_text(uuid,text)",
    "farmops.set_guard_rule(text,text,text[],text,text,boolean)",
    "farmops.set_pii_policy(text[])",
    "farmops.adjust_credits(uuid,integer,text)",
    "farmops.cost_for_tokens(text,timestamp with time zone,integer,integer,integer,integer)",
    "farmops.credit_statement(timestamp with time zone,timestamp with time zone)",
    "farmops.drop_budget(text,text)",
    "farmops.model_price_at(text,timestamp with time zone)",
    "farmops.record_usage(text,integer,integer,text,uuid)",
    "farmops.set_budget(text,bigint,text,text,integer[],text)",
}

#: Tables the application may read (and nothing else: no INSERT/UPDATE/DELETE/TRUNCATE/...).
APP_READABLE_TABLES = {
    "ai_eval_rules", "ai_evals", "ai_feedback", "ai_recommendations", "ai_run_retrievals", "ai_runs",
    "assistant_drafts", "audit_log", "autonomy_changes", "credit_ledger", "documents", "embeddings",
    "expense_records", "default_policies", "farm_guard_rules", "farm_members", "farm_pii_policies", "farms",
    "feed_use_records", "global_documents", "global_embeddings",
    "guard_allow_rules", "guard_events", "guard_rules", "memories", "model_rates", "mortality_records",
    "note_records", "pii_findings",
    "policies", "record_types", "role_capabilities", "sale_records", "subjects", "symptom_records",
    "task_records", "water_records", "weight_records",
    "budget_alerts", "budget_holds", "budget_usage", "budgets", "model_usage",
    # security_invoker views (the caller's RLS applies; check_tenancy pins the option)
    "budget_status", "spend_daily", "spend_month_to_date",
    # observability: the steps, the counters, and the metrics views (security invoker: RLS applies)
    "ai_run_steps", "metric_counters", "metrics_counters", "metrics_credits", "metrics_live_runs",
    "metrics_pending_drafts", "metrics_budgets", "metrics_audit", "metrics_rate_limits",
}  # fmt: skip

#: Global reference tables: no farm_id, read by every farm, written only by the package owner.
GLOBAL_TABLES = {
    "ai_eval_rules", "default_policies", "global_documents", "global_embeddings", "guard_rules",
    "model_rates", "record_types", "role_capabilities",
}  # fmt: skip
#: Private tables the application cannot read at all.
PRIVATE_TABLES = {
    "_package_version",
    "app_logins",
    "context_signing_key",
    "identity_keys",
    "identity_settings",
    "schema_migrations",
}


def _catalog(conn: psycopg.Connection, sql: str, params=None) -> list[tuple]:
    """Run a catalog query with search_path = pg_catalog, so every name prints schema-qualified."""
    with conn.transaction():
        conn.execute("SET LOCAL search_path = pg_catalog")
        return conn.execute(sql, params).fetchall()


def tenancy_problems(conn: psycopg.Connection, *problems: str) -> set[tuple[str, str, str]]:
    """farmops.check_tenancy(), the one implementation of the boundary's catalog rules: the problems of
    these kinds it reports beyond the known offenders (tests/tenancy_support.py)."""
    rows = conn.execute("SELECT * FROM farmops.check_tenancy() WHERE problem = ANY(%s)", [list(problems)])
    return unexpected(rows.fetchall())


def test_the_app_role_executes_exactly_these_functions(app):
    rows = _catalog(
        app,
        """SELECT p.oid::regprocedure::text FROM pg_proc AS p
           WHERE p.pronamespace = 'farmops'::regnamespace AND has_function_privilege(p.oid, 'EXECUTE')""",
    )
    assert {r[0] for r in rows} == APP_FUNCTIONS


def test_exactly_these_functions_are_security_definer(admin):
    rows = _catalog(
        admin,
        "SELECT p.oid::regprocedure::text FROM pg_proc AS p "
        "WHERE p.pronamespace = 'farmops'::regnamespace AND p.prosecdef",
    )
    assert {r[0] for r in rows} == SECURITY_DEFINER


def test_the_app_role_reads_these_tables_and_writes_none(app):
    rows = _catalog(
        app,
        """SELECT c.relname, c.relkind,
                  has_table_privilege(c.oid, 'SELECT'),
                  has_table_privilege(c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER'),
                  has_any_column_privilege(c.oid, 'INSERT, UPDATE, REFERENCES'),
                  c.relkind = 'S' AND has_sequence_privilege(c.oid, 'USAGE, SELECT, UPDATE')
           FROM pg_class AS c
           WHERE c.relnamespace = 'farmops'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')""",
    )
    assert {r[0] for r in rows if r[2]} == APP_READABLE_TABLES
    assert [r[0] for r in rows if r[3] or r[4] or r[5]] == []
    assert [r[0] for r in rows if r[1] in ("m", "f")] == [], (
        "a materialized or foreign table would bypass RLS"
    )
    invokers = _catalog(
        app,
        """SELECT c.relname FROM pg_class AS c
           WHERE c.relnamespace = 'farmops'::regnamespace AND c.relkind = 'v'
           AND NOT coalesce('security_invoker=true' = ANY (c.reloptions), false)""",
    )
    assert invokers == [], "a view without security_invoker would bypass RLS"
    assert app.execute("SELECT has_schema_privilege('farmops', 'CREATE')").fetchone() == (False,)
    # This login and every other member of farmops_app: not superuser, no BYPASSRLS, not the owner.
    roles = ("app_role_is_superuser", "app_role_bypasses_rls", "app_role_is_package_owner")
    assert tenancy_problems(app, *roles) == set()


def test_every_tenant_table_has_forced_rls_and_an_app_policy_scoped_to_the_context(admin):
    tables = _catalog(
        admin,
        """SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
                  EXISTS (SELECT FROM pg_attribute AS a
                          WHERE a.attrelid = c.oid AND a.attname = 'farm_id' AND NOT a.attisdropped)
           FROM pg_class AS c
           WHERE c.relnamespace = 'farmops'::regnamespace AND c.relkind IN ('r', 'p')""",
    )
    policies = _catalog(
        admin,
        """SELECT c.relname, p.polcmd, p.polpermissive, p.polroles::regrole[]::text[],
                  pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid)
           FROM pg_policy AS p JOIN pg_class AS c ON c.oid = p.polrelid""",
    )
    app_policies: dict[str, list[tuple]] = {}
    for rel, cmd, permissive, roles, qual, check in policies:
        if "farmops_app" in roles or "public" in roles:
            app_policies.setdefault(rel, []).append((cmd, permissive, roles, qual, check))
    tenant_tables = {rel for rel, _, _, has_farm in tables if has_farm}
    farm_scope = "(farm_id = ( SELECT farmops.current_farm_id() AS current_farm_id))"
    assert tenancy_problems(admin, "rls_not_enabled", "rls_not_forced", "no_member_policy") == set()
    for rel, _, _, has_farm in tables:
        if rel in PRIVATE_TABLES:
            continue
        if has_farm or rel == "farms":
            # RLS enabled and forced: check_tenancy above. Here the exact policy is pinned.
            expected = farm_scope if has_farm else farm_scope.replace("farm_id =", "id =")
            assert app_policies.get(rel) == [("r", True, ["farmops_app"], expected, None)], rel
        else:
            assert rel in GLOBAL_TABLES, f"{rel} has no farm_id: is it global? add it to GLOBAL_TABLES"
            # Read-only to the app: only SELECT policies (if RLS is on) and only SELECT granted.
            assert all(p[0] == "r" for p in app_policies.get(rel, [])), rel
    assert len(tenant_tables) >= 20  # the query found the tenant tables at all


def test_every_function_pins_its_search_path(admin):
    rows = _catalog(
        admin,
        """SELECT p.oid::regprocedure::text, p.proconfig FROM pg_proc AS p
           WHERE p.pronamespace = 'farmops'::regnamespace""",
    )
    # Functions whose body uses pgvector keep the install's path (SET search_path FROM CURRENT):
    # pg_catalog, pgvector's schema (public in the test server), pg_temp. See bootstrap.sql.
    pinned = ("search_path=pg_catalog, pg_temp", "search_path=pg_catalog, public, pg_temp")
    for name, config in rows:
        assert config is not None and any(p in config for p in pinned), name
    # Every function and table owned by the package owner; no definer without a path; none run by PUBLIC.
    hygiene = ("not_owned_by_package_owner", "security_definer_without_search_path", "executable_by_public")
    assert tenancy_problems(admin, *hygiene) == set()


def test_a_function_the_owner_adds_later_is_not_executable_by_the_app(db, connect):
    """Revoke-by-default must hold for functions created outside a migrate (a hotfix)."""
    owner = connect("owner", autocommit=False)
    owner.execute(
        "CREATE FUNCTION farmops.hotfix_probe() RETURNS integer LANGUAGE sql SECURITY DEFINER"
        " SET search_path = pg_catalog, pg_temp AS 'SELECT 1'"
    )
    owner.commit()
    app = connect("app")
    assert app.execute("SELECT has_function_privilege('farmops.hotfix_probe()', 'EXECUTE')").fetchone() == (
        False,
    )
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        app.execute("SELECT farmops.hotfix_probe()")
    assert app.execute("SELECT current_user").fetchone() == (APP_LOGIN,)
