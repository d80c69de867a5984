"""Erasure (issue 13 section 4, ADR 0019): a person leaves no identifier and no personal text in any row,
the books and the audit chain still verify, and the erasure is itself audited. As the application
role, except the package owner's erase_farm and the superuser's scan of every row."""

from __future__ import annotations

import pytest
from psycopg.types.json import Jsonb
from support import call, raises_sqlstate, row, sqlstates, tenant, value
from support.concurrency import concurrently
from support.credits import add_member, grant, reserve, settle, start
from support.records import product_table
from support.write_path import evaluate, propose, register_wide_rule

PERSON = "dave@example.org"
#: What the person's run answered: under a wide regex rule, each sentence lands in ai_evals.details.
SENTENCE = "Dave keeps the spare key under the blue water tank"
OTHER_SENTENCE = "Wes feeds the goats before sunrise"


def erase(app, farm, user, by="alice") -> dict:
    with tenant(app, farm, by):
        return value(app, "erase_member_data", user_id=user)


def rows_naming(admin, needle: str) -> list[str]:
    """Every row of every farmops table whose text holds ``needle`` (as the superuser: no RLS)."""
    tables = [
        r[0]
        for r in admin.execute(
            "SELECT c.relname FROM pg_class AS c WHERE c.relnamespace = 'farmops'::regnamespace "
            "AND c.relkind = 'r' ORDER BY 1"
        )
    ]
    found = []
    for table in tables:
        hits = admin.execute(
            f"SELECT count(*) FROM farmops.{table} AS t WHERE strpos(to_jsonb(t)::text, %s) > 0", [needle]
        ).fetchone()[0]
        if hits:
            found.append(f"{table}: {hits}")
    return found


def verified(app, farm, user="alice") -> dict:
    with tenant(app, farm, user):
        return row(app, "verify_audit")


@pytest.fixture
def lived(app, funded) -> object:
    """The funded farm where the worker PERSON ran the assistant, gave feedback and stored a memory."""
    add_member(app, funded, PERSON, "worker")
    run = reserve(app, funded, user=PERSON, credits=5, input_summary="my phone is 0803 123 4567")
    start(app, funded, run["id"], user=PERSON)
    settle(app, funded, run["id"], user=PERSON, credits_actual=3, output_summary="dave's answer")
    with tenant(app, funded, PERSON):
        call(app, "give_feedback", run_id=run["id"], thumbs_up=False, comment="dave did not like it")
        call(app, "remember", content="dave prefers morning feeding")
    return funded


def test_a_member_is_erased_everywhere_and_the_books_still_verify(app, admin, owner, lived):
    farm = lived
    before = verified(app, farm)
    assert rows_naming(admin, PERSON) != [] and rows_naming(admin, "dave did not like") != []
    counts = erase(app, farm, PERSON)
    assert counts["memories_deleted"] == 1
    assert rows_naming(admin, PERSON) == []
    for text in ("0803 123 4567", "dave's answer", "dave did not like", "morning feeding"):
        assert rows_naming(admin, text) == [], text
    # The pseudonym maps back to nothing.
    subject = counts["subject"]
    assert admin.execute(
        "SELECT user_id, erased_at IS NOT NULL FROM farmops.subjects WHERE id = %s", [subject]
    ).fetchone() == (None, True)
    assert (
        admin.execute(
            "SELECT count(*) FROM farmops.ai_runs WHERE user_id = %s", [f"erased:{subject}"]
        ).fetchone()[0]
        == 1
    )
    # The books hold and the chain, which holds hashes of subject ids, still verifies.
    assert call(owner, "check_invariants", farm_id=farm) == []
    after = verified(app, farm)
    assert after["broken_at_seq"] is None
    assert after["head_seq"] > before["head_seq"]
    actions = [
        r[0]
        for r in admin.execute(
            "SELECT action FROM farmops.audit_log WHERE farm_id = %s AND seq > %s ORDER BY seq",
            [farm, before["head_seq"]],
        )
    ]
    assert "erasure.member" in actions and "member.removed" in actions
    # A trusted head from before the erasure still holds.
    with tenant(app, farm, "alice"):
        anchored = row(app, "verify_audit", trusted_seq=before["head_seq"], trusted_hash=before["head_hash"])
    assert anchored["broken_at_seq"] is None
    # The former member can no longer act.
    with raises_sqlstate("OF002"):
        reserve(app, farm, user=PERSON)


def test_erasure_needs_the_owner_of_the_current_farm(app, admin, two_farms):
    a, b = two_farms
    add_member(app, a, "mia", "manager")
    add_member(app, b, PERSON, "worker", owner="bob")
    with raises_sqlstate("OF001"):
        value(app, "erase_member_data", user_id=PERSON)
    with tenant(app, a, "mia"), raises_sqlstate("OF003"):
        value(app, "erase_member_data", user_id="alice")
    # Another farm's member is not this farm's to erase, and nothing of theirs changes.
    with tenant(app, a, "alice"), raises_sqlstate("OF002"):
        value(app, "erase_member_data", user_id=PERSON)
    assert (
        admin.execute(
            "SELECT count(*) FROM farmops.farm_members WHERE farm_id = %s AND user_id = %s", [b, PERSON]
        ).fetchone()[0]
        == 1
    )
    with raises_sqlstate("42501"):
        value(app, "erase_farm", farm_id=a)


@pytest.mark.parametrize("bad", [None, "", "   ", "x" * 100_000, "bob\n", "nobody"])
def test_bad_user_ids_are_refused(app, farm, bad):
    expected = "OF002" if bad == "nobody" else "OF006"
    with tenant(app, farm, "alice"), raises_sqlstate(expected):
        value(app, "erase_member_data", user_id=bad)


def test_the_last_owner_cannot_be_erased_but_a_second_owner_can(app, admin, farm):
    with tenant(app, farm, "alice"), raises_sqlstate("OF005"):
        value(app, "erase_member_data", user_id="alice")
    add_member(app, farm, "olu", "owner")
    erase(app, farm, "alice", by="olu")  # an owner may erase another owner, even the one who made the farm
    assert rows_naming(admin, '"alice"') == []
    assert verified(app, farm, "olu")["broken_at_seq"] is None


def test_an_owner_may_erase_themself_when_another_owner_remains(app, admin, farm):
    add_member(app, farm, "olu", "owner")
    erase(app, farm, "olu", by="olu")
    assert rows_naming(admin, "olu") == []
    assert verified(app, farm)["broken_at_seq"] is None


def test_a_running_ask_blocks_erasure_until_it_settles(app, admin, funded):
    add_member(app, funded, PERSON, "worker")
    run = reserve(app, funded, user=PERSON, credits=2)
    start(app, funded, run["id"], user=PERSON)
    with tenant(app, funded, "alice"), raises_sqlstate("OF310"):
        value(app, "erase_member_data", user_id=PERSON)
    settle(app, funded, run["id"], user=PERSON, credits_actual=1)
    erase(app, funded, PERSON)
    assert rows_naming(admin, PERSON) == []


def test_erasure_racing_a_reservation_leaves_nothing_once_re_run(app, admin, owner, connect, funded):
    add_member(app, funded, PERSON, "worker")
    eraser, asker = connect("app"), connect("app")

    def do_erase():
        with tenant(eraser, funded, "alice"):
            return value(eraser, "erase_member_data", user_id=PERSON)

    def do_reserve():
        return row(asker, "reserve_run", farm_id=funded, user_id=PERSON, feature="chat", model="m", credits=1)

    results = concurrently([do_erase, do_reserve])
    states = sqlstates(results)
    assert states in ([None, "OF002"], ["OF310", None], [None, None]), results
    if states[0] == "OF310" or states == [None, None]:
        # The reservation won (or slipped in while the erasure committed): settle it, erase (again).
        live = admin.execute(
            "SELECT id FROM farmops.ai_runs WHERE farm_id = %s AND status = 'reserved'", [funded]
        ).fetchone()
        settle(app, funded, live[0], user="alice", credits_actual=1)
        erase(app, funded, PERSON)
    assert rows_naming(admin, PERSON) == []
    assert call(owner, "check_invariants", farm_id=funded) == []
    assert verified(app, funded)["broken_at_seq"] is None


def test_the_package_owner_erases_a_whole_farm(app, admin, owner, lived):
    farm = lived
    grant(app, farm, 7)
    with tenant(app, farm, "alice"):
        call(app, "remember", content="alice keeps the key under the mat")
    result = value(owner, "erase_farm", farm_id=farm)
    assert result["people"] >= 2
    for needle in (PERSON, '"alice"', "under the mat", "0803 123 4567"):
        assert rows_naming(admin, needle) == [], needle
    assert call(owner, "check_invariants", farm_id=farm) == []
    [checked] = call(owner, "verify_audit", farm_id=farm)
    assert checked["broken_at_seq"] is None
    assert admin.execute(
        "SELECT action FROM farmops.audit_log WHERE farm_id = %s ORDER BY seq DESC LIMIT 1", [farm]
    ).fetchone() == ("erasure.farm",)
    with raises_sqlstate("OF002"):
        value(owner, "erase_farm", farm_id="00000000-0000-0000-0000-000000000000")
    with raises_sqlstate("OF006"):
        value(owner, "erase_farm", farm_id=None)


def test_erasure_with_a_live_run_in_the_farm_is_refused_for_the_whole_farm(app, owner, funded):
    reserve(app, funded)
    with raises_sqlstate("OF310"):
        value(owner, "erase_farm", farm_id=funded)


def test_the_guards_let_only_a_pseudonymisation_through(app, admin, funded):
    reserve(app, funded, credits=2)
    # An identifier replaced by anything but erased:<uuid>, or with another column, is still refused.
    for sql in (
        "UPDATE farmops.credit_ledger SET actor = 'mallory' WHERE farm_id = %s",
        "UPDATE farmops.credit_ledger SET reason = NULL, actor = 'erased:' || gen_random_uuid() "
        "WHERE farm_id = %s",
        "UPDATE farmops.ai_runs SET credits_reserved = 99, user_id = 'erased:' || gen_random_uuid() "
        "WHERE farm_id = %s",
    ):
        with raises_sqlstate(None, sql) as caught:
            admin.execute(sql, [funded])
        assert caught.value.sqlstate in ("OF107", "OF103"), sql


def a_settled_run(app, farm, user, *, draft: dict | None = None) -> object:
    """A run of ``user`` in ``farm``, settled; with ``draft``, a note it proposed while running."""
    run = reserve(app, farm, user=user, credits=2)["id"]
    start(app, farm, run, user=user)
    if draft is not None:
        propose(app, farm, user, run, "note", draft)
    settle(app, farm, run, user=user, credits_actual=1)
    return run


def evals_of(admin, run) -> dict[str, tuple]:
    """The run's evals by rule name: (passed, severity, details), as the superuser."""
    return {
        r[0]: r[1:]
        for r in admin.execute(
            "SELECT rule_name, passed, severity, details FROM farmops.ai_evals WHERE ai_run_id = %s", [run]
        )
    }


def test_erasure_scrubs_what_the_persons_evals_quoted_and_keeps_the_verdicts(app, admin, owner, funded):
    farm = funded
    register_wide_rule(owner)
    add_member(app, farm, PERSON, "worker")
    add_member(app, farm, "wes", "worker")
    mine = a_settled_run(app, farm, PERSON)
    theirs = a_settled_run(app, farm, "wes")
    evaluate(app, farm, PERSON, mine, f"{SENTENCE}. Ring him after six.")
    evaluate(app, farm, "wes", theirs, f"{OTHER_SENTENCE}.")
    before = evals_of(admin, mine)
    assert SENTENCE in before["every_sentence"][2]["matches"]
    assert rows_naming(admin, SENTENCE) == ["ai_evals: 1"]  # (can fail: the sentence is there)
    others = evals_of(admin, theirs)
    head = verified(app, farm)

    subject = erase(app, farm, PERSON)["subject"]
    assert rows_naming(admin, SENTENCE) == [] and rows_naming(admin, "Ring him after six") == []
    after = evals_of(admin, mine)
    assert after["every_sentence"] == (True, "info", {"matches": ["[erased]", "[erased]"]})
    # The verdicts and counts stay: what was not personal text is untouched.
    for rule, (passed, severity, _details) in before.items():
        assert after[rule][:2] == (passed, severity), rule
    assert after["schema_conformance"] == before["schema_conformance"]  # no drafts: nothing quoted
    # Another member's evals in the same farm are theirs, and untouched.
    assert evals_of(admin, theirs) == others
    assert rows_naming(admin, OTHER_SENTENCE) == ["ai_evals: 1"]
    assert call(owner, "check_invariants", farm_id=farm) == []
    checked = verified(app, farm)
    assert checked["broken_at_seq"] is None and checked["head_seq"] > head["head_seq"]

    # The whole farm: every eval is scrubbed, also one that no person's erasure reaches any more (as an
    # erasure by an earlier release left them: on a run of the erased person, evaluated by them).
    admin.execute(
        "INSERT INTO farmops.ai_evals (farm_id, ai_run_id, rule_name, passed, severity, details, "
        "evaluated_by) VALUES (%s, %s, 'every_sentence', true, 'info', %s, %s)",
        [farm, mine, Jsonb({"matches": ["left behind by an earlier erasure"]}), f"erased:{subject}"],
    )
    value(owner, "erase_farm", farm_id=farm)
    assert rows_naming(admin, OTHER_SENTENCE) == []
    assert rows_naming(admin, "left behind by an earlier erasure") == []
    assert evals_of(admin, theirs)["every_sentence"] == (True, "info", {"matches": ["[erased]"]})
    assert admin.execute(
        "SELECT count(*) FROM farmops.ai_evals WHERE ai_run_id = %s AND details = %s",
        [mine, Jsonb({"matches": ["[erased]", "[erased]"]})],
    ).fetchone() == (1,)
    assert call(owner, "check_invariants", farm_id=farm) == []
    [checked] = call(owner, "verify_audit", farm_id=farm)
    assert checked["broken_at_seq"] is None


def test_erasure_scrubs_a_payload_failures_message_of_the_persons_run(app, admin, owner, funded):
    farm = funded
    add_member(app, farm, PERSON, "worker")
    run = a_settled_run(app, farm, PERSON, draft={"body": "Dave's left knee is worse, he limps at milking."})
    # The product tightens the note type afterwards: the person's draft no longer conforms.
    owner.execute(
        """SELECT farmops.register_record_type(p_name => 'note', p_class => 'routine',
           p_description => 'Note', p_target_schema => 'farmops', p_target_table => 'note_records',
           p_input_schema =>
           '{"type":"object","additionalProperties":false,"required":["body"],
             "properties":{"body":{"type":"string","maxLength":20}}}')"""
    )
    conformance = evaluate(app, farm, PERSON, run, "Noted.")["schema_conformance"]
    assert conformance["passed"] is False
    [failure] = conformance["details"]["failures"]
    assert "longer than 20 characters" in failure["message"]
    assert rows_naming(admin, "longer than 20 characters") == ["ai_evals: 1"]

    erase(app, farm, PERSON)
    assert rows_naming(admin, "longer than 20 characters") == []
    passed, severity, details = evals_of(admin, run)["schema_conformance"]
    assert (passed, severity) == (False, conformance["severity"])
    assert details == {
        "drafts_checked": 1,
        "failures": [{"draft_id": failure["draft_id"], "sqlstate": "OF202", "message": "[erased]"}],
    }
    assert call(owner, "check_invariants", farm_id=farm) == []
    assert verified(app, farm)["broken_at_seq"] is None


def test_the_guard_lets_only_the_exact_eval_scrub_through(app, admin, owner, funded):
    farm = funded
    register_wide_rule(owner)
    run = a_settled_run(app, farm, "alice")
    evaluate(app, farm, "alice", run, f"{SENTENCE}. Ring him after six.")
    where = "WHERE ai_run_id = %s AND rule_name = 'every_sentence'"
    # Anything but exactly the scrubbed form is refused, even as the superuser.
    for change in (
        "details = '{}'",
        "details = jsonb_set(details, '{matches,0}', '\"someone else\"')",
        "details = jsonb_build_object('matches', jsonb_build_array('[erased]'))",  # one match fewer
        "details = farmops._eval_details_erased(details) || '{\"note\": 1}'",
        "details = farmops._eval_details_erased(details), passed = NOT passed",
        "details = farmops._eval_details_erased(details), severity = 'block'",
    ):
        with raises_sqlstate("OF107", change):
            admin.execute(f"UPDATE farmops.ai_evals SET {change} {where}", [run])
    assert SENTENCE in evals_of(admin, run)["every_sentence"][2]["matches"]
    admin.execute(
        f"UPDATE farmops.ai_evals SET details = farmops._eval_details_erased(details) {where}", [run]
    )
    assert evals_of(admin, run)["every_sentence"][2] == {"matches": ["[erased]", "[erased]"]}
    with raises_sqlstate("OF107"):  # and it stays append-only
        admin.execute(f"DELETE FROM farmops.ai_evals {where}", [run])

    # A record table's own details (hashed into the chain) are not an eval's, whatever its other columns.
    table = product_table(admin, owner, columns="rule_name text, evaluated_by text, details jsonb")
    owner.execute(f"SELECT farmops._attach_append_only('{table}')")
    admin.execute(
        f"INSERT INTO {table} (farm_id, created_by, crates, rule_name, evaluated_by, details) "
        "VALUES (%s, 'alice', 3, 'every_sentence', 'alice', %s)",
        [farm, Jsonb({"matches": [SENTENCE]})],
    )
    with raises_sqlstate("OF107"):
        admin.execute(f"UPDATE {table} SET details = farmops._eval_details_erased(details)")


@pytest.mark.parametrize(
    ("details", "scrubbed"),
    [
        ({"matches": []}, {"matches": []}),
        ({"matches": ["a", "b", "c"]}, {"matches": ["[erased]"] * 3}),
        (
            {
                "drafts_checked": 2,
                "failures": [{"draft_id": "d", "sqlstate": "OF202", "message": "m"}, "odd"],
            },
            {
                "drafts_checked": 2,
                "failures": [{"draft_id": "d", "sqlstate": "OF202", "message": "[erased]"}, "odd"],
            },
        ),
        ({"drafts_checked": 0, "failures": []}, {"drafts_checked": 0, "failures": []}),
        (
            {"matches": "not an array", "failures": {"message": "m"}},
            {"matches": "not an array", "failures": {"message": "m"}},
        ),
        ({}, {}),
        ([1, 2], [1, 2]),
        ("text", "text"),
        (None, None),
    ],
)
def test_eval_details_erased_keeps_every_shape_and_never_raises(admin, details, scrubbed):
    got = admin.execute(
        "SELECT farmops._eval_details_erased(%s::jsonb)", [None if details is None else Jsonb(details)]
    ).fetchone()[0]
    assert got == scrubbed
