"""PII on every storage path, as the application role: the farm's keep policy, redaction of stored
text by the database, refusal of unredacted text that is about to be embedded, and finding counts."""

from __future__ import annotations

import json

import pytest
from psycopg.types.json import Jsonb
from support import call, concurrently, create_farm, raises_sqlstate, row, sqlstates, tenant, value
from support.credits import add_member, grant, settle, start
from support.knowledge import vec, vec_array

EMAIL = "musa.bello@example.com"
PHONE = "0803 123 4567"
CARD = "4111 1111 1111 1111"


def policy(app, farm, user="alice"):
    with tenant(app, farm, user):
        return row(app, "pii_policy")


def set_policy(app, farm, kinds, user="alice"):
    with tenant(app, farm, user):
        return value(app, "set_pii_policy", {"keep_kinds": "text[]"}, keep_kinds=kinds)


def reserve_with(app, farm, summary, user="alice"):
    grant(app, farm, 10, user=user)
    with tenant(app, farm, user):
        return row(app, "reserve_credits", feature="chat", model="m", credits=1, input_summary=summary)


def run_row(admin, run_id):
    cur = admin.execute(
        "SELECT input_summary, output_summary, error FROM farmops.ai_runs WHERE id = %s", [run_id]
    )
    return cur.fetchone()


def findings_of(app, farm, run_id, user="alice"):
    with tenant(app, farm, user):
        return {(r["source"], r["kind"]): r["findings"] for r in call(app, "run_pii_findings", run_id=run_id)}


# --- the keep policy --------------------------------------------------------------------------


def test_a_farm_keeps_nothing_until_its_owner_says_so(app, farm):
    assert policy(app, farm)["keep_kinds"] == []
    assert set_policy(app, farm, ["phone", "email", "phone"]) == ["email", "phone"]
    got = policy(app, farm)
    assert got["keep_kinds"] == ["email", "phone"] and got["updated_by"] == "alice"
    assert set_policy(app, farm, []) == []


@pytest.mark.parametrize(
    ("kinds", "code"),
    [
        (["name"], "OF305"),
        (["email", "EMAIL"], "OF305"),
        ([None], "OF305"),
        (["x" * 100_000], "OF305"),
        (None, "OF006"),
    ],
)
def test_bad_kinds_are_refused_with_documented_codes(app, farm, kinds, code):
    with raises_sqlstate(code), tenant(app, farm, "alice"):
        value(app, "set_pii_policy", {"keep_kinds": "text[]"}, keep_kinds=kinds)
    assert policy(app, farm)["keep_kinds"] == []


@pytest.mark.parametrize("role", ["manager", "worker", "viewer", "agent"])
def test_only_owners_set_the_policy(app, farm, role):
    add_member(app, farm, f"u_{role}", role)
    with raises_sqlstate("OF003"), tenant(app, farm, f"u_{role}"):
        value(app, "set_pii_policy", {"keep_kinds": "text[]"}, keep_kinds=["email"])
    assert policy(app, farm, f"u_{role}")["keep_kinds"] == []


def test_no_tenant_and_strangers_are_refused(app, two_farms):
    a, b = two_farms
    with raises_sqlstate("OF001"):
        value(app, "set_pii_policy", {"keep_kinds": "text[]"}, keep_kinds=["email"])
    with raises_sqlstate("OF002"), tenant(app, a, "bob"):  # bob owns farm B, not A
        pass
    set_policy(app, b, ["email"], user="bob")
    assert policy(app, a)["keep_kinds"] == []  # one farm's policy is not another's


def test_concurrent_policy_changes_leave_one_whole_policy(app, connect, farm):
    def change(kinds):
        conn = connect("app")
        return lambda: set_policy(conn, farm, kinds)

    results = concurrently([change(kinds) for kinds in (["email"], ["phone", "iban"], []) * 3])
    assert all(isinstance(r, list) for r in results)
    assert policy(app, farm)["keep_kinds"] in (["email"], ["iban", "phone"], [])


# --- stored text is redacted by the database -----------------------------------------------------


def test_run_summaries_and_errors_are_redacted_and_counted_per_run(app, admin, farm):
    run = reserve_with(app, farm, f"Call {PHONE} or mail {EMAIL}")
    assert run["input_summary"] == "Call [PHONE] or mail [EMAIL]"
    start(app, farm, run["id"])
    settle(
        app, farm, run["id"], "failed", credits_actual=0,
        output_summary=f"card {CARD}", error=f"upstream said {EMAIL} and {EMAIL}",
    )  # fmt: skip
    assert run_row(admin, run["id"]) == (
        "Call [PHONE] or mail [EMAIL]",
        "card [PAYMENT_CARD]",
        "upstream said [EMAIL] and [EMAIL]",
    )
    assert findings_of(app, farm, run["id"]) == {
        ("ai_runs.input_summary", "email"): 1,
        ("ai_runs.input_summary", "phone"): 1,
        ("ai_runs.output_summary", "payment_card"): 1,
        ("ai_runs.error", "email"): 2,
    }
    # No raw value anywhere in the counts table.
    dump = json.dumps(
        [list(r) for r in admin.execute("SELECT * FROM farmops.pii_findings").fetchall()], default=str
    )
    assert EMAIL not in dump and "4567" not in dump


def test_kept_kinds_stay_and_are_not_counted(app, admin, farm):
    set_policy(app, farm, ["email"])
    run = reserve_with(app, farm, f"Call {PHONE} or mail {EMAIL}")
    assert run["input_summary"] == f"Call [PHONE] or mail {EMAIL}"
    assert findings_of(app, farm, run["id"]) == {("ai_runs.input_summary", "phone"): 1}


def test_feedback_comments_and_eval_details_are_redacted(app, admin, wfarm):
    farm, run = wfarm.id, wfarm.run
    with tenant(app, farm, "alice"):
        row(app, "give_feedback", run_id=run, thumbs_up=False, comment=f"wrong, call me on {PHONE}")
    comment = admin.execute("SELECT comment FROM farmops.ai_feedback WHERE ai_run_id = %s", [run]).fetchone()[
        0
    ]
    assert comment == "wrong, call me on [PHONE]"
    # An eval's details carry the writer's strings: every string value is redacted.
    admin.execute("SET ROLE farmops_owner")
    try:
        admin.execute(
            "INSERT INTO farmops.ai_evals"
            " (farm_id, ai_run_id, rule_name, passed, severity, details, evaluated_by)"
            " VALUES (%s, %s, 'clinical_safety', false, 'warn', %s, 'alice')",
            [farm, run, json.dumps({"matches": [f"mail {EMAIL}", "dose 5 mg/kg"], "n": 2})],
        )
    finally:
        admin.execute("RESET ROLE")
    details = admin.execute("SELECT details FROM farmops.ai_evals WHERE ai_run_id = %s", [run]).fetchone()[0]
    assert details == {"matches": ["mail [EMAIL]", "dose 5 mg/kg"], "n": 2}
    assert findings_of(app, farm, run) == {
        ("ai_feedback.comment", "phone"): 1,
        ("ai_evals.details", "email"): 1,
    }


def test_documents_are_stored_redacted_and_chunks_with_pii_are_refused(app, admin, farm):
    text = f"Supplier contact: {EMAIL}, {PHONE}. Feed arrives Monday."
    clean = "Supplier contact: [EMAIL], [PHONE]. Feed arrives Monday."
    with tenant(app, farm, "alice"):
        doc = value(
            app, "ingest_document", {"embeddings": "vector[]"},
            title=f"from {EMAIL}", content=text, chunks=[clean], embeddings=vec_array([vec(1)]), model="m",
        )  # fmt: skip
    stored = admin.execute("SELECT title, content FROM farmops.documents WHERE id = %s", [doc]).fetchone()
    assert stored == ("from [EMAIL]", clean)
    with raises_sqlstate("OF304", match="email"), tenant(app, farm, "alice"):
        value(
            app, "ingest_document", {"embeddings": "vector[]"},
            title="raw", content="other " + text, chunks=["ok", f"mail {EMAIL}"],
            embeddings=vec_array([vec(1), vec(0, 1)]), model="m",
        )  # fmt: skip
    assert (
        admin.execute("SELECT count(*) FROM farmops.documents WHERE farm_id = %s", [farm]).fetchone()[0] == 1
    )
    with tenant(app, farm, "alice"):
        counts = call(app, "pii_finding_counts", days=1)
    assert {(r["kind"], r["findings"]) for r in counts} == {("email", 2), ("phone", 1)}


def test_memories_with_pii_are_refused_unless_the_farm_keeps_the_kind(app, farm):
    with raises_sqlstate("OF304", match="phone"), tenant(app, farm, "alice"):
        value(app, "remember", content=f"The vet's number is {PHONE}")
    with tenant(app, farm, "alice"):
        assert value(app, "remember", content="The vet's number is [PHONE]")
    set_policy(app, farm, ["phone"])
    with tenant(app, farm, "alice"):
        assert value(app, "remember", content=f"The vet's number is {PHONE}")


def test_conversation_summaries_with_pii_are_refused(app, farm):
    import uuid

    with raises_sqlstate("OF304"), tenant(app, farm, "alice"):
        value(
            app, "replace_source_embeddings", {"embeddings": "vector[]"},
            source_type="convo_summary", source_id=uuid.uuid4(), chunks=[f"asked {EMAIL}"],
            embeddings=vec_array([vec(1)]), model="m",
        )  # fmt: skip


def test_redact_pii_for_farm_follows_the_policy_and_needs_a_member(app, two_farms):
    a, b = two_farms
    set_policy(app, a, ["email"])
    text = f"{EMAIL} {PHONE}"
    with tenant(app, a, "alice"):
        got = row(app, "redact_pii_for_farm", text=text)
    assert got["redacted"] == f"{EMAIL} [PHONE]" and [f["kind"] for f in got["findings"]] == ["phone"]
    with tenant(app, b, "bob"):
        assert row(app, "redact_pii_for_farm", text=text)["redacted"] == "[EMAIL] [PHONE]"
        assert row(app, "redact_pii_for_farm", text=None)["redacted"] is None
    with raises_sqlstate("OF001"):
        row(app, "redact_pii_for_farm", text=text)


def test_counts_are_per_farm_and_bad_arguments_are_refused(app, admin, two_farms):
    a, b = two_farms
    run = reserve_with(app, a, f"mail {EMAIL}")
    assert findings_of(app, a, run["id"]) == {("ai_runs.input_summary", "email"): 1}
    with tenant(app, b, "bob"):
        assert call(app, "run_pii_findings", run_id=run["id"]) == []  # another farm's run: nothing
        assert call(app, "pii_finding_counts", days=30) == []
    assert (
        sqlstates(
            [_try(app, b, "pii_finding_counts", days=d) for d in (0, -1, 3661, None)]
            + [_try(app, b, "run_pii_findings", run_id=None)]
        )
        == ["OF006"] * 5
    )
    # pii_findings is append-only, for every role.
    admin.execute("SET ROLE farmops_owner")
    try:
        with raises_sqlstate("OF107"):
            admin.execute("DELETE FROM farmops.pii_findings")
    finally:
        admin.execute("RESET ROLE")


def _try(app, farm, function, **kwargs):
    try:
        with tenant(app, farm, "bob"):
            return call(app, function, **kwargs)
    except Exception as exc:  # the SQLSTATE is the answer
        return exc


def test_a_second_farm_is_unaffected_by_a_policy(app, admin):
    a = create_farm(app, "A", "alice")
    b = create_farm(app, "B", "bob")
    set_policy(app, a, ["email", "phone"])
    run_b = reserve_with(app, b, f"mail {EMAIL}", user="bob")
    assert run_b["input_summary"] == "mail [EMAIL]"


# --- mask policy rules (the policy engine's `mask` effect) ---------------------------------------


def mask(app, farm, name, kinds, **subject):
    """A mask rule of the farm's owner (farmops.set_policy, decision mask)."""
    with tenant(app, farm, "alice"):
        return row(
            app, "set_policy", name=name, action="reserve", decision="mask", masked_kinds=kinds, **subject
        )


def test_a_mask_rule_masks_a_kind_the_farm_keeps_in_a_runs_text(app, admin, wfarm):
    farm = wfarm.id
    set_policy(app, farm, ["email", "phone"])
    mask(app, farm, "mask-chat-email", ["email"], feature="chat")
    text = f"Call {PHONE} or mail {EMAIL}"
    chat = reserve_with(app, farm, text)  # feature chat: the rule matches
    assert chat["input_summary"] == f"Call {PHONE} or mail [EMAIL]"
    assert findings_of(app, farm, chat["id"]) == {("ai_runs.input_summary", "email"): 1}
    grant(app, farm, 10)
    with tenant(app, farm, "alice"):
        other = row(app, "reserve_credits", feature="report", model="m", credits=1, input_summary=text)
    assert other["input_summary"] == text  # another feature: the policy alone
    # The run's later text (settle, feedback) follows the same run's rules.
    start(app, farm, chat["id"])
    settle(app, farm, chat["id"], "succeeded", credits_actual=1, output_summary=f"mailed {EMAIL}")
    with tenant(app, farm, "alice"):
        row(app, "give_feedback", run_id=chat["id"], thumbs_up=True, comment=f"thanks, {EMAIL}")
        row(app, "give_feedback", run_id=other["id"], thumbs_up=True, comment=f"thanks, {EMAIL}")
    assert run_row(admin, chat["id"])[1] == "mailed [EMAIL]"
    comments = dict(
        admin.execute("SELECT ai_run_id, comment FROM farmops.ai_feedback WHERE farm_id = %s", [farm])
    )
    assert comments == {chat["id"]: "thanks, [EMAIL]", other["id"]: f"thanks, {EMAIL}"}


def test_a_mask_rule_on_a_role_or_a_condition_follows_the_runs_member_and_credits(app, wfarm):
    farm = wfarm.id
    set_policy(app, farm, ["phone"])
    mask(app, farm, "mask-agent-phone", ["phone"], member_role="agent")
    mask(
        app,
        farm,
        "mask-big-phone",
        ["phone"],
        conditions=Jsonb([{"attribute": "credits", "op": "gte", "value": 5}]),
    )
    grant(app, farm, 20)
    with tenant(app, farm, "bot"):  # the agent
        assert (
            row(app, "reserve_credits", feature="f", model="m", credits=1, input_summary=PHONE)[
                "input_summary"
            ]
            == "[PHONE]"
        )
    with tenant(app, farm, "alice"):  # the owner, a small run, a large one
        assert (
            row(app, "reserve_credits", feature="f", model="m", credits=1, input_summary=PHONE)[
                "input_summary"
            ]
            == PHONE
        )
        assert (
            row(app, "reserve_credits", feature="f", model="m", credits=5, input_summary=PHONE)[
                "input_summary"
            ]
            == "[PHONE]"
        )


def test_text_not_tied_to_a_run_honours_every_mask_rule(app, admin, farm):
    # Documents, chunks, memories and redact_pii_for_farm may serve any run: every mask rule applies.
    set_policy(app, farm, ["email", "phone"])
    mask(app, farm, "mask-chat-email", ["email"], feature="chat")
    with tenant(app, farm, "alice"):
        got = row(app, "redact_pii_for_farm", text=f"{EMAIL} {PHONE}")
        assert got["redacted"] == f"[EMAIL] {PHONE}" and [f["kind"] for f in got["findings"]] == ["email"]
        assert value(app, "remember", content=f"The vet's number is {PHONE}")
    with raises_sqlstate("OF304", match="email"), tenant(app, farm, "alice"):
        value(app, "remember", content=f"The vet mails from {EMAIL}")
    with tenant(app, farm, "alice"):
        doc = value(
            app, "ingest_document", {"embeddings": "vector[]"},
            title=f"from {EMAIL}", content=f"{EMAIL} / {PHONE}", chunks=[f"[EMAIL] / {PHONE}"],
            embeddings=vec_array([vec(1)]), model="m",
        )  # fmt: skip
    assert admin.execute("SELECT title, content FROM farmops.documents WHERE id = %s", [doc]).fetchone() == (
        "from [EMAIL]",
        f"[EMAIL] / {PHONE}",
    )
    # Dropping the rule gives the policy back; a mask never keeps what the policy does not.
    with tenant(app, farm, "alice"):
        row(app, "drop_policy", name="mask-chat-email")
        assert row(app, "redact_pii_for_farm", text=EMAIL)["redacted"] == EMAIL
    mask(app, farm, "mask-nothing-kept", ["iban"])
    with tenant(app, farm, "alice"):
        assert (
            row(app, "redact_pii_for_farm", text=f"{EMAIL} {CARD}")["redacted"] == f"{EMAIL} [PAYMENT_CARD]"
        )


def test_a_package_wide_mask_rule_applies_to_every_farm(app, owner, two_farms):
    a, b = two_farms
    set_policy(app, a, ["email"])
    set_policy(app, b, ["email"], user="bob")
    row(
        owner,
        "set_default_policy",
        name="mask-email",
        action="reserve",
        decision="mask",
        masked_kinds=["email"],
    )
    for farm, user in ((a, "alice"), (b, "bob")):
        with tenant(app, farm, user):
            assert row(app, "redact_pii_for_farm", text=EMAIL)["redacted"] == "[EMAIL]"
    # Another farm's mask rule changes nothing here.
    row(owner, "drop_default_policy", name="mask-email")
    mask(app, a, "mask-email", ["email"])
    with tenant(app, b, "bob"):
        assert row(app, "redact_pii_for_farm", text=EMAIL)["redacted"] == EMAIL


def test_the_screens_apply_mask_rules_to_the_message_and_the_answer(app, wfarm):
    farm = wfarm.id
    set_policy(app, farm, ["email"])
    with tenant(app, farm, "bot"):
        assert row(app, "screen_input", text=f"mail {EMAIL}")["redacted"] == f"mail {EMAIL}"
    mask(app, farm, "mask-email", ["email"])
    with tenant(app, farm, "bot"):
        assert row(app, "screen_input", text=f"mail {EMAIL}")["redacted"] == "mail [EMAIL]"
        assert row(app, "screen_output", run_id=wfarm.run, text=f"mail {EMAIL}")["answer"] == "mail [EMAIL]"
