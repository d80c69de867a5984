"""The rules written once in sql/functions/00_core and attached per table or per argument: text
arguments (checked value = stored value), the run lock (this farm, locked, live), the shared guard
triggers (ENABLE ALWAYS), securing a product's table, sentence-named constraints, and the
embedding-model rule."""

from __future__ import annotations

import pytest
from psycopg.types.json import Jsonb
from support import raises_sqlstate, sqlstate_of, tenant
from support.credits import grant, reserve
from support.knowledge import ingest, ingest_global, vec, vec_array
from support.write_path import make_farm, make_run

TITAN = "amazon.titan-embed-text-v2:0"


def refused(conn, farm_id, user, sql, params=None) -> str | None:
    with raises_sqlstate() as excinfo, tenant(conn, farm_id, user):
        conn.execute(sql, params)
    return sqlstate_of(excinfo)


# --- text arguments -------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["gpt\x1b[31m", "two\nlines", "tab\there", "", "   ", "m" * 201, None])
def test_reserve_credits_refuses_a_model_name_other_functions_refuse(app, farm, model):
    """reserve_credits used to accept control characters in the model name (embed_memory did not)."""
    grant(app, farm, 10)
    with raises_sqlstate("OF006"):
        reserve(app, farm, model=model)


def test_names_are_stored_as_checked(app, admin, farm):
    """The value checked (trimmed) is the value stored: no raw 23514 from a column CHECK."""
    grant(app, farm, 10)
    run = reserve(app, farm, feature="  chat  ", model=" test-model ", request_id=" key-1 ")
    assert (run["feature"], run["model"], run["request_id"]) == ("chat", "test-model", "key-1")
    with tenant(app, farm, "alice"):
        doc = ingest(app, "  Vaccines  ", "Gumboro on day 14.", ["Gumboro on day 14."], [vec(1)])
    title = admin.execute("SELECT title FROM farmops.documents WHERE id = %s", [doc]).fetchone()
    assert title == ("Vaccines",)


def test_a_blank_request_id_is_refused_not_dropped(app, farm):
    grant(app, farm, 10)
    with raises_sqlstate("OF006"):
        reserve(app, farm, request_id="  ")


def test_content_allows_newlines_but_not_other_control_characters(app, admin, wfarm):
    with tenant(app, wfarm.id, "alice"):
        mem = app.execute("SELECT farmops.remember(%s)", ["  Vaccinate\non Mondays  "]).fetchone()[0]
    assert admin.execute("SELECT content FROM farmops.memories WHERE id = %s", [mem]).fetchone() == (
        "Vaccinate\non Mondays",
    )
    assert refused(app, wfarm.id, "alice", "SELECT farmops.remember(%s)", ["bell\x07"]) == "OF006"
    sql = "SELECT farmops.recommend(%s, %s, %s)"
    assert refused(app, wfarm.id, "bot", sql, [wfarm.run, "Two\nlines", "body"]) == "OF006"


# --- the run lock -------------------------------------------------------------------------------


def test_search_for_run_refuses_a_run_past_its_deadline(app, admin, wfarm):
    """search_for_run took no lock and ignored expires_at; it now shares propose_write's rule."""
    late = make_run(admin, wfarm.id, live=False)  # still 'reserved', past expires_at, not yet expired
    sql = "SELECT * FROM farmops.search_for_run(%s, %s::public.vector)"
    assert refused(app, wfarm.id, "bot", sql, [late, vec(1)]) == "OF205"
    assert refused(app, wfarm.id, "bot", sql, [None, vec(1)]) == "OF006"
    other = make_farm(app, admin, "Farm B", "bob")
    assert refused(app, wfarm.id, "bot", sql, [other.run, vec(1)]) == "OF102"
    with tenant(app, wfarm.id, "bot"):
        assert app.execute(sql, [wfarm.run, vec(1)]).fetchall() == []


# --- shared guards -------------------------------------------------------------------------------


def test_every_farmops_trigger_fires_always(admin):
    rows = admin.execute(
        "SELECT c.relname, t.tgname, t.tgenabled FROM pg_trigger AS t JOIN pg_class AS c ON c.oid = t.tgrelid"
        " WHERE c.relnamespace = 'farmops'::regnamespace AND NOT t.tgisinternal ORDER BY 1, 2"
    ).fetchall()
    audited = {  # the audit chain's triggers (audit_1_write.sql; the ledger has none: migration 0160)
        ("ai_recommendations", "ai_recommendations_is_audited"),
        ("ai_runs", "ai_runs_status_is_audited"),
        ("assistant_drafts", "assistant_drafts_is_audited"),
        ("budgets", "budgets_is_audited"),
        ("audit_log", "audit_log_is_append_only"),
        ("audit_log", "audit_log_is_never_truncated"),
        ("autonomy_changes", "autonomy_changes_is_audited"),
        ("documents", "documents_is_audited"),
        ("farm_guard_rules", "farm_guard_rules_is_audited"),
        ("farm_members", "farm_members_is_audited"),
        ("farm_pii_policies", "farm_pii_policies_is_audited"),
        ("guard_allow_rules", "guard_allow_rules_is_audited"),
        ("guard_events", "guard_events_is_audited"),
        ("memories", "memories_is_audited"),
        ("policies", "policies_is_audited"),
    } | {(f"{t}_records", f"{t}_records_is_audited") for t in (
        "expense", "feed_use", "mortality", "note", "sale", "symptom", "task", "water", "weight",
    )}  # fmt: skip
    assert {(rel, name) for rel, name, _ in rows} - audited == {
        ("ai_evals", "ai_evals_is_append_only"),
        ("ai_evals", "ai_evals_is_never_truncated"),
        ("ai_recommendations", "ai_recommendations_is_never_truncated"),
        ("ai_recommendations", "ai_recommendations_is_never_deleted"),
        ("ai_recommendations", "ai_recommendations_move_forward_only"),
        ("ai_recommendations", "ai_recommendations_starts_in_a_first_state"),
        ("ai_runs", "ai_runs_approval_holds"),
        ("ai_runs", "ai_runs_hold_only_grows"),
        ("ai_runs", "ai_runs_is_never_truncated"),
        ("ai_runs", "ai_runs_is_never_deleted"),
        ("ai_runs", "ai_runs_move_forward_only"),
        ("assistant_drafts", "assistant_drafts_announce_new_pending_ones"),
        ("assistant_drafts", "assistant_drafts_expire_after_their_farms_ttl"),
        ("assistant_drafts", "assistant_drafts_is_never_truncated"),
        ("assistant_drafts", "assistant_drafts_is_never_deleted"),
        ("assistant_drafts", "assistant_drafts_move_forward_only"),
        ("assistant_drafts", "assistant_drafts_starts_in_a_first_state"),
        ("autonomy_changes", "autonomy_changes_is_append_only"),
        ("autonomy_changes", "autonomy_changes_is_never_truncated"),
        ("budget_alerts", "budget_alerts_is_append_only"),
        ("budget_alerts", "budget_alerts_is_never_truncated"),
        ("credit_ledger", "credit_ledger_is_append_only"),
        ("credit_ledger", "credit_ledger_is_never_truncated"),
        # PII (50_trust/pii_policy.sql): stored text redacted and counted, embedded text refused.
        ("ai_evals", "ai_evals_counts_pii"),
        ("ai_evals", "ai_evals_redacts_pii"),
        ("ai_feedback", "ai_feedback_counts_pii"),
        ("ai_feedback", "ai_feedback_redacts_pii"),
        ("ai_runs", "ai_runs_counts_pii"),
        ("ai_runs", "ai_runs_redacts_pii"),
        ("documents", "documents_counts_pii"),
        ("documents", "documents_redacts_pii"),
        ("embeddings", "embeddings_embeds_no_pii"),
        ("global_embeddings", "global_embeddings_embeds_no_pii"),
        ("memories", "memories_embeds_no_pii"),
        ("farm_guard_rules", "farm_guard_rules_keywords_follow_the_pattern"),
        ("guard_rules", "guard_rules_keywords_follow_the_pattern"),
        ("guard_events", "guard_events_is_append_only"),
        ("guard_events", "guard_events_is_never_truncated"),
        ("pii_findings", "pii_findings_is_append_only"),
        ("pii_findings", "pii_findings_is_never_truncated"),
        ("model_usage", "model_usage_is_append_only"),
        ("model_usage", "model_usage_is_never_truncated"),
        # observability: steps are append-only; counters are bumped where runs close, drafts move,
        # steps are recorded
        ("ai_run_steps", "ai_run_steps_is_append_only"),
        ("ai_run_steps", "ai_run_steps_is_never_truncated"),
        ("ai_run_steps", "ai_run_steps_are_counted"),
        ("ai_runs", "ai_runs_are_counted_when_closed"),
        ("ai_runs", "ai_runs_cost_is_counted_when_closed"),
        ("budget_alerts", "budget_alerts_are_counted"),
        ("guard_events", "guard_events_are_counted"),
        ("model_usage", "model_usage_cost_is_counted"),
        ("pii_findings", "pii_findings_are_counted"),
        ("assistant_drafts", "assistant_drafts_are_counted_when_made"),
        ("assistant_drafts", "assistant_drafts_are_counted_when_decided"),
    }
    assert [r for r in rows if r[2] != "A"] == []


def test_the_forward_only_guard_holds_for_the_superuser(app, admin, wfarm):
    with tenant(app, wfarm.id, "bot"):
        rec = app.execute("SELECT farmops.recommend(%s, 'Vaccinate', 'Day 14')", [wfarm.run]).fetchone()[0]
    for sql, code in [
        ("UPDATE farmops.ai_recommendations SET body = 'forged' WHERE id = %s", "OF103"),
        ("UPDATE farmops.ai_recommendations SET status = 'pending' WHERE id = %s", "OF103"),
        ("DELETE FROM farmops.ai_recommendations WHERE id = %s", "OF107"),
        ("DELETE FROM farmops.ai_runs WHERE id = %s", "OF107"),
    ]:
        with raises_sqlstate(code, sql), admin.transaction():
            admin.execute(sql, [wfarm.run if "ai_runs" in sql else rec])
    with raises_sqlstate("OF107"), admin.transaction():
        admin.execute("SET LOCAL session_replication_role = replica")
        admin.execute("TRUNCATE farmops.ai_evals")


# --- securing tables ------------------------------------------------------------------------------


def test_register_record_type_secures_the_products_table(owner, admin):
    owner.execute(
        """CREATE TABLE farmops.egg_collections (
               farm_id uuid NOT NULL REFERENCES farmops.farms (id), id uuid NOT NULL, draft_id uuid,
               created_by text NOT NULL, crates integer NOT NULL, PRIMARY KEY (farm_id, id))"""
    )
    schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {"crates": {"type": "integer", "minimum": 1, "maximum": 100}},
    }
    owner.execute(
        "SELECT farmops.register_record_type("
        "'egg_collection', 'routine', 'Eggs', 'farmops', 'egg_collections', %s)",
        [Jsonb(schema)],
    )
    assert admin.execute(
        "SELECT relrowsecurity, relforcerowsecurity FROM pg_class"
        " WHERE oid = 'farmops.egg_collections'::regclass"
    ).fetchone() == (True, True)
    policies = admin.execute(
        "SELECT polname, polcmd, polroles::regrole[]::text[] FROM pg_policy"
        " WHERE polrelid = 'farmops.egg_collections'::regclass ORDER BY 1"
    ).fetchall()
    assert policies == [
        ("members see their own farm's rows", "r", ["farmops_app"]),
        ("the package owner maintains every row", "*", ["farmops_owner"]),
    ]


def test_secure_tenant_table_refuses_a_table_without_farm_id(owner):
    owner.execute("CREATE TABLE farmops.not_a_tenant_table (id integer)")
    with raises_sqlstate("OF006"):
        owner.execute("SELECT farmops.secure_tenant_table('farmops.not_a_tenant_table')")


def test_constraints_are_named_as_sentences(admin):
    generated = admin.execute(
        "SELECT conrelid::regclass::text, conname FROM pg_constraint"
        " WHERE connamespace = 'farmops'::regnamespace AND contype = 'c'"
        " AND conname ~ ('^' || (SELECT relname FROM pg_class WHERE oid = conrelid) || '_check[0-9]*$')"
    ).fetchall()
    assert generated == []
    names = {
        r[0]
        for r in admin.execute(
            "SELECT conname FROM pg_constraint WHERE connamespace = 'farmops'::regnamespace"
        )
    }
    assert {
        "credit_balance_is_never_negative",
        "one_run_per_request_id",
        "ledger_balance_is_never_negative",
    } <= names


# --- one embedding model per index -------------------------------------------------------------------


def test_an_ingest_or_search_with_another_model_is_refused(app, owner, wfarm):
    with tenant(app, wfarm.id, "alice"):
        ingest(app, "Doc", "doc", ["doc"], [vec(1)])
    other = "cohere.embed-english-v3"
    sql = (
        "SELECT farmops.ingest_document(p_title => 't', p_content => 'c2', p_chunks => ARRAY['c2'],"
        " p_embeddings => %s::public.vector[], p_model => %s)"
    )
    assert refused(app, wfarm.id, "alice", sql, [vec_array([vec(1)]), other]) == "OF303"
    replace = (
        "SELECT farmops.replace_source_embeddings('convo_summary', gen_random_uuid(), ARRAY['s'],"
        " %s::public.vector[], %s)"
    )
    assert refused(app, wfarm.id, "alice", replace, [vec_array([vec(1)]), other]) == "OF303"
    search = "SELECT * FROM farmops.search(%s::public.vector, p_model => %s)"
    assert refused(app, wfarm.id, "alice", search, [vec(1), other]) == "OF303"
    for_run = "SELECT * FROM farmops.search_for_run(%s, %s::public.vector, p_model => %s)"
    assert refused(app, wfarm.id, "bot", for_run, [wfarm.run, vec(1), other]) == "OF303"
    with tenant(app, wfarm.id, "alice"):
        assert len(app.execute(search, [vec(1), TITAN]).fetchall()) == 1
        assert len(app.execute(search, [vec(1), None]).fetchall()) == 1  # NULL: not checked
    # The global knowledge base holds one model too, and a farm's vectors must match it.
    ingest_global(owner, "Global", "global", ["global"], [vec(0, 1)])
    with raises_sqlstate("OF303"):
        owner.execute(
            "SELECT farmops.ingest_global_document('g', 'g2', ARRAY['g2'], %s::public.vector[], %s)",
            [vec_array([vec(1)]), other],
        )
    empty = make_farm(app, owner, "Farm B", "bob")
    assert refused(app, empty.id, "bob", sql, [vec_array([vec(1)]), other]) == "OF303"
