"""Installations sharing a cluster, and the maintenance jobs (issue 12, items 4 and 11).

Roles are cluster-wide: a login of one farmops database is farmops_app in every other farmops
database of the cluster. Only the logins of farmops.app_logins act in an installation (OF004
otherwise), CONNECT follows that list, and the cross-farm expiry jobs are farmops_maintainer's.
Proven as the application and maintainer logins; two real databases in one cluster.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from support import APP_LOGIN, MAINTAINER_LOGIN, PG_HOST, PG_PORT, create_farm, sqlstate_of, tenant

from farmops_client import migrate as migrations
from farmops_client import tenancy
from farmops_client.errors import InvalidArgument, LoginNotAllowedHere
from farmops_client.tenancy import allow_login, create_app_login, create_maintainer_login, disallow_login

BEFORE_RESTRUCTURE = Path(__file__).resolve().parents[1] / "install" / "fixtures" / "sql_before_restructure"
MAINTENANCE = {
    "farmops.expire_drafts()",
    "farmops.expire_reservations(integer)",
    "farmops.seal_audit()",
    "farmops.seal_audit(integer)",
}
# Every entry point that needs no tenant context, called with harmless arguments.
ENTRY_POINTS = {
    "begin_tenant": "SELECT farmops.begin_tenant(%s, 'alice')",
    "begin_tenant_verified": "SELECT farmops.begin_tenant_verified('e30.e30.' || %s::text)",
    "create_farm": "SELECT farmops.create_farm('Intruder farm', %s::text)",
    # The fused reservation opens no context: it checks the login itself.
    "reserve_run": "SELECT farmops.reserve_run(%s, 'victim', 'chat', 'm', p_credits => 1)",
    "reserve_screened_run": "SELECT farmops.reserve_screened_run(%s, 'victim', 'hi', 'chat', 'm', 1, 1)",
}


def connect_as(dbname: str, user: str) -> psycopg.Connection:
    return psycopg.connect(host=PG_HOST, port=PG_PORT, dbname=dbname, user=user, autocommit=True)


def superuser(dbname: str) -> psycopg.Connection:
    return connect_as(dbname, "postgres")


@pytest.fixture
def roles() -> Iterator:
    """Factory of uniquely named roles (cluster-wide, so dropped at teardown with their privileges)."""
    made: list[str] = []

    def _name(prefix: str) -> str:
        made.append(f"{prefix}_{uuid.uuid4().hex[:8]}")
        return made[-1]

    yield _name
    with superuser("postgres") as conn:
        for name in made:
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [name]).fetchone():
                # DROP OWNED also revokes the role's privileges on shared objects (CONNECT on databases).
                conn.execute(sql.SQL("DROP OWNED BY {0}; DROP ROLE {0}").format(sql.Identifier(name)))


@pytest.fixture
def installation(roles, empty_db) -> Iterator:
    """Factory of migrated farmops databases (names). It asks for `roles` first, so the databases are
    dropped (empty_db) before the roles that hold privileges on them."""
    made: list[str] = []

    def _make(root: Path | None = None) -> str:
        dbname = psycopg.conninfo.conninfo_to_dict(empty_db())["dbname"]
        with superuser(dbname) as conn:
            migrations.migrate(conn, root=root)
        made.append(dbname)
        return dbname

    yield _make
    with superuser("postgres") as conn:
        for dbname in made:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


def public_may_connect(dbname: str) -> bool:
    with superuser(dbname) as conn:
        return conn.execute(
            "SELECT has_database_privilege('public', current_database(), 'CONNECT')"
        ).fetchone()[0]


# -- 4. the maintenance jobs ---------------------------------------------------------------------------------
def test_only_the_maintainer_runs_the_cross_farm_jobs(app, maintainer, two_farms):
    rows = maintainer.execute(
        "SELECT p.oid::regprocedure::text FROM pg_proc AS p "
        "WHERE p.pronamespace = 'farmops'::regnamespace AND has_function_privilege(p.oid, 'EXECUTE')"
    ).fetchall()
    assert {r[0] for r in rows} == MAINTENANCE
    for job in ("expire_reservations()", "expire_drafts()"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.execute(f"SELECT farmops.{job}")
        with pytest.raises(psycopg.errors.InsufficientPrivilege), tenant(app, two_farms[0], "alice"):
            app.execute(f"SELECT farmops.{job}")
        assert maintainer.execute(f"SELECT farmops.{job}").fetchone()[0] == 0
    # The maintainer reads no table and opens no tenant context.
    for statement in ("SELECT count(*) FROM farmops.farms", "SELECT farmops.begin_tenant(%s, 'alice')"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            maintainer.execute(statement, [two_farms[0]] if "%s" in statement else None)


def test_the_cli_and_client_run_the_jobs_as_the_maintainer(db, roles, admin):
    from click.testing import CliRunner

    from farmops_client.cli import main

    runner = CliRunner()
    result = runner.invoke(main, ["maintenance", "expire", "--json", "--dsn", db.dsn(MAINTAINER_LOGIN)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == '{"reservations": 0, "drafts": 0}'
    # The application login may not SET ROLE farmops_maintainer: refused, exit 1.
    result = runner.invoke(main, ["maintenance", "expire", "--dsn", db.dsn(APP_LOGIN)])
    assert result.exit_code == 1 and "may not act as farmops_maintainer" in result.output
    # A maintainer login of another installation is refused by the list (OF004), even as a member.
    stranger = roles("other_maint")
    admin.execute(f'CREATE ROLE "{stranger}" LOGIN IN ROLE farmops_maintainer')
    result = runner.invoke(main, ["maintenance", "expire", "--dsn", db.dsn(stranger)])
    assert result.exit_code == 1 and "[OF004]" in result.output


# -- 11. the allow-list -------------------------------------------------------------------------------------
def test_a_farmops_app_member_not_listed_here_is_refused_at_every_entry_point(db, roles, admin, app, farm):
    stranger = roles("other_app")
    admin.execute(f'CREATE ROLE "{stranger}" LOGIN IN ROLE farmops_app')  # as another installation made it
    with db.connect("app") as own, tenant(own, farm, "alice"):  # this installation's own login: fine
        assert own.execute("SELECT count(*) FROM farmops.farms").fetchone()[0] == 1
    with psycopg.connect(db.dsn(stranger), autocommit=True) as conn:
        for name, statement in ENTRY_POINTS.items():
            with pytest.raises(psycopg.Error) as excinfo:
                conn.execute(statement, [str(farm)])
            assert sqlstate_of(excinfo) == "OF004", name
        assert conn.execute("SELECT count(*) FROM farmops.farms").fetchone()[0] == 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM farmops.app_logins")
    assert admin.execute("SELECT count(*) FROM farmops.farms").fetchone()[0] == 1  # nothing was created


def test_the_list_is_the_package_owners(app, owner, admin, roles):
    name = roles("svc")
    admin.execute(f'CREATE ROLE "{name}" LOGIN IN ROLE farmops_app')
    for function in ("allow_login", "disallow_login"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.execute(f"SELECT farmops.{function}(%s)", [APP_LOGIN])
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        app.execute("SELECT * FROM farmops.app_logins")
    assert allow_login(owner, name) is True
    assert allow_login(owner, name) is False
    listed = {r[0] for r in owner.execute("SELECT login FROM farmops.app_logins")}
    assert listed == {APP_LOGIN, MAINTAINER_LOGIN, name}
    assert disallow_login(owner, name) is True
    assert disallow_login(owner, name) is False


@pytest.mark.parametrize(
    "bad",
    [
        None,
        "",
        "x" * 64,  # a role name has at most 63 bytes: never truncated into another role's
        "é" * 32,  # 64 bytes
        "no_such_role",
        "farmops_test_app'; DROP TABLE farmops.farms; --",
        'farmops_test_app" CASCADE; --',
        "postgres",  # a superuser: not an application login
    ],
)
def test_bad_login_names_are_refused_with_of006(owner, admin, bad):
    with pytest.raises(InvalidArgument):
        allow_login(owner, bad)
    if bad is None or bad == "" or len(bad.encode()) > 63:
        with pytest.raises(InvalidArgument):
            disallow_login(owner, bad)
    assert admin.execute("SELECT count(*) FROM farmops.app_logins").fetchone()[0] == 2
    assert admin.execute("SELECT to_regclass('farmops.farms') IS NOT NULL").fetchone()[0]


def test_a_role_that_bypasses_rls_is_refused(owner, admin, roles):
    name = roles("bypass")
    admin.execute(f'CREATE ROLE "{name}" LOGIN BYPASSRLS IN ROLE farmops_app')
    with pytest.raises(InvalidArgument, match="bypasses row level security"):
        allow_login(owner, name)


def test_a_login_whose_name_needs_quoting_works(db, admin, roles):
    name = roles("""o'brien "svc" ;--""")
    assert create_app_login(admin, name) is True
    with psycopg.connect(host=db.host, port=db.port, dbname=db.dbname, user=name, autocommit=True) as conn:
        farm_id = create_farm(conn, "Quoted", "alice")
        with tenant(conn, farm_id, "alice"):
            assert conn.execute("SELECT name FROM farmops.farms").fetchone()[0] == "Quoted"
    assert disallow_login(admin, name) is True
    with psycopg.connect(host=db.host, port=db.port, dbname=db.dbname, user=name, autocommit=True) as conn:
        with pytest.raises(LoginNotAllowedHere):  # the client's typed exception
            tenancy.create_farm(conn, "Again", "alice")
        with pytest.raises(psycopg.Error) as excinfo:
            conn.execute("SELECT farmops.begin_tenant(%s, 'alice')", [farm_id])
        assert sqlstate_of(excinfo) == "OF004"


# -- two databases in one cluster ---------------------------------------------------------------------------
def test_a_login_of_one_installation_cannot_act_in_another(installation, roles):
    one, two = installation(), installation()
    svc_one, svc_two, maint_one = roles("svc_one"), roles("svc_two"), roles("maint_one")
    with superuser(one) as conn:
        create_app_login(conn, svc_one)
        create_maintainer_login(conn, maint_one)
    with superuser(two) as conn:
        create_app_login(conn, svc_two)
    assert not public_may_connect(one) and not public_may_connect(two)

    # Each installation's own login works at home.
    with connect_as(two, svc_two) as conn:
        victim = create_farm(conn, "Victim farm", "victim")
        with tenant(conn, victim, "victim"):
            conn.execute("SELECT farmops.grant_credits(%s, 500, 'seed')", [victim])
    with connect_as(one, svc_one) as conn:
        create_farm(conn, "Home farm", "alice")

    # Installation one's logins cannot even connect to installation two (CONNECT).
    for login in (svc_one, maint_one):
        with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
            connect_as(two, login)

    # Defence in depth: with CONNECT granted by mistake, the list still refuses them.
    with superuser(two) as conn:
        conn.execute(f'GRANT CONNECT ON DATABASE "{two}" TO PUBLIC')
    with connect_as(two, svc_one) as conn:
        for name, statement in ENTRY_POINTS.items():
            with pytest.raises(psycopg.Error) as exc:
                conn.execute(statement, [str(victim)])
            assert sqlstate_of(exc) == "OF004", name
        assert conn.execute("SELECT count(*) FROM farmops.farms").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM farmops.credit_ledger").fetchone()[0] == 0
    with connect_as(two, maint_one) as conn:
        with pytest.raises(psycopg.Error) as exc:
            conn.execute("SELECT farmops.expire_reservations()")
        assert sqlstate_of(exc) == "OF004"
    with superuser(two) as conn:
        assert conn.execute("SELECT count(*) FROM farmops.farms").fetchone()[0] == 1  # nothing created

    # Installation two's own login is unaffected; disallowed, it loses CONNECT and the context.
    with connect_as(two, svc_two) as conn, tenant(conn, victim, "victim"):
        assert conn.execute("SELECT credit_balance FROM farmops.farms").fetchone()[0] == 500
    with superuser(two) as conn:
        conn.execute(f'REVOKE CONNECT ON DATABASE "{two}" FROM PUBLIC')
        conn.execute("SET ROLE farmops_owner")
        assert disallow_login(conn, svc_two) is True
    with pytest.raises(psycopg.OperationalError, match="permission denied for database"):
        connect_as(two, svc_two)


def test_an_upgrade_keeps_the_existing_logins_working(installation, roles):
    """An installation from before the list (sql as before the restructure) with a running service."""
    old = installation(BEFORE_RESTRUCTURE)
    svc, idle, other = roles("svc_old"), roles("svc_nologin"), roles("other_service")
    with superuser(old) as conn:
        conn.execute(f'CREATE ROLE "{svc}" LOGIN IN ROLE farmops_app')  # the README's old recipe
        conn.execute(f'CREATE ROLE "{idle}" NOLOGIN IN ROLE farmops_app')
        conn.execute(f'CREATE ROLE "{other}" LOGIN')  # another service of this database, not farmops
    with connect_as(old, svc) as conn:
        farm_id = create_farm(conn, "Before upgrade", "alice")
    assert public_may_connect(old)

    with connect_as(old, other) as running, superuser(old) as conn:  # the other service stays connected
        migrations.migrate(conn)
        assert running.execute("SELECT 1").fetchone()[0] == 1
        listed = {r[0] for r in conn.execute("SELECT login FROM farmops.app_logins")}
    assert svc in listed and idle not in listed and other not in listed
    assert not public_may_connect(old)
    with connect_as(old, svc) as conn, tenant(conn, farm_id, "alice"):
        assert conn.execute("SELECT name FROM farmops.farms").fetchone()[0] == "Before upgrade"
    with connect_as(old, other) as conn:  # it had a session during the upgrade: kept its CONNECT
        assert conn.execute("SELECT 1").fetchone()[0] == 1
    # Migrating again changes nothing; a fresh install lists nobody.
    with superuser(old) as conn:
        migrations.migrate(conn)
        assert {r[0] for r in conn.execute("SELECT login FROM farmops.app_logins")} == listed
    with superuser(installation()) as conn:
        assert conn.execute("SELECT count(*) FROM farmops.app_logins").fetchone()[0] == 0
