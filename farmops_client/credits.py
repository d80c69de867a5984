"""Credits and AI runs: grants, the balance and ledger, the run lifecycle, the invariants.

Functions taking a :class:`~farmops_client.session.Session` run in its transaction as its
member; functions taking a connection run in the caller's transaction (the assistant's short
transactions, or operator steps without a tenant context).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg

from . import db
from .arguments import int_arg, uuid_arg
from .session import Session


def grant_credits(t: Session, credits: int, reason: str) -> int:
    """``farmops.grant_credits`` for this farm (owner only); returns the new balance."""
    credits = int_arg(credits, "credits to grant", 1)
    return t.call("grant_credits", farm_id=t.farm_id, credits=credits, reason=reason)[0]["grant_credits"]


def balance(t: Session) -> int:
    """The farm's credit balance."""
    return t.execute("SELECT credit_balance FROM farmops.farms WHERE id = %s", [t.farm_id]).fetchone()[
        "credit_balance"
    ]


#: The farm's ledger rows, newest ``limit`` of them in seq order, optionally of one run.
LEDGER = (
    "SELECT * FROM (SELECT * FROM farmops.credit_ledger WHERE %(run)s::uuid IS NULL "
    "OR ai_run_id = %(run)s::uuid ORDER BY seq DESC LIMIT %(limit)s) AS l ORDER BY seq"
)
#: The farm's most recent runs.
RUNS = "SELECT * FROM farmops.ai_runs ORDER BY reserved_at DESC, id LIMIT %(limit)s"
#: One run, its retrievals and its drafts (``%(run)s``).
RUN = "SELECT * FROM farmops.ai_runs WHERE id = %(run)s::uuid"
RUN_RETRIEVALS = (
    "SELECT * FROM farmops.ai_run_retrievals WHERE ai_run_id = %(run)s::uuid "
    "ORDER BY retrieved_at, search_id, rank"
)
RUN_DRAFTS = "SELECT * FROM farmops.assistant_drafts WHERE ai_run_id = %(run)s::uuid ORDER BY created_at, id"


def ledger(t: Session, *, run_id: UUID | str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Ledger rows of the farm (newest last), optionally of one run."""
    return t.execute(LEDGER, {"run": run_id, "limit": limit}).fetchall()


def runs(t: Session, *, limit: int = 50) -> list[dict[str, Any]]:
    """The farm's most recent AI runs."""
    return t.execute(RUNS, {"limit": limit}).fetchall()


def run(t: Session, run_id: UUID | str) -> dict[str, Any] | None:
    """One run with its ledger legs, retrievals and drafts (``None`` if not visible)."""
    run_id = uuid_arg(run_id, "run id")
    row = t.execute(RUN, {"run": run_id}).fetchone()
    if row is None:
        return None
    row["ledger"] = ledger(t, run_id=run_id)
    row["retrievals"] = t.execute(RUN_RETRIEVALS, {"run": run_id}).fetchall()
    row["drafts"] = t.execute(RUN_DRAFTS, {"run": run_id}).fetchall()
    return row


def check_farm_invariants(t: Session) -> list[dict[str, Any]]:
    """``farmops.check_invariants`` for this farm (empty list = healthy)."""
    return t.call("check_invariants", farm_id=t.farm_id)


def check_invariants(conn: psycopg.Connection, farm_id: UUID | str | None = None) -> list[dict[str, Any]]:
    """``farmops.check_invariants`` for one farm or, as the package owner, all of them."""
    return db.call(conn, "check_invariants", farm_id=farm_id)


# -- the run lifecycle, one round trip per step -------------------------------------------------------------
def reserve_run_cursor(
    conn: psycopg.Connection,
    *,
    farm_id: UUID,
    user_id: str,
    feature: str,
    model: str,
    input_tokens: int,
    output_tokens: int,
    request_id: str,
    ttl: str,
    input_summary: str | None,
) -> psycopg.Cursor[dict[str, Any]]:
    """``farmops.reserve_run``: membership, price (from the token bounds) and reservation in one call.

    Queued when ``conn`` is in a pipeline: read the ``ai_runs`` row from the cursor after it.
    """
    return db.send(
        conn,
        "reserve_run",
        {"ttl": "interval"},
        farm_id=farm_id,
        user_id=user_id,
        feature=feature,
        model=model,
        max_input_tokens=input_tokens,
        max_output_tokens=output_tokens,
        request_id=request_id,
        ttl=ttl,
        input_summary=input_summary,
    )


def reserve_run(conn: psycopg.Connection, **kwargs: Any) -> dict[str, Any]:
    """:func:`reserve_run_cursor` on an autocommit connection: one call, one round trip, its row."""
    cur = reserve_run_cursor(conn, **kwargs)
    with db.translated():
        return cur.fetchone()


def start_run(conn: psycopg.Connection, run_id: UUID) -> None:
    """``farmops.start_run``, queued in the caller's (pipelined) transaction: the run is running."""
    db.send(conn, "start_run", run_id=run_id)


def settle_run(
    conn: psycopg.Connection,
    run_id: UUID,
    *,
    status: str,
    input_tokens: int,
    output_tokens: int,
    latency_ms: int,
    output_summary: str | None,
    error: str | None,
) -> psycopg.Cursor[dict[str, Any]]:
    """``farmops.settle_run`` with what the provider reported; the database computes the price.

    Queued in the caller's (pipelined) transaction: read the ``ai_runs`` row from the cursor after it.
    """
    return db.send(
        conn,
        "settle_run",
        run_id=run_id,
        status=status,
        credits_actual=None,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        latency_ms=latency_ms,
        output_summary=output_summary,
        error=error,
    )
