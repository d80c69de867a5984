"""Pytest fixtures: one real PostgreSQL + pgvector server per session (started by ``support.server``).

Migrations are applied once to a template database; every test gets a database in its state (a
copy, or the previous test's reset by ``support.server.Copies``) and connects as ``admin``
(superuser, setup only), ``owner`` (farmops_owner), ``app`` (the application login role, which
proves every rule) or ``maintainer`` (the login of the cross-farm expiry jobs).
Plain helpers live in ``tests/support``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest
from support.credits import grant
from support.server import PG_HOST, PG_PORT, Copies, Database, create_farm, server_dsn
from support.write_path import Farm, make_farm

_COPIES: list[Copies] = []


@pytest.fixture(scope="session")
def copies() -> Iterator[Copies]:
    """The migrated template of this session and the worker that copies (and resets) it for each test."""
    made = Copies()
    _COPIES.append(made)
    yield made
    made.close()


def pytest_terminal_summary(terminalreporter) -> None:
    """How the tests' databases were made: reset in place, or dropped and copied again."""
    for made in _COPIES:
        terminalreporter.write_line(
            "test databases: {reset} reset to the template's state, "
            "{recopied} dropped and copied again".format(**made.stats)
        )


@pytest.fixture
def db(copies: Copies) -> Iterator[Database]:
    """The fresh, migrated database of this test (its own copy of the template, dropped after it)."""
    name = copies.take()
    yield Database(PG_HOST, PG_PORT, name)
    copies.give_back(name)


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


@pytest.fixture
def app(connect) -> psycopg.Connection:
    """Connection as the application login role (autocommit; use ``tenant()`` for transactions)."""
    return connect("app")


@pytest.fixture
def farm(app) -> object:
    """A farm owned by 'alice', created by the application role."""
    return create_farm(app)


@pytest.fixture
def two_farms(app) -> tuple[object, object]:
    """Farm A owned by 'alice' and farm B owned by 'bob'."""
    return create_farm(app, "Farm A", "alice"), create_farm(app, "Farm B", "bob")


@pytest.fixture
def funded(app, farm) -> object:
    """The 'alice' farm with 100 credits."""
    grant(app, farm, 100)
    return farm


@pytest.fixture
def wfarm(app, admin) -> Farm:
    """A write-path farm: owner 'alice', one member per role (MEMBERS) and a live run of its agent."""
    return make_farm(app, admin)


@pytest.fixture
def empty_db():
    """Factory of empty databases (no farmops yet), dropped at teardown."""
    created: list[str] = []

    def _make() -> str:
        name = f"farmops_empty_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(server_dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        return server_dsn(name)

    yield _make
    with psycopg.connect(server_dsn("postgres"), autocommit=True) as conn:
        for name in created:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
