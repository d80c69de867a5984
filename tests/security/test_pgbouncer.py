"""farmops behind a real PgBouncer in transaction mode, as the application login role.

Two tenants interleave over two server connections: no transaction sees a row of the other
tenant or starts with a context; the library's pool works through PgBouncer (no server-side
prepared statements) and resets every connection it gets back.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import subprocess
import sys

import psycopg
import pytest
from support import APP_LOGIN, REPO, concurrently, create_farm, raises_sqlstate
from support.credits import grant, invariants
from support.pgbouncer import running

import farmops_client

THREADS, ROUNDS = 8, 6
USERS = ("alice", "bob")
# Every row a tenant can read, by the farm it belongs to.
VISIBLE_FARMS = """SELECT id FROM farmops.farms
    UNION ALL SELECT farm_id FROM farmops.ai_runs
    UNION ALL SELECT farm_id FROM farmops.credit_ledger"""
SERVER_STATE = """SELECT pg_backend_pid() AS pid, farmops.current_farm_id() AS farm,
    (SELECT count(*) FROM farmops.farms) AS farms_visible"""


@pytest.fixture
def start_bouncer(db):
    """Factory: a PgBouncer (transaction mode) in front of this test's server, stopped at teardown."""
    with contextlib.ExitStack() as stack:

        def _start(pool_size: int = 2):
            return stack.enter_context(
                running(db.host, db.port, [APP_LOGIN, "postgres"], pool_size=pool_size, basedir=REPO / ".tmp")
            )

        yield _start


@pytest.fixture
def bouncer(start_bouncer):
    """PgBouncer with at most two server connections per database and user."""
    return start_bouncer()


@pytest.fixture
def farms(app) -> dict[str, object]:
    """Farm A of alice and farm B of bob, 1000 credits each."""
    made = {"alice": create_farm(app, "Farm A", "alice"), "bob": create_farm(app, "Farm B", "bob")}
    for user, farm in made.items():
        grant(app, farm, 1000, user=user)
    return made


def in_parallel(work) -> list:
    """``work(i)`` in THREADS threads released together; a failed assertion in any thread fails the test."""
    results = concurrently([lambda i=i: work(i) for i in range(THREADS)])
    for result in results:
        if isinstance(result, Exception):
            raise result
    return list(itertools.chain.from_iterable(results))


def assert_interleaved(seen: list[tuple[int, str]]) -> None:
    """Two server connections served every transaction, and tenants alternated on each of them."""
    by_pid: dict[int, set[str]] = {}
    for pid, user in seen:
        by_pid.setdefault(pid, set()).add(user)
    assert len(seen) == THREADS * ROUNDS
    assert len(by_pid) <= 2, by_pid
    assert any(users == set(USERS) for users in by_pid.values()), by_pid


def test_two_tenants_interleaved_over_two_server_connections(db, app, owner, farms, bouncer):
    dsn = bouncer.dsn(APP_LOGIN, db.dbname)

    def work(i: int) -> list[tuple[int, str]]:
        seen = []
        with psycopg.connect(dsn, autocommit=True, prepare_threshold=None) as conn:
            for r in range(ROUNDS):
                user = USERS[(i + r) % 2]
                with conn.transaction():
                    pid, ctx, visible = conn.execute(SERVER_STATE).fetchone()
                    assert (ctx, visible) == (None, 0), "a tenant context survived its transaction"
                    conn.execute("SELECT farmops.begin_tenant(%s, %s)", [farms[user], user])
                    assert {row[0] for row in conn.execute(VISIBLE_FARMS)} == {farms[user]}
                    run = conn.execute(
                        "SELECT id FROM farmops.reserve_credits(p_feature => 'chat', p_model => 'm', "
                        "p_credits => 3)"
                    ).fetchone()[0]
                    conn.execute(
                        "SELECT farmops.settle_run(p_run_id => %s, p_status => 'succeeded', "
                        "p_credits_actual => 1)",
                        [run],
                    )
                    assert {row[0] for row in conn.execute(VISIBLE_FARMS)} == {farms[user]}
                seen.append((pid, user))
                # A transaction that fails after begin_tenant: rolled back, its context gone too.
                with raises_sqlstate("OF101"), conn.transaction():
                    conn.execute("SELECT farmops.begin_tenant(%s, %s)", [farms[user], user])
                    conn.execute("SELECT farmops.reserve_credits('chat', 'm', 5000)")
        return seen

    assert_interleaved(in_parallel(work))
    for user, farm in farms.items():
        runs = THREADS * ROUNDS // 2
        assert (
            app.execute("SELECT count(*) FROM farmops.ai_runs r WHERE r.farm_id = %s", [farm]).fetchone()[0]
            == 0
        )  # no context: zero rows
        row = owner.execute(
            "SELECT credit_balance, (SELECT count(*) FROM farmops.ai_runs WHERE farm_id = f.id) "
            "FROM farmops.farms f WHERE id = %s",
            [farm],
        ).fetchone()
        assert row == (1000 - runs, runs), user
    assert invariants(owner) == []


@pytest.fixture
def client_through(db):
    """Factory: a farmops_client pool connecting through ``bouncer``, closed at teardown."""
    with contextlib.ExitStack() as stack:

        def _connect(bouncer, **kwargs):
            return stack.enter_context(farmops_client.connect(bouncer.dsn(APP_LOGIN, db.dbname), **kwargs))

        yield _connect


def test_client_pool_interleaves_tenants_through_pgbouncer(owner, farms, bouncer, client_through):
    client = client_through(bouncer, min_size=THREADS, max_size=THREADS)

    def work(i: int) -> list[tuple[int, str]]:
        seen = []
        for r in range(ROUNDS):
            user = USERS[(i + r) % 2]
            with client.connection() as conn:  # a transaction of its own, between two sessions
                assert conn.prepare_threshold is None
                assert conn.execute(SERVER_STATE).fetchone()[1:] == (None, 0)
            with client.tenant(farms[user], user) as t:
                state = t.execute(SERVER_STATE).fetchone()
                assert (state["farm"], state["farms_visible"]) == (farms[user], 1)
                assert {row["id"] for row in t.execute(VISIBLE_FARMS)} == {farms[user]}
                assert {run["farm_id"] for run in t.runs()} <= {farms[user]}
                assert {leg["farm_id"] for leg in t.ledger()} == {farms[user]}
                run = t.call("reserve_credits", feature="chat", model="m", credits=3)[0]
                t.call("settle_run", run_id=run["id"], status="succeeded", credits_actual=1)
                assert t.balance() < 1000
            seen.append((state["pid"], user))
        return seen

    # Each statement ran THREADS * ROUNDS = 48 times over 8 pooled connections: more than psycopg's
    # default prepare threshold (5) on at least one of them.
    assert_interleaved(in_parallel(work))
    runs = THREADS * ROUNDS // 2
    for farm in farms.values():
        assert owner.execute("SELECT credit_balance FROM farmops.farms WHERE id = %s", [farm]).fetchone()[
            0
        ] == (1000 - runs)
    assert invariants(owner) == []


LEDGER_QUERY = "SELECT count(*) FROM farmops.credit_ledger WHERE delta <> %s"


def backend_pid(conn) -> int:
    return conn.execute("SELECT pg_backend_pid()").fetchone()[0]


def test_a_statement_run_more_than_five_times_survives_a_new_server_connection(
    db, farms, bouncer, client_through
):
    client = client_through(bouncer, max_size=1)
    with client.tenant(farms["alice"], "alice") as t:
        before = t.execute("SELECT pg_backend_pid() AS pid").fetchone()["pid"]
        for _ in range(8):
            assert len(t.ledger()) == 1  # the grant
        t.commit()
        # PgBouncer closes its server connections once released: the next transaction gets a new one.
        bouncer.console(f"RECONNECT {db.dbname}")
        for _ in range(8):
            assert len(t.ledger()) == 1
        assert t.execute("SELECT pg_backend_pid() AS pid").fetchone()["pid"] != before


def test_psycopg_default_prepared_statements_need_pgbouncer_support(db, bouncer):
    """The scenario above with psycopg's default (prepare on the 6th execution): it breaks unless
    PgBouncer tracks protocol-level prepared statements (max_prepared_statements, 1.21+)."""
    with psycopg.connect(bouncer.dsn(APP_LOGIN, db.dbname), autocommit=True) as conn:
        assert conn.prepare_threshold == 5
        for _ in range(8):
            conn.execute(LEDGER_QUERY, [0])
        before = backend_pid(conn)
        bouncer.console(f"RECONNECT {db.dbname}")
        if bouncer.prepared_statements:
            assert conn.execute(LEDGER_QUERY, [0]).fetchone() == (0,)
        else:
            with pytest.raises(psycopg.errors.InvalidSqlStatementName):
                conn.execute(LEDGER_QUERY, [0])
        assert backend_pid(conn) != before


def leave_session_state(conn) -> None:
    """What a careless borrower leaves behind on its connection."""
    conn.execute("SET statement_timeout = '1234ms'")
    conn.execute("DECLARE held CURSOR WITH HOLD FOR SELECT 1")


def session_state(conn) -> tuple:
    return conn.execute(
        "SELECT current_setting('statement_timeout'), (SELECT count(*) FROM pg_cursors), current_user"
    ).fetchone()


def test_pool_resets_returned_connections(db):
    with farmops_client.connect(db.dsn(APP_LOGIN), min_size=1, max_size=1) as client:
        with client.connection() as conn:
            pid = backend_pid(conn)
            leave_session_state(conn)
            conn.execute("SELECT pg_advisory_lock(42)")
            conn.execute("LISTEN farmops_pgbouncer_test")
            conn.execute("CREATE TEMP TABLE scratch (x int)")
            assert session_state(conn) == ("1234ms", 1, APP_LOGIN)
        with client.connection() as conn:
            assert backend_pid(conn) == pid  # the same server session, reset
            assert session_state(conn) == ("0", 0, APP_LOGIN)
            assert conn.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
            ).fetchone() == (0,)
            assert conn.execute("SELECT count(*) FROM pg_listening_channels()").fetchone() == (0,)
            assert conn.execute("SELECT to_regclass('pg_temp.scratch')").fetchone() == (None,)


def test_only_the_governed_runs_own_loans_skip_the_reset(db, monkeypatch):
    """The run's driver vouches for its steps (no reset round trip); any other loan is still reset,
    also right after a run on the same connection."""
    from farmops_client import db as fdb
    from farmops_client.testing import FakeBedrock, fake_bedrock_client

    resets = []
    monkeypatch.setattr(
        fdb, "needs_reset", lambda conn, real=fdb.needs_reset: resets.append(real(conn)) or resets[-1]
    )
    fake = FakeBedrock(default=FakeBedrock.text("ok"))
    with farmops_client.connect(db.dsn(APP_LOGIN), max_size=1) as setup:
        farm = setup.create_farm("vouched", "alice")
        with setup.tenant(farm, "alice") as t:
            t.grant_credits(100, "test")
    resets.clear()
    with farmops_client.connect(
        db.dsn(APP_LOGIN), bedrock=fake_bedrock_client(fake), embedder="lexical", min_size=1, max_size=1
    ) as client:
        with client.tenant(farm, "alice") as t:
            t.ask("hello", k=0)
        assert resets and not any(resets)  # every step of the run came back clean: no reset
        with client.connection() as conn:
            leave_session_state(conn)
        with client.connection() as conn:  # a service's own loan was reset
            assert session_state(conn)[:2] == ("0", 0)
        assert resets[-1] is True
    # Vouching is for one loan and only for an idle connection.
    with psycopg.connect(db.dsn(APP_LOGIN), autocommit=True) as conn:
        fdb.vouch_clean(conn)
        assert fdb.needs_reset(conn) is False and fdb.needs_reset(conn) is True
        conn.execute("BEGIN")
        fdb.vouch_clean(conn)
        assert fdb.needs_reset(conn) is True


def test_pool_reset_keeps_the_role_it_was_asked_for(db):
    """DISCARD ALL resets the role too: the pool sets it again, so a borrower's RESET ROLE on a
    superuser DSN never hands the next borrower a connection that bypasses row level security."""
    with farmops_client.connect(db.dsn("postgres"), role="farmops_app", max_size=1) as client:
        with client.connection() as conn:
            conn.execute("RESET ROLE")
            assert conn.execute("SELECT current_user").fetchone() == ("postgres",)
        with client.connection() as conn:
            assert conn.execute("SELECT current_user").fetchone() == ("farmops_app",)


def test_pool_reset_cleans_the_server_connection_behind_pgbouncer(db, start_bouncer, client_through):
    bouncer = start_bouncer(pool_size=1)  # one server connection: every transaction shares it
    client = client_through(bouncer, min_size=1, max_size=1)
    with client.connection() as conn:
        leave_session_state(conn)
        assert session_state(conn) == ("1234ms", 1, APP_LOGIN)
    with client.connection() as conn:
        assert session_state(conn) == ("0", 0, APP_LOGIN)
    # Another client of PgBouncer, on the same server connection, inherits nothing either.
    with psycopg.connect(bouncer.dsn(APP_LOGIN, db.dbname), autocommit=True) as other:
        assert session_state(other) == ("0", 0, APP_LOGIN)


# -- the CLI through PgBouncer ----------------------------------------------------------------------------
CLI_ROUNDS = 2


def cli_through(dsn: str, *args: str) -> subprocess.CompletedProcess:
    """``farmops ARGS --dsn DSN`` in a process of its own (as an operator runs it)."""
    return subprocess.run(
        [sys.executable, "-m", "farmops_client.cli", *args, "--dsn", dsn],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200", "FARMOPS_FORMAT": "json"},
    )


def role_state(conn) -> tuple:
    """What a session-level SET ROLE left on the server connection: (current_user, role setting)."""
    return conn.execute("SELECT current_user, current_setting('role')").fetchone()


@pytest.mark.parametrize("login", [APP_LOGIN, "postgres"])
def test_the_cli_interleaves_tenants_through_pgbouncer_and_leaves_no_role(
    db, owner, farms, start_bouncer, login
):
    """Two tenants' CLI commands, in parallel processes, over ONE server connection of the login: each
    sees its own farm only, and nothing of the CLI's role outlives its transactions, even with a
    superuser DSN (the CLI acts as farmops_app through SET LOCAL ROLE, never a session SET ROLE)."""
    bouncer = start_bouncer(pool_size=1)
    dsn = bouncer.dsn(login, db.dbname)
    for user, farm in farms.items():  # a member each, so that member lists differ per farm
        assert (
            cli_through(
                dsn, "member", "add", f"{user}-helper", "worker", "--farm", str(farm), "--user", user
            ).returncode
            == 0
        )

    def work(i: int) -> list[str]:
        seen = []
        with psycopg.connect(dsn, autocommit=True, prepare_threshold=None) as raw:
            for r in range(CLI_ROUNDS):
                user = USERS[(i + r) % 2]
                who = ["--farm", str(farms[user]), "--user", user]
                ledger = cli_through(dsn, "credits", "ledger", *who)
                members = cli_through(dsn, "member", "list", *who)
                assert ledger.returncode == members.returncode == 0, ledger.stderr + members.stderr
                assert {leg["farm_id"] for leg in json.loads(ledger.stdout)} == {str(farms[user])}
                assert {m["user_id"] for m in json.loads(members.stdout)} == {user, f"{user}-helper"}
                # The same login's next transaction (the same server connection): no role, no tenant.
                assert role_state(raw) == (login, "none")
                assert raw.execute(SERVER_STATE).fetchone()[1] is None
                seen.append(user)
        return seen

    results = concurrently([lambda i=i: work(i) for i in range(4)])
    for result in results:
        if isinstance(result, Exception):
            raise result
    assert sorted(u for r in results for u in r) == sorted(USERS * (4 * CLI_ROUNDS // 2))
    servers = [s for s in bouncer.console("SHOW SERVERS") if login in s]
    assert len(servers) <= 1, servers  # one server connection carried both tenants


def test_a_role_client_sets_its_role_per_transaction_only(db, farms):
    """connect(role=) acts as the role in each of its transactions and leaves none on the connection."""
    with farmops_client.connect(db.dsn("postgres"), role="farmops_app", min_size=1, max_size=1) as client:
        with client.tenant(farms["alice"], "alice") as t:
            assert t.execute("SELECT current_user AS u").fetchone()["u"] == "farmops_app"
            assert len(t.members()) == 1  # under RLS although the login is a superuser
        with client.pool.connection() as raw:  # the same server session, between two transactions
            assert role_state(raw) == ("postgres", "none")
        with client.connection() as conn:
            assert role_state(conn) == ("farmops_app", "farmops_app")


def test_a_role_the_login_may_not_take_fails_at_connect(db):
    with pytest.raises(farmops_client.FarmopsError, match="may not act as farmops_owner"):
        farmops_client.connect(db.dsn(APP_LOGIN), role="farmops_owner")
