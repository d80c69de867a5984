"""start_run and settle_run: the run's state machine and what it finally costs."""

from __future__ import annotations

import uuid

import pytest
from support import call, race, raises_sqlstate, sqlstates, tenant
from support.credits import add_member, balance, counts, expire, grant, invariants, reserve, settle, start


def _legs(admin, run_id):
    return admin.execute(
        "SELECT kind, delta, balance_after FROM farmops.credit_ledger WHERE ai_run_id = %s ORDER BY seq",
        [run_id],
    ).fetchall()


def test_start_then_succeed_with_refund(app, admin, owner, funded):
    run = reserve(app, funded, credits=10)
    assert start(app, funded, run["id"])["status"] == "running"
    done = settle(
        app, funded, run["id"], credits_actual=4, input_tokens=100, output_tokens=20, latency_ms=900,
        output_summary="ok",
    )  # fmt: skip
    assert done["status"] == "succeeded"
    assert (done["credits_actual"], done["credits_shortfall"]) == (4, 0)
    assert (done["input_tokens"], done["output_tokens"], done["latency_ms"]) == (100, 20, 900)
    assert done["settled_at"] is not None
    assert balance(admin, funded) == 96
    assert _legs(admin, run["id"]) == [("reserve", -10, 90), ("settle_refund", 6, 96)]
    assert invariants(owner, funded) == []


def test_exact_cost_writes_no_extra_leg(app, admin, owner, funded):
    run = reserve(app, funded, credits=10)
    settle(app, funded, run["id"], credits_actual=10)
    assert balance(admin, funded) == 90
    assert _legs(admin, run["id"]) == [("reserve", -10, 90)]
    assert invariants(owner, funded) == []


def test_overrun_charges_what_remains_and_records_shortfall(app, admin, owner, funded):
    run = reserve(app, funded, credits=10)
    reserve(app, funded, credits=85)  # 5 left
    done = settle(app, funded, run["id"], credits_actual=22)
    assert (done["credits_actual"], done["credits_shortfall"]) == (22, 7)
    assert balance(admin, funded) == 0
    assert _legs(admin, run["id"]) == [("reserve", -10, 90), ("settle_charge", -5, 0)]
    assert invariants(owner, funded) == []


def test_overrun_on_an_empty_balance_is_all_shortfall(app, admin, owner, funded):
    run = reserve(app, funded, credits=100)
    done = settle(app, funded, run["id"], credits_actual=2**31 - 1)
    assert done["credits_shortfall"] == 2**31 - 1 - 100
    assert balance(admin, funded) == 0
    assert _legs(admin, run["id"]) == [("reserve", -100, 0)]
    assert invariants(owner, funded) == []


def test_failed_without_tokens_refunds_everything(app, admin, owner, funded):
    run = reserve(app, funded, credits=10)
    done = settle(app, funded, run["id"], status="failed", error="throttled")
    assert (done["status"], done["credits_actual"], done["error"]) == ("failed", 0, "throttled")
    assert balance(admin, funded) == 100
    assert invariants(owner, funded) == []


def test_cost_from_tokens_rounds_up(app, admin, owner, funded):
    # default rate '*': 1 credit per 1k input, 4 per 1k output
    run = reserve(app, funded, credits=10)
    done = settle(app, funded, run["id"], input_tokens=1001, output_tokens=250)  # 1.001 + 1.0 -> 3
    assert done["credits_actual"] == 3
    run = reserve(app, funded, credits=10)
    assert settle(app, funded, run["id"], input_tokens=0, output_tokens=0)["credits_actual"] == 0
    run = reserve(app, funded, credits=10)
    assert settle(app, funded, run["id"], status="failed", input_tokens=1)["credits_actual"] == 1
    assert invariants(owner, funded) == []


def test_huge_token_counts(app, admin, owner, funded):
    run = reserve(app, funded, credits=10)
    # (2^31-1) * 4 / 1000 credits fit in an integer: charged up to the balance, rest is shortfall
    done = settle(app, funded, run["id"], input_tokens=2**31 - 1, output_tokens=2**31 - 1)
    assert done["credits_actual"] == -(-(2**31 - 1) * 5 // 1000)
    assert balance(admin, funded) == 0
    assert invariants(owner, funded) == []


def test_settle_twice_same_values_is_a_noop(app, admin, funded):
    run = reserve(app, funded, credits=10)
    first = settle(app, funded, run["id"], input_tokens=500, output_tokens=500, latency_ms=3)
    before = counts(admin, funded)
    again = settle(app, funded, run["id"], input_tokens=500, output_tokens=500, latency_ms=3)
    assert again == first
    assert counts(admin, funded) == before


@pytest.mark.parametrize(
    "change",
    [
        {"status": "failed"},
        {"credits_actual": 4},
        {"latency_ms": 4},
        {"output_summary": "other"},
        {"input_tokens": 1},
    ],
)
def test_settle_twice_different_values_is_of104(app, admin, funded, change):
    run = reserve(app, funded, credits=10)
    settle(app, funded, run["id"], credits_actual=3, latency_ms=3)
    before = counts(admin, funded)
    kwargs = {"status": "succeeded", "credits_actual": 3, "latency_ms": 3, **change}
    with raises_sqlstate("OF104"):
        settle(app, funded, run["id"], **kwargs)
    assert counts(admin, funded) == before


def test_settle_without_start_is_allowed(app, funded):
    run = reserve(app, funded, credits=2)
    assert settle(app, funded, run["id"], credits_actual=2)["status"] == "succeeded"


def test_start_rules(app, admin, funded):
    run = reserve(app, funded, credits=2)
    start(app, funded, run["id"])
    assert start(app, funded, run["id"])["status"] == "running"  # retried start: no-op
    settle(app, funded, run["id"], credits_actual=1)
    with raises_sqlstate("OF103"):
        start(app, funded, run["id"])
    with raises_sqlstate("OF102"):
        start(app, funded, uuid.uuid4())
    with raises_sqlstate("OF006"), tenant(app, funded, "alice"):
        app.execute("SELECT farmops.start_run(p_run_id => NULL)")
    with raises_sqlstate("OF001"):
        call(app, "start_run", run_id=run["id"])


def test_expired_run_cannot_start_or_settle(app, admin, funded):
    run = reserve(app, funded, credits=5, ttl="1 millisecond")
    admin.execute("SELECT pg_sleep(0.01)")
    with raises_sqlstate("OF105"):
        start(app, funded, run["id"])
    assert expire(app) == 1
    before = counts(admin, funded)
    for status in ("succeeded", "failed"):
        with raises_sqlstate("OF105"):
            settle(app, funded, run["id"], status=status, credits_actual=1)
    assert counts(admin, funded) == before == (100, 1, 3)


def test_a_live_run_past_its_deadline_may_still_settle_first(app, admin, owner, funded):
    run = reserve(app, funded, credits=5, ttl="1 millisecond")
    admin.execute("SELECT pg_sleep(0.01)")
    assert settle(app, funded, run["id"], credits_actual=5)["status"] == "succeeded"
    assert expire(app) == 0
    assert balance(admin, funded) == 95
    assert invariants(owner, funded) == []


@pytest.mark.parametrize(
    ("kwargs", "sqlstate"),
    [
        ({"status": None, "credits_actual": 1}, "OF006"),
        ({"status": "expired", "credits_actual": 1}, "OF006"),
        ({"status": "running", "credits_actual": 1}, "OF006"),
        ({"status": "SUCCEEDED", "credits_actual": 1}, "OF006"),
        ({"status": "succeeded"}, "OF006"),  # a success must say what it cost
        ({"status": "succeeded", "credits_actual": -1}, "OF006"),
        ({"status": "succeeded", "input_tokens": -1}, "OF006"),
        ({"status": "succeeded", "output_tokens": -(2**31)}, "OF006"),
        ({"status": "succeeded", "credits_actual": 1, "latency_ms": -1}, "OF006"),
        ({"status": "succeeded", "credits_actual": 1, "output_summary": "s" * 1_000_000}, "OF006"),
        ({"status": "failed", "error": "e" * 4001}, "OF006"),
        ({"status": "succeeded", "credits_actual": 2**31}, "42883"),
    ],
)
def test_bad_settle_input(app, admin, funded, kwargs, sqlstate):
    run = reserve(app, funded, credits=5)
    before = counts(admin, funded)
    status = kwargs.pop("status")
    with raises_sqlstate(sqlstate):
        settle(app, funded, run["id"], status=status, **kwargs)
    assert counts(admin, funded) == before


def test_settle_unknown_and_null_run(app, admin, funded):
    before = counts(admin, funded)
    with raises_sqlstate("OF102"):
        settle(app, funded, uuid.uuid4(), credits_actual=1)
    with raises_sqlstate("OF006"):
        settle(app, funded, None, credits_actual=1)
    with raises_sqlstate("22P02"), tenant(app, funded, "alice"):
        app.execute("SELECT farmops.settle_run(p_run_id => 'not-a-uuid', p_status => 'failed')")
    assert counts(admin, funded) == before


def test_no_context_cannot_settle(app, admin, funded):
    run = reserve(app, funded, credits=5)
    with raises_sqlstate("OF001"):
        call(app, "settle_run", run_id=run["id"], status="failed")
    assert balance(admin, funded) == 95


def test_roles_for_start_and_settle(app, admin, funded):
    add_member(app, funded, "vera", "viewer")
    add_member(app, funded, "ai", "agent")
    run = reserve(app, funded, user="ai", credits=5)
    for attempt in (lambda: start(app, funded, run["id"], user="vera"),
                 lambda: settle(app, funded, run["id"], user="vera", status="failed")):  # fmt: skip
        with raises_sqlstate("OF003"):
            attempt()
    assert start(app, funded, run["id"], user="ai")["status"] == "running"
    assert settle(app, funded, run["id"], user="ai", credits_actual=5)["status"] == "succeeded"


def test_state_machine_holds_even_for_the_owner(owner, app, admin, funded):
    run = reserve(app, funded, credits=5)
    settle(app, funded, run["id"], credits_actual=5)
    with raises_sqlstate("OF103"):
        owner.execute(
            "UPDATE farmops.ai_runs SET status = 'running', settled_at = NULL WHERE id = %s", [run["id"]]
        )
    run = reserve(app, funded, credits=5)
    with raises_sqlstate("OF103"):
        owner.execute("UPDATE farmops.ai_runs SET credits_reserved = 1 WHERE id = %s", [run["id"]])
    start(app, funded, run["id"])
    with raises_sqlstate("OF103"):
        admin.execute("UPDATE farmops.ai_runs SET status = 'reserved' WHERE id = %s", [run["id"]])


def test_concurrent_settles_of_one_run_settle_once(connect, app, admin, owner, funded):
    run = reserve(app, funded, credits=10)
    results = race(
        connect,
        [lambda conn, i=i: settle(conn, funded, run["id"], credits_actual=i % 2 + 3) for i in range(8)],
    )
    states = sqlstates(results)
    assert set(states) <= {None, "OF104"}
    winners = {r["credits_actual"] for r in results if not isinstance(r, Exception)}
    assert len(winners) == 1
    assert balance(admin, funded) == 100 - winners.pop()
    assert invariants(owner, funded) == []


def test_only_the_reserving_member_or_an_owner_or_manager_drives_a_run(app, admin, farm):
    """The settler declares the cost, so another worker or the agent cannot under-bill a run."""
    for user, role in (("wendy", "worker"), ("will", "worker"), ("bot", "agent"), ("mo", "manager")):
        add_member(app, farm, user, role)
    grant(app, farm, 10)
    runs = [reserve(app, farm, user="wendy", credits=2)["id"] for _ in range(3)]
    before = admin.execute(
        "SELECT (SELECT credit_balance FROM farmops.farms WHERE id = %s),"
        " (SELECT count(*) FROM farmops.credit_ledger WHERE farm_id = %s)",
        [farm, farm],
    ).fetchone()
    for intruder in ("will", "bot"):
        with raises_sqlstate("OF003"):
            settle(app, farm, runs[0], user=intruder, credits_actual=0)
        with raises_sqlstate("OF003"), tenant(app, farm, intruder):
            call(app, "start_run", run_id=runs[0])
    assert (
        admin.execute(
            "SELECT (SELECT credit_balance FROM farmops.farms WHERE id = %s),"
            " (SELECT count(*) FROM farmops.credit_ledger WHERE farm_id = %s)",
            [farm, farm],
        ).fetchone()
        == before
    )
    assert settle(app, farm, runs[0], user="wendy", credits_actual=1)["status"] == "succeeded"
    assert settle(app, farm, runs[1], user="mo", credits_actual=1)["status"] == "succeeded"
    assert settle(app, farm, runs[2], user="alice", credits_actual=1)["status"] == "succeeded"
