"""require_approval at reserve: the run is held (credits reserved, cannot start) until an owner or
manager approves it; rejection and expiry refund it. As the application role."""

from __future__ import annotations

import pytest
from support import call, create_farm, race, raises_sqlstate, row, sqlstates, tenant
from support.control import reserve_run, set_policy
from support.credits import add_member, balance, expire, grant, invariants, settle, start

BIG = [{"attribute": "credits", "op": "gte", "value": 50}]


@pytest.fixture
def held(app, funded):
    """A farm with one member per role, a hold rule for big runs, and one held run of the agent."""
    for user, role in (("mia", "manager"), ("wes", "worker"), ("vic", "viewer"), ("bot", "agent")):
        add_member(app, funded, user, role)
    set_policy(app, funded, "hold-big", "reserve", "require_approval", conditions=BIG)
    run = reserve_run(app, funded, user="bot", credits=60)
    return funded, run


def decide(app, farm, user, function, run_id, **kw):
    with tenant(app, farm, user):
        return row(app, function, run_id=run_id, **kw)


def test_held_run_reserves_but_cannot_start(app, admin, owner, held):
    farm, run = held
    assert (run["status"], run["approval"], run["approval_rule"]) == ("reserved", "pending", "hold-big")
    assert balance(admin, farm) == 40
    with raises_sqlstate("OF403"):
        start(app, farm, run["id"], user="bot")
    with raises_sqlstate("OF403"):
        settle(app, farm, run["id"], user="bot", credits_actual=10)
    # small runs are not held
    assert reserve_run(app, farm, user="bot", credits=5)["approval"] is None
    assert invariants(owner, farm) == []


def test_manager_approves_then_it_runs(app, owner, held):
    farm, run = held
    approved = decide(app, farm, "mia", "approve_run", run["id"])
    assert (approved["approval"], approved["approval_decided_by"]) == ("approved", "mia")
    assert start(app, farm, run["id"], user="bot")["status"] == "running"
    assert settle(app, farm, run["id"], user="bot", credits_actual=55)["status"] == "succeeded"
    with raises_sqlstate("OF103"):  # decided once
        decide(app, farm, "mia", "approve_run", run["id"])
    assert invariants(owner, farm) == []


def test_reject_refunds(app, admin, owner, held):
    farm, run = held
    rejected = decide(app, farm, "alice", "reject_run", run["id"], reason="too big")
    assert (rejected["status"], rejected["credits_actual"], rejected["approval"]) == ("failed", 0, "rejected")
    assert rejected["error"] == "rejected at approval: too big"  # who: approval_decided_by, not the text
    assert balance(admin, farm) == 100
    with raises_sqlstate("OF103"):
        decide(app, farm, "mia", "approve_run", run["id"])
    assert invariants(owner, farm) == []


def test_expiry_refunds_a_held_run(app, admin, owner, connect, funded):
    add_member(app, funded, "mia", "manager")
    set_policy(app, funded, "hold-all", "reserve", "require_approval")
    run = reserve_run(app, funded, credits=10, ttl="1 millisecond")
    admin.execute("SELECT pg_sleep(0.01)")
    with raises_sqlstate("OF105"):
        decide(app, funded, "mia", "approve_run", run["id"])
    assert expire(admin) == 1
    assert balance(admin, funded) == 100
    assert invariants(owner, funded) == []


@pytest.mark.parametrize("user", ["wes", "vic", "bot"])
def test_only_owners_and_managers_decide(app, held, user):
    farm, run = held
    for function in ("approve_run", "reject_run"):
        with raises_sqlstate("OF003"):
            decide(app, farm, user, function, run["id"])


def test_nobody_approves_their_own_run(app, funded):
    add_member(app, funded, "mia", "manager")
    set_policy(app, funded, "hold-all", "reserve", "require_approval")
    run = reserve_run(app, funded, user="mia", credits=5)
    with raises_sqlstate("OF003"):
        decide(app, funded, "mia", "approve_run", run["id"])
    assert decide(app, funded, "alice", "approve_run", run["id"])["approval"] == "approved"


def test_held_run_cannot_retrieve_or_propose(app, held):
    farm, run = held
    with tenant(app, farm, "bot"), raises_sqlstate("OF403"):
        call(app, "propose_write", run_id=run["id"], record_type="note", payload=None)


def test_other_farms_runs_and_bad_ids(app, held):
    farm, run = held
    other = create_farm(app, "Other", "olu")
    grant(app, other, 10, user="olu")
    for function in ("approve_run", "reject_run"):
        with raises_sqlstate("OF102"):
            decide(app, other, "olu", function, run["id"])
        with raises_sqlstate("OF006"):
            decide(app, farm, "alice", function, None)
    not_held = reserve_run(app, farm, credits=1)
    with raises_sqlstate("OF103"):
        decide(app, farm, "mia", "approve_run", not_held["id"])
    with raises_sqlstate("OF006"):
        decide(app, farm, "alice", "reject_run", run["id"], reason="x\x01")


def test_approve_and_reject_race_one_wins(app, admin, owner, connect, held):
    farm, run = held

    def act(function, user):
        def go(conn):
            return decide(conn, farm, user, function, run["id"])

        return go

    results = race(connect, [act("approve_run", "mia"), act("reject_run", "alice")] * 4)
    assert sorted(sqlstates(results), key=str) == sorted([None] + ["OF103"] * 7, key=str)
    assert invariants(owner, farm) == []


def test_the_app_cannot_flip_approval_directly(app, admin, held):
    _farm, run = held
    # even the superuser's UPDATE meets the trigger: a held run does not start
    with raises_sqlstate("OF403"):
        admin.execute("UPDATE farmops.ai_runs SET status = 'running' WHERE id = %s", [run["id"]])
    with raises_sqlstate("OF103"):
        admin.execute("UPDATE farmops.ai_runs SET approval = NULL WHERE id = %s", [run["id"]])
