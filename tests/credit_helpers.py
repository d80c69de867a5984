"""Shared helpers for the credit and run suites (plain functions, no fixtures)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import psycopg
from conftest import as_maintainer, tenant
from psycopg.rows import dict_row


def add_member(conn: psycopg.Connection, farm_id, user_id: str, role: str, owner: str = "alice") -> None:
    """Add ``user_id`` with ``role`` to the farm, as its owner."""
    with tenant(conn, farm_id, owner):
        conn.execute(
            "SELECT farmops.add_member(p_farm_id => %s, p_user_id => %s, p_role => %s)",
            [farm_id, user_id, role],
        )


def grant(
    conn: psycopg.Connection, farm_id, credits: int, user: str = "alice", reason: str = "top up"
) -> int:
    """Grant credits as ``user`` (a farm owner); returns the new balance."""
    with tenant(conn, farm_id, user):
        return conn.execute(
            "SELECT farmops.grant_credits(p_farm_id => %s, p_credits => %s, p_reason => %s)",
            [farm_id, credits, reason],
        ).fetchone()[0]


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
    args = {"p_feature": feature, "p_model": model, "p_credits": credits}
    args.update({f"p_{k}": v for k, v in extra.items()})
    named = ", ".join(f"{k} => %({k})s" for k in args)
    with tenant(conn, farm_id, user), conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(f"SELECT * FROM farmops.reserve_credits({named})", args).fetchone()


def start(conn: psycopg.Connection, farm_id, run_id, user: str = "alice") -> dict:
    """start_run in its own tenant transaction."""
    with tenant(conn, farm_id, user), conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("SELECT * FROM farmops.start_run(p_run_id => %s)", [run_id]).fetchone()


def settle(
    conn: psycopg.Connection, farm_id, run_id, status: str = "succeeded", user: str = "alice", **kw
) -> dict:
    """settle_run in its own tenant transaction; keyword arguments without the ``p_`` prefix."""
    args = {"p_run_id": run_id, "p_status": status}
    args.update({f"p_{k}": v for k, v in kw.items()})
    named = ", ".join(f"{k} => %({k})s" for k in args)
    with tenant(conn, farm_id, user), conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(f"SELECT * FROM farmops.settle_run({named})", args).fetchone()


def expire(conn: psycopg.Connection) -> int:
    """Run the expiry job as the maintainer login, on the database of ``conn`` (no tenant context)."""
    with as_maintainer(conn) as job:
        return job.execute("SELECT farmops.expire_reservations()").fetchone()[0]


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


def invariants(owner: psycopg.Connection, farm_id=None) -> list[tuple]:
    """Violations reported by check_invariants, as the package owner."""
    return owner.execute("SELECT * FROM farmops.check_invariants(%s)", [farm_id]).fetchall()


def run_concurrently(db, n: int, work: Callable[[psycopg.Connection, int], Any]) -> list[Any]:
    """Run ``work(conn, i)`` in ``n`` threads, one app connection each, lined up by a barrier.

    Returns each thread's result, or the exception it raised.
    """
    conns = [db.connect("app") for _ in range(n)]
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def worker(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(conns[i], i)
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    finally:
        for c in conns:
            c.close()
    return results


def sqlstates(results: list[Any]) -> list[str | None]:
    """The SQLSTATE of each failed result, None for successes."""
    return [getattr(r, "sqlstate", "not-a-db-error") if isinstance(r, Exception) else None for r in results]
