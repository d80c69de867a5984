"""Helpers for the money suites (tests/control): prices, budgets, usage, as a tenant or the owner."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row

from .calls import call, row
from .server import tenant

NOVA = "amazon.nova-lite-v1:0"
TITAN = "amazon.titan-embed-text-v2:0"


def set_budget(conn: psycopg.Connection, farm_id, user: str = "alice", **kw: Any) -> dict:
    """farmops.set_budget as ``user`` (``p_`` prefix omitted); period 'month' unless given."""
    kw.setdefault("period", "month")
    with tenant(conn, farm_id, user):
        return row(conn, "set_budget", **kw)


def budget_status(conn: psycopg.Connection, farm_id, user: str = "alice") -> list[dict]:
    """The farm's rows of farmops.budget_status, as ``user``."""
    with tenant(conn, farm_id, user), conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("SELECT * FROM farmops.budget_status ORDER BY period, feature").fetchall()


def clear_default_price(owner: psycopg.Connection) -> None:
    """As the package owner: no '*' price from now on (the shipped state: unknown models fail closed)."""
    row(owner, "set_model_price", model="*", input_micro_usd_per_1k=None, output_micro_usd_per_1k=None)


def record_usage(conn: psycopg.Connection, farm_id, user: str = "alice", **kw: Any) -> dict:
    """farmops.record_usage as ``user``."""
    with tenant(conn, farm_id, user):
        return row(conn, "record_usage", **kw)


def statement(conn: psycopg.Connection, farm_id, user: str = "alice", **kw: Any) -> dict:
    """farmops.credit_statement as ``user`` (one row)."""
    with tenant(conn, farm_id, user):
        return call(conn, "credit_statement", **kw)[0]
