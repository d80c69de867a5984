"""Tenancy functions: create_farm, add_member, remove_member, begin_tenant, as the application role."""

from __future__ import annotations

import psycopg
import pytest
from support import create_farm, race, raises_sqlstate, sqlstates, tenant
from support.credits import add_member


def _members(admin, farm_id):
    return dict(
        admin.execute(
            "SELECT user_id, role FROM farmops.farm_members WHERE farm_id = %s", [farm_id]
        ).fetchall()
    )


def _farm_count(admin):
    return admin.execute("SELECT count(*) FROM farmops.farms").fetchone()[0]


def test_create_farm_makes_the_owner(app, admin):
    farm_id = create_farm(app, "  Lagos Layers  ", "ngozi")
    assert admin.execute("SELECT name, credit_balance, ai_autonomy FROM farmops.farms").fetchone() == (
        "Lagos Layers",
        0,
        "draft",
    )
    assert _members(admin, farm_id) == {"ngozi": "owner"}
    with tenant(app, farm_id, "ngozi"):
        assert app.execute("SELECT farmops.current_member_role()").fetchone() == ("owner",)


@pytest.mark.parametrize(
    ("name", "owner_id"),
    [
        (None, "a"),
        ("", "a"),
        ("   ", "a"),
        ("n" * 201, "a"),
        ("n" * 1_000_000, "a"),
        ("Farm", None),
        ("Farm", ""),
        ("Farm", "u" * 257),
        ("Farm", "tab\there"),
        ("Farm", "new\nline"),
        ("Farm", "erased:6f1c2b0e-1d2a-4c3b-9e8f-0a1b2c3d4e5f"),
        ("Farm", "ERASED:anything"),
    ],
)
def test_create_farm_bad_input(app, admin, name, owner_id):
    with raises_sqlstate("OF006"):
        create_farm(app, name, owner_id)
    assert _farm_count(admin) == 0


def test_create_farm_unicode_and_nul(app, admin):
    farm_id = create_farm(app, "Ферма 🐄 農場", "用户-1")
    assert _members(admin, farm_id) == {"用户-1": "owner"}
    with pytest.raises(psycopg.DataError):
        create_farm(app, "a\x00b", "x")
    with raises_sqlstate("22021"):
        app.execute("SELECT farmops.create_farm(convert_from('\\x6100'::bytea, 'UTF8'), 'x')")
    assert _farm_count(admin) == 1


def test_begin_tenant_bad_input(app, two_farms):
    farm_a, farm_b = two_farms
    cases = [
        ((None, "alice"), "OF006"),
        ((farm_a, None), "OF006"),
        ((farm_b, "alice"), "OF002"),  # B's farm from A's user
        ((farm_a, "nobody"), "OF002"),
        (("00000000-0000-0000-0000-000000000000", "alice"), "OF002"),  # same answer: no probing
        ((farm_a, "x" * 1_000_000), "OF002"),
        (("not-a-uuid", "alice"), "22P02"),
    ]
    for args, sqlstate in cases:
        with raises_sqlstate(sqlstate, args), app.transaction():
            app.execute("SELECT farmops.begin_tenant(%s, %s)", list(args))
        assert app.execute("SELECT farmops.current_farm_id()").fetchone() == (None,)


def test_context_is_transaction_local(app, farm):
    with tenant(app, farm, "alice"):
        assert app.execute("SELECT farmops.current_farm_id()").fetchone() == (farm,)
    assert app.execute("SELECT farmops.current_farm_id(), farmops.current_user_id()").fetchone() == (
        None,
        None,
    )
    assert app.execute("SELECT count(*) FROM farmops.farms").fetchone() == (0,)


def test_forged_context_is_ignored(app, farm):
    with app.transaction():
        app.execute("SELECT set_config('farmops.farm_id', %s, true)", [str(farm)])
        app.execute("SELECT set_config('farmops.user_id', 'alice', true)")
        app.execute("SELECT set_config('farmops.member_role', 'owner', true)")
        app.execute("SELECT set_config('farmops.context_sig', 'forged', true)")
        assert app.execute("SELECT count(*) FROM farmops.farms").fetchone() == (0,)
        assert app.execute("SELECT count(*) FROM farmops.farm_members").fetchone() == (0,)
        with raises_sqlstate("OF001"):
            app.execute("SELECT farmops.add_member(%s, 'mallory', 'owner')", [farm])


def test_a_signature_from_another_transaction_is_refused(app, farm):
    with tenant(app, farm, "alice"):
        sig = app.execute("SELECT current_setting('farmops.context_sig')").fetchone()[0]
    with app.transaction():
        for name, value in (("farm_id", str(farm)), ("user_id", "alice"), ("member_role", "owner")):
            app.execute("SELECT set_config(%s, %s, true)", [f"farmops.{name}", value])
        app.execute("SELECT set_config('farmops.context_sig', %s, true)", [sig])
        assert app.execute("SELECT farmops.current_farm_id()").fetchone() == (None,)


def test_add_member_roles_and_updates(app, admin, farm):
    for role in ("manager", "worker", "viewer", "agent", "owner"):
        add_member(app, farm, f"u-{role}", role)
    add_member(app, farm, "u-worker", "manager")  # change of role
    members = _members(admin, farm)
    assert members["u-worker"] == "manager"
    assert len(members) == 6


@pytest.mark.parametrize(
    ("user_id", "role"),
    [(None, "worker"), ("", "worker"), ("u" * 257, "worker"), ("u" * 1_000_000, "worker"),
     ("bad\x01", "worker"), ("erased:6f1c2b0e-1d2a-4c3b-9e8f-0a1b2c3d4e5f", "worker"), ("erased:", "viewer"),
     ("bob", None), ("bob", "admin"), ("bob", "OWNER"), ("bob", "")],
)  # fmt: skip
def test_add_member_bad_input(app, admin, farm, user_id, role):
    with raises_sqlstate("OF006"), tenant(app, farm, "alice"):
        app.execute("SELECT farmops.add_member(%s, %s, %s)", [farm, user_id, role])
    assert _members(admin, farm) == {"alice": "owner"}


@pytest.mark.parametrize("role", ["manager", "worker", "viewer", "agent"])
def test_only_owners_manage_members(app, admin, farm, role):
    add_member(app, farm, "m", role)
    for sql, args in (
        ("SELECT farmops.add_member(%s, 'eve', 'owner')", [farm]),
        ("SELECT farmops.remove_member(%s, 'alice')", [farm]),
    ):
        with raises_sqlstate("OF003"), tenant(app, farm, "m"):
            app.execute(sql, args)
    assert _members(admin, farm) == {"alice": "owner", "m": role}


def test_members_are_managed_only_in_their_own_farm(app, admin, two_farms):
    farm_a, farm_b = two_farms
    for sql in ("SELECT farmops.add_member(%s, 'eve', 'owner')", "SELECT farmops.remove_member(%s, 'bob')"):
        for target in (farm_b, None):
            with raises_sqlstate("OF002"), tenant(app, farm_a, "alice"):
                app.execute(sql, [target])
        with raises_sqlstate("OF001"):
            app.execute(sql, [farm_b])
    assert _members(admin, farm_b) == {"bob": "owner"}


def test_remove_member(app, admin, farm):
    add_member(app, farm, "w", "worker")
    with tenant(app, farm, "alice"):
        app.execute("SELECT farmops.remove_member(%s, 'w')", [farm])
    for ghost in ("ghost", None, "x" * 1_000_000):
        with raises_sqlstate("OF002"), tenant(app, farm, "alice"):
            app.execute("SELECT farmops.remove_member(%s, %s)", [farm, ghost])
    assert _members(admin, farm) == {"alice": "owner"}


def test_last_owner_cannot_leave_or_be_demoted(app, admin, farm):
    with raises_sqlstate("OF005"), tenant(app, farm, "alice"):
        app.execute("SELECT farmops.remove_member(%s, 'alice')", [farm])
    with raises_sqlstate("OF005"), tenant(app, farm, "alice"):
        app.execute("SELECT farmops.add_member(%s, 'alice', 'manager')", [farm])
    assert _members(admin, farm) == {"alice": "owner"}


def test_last_owner_under_a_race(connect, app, admin, farm):
    """Two owners remove each other at the same moment: one succeeds, the farm keeps an owner."""
    add_member(app, farm, "carol", "owner")

    def work(conn, i):
        me, other = ("alice", "carol") if i == 0 else ("carol", "alice")
        with tenant(conn, farm, me):
            conn.execute("SELECT farmops.remove_member(%s, %s)", [farm, other])

    results = race(connect, [lambda conn, i=i: work(conn, i) for i in range(2)])
    # The loser gets OF005, or OF002 if its begin_tenant ran after the winner committed.
    codes = sorted(sqlstates(results), key=str)
    assert codes in (sorted([None, "OF005"], key=str), sorted([None, "OF002"], key=str))
    assert list(_members(admin, farm).values()) == ["owner"]


@pytest.mark.slow
@pytest.mark.parametrize("round_", range(10))
def test_stress_owners_demoting_each_other(connect, app, admin, round_):
    farm = create_farm(app, f"Race {round_}", "o0")
    for i in range(1, 6):
        add_member(app, farm, f"o{i}", "owner", owner="o0")

    def work(conn, i):
        with tenant(conn, farm, f"o{i}"):
            conn.execute("SELECT farmops.add_member(%s, %s, 'worker')", [farm, f"o{(i + 1) % 6}"])

    results = race(connect, [lambda conn, i=i: work(conn, i) for i in range(6)])
    assert set(sqlstates(results)) <= {None, "OF005", "OF003"}
    assert "owner" in _members(admin, farm).values()
