"""The tenant context as the application role sees it (formerly the sql/tests scripts): it ends with
its transaction, and a session that writes the settings itself instead of calling begin_tenant()
gets no context: zero rows, never another farm."""

from __future__ import annotations

from conftest import create_farm


def test_a_forged_context_is_no_context(app):
    mallory = create_farm(app, "Forgery Farm", "mallory")
    victim = create_farm(app, "Victim Farm", "victim")
    with app.transaction():
        for name, value in [
            ("farmops.farm_id", str(victim)),
            ("farmops.user_id", "mallory"),
            ("farmops.member_role", "owner"),
            ("farmops.context_sig", "0" * 64),
        ]:
            app.execute("SELECT set_config(%s, %s, true)", [name, value])
        assert app.execute("SELECT farmops.current_farm_id()").fetchone() == (None,)
        assert app.execute("SELECT count(*) FROM farmops.farms").fetchone() == (0,)

        app.execute("SELECT farmops.begin_tenant(%s, 'mallory')", [mallory])
        assert app.execute("SELECT farmops.current_farm_id()").fetchone() == (mallory,)
        assert app.execute("SELECT count(*) FROM farmops.farms").fetchone() == (1,)

        # Re-pointing a valid context at another farm invalidates it.
        app.execute("SELECT set_config('farmops.farm_id', %s, true)", [str(victim)])
        assert app.execute("SELECT farmops.current_farm_id()").fetchone() == (None,)
        assert app.execute("SELECT count(*) FROM farmops.farms WHERE id = %s", [victim]).fetchone() == (0,)


def test_the_context_ends_with_its_transaction(app):
    farm = create_farm(app, "Pool Farm", "pooled-user")
    with app.transaction():
        app.execute("SELECT farmops.begin_tenant(%s, 'pooled-user')", [farm])
        assert app.execute("SELECT farmops.current_farm_id()").fetchone() == (farm,)
    assert app.execute("SELECT farmops.current_farm_id()").fetchone() == (None,)
    assert app.execute("SELECT coalesce(current_setting('farmops.farm_id', true), '')").fetchone() == ("",)
    assert app.execute("SELECT count(*) FROM farmops.farms").fetchone() == (0,)
