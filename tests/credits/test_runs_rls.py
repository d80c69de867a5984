"""Tenant isolation of runs, ledger and rates, proven as the application role."""

from __future__ import annotations

import pytest
from support import raises_sqlstate, tenant
from support.credits import balance, counts, grant, reserve, settle, start

TENANT_TABLES = ("farms", "farm_members", "ai_runs", "credit_ledger")


@pytest.fixture
def books(app, two_farms):
    """Farms A (alice) and B (bob), each with a grant, a settled run and a live run."""
    farm_a, farm_b = two_farms
    runs = {}
    for farm_id, user in ((farm_a, "alice"), (farm_b, "bob")):
        grant(app, farm_id, 50, user=user)
        done = reserve(app, farm_id, user=user, credits=5, request_id="k")
        settle(app, farm_id, done["id"], user=user, credits_actual=2)
        runs[farm_id] = reserve(app, farm_id, user=user, credits=7)
    return farm_a, farm_b, runs


def assert_member_sees_only_own_farm(app, farm_a, farm_b):
    """As alice in farm A: every tenant table shows A's rows and none of B's."""
    with tenant(app, farm_a, "alice"):
        for table in TENANT_TABLES:
            key = "id" if table == "farms" else "farm_id"
            seen = {r[0] for r in app.execute(f"SELECT DISTINCT {key} FROM farmops.{table}")}
            assert seen == {farm_a}, f"{table} shows {seen}"
            assert app.execute(
                f"SELECT count(*) FROM farmops.{table} WHERE {key} = %s", [farm_b]
            ).fetchone() == (0,)


def test_member_sees_only_own_farm(app, books):
    farm_a, farm_b, _ = books
    assert_member_sees_only_own_farm(app, farm_a, farm_b)


def test_no_context_shows_zero_rows(app, books):
    for table in (*TENANT_TABLES,):
        assert app.execute(f"SELECT count(*) FROM farmops.{table}").fetchone() == (0,), table


def test_forged_context_shows_zero_rows(app, books):
    farm_a, _, _ = books
    with app.transaction():
        for name, value in (("farm_id", str(farm_a)), ("user_id", "alice"), ("member_role", "owner")):
            app.execute("SELECT set_config(%s, %s, true)", [f"farmops.{name}", value])
        app.execute("SELECT set_config('farmops.context_sig', repeat('0', 64), true)")
        for table in TENANT_TABLES:
            assert app.execute(f"SELECT count(*) FROM farmops.{table}").fetchone() == (0,), table
        assert app.execute("SELECT farmops.current_farm_id()").fetchone() == (None,)


def test_model_rates_are_global_and_read_only(app, admin):
    rows = admin.execute("SELECT count(*), min(input_credits_per_1k) FROM farmops.model_rates").fetchone()
    # The shipped default credit rate, and the tests' default price on a '*' row of its own.
    assert app.execute("SELECT count(*) FROM farmops.model_rates WHERE model = '*'").fetchone() == (2,)
    for statement in (
        "UPDATE farmops.model_rates SET input_credits_per_1k = 0",
        "DELETE FROM farmops.model_rates",
        "INSERT INTO farmops.model_rates (model, input_credits_per_1k, output_credits_per_1k)"
        " VALUES ('x', 0, 0)",
    ):
        with raises_sqlstate("42501"):
            app.execute(statement)
    after = admin.execute("SELECT count(*), min(input_credits_per_1k) FROM farmops.model_rates").fetchone()
    assert after == rows


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE farmops.farms SET credit_balance = 1000000",
        "UPDATE farmops.ai_runs SET status = 'succeeded'",
        "DELETE FROM farmops.ai_runs",
        "INSERT INTO farmops.ai_runs (farm_id, user_id, feature, model, credits_reserved, expires_at)"
        " VALUES (%(a)s, 'alice', 'f', 'm', 1, now() + interval '1 hour')",
        "INSERT INTO farmops.credit_ledger (farm_id, kind, delta, balance_after, actor)"
        " VALUES (%(a)s, 'grant', 1000, 1000, 'alice')",
        "UPDATE farmops.credit_ledger SET delta = 1",
        "DELETE FROM farmops.credit_ledger",
    ],
)
def test_app_writes_only_through_functions(app, admin, books, statement):
    farm_a, _, _ = books
    before = counts(admin)
    with raises_sqlstate("42501"), tenant(app, farm_a, "alice"):
        app.execute(statement, {"a": farm_a})
    assert counts(admin) == before


def test_cannot_touch_the_other_farms_run(app, admin, books):
    farm_a, farm_b, runs = books
    run_b = runs[farm_b]["id"]
    before = counts(admin)
    for call in (
        lambda: start(app, farm_a, run_b),
        lambda: settle(app, farm_a, run_b, credits_actual=0),
        lambda: settle(app, farm_a, run_b, status="failed"),
    ):
        with raises_sqlstate("OF102"):
            call()
    assert counts(admin) == before
    assert balance(admin, farm_b) == 50 - 2 - 7


def test_cannot_replay_the_other_farms_request_id(app, admin, books):
    """Keys are per farm: alice's 'k' is her own run, never bob's, and a new key of hers is new."""
    farm_a, farm_b, _ = books
    bobs = admin.execute(
        "SELECT id FROM farmops.ai_runs WHERE farm_id = %s AND request_id = 'k'", [farm_b]
    ).fetchone()[0]
    mine = reserve(app, farm_a, credits=5, request_id="k")
    assert mine["farm_id"] == farm_a
    assert mine["id"] != bobs
    with tenant(app, farm_a, "alice"):
        assert app.execute("SELECT count(*) FROM farmops.ai_runs WHERE id = %s", [bobs]).fetchone() == (0,)


def test_member_of_a_cannot_enter_b(app, books):
    _, farm_b, _ = books
    with raises_sqlstate("OF002"), tenant(app, farm_b, "alice"):
        pass


def test_suite_catches_a_permissive_or_missing_policy(app, admin, books):
    """The isolation assertion above is not vacuous: weaken RLS in this test's database and it fails."""
    farm_a, farm_b, _ = books
    assert_member_sees_only_own_farm(app, farm_a, farm_b)
    admin.execute("""DROP POLICY "members see their own farm's rows" ON farmops.ai_runs""")
    admin.execute("""CREATE POLICY "members see their own farm's rows" ON farmops.ai_runs
                     FOR SELECT TO farmops_app USING (true)""")
    with pytest.raises(AssertionError, match="ai_runs"):
        assert_member_sees_only_own_farm(app, farm_a, farm_b)
    # a dropped policy fails closed (zero rows), which the assertion also reports
    admin.execute("""DROP POLICY "members see their own farm's rows" ON farmops.ai_runs""")
    with pytest.raises(AssertionError, match="ai_runs shows set"):
        assert_member_sees_only_own_farm(app, farm_a, farm_b)
    # and row level security switched off on another table lets B's rows through
    admin.execute("""CREATE POLICY "members see their own farm's rows" ON farmops.ai_runs
                     FOR SELECT TO farmops_app USING (farm_id = (SELECT farmops.current_farm_id()))""")
    assert_member_sees_only_own_farm(app, farm_a, farm_b)
    admin.execute("ALTER TABLE farmops.credit_ledger DISABLE ROW LEVEL SECURITY")
    with pytest.raises(AssertionError, match="credit_ledger"):
        assert_member_sees_only_own_farm(app, farm_a, farm_b)
