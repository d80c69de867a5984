"""Rate-limit refusals as a metric: counted although an OF402 rolls its transaction back (a sequence per
farm and scope), visible per farm under the caller's rights, every farm for the auditor."""

from __future__ import annotations

import psycopg
import pytest
from support import call, concurrently, raises_sqlstate, tenant
from support.control import reserve_run, set_limits
from support.credits import counts, invariants

from farmops_client import migrate as migrations
from farmops_client.errors import RateLimited

METRIC = "farmops_rate_limit_refusals_total"


def refusals(rows, farm, limit):
    """The metric's value for one farm and limit, None when it has no such sample."""
    found = [
        r["value"] for r in rows if r["name"] == METRIC and r["labels"] == {"farm": str(farm), "limit": limit}
    ]
    assert len(found) <= 1
    return found[0] if found else None


def refuse(app, farm, user, times):
    for _ in range(times):
        with pytest.raises(RateLimited):
            reserve_run(app, farm, user=user)


def test_refusals_are_counted_per_farm_and_limit_though_nothing_is_written(
    app, admin, auditor, farm, other_farm
):
    set_limits(app, farm, requests=2)
    for _ in range(2):
        reserve_run(app, farm)
    before = counts(admin, farm)
    refuse(app, farm, "alice", 3)
    assert counts(admin, farm) == before  # the refusals rolled back: no run, no ledger leg, no debit
    set_limits(app, other_farm, requests=1, scope="members", user="bob")
    reserve_run(app, other_farm, user="bob")
    refuse(app, other_farm, "bob", 2)

    every = call(auditor, "metrics")
    assert refusals(every, farm, "farm") == 3 and refusals(every, farm, "member") == 0
    assert refusals(every, other_farm, "member") == 2 and refusals(every, other_farm, "farm") == 0
    # A member sees their own farm's counts only; no tenant context, no farm.
    with tenant(app, farm, "alice"):
        mine = call(app, "metrics")
        direct = call(app, "rate_limit_refusals")
    assert refusals(mine, farm, "farm") == 3 and refusals(mine, other_farm, "member") is None
    assert {(r["farm_id"], r["scope"], r["refusals"]) for r in direct} == {
        (farm, "farm", 3),
        (farm, "member", 0),
    }
    assert call(app, "rate_limit_refusals") == []
    assert not [r for r in call(app, "metrics") if r["name"] == METRIC]
    with tenant(app, other_farm, "bob"):
        assert {r["farm_id"] for r in call(app, "rate_limit_refusals")} == {other_farm}
    helped = {r["name"]: r["kind"] for r in call(auditor, "metric_help")}
    assert helped[METRIC] == "counter"


def test_a_farm_without_limits_has_no_counter(app, auditor, farm):
    reserve_run(app, farm)
    assert refusals(call(auditor, "metrics"), farm, "farm") is None


def test_refused_extensions_are_counted(app, owner, auditor, farm):
    owner.execute("SELECT farmops.set_model_rate('priced', 10, 20)")
    set_limits(app, farm, tokens=10_000)
    run = reserve_run(app, farm, model="priced", max_input_tokens=3000, max_output_tokens=3000)
    with tenant(app, farm, "alice"), pytest.raises(RateLimited):
        call(app, "extend_reservation", run_id=run["id"], credits=50)  # 5000 tokens: over the limit now
    assert refusals(call(auditor, "metrics"), farm, "farm") == 1


def test_concurrent_refusals_are_each_counted_once(app, owner, connect, auditor, farm):
    """120 reservations from 24 connections, limit 10 per minute: 110 refused, and the counter says 110."""
    set_limits(app, farm, requests=10)
    conns = [connect("app") for _ in range(24)]

    def burst(conn):
        refused = 0
        for _ in range(5):
            try:
                reserve_run(conn, farm)
            except RateLimited:
                refused += 1
        return refused

    refused = sum(concurrently([lambda c=c: burst(c) for c in conns]))
    assert refused == 110
    assert refusals(call(auditor, "metrics"), farm, "farm") == 110
    assert invariants(owner, farm) == []


def test_the_counters_are_closed_to_the_app_and_name_no_farm(app, admin, farm):
    set_limits(app, farm, requests=1)
    counters = [
        r[0]
        for r in admin.execute("SELECT counter FROM farmops._rate_limit_counters ORDER BY scope").fetchall()
    ]
    assert len(counters) == 2
    farm_hex = str(farm).replace("-", "")
    assert not [c for c in counters if farm_hex in c.replace("-", "") or str(farm) in c]
    for sql in (
        f"SELECT nextval('{counters[0]}')",
        f"SELECT setval('{counters[0]}', 0)",
        "SELECT * FROM farmops._rate_limit_counters",
        f"SELECT farmops._refuse_over_rate_limit('{farm}', 'farm', 'x', 1)",
        f"SELECT farmops._ensure_rate_limit_counters('{farm}')",
    ):
        with raises_sqlstate("42501"):
            app.execute(sql)
    reserve_run(app, farm)
    with pytest.raises(RateLimited):
        reserve_run(app, farm)
    # PostgreSQL 17+ answers NULL for a sequence the caller may not read, 16 refuses.
    try:
        seen = app.execute(f"SELECT pg_sequence_last_value('{counters[0]}')").fetchone()[0]
    except psycopg.errors.InsufficientPrivilege:
        seen = None
    assert seen is None


def test_setting_limits_again_and_concurrently_makes_one_pair(app, connect, admin, farm):
    conns = [connect("app") for _ in range(8)]
    concurrently([lambda c=c, i=i: set_limits(c, farm, requests=10 + i) for i, c in enumerate(conns)])
    set_limits(app, farm, tokens=5000, scope="members")
    assert admin.execute(
        "SELECT count(*) FROM farmops._rate_limit_counters WHERE farm_id = %s", [farm]
    ).fetchone() == (2,)


def test_a_migrate_gives_farms_limited_before_the_counters_their_counters(db, app, admin, auditor, farm):
    """An upgrade from a version without counters: the farm's limits are set, its counters are not."""
    set_limits(app, farm, requests=1)
    for (counter,) in admin.execute("SELECT counter FROM farmops._rate_limit_counters").fetchall():
        admin.execute(f"DROP SEQUENCE {counter}")
    admin.execute("DELETE FROM farmops._rate_limit_counters")
    with psycopg.connect(db.dsn(), autocommit=False) as conn:
        migrations.migrate(conn)
        conn.commit()
    reserve_run(app, farm)
    refuse(app, farm, "alice", 2)
    assert refusals(call(auditor, "metrics"), farm, "farm") == 2
