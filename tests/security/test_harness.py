"""The harness itself: the application role is really unprivileged and sees nothing without a tenant."""

from support import create_farm


def test_app_role_is_not_privileged(app):
    row = app.execute(
        "SELECT rolsuper, rolbypassrls, pg_has_role(current_user, 'farmops_owner', 'MEMBER') "
        "FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    assert row == (False, False, False)
    assert app.execute("SELECT pg_has_role(current_user, 'farmops_app', 'MEMBER')").fetchone()[0]


def test_objects_are_owned_by_the_owner_role(admin):
    foreign = admin.execute(
        """SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'farmops' AND pg_get_userbyid(c.relowner) <> 'farmops_owner'
           UNION ALL
           SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE n.nspname = 'farmops' AND pg_get_userbyid(p.proowner) <> 'farmops_owner'"""
    ).fetchall()
    assert foreign == []


def test_no_context_means_zero_rows(app, admin):
    create_farm(app)
    assert admin.execute("SELECT count(*) FROM farmops.farms").fetchone()[0] == 1
    assert app.execute("SELECT count(*) FROM farmops.farms").fetchone()[0] == 0
    assert app.execute("SELECT count(*) FROM farmops.farm_members").fetchone()[0] == 0
