"""Red-team tests of the tenant boundary, run as the application role: the signed context,
member-role checks of the SECURITY DEFINER functions, and covert channels (another farm's id
must look exactly like an id that does not exist, and change nothing)."""

from __future__ import annotations

import re
import uuid

import psycopg
import pytest
from psycopg.types.json import Jsonb
from support import message_of, raises_sqlstate, sqlstate_of, tenant
from support.knowledge import ingest, vec
from support.write_path import VALID, make_farm, make_run

UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _error(conn: psycopg.Connection, farm_id, user: str, sql: str, params) -> tuple[str, str]:
    """(SQLSTATE, message with every uuid masked) of ``sql`` run in the tenant context."""
    with raises_sqlstate() as excinfo, tenant(conn, farm_id, user):
        conn.execute(sql, params)
    return sqlstate_of(excinfo), UUID_RE.sub("<uuid>", message_of(excinfo.value))


def _snapshot(admin: psycopg.Connection, farm_id) -> dict[str, str]:
    """A digest of every row of every farmops table that belongs to ``farm_id``."""
    tables = [
        r[0]
        for r in admin.execute(
            """SELECT c.relname FROM pg_class AS c JOIN pg_attribute AS a ON a.attrelid = c.oid
               WHERE c.relnamespace = 'farmops'::regnamespace AND c.relkind = 'r' AND a.attname = 'farm_id'"""
        ).fetchall()
    ]
    digest = {
        t: admin.execute(
            f"SELECT md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) FROM farmops.{t} AS x"
            " WHERE x.farm_id = %s",
            [farm_id],
        ).fetchone()[0]
        for t in tables
    }
    digest["farms"] = admin.execute(
        "SELECT f::text FROM farmops.farms AS f WHERE f.id = %s", [farm_id]
    ).fetchone()[0]
    return digest


@pytest.fixture
def farms(app, admin):
    """Farm A and farm B (members of every role, a live agent run each) and B's private objects."""
    a = make_farm(app, admin, "Farm A", "alice")
    b = make_farm(app, admin, "Farm B", "bob")
    with tenant(app, b.id, "bot"):
        draft = app.execute(
            "SELECT draft_id FROM farmops.propose_write(p_run_id => %s, p_record_type => 'sale',"
            " p_payload => %s)",
            [b.run, Jsonb(VALID["sale"][0])],
        ).fetchone()[0]
        rec = app.execute("SELECT farmops.recommend(%s, 'Vaccinate', 'Pen 2 today')", [b.run]).fetchone()[0]
    with tenant(app, b.id, "bob"):
        memory = app.execute("SELECT farmops.remember('Pond 3 is the nursery')").fetchone()[0]
        doc = ingest(app, "B secret", "B secret content", ["b"], [vec(1)])
    return a, b, {"run": b.run, "draft": draft, "recommendation": rec, "memory": memory, "document": doc,
                  "farm": b.id}  # fmt: skip


#: (call, kind of id it takes) for every public function that takes an id of a farm's object.
ID_CALLS = [
    ("SELECT farmops.start_run(p_run_id => %s)", "run"),
    ("SELECT farmops.settle_run(p_run_id => %s, p_status => 'failed')", "run"),
    ('SELECT * FROM farmops.propose_write(%s, \'note\', \'{"title": "t", "body": "b"}\')', "run"),
    ("SELECT farmops.recommend(%s, 'title', 'body')", "run"),
    ("SELECT * FROM farmops.evaluate_run(%s, 'output')", "run"),
    ("SELECT farmops.give_feedback(%s, true)", "run"),
    ("SELECT farmops.remember('a fact', %s)", "run"),
    ("SELECT * FROM farmops.search_for_run(%s, " + f"'{vec(1)}'::public.vector)", "run"),
    ("SELECT farmops.confirm_draft(%s)", "draft"),
    ("SELECT farmops.discard_draft(%s)", "draft"),
    ("SELECT farmops.decide_recommendation(%s, true)", "recommendation"),
    ("SELECT farmops.forget(%s)", "memory"),
    ("SELECT farmops.delete_document(%s)", "document"),
    ("SELECT farmops.grant_credits(%s, 5, 'steal')", "farm"),
    ("SELECT farmops.add_member(%s, 'mallory', 'owner')", "farm"),
    ("SELECT farmops.remove_member(%s, 'bob')", "farm"),
    ("SELECT * FROM farmops.check_invariants(%s)", "farm"),
]


@pytest.mark.parametrize(("sql", "kind"), ID_CALLS, ids=[c[0].split("(")[0].split(".")[-1] for c in ID_CALLS])
def test_another_farms_id_looks_like_a_random_one_and_changes_nothing(app, admin, farms, sql, kind):
    a, b, ids = farms
    before = _snapshot(admin, b.id)
    foreign = _error(app, a.id, "alice", sql, [ids[kind]])
    unknown = _error(app, a.id, "alice", sql, [uuid.uuid4()])
    assert foreign == unknown
    assert foreign[0].startswith("OF")
    assert _snapshot(admin, b.id) == before


def test_begin_tenant_for_another_farm_looks_like_an_unknown_farm(app, farms):
    _, b, _ = farms
    messages = []
    for farm_id in (b.id, uuid.uuid4()):
        with raises_sqlstate() as excinfo, app.transaction():
            app.execute("SELECT farmops.begin_tenant(%s, 'alice')", [farm_id])
        messages.append((sqlstate_of(excinfo), UUID_RE.sub("<uuid>", message_of(excinfo.value))))
    assert messages[0] == messages[1] == ("OF002", "user is not a member of farm <uuid>")


def test_a_viewer_cannot_write_retrieval_lineage(app, admin, farms):
    """Viewers are read-only: search_for_run writes ai_run_retrievals, so they use search()."""
    a, _, _ = farms
    with tenant(app, a.id, "alice"):
        ingest(app, "A", "a", ["a"], [vec(1)])
    assert (
        _error(
            app, a.id, "vic", "SELECT * FROM farmops.search_for_run(%s, %s::public.vector)", [a.run, vec(1)]
        )[0]
        == "OF003"
    )
    assert admin.execute("SELECT count(*) FROM farmops.ai_run_retrievals").fetchone() == (0,)
    with tenant(app, a.id, "vic"):
        assert len(app.execute("SELECT * FROM farmops.search(%s::public.vector)", [vec(1)]).fetchall()) == 1


# --- the signed tenant context ------------------------------------------------------------


def test_a_context_rolled_back_to_a_savepoint_is_gone(app, farms):
    a, _, _ = farms
    with app.transaction():
        with app.transaction():  # a savepoint
            app.execute("SELECT farmops.begin_tenant(%s, 'alice')", [a.id])
            assert app.execute("SELECT farmops.current_farm_id()").fetchone() == (a.id,)
            raise psycopg.Rollback()  # ROLLBACK TO SAVEPOINT
        assert app.execute("SELECT farmops.current_farm_id()").fetchone() == (None,)
        assert app.execute("SELECT count(*) FROM farmops.farms").fetchone() == (0,)


def test_begin_tenant_twice_switches_to_the_second_farm_only(app, admin, farms):
    """A user of two farms may switch in one transaction; the context is then the second farm
    (with its own role), never both: rows and writes follow the latest begin_tenant."""
    a, b, _ = farms
    for farm_id, role in ((a.id, "owner"), (b.id, "viewer")):
        admin.execute(
            "INSERT INTO farmops.farm_members (farm_id, user_id, role) VALUES (%s, 'zoe', %s)",
            [farm_id, role],
        )
    with app.transaction():
        assert app.execute("SELECT farmops.begin_tenant(%s, 'zoe')", [a.id]).fetchone() == ("owner",)
        assert app.execute("SELECT farmops.begin_tenant(%s, 'zoe')", [b.id]).fetchone() == ("viewer",)
        assert app.execute("SELECT array_agg(id) FROM farmops.farms").fetchone() == ([b.id],)
        with raises_sqlstate("OF003"), app.transaction():
            app.execute("SELECT farmops.grant_credits(%s, 5, 'owner of A, viewer of B')", [b.id])
        with raises_sqlstate("OF003"), app.transaction():
            app.execute("SELECT farmops.grant_credits(%s, 5, 'A from B context')", [a.id])


def test_a_function_set_clause_or_a_session_setting_cannot_forge_a_context(app, farms):
    a, b, _ = farms
    with tenant(app, a.id, "alice"):
        sig = app.execute("SELECT current_setting('farmops.context_sig')").fetchone()[0]
        # A temporary function whose SET clause re-points the (signed) context at farm B: PostgreSQL
        # refuses a placeholder in a non-superuser's SET clause; were it allowed, the signature
        # would no longer match and the function would see nothing.
        try:
            with app.transaction():
                app.execute(
                    f"""CREATE FUNCTION pg_temp.peek() RETURNS bigint LANGUAGE sql
                        SET farmops.farm_id = '{b.id}' AS 'SELECT count(*) FROM farmops.farms'"""
                )
                assert app.execute("SELECT pg_temp.peek()").fetchone() == (0,)
        except psycopg.errors.InsufficientPrivilege:
            pass
        assert app.execute("SELECT farmops.current_farm_id()").fetchone() == (a.id,)
    # Session-level (not transaction-local) settings with a once-valid signature: no context.
    for name, value in (
        ("farm_id", str(a.id)),
        ("user_id", "alice"),
        ("member_role", "owner"),
        ("context_sig", sig),
    ):
        app.execute("SELECT set_config(%s, %s, false)", [f"farmops.{name}", value])
    assert app.execute("SELECT farmops.current_farm_id(), count(*) FROM farmops.farms").fetchone() == (
        None,
        0,
    )


def test_require_tenant_refuses_a_context_without_a_role(owner, farms):
    """Fail closed: a signed context whose role is NULL must pass no role check. Only the package
    owner can sign one (_context_signature is private), which is how this test builds it."""
    a, _, _ = farms
    with owner.transaction():
        owner.execute("SELECT set_config('farmops.farm_id', %s, true)", [str(a.id)])
        owner.execute("SELECT set_config('farmops.user_id', 'vic', true)")
        owner.execute(
            "SELECT set_config('farmops.context_sig', farmops._context_signature(%s, 'vic', NULL), true)",
            [str(a.id)],
        )
        assert owner.execute("SELECT farm_id, member_role FROM farmops.tenant_context()").fetchone() == (
            a.id,
            None,
        )
        with raises_sqlstate("OF003"), owner.transaction():
            owner.execute("SELECT farmops.require_capability('manage_members')")


def test_the_signature_fields_cannot_run_into_each_other(owner, farms):
    """(user 'vic|viewer', no role) must not sign like (user 'vic', role 'viewer')."""
    a, _, _ = farms
    same = owner.execute(
        "SELECT farmops._context_signature(%(f)s, 'vic', 'viewer')"
        " = farmops._context_signature(%(f)s, 'vic|viewer', NULL),"
        " farmops._context_signature(%(f)s, 'vic', 'viewer')"
        " = farmops._context_signature(%(f)s, 'vic', 'viewer')",
        {"f": str(a.id)},
    ).fetchone()
    assert same == (False, True)


def test_a_removed_member_keeps_no_context_in_a_later_transaction(app, farms):
    a, _, _ = farms
    with tenant(app, a.id, "alice"):
        app.execute("SELECT farmops.remove_member(%s, 'wes')", [a.id])
    with raises_sqlstate("OF002"), app.transaction():
        app.execute("SELECT farmops.begin_tenant(%s, 'wes')", [a.id])


def test_lineage_of_an_expired_run_is_refused_for_every_role(app, admin, farms):
    a, _, _ = farms
    run = make_run(admin, a.id, status="expired")
    for user in ("alice", "bot"):
        assert (
            _error(
                app, a.id, user, "SELECT * FROM farmops.search_for_run(%s, %s::public.vector)", [run, vec(1)]
            )[0]
            == "OF205"
        )


def test_the_context_is_verified_on_every_use_never_cached(app, admin, farms):
    """No verified-context cache (issue 11 mend): a session can write every place one could be kept
    (settings), so each use re-checks the signature. After many verified uses in one transaction, a
    setting rewritten mid-transaction, or mid-statement, is caught at its next use."""
    a, b, _ = farms
    admin.execute(
        "INSERT INTO farmops.farm_members (farm_id, user_id, role) VALUES (%s, 'vera', 'viewer')", [a.id]
    )
    with app.transaction():
        app.execute("SELECT farmops.begin_tenant(%s, 'vera')", [a.id])
        for _ in range(25):  # warm: the same verified context, used over and over
            assert app.execute(
                "SELECT farmops.current_farm_id(), count(*) FROM farmops.farms"
            ).fetchone() == (
                a.id,
                1,
            )
        for name, forged in (("farm_id", str(b.id)), ("member_role", "owner"), ("user_id", "alice")):
            with app.transaction():  # a savepoint: the forged setting goes with it
                app.execute("SELECT set_config(%s, %s, true)", [f"farmops.{name}", forged])
                assert app.execute(
                    "SELECT farmops.current_farm_id(), farmops.current_member_role(), count(*)"
                    " FROM farmops.farms"
                ).fetchone() == (None, None, 0)
                with raises_sqlstate("OF001"), app.transaction():
                    app.execute("SELECT farmops.require_capability('manage_trust')")
                raise psycopg.Rollback()
        # Mid-statement: the role rewritten between two uses of the context in one SELECT.
        got = app.execute(
            "SELECT farmops.current_member_role() AS before,"
            " set_config('farmops.member_role', 'owner', true) AS forged,"
            " farmops.current_member_role() AS after"
        ).fetchone()
        assert (got[0], got[2]) == ("viewer", None)
        with raises_sqlstate("OF001"), app.transaction():
            app.execute("SELECT farmops.require_capability('read')")
