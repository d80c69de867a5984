"""Calling farmops functions by name, and expecting their documented SQLSTATEs."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import psycopg
import pytest

from farmops_client import db as fdb
from farmops_client.errors import FarmopsError


def call(conn: psycopg.Connection, function: str, casts: Mapping[str, str] | None = None, /, **kwargs: Any):
    """``SELECT * FROM farmops.<function>(p_x => ...)``: the client's own :func:`farmops_client.db.call`.

    Arguments without the ``p_`` prefix; rows as dicts; a documented SQLSTATE raises its typed
    :class:`FarmopsError` (other errors stay psycopg errors). ``casts`` types a literal such as a
    vector text (``{"query": "vector"}``).
    """
    return fdb.call(conn, function, casts, **kwargs)


def row(conn: psycopg.Connection, function: str, casts: Mapping[str, str] | None = None, /, **kwargs: Any):
    """:func:`call` for a function returning one row: that row (a dict) or None."""
    rows = call(conn, function, casts, **kwargs)
    return rows[0] if rows else None


def value(conn: psycopg.Connection, function: str, casts: Mapping[str, str] | None = None, /, **kwargs: Any):
    """:func:`call` for a function returning one scalar: that value."""
    return call(conn, function, casts, **kwargs)[0][function]


def sqlstate_of(error: BaseException | pytest.ExceptionInfo | None) -> str | None:
    """The SQLSTATE of a psycopg error or a typed FarmopsError (or of the one pytest caught)."""
    if isinstance(error, pytest.ExceptionInfo):
        error = error.value
    return getattr(error, "sqlstate", None)


def message_of(error: BaseException) -> str:
    """The server's primary message of a psycopg error or of the one a FarmopsError wraps."""
    cause = error if isinstance(error, psycopg.Error) else error.__cause__
    return getattr(getattr(cause, "diag", None), "message_primary", None) or str(error)


@contextlib.contextmanager
def raises_sqlstate(code: str | None = None, context: object = None, *, match: str | None = None) -> Iterator:
    """Expect the block to fail with SQLSTATE ``code`` (a psycopg error or a FarmopsError).

    Yields pytest's ExceptionInfo. ``code=None`` accepts any error that carries a SQLSTATE (for
    helpers that return it to their caller); ``context`` names the case in the failure message
    of a loop; ``match`` is pytest.raises' regex on the message.
    """
    with pytest.raises((psycopg.Error, FarmopsError), match=match) as excinfo:
        yield excinfo
    got = sqlstate_of(excinfo)
    where = "" if context is None else f" ({context!r})"
    if code is None:
        assert got is not None, f"expected an error with a SQLSTATE{where}: {excinfo.value!r}"
    else:
        assert got == code, f"expected SQLSTATE {code}, got {got}{where}: {excinfo.value}"


def sqlstates(results: list[Any]) -> list[str | None]:
    """The SQLSTATE of each failed result of :func:`~support.concurrency.race`, None for successes."""
    return [sqlstate_of(r) or "not-a-db-error" if isinstance(r, Exception) else None for r in results]
