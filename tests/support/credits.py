"""Helpers for the credit and run suites: each public function called by name, as a tenant."""

from __future__ import annotations

from typing import Any

import psycopg

from .calls import call, row, value
from .server import as_maintainer, tenant


def add_member(conn: psycopg.Connection, farm_id, user_id: str, role: str, owner: str = "alice") -> None:
    """Add ``user_id`` with ``role`` to the farm, as its owner."""
    with tenant(conn, farm_id, owner):
        row(conn, "add_member", farm_id=farm_id, user_id=user_id, role=role)


def grant(
    conn: psycopg.Connection, farm_id, credits: int, user: str = "alice", reason: str = "top up"
) -> int:
    """Grant credits as ``user`` (a farm owner); returns the new balance."""
    with tenant(conn, farm_id, user):
        return value(conn, "grant_credits", farm_id=farm_id, credits=credits, reason=reason)


def reserve(
    conn: psycopg.Connection,
    farm_id,
    user: str = "alice",
    credits: int | None = 1,
    feature: str | None = "chat",
    model: str | None = "test-model",
    **extra: Any,
) -> dict:
    """Reserve in its own tenant transaction; returns the ai_runs row as a dict."""
    with tenant(conn, farm_id, user):
        return row(conn, "reserve_credits", feature=feature, model=model, credits=credits, **extra)


def start(conn: psycopg.Connection, farm_id, run_id, user: str = "alice") -> dict:
    """start_run in its own tenant transaction."""
    with tenant(conn, farm_id, user):
        return row(conn, "start_run", run_id=run_id)


def settle(
    conn: psycopg.Connection, farm_id, run_id, status: str = "succeeded", user: str = "alice", **kw
) -> dict:
    """settle_run in its own tenant transaction; keyword arguments without the ``p_`` prefix."""
    with tenant(conn, farm_id, user):
        return row(conn, "settle_run", run_id=run_id, status=status, **kw)


def expire(conn: psycopg.Connection) -> int:
    """Run the expiry job as the maintainer login, on the database of ``conn`` (no tenant context)."""
    with as_maintainer(conn) as job:
        return value(job, "expire_reservations")


def balance(admin: psycopg.Connection, farm_id) -> int:
    """The farm's balance, read as the superuser."""
    return admin.execute("SELECT credit_balance FROM farmops.farms WHERE id = %s", [farm_id]).fetchone()[0]


def counts(admin: psycopg.Connection, farm_id=None) -> tuple[int, int, int]:
    """(balance or total balance, ai_runs rows, ledger rows) for one farm or all: 'was anything written?'."""
    where = "WHERE %(f)s::uuid IS NULL OR farm_id = %(f)s::uuid"
    fwhere = "WHERE %(f)s::uuid IS NULL OR id = %(f)s::uuid"
    return admin.execute(
        f"""SELECT (SELECT coalesce(sum(credit_balance), 0) FROM farmops.farms {fwhere}),
                   (SELECT count(*) FROM farmops.ai_runs {where}),
                   (SELECT count(*) FROM farmops.credit_ledger {where})""",
        {"f": farm_id},
    ).fetchone()


def invariants(owner: psycopg.Connection, farm_id=None) -> list[dict]:
    """Violations reported by check_invariants (farm_id, invariant, detail), as the package owner."""
    return call(owner, "check_invariants", farm_id=farm_id)
