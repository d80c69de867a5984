"""What the test suites share: the test server, named calls, SQLSTATE checks, the barrier harness.

Fixtures live in ``tests/conftest.py`` (which imports this package); tests import plain helpers
from here: ``from support import call, raises_sqlstate, tenant``. Domain helpers are modules:
``support.credits``, ``support.write_path``, ``support.knowledge``, ``support.pgbouncer``.
"""

from .calls import call, message_of, raises_sqlstate, row, sqlstate_of, sqlstates, value
from .concurrency import concurrently, race
from .server import (
    APP_LOGIN,
    MAINTAINER_LOGIN,
    PG_HOST,
    PG_PORT,
    REPO,
    Database,
    as_maintainer,
    create_farm,
    psql,
    server_dsn,
    tenant,
)

__all__ = [
    "APP_LOGIN",
    "MAINTAINER_LOGIN",
    "PG_HOST",
    "PG_PORT",
    "REPO",
    "Database",
    "as_maintainer",
    "call",
    "concurrently",
    "create_farm",
    "message_of",
    "psql",
    "race",
    "raises_sqlstate",
    "row",
    "server_dsn",
    "sqlstate_of",
    "sqlstates",
    "tenant",
    "value",
]
