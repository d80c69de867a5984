"""The policy engine: rules as rows per farm and package-wide, first match wins, evaluated in the
reservation and in propose_write, managed by owners only; every call as the application role."""

from __future__ import annotations

import contextlib

import pytest
from psycopg.types.json import Jsonb
from support import call, race, raises_sqlstate, row, sqlstates, tenant
from support.control import explain, policies, reserve_run, set_policy
from support.credits import add_member, counts, grant, invariants, reserve
from support.write_path import VALID, make_farm, propose, set_autonomy

from farmops_client.errors import PolicyDenied

BIG = [{"attribute": "credits", "op": "gte", "value": 50}]


def test_deny_names_the_rule_and_writes_nothing(app, admin, funded):
    set_policy(app, funded, "no-big-runs", "reserve", "deny", conditions=BIG)
    before = counts(admin, funded)
    with pytest.raises(PolicyDenied) as caught:
        reserve_run(app, funded, credits=60)
    assert caught.value.sqlstate == "OF401"
    assert caught.value.rule == "no-big-runs" and caught.value.source == "farm"
    assert "credits >= 50" in str(caught.value)
    assert counts(admin, funded) == before
    assert reserve_run(app, funded, credits=49)["credits_reserved"] == 49  # below the rule: allowed


def test_reserve_credits_is_governed_too(app, funded):
    set_policy(app, funded, "no-chat", "reserve", "deny", feature="chat")
    with raises_sqlstate("OF401"):
        reserve(app, funded, feature="chat")
    assert reserve(app, funded, feature="diagnose")["status"] == "reserved"


def test_first_match_wins_in_rank_order(app, funded):
    set_policy(app, funded, "deny-big", "reserve", "deny", rank=20, conditions=BIG)
    set_policy(app, funded, "vip-may", "reserve", "allow", rank=10, feature="vip")
    assert reserve_run(app, funded, credits=60, feature="vip")["status"] == "reserved"
    with raises_sqlstate("OF401"):
        reserve_run(app, funded, credits=60, feature="chat")
    # the same rank: by name
    set_policy(app, funded, "vip-may", "reserve", "allow", rank=20, feature="vip")
    assert explain(app, funded, "reserve", {"feature": "vip", "credits": 60})["rule_name"] == "deny-big"


def test_subjects_role_capability_model(app, funded):
    add_member(app, funded, "bot", "agent")
    add_member(app, funded, "mia", "manager")
    set_policy(
        app,
        funded,
        "agents-small",
        "reserve",
        "deny",
        member_role="agent",
        conditions=[{"attribute": "credits", "op": "gte", "value": 5}],
    )
    with raises_sqlstate("OF401"):
        reserve_run(app, funded, user="bot", credits=5)
    assert reserve_run(app, funded, user="bot", credits=4)["status"] == "reserved"
    assert reserve_run(app, funded, user="alice", credits=5)["status"] == "reserved"
    # a capability subject: every role holding drive_others_runs (owner, manager), not the agent
    set_policy(
        app, funded, "no-opus-for-drivers", "reserve", "deny", capability="drive_others_runs", model="opus"
    )
    with raises_sqlstate("OF401"):
        reserve_run(app, funded, user="mia", model="opus")
    assert reserve_run(app, funded, user="bot", model="opus")["status"] == "reserved"
    assert reserve_run(app, funded, user="mia", model="haiku")["status"] == "reserved"


def test_conditions_in_and_between_and_tokens(app, funded):
    set_policy(
        app,
        funded,
        "models",
        "reserve",
        "deny",
        conditions=[
            {"attribute": "model", "op": "in", "value": ["a", "b"]},
            {"attribute": "tokens", "op": "between", "value": [1000, 5000]},
        ],
    )
    with raises_sqlstate("OF401"):
        reserve_run(app, funded, model="a", max_input_tokens=1000, max_output_tokens=2000)
    # outside the token range, or another model: allowed
    grant(app, funded, 10_000)
    reserve_run(app, funded, model="a", max_input_tokens=5000, max_output_tokens=1)
    reserve_run(app, funded, model="c", max_input_tokens=1000, max_output_tokens=2000)


def test_hour_and_weekday_in_the_farms_time_zone(app, admin, funded):
    with tenant(app, funded, "alice"):
        assert call(app, "set_farm_time_zone", time_zone="Africa/Lagos")
    hour, weekday = admin.execute(
        "SELECT extract(hour FROM now() AT TIME ZONE 'Africa/Lagos')::int,"
        " extract(isodow FROM now() AT TIME ZONE 'Africa/Lagos')::int"
    ).fetchone()
    set_policy(
        app,
        funded,
        "quiet-hour",
        "reserve",
        "deny",
        conditions=[
            {"attribute": "hour", "op": "between", "value": [hour, hour]},
            {"attribute": "weekday", "op": "eq", "value": weekday},
        ],
    )
    with raises_sqlstate("OF401"):
        reserve_run(app, funded)
    # explain at another instant: 12 hours later the rule does not match
    later = admin.execute("SELECT (now() + interval '12 hours')::text").fetchone()[0]
    assert explain(app, funded, "reserve", {"at": later})["decision"] == "allow"
    with tenant(app, funded, "alice"), raises_sqlstate("OF006"):
        call(app, "set_farm_time_zone", time_zone="Mars/Olympus")


def test_rules_are_hot_and_dropping_restores(app, funded):
    set_policy(app, funded, "stop", "reserve", "deny")
    with raises_sqlstate("OF401"):
        reserve_run(app, funded)
    with tenant(app, funded, "alice"):
        dropped = row(app, "drop_policy", name="STOP")  # names are case-insensitive
    assert dropped["name"] == "stop"
    assert reserve_run(app, funded)["status"] == "reserved"
    with tenant(app, funded, "alice"), raises_sqlstate("OF404"):
        call(app, "drop_policy", name="stop")


def test_package_defaults_come_after_the_farms_rules(app, owner, funded):
    owner.execute(
        "SELECT farmops.set_default_policy(p_name => 'no-huge', p_action => 'reserve', p_decision => 'deny',"
        " p_conditions => %s)",
        [Jsonb([{"attribute": "credits", "op": "gte", "value": 90}])],
    )
    try:
        with pytest.raises(PolicyDenied) as caught:
            reserve_run(app, funded, credits=95)
        assert caught.value.source == "package"
        listing = policies(app, funded)
        assert [(p["source"], p["name"]) for p in listing] == [("package", "no-huge")]
        set_policy(app, funded, "we-may", "reserve", "allow", conditions=BIG)
        assert reserve_run(app, funded, credits=95)["status"] == "reserved"
        # the application may not write package rules
        with raises_sqlstate("42501"):
            app.execute("SELECT farmops.set_default_policy('x', 'reserve', 'deny')")
    finally:
        owner.execute("SELECT farmops.drop_default_policy('no-huge')")
    with raises_sqlstate("OF404"):
        owner.execute("SELECT farmops.drop_default_policy('no-huge')")


def test_listing_and_explain(app, funded):
    set_policy(
        app,
        funded,
        "hold-big",
        "reserve",
        "require_approval",
        rank=5,
        conditions=BIG,
        description="finance signs off on big runs",
    )
    set_policy(app, funded, "mask-contacts", "reserve", "mask", masked_kinds=["phone", "email"])
    listing = policies(app, funded)
    assert [p["name"] for p in listing] == ["hold-big", "mask-contacts"]
    assert listing[0]["explanation"] == "hold for approval reserve when credits >= 50"
    assert listing[1]["explanation"] == "keep phone, email masked in reserve (always)"
    found = explain(app, funded, "reserve", {"credits": 60})
    assert (found["decision"], found["rule_name"], found["rule_source"]) == (
        "require_approval",
        "hold-big",
        "farm",
    )
    assert found["masked_kinds"] == ["email", "phone"]
    nothing = explain(app, funded, "reserve", {"credits": 1})
    assert (nothing["decision"], nothing["rule_name"], nothing["rule_source"]) == ("allow", None, "default")
    # any member may read and explain
    add_member(app, funded, "vic", "viewer")
    assert len(policies(app, funded, user="vic")) == 2
    assert explain(app, funded, "reserve", {"credits": 60}, user="vic")["decision"] == "require_approval"


def test_masked_kinds_for_the_pii_guard(app, owner, funded):
    set_policy(app, funded, "mask-a", "reserve", "mask", masked_kinds=["phone"], feature="chat")
    set_policy(app, funded, "mask-b", "reserve", "mask", masked_kinds=["email"])
    kinds = owner.execute(
        "SELECT farmops._policy_masked_kinds(%s, 'reserve', %s)", [funded, Jsonb({"feature": "chat"})]
    ).fetchone()[0]
    assert kinds == ["email", "phone"]
    kinds = owner.execute(
        "SELECT farmops._policy_masked_kinds(%s, 'reserve', %s)", [funded, Jsonb({"feature": "other"})]
    ).fetchone()[0]
    assert kinds == ["email"]
    # a mask rule decides nothing: the reservation goes through
    assert reserve_run(app, funded)["status"] == "reserved"
    with raises_sqlstate("42501"):  # private
        app.execute("SELECT farmops._policy_masked_kinds(%s)", [funded])


def test_propose_write_rules_never_lower_the_floor(app, admin):
    farm = make_farm(app, admin)
    set_autonomy(app, farm.id, "alice", tier="auto", categories=["note", "water"])
    payload, _ = VALID["note"]
    assert propose(app, farm.id, "bot", farm.run, "note", payload)[1] == "auto_applied"
    set_policy(app, farm.id, "notes-need-eyes", "propose_write", "require_approval", record_type="note")
    assert propose(app, farm.id, "bot", farm.run, "note", payload)[1] == "drafted"
    # allow cannot lift the floor: a sale stays a draft
    set_policy(app, farm.id, "allow-all", "propose_write", "allow", rank=50)
    sale, _ = VALID["sale"]
    assert propose(app, farm.id, "bot", farm.run, "sale", sale)[1] == "drafted"
    # deny on a payload amount
    set_policy(
        app,
        farm.id,
        "big-sales",
        "propose_write",
        "deny",
        rank=10,
        record_type="sale",
        conditions=[{"attribute": "payload.amount_kobo", "op": "gte", "value": 1_000_000}],
    )
    with raises_sqlstate("OF401"):
        propose(app, farm.id, "bot", farm.run, "sale", sale)
    assert propose(app, farm.id, "bot", farm.run, "sale", {**sale, "amount_kobo": 999_999})[1] == "drafted"


def test_one_farms_rules_never_touch_another(app, two_farms):
    a, b = two_farms
    grant(app, a, 100)
    grant(app, b, 100, user="bob")
    set_policy(app, a, "stop", "reserve", "deny")
    assert reserve_run(app, b, user="bob")["status"] == "reserved"
    assert policies(app, b, user="bob") == []
    with tenant(app, b, "bob"), raises_sqlstate("OF404"):
        call(app, "drop_policy", name="stop")
    with raises_sqlstate("OF401"):
        reserve_run(app, a)
    # RLS: the app login reads no rule of farm A from farm B's context, nor without a context
    with tenant(app, b, "bob"):
        assert app.execute("SELECT count(*) FROM farmops.policies").fetchone()[0] == 0
    assert app.execute("SELECT count(*) FROM farmops.policies").fetchone()[0] == 0


@pytest.mark.parametrize("role", ["manager", "worker", "viewer", "agent"])
def test_only_owners_change_rules(app, funded, role):
    add_member(app, funded, "m", role)
    with raises_sqlstate("OF003"):
        set_policy(app, funded, "x", "reserve", "deny", user="m")
    set_policy(app, funded, "x", "reserve", "deny")
    with tenant(app, funded, "m"), raises_sqlstate("OF003"):
        call(app, "drop_policy", name="x")
    with tenant(app, funded, "m"), raises_sqlstate("OF003"):
        call(app, "set_farm_time_zone", time_zone="UTC")


def test_no_context_and_no_direct_writes(app, funded):
    with raises_sqlstate("OF001"):
        call(app, "set_policy", name="x", action="reserve", decision="deny")
    with raises_sqlstate("OF001"):
        call(app, "policies")
    with raises_sqlstate("OF001"):
        call(app, "explain_policy", action="reserve", attributes=Jsonb({}))
    with tenant(app, funded, "alice"), raises_sqlstate("42501"):
        app.execute(
            "INSERT INTO farmops.policies (farm_id, name, action, decision, updated_by)"
            " VALUES (%s, 'x', 'reserve', 'deny', 'alice')",
            [funded],
        )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": None},
        {"name": ""},
        {"name": "x" * 64},
        {"name": "Bad Name!"},
        {"name": "a\x01b"},
        {"action": None},
        {"action": "settle"},
        {"decision": None},
        {"decision": "maybe"},
        {"rank": 0},
        {"rank": 10001},
        {"rank": None},
        {"member_role": "king"},
        {"capability": "fly"},
        {"record_type": "sale"},  # a reserve rule has no record type
        {"decision": "mask"},  # mask without kinds
        {"masked_kinds": ["email"]},  # kinds without mask
        {"decision": "mask", "masked_kinds": ["Not A Kind"]},
        {"decision": "mask", "masked_kinds": [None]},
        {"feature": "x" * 101},
        {"description": "d" * 1001},
        {"conditions": {"attribute": "credits"}},
        {"conditions": [1]},
        {"conditions": [{"attribute": "credits", "op": "gte"}]},
        {"conditions": [{"attribute": "credits", "op": "gte", "value": 1, "extra": 1}]},
        {"conditions": [{"attribute": "colour", "op": "eq", "value": "red"}]},
        {"conditions": [{"attribute": "credits", "op": "gt", "value": 1}]},
        {"conditions": [{"attribute": "credits", "op": "gte", "value": "1"}]},
        {"conditions": [{"attribute": "model", "op": "gte", "value": 1}]},
        {"conditions": [{"attribute": "credits", "op": "between", "value": [5, 1]}]},
        {"conditions": [{"attribute": "credits", "op": "between", "value": [1]}]},
        {"conditions": [{"attribute": "model", "op": "in", "value": []}]},
        {"conditions": [{"attribute": "model", "op": "in", "value": [[1]]}]},
        {"conditions": [{"attribute": "model", "op": "eq", "value": None}]},
        {"conditions": [{"attribute": "model", "op": "eq", "value": "m" * 5000}]},
        {"conditions": [{"attribute": "credits", "op": "gte", "value": 1}] * 21},
        {"conditions": [{"attribute": "payload.Amount", "op": "gte", "value": 1}]},
    ],
)
def test_bad_rules_are_invalid_arguments(app, funded, kwargs):
    args = {"name": "r", "action": "reserve", "decision": "deny", **kwargs}
    conditions = args.pop("conditions", None)
    with tenant(app, funded, "alice"), raises_sqlstate("OF006"):
        call(app, "set_policy", **args, **({} if conditions is None else {"conditions": Jsonb(conditions)}))
    assert policies(app, funded) == []


@pytest.mark.parametrize(
    "action, attributes",
    [(None, {}), ("settle", {}), ("reserve", [1]), ("reserve", {"at": "not a time"})],
)
def test_explain_bad_input(app, funded, action, attributes):
    with tenant(app, funded, "alice"), raises_sqlstate("OF006"):
        call(app, "explain_policy", action=action, attributes=Jsonb(attributes))


def test_huge_payload_attribute_does_not_break_evaluation(app, funded):
    set_policy(
        app, funded, "p", "reserve", "deny", conditions=[{"attribute": "payload.x", "op": "eq", "value": 1}]
    )
    found = explain(app, funded, "reserve", {"payload": {"x": "y" * 50_000}})
    assert found["decision"] == "allow"


def test_invariants_hold_with_policies(app, owner, funded):
    set_policy(app, funded, "no-big", "reserve", "deny", conditions=BIG)
    for credits in (1, 60, 2, 70):
        with contextlib.suppress(PolicyDenied):
            reserve_run(app, funded, credits=credits)
    assert invariants(owner, funded) == []


def test_concurrent_rule_writers_and_reservations(app, owner, connect, funded):
    def write(i):
        return lambda conn: set_policy(conn, funded, "flip", "reserve", ("allow", "deny")[i % 2], rank=i + 1)

    def spend(conn):
        return reserve_run(conn, funded)

    results = race(connect, [write(i) for i in range(6)] + [spend] * 6)
    assert sqlstates(results[:6]) == [None] * 6
    assert set(sqlstates(results[6:])) <= {None, "OF401"}
    assert len(policies(app, funded)) == 1
    assert invariants(owner, funded) == []


def test_a_farm_has_at_most_100_rules(app, funded):
    with tenant(app, funded, "alice"):
        for i in range(100):
            call(app, "set_policy", name=f"r{i}", action="reserve", decision="allow", model=f"m{i}")
    set_policy(app, funded, "r5", "reserve", "deny", model="m5")  # replacing one is fine
    with raises_sqlstate("OF006", match="at most 100"):
        set_policy(app, funded, "one-more", "reserve", "deny")
