"""grant_credits: farm owners only, positive integers, never past an integer with live reservations."""

from __future__ import annotations

import pytest
from support import raises_sqlstate, tenant, value
from support.credits import add_member, counts, grant, invariants, reserve


def _grant_sql(conn, farm_id, credits, reason="top up"):
    return value(conn, "grant_credits", farm_id=farm_id, credits=credits, reason=reason)


def test_grant_returns_new_balance_and_writes_a_grant_leg(app, admin, owner, farm):
    assert grant(app, farm, 25, reason="  invoice 17  ") == 25
    assert grant(app, farm, 5) == 30
    rows = admin.execute(
        "SELECT kind, delta, balance_after, reason, actor, ai_run_id FROM farmops.credit_ledger"
        " WHERE farm_id = %s ORDER BY seq",
        [farm],
    ).fetchall()
    assert rows == [
        ("grant", 25, 25, "invoice 17", "alice", None),
        ("grant", 5, 30, "top up", "alice", None),
    ]
    assert invariants(owner, farm) == []


@pytest.mark.parametrize("role", ["manager", "worker", "viewer", "agent"])
def test_only_owners_grant(app, admin, farm, role):
    add_member(app, farm, "someone", role)
    before = counts(admin, farm)
    with raises_sqlstate("OF003"), tenant(app, farm, "someone"):
        _grant_sql(app, farm, 10)
    assert counts(admin, farm) == before


def test_second_owner_may_grant(app, farm):
    add_member(app, farm, "carol", "owner")
    assert grant(app, farm, 3, user="carol") == 3


@pytest.mark.parametrize(
    ("credits", "reason", "sqlstate"),
    [
        (None, "r", "OF006"),
        (0, "r", "OF006"),
        (-5, "r", "OF006"),
        (-(2**31), "r", "OF006"),
        (10, None, "OF006"),
        (10, "", "OF006"),
        (10, "   ", "OF006"),
        (10, "r" * 1001, "OF006"),
        (10, "r" * 1_000_000, "OF006"),
    ],
)
def test_bad_input(app, admin, farm, credits, reason, sqlstate):
    with raises_sqlstate(sqlstate), tenant(app, farm, "alice"):
        _grant_sql(app, farm, credits, reason)
    assert counts(admin, farm) == (0, 0, 0)


def test_null_farm_and_wrong_farm(app, admin, two_farms):
    farm_a, farm_b = two_farms
    with raises_sqlstate("OF006"), tenant(app, farm_a, "alice"):
        _grant_sql(app, None, 10)
    with raises_sqlstate("OF002"), tenant(app, farm_a, "alice"):
        _grant_sql(app, farm_b, 10)
    assert counts(admin) == (0, 0, 0)


def test_no_context(app, admin, farm):
    with raises_sqlstate("OF001"):
        _grant_sql(app, farm, 10)
    assert counts(admin, farm) == (0, 0, 0)


def test_huge_grants(app, admin, owner, farm):
    """Up to 2^31-1 in total; beyond that OF006 (or 22003/42883 for a non-integer argument)."""
    assert grant(app, farm, 2**31 - 1) == 2**31 - 1
    with raises_sqlstate("OF006"):
        grant(app, farm, 1)
    with raises_sqlstate("42883"), tenant(app, farm, "alice"):
        _grant_sql(app, farm, 2**31)
    with raises_sqlstate("22003"), tenant(app, farm, "alice"):
        app.execute(
            "SELECT farmops.grant_credits(p_farm_id => %s, p_credits => %s::integer, p_reason => 'x')",
            [farm, 2**31],
        )
    assert counts(admin, farm) == (2**31 - 1, 0, 1)
    assert invariants(owner, farm) == []


def test_live_reservations_count_towards_the_ceiling(app, admin, owner, farm):
    """Otherwise a later refund could push the balance past an integer."""
    grant(app, farm, 100)
    reserve(app, farm, credits=60)
    with raises_sqlstate("OF006"):
        grant(app, farm, 2**31 - 1 - 100 + 1)
    assert grant(app, farm, 2**31 - 1 - 100) == 2**31 - 1 - 60
    assert invariants(owner, farm) == []
