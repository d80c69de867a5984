"""propose_write: each tier, every seeded type, refusals, and payload fuzzing (nothing stored on refusal).

Documented SQLSTATEs: OF001 no tenant, OF003 viewer, OF006 NULL run id, OF102 run not in this farm,
OF205 run not live, OF203 unknown type, OF202 bad payload, OF201 suggest only. A NUL character cannot
reach the validator: psycopg refuses it in text parameters client-side (DataError, nothing sent) and the
server refuses ``\\u0000`` in jsonb with 22P05 (untranslatable_character).
"""

import json
import uuid

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.types.json import Jsonb
from support import message_of, raises_sqlstate, row, sqlstate_of, tenant
from support.write_path import VALID, counts, make_farm, make_run, propose, set_autonomy

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
SALE = {"item": "crates of eggs", "quantity": 10, "amount_kobo": 4_500_000}


def refused(app, admin, farm, payload, record_type="sale", user="bot", run=None) -> str:
    """Propose, expect a refusal, check nothing was stored; return the SQLSTATE."""
    before = counts(admin)
    with raises_sqlstate() as excinfo:
        propose(app, farm.id, user, farm.run if run is None else run, record_type, payload)
    assert counts(admin) == before
    return sqlstate_of(excinfo)


def test_suggest_tier_refuses_routine_writes(app, admin, wfarm):
    set_autonomy(app, wfarm.id, "alice", "suggest")
    assert refused(app, admin, wfarm, VALID["note"][0], "note") == "OF201"


def test_draft_tier_drafts(app, admin, wfarm):
    draft_id, outcome, record_id = propose(app, wfarm.id, "bot", wfarm.run, "note", VALID["note"][0])
    assert (outcome, record_id) == ("drafted", None)
    row = admin.execute(
        "SELECT status, created_by, ai_run_id, payload, expires_at - created_at FROM farmops.assistant_drafts"
        " WHERE id = %s",
        [draft_id],
    ).fetchone()
    assert row[:4] == ("pending", "bot", wfarm.run, VALID["note"][0])
    assert row[4].total_seconds() == 24 * 3600
    assert admin.execute("SELECT count(*) FROM farmops.note_records").fetchone()[0] == 0


def test_auto_tier_writes_allow_listed_routine_and_leaves_an_audit_draft(app, admin, wfarm):
    set_autonomy(app, wfarm.id, "alice", "auto", ["note"])
    draft_id, outcome, record_id = propose(app, wfarm.id, "bot", wfarm.run, "note", VALID["note"][0])
    assert outcome == "auto_applied"
    draft = admin.execute(
        "SELECT status, record_id, decided_by FROM farmops.assistant_drafts WHERE id = %s", [draft_id]
    ).fetchone()
    assert draft == ("auto_applied", record_id, "bot")
    note = admin.execute(
        "SELECT farm_id, draft_id, created_by, body FROM farmops.note_records WHERE id = %s", [record_id]
    ).fetchone()
    assert note == (wfarm.id, draft_id, "bot", "Pond 3 is the nursery.")
    # Not allow-listed in the same tier: drafted.
    assert propose(app, wfarm.id, "bot", wfarm.run, "task", VALID["task"][0])[1] == "drafted"


@pytest.mark.parametrize("record_type", list(VALID))
def test_every_seeded_type_drafts_then_confirms_into_its_table(app, admin, wfarm, record_type):
    payload, table = VALID[record_type]
    draft_id, outcome, _ = propose(app, wfarm.id, "bot", wfarm.run, record_type, payload)
    assert outcome == "drafted"
    with tenant(app, wfarm.id, "wes"):
        record_id = row(app, "confirm_draft", draft_id=draft_id)["record_id"]
        stored = app.execute(
            f"SELECT to_jsonb(r) FROM farmops.{table} AS r WHERE id = %s", [record_id]
        ).fetchone()[0]
    assert stored["draft_id"] == str(draft_id)
    assert stored["created_by"] == "wes"
    for key, value in payload.items():
        assert stored[key] == value, key


@pytest.mark.parametrize("user", ["alice", "mia", "wes", "bot"])
def test_any_member_but_viewer_may_propose(app, wfarm, user):
    assert propose(app, wfarm.id, user, wfarm.run, "sale", SALE)[1] == "drafted"


def test_viewer_may_not_propose(app, admin, wfarm):
    assert refused(app, admin, wfarm, SALE, user="vic") == "OF003"


def test_no_tenant_context_is_refused(app, admin, wfarm):
    before = counts(admin)
    with raises_sqlstate("OF001"):
        app.execute(
            "SELECT * FROM farmops.propose_write(p_run_id => %s, p_record_type => 'sale', p_payload => %s)",
            [wfarm.run, Jsonb(SALE)],
        )
    assert counts(admin) == before


def test_runs_must_be_this_farms_and_live(app, admin, wfarm):
    other = make_farm(app, admin, "Farm B", "bob")
    assert refused(app, admin, wfarm, SALE, run=other.run) == "OF102"
    assert refused(app, admin, wfarm, SALE, run=uuid.uuid4()) == "OF102"
    for status in ("succeeded", "failed", "expired"):
        assert refused(app, admin, wfarm, SALE, run=make_run(admin, wfarm.id, status=status)) == "OF205", (
            status
        )
    assert refused(app, admin, wfarm, SALE, run=make_run(admin, wfarm.id, live=False)) == "OF205"
    assert (
        propose(app, wfarm.id, "bot", make_run(admin, wfarm.id, status="reserved"), "sale", SALE)[1]
        == "drafted"
    )


def test_null_arguments(app, admin, wfarm):
    with raises_sqlstate("OF006"):
        propose(app, wfarm.id, "bot", None, "sale", SALE)
    assert refused(app, admin, wfarm, SALE, record_type=None) == "OF203"
    assert refused(app, admin, wfarm, None) == "OF202"


@pytest.mark.parametrize(
    ("record_type", "payload", "needle"),
    [
        ("launch_missiles", SALE, None),
        ("SALE", SALE, None),
        ("sale", [], "JSON object"),
        ("sale", "eggs", "JSON object"),
        ("sale", 42, "JSON object"),
        ("sale", {}, '"item"'),
        ("sale", {**SALE, "farm_id": str(uuid.uuid4())}, '"farm_id"'),
        ("sale", {**SALE, "id": str(uuid.uuid4())}, '"id"'),
        ("sale", {**SALE, "draft_id": str(uuid.uuid4())}, '"draft_id"'),
        ("sale", {**SALE, "Item": "x"}, '"Item"'),
        ("sale", {k: v for k, v in SALE.items() if k != "item"}, '"item"'),
        ("sale", {**SALE, "amount_kobo": -100}, '"amount_kobo"'),
        ("sale", {**SALE, "amount_kobo": 0}, '"amount_kobo"'),
        ("sale", {**SALE, "amount_kobo": 10**13}, '"amount_kobo"'),
        ("sale", {**SALE, "amount_kobo": 10**40}, '"amount_kobo"'),
        ("sale", {**SALE, "amount_kobo": 4500.5}, '"amount_kobo"'),
        ("sale", {**SALE, "amount_kobo": 4500.0}, '"amount_kobo"'),
        ("sale", {**SALE, "amount_kobo": "4500"}, '"amount_kobo"'),
        ("sale", {**SALE, "amount_kobo": True}, '"amount_kobo"'),
        ("sale", {**SALE, "amount_kobo": None}, '"amount_kobo"'),
        ("sale", {**SALE, "quantity": 0}, '"quantity"'),
        ("sale", {**SALE, "quantity": -3}, '"quantity"'),
        ("sale", {**SALE, "quantity": [1]}, '"quantity"'),
        ("sale", {**SALE, "item": ""}, '"item"'),
        ("sale", {**SALE, "item": "   "}, '"item"'),
        ("sale", {**SALE, "item": "x" * 201}, '"item"'),
        ("sale", {**SALE, "item": "x" * 1_048_576}, '"item"'),
        ("sale", {**SALE, "item": "bell\x07"}, '"item"'),
        ("sale", {**SALE, "item": {"nested": "object"}}, '"item"'),
        ("sale", {**SALE, "event_date": "2999-01-01"}, '"event_date"'),
        ("sale", {**SALE, "event_date": "1970-01-01"}, '"event_date"'),
        ("sale", {**SALE, "event_date": "2024-02-30"}, '"event_date"'),
        ("sale", {**SALE, "event_date": "yesterday"}, '"event_date"'),
        ("sale", {**SALE, "event_date": "2024-1-1"}, '"event_date"'),
        ("sale", {**SALE, "event_date": 20240101}, '"event_date"'),
        ("expense", {"category": "bribes", "amount_kobo": 100}, '"category"'),
        ("expense", {"category": "FEED", "amount_kobo": 100}, '"category"'),
        ("feed_use", {"feed_type": "mash", "quantity_kg": 0}, '"quantity_kg"'),
        ("feed_use", {"feed_type": "mash", "quantity_kg": 1.2345}, '"quantity_kg"'),
        ("feed_use", {"feed_type": "mash", "quantity_kg": 1e300}, '"quantity_kg"'),
        ("mortality", {"count": 0}, '"count"'),
        ("task", {"title": "x", "due_date": "2099-01-01"}, '"due_date"'),
    ],
)
def test_bad_payloads_are_refused_naming_the_key(app, admin, wfarm, record_type, payload, needle):
    before = counts(admin)
    with raises_sqlstate("OF203" if needle is None else "OF202") as exc:
        propose(app, wfarm.id, "bot", wfarm.run, record_type, payload)
    if needle:
        assert needle in message_of(exc.value)
    assert counts(admin) == before


def test_nul_never_reaches_the_database(app, admin, wfarm):
    before = counts(admin)
    with raises_sqlstate("22P05"):
        propose(app, wfarm.id, "bot", wfarm.run, "sale", {**SALE, "item": "eggs\x00; DROP TABLE"})
    with pytest.raises(psycopg.errors.UntranslatableCharacter):
        propose(app, wfarm.id, "bot", wfarm.run, "sale", {**SALE, "it\x00em": "eggs"})
    with pytest.raises(psycopg.DataError):  # refused by psycopg before sending
        propose(app, wfarm.id, "bot", wfarm.run, "sa\x00le", SALE)
    assert counts(admin) == before


def test_unicode_is_stored_intact(app, admin, wfarm):
    item = "Ẹyin adìẹ 🥚 — 卵 \u200d\u00e9\u0301 نَعَم"
    draft_id, _, _ = propose(app, wfarm.id, "bot", wfarm.run, "sale", {**SALE, "item": item})
    assert (
        admin.execute(
            "SELECT payload->>'item' FROM farmops.assistant_drafts WHERE id = %s", [draft_id]
        ).fetchone()[0]
        == item
    )


WRONG_TYPED = st.one_of(
    st.text(max_size=20),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
    st.floats(allow_nan=False, allow_infinity=False),
)


@st.composite
def bad_sale_payloads(draw):
    """A sale payload with exactly one kind of defect."""
    payload = dict(SALE)
    defect = draw(st.sampled_from(["wrong_type", "missing", "extra", "money", "huge", "control"]))
    if defect == "wrong_type":
        key = draw(st.sampled_from(["item", "quantity", "amount_kobo", "buyer", "event_date"]))
        value = draw(WRONG_TYPED)
        if key in ("item", "buyer", "event_date"):
            value = draw(st.one_of(st.booleans(), st.none(), st.integers(), st.lists(st.text(), max_size=2)))
        elif isinstance(value, int) and not isinstance(value, bool):
            value = draw(st.sampled_from(["7", True, None, 7.5, [7]]))
        payload[key] = value
    elif defect == "missing":
        for key in draw(
            st.lists(st.sampled_from(["item", "quantity", "amount_kobo"]), min_size=1, unique=True)
        ):
            del payload[key]
    elif defect == "extra":
        key = draw(
            st.text(min_size=1, max_size=30).filter(
                lambda k: (
                    k not in ("item", "quantity", "amount_kobo", "buyer", "event_date") and "\x00" not in k
                )
            )
        )
        payload[key] = draw(st.one_of(st.integers(), st.text(max_size=10).filter(lambda s: "\x00" not in s)))
    elif defect == "money":
        payload["amount_kobo"] = draw(st.one_of(st.integers(max_value=0), st.integers(min_value=10**12 + 1)))
    elif defect == "huge":
        payload[draw(st.sampled_from(["item", "buyer"]))] = "x" * draw(
            st.integers(min_value=201, max_value=300_000)
        )
    else:
        ch = draw(st.sampled_from([chr(c) for c in [*range(1, 9), 11, 12, *range(14, 32), 127]]))
        payload[draw(st.sampled_from(["item", "buyer"]))] = "egg" + ch + "s"
    return payload


@FUZZ
@given(payload=bad_sale_payloads())
def test_fuzzed_bad_payloads_are_refused(app, admin, wfarm, payload):
    """OF202, or 22P05 when a NUL hides anywhere in the JSON (the server refuses it before farmops runs)."""
    expected = "22P05" if "\\u0000" in json.dumps(payload) else "OF202"
    assert refused(app, admin, wfarm, payload) == expected


PRINTABLE = st.characters(blacklist_categories=("Cs", "Cc"))


@FUZZ
@given(
    item=st.text(PRINTABLE, min_size=1, max_size=200).filter(lambda s: s.strip(" ")),
    quantity=st.integers(1, 10_000_000),
    amount=st.integers(1, 10**12),
    buyer=st.one_of(st.none(), st.text(PRINTABLE, max_size=200)),
)
def test_fuzzed_good_payloads_are_drafted_verbatim(app, admin, wfarm, item, quantity, amount, buyer):
    payload = {"item": item, "quantity": quantity, "amount_kobo": amount}
    if buyer is not None:
        payload["buyer"] = buyer
    draft_id, outcome, _ = propose(app, wfarm.id, "bot", wfarm.run, "sale", payload)
    assert outcome == "drafted"
    stored = admin.execute(
        "SELECT payload FROM farmops.assistant_drafts WHERE id = %s", [draft_id]
    ).fetchone()[0]
    assert stored == payload
