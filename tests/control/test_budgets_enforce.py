"""Money budgets (issue 14 §4): set by owners, enforced at reserve against spent + held in one atomic
step, periods from boundaries at read time, alerts fired exactly once. As the application role."""

from __future__ import annotations

import datetime as dt
import json
import select
import uuid

import psycopg
import pytest
from support import call, create_farm, race, raises_sqlstate, row, sqlstates, tenant
from support.credits import add_member, counts, expire, grant, reserve, settle
from support.spend import budget_status, set_budget

# The tests' default price: 1000 micro-USD per 1k input tokens at 1 credit, 4000 per 1k output at 4
# credits: a reservation of c credits holds at most 1000 * c micro-USD.
PER_CREDIT = 1000


def used(admin, farm_id) -> tuple[int, int]:
    """(spent, held) of the farm's budget periods, summed (superuser inspection)."""
    return admin.execute(
        "SELECT coalesce(sum(spent_micro_usd), 0)::int, coalesce(sum(held_micro_usd), 0)::int"
        " FROM farmops.budget_usage WHERE farm_id = %s",
        [farm_id],
    ).fetchone()


def test_owner_sets_a_budget_and_reads_its_status(app, farm):
    b = set_budget(app, farm, limit_micro_usd=40_000_000, feature=" chat ", thresholds=[90, 80, 80])
    assert (b["period"], b["feature"], b["action"], b["thresholds"], b["time_zone"]) == (
        "month",
        "chat",
        "deny",
        [80, 90],
        "UTC",
    )
    again = set_budget(app, farm, limit_micro_usd=50_000_000, feature="chat", action="require_approval")
    assert again["id"] == b["id"] and again["limit_micro_usd"] == 50_000_000
    status = budget_status(app, farm)
    assert [(s["budget_id"], s["spent_micro_usd"], s["held_micro_usd"]) for s in status] == [(b["id"], 0, 0)]
    assert status[0]["period_end"] > status[0]["period_start"]


@pytest.mark.parametrize(
    ("role", "user"), [("manager", "mia"), ("worker", "wes"), ("viewer", "vic"), ("agent", "bot")]
)
def test_only_owners_change_budgets(app, farm, role, user):
    add_member(app, farm, user, role)
    with raises_sqlstate("OF003"):
        set_budget(app, farm, user, limit_micro_usd=1)
    set_budget(app, farm, limit_micro_usd=1)
    with raises_sqlstate("OF003"), tenant(app, farm, user):
        call(app, "drop_budget", period="month")
    assert len(budget_status(app, farm, user)) == 1  # every member may read them


@pytest.mark.parametrize(
    "kw",
    [
        {"period": "week", "limit_micro_usd": 1},
        {"period": None, "limit_micro_usd": 1},
        {"limit_micro_usd": 0},
        {"limit_micro_usd": -5},
        {"limit_micro_usd": None},
        {"limit_micro_usd": 10**16},
        {"limit_micro_usd": 1, "action": "warn"},
        {"limit_micro_usd": 1, "action": None},
        {"limit_micro_usd": 1, "thresholds": []},
        {"limit_micro_usd": 1, "thresholds": [0]},
        {"limit_micro_usd": 1, "thresholds": [None]},
        {"limit_micro_usd": 1, "thresholds": [5000]},
        {"limit_micro_usd": 1, "thresholds": list(range(1, 20))},
        {"limit_micro_usd": 1, "thresholds": None},
        {"limit_micro_usd": 1, "time_zone": "Mars/Olympus_Mons"},
        {"limit_micro_usd": 1, "time_zone": None},
        {"limit_micro_usd": 1, "feature": "f" * 101},
        {"limit_micro_usd": 1, "feature": "bad\nfeature"},
    ],
)
def test_bad_budget_input_is_of006(app, admin, farm, kw):
    with raises_sqlstate("OF006"):
        set_budget(app, farm, **kw)
    assert admin.execute("SELECT count(*) FROM farmops.budgets").fetchone() == (0,)


def test_no_tenant_and_other_farms(app, two_farms):
    a, b = two_farms
    with raises_sqlstate("OF001"):
        call(app, "set_budget", period="month", limit_micro_usd=1)
    set_budget(app, a, limit_micro_usd=5 * PER_CREDIT)
    assert budget_status(app, b, "bob") == []  # farm B does not see A's budget
    with raises_sqlstate("OF415"), tenant(app, b, "bob"):
        call(app, "drop_budget", period="month")
    # A's budget does not limit B.
    grant(app, b, 100, user="bob")
    assert reserve(app, b, "bob", credits=50)["status"] == "reserved"


def test_deny_refuses_what_would_cross_the_limit_and_writes_nothing(app, admin, farm):
    grant(app, farm, 1000)
    set_budget(app, farm, period="day", limit_micro_usd=10 * PER_CREDIT)
    first = reserve(app, farm, credits=6)
    assert used(admin, farm) == (0, 6 * PER_CREDIT)
    before = counts(admin, farm)
    with raises_sqlstate("OF411", match="day budget would be exceeded"):
        reserve(app, farm, credits=5)
    assert counts(admin, farm) == before and used(admin, farm) == (0, 6 * PER_CREDIT)
    assert reserve(app, farm, credits=4)["status"] == "reserved"  # exactly to the limit
    # Settle replaces the hold by the cost: room comes back.
    settle(app, farm, first["id"], input_tokens=1000)  # 1000 micro-USD
    assert used(admin, farm) == (1 * PER_CREDIT, 4 * PER_CREDIT)
    assert reserve(app, farm, credits=5)["status"] == "reserved"
    assert admin.execute("SELECT count(*) FROM farmops.budget_holds").fetchone() == (2,)


def test_the_fused_path_is_enforced_too(app, farm):
    grant(app, farm, 1000)
    set_budget(app, farm, limit_micro_usd=3 * PER_CREDIT)
    with raises_sqlstate("OF411"):
        row(app, "reserve_run", farm_id=farm, user_id="alice", feature="chat", model="m", credits=4)
    assert row(app, "reserve_run", farm_id=farm, user_id="alice", feature="chat", model="m", credits=3)


def test_require_approval_holds_the_run_for_an_owner_or_manager(app, admin, farm):
    grant(app, farm, 1000)
    add_member(app, farm, "mia", "manager")
    set_budget(app, farm, limit_micro_usd=PER_CREDIT, action="require_approval")
    assert reserve(app, farm, credits=1)["approval"] is None  # within the budget: not held
    held = reserve(app, farm, credits=2)
    assert (held["approval"], held["approval_rule"]) == ("pending", "budget month")
    assert held["status"] == "reserved"
    with raises_sqlstate("OF403"), tenant(app, farm, "alice"):
        row(app, "start_run", run_id=held["id"])
    with tenant(app, farm, "mia"):
        row(app, "approve_run", run_id=held["id"])
    with tenant(app, farm, "alice"):
        assert row(app, "start_run", run_id=held["id"])["status"] == "running"
    # Rejection refunds the run and releases its hold of the budget.
    other = reserve(app, farm, credits=2)
    assert other["approval"] == "pending"
    before = used(admin, farm)
    with tenant(app, farm, "mia"):
        row(app, "reject_run", run_id=other["id"], reason="over budget")
    assert used(admin, farm) == (before[0], before[1] - 2 * PER_CREDIT)
    # An extension over such a budget is refused: only new runs wait for approval.
    with raises_sqlstate("OF411"), tenant(app, farm, "alice"):
        row(app, "extend_reservation", run_id=held["id"], credits=1)


def test_feature_budgets_apply_to_their_feature_only(app, farm):
    grant(app, farm, 1000)
    set_budget(app, farm, limit_micro_usd=2 * PER_CREDIT, feature="report")
    assert reserve(app, farm, credits=50, feature="chat")["status"] == "reserved"
    with raises_sqlstate("OF411", match="feature report"):
        reserve(app, farm, credits=3, feature="report")


def test_expiry_releases_the_hold(app, admin, farm):
    grant(app, farm, 1000)
    set_budget(app, farm, limit_micro_usd=5 * PER_CREDIT)
    reserve(app, farm, credits=5, ttl="1 millisecond")
    admin.execute("SELECT pg_sleep(0.01)")
    assert expire(app) == 1
    assert used(admin, farm) == (0, 0)
    assert reserve(app, farm, credits=5)["status"] == "reserved"


def test_past_periods_are_kept_and_do_not_count(app, admin, farm):
    grant(app, farm, 1000)
    b = set_budget(app, farm, period="day", limit_micro_usd=5 * PER_CREDIT)
    # Yesterday's period spent the whole budget: today starts from zero, no reset job.
    admin.execute(
        "INSERT INTO farmops.budget_usage (farm_id, budget_id, period_start, spent_micro_usd)"
        " VALUES (%s, %s, date_trunc('day', now(), 'UTC') - interval '1 day', %s)",
        [farm, b["id"], 5 * PER_CREDIT],
    )
    assert reserve(app, farm, credits=5)["status"] == "reserved"
    with tenant(app, farm, "alice"):
        periods = app.execute(
            "SELECT spent_micro_usd, held_micro_usd FROM farmops.budget_usage ORDER BY period_start"
        ).fetchall()
    assert periods == [(5 * PER_CREDIT, 0), (0, 5 * PER_CREDIT)]


def test_a_budget_set_mid_period_counts_what_was_spent(app, farm):
    grant(app, farm, 1000)
    run = reserve(app, farm, credits=10)
    settle(app, farm, run["id"], input_tokens=3000)  # 3000 micro-USD
    live = reserve(app, farm, credits=1)  # live while the budget is set: counts when it settles
    set_budget(app, farm, limit_micro_usd=5 * PER_CREDIT)
    assert budget_status(app, farm)[0]["spent_micro_usd"] == 3 * PER_CREDIT
    with raises_sqlstate("OF411"):
        reserve(app, farm, credits=3)
    settle(app, farm, live["id"], input_tokens=1000)
    assert budget_status(app, farm)[0]["spent_micro_usd"] == 4 * PER_CREDIT


def test_200_concurrent_reserves_never_cross_the_budget(app, admin, owner, connect, farm):
    grant(app, farm, 100_000)
    limit = 37 * 3 * PER_CREDIT + 2 * PER_CREDIT  # room for exactly 37 reservations of 3 credits
    set_budget(app, farm, limit_micro_usd=limit)

    def attempt(conn):
        out = []
        for _ in range(4):  # 50 connections x 4 = 200 reserves, all released by one barrier
            try:
                with tenant(conn, farm, "alice"):
                    out.append(row(conn, "reserve_credits", feature="chat", model="m", credits=3))
            except Exception as exc:  # collected: each refusal must be OF411
                out.append(exc)
        return out

    results = [r for batch in race(connect, [attempt] * 50) for r in batch]
    assert len(results) == 200
    states = sqlstates(results)
    assert states.count(None) == 37 and states.count("OF411") == 163, sorted(set(states), key=str)
    spent, held = used(admin, farm)
    assert spent + held <= limit and held == 37 * 3 * PER_CREDIT
    assert call(owner, "check_invariants", farm_id=farm) == []
    fired = admin.execute("SELECT threshold_percent FROM farmops.budget_alerts ORDER BY 1").fetchall()
    assert fired == [(80,), (90,)]  # 100% is never reached: 98.2% held, then refusals


def test_alerts_fire_once_each_and_notify(app, admin, connect, db, farm):
    grant(app, farm, 100_000)
    set_budget(app, farm, limit_micro_usd=10 * PER_CREDIT, thresholds=[50, 80, 100])
    listener = psycopg.connect(db.dsn(), autocommit=True)
    try:
        listener.execute("LISTEN farmops_budget_alert")
        runs = [reserve(app, farm, credits=4)]  # 40%: nothing
        runs.append(reserve(app, farm, credits=1))  # 50%: fires 50
        runs.append(reserve(app, farm, credits=3))  # 80%: fires 80
        for run in runs:  # refunds: down to 0 used... (settled as failed, nothing spent)
            settle(app, farm, run["id"], status="failed")
        for _ in range(2):  # up again past 50 and 80 in the same period: no second alert
            runs = [reserve(app, farm, credits=9)]
            settle(app, farm, runs[0]["id"], status="failed")
        reserve(app, farm, credits=10)  # 100%: fires 100
        select.select([listener.fileno()], [], [], 2)
        notes = [json.loads(n.payload) for n in listener.notifies(timeout=1, stop_after=10)]
    finally:
        listener.close()
    fired = admin.execute(
        "SELECT threshold_percent, used_micro_usd FROM farmops.budget_alerts"
        " ORDER BY fired_at, threshold_percent"
    ).fetchall()
    assert fired == [(50, 5 * PER_CREDIT), (80, 8 * PER_CREDIT), (100, 10 * PER_CREDIT)]
    assert [n["threshold_percent"] for n in notes] == [50, 80, 100]
    assert {n["farm_id"] for n in notes} == {str(farm)}


def test_concurrent_crossers_fire_each_alert_once(app, admin, connect, farm):
    grant(app, farm, 100_000)
    set_budget(app, farm, limit_micro_usd=100 * PER_CREDIT)

    def attempt(conn):
        out = []
        for _ in range(3):
            try:
                with tenant(conn, farm, "alice"):
                    out.append(row(conn, "reserve_credits", feature="chat", model="m", credits=1))
            except Exception as exc:  # collected: refusals past the limit
                out.append(exc)
        return out

    results = [r for batch in race(connect, [attempt] * 40) for r in batch]
    assert sqlstates(results).count(None) == 100
    assert admin.execute(
        "SELECT threshold_percent, count(*) FROM farmops.budget_alerts GROUP BY 1 ORDER BY 1"
    ).fetchall() == [(80, 1), (90, 1), (100, 1)]


def test_alert_rows_are_append_only_and_farm_scoped(app, admin, two_farms):
    a, b = two_farms
    grant(app, a, 100)
    set_budget(app, a, limit_micro_usd=PER_CREDIT)
    reserve(app, a, credits=1)
    with tenant(app, b, "bob"):
        assert app.execute("SELECT count(*) FROM farmops.budget_alerts").fetchone() == (0,)
    with tenant(app, a, "alice"):
        assert app.execute("SELECT count(*) FROM farmops.budget_alerts").fetchone() == (3,)
    with raises_sqlstate("OF107"):
        admin.execute("DELETE FROM farmops.budget_alerts")


def test_drop_budget_keeps_alerts_and_frees_reservations(app, admin, farm):
    grant(app, farm, 100)
    set_budget(app, farm, limit_micro_usd=PER_CREDIT)
    run = reserve(app, farm, credits=1)
    with tenant(app, farm, "alice"):
        dropped = row(app, "drop_budget", period="month")
    assert dropped["limit_micro_usd"] == PER_CREDIT
    assert reserve(app, farm, credits=50)["status"] == "reserved"
    settle(app, farm, run["id"], input_tokens=1)  # its hold went with the budget: settles cleanly
    assert admin.execute("SELECT count(*) FROM farmops.budget_alerts").fetchone() == (3,)
    with raises_sqlstate("OF415"), tenant(app, farm, "alice"):
        call(app, "drop_budget", period="month")
    with raises_sqlstate("OF006"), tenant(app, farm, "alice"):
        call(app, "drop_budget", period=None)


def test_a_zero_credit_kind_cannot_be_bounded(app, owner, farm):
    grant(app, farm, 100)
    row(owner, "set_model_rate", model="free-out", input_credits_per_1k=1, output_credits_per_1k=0)
    row(owner, "set_model_price", model="free-out", input_micro_usd_per_1k=1, output_micro_usd_per_1k=1)
    assert reserve(app, farm, credits=1, model="free-out")  # no budget: no bound needed
    set_budget(app, farm, limit_micro_usd=10**9)
    with raises_sqlstate("OF413"):
        reserve(app, farm, credits=1, model="free-out")


def test_time_zone_moves_the_day_boundary(app, farm):
    set_budget(app, farm, period="day", limit_micro_usd=1, time_zone="Pacific/Kiritimati")
    set_budget(app, farm, period="month", limit_micro_usd=1, time_zone="UTC")
    status = {s["period"]: s for s in budget_status(app, farm)}
    start = status["day"]["period_start"]
    assert (status["day"]["period_end"] - start).total_seconds() == 86400
    assert start.utcoffset() is not None and start.astimezone(dt.UTC).hour == 10


def test_unknown_farm_ids_are_refused(app):
    create_farm(app)
    with raises_sqlstate("OF002"):
        set_budget(app, uuid.uuid4(), limit_micro_usd=1)


def test_extending_a_reservation_holds_more_of_the_budget(app, admin, farm):
    grant(app, farm, 1000)
    set_budget(app, farm, limit_micro_usd=5 * PER_CREDIT)
    run = reserve(app, farm, credits=3)
    with raises_sqlstate("OF411"), tenant(app, farm, "alice"):
        row(app, "extend_reservation", run_id=run["id"], credits=3)
    assert used(admin, farm) == (0, 3 * PER_CREDIT)  # the refused extension wrote nothing
    with tenant(app, farm, "alice"):
        assert row(app, "extend_reservation", run_id=run["id"], credits=2)["credits_reserved"] == 5
    assert used(admin, farm) == (0, 5 * PER_CREDIT)
    settle(app, farm, run["id"], input_tokens=4000)  # 4000 micro-USD spent, the whole hold released
    assert used(admin, farm) == (4 * PER_CREDIT, 0)
