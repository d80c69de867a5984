"""The fast path: farmops.reserve_run (farm and user as arguments, one call) and one lock order.

Every rule is proven as the application role; the superuser only inspects.
"""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from psycopg.rows import dict_row
from support import create_farm, race, sqlstates, tenant
from support.credits import (
    add_member,
    balance,
    counts,
    grant,
    invariants,
    reserve,
    settle,
)


@pytest.fixture
def funded(app, farm):
    """The 'alice' farm with 100 credits."""
    grant(app, farm, 100)
    return farm


def reserve_run(conn: psycopg.Connection, farm_id, user: str = "alice", **kw) -> dict:
    """farmops.reserve_run in autocommit (one call is the whole transaction); ``p_`` prefix omitted."""
    args = {"p_farm_id": farm_id, "p_user_id": user, "p_feature": "chat", "p_model": "test-model"}
    if "credits" not in kw and "max_input_tokens" not in kw:
        kw["credits"] = 1
    args.update({f"p_{k}": v for k, v in kw.items()})
    named = ", ".join(f"{k} => %({k})s" for k in args)
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(f"SELECT * FROM farmops.reserve_run({named})", args).fetchone()


def sqlstate(fn) -> str | None:
    try:
        fn()
    except psycopg.Error as exc:
        return exc.sqlstate
    return None


# -- reserve_run: what it writes -------------------------------------------------------------------------
def test_reserve_run_writes_run_and_leg_like_reserve_credits(app, admin, owner, funded):
    run = reserve_run(app, funded, credits=7, feature="diagnose", model="m1", input_summary="sick hens")
    assert (run["status"], run["credits_reserved"], run["user_id"], run["farm_id"]) == (
        "reserved",
        7,
        "alice",
        funded,
    )
    assert balance(admin, funded) == 93
    legs = admin.execute(
        "SELECT kind, delta, balance_after, actor FROM farmops.credit_ledger WHERE ai_run_id = %s",
        [run["id"]],
    ).fetchall()
    assert legs == [("reserve", -7, 93, "alice")]
    assert invariants(owner, funded) == []


def test_reserve_run_prices_token_bounds_like_estimate_credits(app, admin, funded):
    price = app.execute(
        "SELECT farmops.estimate_credits(p_model => 'test-model', p_max_input_tokens => 40000, "
        "p_max_output_tokens => 9000)"
    ).fetchone()[0]
    run = reserve_run(app, funded, max_input_tokens=40000, max_output_tokens=9000)
    assert run["credits_reserved"] == price >= 1
    assert balance(admin, funded) == 100 - price


def test_insufficient_credits_writes_nothing(app, admin, funded):
    before = counts(admin, funded)
    assert sqlstate(lambda: reserve_run(app, funded, credits=101)) == "OF101"
    assert sqlstate(lambda: reserve_run(app, funded, credits=101, request_id="k")) == "OF101"
    assert counts(admin, funded) == before
    # The key of a refused reservation is free again.
    assert reserve_run(app, funded, credits=100, request_id="k")["credits_reserved"] == 100


def test_settle_run_after_reserve_run(app, admin, owner, funded):
    run = reserve_run(app, funded, credits=10)
    settled = settle(app, funded, run["id"], credits_actual=4)
    assert (settled["status"], settled["credits_actual"]) == ("succeeded", 4)
    assert balance(admin, funded) == 96
    assert invariants(owner, funded) == []


# -- who may call it --------------------------------------------------------------------------------------
def test_non_member_and_other_farm_are_of002(app, admin, funded):
    other = create_farm(app, "Other farm", "bob")
    grant(app, other, 50, user="bob")
    before = counts(admin)
    assert sqlstate(lambda: reserve_run(app, funded, user="mallory")) == "OF002"
    assert sqlstate(lambda: reserve_run(app, other, user="alice")) == "OF002"  # alice is not bob's member
    assert sqlstate(lambda: reserve_run(app, "00000000-0000-0000-0000-000000000000")) == "OF002"
    assert counts(admin) == before


def test_viewer_is_of003_and_other_roles_may(app, admin, funded):
    for user, role in (("vera", "viewer"), ("walt", "worker"), ("ann", "agent"), ("mike", "manager")):
        add_member(app, funded, user, role)
    assert sqlstate(lambda: reserve_run(app, funded, user="vera")) == "OF003"
    for user in ("walt", "ann", "mike"):
        assert reserve_run(app, funded, user=user)["user_id"] == user


def test_inside_a_context_it_must_name_the_same_member(app, admin, funded):
    add_member(app, funded, "walt", "worker")
    with tenant(app, funded, "alice"):
        assert reserve_run(app, funded)["user_id"] == "alice"
    with pytest.raises(psycopg.Error) as excinfo, tenant(app, funded, "alice"):
        reserve_run(app, funded, user="walt")
    assert excinfo.value.sqlstate == "OF002"


def test_a_forged_context_is_ignored_and_membership_checked(app, funded):
    with app.transaction():
        app.execute("SELECT set_config('farmops.farm_id', %s, true)", [str(funded)])
        app.execute("SELECT set_config('farmops.user_id', 'mallory', true)")
        assert sqlstate(lambda: reserve_run(app, funded, user="mallory")) == "OF002"


def test_verified_identity_required_refuses_it_without_a_verified_context(app, owner, funded):
    owner.execute("SELECT farmops.require_verified_identity(true)")
    assert sqlstate(lambda: reserve_run(app, funded)) == "OF024"


# -- bad input: OF006 (or the documented code), nothing written ------------------------------------------
BIG = 2**31


@pytest.mark.parametrize(
    "kwargs",
    [
        {"farm_id": None},
        {"user_id": None},
        {"feature": None},
        {"feature": ""},
        {"feature": "x" * 101},
        {"model": None},
        {"model": "m" * 201},
        {"credits": 0},
        {"credits": -1},
        {"request_id": ""},
        {"request_id": "r" * 201},
        {"ttl": "0 seconds"},
        {"ttl": "2 days"},
        {"ttl": None},
        {"input_summary": "s" * 4001},
        {"max_input_tokens": -1, "max_output_tokens": 10},
        {"max_input_tokens": 10, "max_output_tokens": None},
        {"max_input_tokens": 10, "max_output_tokens": 10, "credits": 3},
    ],
)
def test_bad_input_is_of006_and_writes_nothing(app, admin, funded, kwargs):
    before = counts(admin)
    user = kwargs.pop("user_id", "alice")
    farm = kwargs.pop("farm_id", funded)
    assert sqlstate(lambda: reserve_run(app, farm, user=user, **kwargs)) == "OF006"
    assert counts(admin) == before


@pytest.mark.parametrize("user", ["u" * 100_000, "alice\u0007", "ALICE", " alice"])
def test_odd_user_ids_are_not_members(app, admin, funded, user):
    before = counts(admin)
    assert sqlstate(lambda: reserve_run(app, funded, user=user)) == "OF002"
    assert counts(admin) == before


def test_integers_that_do_not_fit_are_refused_before_the_call(app, admin, funded):
    before = counts(admin)
    assert sqlstate(lambda: reserve_run(app, funded, credits=BIG)) in ("42883", "22003")
    assert sqlstate(lambda: reserve_run(app, funded, max_input_tokens=BIG, max_output_tokens=1)) in (
        "42883",
        "22003",
    )
    # the largest integer fits, and costs more than the farm has
    assert sqlstate(lambda: reserve_run(app, funded, credits=BIG - 1)) == "OF101"
    assert sqlstate(
        lambda: reserve_run(app, funded, max_input_tokens=BIG - 1, max_output_tokens=BIG - 1)
    ) in (
        "OF101",
        "OF006",  # more credits than an integer holds
    )
    assert counts(admin) == before


# -- idempotency without a subtransaction ----------------------------------------------------------------
def test_same_key_same_run_charged_once_and_other_request_is_of106(app, admin, owner, funded):
    first = reserve_run(app, funded, credits=5, request_id="k1")
    again = reserve_run(app, funded, credits=5, request_id="k1")
    assert again["id"] == first["id"]
    assert balance(admin, funded) == 95
    for change in ({"credits": 6}, {"feature": "other"}, {"model": "other"}):
        assert sqlstate(
            lambda change=change: reserve_run(app, funded, request_id="k1", **{"credits": 5, **change})
        ) == ("OF106")
    # reserve_credits shares the key space: the same key through the tenant path is the same run
    assert reserve(app, funded, credits=5, request_id="k1")["id"] == first["id"]
    assert balance(admin, funded) == 95
    assert invariants(owner, funded) == []


def test_32_racers_on_one_key_make_one_run_and_one_charge(connect, admin, owner, funded):
    results = race(connect, [lambda conn: reserve_run(conn, funded, credits=3, request_id="race")] * 32)
    assert sqlstates(results) == [None] * 32
    assert len({r["id"] for r in results}) == 1
    assert balance(admin, funded) == 97
    assert counts(admin, funded)[1:] == (1, 2)  # one run; the grant and one reserve leg
    assert invariants(owner, funded) == []


def test_32_racers_on_one_key_through_both_paths(connect, admin, owner, funded):
    def work(conn, i):
        if i % 2:
            return reserve_run(conn, funded, credits=3, request_id="both")
        return reserve(conn, funded, credits=3, request_id="both")

    results = race(connect, [lambda conn, i=i: work(conn, i) for i in range(32)])
    assert sqlstates(results) == [None] * 32
    assert len({r["id"] for r in results}) == 1
    assert balance(admin, funded) == 97
    assert invariants(owner, funded) == []


def test_overspend_race_64_callers_on_10_credits(connect, app, admin, owner, farm):
    grant(app, farm, 10)
    results = race(
        connect, [lambda conn, i=i: reserve_run(conn, farm, credits=1, request_id=f"r{i}") for i in range(64)]
    )
    states = sqlstates(results)
    assert (states.count(None), states.count("OF101")) == (10, 54)
    assert balance(admin, farm) == 0
    assert counts(admin, farm)[1:] == (10, 11)
    assert invariants(owner, farm) == []


@pytest.mark.parametrize("path", ["reserve_run", "reserve_credits"])
def test_no_subtransaction_on_the_reserve_path(app, admin, funded, path):
    """Idempotency is ON CONFLICT, not an exception block: a keyed reservation takes one transaction
    id, no subtransaction id (counted by the ids handed out in between; nothing else runs here)."""
    with tenant(app, funded, "alice"):
        first = app.execute("SELECT pg_current_xact_id()::text::bigint").fetchone()[0]
        if path == "reserve_run":
            reserve_run(app, funded, request_id="sub")
        else:
            app.execute(
                "SELECT farmops.reserve_credits(p_feature => 'chat', p_model => 'm', p_credits => 1, "
                "p_request_id => 'sub')"
            )
    following = admin.execute("SELECT pg_current_xact_id()::text::bigint").fetchone()[0]
    assert following - first == 1


# -- one lock order: farm row, then run rows (issue 12 item 7) --------------------------------------------
def _wait_until_blocked(admin: psycopg.Connection, pid: int) -> None:
    """Until backend ``pid`` waits for a lock (so the interleaving is the one we mean)."""
    for _ in range(200):
        row = admin.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone()
        if row and row[0] == "Lock":
            return
        time.sleep(0.05)
    raise AssertionError(f"backend {pid} never waited for a lock")


def _in_thread(fn) -> tuple[threading.Thread, list]:
    out: list = []

    def target():
        try:
            out.append(fn())
        except Exception as exc:
            out.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    return thread, out


@pytest.mark.parametrize("second", ["settle", "expire"])
def test_reserve_then_settle_does_not_deadlock_with_a_concurrent_settle_or_expiry(
    connect, admin, owner, funded, second
):
    """T1 reserves (holds the farm row), T2 settles (or expires) run R, T1 settles R: no 40P01."""
    ttl = "1 second" if second == "expire" else "15 minutes"
    r = reserve(connect("app"), funded, credits=10, ttl=ttl)
    if second == "expire":
        time.sleep(1.1)
    # The expiry job belongs to the maintainer login (the app may not run it).
    t1 = connect("app", autocommit=False)
    t2 = connect("maintainer" if second == "expire" else "app", autocommit=False)
    t1.execute("SELECT farmops.begin_tenant(%s, 'alice')", [funded])
    t1.execute("SELECT farmops.reserve_credits(p_feature => 'x', p_model => 'm', p_credits => 1)")
    t2_pid = t2.info.backend_pid
    if second == "settle":
        t2.execute("SELECT farmops.begin_tenant(%s, 'alice')", [funded])
        call = (
            "SELECT status FROM farmops.settle_run(p_run_id => %s, p_status => 'succeeded', "
            "p_credits_actual => 4)"
        )
        thread, out = _in_thread(lambda: t2.execute(call, [r["id"]]).fetchone())
    else:
        thread, out = _in_thread(lambda: t2.execute("SELECT farmops.expire_reservations()").fetchone())
    _wait_until_blocked(admin, t2_pid)
    t1.execute(
        "SELECT farmops.settle_run(p_run_id => %s, p_status => 'succeeded', p_credits_actual => 4)", [r["id"]]
    )
    t1.commit()
    thread.join(30)
    assert not isinstance(out[0], Exception), out[0]
    t2.commit()
    if second == "settle":
        assert out[0] == ("succeeded",)  # the same settle again: a no-op
    else:
        assert out[0] == (0,)  # R was settled before the expirer could lock it
    assert balance(admin, funded) == 100 - 4 - 1
    assert invariants(owner, funded) == []
