"""The AI write path: drafts a human confirms, the farm's autonomy, and proposing writes.

Functions taking a :class:`~farmops_client.session.Session` run in its transaction as its
member; functions taking a connection run in the caller's (the assistant's short) transaction.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from . import db
from .arguments import uuid_arg
from .session import Session


def _jsonb(value: Any) -> Jsonb | None:
    return Jsonb(value) if value is not None else None


def drafts(t: Session, *, status: str | None = "pending", limit: int = 100) -> list[dict[str, Any]]:
    """The farm's assistant drafts (by default the pending ones), newest first."""
    return t.execute(
        "SELECT * FROM farmops.assistant_drafts WHERE %(status)s::text IS NULL OR status = %(status)s "
        "ORDER BY created_at DESC LIMIT %(limit)s",
        {"status": status, "limit": limit},
    ).fetchall()


def draft(t: Session, draft_id: UUID | str) -> dict[str, Any] | None:
    """One draft, or ``None`` if not visible."""
    draft_id = uuid_arg(draft_id, "draft id")
    return t.execute("SELECT * FROM farmops.assistant_drafts WHERE id = %s::uuid", [str(draft_id)]).fetchone()


def confirm_draft(t: Session, draft_id: UUID | str, edits: dict[str, Any] | None = None) -> dict[str, Any]:
    """``farmops.confirm_draft`` as this (human) member; returns the draft row."""
    return t.call("confirm_draft", draft_id=uuid_arg(draft_id, "draft id"), edits=_jsonb(edits))[0]


def discard_draft(t: Session, draft_id: UUID | str, reason: str | None = None) -> dict[str, Any]:
    """``farmops.discard_draft``; returns the draft row."""
    return t.call("discard_draft", draft_id=uuid_arg(draft_id, "draft id"), reason=reason)[0]


def set_autonomy(
    t: Session,
    tier: str | None = None,
    auto_categories: list[str] | None = None,
    record_autonomy: dict[str, str] | None = None,
) -> None:
    """``farmops.set_autonomy`` (owner only); ``None`` leaves a setting unchanged."""
    t.call(
        "set_autonomy",
        tier=tier,
        auto_categories=_jsonb(auto_categories),
        record_autonomy=_jsonb(record_autonomy),
    )


def record_type_tools(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """``farmops.record_type_tools()``: one row (name, class, description, input_schema) per record type."""
    return db.call(conn, "record_type_tools")


def propose_write(
    conn: psycopg.Connection, run_id: UUID, record_type: str, payload: dict[str, Any]
) -> psycopg.Cursor[dict[str, Any]]:
    """``farmops.propose_write``: the database drafts or writes it (row: draft_id, outcome, record_id).

    Queued in the caller's (pipelined) transaction: read the returned cursor after it.
    """
    return db.send(conn, "propose_write", run_id=run_id, record_type=record_type, payload=Jsonb(payload))
