"""expire_reservations: the backstop for crashed workers, exactly once under races."""

from __future__ import annotations

import pytest
from support import create_farm, race, raises_sqlstate, sqlstates, tenant
from support.credits import (
    balance,
    counts,
    expire,
    grant,
    invariants,
    reserve,
    settle,
    start,
)


def _past_deadline(admin):
    """Let a 1 ms reservation pass its deadline (setup only; nothing is asserted about time)."""
    admin.execute("SELECT pg_sleep(0.01)")


def _backdate(admin, run_id):
    """Move a run's reservation an hour into the past (setup as the superuser, guard trigger paused)."""
    with admin.transaction():
        admin.execute("ALTER TABLE farmops.ai_runs DISABLE TRIGGER ai_runs_move_forward_only")
        admin.execute(
            "UPDATE farmops.ai_runs SET reserved_at = reserved_at - interval '1 hour',"
            " expires_at = expires_at - interval '1 hour' WHERE id = %s",
            [run_id],
        )
        admin.execute("ALTER TABLE farmops.ai_runs ENABLE ALWAYS TRIGGER ai_runs_move_forward_only")


def test_killed_client_is_refunded_once(db, app, admin, owner, farm):
    grant(app, farm, 20)
    worker = db.connect("app")
    run = reserve(worker, farm, credits=8)
    start(worker, farm, run["id"])
    pid = worker.info.backend_pid
    admin.execute("SELECT pg_terminate_backend(%s)", [pid])  # the worker dies before settling
    worker.close()
    assert balance(admin, farm) == 12
    assert expire(app) == 0  # not yet due
    _backdate(admin, run["id"])
    assert expire(app) == 1
    assert expire(app) == 0
    assert balance(admin, farm) == 20
    status = admin.execute("SELECT status FROM farmops.ai_runs WHERE id = %s", [run["id"]]).fetchone()[0]
    assert status == "expired"
    legs = admin.execute(
        "SELECT kind, delta, actor FROM farmops.credit_ledger WHERE ai_run_id = %s ORDER BY seq", [run["id"]]
    ).fetchall()
    assert legs == [("reserve", -8, "alice"), ("expire_refund", 8, "farmops.expire_reservations")]
    assert invariants(owner, farm) == []


def test_killed_mid_reserve_writes_nothing(db, admin, farm, app):
    grant(app, farm, 20)
    worker = db.connect("app", autocommit=False)
    worker.execute("SELECT farmops.begin_tenant(%s, 'alice')", [farm])
    worker.execute("SELECT farmops.reserve_credits(p_feature => 'f', p_model => 'm', p_credits => 5)")
    admin.execute("SELECT pg_terminate_backend(%s)", [worker.info.backend_pid])
    worker.close()
    assert counts(admin, farm) == (20, 0, 1)


def test_live_runs_are_not_expired(app, admin, farm):
    grant(app, farm, 20)
    reserve(app, farm, credits=3)  # 15 minutes
    run = reserve(app, farm, credits=4, ttl="1 millisecond")
    settle(app, farm, run["id"], credits_actual=4)  # settled before the deadline passed
    _past_deadline(admin)
    assert expire(app) == 0
    assert balance(admin, farm) == 13


def test_two_racing_expirers_refund_each_run_once(connect, app, admin, owner):
    farms = [create_farm(app, f"Farm {i}", "alice") for i in range(3)]
    for f in farms:
        grant(app, f, 100)
        for credits in (1, 2, 3, 4, 5):
            reserve(app, f, credits=credits, ttl="1 millisecond")
    _past_deadline(admin)
    results = race(connect, [lambda conn: expire(conn)] * 2)
    assert sqlstates(results) == [None, None]
    assert sum(results) == 15
    assert expire(app) == 0
    for f in farms:
        assert balance(admin, f) == 100
        assert admin.execute(
            "SELECT count(*) FROM farmops.credit_ledger WHERE farm_id = %s AND kind = 'expire_refund'", [f]
        ).fetchone() == (5,)
    assert invariants(owner) == []


def test_expirer_and_settle_race_one_wins(connect, app, admin, owner, farm):
    grant(app, farm, 100)
    runs = [reserve(app, farm, credits=5, ttl="1 millisecond") for _ in range(6)]
    _past_deadline(admin)

    def work(conn, i):
        if i < 2:
            return expire(conn)
        return settle(conn, farm, runs[i - 2]["id"], credits_actual=2)

    results = race(connect, [lambda conn, i=i: work(conn, i) for i in range(2 + len(runs))])
    states = sqlstates(results)
    assert set(states[2:]) <= {None, "OF105"}
    expired = sum(results[:2])
    settled = states[2:].count(None)
    assert expired + settled == len(runs)  # every run closed exactly once, by one side
    rows = admin.execute(
        "SELECT status, count(*) FROM farmops.ai_runs WHERE farm_id = %s GROUP BY status", [farm]
    ).fetchall()
    closed = dict(rows)
    assert closed.get("expired", 0) + closed.get("succeeded", 0) == len(runs)
    assert closed.get("expired", 0) == expired
    assert invariants(owner, farm) == []


def test_expirer_needs_no_tenant_and_leaves_other_farms_alone(app, maintainer, admin, two_farms):
    farm_a, farm_b = two_farms
    grant(app, farm_a, 10, user="alice")
    grant(app, farm_b, 10, user="bob")
    reserve(app, farm_a, credits=2, ttl="1 millisecond")
    reserve(app, farm_b, user="bob", credits=3)
    _past_deadline(admin)
    # The application may not run it, in a tenant context or not (42501): the maintainer does.
    with tenant(app, farm_b, "bob"), raises_sqlstate("42501"):
        app.execute("SELECT farmops.expire_reservations()")
    assert maintainer.execute("SELECT farmops.expire_reservations()").fetchone()[0] == 1
    assert (balance(admin, farm_a), balance(admin, farm_b)) == (10, 7)


def test_batch_limit_and_bad_limit(app, maintainer, admin, farm):
    grant(app, farm, 10)
    for _ in range(3):
        reserve(app, farm, credits=1, ttl="1 millisecond")
    _past_deadline(admin)
    assert maintainer.execute("SELECT farmops.expire_reservations(p_max_runs => 2)").fetchone()[0] == 2
    for bad in (None, 0, -1):
        with raises_sqlstate("OF006"):
            maintainer.execute("SELECT farmops.expire_reservations(p_max_runs => %s::integer)", [bad])
    assert expire(app) == 1
    assert balance(admin, farm) == 10


@pytest.mark.slow
@pytest.mark.parametrize("round_", range(5))
def test_stress_many_expirers_many_farms(connect, app, admin, owner, round_):
    farms = [create_farm(app, f"Farm {i}", "alice") for i in range(10)]
    for f in farms:
        grant(app, f, 50)
        for credits in range(1, 6):
            reserve(app, f, credits=credits, ttl="1 millisecond")
    _past_deadline(admin)
    results = race(connect, [lambda conn: expire(conn)] * 8)
    assert sum(results) == 50
    assert invariants(owner) == []
