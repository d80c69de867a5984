"""The one way between farmops_client and PostgreSQL: opening connections and mapping errors.

:func:`connect` opens every connection farmops opens itself (the client's probe, the CLI,
migrations, the embedded server, the demo); a pool's connections are prepared by
:func:`configure_connection`. Every statement the library runs goes through :func:`execute` (or
:func:`call`, which builds a named-argument function call and then uses :func:`execute`), and
every other database step (transaction boundaries, migration files) runs inside
:func:`translated`. That is the choke point: a documented SQLSTATE always surfaces as its typed
exception and a lost connection as :class:`~farmops_client.errors.DatabaseUnavailable`.
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql
from psycopg.rows import dict_row

from .errors import DatabaseUnavailable, FarmopsError, translate

#: The roles ``sql/bootstrap.sql`` creates: the application's group role, the package owner and
#: the operator role that runs the cross-farm maintenance jobs.
APP_ROLE = "farmops_app"
OWNER_ROLE = "farmops_owner"
AUDITOR_ROLE = "farmops_auditor"
MAINTAINER_ROLE = "farmops_maintainer"

_FUNCTION_NAME_OK = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")
_REGISTER_LOCK = threading.Lock()


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Re-raise any psycopg error inside the block as its typed farmops exception."""
    try:
        yield
    except psycopg.Error as exc:
        typed = translate(exc)
        if typed is exc:
            raise
        raise typed from exc


def connect(conninfo: str = "", *, role: str | None = None, **kwargs: Any) -> psycopg.Connection:
    """Open a connection; a failure is ONE line of :class:`DatabaseUnavailable` with libpq's reason.

    ``kwargs`` go to :func:`psycopg.connect` (``autocommit``, ``host``...); ``connect_timeout``
    defaults to ``$FARMOPS_CONNECT_TIMEOUT`` or 10 seconds. ``role`` runs :func:`set_role`.
    """
    kwargs.setdefault("connect_timeout", int(os.environ.get("FARMOPS_CONNECT_TIMEOUT", "10")))
    try:
        conn = psycopg.connect(conninfo, **kwargs)
    except psycopg.Error as exc:
        raise DatabaseUnavailable(f"cannot connect to the database: {_first_line(exc)}") from exc
    if role:
        try:
            set_role(conn, role)
        except BaseException:
            conn.close()
            raise
    return conn


def set_role(conn: psycopg.Connection, role: str) -> None:
    """``SET ROLE role`` for the rest of the connection (committed when not in autocommit).

    Session state: for a connection of one's own (migrations, the demo's setup), never for one a
    pool or PgBouncer hands to someone else next; those use :func:`local_role`.
    """
    try:
        with translated():
            conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
            if not conn.autocommit:
                conn.commit()
    except psycopg.errors.InsufficientPrivilege as exc:
        raise FarmopsError(f"the DSN's role may not act as {role}: {exc.diag.message_primary}") from exc


#: ``SET LOCAL ROLE %s`` as a function call: it can be queued in a pipeline and takes a parameter.
_SET_LOCAL_ROLE = "SELECT pg_catalog.set_config('role', %s, true)"


def send_local_role(conn: psycopg.Connection, role: str) -> psycopg.Cursor[dict[str, Any]]:
    """Queue (or run) ``SET LOCAL ROLE role``: it lasts until the current transaction ends.

    Transaction-local, so nothing outlives the transaction: a server connection PgBouncer hands to
    another client in transaction mode carries no role (a session ``SET ROLE`` would). Call it first
    in a transaction (or a pipeline's implicit one); outside one it ends with its own statement.
    """
    return execute(conn, _SET_LOCAL_ROLE, [role])


def set_local_role(conn: psycopg.Connection, role: str) -> None:
    """:func:`send_local_role`, checked: a login that may not act as ``role`` is a FarmopsError."""
    try:
        send_local_role(conn, role).fetchall()
    except psycopg.errors.InsufficientPrivilege as exc:
        raise FarmopsError(f"the DSN's role may not act as {role}: {exc.diag.message_primary}") from exc


@contextlib.contextmanager
def local_role(conn: psycopg.Connection, role: str | None) -> Iterator[psycopg.Connection]:
    """One transaction on ``conn`` acting as ``role`` (``SET LOCAL ROLE``; ``None``: the login's own)."""
    with translated(), conn.transaction():
        if role:
            set_local_role(conn, role)
        yield conn


def configure_connection(conn: psycopg.Connection) -> None:
    """Pool ``configure`` callback: register pgvector's adapters once per connection.

    Pass it to your own ``ConnectionPool(configure=...)`` when you hand farmops a pool.
    """
    with translated():
        register_vector(conn)
        if not conn.autocommit:
            conn.commit()


def ensure_vector(conn: psycopg.Connection) -> None:
    """Register pgvector on ``conn`` unless its pool's ``configure`` already did."""
    if conn.adapters.types.get("vector") is None:
        with _REGISTER_LOCK:
            configure_connection(conn)


def execute(
    conn: psycopg.Connection,
    query: str | sql.Composable,
    params: Sequence[Any] | Mapping[str, Any] | None = None,
) -> psycopg.Cursor[dict[str, Any]]:
    """Run one statement on ``conn`` with dict rows; errors are translated."""
    with translated():
        cur = conn.cursor(row_factory=dict_row)
        cur.execute(query, params)
        return cur


def send(
    conn: psycopg.Connection, function: str, casts: Mapping[str, str] | None = None, /, **kwargs: Any
) -> psycopg.Cursor[dict[str, Any]]:
    """``SELECT * FROM farmops.<function>(p_x => %s, ...)`` with named arguments; the cursor, unread.

    In pipeline mode the statement is only queued: read the cursor after the pipeline's sync.
    ``kwargs`` are given without the ``p_`` prefix; ``casts`` optionally maps an argument to a
    SQL type (``{"query": "vector"}``) for values whose Python type does not say it.
    """
    return execute(conn, function_query(function, casts, kwargs), kwargs)


def function_query(function: str, casts: Mapping[str, str] | None, kwargs: Mapping[str, Any]) -> sql.Composed:
    """``SELECT * FROM farmops.<function>(p_x => %(x)s, ...)`` for these keyword names (no I/O: the sync
    and the asyncio client both build their calls here)."""
    if not function or set(function) - _FUNCTION_NAME_OK:
        raise ValueError(f"not a farmops function name: {function!r}")
    casts = casts or {}
    args = []
    for name in kwargs:
        placeholder = sql.Placeholder(name)
        if name in casts:
            placeholder = sql.SQL("{}::{}").format(placeholder, sql.SQL(casts[name]))
        args.append(sql.SQL("{} => {}").format(sql.Identifier(f"p_{name}"), placeholder))
    return sql.SQL("SELECT * FROM farmops.{}({})").format(sql.Identifier(function), sql.SQL(", ").join(args))


def call(
    conn: psycopg.Connection, function: str, casts: Mapping[str, str] | None = None, /, **kwargs: Any
) -> list[dict[str, Any]]:
    """:func:`send`, then all rows as dicts."""
    cur = send(conn, function, casts, **kwargs)
    with translated():
        return cur.fetchall()


def value(conn: psycopg.Connection, function: str, casts: Mapping[str, str] | None = None, /, **kwargs: Any):
    """:func:`call` for a function returning one scalar: that value."""
    return call(conn, function, casts, **kwargs)[0][function]


#: Connections whose last borrower ran only farmops' own statements (every setting transaction-local,
#: nothing left in the session) and gave them back idle: the pool may skip their reset round trip.
_VOUCHED: weakref.WeakSet[psycopg.Connection] = weakref.WeakSet()


def vouch_clean(conn: psycopg.Connection) -> None:
    """Say that ``conn`` ran only farmops' own transaction-scoped statements on this loan, so that its
    return to the pool needs no reset (:func:`needs_reset`). For the governed run's steps only: a loan
    that ran anything of a service's own must not be vouched for."""
    _VOUCHED.add(conn)


def needs_reset(conn: psycopg.Connection) -> bool:
    """False once for a connection vouched clean and idle; True otherwise (the pool resets it)."""
    vouched = conn in _VOUCHED
    _VOUCHED.discard(conn)
    return not (vouched and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE)
