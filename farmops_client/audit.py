"""The audit chain and erasure, decided by the database (``sql/functions/50_trust``, ADRs 0018, 0019).

Every governed write appends an audit entry from a trigger; the sealing step links them into a
per-farm hash chain. ``audit_head`` returns the head to keep outside the database, ``verify_audit``
re-hashes the chain and every ledger leg and record, and, given a trusted head, proves the chain
still extends it. A farm owner reads their own farm's chain inside a tenant transaction; the
package owner (a connection acting as ``farmops_owner``) any farm's, or all of them.
"""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

import psycopg

from . import db
from .errors import InvalidArgument
from .session import Session

_HEAD = re.compile(r"^\s*(\d+):([0-9a-f]{64})\s*$")


def parse_trusted_head(text: str) -> tuple[int, str]:
    """``"SEQ:HASH"`` (as ``farmops audit head`` prints it) -> ``(seq, hash)``; else InvalidArgument."""
    match = _HEAD.match(text or "")
    if match is None or int(match.group(1)) < 1:
        raise InvalidArgument("a trusted head is SEQ:HASH, a seq of at least 1 and 64 lower-case hex digits")
    return int(match.group(1)), match.group(2)


def _trusted(trusted_head: str | None) -> tuple[int | None, str | None]:
    return parse_trusted_head(trusted_head) if trusted_head is not None else (None, None)


# -- a farm owner, in a tenant session ------------------------------------------------------------------
def farm_audit_head(t: Session) -> dict[str, Any]:
    """``farmops.audit_head`` of this farm: ``{"seq", "hash"}`` after sealing what has ended."""
    return t.call("audit_head", farm_id=t.farm_id)[0]


def verify_farm_audit(t: Session, trusted_head: str | None = None) -> dict[str, Any]:
    """``farmops.verify_audit`` of this farm: ``{farm_id, entries, head_seq, head_hash, broken_at_seq,
    problem}``, ``broken_at_seq`` None when intact; ``trusted_head`` is ``"SEQ:HASH"`` from an earlier
    head, which the chain must still extend."""
    seq, digest = _trusted(trusted_head)
    return t.call("verify_audit", farm_id=t.farm_id, trusted_seq=seq, trusted_hash=digest)[0]


#: The newest sealed entries of a farm, newest first, with the actor's user id (None once erased).
AUDIT_LOG_QUERY = (
    "SELECT l.seq, l.at, l.actor, s.user_id AS actor_user, l.action, l.object_table, l.object_id, "
    "l.detail, l.hash FROM farmops.audit_log AS l "
    "LEFT JOIN farmops.subjects AS s ON s.farm_id = l.farm_id AND s.id = l.actor "
    "WHERE l.farm_id = %(f)s ORDER BY l.seq DESC LIMIT %(limit)s"
)


def audit_log(t: Session, limit: int = 50) -> list[dict[str, Any]]:
    """The newest ``limit`` sealed entries of this farm, newest first, with the actor's user id
    (None once erased)."""
    return t.execute(AUDIT_LOG_QUERY, {"f": t.farm_id, "limit": limit}).fetchall()


def erase_member_data(t: Session, user_id: str) -> dict[str, Any]:
    """``farmops.erase_member_data`` (farm owner): no row keeps the member's identifier or personal text;
    returns what was pseudonymised or deleted."""
    return t.call("erase_member_data", user_id=user_id)[0]["erase_member_data"]


# -- the package owner (a connection acting as farmops_owner) ------------------------------------------
def audit_head(conn: psycopg.Connection, farm_id: UUID | str) -> dict[str, Any]:
    """``farmops.audit_head`` of any farm."""
    return db.call(conn, "audit_head", farm_id=farm_id)[0]


def verify_audit(
    conn: psycopg.Connection, farm_id: UUID | str | None = None, trusted_head: str | None = None
) -> list[dict[str, Any]]:
    """``farmops.verify_audit`` of one farm or (``farm_id`` None) every farm: one row per farm."""
    seq, digest = _trusted(trusted_head)
    return db.call(conn, "verify_audit", farm_id=farm_id, trusted_seq=seq, trusted_hash=digest)


def erase_farm(conn: psycopg.Connection, farm_id: UUID | str) -> dict[str, Any]:
    """``farmops.erase_farm``: every person of the farm erased, its knowledge deleted; the books stay."""
    return db.value(conn, "erase_farm", farm_id=farm_id)
