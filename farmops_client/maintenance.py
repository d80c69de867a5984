"""The maintenance jobs: cross-farm work that belongs to the operator, never to the application.

``farmops.expire_reservations`` and ``farmops.expire_drafts`` see every farm, so they are
executable by ``farmops_maintainer`` only. Each job here runs in its own transaction after
``SET LOCAL ROLE farmops_maintainer``: the connection's login must be a member of that role
(:func:`farmops_client.tenancy.create_maintainer_login`), the package owner or a superuser, and
allowed in this installation (``farmops.allow_login``); the role ends with the transaction, so a
pooled connection goes back to what it was.
"""

from __future__ import annotations

import logging

import psycopg
from psycopg import sql

from . import db
from .errors import FarmopsError

logger = logging.getLogger(__name__)


def _as_maintainer(conn: psycopg.Connection) -> None:
    try:
        conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(db.MAINTAINER_ROLE)))
    except psycopg.errors.InsufficientPrivilege as exc:
        reason = exc.diag.message_primary
        raise FarmopsError(
            f"the login may not act as {db.MAINTAINER_ROLE} (create_maintainer_login): {reason}"
        ) from exc


def expire_reservations(conn: psycopg.Connection, max_runs: int = 10000) -> int:
    """``farmops.expire_reservations``: refund up to ``max_runs`` runs past their expiry; how many."""
    with db.translated(), conn.transaction():
        _as_maintainer(conn)
        return db.value(conn, "expire_reservations", max_runs=max_runs)


def expire_drafts(conn: psycopg.Connection) -> int:
    """``farmops.expire_drafts``: mark every pending draft past its approval TTL expired; how many."""
    with db.translated(), conn.transaction():
        _as_maintainer(conn)
        return db.value(conn, "expire_drafts")


def expire(conn: psycopg.Connection, max_runs: int = 10000) -> dict[str, int]:
    """Both expiry jobs, each in its own transaction: ``{"reservations": n, "drafts": m}``."""
    done = {"reservations": expire_reservations(conn, max_runs), "drafts": expire_drafts(conn)}
    logger.info("expired %(reservations)d reservations and %(drafts)d drafts", done)
    return done


def seal_audit(conn: psycopg.Connection) -> int:
    """``farmops.seal_audit``: link every farm's audit entries whose transactions ended into its chain;
    how many. Run it beside the expiry jobs (its own transaction).

    The transaction commits without waiting for the WAL flush (``synchronous_commit`` off for it
    alone): on a busy server the sealer's flushes otherwise queue with the writers' (ADR 0018). Nothing
    is at risk: the seal only links entries already durable (queued in ``_audit_pending``, or ledger
    legs), so a seal lost in a crash leaves them pending for the next one, and ``audit_head`` /
    ``verify_audit`` seal the farm first in the caller's own transaction, whose flushed commit covers
    every seal before it."""
    with db.translated(), conn.transaction():
        _as_maintainer(conn)
        conn.execute("SET LOCAL synchronous_commit = off")
        return db.value(conn, "seal_audit")


#: The queue the audit triggers append to and the seal deletes from (ADR 0018).
AUDIT_QUEUE = "farmops._audit_pending"


def vacuum_audit_queue(conn: psycopg.Connection) -> bool:
    """``VACUUM`` the audit queue ``farmops._audit_pending``; whether it ran.

    The seal deletes what the audit triggers append, so between autovacuum visits (a minute apart by
    default) dead rows pile up in the queue and every audited write pays for them (ADR 0018: +13%
    backend CPU per reservation after half a million, +4% right after a vacuum, while reservations
    were queued: since migration 0160 the ledger's legs are not). Run it after
    :func:`seal_audit`, as ``farmops audit seal`` does. It runs on PostgreSQL 17 and later, where the
    install grants ``farmops_maintainer`` ``MAINTAIN`` on that one table, with the login's own
    privileges (a maintainer login inherits them; no ``SET ROLE``, which would outlive the statement
    on a pooled connection), on an autocommit connection outside a transaction (VACUUM cannot run in one).
    Otherwise it does nothing and returns False. ``SKIP_LOCKED``: it never waits for another vacuum."""
    idle = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    if not (conn.autocommit and idle) or conn.info.server_version < 170000:
        return False
    allowed = conn.execute("SELECT has_table_privilege(%s, 'MAINTAIN')", [AUDIT_QUEUE]).fetchone()[0]
    if allowed:
        conn.execute(f"VACUUM (SKIP_LOCKED) {AUDIT_QUEUE}")
    return bool(allowed)
