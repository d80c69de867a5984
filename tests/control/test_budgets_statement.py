"""Credits for finance (issue 14 §5): adjust_credits writes the 'adjust' ledger kind, and a statement
for any period reconciles to the ledger. As the application role."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from support import call, raises_sqlstate, tenant, value
from support.credits import add_member, balance, counts, expire, grant, reserve, settle
from support.spend import statement


def adjust(app, farm_id, delta, user="alice", reason="correction", **kw):
    """farmops.adjust_credits as ``user``."""
    with tenant(app, farm_id, user):
        return value(app, "adjust_credits", farm_id=farm_id, delta=delta, reason=reason, **kw)


def test_adjust_both_ways_with_a_ledger_row(app, admin, owner, farm):
    grant(app, farm, 10)
    assert adjust(app, farm, -4, reason="refund of a duplicate grant") == 6
    assert adjust(app, farm, 7) == 13
    rows = admin.execute(
        "SELECT kind, delta, balance_after, reason, actor FROM farmops.credit_ledger WHERE farm_id = %s"
        " AND kind = 'adjust' ORDER BY seq",
        [farm],
    ).fetchall()
    assert rows == [
        ("adjust", -4, 6, "refund of a duplicate grant", "alice"),
        ("adjust", 7, 13, "correction", "alice"),
    ]
    assert call(owner, "check_invariants", farm_id=farm) == []


def test_adjust_never_goes_below_zero(app, admin, farm):
    grant(app, farm, 5)
    reserve(app, farm, credits=3)
    before = counts(admin, farm)
    with raises_sqlstate("OF414"):
        adjust(app, farm, -3)
    assert counts(admin, farm) == before
    assert adjust(app, farm, -2) == 0


@pytest.mark.parametrize(
    ("delta", "reason"), [(0, "x"), (None, "x"), (1, None), (1, "  "), (1, "r" * 1001), (1, "bad\x01")]
)
def test_adjust_bad_input_is_of006(app, admin, farm, delta, reason):
    grant(app, farm, 5)
    before = counts(admin, farm)
    with raises_sqlstate("OF006"):
        adjust(app, farm, delta, reason=reason)
    assert counts(admin, farm) == before


def test_adjust_overflow_is_of006(app, farm):
    grant(app, farm, 2**31 - 10)
    with raises_sqlstate("OF006"):
        adjust(app, farm, 20)


@pytest.mark.parametrize(
    ("role", "user"), [("manager", "mia"), ("worker", "wes"), ("viewer", "vic"), ("agent", "bot")]
)
def test_only_owners_adjust(app, farm, role, user):
    add_member(app, farm, user, role)
    with raises_sqlstate("OF003"):
        adjust(app, farm, 1, user=user)


def test_adjust_other_farm_and_no_tenant(app, two_farms):
    a, b = two_farms
    with raises_sqlstate("OF002"), tenant(app, a, "alice"):
        value(app, "adjust_credits", farm_id=b, delta=1, reason="x")
    with raises_sqlstate("OF002"), tenant(app, a, "alice"):
        value(app, "adjust_credits", farm_id=uuid.uuid4(), delta=1, reason="x")
    with raises_sqlstate("OF001"):
        value(app, "adjust_credits", farm_id=a, delta=1, reason="x")


def test_statement_reconciles_to_the_ledger(app, admin, farm):
    grant(app, farm, 100)
    admin.execute("SELECT pg_sleep(0.01)")
    start = admin.execute("SELECT clock_timestamp()").fetchone()[0]
    grant(app, farm, 50)
    run = reserve(app, farm, credits=20)
    settle(app, farm, run["id"], credits_actual=5)  # 15 refunded
    over = reserve(app, farm, credits=2)
    settle(app, farm, over["id"], credits_actual=6)  # 4 charged on settle
    reserve(app, farm, credits=3, ttl="1 millisecond")
    admin.execute("SELECT pg_sleep(0.01)")
    expire(app)  # 3 refunded by expiry
    adjust(app, farm, -7)
    s = statement(app, farm, **{"from": start})
    assert (s["opening_balance"], s["grants"], s["charges"], s["refunds"], s["adjustments"]) == (
        100,
        50,
        29,
        18,
        -7,
    )
    assert s["closing_balance"] == 132 == balance(admin, farm)
    assert s["reconciles"] is True and s["ledger_rows"] == 8
    # A past period: everything before start.
    early = statement(app, farm, **{"from": start - dt.timedelta(days=1), "to": start})
    assert (early["opening_balance"], early["grants"], early["closing_balance"], early["reconciles"]) == (
        0,
        100,
        100,
        True,
    )


def test_statement_bad_input_and_tenancy(app, two_farms):
    a, b = two_farms
    grant(app, a, 10)
    now = dt.datetime.now(dt.UTC)
    with raises_sqlstate("OF006"):
        statement(app, a, **{"from": now, "to": now - dt.timedelta(days=1)})
    with raises_sqlstate("OF006"):
        statement(app, a, **{"from": None})
    with raises_sqlstate("OF001"):
        call(app, "credit_statement", **{"from": now})
    # Farm B's statement shows B's ledger only.
    other = statement(app, b, "bob", **{"from": now - dt.timedelta(days=1)})
    assert (other["grants"], other["closing_balance"], other["ledger_rows"]) == (0, 0, 0)


def test_extensions_are_charges_in_the_statement(app, admin, farm):
    grant(app, farm, 100)
    run = reserve(app, farm, credits=10)
    with tenant(app, farm, "alice"):
        call(app, "extend_reservation", run_id=run["id"], credits=5)
    s = statement(app, farm, **{"from": dt.datetime(2000, 1, 1, tzinfo=dt.UTC)})
    assert (s["charges"], s["closing_balance"], s["reconciles"]) == (15, 85, True)
