"""credit_ledger is append-only for everyone, and check_invariants notices tampering."""

from __future__ import annotations

import pytest
from support import raises_sqlstate, tenant
from support.credits import counts, grant, invariants, reserve, settle


@pytest.fixture
def booked(app, farm):
    """A farm with a grant, a settled run and a live run."""
    grant(app, farm, 50)
    run = reserve(app, farm, credits=10)
    settle(app, farm, run["id"], credits_actual=4)
    reserve(app, farm, credits=3)
    return farm


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE farmops.credit_ledger SET delta = 1000 WHERE farm_id = %(f)s",
        "UPDATE farmops.credit_ledger SET reason = 'edited' WHERE farm_id = %(f)s",
        "DELETE FROM farmops.credit_ledger WHERE farm_id = %(f)s",
        "TRUNCATE farmops.credit_ledger",
    ],
)
def test_no_one_changes_the_ledger(connect, admin, booked, statement):
    before = counts(admin, booked)
    # the application role (in its own tenant context) and the package owner lack the privilege
    app = connect("app")
    with raises_sqlstate("42501"), tenant(app, booked, "alice"):
        app.execute(statement, {"f": booked})
    owner = connect("owner")
    with raises_sqlstate("42501"):
        owner.execute(statement, {"f": booked})
    # a superuser has every privilege: the trigger still refuses, also in replica mode
    with raises_sqlstate("OF107"):
        admin.execute(statement, {"f": booked})
    with raises_sqlstate("OF107"), admin.transaction():
        admin.execute("SET LOCAL session_replication_role = replica")
        admin.execute(statement, {"f": booked})
    assert counts(admin, booked) == before


def test_owner_regranting_itself_changes_nothing(owner, admin, booked):
    """Third layer: with the privilege back, RLS has no UPDATE/DELETE policy, so no row is reachable."""
    before = counts(admin, booked)
    with owner.transaction():
        owner.execute("GRANT UPDATE, DELETE ON farmops.credit_ledger TO farmops_owner")
        cur = owner.execute("DELETE FROM farmops.credit_ledger WHERE farm_id = %s", [booked])
        assert cur.rowcount == 0
        cur = owner.execute("UPDATE farmops.credit_ledger SET delta = 7 WHERE farm_id = %s", [booked])
        assert cur.rowcount == 0
        owner.execute("REVOKE UPDATE, DELETE ON farmops.credit_ledger FROM farmops_owner")
    assert counts(admin, booked) == before


def test_healthy_books_report_nothing(owner, booked):
    assert invariants(owner, booked) == []
    assert invariants(owner) == []


def test_invariants_catch_a_tampered_balance(owner, admin, booked):
    admin.execute("UPDATE farmops.farms SET credit_balance = credit_balance + 1 WHERE id = %s", [booked])
    found = {r["invariant"] for r in invariants(owner, booked)}
    assert found == {"balance_equals_ledger_sum"}


def test_invariants_catch_a_broken_chain_and_a_missing_leg(owner, admin, booked):
    # An 'adjust' row with a wrong balance_after, inserted behind the functions' backs.
    admin.execute(
        "INSERT INTO farmops.credit_ledger (farm_id, seq, kind, delta, balance_after, actor)"
        " VALUES (%s, 1000, 'adjust', 1, 999, 'intruder')",
        [booked],
    )
    found = {r["invariant"] for r in invariants(owner, booked)}
    assert "balance_after_chains" in found
    assert "balance_equals_ledger_sum" in found


def test_invariants_catch_a_run_without_its_refund(owner, admin, app, farm):
    grant(app, farm, 10)
    run = reserve(app, farm, credits=5)
    # Mark the run failed without refunding, with the trigger switched off by a superuser.
    with admin.transaction():
        admin.execute("ALTER TABLE farmops.ai_runs DISABLE TRIGGER ai_runs_move_forward_only")
        admin.execute(
            "UPDATE farmops.ai_runs SET status = 'failed', credits_actual = 0, settled_at = now()"
            " WHERE id = %s",
            [run["id"]],
        )
        admin.execute("ALTER TABLE farmops.ai_runs ENABLE ALWAYS TRIGGER ai_runs_move_forward_only")
    rows = invariants(owner, farm)
    assert [r["invariant"] for r in rows] == ["run_has_its_legs"]
    assert str(run["id"]) in rows[0]["detail"]


def test_app_checks_its_own_farm_only(app, two_farms):
    farm_a, farm_b = two_farms
    with tenant(app, farm_a, "alice"):
        assert app.execute("SELECT * FROM farmops.check_invariants()").fetchall() == []
        with raises_sqlstate("OF002"):
            app.execute("SELECT * FROM farmops.check_invariants(%s)", [farm_b])
    with raises_sqlstate("OF001"):
        app.execute("SELECT * FROM farmops.check_invariants()")


def test_app_sees_its_own_violations(app, admin, farm):
    grant(app, farm, 5)
    admin.execute("UPDATE farmops.farms SET credit_balance = 4 WHERE id = %s", [farm])
    with tenant(app, farm, "alice"):
        rows = app.execute("SELECT invariant FROM farmops.check_invariants(%s)", [farm]).fetchall()
    assert rows == [("balance_equals_ledger_sum",)]
