"""extend_reservation: a live run's hold grows with the same conditional debit as a reservation."""

from __future__ import annotations

import pytest
from support import create_farm, race, raises_sqlstate, row, sqlstates, tenant
from support.credits import add_member, balance, counts, expire, grant, invariants, reserve, settle, start


def extend(conn, farm_id, run_id, user: str = "alice", **kw) -> dict:
    """extend_reservation in its own tenant transaction; keyword arguments without ``p_``."""
    with tenant(conn, farm_id, user):
        return row(conn, "extend_reservation", run_id=run_id, **kw)


def legs(admin, run_id) -> list[tuple]:
    return admin.execute(
        "SELECT kind, delta, balance_after FROM farmops.credit_ledger WHERE ai_run_id = %s ORDER BY seq",
        [run_id],
    ).fetchall()


def test_extend_grows_the_hold_with_an_extend_leg(app, admin, owner, funded):
    run = reserve(app, funded, credits=3)
    grown = extend(app, funded, run["id"], credits=5)
    assert (grown["credits_reserved"], grown["credits_extended"]) == (8, 5)
    assert balance(admin, funded) == 92
    assert legs(admin, run["id"]) == [("reserve", -3, 97), ("extend", -5, 92)]
    grown = extend(app, funded, run["id"], credits=2)
    assert (grown["credits_reserved"], grown["credits_extended"]) == (10, 7)
    assert invariants(owner, funded) == []


def test_settle_refunds_the_unused_part_of_the_whole_hold(app, admin, owner, funded):
    run = reserve(app, funded, credits=3)
    start(app, funded, run["id"])
    extend(app, funded, run["id"], credits=5)
    settled = settle(app, funded, run["id"], credits_actual=6)
    assert settled["credits_actual"] == 6 and settled["credits_shortfall"] == 0
    assert balance(admin, funded) == 94
    assert [k for k, *_ in legs(admin, run["id"])] == ["reserve", "extend", "settle_refund"]
    assert invariants(owner, funded) == []


def test_expiry_refunds_the_extensions_too(app, admin, owner, funded):
    run = reserve(app, funded, credits=3, ttl="300 milliseconds")
    extend(app, funded, run["id"], credits=4)
    admin.execute("SELECT pg_sleep(0.35)")
    assert expire(app) == 1
    assert balance(admin, funded) == 100
    assert invariants(owner, funded) == []


def test_cover_tokens_prices_at_the_reservation_rate_and_is_idempotent(app, admin, owner, funded):
    run = reserve(app, funded, credits=1)
    # '*' rate: 1 credit per 1k input, 4 per 1k output -> 3000 in + 1000 out = 7 credits
    grown = extend(app, funded, run["id"], cover_input_tokens=3000, cover_output_tokens=1000)
    assert (grown["credits_reserved"], grown["credits_extended"]) == (7, 6)
    again = extend(app, funded, run["id"], cover_input_tokens=3000, cover_output_tokens=1000)
    assert again["credits_reserved"] == 7  # covered: nothing added, no leg
    smaller = extend(app, funded, run["id"], cover_input_tokens=10, cover_output_tokens=0)
    assert smaller["credits_reserved"] == 7
    assert [k for k, *_ in legs(admin, run["id"])] == ["reserve", "extend"]
    assert balance(admin, funded) == 93
    assert invariants(owner, funded) == []


def test_not_enough_credits_refuses_and_writes_nothing(app, admin, owner, funded):
    run = reserve(app, funded, credits=90)
    before = counts(admin, funded)
    with raises_sqlstate("OF101", match="not enough credits to extend"):
        extend(app, funded, run["id"], credits=11)
    with raises_sqlstate("OF101"):
        extend(app, funded, run["id"], cover_input_tokens=0, cover_output_tokens=100_000)
    assert counts(admin, funded) == before
    assert extend(app, funded, run["id"], credits=10)["credits_reserved"] == 100  # exactly the balance
    assert balance(admin, funded) == 0
    assert invariants(owner, funded) == []


def test_a_settled_or_expired_run_cannot_grow(app, admin, funded):
    done = reserve(app, funded, credits=1)
    settle(app, funded, done["id"], credits_actual=1)
    with raises_sqlstate("OF103"):
        extend(app, funded, done["id"], credits=1)
    late = reserve(app, funded, credits=1, ttl="1 millisecond")
    admin.execute("SELECT pg_sleep(0.01)")
    with raises_sqlstate("OF105"):  # past its deadline, not expired by the job yet
        extend(app, funded, late["id"], credits=1)
    expire(app)
    with raises_sqlstate("OF105"):
        extend(app, funded, late["id"], credits=1)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"credits": None},
        {"credits": 0},
        {"credits": -1},
        {"credits": 2**31 - 1, "cover_input_tokens": 1},
        {"cover_input_tokens": -1},
        {"cover_output_tokens": -5},
    ],
)
def test_bad_arguments_are_of006(app, admin, funded, kwargs):
    run = reserve(app, funded, credits=1)
    before = counts(admin, funded)
    with raises_sqlstate("OF006"):
        extend(app, funded, run["id"], **kwargs)
    assert counts(admin, funded) == before


def test_a_hold_cannot_exceed_an_integer(app, admin, owner, farm):
    grant(app, farm, 2**31 - 2)
    run = reserve(app, farm, credits=2**31 - 2)
    with raises_sqlstate("OF006", match="cannot hold more"):
        extend(app, farm, run["id"], credits=2)


def test_null_missing_and_odd_run_ids(app, funded):
    with raises_sqlstate("OF006"):
        extend(app, funded, None, credits=1)
    with raises_sqlstate("OF102"):
        extend(app, funded, "00000000-0000-0000-0000-000000000000", credits=1)
    with raises_sqlstate(
        "22P02"
    ):  # not a uuid at all: PostgreSQL's own cast error (the client validates first)
        extend(app, funded, "x" * 10_000, credits=1)


def test_without_tenant_context_is_of001(app, funded):
    run = reserve(app, funded, credits=1)
    with raises_sqlstate("OF001"):
        row(app, "extend_reservation", run_id=run["id"], credits=1)


def test_another_farms_run_is_not_found(app, admin, two_farms):
    a, b = two_farms
    grant(app, a, 10)
    grant(app, b, 10, user="bob")
    run = reserve(app, a, credits=1)
    with raises_sqlstate("OF102"):
        extend(app, b, run["id"], user="bob", credits=1)
    assert balance(admin, a) == 9 and balance(admin, b) == 10


@pytest.mark.parametrize(("role", "state"), [("viewer", "OF003"), ("worker", "OF003"), ("manager", None)])
def test_who_may_extend_another_members_run(app, admin, funded, role, state):
    add_member(app, funded, "someone", role)
    run = reserve(app, funded, credits=1)
    if state is None:
        assert extend(app, funded, run["id"], user="someone", credits=1)["credits_reserved"] == 2
    else:
        with raises_sqlstate(state):
            extend(app, funded, run["id"], user="someone", credits=1)
        assert balance(admin, funded) == 99


def test_the_hold_never_shrinks_or_grows_outside_extend_even_for_the_owner(app, owner, funded):
    run = reserve(app, funded, credits=5)
    with raises_sqlstate("OF103"):
        owner.execute("UPDATE farmops.ai_runs SET credits_reserved = 4 WHERE id = %s", [run["id"]])
    with raises_sqlstate("OF103"):  # grown without counting it as an extension
        owner.execute("UPDATE farmops.ai_runs SET credits_reserved = 6 WHERE id = %s", [run["id"]])
    settle(app, funded, run["id"], credits_actual=1)
    with raises_sqlstate("OF103"):
        owner.execute(
            "UPDATE farmops.ai_runs SET credits_reserved = 6, credits_extended = 1 WHERE id = %s", [run["id"]]
        )


def test_a_retried_reservation_after_an_extension_is_the_same_run(app, funded):
    run = reserve(app, funded, credits=3, request_id="req-1")
    extend(app, funded, run["id"], credits=4)
    again = reserve(app, funded, credits=3, request_id="req-1")
    assert again["id"] == run["id"] and again["credits_reserved"] == 7
    with raises_sqlstate("OF106"):
        reserve(app, funded, credits=7, request_id="req-1")


def test_concurrent_extensions_never_overspend(connect, app, admin, owner, farm):
    grant(app, farm, 20)
    runs = [reserve(app, farm, credits=1)["id"] for _ in range(4)]  # 16 left
    actions = [lambda c, r=r: extend(c, farm, r, credits=3) for r in runs for _ in range(2)]  # 8 x 3 = 24
    results = race(connect, actions)
    assert sorted(s or "ok" for s in sqlstates(results)).count("ok") == 5  # 15 of the 16 left
    assert balance(admin, farm) == 1
    assert invariants(owner, farm) == []


def test_concurrent_cover_calls_on_one_run_add_once(connect, app, admin, owner, funded):
    run = reserve(app, funded, credits=1)
    results = race(
        connect, [lambda c: extend(c, funded, run["id"], cover_input_tokens=5000) for _ in range(6)]
    )
    assert sqlstates(results) == [None] * 6
    assert balance(admin, funded) == 95
    assert invariants(owner, funded) == []


def test_extend_racing_settle_and_expiry_stays_consistent(connect, app, admin, owner, funded):
    run = reserve(app, funded, credits=2, ttl="2 seconds")
    results = race(
        connect,
        [
            lambda c: extend(c, funded, run["id"], credits=3),
            lambda c: settle(c, funded, run["id"], credits_actual=1),
            lambda c: expire(c),
        ],
    )
    assert set(sqlstates(results)) <= {None, "OF103", "OF104", "OF105", "40P01"}
    assert invariants(owner, funded) == []
    other = create_farm(app, "Other", "bob")
    assert balance(admin, other) == 0
