"""Rate limits: per farm and per member, requests and tokens per minute, counted in the same atomic
step as the debit (GCRA); refusals carry retry_after. As the application role."""

from __future__ import annotations

import pytest
from support import call, concurrently, raises_sqlstate, tenant
from support.control import reserve_run, set_limits
from support.credits import add_member, balance, counts, grant, invariants, reserve

from farmops_client.errors import OverRateLimitCapacity, RateLimited


def test_farm_requests_per_minute(app, admin, funded):
    set_limits(app, funded, requests=3)
    for _ in range(3):
        reserve_run(app, funded)
    before = counts(admin, funded)
    with pytest.raises(RateLimited) as caught:
        reserve_run(app, funded)
    assert caught.value.sqlstate == "OF402"
    assert 1 <= caught.value.retry_after <= 20  # one request frees every 20 s
    assert "farm requests_per_minute=3" in str(caught.value)
    assert counts(admin, funded) == before  # nothing written, state not moved
    # reserve_credits is limited by the same counter
    with raises_sqlstate("OF402"):
        reserve(app, funded)
    # lifting the limit lets the next one through at once
    set_limits(app, funded, requests=None)
    assert reserve_run(app, funded)["status"] == "reserved"


def test_member_limits_are_per_member(app, funded):
    add_member(app, funded, "wes", "worker")
    add_member(app, funded, "bot", "agent")
    set_limits(app, funded, requests=2, scope="members")
    set_limits(app, funded, requests=1, scope="member", member="bot")
    reserve_run(app, funded, user="wes")
    reserve_run(app, funded, user="wes")
    with raises_sqlstate("OF402"):
        reserve_run(app, funded, user="wes")
    reserve_run(app, funded, user="bot")
    with pytest.raises(RateLimited) as caught:
        reserve_run(app, funded, user="bot")
    assert "member requests_per_minute=1" in str(caught.value)
    assert caught.value.retry_after >= 59
    # the owner has not used theirs
    reserve_run(app, funded, user="alice")
    with tenant(app, funded, "alice"):
        listing = {(r["scope"], r["user_id"]): r for r in call(app, "rate_limits")}
    assert listing[("member", "bot")]["requests_per_minute"] == 1
    assert listing[("member", "bot")]["requests_available"] == 0
    assert listing[("member", "alice")]["requests_available"] == 1
    assert listing[("members", None)]["requests_per_minute"] == 2


def test_tokens_per_minute_from_token_bounds(app, funded):
    grant(app, funded, 100_000)
    set_limits(app, funded, tokens=10_000)
    reserve_run(app, funded, max_input_tokens=3000, max_output_tokens=3000)
    with pytest.raises(RateLimited) as caught:
        reserve_run(app, funded, max_input_tokens=3000, max_output_tokens=2000)
    assert "farm tokens_per_minute=10000" in str(caught.value)
    reserve_run(app, funded, max_input_tokens=2000, max_output_tokens=2000)  # fits what is left
    with pytest.raises(OverRateLimitCapacity):
        reserve_run(app, funded, max_input_tokens=10_000, max_output_tokens=1)


def test_tokens_derived_from_credits_without_bounds(app, owner, funded):
    owner.execute("SELECT farmops.set_model_rate('priced', 10, 20)")
    set_limits(app, funded, tokens=1000)  # 10 credits at 10 per 1k = 1000 tokens
    reserve(app, funded, credits=10, model="priced")
    with raises_sqlstate("OF402"):
        reserve(app, funded, credits=1, model="priced")


def test_replayed_request_id_is_not_counted_again(app, funded):
    set_limits(app, funded, requests=1)
    first = reserve_run(app, funded, request_id="k1")
    again = reserve_run(app, funded, request_id="k1")
    assert again["id"] == first["id"]
    with raises_sqlstate("OF402"):
        reserve_run(app, funded, request_id="k2")


def test_insufficient_credits_is_still_insufficient_credits(app, admin, farm):
    grant(app, farm, 5)
    set_limits(app, farm, requests=100)
    with raises_sqlstate("OF101"):
        reserve_run(app, farm, credits=6)
    # the refused reservation moved no limit
    assert admin.execute("SELECT requests_tat FROM farmops.farms WHERE id = %s", [farm]).fetchone()[0] is None


@pytest.mark.parametrize("role", ["manager", "worker", "viewer", "agent"])
def test_only_owners_set_limits(app, funded, role):
    add_member(app, funded, "m", role)
    with raises_sqlstate("OF003"):
        set_limits(app, funded, requests=1, user="m")


@pytest.mark.parametrize(
    "kwargs, code",
    [
        ({"requests": 0}, "OF006"),
        ({"requests": -1}, "OF006"),
        ({"requests": 1_000_001}, "OF006"),
        ({"tokens": 0}, "OF006"),
        ({"tokens": 1_000_000_001}, "OF006"),
        ({"scope": None}, "OF006"),
        ({"scope": "planet"}, "OF006"),
        ({"scope": "member"}, "OF006"),  # no user
        ({"scope": "farm", "member": "alice"}, "OF006"),
        ({"scope": "member", "member": "nobody"}, "OF002"),
        ({"scope": "member", "member": "x" * 257}, "OF006"),
        ({"scope": "member", "member": "a\x01"}, "OF006"),
    ],
)
def test_bad_limits(app, funded, kwargs, code):
    with raises_sqlstate(code):
        set_limits(app, funded, **kwargs)


def test_other_farms_members_and_no_context(app, two_farms):
    a, b = two_farms
    with raises_sqlstate("OF002"):
        set_limits(app, a, requests=1, scope="member", member="bob")  # bob is farm B's
    with raises_sqlstate("OF001"):
        call(app, "set_rate_limits", requests_per_minute=1, tokens_per_minute=None)
    with raises_sqlstate("OF001"):
        call(app, "rate_limits")
    set_limits(app, a, requests=1)
    grant(app, b, 10, user="bob")
    for _ in range(3):
        reserve_run(app, b, user="bob")  # farm B is not limited by A's limit


def test_200_concurrent_reserves_exactly_n_pass(app, admin, owner, connect, funded):
    """200 reservations from 40 connections released together, limit 10 per minute: exactly 10 pass.

    One request frees every 6 s, far longer than the burst takes, so any 11th success is a race."""
    grant(app, funded, 1000)
    add_member(app, funded, "bot", "agent")
    n = 10
    set_limits(app, funded, requests=n)
    conns = [connect("app") for _ in range(40)]

    def burst(conn, i):
        results = []
        for j in range(5):
            try:
                results.append(reserve_run(conn, funded, user=("bot", "alice")[(i + j) % 2])["id"])
            except RateLimited as exc:
                results.append(exc)
        return results

    outcomes = [
        r for rs in concurrently([lambda c=c, i=i: burst(c, i) for i, c in enumerate(conns)]) for r in rs
    ]
    assert len(outcomes) == 200
    passed = [r for r in outcomes if not isinstance(r, Exception)]
    refused = [r for r in outcomes if isinstance(r, RateLimited)]
    assert len(passed) == n and len(refused) == 200 - n
    assert all(r.retry_after is not None and r.retry_after >= 1 for r in refused)
    assert balance(admin, funded) == 1100 - n
    assert invariants(owner, funded) == []


def test_concurrent_member_limit_exactly_n(app, owner, connect, funded):
    add_member(app, funded, "bot", "agent")
    set_limits(app, funded, requests=5, scope="member", member="bot")
    conns = [connect("app") for _ in range(20)]

    def one(conn):
        try:
            return reserve_run(conn, funded, user="bot")["id"]
        except RateLimited as exc:
            return exc

    outcomes = concurrently([lambda c=c: one(c) for c in conns])
    assert sum(not isinstance(r, Exception) for r in outcomes) == 5
    assert invariants(owner, funded) == []


def test_extensions_count_against_token_limits(app, owner, funded):
    """A right-sized run grows its hold by extensions: the tokens they add are counted too."""
    owner.execute("SELECT farmops.set_model_rate('priced', 10, 20)")
    grant(app, funded, 1000)
    set_limits(app, funded, tokens=10_000)
    # 6000 tokens
    run = reserve_run(app, funded, model="priced", max_input_tokens=3000, max_output_tokens=3000)
    with tenant(app, funded, "alice"), pytest.raises(RateLimited) as caught:
        call(app, "extend_reservation", run_id=run["id"], credits=50)  # 5000 tokens at 10 per 1k
    assert caught.value.retry_after >= 1
    with tenant(app, funded, "alice"):
        grown = call(app, "extend_reservation", run_id=run["id"], credits=40)[0]  # 4000: exactly the limit
    assert grown["credits_reserved"] == run["credits_reserved"] + 40
    with tenant(app, funded, "alice"), raises_sqlstate("OF405"):
        call(app, "extend_reservation", run_id=run["id"], credits=200)  # 20000 tokens: never


def test_extensions_without_token_limits_count_nothing(app, admin, funded):
    set_limits(app, funded, requests=100)
    run = reserve_run(app, funded, credits=1)
    with tenant(app, funded, "alice"):
        call(app, "extend_reservation", run_id=run["id"], credits=5)
    assert admin.execute("SELECT tokens_tat FROM farmops.farms WHERE id = %s", [funded]).fetchone()[0] is None
