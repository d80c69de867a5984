"""reserve_credits: the one atomic reservation, under bad input and under concurrency."""

from __future__ import annotations

import psycopg
import pytest
from support import create_farm, race, raises_sqlstate, sqlstates, tenant
from support.credits import (
    add_member,
    balance,
    counts,
    grant,
    invariants,
    reserve,
    settle,
)


def test_reserve_takes_credits_and_writes_run_and_leg(app, admin, owner, funded):
    run = reserve(app, funded, credits=7, feature="diagnose", model="m1", input_summary="sick hens")
    assert run["status"] == "reserved"
    assert run["credits_reserved"] == 7
    assert run["user_id"] == "alice"
    assert run["farm_id"] == funded
    assert run["expires_at"] > run["reserved_at"]
    assert balance(admin, funded) == 93
    legs = admin.execute(
        "SELECT kind, delta, balance_after, actor FROM farmops.credit_ledger WHERE ai_run_id = %s",
        [run["id"]],
    ).fetchall()
    assert legs == [("reserve", -7, 93, "alice")]
    assert invariants(owner, funded) == []


def test_reserve_exactly_the_whole_balance(app, admin, funded):
    reserve(app, funded, credits=100)
    assert balance(admin, funded) == 0


def test_insufficient_credits_writes_nothing(app, admin, funded):
    before = counts(admin, funded)
    with raises_sqlstate("OF101"):
        reserve(app, funded, credits=101)
    assert counts(admin, funded) == before


def test_zero_balance_refuses(app, admin, farm):
    with raises_sqlstate("OF101"):
        reserve(app, farm, credits=1)
    assert counts(admin, farm) == (0, 0, 0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"credits": None},
        {"credits": 0},
        {"credits": -1},
        {"credits": -(2**31)},
        {"feature": None},
        {"feature": ""},
        {"feature": "x" * 101},
        {"feature": "x" * 1_000_000},
        {"model": None},
        {"model": ""},
        {"model": "m" * 1_000_000},
        {"request_id": ""},
        {"request_id": "r" * 201},
        {"request_id": "r" * 1_000_000},
        {"ttl": None},
        {"ttl": "0 seconds"},
        {"ttl": "-1 minute"},
        {"ttl": "2 days"},
        {"input_summary": "s" * 4001},
        {"input_summary": "s" * 1_000_000},
    ],
)
def test_bad_input_is_of006_and_writes_nothing(app, admin, funded, kwargs):
    before = counts(admin, funded)
    with raises_sqlstate("OF006"):
        reserve(app, funded, **kwargs)
    assert counts(admin, funded) == before


def test_huge_credits(app, admin, funded):
    """2^31-1 is a valid amount (OF101 here); 2^31 is no integer: 22003 when cast, 42883 as bigint."""
    before = counts(admin, funded)
    with raises_sqlstate("OF101"):
        reserve(app, funded, credits=2**31 - 1)
    # sent as bigint: no such function signature
    with raises_sqlstate("42883"), tenant(app, funded, "alice"):
        app.execute(
            "SELECT farmops.reserve_credits(p_feature => 'f', p_model => 'm', p_credits => %s)", [2**31]
        )
    with raises_sqlstate("22003"), tenant(app, funded, "alice"):
        app.execute(
            "SELECT farmops.reserve_credits(p_feature => 'f', p_model => 'm', p_credits => %s::integer)",
            [2**31],
        )
    assert counts(admin, funded) == before


def test_wrong_types(app, admin, funded):
    before = counts(admin, funded)
    with raises_sqlstate("22P02"), tenant(app, funded, "alice"):
        app.execute("SELECT farmops.reserve_credits(p_feature => 'f', p_model => 'm', p_credits => 'abc')")
    with raises_sqlstate("22007"), tenant(app, funded, "alice"):
        app.execute(
            "SELECT farmops.reserve_credits(p_feature => 'f', p_model => 'm', p_credits => 1,"
            " p_ttl => 'soon')"
        )
    assert counts(admin, funded) == before


def test_unicode_is_fine_and_nul_is_refused(app, admin, funded):
    run = reserve(app, funded, feature="診断 🐔", model="модель", request_id="ключ-🔑")
    assert (run["feature"], run["model"], run["request_id"]) == ("診断 🐔", "модель", "ключ-🔑")
    before = counts(admin, funded)
    # psycopg refuses a NUL in text before sending it; the server refuses it with 22021.
    with pytest.raises(psycopg.DataError):
        reserve(app, funded, feature="a\x00b")
    with raises_sqlstate("22021"), tenant(app, funded, "alice"):
        app.execute(
            "SELECT farmops.reserve_credits(p_feature => convert_from('\\x6100'::bytea, 'UTF8'),"
            " p_model => 'm', p_credits => 1)"
        )
    assert counts(admin, funded) == before


def test_no_tenant_context_is_of001(app, admin, funded):
    before = counts(admin, funded)
    with raises_sqlstate("OF001"):
        app.execute("SELECT farmops.reserve_credits(p_feature => 'f', p_model => 'm', p_credits => 1)")
    assert counts(admin, funded) == before


def test_viewer_cannot_reserve(app, admin, funded):
    add_member(app, funded, "vera", "viewer")
    before = counts(admin, funded)
    with raises_sqlstate("OF003"):
        reserve(app, funded, user="vera")
    assert counts(admin, funded) == before


@pytest.mark.parametrize("role", ["owner", "manager", "worker", "agent"])
def test_other_roles_may_reserve(app, funded, role):
    add_member(app, funded, f"{role}-user", role)
    run = reserve(app, funded, user=f"{role}-user")
    assert run["user_id"] == f"{role}-user"


def test_same_request_id_returns_same_run_and_charges_once(app, admin, owner, funded):
    first = reserve(app, funded, credits=5, request_id="req-1")
    again = reserve(app, funded, credits=5, request_id="req-1")
    assert again == first
    assert balance(admin, funded) == 95
    assert counts(admin, funded)[1:] == (1, 2)  # one run; grant + one reserve leg
    # still the same run after it settled, even if the balance is now too low for a new one
    settle(app, funded, first["id"], credits_actual=5)
    reserve(app, funded, credits=95)
    assert reserve(app, funded, credits=5, request_id="req-1")["id"] == first["id"]
    assert invariants(owner, funded) == []


@pytest.mark.parametrize(
    "change",
    [{"credits": 6}, {"feature": "other"}, {"model": "other-model"}],
    ids=["credits", "feature", "model"],
)
def test_same_request_id_different_request_is_of106(app, admin, funded, change):
    reserve(app, funded, credits=5, request_id="req-1")
    before = counts(admin, funded)
    kwargs = {"credits": 5, "request_id": "req-1", **change}
    with raises_sqlstate("OF106"):
        reserve(app, funded, **kwargs)
    assert counts(admin, funded) == before


def test_request_ids_are_per_farm(app, admin, two_farms):
    farm_a, farm_b = two_farms
    grant(app, farm_a, 10, user="alice")
    grant(app, farm_b, 10, user="bob")
    run_a = reserve(app, farm_a, user="alice", request_id="shared")
    run_b = reserve(app, farm_b, user="bob", request_id="shared", credits=2)
    assert run_a["id"] != run_b["id"]
    assert (balance(admin, farm_a), balance(admin, farm_b)) == (9, 8)


def test_concurrent_same_request_id_charges_once(connect, app, admin, owner, funded):
    results = race(connect, [lambda conn: reserve(conn, funded, credits=3, request_id="race")] * 8)
    assert sqlstates(results) == [None] * 8
    assert len({r["id"] for r in results}) == 1
    assert balance(admin, funded) == 97
    assert invariants(owner, funded) == []


def test_64_callers_on_10_credits(connect, app, admin, owner, farm):
    """The overspend race: exactly 10 of 64 concurrent 1-credit reservations succeed."""
    grant(app, farm, 10)
    results = race(connect, [lambda conn: reserve(conn, farm, credits=1)] * 64)
    states = sqlstates(results)
    assert states.count(None) == 10
    assert states.count("OF101") == 54
    assert balance(admin, farm) == 0
    assert counts(admin, farm)[1:] == (10, 11)
    assert invariants(owner, farm) == []


def test_mixed_sizes_and_settles_concurrently(connect, app, admin, owner, farm):
    """Sizes 1..5, half settle (refund, exact or over), under contention: the books still balance."""
    grant(app, farm, 60)

    def work(conn, i):
        run = reserve(conn, farm, credits=1 + i % 5)
        if i % 2 == 0:
            return settle(conn, farm, run["id"], credits_actual=(i % 7))
        return run

    results = race(connect, [lambda conn, i=i: work(conn, i) for i in range(32)])
    states = sqlstates(results)
    assert set(states) <= {None, "OF101"}
    assert states.count(None) >= 10  # 60 credits cover at least 12 reservations of at most 5
    assert balance(admin, farm) >= 0
    assert invariants(owner, farm) == []


@pytest.mark.slow
@pytest.mark.parametrize("round_", range(10))
def test_stress_64_callers_repeated(db, app, admin, owner, connect, round_):
    farm = create_farm(app, f"Stress {round_}")
    grant(app, farm, 10)
    results = race(
        connect, [lambda conn, i=i: reserve(conn, farm, credits=1 + (i + round_) % 3) for i in range(64)]
    )
    states = sqlstates(results)
    assert set(states) <= {None, "OF101"}
    spent = sum(r["credits_reserved"] for r in results if not isinstance(r, Exception))
    assert spent + balance(admin, farm) == 10
    assert invariants(owner, farm) == []
