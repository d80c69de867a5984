"""resolve_autonomy and set_autonomy: every tier x class x override, the floor, the audit trail."""

import itertools

import psycopg
import pytest
from psycopg.types.json import Jsonb
from support import call, raises_sqlstate, tenant, value
from support.write_path import GUARDED, MEMBERS, ROUTINE, VALID, counts, make_farm, propose, set_autonomy

TIERS = ("suggest", "draft", "auto")
OVERRIDES = (None, "suggest", "draft", "auto")

# The rules as a table: (farm tier, per-type override, type in ai_auto_categories) -> routine outcome.
ROUTINE_TABLE = {
    ("suggest", None, False): "suggest",
    ("suggest", None, True): "suggest",
    ("suggest", "suggest", False): "suggest",
    ("suggest", "suggest", True): "suggest",
    ("suggest", "draft", False): "suggest",
    ("suggest", "draft", True): "suggest",
    ("suggest", "auto", False): "suggest",
    ("suggest", "auto", True): "suggest",
    ("draft", None, False): "draft",
    ("draft", None, True): "draft",
    ("draft", "suggest", False): "suggest",
    ("draft", "suggest", True): "suggest",
    ("draft", "draft", False): "draft",
    ("draft", "draft", True): "draft",
    ("draft", "auto", False): "draft",
    ("draft", "auto", True): "auto",
    ("auto", None, False): "draft",
    ("auto", None, True): "auto",
    ("auto", "suggest", False): "suggest",
    ("auto", "suggest", True): "suggest",
    ("auto", "draft", False): "draft",
    ("auto", "draft", True): "draft",
    ("auto", "auto", False): "draft",
    ("auto", "auto", True): "auto",
}


def expected(record_type: str, tier: str, override, listed: bool) -> str:
    """Financial and destructive types are always drafts; routine types follow ROUTINE_TABLE."""
    return "draft" if record_type in GUARDED else ROUTINE_TABLE[(tier, override, listed)]


def resolve_all(app, farm_id, user="bot") -> dict[str, str]:
    with tenant(app, farm_id, user):
        return {t: value(app, "resolve_autonomy", record_type=t) for t in VALID}


def test_every_tier_class_and_override_combination(app, wfarm):
    """3 tiers x 4 overrides x listed or not x all 9 types (216 cases), against the table above."""
    checked = 0
    for tier, override, listed in itertools.product(TIERS, OVERRIDES, (False, True)):
        categories = list(VALID) if listed else []
        overrides = {} if override is None else dict.fromkeys(VALID, override)
        set_autonomy(app, wfarm.id, "alice", tier, categories, overrides)
        got = resolve_all(app, wfarm.id)
        for record_type, outcome in got.items():
            assert outcome == expected(record_type, tier, override, listed), (
                tier,
                override,
                listed,
                record_type,
            )
            checked += 1
    assert checked == 216


@pytest.mark.parametrize("record_type", GUARDED)
def test_floor_holds_even_when_allow_listed_and_overridden_to_auto(app, admin, wfarm, record_type):
    """'sale' (or mortality, expense) in ai_auto_categories, with an auto override: still draft."""
    set_autonomy(app, wfarm.id, "alice", "auto", [record_type], {record_type: "auto"})
    stored = admin.execute(
        "SELECT ai_auto_categories FROM farmops.farms WHERE id = %s", [wfarm.id]
    ).fetchone()[0]
    assert stored == [record_type]  # stored as asked ...
    assert resolve_all(app, wfarm.id)[record_type] == "draft"  # ... but without effect
    _draft_id, outcome, record_id = propose(
        app, wfarm.id, "bot", wfarm.run, record_type, VALID[record_type][0]
    )
    assert (outcome, record_id) == ("drafted", None)
    table = VALID[record_type][1]
    assert admin.execute(f"SELECT count(*) FROM farmops.{table}").fetchone()[0] == 0


def test_floor_holds_in_suggest_tier(app, wfarm):
    """The resolution order: the financial/destructive floor comes first, so they stay draft under suggest."""
    set_autonomy(app, wfarm.id, "alice", "suggest", [], {t: "suggest" for t in VALID})
    got = resolve_all(app, wfarm.id)
    assert {t: got[t] for t in GUARDED} == dict.fromkeys(GUARDED, "draft")
    assert {t: got[t] for t in ROUTINE} == dict.fromkeys(ROUTINE, "suggest")


def test_default_farm_is_draft(app, wfarm):
    assert set(resolve_all(app, wfarm.id).values()) == {"draft"}


def test_resolve_needs_tenant_and_known_type(app, wfarm):
    with raises_sqlstate("OF001"):
        app.execute("SELECT farmops.resolve_autonomy(p_record_type => 'note')")
    for bad in ("nope", None, "", "note\u200b", "x" * 100_000):
        with raises_sqlstate("OF203", bad), tenant(app, wfarm.id, "bot"):
            call(app, "resolve_autonomy", record_type=bad)


def test_resolve_uses_the_current_farm_only(app, admin):
    a = make_farm(app, admin, "Farm A", "alice")
    b = make_farm(app, admin, "Farm B", "bob")
    set_autonomy(app, b.id, "bob", "auto", ["note"])
    assert resolve_all(app, b.id)["note"] == "auto"
    assert resolve_all(app, a.id)["note"] == "draft"


@pytest.mark.parametrize("user", [u for r, u in MEMBERS.items()])
def test_only_the_owner_sets_autonomy(app, admin, wfarm, user):
    before = counts(admin)
    with raises_sqlstate("OF003"):
        set_autonomy(app, wfarm.id, user, "auto", ["note"])
    assert counts(admin) == before
    assert (
        admin.execute("SELECT ai_autonomy FROM farmops.farms WHERE id = %s", [wfarm.id]).fetchone()[0]
        == "draft"
    )


def test_set_autonomy_without_tenant_is_refused(app, admin, wfarm):
    with raises_sqlstate("OF001"):
        app.execute("SELECT farmops.set_autonomy(p_tier => 'auto')")
    assert counts(admin)["autonomy_changes"] == 0


@pytest.mark.parametrize(
    ("tier", "categories", "overrides", "sqlstate"),
    [
        ("yolo", None, None, "OF006"),
        ("AUTO", None, None, "OF006"),
        ("", None, None, "OF006"),
        ("auto\x01", None, None, "OF006"),
        (None, {"note": True}, None, "OF006"),
        (None, "note", None, "OF006"),
        (None, [1, 2], None, "OF006"),
        (None, [None], None, "OF006"),
        (None, ["note", "launch_missiles"], None, "OF203"),
        (None, None, ["note"], "OF006"),
        (None, None, {"note": "always"}, "OF006"),
        (None, None, {"note": 1}, "OF006"),
        (None, None, {"note": None}, "OF006"),
        (None, None, {"ghost": "auto"}, "OF203"),
    ],
)
def test_set_autonomy_bad_input(app, admin, wfarm, tier, categories, overrides, sqlstate):
    before = admin.execute(
        "SELECT ai_autonomy, ai_auto_categories, ai_record_autonomy FROM farmops.farms"
    ).fetchall()
    with raises_sqlstate(sqlstate):
        set_autonomy(app, wfarm.id, "alice", tier, categories, overrides)
    after = admin.execute(
        "SELECT ai_autonomy, ai_auto_categories, ai_record_autonomy FROM farmops.farms"
    ).fetchall()
    assert after == before
    assert counts(admin)["autonomy_changes"] == 0


def test_every_change_is_audited_and_no_op_is_not(app, admin, wfarm):
    set_autonomy(app, wfarm.id, "alice", "auto", ["note", "task"])
    set_autonomy(app, wfarm.id, "alice", overrides={"task": "suggest"})
    set_autonomy(app, wfarm.id, "alice")  # nothing asked: nothing changes, nothing audited
    set_autonomy(app, wfarm.id, "alice", "auto")  # same tier: no change
    with tenant(app, wfarm.id, "alice"):
        rows = app.execute(
            "SELECT changed_by, old_settings, new_settings FROM farmops.autonomy_changes ORDER BY seq"
        ).fetchall()
    assert len(rows) == 2
    assert rows[0][0] == "alice"
    assert rows[0][1] == {"ai_autonomy": "draft", "ai_auto_categories": [], "ai_record_autonomy": {}}
    assert rows[0][2] == {
        "ai_autonomy": "auto",
        "ai_auto_categories": ["note", "task"],
        "ai_record_autonomy": {},
    }
    assert rows[1][1] == rows[0][2]
    assert rows[1][2]["ai_record_autonomy"] == {"task": "suggest"}
    # Other farms' audit rows are invisible.
    other = make_farm(app, admin, "Farm B", "bob")
    with tenant(app, other.id, "bob"):
        assert app.execute("SELECT count(*) FROM farmops.autonomy_changes").fetchone()[0] == 0


def test_audit_is_append_only_even_for_the_package_owner(app, owner, wfarm):
    set_autonomy(app, wfarm.id, "alice", "auto")
    for sql in (
        "UPDATE farmops.autonomy_changes SET changed_by = 'mallory'",
        "DELETE FROM farmops.autonomy_changes",
        "TRUNCATE farmops.autonomy_changes",
    ):
        with raises_sqlstate("OF107", sql):
            owner.execute(sql)
    assert owner.execute("SELECT count(*) FROM farmops.autonomy_changes").fetchone()[0] == 1


def test_app_cannot_write_settings_or_audit_directly(app, wfarm):
    for sql, params in (
        ("UPDATE farmops.farms SET ai_autonomy = 'auto' WHERE id = %s", [wfarm.id]),
        (
            "INSERT INTO farmops.autonomy_changes (farm_id, changed_by, old_settings, new_settings)"
            " VALUES (%s, 'alice', '{}', '{}')",
            [wfarm.id],
        ),
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege), tenant(app, wfarm.id, "alice"):
            app.execute(sql, params)


def test_pure_resolver_fails_safe_on_garbage(app, owner):
    """Unknown classes resolve to draft and unknown tiers to suggest (defence in depth)."""
    q = "SELECT farmops.resolve_autonomy_for(%s, 'note', %s, %s, %s)"
    assert owner.execute(q, ["weird", "auto", Jsonb(["note"]), Jsonb({})]).fetchone()[0] == "draft"
    assert owner.execute(q, ["routine", "yolo", Jsonb(["note"]), Jsonb({})]).fetchone()[0] == "suggest"
    assert (
        owner.execute(q, ["routine", "auto", Jsonb(["note"]), Jsonb({"note": "banana"})]).fetchone()[0]
        == "draft"
    )
    assert owner.execute(q, ["routine", "auto", None, None]).fetchone()[0] == "draft"
