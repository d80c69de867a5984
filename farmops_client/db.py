"""The one choke point between farmops_client and PostgreSQL.

Every statement the library runs goes through :func:`execute` (or :func:`call`, which
builds a named-argument function call and then uses :func:`execute`), and every
transaction boundary runs inside :func:`translated`. Both apply
:func:`farmops_client.errors.translate`, so a documented SQLSTATE always surfaces as its
typed exception and a lost connection as :class:`~farmops_client.errors.DatabaseUnavailable`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from .errors import translate

_FUNCTION_NAME_OK = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")


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


def call(
    conn: psycopg.Connection, function: str, casts: Mapping[str, str] | None = None, /, **kwargs: Any
) -> list[dict[str, Any]]:
    """``SELECT * FROM farmops.<function>(p_x => %s, ...)`` with named arguments; all rows as dicts.

    ``kwargs`` are given without the ``p_`` prefix; ``casts`` optionally maps an argument to a
    SQL type (``{"query": "public.vector"}``) for values whose Python type does not say it.
    """
    if not function or set(function) - _FUNCTION_NAME_OK:
        raise ValueError(f"not a farmops function name: {function!r}")
    casts = casts or {}
    args = []
    for name in kwargs:
        placeholder = sql.Placeholder(name)
        if name in casts:
            placeholder = sql.SQL("{}::{}").format(placeholder, sql.SQL(casts[name]))
        args.append(sql.SQL("{} => {}").format(sql.Identifier(f"p_{name}"), placeholder))
    query = sql.SQL("SELECT * FROM farmops.{}({})").format(sql.Identifier(function), sql.SQL(", ").join(args))
    return execute(conn, query, kwargs).fetchall()


def function_exists(conn: psycopg.Connection, name: str) -> bool:
    """Whether a function ``farmops.<name>`` of any signature exists (used to report missing SQL)."""
    row = execute(
        conn,
        "SELECT EXISTS (SELECT FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE n.nspname = 'farmops' AND p.proname = %s) AS present",
        [name],
    ).fetchone()
    return bool(row and row["present"])


def relation_exists(conn: psycopg.Connection, name: str) -> bool:
    """Whether ``farmops.<name>`` (a table or view) exists."""
    row = execute(conn, "SELECT to_regclass(%s) IS NOT NULL AS present", [f"farmops.{name}"]).fetchone()
    return bool(row and row["present"])
