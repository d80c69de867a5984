"""farmops.check_tenancy(): the tenant boundary read from the catalog, as the application role.

Each broken object is created by the package owner (or the superuser where only it can) in this
test's own database, and the application role must see exactly that problem reported. Known
offenders of today's schema are listed in tests/tenancy_support.py and tolerated, never required.
"""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest
from click.testing import CliRunner
from psycopg import sql
from psycopg.types.json import Jsonb
from support import APP_LOGIN
from support.tenancy import KNOWN_OFFENDERS, unexpected

import farmops_client
from farmops_client.cli import main

CHECK = "SELECT object_type, object_name, problem, detail FROM farmops.check_tenancy()"

#: A tenant table the package secures as it secures its own.
PROBE = (
    "CREATE TABLE farmops.probe (farm_id uuid NOT NULL REFERENCES farmops.farms (id), id uuid NOT NULL,"
    " code text, PRIMARY KEY (farm_id, id)); SELECT farmops.secure_tenant_table('farmops.probe')"
)
PROBE_DEFINER = (
    "CREATE FUNCTION farmops.probe_definer() RETURNS integer LANGUAGE sql SECURITY DEFINER AS 'SELECT 1'"
)


def reported(conn: psycopg.Connection) -> set[tuple[str, str, str]]:
    """Problems beyond the known offenders, as (object_type, object_name, problem)."""
    return unexpected(conn.execute(CHECK).fetchall())


def test_the_migrated_package_reports_only_known_offenders(app, owner):
    rows = app.execute(CHECK).fetchall()
    assert unexpected(rows) == set(), rows
    assert all(detail for *_, detail in rows)
    # Robust once the offenders are fixed: an index made here must be reported beside whatever is left.
    owner.execute("CREATE INDEX ai_runs_by_status_probe ON farmops.ai_runs (status)")
    assert reported(app) == {("index", "farmops.ai_runs_by_status_probe", "index_not_leading_with_farm_id")}


def test_the_app_needs_no_tenant_context_and_the_owner_sees_the_same(app, owner, admin):
    assert app.execute("SELECT farmops.current_farm_id()").fetchone() == (None,)
    as_app = app.execute(CHECK).fetchall()
    assert as_app == owner.execute(CHECK).fetchall() == admin.execute(CHECK).fetchall()
    assert app.execute("SELECT has_function_privilege('farmops.check_tenancy()', 'EXECUTE')").fetchone() == (
        True,
    )
    comment = app.execute("SELECT obj_description('farmops.check_tenancy()'::regprocedure)").fetchone()[0]
    assert comment and "no rows = healthy" in comment


BROKEN_AS_OWNER = {
    "a tenant table without FORCE": (
        [PROBE, "ALTER TABLE farmops.probe NO FORCE ROW LEVEL SECURITY"],
        {("table", "farmops.probe", "rls_not_forced")},
    ),
    "a tenant table without RLS": (
        [PROBE, "ALTER TABLE farmops.probe DISABLE ROW LEVEL SECURITY"],
        {("table", "farmops.probe", "rls_not_enabled")},
    ),
    "a tenant table never secured": (
        ["CREATE TABLE farmops.probe (farm_id uuid NOT NULL, id uuid NOT NULL, PRIMARY KEY (farm_id, id))"],
        {("table", "farmops.probe", p) for p in ("rls_not_enabled", "rls_not_forced", "no_member_policy")},
    ),
    "a tenant table without a member policy": (
        [PROBE, """DROP POLICY "members see their own farm's rows" ON farmops.probe"""],
        {("table", "farmops.probe", "no_member_policy")},
    ),
    "an app policy open to every farm": (
        [PROBE, "CREATE POLICY everyone ON farmops.probe FOR SELECT TO farmops_app USING (true)"],
        {("policy", "farmops.probe.everyone", "policy_not_scoped_to_the_farm")},
    ),
    "an app policy comparing the wrong column": (
        [
            PROBE,
            """DROP POLICY "members see their own farm's rows" ON farmops.probe""",
            "CREATE POLICY by_id ON farmops.probe FOR SELECT TO public"
            " USING (id = (SELECT farmops.current_farm_id()))",
        ],
        {
            ("table", "farmops.probe", "no_member_policy"),
            ("policy", "farmops.probe.by_id", "policy_not_scoped_to_the_farm"),
        },
    ),
    "a foreign key without farm_id": (
        [
            PROBE,
            "CREATE TABLE farmops.probe_child (farm_id uuid NOT NULL, id uuid NOT NULL, other_farm uuid,"
            " probe_id uuid, PRIMARY KEY (farm_id, id), CONSTRAINT probe_child_points_anywhere"
            " FOREIGN KEY (other_farm, probe_id) REFERENCES farmops.probe (farm_id, id))",
            "SELECT farmops.secure_tenant_table('farmops.probe_child')",
            "CREATE INDEX probe_child_probe_idx ON farmops.probe_child (farm_id, probe_id)",
        ],
        {("constraint", "farmops.probe_child.probe_child_points_anywhere", "foreign_key_without_farm_id")},
    ),
    "a unique key without farm_id": (
        [PROBE, "ALTER TABLE farmops.probe ADD CONSTRAINT probe_code_is_unique UNIQUE (code)"],
        {
            ("constraint", "farmops.probe.probe_code_is_unique", "key_without_farm_id"),
            ("index", "farmops.probe_code_is_unique", "index_not_leading_with_farm_id"),
        },
    ),
    "a partial unique index without farm_id": (
        [PROBE, "CREATE UNIQUE INDEX probe_one_open_code ON farmops.probe (code) WHERE code IS NOT NULL"],
        {
            ("index", "farmops.probe_one_open_code", "key_without_farm_id"),
            ("index", "farmops.probe_one_open_code", "index_not_leading_with_farm_id"),
        },
    ),
    "an index leading with another column": (
        # farm_id is in it, but second: the planner may still walk every farm's entries.
        [PROBE, "CREATE INDEX probe_by_code ON farmops.probe (code, farm_id)"],
        {("index", "farmops.probe_by_code", "index_not_leading_with_farm_id")},
    ),
    "a view without security_invoker": (
        [
            PROBE,
            "CREATE VIEW farmops.probe_view AS SELECT id FROM farmops.probe",
            "CREATE VIEW farmops.probe_invoker_view WITH (security_invoker = on)"
            " AS SELECT id FROM farmops.probe",
        ],
        {("view", "farmops.probe_view", "view_without_security_invoker")},
    ),
    "a materialized view": (
        [PROBE, "CREATE MATERIALIZED VIEW farmops.probe_snapshot AS SELECT id FROM farmops.probe"],
        {("materialized view", "farmops.probe_snapshot", "materialized_view_bypasses_rls")},
    ),
    "a SECURITY DEFINER function without search_path": (
        [PROBE_DEFINER],
        {("function", "farmops.probe_definer()", "security_definer_without_search_path")},
    ),
    "a function executable by PUBLIC": (
        [
            "CREATE FUNCTION farmops.probe_public() RETURNS integer LANGUAGE sql"
            " SET search_path = pg_catalog, pg_temp AS 'SELECT 1'",
            "GRANT EXECUTE ON FUNCTION farmops.probe_public() TO PUBLIC",
        ],
        {("function", "farmops.probe_public()", "executable_by_public")},
    ),
}


@pytest.mark.parametrize("case", list(BROKEN_AS_OWNER))
def test_each_broken_object_is_reported(case, owner, app):
    statements, expected = BROKEN_AS_OWNER[case]
    with owner.transaction():
        for statement in statements:
            owner.execute(statement)
    assert reported(app) == expected


def test_objects_owned_by_another_role_are_reported(admin, app):
    admin.execute("CREATE TABLE farmops.probe_by_admin (id integer)")
    admin.execute(
        "CREATE FUNCTION farmops.probe_by_admin() RETURNS integer LANGUAGE sql"
        " SET search_path = pg_catalog, pg_temp AS 'SELECT 1'"
    )
    assert reported(app) == {
        ("table", "farmops.probe_by_admin", "not_owned_by_package_owner"),
        ("function", "farmops.probe_by_admin()", "not_owned_by_package_owner"),
        # Created outside the owner's default privileges, so PUBLIC may run it: reported too.
        ("function", "farmops.probe_by_admin()", "executable_by_public"),
    }


# -- the application role and its logins (roles are cluster-wide: each is dropped afterwards) ------------
@pytest.fixture
def roles(admin):
    """Creates roles with a unique name: ``roles("LOGIN BYPASSRLS IN ROLE farmops_app")`` returns it."""
    made: list[str] = []

    def _make(options: str) -> str:
        name = f"probe_role_{uuid.uuid4().hex[:8]}"
        admin.execute(sql.SQL("CREATE ROLE {} " + options).format(sql.Identifier(name)))
        made.append(name)
        return name

    yield _make
    for name in reversed(made):
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def test_an_app_login_with_bypassrls_is_reported(roles, app):
    login = roles("LOGIN BYPASSRLS IN ROLE farmops_app")
    assert reported(app) == {("role", login, "app_role_bypasses_rls")}


def test_a_login_inheriting_the_app_role_through_a_group_is_checked(roles, app):
    group = roles("NOLOGIN BYPASSRLS IN ROLE farmops_app")  # BYPASSRLS is not inherited: a group is harmless
    login = roles(f"LOGIN BYPASSRLS IN ROLE {group}")
    assert reported(app) == {("role", login, "app_role_bypasses_rls")}


def test_a_superuser_or_owner_app_login_is_reported(roles, app):
    superuser = roles("LOGIN SUPERUSER IN ROLE farmops_app")
    owner_too = roles("LOGIN IN ROLE farmops_app, farmops_owner")
    assert reported(app) == {
        ("role", superuser, "app_role_is_superuser"),
        ("role", owner_too, "app_role_is_package_owner"),
    }


def test_the_app_role_itself_with_bypassrls_is_reported(admin, app):
    admin.execute("ALTER ROLE farmops_app BYPASSRLS")
    try:
        assert reported(app) == {("role", "farmops_app", "app_role_bypasses_rls")}
    finally:
        admin.execute("ALTER ROLE farmops_app NOBYPASSRLS")
    assert reported(app) == set()


def test_logins_outside_the_app_role_are_not_its_business(roles, app):
    roles("LOGIN BYPASSRLS")  # an operator's role: not the application's
    assert reported(app) == set()


# -- a product's own record tables ---------------------------------------------------------------------------
CROPS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"crates": {"type": "integer", "minimum": 1, "maximum": 10000}},
}


@pytest.fixture
def product_table(admin, owner):
    """A product's record table in its own schema, not registered yet."""
    admin.execute("CREATE SCHEMA product AUTHORIZATION farmops_owner")
    owner.execute(
        "CREATE TABLE product.crop_records (farm_id uuid NOT NULL REFERENCES farmops.farms (id),"
        " id uuid NOT NULL DEFAULT gen_random_uuid(), draft_id uuid, created_by text NOT NULL,"
        " crates integer NOT NULL, PRIMARY KEY (farm_id, id), UNIQUE (farm_id, draft_id),"
        " FOREIGN KEY (farm_id, draft_id) REFERENCES farmops.assistant_drafts (farm_id, id))"
    )
    return "product.crop_records"


def register(owner):
    owner.execute(
        "SELECT farmops.register_record_type(p_name => 'crop', p_class => 'routine',"
        " p_description => 'Crops',"
        " p_target_schema => 'product', p_target_table => 'crop_records', p_input_schema => %s)",
        [Jsonb(CROPS_SCHEMA)],
    )


def test_a_registered_product_table_secured_by_the_package_is_healthy(product_table, owner, app, admin):
    register(owner)
    assert reported(app) == set()
    forced = admin.execute(
        "SELECT relrowsecurity, relforcerowsecurity FROM pg_class"
        " WHERE oid = 'product.crop_records'::regclass"
    ).fetchone()
    assert forced == (True, True)


def test_a_broken_product_table_is_reported_once_registered(product_table, owner, app):
    owner.execute("CREATE INDEX crop_records_by_crates ON product.crop_records (crates)")
    assert reported(app) == set()  # not a record type yet: the product's own business
    register(owner)
    owner.execute("ALTER TABLE product.crop_records NO FORCE ROW LEVEL SECURITY")
    owner.execute(
        "ALTER TABLE product.crop_records ADD CONSTRAINT one_crop_record_per_draft UNIQUE (draft_id)"
    )
    assert reported(app) == {
        ("table", "product.crop_records", "rls_not_forced"),
        ("constraint", "product.crop_records.one_crop_record_per_draft", "key_without_farm_id"),
        ("index", "product.one_crop_record_per_draft", "index_not_leading_with_farm_id"),
        ("index", "product.crop_records_by_crates", "index_not_leading_with_farm_id"),
    }


# -- farmops check: the CLI runs it beside the invariants (CI runs this) ---------------------------------
def check_cli(db, *args):
    return CliRunner().invoke(
        main, ["check", *args, "--dsn", db.dsn()], env={"COLUMNS": "400"}, catch_exceptions=False
    )


def test_farmops_check_as_the_operator_runs_the_tenancy_checker(db, owner):
    """The operator path: a superuser DSN acting as farmops_owner, every farm's invariants."""
    result = check_cli(db, "--json")
    report = json.loads(result.output)
    assert report["invariants"] == []
    assert unexpected(report["tenancy"]) == set(), report["tenancy"]
    assert result.exit_code == (1 if report["tenancy"] else 0)
    owner.execute("CREATE INDEX ai_runs_by_status_probe ON farmops.ai_runs (status)")
    result = check_cli(db)
    assert result.exit_code == 1
    assert "invariants hold" in result.output and "ai_runs_by_status_probe" in result.output


def test_farmops_check_as_a_member_runs_it_too(db, farm):
    result = check_cli(db, "--json", "--farm", str(farm), "--user", "alice")
    report = json.loads(result.output)
    assert report["invariants"] == [] and unexpected(report["tenancy"]) == set()
    assert result.exit_code == (1 if report["tenancy"] else 0)


def test_the_client_returns_the_same_rows(db, app):
    with farmops_client.connect(db.dsn(APP_LOGIN)) as client:
        rows = client.check_tenancy()
    assert [(r["object_type"], r["object_name"], r["problem"], r["detail"]) for r in rows] == [
        tuple(r) for r in app.execute(CHECK).fetchall()
    ]
    assert {(r["object_type"], r["object_name"], r["problem"]) for r in rows} <= KNOWN_OFFENDERS
