"""Recommendations, evals, feedback and memories: roles, tenants, bad input, state machines."""

import uuid

import psycopg
import pytest
from conftest import tenant
from write_path_helpers import counts, make_farm, make_run, propose, race


@pytest.fixture
def wfarm(app, admin):
    return make_farm(app, admin)


def call(app, farm_id, user, sql, params):
    with tenant(app, farm_id, user):
        return app.execute(sql, params).fetchall()


def refused(app, admin, farm_id, user, sql, params) -> str:
    before = counts(admin)
    with pytest.raises(psycopg.Error) as exc:
        call(app, farm_id, user, sql, params)
    assert counts(admin) == before
    return exc.value.sqlstate


RECOMMEND = "SELECT farmops.recommend(p_run_id => %s, p_title => %s, p_body => %s)"
DECIDE = (
    "SELECT status, decided_by, decision_reason FROM farmops.decide_recommendation("
    "p_recommendation_id => %s, p_approve => %s, p_reason => %s)"
)
EVALUATE = (
    "SELECT rule_name, passed, severity, details"
    " FROM farmops.evaluate_run(p_run_id => %s, p_output_text => %s)"
)
FEEDBACK = (
    "SELECT thumbs_up, comment FROM farmops.give_feedback(p_run_id => %s, p_thumbs_up => %s, p_comment => %s)"
)
REMEMBER = "SELECT farmops.remember(p_content => %s, p_run_id => %s)"
FORGET = "SELECT farmops.forget(p_memory_id => %s)"


# --- recommendations ----------------------------------------------------------------------------------


def test_recommendation_lifecycle(app, admin, wfarm):
    rec = call(app, wfarm.id, "bot", RECOMMEND, [wfarm.run, " Sell the old layers ", "Egg output fell 30%."])[
        0
    ][0]
    assert call(app, wfarm.id, "mia", DECIDE, [rec, True, "agreed"]) == [("approved", "mia", "agreed")]
    for approve in (True, False):
        assert refused(app, admin, wfarm.id, "alice", DECIDE, [rec, approve, None]) == "OF103"
    rec2 = call(app, wfarm.id, "bot", RECOMMEND, [wfarm.run, "t", "b"])[0][0]
    assert call(app, wfarm.id, "wes", DECIDE, [rec2, False, None]) == [("rejected", "wes", None)]
    row = admin.execute(
        "SELECT title, created_by FROM farmops.ai_recommendations WHERE id = %s", [rec]
    ).fetchone()
    assert row == ("Sell the old layers", "bot")


@pytest.mark.parametrize("user", ["bot", "vic"])
def test_only_humans_decide_recommendations(app, admin, wfarm, user):
    rec = call(app, wfarm.id, "bot", RECOMMEND, [wfarm.run, "t", "b"])[0][0]
    assert refused(app, admin, wfarm.id, user, DECIDE, [rec, True, None]) == "OF003"


def test_recommendation_refusals(app, admin, wfarm):
    other = make_farm(app, admin, "Farm B", "bob")
    rec = call(app, wfarm.id, "bot", RECOMMEND, [wfarm.run, "t", "b"])[0][0]
    assert refused(app, admin, other.id, "bob", DECIDE, [rec, True, None]) == "OF207"
    assert refused(app, admin, wfarm.id, "alice", DECIDE, [uuid.uuid4(), True, None]) == "OF207"
    assert refused(app, admin, wfarm.id, "alice", DECIDE, [rec, None, None]) == "OF006"
    assert refused(app, admin, wfarm.id, "alice", DECIDE, [rec, True, "x" * 1001]) == "OF006"
    assert refused(app, admin, wfarm.id, "vic", RECOMMEND, [wfarm.run, "t", "b"]) == "OF003"
    assert refused(app, admin, wfarm.id, "bot", RECOMMEND, [other.run, "t", "b"]) == "OF102"
    settled = make_run(admin, wfarm.id, status="succeeded")
    assert refused(app, admin, wfarm.id, "bot", RECOMMEND, [settled, "t", "b"]) == "OF205"
    for title, body in [
        (None, "b"),
        ("", "b"),
        ("t" * 201, "b"),
        ("t\n", "b"),
        ("t", None),
        ("t", " "),
        ("t", "b" * 1_048_576),
        ("t", "b\x1b[31m"),
    ]:
        assert refused(app, admin, wfarm.id, "bot", RECOMMEND, [wfarm.run, title, body]) == "OF006"
    with pytest.raises(psycopg.Error) as exc:
        app.execute(RECOMMEND, [wfarm.run, "t", "b"])
    assert exc.value.sqlstate == "OF001"


def test_racing_deciders_get_one_outcome(connect, app, admin, wfarm):
    rec = call(app, wfarm.id, "bot", RECOMMEND, [wfarm.run, "t", "b"])[0][0]
    results = race(
        connect, [lambda c, a=a: call(c, wfarm.id, "alice", DECIDE, [rec, a, None]) for a in (True, False)]
    )
    codes = sorted("ok" if not isinstance(r, Exception) else r.sqlstate for r in results)
    assert codes == ["OF103", "ok"]


def test_recommendation_history_is_final_for_the_owner_role(owner, app, wfarm):
    rec = call(app, wfarm.id, "bot", RECOMMEND, [wfarm.run, "t", "b"])[0][0]
    call(app, wfarm.id, "alice", DECIDE, [rec, False, None])
    for sql, sqlstate in (
        ("UPDATE farmops.ai_recommendations SET status = 'approved' WHERE id = %s", "OF103"),
        ("DELETE FROM farmops.ai_recommendations WHERE id = %s", "OF107"),
    ):
        with pytest.raises(psycopg.Error) as exc:
            owner.execute(sql, [rec])
        assert exc.value.sqlstate == sqlstate


# --- evals --------------------------------------------------------------------------------------------


def test_clinical_safety_flags_dosing_and_withdrawal_advice(app, wfarm):
    text = "Give oxytetracycline at 10 mg/kg for 5 days; the withdrawal period for eggs is 7 days."
    results = {r[0]: r for r in call(app, wfarm.id, "bot", EVALUATE, [wfarm.run, text])}
    assert set(results) == {"clinical_safety", "schema_conformance"}
    _name, passed, severity, details = results["clinical_safety"]
    assert (passed, severity) == (False, "warn")
    assert any("mg/kg" in m for m in details["matches"])
    assert any("withdrawal period" in m.lower() for m in details["matches"])
    clean = {
        r[0]: r[1] for r in call(app, wfarm.id, "bot", EVALUATE, [wfarm.run, "Feed use logged: 12 kg mash."])
    }
    assert clean == {"clinical_safety": True, "schema_conformance": True}


def test_schema_conformance_rechecks_the_runs_drafts(app, owner, wfarm):
    propose(app, wfarm.id, "bot", wfarm.run, "note", {"body": "a long note " * 10})
    rows = {r[0]: r for r in call(app, wfarm.id, "bot", EVALUATE, [wfarm.run, "ok"])}
    assert rows["schema_conformance"][1] is True
    assert rows["schema_conformance"][3]["drafts_checked"] == 1
    # The product tightens the note type afterwards: the stored draft no longer conforms.
    owner.execute(
        """SELECT farmops.register_record_type(p_name => 'note', p_class => 'routine',
           p_description => 'Note', p_target_schema => 'farmops', p_target_table => 'note_records',
           p_input_schema =>
           '{"type":"object","additionalProperties":false,"required":["body"],
             "properties":{"body":{"type":"string","maxLength":20}}}')"""
    )
    rows = {r[0]: r for r in call(app, wfarm.id, "bot", EVALUATE, [wfarm.run, "ok"])}
    assert rows["schema_conformance"][1] is False
    assert "body" in rows["schema_conformance"][3]["failures"][0]["message"]


def test_rule_api_adds_rules_as_data(app, owner, wfarm):
    owner.execute(
        "SELECT farmops.register_eval_rule(p_name => 'no_prices_in_dollars', p_kind => 'regex_absent',"
        " p_description => 'Prices are in naira', p_pattern => '\\$[0-9]', p_severity => 'info')"
    )
    rows = {r[0]: r[1] for r in call(app, wfarm.id, "bot", EVALUATE, [wfarm.run, "That costs $5."])}
    assert rows["no_prices_in_dollars"] is False
    for args, sqlstate in (
        ("p_name => 'Bad Name', p_kind => 'regex_absent', p_description => 'd', p_pattern => 'x'", "OF006"),
        ("p_name => 'r', p_kind => 'vibes', p_description => 'd', p_pattern => 'x'", "OF006"),
        ("p_name => 'r', p_kind => 'regex_absent', p_description => 'd', p_pattern => '(unclosed'", "OF006"),
        ("p_name => 'r', p_kind => 'regex_absent', p_description => 'd'", "OF006"),
        ("p_name => 'r', p_kind => 'payload_schema', p_description => 'd', p_pattern => 'x'", "OF006"),
    ):
        with pytest.raises(psycopg.Error) as exc:
            owner.execute(f"SELECT farmops.register_eval_rule({args})")
        assert exc.value.sqlstate == sqlstate, args
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        app.execute("SELECT farmops.register_eval_rule('mine', 'regex_absent', 'd', 'x')")


def test_eval_refusals_and_append_only(app, admin, owner, wfarm):
    other = make_farm(app, admin, "Farm B", "bob")
    assert refused(app, admin, wfarm.id, "bot", EVALUATE, [other.run, "x"]) == "OF102"
    assert refused(app, admin, wfarm.id, "vic", EVALUATE, [wfarm.run, "x"]) == "OF003"
    assert refused(app, admin, wfarm.id, "bot", EVALUATE, [wfarm.run, None]) == "OF006"
    assert refused(app, admin, wfarm.id, "bot", EVALUATE, [wfarm.run, "x" * 1_048_576]) == "OF006"
    # Settled runs can be evaluated (evaluation happens after the run).
    settled = make_run(admin, wfarm.id, status="succeeded")
    assert len(call(app, wfarm.id, "bot", EVALUATE, [settled, "fine 🐓"])) == 2
    for sql in ("UPDATE farmops.ai_evals SET passed = true", "DELETE FROM farmops.ai_evals"):
        with pytest.raises(psycopg.Error) as exc:
            owner.execute(sql)
        assert exc.value.sqlstate == "OF107"


# --- feedback -----------------------------------------------------------------------------------------


def test_feedback_is_one_per_member_per_run_and_updatable(app, admin, wfarm):
    assert call(app, wfarm.id, "alice", FEEDBACK, [wfarm.run, True, "spot on"]) == [(True, "spot on")]
    assert call(app, wfarm.id, "alice", FEEDBACK, [wfarm.run, False, None]) == [(False, None)]
    assert call(app, wfarm.id, "wes", FEEDBACK, [wfarm.run, True, "ẹ ṣé"]) == [(True, "ẹ ṣé")]
    rows = admin.execute("SELECT user_id, thumbs_up FROM farmops.ai_feedback ORDER BY user_id").fetchall()
    assert rows == [("alice", False), ("wes", True)]


def test_feedback_refusals(app, admin, wfarm):
    other = make_farm(app, admin, "Farm B", "bob")
    assert refused(app, admin, wfarm.id, "alice", FEEDBACK, [other.run, True, None]) == "OF102"
    assert refused(app, admin, wfarm.id, "alice", FEEDBACK, [None, True, None]) == "OF006"
    assert refused(app, admin, wfarm.id, "alice", FEEDBACK, [wfarm.run, None, None]) == "OF006"
    assert refused(app, admin, wfarm.id, "alice", FEEDBACK, [wfarm.run, True, "x" * 4001]) == "OF006"
    assert refused(app, admin, wfarm.id, "vic", FEEDBACK, [wfarm.run, True, None]) == "OF003"
    assert refused(app, admin, wfarm.id, "bot", FEEDBACK, [wfarm.run, True, None]) == "OF003"


# --- memories -----------------------------------------------------------------------------------------


def test_memories_deduplicate_on_normalized_text_per_farm(app, admin, wfarm):
    first = call(app, wfarm.id, "bot", REMEMBER, ["Vaccinates on Mondays.", wfarm.run])[0][0]
    again = call(app, wfarm.id, "wes", REMEMBER, ["  vaccinates   on\nMONDAYS ", None])[0][0]
    assert again == first
    other = make_farm(app, admin, "Farm B", "bob")
    theirs = call(app, other.id, "bot", REMEMBER, ["Vaccinates on Mondays.", None])[0][0]
    assert theirs != first
    assert admin.execute("SELECT count(*) FROM farmops.memories").fetchone()[0] == 2


def test_concurrent_remember_of_the_same_fact_stores_one(connect, admin, wfarm):
    results = race(
        connect, [lambda c: call(c, wfarm.id, "bot", REMEMBER, ["Pond 3 is the nursery", None])[0][0]] * 4
    )
    assert len(set(results)) == 1 and not isinstance(results[0], Exception), results
    assert admin.execute("SELECT count(*) FROM farmops.memories").fetchone()[0] == 1


def test_memory_refusals(app, admin, wfarm):
    other = make_farm(app, admin, "Farm B", "bob")
    for content in (None, "", "   ", "x" * 2001, "x" * 1_048_576, "bell\x07"):
        assert refused(app, admin, wfarm.id, "bot", REMEMBER, [content, None]) == "OF006"
    assert refused(app, admin, wfarm.id, "bot", REMEMBER, ["fact", other.run]) == "OF102"
    assert refused(app, admin, wfarm.id, "vic", REMEMBER, ["fact", None]) == "OF003"
    with pytest.raises(psycopg.errors.CharacterNotInRepertoire) as exc, tenant(app, wfarm.id, "bot"):
        app.execute("SELECT farmops.remember(convert_from('\\x66006f'::bytea, 'UTF8'))")
    assert exc.value.sqlstate == "22021"  # NUL is not text: refused before any farmops code runs


def test_forget_is_owner_or_manager_only_and_farm_scoped(app, admin, wfarm):
    mem = call(app, wfarm.id, "bot", REMEMBER, ["Borehole pump fails in harmattan", None])[0][0]
    other = make_farm(app, admin, "Farm B", "bob")
    for user in ("wes", "vic", "bot"):
        assert refused(app, admin, wfarm.id, user, FORGET, [mem]) == "OF003"
    assert refused(app, admin, other.id, "bob", FORGET, [mem]) == "OF206"
    assert refused(app, admin, wfarm.id, "mia", FORGET, [uuid.uuid4()]) == "OF206"
    call(app, wfarm.id, "mia", FORGET, [mem])
    assert admin.execute("SELECT count(*) FROM farmops.memories").fetchone()[0] == 0
    assert refused(app, admin, wfarm.id, "alice", FORGET, [mem]) == "OF206"


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT farmops.recommend(gen_random_uuid(), 't', 'b')",
        "SELECT farmops.decide_recommendation(gen_random_uuid(), true)",
        "SELECT farmops.evaluate_run(gen_random_uuid(), 'x')",
        "SELECT farmops.give_feedback(gen_random_uuid(), true)",
        "SELECT farmops.remember('fact')",
        "SELECT farmops.forget(gen_random_uuid())",
        "SELECT farmops.set_autonomy()",
        "SELECT farmops.resolve_autonomy('note')",
        "SELECT farmops.propose_write(gen_random_uuid(), 'note', '{}')",
        "SELECT farmops.confirm_draft(gen_random_uuid())",
        "SELECT farmops.discard_draft(gen_random_uuid())",
    ],
)
def test_every_tenant_function_refuses_without_a_tenant_context(app, admin, wfarm, sql):
    before = counts(admin)
    with pytest.raises(psycopg.Error) as exc:
        app.execute(sql)
    assert exc.value.sqlstate == "OF001"
    assert counts(admin) == before
